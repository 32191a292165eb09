//! One LDAP session: who the connection is bound as (`Bound`, checked again before each
//! search), and `Session::handle`, which answers one request message; binds are in `bind`,
//! searches in `search`. A session knows no socket: answers go to a `transport::Writer`.

use super::*;

/// Who a connection is bound as: a service account, or a user with its own password.
pub(super) struct Bound {
    pub(super) provider: String,
    pub(super) provider_id: i64,
    pub(super) account: String,
    pub(super) user: bool,
    /// What the binding is checked against before each search.
    pub(super) check: Check,
    /// The provider's base DN: its own choice, else `dc=<provider>,dc=scimd`.
    pub(super) base: String,
    /// Whether `base` is the provider's own choice.
    pub(super) custom: bool,
}

impl Bound {
    /// Who a search of this binding reads as.
    pub(super) fn reader(&self) -> Reader {
        Reader {
            provider_id: self.provider_id,
            provider: self.provider.clone(),
            tree: self.base.clone(),
            custom: self.custom,
            check: self.check.clone(),
        }
    }

    /// How binds and searches of this identity are counted.
    pub(super) fn key(&self) -> String {
        match self.user {
            true => format!("uid={}", self.account),
            false => self.account.clone(),
        }
    }

    pub(super) fn dn(&self) -> String {
        let base = &self.base;
        match self.user {
            true => directory::user_dn(base, &self.account),
            false => format!("cn={},ou=services,{base}", directory::escape(&self.account)),
        }
    }

    /// Where a DN points in this identity's tree.
    pub(super) fn locate(&self, dn: &str) -> Option<Node> {
        match self.custom {
            true => directory::locate_under(dn, &self.provider, &self.base),
            false => directory::locate(dn),
        }
    }
}

pub(super) struct Session {
    pub(super) state: Arc<AppState>,
    pub(super) peer: SocketAddr,
    pub(super) bound: Option<Bound>,
    /// The connection is encrypted (LDAPS, or after StartTLS).
    pub(super) tls: bool,
    /// StartTLS is possible (TLS is configured).
    pub(super) can_start_tls: bool,
    /// The OIDs of the controls the request being answered marks critical, read from its bytes
    /// (`ber::critical_controls`: the protocol crate drops some criticalities).
    pub(super) critical: Vec<String>,
}

/// Server-side sorting (RFC 2891), which scimd does not apply.
const OID_SORT: &str = "1.2.840.113556.1.4.473";

pub(super) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_loopback(),
        IpAddr::V6(v) => v.is_loopback() || v.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
    }
}

impl Session {
    /// Answers one request.
    pub(super) async fn handle(
        &mut self,
        msg: LdapMsg,
        out: &mut Writer<'_>,
    ) -> std::io::Result<Next> {
        let id = msg.msgid;
        let reply = |op| vec![LdapMsg::new(id, op)];
        let read_only = "scimd's directory is read-only: users and groups change only through \
                         the identity provider (SCIM)";
        // RFC 4511 §4.1.11: a control marked critical that the server does not apply means the
        // operation is not performed.
        let sort = self
            .critical
            .iter()
            .any(|oid| oid == OID_SORT)
            .then(|| format!("server-side sorting ({OID_SORT})"));
        if let Some(control) = unsupported_critical(&msg.ctrl).or(sort) {
            let why = format!("the {control} control is marked critical and is not supported here");
            let refused = done(LdapResultCode::UnavailableCriticalExtension, why);
            if let Some(op) = refusal(&msg.op, refused) {
                out.send(reply(op)).await?;
                return Ok(Next::Go);
            }
        }
        match msg.op {
            LdapOp::BindRequest(b) => {
                let res = self.bind(b.version, &b.dn, b.cred).await;
                out.send(reply(LdapOp::BindResponse(LdapBindResponse {
                    res,
                    saslcreds: None,
                })))
                .await?;
            }
            LdapOp::UnbindRequest => return Ok(Next::Close),
            LdapOp::SearchRequest(req) => self.search(id, req, msg.ctrl, out).await?,
            LdapOp::ExtendedRequest(x) => {
                let (answer, next) = self.extended(&x.name);
                out.send(reply(LdapOp::ExtendedResponse(answer))).await?;
                return Ok(next);
            }
            op @ (LdapOp::AddRequest(_)
            | LdapOp::ModifyRequest(_)
            | LdapOp::DelRequest(_)
            | LdapOp::ModifyDNRequest(_)) => {
                let refused = done(LdapResultCode::UnwillingToPerform, read_only);
                out.send(reply(match op {
                    LdapOp::AddRequest(_) => LdapOp::AddResponse(refused),
                    LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(refused),
                    LdapOp::DelRequest(_) => LdapOp::DelResponse(refused),
                    _ => LdapOp::ModifyDNResponse(refused),
                }))
                .await?
            }
            LdapOp::CompareRequest(c) => {
                let res = self.compare(&c).await;
                out.send(reply(LdapOp::CompareResult(res))).await?
            }
            LdapOp::AbandonRequest(_) => {}
            _ => return Ok(Next::NotARequest),
        }
        Ok(Next::Go)
    }

    /// The answer to an extended operation: Who am I? (RFC 4532) and StartTLS; no other.
    fn extended(&self, name: &str) -> (LdapExtendedResponse, Next) {
        let answer = |code, message: String, name: Option<&str>, value: Option<Vec<u8>>| {
            LdapExtendedResponse {
                res: done(code, message),
                name: name.map(str::to_string),
                value,
            }
        };
        if name == OID_WHOAMI {
            let who = match &self.bound {
                Some(b) => format!("dn:{}", b.dn()),
                None => String::new(),
            };
            let res = answer(
                LdapResultCode::Success,
                String::new(),
                None,
                Some(who.into_bytes()),
            );
            return (res, Next::Go);
        }
        if name != OID_STARTTLS {
            let why = format!("extended operation {name} is not supported");
            return (
                answer(LdapResultCode::ProtocolError, why, None, None),
                Next::Go,
            );
        }
        let (code, message, next) = match (self.tls, self.can_start_tls) {
            (true, _) => (
                LdapResultCode::OperationsError,
                "this connection is encrypted already",
                Next::Go,
            ),
            (false, false) => (
                LdapResultCode::Unavailable,
                "TLS is not configured on this server (tls_cert, tls_key)",
                Next::Go,
            ),
            (false, true) => (LdapResultCode::Success, "", Next::StartTls),
        };
        (answer(code, message.into(), Some(OID_STARTTLS), None), next)
    }
}

/// The first control of a request that is marked critical and that this server does not apply.
/// Paged results are applied; ManageDsaIT is trivially (the directory has no referrals or
/// aliases). The parser keeps no criticality for server-side sorting: `Session::critical` has
/// it, read from the request's bytes.
fn unsupported_critical(controls: &[LdapControl]) -> Option<String> {
    controls.iter().find_map(|c| match c {
        LdapControl::Unknown {
            oid,
            criticality: true,
            ..
        } => Some(oid.clone()),
        LdapControl::SyncRequest {
            criticality: true, ..
        } => Some("content synchronisation (1.3.6.1.4.1.4203.1.9.1.1)".into()),
        LdapControl::PasswordPolicyRequest { criticality: true } => {
            Some("password policy (1.3.6.1.4.1.42.2.27.8.5.1)".into())
        }
        LdapControl::SearchOptions {
            criticality: true, ..
        }
        | LdapControl::ShowDeleted { criticality: true }
        | LdapControl::SdFlags {
            criticality: true, ..
        }
        | LdapControl::ExtendedDn {
            criticality: true, ..
        } => Some("Active Directory".into()),
        _ => None,
    })
}

/// The response of a request's kind carrying `res`; `None` for requests that have none.
fn refusal(op: &LdapOp, res: LdapResult) -> Option<LdapOp> {
    Some(match op {
        LdapOp::BindRequest(_) => LdapOp::BindResponse(LdapBindResponse {
            res,
            saslcreds: None,
        }),
        LdapOp::SearchRequest(_) => LdapOp::SearchResultDone(res),
        LdapOp::CompareRequest(_) => LdapOp::CompareResult(res),
        LdapOp::AddRequest(_) => LdapOp::AddResponse(res),
        LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(res),
        LdapOp::DelRequest(_) => LdapOp::DelResponse(res),
        LdapOp::ModifyDNRequest(_) => LdapOp::ModifyDNResponse(res),
        LdapOp::ExtendedRequest(_) => LdapOp::ExtendedResponse(LdapExtendedResponse {
            res,
            name: None,
            value: None,
        }),
        _ => return None,
    })
}

/// A session answering messages with no socket: requests in, answers decoded from the bytes it
/// wrote into memory.
#[cfg(test)]
mod tests {
    use ldap3_proto::proto::{LdapAddRequest, LdapBindRequest, LdapDerefAliases};

    use super::*;

    struct Fixture {
        session: Session,
        _dir: tempfile::TempDir,
    }

    fn fixture(peer: &str, tls: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = crate::config::RawConfig::defaults();
        let db = dir.path().join("t.db");
        raw.set("database", &db.to_string_lossy()).unwrap();
        let config = raw.validate().unwrap();
        let store = store::Store::open(
            &db,
            store::OpenMode::CreateIfMissing,
            std::time::Duration::from_secs(1),
            1,
        )
        .unwrap();
        let state = Arc::new(AppState::new(config, store, "http://h".into()));
        let session = Session {
            state,
            peer: peer.parse().unwrap(),
            bound: None,
            tls,
            can_start_tls: false,
            critical: Vec::new(),
        };
        Fixture { session, _dir: dir }
    }

    /// The session's answers to one request, and what the connection does next.
    async fn answer(session: &mut Session, op: LdapOp) -> (Vec<LdapMsg>, Next) {
        answer_with(session, op, Vec::new()).await
    }

    /// `answer`, for a request with controls.
    async fn answer_with(
        session: &mut Session,
        op: LdapOp,
        controls: Vec<LdapControl>,
    ) -> (Vec<LdapMsg>, Next) {
        let mut codec = LdapCodec::new(None, None);
        let mut bytes: Vec<u8> = Vec::new();
        let next = {
            let mut out = Writer {
                codec: &mut codec,
                stream: &mut bytes,
                pending: BytesMut::new(),
                timeout: std::time::Duration::from_secs(1),
            };
            let msg = LdapMsg::new_with_ctrls(7, op, controls);
            let next = session.handle(msg, &mut out).await.unwrap();
            out.flush().await.unwrap();
            next
        };
        let mut input = BytesMut::from(&bytes[..]);
        let mut msgs = Vec::new();
        while let Some(m) = codec.decode(&mut input).unwrap() {
            assert_eq!(m.msgid, 7);
            msgs.push(m);
        }
        (msgs, next)
    }

    fn result(m: &LdapMsg) -> &LdapResult {
        match &m.op {
            LdapOp::BindResponse(r) => &r.res,
            LdapOp::SearchResultDone(r) | LdapOp::AddResponse(r) => r,
            other => panic!("not a result: {other:?}"),
        }
    }

    fn search(base: &str, scope: LdapSearchScope) -> LdapOp {
        LdapOp::SearchRequest(LdapSearchRequest {
            base: base.into(),
            scope,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter: LdapFilter::Present("objectClass".into()),
            attrs: Vec::new(),
        })
    }

    fn bind(dn: &str, password: &str) -> LdapOp {
        LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: dn.into(),
            cred: LdapBindCred::Simple(password.into()),
        })
    }

    #[tokio::test]
    async fn an_anonymous_session_reads_the_root_dse_and_nothing_else() {
        let mut f = fixture("127.0.0.1:5000", false);
        let (msgs, next) = answer(&mut f.session, bind("", "")).await;
        assert_eq!(result(&msgs[0]).code, LdapResultCode::Success);
        assert!(matches!(next, Next::Go));
        let (msgs, _) = answer(&mut f.session, search("", LdapSearchScope::Base)).await;
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(matches!(msgs[0].op, LdapOp::SearchResultEntry(_)));
        assert_eq!(result(&msgs[1]).code, LdapResultCode::Success);
        let (msgs, _) = answer(
            &mut f.session,
            search("dc=p,dc=scimd", LdapSearchScope::Subtree),
        )
        .await;
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert_eq!(
            result(&msgs[0]).code,
            LdapResultCode::InsufficentAccessRights
        );
    }

    /// RFC 4511 §4.1.11: a critical control the server does not apply stops the operation
    /// with unavailableCriticalExtension (12); the same control not marked critical is ignored.
    #[tokio::test]
    async fn unsupported_critical_controls_are_refused_and_others_ignored() {
        let mut f = fixture("127.0.0.1:5000", false);
        let assertion = |criticality| LdapControl::Unknown {
            oid: "1.3.6.1.1.12".into(),
            criticality,
            value: None,
        };
        let root = || search("", LdapSearchScope::Base);
        let (msgs, _) = answer_with(&mut f.session, root(), vec![assertion(true)]).await;
        assert_eq!(msgs.len(), 1, "no entry: {msgs:?}");
        let res = result(&msgs[0]);
        assert_eq!(res.code, LdapResultCode::UnavailableCriticalExtension);
        assert!(res.message.contains("1.3.6.1.1.12"), "{}", res.message);
        let (msgs, _) = answer_with(&mut f.session, root(), vec![assertion(false)]).await;
        assert_eq!(result(&msgs[1]).code, LdapResultCode::Success);
        let (msgs, _) = answer_with(&mut f.session, bind("", ""), vec![assertion(true)]).await;
        assert_eq!(
            result(&msgs[0]).code,
            LdapResultCode::UnavailableCriticalExtension
        );
    }

    #[tokio::test]
    async fn writes_are_refused_and_passwords_need_tls_off_loopback() {
        let mut f = fixture("192.0.2.7:5000", false);
        let add = LdapOp::AddRequest(LdapAddRequest {
            dn: "uid=x,ou=people,dc=p,dc=scimd".into(),
            attributes: Vec::new(),
        });
        let (msgs, _) = answer(&mut f.session, add).await;
        let res = result(&msgs[0]);
        assert_eq!(res.code, LdapResultCode::UnwillingToPerform);
        assert!(res.message.contains("read-only"), "{}", res.message);
        let (msgs, _) = answer(
            &mut f.session,
            bind("cn=a,ou=services,dc=p,dc=scimd", "secret"),
        )
        .await;
        assert_eq!(
            result(&msgs[0]).code,
            LdapResultCode::ConfidentialityRequired
        );
        // Over TLS the same bind is judged on its password: no such account.
        let mut f = fixture("192.0.2.7:5000", true);
        let (msgs, _) = answer(
            &mut f.session,
            bind("cn=a,ou=services,dc=p,dc=scimd", "secret"),
        )
        .await;
        assert_eq!(result(&msgs[0]).code, LdapResultCode::InvalidCredentials);
    }
}

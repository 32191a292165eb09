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

/// The record a binding rests on: a service account (by id), or a user and the hash of the
/// password it bound with.
#[derive(Clone)]
pub(super) enum Check {
    Account(String),
    User { seq: i64, password_hash: String },
}

impl Check {
    pub(super) fn standing(
        &self,
        c: &rusqlite::Connection,
    ) -> store::Result<ldap_accounts::Standing> {
        match self {
            Check::Account(id) => {
                ldap_accounts::account_standing(c, id, chrono::Utc::now().timestamp())
            }
            Check::User { seq, password_hash } => {
                ldap_accounts::user_standing(c, *seq, password_hash)
            }
        }
    }
}

impl From<store::Error> for Failure {
    fn from(e: store::Error) -> Failure {
        Failure::Store(e)
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Store(e.into())
    }
}

/// Why a batch of entries was not read.
pub(super) enum Failure {
    /// The binding is no longer valid (see `Check`).
    Gone(&'static str),
    Store(store::Error),
}

impl Bound {
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
}

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
            LdapOp::ExtendedRequest(x) if x.name == OID_WHOAMI => {
                let who = match &self.bound {
                    Some(b) => format!("dn:{}", b.dn()),
                    None => String::new(),
                };
                out.send(reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
                    res: done(LdapResultCode::Success, ""),
                    name: None,
                    value: Some(who.into_bytes()),
                })))
                .await?;
            }
            LdapOp::ExtendedRequest(x) if x.name == OID_STARTTLS => {
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
                out.send(reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
                    res: done(code, message),
                    name: Some(OID_STARTTLS.into()),
                    value: None,
                })))
                .await?;
                return Ok(next);
            }
            LdapOp::ExtendedRequest(x) => {
                out.send(reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
                    res: done(
                        LdapResultCode::ProtocolError,
                        format!("extended operation {} is not supported", x.name),
                    ),
                    name: None,
                    value: None,
                })))
                .await?;
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
            LdapOp::CompareRequest(_) => {
                out.send(reply(LdapOp::CompareResult(done(
                    LdapResultCode::UnwillingToPerform,
                    "compare is not supported; search with an equality filter instead",
                ))))
                .await?
            }
            LdapOp::AbandonRequest(_) => {}
            _ => return Ok(Next::NotARequest),
        }
        Ok(Next::Go)
    }
}

//! A read-only LDAP directory over the provisioned users and groups (`ldap_listen`), on the
//! server's runtime, reading through the store's reader threads. Applications bind with a
//! service account of one identity provider (`scimd ldap account add`) and search that
//! provider's tree (see `directory`); filters become SCIM filters, compiled to the same
//! indexed SQL as SCIM searches. Every write operation is refused: the identity provider is
//! the only writer.

mod ber;
pub(crate) mod gate;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;
use ldap3_proto::LdapCodec;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindResponse, LdapExtendedResponse, LdapFilter, LdapMsg, LdapOp,
    LdapPartialAttribute, LdapResult, LdapResultCode, LdapSearchRequest, LdapSearchResultEntry,
    LdapSearchScope, OID_WHOAMI,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

use crate::app::AppState;
use crate::app::counters::LdapEvent;
use crate::auth::{Secret, Verdict};
use crate::scim::ResourceKind;
use crate::scim::directory::{self, Node, Resolve};
use crate::scim::filter::{AttrPath, CompValue, Filter, Op};
use crate::scim::schema::ResourceType;
use crate::store::search;
use crate::store::{self, ldap_accounts};
use crate::tls::Stream;

/// Entries read from the store per round trip while a search streams its results.
const BATCH: i64 = 500;
/// The paged results control (RFC 2696).
const OID_PAGED: &str = "1.2.840.113556.1.4.319";
/// The notice of disconnection (RFC 4511 section 4.4.1).
const OID_NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";
/// StartTLS (RFC 4511 section 4.14).
const OID_STARTTLS: &str = "1.3.6.1.4.1.1466.20037";

/// What the connection does after an answer.
enum Next {
    Go,
    Close,
    StartTls,
    /// The message was not a request (a response, say): the connection ends with a notice.
    NotARequest,
}

/// The LDAP front door as the server builds it: the core, the TLS acceptor (LDAPS and
/// StartTLS), the connection caps, and the signal that the server is stopping.
pub(crate) struct Door {
    state: Arc<AppState>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    /// LDAP connections open, overall and per address, against their caps.
    gate: Arc<gate::Gate>,
    /// Turns true when the server stops: LDAP connections (which, unlike HTTP ones, the
    /// server does not close itself) end at their next idle moment.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Door {
    /// Raises the open-files limit as far as allowed and fits the connection caps in it.
    pub(crate) fn new(
        state: Arc<AppState>,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Door {
        let gate = Arc::new(gate::Gate::new(
            state.config.ldap_max_connections,
            state.config.ldap_max_connections_per_address,
            gate::raise_open_files_limit(),
        ));
        Door {
            state,
            acceptor,
            gate,
            stopping,
        }
    }
}

/// Serves one LDAP connection: LDAPS (TLS from the first byte) when `implicit`, else plain
/// LDAP that StartTLS upgrades when TLS is configured. Runs on an HTTP worker thread. A
/// connection past the caps of `gate::Gate` is closed at once.
pub(crate) async fn accept(
    stream: tokio::net::TcpStream,
    door: Arc<Door>,
    implicit: bool,
) -> Result<(), std::io::Error> {
    let (state, acceptor) = (door.state.clone(), door.acceptor.clone());
    let peer = stream.peer_addr()?;
    let _admitted = match door.gate.admit(peer.ip()) {
        Ok(a) => a,
        Err(_) => return Ok(()),
    };
    // Answers may go out in several writes (large searches): without this, Nagle's algorithm
    // holds the last one for the client's delayed ACK (~40 ms).
    let _ = stream.set_nodelay(true);
    let stream = match (implicit, &acceptor) {
        (true, Some(a)) => {
            match tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, a.accept(stream)).await {
                Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
                _ => return Ok(()),
            }
        }
        (true, None) => return Ok(()),
        (false, _) => Stream::Plain(stream),
    };
    if let Err(e) = connection(stream, peer, state, acceptor, door.stopping.clone()).await {
        tracing::debug!(%peer, error = %e, "LDAP connection ended");
    }
    Ok(())
}

/// Who a connection is bound as: a service account, or a user with its own password.
struct Bound {
    provider: String,
    provider_id: i64,
    account: String,
    user: bool,
    /// What the binding is checked against before each search.
    check: Check,
    /// The provider's base DN: its own choice, else `dc=<provider>,dc=scimd`.
    base: String,
    /// Whether `base` is the provider's own choice.
    custom: bool,
}

/// The record a binding rests on: a service account (by id), or a user and the hash of the
/// password it bound with.
#[derive(Clone)]
enum Check {
    Account(String),
    User { seq: i64, password_hash: String },
}

impl Check {
    fn standing(&self, c: &rusqlite::Connection) -> store::Result<ldap_accounts::Standing> {
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

/// Why a batch of entries was not read.
enum Failure {
    /// The binding is no longer valid (see `Check`).
    Gone(&'static str),
    Store(store::Error),
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

impl Bound {
    /// How binds and searches of this identity are counted.
    fn key(&self) -> String {
        match self.user {
            true => format!("uid={}", self.account),
            false => self.account.clone(),
        }
    }

    fn dn(&self) -> String {
        let base = &self.base;
        match self.user {
            true => directory::user_dn(base, &self.account),
            false => format!("cn={},ou=services,{base}", directory::escape(&self.account)),
        }
    }

    /// Where a DN points in this identity's tree.
    fn locate(&self, dn: &str) -> Option<Node> {
        match self.custom {
            true => directory::locate_under(dn, &self.provider, &self.base),
            false => directory::locate(dn),
        }
    }
}

/// Who a refused bind was for, as the log and the activity log name it.
struct Refusal<'a> {
    provider: &'a str,
    /// Set when the name is one the provider has (an account or a user).
    provider_id: Option<i64>,
    /// The account's name, `uid=USERNAME`, or `(unknown names)`.
    name: &'a str,
    dn: &'a str,
    reason: &'static str,
}

impl<'a> Refusal<'a> {
    fn known(provider: &'a str, provider_id: i64, name: &'a str, dn: &'a str) -> Refusal<'a> {
        Refusal {
            provider,
            provider_id: Some(provider_id),
            name,
            dn,
            reason: "",
        }
    }

    fn unknown(provider: &'a str, dn: &'a str, reason: &'static str) -> Refusal<'a> {
        Refusal {
            provider,
            provider_id: None,
            name: "(unknown names)",
            dn,
            reason,
        }
    }

    fn because(self, reason: &'static str) -> Refusal<'a> {
        Refusal { reason, ..self }
    }
}

struct Session {
    state: Arc<AppState>,
    peer: SocketAddr,
    bound: Option<Bound>,
    /// The connection is encrypted (LDAPS, or after StartTLS).
    tls: bool,
    /// StartTLS is possible (TLS is configured).
    can_start_tls: bool,
}

/// The answer when the store fails: the cause goes to the log, never to the client (whose
/// message would otherwise carry SQLite's text).
fn unavailable(what: &str, e: &store::Error) -> LdapResult {
    tracing::warn!(error = %e, "{what} failed");
    done(
        LdapResultCode::Unavailable,
        "the directory cannot be read right now",
    )
}

fn done(code: LdapResultCode, message: impl Into<String>) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.into(),
        referral: Vec::new(),
    }
}

/// The notice of disconnection (RFC 4511 section 4.4.1): the unsolicited answer a server
/// sends before it ends a connection on its own initiative.
fn notice_of_disconnection(code: LdapResultCode, message: String) -> LdapMsg {
    LdapMsg::new(
        0,
        LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: done(code, message),
            name: Some(OID_NOTICE_OF_DISCONNECTION.into()),
            value: None,
        }),
    )
}

/// How long a notice of disconnection may take to go out (the client may not be reading).
const NOTICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn connection(
    mut stream: Stream,
    peer: SocketAddr,
    state: Arc<AppState>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let config = &state.config;
    let (anonymous_max, bound_max) = (config.ldap_max_request_anonymous, config.ldap_max_request);
    let (request_timeout, idle_timeout, send_timeout) = (
        config.ldap_request_timeout,
        config.ldap_idle_timeout,
        config.send_timeout,
    );
    // The codec's own limits only back up the checks below, made before a request is buffered.
    let mut codec = LdapCodec::new(Some(anonymous_max.max(bound_max)), None);
    let mut input = BytesMut::with_capacity(4096);
    let mut session = Session {
        state,
        peer,
        bound: None,
        tls: matches!(stream, Stream::Tls(_)),
        can_start_tls: acceptor.is_some(),
    };
    // When the request now arriving began to arrive.
    let mut started: Option<tokio::time::Instant> = None;
    // One timer for the connection, moved to each new deadline (not one made per request).
    let deadline = tokio::time::sleep(idle_timeout);
    tokio::pin!(deadline);
    loop {
        let mut answered = false;
        let refusal = loop {
            // The next request's length, from its first bytes: one too large is refused before
            // it is read, so what a connection may make the server hold is bounded.
            let (limit, key) = match session.bound {
                Some(_) => (bound_max, "ldap_max_request"),
                None => (anonymous_max, "ldap_max_request_anonymous"),
            };
            match ber::frame(&input) {
                ber::Frame::Unknown => break None,
                ber::Frame::Malformed => {
                    break Some(
                        "the client sent something that is not an LDAP message".to_string(),
                    );
                }
                ber::Frame::Len(n) if n > limit => {
                    break Some(format!(
                        "a request of {n} bytes is larger than this server takes ({limit} \
                         bytes, {key})"
                    ));
                }
                ber::Frame::Len(n) if input.len() < n => {
                    input.reserve(n - input.len());
                    break None;
                }
                ber::Frame::Len(_) => {}
            }
            let msg = match codec.decode(&mut input) {
                Ok(Some(m)) => m,
                Ok(None) => break None,
                Err(e) => {
                    tracing::debug!(%peer, error = ?e, "undecodable LDAP message");
                    break Some("the client sent a malformed LDAP message".to_string());
                }
            };
            answered = true;
            let mut out = Writer {
                codec: &mut codec,
                stream: &mut stream,
                pending: BytesMut::new(),
                timeout: send_timeout,
            };
            let next = session.handle(msg, &mut out).await?;
            out.flush().await?;
            match next {
                Next::Go => {}
                Next::Close => return Ok(()),
                Next::NotARequest => {
                    break Some("the client sent an LDAP message that is not a request".into());
                }
                Next::StartTls => {
                    // The client starts its handshake after our answer: nothing else may be
                    // buffered (RFC 4511 section 4.14.1).
                    let (Stream::Plain(tcp), Some(a)) = (stream, acceptor.as_ref()) else {
                        return Ok(());
                    };
                    if !input.is_empty() {
                        return Ok(());
                    }
                    let tls = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, a.accept(tcp))
                        .await
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                    stream = Stream::Tls(Box::new(tls));
                    session.tls = true;
                }
            }
        };
        if let Some(why) = refusal {
            return disconnect(
                &mut stream,
                &mut codec,
                peer,
                LdapResultCode::ProtocolError,
                why,
            )
            .await;
        }
        // A request begins to arrive: it has `ldap_request_timeout` to arrive whole. Between
        // requests, the connection may wait `ldap_idle_timeout`.
        let now = tokio::time::Instant::now();
        started = match (input.is_empty(), started) {
            (true, _) => None,
            (false, Some(t)) if !answered => Some(t),
            (false, _) => Some(now),
        };
        deadline.as_mut().reset(match started {
            Some(t) => t + request_timeout,
            None => now + idle_timeout,
        });
        // Waiting for the next request is where a stopping server ends the connection.
        let mut stopping = stopping.clone();
        if *stopping.borrow() {
            return Ok(());
        }
        tokio::select! {
            read = stream.read_buf(&mut input) => {
                if read? == 0 {
                    return Ok(());
                }
                if started.is_none() {
                    started = Some(tokio::time::Instant::now());
                }
            }
            _ = stopping.changed() => return Ok(()),
            _ = &mut deadline => {
                return match started {
                    Some(_) => {
                        let why = format!(
                            "the request did not arrive whole within {} s (ldap_request_timeout)",
                            request_timeout.as_secs()
                        );
                        disconnect(&mut stream, &mut codec, peer, LdapResultCode::ProtocolError, why).await
                    }
                    // An idle connection is closed without a word, as slapd's idletimeout does.
                    None => Ok(()),
                };
            }
        }
    }
}

/// Ends a connection with a notice of disconnection, logged at debug level (a client that
/// misbehaves must not fill the log).
async fn disconnect(
    stream: &mut Stream,
    codec: &mut LdapCodec,
    peer: SocketAddr,
    code: LdapResultCode,
    why: String,
) -> std::io::Result<()> {
    tracing::debug!(%peer, reason = %why, "LDAP connection ended by the server");
    let mut bytes = BytesMut::new();
    if codec
        .encode(notice_of_disconnection(code, why), &mut bytes)
        .is_ok()
    {
        let _ = tokio::time::timeout(NOTICE_TIMEOUT, async {
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        })
        .await;
    }
    Ok(())
}

/// Encodes answers onto the connection.
struct Writer<'a> {
    codec: &'a mut LdapCodec,
    stream: &'a mut Stream,
    /// Encoded answers not written yet: a search's entries and its result go out together
    /// unless they pass `FLUSH_AT`.
    pending: BytesMut,
    /// How long the client may read nothing of an answer (`send_timeout`).
    timeout: std::time::Duration,
}

/// Bytes of answers held before they are written.
const FLUSH_AT: usize = 64 * 1024;

impl Writer<'_> {
    async fn send(&mut self, msgs: Vec<LdapMsg>) -> std::io::Result<()> {
        for m in msgs {
            self.codec
                .encode(m, &mut self.pending)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        if self.pending.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Answers encoded elsewhere (entries, on a reader thread).
    async fn send_encoded(&mut self, bytes: BytesMut) -> std::io::Result<()> {
        self.pending.unsplit(bytes);
        if self.pending.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            tokio::time::timeout(self.timeout, self.stream.write_all(&self.pending))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            self.pending.clear();
        }
        Ok(())
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_loopback(),
        IpAddr::V6(v) => v.is_loopback() || v.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
    }
}

impl Session {
    /// Answers one request.
    async fn handle(&mut self, msg: LdapMsg, out: &mut Writer<'_>) -> std::io::Result<Next> {
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

    async fn bind(&mut self, version: i64, dn: &str, cred: LdapBindCred) -> LdapResult {
        self.bound = None;
        if version != 3 {
            return done(
                LdapResultCode::ProtocolError,
                "only LDAP version 3 is spoken",
            );
        }
        let LdapBindCred::Simple(password) = cred else {
            return done(
                LdapResultCode::AuthMethodNotSupported,
                "only simple binds are supported",
            );
        };
        if dn.is_empty() && password.is_empty() {
            // Anonymous: allowed to bind, but it reads nothing beyond the root DSE.
            return done(LdapResultCode::Success, "");
        }
        let config = &self.state.config;
        let allowed_in_clear = config.ldap_plaintext_loopback && is_loopback(self.peer.ip());
        if !self.tls && !allowed_in_clear {
            return done(
                LdapResultCode::ConfidentialityRequired,
                "a password may not cross an unencrypted connection: use StartTLS or LDAPS \
                 (or, on the loopback interface only, set ldap_plaintext_loopback = \"on\")",
            );
        }
        let bases = match self
            .state
            .store
            .run(|c| ldap_accounts::custom_bases(c))
            .await
        {
            Ok(b) => b,
            Err(e) => return unavailable("an LDAP bind", &e),
        };
        let located = bases
            .iter()
            .find_map(|(p, b)| directory::locate_under(dn, p, b))
            .or_else(|| {
                // The default tree of a provider that chose its own base is not its tree.
                directory::locate(dn).filter(|n| match n {
                    Node::Account(p, _) | Node::User(p, _) => {
                        !bases.iter().any(|(q, _)| q.eq_ignore_ascii_case(p))
                    }
                    _ => true,
                })
            });
        let base_for = |provider: &str| -> (String, bool) {
            match bases.iter().find(|(q, _)| q.eq_ignore_ascii_case(provider)) {
                Some((_, b)) => (b.clone(), true),
                None => (directory::base_dn(provider), false),
            }
        };
        let (provider, name) = match located {
            Some(Node::Account(provider, name)) => (provider, name),
            Some(Node::User(provider, name)) => {
                let base = base_for(&provider);
                return self.bind_user(dn, &provider, &name, &password, base).await;
            }
            _ => {
                return done(
                    LdapResultCode::InvalidCredentials,
                    "bind as a service account (cn=NAME,ou=services,dc=PROVIDER,dc=scimd) or \
                     as a user (uid=USERNAME,ou=people,dc=PROVIDER,dc=scimd)",
                );
            }
        };
        let (p, n) = (provider.clone(), name.clone());
        let found = self
            .state
            .store
            .run(move |c| ldap_accounts::for_bind(c, &p, &n))
            .await;
        let now = chrono::Utc::now().timestamp();
        let budget = format!(
            "ldap-bind cn={},{}",
            name.to_lowercase(),
            provider.to_lowercase()
        );
        let (account, phc) = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                let who = Refusal::unknown(&provider, dn, "no such account");
                return self.refuse(who, &budget, &password).await;
            }
            Err(e) => return unavailable("an LDAP bind", &e),
        };
        if account.state(now) != crate::auth::TokenState::Active {
            let who = Refusal::known(&account.provider, account.provider_id, &account.name, dn);
            return self
                .refuse(who.because("the account has expired"), &budget, &password)
                .await;
        }
        let verdict = self
            .state
            .verifier
            .verify_as(
                &format!("ldap-{}", account.id),
                &budget,
                &Secret::from_text(&password),
                &phc,
                Some(self.peer.ip()),
                true,
            )
            .await;
        let who = Refusal::known(&account.provider, account.provider_id, &account.name, dn);
        match verdict {
            Verdict::Valid => {}
            Verdict::Throttled => return self.throttled(who),
            Verdict::Invalid => return self.refused(who.because("wrong password")),
        }
        self.state
            .counters
            .ldap(account.provider_id, &account.name, LdapEvent::Bind);
        if account.last_used.is_none_or(|t| now - t >= 60) {
            let id = account.id.clone();
            let _ = self
                .state
                .store
                .write(move |c| ldap_accounts::record_use(c, &id, now))
                .await
                .map_err(|e: store::Error| tracing::warn!(error = %e, "recording an LDAP bind"));
        }
        let (base, custom) = base_for(&account.provider);
        self.bound = Some(Bound {
            provider: account.provider,
            provider_id: account.provider_id,
            account: account.name,
            user: false,
            check: Check::Account(account.id),
            base,
            custom,
        });
        done(LdapResultCode::Success, "")
    }

    /// A user's own bind, with the password its identity provider sent (Okta can push
    /// passwords; Entra ID never sends them, so its users cannot bind). A user that does not
    /// exist, is deactivated or has no password is refused as a wrong password is: the same
    /// answer, after the same argon2 work, within the same budget of guesses.
    async fn bind_user(
        &mut self,
        dn: &str,
        provider: &str,
        name: &str,
        password: &str,
        (base, custom): (String, bool),
    ) -> LdapResult {
        let (p, n) = (provider.to_string(), name.to_string());
        let found = self
            .state
            .store
            .run(move |c| ldap_accounts::user_for_bind(c, &p, &n))
            .await;
        let budget = format!(
            "ldap-bind uid={},{}",
            name.to_lowercase(),
            provider.to_lowercase()
        );
        let user = match found {
            Ok(Some(u)) => u,
            Ok(None) => {
                let who = Refusal::unknown(provider, dn, "no such user");
                return self.refuse(who, &budget, password).await;
            }
            Err(e) => return unavailable("an LDAP bind", &e),
        };
        let key = format!("uid={}", user.user_name);
        let who = Refusal::known(&user.provider, user.provider_id, &key, dn);
        if !user.active {
            return self
                .refuse(who.because("the user is deactivated"), &budget, password)
                .await;
        }
        let Some(phc) = user.password_hash else {
            let why = "no password was provisioned (Entra ID never sends passwords)";
            return self.refuse(who.because(why), &budget, password).await;
        };
        let verdict = self
            .state
            .verifier
            .verify_as(
                &format!("user-{}", user.seq),
                &budget,
                &Secret::from_text(password),
                &phc,
                Some(self.peer.ip()),
                true,
            )
            .await;
        match verdict {
            Verdict::Valid => {
                self.state
                    .counters
                    .ldap(user.provider_id, &key, LdapEvent::Bind);
                self.bound = Some(Bound {
                    provider: user.provider,
                    provider_id: user.provider_id,
                    account: user.user_name,
                    user: true,
                    check: Check::User {
                        seq: user.seq,
                        password_hash: phc,
                    },
                    base,
                    custom,
                });
                done(LdapResultCode::Success, "")
            }
            Verdict::Throttled => self.throttled(who),
            Verdict::Invalid => self.refused(who.because("wrong password")),
        }
    }

    /// Refuses a bind where there is no password to check (no such name, no password, the
    /// account expired or the user deactivated) exactly as a wrong password is refused: the
    /// password is checked against a throwaway hash, spending the same budget of guesses, so
    /// neither the answer, nor the throttling, nor the time tells these cases apart.
    async fn refuse(&self, who: Refusal<'_>, budget: &str, password: &str) -> LdapResult {
        let verdict = match self.state.verifier.dummy_hash().await {
            Some(phc) => {
                self.state
                    .verifier
                    .verify_as(
                        budget,
                        budget,
                        &Secret::from_text(password),
                        &phc,
                        Some(self.peer.ip()),
                        true,
                    )
                    .await
            }
            None => Verdict::Invalid,
        };
        match verdict {
            Verdict::Throttled => self.throttled(who),
            _ => self.refused(who),
        }
    }

    /// The answer to every refused bind, counted (see `refusals`).
    fn refused(&self, who: Refusal<'_>) -> LdapResult {
        if let Some(id) = who.provider_id {
            self.state
                .counters
                .ldap(id, who.name, LdapEvent::FailedBind);
        }
        self.state.counters.bind_refusal(
            who.provider,
            who.name,
            who.dn,
            self.peer.ip(),
            who.reason,
        );
        done(LdapResultCode::InvalidCredentials, "invalid credentials")
    }

    /// The answer once a name or an address has had too many new passwords checked lately,
    /// whether the name exists or not.
    fn throttled(&self, who: Refusal<'_>) -> LdapResult {
        self.state.counters.bind_refusal(
            who.provider,
            who.name,
            who.dn,
            self.peer.ip(),
            "too many binds with new passwords (throttled)",
        );
        done(
            LdapResultCode::Busy,
            "too many failed binds for this name or from this address: try again shortly",
        )
    }

    async fn search(
        &mut self,
        id: i32,
        req: LdapSearchRequest,
        controls: Vec<LdapControl>,
        out: &mut Writer<'_>,
    ) -> std::io::Result<()> {
        let finish = |res: LdapResult, ctrl: Vec<LdapControl>| {
            vec![LdapMsg::new_with_ctrls(
                id,
                LdapOp::SearchResultDone(res),
                ctrl,
            )]
        };
        let config = &self.state.config;
        let (terms, depth) = directory::filter_size(&req.filter);
        let (max_terms, max_depth) = (
            config.ldap_max_filter_terms as usize,
            config.ldap_max_filter_depth as usize,
        );
        if terms > max_terms || depth > max_depth {
            let what = match terms > max_terms {
                true => format!(
                    "the filter has {terms} terms; this server takes at most {max_terms} \
                     (ldap_max_filter_terms)"
                ),
                false => format!(
                    "the filter nests {depth} levels deep; this server takes at most \
                     {max_depth} (ldap_max_filter_depth)"
                ),
            };
            return out
                .send(finish(
                    done(LdapResultCode::AdminLimitExceeded, what),
                    Vec::new(),
                ))
                .await;
        }
        let base = req.base.trim().to_string();
        // The root DSE and the schema subentry answer anyone.
        if base.is_empty() && req.scope == LdapSearchScope::Base {
            let entry = self.root_dse();
            let mut msgs = Vec::new();
            if matches_static(&req.filter, &entry.1) {
                msgs.push(entry_msg(id, entry, &req.attrs, req.typesonly));
            }
            msgs.extend(finish(done(LdapResultCode::Success, ""), Vec::new()));
            return out.send(msgs).await;
        }
        if base.eq_ignore_ascii_case("cn=schema") || base.eq_ignore_ascii_case("cn=subschema") {
            let entry = (
                "cn=schema".to_string(),
                vec![
                    ("objectClass".into(), vec!["top".into(), "subschema".into()]),
                    ("cn".into(), vec!["schema".into()]),
                    // Operational: clients ask for them by name or with `+`.
                    ("+attributeTypes".into(), directory::attribute_types()),
                    (
                        "+objectClasses".into(),
                        directory::OBJECT_CLASSES
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                    ),
                ],
            );
            let mut msgs = Vec::new();
            if req.scope == LdapSearchScope::Base {
                msgs.push(entry_msg(id, entry, &req.attrs, req.typesonly));
            }
            msgs.extend(finish(done(LdapResultCode::Success, ""), Vec::new()));
            return out.send(msgs).await;
        }
        let Some(bound) = self.bound.as_ref() else {
            return out
                .send(finish(
                    done(
                        LdapResultCode::InsufficentAccessRights,
                        "bind with a service account first (scimd ldap account add)",
                    ),
                    Vec::new(),
                ))
                .await;
        };
        self.state
            .counters
            .ldap(bound.provider_id, &bound.key(), LdapEvent::Search);
        let node = bound.locate(&base);
        let tree_provider = match &node {
            Some(
                Node::Root(p)
                | Node::People(p)
                | Node::Groups(p)
                | Node::Services(p)
                | Node::User(p, _)
                | Node::Group(p, _)
                | Node::Account(p, _),
            ) => Some(p.clone()),
            Some(Node::Top) => Some(bound.provider.clone()),
            None => None,
        };
        if !tree_provider.is_some_and(|p| p.eq_ignore_ascii_case(&bound.provider)) {
            return out
                .send(finish(
                    done(
                        LdapResultCode::NoSuchObject,
                        format!("{base:?} is not in this account's tree ({})", bound.base),
                    ),
                    Vec::new(),
                ))
                .await;
        }
        let tree = bound.base.clone();
        let scope = req.scope.clone();
        let paged = controls.iter().find_map(|c| match c {
            LdapControl::SimplePagedResults { size, cookie } => Some((*size, cookie.clone())),
            _ => None,
        });
        // A paging cookie goes on only the search it was handed out for, to the one who asked.
        let cookie_context = paged.as_ref().map(|_| {
            format!(
                "{}\0{}\0{base}\0{:?}\0{:?}",
                bound.provider_id,
                bound.key(),
                req.scope,
                req.filter
            )
        });
        // Which static entries and which kinds of resource the scope covers.
        let (statics, kinds, only): (Vec<Entry>, Vec<ResourceKind>, Option<String>) =
            match (node, scope) {
                (Some(Node::Top), LdapSearchScope::Base) => (vec![top_entry()], vec![], None),
                (Some(Node::Top), LdapSearchScope::OneLevel) => {
                    (vec![root_entry(&bound.provider, &tree)], vec![], None)
                }
                (Some(Node::Top | Node::Root(_)), LdapSearchScope::Subtree)
                | (Some(Node::Top | Node::Root(_)), LdapSearchScope::Children) => (
                    vec![
                        root_entry(&bound.provider, &tree),
                        ou_entry(directory::PEOPLE, &tree),
                        ou_entry(directory::GROUPS, &tree),
                    ],
                    vec![ResourceKind::User, ResourceKind::Group],
                    None,
                ),
                (Some(Node::Root(_)), LdapSearchScope::Base) => {
                    (vec![root_entry(&bound.provider, &tree)], vec![], None)
                }
                (Some(Node::Root(_)), LdapSearchScope::OneLevel) => (
                    vec![
                        ou_entry(directory::PEOPLE, &tree),
                        ou_entry(directory::GROUPS, &tree),
                    ],
                    vec![],
                    None,
                ),
                (Some(Node::People(_)), LdapSearchScope::Base) => {
                    (vec![ou_entry(directory::PEOPLE, &tree)], vec![], None)
                }
                (Some(Node::People(_)), s) => (
                    if s == LdapSearchScope::Subtree {
                        vec![ou_entry(directory::PEOPLE, &tree)]
                    } else {
                        vec![]
                    },
                    vec![ResourceKind::User],
                    None,
                ),
                (Some(Node::Groups(_)), LdapSearchScope::Base) => {
                    (vec![ou_entry(directory::GROUPS, &tree)], vec![], None)
                }
                (Some(Node::Groups(_)), s) => (
                    if s == LdapSearchScope::Subtree {
                        vec![ou_entry(directory::GROUPS, &tree)]
                    } else {
                        vec![]
                    },
                    vec![ResourceKind::Group],
                    None,
                ),
                (Some(Node::Services(_)), LdapSearchScope::Base | LdapSearchScope::Subtree) => {
                    (vec![ou_entry(directory::SERVICES, &tree)], vec![], None)
                }
                (Some(Node::User(_, name)), LdapSearchScope::Base | LdapSearchScope::Subtree) => {
                    (vec![], vec![ResourceKind::User], Some(name))
                }
                (Some(Node::Group(_, name)), LdapSearchScope::Base | LdapSearchScope::Subtree) => {
                    (vec![], vec![ResourceKind::Group], Some(name))
                }
                _ => (vec![], vec![], None),
            };
        // Paging: the cookie says which kind and after which key to go on.
        let (mut phase, mut after) = match &paged {
            Some((_, cookie)) if !cookie.is_empty() => {
                match parse_cookie(cookie, cookie_context.as_deref().unwrap_or_default()) {
                    Some(c) => c,
                    None => {
                        return out
                            .send(finish(
                                done(
                                    LdapResultCode::UnwillingToPerform,
                                    "this paged results cookie was not handed out by this server \
                                 for this search",
                                ),
                                Vec::new(),
                            ))
                            .await;
                    }
                }
            }
            _ => (0, 0),
        };
        let page_size = paged.as_ref().map(|(s, _)| *s).filter(|s| *s > 0);
        let size_limit = i64::from(req.sizelimit.max(0));
        let limit = match (page_size, size_limit) {
            (Some(p), 0) => p,
            (Some(p), s) => p.min(s),
            (None, s) => s,
        };
        let mut sent: i64 = 0;
        let mut msgs = Vec::new();
        // The client's time limit, checked between batches of entries.
        let time_limit = u64::try_from(req.timelimit).unwrap_or(0);
        let deadline = (time_limit > 0)
            .then(|| std::time::Instant::now() + std::time::Duration::from_secs(time_limit));
        // Static entries come first, once (not again on later pages), but only once the
        // binding has been checked: with the first batch, or here when no kind is searched.
        if phase == 0 && after == 0 {
            for e in statics {
                if matches_static(&req.filter, &e.1) {
                    msgs.push(entry_msg(id, e, &req.attrs, req.typesonly));
                    sent += 1;
                }
            }
        }
        if kinds.is_empty()
            && let Err(f) = self
                .batch(&[], &req.filter, None, (0, 0), 0, &tree, None)
                .await
        {
            return out.send(finish(self.failed(f), Vec::new())).await;
        }
        let mut next_cookie: Option<(usize, i64)> = None;
        let mut exceeded = false;
        while phase < kinds.len() {
            let room = if limit > 0 {
                limit - sent
            } else {
                batch_size()
            };
            if room <= 0 {
                // The page or the size limit is full: one entry more tells whether anything
                // is left, here or in the kinds after this one.
                let left = match self
                    .batch(
                        &kinds,
                        &req.filter,
                        only.clone(),
                        (phase, after),
                        1,
                        &tree,
                        None,
                    )
                    .await
                {
                    Ok(found) => found.count > 0,
                    Err(f @ Failure::Gone(_)) => {
                        return out.send(finish(self.failed(f), Vec::new())).await;
                    }
                    Err(Failure::Store(_)) => true,
                };
                if left {
                    match page_size {
                        Some(_) => next_cookie = Some((phase, after)),
                        None => exceeded = true,
                    }
                }
                break;
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                out.send(std::mem::take(&mut msgs)).await?;
                return out
                    .send(finish(
                        done(
                            LdapResultCode::TimeLimitExceeded,
                            format!("the search took longer than its time limit of {time_limit} s"),
                        ),
                        Vec::new(),
                    ))
                    .await;
            }
            #[cfg(debug_assertions)]
            test_delay().await;
            let batch = self
                .batch(
                    &kinds,
                    &req.filter,
                    only.clone(),
                    (phase, after),
                    room.min(batch_size()),
                    &tree,
                    Some((id, req.attrs.clone(), req.typesonly)),
                )
                .await;
            let Batch { encoded, count, at } = match batch {
                Ok(b) => b,
                Err(f) => return out.send(finish(self.failed(f), Vec::new())).await,
            };
            sent += count as i64;
            out.send(std::mem::take(&mut msgs)).await?;
            out.send_encoded(encoded).await?;
            (phase, after) = at;
        }
        out.send(std::mem::take(&mut msgs)).await?;
        if exceeded {
            return out
                .send(finish(
                    done(
                        LdapResultCode::SizeLimitExceeded,
                        format!("more than {size_limit} entries match"),
                    ),
                    Vec::new(),
                ))
                .await;
        }
        let ctrl = match page_size {
            Some(_) => vec![LdapControl::SimplePagedResults {
                size: 0,
                cookie: next_cookie
                    .map(|at| cookie_of(at, cookie_context.as_deref().unwrap_or_default()))
                    .unwrap_or_default(),
            }],
            None => Vec::new(),
        };
        out.send(finish(done(LdapResultCode::Success, ""), ctrl))
            .await
    }

    /// Up to `want` entries that match the filter, from the position `at` on: the index of
    /// a kind in `kinds` and the key after which its entries go on. All in one job on a reader
    /// thread and one read transaction, across kinds (a search of the whole tree is one round
    /// trip). Gives the entries, encoded when `render` says how, and where to go on from.
    #[allow(clippy::too_many_arguments)]
    async fn batch(
        &self,
        kinds: &[ResourceKind],
        filter: &LdapFilter,
        only: Option<String>,
        at: (usize, i64),
        want: i64,
        tree: &str,
        render: Option<(i32, Vec<String>, bool)>,
    ) -> Result<Batch, Failure> {
        let Some(bound) = self.bound.as_ref() else {
            return Ok(Batch::default());
        };
        let (pid, filter, tree) = (bound.provider_id, filter.clone(), tree.to_string());
        let (provider, custom) = (bound.provider.clone(), bound.custom);
        let scim = crate::app::scim_base(&self.state.public_base, &bound.provider);
        let state = self.state.clone();
        let kinds = kinds.to_vec();
        let check = bound.check.clone();
        self.state
            .store
            .run(move |c| {
                // One read transaction: every statement below sees the same snapshot, and the
                // snapshot is taken once.
                let tx = store::Snapshot::begin(c)?;
                let model_version = match check.standing(&tx)? {
                    ldap_accounts::Standing::Valid { model_version } => model_version,
                    ldap_accounts::Standing::Gone(why) => return Err(Failure::Gone(why)),
                };
                let model = state.model_at(&tx, pid, model_version)?;
                let mappings: Vec<(String, AttrPath)> = ldap_accounts::mappings(&tx, pid)?
                    .into_iter()
                    .filter_map(|(n, p)| directory::parse_path(&p).ok().map(|p| (n, p)))
                    .collect();
                let resolver = Resolver {
                    c: &tx,
                    pid,
                    mappings: &mappings,
                    tree: custom.then_some((provider.as_str(), tree.as_str())),
                    failed: Default::default(),
                };
                let mut out = Batch {
                    at,
                    ..Batch::default()
                };
                let mut left = want;
                while left > 0 && out.at.0 < kinds.len() {
                    let (phase, after) = out.at;
                    let kind = kinds[phase];
                    out.at = (phase + 1, 0);
                    let Some(condition) = entry_condition(
                        model.get(kind),
                        &scim,
                        kind,
                        &filter,
                        only.as_deref(),
                        &resolver,
                    )?
                    else {
                        continue;
                    };
                    let (rows, more) =
                        search::after(&tx, pid, kind, condition.as_ref(), after, left)?;
                    let found = entries(&tx, model.get(kind), &scim, pid, &tree, &mappings, &rows)?;
                    if more && let Some(r) = rows.iter().last() {
                        // Deactivated users among the rows make fewer entries than asked for:
                        // the kind goes on after its last row, in this job.
                        out.at = (phase, r.seq);
                    }
                    out.count += found.len();
                    left -= found.len() as i64;
                    let Some((id, attrs, types_only)) = &render else {
                        continue;
                    };
                    // Encoded here, on the reader thread, not on the connection's.
                    for (dn, entry) in &found {
                        let selected = directory::select(entry, attrs);
                        ber::entry(&mut out.encoded, *id, dn, &selected, *types_only);
                    }
                }
                Ok(out)
            })
            .await
    }

    /// The result of a search whose entries could not be read. A binding whose account or
    /// user is no longer valid (checked before each search) ends, and the answer says why:
    /// the connection reads nothing more until it binds again.
    fn failed(&mut self, failure: Failure) -> LdapResult {
        match failure {
            Failure::Gone(why) => {
                if let Some(b) = self.bound.take() {
                    tracing::info!(peer = %self.peer, dn = %b.dn(), why, "LDAP binding ended");
                }
                done(
                    LdapResultCode::InsufficentAccessRights,
                    format!("{why}: this connection's binding has ended; bind again"),
                )
            }
            Failure::Store(e) => unavailable("an LDAP search", &e),
        }
    }

    fn root_dse(&self) -> Entry {
        let mut contexts = Vec::new();
        // The version only to a bound client: an anonymous one learns nothing to look up.
        let mut version = Vec::new();
        if let Some(b) = &self.bound {
            contexts.push(b.base.clone());
            version.push(env!("CARGO_PKG_VERSION").to_string());
        }
        (
            String::new(),
            vec![
                ("objectClass".into(), vec!["top".into()]),
                ("vendorName".into(), vec!["scimd".into()]),
                ("vendorVersion".into(), version),
                ("supportedLDAPVersion".into(), vec!["3".into()]),
                ("supportedControl".into(), vec![OID_PAGED.into()]),
                (
                    "supportedExtension".into(),
                    if self.can_start_tls && !self.tls {
                        vec![OID_WHOAMI.into(), OID_STARTTLS.into()]
                    } else {
                        vec![OID_WHOAMI.into()]
                    },
                ),
                ("supportedSASLMechanisms".into(), vec![]),
                ("subschemaSubentry".into(), vec!["cn=schema".into()]),
                ("namingContexts".into(), contexts),
            ],
        )
    }
}

/// Entries read per round trip: `BATCH`, or in debug builds `TEST_LDAP_BATCH_SIZE` (tests of
/// what happens between batches).
fn batch_size() -> i64 {
    #[cfg(debug_assertions)]
    {
        static SIZE: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
        let size = SIZE.get_or_init(|| {
            std::env::var("TEST_LDAP_BATCH_SIZE")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
        });
        if let Some(n) = size {
            return *n;
        }
    }
    BATCH
}

/// Debug builds only: a pause before each batch of a search (`TEST_LDAP_BATCH_DELAY_MS`), so
/// tests can make a search outlast its time limit.
#[cfg(debug_assertions)]
async fn test_delay() {
    static DELAY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ms = *DELAY.get_or_init(|| {
        std::env::var("TEST_LDAP_BATCH_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Operational attributes carry a marker in their name until `entry_msg` sorts them out.
fn op_marker(attrs: Vec<(String, Vec<String>)>) -> Vec<(String, Vec<String>)> {
    attrs
        .into_iter()
        .map(|(n, v)| (format!("+{n}"), v))
        .collect()
}

/// An entry: its DN and attributes.
type Entry = (String, Vec<(String, Vec<String>)>);

/// Entries read for a search: encoded, how many, the key of the last, whether more follow.
#[derive(Default)]
struct Batch {
    encoded: BytesMut,
    count: usize,
    /// Where the search goes on: a kind's index and the key after which its entries follow.
    at: (usize, i64),
}

/// The SQL condition for the entries of `kind` that match an LDAP filter (inside the named
/// entry only, for a base-scope search of a user or group): `None` inside when every entry
/// matches, `None` outside when none can.
fn entry_condition(
    rt: &ResourceType,
    scim: &str,
    kind: ResourceKind,
    filter: &LdapFilter,
    only: Option<&str>,
    resolver: &Resolver<'_>,
) -> store::Result<Option<Option<store::search::Condition>>> {
    let mut f = directory::simplify(directory::to_scim(filter, kind, resolver));
    if let Some(e) = resolver.take_error() {
        return Err(e);
    }
    if !directory::may_match(&f) {
        return Ok(None);
    }
    let name_attr = rt.name_attribute();
    let mut extra = Vec::new();
    if let Some(name) = only {
        extra.push(Filter::Compare(
            AttrPath {
                uri: None,
                attr: name_attr.into(),
                sub: None,
            },
            Op::Eq,
            CompValue::Str(name.to_string()),
        ));
    }
    for e in extra {
        f = if directory::is_always(&f) {
            e
        } else {
            Filter::And(Box::new(e), Box::new(f))
        };
    }
    if directory::is_always(&f) {
        return Ok(Some(None));
    }
    Ok(Some(Some(
        crate::store::query::condition(rt, scim, &f).map_err(store::Error::Rejected)?,
    )))
}

/// The directory entries of these rows of one kind: deactivated users are left out (they are
/// not in the directory).
fn entries(
    tx: &rusqlite::Connection,
    rt: &ResourceType,
    scim: &str,
    pid: i64,
    tree: &str,
    mappings: &[(String, AttrPath)],
    rows: &store::resources::Rows,
) -> store::Result<Vec<Entry>> {
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    // A user's groups, nested ones included, for memberOf (a group's members are read below).
    let groups = match rt.kind() {
        ResourceKind::User => Some(store::members::group_seqs_of_many(tx, &seqs)?),
        ResourceKind::Group => None,
    };
    let docs = rows
        .iter()
        .map(|row| serde_json::from_str::<Value>(row.doc))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| store::Error::Internal(format!("a stored document for LDAP: {e}")))?;
    // The managers' names and the groups' member names: one statement for the whole batch.
    let (managers, members) = match rt.kind() {
        ResourceKind::User => {
            let ids: Vec<&str> = docs.iter().filter_map(directory::manager_id).collect();
            let names = store::resources::names_by_id(tx, pid, ResourceKind::User, &ids)?;
            (names, Default::default())
        }
        ResourceKind::Group => (
            Default::default(),
            store::members::member_names_many(tx, &seqs)?,
        ),
    };
    let mut entries = Vec::with_capacity(seqs.len());
    for ((i, row), doc) in rows.iter().enumerate().zip(docs) {
        let operational = op_marker(directory::operational(row.id, row.created, row.modified));
        let entry = match rt.kind() {
            ResourceKind::User => {
                if doc.as_object().is_some_and(|d| !rt.is_active(d)) {
                    continue;
                }
                let group_names: Vec<&str> = match &groups {
                    Some((names, lists)) => lists
                        .of(i)
                        .iter()
                        .filter_map(|&(g, _)| names[g].2.as_deref())
                        .collect(),
                    None => Vec::new(),
                };
                let manager = directory::manager_id(&doc)
                    .and_then(|m| managers.get(m))
                    .map(|n| directory::user_dn(tree, n));
                let dn = directory::user_dn(
                    tree,
                    doc.get(rt.name_attribute())
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
                let mut attrs = directory::user_attributes(&doc, tree, manager, &group_names);
                if !mappings.is_empty() {
                    // The document is not needed after this: moved, not copied.
                    let groups = groups.as_ref().map(|(n, l)| (n, l.of(i)));
                    let served = as_served(doc, rt, scim, &row, groups);
                    directory::apply_mappings(&mut attrs, &served, mappings);
                }
                attrs.extend(operational);
                (dn, attrs)
            }
            ResourceKind::Group => {
                let name = doc
                    .get(rt.name_attribute())
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let members: Vec<String> = members
                    .get(&row.seq)
                    .into_iter()
                    .flatten()
                    .map(|(k, n)| match k {
                        ResourceKind::User => directory::user_dn(tree, n),
                        ResourceKind::Group => directory::group_dn(tree, n),
                    })
                    .collect();
                let mut attrs = directory::group_attributes(name, members);
                attrs.extend(operational);
                (directory::group_dn(tree, name), attrs)
            }
        };
        entries.push(entry);
    }
    Ok(entries)
}

/// A stored document with what a SCIM GET adds to it (`id`, `groups`, `meta`), which a
/// provider's attribute mappings may name.
fn as_served(
    doc: Value,
    rt: &ResourceType,
    scim: &str,
    row: &store::resources::Stored<'_>,
    groups: Option<(&store::members::GroupNames, &[(usize, bool)])>,
) -> Value {
    let Value::Object(mut doc) = doc else {
        return doc;
    };
    doc.insert("id".into(), row.id.into());
    if let Some((names, of)) = groups
        && !of.is_empty()
    {
        let groups = of
            .iter()
            .map(|&(g, direct)| {
                let (_, id, name) = &names[g];
                serde_json::json!({
                    "value": id,
                    "display": name,
                    "type": if direct { "direct" } else { "indirect" },
                })
            })
            .collect();
        doc.insert(rt.linked_name().into(), Value::Array(groups));
    }
    doc.insert(
        "meta".into(),
        serde_json::json!({
            "resourceType": rt.name(),
            "created": row.created,
            "lastModified": row.modified,
            "location": format!("{scim}/{}/{}", rt.kind().endpoint(), row.id),
            "version": crate::render::etag(row.version),
        }),
    );
    Value::Object(doc)
}

fn top_entry() -> Entry {
    (
        "dc=scimd".into(),
        vec![
            (
                "objectClass".into(),
                vec!["top".into(), "dcObject".into(), "organization".into()],
            ),
            ("dc".into(), vec!["scimd".into()]),
            ("o".into(), vec!["scimd".into()]),
        ],
    )
}

fn root_entry(provider: &str, tree: &str) -> Entry {
    (tree.to_string(), directory::root_attributes(provider, tree))
}

fn ou_entry(ou: &str, tree: &str) -> Entry {
    (
        format!("ou={ou},{tree}"),
        vec![
            (
                "objectClass".into(),
                vec!["top".into(), "organizationalUnit".into()],
            ),
            ("ou".into(), vec![ou.to_string()]),
        ],
    )
}

fn entry_msg(id: i32, (dn, attrs): Entry, wanted: &[String], types_only: bool) -> LdapMsg {
    let attributes = directory::select(&attrs, wanted)
        .into_iter()
        .map(|(atype, vals)| LdapPartialAttribute {
            atype: atype.to_string(),
            vals: if types_only {
                Vec::new()
            } else {
                vals.iter().map(|v| v.clone().into_bytes()).collect()
            },
        })
        .collect();
    LdapMsg::new(
        id,
        LdapOp::SearchResultEntry(LdapSearchResultEntry { dn, attributes }),
    )
}

/// Whether a fixed entry (root DSE, tree nodes) matches a filter: equality and substrings
/// compare regardless of case.
fn matches_static(f: &LdapFilter, attrs: &[(String, Vec<String>)]) -> bool {
    let values = |a: &str| -> Vec<String> {
        attrs
            .iter()
            .filter(|(n, _)| n.trim_start_matches('+').eq_ignore_ascii_case(a))
            .flat_map(|(_, v)| v.iter().map(|s| s.to_lowercase()))
            .collect()
    };
    match f {
        LdapFilter::And(parts) => parts.iter().all(|p| matches_static(p, attrs)),
        LdapFilter::Or(parts) => parts.iter().any(|p| matches_static(p, attrs)),
        LdapFilter::Not(p) => !matches_static(p, attrs),
        LdapFilter::Present(a) => a.eq_ignore_ascii_case("objectClass") || !values(a).is_empty(),
        LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v) => {
            values(a).contains(&v.to_lowercase())
        }
        LdapFilter::Substring(a, s) => values(a).iter().any(|v| {
            s.initial
                .as_ref()
                .is_none_or(|i| v.starts_with(&i.to_lowercase()))
                && s.final_
                    .as_ref()
                    .is_none_or(|e| v.ends_with(&e.to_lowercase()))
                && s.any.iter().all(|m| v.contains(&m.to_lowercase()))
        }),
        LdapFilter::GreaterOrEqual(a, v) => values(a).iter().any(|x| *x >= v.to_lowercase()),
        LdapFilter::LessOrEqual(a, v) => values(a).iter().any(|x| *x <= v.to_lowercase()),
        LdapFilter::Extensible(_) => false,
    }
}

/// The key paging cookies are sealed with: random, made once per process (a restart ends
/// the searches being paged, as it ends their connections).
fn cookie_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        key
    })
}

/// 16 bytes of a keyed BLAKE2s digest of `parts`, told apart by `label`.
fn sealed(label: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    use blake2::{Blake2s256, Digest};
    let mut h = Blake2s256::new()
        .chain_update(cookie_key())
        .chain_update(label);
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// A paging cookie: where the search goes on, opaque (the position is masked) and
/// authenticated (a tag over the position and `context`, the search and who asked for it).
fn cookie_of((phase, after): (usize, i64), context: &str) -> Vec<u8> {
    let mut plain = [0u8; 16];
    plain[..8].copy_from_slice(&(phase as u64).to_be_bytes());
    plain[8..].copy_from_slice(&after.to_be_bytes());
    let tag = sealed(b"tag", &[context.as_bytes(), &plain]);
    let mask = sealed(b"mask", &[&tag]);
    let mut cookie = tag.to_vec();
    cookie.extend(plain.iter().zip(mask).map(|(p, m)| p ^ m));
    cookie
}

/// The position a cookie of `cookie_of` holds, if it was made by this process for `context`.
fn parse_cookie(c: &[u8], context: &str) -> Option<(usize, i64)> {
    if c.len() != 32 {
        return None;
    }
    let tag: [u8; 16] = c[..16].try_into().ok()?;
    let mask = sealed(b"mask", &[&tag]);
    let mut plain = [0u8; 16];
    for (i, (m, k)) in c[16..].iter().zip(mask).enumerate() {
        plain[i] = m ^ k;
    }
    let want = sealed(b"tag", &[context.as_bytes(), &plain]);
    let same = want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return None;
    }
    let phase = u64::from_be_bytes(plain[..8].try_into().ok()?);
    let after = i64::from_be_bytes(plain[8..].try_into().ok()?);
    Some((usize::try_from(phase).ok()?, after))
}

/// Finds resources by unique name for DN-valued filters.
struct Resolver<'c> {
    c: &'c rusqlite::Connection,
    pid: i64,
    mappings: &'c [(String, AttrPath)],
    /// The provider and the base it chose, if it did.
    tree: Option<(&'c str, &'c str)>,
    /// The first lookup that failed: the translation is then not used (a failing read must not
    /// pass for "no such entry").
    failed: std::cell::RefCell<Option<rusqlite::Error>>,
}

impl Resolver<'_> {
    /// The error of a lookup made while translating, if one failed.
    fn take_error(&self) -> Option<store::Error> {
        self.failed.borrow_mut().take().map(store::Error::from)
    }
}

impl Resolve for Resolver<'_> {
    fn id_of(&self, kind: ResourceKind, name: &str) -> Option<String> {
        match store::resources::id_by_name(self.c, self.pid, kind, name) {
            Ok(id) => id,
            Err(e) => {
                self.failed.borrow_mut().get_or_insert(e);
                None
            }
        }
    }

    fn node(&self, dn: &str) -> Option<Node> {
        match self.tree {
            Some((provider, base)) => directory::locate_under(dn, provider, base),
            None => directory::locate(dn),
        }
    }

    fn mapped(&self, ldap: &str) -> Option<AttrPath> {
        self.mappings
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(ldap))
            .map(|(_, p)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_that_fails_is_an_error_not_no_match() {
        // No tables at all: the lookup of the member's id fails.
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let resolver = Resolver {
            c: &c,
            pid: 1,
            mappings: &[],
            tree: None,
            failed: Default::default(),
        };
        let filter =
            LdapFilter::Equality("member".into(), "uid=alice,ou=people,dc=p,dc=scimd".into());
        let rt = crate::scim::schema::Model::builtin().get(ResourceKind::Group);
        let got = entry_condition(
            rt,
            "http://h/scim/v2/p",
            ResourceKind::Group,
            &filter,
            None,
            &resolver,
        );
        assert!(got.is_err());
        // With the table there and no such user, the filter simply matches nothing.
        let c = crate::store::test_conn();
        let resolver = Resolver { c: &c, ..resolver };
        let got = entry_condition(
            rt,
            "http://h/scim/v2/p",
            ResourceKind::Group,
            &filter,
            None,
            &resolver,
        );
        assert!(matches!(got, Ok(None)), "{:?}", got.err());
    }

    #[test]
    fn cookies_round_trip_and_foreign_ones_are_refused() {
        let cookie = cookie_of((1, 42), "search a");
        assert_eq!(parse_cookie(&cookie, "search a"), Some((1, 42)));
        // Opaque: the position is not in it as text or as bytes.
        assert!(!cookie.ends_with(&42i64.to_be_bytes()));
        // Another search, or another position written in, is refused.
        assert_eq!(parse_cookie(&cookie, "search b"), None);
        let mut forged = cookie.clone();
        forged[31] ^= 1;
        assert_eq!(parse_cookie(&forged, "search a"), None);
        assert_eq!(parse_cookie(b"scimd:1:42", "search a"), None);
        assert_eq!(parse_cookie(b"other", "search a"), None);
    }

    #[test]
    fn fixed_entries_are_filtered_regardless_of_case() {
        let e = ou_entry(directory::PEOPLE, "dc=p,dc=scimd");
        assert!(matches_static(
            &LdapFilter::Present("objectclass".into()),
            &e.1
        ));
        assert!(matches_static(
            &LdapFilter::Equality("objectClass".into(), "ORGANIZATIONALUNIT".into()),
            &e.1
        ));
        assert!(!matches_static(
            &LdapFilter::Equality("objectClass".into(), "person".into()),
            &e.1
        ));
    }
}

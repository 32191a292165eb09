//! A read-only LDAP directory over the provisioned users and groups (`ldap_listen`), on the
//! server's runtime, reading through the store's reader threads. Applications bind with a
//! service account of one identity provider (`scimd ldap account add`) and search that
//! provider's tree (see `directory`); filters become SCIM filters, compiled to the same
//! indexed SQL as SCIM searches. Every write operation is refused: the identity provider is
//! the only writer.
//!
//! In layers, as lldap and kanidm have theirs: `transport` (a connection's bytes, framing,
//! limits, TLS), `session` (one request message in, answers out, no socket), `bind`, `search`
//! (plan, batches, paging) and `entries` (what an entry shows), over `scim::directory` (the
//! tree's DNs and the one table of attributes) and the store.

mod ber;
mod bind;
mod compare;
mod entries;
pub(crate) mod gate;
mod paging;
mod search;
mod session;
mod transport;

use crate::app::AppState;
use crate::app::counters::LdapEvent;
use crate::app::directory::{Batch, Check, Failure, Position, Reader, Want};
use crate::auth::{Secret, Secrets, Verdict};
use crate::scim::ResourceKind;
use crate::scim::directory::{self, Entry, Node};
use crate::store::{self, ldap_accounts};
use crate::tls::Stream;
use bytes::BytesMut;
use ldap3_proto::LdapCodec;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindResponse, LdapExtendedResponse, LdapFilter, LdapMsg, LdapOp,
    LdapPartialAttribute, LdapResult, LdapResultCode, LdapSearchRequest, LdapSearchResultEntry,
    LdapSearchScope, OID_WHOAMI,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

use self::entries::*;
use self::session::*;
use self::transport::*;

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

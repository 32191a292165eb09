//! The LDAP transport: a connection's bytes, whatever they ask. Reads requests within the size
//! and time limits (`ldap_max_request*`, `ldap_request_timeout`, `ldap_idle_timeout`), frames
//! them (`ber::frame`) before buffering them, upgrades to TLS on StartTLS, writes answers within
//! `send_timeout`, and ends a connection that misbehaves with a notice of disconnection. What a
//! request means is the session's business (`session::Session::handle`).

use super::*;

/// The notice of disconnection (RFC 4511 section 4.4.1): the unsolicited answer a server
/// sends before it ends a connection on its own initiative.
pub(super) fn notice_of_disconnection(code: LdapResultCode, message: String) -> LdapMsg {
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
pub(super) const NOTICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) async fn connection(
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
        critical: Vec::new(),
    };
    // When the request now arriving began to arrive.
    let mut started: Option<tokio::time::Instant> = None;
    // One timer for the connection, moved to each new deadline (not one made per request).
    let deadline = tokio::time::sleep(idle_timeout);
    tokio::pin!(deadline);
    loop {
        let limits = (anonymous_max, bound_max);
        let buffered = Buffered {
            session: &mut session,
            codec: &mut codec,
            input: &mut input,
            send_timeout,
        };
        let answered = match buffered.answer(&mut stream, limits).await? {
            Answered::Waiting { any } => any,
            Answered::Close => return Ok(()),
            Answered::Refuse(why) => {
                let code = LdapResultCode::ProtocolError;
                return disconnect(&mut stream, &mut codec, peer, code, why).await;
            }
            Answered::StartTls => {
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
                true
            }
        };
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

/// What answering the requests buffered so far came to.
enum Answered {
    /// Every whole request was answered (`any`: at least one); more bytes are awaited.
    Waiting { any: bool },
    /// The client unbound.
    Close,
    /// StartTLS was accepted: the handshake comes next.
    StartTls,
    /// The connection ends with a notice of disconnection saying why.
    Refuse(String),
}

/// A connection's requests as they arrive, and the session that answers them.
struct Buffered<'c> {
    session: &'c mut Session,
    codec: &'c mut LdapCodec,
    input: &'c mut BytesMut,
    send_timeout: std::time::Duration,
}

impl Buffered<'_> {
    /// Answers each whole request in the input, in order. A request's length is read from its
    /// first bytes: one larger than `limits` allows (anonymous, bound) is refused before it is
    /// read, so what a connection may make the server hold is bounded.
    async fn answer(
        self,
        stream: &mut Stream,
        limits: (usize, usize),
    ) -> std::io::Result<Answered> {
        let mut any = false;
        loop {
            let (limit, key) = match self.session.bound {
                Some(_) => (limits.1, "ldap_max_request"),
                None => (limits.0, "ldap_max_request_anonymous"),
            };
            match ber::frame(self.input) {
                ber::Frame::Unknown => return Ok(Answered::Waiting { any }),
                ber::Frame::Malformed => {
                    let why = "the client sent something that is not an LDAP message";
                    return Ok(Answered::Refuse(why.into()));
                }
                ber::Frame::Len(n) if n > limit => {
                    return Ok(Answered::Refuse(format!(
                        "a request of {n} bytes is larger than this server takes ({limit} \
                         bytes, {key})"
                    )));
                }
                ber::Frame::Len(n) if self.input.len() < n => {
                    let more = n - self.input.len();
                    self.input.reserve(more);
                    return Ok(Answered::Waiting { any });
                }
                ber::Frame::Len(n) => {
                    self.session.critical = ber::critical_controls(&self.input[..n]);
                }
            }
            let msg = match self.codec.decode(self.input) {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(Answered::Waiting { any }),
                Err(e) => {
                    tracing::debug!(peer = %self.session.peer, error = ?e, "undecodable LDAP message");
                    let why = "the client sent a malformed LDAP message";
                    return Ok(Answered::Refuse(why.into()));
                }
            };
            any = true;
            let mut out = Writer {
                codec: &mut *self.codec,
                stream: &mut *stream,
                pending: BytesMut::new(),
                timeout: self.send_timeout,
            };
            let next = self.session.handle(msg, &mut out).await?;
            out.flush().await?;
            match next {
                Next::Go => {}
                Next::Close => return Ok(Answered::Close),
                Next::StartTls => return Ok(Answered::StartTls),
                Next::NotARequest => {
                    let why = "the client sent an LDAP message that is not a request";
                    return Ok(Answered::Refuse(why.into()));
                }
            }
        }
    }
}

/// Ends a connection with a notice of disconnection, logged at debug level (a client that
/// misbehaves must not fill the log).
pub(super) async fn disconnect(
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

/// Where answers are written: the connection's stream, or any other byte sink (a session's
/// unit tests write into memory).
pub(super) trait Sink: tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncWrite + Unpin + Send> Sink for T {}

/// Encodes answers onto the connection.
pub(super) struct Writer<'a> {
    pub(super) codec: &'a mut LdapCodec,
    pub(super) stream: &'a mut dyn Sink,
    /// Encoded answers not written yet: a search's entries and its result go out together
    /// unless they pass `FLUSH_AT`.
    pub(super) pending: BytesMut,
    /// How long the client may read nothing of an answer (`send_timeout`).
    pub(super) timeout: std::time::Duration,
}

/// Bytes of answers held before they are written.
pub(super) const FLUSH_AT: usize = 64 * 1024;

impl Writer<'_> {
    pub(super) async fn send(&mut self, msgs: Vec<LdapMsg>) -> std::io::Result<()> {
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
    pub(super) async fn send_encoded(&mut self, bytes: BytesMut) -> std::io::Result<()> {
        self.pending.unsplit(bytes);
        if self.pending.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            tokio::time::timeout(self.timeout, self.stream.write_all(&self.pending))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            self.pending.clear();
        }
        Ok(())
    }
}

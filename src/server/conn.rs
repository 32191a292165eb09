//! The byte stream under the HTTP/1 parser: SCIM bodies for the errors the parser answers
//! itself, and a send timeout for clients that stop reading.
//!
//! actix-http answers a request it cannot parse (a malformed request line or header, a missing
//! Host, conflicting Content-Length and Transfer-Encoding, a head over its size limits, a head
//! that does not arrive in time) with a status, `content-length: 0` and `connection: close`,
//! before any handler runs and without a hook. `Conn` recognises that head on its way out and
//! gives it a SCIM error body, so every answer scimd sends is one a SCIM client can read.
//!
//! Clients also send characters in the request target that the URI parser refuses
//! (Microsoft's validator: `?filter=userName+eq+"x"`). `Conn` follows the request stream's
//! framing (request line, header fields, `Content-Length` bodies) and percent-encodes them in
//! request lines only, so such a request is answered like its encoded form.
//!
//! A client that sends requests and never reads the answers would otherwise hold a rendered
//! response (up to a page of resources) for as long as the connection lives. When the socket
//! accepts no byte for `send_timeout`, `Conn` fails the write and the connection is dropped.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How actix-http's encoder starts the headers of a bodiless response; `connection: close`
/// follows on a connection's first response. scimd's own 4xx and 5xx answers always carry a body.
const EMPTY: &[u8] = b"\r\ncontent-length: 0\r\n";
const CLOSE: &[u8] = b"connection: close\r\n";
const STATUS_LINE: &[u8] = b"HTTP/1.1 ";

pub(super) struct Conn<T = super::tls::Stream> {
    io: T,
    inflow: Inflow,
    /// Request bytes rewritten but not yet handed to the parser.
    inbound: Vec<u8>,
    taken: usize,
    /// Where `inflow` found bytes to encode in the last read (kept to reuse its allocation).
    positions: Vec<usize>,
    /// A rewritten head and its body, still to be written (`written` bytes of it are).
    pending: Vec<u8>,
    written: usize,
    send_timeout: Duration,
    /// Armed while the socket refuses bytes; reused across stalls.
    stall: Option<Pin<Box<Sleep>>>,
    stalled: bool,
}

impl<T> Conn<T> {
    pub(super) fn new(io: T, send_timeout: Duration) -> Self {
        Conn {
            io,
            inflow: Inflow::default(),
            inbound: Vec::new(),
            taken: 0,
            positions: Vec::new(),
            pending: Vec::new(),
            written: 0,
            send_timeout,
            stall: None,
            stalled: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> Conn<T> {
    /// Passes a write result through, timing how long the socket has accepted nothing.
    fn watch<R>(&mut self, cx: &mut Context<'_>, res: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if res.is_ready() {
            self.stalled = false;
            return res;
        }
        let deadline = Instant::now() + self.send_timeout;
        let timer = match &mut self.stall {
            Some(timer) => {
                if !self.stalled {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self
                .stall
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.stalled = true;
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for send_timeout",
            )));
        }
        Poll::Pending
    }

    /// Writes what is left of a rewritten response.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let res = Pin::new(&mut self.io).poll_write(cx, &self.pending[self.written..]);
            match ready!(self.watch(cx, res))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.written += n,
            }
        }
        self.pending = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Conn<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.taken < this.inbound.len() {
            let n = buf.remaining().min(this.inbound.len() - this.taken);
            buf.put_slice(&this.inbound[this.taken..this.taken + n]);
            this.taken += n;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.positions.clear();
        this.inflow
            .advance(&buf.filled()[before..], &mut this.positions);
        if this.positions.is_empty() {
            // Almost every read: the bytes stay where the socket put them.
            return Poll::Ready(Ok(()));
        }
        let read = &buf.filled()[before..];
        let mut out = Vec::with_capacity(read.len() + 2 * this.positions.len());
        let mut from = 0;
        for &at in &this.positions {
            out.extend_from_slice(&read[from..at]);
            out.push(b'%');
            out.extend_from_slice(format!("{:02X}", read[at]).as_bytes());
            from = at + 1;
        }
        out.extend_from_slice(&read[from..]);
        buf.set_filled(before);
        let n = buf.remaining().min(out.len());
        buf.put_slice(&out[..n]);
        this.inbound = out;
        this.taken = n;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Conn<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let upto = match find_parser_error(buf) {
            None => buf.len(),
            // What comes before the error response goes out as it is first.
            Some(found) if found.start > 0 => found.start,
            Some(found) => {
                this.pending = scim_error_response(&buf[..found.end], found.status);
                // Taken: the replacement is written now or by the next write, flush or shutdown.
                if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(found.end));
            }
        };
        let res = Pin::new(&mut this.io).poll_write(cx, &buf[..upto]);
        this.watch(cx, res)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let res = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Bytes clients leave unencoded in a request target that the URI parser refuses.
fn needs_encoding(b: u8) -> bool {
    matches!(b, b'"' | b'<' | b'>' | b'`')
}

/// How much of a header line is kept: enough for `Content-Length` and its value.
const LINE_KEPT: usize = 64;

/// Where the request stream is, so that only request lines are rewritten.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Inbound {
    /// Before or in a request line; `started` once it has more than line breaks.
    RequestLine { started: bool },
    /// In the header fields.
    Headers,
    /// This many body bytes still to come.
    Body(u64),
    /// Framing no longer followed (a chunked body, an unreadable length): bytes pass as they
    /// are, and the parser refuses what it refuses.
    Opaque,
}

#[derive(Debug, Clone)]
struct Inflow {
    state: Inbound,
    /// The first bytes of the current header line.
    line: [u8; LINE_KEPT],
    line_len: usize,
    length: Option<u64>,
}

impl Default for Inflow {
    fn default() -> Self {
        Inflow {
            state: Inbound::RequestLine { started: false },
            line: [0; LINE_KEPT],
            line_len: 0,
            length: None,
        }
    }
}

impl Inflow {
    /// Follows `input`; pushes the positions (in `input`) of bytes to percent-encode.
    fn advance(&mut self, input: &[u8], encode: &mut Vec<usize>) {
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            match self.state {
                Inbound::Opaque => return,
                Inbound::Body(left) => {
                    let take = left.min(rest.len() as u64);
                    i += take as usize;
                    self.state = match left - take {
                        0 => Inbound::RequestLine { started: false },
                        left => Inbound::Body(left),
                    };
                }
                Inbound::RequestLine { started } => {
                    let end = memchr::memchr(b'\n', rest);
                    let line = &rest[..end.unwrap_or(rest.len())];
                    encode.extend(
                        line.iter()
                            .enumerate()
                            .filter(|(_, b)| needs_encoding(**b))
                            .map(|(k, _)| i + k),
                    );
                    let started = started || line.iter().any(|b| *b != b'\r');
                    match end {
                        Some(e) => {
                            i += e + 1;
                            self.state = if started {
                                self.line_len = 0;
                                self.length = None;
                                Inbound::Headers
                            } else {
                                Inbound::RequestLine { started: false }
                            };
                        }
                        None => {
                            i = input.len();
                            self.state = Inbound::RequestLine { started };
                        }
                    }
                }
                Inbound::Headers => {
                    let end = memchr::memchr(b'\n', rest);
                    let line = &rest[..end.unwrap_or(rest.len())];
                    let k = line.len().min(LINE_KEPT - self.line_len);
                    self.line[self.line_len..self.line_len + k].copy_from_slice(&line[..k]);
                    self.line_len += k;
                    let Some(e) = end else {
                        return;
                    };
                    i += e + 1;
                    let kept = self.line_len;
                    self.line_len = 0;
                    let line = self.line[..kept]
                        .strip_suffix(b"\r")
                        .unwrap_or(&self.line[..kept]);
                    if line.is_empty() {
                        self.state = match self.length {
                            None | Some(0) => Inbound::RequestLine { started: false },
                            Some(n) => Inbound::Body(n),
                        };
                    } else {
                        self.header(kept, kept == LINE_KEPT);
                    }
                }
            }
        }
    }

    /// Reads the framing from one header line (its first `kept` bytes are in `self.line`).
    fn header(&mut self, kept: usize, cut: bool) {
        let line = &self.line[..kept];
        let Some(colon) = memchr::memchr(b':', line) else {
            return;
        };
        let name = &line[..colon];
        if name.eq_ignore_ascii_case(b"content-length") {
            let value = std::str::from_utf8(&line[colon + 1..])
                .ok()
                .map(|v| v.trim())
                .and_then(|v| v.parse::<u64>().ok());
            self.state = match (value, self.length) {
                (Some(n), None) if !cut => {
                    self.length = Some(n);
                    Inbound::Headers
                }
                (Some(n), Some(m)) if n == m && !cut => Inbound::Headers,
                _ => Inbound::Opaque,
            };
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            self.state = Inbound::Opaque;
        }
    }
}

#[derive(Debug, PartialEq)]
struct ParserError {
    /// Where its status line starts and its head ends (after the blank line).
    start: usize,
    end: usize,
    status: u16,
}

/// Finds the head of a bodiless 4xx/5xx response: the parser's own answer to a request it
/// refused (the connection closes after it). `None` also when the head is not whole in `buf` (the socket
/// took part of it already): it then goes out as it is.
fn find_parser_error(buf: &[u8]) -> Option<ParserError> {
    let mark = memchr::memmem::find(buf, EMPTY)?;
    let start = memchr::memmem::rfind(&buf[..mark], STATUS_LINE)?;
    let line = &buf[start + STATUS_LINE.len()..mark];
    if memchr::memchr(b'\n', line).is_some() {
        return None;
    }
    let status: u16 = std::str::from_utf8(line.get(..3)?).ok()?.parse().ok()?;
    if !(400..600).contains(&status) {
        return None;
    }
    let rest = mark + EMPTY.len() - 2;
    let end = rest + memchr::memmem::find(&buf[rest..], b"\r\n\r\n")? + 4;
    Some(ParserError { start, end, status })
}

/// The same status line and headers (the date), with a SCIM error body.
fn scim_error_response(head: &[u8], status: u16) -> Vec<u8> {
    let (detail, scim_type) = match status {
        400 => (
            "the request is not valid HTTP/1.1: check the request line (spaces, quotes and \
             control characters in the target must be percent-encoded), the Host header, \
             and that Content-Length and Transfer-Encoding are not both sent",
            Some("invalidSyntax"),
        ),
        408 => ("the request head did not arrive in time", None),
        431 => (
            "the request head is too large: at most 96 header fields and 128 KiB",
            None,
        ),
        _ => ("the request could not be read", None),
    };
    let mut body = serde_json::json!({
        "schemas": [crate::error::ERROR_SCHEMA],
        "status": status.to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = t.into();
    }
    let body = body.to_string();
    let mark = memchr::memmem::find(head, EMPTY).unwrap_or(head.len());
    let mut rest = head.get(mark + EMPTY.len()..).unwrap_or_default();
    rest = rest.strip_prefix(CLOSE).unwrap_or(rest);
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    out.extend_from_slice(&head[..mark]);
    out.extend_from_slice(b"\r\ncontent-type: application/scim+json\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\nconnection: close\r\n");
    out.extend_from_slice(rest);
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\
                         date: Mon, 30 Nov 2026 04:10:11 GMT\r\n\r\n";

    fn split(out: &[u8]) -> (String, serde_json::Value) {
        let text = std::str::from_utf8(out).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        (
            head.to_string(),
            serde_json::from_str(body).unwrap_or_default(),
        )
    }

    #[test]
    fn finds_the_parser_answer_and_only_it() {
        assert_eq!(
            find_parser_error(BAD),
            Some(ParserError {
                start: 0,
                end: BAD.len(),
                status: 400
            })
        );
        // After a pipelined response whose body quotes a status line.
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 22\r\n\r\n{\"d\":\"HTTP/1.1 404 x\"}";
        let both = [&ok[..], BAD].concat();
        assert_eq!(
            find_parser_error(&both).map(|f| (f.start, f.end)),
            Some((ok.len(), both.len()))
        );
        // On a connection that served requests before, without `connection: close`.
        let later = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let (head, body) = split(&scim_error_response(later, 400));
        assert!(head.contains("\r\nconnection: close\r\ndate: x"), "{head}");
        assert_eq!(body["status"], "400");
        assert_eq!(find_parser_error(later).map(|f| f.end), Some(later.len()));
        // A successful bodiless close, a head cut short, and ordinary responses are left alone.
        let fine = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert_eq!(find_parser_error(fine), None);
        assert_eq!(find_parser_error(&BAD[..BAD.len() - 3]), None);
        assert_eq!(find_parser_error(ok), None);
        assert_eq!(find_parser_error(b""), None);
    }

    #[test]
    fn the_replacement_is_a_scim_error_with_the_same_status_line_and_date() {
        let (head, body) = split(&scim_error_response(BAD, 400));
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("content-type: application/scim+json"));
        assert!(head.contains("connection: close"));
        assert!(head.contains("date: Mon, 30 Nov 2026 04:10:11 GMT"));
        assert_eq!(body["status"], "400");
        assert_eq!(body["scimType"], "invalidSyntax");
        let out = scim_error_response(BAD, 400);
        let text = String::from_utf8_lossy(&out);
        let declared: usize = text
            .split("content-length: ")
            .nth(1)
            .and_then(|s| s.split("\r\n").next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        assert_eq!(
            declared,
            text.split_once("\r\n\r\n").unwrap_or_default().1.len()
        );
        let too_large = String::from_utf8_lossy(BAD).replace("400 Bad Request", "431 Too Large");
        let (_, body) = split(&scim_error_response(too_large.as_bytes(), 431));
        assert_eq!(body["status"], "431");
        assert!(body.get("scimType").is_none());
    }

    #[tokio::test]
    async fn writes_pass_through_and_the_parser_answer_gets_a_body() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut conn = Conn::new(client, Duration::from_secs(5));
        let ok = b"HTTP/1.1 204 No Content\r\n\r\n";
        conn.write_all(&[&ok[..], BAD].concat())
            .await
            .unwrap_or_default();
        conn.shutdown().await.unwrap_or_default();
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut out)
            .await
            .unwrap_or_default();
        assert!(out.starts_with(ok));
        let (head, body) = split(&out[ok.len()..]);
        assert!(head.starts_with("HTTP/1.1 400"));
        assert_eq!(body["status"], "400");
    }

    /// What `Inflow` makes of a request stream fed in pieces of `step` bytes.
    fn rewrite(stream: &[u8], step: usize) -> String {
        let mut flow = Inflow::default();
        let mut out = Vec::new();
        for piece in stream.chunks(step) {
            let mut at = Vec::new();
            flow.advance(piece, &mut at);
            for (k, b) in piece.iter().enumerate() {
                if at.contains(&k) {
                    out.extend_from_slice(format!("%{b:02X}").as_bytes());
                } else {
                    out.push(*b);
                }
            }
        }
        String::from_utf8_lossy(&out).to_string()
    }

    #[test]
    fn only_request_lines_are_encoded_whatever_the_pieces() {
        let stream = b"GET /Users?filter=userName+eq+\"a\" HTTP/1.1\r\nHost: x\r\n\r\n\
                       POST /Users HTTP/1.1\r\ncontent-length: 16\r\n\r\n{\"userName\":\"b\"}\
                       \r\nGET /Users?filter=title+eq+\"<b>`\" HTTP/1.1\r\nX: \"q\"\r\n\r\n";
        let want = "GET /Users?filter=userName+eq+%22a%22 HTTP/1.1\r\nHost: x\r\n\r\n\
                    POST /Users HTTP/1.1\r\ncontent-length: 16\r\n\r\n{\"userName\":\"b\"}\
                    \r\nGET /Users?filter=title+eq+%22%3Cb%3E%60%22 HTTP/1.1\r\nX: \"q\"\r\n\r\n";
        for step in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(rewrite(stream, step), want, "pieces of {step}");
        }
    }

    #[test]
    fn framing_it_cannot_follow_is_left_alone() {
        for head in [
            "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST /a HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        ] {
            let stream = format!("{head}GET /b?q=\"x\" HTTP/1.1\r\n\r\n");
            assert_eq!(rewrite(stream.as_bytes(), 5), stream, "{head}");
        }
    }

    #[tokio::test]
    async fn reads_give_the_parser_the_encoded_target() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut conn = Conn::new(server, Duration::from_secs(5));
        client
            .write_all(b"GET /a?f=\"x\" HTTP/1.1\r\n\r\n")
            .await
            .unwrap_or_default();
        drop(client);
        let mut got = Vec::new();
        // A small buffer: the rewritten bytes arrive over several reads.
        let mut small = [0u8; 4];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut conn, &mut small)
                .await
                .unwrap_or_default();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, b"GET /a?f=%22x%22 HTTP/1.1\r\n\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_reads_nothing_fails_the_write_after_send_timeout() {
        let (client, _server) = tokio::io::duplex(1024);
        let mut conn = Conn::new(client, Duration::from_secs(30));
        let err = conn.write_all(&[b'x'; 4096]).await.err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
    }
}

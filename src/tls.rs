//! Native TLS with rustls: TLS 1.2 and 1.3 only, the certificate chain and key read from PEM
//! files, and read again on SIGHUP without touching connections already open (each handshake
//! asks the resolver for the current certificate).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::rt::net::TcpStream;
use chrono::{DateTime, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a client may take to complete the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its key, read and checked.
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    /// When the leaf certificate becomes valid, if its validity could be read.
    pub(crate) not_before: Option<DateTime<Utc>>,
    /// When the leaf certificate expires, if its validity could be read.
    pub(crate) not_after: Option<DateTime<Utc>>,
}

impl Loaded {
    /// Whether the leaf certificate is valid at `now`: an expired or not yet valid one would
    /// fail every verifying client's handshake.
    pub(crate) fn check_validity(&self, now: DateTime<Utc>) -> Result<(), String> {
        if let Some(at) = self.not_after.filter(|at| *at < now) {
            return Err(format!(
                "the TLS certificate expired on {}: renew it",
                at.to_rfc3339()
            ));
        }
        if let Some(at) = self.not_before.filter(|at| *at > now) {
            return Err(format!(
                "the TLS certificate is not valid before {}",
                at.to_rfc3339()
            ));
        }
        Ok(())
    }
}

/// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1),
/// and checks that the key belongs to the leaf certificate.
pub(crate) fn load(cert: &Path, key: &Path) -> Result<Loaded, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls_cert {}: no certificate in the file (expected PEM \"BEGIN CERTIFICATE\" blocks)",
            cert.display()
        ));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    let (not_before, not_after) = validity(&chain[0]).unzip();
    let certified = CertifiedKey::from_der(chain, private, &provider()).map_err(|e| {
        format!(
            "tls_key {} does not go with tls_cert {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        not_before,
        not_after,
    })
}

/// The certificate every handshake gets; `reload` swaps it.
#[derive(Debug)]
pub(crate) struct Resolver {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    not_after: RwLock<Option<DateTime<Utc>>>,
}

impl Resolver {
    pub(crate) fn new(cert: &Path, key: &Path) -> Result<Resolver, String> {
        let loaded = load(cert, key)?;
        Ok(Resolver {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(loaded.key),
            not_after: RwLock::new(loaded.not_after),
        })
    }

    /// Reads the files again; on any problem (a certificate expired or not yet valid at `now`
    /// among them) keeps the certificate in use and says why.
    pub(crate) fn reload(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
        let loaded = load(&self.cert, &self.key)?;
        loaded.check_validity(now)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded.key;
        *self.not_after.write().unwrap_or_else(|e| e.into_inner()) = loaded.not_after;
        Ok(loaded.not_after)
    }

    pub(crate) fn not_after(&self) -> Option<DateTime<Utc>> {
        *self.not_after.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The server side: TLS 1.3 and 1.2, HTTP/1.1 by ALPN, the certificate from `resolver`.
pub(crate) fn acceptor(resolver: Arc<Resolver>) -> Result<tokio_rustls::TlsAcceptor, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A connection's byte stream: plain TCP, or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The leaf certificate's `notBefore` and `notAfter`, read from its DER: Certificate ::=
/// SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
/// validity SEQUENCE { notBefore, notAfter }, ... }, ... } (RFC 5280 §4.1).
fn validity(cert: &[u8]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (_, cert_body, _) = tlv(cert)?;
    let (_, mut tbs, _) = tlv(cert_body)?;
    // Skip the explicit version, if present, then serial, signature algorithm and issuer.
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2;
    }
    for _ in 0..3 {
        tbs = tlv(tbs)?.2;
    }
    let (_, validity, _) = tlv(tbs)?;
    let (tag, before, rest) = tlv(validity)?;
    let not_before = time(tag, before)?;
    let (tag, after, _) = tlv(rest)?;
    Some((not_before, time(tag, after)?))
}

/// A certificate's UTCTime (tag 0x17) or GeneralizedTime (0x18).
fn time(tag: u8, value: &[u8]) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(value).ok()?;
    let full = match tag {
        // UTCTime YYMMDDHHMMSSZ: years 50-99 are 19xx (RFC 5280 §4.1.2.5.1).
        0x17 => {
            let yy: u32 = text.get(..2)?.parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        // GeneralizedTime YYYYMMDDHHMMSSZ.
        0x18 => text.to_string(),
        _ => return None,
    };
    chrono::NaiveDateTime::parse_from_str(full.trim_end_matches('Z'), "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

/// One DER tag-length-value: (tag, value, what follows).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *der.first()?;
    let first = *der.get(1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let value = der.get(start..start + len)?;
    Some((tag, value, &der[start + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_after(cert: &[u8]) -> Option<DateTime<Utc>> {
        validity(cert).map(|(_, after)| after)
    }

    #[test]
    fn reads_not_after_from_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["scim.example.com".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        params.not_before = rcgen::date_time_ymd(2030, 2, 3);
        params.not_after = rcgen::date_time_ymd(2031, 7, 4);
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = params
            .clone()
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("{e}"));
        let when = not_after(cert.der()).map(|d| d.to_rfc3339());
        assert_eq!(when.as_deref(), Some("2031-07-04T00:00:00+00:00"));
        let from = validity(cert.der()).map(|(b, _)| b.to_rfc3339());
        assert_eq!(from.as_deref(), Some("2030-02-03T00:00:00+00:00"));
        // A date past 2049 is a GeneralizedTime.
        params.not_after = rcgen::date_time_ymd(2061, 1, 2);
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            not_after(cert.der()).map(|d| d.to_rfc3339()).as_deref(),
            Some("2061-01-02T00:00:00+00:00")
        );
        assert_eq!(not_after(b"\x30\x03\x02\x01"), None);
        assert_eq!(not_after(b""), None);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let params = rcgen::CertificateParams::new(vec!["a.example".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let other = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
            p
        };
        let cert_path = write("cert.pem", cert.pem());
        let key_path = write("key.pem", key.serialize_pem());
        let other_path = write("other.pem", other.serialize_pem());
        assert!(load(&cert_path, &key_path).is_ok());
        let e = load(&cert_path, &other_path).err().unwrap_or_default();
        assert!(e.contains("does not go with"), "{e}");
        let e = load(&key_path, &key_path).err().unwrap_or_default();
        assert!(e.contains("no certificate"), "{e}");
    }
}

//! The HTTP requests scimd itself makes (an identity provider's sign-in endpoints, a feed's
//! receiver): TLS verified against the system's roots or a given CA, no redirects (one could
//! lead a server-side request anywhere), a timeout, and plain HTTP only to loopback.

use std::net::IpAddr;
use std::time::Duration;

/// An agent for requests to one party: verified TLS against `ca_pem` (the system's roots
/// without one), no redirects, statuses as answers (not errors), `timeout` for a whole request.
pub(crate) fn agent(ca_pem: Option<&str>, timeout: Duration) -> Result<ureq::Agent, String> {
    let roots: Vec<ureq::tls::Certificate<'static>> = match ca_pem {
        Some(pem) => {
            let certs: Vec<_> = ureq::tls::parse_pem(pem.as_bytes())
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the CA file is not PEM: {e}"))?;
            if certs.is_empty() {
                return Err("the CA file holds no certificate".into());
            }
            certs
        }
        None => rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
    };
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .build();
    Ok(ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .tls_config(tls)
        .build()
        .into())
}

/// Whether a URL of `scheme` to `host` may be called: HTTPS anywhere, plain HTTP only to a
/// loopback address (a trial, a test).
pub(crate) fn allowed(scheme: Option<&str>, host: &str) -> bool {
    if scheme == Some("https") {
        return true;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    scheme == Some("http") && host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `allowed` for a URL, and with `allow_http` (a feed's `feed_allow_http`) plain HTTP to any
/// host too.
pub(crate) fn allowed_url(url: &ureq::http::Uri, allow_http: bool) -> bool {
    let host = url.host().unwrap_or_default();
    allowed(url.scheme_str(), host)
        || (allow_http && url.scheme_str() == Some("http") && !host.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_only_to_loopback() {
        assert!(allowed(Some("https"), "example.com"));
        assert!(allowed(Some("http"), "127.0.0.1"));
        assert!(allowed(Some("http"), "[::1]"));
        assert!(!allowed(Some("http"), "example.com"));
        assert!(!allowed(Some("http"), "10.0.0.1"));
        assert!(!allowed(Some("ftp"), "127.0.0.1"));
        assert!(!allowed(None, "127.0.0.1"));
    }
}

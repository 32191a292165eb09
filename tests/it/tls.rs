//! Native TLS against the real binary: certificates made by a CA generated in the test, a
//! client that verifies the chain, TLS 1.2 as the floor, SIGHUP reloading a new certificate
//! while an open connection keeps working, and check-config's checks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::harness::{Server, TestDb};

struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "scimd test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for 127.0.0.1 and localhost, written with its key into `dir`.
    fn issue(
        &self,
        dir: &Path,
        name: &str,
        not_after: (i32, u8, u8),
    ) -> (PathBuf, PathBuf, Vec<u8>) {
        self.issue_between(dir, name, (1975, 1, 1), not_after)
    }

    /// `issue`, valid from `not_before`.
    fn issue_between(
        &self,
        dir: &Path,
        name: &str,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> (PathBuf, PathBuf, Vec<u8>) {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        // The chain as a CA hands it out: the leaf, then the issuer.
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), self.cert.pem())).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path, cert.der().to_vec())
    }
}

/// A TLS client that trusts only the test CA, over one connection kept open.
struct Client {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Client {
    fn connect(
        addr: &str,
        ca: &Ca,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<Client, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // Complete the handshake now, so a refusal shows here.
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(Client { tls })
    }

    /// GET over the open connection; returns the status and body.
    fn get(&mut self, addr: &str, path: &str) -> (u16, String) {
        write!(self.tls, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.tls.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.tls.read_exact(&mut body).unwrap();
        (status, String::from_utf8(body).unwrap())
    }

    fn peer_certificate(&self) -> Vec<u8> {
        self.tls.conn.peer_certificates().unwrap()[0].to_vec()
    }
}

/// Certificates outside their validity now: (name, not before, not after, what refuses them).
type Day = (i32, u8, u8);
const OUT_OF_WINDOW: [(&str, Day, Day, &str); 2] = [
    (
        "expired",
        (2020, 1, 1),
        (2021, 1, 1),
        "expired on 2021-01-01",
    ),
    (
        "early",
        (2040, 1, 1),
        (2041, 1, 1),
        "not valid before 2040-01-01",
    ),
];

fn tls_server(db: &TestDb, cert: &Path, key: &Path) -> Server {
    Server::start_with(
        &db.path,
        &[],
        &[
            ("SCIMD_TLS_CERT", cert.to_str().unwrap()),
            ("SCIMD_TLS_KEY", key.to_str().unwrap()),
        ],
    )
}

#[test]
fn https_with_a_verified_chain_and_a_certificate_reloaded_on_sighup() {
    let db = TestDb::new();
    db.add_provider("p");
    let ca = Ca::new();
    let dir = db.dir.path();
    let (cert, key, first_der) = ca.issue(dir, "first", (2036, 1, 1));
    let server = tls_server(&db, &cert, &key);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let addr = server.addr();
    let all = &[&rustls::version::TLS13, &rustls::version::TLS12];
    let mut open = Client::connect(&addr, &ca, all).unwrap();
    assert_eq!(open.get(&addr, "/healthz").0, 200);
    assert_eq!(open.peer_certificate(), first_der);
    // TLS 1.2 alone works too; plain HTTP on the TLS port does not.
    let mut tls12 = Client::connect(&addr, &ca, &[&rustls::version::TLS12]).unwrap();
    assert_eq!(tls12.get(&addr, "/healthz").0, 200);
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    // The server may close as soon as it has read a few bytes that are not TLS: a failed write
    // also means that plain HTTP was refused.
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let _ = plain.write_all(request.as_bytes());
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/1.1 200"), "plain HTTP was answered");
    // A new certificate in place of the old, then SIGHUP.
    let (new_cert, new_key, second_der) = ca.issue(dir, "second", (2037, 1, 1));
    std::fs::rename(&new_cert, &cert).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    server.wait_for_line("TLS certificate reloaded");
    let mut fresh = Client::connect(&addr, &ca, all).unwrap();
    assert_eq!(fresh.peer_certificate(), second_der);
    assert_eq!(fresh.get(&addr, "/healthz").0, 200);
    // The connection opened before the reload still works, with the certificate it got.
    assert_eq!(open.get(&addr, "/healthz").0, 200);
    assert_eq!(open.peer_certificate(), first_der);
    // A broken replacement is refused and the certificate in use stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    server.wait_for_line("was not reloaded");
    let after = Client::connect(&addr, &ca, all).unwrap();
    assert_eq!(after.peer_certificate(), second_der);
    // So is one that has expired, or is not valid yet: verifying clients would refuse it.
    for (name, from, until, why) in OUT_OF_WINDOW {
        let (c, k, _) = ca.issue_between(dir, name, from, until);
        std::fs::rename(&c, &cert).unwrap();
        std::fs::rename(&k, &key).unwrap();
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        server.wait_for_line_with(&["was not reloaded", why]);
        let after = Client::connect(&addr, &ca, all).unwrap();
        assert_eq!(after.peer_certificate(), second_der, "{name}");
    }
}

#[test]
fn check_config_checks_the_certificate_and_key() {
    let db = TestDb::new();
    let ca = Ca::new();
    let dir = db.dir.path();
    let (cert, key, _) = ca.issue(dir, "good", (2036, 1, 1));
    let (_, other_key, _) = ca.issue(dir, "other", (2036, 1, 1));
    let check = |cert: &Path, key: &Path| {
        crate::harness::command(&db.path)
            .arg("check-config")
            .env("SCIMD_TLS_CERT", cert)
            .env("SCIMD_TLS_KEY", key)
            .output()
            .unwrap()
    };
    let ok = check(&cert, &key);
    assert!(ok.status.success());
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        out.contains("go together") && out.contains("2036-01-01"),
        "{out}"
    );
    let bad = check(&cert, &other_key);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does not go with"));
    // Expiring within 14 days: valid, with a warning.
    let soon = chrono::Utc::now() + chrono::Duration::days(5);
    let (soon_cert, soon_key, _) = ca.issue(
        dir,
        "soon",
        (
            chrono::Datelike::year(&soon),
            chrono::Datelike::month(&soon) as u8,
            chrono::Datelike::day(&soon) as u8,
        ),
    );
    let warned = check(&soon_cert, &soon_key);
    assert!(warned.status.success());
    assert!(
        String::from_utf8_lossy(&warned.stderr).contains("expires"),
        "{:?}",
        warned
    );
    // Expired, or not valid yet: a problem, not a warning.
    for (name, from, until, why) in OUT_OF_WINDOW {
        let (c, k, _) = ca.issue_between(dir, name, from, until);
        let out = check(&c, &k);
        assert!(!out.status.success(), "{name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{out:?}"
        );
    }
    // One without the other.
    let half = crate::harness::command(&db.path)
        .arg("check-config")
        .env("SCIMD_TLS_CERT", &cert)
        .output()
        .unwrap();
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("give both"));
}

/// With TLS configured the admin console speaks HTTPS too, and its cookie is `Secure`.
#[test]
fn the_admin_console_uses_the_same_tls_and_a_secure_cookie() {
    let db = TestDb::new();
    let ca = Ca::new();
    let (cert, key, _) = ca.issue(db.dir.path(), "console", (2036, 1, 1));
    let mut add = crate::harness::command(&db.path)
        .args(["admin", "add", "alice", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "correct horse battery").unwrap();
    assert!(add.wait().unwrap().success());
    let server = tls_server(&db, &cert, &key);
    let admin = server.admin();
    assert!(admin.starts_with("https://"), "{admin}");
    let addr = admin.trim_start_matches("https://").to_string();
    let mut client = Client::connect(&addr, &ca, rustls::DEFAULT_VERSIONS).unwrap();
    let (status, body) = client.get(&addr, "/login");
    assert_eq!(status, 200);
    assert!(body.contains("Log in"));
    let form = "name=alice&password=correct+horse+battery&next=%2F";
    write!(
        client.tls,
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        client.tls.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Browsers are told to come back over HTTPS only.
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
}

/// The LDAP directory with the same certificate: LDAPS from the first byte, and StartTLS on the
/// plain port; a password is refused on the plain port until StartTLS.
#[test]
fn the_ldap_directory_speaks_ldaps_and_starttls() {
    let db = TestDb::new();
    db.add_provider("p");
    let (password, _) = db.ldap_account("app", "p");
    let ca = Ca::new();
    let dir = db.dir.path();
    let (cert, key, _) = ca.issue(dir, "ldap", (2036, 1, 1));
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    let server = Server::start_with(
        &db.path,
        &[],
        &[
            ("SCIMD_TLS_CERT", cert.to_str().unwrap()),
            ("SCIMD_TLS_KEY", key.to_str().unwrap()),
            ("SCIMD_LDAP_LISTEN", "127.0.0.1:0"),
            ("SCIMD_LDAPS_LISTEN", "127.0.0.1:0"),
        ],
    );
    let (ldap, ldaps) = (server.ldap_url("ldap"), server.ldap_url("ldaps"));
    let bind = "cn=app,ou=services,dc=p,dc=scimd";
    let whoami = |url: &str, extra: &[&str]| {
        let out = std::process::Command::new("ldapwhoami")
            .env("LDAPTLS_CACERT", &ca_file)
            .env("LDAPTLS_REQCERT", "demand")
            .args(["-x", "-H", url, "-D", bind, "-w", &password])
            .args(extra)
            .output()
            .expect("ldapwhoami (Debian's ldap-utils; scripts/test.sh installs it)");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = whoami(&ldaps, &[]);
    assert_eq!(code, Some(0), "LDAPS: {text}");
    assert!(text.contains(&format!("dn:{bind}")), "{text}");
    let (code, text) = whoami(&ldap, &["-ZZ"]);
    assert_eq!(code, Some(0), "StartTLS: {text}");
    let (code, text) = whoami(&ldap, &[]);
    assert_eq!(code, Some(13), "a password in clear text: {text}");
}

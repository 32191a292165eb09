//! HTTP basics every client meets: health, content types, SCIM errors for unknown routes and
//! methods, body limits, access logs, shutdown.

use crate::harness::{Server, TestDb, get, get_bearer, raw};

#[test]
fn healthz_needs_no_token() {
    let db = TestDb::new();
    let server = Server::start_with(&db.path, &["--create"], &[]);
    let resp = get(&format!("{}/healthz", server.base), None);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["status"], "ok");
}

#[test]
fn unknown_routes_and_methods_get_scim_errors() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (_, token) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    get(&format!("{}/nothing/here", server.base), None).scim_error(404);
    get_bearer(&format!("{}/NoSuchEndpoint", server.scim("idp")), &token).scim_error(404);
    for method in ["PUT", "DELETE", "PATCH"] {
        let resp = raw(
            &server.addr(),
            &format!(
                "{method} /scim/v2/idp/ServiceProviderConfig HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        );
        let body = resp.scim_error(405);
        assert!(body["detail"].as_str().unwrap().contains(method), "{body}");
    }
}

#[test]
fn oversized_bodies_get_413_before_anything_is_read() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (_, token) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    // Default limit 1 MiB; the declared length alone is enough to refuse.
    let resp = raw(
        &server.addr(),
        &format!(
            "POST /scim/v2/idp/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: 5000000\r\nConnection: close\r\n\r\n"
        ),
    );
    resp.scim_error(413);
}

#[test]
fn access_log_names_provider_token_and_status_but_never_the_secret() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (id, token) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    assert_eq!(
        get_bearer(
            &format!("{}/ServiceProviderConfig", server.scim("idp")),
            &token
        )
        .status,
        200
    );
    let line = server.wait_for_line("/ServiceProviderConfig");
    for want in [
        "provider=idp",
        "method=GET",
        "status=200",
        "latency_ms=",
        &format!("token={id}"),
    ] {
        assert!(line.contains(want), "{want:?} missing from {line}");
    }
    let secret = token.rsplit('_').next().unwrap();
    assert!(!server.logs().join("\n").contains(secret));
}

#[test]
fn sigterm_stops_gracefully_and_leaves_a_private_database() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new();
    let mut server = Server::start_with(&db.path, &["--create"], &[]);
    assert_eq!(get(&format!("{}/healthz", server.base), None).status, 200);
    assert!(server.terminate(), "exit status after SIGTERM");
    server.wait_for_line("stopped");
    let mode = std::fs::metadata(&db.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "database file mode");
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let db = TestDb::new();
    db.add_provider("idp");
    let c = rusqlite::Connection::open(&db.path).unwrap();
    c.pragma_update(None, "user_version", 42).unwrap();
    drop(c);
    let out = crate::harness::command(&db.path)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer scimd") && err.contains("42"), "{err}");
}

//! Configuration layers and their errors, through the real binary.

use crate::harness::{Server, TestDb, command, get};

fn check_config(
    db: &TestDb,
    file: Option<&str>,
    env: &[(&str, &str)],
    flags: &[&str],
) -> (bool, String, String) {
    let mut cmd = command(&db.path);
    if let Some(text) = file {
        let path = db.dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(flags).arg("check-config").output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn file_then_environment_then_flags() {
    let db = TestDb::new();
    let file = "listen = \"127.0.0.1:1111\"\nlog_level = \"debug\"\ntoken_retention = \"7d\"\ndatabase = \"/from/file.db\"\n";
    // File alone.
    let (ok, out, err) = check_config(&db, Some(file), &[], &[]);
    assert!(ok, "{err}");
    assert!(out.contains("listen = \"127.0.0.1:1111\""), "{out}");
    assert!(out.contains("log_level = \"debug\""), "{out}");
    assert!(
        out.contains("cleanup_interval = \"1h\""),
        "default kept: {out}"
    );
    // The --database flag of the harness beats the file.
    assert!(
        out.contains(&format!("database = \"{}\"", db.path.display())),
        "{out}"
    );

    // Environment beats the file.
    let (ok, out, _) = check_config(
        &db,
        Some(file),
        &[
            ("SCIMD_LISTEN", "127.0.0.1:2222"),
            ("SCIMD_TOKEN_RETENTION", "1d"),
        ],
        &[],
    );
    assert!(ok);
    assert!(out.contains("listen = \"127.0.0.1:2222\""), "{out}");
    assert!(out.contains("token_retention = \"1d\""), "{out}");
    assert!(
        out.contains("log_level = \"debug\""),
        "file still applies: {out}"
    );
}

#[test]
fn flags_beat_environment_when_serving() {
    let db = TestDb::new();
    db.add_provider("idp");
    let server = Server::start_with(
        &db.path,
        &["--public-url", "https://flag.example.com"],
        &[
            ("SCIMD_PUBLIC_URL", "https://env.example.com"),
            ("SCIMD_LISTEN", "127.0.0.1:1"),
        ],
    );
    // --listen 127.0.0.1:0 (a flag) beat SCIMD_LISTEN, or the server could not have started;
    // --public-url beat SCIMD_PUBLIC_URL.
    assert_eq!(server.base, "https://flag.example.com");
    let line = server.wait_for_line("listening on");
    let addr = line
        .split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert_ne!(addr, "127.0.0.1:1", "{line}");
    assert_eq!(get(&format!("http://{addr}/healthz"), None).status, 200);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let db = TestDb::new();
    let (ok, _, err) = check_config(
        &db,
        Some("listen = \"127.0.0.1:1\"\nlisten_adress = \"x\"\n"),
        &[],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("listen_adress"), "{err}");

    let (ok, _, err) = check_config(&db, None, &[("SCIMD_CLEANUP_INTERVALL", "1h")], &[]);
    assert!(!ok);
    assert!(err.contains("SCIMD_CLEANUP_INTERVALL"), "{err}");

    // serve refuses to start on the same mistake.
    let out = command(&db.path)
        .env("SCIMD_LISTN", "127.0.0.1:0")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SCIMD_LISTN"));
}

#[test]
fn check_config_lists_every_problem() {
    let db = TestDb::new();
    let file = "listen = \"everywhere\"\ncleanup_interval = \"often\"\nlog_format = \"xml\"\nmax_body_size = \"huge\"\n";
    let (ok, _, err) = check_config(&db, Some(file), &[], &[]);
    assert!(!ok);
    for key in ["listen", "cleanup_interval", "log_format", "max_body_size"] {
        assert!(
            err.contains(&format!("{key}:")),
            "{key} not reported: {err}"
        );
    }
    assert!(err.contains("4 problem"), "{err}");
}

#[test]
fn check_config_redacts_secrets() {
    let db = TestDb::new();
    let (ok, out, _) = check_config(
        &db,
        None,
        &[("SCIMD_PUBLIC_URL", "https://admin:hunter2@scim.example.com")],
        &[],
    );
    assert!(ok);
    assert!(out.contains("https://***@scim.example.com"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}

#[test]
fn json_logs_and_body_limit_from_config() {
    let db = TestDb::new();
    db.add_provider("idp");
    let server = Server::start_with(
        &db.path,
        &[],
        &[
            ("SCIMD_LOG_FORMAT", "json"),
            ("SCIMD_MAX_BODY_SIZE", "1KiB"),
        ],
    );
    assert_eq!(get(&format!("{}/healthz", server.base), None).status, 200);
    let line = server.wait_for_line("/healthz");
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["fields"]["path"], "/healthz");
    assert_eq!(entry["fields"]["status"], 200);

    let resp = crate::harness::raw(
        &server.addr(),
        "POST /scim/v2/idp/Users HTTP/1.1\r\nHost: x\r\nContent-Type: application/scim+json\r\n\
         Content-Length: 2048\r\nConnection: close\r\n\r\n",
    );
    let body = resp.scim_error(413);
    assert!(body["detail"].as_str().unwrap().contains("1024"), "{body}");
}

/// An admin listener other hosts can reach is valid but warned about: `/metrics` needs no
/// login. The default (loopback) gets no warning.
#[test]
fn check_config_warns_of_an_admin_listener_other_hosts_reach() {
    let db = TestDb::new();
    let (ok, _, err) = check_config(&db, None, &[], &[]);
    assert!(ok && !err.contains("reachable"), "{err}");
    for addr in ["0.0.0.0:8081", "[::]:8081", "192.0.2.10:8081"] {
        let (ok, _, err) = check_config(&db, None, &[("SCIMD_ADMIN_LISTEN", addr)], &[]);
        assert!(ok, "{err}");
        assert!(
            err.contains("reachable from other hosts") && err.contains("/metrics"),
            "{addr}: {err}"
        );
    }
}

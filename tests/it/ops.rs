//! Operating scimd: backup during a write load and restore, `db check`, systemd's readiness
//! protocol, and the liveness/readiness split.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::harness::{Scim, Server, TestDb, get, try_send};

/// A backup taken while eight writers create users holds every user acknowledged before the
/// backup started; restored in place of the database (refused while the server runs), a server
/// on it serves them all.
#[test]
fn a_backup_taken_under_load_restores_every_write_acknowledged_before_it() {
    let db = TestDb::new();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let server = Server::start(&db);
    let base = server.scim("p");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (base, token, acked, stop) =
                (base.clone(), token.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = json!({"userName": format!("w{w}-{n}")});
                    if let Ok(r) =
                        try_send("POST", &format!("{base}/Users"), &token, Some(&body), &[])
                    {
                        assert_eq!(r.status, 201, "{}", r.text);
                        acked
                            .lock()
                            .unwrap()
                            .push(r.json()["id"].as_str().unwrap().to_string());
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 200 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let copy = db.dir.path().join("backup.db");
    let out = db.ok(&["backup", copy.to_str().unwrap()]);
    assert!(out.contains("backed up"), "{out}");
    // Writes went on during the backup.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A running server holds the database: restore refuses and says what to do.
    let err = db.fails(&["restore", copy.to_str().unwrap()]);
    assert!(err.contains("stop it first"), "{err}");
    drop(server);
    let out = db.ok(&["restore", copy.to_str().unwrap()]);
    assert!(out.contains("kept as"), "{out}");
    let server = Server::start(&db);
    let scim = Scim::new(&server, "p", &token);
    for id in &before {
        scim.get(&format!("/Users/{id}")).expect(200);
    }
    let total = scim.get("/Users?count=0").expect(200)["totalResults"]
        .as_u64()
        .unwrap();
    assert!(total as usize >= before.len());
    assert!(db.ok(&["db", "check"]).contains("integrity:       ok"));
}

#[test]
fn restore_refuses_what_is_not_a_scimd_database_and_db_check_reports_damage() {
    let db = TestDb::new();
    db.add_provider("p");
    let dir = db.dir.path();
    // Not a database at all, another SQLite database, and one from a newer scimd.
    let junk = dir.join("junk.db");
    std::fs::write(&junk, "hello").unwrap();
    let other = dir.join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let newer = dir.join("newer.db");
    db.ok(&["backup", newer.to_str().unwrap(), "--vacuum"]);
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    for (file, want) in [
        (&junk, "not a database"),
        (&other, "not a scimd database"),
        (&newer, "newer scimd"),
    ] {
        let err = db.fails(&["restore", file.to_str().unwrap()]);
        assert!(err.contains(want), "{}: {err}", file.display());
    }
    // Nothing was replaced.
    assert!(db.ok(&["provider", "list"]).contains('p'));
    // A damaged copy: db check says so and exits 1.
    let damaged = dir.join("damaged.db");
    db.ok(&["backup", damaged.to_str().unwrap()]);
    let mut bytes = std::fs::read(&damaged).unwrap();
    // Every page after the first: its B-tree header and cell pointers overwritten.
    let page = 4096;
    for start in (page..bytes.len()).step_by(page) {
        for b in &mut bytes[start..start + 64] {
            *b = 0x7f;
        }
    }
    std::fs::write(&damaged, &bytes).unwrap();
    let out = crate::harness::command(&damaged)
        .args(["db", "check"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(!said.contains("integrity:       ok"), "{said}");
    let ok = db.cli(&["db", "check"]);
    assert_eq!(ok.status.code(), Some(0));
}

/// `Type=notify`: READY once serving, watchdog pings while alive, STOPPING at shutdown.
#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    let db = TestDb::new();
    db.add_provider("p");
    let socket_path = db.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // systemd names the process the watchdog is for: the shell's pid, kept by exec.
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "WATCHDOG_PID=$$ exec \"$0\" \"$@\"",
        crate::harness::BIN,
    ])
    .arg("--database")
    .arg(&db.path)
    .args(["serve", "--listen", "127.0.0.1:0"])
    .env("NOTIFY_SOCKET", &socket_path)
    .env("WATCHDOG_USEC", "200000");
    let mut server = Server::spawn(cmd);
    let mut heard = Vec::new();
    let mut buf = [0u8; 256];
    while heard
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 2
    {
        let n = socket.recv(&mut buf).unwrap();
        heard.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(heard[0].contains("READY=1"), "{heard:?}");
    // Alive and ready.
    assert_eq!(get(&format!("{}/healthz", server.base), None).status, 200);
    assert_eq!(get(&format!("{}/readyz", server.base), None).status, 200);
    assert!(server.terminate());
    loop {
        let n = socket.recv(&mut buf).unwrap();
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
}

/// `scimd export`: JSON lines are exactly what GET returns; CSV has the common attributes.
#[test]
fn export_writes_each_resource_as_get_returns_it() {
    let db = TestDb::new();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let server = Server::start(&db);
    let scim = Scim::new(&server, "p", &token);
    let mut ids = Vec::new();
    for (i, name) in ["ada@contoso.com", "bob, jr@contoso.com", "carol \"cc\""]
        .iter()
        .enumerate()
    {
        let u = scim.create(
            "/Users",
            &json!({"userName": name, "active": i != 1,
                    "emails": [{"value": format!("u{i}@contoso.com"), "primary": true}],
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}}),
        );
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    let g = scim.create(
        "/Groups",
        &json!({"displayName": "G", "members": [{"value": ids[0]}]}),
    );
    let lines = db.ok(&["export", "--provider", "p"]);
    let exported: Vec<&str> = lines.lines().collect();
    assert_eq!(exported.len(), 3);
    for (line, id) in exported.iter().zip(&ids) {
        assert_eq!(*line, scim.get(&format!("/Users/{id}")).text, "user {id}");
    }
    let groups = db.ok(&["export", "--provider", "p", "--resource-type", "group"]);
    assert_eq!(
        groups.trim_end(),
        scim.get(&format!("/Groups/{}", g["id"].as_str().unwrap()))
            .text
    );
    let csv = db.ok(&["export", "--provider", "p", "--format", "csv"]);
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(rows[0].starts_with("id,externalId,userName,"), "{csv}");
    assert!(rows[2].contains("\"bob, jr@contoso.com\""), "{csv}");
    assert!(rows[3].contains("\"carol \"\"cc\"\"\""), "{csv}");
    assert!(rows[1].contains("u0@contoso.com,true,,R&D"), "{csv}");
    // The URLs in the export, and in what commands print, are those the server serves.
    let list = db.ok(&["provider", "list"]);
    assert!(list.contains(&server.scim("p")), "{list}");
    assert!(lines.contains(&format!("{}/Users/", server.scim("p"))));
}

/// `/metrics` on the admin listener after known traffic: exact counts, the token's expiry, the
/// database size; and not on the SCIM port.
#[test]
fn metrics_count_known_traffic_on_the_admin_listener_only() {
    let db = TestDb::new();
    db.add_provider("p");
    let (token_id, token) = db.create_token("p", &[]);
    let server = Server::start(&db);
    let admin = server.admin();
    let scim = Scim::new(&server, "p", &token);
    for _ in 0..3 {
        scim.get("/Users").expect(200);
    }
    scim.get("/Users/nope").scim_error(404);
    scim.create("/Users", &json!({"userName": "a"}));
    scim.create("/Users", &json!({"userName": "b"}));
    assert_eq!(
        crate::harness::get_bearer(&format!("{}/Users", scim.base), "nope").status,
        401
    );
    let scraped = get(&format!("{admin}/metrics"), None);
    assert_eq!(scraped.status, 200);
    let text = scraped.text;
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let requests = |provider: &str, method: &str, endpoint: &str, status: u16| {
        value(&format!(
            "scimd_requests_total{{provider=\"{provider}\",method=\"{method}\",endpoint=\"{endpoint}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(requests("p", "GET", "Users", 200), Some(3.0), "{text}");
    assert_eq!(requests("p", "GET", "Users/{id}", 404), Some(1.0));
    assert_eq!(requests("p", "POST", "Users", 201), Some(2.0));
    assert_eq!(requests("-", "GET", "Users", 401), Some(1.0));
    assert_eq!(
        value("scimd_request_duration_seconds_count{method=\"GET\",endpoint=\"Users\"}"),
        Some(4.0)
    );
    let expiry = value(&format!(
        "scimd_token_expiry_seconds{{provider=\"p\",token=\"{token_id}\"}}"
    ))
    .unwrap();
    assert!(expiry > 0.0 && expiry <= 90.0 * 86_400.0, "{expiry}");
    assert!(value("scimd_database_bytes").unwrap() > 0.0);
    assert!(value("scimd_writer_commit_seconds_count").unwrap() >= 2.0);
    assert!(text.contains("scimd_build_info{version="));
    // The SCIM port, facing the identity provider, has no /metrics.
    assert_eq!(get(&format!("{}/metrics", server.base), None).status, 404);
}

/// A second server on a database another one serves is refused, naming the first; a restore
/// from the database file itself is refused before anything is moved, and the database stays.
#[test]
fn one_server_per_database_and_no_restore_from_the_database_itself() {
    let db = TestDb::new();
    db.add_provider("p");
    let first = crate::harness::Server::start(&db);
    let err = db.fails(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(
        err.contains("another scimd server") && err.contains(&first.child.id().to_string()),
        "{err}"
    );
    assert_eq!(
        crate::harness::get(&format!("{}/readyz", first.base), None).status,
        200
    );
    drop(first);
    let err = db.fails(&["restore", db.path.to_str().unwrap()]);
    assert!(err.contains("is the database itself"), "{err}");
    assert!(db.ok(&["provider", "list"]).contains('p'));
    // Once the first has stopped, a server starts again.
    let again = crate::harness::Server::start(&db);
    assert_eq!(
        crate::harness::get(&format!("{}/readyz", again.base), None).status,
        200
    );
}

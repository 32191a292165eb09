//! Injected faults (debug builds, `SCIMD_TEST_FAULTS=1`): a panicking write answers its own
//! request with a 500 SCIM error while the writer keeps serving everyone else, and `/healthz`
//! names a writer or reader that is stuck. And real faults: the database file removed,
//! replaced, read-only, or its disk full.

use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Scim, Server, TestDb, get, scim_server};

fn server_with_faults(db: &TestDb, extra_env: &[(&str, &str)]) -> (Server, Scim) {
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let mut env = vec![("SCIMD_TEST_FAULTS", "1")];
    env.extend_from_slice(extra_env);
    let server = Server::start_with(&db.path, &[], &env);
    let scim = Scim::new(&server, "p", &token);
    (server, scim)
}

#[test]
fn a_panicking_write_fails_alone_and_the_writer_keeps_serving() {
    let db = TestDb::new();
    let (server, scim) = server_with_faults(&db, &[]);
    // Writes of other requests around the panicking ones, at the same time, so some share its
    // batch: each must be answered as if nothing had happened.
    let mut handles = Vec::new();
    for i in 0..24 {
        let (base, token) = (scim.base.clone(), scim.token.clone());
        handles.push(thread::spawn(move || {
            let s = Scim { base, token };
            let body = json!({"userName": format!("u{i}")});
            if i % 4 == 0 {
                let r = s.with_headers(
                    "POST",
                    "/Users",
                    Some(&body),
                    &[("x-scimd-test-fault", "panic-in-write")],
                );
                (i, r.scim_error(500))
            } else {
                (i, s.create("/Users", &body))
            }
        }));
    }
    for h in handles {
        let (i, body) = h.join().unwrap();
        if i % 4 == 0 {
            assert_eq!(
                body["detail"], "internal server error",
                "no panic text leaks: {body}"
            );
        } else {
            assert_eq!(body["userName"], format!("u{i}"));
        }
    }
    // What the panicking requests wrote before they panicked was taken back; the rest stays.
    let list = scim.get("/Users?count=100").expect(200);
    assert_eq!(list["totalResults"], 18, "{list}");
    for i in (0..24).step_by(4) {
        let found = scim
            .get(&format!("/Users?filter=userName%20eq%20%22u{i}%22"))
            .expect(200);
        assert_eq!(found["totalResults"], 0, "u{i} was rolled back");
    }
    // The writer still writes, and the server calls itself healthy.
    scim.create("/Users", &json!({"userName": "after"}));
    let health = get(&format!("{}/healthz", server.base), None);
    assert_eq!(
        (health.status, health.text.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    server.wait_for_line("a write panicked");
}

#[test]
fn healthz_names_a_stuck_writer_and_stuck_readers() {
    let db = TestDb::new();
    // busy_timeout 1s: a batch or probe read counts as stuck after 2 s. One reader thread, so
    // one stalled read holds every read.
    let (server, scim) = server_with_faults(
        &db,
        &[("SCIMD_BUSY_TIMEOUT", "1s"), ("SCIMD_POOL_SIZE", "1")],
    );
    let health_url = format!("{}/healthz", server.base);
    assert_eq!(get(&health_url, None).status, 200);

    let (base, token) = (scim.base.clone(), scim.token.clone());
    let stalled = thread::spawn(move || {
        Scim { base, token }.with_headers(
            "POST",
            "/Users",
            Some(&json!({"userName": "slow"})),
            &[("x-scimd-test-fault", "stall-write=6000")],
        )
    });
    let unhealthy = wait_for_health(&health_url, |status, _| status == 503);
    assert_eq!(unhealthy.1["status"], "unavailable");
    assert!(
        unhealthy.1["writer"].as_str().unwrap().starts_with("stuck"),
        "{}",
        unhealthy.1
    );
    assert!(unhealthy.1.get("readers").is_none(), "{}", unhealthy.1);
    // The stalled write still commits, and health comes back.
    assert_eq!(stalled.join().unwrap().status, 201);
    wait_for_health(&health_url, |status, _| status == 200);

    let (base, token) = (scim.base.clone(), scim.token.clone());
    let stalled = thread::spawn(move || {
        Scim { base, token }.with_headers(
            "GET",
            "/Users",
            None,
            &[("x-scimd-test-fault", "stall-read=6000")],
        )
    });
    let unhealthy = wait_for_health(&health_url, |status, _| status == 503);
    assert!(
        unhealthy.1["readers"]
            .as_str()
            .unwrap()
            .starts_with("stuck"),
        "{}",
        unhealthy.1
    );
    assert!(unhealthy.1.get("writer").is_none(), "{}", unhealthy.1);
    assert_eq!(stalled.join().unwrap().status, 200);
    wait_for_health(&health_url, |status, _| status == 200);
}

/// Polls `/healthz` (bounded) until `done` holds; returns that answer.
fn wait_for_health(
    url: &str,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) -> (u16, serde_json::Value) {
    for _ in 0..100 {
        let r = get(url, None);
        let body: serde_json::Value = serde_json::from_str(&r.text).unwrap();
        if done(r.status, &body) {
            return (r.status, body);
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("/healthz never reached the expected state");
}

/// Removes the database file and its WAL and shared-memory files, as an operator cleaning up
/// would.
fn remove_database(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn a_removed_database_file_refuses_writes_and_is_never_recreated_by_serve() {
    let (db, server, scim) = scim_server("p");
    scim.create("/Users", &json!({"userName": "before"}));
    remove_database(&db.path);
    // Every write is refused, not acknowledged into the unlinked file.
    for i in 0..3 {
        let body = scim
            .post("/Users", &json!({"userName": format!("after{i}")}))
            .scim_error(503);
        assert!(body.get("scimType").is_none(), "{body}");
    }
    let health = get(&format!("{}/readyz", server.base), None);
    assert_eq!(health.status, 503, "{}", health.text);
    // Alive all the same: a restart would not fix it.
    let live = get(&format!("{}/healthz", server.base), None);
    assert_eq!(live.status, 200, "{}", live.text);
    let writer = health.json()["writer"].as_str().unwrap().to_string();
    assert!(writer.contains("removed or replaced"), "{writer}");
    server.wait_for_line("removed or replaced");
    let logged = server
        .logs()
        .iter()
        .filter(|l| l.contains("did not commit"))
        .count();
    assert_eq!(
        logged, 1,
        "one ERROR for a lasting failure, not one per request"
    );
    drop(server);
    // The next start does not create an empty database in its place.
    remove_database(&db.path);
    let err = db.fails(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("serve --create"), "{err}");
    assert!(!db.path.exists(), "serve created a database");
}

#[test]
fn a_database_file_replaced_while_serving_refuses_writes() {
    let (db, server, scim) = scim_server("p");
    scim.create("/Users", &json!({"userName": "kept"}));
    // A restore done wrong: another file moved into the database's place.
    let other = db.dir.path().join("other.db");
    std::fs::copy(&db.path, &other).unwrap();
    std::fs::rename(&other, &db.path).unwrap();
    scim.post("/Users", &json!({"userName": "lost"}))
        .scim_error(503);
    let health = get(&format!("{}/readyz", server.base), None);
    assert_eq!(health.status, 503, "{}", health.text);
    // Alive all the same: a restart would not fix it.
    let live = get(&format!("{}/healthz", server.base), None);
    assert_eq!(live.status, 200, "{}", live.text);
}

/// A size-limited tmpfs mounted for one test (root can mount here and in CI), unmounted when
/// dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "this test mounts a small tmpfs to fill its disk, which needs root"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_answers_507_logs_once_and_recovers_when_space_returns() {
    let disk = SmallDisk::mount("4m");
    let path = disk.path().join("scimd.db");
    let cli = |args: &[&str]| {
        let out = crate::harness::command(&path).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["provider", "add", "p"]);
    let (_, token) = crate::harness::token_in(&cli(&[
        "token",
        "create",
        "--provider",
        "p",
        "--valid-for",
        "1d",
    ]));
    let server = Server::start_with(&path, &[], &[]);
    let scim = Scim::new(&server, "p", &token);
    scim.create("/Users", &json!({"userName": "first"}));
    // Fill what is left of the disk.
    let filler = disk.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let big = "x".repeat(8 * 1024);
    let mut full = 0;
    for i in 0..50 {
        let r = scim.post(
            "/Users",
            &json!({"userName": format!("u{i}"), "title": big}),
        );
        if r.status == 507 {
            r.scim_error(507);
            full += 1;
        }
    }
    assert!(full > 0, "no write met the full disk");
    let health = get(&format!("{}/readyz", server.base), None);
    assert_eq!(health.status, 503, "{}", health.text);
    // Alive all the same: a restart would not fix it.
    let live = get(&format!("{}/healthz", server.base), None);
    assert_eq!(live.status, 200, "{}", live.text);
    assert!(
        health.json()["writer"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{}",
        health.text
    );
    let logged = server
        .logs()
        .iter()
        .filter(|l| l.contains("disk is full"))
        .count();
    assert_eq!(
        logged,
        1,
        "the cause is logged once, not per request: {:#?}",
        server
            .logs()
            .iter()
            .filter(|l| l.contains("disk is full"))
            .take(3)
            .collect::<Vec<_>>()
    );
    // Space returns: writes commit again by themselves, and health follows.
    std::fs::remove_file(&filler).unwrap();
    scim.create("/Users", &json!({"userName": "after"}));
    let health = get(&format!("{}/readyz", server.base), None);
    assert_eq!(health.status, 200, "{}", health.text);
    server.wait_for_line("writes commit again");
}

/// A database the server may read but not write (a read-only file, a read-only mount, a wrong
/// owner after a restore): reads are served, every write is a `503` SCIM error, `/healthz` says
/// why, and the failure is logged once. The server runs as `nobody` on a file owned by it with
/// mode 0444, which is how root's test can take write access away.
#[test]
fn a_read_only_database_serves_reads_and_refuses_writes() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let db = TestDb::new();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    {
        let server = Server::start_with(&db.path, &[], &[]);
        Scim::new(&server, "p", &token).create("/Users", &json!({"userName": "kept"}));
    }
    let mut add = crate::harness::command(&db.path)
        .args(["admin", "add", "alice", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(add.stdin.take().unwrap(), "correct horse battery").unwrap();
    }
    assert!(add.wait().unwrap().success());
    let dir = db.dir.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap_or_else(|e| {
            panic!("this test hands the database to `nobody`, which needs root: {e}")
        });
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let mut cmd = crate::harness::command(&db.path);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .uid(NOBODY)
        .gid(NOBODY);
    let server = Server::spawn(cmd);
    let scim = Scim::new(&server, "p", &token);
    let list = scim.get("/Users").expect(200);
    assert_eq!(list["Resources"][0]["userName"], "kept", "{list}");
    for i in 0..3 {
        let body = scim
            .post("/Users", &json!({"userName": format!("new{i}")}))
            .scim_error(503);
        assert!(body.get("scimType").is_none(), "{body}");
    }
    let health = get(&format!("{}/readyz", server.base), None);
    assert_eq!(health.status, 503, "{}", health.text);
    // Alive all the same: a restart would not fix it.
    let live = get(&format!("{}/healthz", server.base), None);
    assert_eq!(live.status, 200, "{}", live.text);
    let writer = health.json()["writer"].as_str().unwrap().to_string();
    assert!(writer.contains("cannot be written"), "{writer}");
    let logged = server
        .logs()
        .iter()
        .filter(|l| l.contains("did not commit"))
        .count();
    assert_eq!(
        logged, 1,
        "one ERROR for a lasting failure, not one per request"
    );
    assert_eq!(scim.get("/Users").expect(200)["totalResults"], 1);
    // The console can still be signed into, to read (the session is kept in memory).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let admin = server.admin();
    let login = agent
        .post(format!("{admin}/login"))
        .send_form([
            ("name", "alice"),
            ("password", "correct horse battery"),
            ("next", "/providers"),
        ])
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut page = agent
        .get(format!("{admin}/providers"))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.body_mut().read_to_string().unwrap().contains(">p<"));
}

/// The `-wal` file removed while serving (an operator "cleaning up"): writes are refused with
/// 503 and `/readyz` says so, and the commits it held, acknowledged already, are copied into the
/// database file before anything else happens, so even a SIGKILL then loses none of them.
#[test]
fn a_removed_wal_file_refuses_writes_and_loses_no_acknowledged_write() {
    let (db, server, scim) = scim_server("p");
    let mut acknowledged = Vec::new();
    for i in 0..80 {
        let name = format!("kept{i}");
        scim.create("/Users", &json!({"userName": name}));
        acknowledged.push(name);
    }
    let mut wal = db.path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::remove_file(&wal).unwrap();
    let body = scim
        .post("/Users", &json!({"userName": "after"}))
        .scim_error(503);
    assert!(body.get("scimType").is_none(), "{body}");
    let health = get(&format!("{}/readyz", server.base), None);
    assert_eq!(health.status, 503, "{}", health.text);
    assert!(health.text.contains("-wal"), "{}", health.text);
    server.wait_for_line("its commits were copied into the database file");
    // Killed, not stopped: nothing gets a chance to checkpoint.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // Nothing the log's index counts is missing from the database file (checked before
    // anything opens the database and starts a new log).
    let check = db.ok(&["db", "check"]);
    assert!(check.contains("write-ahead log: ok"), "{check}");
    let c = rusqlite::Connection::open(&db.path).unwrap();
    let mut names: Vec<String> = c
        .prepare("SELECT name FROM resources WHERE kind = 'User'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names.sort();
    acknowledged.sort();
    assert_eq!(names, acknowledged);
}

//! Durability: kill the server with SIGKILL in the middle of a concurrent write load, restart it
//! on the same file, and find every acknowledged write there and the database intact — several
//! rounds on one file, with a ledger of every acknowledged write.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::harness::{Server, TestDb, send, try_send};

/// What one writer got acknowledged: a created user, and the highest PATCHed counter.
struct Acked {
    id: String,
    counter: Option<u64>,
}

#[test]
fn acknowledged_writes_survive_repeated_sigkill() {
    let db = TestDb::new();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    for round in 0..3 {
        load_then_kill(&db, &token, &acked, round);
        check_ledger(&db, &token, &acked.lock().unwrap());
    }
}

/// Runs eight writers against a fresh server on `db` (creates, then PATCHes of a counter),
/// recording what is acknowledged in `acked`, and kills the server with SIGKILL mid-load.
fn load_then_kill(db: &TestDb, token: &str, acked: &Arc<Mutex<Vec<Acked>>>, round: usize) {
    let mut server = Server::start(db);
    let base = server.scim("p");
    let ops = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (base, token, acked, ops, stop) = (
            base.clone(),
            token.to_string(),
            acked.clone(),
            ops.clone(),
            stop.clone(),
        );
        writers.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"userName": format!("r{round}-w{w}-u{n}"), "title": "0"});
                let Ok(resp) = try_send("POST", &format!("{base}/Users"), &token, Some(&body), &[]) else {
                    return;
                };
                if resp.status != 201 {
                    return;
                }
                let id = resp.json()["id"].as_str().unwrap().to_string();
                let slot = {
                    let mut a = acked.lock().unwrap();
                    a.push(Acked { id: id.clone(), counter: None });
                    a.len() - 1
                };
                ops.fetch_add(1, Ordering::Relaxed);
                for counter in 1..=5u64 {
                    let patch = json!({"Operations": [{"op": "replace", "path": "title", "value": counter.to_string()}]});
                    let url = format!("{base}/Users/{id}");
                    let Ok(resp) = try_send("PATCH", &url, &token, Some(&patch), &[]) else {
                        return;
                    };
                    if resp.status != 200 {
                        return;
                    }
                    acked.lock().unwrap()[slot].counter = Some(counter);
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Kill once a good number of writes were acknowledged, while the writers keep going.
    while ops.load(Ordering::Relaxed) < 300 {
        std::thread::yield_now();
    }
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    let _ = server.child.wait();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.join();
    }
    drop(server);
}

/// The database is intact and holds every acknowledged write of every round so far.
fn check_ledger(db: &TestDb, token: &str, acked: &[Acked]) {
    let check = rusqlite::Connection::open(&db.path).unwrap();
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    // Every committed change has exactly one activity record, written by its own transaction:
    // one `created` per user, and one `patched` per PATCH that committed (each set the title
    // to the next counter), with the versions in order.
    let users: i64 = check
        .query_row(
            "SELECT count(*) FROM resources WHERE kind = 'User'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let created: i64 = check
        .query_row(
            "SELECT count(*) FROM activity WHERE action = 'created' AND resource_id IN
               (SELECT id FROM resources)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let orphans: i64 = check
        .query_row(
            "SELECT count(*) FROM activity WHERE resource_id NOT IN (SELECT id FROM resources)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        (created, orphans),
        (users, 0),
        "one created record per stored user"
    );
    let mut per_user = check
        .prepare(
            "SELECT r.id, json_extract(r.doc, '$.title'), r.version,
                    (SELECT count(*) FROM activity a WHERE a.resource_id = r.id
                       AND a.action = 'patched'),
                    (SELECT group_concat(a.version) FROM activity a WHERE a.resource_id = r.id)
             FROM resources r",
        )
        .unwrap();
    let rows: Vec<(String, String, i64, i64, String)> = per_user
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (id, title, version, patched, versions) in rows {
        let title: i64 = title.parse().unwrap();
        assert_eq!(
            patched, title,
            "{id}: {patched} patched records for {title} committed PATCHes"
        );
        let want: Vec<String> = (1..=version).map(|v| v.to_string()).collect();
        assert_eq!(versions, want.join(","), "{id}: record versions");
    }
    drop(per_user);
    drop(check);

    let server = Server::start(db);
    let base = server.scim("p");
    assert!(
        acked.len() >= 40,
        "the load ran: {} users acknowledged",
        acked.len()
    );
    for a in acked.iter() {
        let resp = send("GET", &format!("{base}/Users/{}", a.id), token, None, &[]);
        assert_eq!(resp.status, 200, "acknowledged create of {} lost", a.id);
        let stored: u64 = resp.json()["title"].as_str().unwrap().parse().unwrap();
        // A write in flight at the kill may have committed without its answer arriving.
        assert!(
            stored >= a.counter.unwrap_or(0),
            "acknowledged PATCH of {} lost: {stored} < {:?}",
            a.id,
            a.counter
        );
    }
}

#[test]
fn the_wal_stays_bounded_under_a_steady_write_load() {
    // Under continuous commits a checkpoint on another connection never reaches the end of the
    // WAL; without the writer finishing one now and then, the WAL file grows with every write.
    let db = TestDb::new();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let server = Server::start(&db);
    let base = server.scim("p");
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (base, token) = (base.clone(), token.clone());
            std::thread::spawn(move || {
                for n in 0..400 {
                    let body = json!({"userName": format!("w{w}-u{n}"),
                        "emails": [{"type": "work", "value": format!("w{w}-u{n}@example.com")}],
                        "title": "x".repeat(3000)});
                    assert_eq!(
                        send("POST", &format!("{base}/Users"), &token, Some(&body), &[]).status,
                        201
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // 3,200 users of over 3 KB each: more than 9 MB of documents alone (several times that in
    // WAL frames), written through a WAL the writer keeps near 2,000 pages (8 MB) however the
    // commits fall.
    let wal = std::fs::metadata(db.path.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let file = std::fs::metadata(&db.path).unwrap().len();
    assert!(file > 9_000_000, "database file {file} bytes");
    assert!(wal < 12 * 1024 * 1024, "WAL grew to {wal} bytes");
}

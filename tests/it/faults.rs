//! Injected faults (debug builds, `SCIMD_TEST_FAULTS=1`): a panicking write answers its own
//! request with a 500 SCIM error while the writer keeps serving everyone else, and `/healthz`
//! names a writer or reader that is stuck.

use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Scim, Server, TestDb, get};

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

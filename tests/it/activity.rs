//! The activity log over real HTTP: a record per change in the change's transaction, a record
//! per refused request, bounded records of refused authentications, `scimd activity` reading it
//! (also following a running server), values only when the provider allows, and retention.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Scim, Server, TestDb, command, get_bearer, patch_op};

fn records(db: &TestDb, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["activity", "--json", "--limit", "1000"];
    all.extend_from_slice(args);
    db.ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn actions(rs: &[Value]) -> Vec<String> {
    rs.iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect()
}

fn server(db: &TestDb, kind: &str) -> (Server, Scim) {
    db.ok(&["provider", "add", "p", "--type", kind]);
    let (_, token) = db.create_token("p", &[]);
    let server = Server::start_with(&db.path, &[], &[("SCIMD_ACTIVITY_INTERVAL", "1s")]);
    let scim = Scim::new(&server, "p", &token);
    (server, scim)
}

/// A user's history as Entra writes it: test connection, create, update, disable, group
/// membership, delete — one record each, with what changed and the version.
#[test]
fn a_resources_history_is_recorded_change_by_change() {
    let db = TestDb::new();
    let (_server, scim) = server(&db, "entra");
    scim.get("/Users?filter=userName%20eq%20%22cf4d78e8-cc4f-4d5d-b8b9-183561c0104a%22")
        .expect(200);
    let u = scim.create(
        "/Users",
        &json!({"userName": "ada@contoso.com", "active": true, "name": {"givenName": "Ada"},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}}),
    );
    let id = u["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");
    scim.patch(
        &path,
        json!([{"op": "Replace", "path": "title", "value": "Engineer"}]),
    )
    .expect(200);
    scim.patch(
        &path,
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .expect(200);
    scim.patch(
        &path,
        json!([{"op": "Replace", "path": "active", "value": "True"}]),
    )
    .expect(200);
    let g = scim.create("/Groups", &json!({"displayName": "Engineering"}));
    let gpath = format!("/Groups/{}", g["id"].as_str().unwrap());
    let add = scim.with_headers(
        "PATCH",
        &gpath,
        Some(&patch_op(
            json!([{"op": "Add", "path": "members", "value": [{"value": id}]}]),
        )),
        &[("X-Request-Id", "entra-req-42")],
    );
    assert_eq!(add.status, 204);
    assert_eq!(add.header("x-request-id"), Some("entra-req-42"));
    scim.patch(
        &gpath,
        json!([{"op": "Remove", "path": format!("members[value eq \"{id}\"]")}]),
    );
    scim.put(
        &path,
        &json!({"userName": "ada@contoso.com", "active": true}),
    )
    .expect(200);
    assert_eq!(scim.delete(&path).status, 204);

    let history = records(&db, &["--resource", &id]);
    assert_eq!(
        actions(&history),
        [
            "created",
            "patched",
            "deactivated",
            "reactivated",
            "replaced",
            "deleted"
        ]
    );
    let versions: Vec<i64> = history
        .iter()
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 7, 7],
        "group membership moved the version too"
    );
    assert_eq!(
        history[0]["changed"],
        json!([
            "userName",
            "active",
            "name",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
        ])
    );
    assert_eq!(history[1]["changed"], json!(["title"]));
    // What a PUT left out is cleared, in the order the stored document had it.
    assert_eq!(
        history[4]["changed"],
        json!([
            "name",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "title"
        ])
    );
    for r in &history {
        assert!(r["method"].as_str().is_some(), "{r}");
        assert!(r["token_id"].as_str().is_some_and(|t| t.len() == 16), "{r}");
        assert!(r["values"].is_null(), "values are off by default: {r}");
        assert_eq!(r["name"], "ada@contoso.com");
    }
    // By name: the user's and the group's.
    assert_eq!(records(&db, &["--user", "ADA@contoso.com"]).len(), 6);
    let group = records(&db, &["--group", "engineering"]);
    assert_eq!(
        actions(&group),
        ["created", "member added", "member removed"]
    );
    assert_eq!(group[1]["request_id"], "entra-req-42");
    assert_eq!(group[1]["status"], 204);
    // The connection test is recorded as such, first of all.
    let all = records(&db, &["--provider", "p"]);
    assert_eq!(all[0]["action"], "connection test");
    // The readable table.
    let table = db.ok(&["activity", "--resource", &id]);
    assert!(
        table.contains("deactivated") && table.contains("ada@contoso.com"),
        "{table}"
    );
    // Provider status.
    let show = db.ok(&["provider", "show", "p"]);
    assert!(
        show.contains("last write:") && !show.contains("last write:    never"),
        "{show}"
    );
    assert!(show.contains("last error:    none"), "{show}");
}

/// A request refused with 400, 404, 409 or 412 has its record, with the reason, and changes
/// nothing: no change record, no new version.
#[test]
fn refused_requests_are_recorded_with_their_reason_and_change_nothing() {
    let db = TestDb::new();
    let (_server, scim) = server(&db, "generic");
    let u = scim.create("/Users", &json!({"userName": "bob"}));
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let bad_patch = json!([{"op": "replace", "path": "nosuch", "value": 1}]);
    assert_eq!(scim.patch(&path, bad_patch).status, 400);
    assert_eq!(scim.get("/Users/does-not-exist").status, 404);
    assert_eq!(scim.post("/Users", &json!({"userName": "BOB"})).status, 409);
    let stale = scim.with_headers(
        "PUT",
        &path,
        Some(&json!({"userName": "bob", "title": "x"})),
        &[("If-Match", "W/\"99\"")],
    );
    assert_eq!(stale.status, 412);
    let refused = records(&db, &["--failed"]);
    let statuses: Vec<i64> = refused
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [400, 404, 409, 412]);
    assert_eq!(refused[0]["scim_type"], "invalidPath");
    assert!(refused[0]["detail"].as_str().unwrap().contains("nosuch"));
    assert!(refused[0]["body_bytes"].as_i64().unwrap() > 10);
    assert_eq!(refused[1]["resource_id"], "does-not-exist");
    assert_eq!(refused[2]["scim_type"], "uniqueness");
    assert!(refused.iter().all(|r| r["action"] == "refused"));
    // Nothing changed: one change record, the create; the user is still at version 1.
    let changes: Vec<Value> = records(&db, &[])
        .into_iter()
        .filter(|r| r["status"].as_i64() < Some(400))
        .collect();
    assert_eq!(actions(&changes), ["created"]);
    assert_eq!(scim.get(&path).expect(200)["meta"]["version"], "W/\"1\"");
}

/// A flood of bad tokens (made-up token ids, wrong secrets of a real one) adds a bounded
/// number of records: one per real token id and one for the provider's unknown tokens per
/// interval, counting every refusal.
#[test]
fn a_bad_token_flood_adds_a_bounded_number_of_records() {
    let db = TestDb::new();
    db.ok(&["provider", "add", "p", "--type", "generic"]);
    let (_, token) = db.create_token("p", &[]);
    // One interval for the whole flood (the server writes what it counted when it stops), so
    // the number of records does not depend on how long the flood takes on this machine.
    let mut server = Server::start_with(&db.path, &[], &[("SCIMD_ACTIVITY_INTERVAL", "1h")]);
    let scim = Scim::new(&server, "p", &token);
    let id = scim.token.split('_').nth(1).unwrap().to_string();
    let url = format!("{}/Users", scim.base);
    for i in 0..150 {
        let made_up = format!("scimd_{i:016x}_{}", "b".repeat(64));
        assert_eq!(get_bearer(&url, &made_up).status, 401);
        let wrong = format!("scimd_{id}_{i:064x}");
        let status = get_bearer(&url, &wrong).status;
        assert!(status == 401 || status == 429);
    }
    // No such provider: nothing to attribute them to.
    let other = url.replace("/p/", "/nope/");
    for _ in 0..20 {
        get_bearer(&other, "scimd_0000000000000000_x");
    }
    assert!(server.terminate());
    server.wait_for_line("stopped");
    let failed = records(&db, &["--failed"]);
    assert!(
        failed.iter().all(|r| r["action"] == "auth failed"),
        "{failed:?}"
    );
    // One for the unknown ids; for the real id one per answer (401, and 429 once its budget
    // of new secrets runs out).
    assert!(
        failed.len() <= 3,
        "{} records for 300 refusals: {failed:?}",
        failed.len()
    );
    let counted: i64 = failed.iter().map(|r| r["count"].as_i64().unwrap()).sum();
    assert_eq!(counted, 300);
    let unknown: i64 = failed
        .iter()
        .filter(|r| r["token_id"].is_null())
        .map(|r| r["count"].as_i64().unwrap())
        .sum();
    assert_eq!(unknown, 150, "made-up ids are counted together");
}

/// `scimd activity --follow` run beside the server prints records as the server commits them.
#[test]
fn follow_prints_records_committed_by_the_running_server() {
    let db = TestDb::new();
    let (_server, scim) = server(&db, "generic");
    scim.create("/Users", &json!({"userName": "before"}));
    let mut follow = command(&db.path)
        .args(["activity", "--follow", "--json", "--provider", "p"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(first["name"], "before");
    scim.create("/Users", &json!({"userName": "after"}));
    let next: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(
        (next["action"].as_str(), next["name"].as_str()),
        (Some("created"), Some("after"))
    );
    let _ = follow.kill();
    let _ = follow.wait();
}

/// Values are personal data: recorded only once the provider's `activity_values` is on.
#[test]
fn values_are_recorded_only_when_the_provider_allows() {
    let db = TestDb::new();
    let (_server, scim) = server(&db, "generic");
    let u = scim.create("/Users", &json!({"userName": "carol", "title": "A"}));
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let out = db.ok(&["provider", "set", "p", "--activity-values", "on"]);
    assert!(out.contains("activity values on"), "{out}");
    // The token's remembered record notices the change within a request.
    scim.get(&path).expect(200);
    scim.patch(
        &path,
        json!([{"op": "replace", "path": "title", "value": "B"}]),
    )
    .expect(200);
    let rs = records(&db, &["--resource", u["id"].as_str().unwrap()]);
    assert!(rs[0]["values"].is_null(), "{}", rs[0]);
    assert_eq!(rs[1]["values"], json!({"title": "B"}));
}

/// The cleanup policy of a 30-day retention keeping at most `records` per provider.
fn policy_keeping(records: u32) -> scimd::api::jobs::CleanupPolicy {
    scimd::api::jobs::CleanupPolicy {
        retention: Duration::from_secs(30 * 86_400),
        warn_within: Duration::from_secs(14 * 86_400),
        activity_retention: Duration::from_secs(30 * 86_400),
        audit_retention: Duration::from_secs(365 * 86_400),
        feed_retention: Duration::from_secs(7 * 86_400),
        activity_max_records: records,
    }
}

/// The cleanup job removes records past `activity_retention` and over `activity_max_records`
/// per provider, and nothing else (its clock injected).
#[test]
fn retention_removes_exactly_the_old_and_the_excess_records() {
    use scimd::api::jobs::cleanup_once;
    let db = TestDb::new();
    db.add_provider("a");
    db.add_provider("b");
    let now = chrono::Utc::now().timestamp();
    let day_ms = 86_400_000;
    {
        let c = rusqlite::Connection::open(&db.path).unwrap();
        let ins = |provider: &str, age_days: i64, n: i64| {
            for i in 0..n {
                c.execute(
                    "INSERT INTO activity (at, provider_id, action, status, detail)
                     SELECT ?1, id, 'created', 201, ?3 FROM providers WHERE name = ?2",
                    rusqlite::params![
                        now * 1000 - age_days * day_ms - i,
                        provider,
                        format!("{age_days}d")
                    ],
                )
                .unwrap();
            }
        };
        ins("a", 40, 7); // past a 30-day retention
        ins("a", 10, 5);
        ins("b", 1, 12); // recent, but over a cap of 10
    }
    let policy = policy_keeping(10);
    let report = cleanup_once(&db.store(), now, policy).unwrap();
    assert_eq!(report.activity_removed, 7 + 2);
    let left = records(&db, &[]);
    let per = |p: &str| left.iter().filter(|r| r["provider"] == p).count();
    assert_eq!((per("a"), per("b")), (5, 10));
    assert!(left.iter().all(|r| r["detail"] != "40d"));
    // Run again: nothing more to remove.
    assert_eq!(
        cleanup_once(&db.store(), now, policy)
            .unwrap()
            .activity_removed,
        0
    );
}

/// Changes and refusals are capped apart: a flood of refused binds and requests newer than
/// every change pushes out older refusals, never a change.
#[test]
fn refusals_never_push_changes_out_of_the_activity_log() {
    use scimd::api::jobs::cleanup_once;
    let db = TestDb::new();
    db.add_provider("a");
    let now = chrono::Utc::now().timestamp();
    {
        let c = rusqlite::Connection::open(&db.path).unwrap();
        let ins = |action: &str, status: i64, at: i64| {
            c.execute(
                "INSERT INTO activity (at, provider_id, action, status, detail)
                 SELECT ?1, id, ?2, ?3, ?2 FROM providers WHERE name = 'a'",
                rusqlite::params![at, action, status],
            )
            .unwrap();
        };
        for i in 0..4 {
            ins("created", 201, now * 1000 - 10_000 + i);
        }
        for i in 0..50 {
            ins("auth failed", 49, now * 1000 - 5_000 + i);
            ins("refused", 404, now * 1000 - 5_000 + i);
        }
    }
    let policy = policy_keeping(10);
    let report = cleanup_once(&db.store(), now, policy).unwrap();
    assert_eq!(report.activity_removed, 100 - 10);
    let left = records(&db, &[]);
    let with = |d: &str| left.iter().filter(|r| r["detail"] == d).count();
    assert_eq!(with("created"), 4, "every change is kept");
    assert_eq!(with("auth failed") + with("refused"), 10);
}

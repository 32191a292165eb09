//! The token cleanup job, run with an injected clock against the server's database file, and
//! the server's own periodic run of it.

use std::time::Duration;

use chrono::Utc;
use scimd::api::jobs::{CleanupPolicy, cleanup_once};

use crate::harness::{Server, TestDb, get_bearer};

const DAY: i64 = 86_400;

fn insert(db: &TestDb, provider: &str, expires: i64) -> (String, String) {
    db.insert_token(provider, expires - 100 * DAY, expires)
}

#[test]
fn cleanup_deletes_long_expired_tokens_and_reports_soon_expiring_ones() {
    let db = TestDb::new();
    db.add_provider("idp");
    let now = Utc::now().timestamp();
    let (long_dead, _) = insert(&db, "idp", now - 31 * DAY);
    let (recently_dead, _) = insert(&db, "idp", now - DAY);
    let (soon, soon_token) = insert(&db, "idp", now + 3 * DAY);
    let (fine, _) = insert(&db, "idp", now + 60 * DAY);
    let server = Server::start(&db);

    let policy = CleanupPolicy {
        retention: Duration::from_secs(30 * 86_400),
        warn_within: Duration::from_secs(14 * 86_400),
        activity_retention: Duration::from_secs(30 * 86_400),
        audit_retention: Duration::from_secs(365 * 86_400),
        feed_retention: Duration::from_secs(7 * 86_400),
        activity_max_records: 1_000_000,
    };
    let report = cleanup_once(&db.store(), now, policy).unwrap();
    // The server's own cleanup run at start-up may have deleted the long-dead token first.
    assert!(report.deleted <= 1);
    assert_eq!(
        report
            .expiring_soon
            .iter()
            .map(|t| &t.id)
            .collect::<Vec<_>>(),
        [&soon]
    );
    let listed = db.ok(&["token", "list"]);
    assert!(!listed.contains(&long_dead), "{listed}");
    for id in [&recently_dead, &soon, &fine] {
        assert!(listed.contains(id.as_str()), "{id} missing: {listed}");
    }
    // The server keeps honouring the remaining tokens.
    let url = format!("{}/ServiceProviderConfig", server.scim("idp"));
    assert_eq!(get_bearer(&url, &soon_token).status, 200);

    // Fifty days on (the clock is a parameter): the tokens that expired yesterday and in three
    // days are past their 30-day retention; the 60-day token is active and reported as expiring.
    let later = now + 50 * DAY;
    let report = cleanup_once(&db.store(), later, policy).unwrap();
    assert_eq!(report.deleted, 2);
    assert_eq!(
        report
            .expiring_soon
            .iter()
            .map(|t| &t.id)
            .collect::<Vec<_>>(),
        [&fine]
    );
    let much_later = now + 200 * DAY;
    let report = cleanup_once(&db.store(), much_later, policy).unwrap();
    assert_eq!(report.deleted, 1);
    assert!(db.ok(&["token", "list"]).contains("no tokens"));
    get_bearer(&url, &soon_token).scim_error(401);
}

#[test]
fn the_server_runs_cleanup_and_warns_about_expiring_tokens() {
    let db = TestDb::new();
    db.add_provider("idp");
    let now = Utc::now().timestamp();
    let (dead, _) = insert(&db, "idp", now - 40 * DAY);
    let (soon, _) = insert(&db, "idp", now + 2 * DAY);
    let server = Server::start_with(&db.path, &[], &[("SCIMD_CLEANUP_INTERVAL", "1h")]);
    // The job's first pass runs at start-up.
    let warning = server.wait_for_line("token expires in");
    assert!(
        warning.contains(&soon) && warning.contains("WARN"),
        "{warning}"
    );
    server.wait_for_line("deleted expired and revoked tokens");
    assert!(!db.ok(&["token", "list"]).contains(&dead));
}

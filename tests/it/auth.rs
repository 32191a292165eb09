//! Bearer-token authentication over real HTTP: every way a token can be bad gets 401.

use chrono::Utc;

use serde_json::{Value, json};

use crate::harness::{Server, TestDb, get, get_bearer, raw, send};

fn spc(server: &Server, provider: &str) -> String {
    format!("{}/ServiceProviderConfig", server.scim(provider))
}

/// Asserts the 401 shape: SCIM error, Bearer challenge.
fn assert_401(resp: &crate::harness::Resp) {
    resp.scim_error(401);
    let challenge = resp.www_authenticate.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate: {challenge:?}"
    );
}

/// Stores a token with any expiry, the way `token create` would store it.
fn insert_token(db: &TestDb, provider: &str, expires: i64) -> String {
    db.insert_token(provider, Utc::now().timestamp() - 3600, expires)
        .1
}

#[test]
fn valid_token_is_accepted_and_its_use_recorded() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (id, token) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    let resp = get_bearer(&spc(&server, "idp"), &token);
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.content_type, "application/scim+json");
    let body = resp.json();
    assert_eq!(
        body["meta"]["location"],
        format!("{}/ServiceProviderConfig", server.scim("idp"))
    );
    // The scheme name is case-insensitive (RFC 7235).
    assert_eq!(
        get(&spc(&server, "idp"), Some(&format!("bearer {token}"))).status,
        200
    );
    let listed = db.ok(&["token", "list"]);
    let row = listed.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(!row.contains("never"), "last used not recorded: {row}");
}

#[test]
fn every_bad_token_gets_401() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (_, good) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    let url = spc(&server, "idp");
    let (id, secret) = good
        .strip_prefix("scimd_")
        .unwrap()
        .split_once('_')
        .unwrap();
    let wrong_secret = format!("scimd_{id}_{}", "0".repeat(secret.len()));
    let unknown_id = format!("scimd_{}_{secret}", "0".repeat(id.len()));
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("empty header", Some(String::new())),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".into())),
        ("bearer without token", Some("Bearer".into())),
        ("not a scimd token", Some("Bearer abc.def.ghi".into())),
        (
            "truncated",
            Some(format!("Bearer {}", &good[..good.len() - 2])),
        ),
        ("unknown id", Some(format!("Bearer {unknown_id}"))),
        ("wrong secret", Some(format!("Bearer {wrong_secret}"))),
    ];
    for (what, header) in cases {
        let resp = get(&url, header.as_deref());
        assert_eq!(resp.status, 401, "{what}: {}", resp.text);
        assert_401(&resp);
    }
    // The good token still works after all that.
    assert_eq!(get_bearer(&url, &good).status, 200);
    // No secret ever reaches the log, not even a wrong one.
    let logs = server.logs().join("\n");
    assert!(!logs.contains(secret), "secret in logs");
    assert!(!logs.contains(&wrong_secret), "presented secret in logs");
}

#[test]
fn token_that_expired_a_second_ago_gets_401() {
    let db = TestDb::new();
    db.add_provider("idp");
    let now = Utc::now().timestamp();
    let expired = insert_token(&db, "idp", now - 1);
    let server = Server::start(&db);
    let resp = get_bearer(&spc(&server, "idp"), &expired);
    assert_401(&resp);
    assert!(resp.json()["detail"].as_str().unwrap().contains("expired"));
}

#[test]
fn expiry_takes_effect_on_the_next_request_despite_the_cache() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (id, token) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    let url = spc(&server, "idp");
    assert_eq!(get_bearer(&url, &token).status, 200);
    // Time passes: the token's expiry is now one second in the past.
    let past = Utc::now().timestamp() - 1;
    db.store()
        .call(move |c| {
            c.execute(
                "UPDATE credentials SET expires = ?1 WHERE id = ?2",
                rusqlite::params![past, id],
            )?;
            Ok(())
        })
        .unwrap();
    assert_401(&get_bearer(&url, &token));
}

#[test]
fn revocation_from_the_cli_while_serving_takes_effect_on_the_next_request() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (id, token) = db.create_token("idp", &[]);
    let (_, other) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    let url = spc(&server, "idp");
    assert_eq!(get_bearer(&url, &token).status, 200);
    let out = db.ok(&["token", "revoke", &id]);
    assert!(out.contains("revoked"), "{out}");
    let resp = get_bearer(&url, &token);
    assert_401(&resp);
    assert!(resp.json()["detail"].as_str().unwrap().contains("revoked"));
    assert_eq!(
        get_bearer(&url, &other).status,
        200,
        "other tokens unaffected"
    );
    let listed = db.ok(&["token", "list", "--provider", "idp"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "{listed}"
    );
    // Revoking twice is an error, not a silent success.
    assert!(
        db.fails(&["token", "revoke", &id])
            .contains("already revoked")
    );
}

#[test]
fn providers_are_isolated() {
    let db = TestDb::new();
    db.add_provider("a");
    db.add_provider("b");
    let (_, token_a) = db.create_token("a", &[]);
    let (_, token_b) = db.create_token("b", &[]);
    let server = Server::start(&db);
    assert_eq!(get_bearer(&spc(&server, "a"), &token_a).status, 200);
    assert_eq!(get_bearer(&spc(&server, "b"), &token_b).status, 200);
    assert_401(&get_bearer(&spc(&server, "b"), &token_a));
    assert_401(&get_bearer(&spc(&server, "a"), &token_b));
    assert_401(&get_bearer(&spc(&server, "nosuch"), &token_a));
    // Unknown paths under a provider need a token too: nothing is revealed without one.
    assert_401(&get(&format!("{}/Nothing", server.scim("a")), None));
    get_bearer(&format!("{}/Nothing", server.scim("a")), &token_a).scim_error(404);
}

#[test]
fn read_only_tokens_may_only_read() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (_, ro) = db.create_token("idp", &["--read-only"]);
    let (_, rw) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    assert_eq!(get_bearer(&spc(&server, "idp"), &ro).status, 200);
    let post = |token: &str| {
        raw(
            &server.addr(),
            &format!(
                "POST /scim/v2/idp/ServiceProviderConfig HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {token}\r\nContent-Type: application/scim+json\r\n\
                 Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            ),
        )
    };
    post(&ro).scim_error(403);
    // The same write with a read-write token passes authentication (and meets the 405 of
    // this read-only endpoint).
    post(&rw).scim_error(405);
    let listed = db.ok(&["token", "list"]);
    assert!(
        listed.contains("read-only") && listed.contains("read-write"),
        "{listed}"
    );
}

#[test]
fn a_remembered_token_is_refused_everywhere_once_revoked_and_nothing_is_written() {
    // After one successful request the server authenticates this token from memory; every
    // endpoint and method must still see the revocation on the very next request.
    let db = TestDb::new();
    db.add_provider("idp");
    let (id, token) = db.create_token("idp", &[]);
    let (_, other) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    let base = server.scim("idp");
    let user = send(
        "POST",
        &format!("{base}/Users"),
        &token,
        Some(&json!({"userName": "kept"})),
        &[],
    )
    .expect(201);
    let uid = user["id"].as_str().unwrap().to_string();
    let user_url = format!("{base}/Users/{uid}");
    // Before each request under test: the token works (and is remembered), then it is revoked.
    let set_revoked = |revoked: Option<i64>| {
        let id = id.clone();
        db.store()
            .call(move |c| {
                c.execute(
                    "UPDATE credentials SET revoked = ?1 WHERE id = ?2",
                    rusqlite::params![revoked, id],
                )?;
                Ok(())
            })
            .unwrap();
    };
    let remembered_then_revoked = || {
        set_revoked(None);
        assert_eq!(get_bearer(&user_url, &token).status, 200);
        set_revoked(Some(Utc::now().timestamp()));
    };

    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "changed"}]});
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]});
    let requests: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("{base}/ServiceProviderConfig"), None),
        ("GET", format!("{base}/Schemas"), None),
        ("GET", format!("{base}/ResourceTypes/User"), None),
        ("GET", format!("{base}/Nothing"), None),
        ("GET", user_url.clone(), None),
        (
            "GET",
            format!("{base}/Users?filter=userName%20eq%20%22kept%22"),
            None,
        ),
        ("GET", format!("{base}/Groups"), None),
        (
            "POST",
            format!("{base}/Users/.search"),
            Some(search.clone()),
        ),
        ("POST", format!("{base}/.search"), Some(search)),
        (
            "POST",
            format!("{base}/Users"),
            Some(json!({"userName": "new"})),
        ),
        (
            "POST",
            format!("{base}/Users"),
            Some(json!({"userName": 7})),
        ),
        (
            "PUT",
            user_url.clone(),
            Some(json!({"userName": "kept", "title": "changed"})),
        ),
        ("PATCH", user_url.clone(), Some(patch)),
        ("DELETE", user_url.clone(), None),
        ("DELETE", format!("{base}/Groups/nosuch"), None),
    ];
    for (method, url, body) in requests {
        remembered_then_revoked();
        let resp = send(method, &url, &token, body.as_ref(), &[]);
        assert_401(&resp);
        assert!(
            resp.json()["detail"].as_str().unwrap().contains("revoked"),
            "{method} {url}: {}",
            resp.text
        );
    }
    // Nothing the refused requests asked for happened.
    let after = get_bearer(&user_url, &other).expect(200);
    assert_eq!(after, get_bearer(&user_url, &other).expect(200));
    assert!(after.get("title").is_none(), "{after}");
    let all = get_bearer(&format!("{base}/Users"), &other).expect(200);
    assert_eq!(all["totalResults"], 1);
}

#[test]
fn a_type_change_while_serving_reaches_remembered_tokens() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (_, token) = db.create_token("idp", &[]);
    let server = Server::start(&db);
    let base = server.scim("idp");
    let group = send(
        "POST",
        &format!("{base}/Groups"),
        &token,
        Some(&json!({"displayName": "g"})),
        &[],
    )
    .expect(201);
    let url = format!("{base}/Groups/{}", group["id"].as_str().unwrap());
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "h"}]});
    assert_eq!(send("PATCH", &url, &token, Some(&patch), &[]).status, 200);
    db.ok(&["provider", "set", "idp", "--type", "entra"]);
    // The request that notices the change may still answer as before; the one after it
    // answers as an entra provider (204 for a group PATCH).
    let noticing = send("PATCH", &url, &token, Some(&patch), &[]).status;
    assert!(matches!(noticing, 200 | 204), "{noticing}");
    assert_eq!(send("PATCH", &url, &token, Some(&patch), &[]).status, 204);
}

#[test]
fn guessing_secrets_for_a_known_token_id_is_throttled_not_hashed() {
    let db = TestDb::new();
    db.add_provider("idp");
    // A token from before fingerprints: every new secret would cost argon2 without a budget.
    let (id, token) = db.insert_token_without_fingerprint("idp");
    let server = Server::start(&db);
    let url = spc(&server, "idp");
    assert_eq!(get_bearer(&url, &token).status, 200);
    // 30 different wrong secrets for the real id at once: a burst of them is checked (401),
    // the rest are refused before any hashing (429, retry shortly).
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let (url, guess) = (url.clone(), format!("scimd_{id}_{i:064x}"));
            std::thread::spawn(move || get_bearer(&url, &guess))
        })
        .collect();
    let answers: Vec<_> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    let throttled: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert!(
        answers.iter().all(|r| r.status == 401 || r.status == 429),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        throttled.len() >= 10,
        "only {} of 30 throttled",
        throttled.len()
    );
    let body = throttled[0].scim_error(429);
    assert!(body["detail"].as_str().unwrap().contains("retry"), "{body}");
    assert_eq!(throttled[0].header("retry-after"), Some("1"));
    // The token's holder is not slowed: its secret is already known.
    assert_eq!(get_bearer(&url, &token).status, 200);
    // Unknown ids cost nothing to refuse and stay 401.
    assert_401(&get_bearer(
        &url,
        &format!("scimd_0000000000000000_{:064x}", 1),
    ));
}

/// A token made today carries a fingerprint of its secret: a flood of wrong secrets for its
/// id, from the holder's own address, is refused at once (401, never 429: no argon2, no budget
/// spent), and the holder, not remembered yet as after a restart, gets through from that same
/// address during the flood. The log's totals count the refusals and no throttling.
#[test]
fn wrong_secrets_for_a_token_made_today_never_lock_its_holder_out() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (id, token) = db.create_token("idp", &[]);
    let mut server = Server::start(&db);
    let addr = server.addr();
    let path = "/scim/v2/idp/ServiceProviderConfig";
    for round in 0..3 {
        let statuses: Vec<u16> = (0..100)
            .map(|i| {
                let guess = format!("scimd_{id}_{:064x}", round * 1000 + i);
                get_from([127, 0, 0, 1], &addr, path, &guess).status
            })
            .collect();
        assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
        let r = get_from([127, 0, 0, 1], &addr, path, &token);
        assert_eq!(r.status, 200, "round {round}: {}", r.text);
    }
    assert!(server.terminate());
    server.wait_for_line("stopped");
    let totals: Vec<String> = server
        .logs()
        .into_iter()
        .filter(|l| l.contains("authentication refus") && l.contains("throttled="))
        .collect();
    assert!(
        totals
            .iter()
            .any(|l| l.contains(&format!("token={id}")) && l.contains("throttled=0")),
        "{totals:#?}"
    );
}

/// A GET sent from a chosen loopback source address.
fn get_from(source: [u8; 4], addr: &str, path: &str, token: &str) -> crate::harness::Resp {
    get_via(source, addr, path, token, "")
}

/// A GET from a given loopback address, with extra header lines (each ending in CRLF).
fn get_via(
    source: [u8; 4],
    addr: &str,
    path: &str,
    token: &str,
    headers: &str,
) -> crate::harness::Resp {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::from((source, 0)).into())
        .unwrap();
    let target: std::net::SocketAddr = addr.parse().unwrap();
    sock.connect(&target.into()).unwrap();
    let mut stream: std::net::TcpStream = sock.into();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    crate::harness::Resp {
        status,
        content_type: String::new(),
        www_authenticate: None,
        headers: Vec::new(),
        text,
    }
}

#[test]
fn a_guessing_flood_neither_locks_the_holder_out_nor_floods_the_log() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (id, token) = db.insert_token_without_fingerprint("idp");
    // A fresh server: the holder's secret is not remembered yet, as after every restart.
    let mut server = Server::start(&db);
    let addr = server.addr();
    let path = "/scim/v2/idp/ServiceProviderConfig";
    // Someone who knows the token id floods it with guesses from 127.0.0.1.
    let mut throttled = 0;
    for i in 0..200 {
        let guess = format!("scimd_{id}_{i:064x}");
        let r = get_from([127, 0, 0, 1], &addr, path, &guess);
        assert!(r.status == 401 || r.status == 429, "{}", r.text);
        throttled += usize::from(r.status == 429);
    }
    assert!(
        throttled > 150,
        "guesses beyond the burst are throttled: {throttled}"
    );
    // The holder, from another address, gets through during the flood.
    let r = get_from([127, 0, 0, 2], &addr, path, &token);
    assert_eq!(r.status, 200, "{}", r.text);
    // 200 refusals left one line as they happened and one line of totals at shutdown.
    assert!(server.terminate());
    server.wait_for_line("stopped");
    let logs = server.logs();
    let refused: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("authentication refus"))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(
        refused[1].contains("throttled=") && refused[1].contains(&format!("token={id}")),
        "{}",
        refused[1]
    );
    let per_request = logs
        .iter()
        .filter(|l| l.contains("status=401") || l.contains("status=429"))
        .count();
    assert!(
        per_request <= 1,
        "refused requests are not logged one by one: {per_request}"
    );
}

/// Behind a reverse proxy every request comes from the proxy's address. Listed in
/// `trusted_proxies`, the proxy's `X-Forwarded-For` keeps the budgets apart; unlisted, a client
/// cannot escape its budget by writing the header itself.
#[test]
fn behind_a_trusted_proxy_the_holder_gets_through_a_flood_and_forged_headers_do_not_help() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (id, token) = db.insert_token_without_fingerprint("idp");
    let path = "/scim/v2/idp/ServiceProviderConfig";
    let flood = |addr: &str, forwarded: &dyn Fn(usize) -> String| {
        (0..60)
            .filter(|i| {
                let guess = format!("scimd_{id}_{i:064x}");
                let r = get_via([127, 0, 0, 1], addr, path, &guess, &forwarded(*i));
                assert!(r.status == 401 || r.status == 429, "{}", r.text);
                r.status == 429
            })
            .count()
    };
    let proxied = Server::start_with(
        &db.path,
        &[],
        &[("SCIMD_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")],
    );
    let addr = proxied.addr();
    // The attacker's client, behind the proxy, puts its own guesses in front of the hop the
    // proxy adds: only the proxy's entry counts.
    let throttled = flood(&addr, &|i| {
        format!("X-Forwarded-For: 192.0.2.{i}, 198.51.100.66\r\n")
    });
    assert!(throttled > 40, "the flood is throttled: {throttled}");
    let holder = "X-Forwarded-For: 198.51.100.7\r\n";
    let r = get_via([127, 0, 0, 1], &addr, path, &token, holder);
    assert_eq!(r.status, 200, "{}", r.text);
    drop(proxied);
    // No proxy trusted: a different forged address on every guess changes nothing.
    let direct = Server::start(&db);
    let addr = direct.addr();
    let throttled = flood(&addr, &|i| format!("X-Forwarded-For: 192.0.2.{i}\r\n"));
    assert!(
        throttled > 40,
        "forged headers escape the budget: {throttled}"
    );
}

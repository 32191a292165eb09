//! The admin console over real HTTP: accounts from the command line, login and its limits,
//! sessions (idle and absolute expiry, logout, a new password), CSRF, the security headers,
//! escaping, bearer tokens refused, and the token flow from a form to a SCIM request.
//! (tests/browser/ drives the same pages in Chromium.)

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::harness::{GROUP, Scim, Server, TestDb, command, get_bearer};

const PASSWORD: &str = "correct horse battery";

/// A browser without a browser: keeps the console cookie, follows no redirect.
struct Browser {
    base: String,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[at..at + 64].to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn page(r: ureq::http::Response<ureq::Body>) -> Page {
    let mut r = r;
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect::<Vec<_>>();
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    Page {
        status: r.status().as_u16(),
        location: find("location"),
        set_cookie: find("set-cookie"),
        body: r.body_mut().read_to_string().unwrap_or_default(),
        headers,
    }
}

impl Browser {
    fn new(server: &Server) -> Browser {
        Browser {
            base: server.admin(),
            cookie: None,
        }
    }

    fn get(&self, path: &str) -> Page {
        let mut req = agent().get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", format!("scimd_console={c}"));
        }
        page(req.call().unwrap())
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut req = agent().post(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("Cookie", format!("scimd_console={c}"));
        }
        page(req.send_form(form.iter().copied()).unwrap())
    }

    fn login(&mut self, name: &str, password: &str) -> Page {
        let p = self.post(
            "/login",
            &[("name", name), ("password", password), ("next", "/")],
        );
        if let Some(c) = &p.set_cookie {
            let value = c.split(';').next().unwrap().split_once('=').unwrap().1;
            self.cookie = Some(value.to_string());
        }
        p
    }
}

fn add_admin(db: &TestDb, name: &str, password: &str) -> std::process::Output {
    let mut child = command(&db.path)
        .args(["admin", "add", name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

fn console() -> (TestDb, Server, Browser) {
    let db = TestDb::new();
    assert!(add_admin(&db, "alice", PASSWORD).status.success());
    let server = Server::start(&db);
    let browser = Browser::new(&server);
    (db, server, browser)
}

#[test]
fn admin_accounts_are_managed_from_the_command_line() {
    let db = TestDb::new();
    let out = add_admin(&db, "alice", "too short");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));
    assert!(add_admin(&db, "alice", PASSWORD).status.success());
    let again = add_admin(&db, "alice", PASSWORD);
    assert!(String::from_utf8_lossy(&again.stderr).contains("admin alice exists"));
    let list = db.ok(&["admin", "list"]);
    assert!(list.contains("alice") && list.contains("never"), "{list}");
    // Only a hash is stored.
    let stored: String = db
        .store()
        .call(|c| Ok(c.query_row("SELECT password_hash FROM admins", [], |r| r.get(0))?))
        .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(PASSWORD));
    db.ok(&["admin", "remove", "alice"]);
    assert!(db.ok(&["admin", "list"]).contains("no admin accounts"));
    assert!(
        db.fails(&["admin", "remove", "alice"])
            .contains("no admin named alice")
    );
}

#[test]
fn every_page_but_login_needs_a_session() {
    let (_db, _server, b) = console();
    for path in [
        "/",
        "/providers",
        "/providers/new",
        "/activity",
        "/settings",
        "/providers/x/Users",
    ] {
        let p = b.get(path);
        assert_eq!(p.status, 303, "{path}");
        assert!(
            p.location.as_deref().unwrap().starts_with("/login?next="),
            "{path}"
        );
    }
    // A change without a session is refused outright.
    assert_eq!(b.post("/providers", &[("name", "x")]).status, 403);
    let login = b.get("/login?next=/settings");
    assert_eq!(login.status, 200);
    assert!(login.body.contains("value=\"/settings\""));
    // The assets the login page needs are public.
    assert_eq!(b.get("/static/console.css").status, 200);
}

#[test]
fn login_sets_a_strict_http_only_cookie_and_pages_carry_the_security_headers() {
    let (_db, _server, mut b) = console();
    let p = b.login("alice", PASSWORD);
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/"));
    let cookie = p.set_cookie.unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let home = b.get("/");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Dashboard"));
    let csp = home.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(home.header("x-frame-options"), Some("DENY"));
    assert_eq!(home.header("cache-control"), Some("no-store"));
    assert!(!home.body.contains("<script>"), "no inline script");
    // A login link cannot send the admin to another site afterwards.
    let other = Browser {
        base: b.base.clone(),
        cookie: None,
    };
    let p = other.post(
        "/login",
        &[
            ("name", "alice"),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ],
    );
    assert_eq!(p.location.as_deref(), Some("/"));
}

#[test]
fn wrong_passwords_are_refused_and_then_limited_per_account() {
    let (_db, server, mut b) = console();
    for _ in 0..5 {
        let p = b.login("alice", "not the password at all");
        assert_eq!(p.status, 401);
        assert!(p.body.contains("Wrong account name or password."));
        assert!(p.set_cookie.is_none());
    }
    // The sixth try is not even checked, right password or not.
    let p = b.login("alice", PASSWORD);
    assert_eq!(p.status, 429);
    assert!(p.body.contains("Too many failed logins"), "{}", p.body);
    // An unknown account gets the same answer as a wrong password.
    let p = b.login("mallory", PASSWORD);
    assert_eq!(p.status, 401);
    assert!(p.body.contains("Wrong account name or password."));
    server.wait_for_line("admin console login failed");
}

#[test]
fn forms_without_the_session_csrf_token_change_nothing() {
    let (db, _server, mut b) = console();
    b.login("alice", PASSWORD);
    let csrf = b.get("/providers/new").csrf();
    for bad in ["", "0000", &"a".repeat(64)] {
        let p = b.post(
            "/providers",
            &[("csrf", bad), ("name", "okta"), ("kind", "generic")],
        );
        assert_eq!(p.status, 403, "csrf {bad:?}");
        assert!(p.body.contains("did not come from the console"));
    }
    assert!(
        db.ok(&["provider", "list"])
            .contains("no identity providers")
    );
    let p = b.post(
        "/providers",
        &[("csrf", &csrf), ("name", "okta"), ("kind", "generic")],
    );
    assert_eq!(p.status, 303);
    // To the new provider's page, which confirms what was done.
    assert_eq!(
        p.location.as_deref(),
        Some("/providers/okta?done=provider-added&what=okta")
    );
    // A login posted from another site's page is refused.
    let foreign = agent()
        .post(format!("{}/login", b.base))
        .header("Origin", "https://evil.example")
        .send_form([("name", "alice"), ("password", PASSWORD)])
        .unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
}

#[test]
fn bearer_tokens_do_not_open_the_console_and_sessions_do_not_open_scim() {
    let (db, server, mut b) = console();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let p = page(
        agent()
            .get(format!("{}/", b.base))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap(),
    );
    assert_eq!(p.status, 401);
    assert!(p.body.contains("does not take SCIM bearer tokens"));
    b.login("alice", PASSWORD);
    let scim = agent()
        .get(format!("{}/Users", server.scim("p")))
        .header(
            "Cookie",
            format!("scimd_console={}", b.cookie.clone().unwrap()),
        )
        .call()
        .unwrap();
    assert_eq!(scim.status().as_u16(), 401);
    // Nor is the console on the SCIM port.
    assert_eq!(
        get_bearer(&format!("{}/settings", server.base), &token).status,
        404
    );
}

#[test]
fn sessions_end_on_logout_idle_lifetime_and_a_new_password() {
    let (db, _server, mut b) = console();
    b.login("alice", PASSWORD);
    let csrf = b.get("/").csrf();
    let p = b.post("/logout", &[("csrf", &csrf)]);
    assert_eq!(p.status, 303);
    assert!(p.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(b.get("/").status, 303, "the old cookie no longer works");

    // Idle: the session's last request moved 31 minutes into the past (time injected in the
    // database; the default idle timeout is 30 minutes).
    b.login("alice", PASSWORD);
    assert_eq!(b.get("/").status, 200);
    let age = |column: &str, secs: i64| {
        let sql = format!("UPDATE admin_sessions SET {column} = {column} - {secs}");
        db.store().call(move |c| Ok(c.execute(&sql, [])?)).unwrap();
    };
    age("last_seen", 31 * 60);
    assert_eq!(b.get("/").status, 303);

    // Absolute: busy all along, but logged in 12 hours and a minute ago.
    b.login("alice", PASSWORD);
    age("created", 12 * 3600 + 60);
    assert_eq!(b.get("/").status, 303);

    // A new password ends every session of the account.
    b.login("alice", PASSWORD);
    assert_eq!(b.get("/").status, 200);
    let mut child = command(&db.path)
        .args(["admin", "passwd", "alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "another good password").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(b.get("/").status, 303);
    assert_eq!(b.login("alice", PASSWORD).status, 401);
    assert_eq!(b.login("alice", "another good password").status, 303);
}

#[test]
fn a_token_made_in_the_console_works_for_scim_until_revoked() {
    let (_db, server, mut b) = console();
    b.login("alice", PASSWORD);
    let csrf = b.get("/providers/new").csrf();
    b.post(
        "/providers",
        &[
            ("csrf", &csrf),
            ("name", "entra"),
            ("description", "Contoso tenant"),
            ("kind", "entra"),
        ],
    );
    let tab = b.get("/providers/entra");
    assert!(tab.body.contains(&server.scim("entra")), "the SCIM URL");
    assert!(tab.body.contains("Entra ID"));
    let made = b.post(
        "/providers/entra/tokens",
        &[
            ("csrf", &csrf),
            ("description", "provisioning"),
            ("validity", "90d"),
        ],
    );
    // The form redirects to the page that shows the secret, once: a reload shows it no more
    // and makes no second token.
    assert_eq!(made.status, 303);
    let reveal = made.location.clone().unwrap();
    assert!(reveal.contains("/created?reveal="), "{reveal}");
    let made = b.get(&reveal);
    assert_eq!(made.status, 200);
    assert!(made.body.contains("will not be shown again"));
    assert_eq!(made.header("cache-control"), Some("no-store"));
    let again = b.get(&reveal);
    assert_eq!(again.status, 200);
    assert!(!again.body.contains("scimd_"), "{}", again.body);
    assert!(again.body.contains("was shown once"), "{}", again.body);
    assert_eq!(again.header("cache-control"), Some("no-store"));
    let at = made.body.find("scimd_").unwrap();
    let token: String = made.body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let scim = Scim::new(&server, "entra", &token);
    scim.create("/Users", &json!({"userName": "<script>alert(1)</script>"}));
    // The token is listed without its secret, with its use.
    let tab = b.get("/providers/entra");
    assert!(!tab.body.contains(&token));
    assert!(tab.body.contains("provisioning"));
    // The user shows as text, never as markup; its page has its activity.
    let users = b.get("/providers/entra/Users?q=%3Cscript");
    assert!(
        users.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        users.body
    );
    assert!(!users.body.contains("<script>alert"));
    let id = scim.get("/Users").json()["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = b.get(&format!("/providers/entra/Users/{id}"));
    assert!(
        detail.body.contains("created"),
        "activity history: {}",
        detail.body
    );
    // Revoked: the next SCIM request is refused.
    let token_id = token.split('_').nth(1).unwrap().to_string();
    let confirm = b.get(&format!("/providers/entra/tokens/{token_id}/revoke"));
    assert!(confirm.body.contains("stops working at once"));
    let p = b.post(
        &format!("/providers/entra/tokens/{token_id}/revoke"),
        &[("csrf", &csrf)],
    );
    assert_eq!(p.status, 303);
    assert_eq!(scim.get("/Users").status, 401);
}

#[test]
fn bad_input_gets_a_clear_page_not_a_crash() {
    let (_db, _server, mut b) = console();
    b.login("alice", PASSWORD);
    let csrf = b.get("/").csrf();
    let p = b.post(
        "/providers",
        &[("csrf", &csrf), ("name", "a b"), ("kind", "generic")],
    );
    assert_eq!(p.status, 400);
    assert!(p.body.contains("invalid provider name"), "{}", p.body);
    b.post(
        "/providers",
        &[("csrf", &csrf), ("name", "okta"), ("kind", "generic")],
    );
    let dup = b.post(
        "/providers",
        &[("csrf", &csrf), ("name", "OKTA"), ("kind", "generic")],
    );
    assert_eq!(dup.status, 400);
    let past = b.post(
        "/providers/okta/tokens",
        &[
            ("csrf", &csrf),
            ("validity", "date"),
            ("until", "2001-01-01"),
        ],
    );
    assert_eq!(past.status, 400);
    assert!(past.body.contains("not in the future"), "{}", past.body);
    let filter = b.get("/providers/okta/Users?filter=userName%20eq");
    assert_eq!(filter.status, 200);
    assert!(filter.body.contains("class=\"error\""), "{}", filter.body);
    assert_eq!(b.get("/providers/nope").status, 404);
    assert_eq!(b.get("/nowhere").status, 404);
    let schema = b.post(
        "/providers/okta/schemas",
        &[
            ("csrf", &csrf),
            ("kind", "User"),
            ("definition", "{not json"),
        ],
    );
    assert_eq!(schema.status, 400);
}

/// A raw request sent from another loopback address (`127.0.0.N`); the whole answer.
fn send_from(base: &str, n: u8, request: &str) -> String {
    use socket2::{Domain, Socket, Type};
    use std::io::Read;
    let to: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, n], 0)).into())
        .unwrap();
    s.connect(&to.into()).unwrap();
    let mut tcp: std::net::TcpStream = s.into();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    answer
}

/// The head of a login POST whose body is `len` bytes.
fn login_head(base: &str, len: usize) -> String {
    let addr = base.trim_start_matches("http://");
    format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

/// A login POSTed from another loopback address (`127.0.0.N`): the status code, the
/// `Location` header, if any, and the answer's size.
fn login_from(base: &str, n: u8, form: &str) -> (u16, Option<String>, usize) {
    let answer = send_from(base, n, &format!("{}{form}", login_head(base, form.len())));
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let location = answer
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or(l.strip_prefix("Location: "))
        })
        .map(str::to_string);
    (status, location, answer.len())
}

/// Guesses from one address lock an account there only: the admin signs in from another.
/// A name no admin can have is neither kept, logged whole nor shown back; `next` is followed
/// only as a plain local path (no tab, line break or second slash a browser would read as
/// another site).
#[test]
fn the_login_form_locks_per_address_and_bounds_what_it_keeps_and_follows() {
    let (_db, server, b) = console();
    let wrong = "name=alice&password=not+the+password+at+all&next=%2F";
    for _ in 0..5 {
        assert_eq!(login_from(&b.base, 2, wrong).0, 401);
    }
    let right = "name=alice&password=correct+horse+battery&next=%2F";
    assert_eq!(login_from(&b.base, 2, right).0, 429, "locked from there");
    assert_eq!(login_from(&b.base, 3, right).0, 303, "not from elsewhere");

    // A 15 KB name: refused like a wrong password, not echoed, logged short.
    let huge = format!("name={}&password=x&next=%2F", "n".repeat(15_000));
    let (status, _, size) = login_from(&b.base, 4, &huge);
    assert_eq!(status, 401);
    assert!(size < 10_000, "an answer of {size} bytes");
    server.wait_for_line("admin console login failed");
    assert!(server.logs().iter().all(|l| l.len() < 2000));
    // Over the login form's 16 KiB it is not read at all: answered from its head alone.
    let answer = send_from(&b.base, 4, &login_head(&b.base, 900_000));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.len() < 10_000, "an answer of {} bytes", answer.len());

    for next in [
        "/%09/evil.example",
        "/%0d%0a/evil.example",
        "%2F%0aSet-Cookie:x=1",
        "/\\evil.example",
    ] {
        let form = format!("name=alice&password=correct+horse+battery&next={next}");
        let (status, location, _) = login_from(&b.base, 5, &form);
        assert_eq!((status, location.as_deref()), (303, Some("/")), "{next}");
    }
    let form = "name=alice&password=correct+horse+battery&next=%2Fsettings%3Fa%3Db";
    assert_eq!(
        login_from(&b.base, 5, form).1.as_deref(),
        Some("/settings?a=b")
    );
}

/// The dashboard warns of every credential that expires within `token_expiry_warning`: SCIM
/// tokens and LDAP service accounts alike, and only those.
#[test]
fn the_dashboard_warns_of_tokens_and_ldap_accounts_that_expire_soon() {
    let (db, _server, mut b) = console();
    db.add_provider("contoso");
    db.create_token("contoso", &["--valid-for", "3d", "--description", "short"]);
    db.create_token("contoso", &["--valid-for", "90d", "--description", "long"]);
    db.ok(&[
        "ldap",
        "account",
        "add",
        "nas",
        "--provider",
        "contoso",
        "--valid-for",
        "5d",
    ]);
    db.ok(&[
        "ldap",
        "account",
        "add",
        "wiki",
        "--provider",
        "contoso",
        "--valid-for",
        "300d",
    ]);
    b.login("alice", PASSWORD);
    let home = b.get("/");
    assert!(
        home.body.contains("Credentials expiring within 14d"),
        "{}",
        home.body
    );
    assert!(home.body.contains("(short)"));
    assert!(!home.body.contains("(long)"));
    assert!(home.body.contains("LDAP service account <code>nas</code>"));
    assert!(!home.body.contains("<code>wiki</code>"));

    // The provider's page lists its LDAP service accounts beside its tokens, under the same
    // warning rule.
    let page = b.get("/providers/contoso");
    let ldap = &page.body[page.body.find("id=\"ldap\"").expect("an LDAP section")..];
    assert!(
        ldap.contains("<code>nas</code>") && ldap.contains("<code>wiki</code>"),
        "{ldap}"
    );
    assert_eq!(ldap.matches("expires soon").count(), 1, "{ldap}");
}

/// The audit log as `scimd audit --json` prints it (oldest first), one record per value.
fn audit(db: &TestDb, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    db.ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn actions(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["actor"].as_str().unwrap().split(':').next().unwrap(),
                r["action"].as_str().unwrap(),
                r["provider"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

/// Admin actions from the command line and from the console write one audit record each, in
/// the change's transaction (a refused change writes none); records name who acted and from
/// where, and outlive a removed provider; the console's audit page shows them escaped.
#[test]
fn admin_actions_at_both_doors_are_audited_and_outlive_their_provider() {
    let (db, server, mut b) = console();
    db.ok(&["provider", "add", "okta", "--type", "generic"]);
    db.create_token(
        "okta",
        &["--valid-for", "30d", "--description", "<b>okta</b>"],
    );
    db.ok(&["ldap", "account", "add", "nas", "--provider", "okta"]);
    db.ok(&["provider", "set", "okta", "--scim-passwords", "ignore"]);
    // Refused changes leave no record.
    db.fails(&["provider", "add", "OKTA"]);
    db.fails(&["provider", "remove", "nobody"]);
    let before = audit(&db, &[]);
    assert_eq!(
        actions(&before),
        [
            "cli admin added -",
            "cli provider added okta",
            "cli token created okta",
            "cli LDAP account created okta",
            "cli provider changed okta",
        ]
    );
    assert!(
        before[4]["detail"]
            .as_str()
            .unwrap()
            .contains("SCIM passwords ignore"),
        "{}",
        before[4]
    );

    assert_eq!(b.login("alice", "wrong").status, 401);
    assert_eq!(b.login("alice", PASSWORD).status, 303);
    let csrf = b.get("/providers/new").csrf();
    b.post(
        "/providers",
        &[
            ("csrf", &csrf),
            ("name", "entra"),
            ("description", ""),
            ("kind", "entra"),
        ],
    );
    let made = b.post(
        "/providers/entra/tokens",
        &[
            ("csrf", &csrf),
            ("description", "sync"),
            ("validity", "90d"),
        ],
    );
    let made = b.get(made.location.as_deref().unwrap());
    let at = made.body.find("scimd_").unwrap();
    let token_id = made.body[at..].split('_').nth(1).unwrap().to_string();
    let rotated = b.post(
        &format!("/providers/entra/tokens/{token_id}/rotate"),
        &[("csrf", &csrf), ("overlap", "1h")],
    );
    assert_eq!(rotated.status, 303);
    let rotated = b.get(rotated.location.as_deref().unwrap());
    assert!(
        rotated.body.contains("keeps working until"),
        "{}",
        rotated.body
    );
    b.post(
        "/providers/okta/remove",
        &[("csrf", &csrf), ("confirm", "okta")],
    );
    b.post("/logout", &[("csrf", &csrf)]);

    let all = audit(&db, &[]);
    assert_eq!(
        actions(&all[before.len()..]),
        [
            "console console login refused -",
            "console console login -",
            "console provider added entra",
            "console token created entra",
            "console token rotated entra",
            "console provider removed okta",
            "console console logout -",
        ]
    );
    let login = &all[before.len() + 1];
    assert_eq!(login["actor"], "console:alice");
    assert_eq!(login["client"], "127.0.0.1");
    assert_eq!(all[before.len() + 4]["target"], token_id.as_str());
    // The removed provider's records stay, findable by its name.
    let okta = audit(&db, &["--provider", "okta"]);
    assert_eq!(okta.len(), 5, "{okta:?}");
    assert!(
        okta.iter()
            .any(|r| r["detail"].as_str().unwrap().contains("<b>okta</b>"))
    );

    // The console shows them, as text.
    b.login("alice", PASSWORD);
    let page = b.get("/audit?provider=okta");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("provider removed"), "{}", page.body);
    assert!(page.body.contains("&lt;b&gt;okta&lt;/b&gt;"));
    assert!(!page.body.contains("<b>okta</b>"));
    assert!(!page.body.contains("<td>entra</td>"), "only okta's records");
    assert!(page.body.contains("<td>okta</td>"));
    let table = audit(&db, &["--limit", "2"]);
    assert_eq!(
        actions(&table),
        ["console console logout -", "console console login -"]
    );
    drop(server);
}

/// The provider page shows its LDAP tree (base DN, POSIX identities, its own attributes) and
/// revokes a service account after a confirmation, audited; an account of another provider is
/// not found under this one.
#[test]
fn the_provider_page_shows_ldap_settings_and_revokes_service_accounts() {
    let (db, _server, mut b) = console();
    db.add_provider("contoso");
    db.add_provider("other");
    db.ok(&[
        "ldap",
        "posix",
        "--provider",
        "contoso",
        "--on",
        "--shell",
        "/bin/zsh",
    ]);
    db.ok(&[
        "ldap",
        "map",
        "--provider",
        "contoso",
        "employeeType",
        "title",
    ]);
    let out = db.ok(&["ldap", "account", "add", "nas", "--provider", "contoso"]);
    assert!(out.contains("bind DN"), "{out}");
    let list = db.ok(&["ldap", "account", "list", "--provider", "contoso"]);
    let id = list
        .lines()
        .find(|l| l.contains(" nas "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    db.ok(&["ldap", "account", "add", "wiki", "--provider", "other"]);
    let other_list = db.ok(&["ldap", "account", "list", "--provider", "other"]);
    let other_id = other_list
        .lines()
        .find(|l| l.contains(" wiki "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();

    b.login("alice", PASSWORD);
    let page = b.get("/providers/contoso");
    let ldap = &page.body[page.body.find("id=\"ldap\"").expect("an LDAP section")..];
    assert!(ldap.contains("<code>dc=contoso,dc=scimd</code>"), "{ldap}");
    assert!(ldap.contains("/bin/zsh"), "{ldap}");
    assert!(ldap.contains("<code>employeeType</code>"), "{ldap}");
    assert!(
        ldap.contains(&format!("/ldap-accounts/{id}/revoke")),
        "{ldap}"
    );

    let confirm = b.get(&format!("/providers/contoso/ldap-accounts/{id}/revoke"));
    assert_eq!(confirm.status, 200);
    assert!(
        confirm.body.contains("stops working at once"),
        "{}",
        confirm.body
    );
    assert_eq!(
        b.get(&format!(
            "/providers/contoso/ldap-accounts/{other_id}/revoke"
        ))
        .status,
        404
    );
    let csrf = confirm.csrf();
    let done = b.post(
        &format!("/providers/contoso/ldap-accounts/{id}/revoke"),
        &[("csrf", &csrf)],
    );
    assert_eq!(done.status, 303);
    let list = db.ok(&["ldap", "account", "list", "--provider", "contoso"]);
    assert!(list.contains("revoked"), "{list}");
    let page = b.get("/providers/contoso");
    assert!(!page.body.contains(&format!("/ldap-accounts/{id}/revoke")));
    let audit = db.ok(&["audit", "--provider", "contoso"]);
    assert!(audit.contains("LDAP service account revoked"), "{audit}");
    assert!(audit.contains("console:alice"), "{audit}");
}

/// An LDAP service account made in the console: the form redirects to its bind DN and
/// password, shown once; the password binds; a bad name or a taken one is refused with the
/// form's page, saying why.
#[test]
fn a_service_account_made_in_the_console_binds_and_its_password_is_shown_once() {
    let db = TestDb::new();
    assert!(add_admin(&db, "alice", PASSWORD).status.success());
    db.add_provider("contoso");
    let server = Server::start_with(
        &db.path,
        &[],
        &[
            ("SCIMD_LDAP_LISTEN", "127.0.0.1:0"),
            ("SCIMD_LDAP_PLAINTEXT_LOOPBACK", "on"),
        ],
    );
    let mut b = Browser::new(&server);
    b.login("alice", PASSWORD);
    let csrf = b.get("/providers/contoso").csrf();
    let made = b.post(
        "/providers/contoso/ldap-accounts",
        &[("csrf", &csrf), ("name", "grafana"), ("validity", "90d")],
    );
    assert_eq!(made.status, 303, "{}", made.body);
    let reveal = made.location.clone().unwrap();
    let page = b.get(&reveal);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(
        page.body
            .contains("cn=grafana,ou=services,dc=contoso,dc=scimd"),
        "{}",
        page.body
    );
    let at = page
        .body
        .find("id=\"account-secret\"")
        .expect("the password field");
    let password: String = page.body[at..]
        .split("value=\"")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(password.len(), 64, "{}", &page.body[at..at + 200]);
    let again = b.get(&reveal);
    assert!(!again.body.contains(&password) && again.body.contains("was shown once"));
    let out = std::process::Command::new("ldapwhoami")
        .args(["-x", "-H", &server.ldap_url("ldap")])
        .args([
            "-D",
            "cn=grafana,ou=services,dc=contoso,dc=scimd",
            "-w",
            &password,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, why) in [
        ("bad name!", "invalid account name"),
        ("grafana", "already has"),
    ] {
        let refused = b.post(
            "/providers/contoso/ldap-accounts",
            &[("csrf", &csrf), ("name", name), ("validity", "90d")],
        );
        assert_eq!(refused.status, 400, "{name}");
        assert!(refused.body.contains(why), "{name}: {}", refused.body);
    }
    let audit = db.ok(&["audit", "--provider", "contoso"]);
    assert!(
        audit.contains("LDAP account created") && audit.contains("console:alice"),
        "{audit}"
    );
}

/// A token rotated out still works until its overlap ends, as planned: the provider page says
/// "rotated out" and what replaced it, offers no second rotation, and the dashboard does not
/// warn that it expires; rotating it again is refused, naming the token to rotate instead.
#[test]
fn a_rotated_out_token_is_no_false_alarm() {
    let (db, _server, mut b) = console();
    db.add_provider("contoso");
    let (old, _) = db.create_token("contoso", &["--valid-for", "90d", "--description", "first"]);
    let out = db.ok(&["token", "rotate", &old, "--overlap", "1h"]);
    let new = crate::harness::token_in(&out).0;
    let again = db.fails(&["token", "rotate", &old]);
    assert!(again.contains(&format!("rotate {new} instead")), "{again}");
    b.login("alice", PASSWORD);
    let home = b.get("/");
    assert!(
        !home.body.contains(&old),
        "no warning for the rotated-out token: {}",
        home.body
    );
    let page = b.get("/providers/contoso");
    assert!(page.body.contains("rotated out"), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("replaced by <code>{new}</code>")),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&format!("/tokens/{old}/rotate")),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("/tokens/{old}/revoke")));
    assert!(page.body.contains(&format!("/tokens/{new}/rotate")));
    assert!(
        page.body.contains("<th scope=\"col\">Actions</th>"),
        "{}",
        page.body
    );
}

/// Admin accounts managed in the console: the last one and your own cannot be removed, a new
/// one logs in, and the audit log names who did each.
#[test]
fn admin_accounts_are_managed_in_the_console_within_limits() {
    let (db, _server, mut b) = console();
    b.login("alice", PASSWORD);
    let csrf = b.get("/settings").csrf();
    // Your own account (here also the last one) stays.
    let p = b.post("/settings/admins/alice/remove", &[("csrf", &csrf)]);
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(p.body.contains("your own account"), "{}", p.body);
    // A short password, or two that differ, add nothing.
    for (secret, again, why) in [
        ("short", "short", "at least 12 characters"),
        ("a long enough one", "another long one", "differ"),
    ] {
        let p = b.post(
            "/settings/admins",
            &[
                ("csrf", &csrf),
                ("name", "bob"),
                ("secret", secret),
                ("again", again),
            ],
        );
        assert_eq!(p.status, 400, "{}", p.body);
        assert!(p.body.contains(why), "{why}: {}", p.body);
    }
    let p = b.post(
        "/settings/admins",
        &[
            ("csrf", &csrf),
            ("name", "bob"),
            ("secret", "bob's password here"),
            ("again", "bob's password here"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(db.ok(&["admin", "list"]).contains("bob"));
    let p = b.post("/settings/admins/bob/remove", &[("csrf", &csrf)]);
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(!db.ok(&["admin", "list"]).contains("bob"));
    let did = actions(&audit(&db, &[]));
    assert!(
        did.contains(&"console admin added -".to_string()),
        "{did:?}"
    );
    assert!(
        did.contains(&"console admin removed -".to_string()),
        "{did:?}"
    );
}

/// A group's page lists its members a page at a time, with where it is ("1–100 of 130") and a
/// Next link that gets the rest; a membership record reads as one phrase on the activity page.
#[test]
fn a_group_page_pages_its_members_and_membership_records_read_well() {
    let (db, server, mut b) = console();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let scim = Scim::new(&server, "p", &token);
    let members: Vec<serde_json::Value> = (0..130)
        .map(|i| serde_json::json!({"value": scim.user(&format!("u{i:03}"))["id"]}))
        .collect();
    let group = scim.create(
        "/Groups",
        &serde_json::json!({"schemas": [GROUP], "displayName": "Big"}),
    );
    let gid = group["id"].as_str().unwrap().to_string();
    let added = scim.patch(
        &format!("/Groups/{gid}"),
        serde_json::json!([{"op": "add", "path": "members", "value": members}]),
    );
    assert_eq!(added.status, 204, "{}", added.text);
    b.login("alice", PASSWORD);
    let first = b.get(&format!("/providers/p/Groups/{gid}"));
    assert_eq!(first.status, 200);
    assert!(first.body.contains("1–100 of 130"), "{}", first.body);
    assert!(first.body.contains(">u000<") && !first.body.contains(">u100<"));
    let next = first
        .body
        .split("href=\"")
        .find(|h| h.contains("?after="))
        .and_then(|h| h.split('"').next())
        .expect("a Next link")
        .replace("&amp;", "&");
    let second = b.get(&next);
    assert!(second.body.contains("101–130 of 130"), "{}", second.body);
    assert!(second.body.contains(">u100<") && second.body.contains(">u129<"));
    assert!(!second.body.contains("?after="), "no Next on the last page");
    let activity = b.get("/activity?provider=p");
    assert!(
        activity.body.contains("members: 130 added"),
        "{}",
        activity.body
    );
    assert!(!activity.body.contains("membersmembers"));
    // Filters combine: an action, a status.
    let added = b.get("/activity?provider=p&action=member+added");
    assert!(added.body.contains("members: 130 added"), "{}", added.body);
    assert!(!added.body.contains("<td>created"), "{}", added.body);
    let created = b.get("/activity?provider=p&status=201");
    assert!(created.body.contains("<td>created"), "{}", created.body);
    assert!(!created.body.contains("members: 130 added"));
    let bad = b.get("/activity?status=abc");
    assert!(bad.body.contains("is not a status"), "{}", bad.body);
    // Each record opens in full: the request line, the token, the request id.
    let seq = activity
        .body
        .split("href=\"/activity/")
        .filter_map(|h| h.split('"').next())
        .filter_map(|s| s.parse::<i64>().ok())
        .max()
        .expect("a record link");
    let record = b.get(&format!("/activity/{seq}"));
    assert_eq!(record.status, 200);
    assert!(
        record
            .body
            .contains(&format!("PATCH /scim/v2/p/Groups/{gid}")),
        "{}",
        record.body
    );
    assert!(record.body.contains(token.split('_').nth(1).unwrap()));
    assert_eq!(b.get("/activity/999999").status, 404);
    // A resource's records, read a window of the log at a time (the newest 100,000 records,
    // then those before): here the group's two, then from before its PATCH only its creation.
    let of_group = b.get(&format!("/activity?resource={gid}"));
    assert!(
        of_group.body.contains("members: 130 added") && of_group.body.contains("<td>created"),
        "{}",
        of_group.body
    );
    assert!(
        of_group.body.contains("among records 1–") && of_group.body.contains("none older"),
        "{}",
        of_group.body
    );
    let older = b.get(&format!("/activity?resource={gid}&before={}", seq - 1));
    assert!(
        !older.body.contains("members: 130 added") && older.body.contains("<td>created"),
        "{}",
        older.body
    );
    assert!(
        older
            .body
            .contains(&format!("among records 1–{}.", seq - 1)),
        "{}",
        older.body
    );
    // The same records as files.
    let csv = b.get("/activity/export?format=csv&provider=p");
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(
        csv.body.starts_with("seq,time,provider,action,"),
        "{}",
        csv.body
    );
    assert_eq!(
        csv.body.lines().count(),
        1 + 132,
        "a header and 132 records"
    );
    assert!(csv.body.contains("members: 130 added"));
    let lines = b.get("/activity/export?format=jsonl&provider=p");
    let records: Vec<serde_json::Value> = lines
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 132);
    assert!(records.iter().any(|r| r["action"] == "member added"));
}

/// A list of 130 users pages by 50 with its place ("51–100 of 130") and First, Previous,
/// Next and Last, each a bounded read whatever the list's length; a search for text inside
/// names finds what a starts-with search does not.
#[test]
fn a_list_pages_both_ways_and_searches_inside_names() {
    let (db, server, mut b) = console();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let scim = Scim::new(&server, "p", &token);
    for i in 0..130 {
        scim.user(&format!("u{i:03}@contoso.com"));
    }
    b.login("alice", PASSWORD);
    let first = b.get("/providers/p/Users");
    assert!(first.body.contains("1–50 of 130 Users"), "{}", first.body);
    assert!(!first.body.contains(">Previous page<"));
    let second = b.get(&link(&first, "Next"));
    assert!(
        second.body.contains("51–100 of 130 Users"),
        "{}",
        second.body
    );
    assert!(second.body.contains(">u050@contoso.com<"));
    let last = b.get(&link(&second, "Last"));
    assert!(last.body.contains("81–130 of 130 Users"), "{}", last.body);
    assert!(last.body.contains(">u129@contoso.com<") && !last.body.contains(">Next page<"));
    let back = b.get(&link(&last, "Previous"));
    assert!(back.body.contains("31–80 of 130 Users"), "{}", back.body);
    assert!(back.body.contains(">u030@contoso.com<") && back.body.contains(">u079@contoso.com<"));
    let start = b.get(&link(&back, "First"));
    assert!(start.body.contains("1–50 of 130 Users"));
    // Sorted by name, Z to A (the name heading's link, clicked twice), then paged both ways.
    let by_name = b.get(&href(&start, ">userName<"));
    assert!(
        by_name.body.contains("aria-sort=\"ascending\""),
        "{}",
        by_name.body
    );
    let z_to_a = b.get(&href(&by_name, ">userName<"));
    assert!(z_to_a.body.contains("aria-sort=\"descending\""));
    let rows = |p: &Page| -> Vec<String> {
        p.body
            .match_indices(">u")
            .map(|(i, _)| p.body[i + 1..i + 5].to_string())
            .filter(|r| r[1..].bytes().all(|b| b.is_ascii_digit()))
            .collect()
    };
    assert_eq!(rows(&z_to_a).first().map(String::as_str), Some("u129"));
    let next = b.get(&link(&z_to_a, "Next"));
    assert!(next.body.contains("51–100 of 130 Users"), "{}", next.body);
    assert_eq!(rows(&next).first().map(String::as_str), Some("u079"));
    let end = b.get(&link(&next, "Last"));
    assert!(end.body.contains("81–130 of 130 Users"), "{}", end.body);
    assert_eq!(rows(&end).last().map(String::as_str), Some("u000"));
    let before = b.get(&link(&end, "Previous"));
    assert!(
        before.body.contains("31–80 of 130 Users"),
        "{}",
        before.body
    );
    assert_eq!(rows(&before).first().map(String::as_str), Some("u099"));
    let newest = b.get("/providers/p/Users?sort=-created");
    assert_eq!(rows(&newest).first().map(String::as_str), Some("u129"));
    let oops = b.get("/providers/p/Users?sort=email");
    assert_eq!(oops.status, 400);
    assert!(oops.body.contains("cannot sort by"), "{}", oops.body);
    // "07@" is inside u007@… and u107@…, at the start of none.
    let starts = b.get("/providers/p/Users?q=07%40");
    assert!(starts.body.contains("0 Users match"), "{}", starts.body);
    let inside = b.get("/providers/p/Users?q=07%40&mode=contains");
    assert!(
        inside.body.contains("1–2 of 2 Users that match"),
        "{}",
        inside.body
    );
    // The search index's job catches up within seconds; the searches then read it, and a
    // change it has not reached yet is still found (and a changed value no longer is).
    let wait_for_index = || wait_for_search_index(&db);
    wait_for_index();
    let indexed = b.get("/providers/p/Users?q=07%40&mode=contains");
    assert!(
        indexed.body.contains("1–2 of 2 Users that match"),
        "{}",
        indexed.body
    );
    assert!(
        !indexed.body.contains("under three characters"),
        "{}",
        indexed.body
    );
    let u107 = scim
        .get("/Users?filter=userName%20eq%20%22u107%40contoso.com%22")
        .json()["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    scim.patch(
        &format!("/Users/{u107}"),
        serde_json::json!([{"op": "replace", "path": "displayName", "value": "Zoë Q. Smithers"}]),
    )
    .expect(200);
    let both = b.get("/providers/p/Users?q=SMITHERS&mode=contains");
    assert!(
        both.body.contains("1–1 of 1 Users that match"),
        "{}",
        both.body
    );
    assert!(both.body.contains(">u107@contoso.com<"), "{}", both.body);
    wait_for_index();
    let after = b.get("/providers/p/Users?q=smithers&mode=contains");
    assert!(
        after.body.contains("1–1 of 1 Users that match"),
        "{}",
        after.body
    );
    let many = b.get("/providers/p/Users?q=u1%25&mode=contains");
    assert!(many.body.contains("0 Users match"), "{}", many.body);
    let hundreds = b.get("/providers/p/Users?q=%40contoso&mode=contains");
    assert!(
        hundreds.body.contains("1–50 of 130 Users that match"),
        "{}",
        hundreds.body
    );
    // Two characters are no trigram: every user is read, and the page says so.
    let short = b.get("/providers/p/Users?q=q.&mode=contains");
    assert!(
        short.body.contains("1–1 of 1 Users that match"),
        "{}",
        short.body
    );
    assert!(
        short.body.contains("under three characters"),
        "{}",
        short.body
    );
    // The status column says what a user's page says: active unless `active` is false.
    let u000 = scim
        .get("/Users?filter=userName%20eq%20%22u000%40contoso.com%22")
        .json()["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    scim.patch(
        &format!("/Users/{u000}"),
        serde_json::json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .expect(200);
    let list = b.get("/providers/p/Users");
    assert!(
        list.body.contains("<td>inactive</td>") && list.body.contains("<td>active</td>"),
        "{}",
        list.body
    );
}

/// The address of the last link before `text` on a page.
fn href(p: &Page, text: &str) -> String {
    let at = p.body.find(text).expect(text);
    let href = p.body[..at].rsplit("href=\"").next().unwrap();
    href.split('"').next().unwrap().replace("&amp;", "&")
}

/// The address of a list's "`rel` page" link (First, Previous, Next, Last).
fn link(p: &Page, rel: &str) -> String {
    href(p, &format!(">{rel} page<"))
}

/// Waits for the server's search index job to reach every resource and change.
fn wait_for_search_index(db: &TestDb) {
    let caught_up = || {
        let c = rusqlite::Connection::open(&db.path).unwrap();
        c.query_row(
            "SELECT built >= (SELECT max(seq) FROM resources)
                    AND followed >= (SELECT coalesce(max(seq), 0) FROM activity)
             FROM search_text_state",
            [],
            |r| r.get::<_, bool>(0),
        )
        .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !caught_up() {
        assert!(
            std::time::Instant::now() < deadline,
            "the search index never caught up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Text in more than 5,000 resources is a broad search: its pages are read in order and
/// checked against the index, and it counts 5,000 at most ("more than 5000"); it pages both
/// ways and to its end all the same, and a narrow search beside it still counts exactly.
#[test]
fn a_broad_search_pages_through_more_than_it_counts() {
    use scimd::api::scim::ResourceKind;
    use scimd::api::scim::resource::prepare;
    use scimd::api::store::{providers, resources};

    let (db, _server, mut b) = console();
    db.add_provider("p");
    // Written straight to the database (5,103 users over HTTP would take a while); the
    // server's index job reads them like any others.
    let store = db.store();
    store
        .write_blocking(|c| {
            let p = providers::require(c, "p")?.id;
            let rt = ResourceKind::User.builtin();
            let names = (0..3)
                .map(|i| format!("other{i}@example.org"))
                .chain((0..5100).map(|i| format!("b{i:04}@contoso.com")));
            for name in names {
                let doc = prepare(rt, &json!({"userName": name})).unwrap();
                resources::create(c, p, rt, &doc, None, "2026-01-01T00:00:00Z")?;
            }
            Ok::<_, scimd::api::store::Error>(())
        })
        .unwrap();
    drop(store);
    wait_for_search_index(&db);
    b.login("alice", PASSWORD);
    let first = b.get("/providers/p/Users?q=CONTOSO&mode=contains");
    assert!(
        first
            .body
            .contains("1–50 of more than 5000 Users that match"),
        "{}",
        first.body
    );
    assert!(
        first.body.contains(">b0000@contoso.com<") && first.body.contains(">b0049@contoso.com<")
    );
    assert!(!first.body.contains("other0") && !first.body.contains(">Previous page<"));
    let second = b.get(&link(&first, "Next"));
    assert!(
        second
            .body
            .contains("51–100 of more than 5000 Users that match"),
        "{}",
        second.body
    );
    assert!(second.body.contains(">b0050@contoso.com<"));
    let last = b.get(&link(&second, "Last"));
    assert!(
        last.body
            .contains("The last 50 of more than 5000 Users that match"),
        "{}",
        last.body
    );
    assert!(last.body.contains(">b5099@contoso.com<") && !last.body.contains(">Next page<"));
    let before = b.get(&link(&last, "Previous"));
    assert!(
        before
            .body
            .contains("\"count\">50 of more than 5000 Users that match"),
        "{}",
        before.body
    );
    assert!(
        before.body.contains(">b5000@contoso.com<") && before.body.contains(">b5049@contoso.com<")
    );
    assert!(before.body.contains(">Next page<"), "{}", before.body);
    let newest = b.get("/providers/p/Users?q=contoso&mode=contains&sort=-name");
    assert!(
        newest.body.contains(">b5099@contoso.com<") && !newest.body.contains(">b5049@contoso.com<")
    );
    // Beside it, text in three users is counted exactly.
    let narrow = b.get("/providers/p/Users?q=EXAMPLE.org&mode=contains");
    assert!(
        narrow.body.contains("1–3 of 3 Users that match"),
        "{}",
        narrow.body
    );
}

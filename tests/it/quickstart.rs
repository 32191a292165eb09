//! The one-command trial, exactly as a newcomer runs it.

use crate::harness::{Server, TestDb, command, get_bearer, token_in};

fn quickstart(db: &TestDb) -> Server {
    let mut cmd = command(&db.path);
    cmd.args(["quickstart", "--listen", "127.0.0.1:0"]);
    Server::spawn(cmd)
}

#[test]
fn quickstart_prints_a_working_url_token_and_curl_line() {
    let db = TestDb::new();
    let server = quickstart(&db);
    let printed = server.wait_for_line("curl -H");
    let out = server.logs().join("\n");
    let (_, token) = token_in(&out);
    let url = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("SCIM URL:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(url, format!("{}/scim/v2/default", server.base));
    assert!(
        printed.contains(&token) && printed.contains(&url),
        "{printed}"
    );
    // The curl line's request, made for real.
    let resp = get_bearer(&format!("{url}/ServiceProviderConfig"), &token);
    assert_eq!(resp.status, 200, "{}", resp.text);
    drop(server);

    // A second run reuses the provider and hands out a new token.
    let server = quickstart(&db);
    server.wait_for_line("curl -H");
    let (_, token2) = token_in(&server.logs().join("\n"));
    assert_ne!(token, token2);
    assert_eq!(
        get_bearer(
            &format!("{url}/ServiceProviderConfig").replace(&url, &server.scim("default")),
            &token2
        )
        .status,
        200
    );
    drop(server);
    let providers = db.ok(&["provider", "list"]);
    assert_eq!(
        providers
            .lines()
            .filter(|l| l.starts_with("default"))
            .count(),
        1,
        "{providers}"
    );
}

/// The trial also starts the admin console and prints its URL and a first login, once.
#[test]
fn quickstart_prints_the_console_and_a_first_login_that_works() {
    let db = TestDb::new();
    let server = quickstart(&db);
    server.wait_for_line("curl -H");
    let out = server.logs().join("\n");
    let console = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("console:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(console, format!("{}/", server.admin()));
    let login = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("console login: admin / "))
        .unwrap();
    let password = login.split_whitespace().next().unwrap().to_string();
    assert!(password.len() >= 12, "{password}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let resp = agent
        .post(format!("{console}login"))
        .send_form([("name", "admin"), ("password", password.as_str())])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert!(resp.headers().get("set-cookie").is_some());
    drop(server);

    // A second run leaves the account alone and shows no password.
    let server = quickstart(&db);
    server.wait_for_line("curl -H");
    let out = server.logs().join("\n");
    assert!(!out.contains("console login:"), "{out}");
    assert!(out.contains("log in with your admin account"), "{out}");
}

/// A trial that cannot bind its console's port says which setting moves it, and makes no
/// token it would never show.
#[test]
fn a_busy_console_port_is_named_and_costs_no_token() {
    let db = TestDb::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = command(&db.path)
        .args(["quickstart", "--listen", "127.0.0.1:0"])
        .env("SCIMD_ADMIN_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SCIMD_ADMIN_LISTEN") && err.contains("--admin-listen"),
        "{err}"
    );
    // The flag, too, is named when it asked for the busy port.
    let out = command(&db.path)
        .args(["quickstart", "--listen", "127.0.0.1:0", "--admin-listen"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("admin_listen 127.0.0.1:{port}")) && err.contains("--admin-listen"),
        "{err}"
    );
    drop(busy);
    let tokens = db.ok(&["token", "list"]);
    assert!(!tokens.contains("quickstart"), "{tokens}");
}

/// `--admin-listen` moves the trial's console (overriding SCIMD_ADMIN_LISTEN), or turns it
/// off when empty.
#[test]
fn the_console_moves_or_goes_with_admin_listen() {
    let db = TestDb::new();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut cmd = command(&db.path);
    cmd.args(["quickstart", "--listen", "127.0.0.1:0", "--admin-listen"])
        .arg(format!("127.0.0.1:{port}"));
    let server = Server::spawn(cmd);
    server.wait_for_line("curl -H");
    assert_eq!(server.admin(), format!("http://127.0.0.1:{port}"));
    drop(server);
    let mut cmd = command(&db.path);
    cmd.args([
        "quickstart",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "",
    ]);
    let server = Server::spawn(cmd);
    let console = server.wait_for_line("console:");
    assert!(console.contains("off"), "{console}");
}

/// The expiry warnings leave the trial's own day-long token alone (quickstart says when it
/// expires as it prints it); other tokens about to expire are still named.
#[test]
fn the_trial_token_is_not_warned_about() {
    let db = TestDb::new();
    db.ok(&["provider", "add", "default"]);
    let other = db.ok(&[
        "token",
        "create",
        "--provider",
        "default",
        "--valid-for",
        "1d",
    ]);
    let (other_id, _) = token_in(&other);
    let server = quickstart(&db);
    let printed = server.wait_for_line("curl -H");
    let (trial_id, _) = token_in(&printed);
    let warned = server.wait_for_line_with(&["token expires in", &other_id]);
    assert!(!warned.contains(&trial_id), "{warned}");
    let logs = server.logs().join("\n");
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("token expires in") && l.contains(&trial_id)),
        "{logs}"
    );
}

//! The admin commands, run as the real binary against a temporary database file.

use chrono::Utc;

use crate::harness::{Server, TestDb, get_bearer, token_in};

/// Puts a User into a provider through the store's own insert, as `POST /Users` does (it also
/// keeps the provider's row counts).
fn insert_user(db: &TestDb, provider: &str, user_name: &str) {
    let kind = scimd::api::scim::ResourceKind::User;
    let prepared = scimd::api::scim::resource::prepare(
        kind.builtin(),
        &serde_json::json!({"userName": user_name}),
    )
    .unwrap();
    let provider = provider.to_string();
    db.store()
        .write_blocking(move |c| {
            let p = scimd::api::store::providers::require(c, &provider)?;
            scimd::api::store::resources::create(
                c,
                p.id,
                kind.builtin(),
                &prepared,
                None,
                "2026-01-01T00:00:00Z",
            )?;
            Ok::<_, scimd::api::store::Error>(())
        })
        .unwrap();
}

#[test]
fn provider_lifecycle() {
    let db = TestDb::new();
    let out = db.ok(&[
        "provider",
        "add",
        "entra-prod",
        "--type",
        "entra",
        "--description",
        "Contoso tenant",
    ]);
    assert!(
        out.contains("http://127.0.0.1:8080/scim/v2/entra-prod"),
        "{out}"
    );
    db.add_provider("okta");
    assert!(
        db.fails(&["provider", "add", "OKTA"])
            .contains("already exists")
    );
    assert!(
        db.fails(&["provider", "add", "bad name"])
            .contains("invalid provider name")
    );
    assert!(
        db.fails(&["provider", "add", "x", "--type", "azure"])
            .contains("azure")
    );

    let list = db.ok(&["provider", "list"]);
    assert!(
        list.contains("entra-prod") && list.contains("entra") && list.contains("Contoso tenant"),
        "{list}"
    );
    assert!(list.contains("okta") && list.contains("generic"), "{list}");

    let show = db.ok(&["provider", "show", "entra-prod"]);
    assert!(
        show.contains("SCIM base URL: http://127.0.0.1:8080/scim/v2/entra-prod"),
        "{show}"
    );
    // --public-url style configuration flows into every printed URL.
    let show = crate::harness::command(&db.path)
        .env("SCIMD_PUBLIC_URL", "https://scim.example.com/")
        .args(["provider", "show", "okta"])
        .output()
        .unwrap();
    let show = String::from_utf8(show.stdout).unwrap();
    assert!(
        show.contains("SCIM base URL: https://scim.example.com/scim/v2/okta"),
        "{show}"
    );

    db.ok(&[
        "provider",
        "set",
        "okta",
        "--type",
        "entra",
        "--description",
        "now entra",
    ]);
    let show = db.ok(&["provider", "show", "okta"]);
    assert!(
        show.contains("type:          entra") && show.contains("now entra"),
        "{show}"
    );
    assert!(
        db.fails(&["provider", "set", "okta"])
            .contains("nothing to change")
    );
    assert!(
        db.fails(&["provider", "set", "nosuch", "--type", "generic"])
            .contains("no provider")
    );
    assert!(
        db.fails(&["provider", "show", "nosuch"])
            .contains("no provider")
    );
}

#[test]
fn provider_remove_refuses_without_yes_while_it_holds_users() {
    let db = TestDb::new();
    db.add_provider("keep");
    db.add_provider("empty");
    let (_, token) = db.create_token("keep", &[]);
    insert_user(&db, "keep", "alice@example.com");

    // An empty provider goes without --yes.
    let out = db.ok(&["provider", "remove", "empty"]);
    assert!(out.contains("removed"), "{out}");

    let err = db.fails(&["provider", "remove", "keep"]);
    assert!(err.contains("1 users") && err.contains("--yes"), "{err}");
    let show = db.ok(&["provider", "show", "keep"]);
    assert!(show.contains("users:         1"), "nothing removed: {show}");

    let server = Server::start(&db);
    let url = format!("{}/ServiceProviderConfig", server.scim("keep"));
    assert_eq!(get_bearer(&url, &token).status, 200);
    let out = db.ok(&["provider", "remove", "keep", "--yes"]);
    assert!(out.contains("1 users"), "{out}");
    // Its tokens went with it, effective immediately in the running server.
    get_bearer(&url, &token).scim_error(401);
    let remaining: i64 = db
        .store()
        .call(|c| Ok(c.query_row("SELECT count(*) FROM resources", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(remaining, 0);
    assert!(
        db.ok(&["provider", "list"])
            .contains("no identity providers")
    );
}

#[test]
fn token_create_list_and_limits() {
    let db = TestDb::new();
    db.add_provider("idp");
    let out = db.ok(&[
        "token",
        "create",
        "--provider",
        "idp",
        "--valid-for",
        "90d",
        "--description",
        "entra prod",
    ]);
    let (id, full) = token_in(&out);
    assert!(out.contains("shown only this once"), "{out}");
    let listed = db.ok(&["token", "list"]);
    let row = listed.lines().find(|l| l.starts_with(&id)).unwrap();
    for want in ["idp", "entra prod", "read-write", "never", "active"] {
        assert!(row.contains(want), "{want:?} missing: {row}");
    }
    assert!(
        !listed.contains(&full),
        "token list must never show the secret"
    );
    let secret = full.rsplit('_').next().unwrap();
    let raw_db = std::fs::read(&db.path).unwrap();
    assert!(
        !raw_db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret must not be stored"
    );

    let date = (Utc::now() + chrono::Duration::days(100))
        .format("%Y-%m-%d")
        .to_string();
    let out = db.ok(&["token", "create", "--provider", "idp", "--expires", &date]);
    assert!(out.contains(&format!("{date} 00:00:00 UTC")), "{out}");
    assert!(
        db.fails(&[
            "token",
            "create",
            "--provider",
            "idp",
            "--expires",
            "2099-03-01"
        ])
        .contains("at most 730d")
    );
    // Only the limit in force decides: the default max lifetime is 730 days.
    assert!(
        db.fails(&[
            "token",
            "create",
            "--provider",
            "idp",
            "--valid-for",
            "800d"
        ])
        .contains("at most")
    );
    assert!(
        db.fails(&[
            "token",
            "create",
            "--provider",
            "idp",
            "--expires",
            "2001-01-01"
        ])
        .contains("not in the future")
    );
    assert!(
        db.fails(&["token", "create", "--provider", "idp"])
            .contains("--valid-for")
    );
    assert!(
        db.fails(&[
            "token",
            "create",
            "--provider",
            "nosuch",
            "--valid-for",
            "1d"
        ])
        .contains("no provider")
    );
    assert!(
        db.fails(&["token", "revoke", "0123456789abcdef"])
            .contains("no token")
    );
    let filtered = db.ok(&["token", "list", "--provider", "idp"]);
    assert_eq!(filtered.lines().count(), 3, "{filtered}");
}

#[test]
fn token_rotate_keeps_the_old_token_working_for_the_overlap() {
    let db = TestDb::new();
    db.add_provider("idp");
    let (old_id, old) = db.create_token(
        "idp",
        &["--valid-for", "90d", "--read-only", "--description", "okta"],
    );
    let out = db.ok(&["token", "rotate", &old_id, "--overlap", "2d"]);
    let (new_id, new) = token_in(&out);
    assert_ne!(new_id, old_id);
    assert!(out.contains("keeps working until"), "{out}");

    let server = Server::start(&db);
    let url = format!("{}/ServiceProviderConfig", server.scim("idp"));
    assert_eq!(
        get_bearer(&url, &old).status,
        200,
        "old token works during the overlap"
    );
    assert_eq!(get_bearer(&url, &new).status, 200, "new token works");

    let infos = db
        .store()
        .call(|c| scimd::api::store::tokens::list(c, None))
        .unwrap();
    let old_info = infos.iter().find(|t| t.id == old_id).unwrap();
    let new_info = infos.iter().find(|t| t.id == new_id).unwrap();
    let now = Utc::now().timestamp();
    assert!(
        (old_info.expires - (now + 2 * 86_400)).abs() < 120,
        "old expires after the overlap"
    );
    assert!(
        (new_info.expires - (now + 90 * 86_400)).abs() < 120,
        "new keeps the full validity"
    );
    assert_eq!(old_info.replaced_by.as_deref(), Some(new_id.as_str()));
    assert!(
        new_info.read_only && new_info.description == "okta",
        "scope and description carried over"
    );
    let listed = db.ok(&["token", "list"]);
    assert!(
        listed.contains(&format!("replaced by {new_id}")),
        "{listed}"
    );

    db.ok(&["token", "revoke", &new_id]);
    assert!(db.fails(&["token", "rotate", &new_id]).contains("revoked"));
}

#[test]
fn commands_that_read_refuse_a_missing_database() {
    let db = TestDb::new();
    for args in [
        &["provider", "list"][..],
        &["token", "list"],
        &["provider", "show", "x"],
    ] {
        let err = db.fails(args);
        assert!(err.contains("does not exist"), "{args:?}: {err}");
    }
    assert!(!db.path.exists(), "reading must not create the file");
}

#[test]
fn help_describes_every_command() {
    let db = TestDb::new();
    let top = db.ok(&["--help"]);
    for cmd in ["serve", "quickstart", "provider", "token", "check-config"] {
        assert!(top.contains(cmd), "--help lacks {cmd}");
    }
    let token_help = db.ok(&["token", "--help"]);
    for cmd in ["create", "list", "revoke", "rotate"] {
        assert!(token_help.contains(cmd), "token --help lacks {cmd}");
    }
    let create = db.ok(&["token", "create", "--help"]);
    for flag in [
        "--provider",
        "--valid-for",
        "--expires",
        "--description",
        "--read-only",
    ] {
        assert!(create.contains(flag), "token create --help lacks {flag}");
    }
}

/// Free text has a length limit whichever door it comes through (here the command line;
/// the console calls the same store functions), refused naming the limit without echoing the
/// text; tables print long values cut, so a value stored before the limit (or a long name in
/// the activity log) cannot break `provider list`, `token list` or `activity`.
#[test]
fn long_free_text_is_refused_and_long_values_print_cut() {
    let db = TestDb::new();
    // As long as one argument may be (the kernel takes 128 KiB).
    let long = "d".repeat(100_000);
    let out = db.fails(&["provider", "add", "p", "--description", &long]);
    assert!(
        out.contains("at most 500"),
        "{}",
        &out[..out.len().min(300)]
    );
    assert!(out.len() < 1000, "the refusal is {} bytes", out.len());
    let name = "n".repeat(100_000);
    let out = db.fails(&["provider", "add", &name]);
    assert!(
        out.contains("invalid provider name"),
        "{}",
        &out[..out.len().min(300)]
    );
    assert!(out.len() < 1000, "the refusal is {} bytes", out.len());
    db.add_provider("p");
    let out = db.fails(&[
        "token",
        "create",
        "--provider",
        "p",
        "--valid-for",
        "30d",
        "--description",
        &long,
    ]);
    assert!(
        out.contains("at most 500"),
        "{}",
        &out[..out.len().min(300)]
    );
    let out = db.fails(&["provider", "set", "p", "--description", "two\nlines"]);
    assert!(out.contains("control characters"), "{out}");
    // Stored before there was a limit: printed cut, on one line.
    db.create_token("p", &[]);
    let c = rusqlite::Connection::open(&db.path).unwrap();
    let longer = "d".repeat(900_000);
    c.execute("UPDATE providers SET description = ?1", [&longer])
        .unwrap();
    c.execute(
        "UPDATE credentials SET description = ?1 WHERE kind = 'scim'",
        [format!("a\n{longer}")],
    )
    .unwrap();
    for args in [&["provider", "list"][..], &["token", "list"]] {
        let out = db.ok(args);
        assert!(out.lines().count() == 2, "{args:?}: {}", out.len());
        assert!(
            out.len() < 1000 && out.contains('…'),
            "{args:?}: {} bytes",
            out.len()
        );
    }
}

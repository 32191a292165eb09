//! The LDAP directory against OpenLDAP's own clients (`ldapsearch`, `ldapwhoami`,
//! `ldapmodify`, Debian's ldap-utils, installed by scripts/test.sh): users and groups
//! provisioned over SCIM appear with the mapped attributes, nested memberOf and the manager's
//! DN; deactivations and deletes show on the next search; paged results; service account binds
//! good, wrong, expired and revoked; writes refused; anonymous reads refused.

use std::process::Command;

use serde_json::json;

use crate::harness::{Scim, Server, TestDb};

pub const BASE: &str = "dc=contoso,dc=scimd";
pub const BIND: &str = "cn=grafana,ou=services,dc=contoso,dc=scimd";

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is missing: scripts/test.sh installs Debian's ldap-utils (apt-get install ldap-utils)"
    );
    Command::new(name)
}

pub struct Directory {
    pub db: TestDb,
    pub server: Server,
    pub url: String,
    pub password: String,
    pub scim: Scim,
}

/// Output (stdout and stderr together) and exit code of an OpenLDAP client.
fn run(mut cmd: Command) -> (String, i32) {
    let out = cmd.output().unwrap();
    (
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        out.status.code().unwrap_or(-1),
    )
}

impl Directory {
    fn start(plaintext_loopback: &str) -> Directory {
        Directory::start_with(plaintext_loopback, &[])
    }

    pub fn start_with(plaintext_loopback: &str, env: &[(&str, &str)]) -> Directory {
        let db = TestDb::new();
        db.add_provider("contoso");
        let (_, token) = db.create_token("contoso", &[]);
        let (password, out) = db.ldap_account("grafana", "contoso");
        assert!(out.contains(&format!("bind DN:  {BIND}")), "{out}");
        let mut vars = vec![
            ("SCIMD_LDAP_LISTEN", "127.0.0.1:0"),
            ("SCIMD_LDAP_PLAINTEXT_LOOPBACK", plaintext_loopback),
        ];
        vars.extend_from_slice(env);
        let server = Server::start_with(&db.path, &[], &vars);
        let url = server.ldap_url("ldap");
        let scim = Scim::new(&server, "contoso", &token);
        Directory {
            db,
            server,
            url,
            password,
            scim,
        }
    }

    /// `ldapsearch` with options (`-s one`, `-z 5`, `-E pr=...`) and requested attributes
    /// given apart, since the attributes follow the filter.
    fn search(&self, base: &str, filter: &str, extra: &[&str]) -> (String, i32) {
        let split = extra
            .iter()
            .enumerate()
            .filter(|(_, a)| a.starts_with('-'))
            .map(|(i, _)| i + 2)
            .max()
            .unwrap_or(0)
            .min(extra.len());
        let (options, attrs) = extra.split_at(split);
        let mut cmd = tool("ldapsearch");
        cmd.args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &self.url])
            .args(["-D", BIND, "-w", &self.password, "-b", base])
            .args(options)
            .arg(filter)
            .args(attrs);
        run(cmd)
    }

    /// Sets the provider's `--scim-passwords` policy; a SCIM read follows, so the server's
    /// remembered token record has the new policy before the next write (a write in flight
    /// when the policy changes gets 503 and its retry the new policy).
    pub fn scim_passwords(&self, policy: &str) {
        let out = self
            .db
            .ok(&["provider", "set", "contoso", "--scim-passwords", policy]);
        assert!(out.contains(&format!("SCIM passwords {policy}")), "{out}");
        self.scim.get("/Users?count=1").expect(200);
    }

    pub fn provision(&self) -> (String, String) {
        let bob = self.scim.create(
            "/Users",
            &json!({"userName": "bob@contoso.com", "displayName": "Bob Boss",
                    "name": {"givenName": "Bob", "familyName": "Boss"},
                    "emails": [{"value": "bob@contoso.com", "type": "work", "primary": true}]}),
        )["id"]
            .as_str()
            .unwrap()
            .to_string();
        let alice = self.scim.create(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                    "userName": "alice@contoso.com", "displayName": "Alice Adams",
                    "name": {"givenName": "Alice", "familyName": "Adams"}, "title": "Engineer",
                    "emails": [{"value": "alice@home.example", "type": "home"},
                               {"value": "alice@contoso.com", "type": "work", "primary": true}],
                    "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                        {"department": "R&D", "employeeNumber": "1042", "manager": {"value": bob}}}),
        )["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.scim.create(
            "/Users",
            &json!({"userName": "carol@contoso.com", "active": false}),
        );
        let eng = self.scim.create(
            "/Groups",
            &json!({"displayName": "Engineering", "members": [{"value": alice}]}),
        )["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.scim.create(
            "/Groups",
            &json!({"displayName": "Everyone", "members": [{"value": eng}, {"value": bob}]}),
        );
        (alice, bob)
    }
}

#[test]
fn users_and_groups_provisioned_over_scim_are_read_over_ldap() {
    let d = Directory::start("on");
    let (_alice, bob) = d.provision();

    let (out, code) = d.search(BASE, "(uid=alice@contoso.com)", &[]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "dn: uid=alice@contoso.com,ou=people,dc=contoso,dc=scimd",
        "objectClass: inetOrgPerson",
        "uid: alice@contoso.com",
        "cn: Alice Adams",
        "givenName: Alice",
        "sn: Adams",
        "mail: alice@contoso.com",
        "telephoneNumber: +1 555 0100",
        "title: Engineer",
        "departmentNumber: R&D",
        "employeeNumber: 1042",
        "manager: uid=bob@contoso.com,ou=people,dc=contoso,dc=scimd",
        "memberOf: cn=Engineering,ou=groups,dc=contoso,dc=scimd",
        // Nested: Engineering is a member of Everyone.
        "memberOf: cn=Everyone,ou=groups,dc=contoso,dc=scimd",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // The primary email comes first.
    let mails: Vec<&str> = out.lines().filter(|l| l.starts_with("mail: ")).collect();
    assert_eq!(
        mails,
        ["mail: alice@contoso.com", "mail: alice@home.example"]
    );

    // The same through mail, a substring, and memberOf; operational attributes on request.
    let (out, _) = d.search(
        BASE,
        "(&(objectClass=person)(mail=ALICE@contoso.com))",
        &["uid"],
    );
    assert_eq!(
        out.trim(),
        "dn: uid=alice@contoso.com,ou=people,dc=contoso,dc=scimd\nuid: alice@contoso.com"
    );
    let (out, _) = d.search(BASE, "(cn=Alice*)", &["1.1"]);
    assert!(out.contains("dn: uid=alice@contoso.com"), "{out}");
    let (out, _) = d.search(
        "ou=people,dc=contoso,dc=scimd",
        "(memberOf=cn=Engineering,ou=groups,dc=contoso,dc=scimd)",
        &["uid"],
    );
    assert_eq!(out.matches("dn: ").count(), 1, "{out}");
    let (out, _) = d.search(
        BASE,
        "(uid=alice@contoso.com)",
        &["entryUUID", "modifyTimestamp"],
    );
    assert!(
        out.contains("entryUUID: ") && out.contains("modifyTimestamp: 20"),
        "{out}"
    );

    // Groups are groupOfNames with member DNs, nested groups as members.
    let (out, _) = d.search(BASE, "(&(objectClass=groupOfNames)(cn=Everyone))", &[]);
    assert!(
        out.contains("dn: cn=Everyone,ou=groups,dc=contoso,dc=scimd"),
        "{out}"
    );
    assert!(
        out.contains("member: cn=Engineering,ou=groups,dc=contoso,dc=scimd"),
        "{out}"
    );
    assert!(
        out.contains("member: uid=bob@contoso.com,ou=people,dc=contoso,dc=scimd"),
        "{out}"
    );

    // Deactivated users are not in the directory; deletes show on the next search.
    let (out, _) = d.search(BASE, "(uid=carol@contoso.com)", &[]);
    assert!(out.trim().is_empty(), "{out}");
    let (out, _) = d.search(BASE, "(objectClass=inetOrgPerson)", &["1.1"]);
    assert_eq!(out.matches("dn: ").count(), 2, "{out}");
    assert_eq!(d.scim.delete(&format!("/Users/{bob}")).status, 204);
    let (out, _) = d.search(BASE, "(uid=bob@contoso.com)", &[]);
    assert!(out.trim().is_empty(), "{out}");

    // Scopes: the base entry, its two units, a user by DN.
    let (out, _) = d.search(BASE, "(objectClass=*)", &["-s", "one", "1.1"]);
    assert_eq!(out.matches("dn: ").count(), 2, "{out}");
    let (out, _) = d.search(
        "uid=alice@contoso.com,ou=people,dc=contoso,dc=scimd",
        "(objectClass=*)",
        &["-s", "base", "cn"],
    );
    assert!(out.contains("cn: Alice Adams"), "{out}");

    // The root DSE, for clients that probe it.
    let (out, _) = d.search("", "(objectClass=*)", &["-s", "base", "+", "*"]);
    assert!(
        out.contains("supportedControl: 1.2.840.113556.1.4.319"),
        "{out}"
    );
    assert!(out.contains("namingContexts: dc=contoso,dc=scimd"), "{out}");
    // The schema subentry it names, with the definitions of what the tree uses.
    let (out, _) = d.search("cn=schema", "(objectClass=*)", &["-s", "base", "+"]);
    assert!(
        out.contains("objectClasses: ( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson'"),
        "{out}"
    );
    assert!(
        out.contains("attributeTypes: ( 0.9.2342.19200300.100.1.3 NAME 'mail'"),
        "{out}"
    );

    // Another provider's tree is not there for this account.
    let (out, code) = d.search("dc=other,dc=scimd", "(objectClass=*)", &[]);
    assert_eq!(code, 32, "{out}");
    drop(d.server);
}

#[test]
fn large_directories_come_in_pages_and_size_limits_hold() {
    let d = Directory::start("on");
    // 10,000 users over SCIM, eight clients at once; some deactivated, among them a run longer
    // than the batches entries are read in.
    let inactive = |i: usize| i % 7 == 3 || (2000..2600).contains(&i);
    std::thread::scope(|s| {
        for t in 0..8 {
            let scim = &d.scim;
            s.spawn(move || {
                for i in (t..10_000).step_by(8) {
                    scim.create(
                        "/Users",
                        &json!({"userName": format!("u{i:05}@contoso.com"), "active": !inactive(i)}),
                    );
                }
            });
        }
    });
    let active = (0..10_000).filter(|i| !inactive(*i)).count();
    // With the 3 tree entries, pages of 500 (RFC 2696) give every active user, each once.
    let (out, code) = d.search(BASE, "(objectClass=*)", &["-E", "pr=500/noprompt", "1.1"]);
    assert_eq!(code, 0, "{}", &out[out.len().saturating_sub(500)..]);
    let dns: std::collections::HashSet<&str> =
        out.lines().filter(|l| l.starts_with("dn: ")).collect();
    assert_eq!(out.matches("dn: ").count(), active + 3);
    assert_eq!(dns.len(), active + 3, "no entry twice");
    assert!(!dns.contains("dn: uid=u00003@contoso.com,ou=people,dc=contoso,dc=scimd"));
    assert!(!dns.contains("dn: uid=u02100@contoso.com,ou=people,dc=contoso,dc=scimd"));
    assert!(dns.contains("dn: uid=u02601@contoso.com,ou=people,dc=contoso,dc=scimd"));
    let (out, code) = d.search(
        "ou=people,dc=contoso,dc=scimd",
        "(uid=u0012*)",
        &["-E", "pr=3/noprompt", "uid"],
    );
    assert_eq!(code, 0, "{out}");
    // u00120..u00129 less the deactivated u00122 and u00129.
    assert_eq!(out.matches("uid: u0012").count(), 8, "{out}");
    // A size limit stops the search and says so.
    let (out, code) = d.search(BASE, "(objectClass=inetOrgPerson)", &["-z", "5", "1.1"]);
    assert_eq!(code, 4, "sizeLimitExceeded: {out}");
    assert_eq!(out.matches("dn: ").count(), 5, "{out}");
}

#[test]
fn binds_with_good_wrong_expired_and_revoked_secrets_and_refused_writes() {
    let d = Directory::start("on");
    let mut who = tool("ldapwhoami");
    who.args(["-x", "-H", &d.url, "-D", BIND, "-w", &d.password]);
    let (out, code) = run(who);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("dn:{BIND}")), "{out}");

    let mut wrong = tool("ldapwhoami");
    wrong.args(["-x", "-H", &d.url, "-D", BIND, "-w", "not-the-secret"]);
    let (out, code) = run(wrong);
    assert_eq!(code, 49, "invalidCredentials: {out}");
    d.server
        .wait_for_line_with(&["LDAP bind refused", "wrong password"]);

    // Anonymous: the root DSE, nothing else.
    let mut anon = tool("ldapsearch");
    anon.args(["-x", "-LLL", "-H", &d.url, "-b", BASE, "(objectClass=*)"]);
    let (out, code) = run(anon);
    assert_eq!(code, 50, "insufficientAccessRights: {out}");

    // Writes are refused with a clear message.
    let mut modify = tool("ldapmodify");
    modify
        .args(["-x", "-H", &d.url, "-D", BIND, "-w", &d.password])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = modify.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(
            stdin,
            "dn: uid=x,ou=people,{BASE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: x\ncn: x\nsn: x\n"
        )
        .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(53), "unwillingToPerform: {text}");
    assert!(text.contains("read-only"), "{text}");

    // Expired, then revoked: the next bind fails.
    let listed = d.db.ok(&["ldap", "account", "list"]);
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let c = rusqlite::Connection::open(&d.db.path).unwrap();
    c.execute("UPDATE credentials SET expires = 1 WHERE kind = 'ldap'", [])
        .unwrap();
    let mut expired = tool("ldapwhoami");
    expired.args(["-x", "-H", &d.url, "-D", BIND, "-w", &d.password]);
    let (out, code) = run(expired);
    assert_eq!(code, 49, "expired: {out}");
    c.execute(
        "UPDATE credentials SET expires = 4102444800 WHERE kind = 'ldap'",
        [],
    )
    .unwrap();
    d.db.ok(&["ldap", "account", "revoke", &id]);
    let mut revoked = tool("ldapwhoami");
    revoked.args(["-x", "-H", &d.url, "-D", BIND, "-w", &d.password]);
    let (out, code) = run(revoked);
    assert_eq!(code, 49, "revoked: {out}");

    // Refused binds of a known account are in the activity log, counted per account and
    // interval (written at the latest when the server stops); a revoked account's name is
    // counted with the names the provider does not have. Binds and searches are counted per
    // account in the provider's status.
    let mut d = d;
    assert!(d.server.terminate());
    let refused: Vec<(String, i64, String)> = c
        .prepare("SELECT path, count, detail FROM activity WHERE method = 'LDAP BIND' AND status = 49 ORDER BY path")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(
        (refused[0].0.as_str(), refused[0].1),
        ("(unknown names)", 1)
    );
    assert_eq!(
        (refused[1].0.as_str(), refused[1].1),
        ("grafana", 2),
        "the wrong secret and the expired account"
    );
    assert!(
        refused[1].2.contains("wrong password") && refused[1].2.contains("expired"),
        "{refused:?}"
    );
    let show = d.db.ok(&["provider", "show", "contoso"]);
    let row = show
        .lines()
        .find(|l| l.starts_with("grafana "))
        .unwrap_or_else(|| panic!("{show}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // Binds: the good whoami and the one before the write; failed: wrong and expired; one
    // search (the anonymous one is not the account's).
    assert_eq!(&cells[1..4], ["2", "2", "0"], "{show}");
}

#[test]
fn passwords_are_refused_over_plain_ldap_unless_allowed_for_loopback() {
    let d = Directory::start("off");
    let mut who = tool("ldapwhoami");
    who.args(["-x", "-H", &d.url, "-D", BIND, "-w", &d.password]);
    let (out, code) = run(who);
    assert_eq!(code, 13, "confidentialityRequired: {out}");
}

/// What a provider's SCIM requests may do to passwords (`provider set --scim-passwords`): by
/// default a password in a create is not kept (Okta sends a random one in every create, even
/// with password sync off) and one in a PUT or PATCH is; `all` keeps both; `ignore` keeps none
/// and removes the stored ones, ending the bindings that rest on them.
#[test]
fn a_providers_password_policy_decides_which_scim_passwords_are_kept() {
    use ldap3_proto::LdapResultCode::{InsufficentAccessRights, InvalidCredentials, Success};
    let d = Directory::start("on");
    let bind = |user: &str, password: &str| {
        let dn = format!("uid={user},ou=people,{BASE}");
        Connection::open(&d.url).bind(&dn, password)
    };
    let show = d.db.ok(&["provider", "show", "contoso"]);
    assert!(show.contains("SCIM passwords: updates"), "{show}");
    let gail = d.scim.create(
        "/Users",
        &json!({"userName": "gail@contoso.com", "password": "placeholder from the create"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        bind("gail@contoso.com", "placeholder from the create"),
        InvalidCredentials
    );
    d.scim
        .patch(
            &format!("/Users/{gail}"),
            json!([{"op": "replace", "path": "password", "value": "gail's real password"}]),
        )
        .expect(200);
    assert_eq!(bind("gail@contoso.com", "gail's real password"), Success);
    // The create's activity record does not claim a password was set; the PATCH's does.
    let history = d.db.ok(&["activity", "--resource", &gail, "--json"]);
    let changed: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["changed"].clone())
        .collect();
    assert!(!changed[0].to_string().contains("password"), "{history}");
    assert!(changed[1].to_string().contains("password"), "{history}");

    d.scim_passwords("all");
    d.scim.create(
        "/Users",
        &json!({"userName": "hank@contoso.com", "password": "hank's password"}),
    );
    assert_eq!(bind("hank@contoso.com", "hank's password"), Success);

    // `ignore`: the stored passwords go, and a binding that rests on one ends at once.
    let mut gail_bound = Connection::open(&d.url);
    let gail_dn = format!("uid=gail@contoso.com,ou=people,{BASE}");
    assert_eq!(gail_bound.bind(&gail_dn, "gail's real password"), Success);
    let out =
        d.db.ok(&["provider", "set", "contoso", "--scim-passwords", "ignore"]);
    assert!(out.contains("removed the 2 stored passwords"), "{out}");
    let (_, code, message) = gail_bound.search("uid=hank@contoso.com");
    assert_eq!(code, InsufficentAccessRights, "{message}");
    assert_eq!(
        bind("hank@contoso.com", "hank's password"),
        InvalidCredentials
    );
    // A write prepared under the old policy is refused (503, nothing written); its retry
    // follows the new one.
    let ops = json!([{"op": "replace", "path": "password", "value": "another password"}]);
    let refused = d.scim.patch(&format!("/Users/{gail}"), ops.clone());
    let error = refused.scim_error(503);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("password policy changed"),
        "{error}"
    );
    d.scim.patch(&format!("/Users/{gail}"), ops).expect(200);
    assert_eq!(
        bind("gail@contoso.com", "another password"),
        InvalidCredentials
    );
}

/// Users whose password the identity provider sent (Okta can; Entra ID never does) bind with
/// it; deactivated users and users without a password cannot.
#[test]
fn users_bind_with_the_password_their_identity_provider_sent() {
    let d = Directory::start("on");
    d.scim_passwords("all");
    let dana = d.scim.create(
        "/Users",
        &json!({"userName": "dana@contoso.com", "password": "dana's long password"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    d.scim
        .create("/Users", &json!({"userName": "erin@contoso.com"}));
    let whoami = |dn: &str, password: &str| {
        let mut cmd = tool("ldapwhoami");
        cmd.args(["-x", "-H", &d.url, "-D", dn, "-w", password]);
        run(cmd)
    };
    let dana_dn = format!("uid=dana@contoso.com,ou=people,{BASE}");
    let (out, code) = whoami(&dana_dn, "dana's long password");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("dn:{dana_dn}")), "{out}");
    // The DN compares regardless of case, as userName does.
    let (out, code) = whoami(
        "uid=DANA@contoso.com,ou=People,dc=contoso,dc=scimd",
        "dana's long password",
    );
    assert_eq!(code, 0, "{out}");
    let (wrong, code) = whoami(&dana_dn, "wrong");
    assert_eq!(code, 49, "{wrong}");
    // A user without a password gets the answer a wrong password gets (what a client sees
    // does not tell who exists); the reason is in the server's log.
    let (out, code) = whoami(
        &format!("uid=erin@contoso.com,ou=people,{BASE}"),
        "anything",
    );
    assert_eq!((code, out.as_str()), (49, wrong.as_str()));
    d.server
        .wait_for_line_with(&["LDAP bind refused", "no password was provisioned"]);
    // Deactivated over SCIM: the next bind fails.
    d.scim
        .patch(
            &format!("/Users/{dana}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .expect(200);
    assert_eq!(whoami(&dana_dn, "dana's long password").1, 49);
}

/// An application's idle LDAP connection does not hold a stopping server (HTTP connections are
/// closed by the server itself; LDAP clients keep pools open for hours).
#[test]
fn an_idle_ldap_connection_does_not_delay_shutdown() {
    let db = TestDb::new();
    db.add_provider("p");
    let mut server = Server::start_with(
        &db.path,
        &[],
        &[
            ("SCIMD_LDAP_LISTEN", "127.0.0.1:0"),
            // Were the connection waited for, the stop would take this long.
            ("SCIMD_SHUTDOWN_TIMEOUT", "1h"),
        ],
    );
    let url = server.ldap_url("ldap");
    let addr = url.trim_start_matches("ldap://").to_string();
    let idle = std::net::TcpStream::connect(&addr).unwrap();
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let clean = server.terminate();
        let _ = done.send(clean);
    });
    let clean = stopped
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the server still waits for the idle LDAP connection");
    assert!(clean);
    drop(idle);
}

/// What Microsoft Entra ID sends (its user shape, the manager and a member added by PATCH in
/// its own dialect, a disable with a string boolean) is what applications then read over LDAP.
#[test]
fn an_entra_provisioning_cycle_is_read_over_ldap() {
    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let d = Directory::start("on");
    let one = d.scim.create("/Users", &crate::replays::entra_user(1))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let two = d.scim.create("/Users", &crate::replays::entra_user(2))["id"]
        .as_str()
        .unwrap()
        .to_string();
    d.scim
        .patch(
            &format!("/Users/{two}"),
            json!([{"op": "Add", "path": format!("{ENT}:manager"), "value": one}]),
        )
        .expect(200);
    let group = d.scim.create(
        "/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Group1", "externalId": "g1"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let added = d.scim.patch(
        &format!("/Groups/{group}"),
        json!([{"op": "Add", "path": "members", "value": [{"value": two}]}]),
    );
    assert!(
        added.status == 200 || added.status == 204,
        "{}",
        added.status
    );

    let (out, code) = d.search(BASE, "(uid=test_user_2@contoso.com)", &[]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "dn: uid=Test_User_2@contoso.com,ou=people,dc=contoso,dc=scimd",
        "cn: Test User 2",
        "mail: Test_User_2@contoso.com",
        "telephoneNumber: +1 (555) 555-0100",
        "departmentNumber: R&D",
        "employeeNumber: 2",
        "manager: uid=Test_User_1@contoso.com,ou=people,dc=contoso,dc=scimd",
        "memberOf: cn=Group1,ou=groups,dc=contoso,dc=scimd",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // Disabled the way Entra does it: gone from the directory at the next search.
    d.scim
        .patch(
            &format!("/Users/{two}"),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .expect(200);
    let (out, _) = d.search(BASE, "(uid=test_user_2@contoso.com)", &["1.1"]);
    assert!(out.trim().is_empty(), "{out}");
    let (out, _) = d.search(BASE, "(cn=Group1)", &["member"]);
    assert!(
        !out.contains("Test_User_2"),
        "a disabled user is no member either: {out}"
    );
}

/// A provider maps LDAP attributes to its own SCIM attributes (custom extension ones too);
/// with uidNumber, gidNumber and homeDirectory its users are posixAccounts.
#[test]
fn providers_map_their_own_attributes_including_extensions() {
    const CONTOSO: &str = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User";
    let d = Directory::start("on");
    let (cli, ok) = (
        |args: &[&str]| d.db.cli(args),
        |args: &[&str]| d.db.ok(args),
    );
    ok(&[
        "schema",
        "add",
        "--provider",
        "contoso",
        "tests/it/schemas/contoso.json",
    ]);
    for (attr, path) in [
        ("employeeType", format!("{CONTOSO}:costCenter")),
        ("uidNumber", format!("{CONTOSO}:clearance")),
        ("gidNumber", format!("{CONTOSO}:clearance")),
        ("homeDirectory", format!("{CONTOSO}:badgeNumber")),
        ("title", "name.givenName".to_string()),
        // What a SCIM GET shows besides the stored document can be mapped too.
        ("roomNumber", "id".to_string()),
        ("carLicense", "meta.resourceType".to_string()),
        ("description", "groups.display".to_string()),
    ] {
        ok(&["ldap", "map", "--provider", "contoso", attr, &path]);
    }
    assert!(ok(&["ldap", "mappings", "--provider", "contoso"]).contains("employeeType"));
    // What cannot be mapped is refused, naming why.
    let refused = cli(&["ldap", "map", "--provider", "contoso", "uid", "displayName"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot be remapped"));
    let refused = cli(&[
        "ldap",
        "map",
        "--provider",
        "contoso",
        "x",
        &format!("{CONTOSO}:nope"),
    ]);
    assert!(!refused.status.success());

    let fred = d.scim.create(
        "/Users",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", CONTOSO],
                "userName": "fred@contoso.com", "name": {"givenName": "Fred"}, "title": "Clerk",
                CONTOSO: {"costCenter": "CC-1", "clearance": 1001, "badgeNumber": "/home/fred"}}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    d.scim.create(
        "/Groups",
        &json!({"displayName": "Clerks", "members": [{"value": fred}]}),
    );
    let (out, code) = d.search(BASE, "(employeeType=CC-1)", &[]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "dn: uid=fred@contoso.com,ou=people,dc=contoso,dc=scimd",
        "employeeType: CC-1",
        "uidNumber: 1001",
        "gidNumber: 1001",
        "homeDirectory: /home/fred",
        "objectClass: posixAccount",
        // Replaced: the provider's title is the given name.
        "title: Fred",
        &format!("roomNumber: {fred}"),
        "carLicense: User",
        "description: Clerks",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let (out, _) = d.search(BASE, "(objectClass=posixAccount)", &["1.1"]);
    assert_eq!(out.matches("dn: ").count(), 1, "{out}");
    ok(&["ldap", "unmap", "--provider", "contoso", "title"]);
    let (out, _) = d.search(BASE, "(uid=fred@contoso.com)", &["title"]);
    assert!(out.contains("title: Clerk"), "{out}");
}

/// A search that outlasts the client's time limit ends with timeLimitExceeded (the debug
/// build reads one entry per batch here and pauses 1.5 s before each; the limit is 1 s).
#[test]
fn a_search_stops_at_its_time_limit() {
    let d = Directory::start_with(
        "on",
        &[
            ("TEST_LDAP_BATCH_DELAY_MS", "1500"),
            ("TEST_LDAP_BATCH_SIZE", "1"),
        ],
    );
    d.scim
        .create("/Users", &json!({"userName": "a@contoso.com"}));
    d.scim
        .create("/Users", &json!({"userName": "b@contoso.com"}));
    d.scim.create("/Groups", &json!({"displayName": "G"}));
    // One user, then the limit has passed before the next batch is read.
    let (out, code) = d.search(BASE, "(objectClass=*)", &["-l", "1", "1.1"]);
    assert_eq!(code, 3, "timeLimitExceeded: {out}");
    assert!(out.contains("dn: uid=a@contoso.com"), "{out}");
    assert!(!out.contains("dn: uid=b@contoso.com"), "{out}");
    assert!(!out.contains("dn: cn=G,"), "{out}");
    // Without a limit the same search completes.
    let (out, code) = d.search(BASE, "(objectClass=*)", &["1.1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dn: uid=b@contoso.com"), "{out}");
    assert!(out.contains("dn: cn=G,"), "{out}");
}

/// A provider's tree under a base DN of its choosing: binds, searches, DNs and DN-valued
/// filters all use it, and the default tree is no longer the provider's.
#[test]
fn a_provider_chooses_its_base_dn() {
    let d = Directory::start("on");
    let cli = |args: &[&str]| d.db.cli(args);
    let base = "ou=Entra,dc=example,dc=com";
    d.db.ok(&["ldap", "base", "--provider", "contoso", base]);
    assert!(
        !cli(&["ldap", "base", "--provider", "contoso", "not a dn"])
            .status
            .success()
    );
    let alice = d
        .scim
        .create("/Users", &json!({"userName": "alice@contoso.com"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    d.scim.create(
        "/Groups",
        &json!({"displayName": "Staff", "members": [{"value": alice}]}),
    );
    let search = |bind: &str, base: &str, filter: &str| {
        let mut cmd = tool("ldapsearch");
        cmd.args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &d.url])
            .args(["-D", bind, "-w", &d.password, "-b", base, filter]);
        run(cmd)
    };
    let bind = format!("cn=grafana,ou=services,{base}");
    let (out, code) = search(&bind, base, "(uid=alice@contoso.com)");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("dn: uid=alice@contoso.com,ou=people,ou=Entra,dc=example,dc=com"),
        "{out}"
    );
    assert!(
        out.contains("memberOf: cn=Staff,ou=groups,ou=Entra,dc=example,dc=com"),
        "{out}"
    );
    let (out, _) = search(
        &bind,
        &format!("ou=groups,{base}"),
        &format!("(member=uid=alice@contoso.com,ou=people,{base})"),
    );
    assert!(
        out.contains("dn: cn=Staff,ou=groups,ou=Entra,dc=example,dc=com"),
        "{out}"
    );
    // The root entry is typed by the base's first RDN: here an organizational unit too.
    let (out, _) = search(&bind, base, "(objectClass=organizationalUnit)");
    assert_eq!(out.matches("dn: ").count(), 3, "{out}");
    assert!(
        out.contains("dn: ou=Entra,dc=example,dc=com\nobjectClass: top\nobjectClass: organizationalUnit\nou: Entra"),
        "{out}"
    );
    // The default tree is not the provider's any more.
    let (out, code) = search(BIND, BASE, "(uid=alice@contoso.com)");
    assert_eq!(code, 49, "{out}");
    // Back to the default.
    assert!(
        cli(&["ldap", "base", "--provider", "contoso", "--default"])
            .status
            .success()
    );
    let (out, code) = search(BIND, BASE, "(uid=alice@contoso.com)");
    assert_eq!(code, 0, "{out}");
}

/// One LDAP connection kept open across operations (OpenLDAP's tools bind anew each time),
/// as an application's connection pool keeps it.
pub struct Connection {
    pub tcp: std::net::TcpStream,
    codec: ldap3_proto::LdapCodec,
    input: bytes::BytesMut,
    next_id: i32,
}

impl Connection {
    pub fn open(url: &str) -> Connection {
        let tcp = std::net::TcpStream::connect(url.trim_start_matches("ldap://")).unwrap();
        Connection::over(tcp)
    }

    /// A connection over a TCP stream opened elsewhere (from another loopback address, say).
    pub fn over(tcp: std::net::TcpStream) -> Connection {
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        Connection {
            tcp,
            codec: ldap3_proto::LdapCodec::new(None, None),
            input: bytes::BytesMut::new(),
            next_id: 0,
        }
    }

    pub fn send(&mut self, op: ldap3_proto::proto::LdapOp) {
        use std::io::Write;
        use tokio_util::codec::Encoder;
        self.next_id += 1;
        let mut out = bytes::BytesMut::new();
        self.codec
            .encode(ldap3_proto::proto::LdapMsg::new(self.next_id, op), &mut out)
            .unwrap();
        self.tcp.write_all(&out).unwrap();
    }

    pub fn receive(&mut self) -> ldap3_proto::proto::LdapOp {
        let m = self
            .receive_any()
            .expect("the server closed the connection");
        assert_eq!(m.msgid, self.next_id);
        m.op
    }

    /// The next message, whatever its id (a notice of disconnection has 0), or `None` once
    /// the server has closed the connection.
    pub fn receive_any(&mut self) -> Option<ldap3_proto::proto::LdapMsg> {
        use std::io::Read;
        use tokio_util::codec::Decoder;
        loop {
            if let Some(m) = self.codec.decode(&mut self.input).unwrap() {
                return Some(m);
            }
            let mut chunk = [0u8; 16384];
            match self.tcp.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading from the server: {e}"),
            }
        }
    }

    pub fn bind(&mut self, dn: &str, password: &str) -> ldap3_proto::LdapResultCode {
        self.bind_result(dn, password).0
    }

    /// A simple bind's result code and message.
    pub fn bind_result(
        &mut self,
        dn: &str,
        password: &str,
    ) -> (ldap3_proto::LdapResultCode, String) {
        use ldap3_proto::proto::{LdapBindCred, LdapBindRequest, LdapOp};
        self.send(LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: dn.to_string(),
            cred: LdapBindCred::Simple(password.to_string()),
        }));
        match self.receive() {
            LdapOp::BindResponse(r) => (r.res.code, r.res.message),
            other => panic!("not a bind response: {other:?}"),
        }
    }

    /// A subtree search under `BASE`: the DNs found and the result (code and message).
    pub fn search(&mut self, filter: &str) -> (Vec<String>, ldap3_proto::LdapResultCode, String) {
        self.search_in(BASE, ldap3_proto::proto::LdapSearchScope::Subtree, filter)
    }

    /// A search with an equality filter (`attr=value`).
    pub fn search_in(
        &mut self,
        base: &str,
        scope: ldap3_proto::proto::LdapSearchScope,
        filter: &str,
    ) -> (Vec<String>, ldap3_proto::LdapResultCode, String) {
        use ldap3_proto::proto::LdapFilter;
        let (attr, value) = filter.split_once('=').unwrap();
        self.search_with(
            base,
            scope,
            LdapFilter::Equality(attr.to_string(), value.to_string()),
        )
    }

    /// A search with any filter: the DNs found and the result (code and message).
    pub fn search_with(
        &mut self,
        base: &str,
        scope: ldap3_proto::proto::LdapSearchScope,
        filter: ldap3_proto::proto::LdapFilter,
    ) -> (Vec<String>, ldap3_proto::LdapResultCode, String) {
        use ldap3_proto::proto::{LdapDerefAliases, LdapOp, LdapSearchRequest};
        self.send(LdapOp::SearchRequest(LdapSearchRequest {
            base: base.to_string(),
            scope,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter,
            attrs: vec![],
        }));
        let mut found = Vec::new();
        loop {
            match self.receive() {
                LdapOp::SearchResultEntry(e) => found.push(e.dn),
                LdapOp::SearchResultDone(r) => return (found, r.code, r.message),
                other => panic!("not a search answer: {other:?}"),
            }
        }
    }
}

/// A bind the store cannot answer gets `unavailable` with a plain message: what SQLite said
/// goes to the server's log, never to the client. Each table a bind reads is taken away in
/// turn (renamed under the running server), then put back, and binds work again.
#[test]
fn a_bind_the_store_cannot_answer_does_not_tell_the_client_why() {
    use ldap3_proto::LdapResultCode::{Success, Unavailable};
    let d = Directory::start("on");
    let db = rusqlite::Connection::open(&d.db.path).unwrap();
    for table in ["ldap_settings", "credentials"] {
        db.execute_batch(&format!("ALTER TABLE {table} RENAME TO {table}_away"))
            .unwrap();
        let mut c = Connection::open(&d.url);
        let (code, message) = c.bind_result(BIND, &d.password);
        assert_eq!(code, Unavailable, "{table}: {message}");
        assert_eq!(message, "the directory cannot be read right now", "{table}");
        db.execute_batch(&format!("ALTER TABLE {table}_away RENAME TO {table}"))
            .unwrap();
        assert_eq!(Connection::open(&d.url).bind(BIND, &d.password), Success);
    }
}

/// A connection stays bound only while what it bound with is valid: an account revoked or
/// expired, a user deactivated, deleted or given a new password by its identity provider, and
/// the next search on that open connection is refused, as the next request of a revoked SCIM
/// token is. Binding again with something valid reads again.
#[test]
fn open_connections_stop_reading_when_their_binding_is_no_longer_valid() {
    use ldap3_proto::LdapResultCode::{InsufficentAccessRights, InvalidCredentials, Success};
    let d = Directory::start("on");
    d.provision();
    let alice = format!("uid=alice@contoso.com,ou=people,{BASE}");
    let account_id = |name: &str| {
        d.db.ok(&["ldap", "account", "list"])
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(name))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no account {name}"))
            .to_string()
    };

    // Revoked while bound.
    let mut c = Connection::open(&d.url);
    assert_eq!(c.bind(BIND, &d.password), Success);
    assert_eq!(c.search("uid=alice@contoso.com").0, [alice.as_str()]);
    d.db.ok(&["ldap", "account", "revoke", &account_id("grafana")]);
    let (found, code, message) = c.search("uid=alice@contoso.com");
    assert!(found.is_empty());
    assert_eq!(code, InsufficentAccessRights, "{message}");
    assert!(message.contains("revoked"), "{message}");
    // Unbound from then on, and the secret no longer binds.
    let (_, code, message) = c.search("uid=alice@contoso.com");
    assert_eq!(code, InsufficentAccessRights, "{message}");
    assert!(message.contains("bind"), "{message}");
    assert_eq!(c.bind(BIND, &d.password), InvalidCredentials);

    // Expired while bound: a new account on the same connection.
    let (jira, _) = d.db.ldap_account("jira", "contoso");
    let jira_dn = format!("cn=jira,ou=services,{BASE}");
    assert_eq!(c.bind(&jira_dn, &jira), Success);
    assert_eq!(c.search("uid=alice@contoso.com").0, [alice.as_str()]);
    // A search of the tree's fixed entries only (no user or group read) is checked too.
    let people = format!("ou=people,{BASE}");
    let base_scope = ldap3_proto::proto::LdapSearchScope::Base;
    let (found, code, _) = c.search_in(
        &people,
        base_scope.clone(),
        "objectClass=organizationalUnit",
    );
    assert_eq!((found, code), (vec![people.clone()], Success));
    let db = rusqlite::Connection::open(&d.db.path).unwrap();
    db.execute(
        "UPDATE credentials SET expires = 1 WHERE id = ?1",
        [account_id("jira")],
    )
    .unwrap();
    let (found, code, message) = c.search_in(&people, base_scope, "objectClass=organizationalUnit");
    assert!(found.is_empty(), "nothing, not even a fixed entry");
    assert_eq!(code, InsufficentAccessRights, "{message}");
    assert!(message.contains("expired"), "{message}");

    // A user bound with the password its identity provider sent: a new password, then a
    // deactivation, then a delete each end the binding.
    d.scim_passwords("all");
    let dana = d.scim.create(
        "/Users",
        &json!({"userName": "dana@contoso.com", "password": "dana's first password"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dana_dn = format!("uid=dana@contoso.com,ou=people,{BASE}");
    let mut u = Connection::open(&d.url);
    assert_eq!(u.bind(&dana_dn, "dana's first password"), Success);
    assert_eq!(u.search("uid=alice@contoso.com").1, Success);
    let patch = |ops: serde_json::Value| {
        d.scim.patch(&format!("/Users/{dana}"), ops).expect(200);
    };
    patch(json!([{"op": "replace", "path": "password", "value": "dana's second password"}]));
    let (_, code, message) = u.search("uid=alice@contoso.com");
    assert_eq!(code, InsufficentAccessRights, "{message}");
    assert!(message.contains("password was changed"), "{message}");
    assert_eq!(
        u.bind(&dana_dn, "dana's first password"),
        InvalidCredentials
    );
    assert_eq!(u.bind(&dana_dn, "dana's second password"), Success);
    assert_eq!(u.search("uid=alice@contoso.com").1, Success);
    patch(json!([{"op": "replace", "path": "active", "value": false}]));
    let (_, code, message) = u.search("uid=alice@contoso.com");
    assert_eq!(code, InsufficentAccessRights, "{message}");
    assert!(message.contains("deactivated"), "{message}");
    patch(json!([{"op": "replace", "path": "active", "value": true}]));
    assert_eq!(u.bind(&dana_dn, "dana's second password"), Success);
    assert_eq!(d.scim.delete(&format!("/Users/{dana}")).status, 204);
    let (_, code, message) = u.search("uid=alice@contoso.com");
    assert_eq!(code, InsufficentAccessRights, "{message}");
    assert!(message.contains("no longer exists"), "{message}");
}

/// OpenLDAP's ldapsearch with controls marked critical that scimd does not apply (assertion,
/// content synchronisation): unavailableCriticalExtension (12), nothing returned. Not marked
/// critical, the assertion control is ignored and the search answers.
#[test]
fn critical_controls_that_are_not_supported_stop_the_search() {
    let d = Directory::start("on");
    d.provision();
    for (flag, control) in [
        ("-e", "!assert=(uid=nobody)"),
        ("-E", "!sync=ro"),
        ("-E", "!sss=uid"),
    ] {
        let (out, code) = d.search(BASE, "(objectClass=*)", &[flag, control, "1.1"]);
        assert_eq!(code, 12, "{control}: {out}");
        assert!(!out.contains("dn: "), "{control}: {out}");
    }
    let (out, code) = d.search(BASE, "(uid=*)", &["-e", "assert=(uid=nobody)", "1.1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dn: uid="), "{out}");
    // Server-side sorting not marked critical: answered, unsorted.
    let (out, code) = d.search(BASE, "(uid=*)", &["-E", "sss=uid", "1.1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dn: uid="), "{out}");
}

/// NOT of a filter item on an attribute the directory does not have is Undefined, not TRUE
/// (RFC 4511 §4.5.1.7): `(!(noSuchAttribute=x))` finds nothing; the negation of a known
/// attribute still finds everyone else.
#[test]
fn the_negation_of_an_unknown_attribute_finds_nothing() {
    let d = Directory::start("on");
    d.provision();
    let (out, code) = d.search(BASE, "(!(noSuchAttribute=x))", &["1.1"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("dn: "), "{out}");
    let (out, code) = d.search(
        BASE,
        "(&(objectClass=inetOrgPerson)(!(uid=nobody)))",
        &["1.1"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dn: uid="), "{out}");
}

/// Filters compare values by the syntax of the attribute they stand for (RFC 4517, §4.5.1.7 of
/// RFC 4511): a number mapped to an integer attribute is found by its number, and a value that
/// is not a number is Undefined — no entry, never an unavailable server; `manager`,
/// `createTimestamp` and `modifyTimestamp` are searchable like every attribute entries show.
#[test]
fn telephone_numbers_match_with_spaces_and_hyphens_ignored() {
    // telephoneNumberMatch (RFC 4517 §4.2.29, RFC 4518 §2.6.1): alice's "+1 555 0100" is the
    // same number however a client spaces or hyphenates it, for equality and substrings.
    let d = Directory::start("on");
    d.provision();
    let found = |filter: &str| {
        let (out, code) = d.search(BASE, filter, &["1.1"]);
        assert_eq!(code, 0, "{filter}: {out}");
        out.lines()
            .filter_map(|l| l.strip_prefix("dn: uid="))
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let alice = vec!["alice@contoso.com".to_string()];
    for filter in [
        "(telephoneNumber=+1 555 0100)",
        "(telephoneNumber=+15550100)",
        "(telephoneNumber=+1-555-0100)",
        "(telephoneNumber= +1 5550 100 )",
        "(telephoneNumber=+1555*)",
        "(telephoneNumber=*5-0100)",
        "(telephoneNumber=*550*)",
        "(telephoneNumber:2.5.13.20:=+15550100)",
    ] {
        assert_eq!(found(filter), alice, "{filter}");
    }
    for filter in [
        "(telephoneNumber=+15550101)",
        "(telephoneNumber=+1 555 01)",
        "(telephoneNumber=*0101)",
    ] {
        assert_eq!(found(filter), Vec::<String>::new(), "{filter}");
    }
    // Telephone numbers have no ordering: Undefined, and so is its negation.
    assert_eq!(found("(telephoneNumber>=+1)"), Vec::<String>::new());
    assert!(!found("(!(telephoneNumber=+15550100))").contains(&alice[0]));
    // A compare of the attribute matches the same way.
    let mut cmd = tool("ldapcompare");
    cmd.args(["-x", "-H", &d.url, "-D", BIND, "-w", &d.password]);
    cmd.args([
        &format!("uid=alice@contoso.com,ou=people,{BASE}"),
        "telephoneNumber:+1-555-0100",
    ]);
    let (out, code) = run(cmd);
    assert_eq!(code, 6, "compareTrue expected: {out}");
}

#[test]
fn filters_compare_numbers_times_and_dns_by_their_syntax() {
    const CONTOSO: &str = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User";
    let d = Directory::start("on");
    d.db.ok(&[
        "schema",
        "add",
        "--provider",
        "contoso",
        "tests/it/schemas/contoso.json",
    ]);
    d.db.ok(&[
        "ldap",
        "map",
        "--provider",
        "contoso",
        "uidNumber",
        &format!("{CONTOSO}:clearance"),
    ]);
    let (alice, _bob) = d.provision();
    d.scim
        .patch(
            &format!("/Users/{alice}"),
            json!([{"op": "add", "path": format!("{CONTOSO}:clearance"), "value": 10003}]),
        )
        .expect(200);
    let found = |filter: &str| {
        let (out, code) = d.search(BASE, filter, &["1.1"]);
        assert_eq!(code, 0, "{filter}: {out}");
        let mut dns: Vec<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("dn: uid="))
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect();
        dns.sort();
        dns
    };
    let alice_only = vec!["alice@contoso.com".to_string()];
    assert_eq!(found("(uidNumber=10003)"), alice_only);
    assert_eq!(found("(uidNumber>=10000)"), alice_only);
    assert_eq!(
        found("(&(objectClass=posixAccount)(uidNumber<=9999))"),
        Vec::<String>::new()
    );
    // Not a number: Undefined, and so is its negation.
    assert_eq!(found("(uidNumber=abc)"), Vec::<String>::new());
    assert_eq!(found("(!(uidNumber=abc))"), Vec::<String>::new());
    assert_eq!(found("(uidNumber=1*)"), Vec::<String>::new());
    // manager by DN, and present.
    let boss = "uid=bob@contoso.com,ou=people,dc=contoso,dc=scimd";
    assert_eq!(found(&format!("(manager={boss})")), alice_only);
    assert_eq!(found("(manager=*)"), alice_only);
    assert_eq!(
        found("(manager=uid=nobody@contoso.com,ou=people,dc=contoso,dc=scimd)"),
        Vec::<String>::new()
    );
    // Timestamps, as the entries show them (GeneralizedTime, whole seconds).
    let (out, _) = d.search(
        BASE,
        "(uid=alice@contoso.com)",
        &["modifyTimestamp", "createTimestamp"],
    );
    let stamp = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .to_string()
    };
    let (modified, created) = (stamp("modifyTimestamp"), stamp("createTimestamp"));
    assert!(found(&format!("(modifyTimestamp>={modified})")).contains(&alice_only[0]));
    assert!(found(&format!("(modifyTimestamp={modified})")).contains(&alice_only[0]));
    assert!(found(&format!("(createTimestamp<={created})")).contains(&alice_only[0]));
    assert_eq!(
        found("(modifyTimestamp>=29991231235959Z)"),
        Vec::<String>::new()
    );
    assert_eq!(found("(modifyTimestamp>=yesterday)"), Vec::<String>::new());
    assert_eq!(
        found("(createTimestamp>=20000101000000Z)"),
        ["alice@contoso.com", "bob@contoso.com"]
    );
}

/// Compare (RFC 4511 §4.10) with OpenLDAP's `ldapcompare`, as Apache's `Require ldap-group`
/// and `ldap-attribute` use it: TRUE and FALSE by the attribute's equality matching (`member`
/// as a `(member=…)` search finds it), no such attribute, no such entry (a deactivated user
/// included), and the access rules of search (an anonymous compare is refused).
#[test]
fn compare_answers_as_a_search_of_the_entry_would() {
    let d = Directory::start("on");
    d.provision();
    let compare = |dn: &str, assertion: &str, bind: bool| {
        let mut cmd = tool("ldapcompare");
        cmd.args(["-x", "-H", &d.url]);
        if bind {
            cmd.args(["-D", BIND, "-w", &d.password]);
        }
        cmd.args([dn, assertion]);
        run(cmd)
    };
    let alice = format!("uid=alice@contoso.com,ou=people,{BASE}");
    let engineering = format!("cn=Engineering,ou=groups,{BASE}");
    let everyone = format!("cn=Everyone,ou=groups,{BASE}");
    let bob = format!("uid=bob@contoso.com,ou=people,{BASE}");
    for (dn, assertion, code, said) in [
        (&engineering, format!("member:{alice}"), 6, "TRUE"),
        (&engineering, format!("member:{bob}"), 5, "FALSE"),
        (&everyone, format!("member:{bob}"), 6, "TRUE"),
        (&alice, "mail:ALICE@contoso.com".to_string(), 6, "TRUE"),
        (&alice, "title:Engineer".to_string(), 6, "TRUE"),
        (&alice, "title:Boss".to_string(), 5, "FALSE"),
        (&alice, format!("manager:{bob}"), 6, "TRUE"),
        (&alice, "objectClass:inetOrgPerson".to_string(), 6, "TRUE"),
        (&alice, "carLicense:x".to_string(), 16, "No such attribute"),
        (&bob, "title:Engineer".to_string(), 16, "No such attribute"),
    ] {
        let (out, got) = compare(dn, &assertion, true);
        assert_eq!(got, code, "{dn} {assertion}: {out}");
        assert!(out.contains(said), "{dn} {assertion}: {out}");
    }
    // No such entry: a made-up user, and a deactivated one (not in the directory).
    for dn in [
        format!("uid=nobody@contoso.com,ou=people,{BASE}"),
        format!("uid=carol@contoso.com,ou=people,{BASE}"),
    ] {
        let (out, code) = compare(&dn, "uid:carol@contoso.com", true);
        assert_eq!(code, 32, "{dn}: {out}");
    }
    let (out, code) = compare(&alice, "title:Engineer", false);
    assert_eq!(code, 50, "anonymous: {out}");
}

/// The smaller protocol gaps, each as a client meets it: a base search on a DN with no entry
/// (or a deactivated user's) is `noSuchObject` with the unit that exists as matched DN; a
/// deactivated user's DN in a filter matches nothing, also where a group still lists him; the
/// root DSE names the trees to an anonymous client; a size limit counts every page of a paged
/// search; a bind with a name and no password is refused the same way for every name.
#[test]
fn missing_entries_deactivated_dns_naming_contexts_paged_limits_and_empty_passwords() {
    let d = Directory::start("on");
    let (alice, _bob) = d.provision();
    let carol = d
        .scim
        .get("/Users?filter=userName%20eq%20%22carol@contoso.com%22")
        .json()["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let eng = d
        .scim
        .get("/Groups?filter=displayName%20eq%20%22Engineering%22")
        .json()["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    d.scim
        .patch(
            &format!("/Groups/{eng}"),
            json!([{"op": "add", "path": "members", "value": [{"value": carol}]}]),
        )
        .expect(200);
    let people = format!("ou=people,{BASE}");
    for missing in ["nobody@contoso.com", "carol@contoso.com"] {
        let (out, code) = d.search(
            &format!("uid={missing},{people}"),
            "(objectClass=*)",
            &["-s", "base"],
        );
        assert_eq!(code, 32, "{missing}: {out}");
        assert!(out.contains(&format!("Matched DN: {people}")), "{out}");
    }
    // An entry that exists but does not match the filter: success, no entry.
    let (out, code) = d.search(
        &format!("uid=alice@contoso.com,{people}"),
        "(uid=nobody)",
        &["-s", "base"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("dn: "), "{out}");

    let carol_dn = format!("uid=carol@contoso.com,{people}");
    let (out, code) = d.search(BASE, &format!("(member={carol_dn})"), &["1.1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("dn: "),
        "a deactivated user's DN matches nothing: {out}"
    );
    let alice_dn = format!("uid=alice@contoso.com,{people}");
    let (out, _) = d.search(BASE, &format!("(member={alice_dn})"), &["1.1"]);
    assert!(out.contains("dn: cn=Engineering"), "{out} ({alice})");

    // The root DSE, read anonymously, names the provider's tree.
    let mut anonymous = tool("ldapsearch");
    anonymous.args([
        "-x",
        "-LLL",
        "-H",
        &d.url,
        "-b",
        "",
        "-s",
        "base",
        "namingContexts",
    ]);
    let (out, code) = run(anonymous);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("namingContexts: {BASE}")), "{out}");

    // A size limit of 3 with pages of 2: two pages, 3 entries in all, then sizeLimitExceeded.
    let (out, code) = d.search(
        BASE,
        "(objectClass=*)",
        &["-z", "3", "-E", "pr=2/noprompt", "1.1"],
    );
    assert_eq!(code, 4, "sizeLimitExceeded: {out}");
    assert_eq!(out.matches("dn: ").count(), 3, "{out}");

    // A name and no password: refused alike whether the name exists or not.
    for dn in [
        alice_dn.as_str(),
        "uid=nobody@contoso.com,ou=people,dc=contoso,dc=scimd",
        BIND,
    ] {
        let mut bind = tool("ldapwhoami");
        bind.args(["-x", "-H", &d.url, "-D", dn, "-w", ""]);
        let (out, code) = run(bind);
        assert_eq!(code, 53, "{dn}: {out}");
        assert!(out.contains("no password"), "{dn}: {out}");
    }
}

/// POSIX identities with nothing from the identity provider (`scimd ldap posix`): users are
/// posixAccounts with numbers that stay theirs through a rename, their own primary group,
/// home and shell from the templates; groups are posixGroups with gidNumber and memberUid;
/// every one of them is searchable as SSSD and nslcd search; a mapped value wins; `--off`
/// takes them away.
#[test]
fn posix_identities_need_nothing_from_the_identity_provider() {
    const CONTOSO: &str = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User";
    let d = Directory::start("on");
    let (alice, _bob) = d.provision();
    let shown = d.db.ok(&["ldap", "posix", "--provider", "contoso"]);
    assert!(shown.contains("off"), "{shown}");
    let set = d.db.ok(&[
        "ldap",
        "posix",
        "--provider",
        "contoso",
        "--on",
        "--first-id",
        "20000",
        "--home",
        "/home/{local}",
        "--shell",
        "/bin/zsh",
    ]);
    assert!(set.contains("numbers:        20000"), "{set}");
    let attr = |out: &str, name: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
            .collect()
    };
    let (out, code) = d.search(
        BASE,
        "(&(objectClass=posixAccount)(uid=alice@contoso.com))",
        &[
            "uidNumber",
            "gidNumber",
            "homeDirectory",
            "loginShell",
            "objectClass",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let uid = attr(&out, "uidNumber");
    assert_eq!(uid.len(), 1, "{out}");
    let number: i64 = uid[0].parse().unwrap();
    assert!(number > 20000, "{out}");
    assert_eq!(attr(&out, "gidNumber"), uid, "a private primary group");
    assert_eq!(attr(&out, "homeDirectory"), ["/home/alice"]);
    assert_eq!(attr(&out, "loginShell"), ["/bin/zsh"]);
    assert!(attr(&out, "objectClass").contains(&"posixAccount".to_string()));

    // getpwuid and getgrgid, as SSSD asks.
    let (out, _) = d.search(
        BASE,
        &format!("(&(objectClass=posixAccount)(uidNumber={number}))"),
        &["1.1"],
    );
    assert_eq!(out.matches("dn: ").count(), 1, "{out}");
    assert!(out.contains("uid=alice@contoso.com"), "{out}");
    let (out, _) = d.search(
        BASE,
        "(&(objectClass=posixGroup)(cn=Engineering))",
        &["gidNumber", "memberUid", "member"],
    );
    let gid = attr(&out, "gidNumber");
    assert_eq!(gid.len(), 1, "{out}");
    assert_ne!(gid[0], uid[0], "users and groups never share a number");
    assert_eq!(attr(&out, "memberUid"), ["alice@contoso.com"]);
    let (out, _) = d.search(
        BASE,
        &format!("(&(objectClass=posixGroup)(gidNumber={}))", gid[0]),
        &["1.1"],
    );
    assert!(out.contains("dn: cn=Engineering"), "{out}");
    // initgroups as RFC 2307 clients (memberUid) and rfc2307bis ones (member) ask.
    let (out, _) = d.search(
        BASE,
        "(&(objectClass=posixGroup)(memberUid=alice@contoso.com))",
        &["1.1"],
    );
    assert_eq!(out.matches("dn: ").count(), 1, "{out}");
    // Everyone holds Engineering and bob, no user named alice directly.
    let (out, _) = d.search(
        BASE,
        "(&(objectClass=posixGroup)(memberUid=bob@contoso.com))",
        &["1.1"],
    );
    assert!(out.contains("dn: cn=Everyone"), "{out}");
    let (out, _) = d.search(
        BASE,
        "(&(objectClass=posixAccount)(uidNumber=oops))",
        &["1.1"],
    );
    assert!(!out.contains("dn: "), "{out}");
    let (out, _) = d.search(
        BASE,
        "(&(objectClass=posixAccount)(homeDirectory=/home/alice))",
        &["1.1"],
    );
    assert!(
        !out.contains("dn: "),
        "{{local}} homes are not searched by value: {out}"
    );

    // A rename keeps the number.
    d.scim
        .patch(
            &format!("/Users/{alice}"),
            json!([{"op": "replace", "path": "userName", "value": "alice.adams@contoso.com"}]),
        )
        .expect(200);
    let (out, _) = d.search(BASE, &format!("(uidNumber={number})"), &["uid"]);
    assert!(out.contains("uid: alice.adams@contoso.com"), "{out}");

    // A value the identity provider sends, mapped, wins over the allocated one.
    d.db.ok(&[
        "schema",
        "add",
        "--provider",
        "contoso",
        "tests/it/schemas/contoso.json",
    ]);
    d.db.ok(&[
        "ldap",
        "map",
        "--provider",
        "contoso",
        "uidNumber",
        &format!("{CONTOSO}:clearance"),
    ]);
    d.scim
        .patch(
            &format!("/Users/{alice}"),
            json!([{"op": "add", "path": format!("{CONTOSO}:clearance"), "value": 4242}]),
        )
        .expect(200);
    let (out, _) = d.search(BASE, "(uidNumber=4242)", &["uidNumber", "gidNumber"]);
    assert_eq!(attr(&out, "uidNumber"), ["4242"], "{out}");
    assert_eq!(attr(&out, "gidNumber"), uid, "{out}");

    // Off: no POSIX attributes, and posixGroup matches nothing.
    assert!(
        d.db.ok(&["ldap", "posix", "--provider", "contoso", "--off"])
            .contains("off")
    );
    let (out, _) = d.search(BASE, "(objectClass=posixGroup)", &["1.1"]);
    assert!(!out.contains("dn: "), "{out}");
    let (out, _) = d.search(BASE, "(uid=bob@contoso.com)", &["gidNumber", "loginShell"]);
    assert!(
        !out.contains("gidNumber") && !out.contains("loginShell"),
        "{out}"
    );
    let audit = d.db.ok(&["audit", "--provider", "contoso"]);
    assert_eq!(
        audit.matches("LDAP POSIX identities set").count(),
        2,
        "{audit}"
    );
}

/// Group attributes can be mapped too (`scimd ldap map --groups`): a group's gidNumber sent by
/// the identity provider in a Group extension makes it a posixGroup, searchable by number; a
/// Group path given for users is refused with the flag that is missing.
#[test]
fn group_attributes_are_mapped_and_make_posix_groups() {
    const GROUP: &str = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:Group";
    let d = Directory::start("on");
    d.provision();
    d.db.ok(&[
        "schema",
        "add",
        "--provider",
        "contoso",
        "--resource-type",
        "group",
        "tests/it/schemas/contoso-group.json",
    ]);
    let refused = d.db.fails(&[
        "ldap",
        "map",
        "--provider",
        "contoso",
        "gidNumber",
        &format!("{GROUP}:gidNumber"),
    ]);
    assert!(refused.contains("add --groups"), "{refused}");
    let out = d.db.ok(&[
        "ldap",
        "map",
        "--provider",
        "contoso",
        "--groups",
        "gidNumber",
        &format!("{GROUP}:gidNumber"),
    ]);
    assert!(
        out.contains("groups of contoso now have gidNumber"),
        "{out}"
    );
    assert!(
        d.db.ok(&["ldap", "mappings", "--provider", "contoso"])
            .contains("Groups")
    );
    d.scim.create(
        "/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", GROUP],
                "displayName": "Operators", GROUP: {"gidNumber": 5001}}),
    );
    let (out, code) = d.search(
        BASE,
        "(&(objectClass=posixGroup)(gidNumber=5001))",
        &["gidNumber", "objectClass"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dn: cn=Operators"), "{out}");
    assert!(out.contains("gidNumber: 5001"), "{out}");
    assert!(out.contains("objectClass: posixGroup"), "{out}");
    // Groups without the value are no posixGroups (POSIX identities are off).
    let (out, _) = d.search(BASE, "(objectClass=posixGroup)", &["1.1"]);
    assert_eq!(out.matches("dn: ").count(), 1, "{out}");
    d.db.ok(&[
        "ldap",
        "unmap",
        "--provider",
        "contoso",
        "--groups",
        "gidNumber",
    ]);
    let (out, _) = d.search(BASE, "(gidNumber=5001)", &["1.1"]);
    assert!(!out.contains("dn: "), "{out}");
}

/// Extensible matches (RFC 4511 §4.5.1.7.7) with ldapsearch: with the attribute's own equality
/// rule, by name or OID, or no rule, an item is that equality; `:dn:` also matches the DN's
/// unit and base; another rule is Undefined (no entry, nor for its negation).
#[test]
fn extensible_matches_use_the_attributes_own_rule_and_dn_attributes() {
    let d = Directory::start("on");
    d.provision();
    let count = |filter: &str| {
        let (out, code) = d.search(BASE, filter, &["1.1"]);
        assert_eq!(code, 0, "{filter}: {out}");
        out.matches("dn: ").count()
    };
    assert_eq!(count("(uid:caseIgnoreMatch:=ALICE@contoso.com)"), 1);
    assert_eq!(count("(uid:2.5.13.2:=alice@contoso.com)"), 1);
    assert_eq!(count("(uid:=alice@contoso.com)"), 1);
    assert_eq!(count("(uid:caseExactMatch:=alice@contoso.com)"), 0);
    assert_eq!(count("(!(uid:caseExactMatch:=alice@contoso.com))"), 0);
    // The unit itself, and its users (alice, bob; carol is deactivated) or groups.
    assert_eq!(count("(ou:dn:=people)"), 3);
    assert_eq!(count("(ou:dn:=groups)"), 3);
    assert_eq!(count("(ou:caseExactMatch:=people)"), 0);
    assert_eq!(count("(&(objectClass=inetOrgPerson)(dc:dn:=contoso))"), 2);
    assert_eq!(count("(cn:dn:=Engineering)"), 1);
}

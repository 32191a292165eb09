//! Filters, sorting, pagination and searches over real HTTP, as identity providers use them.

use serde_json::{Value, json};

use crate::harness::{Scim, TestDb, scim_server};

fn enc(filter: &str) -> String {
    let mut out = String::new();
    for b in filter.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn find(scim: &Scim, endpoint: &str, filter: &str) -> Value {
    scim.get(&format!("{endpoint}?filter={}", enc(filter)))
        .expect(200)
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn seed(scim: &Scim) -> Vec<Value> {
    [
        json!({"userName": "Alice@Contoso.com", "externalId": "Ext-A", "active": true, "title": "Engineer",
               "emails": [{"type": "work", "value": "Alice@Contoso.com", "primary": true}, {"type": "home", "value": "alice@home.example"}],
               "name": {"familyName": "Ölund", "givenName": "Alice"},
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}}),
        json!({"userName": "bob@contoso.com", "externalId": "ext-b", "active": false, "title": "Manager",
               "emails": [{"type": "work", "value": "bob@fabrikam.com"}]}),
        json!({"userName": "carol@contoso.com", "title": "engineer", "name": {"familyName": "Smith"}}),
    ]
    .iter()
    .map(|b| scim.create("/Users", b))
    .collect()
}

#[test]
fn entra_test_connection_gets_an_empty_list_not_404() {
    let (_db, _server, scim) = scim_server("entra");
    let resp = scim.get("/Users?filter=userName+eq+%22cf4d78e8-cc4f-4d5d-b8b9-183561c0104a%22");
    let body = resp.expect(200);
    assert_eq!(
        body,
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
               "totalResults": 0, "itemsPerPage": 0, "startIndex": 1, "Resources": []})
    );
    let groups = scim.get("/Groups?excludedAttributes=members&filter=displayName+eq+%22d2a5b6b8-3c5b-4e77-9f0f-2a4b1c3d4e5f%22");
    assert_eq!(groups.expect(200)["totalResults"], 0);
}

#[test]
fn lookups_follow_the_case_rules_of_the_schema() {
    let (_db, _server, scim) = scim_server("p");
    let users = seed(&scim);
    let id = |i: usize| users[i]["id"].as_str().unwrap().to_string();
    assert_eq!(
        ids(&find(&scim, "/Users", r#"userName eq "ALICE@contoso.COM""#)),
        [id(0)]
    );
    assert_eq!(
        ids(&find(&scim, "/Users", r#"externalId eq "Ext-A""#)),
        [id(0)]
    );
    assert!(
        ids(&find(&scim, "/Users", r#"externalId eq "ext-a""#)).is_empty(),
        "externalId is caseExact"
    );
    assert_eq!(
        ids(&find(&scim, "/Users", &format!("id eq \"{}\"", id(1)))),
        [id(1)]
    );
    assert_eq!(
        ids(&find(
            &scim,
            "/Users",
            r#"emails.value eq "alice@contoso.com""#
        )),
        [id(0)]
    );
    assert_eq!(
        ids(&find(&scim, "/Users", r#"emails eq "BOB@FABRIKAM.COM""#)),
        [id(1)]
    );
    assert_eq!(
        ids(&find(
            &scim,
            "/Users",
            r#"emails[type eq "work" and value co "@contoso.com"]"#
        )),
        [id(0)]
    );
    assert_eq!(
        ids(&find(
            &scim,
            "/Users",
            r#"emails[type eq "work"].value ew "fabrikam.com""#
        )),
        [id(1)]
    );
    assert_eq!(
        ids(&find(&scim, "/Users", r#"name.familyName eq "ÖLUND""#)),
        [id(0)]
    );
    assert_eq!(
        ids(&find(&scim, "/Users", r#"title eq "engineer""#)),
        [id(0), id(2)]
    );
    assert_eq!(
        ids(&find(
            &scim,
            "/Users",
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r&d""#
        )),
        [id(0)]
    );
    assert_eq!(
        ids(&find(
            &scim,
            "/Users",
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "CAROL""#
        )),
        [id(2)]
    );
    // A disabled user stays findable.
    assert_eq!(ids(&find(&scim, "/Users", "active eq false")), [id(1)]);
    assert_eq!(ids(&find(&scim, "/Users", r#"active eq "False""#)), [id(1)]);
    assert_eq!(
        ids(&find(
            &scim,
            "/Users",
            r#"not (active eq false) and title pr"#
        )),
        [id(0), id(2)]
    );
    assert_eq!(
        ids(&find(
            &scim,
            "/Users",
            r#"title eq "manager" or externalId eq "Ext-A""#
        )),
        [id(0), id(1)]
    );
    assert_eq!(ids(&find(&scim, "/Users", "externalId pr")), [id(0), id(1)]);
    let created = users[2]["meta"]["created"].as_str().unwrap();
    assert_eq!(
        ids(&find(
            &scim,
            "/Users",
            &format!("meta.created ge \"{created}\"")
        )),
        [id(2)]
    );
    assert_eq!(
        find(
            &scim,
            "/Users",
            r#"meta.lastModified gt "2000-01-01T00:00:00+05:00""#
        )["totalResults"],
        3
    );
    // Filters combine with paging: totalResults counts every match.
    let page = scim
        .get(&format!(
            "/Users?filter={}&count=1&startIndex=2",
            enc("userName co \"contoso\"")
        ))
        .expect(200);
    assert_eq!(
        (page["totalResults"].as_i64(), ids(&page)),
        (Some(3), vec![id(1)])
    );
}

#[test]
fn bad_filters_are_400_invalid_filter_never_an_unfiltered_list() {
    let (_db, _server, scim) = scim_server("p");
    seed(&scim);
    for bad in [
        "userName eq",
        "userName eq \"a",
        "(userName eq \"a\"",
        "shoeSize eq 44",
        "name.nick eq \"x\"",
        "active gt true",
        "userName eq \"a\" and",
        "emails[type eq \"work\"",
        "meta.created gt \"yesterday\"",
    ] {
        let e = scim
            .get(&format!("/Users?filter={}", enc(bad)))
            .scim_error(400);
        assert_eq!(e["scimType"], "invalidFilter", "{bad}");
    }
    let long = format!("userName eq \"{}\"", "x".repeat(5000));
    assert_eq!(
        scim.get(&format!("/Users?filter={}", enc(&long)))
            .scim_error(400)["scimType"],
        "invalidFilter"
    );
    let deep = format!("{}userName eq \"a\"{}", "(".repeat(50), ")".repeat(50));
    assert_eq!(
        scim.get(&format!("/Users?filter={}", enc(&deep)))
            .scim_error(400)["scimType"],
        "invalidFilter"
    );
    // Group attributes are not user attributes.
    assert_eq!(
        scim.get(&format!("/Users?filter={}", enc("members eq \"x\"")))
            .scim_error(400)["scimType"],
        "invalidFilter"
    );
}

#[test]
fn entra_membership_check_and_group_lookups() {
    let (_db, _server, scim) = scim_server("p");
    let users = seed(&scim);
    let g = scim.create(
        "/Groups",
        &json!({"displayName": "Engineering", "externalId": "8aa1a0c0", "members": [{"value": users[0]["id"]}, {"value": users[2]["id"]}]}),
    );
    let other = scim.create(
        "/Groups",
        &json!({"displayName": "Sales", "members": [{"value": users[1]["id"]}]}),
    );
    let gid = g["id"].as_str().unwrap();
    let check = |uid: &Value| {
        scim.get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            enc(&format!(
                "id eq \"{gid}\" and members[value eq \"{}\"]",
                uid.as_str().unwrap()
            ))
        ))
        .expect(200)
    };
    let yes = check(&users[0]["id"]);
    assert_eq!(yes["totalResults"], 1);
    assert!(yes["Resources"][0].get("members").is_none());
    assert_eq!(check(&users[1]["id"])["totalResults"], 0);
    for f in [
        format!("members eq \"{}\"", users[2]["id"].as_str().unwrap()),
        format!("members.value eq \"{}\"", users[2]["id"].as_str().unwrap()),
        "displayName eq \"ENGINEERING\"".to_string(),
        "externalId eq \"8aa1a0c0\"".to_string(),
    ] {
        assert_eq!(ids(&find(&scim, "/Groups", &f)), [gid.to_string()], "{f}");
    }
    let groups_of_bob = find(
        &scim,
        "/Users",
        &format!("groups.value eq \"{}\"", other["id"].as_str().unwrap()),
    );
    assert_eq!(
        ids(&groups_of_bob),
        [users[1]["id"].as_str().unwrap().to_string()]
    );
}

#[test]
fn sorting() {
    let (_db, _server, scim) = scim_server("p");
    seed(&scim);
    let names = |q: &str| -> Vec<String> {
        scim.get(&format!("/Users?{q}")).expect(200)["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("sortBy=userName"),
        ["Alice@Contoso.com", "bob@contoso.com", "carol@contoso.com"]
    );
    assert_eq!(
        names("sortBy=userName&sortOrder=descending"),
        ["carol@contoso.com", "bob@contoso.com", "Alice@Contoso.com"]
    );
    // Case-insensitive titles tie ("Engineer", "engineer"); creation order breaks the tie.
    assert_eq!(
        names("sortBy=title"),
        ["Alice@Contoso.com", "carol@contoso.com", "bob@contoso.com"]
    );
    assert_eq!(
        names("sortBy=emails.value"),
        ["Alice@Contoso.com", "bob@contoso.com", "carol@contoso.com"]
    );
    // Carol has no email: last ascending, first descending (RFC 7644 §3.4.2.3).
    assert_eq!(
        names("sortBy=emails.value&sortOrder=descending"),
        ["carol@contoso.com", "bob@contoso.com", "Alice@Contoso.com"]
    );
    assert_eq!(
        names("sortBy=name.familyName"),
        ["carol@contoso.com", "Alice@Contoso.com", "bob@contoso.com"]
    );
    assert_eq!(
        names("sortBy=name.familyName&sortOrder=descending"),
        ["bob@contoso.com", "Alice@Contoso.com", "carol@contoso.com"]
    );
    assert_eq!(
        scim.get("/Users?sortBy=nosuch").scim_error(400)["scimType"],
        "invalidValue"
    );
    assert_eq!(
        scim.get("/Users?sortBy=userName&sortOrder=sideways")
            .scim_error(400)["scimType"],
        "invalidValue"
    );
}

#[test]
fn cursor_pagination_is_stable_under_concurrent_inserts() {
    let (_db, _server, scim) = scim_server("p");
    let mut expected = Vec::new();
    for i in 0..7 {
        expected.push(
            scim.create("/Users", &json!({"userName": format!("u{i}")}))["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = scim
            .get(&format!("/Users?count=3&cursor={cursor}"))
            .expect(200);
        assert!(page.get("startIndex").is_none());
        seen.extend(ids(&page));
        pages += 1;
        if pages == 1 {
            // A user created mid-walk, and one deleted, do not shift what the walk returns.
            scim.create("/Users", &json!({"userName": "late"}));
        }
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(&seen[..7], &expected[..]);
    assert_eq!(seen.len(), 8, "the late user is appended, nothing repeats");
    let e = scim.get("/Users?cursor=bogus").scim_error(400);
    assert_eq!(e["scimType"], "invalidCursor");
    assert_eq!(
        scim.get("/Users?cursor=&sortBy=userName").scim_error(400)["scimType"],
        "invalidValue"
    );
}

#[test]
fn search_endpoints() {
    let db = TestDb::new();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let (_, read_only) = db.create_token("p", &["--read-only"]);
    let server = crate::harness::Server::start(&db);
    let scim = Scim::new(&server, "p", &token);
    let users = seed(&scim);
    scim.create(
        "/Groups",
        &json!({"displayName": "Alpha Team", "members": [{"value": users[0]["id"]}]}),
    );

    let request = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "attributes": ["userName", "emails.value"],
        "filter": "title eq \"ENGINEER\"",
        "sortBy": "userName", "sortOrder": "descending",
        "startIndex": 1, "count": 10
    });
    let result = scim.post("/Users/.search", &request).expect(200);
    let names: Vec<&str> = result["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol@contoso.com", "Alice@Contoso.com"]);
    let alice = &result["Resources"][1];
    assert!(alice.get("title").is_none() && alice.get("meta").is_none());
    assert_eq!(alice["emails"][0], json!({"value": "Alice@Contoso.com"}));

    // Read-only tokens may search.
    let ro = Scim::new(&server, "p", &read_only);
    assert_eq!(
        ro.post("/Users/.search", &request).expect(200)["totalResults"],
        2
    );
    assert_eq!(
        ro.post(
            "/Groups/.search",
            &json!({"filter": "displayName sw \"alpha\""})
        )
        .expect(200)["totalResults"],
        1
    );

    // Root search: Users then Groups; a filter on an attribute only one type has.
    let all = scim
        .post(
            "/.search",
            &json!({"filter": "displayName co \"a\" or userName co \"a\"", "count": 10}),
        )
        .expect(200);
    let kinds: Vec<&str> = all["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["User", "User", "Group"]);
    let only_groups = scim
        .post("/.search", &json!({"filter": "members pr"}))
        .expect(200);
    assert_eq!(only_groups["totalResults"], 1);
    let paged = scim
        .post("/.search", &json!({"startIndex": 3, "count": 2}))
        .expect(200);
    assert_eq!(
        (
            paged["totalResults"].as_i64(),
            paged["itemsPerPage"].as_i64()
        ),
        (Some(4), Some(2))
    );
    assert_eq!(paged["Resources"][1]["meta"]["resourceType"], "Group");
    assert_eq!(
        scim.post("/.search", &json!({"filter": "nosuch eq 1"}))
            .scim_error(400)["scimType"],
        "invalidFilter"
    );
    assert_eq!(
        scim.post("/Users/.search", &json!({"filter": 5}))
            .scim_error(400)["scimType"],
        "invalidSyntax"
    );
    scim.get("/Users/.search").scim_error(405);
}

/// The widest and deepest filters the parser takes (4,096 bytes, 32 levels) are searched, as
/// lists and as value filters of a PATCH path; past those limits they are a 400 `invalidFilter`,
/// never a 500 or a crash.
#[test]
fn the_widest_and_deepest_filters_are_answered() {
    let (_db, _server, scim) = scim_server("wide");
    let alice = scim.create(
        "/Users",
        &json!({"userName": "alice", "emails": [{"value": "a@x", "type": "work"}]}),
    );
    let id = alice["id"].as_str().unwrap();
    let search = |filter: &str| {
        scim.post(
            "/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": filter}),
        )
    };
    // As many terms as 4,096 bytes hold, as OR and AND.
    for join in [" or ", " and "] {
        let mut terms: Vec<String> = Vec::new();
        while terms.join(join).len() + join.len() + 7 <= 4096 {
            terms.push("id pr".to_string());
        }
        let wide = terms.join(join);
        assert!(wide.len() > 4000, "{}", wide.len());
        let found = search(&wide).expect(200);
        assert_eq!(
            found["totalResults"],
            1,
            "{join:?} of {} terms",
            terms.len()
        );
        let over = format!("{wide}{join}id pr{join}id pr");
        assert_eq!(search(&over).scim_error(400)["scimType"], "invalidFilter");
    }
    // 32 levels of parentheses and not, then one more.
    let nest = |n: usize| {
        format!(
            "{}userName eq \"alice\"{}",
            "not (not (".repeat(n / 2),
            "))".repeat(n / 2)
        )
    };
    assert_eq!(search(&nest(30)).expect(200)["totalResults"], 1);
    assert_eq!(
        search(&nest(40)).scim_error(400)["scimType"],
        "invalidFilter"
    );
    // A PATCH path whose value filter is as wide as the limit allows.
    let mut terms: Vec<String> = Vec::new();
    while terms.join(" or ").len() < 3900 {
        terms.push(format!("type eq \"t{}\"", terms.len()));
    }
    terms.push("type eq \"work\"".into());
    let path = format!("emails[{}].display", terms.join(" or "));
    let patched = scim.patch(
        &format!("/Users/{id}"),
        json!([{"op": "replace", "path": path, "value": "Work"}]),
    );
    assert_eq!(patched.expect(200)["emails"][0]["display"], "Work");
}

//! Users and Groups over real HTTP: RFC 7644 CRUD semantics and what identity providers rely on.

use serde_json::{Value, json};

use crate::harness::{ENT, GROUP, Scim, USER, scim_server};

/// A user with every attribute Microsoft Entra ID maps, odd formatting and unicode included.
fn entra_user(user_name: &str, manager_id: &str) -> Value {
    json!({
        "schemas": [USER, ENT],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": user_name,
        "active": true,
        "displayName": "Zoë  O'Brien-Łukasiewicz",
        "title": "Sr. Engineer (R&D)",
        "preferredLanguage": "en-US",
        "name": {"formatted": "Zoë O'Brien", "familyName": "O'Brien", "givenName": "Zoë"},
        "nickName": "zo",
        "userType": "Employee",
        "locale": "en-US",
        "timezone": "Europe/Amsterdam",
        "emails": [
            {"primary": true, "type": "work", "value": "Zoe.OBrien@Contoso.com"},
            {"type": "home", "value": "zoe@example.org"},
            {"type": "other", "value": "z@example.net"}
        ],
        "phoneNumbers": [
            {"type": "work", "value": "+1 (555) 555-0100"},
            {"type": "mobile", "value": "55555555555"},
            {"type": "fax", "value": "555.0102"},
            {"type": "home", "value": "0031 20 555 0103"},
            {"type": "other", "value": "x"},
            {"type": "pager", "value": "#555"}
        ],
        "addresses": [
            {"type": "work", "formatted": "1 Main St\nSpringfield", "streetAddress": "1 Main St",
             "locality": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"},
            {"type": "home", "streetAddress": "Keizersgracht 1", "locality": "Amsterdam", "country": "NL"},
            {"type": "other", "locality": "Zürich", "country": "CH"}
        ],
        "meta": {"resourceType": "User"},
        "roles": [],
        ENT: {
            "employeeNumber": "000123",
            "costCenter": "CC-42",
            "organization": "Contoso",
            "division": "Cloud",
            "department": "R&D – Platform",
            "manager": {"value": manager_id}
        }
    })
}

/// A group of `members`, each sent with a display name made from its userName/displayName.
fn group(scim: &Scim, name: &str, members: &[&Value]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            let shown = m["userName"]
                .as_str()
                .or(m["displayName"].as_str())
                .unwrap_or_default();
            json!({"value": m["id"], "display": shown.to_uppercase()})
        })
        .collect();
    scim.create(
        "/Groups",
        &json!({"schemas": [GROUP], "displayName": name, "members": members}),
    )
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[test]
fn full_entra_user_round_trips_byte_for_byte() {
    let (_db, _server, scim) = scim_server("entra");
    let boss = scim.user("boss@contoso.com");
    let sent = entra_user("Zoë.OBrien@Contoso.com", id(&boss));
    let created = scim.post("/Users", &sent);
    let body = created.expect(201);
    let location = body["meta"]["location"].as_str().unwrap();
    assert_eq!(created.header("location"), Some(location));
    assert_eq!(location, format!("{}/Users/{}", scim.base, id(&body)));
    assert_eq!(created.header("etag"), body["meta"]["version"].as_str());

    let read = scim.get(&format!("/Users/{}", id(&body))).expect(200);
    for (key, value) in sent.as_object().unwrap() {
        if ["meta", "roles", "schemas"].contains(&key.as_str()) {
            continue;
        }
        assert_eq!(read[key].to_string(), value.to_string(), "{key} changed");
    }
    assert_eq!(read["schemas"], json!([USER, ENT]));
    assert!(read.get("roles").is_none(), "an empty list is no value");
    let meta = &read["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert_eq!(meta["created"], meta["lastModified"]);
    assert!(meta["created"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn user_name_is_unique_regardless_of_case() {
    let (_db, _server, scim) = scim_server("p");
    scim.user("Alice@Contoso.com");
    let body = scim
        .post("/Users", &json!({"userName": "alice@contoso.COM"}))
        .scim_error(409);
    assert_eq!(body["scimType"], "uniqueness");
    assert!(
        body["detail"].as_str().unwrap().contains("userName"),
        "{body}"
    );
    // Group displayName likewise.
    group(&scim, "Sales", &[]);
    let body = scim
        .post("/Groups", &json!({"displayName": "SALES"}))
        .scim_error(409);
    assert_eq!(body["scimType"], "uniqueness");
    // Users and groups are separate namespaces.
    scim.user("Sales");
}

#[test]
fn unknown_and_deleted_ids_get_404() {
    let (_db, _server, scim) = scim_server("p");
    let body = scim.get("/Users/5171a35d82074e068ce2").scim_error(404);
    assert!(body.get("scimType").is_none());
    let u = scim.user("bob");
    let path = format!("/Users/{}", id(&u));
    assert_eq!(scim.delete(&path).status, 204);
    scim.get(&path).scim_error(404);
    scim.delete(&path).scim_error(404);
    scim.put(&path, &json!({"userName": "bob"})).scim_error(404);
    // A user id is not a group id.
    scim.get(&format!("/Groups/{}", id(&u))).scim_error(404);
    // Ids are never reused.
    let again = scim.user("bob");
    assert_ne!(id(&again), id(&u));
}

#[test]
fn read_only_and_write_only_attributes() {
    let (_db, _server, scim) = scim_server("p");
    let body = scim.create(
        "/Users",
        &json!({"userName": "carol", "id": "chosen-by-client", "password": "Hunter2!",
                "meta": {"created": "1999-01-01T00:00:00Z"}, "groups": [{"value": "x"}]}),
    );
    assert_ne!(id(&body), "chosen-by-client");
    assert!(body.get("password").is_none() && body.get("groups").is_none());
    assert_ne!(body["meta"]["created"], "1999-01-01T00:00:00Z");
    let read = scim.get(&format!("/Users/{}", id(&body))).expect(200);
    assert!(read.get("password").is_none());
    let read = scim
        .get(&format!("/Users/{}?attributes=password", id(&body)))
        .expect(200);
    assert!(read.get("password").is_none(), "returned: never");
}

#[test]
fn entra_quirks_are_accepted() {
    let (_db, _server, scim) = scim_server("p");
    // Entra's group shape, with a schema URN nobody else knows.
    let g = scim.create(
        "/Groups",
        &json!({"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "Group1DisplayName",
                "meta": {"resourceType": "Group"},
                "schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"]}),
    );
    assert_eq!(g["schemas"], json!([GROUP]));
    // String booleans, an extension without its URN in schemas, nulls.
    let u = scim.create(
        "/Users",
        &json!({"schemas": [USER], "userName": "dave", "active": "False", "title": null,
                "addresses": null, "emails": [], ENT: {"department": "Ops"}}),
    );
    assert_eq!(u["active"], false);
    assert_eq!(u[ENT]["department"], "Ops");
    assert_eq!(u["schemas"], json!([USER, ENT]));
    assert!(u.get("title").is_none() && u.get("emails").is_none() && u.get("addresses").is_none());
    let u = scim.create("/Users", &json!({"userName": "erin", "active": "True"}));
    assert_eq!(u["active"], true);
}

#[test]
fn bad_input_gets_400_and_changes_nothing() {
    let (_db, _server, scim) = scim_server("p");
    let u = scim.user("frank");
    let path = format!("/Users/{}", id(&u));
    let cases = [
        (json!({"userName": 42}), "invalidValue"),
        (
            json!({"name": {"givenName": "no userName"}}),
            "invalidValue",
        ),
        (
            json!({"userName": "frank", "active": "maybe"}),
            "invalidValue",
        ),
        (
            json!({"userName": "frank", "shoeSize": 44}),
            "invalidSyntax",
        ),
        (
            json!({"userName": "frank", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
            "invalidValue",
        ),
        (json!(["not", "an", "object"]), "invalidSyntax"),
    ];
    for (body, scim_type) in &cases {
        let e = scim.post("/Users", body).scim_error(400);
        assert_eq!(e["scimType"], *scim_type, "POST {body}");
        let e = scim.put(&path, body).scim_error(400);
        assert_eq!(e["scimType"], *scim_type, "PUT {body}");
    }
    let malformed = crate::harness::send(
        "POST",
        &format!("{}/Users", scim.base),
        &scim.token,
        None,
        &[("Content-Type", "application/scim+json")],
    );
    assert_eq!(malformed.status, 400);
    let truncated = r#"{"userName":"#;
    let raw = crate::harness::raw(
        scim.base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap(),
        &format!(
            "POST /scim/v2/p/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{truncated}",
            scim.token,
            truncated.len()
        ),
    );
    assert_eq!(raw.scim_error(400)["scimType"], "invalidSyntax");
    let after = scim.get(&path).expect(200);
    assert_eq!(
        after["meta"]["version"], u["meta"]["version"],
        "nothing changed"
    );
    let list = scim.get("/Users").expect(200);
    assert_eq!(list["totalResults"], 1);
}

#[test]
fn put_replaces_and_respects_uniqueness() {
    let (_db, _server, scim) = scim_server("p");
    scim.user("taken");
    let u = scim.create(
        "/Users",
        &json!({"userName": "gina", "title": "Dev", "nickName": "g", "password": "pw"}),
    );
    let path = format!("/Users/{}", id(&u));
    let replaced = scim
        .put(&path, &json!({"userName": "Gina.Renamed", "title": "Lead"}))
        .expect(200);
    assert_eq!(replaced["userName"], "Gina.Renamed");
    assert_eq!(replaced["title"], "Lead");
    assert!(
        replaced.get("nickName").is_none(),
        "omitted attributes are cleared"
    );
    assert_eq!(replaced["meta"]["created"], u["meta"]["created"]);
    assert_ne!(replaced["meta"]["version"], u["meta"]["version"]);
    // Renaming only the case of one's own userName is fine; onto another user's is not.
    scim.put(&path, &json!({"userName": "GINA.RENAMED"}))
        .expect(200);
    let e = scim
        .put(&path, &json!({"userName": "TAKEN"}))
        .scim_error(409);
    assert_eq!(e["scimType"], "uniqueness");
}

#[test]
fn etags_and_conditional_requests() {
    let (_db, _server, scim) = scim_server("p");
    let u = scim.user("hal");
    let path = format!("/Users/{}", id(&u));
    let v1 = u["meta"]["version"].as_str().unwrap().to_string();
    let got = scim.get(&path);
    assert_eq!(got.header("etag"), Some(v1.as_str()));
    let not_modified = scim.with_headers("GET", &path, None, &[("If-None-Match", &v1)]);
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.text.is_empty());

    let put = scim.with_headers(
        "PUT",
        &path,
        Some(&json!({"userName": "hal", "title": "x"})),
        &[("If-Match", &v1)],
    );
    let v2 = put.expect(200)["meta"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(v1, v2);
    assert_eq!(
        scim.with_headers("GET", &path, None, &[("If-None-Match", &v1)])
            .status,
        200
    );
    let stale = scim.with_headers(
        "PUT",
        &path,
        Some(&json!({"userName": "hal"})),
        &[("If-Match", &v1)],
    );
    stale.scim_error(412);
    scim.with_headers("DELETE", &path, None, &[("If-Match", &v1)])
        .scim_error(412);
    assert_eq!(
        scim.get(&path).expect(200)["title"],
        "x",
        "failed requests changed nothing"
    );
    assert_eq!(
        scim.with_headers("DELETE", &path, None, &[("If-Match", &v2)])
            .status,
        204
    );

    let spc = scim.get("/ServiceProviderConfig").expect(200);
    assert_eq!(spc["etag"]["supported"], true);
}

#[test]
fn list_pages_show_the_same_groups_as_single_reads() {
    // A page computes the groups of all its users at once; it must agree with one-by-one reads,
    // including direct-and-indirect memberships and groups nested in a cycle.
    let (_db, _server, scim) = scim_server("p");
    let users: Vec<Value> = (0..6).map(|i| scim.user(&format!("u{i}"))).collect();
    let a = group(&scim, "a", &[&users[0], &users[1]]);
    let b = group(&scim, "b", &[&a, &users[1], &users[2]]);
    let c = group(&scim, "c", &[&b]);
    // c contains b contains a; now a also contains c: a cycle.
    scim.with_headers(
        "PATCH",
        &format!("/Groups/{}", id(&a)),
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": c["id"]}]}]}),
        ),
        &[],
    )
    .expect(200);
    let u1 = scim.get(&format!("/Users/{}", id(&users[1]))).expect(200);
    let kinds: Vec<(String, String)> = u1["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["display"].as_str().unwrap().into(),
                g["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("a", "direct"), ("b", "direct"), ("c", "indirect")]
            .map(|(d, t)| (d.to_string(), t.to_string())),
        "oldest group first; direct wins over a path through nesting"
    );
    let page = scim.get("/Users?count=10").expect(200);
    let listed = page["Resources"].as_array().unwrap();
    assert_eq!(listed.len(), 6);
    for u in listed {
        let single = scim.get(&format!("/Users/{}", id(u))).expect(200);
        assert_eq!(u, &single);
    }
    assert!(listed[5].get("groups").is_none(), "u5 is in no group");
    // A group in the cycle does not list itself among its own groups.
    let as_groups = scim.get("/Groups?count=10").expect(200);
    for g in as_groups["Resources"].as_array().unwrap() {
        let single = scim.get(&format!("/Groups/{}", id(g))).expect(200);
        assert_eq!(g, &single);
    }
}

#[test]
fn groups_members_and_nested_groups() {
    let (_db, _server, scim) = scim_server("p");
    let ann = scim.user("ann");
    let ben = scim.user("ben");
    let inner = group(&scim, "inner", &[&ann]);
    let outer = group(&scim, "outer", &[&inner, &ben]);

    let g = scim.get(&format!("/Groups/{}", id(&outer))).expect(200);
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let inner_ref = members.iter().find(|m| m["value"] == inner["id"]).unwrap();
    assert_eq!(inner_ref["type"], "Group");
    assert_eq!(
        inner_ref["display"], "INNER",
        "display is kept as the client sent it"
    );
    assert_eq!(
        inner_ref["$ref"],
        format!("{}/Groups/{}", scim.base, id(&inner))
    );
    let ben_ref = members.iter().find(|m| m["value"] == ben["id"]).unwrap();
    assert_eq!(
        (ben_ref["type"].as_str(), ben_ref["display"].as_str()),
        (Some("User"), Some("BEN"))
    );

    // User.groups is computed, direct and through nesting.
    let a = scim.get(&format!("/Users/{}", id(&ann))).expect(200);
    let groups = a["groups"].as_array().unwrap();
    let kind_of = |gid: &Value| groups.iter().find(|g| g["value"] == *gid).unwrap()["type"].clone();
    assert_eq!(kind_of(&inner["id"]), "direct");
    assert_eq!(kind_of(&outer["id"]), "indirect");

    // excludedAttributes=members, and attributes without members.
    let g = scim
        .get(&format!(
            "/Groups/{}?excludedAttributes=members",
            id(&outer)
        ))
        .expect(200);
    assert!(g.get("members").is_none());
    assert_eq!(g["displayName"], "outer");
    let g = scim
        .get(&format!("/Groups/{}?attributes=displayName", id(&outer)))
        .expect(200);
    assert_eq!(
        g.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["schemas", "id", "displayName"]
    );
    let list = scim.get("/Groups?excludedAttributes=members").expect(200);
    assert!(
        list["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g.get("members").is_none())
    );

    // A member must exist in the same provider; a group cannot contain itself.
    let e = scim
        .post(
            "/Groups",
            &json!({"displayName": "x", "members": [{"value": "nope"}]}),
        )
        .scim_error(400);
    assert_eq!(e["scimType"], "invalidValue");
    let self_ref = json!({"displayName": "outer", "members": [{"value": outer["id"]}]});
    scim.put(&format!("/Groups/{}", id(&outer)), &self_ref)
        .scim_error(400);

    // Membership changes show in the member's representation and version.
    let ben_before = scim.get(&format!("/Users/{}", id(&ben))).expect(200);
    scim.put(
        &format!("/Groups/{}", id(&outer)),
        &json!({"displayName": "outer", "members": [{"value": inner["id"]}]}),
    )
    .expect(200);
    let ben_after = scim.get(&format!("/Users/{}", id(&ben))).expect(200);
    assert!(ben_after.get("groups").is_none());
    assert_ne!(ben_before["meta"]["version"], ben_after["meta"]["version"]);
}

#[test]
fn deleting_a_user_removes_it_from_its_groups() {
    let (_db, _server, scim) = scim_server("p");
    let u1 = scim.user("u1");
    let u2 = scim.user("u2");
    let g = group(&scim, "team", &[&u1, &u2]);
    let before = scim.get(&format!("/Groups/{}", id(&g))).expect(200);
    assert_eq!(scim.delete(&format!("/Users/{}", id(&u1))).status, 204);
    let after = scim.get(&format!("/Groups/{}", id(&g))).expect(200);
    let members: Vec<&Value> = after["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["value"])
        .collect();
    assert_eq!(members, [&u2["id"]]);
    assert_ne!(before["meta"]["version"], after["meta"]["version"]);
    // Deleting the group leaves its members in place, without the group.
    assert_eq!(scim.delete(&format!("/Groups/{}", id(&g))).status, 204);
    assert!(
        scim.get(&format!("/Users/{}", id(&u2)))
            .expect(200)
            .get("groups")
            .is_none()
    );
}

#[test]
fn resources_are_isolated_per_provider() {
    let (db, server, a) = scim_server("a");
    db.add_provider("b");
    let (_, token_b) = db.create_token("b", &[]);
    let b = Scim::new(&server, "b", &token_b);
    let ua = a.user("same@contoso.com");
    // The same userName is free in another provider.
    let ub = b.user("same@contoso.com");
    b.get(&format!("/Users/{}", id(&ua))).scim_error(404);
    b.delete(&format!("/Users/{}", id(&ua))).scim_error(404);
    assert_eq!(b.get("/Users").expect(200)["totalResults"], 1);
    // Nor can a group of B take A's user as a member.
    b.post(
        "/Groups",
        &json!({"displayName": "g", "members": [{"value": ua["id"]}]}),
    )
    .scim_error(400);
    assert_eq!(
        a.get(&format!("/Users/{}", id(&ua))).expect(200)["id"],
        ua["id"]
    );
    assert_ne!(ua["id"], ub["id"]);
}

#[test]
fn list_pages() {
    let (_db, _server, scim) = scim_server("p");
    for i in 0..5 {
        scim.user(&format!("user{i}"));
    }
    let page = scim.get("/Users?startIndex=2&count=2").expect(200);
    assert_eq!(
        page["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(
        (
            page["totalResults"].as_i64(),
            page["startIndex"].as_i64(),
            page["itemsPerPage"].as_i64()
        ),
        (Some(5), Some(2), Some(2))
    );
    let names: Vec<&str> = page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user1", "user2"]);
    let none = scim.get("/Users?count=0").expect(200);
    assert_eq!(
        (
            none["totalResults"].as_i64(),
            none["Resources"].as_array().map(Vec::len)
        ),
        (Some(5), Some(0))
    );
    let neg = scim.get("/Users?count=-3&startIndex=0").expect(200);
    assert_eq!(
        (neg["itemsPerPage"].as_i64(), neg["startIndex"].as_i64()),
        (Some(0), Some(1))
    );
    let past = scim.get("/Users?startIndex=99").expect(200);
    assert_eq!(past["Resources"], json!([]));
    assert_eq!(
        scim.get("/Users?count=abc").scim_error(400)["scimType"],
        "invalidValue"
    );
}

#[test]
fn a_user_gets_a_new_etag_whenever_its_groups_change_through_nesting() {
    let (_db, _server, scim) = scim_server("p");
    let ann = scim.user("ann");
    let inner = group(&scim, "inner", &[&ann]);
    let outer = group(&scim, "outer", &[]);
    let path = format!("/Users/{}", id(&ann));
    let etag = |scim: &Scim| scim.get(&path).header("etag").unwrap().to_string();
    let groups = |scim: &Scim| {
        let u = scim.get(&path).expect(200);
        u["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .map(|g| {
                        format!(
                            "{}:{}",
                            g["display"].as_str().unwrap(),
                            g["type"].as_str().unwrap()
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let patch = |path: String, ops: Value| {
        scim.with_headers(
            "PATCH",
            &path,
            Some(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})),
            &[],
        )
        .expect(200);
    };
    let mut seen = vec![etag(&scim)];
    let mut step = |what: &str, expect: &[&str]| {
        assert_eq!(groups(&scim), expect, "{what}");
        let now = etag(&scim);
        assert!(
            !seen.contains(&now),
            "{what}: the ETag must change ({now} seen before)"
        );
        // And a client holding the old ETag gets the new body, not 304.
        let old = seen.last().unwrap().clone();
        assert_eq!(
            scim.with_headers("GET", &path, None, &[("If-None-Match", &old)])
                .status,
            200
        );
        seen.push(now);
    };
    let outer_path = format!("/Groups/{}", id(&outer));
    let inner_path = format!("/Groups/{}", id(&inner));
    patch(
        outer_path.clone(),
        json!([{"op": "add", "path": "members", "value": [{"value": inner["id"]}]}]),
    );
    step("inner put into outer", &["inner:direct", "outer:indirect"]);
    patch(
        outer_path.clone(),
        json!([{"op": "replace", "path": "displayName", "value": "renamed"}]),
    );
    step("outer renamed", &["inner:direct", "renamed:indirect"]);
    patch(
        inner_path,
        json!([{"op": "replace", "path": "displayName", "value": "inner2"}]),
    );
    step("inner renamed", &["inner2:direct", "renamed:indirect"]);
    patch(
        outer_path.clone(),
        json!([{"op": "remove", "path": "members", "value": [{"value": inner["id"]}]}]),
    );
    step("inner taken out of outer", &["inner2:direct"]);
    patch(
        outer_path.clone(),
        json!([{"op": "add", "path": "members", "value": [{"value": inner["id"]}]}]),
    );
    step("inner put back", &["inner2:direct", "renamed:indirect"]);
    assert_eq!(scim.delete(&outer_path).status, 204);
    step("outer deleted", &["inner2:direct"]);
}

#[test]
fn failing_writes_in_a_concurrent_burst_take_back_only_themselves() {
    // Writes arriving together commit in one transaction. Some of these fail after they have
    // changed rows (a group created, then refused for an unknown member; a PATCH that renames
    // a group, then refused for an unknown member), some before (a taken userName); every
    // other write must stay, and the failed ones must leave nothing behind.
    let (_db, _server, scim) = scim_server("p");
    scim.user("taken");
    let target = scim.create(
        "/Groups",
        &json!({"schemas": [GROUP], "displayName": "Stable"}),
    );
    let target_url = format!("/Groups/{}", id(&target));
    let mut created = Vec::new();
    for round in 0..3 {
        let answers: Vec<(usize, u16, Value)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..48)
                .map(|i| {
                    let (scim, target_url) = (&scim, &target_url);
                    s.spawn(move || {
                        let r = match i % 4 {
                            0 => scim.post(
                                "/Groups",
                                &json!({"schemas": [GROUP], "displayName": format!("bad-{round}-{i}"),
                                        "members": [{"value": "no-such-id"}]}),
                            ),
                            1 => scim.with_headers(
                                "PATCH",
                                target_url,
                                Some(&json!({
                                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                    "Operations": [
                                        {"op": "replace", "path": "displayName", "value": format!("renamed-{i}")},
                                        {"op": "add", "path": "members", "value": [{"value": "no-such-id"}]}
                                    ]
                                })),
                                &[],
                            ),
                            2 => scim.post("/Users", &json!({"schemas": [USER], "userName": "TAKEN"})),
                            _ => scim.post(
                                "/Users",
                                &json!({"schemas": [USER], "userName": format!("u-{round}-{i}")}),
                            ),
                        };
                        (i, r.status, serde_json::from_str(&r.text).unwrap_or(Value::Null))
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for (i, status, body) in answers {
            let want = [400, 400, 409, 201][i % 4];
            assert_eq!(status, want, "request {i} of round {round}: {body}");
            if status == 201 {
                created.push(body["id"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(created.len(), 36);
    for uid in &created {
        scim.get(&format!("/Users/{uid}")).expect(200);
    }
    let users = scim.get("/Users?count=0").expect(200);
    assert_eq!(users["totalResults"], 37, "36 created and `taken`");
    let groups = scim.get("/Groups?attributes=displayName").expect(200);
    let names: Vec<&Value> = groups["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["displayName"])
        .collect();
    assert_eq!(names, [&json!("Stable")], "no refused group stayed");
    assert_eq!(groups["totalResults"], 1);
    let stable = scim.get(&target_url).expect(200);
    assert_eq!(stable["displayName"], "Stable");
    assert_eq!(stable["meta"]["version"], target["meta"]["version"]);
}

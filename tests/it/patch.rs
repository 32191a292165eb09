//! PATCH over real HTTP: Entra's dialects, membership at any size, atomicity, concurrency.

use serde_json::{Value, json};

use crate::harness::{ENT, Scim, Server, TestDb, patch_op, scim_server, send};

fn member_ids(scim: &Scim, gid: &str) -> Vec<String> {
    let g = scim.get(&format!("/Groups/{gid}")).expect(200);
    let mut ids: Vec<String> = g["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn entra_user_updates_in_both_dialects() {
    let (_db, _server, scim) = scim_server("entra");
    let boss = scim.user("boss@contoso.com");
    let u = scim.create(
        "/Users",
        &json!({
            "userName": "Test_User@contoso.com", "active": true,
            "emails": [{"primary": true, "type": "work", "value": "t@contoso.com"}],
            "name": {"givenName": "Given", "familyName": "Family"}
        }),
    );
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    // Default dialect: one op per attribute, string booleans, typed-path upsert.
    let r = scim.patch(&path,
        json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@contoso.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "55555555555"},
            {"op": "Add", "path": format!("{ENT}:manager"), "value": boss["id"]},
            {"op": "Replace", "path": "active", "value": "False"}
        ]),
    );
    let body = r.expect(200);
    assert_eq!(body["emails"][0]["value"], "updatedEmail@contoso.com");
    assert_eq!(body["name"]["familyName"], "updatedFamilyName");
    assert_eq!(
        body["phoneNumbers"],
        json!([{"type": "mobile", "value": "55555555555"}])
    );
    assert_eq!(body[ENT]["manager"]["value"], boss["id"]);
    assert_eq!(body["active"], false);
    assert_eq!(r.header("etag"), body["meta"]["version"].as_str());
    // The disabled user is still readable and findable.
    let found = scim.get("/Users?filter=active%20eq%20false").expect(200);
    assert_eq!(found["totalResults"], 1);

    // aadOptscim062020: one no-path replace with path keys, JSON booleans.
    let body = scim
        .patch(
            &path,
            json!([
                {"op": "replace", "value": {"displayName": "Bjfe", "name.givenName": "Kkom",
                    format!("{ENT}:employeeNumber"): "Aklq", "active": true}},
                {"op": "replace", "path": "userName", "value": "Renamed@contoso.com"}
            ]),
        )
        .expect(200);
    assert_eq!(body["displayName"], "Bjfe");
    assert_eq!(
        body["name"],
        json!({"givenName": "Kkom", "familyName": "updatedFamilyName"})
    );
    assert_eq!(body[ENT]["employeeNumber"], "Aklq");
    assert_eq!(body["active"], true);
    assert_eq!(
        scim.get("/Users?filter=userName%20eq%20%22renamed%40contoso.com%22")
            .expect(200)["totalResults"],
        1
    );

    // Manager cleared by replace with "".
    let body = scim
        .patch(
            &path,
            json!([{"op": "replace", "path": format!("{ENT}:manager"), "value": ""}]),
        )
        .expect(200);
    assert!(body[ENT].get("manager").is_none());
    // attributes= applies to the PATCH response too.
    let body = scim
        .with_headers(
            "PATCH",
            &format!("{path}?attributes=userName"),
            Some(&patch_op(
                json!([{"op": "add", "path": "title", "value": "x"}]),
            )),
            &[],
        )
        .expect(200);
    assert!(body.get("title").is_none() && body["userName"].is_string());
}

#[test]
fn group_membership_in_both_styles_with_retries() {
    let (_db, _server, scim) = scim_server("p");
    let users: Vec<Value> = (0..5).map(|i| scim.user(&format!("u{i}"))).collect();
    let uid = |i: usize| users[i]["id"].as_str().unwrap().to_string();
    let g = scim.create(
        "/Groups",
        &json!({"displayName": "G", "members": [{"value": uid(0)}]}),
    );
    let gid = g["id"].as_str().unwrap().to_string();
    let path = format!("/Groups/{gid}");

    // Several members in one operation; a retry of the same request succeeds.
    let add = json!([{"op": "Add", "path": "members", "value": [
        {"value": uid(1)}, {"value": uid(2)}, {"value": uid(3), "display": "U3"}
    ]}]);
    assert_eq!(scim.patch(&path, add.clone()).status, 200);
    assert_eq!(
        scim.patch(&path, add).status,
        200,
        "adding existing members succeeds"
    );
    let mut want = vec![uid(0), uid(1), uid(2), uid(3)];
    want.sort();
    assert_eq!(member_ids(&scim, &gid), want);

    // Default dialect removal: only the listed members, never all.
    let remove = json!([{"op": "Remove", "path": "members", "value": [{"value": uid(1)}]}]);
    assert_eq!(scim.patch(&path, remove.clone()).status, 200);
    assert_eq!(
        scim.patch(&path, remove).status,
        200,
        "removing an absent member succeeds"
    );
    // aadOptscim062020 removal by filter.
    assert_eq!(
        scim.patch(
            &path,
            json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", uid(2))}])
        )
        .status,
        200
    );
    let mut want = vec![uid(0), uid(3)];
    want.sort();
    assert_eq!(member_ids(&scim, &gid), want);
    // Removal by another filter.
    assert_eq!(
        scim.patch(
            &path,
            json!([{"op": "remove", "path": "members[display eq \"U3\"]"}])
        )
        .status,
        200
    );
    assert_eq!(member_ids(&scim, &gid), [uid(0)]);
    // Replace all, then rename.
    let body = scim
        .patch(
            &path,
            json!([
                {"op": "replace", "path": "members", "value": [{"value": uid(4)}]},
                {"op": "replace", "path": "displayName", "value": "Renamed"}
            ]),
        )
        .expect(200);
    assert_eq!(body["displayName"], "Renamed");
    assert_eq!(member_ids(&scim, &gid), [uid(4)]);
    // A member that does not exist is refused, and nothing of the request is applied.
    let e = scim
        .patch(
            &path,
            json!([
                {"op": "replace", "path": "displayName", "value": "Never"},
                {"op": "add", "path": "members", "value": [{"value": "no-such-id"}]}
            ]),
        )
        .scim_error(400);
    assert_eq!(e["scimType"], "invalidValue");
    assert_eq!(scim.get(&path).expect(200)["displayName"], "Renamed");
    // Remove all.
    assert_eq!(
        scim.patch(&path, json!([{"op": "remove", "path": "members"}]))
            .status,
        200
    );
    assert!(member_ids(&scim, &gid).is_empty());
}

#[test]
fn entra_providers_get_204_for_group_patch_others_200() {
    let db = TestDb::new();
    db.ok(&["provider", "add", "entra", "--type", "entra"]);
    db.add_provider("generic");
    let (_, te) = db.create_token("entra", &[]);
    let (_, tg) = db.create_token("generic", &[]);
    let server = Server::start(&db);
    for (provider, token, status) in [("entra", &te, 204), ("generic", &tg, 200)] {
        let scim = Scim::new(&server, provider, token);
        let g = scim.create("/Groups", &json!({"displayName": "G"}));
        let path = format!("/Groups/{}", g["id"].as_str().unwrap());
        let r = scim.patch(
            &path,
            json!([{"op": "replace", "path": "displayName", "value": "H"}]),
        );
        assert_eq!(r.status, status, "{provider}");
        assert!(r.header("etag").is_some());
        // The client may ask either way.
        let minimal = scim.with_headers(
            "PATCH",
            &path,
            Some(&patch_op(
                json!([{"op": "replace", "path": "displayName", "value": "I"}]),
            )),
            &[("Prefer", "return=minimal")],
        );
        assert_eq!(minimal.status, 204);
        assert!(minimal.text.is_empty());
        let full = scim.with_headers(
            "PATCH",
            &path,
            Some(&patch_op(
                json!([{"op": "replace", "path": "displayName", "value": "J"}]),
            )),
            &[("Prefer", "return=representation")],
        );
        assert_eq!(full.expect(200)["displayName"], "J");
        // Users get the representation either way.
        let u = scim.user("x");
        let r = scim.patch(
            &format!("/Users/{}", u["id"].as_str().unwrap()),
            json!([{"op": "add", "path": "title", "value": "t"}]),
        );
        assert_eq!(r.expect(200)["title"], "t");
    }
}

#[test]
fn errors_are_atomic_and_typed() {
    let (_db, _server, scim) = scim_server("p");
    scim.user("taken");
    let u = scim.create("/Users", &json!({"userName": "me", "title": "before"}));
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let version = u["meta"]["version"].clone();
    for (list, status, scim_type) in [
        (
            json!([{"op": "replace", "path": "title", "value": "after"}, {"op": "replace", "path": "nosuch", "value": 1}]),
            400,
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "after"}, {"op": "replace", "path": "id", "value": "x"}]),
            400,
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "after"}, {"op": "remove", "path": "userName"}]),
            400,
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "after"}, {"op": "replace", "path": "active", "value": "maybe"}]),
            400,
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "after"}, {"op": "remove"}]),
            400,
            "noTarget",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "after"}, {"op": "replace", "path": "emails[value co \"x\"].type", "value": "work"}]),
            400,
            "noTarget",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "after"}, {"op": "frobnicate", "path": "title"}]),
            400,
            "invalidSyntax",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "after"}, {"op": "replace", "path": "userName", "value": "TAKEN"}]),
            409,
            "uniqueness",
        ),
    ] {
        let e = scim.patch(&path, list.clone()).scim_error(status);
        assert_eq!(e["scimType"], scim_type, "{list}");
    }
    let after = scim.get(&path).expect(200);
    assert_eq!(
        after["title"], "before",
        "no operation of a failed request applies"
    );
    assert_eq!(after["meta"]["version"], version);
    // Malformed bodies.
    assert_eq!(
        scim.with_headers("PATCH", &path, Some(&json!({"Operations": "x"})), &[])
            .scim_error(400)["scimType"],
        "invalidSyntax"
    );
    scim.with_headers(
        "PATCH",
        "/Users/nope",
        Some(&patch_op(
            json!([{"op": "add", "path": "title", "value": "t"}]),
        )),
        &[],
    )
    .scim_error(404);
}

#[test]
fn versions_move_only_on_change_and_if_match_guards() {
    let (_db, _server, scim) = scim_server("p");
    let u = scim.create("/Users", &json!({"userName": "v", "title": "same"}));
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let v1 = u["meta"]["version"].as_str().unwrap().to_string();
    let same = scim
        .patch(
            &path,
            json!([{"op": "replace", "path": "title", "value": "same"}]),
        )
        .expect(200);
    assert_eq!(
        same["meta"]["version"],
        v1.as_str(),
        "a no-op PATCH changes nothing"
    );
    assert_eq!(same["meta"]["lastModified"], u["meta"]["lastModified"]);
    let stale = scim.with_headers(
        "PATCH",
        &path,
        Some(&patch_op(
            json!([{"op": "replace", "path": "title", "value": "x"}]),
        )),
        &[("If-Match", "W/\"999\"")],
    );
    stale.scim_error(412);
    let ok = scim.with_headers(
        "PATCH",
        &path,
        Some(&patch_op(
            json!([{"op": "replace", "path": "title", "value": "x"}]),
        )),
        &[("If-Match", &v1)],
    );
    assert_ne!(ok.expect(200)["meta"]["version"], v1.as_str());
}

#[test]
fn read_only_tokens_cannot_patch() {
    let db = TestDb::new();
    db.add_provider("p");
    let (_, rw) = db.create_token("p", &[]);
    let (_, ro) = db.create_token("p", &["--read-only"]);
    let server = Server::start(&db);
    let u = Scim::new(&server, "p", &rw).create("/Users", &json!({"userName": "x"}));
    let url = format!("{}/Users/{}", server.scim("p"), u["id"].as_str().unwrap());
    send(
        "PATCH",
        &url,
        &ro,
        Some(&patch_op(
            json!([{"op": "add", "path": "title", "value": "t"}]),
        )),
        &[],
    )
    .scim_error(403);
}

#[test]
fn concurrent_patches_never_lose_updates() {
    let (_db, _server, scim) = scim_server("p");
    let g = scim.create("/Groups", &json!({"displayName": "Busy"}));
    let gid = g["id"].as_str().unwrap().to_string();
    let users: Vec<String> = (0..50)
        .map(|i| {
            scim.user(&format!("c{i}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let group_url = format!("{}/Groups/{gid}", scim.base);
    std::thread::scope(|s| {
        for uid in &users {
            let (url, token) = (&group_url, &scim.token);
            s.spawn(move || {
                let r = send(
                    "PATCH",
                    url,
                    token,
                    Some(&patch_op(
                        json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
                    )),
                    &[],
                );
                assert_eq!(r.status, 200, "{}", r.text);
            });
        }
    });
    let mut want = users.clone();
    want.sort();
    assert_eq!(member_ids(&scim, &gid), want, "all 50 members landed");

    // Each request sets title and nickName to the same value: any interleaving of two
    // requests would leave them different.
    let u = scim.user("contended");
    let user_url = format!("{}/Users/{}", scim.base, u["id"].as_str().unwrap());
    std::thread::scope(|s| {
        for i in 0..30 {
            let (url, token) = (&user_url, &scim.token);
            s.spawn(move || {
                let v = format!("writer-{i}");
                let r = send(
                    "PATCH",
                    url,
                    token,
                    Some(&patch_op(json!([
                        {"op": "replace", "path": "title", "value": v},
                        {"op": "replace", "path": "nickName", "value": v}
                    ]))),
                    &[],
                );
                assert_eq!(r.status, 200, "{}", r.text);
            });
        }
    });
    let after = scim
        .get(&format!("/Users/{}", u["id"].as_str().unwrap()))
        .expect(200);
    assert_eq!(after["title"], after["nickName"]);
    let version = after["meta"]["version"].as_str().unwrap();
    assert_eq!(
        version, "W/\"31\"",
        "every one of the 30 writes produced its own version"
    );
}

#[test]
fn lookups_follow_patched_names_external_ids_and_emails() {
    let (_db, _server, scim) = scim_server("p");
    let u = scim.create(
        "/Users",
        &json!({"userName": "old@x.com", "externalId": "ext-1",
                "emails": [{"type": "work", "value": "old@x.com"}]}),
    );
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let count = |filter: &str| {
        let q = filter.replace(' ', "%20").replace('"', "%22");
        scim.get(&format!("/Users?filter={q}")).expect(200)["totalResults"].clone()
    };
    // A change to other attributes leaves every lookup working.
    scim.patch(
        &path,
        json!([{"op": "replace", "path": "title", "value": "t"}]),
    )
    .expect(200);
    assert_eq!(count(r#"userName eq "OLD@x.com""#), 1);
    assert_eq!(count(r#"externalId eq "ext-1""#), 1);
    assert_eq!(count(r#"emails.value eq "old@x.com""#), 1);
    // Each key changed alone moves its lookup, and the old value finds nothing.
    scim.patch(
        &path,
        json!([{"op": "replace", "path": "externalId", "value": "ext-2"}]),
    )
    .expect(200);
    assert_eq!(
        (
            count(r#"externalId eq "ext-1""#),
            count(r#"externalId eq "ext-2""#)
        ),
        (json!(0), json!(1))
    );
    scim.patch(
        &path,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@x.com"}]),
    )
    .expect(200);
    assert_eq!(
        (
            count(r#"emails.value eq "old@x.com""#),
            count(r#"emails.value eq "new@x.com""#)
        ),
        (json!(0), json!(1))
    );
    scim.patch(
        &path,
        json!([{"op": "replace", "path": "userName", "value": "new@x.com"}]),
    )
    .expect(200);
    assert_eq!(
        (
            count(r#"userName eq "old@x.com""#),
            count(r#"userName eq "new@x.com""#)
        ),
        (json!(0), json!(1))
    );
    // The freed name can be taken; the new one cannot.
    scim.create("/Users", &json!({"userName": "OLD@x.com"}));
    assert_eq!(
        scim.post("/Users", &json!({"userName": "NEW@x.com"}))
            .scim_error(409)["scimType"],
        "uniqueness"
    );
    // Removing externalId clears its lookup.
    scim.patch(&path, json!([{"op": "remove", "path": "externalId"}]))
        .expect(200);
    assert_eq!(count(r#"externalId eq "ext-2""#), 0);
}

#[test]
fn many_operations_apply_like_few_and_too_many_are_refused_whole() {
    let db = TestDb::new();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let server = Server::start_with(&db.path, &[], &[("SCIMD_MAX_PATCH_OPERATIONS", "300")]);
    let scim = Scim::new(&server, "p", &token);
    let u = scim.user("many@contoso.com");
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    // 300 adds, typed upserts and a primary that demotes the one before: planned on a reader,
    // written by the writer; the same result as one operation at a time.
    let mut ops: Vec<Value> = (0..250)
        .map(|i| json!({"op": "add", "path": "emails", "value": [{"value": format!("e{i}@x")}]}))
        .collect();
    ops.push(json!({"op": "add", "path": "emails", "value": [{"value": "e3@x"}]}));
    ops.push(json!({"op": "add", "path": "emails", "value": [{"value": "p1@x", "primary": true}]}));
    ops.push(json!({"op": "add", "path": "emails", "value": [{"value": "p2@x", "primary": true}]}));
    for i in 0..47 {
        ops.push(json!({"op": "replace", "path": format!("phoneNumbers[type eq \"t{i}\"].value"), "value": format!("{i}")}));
    }
    assert_eq!(ops.len(), 300);
    let body = scim.patch(&path, json!(ops)).expect(200);
    let emails = body["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 252, "the repeated e3 is added once");
    let primaries: Vec<&Value> = emails.iter().filter(|e| e["primary"] == true).collect();
    assert_eq!(primaries.len(), 1);
    assert_eq!(primaries[0]["value"], "p2@x");
    assert_eq!(body["phoneNumbers"].as_array().unwrap().len(), 47);
    assert_eq!(scim.get(&path).expect(200), body);
    // A failing operation among many changes nothing.
    let mut bad: Vec<Value> = (0..20)
        .map(|i| json!({"op": "add", "path": "emails", "value": [{"value": format!("x{i}@x")}]}))
        .collect();
    bad.push(json!({"op": "replace", "path": "nosuch", "value": "x"}));
    scim.patch(&path, json!(bad)).scim_error(400);
    // If-Match is checked before the work, as for a small PATCH.
    let stale = scim.with_headers(
        "PATCH",
        &path,
        Some(&patch_op(json!(bad[..20]))),
        &[("If-Match", "W/\"1\"")],
    );
    stale.scim_error(412);
    assert_eq!(scim.get(&path).expect(200), body, "nothing changed");
    // One more than the limit: refused whole, naming the setting.
    let too_many: Vec<Value> = (0..301)
        .map(|i| json!({"op": "add", "path": "emails", "value": [{"value": format!("y{i}@x")}]}))
        .collect();
    let err = scim.patch(&path, json!(too_many)).scim_error(400);
    assert_eq!(err["scimType"], "invalidValue");
    assert!(
        err["detail"]
            .as_str()
            .unwrap()
            .contains("max_patch_operations"),
        "{err}"
    );
    assert_eq!(scim.get(&path).expect(200), body, "nothing changed");
}

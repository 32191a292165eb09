//! Provisioning cycles of real identity providers, replayed request by request against the real
//! server: Microsoft Entra ID in both PATCH dialects, Okta, and JumpCloud's connection test.
//! Each step checks the status, the content type, the body and what was stored.

use serde_json::{Value, json};

use crate::harness::{ENT, GROUP, LIST, Scim, USER, get, scim_server_of_type};

/// GET with the query string as Entra encodes it.
fn query(scim: &Scim, path_and_query: &str) -> Value {
    let body = scim.get(path_and_query).expect(200);
    assert_eq!(body["schemas"], json!([LIST]));
    body
}

pub(crate) fn entra_user(n: u32) -> Value {
    json!({
        "schemas": [USER, ENT],
        "externalId": format!("0a21f0f2-8d2a-4f8e-bf98-7363c4aed4e{n}"),
        "userName": format!("Test_User_{n}@contoso.com"),
        "active": true,
        "displayName": format!("Test User {n}"),
        "title": "Engineer",
        "preferredLanguage": "en-US",
        "emails": [{"primary": true, "type": "work", "value": format!("Test_User_{n}@contoso.com")}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "phoneNumbers": [{"type": "work", "value": "+1 (555) 555-0100"}],
        "addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Redmond", "region": "WA",
                       "postalCode": "98052", "country": "US"}],
        "roles": [],
        ENT: {"employeeNumber": format!("{n}"), "department": "R&D", "costCenter": "CC1",
              "organization": "Contoso", "division": "Cloud"}
    })
}

/// One full Entra cycle; `flag` selects the aadOptscim062020 dialect. `kind` is the provider
/// type: every Entra shape works under `generic` too, only group PATCH answers 200 there.
fn entra_cycle(flag: bool, kind: &str) {
    let (_db, server, scim) = scim_server_of_type("idp", kind);
    let group_patch = if kind == "entra" { 204 } else { 200 };
    // Test Connection: lookups with a random GUID answer an empty 200 list; a wrong token 401.
    let empty = query(
        &scim,
        "/Users?filter=userName+eq+%22cf4d78e8-cc4f-4d5d-b8b9-183561c0104a%22",
    );
    assert_eq!(
        (empty["totalResults"].as_i64(), empty["Resources"].clone()),
        (Some(0), json!([]))
    );
    let empty = query(
        &scim,
        "/Groups?excludedAttributes=members&filter=displayName+eq+%228b0c9a3e-4d4f-4f5c-9e0b-2a6b3c4d5e6f%22",
    );
    assert_eq!(empty["totalResults"], 0);
    let wrong = get(
        &format!("{}/Users?filter=userName+eq+%22x%22", scim.base),
        Some(
            "Bearer scimd_0000000000000000_0000000000000000000000000000000000000000000000000000000000000000",
        ),
    );
    wrong.scim_error(401);

    // Match, then create: two users with the full attribute set.
    let mut ids = Vec::new();
    for n in 1..=2 {
        let sent = entra_user(n);
        let lookup = query(
            &scim,
            &format!("/Users?filter=userName+eq+%22Test_User_{n}%40contoso.com%22"),
        );
        assert_eq!(lookup["totalResults"], 0);
        let created = scim.post("/Users", &sent);
        let body = created.expect(201);
        for key in [
            "userName",
            "externalId",
            "emails",
            "name",
            "phoneNumbers",
            "addresses",
            ENT,
        ] {
            assert_eq!(body[key], sent[key], "{key} as sent");
        }
        ids.push(body["id"].as_str().unwrap().to_string());
        // Matching by externalId finds the same user.
        let by_ext = query(
            &scim,
            &format!(
                "/Users?filter=externalId+eq+%22{}%22",
                sent["externalId"].as_str().unwrap()
            ),
        );
        assert_eq!(by_ext["Resources"][0]["id"], body["id"]);
    }
    let (alice, boss) = (format!("/Users/{}", ids[0]), ids[1].clone());

    // Updates, typed-path upserts, a rename, the manager, disable/enable.
    let updates = if flag {
        json!([
            {"op": "replace", "value": {"displayName": "Alice Updated", "name.givenName": "Alice",
                                        "name.familyName": "Updated", format!("{ENT}:department"): "Ops"}},
            {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "55555555555"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "alice.updated@contoso.com"},
            {"op": "replace", "path": "userName", "value": "Alice.Renamed@contoso.com"},
            {"op": "add", "path": format!("{ENT}:manager"), "value": boss},
            {"op": "replace", "path": "active", "value": false}
        ])
    } else {
        json!([
            {"op": "Replace", "path": "displayName", "value": "Alice Updated"},
            {"op": "Replace", "path": "name.givenName", "value": "Alice"},
            {"op": "Replace", "path": "name.familyName", "value": "Updated"},
            {"op": "Replace", "path": format!("{ENT}:department"), "value": "Ops"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "55555555555"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alice.updated@contoso.com"},
            {"op": "Replace", "path": "userName", "value": "Alice.Renamed@contoso.com"},
            {"op": "Add", "path": format!("{ENT}:manager"), "value": boss},
            {"op": "Replace", "path": "active", "value": "False"}
        ])
    };
    let r = scim.patch(&alice, updates.clone());
    let body = r.expect(200);
    assert_eq!(body["active"], false);
    assert_eq!(body[ENT]["manager"], json!({"value": boss}));
    // A retried request answers 2xx and changes nothing more.
    let again = scim.patch(&alice, updates).expect(200);
    assert_eq!(again["meta"]["version"], body["meta"]["version"]);
    // The disabled user stays readable and filterable.
    let disabled = query(
        &scim,
        "/Users?filter=userName+eq+%22alice.renamed%40contoso.com%22",
    );
    assert_eq!(disabled["Resources"][0]["active"], false);
    // Manager change, then clear; enable again.
    scim.patch(
        &alice,
        json!([{"op": "Replace", "path": format!("{ENT}:manager"), "value": ids[0]}]),
    )
    .expect(200);
    let cleared = scim
        .patch(
            &alice,
            json!([{"op": "Replace", "path": format!("{ENT}:manager"), "value": ""}]),
        )
        .expect(200);
    assert!(cleared[ENT].get("manager").is_none());
    let enable = if flag { json!(true) } else { json!("True") };
    assert_eq!(
        scim.patch(
            &alice,
            json!([{"op": "Replace", "path": "active", "value": enable}])
        )
        .expect(200)["active"],
        true
    );

    // Groups: match, create in Entra's exact shape, rename, members both ways, membership check.
    let lookup = query(
        &scim,
        "/Groups?excludedAttributes=members&filter=displayName+eq+%22Group1DisplayName%22",
    );
    assert_eq!(lookup["totalResults"], 0);
    let g = scim.post("/Groups", &json!({
        "schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "Group1DisplayName",
        "meta": {"resourceType": "Group"}
    })).expect(201);
    let group = format!("/Groups/{}", g["id"].as_str().unwrap());
    let no_members = scim
        .get(&format!("{group}?excludedAttributes=members"))
        .expect(200);
    assert!(no_members.get("members").is_none());
    let renamed = scim.patch(
        &group,
        json!([{"op": "Replace", "path": "displayName", "value": "Group1 Updated"}]),
    );
    assert_eq!(
        renamed.status, group_patch,
        "Entra gets 204 for group PATCH"
    );
    let add = scim.patch(&group,
        json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": ids[0]}, {"$ref": null, "value": ids[1]}]}]),
    );
    assert_eq!(add.status, group_patch);
    let check = |uid: &str| {
        query(
            &scim,
            &format!(
                "/Groups?filter=id+eq+%22{}%22+and+members+eq+%22{uid}%22&attributes=id",
                g["id"].as_str().unwrap()
            ),
        )["totalResults"]
            .as_i64()
    };
    assert_eq!(check(&ids[0]), Some(1));
    let remove = if flag {
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])}])
    } else {
        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": ids[0]}]}])
    };
    assert_eq!(scim.patch(&group, remove.clone()).status, group_patch);
    assert_eq!(
        scim.patch(&group, remove).status,
        group_patch,
        "retried removal"
    );
    assert_eq!(check(&ids[0]), Some(0));
    assert_eq!(check(&ids[1]), Some(1), "only the listed member went");
    let membership = query(
        &scim,
        &format!(
            "/Groups?excludedAttributes=members&filter=id+eq+%22{}%22+and+members%5Bvalue+eq+%22{}%22%5D",
            g["id"].as_str().unwrap(),
            ids[1]
        ),
    );
    assert_eq!(membership["totalResults"], 1);
    assert!(membership["Resources"][0].get("members").is_none());

    // Final read-back matches everything acknowledged.
    let a = scim.get(&alice).expect(200);
    assert_eq!(a["userName"], "Alice.Renamed@contoso.com");
    assert_eq!(a["displayName"], "Alice Updated");
    assert_eq!(a["name"]["familyName"], "Updated");
    assert_eq!(a[ENT]["department"], "Ops");
    assert_eq!(a["active"], true);
    assert_eq!(a["emails"][0]["value"], "alice.updated@contoso.com");
    let mobile: Vec<&Value> = a["phoneNumbers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "mobile")
        .collect();
    assert_eq!(mobile.len(), 1);
    assert_eq!(mobile[0]["value"], "55555555555");
    let gb = scim.get(&group).expect(200);
    assert_eq!(gb["displayName"], "Group1 Updated");
    assert_eq!(gb["members"].as_array().unwrap().len(), 1);

    // Deletes: user gone and out of the group, then the group.
    assert_eq!(scim.delete(&format!("/Users/{}", ids[1])).status, 204);
    scim.get(&format!("/Users/{}", ids[1])).scim_error(404);
    assert!(scim.get(&group).expect(200).get("members").is_none());
    assert_eq!(scim.delete(&group).status, 204);
    scim.get(&group).scim_error(404);

    // The non-standard shapes accepted are counted per provider and show in the logs.
    let expected = if flag {
        vec!["path_keys_in_value", "typed_path_upsert", "manager_shape"]
    } else {
        vec![
            "string_boolean",
            "typed_path_upsert",
            "manager_shape",
            "member_remove_by_value",
        ]
    };
    for quirk in expected {
        let line = server.wait_for_line(&format!("quirk={quirk}"));
        assert!(line.contains("provider=idp"), "{line}");
    }
    server.wait_for_line_with(&[
        "method=PATCH",
        "quirks=",
        "typed_path_upsert",
        "provider=idp",
    ]);
}

#[test]
fn entra_cycle_default_dialect() {
    entra_cycle(false, "entra");
}

#[test]
fn entra_cycle_aadoptscim062020_dialect() {
    entra_cycle(true, "entra");
}

#[test]
fn entra_shapes_work_under_a_generic_provider_too() {
    entra_cycle(false, "generic");
    entra_cycle(true, "generic");
}

#[test]
fn entra_documented_oddities() {
    let (_db, _server, scim) = scim_server_of_type("idp", "entra");
    let u = scim.create(
        "/Users",
        &json!({"userName": "jyoung", "externalId": "jyoung"}),
    );
    let boss = scim.create("/Users", &json!({"userName": "boss"}));
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    // An unquoted filter value, as in Microsoft's examples.
    assert_eq!(
        query(&scim, "/Users?filter=externalId+eq+jyoung")["totalResults"],
        1
    );
    // The manager pre-check and removal by value filter.
    scim.patch(
        &path,
        json!([{"op": "Add", "path": format!("{ENT}:manager"), "value": boss["id"]}]),
    )
    .expect(200);
    let pre = query(
        &scim,
        &format!(
            "/Users?filter=id+eq+%22{}%22+and+manager+eq+%22{}%22&attributes=id",
            u["id"].as_str().unwrap(),
            boss["id"].as_str().unwrap()
        ),
    );
    assert_eq!(pre["totalResults"], 1);
    assert!(pre["Resources"][0].get("userName").is_none());
    let removed = scim.patch(&path, json!([{"op": "remove", "path": format!("{ENT}:manager[value eq \"{}\"]", boss["id"].as_str().unwrap())}])).expect(200);
    assert!(removed.get(ENT).is_none());
    // A role assigned through AppRoleAssignmentsComplex arrives as a JSON string.
    let role = scim.patch(&path,
        json!([{"op": "Add", "path": "roles",
        "value": "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"display\":\"Role1234\"}"}]),
    );
    let body = role.expect(400);
    assert_eq!(
        body["scimType"], "invalidSyntax",
        "roles have no id sub-attribute: {body}"
    );
    let role = scim
        .patch(
            &path,
            json!([{"op": "Add", "path": "roles",
        "value": "{\"value\":\"25\",\"display\":\"Role1234\",\"primary\":true}"}]),
        )
        .expect(200);
    assert_eq!(
        role["roles"],
        json!([{"value": "25", "display": "Role1234", "primary": true}])
    );
}

#[test]
fn okta_cycle() {
    let (_db, _server, scim) = scim_server_of_type("idp", "generic");
    // Connection probe.
    let probe = query(&scim, "/Users?startIndex=1&count=2");
    assert_eq!(
        (probe["startIndex"].as_i64(), probe["totalResults"].as_i64()),
        (Some(1), Some(0))
    );
    // Lookup, then create.
    let lookup = query(
        &scim,
        "/Users?filter=userName%20eq%20%22dade.murphy%40example.com%22&startIndex=1&count=100",
    );
    assert_eq!(lookup["totalResults"], 0);
    let sent = json!({
        "schemas": [USER], "userName": "dade.murphy@example.com",
        "name": {"givenName": "Dade", "familyName": "Murphy"},
        "emails": [{"primary": true, "value": "dade.murphy@example.com", "type": "work"}],
        "displayName": "Dade Murphy", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [], "password": "1mz050nq", "active": true
    });
    let u = scim.post("/Users", &sent).expect(201);
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    assert!(u.get("password").is_none());
    // Profile update with a full-resource PUT (Okta sends everything, id included).
    let mut full = sent.clone();
    full["id"] = u["id"].clone();
    full["name"]["familyName"] = json!("Murphy-Burns");
    full["nickName"] = json!("Zero Cool");
    full.as_object_mut().unwrap().remove("password");
    let put = scim.put(&path, &full).expect(200);
    assert_eq!(put["name"]["familyName"], "Murphy-Burns");
    assert_eq!(put["nickName"], "Zero Cool");
    // Deactivate.
    let off = scim
        .patch(
            &path,
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .expect(200);
    assert_eq!(off["active"], false);
    // Group push: create, add/remove members, rename by PATCH and by PUT, delete.
    let g = scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []}),
        )
        .expect(201);
    let gpath = format!("/Groups/{}", g["id"].as_str().unwrap());
    let added = scim.patch(&gpath, json!([{"op": "add", "path": "members", "value": [{"value": u["id"], "display": "dade.murphy@example.com"}]}])).expect(200);
    assert_eq!(added["members"][0]["display"], "dade.murphy@example.com");
    let renamed = scim
        .patch(
            &gpath,
            json!([{"op": "replace", "value": {"id": g["id"], "displayName": "Renamed SCIMv2"}}]),
        )
        .expect(200);
    assert_eq!(renamed["displayName"], "Renamed SCIMv2");
    let removed = scim.patch(&gpath, json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", u["id"].as_str().unwrap())}])).expect(200);
    assert!(removed.get("members").is_none());
    let put = scim.put(&gpath, &json!({"schemas": [GROUP], "id": g["id"], "displayName": "Put SCIMv2",
                                       "members": [{"value": u["id"], "display": "dade.murphy@example.com"}]})).expect(200);
    assert_eq!(
        (
            put["displayName"].as_str(),
            put["members"].as_array().map(Vec::len)
        ),
        (Some("Put SCIMv2"), Some(1))
    );
    assert_eq!(scim.delete(&gpath).status, 204);
    assert_eq!(query(&scim, "/Groups")["totalResults"], 0);
    // The deactivated user is still there.
    assert_eq!(scim.get(&path).expect(200)["active"], false);
}

#[test]
fn jumpcloud_and_onelogin_test_connection_leaves_nothing_behind() {
    let (db, server, scim) = scim_server_of_type("idp", "generic");
    // JumpCloud's connection test: create and delete a throwaway user and group.
    let u = scim.post("/Users", &json!({"schemas": [USER], "userName": "jctest-2c1f7e@example.com",
                                         "emails": [{"value": "jctest-2c1f7e@example.com", "primary": true}]})).expect(201);
    let g = scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "jctest-group-2c1f7e",
                                          "members": [{"value": u["id"]}]}),
        )
        .expect(201);
    assert_eq!(
        scim.delete(&format!("/Groups/{}", g["id"].as_str().unwrap()))
            .status,
        204
    );
    assert_eq!(
        scim.delete(&format!("/Users/{}", u["id"].as_str().unwrap()))
            .status,
        204
    );
    // OneLogin reads the discovery documents and a page of users.
    scim.get("/ServiceProviderConfig").expect(200);
    query(&scim, "/Users?count=1");
    // Nothing is left: not in the lists, not in the database.
    assert_eq!(query(&scim, "/Users")["totalResults"], 0);
    assert_eq!(query(&scim, "/Groups")["totalResults"], 0);
    let rows: (i64, i64, i64) = db
        .store()
        .call(|c| {
            Ok(c.query_row(
                "SELECT (SELECT count(*) FROM resources), (SELECT count(*) FROM members), (SELECT count(*) FROM value_index)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .unwrap();
    assert_eq!(rows, (0, 0, 0));
    drop(server);
}

//! What Microsoft's public SCIM test collection and other real clients send that RFC 7643/7644
//! allow or that scimd should tolerate: one test per finding.

use serde_json::json;

use crate::harness::{Scim, Server, TestDb, patch_op, scim_server};

#[test]
fn two_values_of_one_type_are_kept_and_a_typed_path_replaces_each() {
    let (_db, _server, scim) = scim_server("p");
    let u = scim.create(
        "/Users",
        &json!({"userName": "two@contoso.com", "emails": [
            {"value": "a@contoso.com", "type": "work", "primary": true},
            {"value": "b@contoso.com", "type": "work"}]}),
    );
    assert_eq!(u["emails"].as_array().unwrap().len(), 2, "{u}");
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let patched = scim
        .patch(
            &path,
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "c@contoso.com"}]),
        )
        .expect(200);
    let values: Vec<&str> = patched["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["c@contoso.com", "c@contoso.com"]);
    // No value of the type: one is created.
    let patched = scim
        .patch(
            &path,
            json!([{"op": "replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}]),
        )
        .expect(200);
    assert_eq!(
        patched["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555"}])
    );
}

#[test]
fn endpoint_names_match_regardless_of_case_and_a_trailing_slash() {
    let (_db, _server, scim) = scim_server("p");
    let u = scim.user("alice@contoso.com");
    let id = u["id"].as_str().unwrap();
    for path in [
        "/users?filter=userName%20eq%20%22alice@contoso.com%22".to_string(),
        "/Users/?filter=userName%20eq%20%22alice@contoso.com%22".to_string(),
        "/USERS/".to_string(),
    ] {
        let list = scim.get(&path).expect(200);
        assert_eq!(list["totalResults"], 1, "{path}: {list}");
    }
    assert_eq!(scim.get(&format!("/users/{id}/")).expect(200)["id"], id);
    assert_eq!(scim.get("/groups").expect(200)["totalResults"], 0);
    assert!(scim.get("/schemas").expect(200)["totalResults"].as_u64() >= Some(3));
    assert_eq!(scim.get("/resourcetypes/").expect(200)["totalResults"], 2);
    assert!(scim.get("/serviceproviderconfig").expect(200)["patch"]["supported"] == true);
    let found = scim
        .post(
            "/users/.SEARCH",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": "userName eq \"alice@contoso.com\""}),
        )
        .expect(200);
    assert_eq!(found["totalResults"], 1);
    // A created resource's location keeps the RFC's spelling.
    let created = scim.post("/users", &json!({"userName": "bob"})).expect(201);
    assert!(
        created["meta"]["location"]
            .as_str()
            .unwrap()
            .contains("/Users/"),
        "{created}"
    );
    // An id is not an endpoint name.
    scim.get("/Users/users").scim_error(404);
}

#[test]
fn the_user_schema_and_resource_type_are_described_as_rfc_7643_does() {
    let (_db, _server, scim) = scim_server("p");
    let schema = scim
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .expect(200);
    assert_eq!(schema["description"], "User Account");
    let rt = scim.get("/ResourceTypes/User").expect(200);
    assert_eq!(rt["description"], "User Account");
    assert_eq!(
        scim.get("/ResourceTypes/Group").expect(200)["description"],
        "Group"
    );
}

#[test]
fn an_unquoted_date_time_in_a_filter_is_read_like_a_quoted_one() {
    let (_db, _server, scim) = scim_server("p");
    scim.user("alice@contoso.com");
    for filter in [
        "meta.created%20gt%202015-10-10T14:38:21Z",
        "meta.created%20gt%20%222015-10-10T14:38:21Z%22",
        "meta.lastModified%20lt%202999-01-01T00:00:00.000%2B01:00",
    ] {
        let list = scim.get(&format!("/Users?filter={filter}")).expect(200);
        assert_eq!(list["totalResults"], 1, "{filter}: {list}");
    }
    let err = scim
        .get("/Users?filter=meta.created%20gt%202015-13-45T99:00:00Z")
        .scim_error(400);
    assert_eq!(err["scimType"], "invalidFilter", "{err}");
}

/// Adding one member must not answer with the whole group: generic providers get the group in
/// full only while it is small, Entra providers get 204, and either may ask.
#[test]
fn a_group_patch_answer_does_not_grow_with_the_group() {
    let db = TestDb::new();
    db.add_provider("generic");
    db.ok(&["provider", "add", "entra", "--type", "entra"]);
    let (_, tg) = db.create_token("generic", &[]);
    let (_, te) = db.create_token("entra", &[]);
    let server = Server::start(&db);
    let scim = Scim::new(&server, "generic", &tg);
    let ids: Vec<String> = (0..101)
        .map(|i| {
            scim.user(&format!("m{i}"))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let g = scim.create("/Groups", &json!({"displayName": "big"}));
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    let add =
        |id: &str| patch_op(json!([{"op": "add", "path": "members", "value": [{"value": id}]}]));
    let members: Vec<_> = ids[..99].iter().map(|id| json!({"value": id})).collect();
    scim.patch(
        &path,
        json!([{"op": "add", "path": "members", "value": members}]),
    )
    .expect(200);
    // The 100th member: still small, answered in full (what conformance checkers expect).
    let r = scim.with_headers("PATCH", &path, Some(&add(&ids[99])), &[]);
    assert_eq!(r.expect(200)["members"].as_array().unwrap().len(), 100);
    // The 101st: 204, with the new version.
    let r = scim.with_headers("PATCH", &path, Some(&add(&ids[100])), &[]);
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert!(r.header("etag").is_some());
    // Asked for: the representation, projected as asked.
    let remove =
        patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])}]));
    let r = scim.with_headers(
        "PATCH",
        &format!("{path}?excludedAttributes=members"),
        Some(&remove),
        &[],
    );
    let body = r.expect(200);
    assert_eq!(body["displayName"], "big");
    assert!(body.get("members").is_none(), "{body}");
    let r = scim.with_headers(
        "PATCH",
        &path,
        Some(&add(&ids[0])),
        &[("Prefer", "return=representation")],
    );
    assert_eq!(r.expect(200)["members"].as_array().unwrap().len(), 101);
    // An Entra provider's small group: 204 as Microsoft advises.
    let entra = Scim::new(&server, "entra", &te);
    let u = entra.user("e");
    let g = entra.create("/Groups", &json!({"displayName": "small"}));
    let r = entra.with_headers(
        "PATCH",
        &format!("/Groups/{}", g["id"].as_str().unwrap()),
        Some(&add(u["id"].as_str().unwrap())),
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.text);
}

//! Extension schemas a provider registers (`scimd schema ...`): Entra's custom attributes,
//! Microsoft's validator URNs, non-IETF URNs; every request form against the real binary.

use serde_json::{Value, json};

use crate::harness::{Scim, Server, TestDb, patch_op};

const CONTOSO: &str = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User";
const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn schema_file(db: &TestDb, name: &str, text: &str) -> String {
    let path = db.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().to_string()
}

fn contoso_file() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/schemas/contoso.json").to_string()
}

/// A provider of `kind` with the Contoso schema registered before the server starts.
fn server_with_contoso(kind: &str) -> (TestDb, Server, Scim) {
    let db = TestDb::new();
    db.ok(&["provider", "add", "entra", "--type", kind]);
    let out = db.ok(&[
        "schema",
        "add",
        "--provider",
        "entra",
        "--index",
        "costCenter",
        &contoso_file(),
    ]);
    assert!(out.contains("registered") && out.contains(CONTOSO), "{out}");
    assert!(out.contains("badgeNumber, costCenter"), "{out}");
    let (_, token) = db.create_token("entra", &[]);
    let server = Server::start(&db);
    let scim = Scim::new(&server, "entra", &token);
    (db, server, scim)
}

fn ext(v: &Value) -> &Value {
    &v[CONTOSO]
}

/// Entra's provisioning of a user with two custom attributes mapped: the create body keeps the
/// extension object out of `schemas`; updates come in both PATCH dialects; the filter Entra
/// matches on; clearing; and removing the schema.
#[test]
fn entra_provisions_custom_attributes_end_to_end() {
    let (db, _server, scim) = server_with_contoso("entra");
    let created = scim.create(
        "/Users",
        &json!({
            "schemas": [CORE, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "e1", "userName": "ada@contoso.com", "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
            CONTOSO: {"badgeNumber": "B-100", "costCenter": "CC-7", "clearance": 2,
                      "sites": [{"value": "Redmond", "type": "hq"}]}
        }),
    );
    let id = created["id"].as_str().unwrap().to_string();
    // Stored exactly as sent and returned, with its URN listed in `schemas`.
    assert_eq!(
        ext(&created),
        &json!({"badgeNumber": "B-100", "costCenter": "CC-7", "clearance": 2,
                "sites": [{"value": "Redmond", "type": "hq"}]})
    );
    assert!(
        created["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(CONTOSO))
    );
    let path = format!("/Users/{id}");
    // The default dialect: a path per attribute.
    let r = scim
        .patch(
            &path,
            json!([
                {"op": "Replace", "path": format!("{CONTOSO}:costCenter"), "value": "CC-8"},
                {"op": "Add", "path": format!("{CONTOSO}:sites[type eq \"lab\"].value"), "value": "Cambridge"}
            ]),
        )
        .expect(200);
    assert_eq!(ext(&r)["costCenter"], "CC-8");
    assert_eq!(
        ext(&r)["sites"][1],
        json!({"type": "lab", "value": "Cambridge"})
    );
    // aadOptscim062020: no path, keys are paths.
    let r = scim
        .patch(
            &path,
            json!([{"op": "replace", "value": {
                format!("{CONTOSO}:clearance"): 3,
                format!("{CONTOSO}:contractEnd"): "2027-06-30T00:00:00Z",
                "displayName": "Ada"
            }}]),
        )
        .expect(200);
    assert_eq!(ext(&r)["clearance"], 3);
    assert_eq!(ext(&r)["contractEnd"], "2027-06-30T00:00:00Z");
    // Values are checked against the registered types.
    let err = scim
        .patch(
            &path,
            json!([{"op": "replace", "path": format!("{CONTOSO}:clearance"), "value": "high"}]),
        )
        .scim_error(400);
    assert_eq!(err["scimType"], "invalidValue");
    // Filters with every kind of operator, on the indexed and the other attributes.
    scim.create(
        "/Users",
        &json!({"userName": "bob@contoso.com", CONTOSO: {"badgeNumber": "B-200", "costCenter": "CC-9", "clearance": 1}}),
    );
    let count = |filter: &str| -> u64 {
        let q: String = url_encode(filter);
        scim.get(&format!("/Users?filter={q}")).expect(200)["totalResults"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count(&format!("{CONTOSO}:costCenter eq \"cc-8\"")), 1);
    assert_eq!(count(&format!("{CONTOSO}:badgeNumber eq \"b-100\"")), 1);
    assert_eq!(count(&format!("{CONTOSO}:badgeNumber sw \"B-\"")), 2);
    assert_eq!(count(&format!("{CONTOSO}:clearance ge 2")), 1);
    assert_eq!(count(&format!("{CONTOSO}:contractEnd pr")), 1);
    assert_eq!(count(&format!("{CONTOSO}:sites[type eq \"lab\"]")), 1);
    assert_eq!(count(&format!("not ({CONTOSO}:costCenter co \"8\")")), 1);
    // Sorted by one, projected to another.
    let list = scim
        .get(&format!(
            "/Users?sortBy={CONTOSO}:clearance&sortOrder=descending&attributes={CONTOSO}:badgeNumber"
        ))
        .expect(200);
    let shown: Vec<Value> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ext(r).clone())
        .collect();
    assert_eq!(
        shown,
        [
            json!({"badgeNumber": "B-100"}),
            json!({"badgeNumber": "B-200"})
        ]
    );
    let r = scim
        .get(&format!("{path}?excludedAttributes={CONTOSO}"))
        .expect(200);
    assert!(r.get(CONTOSO).is_none(), "{r}");
    // uniqueness: server, regardless of case.
    let err = scim
        .post(
            "/Users",
            &json!({"userName": "eve@contoso.com", CONTOSO: {"badgeNumber": "b-100"}}),
        )
        .scim_error(409);
    assert_eq!(err["scimType"], "uniqueness");
    scim.patch(
        &path,
        json!([{"op": "replace", "path": format!("{CONTOSO}:badgeNumber"), "value": "B-200"}]),
    )
    .scim_error(409);
    // Clearing every value drops the extension object and its URN from `schemas`.
    let r = scim
        .patch(&path, json!([{"op": "remove", "path": CONTOSO}]))
        .expect(200);
    assert!(r.get(CONTOSO).is_none(), "{r}");
    assert!(!r["schemas"].as_array().unwrap().contains(&json!(CONTOSO)));
    // The badge is free again.
    scim.create(
        "/Users",
        &json!({"userName": "eve@contoso.com", CONTOSO: {"badgeNumber": "b-100"}}),
    );
    // Removing the schema refuses while values are stored, then deletes them with --yes.
    let err = db.fails(&["schema", "remove", "--provider", "entra", CONTOSO]);
    assert!(
        err.contains("2 resources hold values") && err.contains("--yes"),
        "{err}"
    );
    let out = db.ok(&["schema", "remove", "--provider", "entra", CONTOSO, "--yes"]);
    assert!(out.contains("values deleted from 2 resources"), "{out}");
    let bob = scim
        .get("/Users?filter=userName%20eq%20%22bob@contoso.com%22")
        .expect(200);
    assert!(bob["Resources"][0].get(CONTOSO).is_none(), "{bob}");
    assert_eq!(bob["Resources"][0]["meta"]["version"], "W/\"2\"");
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/Schemas` and `/ResourceTypes` show a provider's extensions to that provider only; a
/// schema registered or removed while the server runs is seen by the provider's requests.
#[test]
fn discovery_shows_a_providers_own_extensions_and_changes_reach_a_running_server() {
    let db = TestDb::new();
    db.add_provider("a");
    db.add_provider("b");
    let (_, ta) = db.create_token("a", &[]);
    let (_, tb) = db.create_token("b", &[]);
    let server = Server::start(&db);
    let a = Scim::new(&server, "a", &ta);
    let b = Scim::new(&server, "b", &tb);
    let body = json!({"userName": "x", CONTOSO: {"costCenter": "1"}});
    // Not registered yet: refused, naming the commands that fix it.
    let err = a.post("/Users", &body).scim_error(400);
    let detail = err["detail"].as_str().unwrap();
    assert!(
        detail.contains(CONTOSO) && detail.contains("scimd schema add"),
        "{detail}"
    );
    db.ok(&["schema", "add", "--provider", "a", &contoso_file()]);
    // The provider's very next request that uses it sees it.
    let created = a.post("/Users", &body).expect(201);
    assert_eq!(ext(&created)["costCenter"], "1");
    // And a PATCH of a schema registered since.
    let second = json!({"id": "urn:example:second:2.0:User",
                        "attributes": [{"name": "n", "type": "integer"}]})
    .to_string();
    let file = schema_file(&db, "second.json", &second);
    db.ok(&["schema", "add", "--provider", "a", &file]);
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    let r = a
        .patch(
            &path,
            json!([{"op": "add", "path": "urn:example:second:2.0:User:n", "value": 5}]),
        )
        .expect(200);
    assert_eq!(r["urn:example:second:2.0:User"]["n"], 5);
    let schemas = a.get("/Schemas").expect(200);
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&CONTOSO), "{ids:?}");
    let one = a.get(&format!("/Schemas/{CONTOSO}")).expect(200);
    assert_eq!(one["name"], "ContosoUser");
    assert_eq!(one["attributes"][0]["uniqueness"], "server");
    assert_eq!(
        one["attributes"][4]["subAttributes"][1]["canonicalValues"],
        json!(["hq", "lab"])
    );
    let user_type = a.get("/ResourceTypes/User").expect(200);
    assert!(
        user_type["schemaExtensions"]
            .as_array()
            .unwrap()
            .contains(&json!({"schema": CONTOSO, "required": false})),
        "{user_type}"
    );
    // The other provider sees none of it, and still refuses the attribute.
    b.get(&format!("/Schemas/{CONTOSO}")).scim_error(404);
    let b_type = b.get("/ResourceTypes/User").expect(200);
    assert_eq!(b_type["schemaExtensions"].as_array().unwrap().len(), 1);
    b.post("/Users", &body).scim_error(400);
    // Removed while serving: gone from discovery.
    db.ok(&["schema", "remove", "--provider", "a", CONTOSO, "--yes"]);
    let mut gone = false;
    for _ in 0..3 {
        if a.get(&format!("/Schemas/{CONTOSO}")).status == 404 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the removed schema is still served");
}

/// Microsoft's SCIM Validator's two extension URNs and a non-IETF one, on Users and Groups.
#[test]
fn validator_and_non_ietf_urns_work_on_users_and_groups() {
    let db = TestDb::new();
    db.add_provider("p");
    let urns = [
        (
            "urn:msfttest:cloud:scim:schemas:extension:custom:2.0:User",
            "user",
        ),
        (
            "urn:ietf:params:scim:schemas:extension:msfttest:User",
            "user",
        ),
        ("urn:salesforce:schemas:extension:18CHARORGID", "user"),
        (
            "urn:ietf:params:scim:schemas:extension:msfttest:Group",
            "group",
        ),
    ];
    for (i, (urn, rt)) in urns.iter().enumerate() {
        let text = json!({"id": urn, "attributes": [
            {"name": "testAttribute", "type": "string"},
            {"name": "flag", "type": "boolean"}
        ]})
        .to_string();
        let file = schema_file(&db, &format!("s{i}.json"), &text);
        db.ok(&[
            "schema",
            "add",
            "--provider",
            "p",
            "--resource-type",
            rt,
            &file,
        ]);
    }
    let listed = db.ok(&["schema", "list", "--provider", "p"]);
    for (urn, _) in &urns {
        assert!(listed.contains(urn), "{listed}");
    }
    let (_, token) = db.create_token("p", &[]);
    let server = Server::start(&db);
    let scim = Scim::new(&server, "p", &token);
    let mut body = json!({"userName": "v@contoso.com"});
    for (urn, rt) in &urns {
        if *rt == "user" {
            body[urn] = json!({"testAttribute": urn, "flag": true});
        }
    }
    let u = scim.create("/Users", &body);
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    for (urn, rt) in &urns {
        if *rt != "user" {
            continue;
        }
        assert_eq!(u[urn]["testAttribute"], *urn);
        let r = scim
            .patch(
                &path,
                json!([{"op": "replace", "path": format!("{urn}:testAttribute"), "value": "changed"}]),
            )
            .expect(200);
        assert_eq!(r[urn]["testAttribute"], "changed", "{urn}");
        let q = url_encode(&format!("{urn}:flag eq true"));
        assert_eq!(
            scim.get(&format!("/Users?filter={q}")).expect(200)["totalResults"],
            1
        );
    }
    let group_urn = urns[3].0;
    let g = scim.create(
        "/Groups",
        &json!({"displayName": "G", group_urn: {"testAttribute": "g"}}),
    );
    assert_eq!(g[group_urn]["testAttribute"], "g");
    // A required attribute of an extension, once the extension has values.
    let text = json!({"id": "urn:example:req:2.0:User", "attributes": [
        {"name": "must", "type": "string", "required": true},
        {"name": "may", "type": "string"}]})
    .to_string();
    let file = schema_file(&db, "req.json", &text);
    db.ok(&["schema", "add", "--provider", "p", &file]);
    let err = scim
        .post(
            "/Users",
            &json!({"userName": "r", "urn:example:req:2.0:User": {"may": "x"}}),
        )
        .scim_error(400);
    assert!(
        err["detail"]
            .as_str()
            .unwrap()
            .contains("urn:example:req:2.0:User:must"),
        "{err}"
    );
    scim.create(
        "/Users",
        &json!({"userName": "r", "urn:example:req:2.0:User": {"must": "x"}}),
    );
    scim.create("/Users", &json!({"userName": "s"}));
    // A group extension is not a user's.
    scim.post(
        "/Users",
        &json!({"userName": "w", group_urn: {"testAttribute": "x"}}),
    )
    .scim_error(400);
}

/// `--unknown-attributes ignore`: attributes of unregistered schemas are dropped and noted.
#[test]
fn a_provider_can_ignore_unknown_attributes_instead() {
    let db = TestDb::new();
    db.add_provider("p");
    let out = db.ok(&["provider", "set", "p", "--unknown-attributes", "ignore"]);
    assert!(out.contains("unknown attributes ignore"), "{out}");
    let (_, token) = db.create_token("p", &[]);
    let server = Server::start(&db);
    let scim = Scim::new(&server, "p", &token);
    let u = scim.create(
        "/Users",
        &json!({"userName": "i", "urn:example:unregistered:2.0:User": {"a": 1}, "title": "t"}),
    );
    assert!(u.get("urn:example:unregistered:2.0:User").is_none(), "{u}");
    assert_eq!(u["title"], "t");
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let r = scim.with_headers(
        "PATCH",
        &path,
        Some(&patch_op(json!([
            {"op": "add", "path": "urn:example:unregistered:2.0:User:a", "value": 2},
            {"op": "replace", "path": "title", "value": "u"}
        ]))),
        &[],
    );
    assert_eq!(r.expect(200)["title"], "u");
    server.wait_for_line("unknown_schema");
    let show = db.ok(&["provider", "show", "p"]);
    assert!(show.contains("unknown attributes: ignore"), "{show}");
}

/// A bad schema file is refused with an error naming the line or the attribute.
#[test]
fn bad_schema_files_are_refused_naming_the_problem() {
    let db = TestDb::new();
    db.add_provider("p");
    for (text, want) in [
        (
            "{\n  \"id\": \"urn:a:b\",\n  \"attributes\": [\n    {\"name\": \"x\" \"type\": \"string\"}\n  ]\n}",
            "line 4",
        ),
        (
            r#"{"id": "urn:a:b", "attributes": [{"name": "x", "type": "text"}]}"#,
            "attribute x",
        ),
        (
            r#"{"id": "urn:a:b", "attributes": [{"name": "x", "type": "string", "multivalued": true}]}"#,
            "\"multivalued\"",
        ),
    ] {
        let file = schema_file(&db, "bad.json", text);
        let err = db.fails(&["schema", "add", "--provider", "p", &file]);
        assert!(err.contains(want) && err.contains("bad.json"), "{err}");
    }
    let err = db.fails(&["schema", "add", "--provider", "nope", &contoso_file()]);
    assert!(err.contains("no provider"), "{err}");
    db.ok(&["schema", "add", "--provider", "p", &contoso_file()]);
    let err = db.fails(&["schema", "add", "--provider", "p", &contoso_file()]);
    assert!(err.contains("already has"), "{err}");
    let shown = db.ok(&["schema", "show", "--provider", "p", CONTOSO]);
    assert!(
        shown.contains("values in 0 resources") && shown.contains("\"ContosoUser\""),
        "{shown}"
    );
}

//! Discovery endpoints serve the same schema model that validates requests.

use serde_json::json;

use crate::harness::scim_server;

#[test]
fn schemas_match_the_model() {
    let (_db, _server, scim) = scim_server("p");
    let list = scim.get("/Schemas").expect(200);
    assert_eq!(
        list["totalResults"],
        scimd::api::scim::schema::Model::builtin().schemas().count()
    );
    for (served, model) in list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .zip(scimd::api::scim::schema::Model::builtin().schemas())
    {
        let mut expected = model.to_json();
        expected["meta"] = json!({
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", scim.base, model.id),
        });
        assert_eq!(served, &expected);
        let one = scim.get(&format!("/Schemas/{}", model.id)).expect(200);
        assert_eq!(one, expected);
    }
    scim.get("/Schemas/urn:nope").scim_error(404);
}

#[test]
fn resource_types_and_service_provider_config() {
    let (_db, _server, scim) = scim_server("p");
    let types = scim.get("/ResourceTypes").expect(200);
    assert_eq!(types["totalResults"], 2);
    let user = scim.get("/ResourceTypes/User").expect(200);
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schema"], "urn:ietf:params:scim:schemas:core:2.0:User");
    assert_eq!(
        user["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );
    assert_eq!(
        scim.get("/ResourceTypes/Group").expect(200)["endpoint"],
        "/Groups"
    );
    scim.get("/ResourceTypes/Device").scim_error(404);
    let spc = scim.get("/ServiceProviderConfig").expect(200);
    // Only what works is advertised.
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);
    assert_eq!(spc["sort"]["supported"], true);
    assert_eq!(spc["pagination"]["cursor"], true);
    assert_eq!(spc["filter"]["maxResults"], 1000);
    assert_eq!(spc["etag"]["supported"], true);
}

#[test]
fn discovery_is_read_only() {
    let (_db, _server, scim) = scim_server("p");
    for path in [
        "/Schemas",
        "/ResourceTypes",
        "/ServiceProviderConfig",
        "/ResourceTypes/User",
    ] {
        scim.post(path, &json!({})).scim_error(405);
        scim.delete(path).scim_error(405);
    }
}

//! Discovery endpoints (RFC 7644 §4). They advertise only what this server actually does, and
//! `/Schemas` and `/ResourceTypes` are rendered from the provider's schema model. The keys
//! written here are the wire format of RFC 7643 §5–§7 (ServiceProviderConfig, ResourceType,
//! Schema and their `meta`), not attributes of the model.

use actix_web::{HttpResponse, Resource, web};
use serde_json::{Value, json};

use super::Principal;
use super::{AppState, method_not_allowed};
use crate::error::{Error, SCIM_CONTENT_TYPE};
use crate::render::LIST_RESPONSE;
use crate::scim::ResourceKind;
use crate::scim::schema::{self, ResourceType};

pub(super) fn services() -> Vec<Resource> {
    let read_only = |path: &str, route: actix_web::Route| {
        web::resource(path.to_string())
            .route(route)
            .default_service(web::to(method_not_allowed))
    };
    vec![
        read_only(
            "/ServiceProviderConfig",
            web::get().to(service_provider_config),
        ),
        read_only("/Schemas", web::get().to(list_schemas)),
        read_only("/Schemas/{urn}", web::get().to(get_schema)),
        read_only("/ResourceTypes", web::get().to(list_resource_types)),
        read_only("/ResourceTypes/{name}", web::get().to(get_resource_type)),
    ]
}

fn ok(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .body(body.to_string())
}

fn list_response(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

async fn service_provider_config(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, Error> {
    let base = state.scim_base(&principal.provider_name);
    let pid = principal.provider_id;
    let sets = state
        .store
        .run(move |c| crate::store::feeds::has_set_feed(c, pid))
        .await?;
    let mut spc = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": state.config.max_page_size},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        // RFC 9865: index and cursor pagination.
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": state.config.max_page_size,
            "maxPageSize": state.config.max_page_size
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A token issued by `scimd token create`, sent as \
                            Authorization: Bearer <token>",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig")
        }
    });
    // RFC 9967 §4: the events a feed of Security Event Tokens sends, for a provider that has
    // one (`scimd feed add --format set`); requests are never answered asynchronously. Only
    // then: strict clients (scim2-models, which the conformance checker uses) refuse a
    // ServiceProviderConfig with attributes RFC 7643 does not name.
    if sets {
        spc["securityEvents"] = json!({
            "eventUris": crate::feed::set::event_uris(),
            "asyncRequest": "none"
        });
    }
    Ok(ok(&spc))
}

fn schema_json(base: &str, s: &schema::Schema) -> Value {
    let mut v = s.to_json();
    v["meta"] = json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{}", s.id)});
    v
}

async fn list_schemas(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, Error> {
    let base = state.scim_base(&principal.provider_name);
    let model = state.model(&principal).await?;
    Ok(ok(&list_response(
        model.schemas().map(|s| schema_json(&base, s)).collect(),
    )))
}

async fn get_schema(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (_, urn) = path.into_inner();
    let model = state.model(&principal).await?;
    let s = model
        .schema(&urn)
        .ok_or_else(|| Error::NotFound(format!("no schema {urn}")))?;
    Ok(ok(&schema_json(
        &state.scim_base(&principal.provider_name),
        s,
    )))
}

fn resource_type_json(base: &str, rt: &ResourceType) -> Value {
    let mut v = rt.resource_type_json();
    v["meta"] = json!({
        "resourceType": "ResourceType",
        "location": format!("{base}/ResourceTypes/{}", rt.name()),
    });
    v
}

async fn list_resource_types(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, Error> {
    let base = state.scim_base(&principal.provider_name);
    let model = state.model(&principal).await?;
    Ok(ok(&list_response(
        model
            .resource_types()
            .iter()
            .map(|rt| resource_type_json(&base, rt))
            .collect(),
    )))
}

async fn get_resource_type(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (_, name) = path.into_inner();
    let kind = ResourceKind::from_name(&name)
        .ok_or_else(|| Error::NotFound(format!("no resource type {name}")))?;
    Ok(ok(&resource_type_json(
        &state.scim_base(&principal.provider_name),
        state.model(&principal).await?.get(kind),
    )))
}

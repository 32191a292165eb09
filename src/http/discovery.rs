//! Discovery endpoints (RFC 7644 §4). They advertise only what this server actually does.

use actix_web::{HttpResponse, Resource, web};
use serde_json::json;

use super::auth::Principal;
use super::{AppState, method_not_allowed};
use crate::error::SCIM_CONTENT_TYPE;

pub fn service_provider_config() -> Resource {
    web::resource("/ServiceProviderConfig")
        .route(web::get().to(get_service_provider_config))
        .default_service(web::to(method_not_allowed))
}

async fn get_service_provider_config(
    state: web::Data<AppState>,
    principal: Principal,
) -> HttpResponse {
    let base = state.scim_base(&principal.provider_name);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": false},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": false, "maxResults": 0},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
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
    HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .body(body.to_string())
}

//! The Entra-like user every benchmark seeds: the attributes Microsoft Entra ID provisions,
//! enterprise extension included, about 1 KB of JSON.

use serde_json::{Value, json};

pub fn entra_like_user(i: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": format!("{i:08x}-8d2a-4f8e-bf98-7363c4aed4ef"),
        "userName": format!("user{i}@contoso.com"),
        "active": !i.is_multiple_of(10),
        "displayName": format!("User {i} Smith"),
        "emails": [{"primary": true, "type": "work", "value": format!("user{i}@contoso.com")},
                   {"type": "home", "value": format!("u{i}@home.example")}],
        "name": {"givenName": "User", "familyName": format!("Smith{i}")},
        "phoneNumbers": [{"type": "mobile", "value": format!("+31 6 {i:08}")}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": format!("Dept {}", i % 50), "employeeNumber": format!("{i}")
        }
    })
}

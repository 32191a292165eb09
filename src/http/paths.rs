//! Endpoint names regardless of case, and a trailing slash: `/scim/v2/p/users/` is
//! `/scim/v2/p/Users`. RFC 7644 names the endpoints with capitals; clients (Microsoft's test
//! collection among them) send them in lower case or end a collection's path with `/`.

const ENDPOINTS: &[&str] = &[
    "Users",
    "Groups",
    "Schemas",
    "ResourceTypes",
    "ServiceProviderConfig",
    ".search",
];

fn endpoint(segment: &str) -> &str {
    ENDPOINTS
        .iter()
        .find(|e| e.eq_ignore_ascii_case(segment))
        .copied()
        .unwrap_or(segment)
}

/// The path with its endpoint segment spelt as RFC 7644 spells it and without trailing
/// slashes; `None` when it already is (most requests: nothing is allocated).
pub(super) fn canonical(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/scim/v2/")?;
    let (provider, tail) = rest.split_once('/')?;
    let trimmed = tail.trim_end_matches('/');
    let (first, second) = match trimmed.split_once('/') {
        Some((first, second)) => (first, Some(second)),
        None => (trimmed, None),
    };
    let first_fixed = endpoint(first);
    // `/Users/.search`; an id or a schema URN after the endpoint is left as it is.
    let second_fixed = second.map(|s| {
        if s.eq_ignore_ascii_case(".search") {
            ".search"
        } else {
            s
        }
    });
    if trimmed.len() == tail.len() && first_fixed == first && second_fixed == second {
        return None;
    }
    let mut out = format!("/scim/v2/{provider}/{first_fixed}");
    if let Some(s) = second_fixed {
        out.push('/');
        out.push_str(s);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn endpoints_regardless_of_case_and_without_trailing_slashes() {
        for (path, want) in [
            ("/scim/v2/p/users", "/scim/v2/p/Users"),
            ("/scim/v2/p/Users/", "/scim/v2/p/Users"),
            ("/scim/v2/p/GROUPS//", "/scim/v2/p/Groups"),
            ("/scim/v2/p/users/abc/", "/scim/v2/p/Users/abc"),
            ("/scim/v2/p/users/.SEARCH", "/scim/v2/p/Users/.search"),
            ("/scim/v2/p/schemas", "/scim/v2/p/Schemas"),
            (
                "/scim/v2/p/resourcetypes/User",
                "/scim/v2/p/ResourceTypes/User",
            ),
            (
                "/scim/v2/p/serviceproviderconfig",
                "/scim/v2/p/ServiceProviderConfig",
            ),
            ("/scim/v2/p/.Search", "/scim/v2/p/.search"),
        ] {
            assert_eq!(canonical(path).as_deref(), Some(want), "{path}");
        }
        for path in [
            "/scim/v2/p/Users",
            "/scim/v2/p/Users/abc",
            "/scim/v2/p/Users/.search",
            "/scim/v2/p/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            "/scim/v2/p/Nope",
            "/scim/v2/p",
            "/healthz",
        ] {
            assert_eq!(canonical(path), None, "{path}");
        }
        // An id is an id whatever it looks like.
        assert_eq!(canonical("/scim/v2/p/Users/users"), None);
    }
}

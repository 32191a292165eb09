//! Hostile and careless input, one row per case: every bad request gets a SCIM error with the
//! right status and changes nothing.

use serde_json::json;

use crate::harness::{Resp, Scim, raw, scim_server};

/// A request sent byte for byte, with the test's token unless `auth` says otherwise.
fn send_raw(
    scim: &Scim,
    addr: &str,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &str,
) -> Resp {
    let path = scim.base.split_once("//").unwrap().1;
    let path = &path[path.find('/').unwrap()..];
    let mut req =
        format!("{method} {path}{target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !headers.iter().any(|h| h.starts_with("Authorization")) {
        req.push_str(&format!("Authorization: Bearer {}\r\n", scim.token));
    }
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    raw(addr, &req)
}

/// (case, method, target, headers, body, status, scimType)
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Vec<&'a str>,
    &'a str,
    u16,
    Option<&'a str>,
);

#[test]
fn every_bad_request_gets_a_scim_error_and_changes_nothing() {
    let (_db, server, scim) = scim_server("p");
    scim.user("alice@contoso.com");
    let addr = server.addr();
    let auth = format!("Authorization: Bearer {}", scim.token);
    let json_type = "Content-Type: application/scim+json";
    let user = r#"{"userName":"mallory"}"#;
    let cases: Vec<Case> = vec![
        (
            "blank filter",
            "GET",
            "/Users?filter=",
            vec![],
            "",
            400,
            Some("invalidFilter"),
        ),
        (
            "space filter",
            "GET",
            "/Users?filter=%20",
            vec![],
            "",
            400,
            Some("invalidFilter"),
        ),
        (
            "repeated filter",
            "GET",
            "/Users?filter=userName%20eq%20%22x%22&filter=userName%20pr",
            vec![],
            "",
            400,
            Some("invalidFilter"),
        ),
        (
            "repeated count",
            "GET",
            "/Users?count=1&COUNT=2",
            vec![],
            "",
            400,
            Some("invalidSyntax"),
        ),
        (
            "not UTF-8 in the query",
            "GET",
            "/Users?filter=userName%20eq%20%22alice%FF%22",
            vec![],
            "",
            400,
            Some("invalidSyntax"),
        ),
        (
            "not UTF-8 in the path",
            "GET",
            "/Users/%C3%28",
            vec![],
            "",
            400,
            Some("invalidSyntax"),
        ),
        (
            "a key twice in the body",
            "POST",
            "/Users",
            vec![json_type],
            r#"{"userName":"mallory","userName":"alice@contoso.com"}"#,
            400,
            Some("invalidSyntax"),
        ),
        (
            "a key twice, nested",
            "POST",
            "/Users",
            vec![json_type],
            r#"{"userName":"mallory","name":{"givenName":"a","givenName":"b"}}"#,
            400,
            Some("invalidSyntax"),
        ),
        (
            "two Authorization headers",
            "POST",
            "/Users",
            vec![json_type, &auth, &auth],
            user,
            400,
            Some("invalidSyntax"),
        ),
        (
            "text/plain",
            "POST",
            "/Users",
            vec!["Content-Type: text/plain"],
            user,
            415,
            None,
        ),
        (
            "XML",
            "POST",
            "/Users",
            vec!["Content-Type: application/xml"],
            user,
            415,
            None,
        ),
        (
            "a form",
            "POST",
            "/Users",
            vec!["Content-Type: application/x-www-form-urlencoded"],
            user,
            415,
            None,
        ),
        (
            "not UTF-8",
            "POST",
            "/Users",
            vec!["Content-Type: application/scim+json; charset=iso-8859-1"],
            user,
            415,
            None,
        ),
        (
            "a search with an empty filter",
            "POST",
            "/Users/.search",
            vec![json_type],
            r#"{"filter":""}"#,
            400,
            Some("invalidFilter"),
        ),
    ];
    for (case, method, target, headers, body, status, scim_type) in cases {
        let r = send_raw(&scim, &addr, method, target, &headers, body);
        let err = r.scim_error(status);
        assert_eq!(err["scimType"].as_str(), scim_type, "{case}: {err}");
    }
    // Nothing was created, and the good forms still work.
    let list = scim.get("/Users").expect(200);
    assert_eq!(list["totalResults"], 1, "{list}");
    for (i, content_type) in [
        vec![json_type],
        vec!["Content-Type: application/json; charset=UTF-8"],
        vec![],
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("ok{i}");
        let body = json!({"userName": name}).to_string();
        let r = send_raw(&scim, &addr, "POST", "/Users", &content_type, &body);
        assert_eq!(r.status, 201, "{content_type:?}: {}", r.text);
    }
}

#[test]
fn oversized_and_control_character_values_are_refused_naming_the_attribute() {
    let (_db, _server, scim) = scim_server("p");
    let u = scim.user("bob@contoso.com");
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let long_name = "a".repeat(1_000_000);
    let long_password = "p".repeat(900 * 1024);
    let long_title = "t".repeat(70 * 1024);
    let cases = [
        (json!({"userName": long_name}), "userName"),
        (json!({"userName": "nul\u{0}byte"}), "userName"),
        (json!({"userName": "line\nbreak"}), "userName"),
        (
            json!({"userName": "ok1", "externalId": "x\u{7f}"}),
            "externalId",
        ),
        (
            json!({"userName": "ok2", "password": long_password}),
            "password",
        ),
        (json!({"userName": "ok3", "title": long_title}), "title"),
    ];
    for (body, attr) in cases {
        let err = scim.post("/Users", &body).scim_error(400);
        assert_eq!(err["scimType"], "invalidValue", "{attr}: {err}");
        assert!(
            err["detail"].as_str().unwrap().contains(attr),
            "{attr}: {err}"
        );
    }
    let g = scim.create("/Groups", &json!({"displayName": "g"}));
    let gpath = format!("/Groups/{}", g["id"].as_str().unwrap());
    let err = scim
        .patch(
            &gpath,
            json!([{"op": "add", "path": "members", "value": [{"value": "x\u{0}"}]}]),
        )
        .scim_error(400);
    assert!(
        err["detail"].as_str().unwrap().contains("members.value"),
        "{err}"
    );
    let err = scim
        .patch(
            &path,
            json!([{"op": "replace", "path": "userName", "value": "tab\there"}]),
        )
        .scim_error(400);
    assert!(
        err["detail"].as_str().unwrap().contains("userName"),
        "{err}"
    );
    // Line breaks stay fine where they mean something.
    scim.patch(
        &path,
        json!([{"op": "replace", "path": "addresses", "value": [{"formatted": "1 Main St\nSpringfield"}]}]),
    )
    .expect(200);
    assert_eq!(scim.get("/Users").expect(200)["totalResults"], 1);
}

#[test]
fn a_body_that_never_arrives_times_out_with_408_and_the_connection_closes() {
    use std::io::{Read, Write};
    let db = crate::harness::TestDb::new();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let server = crate::harness::Server::start_with(&db.path, &[], &[("SCIMD_BODY_TIMEOUT", "1s")]);
    let addr = server.addr();
    let mut slow = Vec::new();
    for _ in 0..5 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        write!(
            s,
            "POST /scim/v2/p/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: 100\r\n\r\n{{\"userName\""
        )
        .unwrap();
        slow.push(s);
    }
    for mut s in slow {
        let mut text = String::new();
        // Read to the end: the server closes the connection after its answer.
        s.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("application/scim+json"), "{text}");
        assert!(text.contains("\"status\":\"408\""), "{text}");
    }
}

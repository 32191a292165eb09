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

/// Requests the HTTP/1 parser refuses before any handler runs: the same statuses as ever, now
/// with a SCIM error body; and a target over 8 KiB is a `414`.
#[test]
fn requests_the_http_parser_refuses_get_a_scim_error_too() {
    let (_db, server, scim) = scim_server("p");
    let addr = server.addr();
    let auth = format!("Authorization: Bearer {}", scim.token);
    let many_headers: String = (0..120).map(|i| format!("X-{i}: 1\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "b".repeat(140 * 1024));
    let long_target = format!(
        "/scim/v2/p/Users?filter=userName%20eq%20%22{}%22",
        "a".repeat(9000)
    );
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        (
            "an unencoded space in the target",
            format!(
                "GET /scim/v2/p/Users?filter=userName eq \"a\" HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n\r\n"
            ),
            400,
            Some("invalidSyntax"),
        ),
        (
            "no Host",
            format!("GET /scim/v2/p/Users HTTP/1.1\r\n{auth}\r\n\r\n"),
            400,
            Some("invalidSyntax"),
        ),
        (
            "Content-Length and Transfer-Encoding",
            format!(
                "POST /scim/v2/p/Users HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\nContent-Length: 2\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{{}}"
            ),
            400,
            Some("invalidSyntax"),
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST /scim/v2/p/Users HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\nContent-Length: 2\r\n\
                 Content-Length: 3\r\n\r\n{{}} "
            ),
            400,
            Some("invalidSyntax"),
        ),
        (
            "not a request line",
            "HELLO\r\n\r\n".to_string(),
            400,
            Some("invalidSyntax"),
        ),
        (
            "a control character in a header",
            format!("GET /scim/v2/p/Users HTTP/1.1\r\nHost: {addr}\r\nX-Note: a\u{1}b\r\n\r\n"),
            400,
            Some("invalidSyntax"),
        ),
        (
            "120 header fields",
            format!("GET /scim/v2/p/Users HTTP/1.1\r\nHost: {addr}\r\n{many_headers}\r\n"),
            431,
            None,
        ),
        (
            "a 140 KiB header",
            format!("GET /scim/v2/p/Users HTTP/1.1\r\nHost: {addr}\r\n{big_header}\r\n"),
            431,
            None,
        ),
        (
            "a 9 KiB target",
            format!(
                "GET {long_target} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\nConnection: close\r\n\r\n"
            ),
            414,
            None,
        ),
    ];
    for (case, request, status, scim_type) in cases {
        let err = raw(&addr, &request).scim_error(status);
        assert_eq!(err["scimType"].as_str(), scim_type, "{case}: {err}");
    }
    // Behind a good request on the same connection: the first answer is untouched.
    let good = format!("GET /scim/v2/p/Users HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n\r\n");
    let bad = format!("GET /scim/v2/p/Users?x=a b HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let text = raw_text(&addr, &format!("{good}{bad}"));
    let (first, second) = text.split_at(text.find("HTTP/1.1 400").expect(&text));
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("\"totalResults\":0"), "{first}");
    assert!(second.contains("application/scim+json"), "{second}");
    assert!(second.ends_with("}"), "{second}");
    // A head that never ends: 408 with a body once the head timeout (5 s) passes.
    let partial = format!("GET /scim/v2/p/Users HTTP/1.1\r\nHost: {addr}\r\n");
    raw(&addr, &partial).scim_error(408);
}

fn raw_text(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).to_string()
}

/// A client that pipelines large lists and reads nothing is disconnected after `send_timeout`,
/// so it cannot keep rendered pages in the server's memory; other clients are served meanwhile.
#[test]
fn a_client_that_never_reads_is_disconnected_after_send_timeout() {
    use std::io::{Read, Write};
    let db = crate::harness::TestDb::new();
    db.add_provider("p");
    let (_, token) = db.create_token("p", &[]);
    let server = crate::harness::Server::start_with(&db.path, &[], &[("SCIMD_SEND_TIMEOUT", "1s")]);
    let addr = server.addr();
    let scim = Scim::new(&server, "p", &token);
    let title = "t".repeat(2000);
    for i in 0..200 {
        scim.create(
            "/Users",
            &json!({"userName": format!("u{i}"), "title": title}),
        );
    }
    let list = format!(
        "GET /scim/v2/p/Users?count=1000 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let target: std::net::SocketAddr = addr.parse().unwrap();
    socket.connect(&target.into()).unwrap();
    let mut stalled: std::net::TcpStream = socket.into();
    // 40 pages of ~400 KB: far more than the socket buffers hold.
    stalled.write_all(list.repeat(40).as_bytes()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    // Meanwhile another client is served.
    assert_eq!(scim.get("/Users?count=1").expect(200)["totalResults"], 200);
    stalled
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match stalled.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break "reset",
            Err(e) => panic!("the server kept the connection open ({got} bytes read): {e}"),
        }
    };
    let page = scim.get("/Users?count=1000").text.len();
    assert!(
        got < page * 40,
        "{ended} after {got} bytes, all 40 pages of {page} bytes"
    );
}

/// Microsoft's validator sends filters with unencoded double quotes
/// (`?filter=userName+eq+"x"`); the URI parser refuses them, so they are percent-encoded in the
/// request line before it runs, also behind a request with a body on the same connection.
#[test]
fn unencoded_quotes_in_a_query_are_answered_like_the_encoded_form() {
    let (_db, server, scim) = scim_server("p");
    scim.user("alice@contoso.com");
    let addr = server.addr();
    let auth = format!("Authorization: Bearer {}", scim.token);
    let body = r#"{"userName":"bob\"<quoted>\"@contoso.com"}"#;
    let post = format!(
        "POST /scim/v2/p/Users HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let get = format!(
        "GET /scim/v2/p/Users?filter=userName+eq+\"alice@contoso.com\" HTTP/1.1\r\n\
         Host: {addr}\r\n{auth}\r\nConnection: close\r\n\r\n"
    );
    let text = raw_text(&addr, &format!("{post}{get}"));
    let (created, found) = text.split_at(text.find("HTTP/1.1 200").expect(&text));
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    // The body's quotes and brackets were left as sent.
    assert!(
        created.contains(r#""userName":"bob\"<quoted>\"@contoso.com""#),
        "{created}"
    );
    assert!(found.contains("\"totalResults\":1"), "{found}");
    assert!(
        found.contains("\"userName\":\"alice@contoso.com\""),
        "{found}"
    );
}

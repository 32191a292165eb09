//! The LDAP port under hostile clients, over real connections: filters of any width and depth
//! answer an LDAP error (never a crash), requests too large or never finished end their
//! connection with a notice of disconnection, idle connections are closed, connections are
//! capped overall and per address, and under a thousand hostile connections memory stays
//! bounded while SCIM answers every request.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use ldap3_proto::LdapResultCode;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapFilter, LdapOp, LdapSearchScope, LdapSubstringFilter,
};

use crate::ldap::{BASE, BIND, Connection, Directory};

fn eq(attr: &str, value: &str) -> LdapFilter {
    LdapFilter::Equality(attr.into(), value.into())
}

fn bound(d: &Directory) -> Connection {
    let mut c = Connection::open(&d.url);
    assert_eq!(c.bind(BIND, &d.password), LdapResultCode::Success);
    c
}

fn search(c: &mut Connection, filter: LdapFilter) -> (Vec<String>, LdapResultCode, String) {
    c.search_with(BASE, LdapSearchScope::Subtree, filter)
}

/// The notice of disconnection the server sends before it closes a connection (RFC 4511
/// section 4.4.1): its result code and message; then the connection is closed.
fn notice(c: &mut Connection) -> (LdapResultCode, String) {
    let m = c
        .receive_any()
        .expect("a notice of disconnection, not a bare close");
    assert_eq!(m.msgid, 0, "{m:?}");
    let LdapOp::ExtendedResponse(x) = m.op else {
        panic!("not a notice of disconnection: {m:?}");
    };
    assert_eq!(x.name.as_deref(), Some("1.3.6.1.4.1.1466.20036"));
    assert!(
        c.receive_any().is_none(),
        "the connection is closed after it"
    );
    (x.res.code, x.res.message)
}

/// `inner` under `2 * pairs` NOTs.
fn under_nots(mut inner: LdapFilter, pairs: usize) -> LdapFilter {
    for _ in 0..pairs {
        inner = LdapFilter::Not(Box::new(LdapFilter::Not(Box::new(inner))));
    }
    inner
}

/// A TCP connection to `url` from another loopback address (`127.0.0.N`).
fn connect_from(url: &str, n: u8) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let to: std::net::SocketAddr = url.trim_start_matches("ldap://").parse().unwrap();
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let from = std::net::SocketAddr::from(([127, 0, 0, n], 0));
    s.bind(&from.into())?;
    s.connect(&to.into())?;
    let tcp: TcpStream = s.into();
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(tcp)
}

/// Whether the server closed `tcp` without answering (read gives end of file or a reset).
fn closed_by_server(tcp: &mut TcpStream) -> bool {
    read_to_close(tcp) == Some(0)
}

/// Reads until the server closes `tcp`: the bytes it sent before, or `None` when it did not
/// close within the read timeout.
fn read_to_close(tcp: &mut TcpStream) -> Option<usize> {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let mut got = 0;
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
    }
}

/// The flat and deep shapes that once overflowed a reader thread's stack and ended the
/// process (`has overflowed its stack`), and the widths that answered a misleading
/// `unavailable` (52): each is now answered adminLimitExceeded (11) naming the setting, the
/// connection stays open, and the next search, SCIM and other connections work.
#[test]
fn wide_and_deep_filters_get_admin_limit_exceeded_and_the_server_stays_up() {
    let d = Directory::start_with("on", &[]);
    d.provision();
    let alice = format!("uid=alice@contoso.com,ou=people,{BASE}");
    let mut c = bound(&d);
    let many = |n: usize| -> Vec<LdapFilter> {
        (0..n)
            .map(|i| eq("uid", &format!("user{i}@contoso.com")))
            .collect()
    };
    let shapes: Vec<(&str, LdapFilter)> = vec![
        ("an OR of 3,000 terms", LdapFilter::Or(many(3000))),
        ("an AND of 3,000 terms", LdapFilter::And(many(3000))),
        (
            "a substring of 20,000 parts",
            LdapFilter::Substring(
                "cn".into(),
                LdapSubstringFilter {
                    initial: Some("a".into()),
                    any: vec!["b".into(); 20_000],
                    final_: Some("c".into()),
                },
            ),
        ),
        (
            "an AND of 30,000 NOTs",
            LdapFilter::And(
                (0..30_000)
                    .map(|i| LdapFilter::Not(Box::new(eq("cn", &i.to_string()))))
                    .collect(),
            ),
        ),
        (
            "an OR of 100,000 terms",
            LdapFilter::Or((0..100_000).map(|_| eq("cn", "a")).collect()),
        ),
    ];
    for (what, filter) in shapes {
        let (found, code, message) = search(&mut c, filter);
        assert!(found.is_empty(), "{what}");
        assert_eq!(
            code,
            LdapResultCode::AdminLimitExceeded,
            "{what}: {message}"
        );
        assert!(
            message.contains("ldap_max_filter_terms"),
            "{what}: {message}"
        );
        // The same connection goes on.
        assert_eq!(
            search(&mut c, eq("uid", "alice@contoso.com")).0,
            [alice.as_str()]
        );
    }
    // Deeper than 32 levels of AND, OR and NOT.
    let deep = under_nots(eq("uid", "alice@contoso.com"), 40);
    let (_, code, message) = search(&mut c, deep);
    assert_eq!(code, LdapResultCode::AdminLimitExceeded, "{message}");
    assert!(message.contains("ldap_max_filter_depth"), "{message}");
    // At the limit: 1,000 terms, one of them alice, is an ordinary search.
    let mut terms = many(999);
    terms.push(eq("uid", "alice@contoso.com"));
    let (found, code, message) = search(&mut c, LdapFilter::Or(terms));
    assert_eq!(
        (code, found),
        (LdapResultCode::Success, vec![alice.clone()]),
        "{message}"
    );
    // Nothing ended the process: another connection and SCIM answer.
    assert_eq!(
        search(&mut bound(&d), eq("uid", "alice@contoso.com")).0,
        [alice.as_str()]
    );
    d.scim.get("/Users").expect(200);
}

/// With the limits raised, the widths that answered `unavailable` (1,000 to 2,500 terms as a
/// chain one level deeper per term) are ordinary searches: the terms become a balanced tree.
#[test]
fn thousands_of_terms_are_searched_when_the_limit_allows_them() {
    let d = Directory::start_with(
        "on",
        &[
            ("SCIMD_LDAP_MAX_FILTER_TERMS", "30000"),
            ("SCIMD_LDAP_MAX_FILTER_DEPTH", "100"),
        ],
    );
    d.provision();
    let alice = format!("uid=alice@contoso.com,ou=people,{BASE}");
    let mut c = bound(&d);
    let mut terms: Vec<LdapFilter> = (0..5000)
        .map(|i| eq("uid", &format!("user{i}@contoso.com")))
        .collect();
    terms.push(eq("mail", "alice@contoso.com"));
    let (found, code, message) = search(&mut c, LdapFilter::Or(terms));
    assert_eq!(
        (code, found),
        (LdapResultCode::Success, vec![alice.clone()]),
        "{message}"
    );
    let nots = LdapFilter::And(
        std::iter::once(eq("uid", "alice@contoso.com"))
            .chain((0..20_000).map(|i| LdapFilter::Not(Box::new(eq("cn", &i.to_string())))))
            .collect(),
    );
    let (found, code, message) = search(&mut c, nots);
    assert_eq!(
        (code, found),
        (LdapResultCode::Success, vec![alice.clone()]),
        "{message}"
    );
    let deep = under_nots(eq("uid", "alice@contoso.com"), 45);
    let (found, code, message) = search(&mut c, deep);
    assert_eq!(
        (code, found),
        (LdapResultCode::Success, vec![alice]),
        "{message}"
    );
}

/// A request larger than the limit ends the connection with a notice of disconnection before
/// the server reads it: 64 KiB before a bind, 1 MiB once bound (each configurable).
#[test]
fn requests_larger_than_the_limits_end_the_connection_with_a_notice() {
    let d = Directory::start_with("on", &[("SCIMD_LDAP_MAX_REQUEST", "256KiB")]);
    // Anonymous: a bind whose DN is 100 KB.
    let mut c = Connection::open(&d.url);
    c.send(LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: format!("cn={},ou=services,{BASE}", "x".repeat(100_000)),
        cred: LdapBindCred::Simple("secret".into()),
    }));
    let (code, message) = notice(&mut c);
    assert_eq!(code, LdapResultCode::ProtocolError);
    assert!(message.contains("ldap_max_request_anonymous"), "{message}");
    // Bound: 100 KB is fine, 300 KB is not.
    let mut c = bound(&d);
    let filter = |n: usize| LdapFilter::Or(vec![eq("uid", &"y".repeat(n))]);
    assert_eq!(search(&mut c, filter(100_000)).1, LdapResultCode::Success);
    c.send(LdapOp::SearchRequest(
        ldap3_proto::proto::LdapSearchRequest {
            base: BASE.into(),
            scope: LdapSearchScope::Subtree,
            aliases: ldap3_proto::proto::LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter: filter(300_000),
            attrs: vec![],
        },
    ));
    let (code, message) = notice(&mut c);
    assert_eq!(code, LdapResultCode::ProtocolError);
    assert!(message.contains("ldap_max_request"), "{message}");
    assert!(message.contains("262144"), "{message}");
}

/// Whatever is not an LDAP request gets protocolError (2) in a notice of disconnection, not a
/// silent close.
#[test]
fn malformed_requests_get_protocol_error() {
    let d = Directory::start_with("on", &[]);
    let shapes: [(&str, &[u8]); 4] = [
        ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        (
            "an indefinite length",
            &[0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00],
        ),
        (
            "a message id and no operation",
            &[0x30, 0x03, 0x02, 0x01, 0x01],
        ),
        // A message id then a BindResponse: a response, not a request.
        (
            "a response",
            &[
                0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
            ],
        ),
    ];
    for (what, bytes) in shapes {
        let mut c = Connection::open(&d.url);
        c.tcp.write_all(bytes).unwrap();
        let (code, message) = notice(&mut c);
        assert_eq!(code, LdapResultCode::ProtocolError, "{what}: {message}");
    }
    // The server answers the next client as before.
    let mut c = Connection::open(&d.url);
    assert_eq!(c.bind(BIND, &d.password), LdapResultCode::Success);
}

/// A request trickled in a byte at a time is cut at `ldap_request_timeout`, however steadily
/// the bytes come; a connection without requests is closed after `ldap_idle_timeout`.
#[test]
fn slow_and_idle_connections_are_closed() {
    let d = Directory::start_with(
        "on",
        &[
            ("SCIMD_LDAP_REQUEST_TIMEOUT", "2s"),
            ("SCIMD_LDAP_IDLE_TIMEOUT", "3s"),
        ],
    );
    // The head of a 200-byte request, then one byte every 200 ms: it never arrives whole
    // within the time limit, and the server cuts the connection.
    let mut c = Connection::open(&d.url);
    c.tcp.write_all(&[0x30, 0x81, 200, 0x02, 0x01]).unwrap();
    let mut sent = 0;
    let cut = loop {
        std::thread::sleep(Duration::from_millis(200));
        if c.tcp.write_all(&[0x04]).is_err() {
            break true;
        }
        sent += 1;
        if sent == 190 {
            break false;
        }
        // The notice may already be waiting.
        c.tcp.set_nonblocking(true).unwrap();
        let mut peek = [0u8; 1];
        let ready = c.tcp.peek(&mut peek).is_ok();
        c.tcp.set_nonblocking(false).unwrap();
        if ready {
            break true;
        }
    };
    assert!(cut, "a request trickled for 38 s was never cut");
    let (code, message) = notice(&mut c);
    assert_eq!(code, LdapResultCode::ProtocolError);
    assert!(message.contains("ldap_request_timeout"), "{message}");

    // Bound, then idle: the server closes the connection by itself.
    let mut c = bound(&d);
    assert!(c.receive_any().is_none(), "an idle connection is closed");
}

/// Connections past `ldap_max_connections_per_address` from one address, or past
/// `ldap_max_connections` overall, are closed as they arrive; a place given back is taken by
/// the next connection, and the SCIM port answers throughout.
#[test]
fn connections_are_capped_overall_and_per_address() {
    let d = Directory::start_with(
        "on",
        &[
            ("SCIMD_LDAP_MAX_CONNECTIONS", "8"),
            ("SCIMD_LDAP_MAX_CONNECTIONS_PER_ADDRESS", "5"),
        ],
    );
    // Each admitted connection answers a bind; the sixth from 127.0.0.2 is closed unanswered.
    let admitted = |from: u8| {
        let mut c = Connection::over(connect_from(&d.url, from).unwrap());
        assert_eq!(c.bind(BIND, &d.password), LdapResultCode::Success);
        c
    };
    let mut held: Vec<Connection> = (0..5).map(|_| admitted(2)).collect();
    let mut sixth = connect_from(&d.url, 2).unwrap();
    assert!(
        closed_by_server(&mut sixth),
        "a sixth connection from one address"
    );
    held.extend((0..3).map(|_| admitted(3)));
    let mut ninth = connect_from(&d.url, 4).unwrap();
    assert!(closed_by_server(&mut ninth), "a ninth connection overall");
    d.scim.get("/Users").expect(200);
    // One closed by the client frees a place (the server notices the close first).
    let mut gone = held.remove(0);
    gone.send(LdapOp::UnbindRequest);
    assert!(gone.receive_any().is_none());
    let mut tries = 0;
    let replacement = loop {
        let tcp = connect_from(&d.url, 4).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut c = Connection::over(tcp);
        c.send(LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: BIND.into(),
            cred: LdapBindCred::Simple(d.password.clone()),
        }));
        match c.receive_any() {
            Some(_) => break c,
            None if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            None => panic!("the place of a closed connection was never given back"),
        }
    };
    drop(replacement);
    assert!(
        d.server
            .logs()
            .iter()
            .filter(|l| l.contains("LDAP connections refused"))
            .count()
            <= 1,
        "refusals are logged at most once a minute"
    );
}

/// Resident memory of a process, in bytes (`VmRSS`).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Bytes waiting, unread by the server, on the server's side of connections to `port`
/// (`/proc/net/tcp`'s rx_queue).
fn unread_on_port(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let rx = u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?;
            (local_port == port).then_some(rx)
        })
        .sum()
}

/// 1,100 connections from ten addresses: the caps admit 1,024; a thousand of those each send
/// all but the last bytes of a 60 KiB request (within the 64 KiB anonymous limit) and hold it;
/// another hundred declare 2 MiB requests. Memory stays within the bound the limits set
/// (connections times the anonymous request size and each connection's upkeep, over the
/// server's own; before the limits, 1,000 such connections took 2.2 GB), and SCIM answers
/// every request meanwhile.
#[test]
fn a_thousand_hostile_connections_leave_memory_bounded_and_scim_answering() {
    // The test holds over a thousand sockets itself.
    let _ = rlimit::increase_nofile_limit(4096);
    let d = Directory::start_with("on", &[("SCIMD_LDAP_REQUEST_TIMEOUT", "5m")]);
    let pid = d.server.child.id();
    let port: u16 = d.url.rsplit(':').next().unwrap().parse().unwrap();
    let before = rss(pid);
    let mut holding = Vec::new();
    let mut part = vec![0x30, 0x83, 0x00, 0xF0, 0x00];
    part.resize(60 * 1024 - 1, 0x04);
    for i in 0..1100u32 {
        let mut tcp = connect_from(&d.url, 10 + (i % 10) as u8).unwrap();
        if i >= 1000 {
            // Declares a 2 MiB request: refused before it is read.
            let _ = tcp.write_all(&[0x30, 0x83, 0x20, 0x00, 0x00, 0x02, 0x01, 0x01]);
        } else {
            // Past the cap the server has closed it: the write may fail.
            let _ = tcp.write_all(&part);
        }
        holding.push(tcp);
        if i % 100 == 0 {
            d.scim.get("/Users").expect(200);
        }
    }
    // The server has read what it accepted.
    let mut waited = 0;
    while unread_on_port(port) > 0 && waited < 300 {
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    for _ in 0..20 {
        d.scim.get("/Users").expect(200);
    }
    let grown = rss(pid).saturating_sub(before);
    println!("RSS {before} bytes before, grown by {grown} bytes under 1,100 connections");
    // Each admitted connection holds at most the anonymous limit (64 KiB) plus its own upkeep
    // (task, codec, socket, allocator rounding: about 30 KiB measured); 32 MiB for the rest.
    let limit = 1024 * (64 + 32) * 1024 + 32 * 1024 * 1024;
    assert!(
        grown < limit,
        "RSS grew by {grown} bytes under 1,100 connections; the limits bound it below {limit}"
    );
    // The ones past the cap and the 2 MiB ones were closed.
    for tcp in holding.iter_mut().skip(1000) {
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // A notice of disconnection may come first, then the close.
        // A notice of disconnection may come first.
        assert!(
            read_to_close(tcp).is_some(),
            "a connection declaring a 2 MiB request, or past the cap, is closed"
        );
    }
    drop(holding);
    // And the directory still serves a real client.
    let mut c = bound(&d);
    assert_eq!(
        search(&mut c, eq("uid", "nobody")).1,
        LdapResultCode::Success
    );
}

/// One bind over a fresh connection from `127.0.0.N`: its result code and message.
fn bind_from(d: &Directory, from: u8, dn: &str, password: &str) -> (LdapResultCode, String) {
    let mut c = Connection::over(connect_from(&d.url, from).unwrap());
    c.bind_result(dn, password)
}

/// Binds do not tell who exists: a name nobody has, a user without a password (every Entra
/// user), a deactivated user with its right password, or a user with a wrong one all get the
/// same answer and are throttled after the same number of guesses (each from its own address);
/// one address guessing across many names is throttled too. Service accounts, whose secrets
/// are random, are never throttled: a wrong secret, like a name nobody has, is refused at once
/// (its fingerprint rules it out), so the holder binds even from the guesser's address.
#[test]
fn binds_give_the_same_answer_and_throttling_whoever_exists() {
    // Budgets do not refill during the test: where they run out is then the same on a fast
    // machine and on a slow one (each bind costs argon2 work).
    let d = Directory::start_with("on", &[("TEST_BUDGETS_NO_REFILL", "1")]);
    d.scim_passwords("all");
    d.provision();
    d.scim.create(
        "/Users",
        &serde_json::json!({"userName": "dana@contoso.com", "password": "dana's password"}),
    );
    d.scim.create(
        "/Users",
        &serde_json::json!({"userName": "frank@contoso.com", "password": "frank's password",
                            "active": false}),
    );
    let people = |u: &str| format!("uid={u},ou=people,{BASE}");
    let cases: Vec<(&str, String, &str)> = vec![
        ("a user nobody has", people("nobody@contoso.com"), ""),
        (
            "an account nobody has",
            format!("cn=nobody,ou=services,{BASE}"),
            "",
        ),
        (
            "a provider nobody has",
            "uid=x,ou=people,dc=nowhere,dc=scimd".into(),
            "",
        ),
        ("a user without a password", people("alice@contoso.com"), ""),
        (
            "a deactivated user, right password",
            people("frank@contoso.com"),
            "frank's password",
        ),
        ("a user, wrong password", people("dana@contoso.com"), ""),
        ("an account, wrong password", BIND.into(), ""),
    ];
    for (i, (what, dn, right)) in cases.iter().enumerate() {
        let from = 20 + i as u8;
        let mut codes = Vec::new();
        for guess in 0..16 {
            let password = match right.is_empty() {
                true => format!("guess {guess}"),
                // The right password every time: remembered, so it spends nothing...
                false if guess == 0 => right.to_string(),
                // ...then new ones, as a guesser sends.
                false => format!("guess {guess}"),
            };
            let (code, message) = bind_from(&d, from, dn, &password);
            match code {
                LdapResultCode::InvalidCredentials => {
                    assert_eq!(message, "invalid credentials", "{what}")
                }
                LdapResultCode::Busy => assert!(message.contains("try again"), "{what}"),
                other => panic!("{what}: {other:?} {message}"),
            }
            codes.push(code);
        }
        if dn.contains("ou=services") {
            assert!(
                codes
                    .iter()
                    .all(|c| *c == LdapResultCode::InvalidCredentials),
                "{what}: {codes:?}"
            );
            continue;
        }
        assert!(
            codes[..10]
                .iter()
                .all(|c| *c == LdapResultCode::InvalidCredentials),
            "{what}: {codes:?}"
        );
        assert!(
            codes[12..].contains(&LdapResultCode::Busy),
            "{what}: {codes:?}"
        );
    }
    // The account's holder binds from the address that just sent 16 wrong secrets for it.
    assert_eq!(
        bind_from(&d, 26, BIND, &d.password).0,
        LdapResultCode::Success
    );
    // One address, a new name each time: its own budget runs out too.
    let codes: Vec<LdapResultCode> = (0..80)
        .map(|i| bind_from(&d, 40, &people(&format!("n{i}@contoso.com")), "x").0)
        .collect();
    assert!(
        codes[..40]
            .iter()
            .all(|c| *c == LdapResultCode::InvalidCredentials)
    );
    assert!(codes[50..].contains(&LdapResultCode::Busy), "{codes:?}");
    // The real holders, from their own addresses, still bind.
    assert_eq!(
        bind_from(&d, 41, &people("dana@contoso.com"), "dana's password").0,
        LdapResultCode::Success
    );
    assert_eq!(
        bind_from(&d, 41, BIND, &d.password).0,
        LdapResultCode::Success
    );
}

/// A flood of refused binds is counted, not written one by one: the log has one line per name
/// and interval (DNs shortened), the activity log one counted record per name and interval,
/// and every refusal is in the counts.
#[test]
fn a_flood_of_refused_binds_is_counted_not_logged_one_by_one() {
    let mut d = Directory::start_with("on", &[("SCIMD_ACTIVITY_INTERVAL", "1s")]);
    d.scim.create(
        "/Users",
        &serde_json::json!({"userName": "erin@contoso.com"}),
    );
    let started = std::time::Instant::now();
    let dns = [
        BIND.to_string(),
        format!("uid=erin@contoso.com,ou=people,{BASE}"),
        format!("uid=nobody@contoso.com,ou=people,{BASE}"),
    ];
    let mut sent = 0u64;
    for (i, dn) in dns.iter().enumerate() {
        let mut c = Connection::over(connect_from(&d.url, 50 + i as u8).unwrap());
        for guess in 0..600 {
            let (code, _) = c.bind_result(dn, &format!("guess {guess}"));
            assert!(matches!(
                code,
                LdapResultCode::InvalidCredentials | LdapResultCode::Busy
            ));
            sent += 1;
        }
    }
    // A bound connection may send a large bind (1 MiB): its DN is shortened in the log.
    let mut c = bound(&d);
    let huge = format!("cn={},ou=services,{BASE}", "z".repeat(500_000));
    assert_eq!(
        c.bind_result(&huge, "x").0,
        LdapResultCode::InvalidCredentials
    );
    sent += 1;
    let seconds = started.elapsed().as_secs() + 2;
    assert!(d.server.terminate());
    let logs = d.server.logs();
    assert!(
        logs.iter().all(|l| l.len() < 4096),
        "a log line of {} bytes",
        logs.iter().map(String::len).max().unwrap_or(0)
    );
    let refused_lines = logs
        .iter()
        .filter(|l| l.contains("LDAP bind refused ("))
        .count() as u64;
    let db = rusqlite::Connection::open(&d.db.path).unwrap();
    let (rows, counted): (i64, i64) = db
        .query_row(
            "SELECT count(*), sum(count) FROM activity WHERE method = 'LDAP BIND'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (rows, counted) = (rows as u64, counted as u64);
    assert_eq!(counted, sent, "every refusal is counted");
    // Three names (the huge DN is one of the unknown names), one record and at most one log
    // line each per interval of a second.
    assert!(rows <= 3 * seconds, "{rows} records in {seconds} s");
    assert!(
        refused_lines <= 3 * seconds,
        "{refused_lines} log lines in {seconds} s"
    );
}

/// The root DSE answers anyone, but tells the server's version only to a bound client.
#[test]
fn the_anonymous_root_dse_does_not_tell_the_version() {
    let d = Directory::start_with("on", &[]);
    let root_dse = |bind: &[&str]| {
        let out = std::process::Command::new("ldapsearch")
            .args(["-x", "-LLL", "-H", &d.url])
            .args(bind)
            .args([
                "-b",
                "",
                "-s",
                "base",
                "(objectClass=*)",
                "vendorName",
                "vendorVersion",
            ])
            .output()
            .expect("ldapsearch (Debian's ldap-utils, installed by scripts/test.sh)");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let anonymous = root_dse(&[]);
    assert!(anonymous.contains("vendorName: scimd"), "{anonymous}");
    assert!(!anonymous.contains("vendorVersion"), "{anonymous}");
    let bound = root_dse(&["-D", BIND, "-w", &d.password]);
    assert!(
        bound.contains(&format!("vendorVersion: {}", env!("CARGO_PKG_VERSION"))),
        "{bound}"
    );
}

/// A base DN may not take another provider's tree: its default `dc=NAME,dc=scimd`, whatever
/// the spelling, anything inside it, or `dc=scimd` around all of them.
#[test]
fn a_base_dn_over_another_providers_tree_is_refused() {
    let d = Directory::start_with("on", &[]);
    d.db.add_provider("fabrikam");
    for base in [
        "dc=fabrikam,dc=scimd",
        "DC=Fabrikam, DC = scimd",
        "ou=people,dc=fabrikam,dc=scimd",
        "dc=scimd",
    ] {
        let out = d.db.fails(&["ldap", "base", "--provider", "contoso", base]);
        assert!(
            out.contains("overlaps the tree of identity provider fabrikam"),
            "{base}: {out}"
        );
    }
    // Fabrikam's accounts still bind with the DN they were given; a base of one's own is fine.
    let (secret, _) = d.db.ldap_account("reader", "fabrikam");
    let mut c = Connection::open(&d.url);
    assert_eq!(
        c.bind("cn=reader,ou=services,dc=fabrikam,dc=scimd", &secret),
        LdapResultCode::Success
    );
    d.db.ok(&[
        "ldap",
        "base",
        "--provider",
        "contoso",
        "ou=entra,dc=example,dc=com",
    ]);
}

/// A guesser cannot tell a user's right password by its answer: once the guesses from an
/// address have spent that user's budget there, the right password (verified before, so
/// remembered) is throttled exactly as a wrong one is; from the user's own address it still
/// binds.
#[test]
fn a_remembered_user_password_is_throttled_like_a_wrong_guess() {
    let d = Directory::start_with("on", &[("TEST_BUDGETS_NO_REFILL", "1")]);
    d.scim_passwords("all");
    d.scim.create(
        "/Users",
        &serde_json::json!({"userName": "dana@contoso.com", "password": "dana's password"}),
    );
    let dana = format!("uid=dana@contoso.com,ou=people,{BASE}");
    let (own, guesser) = (60, 61);
    assert_eq!(
        bind_from(&d, own, &dana, "dana's password").0,
        LdapResultCode::Success
    );
    let codes: Vec<LdapResultCode> = (0..12)
        .map(|i| bind_from(&d, guesser, &dana, &format!("guess {i}")).0)
        .collect();
    assert!(
        codes[..10]
            .iter()
            .all(|c| *c == LdapResultCode::InvalidCredentials),
        "{codes:?}"
    );
    assert_eq!(codes[10..], [LdapResultCode::Busy, LdapResultCode::Busy]);
    let (right, message) = bind_from(&d, guesser, &dana, "dana's password");
    let (wrong, wrong_message) = bind_from(&d, guesser, &dana, "another guess");
    assert_eq!(right, LdapResultCode::Busy, "the right password: {message}");
    assert_eq!((right, message), (wrong, wrong_message), "{codes:?}");
    assert_eq!(
        bind_from(&d, own, &dana, "dana's password").0,
        LdapResultCode::Success
    );
}

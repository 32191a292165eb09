//! LDAP load generator for bench/ldap.sh: C connections on two threads (as wrk), each bound once, searching one user
//! at a time by an equality filter on a random user for D seconds; prints requests per second
//! and the p50/p99 latency in milliseconds.
//!
//!   ldap_load ADDR BIND_DN PASSWORD BASE ATTR USERS CONNECTIONS SECONDS
//!
//! ATTR is uid or mail; user i is `user{i}@contoso.com` (as benches/seed makes them; every
//! tenth is deactivated and skipped). ATTR `compare` sends a compare of the user's entry
//! (`mail` with its address, which is true) instead of a search. ATTR `uidNumber` searches by
//! the number `scimd ldap posix` gives user i with the default first id (100000 + its key,
//! i + 1 as the seeder creates them). ATTR `bind` binds as BIND_DN with PASSWORD again on the
//! same connection (a warm bind); ATTR `paged` reads every entry under `ou=people,BASE` with
//! the paged results control, 1,000 per page: one request is the whole read. Works against any
//! LDAP server holding the seeder's users (bench/slapd.sh runs it against slapd too).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapCompareRequest, LdapDerefAliases, LdapFilter, LdapMsg,
    LdapOp, LdapSearchRequest, LdapSearchScope,
};
use ldap3_proto::{LdapCodec, LdapResultCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// What every connection does.
#[derive(Clone)]
struct Plan {
    addr: String,
    dn: String,
    password: String,
    base: String,
    attr: String,
    users: u64,
    until: Instant,
}

/// One connection: bound once, then searching until `until`; returns each search's latency.
async fn client(plan: Plan, seed: u64) -> Vec<Duration> {
    let Plan {
        addr,
        dn,
        password,
        base,
        attr,
        users,
        until,
    } = plan;
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut codec = LdapCodec::new(None, None);
    let mut input = BytesMut::new();
    let mut next_id = 0;
    let mut send_with = async |tcp: &mut tokio::net::TcpStream,
                               codec: &mut LdapCodec,
                               op: LdapOp,
                               ctrl: Vec<LdapControl>| {
        next_id += 1;
        let mut buf = BytesMut::new();
        let msg = LdapMsg {
            msgid: next_id,
            op,
            ctrl,
        };
        codec.encode(msg, &mut buf).unwrap();
        tcp.write_all(&buf).await.unwrap();
    };
    let bind = LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn,
        cred: LdapBindCred::Simple(password),
    });
    async fn receive(
        tcp: &mut tokio::net::TcpStream,
        codec: &mut LdapCodec,
        input: &mut BytesMut,
    ) -> LdapMsg {
        loop {
            if let Some(m) = codec.decode(input).unwrap() {
                return m;
            }
            let n = tcp.read_buf(input).await.unwrap();
            assert!(n > 0, "the server closed the connection");
        }
    }
    send_with(&mut tcp, &mut codec, bind.clone(), vec![]).await;
    let bound = receive(&mut tcp, &mut codec, &mut input).await;
    assert!(
        matches!(&bound.op, LdapOp::BindResponse(r) if r.res.code == LdapResultCode::Success),
        "bind failed: {bound:?}"
    );
    // A small xorshift per connection: no rand crate needed.
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (seed + 1);
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let started = Instant::now();
        if attr == "bind" {
            send_with(&mut tcp, &mut codec, bind.clone(), vec![]).await;
            match receive(&mut tcp, &mut codec, &mut input).await.op {
                LdapOp::BindResponse(r) => assert_eq!(r.res.code, LdapResultCode::Success),
                other => panic!("unexpected {other:?}"),
            }
            latencies.push(started.elapsed());
            continue;
        }
        if attr == "paged" {
            // Every entry under ou=people, page after page, until the server's cookie is empty.
            let mut cookie = Vec::new();
            let mut entries = 0;
            loop {
                let search = LdapOp::SearchRequest(LdapSearchRequest {
                    base: format!("ou=people,{base}"),
                    scope: LdapSearchScope::Subtree,
                    aliases: LdapDerefAliases::Never,
                    sizelimit: 0,
                    timelimit: 0,
                    typesonly: false,
                    filter: LdapFilter::Equality("objectClass".into(), "inetOrgPerson".into()),
                    attrs: vec![],
                });
                let page = LdapControl::SimplePagedResults { size: 1000, cookie };
                send_with(&mut tcp, &mut codec, search, vec![page]).await;
                cookie = loop {
                    let msg = receive(&mut tcp, &mut codec, &mut input).await;
                    match msg.op {
                        LdapOp::SearchResultEntry(_) => entries += 1,
                        LdapOp::SearchResultDone(r) => {
                            assert_eq!(r.code, LdapResultCode::Success, "{r:?}");
                            break msg.ctrl.into_iter().find_map(|c| match c {
                                LdapControl::SimplePagedResults { cookie, .. } => Some(cookie),
                                _ => None,
                            });
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                .expect("a paged search answered without the paged results control");
                if cookie.is_empty() {
                    break;
                }
            }
            assert!(entries > 0, "a paged read found no entry");
            latencies.push(started.elapsed());
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Every tenth seeded user is deactivated, so not in the directory.
        let mut n = x % users;
        if n.is_multiple_of(10) {
            n = if n + 1 < users { n + 1 } else { n - 1 };
        }
        let user = format!("user{n}@contoso.com");
        let value = match attr.as_str() {
            "uidNumber" => (100_001 + n).to_string(),
            _ => user.clone(),
        };
        if attr == "compare" {
            let dn = format!("uid={user},ou=people,{base}");
            let compare = LdapCompareRequest {
                dn,
                atype: "mail".into(),
                val: user.into_bytes(),
            };
            send_with(
                &mut tcp,
                &mut codec,
                LdapOp::CompareRequest(compare),
                vec![],
            )
            .await;
            match receive(&mut tcp, &mut codec, &mut input).await.op {
                LdapOp::CompareResult(r) => {
                    assert_eq!(r.code, LdapResultCode::CompareTrue, "{r:?}");
                }
                other => panic!("unexpected {other:?}"),
            }
            latencies.push(started.elapsed());
            continue;
        }
        send_with(
            &mut tcp,
            &mut codec,
            LdapOp::SearchRequest(LdapSearchRequest {
                base: base.clone(),
                scope: LdapSearchScope::Subtree,
                aliases: LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: false,
                filter: LdapFilter::Equality(attr.clone(), value),
                attrs: vec![],
            }),
            vec![],
        )
        .await;
        let mut entries = 0;
        loop {
            match receive(&mut tcp, &mut codec, &mut input).await.op {
                LdapOp::SearchResultEntry(_) => entries += 1,
                LdapOp::SearchResultDone(r) => {
                    assert_eq!(r.code, LdapResultCode::Success);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(entries, 1, "one user per search");
        latencies.push(started.elapsed());
    }
    latencies
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let [_, addr, dn, password, base, attr, users, conns, secs] = &a[..] else {
        eprintln!("usage: ldap_load ADDR BIND_DN PASSWORD BASE ATTR USERS CONNECTIONS SECONDS");
        std::process::exit(2);
    };
    let users: u64 = users.parse().unwrap();
    let conns: usize = conns.parse().unwrap();
    let seconds: u64 = secs.parse().unwrap();
    let until = Instant::now() + Duration::from_secs(seconds);
    let plan = Plan {
        addr: addr.clone(),
        dn: dn.clone(),
        password: password.clone(),
        base: base.clone(),
        attr: attr.clone(),
        users,
        until,
    };
    // Two threads (as wrk -t2), each a single-threaded runtime driving half the connections.
    let threads: Vec<_> = (0..2usize)
        .map(|t| {
            let plan = plan.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let local = tokio::task::LocalSet::new();
                    local
                        .run_until(async move {
                            let tasks: Vec<_> = (t..conns)
                                .step_by(2)
                                .map(|c| tokio::task::spawn_local(client(plan.clone(), c as u64)))
                                .collect();
                            let mut all = Vec::new();
                            for task in tasks {
                                all.extend(task.await.unwrap());
                            }
                            all
                        })
                        .await
                })
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = seconds as f64;
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{:.0} {:.2} {:.2}",
        all.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
}

//! Membership changes against group size: adding and removing one member of a group with 1,
//! 1,000 and 100,000 members, through the same PATCH engine and store code as the server.
//!
//!     cargo bench --bench membership

use std::time::{Duration, Instant};

use scimd::api::scim::ProviderKind;
use scimd::api::scim::ResourceKind;
use scimd::api::scim::patch;
use scimd::api::scim::resource::prepare;
use scimd::api::store::providers;
use scimd::api::store::resources;
use scimd::api::store::{OpenMode, Store};
use serde_json::json;

const BASE: &str = "http://127.0.0.1:8080/scim/v2/bench";

fn invalid(e: impl std::fmt::Display) -> scimd::api::store::Error {
    scimd::api::store::Error::Invalid(e.to_string())
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        &dir.path().join("bench.db"),
        OpenMode::CreateIfMissing,
        Duration::from_secs(5),
        2,
    )?;
    let provider =
        store.write_blocking(|c| providers::insert(c, "bench", "", ProviderKind::Generic, 0))?;
    let now = "2026-11-29T00:00:00.000Z";
    let total_users = 100_000 + 1_000 + 1 + 200;
    let mut ids = Vec::with_capacity(total_users);
    for chunk in (0..total_users).collect::<Vec<_>>().chunks(10_000) {
        let (chunk, pid) = (chunk.to_vec(), provider.id);
        let made = store.write_blocking(move |c| {
            let mut made = Vec::new();
            for &i in &chunk {
                let p = prepare(
                    ResourceKind::User.builtin(),
                    &json!({"userName": format!("user{i}")}),
                )
                .map_err(invalid)?;
                made.push(
                    resources::create(c, pid, ResourceKind::User.builtin(), &p, None, now)?.id,
                );
            }
            Ok::<_, scimd::api::store::Error>(made)
        })?;
        ids.extend(made);
    }
    println!("scimd membership benchmark: add then remove one member, 200 rounds per group size");
    println!(
        "{:<16} {:>12} {:>12} {:>12} {:>12}",
        "group size", "add median", "add p99", "remove median", "remove p99"
    );
    let mut next = 0;
    for size in [1usize, 1_000, 100_000] {
        let members: Vec<serde_json::Value> = ids[next..next + size]
            .iter()
            .map(|id| json!({"value": id}))
            .collect();
        next += size;
        let pid = provider.id;
        let group = store.write_blocking(move |c| {
            let p = prepare(
                ResourceKind::Group.builtin(),
                &json!({"displayName": format!("g{size}"), "members": members}),
            )
            .map_err(invalid)?;
            resources::create(c, pid, ResourceKind::Group.builtin(), &p, None, now)
        })?;
        let spare = &ids[ids.len() - 200..];
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        for id in spare {
            for (op, times) in [("add", &mut adds), ("remove", &mut removes)] {
                let body = json!({"Operations": [
                    if op == "add" { json!({"op": "add", "path": "members", "value": [{"value": id}]}) }
                    else { json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}) }
                ]});
                let t = Instant::now();
                let ops = patch::parse_request(&body).map_err(invalid)?;
                let group_id = group.id.clone();
                let patched = store.write_blocking(move |c| {
                    resources::patch(
                        c,
                        pid,
                        ResourceKind::Group.builtin(),
                        &group_id,
                        &ops,
                        None,
                        None,
                        now,
                        BASE,
                        None,
                    )
                })?;
                assert!(patched.changed, "every round changes one membership");
                times.push(t.elapsed());
            }
        }
        adds.sort();
        removes.sort();
        let pct = |v: &[Duration], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1000.0);
        println!(
            "{:<16} {:>12} {:>12} {:>12} {:>12}",
            size,
            ms(pct(&adds, 0.5)),
            ms(pct(&adds, 0.99)),
            ms(pct(&removes, 0.5)),
            ms(pct(&removes, 0.99))
        );
    }
    Ok(())
}

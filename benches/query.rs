//! Query latency at scale: seeds N users (default 1,000,000) with Entra-like bodies into a
//! fresh SQLite file, then reports median and p99 latency of the lookups identity providers
//! make, run through the same filter compiler and store code as the server.
//!
//!     cargo bench --bench query                 # 1,000,000 users
//!     cargo bench --bench query -- --users 100000

use std::time::{Duration, Instant};

use scimd::api::app;
use scimd::api::scim::ProviderKind;
use scimd::api::scim::ResourceKind;
use scimd::api::scim::filter;
use scimd::api::scim::projection::Projection;
use scimd::api::scim::resource::prepare;
use scimd::api::store::providers;
use scimd::api::store::query;
use scimd::api::store::resources;
use scimd::api::store::search::{self, Paging};
use scimd::api::store::{OpenMode, Store};
#[path = "common/users.rs"]
mod users;

const BASE: &str = "http://127.0.0.1:8080/scim/v2/bench";

/// A tiny deterministic generator, so runs are comparable.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let users = args
        .iter()
        .position(|a| a == "--users")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(1_000_000), |v| v.parse())?;
    let runs = 200;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let store = Store::open(&path, OpenMode::CreateIfMissing, Duration::from_secs(5), 2)?;
    let provider =
        store.write_blocking(|c| providers::insert(c, "bench", "", ProviderKind::Generic, 0))?;

    let t = Instant::now();
    let now = "2026-11-29T00:00:00.000Z";
    for chunk in (0..users).collect::<Vec<_>>().chunks(10_000) {
        let (chunk, pid) = (chunk.to_vec(), provider.id);
        store.write_blocking(move |c| {
            for &i in &chunk {
                let p = prepare(ResourceKind::User.builtin(), &users::entra_like_user(i))
                    .map_err(|e| scimd::api::store::Error::Invalid(e.to_string()))?;
                resources::create(c, pid, ResourceKind::User.builtin(), &p, None, now)?;
            }
            Ok::<_, scimd::api::store::Error>(())
        })?;
    }
    let seeded = t.elapsed();
    drop(store);
    let size = std::fs::metadata(&path)?.len();
    let t = Instant::now();
    let store = Store::open(&path, OpenMode::MustExist, Duration::from_secs(5), 2)?;
    let reopen = t.elapsed();
    if let Some(keep) = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
    {
        std::fs::copy(&path, keep)?;
    }
    println!(
        "scimd query benchmark: {users} users seeded in {:.1} s, database {:.0} MiB, reopen {}",
        seeded.as_secs_f64(),
        size as f64 / 1048576.0,
        ms(reopen)
    );
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "query", "median", "p99", "results"
    );

    let mut rng = Lcg(42);
    type Gen = Box<dyn Fn(usize) -> (String, Option<i64>)>;
    let scenarios: Vec<(&str, Gen)> = vec![
        (
            "userName eq",
            Box::new(|i| (format!("userName eq \"USER{i}@contoso.com\""), None)),
        ),
        (
            "externalId eq",
            Box::new(|i| {
                (
                    format!("externalId eq \"{i:08x}-8d2a-4f8e-bf98-7363c4aed4ef\""),
                    None,
                )
            }),
        ),
        (
            "emails[type eq \"work\"].value eq",
            Box::new(|i| {
                (
                    format!("emails[type eq \"work\"].value eq \"user{i}@contoso.com\""),
                    None,
                )
            }),
        ),
        (
            "displayName co (full scan)",
            Box::new(|i| (format!("displayName co \"User {i} \""), None)),
        ),
        (
            "page: startIndex=500000 count=100",
            Box::new(|_| (String::new(), Some(499_999))),
        ),
    ];
    for (name, make) in &scenarios {
        let iterations = if name.contains("full scan") { 20 } else { runs };
        let mut times = Vec::with_capacity(iterations);
        let mut results = 0usize;
        for _ in 0..iterations {
            let (text, offset) = make(rng.below(users));
            let t = Instant::now();
            let page = store.call(|c| {
                let cond = if text.is_empty() {
                    None
                } else {
                    let ast = filter::parse(&text)
                        .map_err(|e| scimd::api::store::Error::Invalid(e.to_string()))?;
                    Some(
                        query::condition(ResourceKind::User.builtin(), BASE, &ast)
                            .map_err(|e| scimd::api::store::Error::Invalid(e.to_string()))?,
                    )
                };
                let offset = offset.map_or(0, |o| o.min(users as i64 - 100).max(0));
                let page = search::search(
                    c,
                    provider.id,
                    ResourceKind::User,
                    cond.as_ref(),
                    Paging::Index {
                        offset,
                        order: None,
                    },
                    100,
                )?;
                // Rendered as the server renders a page.
                let rows: Vec<_> = page.items.iter().collect();
                let mut body = Vec::new();
                let user = ResourceKind::User.builtin();
                app::push_rows(
                    c,
                    &mut body,
                    (user, BASE),
                    &rows,
                    &Projection::default(),
                    b",",
                )?;
                Ok(page.items.len())
            })?;
            times.push(t.elapsed());
            results += page;
        }
        times.sort();
        println!(
            "{:<44} {:>12} {:>12} {:>8}",
            name,
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            results / iterations
        );
    }
    Ok(())
}

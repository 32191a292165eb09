//! Seeds a scimd database for the load benchmark (bench/run.sh) through scimd's own store code:
//! a provider `bench`, a token, N Entra-like users, groups of 100 of them and one large group of
//! users of its own, and (with --activity N) N activity records spread over the last days.
//! Writes the token and the ids the load scripts pick from into --out.
//!
//!     cargo run --release --example seed -- --db DB --out DIR --users 10000 --big-group 100000

use std::fmt::Write as _;
use std::time::Duration;

use chrono::Utc;
use scimd::api::auth::token;
use scimd::api::scim::ProviderKind;
use scimd::api::scim::ResourceKind;
use scimd::api::scim::resource::prepare;
use scimd::api::store::providers;
use scimd::api::store::tokens::{self, NewTokenRow};
use scimd::api::store::{Error, OpenMode, Store, resources};
use serde_json::json;

#[path = "../common/users.rs"]
mod users;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::Invalid(e.to_string())
}

/// The user ids for wrk, one per line. Every id is a 36-character UUID, so the script keeps
/// the whole file as one string and slices ids out of it: a Lua table of a million strings
/// made wrk's garbage collector pause long enough to show up as latency in its figures.
fn id_lines(ids: &[String]) -> String {
    let mut out = String::with_capacity(ids.len() * 37);
    for id in ids {
        let _ = writeln!(out, "{id}");
    }
    out
}

const USAGE: &str = "usage: seed --db DB --out DIR [--users N] [--groups N] [--group-size N] \
                     [--big-group N] [--activity N]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // Both paths are required: a run without them must not drop files where it happens to be.
    let (Some(db), Some(out)) = (
        args.iter()
            .position(|a| a == "--db")
            .and_then(|i| args.get(i + 1)),
        args.iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1)),
    ) else {
        anyhow::bail!("{USAGE}");
    };
    let (db, out) = (db.clone(), std::path::PathBuf::from(out));
    let n: usize = arg(&args, "--users", "10000").parse()?;
    let groups: usize = arg(&args, "--groups", "50").parse()?;
    let group_size: usize = arg(&args, "--group-size", "100").parse()?;
    let big: usize = arg(&args, "--big-group", "0").parse()?;
    let activity: usize = arg(&args, "--activity", "0").parse()?;
    // The small groups are made of the N users the load scripts pick from.
    anyhow::ensure!(n > 0, "--users must be at least 1");
    let store = Store::open(
        db.as_ref(),
        OpenMode::CreateIfMissing,
        Duration::from_secs(5),
        2,
    )?;
    let now = Utc::now();
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let created = now.timestamp();
    let provider = store.write_blocking(move |c| {
        providers::insert(c, "bench", "", ProviderKind::Generic, created)
    })?;
    let t = token::generate();
    let hash = token::hash(&t.secret).map_err(invalid)?;
    let fingerprint = token::fingerprint(&t.id, &t.secret);
    let (token_id, pid) = (t.id.clone(), provider.id);
    store.write_blocking(move |c| {
        tokens::create(
            c,
            &NewTokenRow {
                id: &token_id,
                provider_id: pid,
                secret_hash: &hash,
                fingerprint: Some(&fingerprint),
                description: "load benchmark",
                read_only: false,
                created,
                expires: created + 86_400,
            },
        )
    })?;
    std::fs::write(out.join("token"), t.full.expose())?;
    std::fs::write(out.join("token_id"), &t.id)?;

    // The large group has users of its own, beyond the N the load scripts pick from, so a
    // picked user is a member of neither it nor the first small group (its members are the
    // first 100 picked lines; bench/load.lua skips them when it adds members).
    let total = n + big;
    let mut ids = Vec::with_capacity(total);
    let all: Vec<usize> = (0..total).collect();
    for chunk in all.chunks(10_000) {
        let (chunk, pid, stamp) = (chunk.to_vec(), provider.id, stamp.clone());
        let made = store.write_blocking(move |c| {
            let mut made = Vec::new();
            for &i in &chunk {
                let p = prepare(ResourceKind::User.builtin(), &users::entra_like_user(i))
                    .map_err(invalid)?;
                made.push(
                    resources::create(c, pid, ResourceKind::User.builtin(), &p, None, &stamp)?.id,
                );
            }
            Ok::<_, Error>(made)
        })?;
        ids.extend(made);
    }
    let mut group_ids = Vec::new();
    let mut specs: Vec<(String, usize)> = (0..groups)
        .map(|g| (format!("Group {g}"), group_size))
        .collect();
    if big > 0 {
        specs.push(("Big group".to_string(), big));
    }
    for (g, (name, size)) in specs.iter().enumerate() {
        let members: Vec<serde_json::Value> = if g == groups {
            ids[n..].iter().map(|id| json!({ "value": id })).collect()
        } else {
            (0..*size)
                .map(|k| json!({"value": ids[(g * size + k) % n]}))
                .collect()
        };
        let (name, pid, stamp) = (name.clone(), provider.id, stamp.clone());
        let id = store.write_blocking(move |c| {
            let p = prepare(
                ResourceKind::Group.builtin(),
                &json!({"displayName": name, "members": members}),
            )
            .map_err(invalid)?;
            Ok::<_, Error>(
                resources::create(c, pid, ResourceKind::Group.builtin(), &p, None, &stamp)?.id,
            )
        })?;
        group_ids.push(id);
    }
    std::fs::write(out.join("user_ids"), id_lines(&ids[..n]))?;
    if let Some(first) = group_ids.first().filter(|_| groups > 0) {
        std::fs::write(out.join("small_group"), first)?;
    }
    if big > 0 {
        std::fs::write(
            out.join("big_group"),
            group_ids.last().cloned().unwrap_or_default(),
        )?;
    }
    seed_activity(&store, provider.id, &ids, activity, now.timestamp_millis())?;
    println!(
        "seeded {total} users, {} groups, {activity} activity records",
        group_ids.len()
    );
    Ok(())
}

/// `n` activity records of the kinds a busy Entra provider leaves, one every 250 ms up to
/// `now_ms`: mostly PATCHes, some creations, membership changes and refusals. Written as rows,
/// the way the request path writes them, so the console reads what it reads in production.
fn seed_activity(
    store: &Store,
    provider_id: i64,
    ids: &[String],
    n: usize,
    now_ms: i64,
) -> anyhow::Result<()> {
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(50_000) {
        let chunk = chunk.to_vec();
        let ids: Vec<String> = chunk.iter().map(|i| ids[i % ids.len()].clone()).collect();
        store.write_blocking(move |c| {
            let mut insert = c.prepare_cached(
                "INSERT INTO activity (at, provider_id, token_id, request_id, method, path, kind,
                                       resource_id, name, action, changed, version, status,
                                       scim_type, detail)
                 VALUES (?1, ?2, 'bench', ?3, ?4, ?5, 'User', ?6, ?7, ?8, ?9, 2, ?10, ?11, ?12)",
            )?;
            for (&i, id) in chunk.iter().zip(&ids) {
                let at = now_ms - (n - i) as i64 * 250;
                let (method, action, changed, status, scim_type, detail) = match i % 20 {
                    0 => ("POST", "created", "[]", 201, None, None),
                    1 => ("PATCH", "member added", "[\"members\"]", 200, None, None),
                    2 => (
                        "POST",
                        "refused",
                        "[]",
                        409,
                        Some("uniqueness"),
                        Some("userName is already taken"),
                    ),
                    3 => ("PATCH", "deactivated", "[\"active\"]", 200, None, None),
                    _ => (
                        "PATCH",
                        "patched",
                        "[\"title\",\"department\"]",
                        200,
                        None,
                        None,
                    ),
                };
                insert.execute(rusqlite::params![
                    at,
                    provider_id,
                    format!("req-{i}"),
                    method,
                    format!("/scim/bench/v2/Users/{id}"),
                    id,
                    format!("user{}@example.com", i % 100_000),
                    action,
                    changed,
                    status,
                    scim_type,
                    detail,
                ])?;
            }
            Ok::<_, Error>(())
        })?;
    }
    Ok(())
}

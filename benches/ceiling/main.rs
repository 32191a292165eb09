//! The ceiling for scimd's load benchmark: the least work an actix-web + rusqlite server can do
//! for the same requests, built with the same profile. It serves a stored JSON document by key,
//! a page of 100 documents, inserts one row per request, and changes two attributes of a stored
//! document (SQLite's json_set, as a PATCH does), writes going through a single writer thread
//! that commits concurrent ones together (durably: WAL, synchronous=FULL).
//!
//!     cargo run --release --example ceiling -- --db /tmp/ceiling.db --listen 127.0.0.1:9000 --seed 10000

use std::sync::mpsc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

#[path = "../common/users.rs"]
mod users;

type Pool = r2d2::Pool<SqliteConnectionManager>;
/// A write for the writer thread; it answers whether the row was there (None: not committed).
enum Job {
    Insert(String, String, oneshot::Sender<Option<bool>>),
    /// Key, title, family name.
    Update(String, String, String, oneshot::Sender<Option<bool>>),
}

fn pragmas(c: &mut Connection) -> rusqlite::Result<()> {
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    c.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// The same Entra-like user the scimd seeder stores, with an id: pages and point reads move
/// as many bytes out of SQLite as scimd's do.
fn doc(i: usize) -> String {
    let mut user = users::entra_like_user(i);
    user["id"] = format!("{i:08}-0000-4000-8000-000000000000").into();
    user.to_string()
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

async fn get_doc(pool: web::Data<Pool>, key: web::Path<String>) -> HttpResponse {
    let pool = pool.clone();
    let found = web::block(move || -> Option<String> {
        let c = pool.get().ok()?;
        c.prepare_cached("SELECT doc FROM docs WHERE key = ?1")
            .ok()?
            .query_row([key.as_str()], |r| r.get(0))
            .optional()
            .ok()?
    })
    .await
    .ok()
    .flatten();
    match found {
        Some(d) => HttpResponse::Ok().content_type("application/json").body(d),
        None => HttpResponse::NotFound().finish(),
    }
}

#[derive(serde::Deserialize)]
struct PageQuery {
    start: i64,
}

async fn page(pool: web::Data<Pool>, q: web::Query<PageQuery>) -> HttpResponse {
    let pool = pool.clone();
    let start = q.start;
    let body = web::block(move || -> Option<String> {
        let c = pool.get().ok()?;
        let mut st = c
            .prepare_cached("SELECT doc FROM docs WHERE seq >= ?1 ORDER BY seq LIMIT 100")
            .ok()?;
        let docs: Vec<String> = st
            .query_map([start], |r| r.get(0))
            .ok()?
            .filter_map(Result::ok)
            .collect();
        Some(format!("{{\"Resources\":[{}]}}", docs.join(",")))
    })
    .await
    .ok()
    .flatten();
    match body {
        Some(b) => HttpResponse::Ok().content_type("application/json").body(b),
        None => HttpResponse::InternalServerError().finish(),
    }
}

async fn insert(tx: web::Data<mpsc::Sender<Job>>, body: web::Bytes) -> HttpResponse {
    let text = String::from_utf8_lossy(&body).to_string();
    let key = uuid::Uuid::new_v4().to_string();
    let (done, wait) = oneshot::channel();
    if tx.send(Job::Insert(key, text, done)).is_err() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    match wait.await {
        Ok(Some(_)) => HttpResponse::Created()
            .content_type("application/json")
            .body(body),
        _ => HttpResponse::InternalServerError().finish(),
    }
}

#[derive(serde::Deserialize)]
struct Change {
    title: String,
    #[serde(rename = "familyName")]
    family_name: String,
}

async fn update(
    tx: web::Data<mpsc::Sender<Job>>,
    key: web::Path<String>,
    change: web::Json<Change>,
) -> HttpResponse {
    let Change { title, family_name } = change.into_inner();
    let (done, wait) = oneshot::channel();
    if tx
        .send(Job::Update(key.into_inner(), title, family_name, done))
        .is_err()
    {
        return HttpResponse::ServiceUnavailable().finish();
    }
    match wait.await {
        Ok(Some(true)) => HttpResponse::NoContent().finish(),
        Ok(Some(false)) => HttpResponse::NotFound().finish(),
        _ => HttpResponse::InternalServerError().finish(),
    }
}

/// The single writer: takes every write waiting, commits them in one transaction, answers all.
fn writer(mut c: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let found = (|| -> rusqlite::Result<Vec<bool>> {
            let tx = c.transaction()?;
            let mut found = Vec::with_capacity(batch.len());
            {
                let mut ins = tx.prepare_cached("INSERT INTO docs (key, doc) VALUES (?1, ?2)")?;
                let mut upd = tx.prepare_cached(
                    "UPDATE docs SET doc = json_set(doc, '$.title', ?2, '$.name.familyName', ?3) \
                     WHERE key = ?1",
                )?;
                for job in &batch {
                    found.push(match job {
                        Job::Insert(key, doc, _) => ins.execute(params![key, doc])? == 1,
                        Job::Update(key, title, family, _) => {
                            upd.execute(params![key, title, family])? == 1
                        }
                    });
                }
            }
            tx.commit()?;
            Ok(found)
        })();
        for (i, job) in batch.into_iter().enumerate() {
            let done = match job {
                Job::Insert(.., done) | Job::Update(.., done) => done,
            };
            let _ = done.send(found.as_ref().ok().map(|f| f[i]));
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = arg(&args, "--db").unwrap_or_else(|| "ceiling.db".into());
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:9000".into());
    let seed: usize = arg(&args, "--seed").map_or(Ok(10_000), |s| s.parse())?;

    let mut c = Connection::open(&path)?;
    pragmas(&mut c)?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS docs (seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, doc TEXT NOT NULL)",
    )?;
    let have: i64 = c.query_row("SELECT count(*) FROM docs", [], |r| r.get(0))?;
    if have == 0 {
        let tx = c.transaction()?;
        for i in 0..seed {
            tx.execute(
                "INSERT INTO docs (key, doc) VALUES (?1, ?2)",
                params![format!("{i}"), doc(i)],
            )?;
        }
        tx.commit()?;
    }
    let pool = r2d2::Pool::builder()
        .max_size(8)
        .build(SqliteConnectionManager::file(&path).with_init(pragmas))?;
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::spawn(move || writer(c, rx));
    actix_web::rt::System::new().block_on(async move {
        let pool = web::Data::new(pool);
        let tx = web::Data::new(tx);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(pool.clone())
                .app_data(tx.clone())
                .route("/docs/{key}", web::get().to(get_doc))
                .route("/docs", web::get().to(page))
                .route("/docs", web::post().to(insert))
                .route("/docs/{key}", web::patch().to(update))
        })
        .bind(&listen)?;
        for addr in server.addrs() {
            println!("ceiling listening on http://{addr}");
        }
        server.run().await
    })?;
    Ok(())
}

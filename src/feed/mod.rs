//! The change feed's delivery: a worker per feed that is not paused reads the provider's
//! events after the feed's position, posts them to its receiver as signed Standard Webhooks
//! messages (up to `BATCH` at a time, so a receiver that is behind catches up in few
//! requests), and moves the position once the receiver has answered 2xx. At least once and in
//! order: a message is sent again, the same, until it is taken. A failure waits before the
//! next try, exponentially longer with jitter, or as long as a 429's or 503's `Retry-After`
//! says. Delivery runs beside provisioning: it reads on the pool, and writes one row per
//! delivered message as a background write.

pub(crate) mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::app::AppState;
use crate::store::feeds::{self, Event, Feed};
use crate::store::{self, schemas};

/// Events one message carries at most.
const BATCH: i64 = 100;
/// How often a worker looks for new events, and the supervisor for new, paused or removed
/// feeds (a pause takes effect within this).
const POLL: Duration = Duration::from_millis(250);
/// A receiver's whole answer must come within this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait after a failure, and the longest.
const FIRST_WAIT: Duration = Duration::from_millis(500);
const LONGEST_WAIT: Duration = Duration::from_secs(300);

/// Runs the feeds until `stop`: a worker for each feed, started when it appears and ended
/// when it is removed.
pub(crate) async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut workers: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let listed = match state.store.run(|c| feeds::list(c)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "reading the feeds failed; will retry");
                continue;
            }
        };
        workers.retain(|_, w| !w.is_finished());
        for f in listed {
            workers
                .entry(f.id)
                .or_insert_with(|| actix_web::rt::spawn(worker(state.clone(), f.id, stop.clone())));
        }
    }
    for (_, w) in workers {
        w.abort();
    }
}

/// Why a message was not taken, and how long to wait before the next try (None: the
/// feed's backoff decides).
struct Refused {
    error: String,
    retry_after: Option<Duration>,
}

/// One feed's deliveries, until it is removed or `stop`.
async fn worker(state: Arc<AppState>, id: i64, stop: watch::Receiver<bool>) {
    let mut failures: u32 = 0;
    let mut agent: Option<(Option<String>, ureq::Agent)> = None;
    while !*stop.borrow() {
        let feed = match state.store.run(move |c| feeds::by_id(c, id)).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading a feed failed; will retry");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if feed.paused {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let (pid, from) = (feed.provider_id, feed.position);
        let read = state.store.run(move |c| -> store::Result<_> {
            Ok((
                feeds::events_after(c, pid, from, BATCH)?,
                feeds::last_seq(c, pid)?,
            ))
        });
        let events = match read.await {
            Ok((e, newest)) => {
                record_lag(&feed, &e, newest);
                e
            }
            Err(e) => {
                tracing::warn!(error = %e, feed = %feed.name, "reading a feed's events failed");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let Some(last) = events.last().map(|e| e.seq) else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let wanted: Vec<&Event> = events.iter().filter(|e| feed.ops.contains(&e.op)).collect();
        let outcome = if wanted.is_empty() {
            Ok(())
        } else {
            // One agent per feed, made again when its CA file changes.
            let client = match &agent {
                Some((ca, a)) if *ca == feed.ca_file => a.clone(),
                _ => match client(feed.ca_file.as_deref()) {
                    Ok(a) => {
                        agent = Some((feed.ca_file.clone(), a.clone()));
                        a
                    }
                    Err(e) => {
                        record_failure(&state, &feed, &e).await;
                        sleep_unless_stopped(wait(failures), &stop).await;
                        failures = failures.saturating_add(1);
                        continue;
                    }
                },
            };
            let body = match message_body(&state, &feed, &wanted).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, feed = %feed.name, "building a message failed");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            };
            let msg = webhook::message_id(feed.id, wanted[0].seq, last);
            let f = feed.clone();
            tokio::task::spawn_blocking(move || post(&client, &f, &msg, &body))
                .await
                .unwrap_or_else(|e| {
                    Err(Refused {
                        error: format!("the delivery panicked: {e}"),
                        retry_after: None,
                    })
                })
        };
        match outcome {
            Ok(()) => {
                failures = 0;
                let now = chrono::Utc::now().timestamp_millis();
                let done = state
                    .store
                    .write_in_background(move |c| feeds::delivered(c, id, from, last, now))
                    .await;
                if let Err(e) = done {
                    tracing::warn!(error = %e, feed = %feed.name, "recording a delivery failed");
                    tokio::time::sleep(POLL).await;
                }
                metrics::counter!("scimd_feed_events_delivered_total", "feed" => feed.name.clone())
                    .increment(wanted.len() as u64);
            }
            Err(r) => {
                record_failure(&state, &feed, &r.error).await;
                let pause = r.retry_after.unwrap_or_else(|| wait(failures));
                failures = failures.saturating_add(1);
                tracing::info!(feed = %feed.name, error = %r.error, wait_ms = pause.as_millis() as u64,
                    "a feed's receiver did not take a message; it is sent again");
                sleep_unless_stopped(pause, &stop).await;
            }
        }
    }
}

/// The feed's lag as metrics: events committed and not yet delivered, and the age of the
/// oldest of them.
fn record_lag(feed: &Feed, pending: &[Event], newest: i64) {
    let behind = newest.saturating_sub(feed.position).max(0);
    let age_ms = pending
        .first()
        .map_or(0, |e| chrono::Utc::now().timestamp_millis() - e.at)
        .max(0);
    metrics::gauge!("scimd_feed_lag_events", "feed" => feed.name.clone()).set(behind as f64);
    metrics::gauge!("scimd_feed_lag_seconds", "feed" => feed.name.clone())
        .set(age_ms as f64 / 1000.0);
}

/// How long to wait after `failures` failures in a row: doubling from `FIRST_WAIT` up to
/// `LONGEST_WAIT`, each between half and the whole of it (jitter, so receivers coming back
/// are not met by every feed at once).
fn wait(failures: u32) -> Duration {
    let full = FIRST_WAIT
        .saturating_mul(1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX))
        .min(LONGEST_WAIT);
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % 1000;
    full / 2 + full / 2 * u32::try_from(jitter).unwrap_or(0) / 1000
}

async fn sleep_unless_stopped(d: Duration, stop: &watch::Receiver<bool>) {
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

async fn record_failure(state: &AppState, feed: &Feed, error: &str) {
    let (id, error, now) = (
        feed.id,
        error.to_string(),
        chrono::Utc::now().timestamp_millis(),
    );
    if let Err(e) = state
        .store
        .write_in_background(move |c| feeds::failed(c, id, &error, now))
        .await
    {
        tracing::warn!(error = %e, "recording a failed delivery failed");
    }
}

fn client(ca_file: Option<&str>) -> Result<ureq::Agent, String> {
    let pem = match ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("reading the CA file {path}: {e}"))?,
        ),
        None => None,
    };
    crate::outbound::agent(pem.as_deref(), TIMEOUT)
}

/// The JSON of one event as a message carries it (with the resource as it stands now when
/// the feed is `full` and it still exists).
fn event_json(e: &Event, resource: Option<Value>) -> Value {
    let at = chrono::DateTime::from_timestamp_millis(e.at)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut v = serde_json::Map::new();
    v.insert("seq".into(), json!(e.seq));
    v.insert("time".into(), json!(at));
    v.insert("resourceType".into(), json!(e.kind));
    v.insert("id".into(), json!(e.resource_id));
    v.insert(
        crate::scim::schema::EXTERNAL_ID.name.into(),
        json!(e.external_id),
    );
    v.insert("operation".into(), json!(e.op));
    v.insert("changed".into(), json!(e.changed));
    v.insert("version".into(), json!(crate::render::etag(e.version)));
    if let Some(r) = resource {
        v.insert("resource".into(), r);
    }
    Value::Object(v)
}

/// The body of the message carrying `events`.
async fn message_body(
    state: &Arc<AppState>,
    feed: &Feed,
    events: &[&Event],
) -> store::Result<Vec<u8>> {
    let resources = if feed.full {
        let (st, pid, provider) = (state.clone(), feed.provider_id, feed.provider.clone());
        let wanted: Vec<(String, String)> = events
            .iter()
            .map(|e| (e.kind.clone(), e.resource_id.clone()))
            .collect();
        state
            .store
            .run(move |c| current_resources(&st, c, pid, &provider, &wanted))
            .await?
    } else {
        vec![None; events.len()]
    };
    let items = events
        .iter()
        .zip(resources)
        .map(|(e, r)| event_json(e, r))
        .collect();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(webhook::body(&feed.provider, &now, items))
}

/// Each resource as SCIM shows it now (None for one deleted since).
fn current_resources(
    state: &AppState,
    c: &mut rusqlite::Connection,
    pid: i64,
    provider: &str,
    wanted: &[(String, String)],
) -> store::Result<Vec<Option<Value>>> {
    let model = state.model_at(c, pid, schemas::model_version(c, pid)?)?;
    let base = crate::app::scim_base(&state.public_base, provider);
    let mut out = Vec::new();
    for (kind, id) in wanted {
        let Ok(kind) = crate::store::rows::parse_kind(kind) else {
            out.push(None);
            continue;
        };
        let rt = model.get(kind);
        let rows = crate::store::resources::read(c, pid, kind, id)?;
        let Some(row) = rows.iter().next() else {
            out.push(None);
            continue;
        };
        let projection = crate::scim::projection::Projection::parse(rt, None, None);
        let mut bytes = Vec::new();
        crate::app::push_rows(c, &mut bytes, (rt, &base), &[row], &projection, b"")?;
        out.push(serde_json::from_slice(&bytes).ok());
    }
    Ok(out)
}

/// Posts one message; Ok once the receiver answered 2xx.
fn post(agent: &ureq::Agent, feed: &Feed, msg: &str, body: &[u8]) -> Result<(), Refused> {
    let refused = |error: String| Refused {
        error,
        retry_after: None,
    };
    let uri: ureq::http::Uri = feed
        .url
        .parse()
        .map_err(|_| refused(format!("{} is not a URL", feed.url)))?;
    if !crate::outbound::allowed(uri.scheme_str(), uri.host().unwrap_or_default()) {
        return Err(refused(format!(
            "{} is plain HTTP to a host that is not loopback: receivers are reached over HTTPS",
            feed.url
        )));
    }
    let now = chrono::Utc::now().timestamp();
    let mut secrets = vec![feed.secret.as_str()];
    if let (Some(old), Some(until)) = (&feed.old_secret, feed.old_until)
        && until > now
    {
        secrets.push(old);
    }
    let signature = webhook::signature_header(&secrets, msg, now, body).map_err(refused)?;
    let started = Instant::now();
    let answer = agent
        .post(&feed.url)
        .header("content-type", "application/json")
        .header("webhook-id", msg)
        .header("webhook-timestamp", &now.to_string())
        .header("webhook-signature", &signature)
        .send(body)
        .map_err(|e| refused(format!("no answer from {}: {e}", feed.url)))?;
    metrics::histogram!("scimd_feed_delivery_seconds", "feed" => feed.name.clone())
        .record(started.elapsed().as_secs_f64());
    let status = answer.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let retry_after = answer
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|_| status == 429 || status == 503)
        .map(|s| Duration::from_secs(s).min(LONGEST_WAIT));
    Err(Refused {
        error: format!("{} answered {status}", feed.url),
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_longest_with_jitter() {
        for failures in 0..30 {
            let full = FIRST_WAIT
                .saturating_mul(1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX))
                .min(LONGEST_WAIT);
            let w = wait(failures);
            assert!(w >= full / 2 && w <= full, "{failures}: {w:?} of {full:?}");
        }
        assert!(wait(30) <= LONGEST_WAIT);
    }
}

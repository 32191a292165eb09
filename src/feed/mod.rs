//! The change feed's delivery: a worker per feed that is not paused reads the provider's
//! events after the feed's position, posts them to its receiver as signed Standard Webhooks
//! messages (up to `BATCH` at a time, so a receiver that is behind catches up in few
//! requests) or as Security Event Tokens (one per request, RFC 8935), and moves the position
//! once the receiver has answered 2xx. At least once and in order: a message is sent again,
//! the same, until it is taken. A failure waits before the next try, exponentially longer
//! with jitter, or as long as a 429's or 503's `Retry-After` says; failing for
//! `feed_failing_after` marks the feed failing (an activity record, `scimd_feed_failing`).
//! A feed its receiver pulls (`poll`) only has its lag measured here. Delivery runs beside
//! provisioning: it reads on the pool, and writes one row per delivered message as a
//! background write.

pub(crate) mod poll;
pub(crate) mod set;
pub(crate) mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use crate::app::AppState;
use crate::scim::ResourceKind;
use crate::store::activity::{self, Action};
use crate::store::feeds::{self, Event, Feed};
use crate::store::{self, schemas};

/// Events one message carries at most.
const BATCH: i64 = 1000;
/// How often a worker looks for new events, and the supervisor for new, paused or removed
/// feeds (a pause takes effect within this).
const POLL: Duration = Duration::from_millis(250);
/// After a message that was not full, how long a worker lets events gather before it reads
/// again: under a steady stream of changes, messages of many events four times a second
/// rather than one per change. Each message costs a read transaction (which, while changes
/// grow the database file, maps it again and drops the connection's cached pages), a request
/// and a write of the feed's position, whatever its size: at 250 ms a feed under load sends
/// four messages a second instead of ten at 100 ms, for at most 150 ms more lag.
const LINGER: Duration = Duration::from_millis(250);
/// A receiver's whole answer must come within this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait after a failure, and the longest.
const FIRST_WAIT: Duration = Duration::from_millis(500);
const LONGEST_WAIT: Duration = Duration::from_secs(300);

/// Runs the feeds until `stop`: a worker for each feed, started when it appears and ended
/// when it is removed.
pub(crate) async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut workers: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
    let recent = Arc::new(Recent::default());
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
        recent.forget(&listed);
        for f in listed {
            workers.entry(f.id).or_insert_with(|| {
                let worker = worker(state.clone(), recent.clone(), f.id, stop.clone());
                actix_web::rt::spawn(worker)
            });
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

/// The events read last for each provider, shared by its feeds: feeds of one provider that
/// keep up deliver the same events, and one read serves them all (with two feeds, half the
/// reads of a provider's events). A provider's feeds read one at a time, so that two waking
/// together do not both read the same events: the second waits for the first's read and takes
/// its part. The last `KEPT_READS` reads are kept, so that a feed a message behind another
/// still finds its events.
#[derive(Default)]
struct Recent(std::sync::Mutex<HashMap<i64, Kept>>);

/// A provider's last reads, oldest first.
type Kept = Arc<std::sync::Mutex<Vec<Arc<Read>>>>;

/// Reads kept for each provider.
const KEPT_READS: usize = 4;

/// The events of one read: every event of the provider after `after` up to the last of
/// `events`.
struct Read {
    after: i64,
    events: Vec<Event>,
    /// The events as webhook messages carry them, written once for all the provider's feeds.
    wire: std::sync::OnceLock<Wire>,
}

impl Read {
    fn new(after: i64, events: Vec<Event>) -> Read {
        Read {
            after,
            events,
            wire: std::sync::OnceLock::new(),
        }
    }

    fn wire(&self) -> &Wire {
        self.wire.get_or_init(|| Wire::of(&self.events))
    }
}

/// Events as JSON objects one after the other, a comma between each two, and where each ends:
/// a message of a run of them copies one slice.
struct Wire {
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Wire {
    fn of(events: &[Event]) -> Wire {
        let mut text = Vec::with_capacity(events.iter().map(webhook::event_size).sum());
        let mut ends = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            webhook::event(&mut text, e);
            ends.push(text.len());
        }
        Wire { text, ends }
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] + 1 }
    }

    /// Event `i`'s object.
    fn event(&self, i: usize) -> &[u8] {
        &self.text[self.start(i)..self.ends[i]]
    }

    /// The objects of a run of events, with the commas between them.
    fn run(&self, r: std::ops::Range<usize>) -> &[u8] {
        match r.end.checked_sub(1) {
            Some(last) if r.start <= last => &self.text[self.start(r.start)..self.ends[last]],
            _ => &[],
        }
    }
}

/// The events a worker delivers next: part of a read; and the provider's last number now
/// (for the feed's lag: a feed that retries the same events finds them in a read kept from
/// before, while the changes after them go on).
struct Pending {
    read: Arc<Read>,
    range: std::ops::Range<usize>,
    newest: i64,
}

impl Pending {
    fn events(&self) -> &[Event] {
        &self.read.events[self.range.clone()]
    }
}

impl Recent {
    /// Lets go of the reads no feed of `feeds` can take anything from: a provider's with no
    /// feed left, and those that end at or before the position of every feed of theirs (the
    /// kept reads would otherwise hold their events' memory after the feeds have moved on).
    fn forget(&self, feeds: &[Feed]) {
        let Ok(mut providers) = self.0.lock() else {
            return;
        };
        providers.retain(|pid, kept| {
            let Some(lowest) = feeds
                .iter()
                .filter(|f| f.provider_id == *pid)
                .map(|f| f.position)
                .min()
            else {
                return false;
            };
            // One being read now is left for the next round.
            if let Ok(mut reads) = kept.try_lock() {
                reads.retain(|r| r.events.last().is_some_and(|e| e.seq > lowest));
            }
            true
        });
    }

    /// Up to `limit` of the provider's events after `from`: from one of the provider's last
    /// reads when it holds them, else read now (and kept for the provider's other feeds when
    /// `share`).
    fn after(
        &self,
        c: &rusqlite::Connection,
        pid: i64,
        from: i64,
        limit: i64,
        share: bool,
    ) -> store::Result<Pending> {
        let slot = self
            .0
            .lock()
            .ok()
            .map(|mut m| m.entry(pid).or_default().clone());
        let mut held = slot.as_ref().and_then(|s| s.lock().ok());
        if let Some(reads) = held.as_mut() {
            let found = reads
                .iter()
                .rev()
                .find(|r| r.after <= from && r.events.last().is_some_and(|e| e.seq > from));
            if let Some(read) = found.cloned() {
                let start = read.events.partition_point(|e| e.seq <= from);
                let end = read
                    .events
                    .len()
                    .min(start + usize::try_from(limit).unwrap_or(0));
                // A provider whose feeds were all removed numbers its events afresh when it
                // has one again: then another event is stored under this number, and no read
                // kept holds the provider's events.
                if feeds::is_stored(c, pid, &read.events[start])? {
                    return Ok(Pending {
                        read,
                        range: start..end,
                        newest: feeds::last_seq(c, pid)?,
                    });
                }
                reads.clear();
            }
        }
        let read = Arc::new(Read::new(from, feeds::events_after(c, pid, from, limit)?));
        let newest = feeds::last_seq(c, pid)?;
        if share && let Some(reads) = held.as_mut() {
            if reads.len() == KEPT_READS {
                reads.remove(0);
            }
            reads.push(read.clone());
        }
        let range = 0..read.events.len();
        Ok(Pending {
            read,
            range,
            newest,
        })
    }
}

/// One feed's deliveries, until it is removed or `stop`.
async fn worker(state: Arc<AppState>, recent: Arc<Recent>, id: i64, stop: watch::Receiver<bool>) {
    let mut failures: u32 = 0;
    let mut agent: Option<(Option<String>, ureq::Agent)> = None;
    while !*stop.borrow() {
        // The feed and its next events, in one job on the pool.
        let shared = recent.clone();
        let read = state.store.run(move |c| -> store::Result<_> {
            let Some(feed) = feeds::by_id(c, id)? else {
                return Ok(None);
            };
            if feed.paused {
                return Ok(Some((feed, None)));
            }
            // A feed its receiver pulls is only measured here: its oldest waiting event is
            // enough.
            let (limit, push) = match feed.url {
                Some(_) => (BATCH, true),
                None => (1, false),
            };
            let pending = shared.after(c, feed.provider_id, feed.position, limit, push)?;
            Ok(Some((feed, Some(pending))))
        });
        let (feed, pending) = match read.await {
            Ok(Some((feed, Some(pending)))) => (feed, pending),
            Ok(Some((_, None))) => {
                tokio::time::sleep(POLL).await;
                continue;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, feed_id = id, "reading a feed's events failed");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let from = feed.position;
        record_lag(&feed, pending.events(), pending.newest);
        let events = pending.events();
        let Some(last) = events.last().map(|e| e.seq) else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let Some(url) = feed.url.clone() else {
            // The receiver pulls: nothing to send.
            tokio::time::sleep(POLL).await;
            continue;
        };
        let wanted: Vec<&Event> = events.iter().filter(|e| feed.wants(e)).collect();
        let wanted_seqs: Vec<i64> = wanted.iter().map(|e| e.seq).collect();
        let read_all = events.len() as i64 >= BATCH;
        // How far the receiver took the events, and why it stopped short.
        let (upto, refused) = if wanted.is_empty() {
            (last, None)
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
            let resources = match current_resources_of(&state, &feed, &wanted).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, feed = %feed.name, "building a message failed");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            };
            let target = Target {
                url,
                allow_http: state.config.feed_allow_http,
            };
            let (f, st) = (feed.clone(), state.clone());
            // The events go to the delivery thread as they were read (no copy).
            tokio::task::spawn_blocking(move || {
                let picked = picked(&f, pending.events(), &resources);
                match f.format.as_str() {
                    "set" => push_sets(&st, &client, &target, &f, pending.events(), &picked),
                    _ => push_webhook(&client, &target, &f, &pending, &picked, last),
                }
            })
            .await
            .unwrap_or_else(|e| {
                (
                    from,
                    Some(Refused {
                        error: format!("the delivery panicked: {e}"),
                        retry_after: None,
                    }),
                )
            })
        };
        if upto > from {
            let now = chrono::Utc::now().timestamp_millis();
            let recovered = feed
                .failing_noted
                .then(|| (feed.provider_id, feed.name.clone()));
            let done = state
                .store
                .write_in_background(move |c| -> store::Result<()> {
                    feeds::delivered(c, id, from, upto, now)?;
                    if let Some((pid, name)) = &recovered {
                        feeds::set_failing_noted(c, id, false)?;
                        activity::record_feed(c, *pid, name, Action::FeedRecovered, "")?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = done {
                tracing::warn!(error = %e, feed = %feed.name, "recording a delivery failed");
                tokio::time::sleep(POLL).await;
            }
            let sent = wanted_seqs.iter().filter(|&&seq| seq <= upto).count();
            metrics::counter!("scimd_feed_events_delivered_total", "feed" => feed.name.clone())
                .increment(sent as u64);
            metrics::gauge!("scimd_feed_failing", "feed" => feed.name.clone()).set(0.0);
        }
        match refused {
            None => {
                failures = 0;
                if !read_all {
                    sleep_unless_stopped(LINGER, &stop).await;
                }
            }
            Some(r) => {
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

/// The events of `events` the feed sends, by their place in `events`, each with its resource
/// from `resources` (one per such event, in order).
fn picked<'a>(
    feed: &Feed,
    events: &[Event],
    resources: &'a [Option<Value>],
) -> Vec<(usize, Option<&'a Value>)> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| feed.wants(e))
        .map(|(i, _)| i)
        .zip(resources.iter().map(Option::as_ref))
        .collect()
}

/// Where a feed posts, and whether plain HTTP may go beyond loopback.
struct Target {
    url: String,
    allow_http: bool,
}

/// Posts the `picked` events of `pending` as one Standard Webhooks message; all of them (up
/// to `last`) are taken, or none. The events' JSON is the read's, written once for every feed
/// of the provider; a feed that sends every event of its part and no resources copies it whole.
fn push_webhook(
    agent: &ureq::Agent,
    target: &Target,
    feed: &Feed,
    pending: &Pending,
    picked: &[(usize, Option<&Value>)],
    last: i64,
) -> (i64, Option<Refused>) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = webhook_body(&feed.provider, &now, pending, picked);
    let first = picked
        .first()
        .map_or(last, |&(i, _)| pending.events()[i].seq);
    let msg = webhook::message_id(feed.id, first, last);
    match post(agent, target, feed, Body::Webhook { msg: &msg }, &body) {
        Ok(()) => (last, None),
        Err(r) => (feed.position, Some(r)),
    }
}

/// The body of a webhook message of the `picked` events of `pending`.
fn webhook_body(
    provider: &str,
    now: &str,
    pending: &Pending,
    picked: &[(usize, Option<&Value>)],
) -> Vec<u8> {
    let wire = pending.read.wire();
    let offset = pending.range.start;
    let whole = picked.len() == pending.range.len() && picked.iter().all(|(_, r)| r.is_none());
    let size = match whole {
        true => wire.run(pending.range.clone()).len(),
        false => picked
            .iter()
            .map(|&(i, _)| wire.event(offset + i).len() + 1)
            .sum(),
    };
    webhook::body(provider, now, size, |out| {
        if whole {
            out.extend_from_slice(wire.run(pending.range.clone()));
            return;
        }
        for (n, &(i, resource)) in picked.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            match resource {
                Some(r) => webhook::with_resource(out, wire.event(offset + i), r),
                None => out.extend_from_slice(wire.event(offset + i)),
            }
        }
    })
}

/// Posts each wanted event as one Security Event Token (RFC 8935), in order; returns how far
/// the receiver took them (the events the feed does not send count as taken).
fn push_sets(
    state: &AppState,
    agent: &ureq::Agent,
    target: &Target,
    feed: &Feed,
    all: &[Event],
    picked: &[(usize, Option<&Value>)],
) -> (i64, Option<Refused>) {
    let refused = |error: String| Refused {
        error,
        retry_after: None,
    };
    let key = match set::SigningKey::load(&feed.secret) {
        Ok(k) => k,
        Err(e) => return (feed.position, Some(refused(e))),
    };
    let iss = crate::app::scim_base(&state.public_base, &feed.provider);
    let mut upto = feed.position;
    let mut next = picked.iter().peekable();
    for (i, e) in all.iter().enumerate() {
        let Some((_, data)) = next.next_if(|(p, _)| *p == i) else {
            upto = e.seq;
            continue;
        };
        let token = match sign_event(&key, feed, &iss, e, data.cloned()) {
            Ok(t) => t,
            Err(err) => return (upto, Some(refused(err))),
        };
        if let Err(r) = post(agent, target, feed, Body::Set, token.as_bytes()) {
            return (upto, Some(r));
        }
        upto = e.seq;
    }
    (upto, None)
}

/// One event as a signed Security Event Token of `feed`.
pub(crate) fn sign_event(
    key: &set::SigningKey,
    feed: &Feed,
    iss: &str,
    e: &Event,
    data: Option<Value>,
) -> Result<String, String> {
    let events = set::events(set::Change {
        op: e.op,
        method: e.method.as_deref(),
        changed: &e.changed_names(),
        version: crate::render::etag(e.version),
        data,
    });
    let claims = set::claims(
        &set::Envelope {
            iss,
            aud: feed.audience.as_deref().unwrap_or(&feed.name),
            jti: &set::jti(feed.id, e.seq),
            txn: &format!("{}:{}", feed.provider, e.seq),
            iat: e.at / 1000,
            uri: &format!("/{}/{}", e.kind.endpoint(), e.resource_id),
            external_id: e.external_id.as_deref(),
        },
        events,
    );
    key.sign(&claims)
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

/// Records a failed attempt; once the feed has failed for `feed_failing_after` in a row, the
/// provider's activity says so (once) and `scimd_feed_failing` is 1.
async fn record_failure(state: &AppState, feed: &Feed, error: &str) {
    let now = chrono::Utc::now().timestamp_millis();
    let after = i64::try_from(state.config.feed_failing_after.as_millis()).unwrap_or(i64::MAX);
    let since = feed.failing_since.unwrap_or(now);
    let turns_failing = !feed.failing_noted && now.saturating_sub(since) >= after;
    if feed.failing_noted || turns_failing {
        metrics::gauge!("scimd_feed_failing", "feed" => feed.name.clone()).set(1.0);
    }
    let (id, pid, name, why) = (
        feed.id,
        feed.provider_id,
        feed.name.clone(),
        error.to_string(),
    );
    if let Err(e) = state
        .store
        .write_in_background(move |c| -> store::Result<()> {
            feeds::failed(c, id, &why, now)?;
            if turns_failing {
                feeds::set_failing_noted(c, id, true)?;
                activity::record_feed(c, pid, &name, Action::FeedFailing, &why)?;
            }
            Ok(())
        })
        .await
    {
        tracing::warn!(error = %e, "recording a failed delivery failed");
    }
    if turns_failing {
        tracing::warn!(feed = %feed.name, error, "a change feed is failing: its receiver has not \
            taken its events for feed_failing_after; it keeps its position and keeps trying");
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

/// The resources of `events` as they stand now, for a feed that sends them (None each
/// otherwise, and for one deleted since).
pub(crate) async fn current_resources_of(
    state: &Arc<AppState>,
    feed: &Feed,
    events: &[&Event],
) -> store::Result<Vec<Option<Value>>> {
    if !feed.full {
        return Ok(vec![None; events.len()]);
    }
    let (st, pid, provider) = (state.clone(), feed.provider_id, feed.provider.clone());
    let wanted: Vec<(ResourceKind, String)> = events
        .iter()
        .map(|e| (e.kind, e.resource_id.clone()))
        .collect();
    state
        .store
        .run(move |c| current_resources(&st, c, pid, &provider, &wanted))
        .await
}

/// Each resource as SCIM shows it now (None for one deleted since).
fn current_resources(
    state: &AppState,
    c: &mut rusqlite::Connection,
    pid: i64,
    provider: &str,
    wanted: &[(ResourceKind, String)],
) -> store::Result<Vec<Option<Value>>> {
    let model = state.model_at(c, pid, schemas::model_version(c, pid)?)?;
    let base = crate::app::scim_base(&state.public_base, provider);
    let mut out = Vec::new();
    for &(kind, ref id) in wanted {
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

/// What a request carries: a Standard Webhooks message (signed in headers) or a SET.
enum Body<'a> {
    Webhook { msg: &'a str },
    Set,
}

/// Posts one message; Ok once the receiver answered 2xx.
fn post(
    agent: &ureq::Agent,
    target: &Target,
    feed: &Feed,
    kind: Body<'_>,
    body: &[u8],
) -> Result<(), Refused> {
    let refused = |error: String| Refused {
        error,
        retry_after: None,
    };
    let url = &target.url;
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|_| refused(format!("{url} is not a URL")))?;
    if !crate::outbound::allowed_url(&uri, target.allow_http) {
        return Err(refused(format!(
            "{url} is plain HTTP to a host that is not loopback: receivers are reached over \
             HTTPS (or set feed_allow_http = \"on\")"
        )));
    }
    let request = agent.post(url);
    let request = match kind {
        Body::Webhook { msg } => {
            let now = chrono::Utc::now().timestamp();
            let mut secrets = vec![feed.secret.as_str()];
            if let (Some(old), Some(until)) = (&feed.old_secret, feed.old_until)
                && until > now
            {
                secrets.push(old);
            }
            let signature = webhook::signature_header(&secrets, msg, now, body).map_err(refused)?;
            request
                .header("content-type", "application/json")
                .header("webhook-id", msg)
                .header("webhook-timestamp", &now.to_string())
                .header("webhook-signature", &signature)
        }
        Body::Set => request
            .header("content-type", format!("application/{}", set::TYP))
            .header("accept", "application/json"),
    };
    let started = Instant::now();
    let answer = request
        .send(body)
        .map_err(|e| refused(format!("no answer from {url}: {e}")))?;
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
    // RFC 8935 §2.3: a receiver that refuses a SET says why in {"err", "description"}.
    let why = match kind {
        Body::Set => answer
            .into_body()
            .read_to_string()
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .map(|v| {
                format!(
                    ": {} {}",
                    v["err"].as_str().unwrap_or_default(),
                    v["description"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_default(),
        Body::Webhook { .. } => String::new(),
    };
    Err(Refused {
        error: format!("{url} answered {status}{}", why.trim_end()),
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

    #[test]
    fn a_providers_feeds_share_its_last_read_until_its_numbers_start_afresh() {
        let c = feeds::testing::with_provider();
        let append = |id: &str, at: i64| activity::testing::create(&c, id, at);
        let add = |name| feeds::add(&c, &feeds::testing::webhook(name)).unwrap();
        add("f");
        for (i, id) in ["u1", "u2", "u3"].iter().enumerate() {
            append(id, 10 + i as i64);
        }
        let ids = |p: &Pending| -> Vec<String> {
            p.events().iter().map(|e| e.resource_id.clone()).collect()
        };
        let recent = Recent::default();
        let first = recent.after(&c, 1, 0, BATCH, true).unwrap();
        assert_eq!(ids(&first), ["u1", "u2", "u3"]);
        assert_eq!(first.newest, 3);
        // A feed a little behind or ahead of it takes its part of the same read.
        for (from, want) in [(1, vec!["u2", "u3"]), (2, vec!["u3"])] {
            let next = recent.after(&c, 1, from, BATCH, true).unwrap();
            assert!(Arc::ptr_eq(&next.read, &first.read));
            assert_eq!(ids(&next), want);
        }
        assert_eq!(ids(&recent.after(&c, 1, 1, 1, true).unwrap()), ["u2"]);
        // Past the read's last event: read again, and the earlier read is kept beside it for
        // a feed still behind.
        append("u4", 20);
        let past = recent.after(&c, 1, 3, BATCH, true).unwrap();
        assert!(!Arc::ptr_eq(&past.read, &first.read));
        assert_eq!(ids(&past), ["u4"]);
        let behind = recent.after(&c, 1, 0, BATCH, true).unwrap();
        assert!(Arc::ptr_eq(&behind.read, &first.read));
        // Its lag counts the changes since that read.
        assert_eq!(behind.newest, 4);
        // A read not shared is not kept: the next one reads again, and is kept.
        append("u5", 20);
        let alone = recent.after(&c, 1, 4, BATCH, false).unwrap();
        assert_eq!(ids(&alone), ["u5"]);
        let kept = recent.after(&c, 1, 4, BATCH, true).unwrap();
        assert!(!Arc::ptr_eq(&kept.read, &alone.read));
        assert!(Arc::ptr_eq(
            &recent.after(&c, 1, 4, BATCH, true).unwrap().read,
            &kept.read
        ));
        // The last feed removed and a new one added: event 1 is another event now.
        feeds::remove(&c, "f").unwrap();
        add("g");
        for id in ["n1", "n2", "n3", "n4", "n5"] {
            append(id, 30);
        }
        assert_eq!(
            ids(&recent.after(&c, 1, 3, BATCH, true).unwrap()),
            ["n4", "n5"]
        );
        // Only the last KEPT_READS reads are kept.
        append("n6", 40);
        let oldest = recent.after(&c, 1, 5, BATCH, true).unwrap();
        for k in 0..KEPT_READS {
            append("later", 40);
            recent.after(&c, 1, 6 + k as i64, BATCH, true).unwrap();
        }
        let again = recent.after(&c, 1, 5, BATCH, true).unwrap();
        assert!(!Arc::ptr_eq(&again.read, &oldest.read));
        assert_eq!(ids(&again)[0], "n6");
        // Reads every feed has moved past are let go, and a provider's with no feed.
        let kept = |recent: &Recent| -> usize {
            let providers = recent.0.lock().unwrap();
            providers.get(&1).map_or(0, |k| k.lock().unwrap().len())
        };
        let mut g = feeds::require(&c, "g").unwrap();
        g.position = 9;
        recent.forget(std::slice::from_ref(&g));
        // Kept were the reads from 7, 8 and 9 and the one from 5: two hold events after 9.
        assert_eq!(kept(&recent), 2);
        recent.forget(&[]);
        assert!(recent.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_message_copies_its_events_from_the_read_and_adds_resources_where_sent() {
        use crate::scim::events::Op;
        let event = |seq: i64, op| Event {
            seq,
            at: 0,
            kind: ResourceKind::User,
            resource_id: format!("u{seq}"),
            external_id: None,
            op,
            changed: "[]".into(),
            version: 1,
            method: None,
        };
        let read = Arc::new(Read::new(
            0,
            vec![
                event(1, Op::Create),
                event(2, Op::Patch),
                event(3, Op::Delete),
            ],
        ));
        let seqs_ops_resources = |body: Vec<u8>| -> Vec<(i64, String, Option<Value>)> {
            let v: Value = serde_json::from_slice(&body).unwrap();
            v["data"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["seq"].as_i64().unwrap(),
                        e["operation"].as_str().unwrap().to_string(),
                        e.get("resource").cloned(),
                    )
                })
                .collect()
        };
        let part = |range| Pending {
            read: read.clone(),
            range,
            newest: 3,
        };
        // Every event of its part, no resources: one slice of the read's JSON.
        let all = webhook_body("p", "t", &part(1..3), &[(0, None), (1, None)]);
        assert_eq!(
            seqs_ops_resources(all),
            [(2, "patch".into(), None), (3, "delete".into(), None)]
        );
        assert!(read.wire().run(0..0).is_empty());
        // Some of them, one with its resource.
        let r = serde_json::json!({"id": "u1"});
        let some = webhook_body("p", "t", &part(0..3), &[(0, Some(&r)), (2, None)]);
        assert_eq!(
            seqs_ops_resources(some),
            [
                (1, "create".into(), Some(r.clone())),
                (3, "delete".into(), None)
            ]
        );
    }
}

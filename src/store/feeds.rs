//! The change feed's tables: the feeds that deliver a provider's events, and the events, which
//! are the activity records of its changes while they carry a number (migration 24; every
//! change of a provider with a feed numbers its record in its own transaction: an outbox).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Error, Result};
use crate::scim::ResourceKind;
use crate::scim::events::Op;

/// The provider's last event number, in a statement on its `feed_counters` row with the provider
/// as `?1`: the newest event kept, or the counter when none is (the counter is brought up to
/// date only when events are pruned).
macro_rules! last_number {
    () => {
        "max(last, coalesce((SELECT max(feed_seq) FROM activity
                             WHERE provider_id = ?1 AND feed_seq IS NOT NULL), 0))"
    };
}

/// The number the next change of the provider writes its event under, when the provider has
/// a feed (its counter row exists): after its newest event kept (the last entry of the index
/// of numbers, found by a seek), or after the counter when none is kept. The counter is written
/// only when events are pruned (`prune`), not by every change, so a change writes nothing but
/// its activity record with the number and the externalId in it. On the writer thread the
/// answer comes from `NUMBERS` after the batch's first change of the provider.
pub(crate) fn next_number(c: &Connection, provider_id: i64) -> Result<Option<i64>> {
    let cached = NUMBERS.with_borrow(|n| n.as_ref().and_then(|n| n.get(&provider_id).copied()));
    let last = match cached {
        Some(last) => last,
        None => {
            let last = last_number(c, provider_id)?;
            NUMBERS.with_borrow_mut(|n| n.as_mut().map(|n| n.insert(provider_id, last)));
            last
        }
    };
    Ok(last.map(|last| last + 1))
}

/// Notes that the provider's change wrote its event under `number` (see `next_number`).
pub(crate) fn numbered(provider_id: i64, number: i64) {
    NUMBERS.with_borrow_mut(|n| n.as_mut().map(|n| n.insert(provider_id, Some(number))));
}

thread_local! {
    /// On the writer thread (`cache_numbers`): each provider's last event number (None: it
    /// has no feed) as the current batch has written them, so that a batch's changes of a
    /// provider read it once rather than each (a seek in the activity records' index and one
    /// in the counters). Forgotten when a batch begins (another process may have committed
    /// before it: `scimd feed add` or `remove` on the same file), when a request's work is
    /// rolled back, and by every write that changes a provider's numbering (`add`, `remove`,
    /// `prune`, and deleting a provider, whose id SQLite may give to the next one). None on
    /// every other thread: there every change reads its number.
    static NUMBERS: std::cell::RefCell<Option<std::collections::HashMap<i64, Option<i64>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes this thread (the writer's) keep the providers' last numbers between the changes of
/// a batch.
pub(crate) fn cache_numbers() {
    NUMBERS.with_borrow_mut(|n| *n = Some(std::collections::HashMap::new()));
}

/// Forgets the numbers this thread keeps, if it keeps any.
pub(crate) fn forget_numbers() {
    NUMBERS.with_borrow_mut(|n| {
        if let Some(n) = n.as_mut() {
            n.clear();
        }
    });
}

/// The provider's last event number; None when it has no feed (no counter row).
fn last_number(c: &Connection, provider_id: i64) -> Result<Option<i64>> {
    Ok(c.prepare_cached(concat!(
        "SELECT ",
        last_number!(),
        " FROM feed_counters WHERE provider_id = ?1"
    ))?
    .query_row([provider_id], |r| r.get(0))
    .optional()?)
}

/// The change feed's operation of an activity record, from its `action` (NULL for records
/// that are not changes): the SQL of `activity::Action::feed_op`, which a test there holds to
/// it.
macro_rules! op_of_action {
    () => {
        "CASE action WHEN 'created' THEN 'create' WHEN 'replaced' THEN 'replace'
                     WHEN 'patched' THEN 'patch' WHEN 'deleted' THEN 'delete'
                     WHEN 'reactivated' THEN 'activate' WHEN 'deactivated' THEN 'deactivate'
                     WHEN 'member added' THEN 'members' WHEN 'member removed' THEN 'members' END"
    };
}
#[cfg(test)]
pub(crate) const OP_OF_ACTION: &str = op_of_action!();

/// The columns of an event in its activity record, in `event_of`'s order.
const EVENT_COLUMNS: &str = concat!(
    "feed_seq, at, kind, resource_id, external_id, ",
    op_of_action!(),
    ", changed, version, method"
);

fn event_of(r: &Row<'_>) -> rusqlite::Result<Event> {
    let op = parsed(r, 5, Op::parse)?;
    Ok(Event {
        seq: r.get(0)?,
        at: r.get(1)?,
        kind: parsed(r, 2, ResourceKind::from_name)?,
        resource_id: r.get(3)?,
        external_id: r.get(4)?,
        op,
        changed: r
            .get::<_, Option<String>>(6)?
            .unwrap_or_else(|| "[]".into()),
        version: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
        // Kept for a change of activation or membership (a SET tells whether a replace or a
        // patch made it).
        method: match op {
            Op::Activate | Op::Deactivate | Op::Members => r.get(8)?,
            _ => None,
        },
    })
}

/// One event of a provider's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) seq: i64,
    /// Unix milliseconds of the commit.
    pub(crate) at: i64,
    pub(crate) kind: ResourceKind,
    pub(crate) resource_id: String,
    pub(crate) external_id: Option<String>,
    pub(crate) op: Op,
    /// The changed attributes' names, as the JSON array stored (a message carries it as it
    /// is; `changed_names` reads it).
    pub(crate) changed: String,
    pub(crate) version: i64,
    pub(crate) method: Option<String>,
}

impl Event {
    /// The changed attributes' names.
    pub(crate) fn changed_names(&self) -> Vec<String> {
        serde_json::from_str(&self.changed).unwrap_or_default()
    }
}

/// Up to `limit` of the provider's events after `after`, in order.
pub(crate) fn events_after(
    c: &Connection,
    provider_id: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM activity
         WHERE provider_id = ?1 AND feed_seq > ?2 AND feed_seq IS NOT NULL
         ORDER BY feed_seq LIMIT ?3"
    ))?;
    // A read of a feed that is behind fills the whole batch: room for it at once.
    let mut out = Vec::with_capacity(usize::try_from(limit.clamp(0, 1000)).unwrap_or(0));
    let mut rows = st.query(params![provider_id, after, limit])?;
    while let Some(r) = rows.next()? {
        out.push(event_of(r)?);
    }
    Ok(out)
}

/// Column `i` of `r` read by `parse`; a value it does not know fails the read.
fn parsed<T>(r: &Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text = r.get_ref(i)?.as_str()?;
    parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("{text:?} is not a known value of the change feed").into(),
        )
    })
}

/// Whether `e` is still stored under its number (not pruned, and not another event since the
/// provider's feeds were all removed and its numbers started afresh).
pub(crate) fn is_stored(c: &Connection, provider_id: i64, e: &Event) -> Result<bool> {
    Ok(c.prepare_cached(
        "SELECT 1 FROM activity
             WHERE provider_id = ?1 AND feed_seq = ?2 AND at = ?3 AND resource_id = ?4",
    )?
    .query_row(params![provider_id, e.seq, e.at, e.resource_id], |_| Ok(()))
    .optional()?
    .is_some())
}

/// The provider's last event number (0 before its first feed).
pub(crate) fn last_seq(c: &Connection, provider_id: i64) -> Result<i64> {
    Ok(last_number(c, provider_id)?.unwrap_or(0))
}

/// The oldest event the provider still keeps (None when it keeps none).
pub(crate) fn first_seq(c: &Connection, provider_id: i64) -> Result<Option<i64>> {
    Ok(c.prepare_cached(
        "SELECT min(feed_seq) FROM activity WHERE provider_id = ?1 AND feed_seq IS NOT NULL",
    )?
    .query_row([provider_id], |r| r.get(0))?)
}

/// A feed as stored.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) provider_id: i64,
    pub(crate) provider: String,
    /// The receiver's URL; None when the receiver pulls.
    pub(crate) url: Option<String>,
    pub(crate) format: String,
    pub(crate) ops: Vec<String>,
    pub(crate) full: bool,
    pub(crate) ca_file: Option<String>,
    pub(crate) secret: String,
    pub(crate) old_secret: Option<String>,
    pub(crate) old_until: Option<i64>,
    /// A SET's `aud`.
    pub(crate) audience: Option<String>,
    pub(crate) paused: bool,
    pub(crate) position: i64,
    pub(crate) created: i64,
    pub(crate) delivered_at: Option<i64>,
    pub(crate) failing_since: Option<i64>,
    /// The activity log has a record that it is failing.
    pub(crate) failing_noted: bool,
    pub(crate) last_error: Option<String>,
}

impl Feed {
    /// Whether the feed sends events of the operation `op` (its name).
    pub(crate) fn sends(&self, op: &str) -> bool {
        self.ops.iter().any(|o| o == op)
    }

    /// Whether the feed sends the event `e`.
    pub(crate) fn wants(&self, e: &Event) -> bool {
        self.sends(e.op.as_str())
    }
}

const FEED_COLUMNS: &str = "f.id, f.name, f.provider_id, p.name, f.url, f.format, f.ops, f.full,
    f.ca_file, f.secret, f.old_secret, f.old_until, f.paused, f.position, f.created,
    f.delivered_at, f.failing_since, f.last_error, f.audience, f.failing_noted";

fn feed_of(r: &Row<'_>) -> rusqlite::Result<Feed> {
    let ops: String = r.get(6)?;
    Ok(Feed {
        id: r.get(0)?,
        name: r.get(1)?,
        provider_id: r.get(2)?,
        provider: r.get(3)?,
        url: r.get(4)?,
        format: r.get(5)?,
        ops: ops.split(',').map(String::from).collect(),
        full: r.get(7)?,
        ca_file: r.get(8)?,
        secret: r.get(9)?,
        old_secret: r.get(10)?,
        old_until: r.get(11)?,
        paused: r.get(12)?,
        position: r.get(13)?,
        created: r.get(14)?,
        delivered_at: r.get(15)?,
        failing_since: r.get(16)?,
        last_error: r.get(17)?,
        audience: r.get(18)?,
        failing_noted: r.get(19)?,
    })
}

/// What a new feed is made of.
pub(crate) struct NewFeed<'a> {
    pub(crate) name: &'a str,
    pub(crate) provider_id: i64,
    pub(crate) url: Option<&'a str>,
    pub(crate) format: &'a str,
    pub(crate) audience: Option<&'a str>,
    pub(crate) ops: &'a [String],
    pub(crate) full: bool,
    pub(crate) ca_file: Option<&'a str>,
    pub(crate) secret: &'a str,
    pub(crate) now: i64,
}

/// Adds a feed starting after the provider's last event (it delivers what commits from now
/// on); the provider's first feed starts its events.
pub(crate) fn add(c: &Connection, f: &NewFeed<'_>) -> Result<Feed> {
    forget_numbers();
    c.prepare_cached(
        "INSERT INTO feed_counters (provider_id, last) VALUES (?1, 0)
         ON CONFLICT (provider_id) DO NOTHING",
    )?
    .execute([f.provider_id])?;
    let position = last_seq(c, f.provider_id)?;
    c.prepare_cached(
        "INSERT INTO feeds (name, provider_id, url, format, ops, full, ca_file, secret, position,
                            created, audience)
         VALUES (?1, ?2, ?3, ?10, ?4, ?5, ?6, ?7, ?8, ?9, ?11)",
    )?
    .execute(params![
        f.name,
        f.provider_id,
        f.url,
        f.ops.join(","),
        f.full,
        f.ca_file,
        f.secret,
        position,
        f.now,
        f.format,
        f.audience
    ])
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(err, _)
            if err.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::Conflict(format!("a feed named {} already exists", f.name))
        }
        e => e.into(),
    })?;
    require(c, f.name)
}

pub(crate) fn list(c: &Connection) -> Result<Vec<Feed>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {FEED_COLUMNS} FROM feeds f JOIN providers p ON p.id = f.provider_id
         ORDER BY f.name"
    ))?;
    let rows = st.query_map([], feed_of)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether the provider has a feed of Security Event Tokens.
pub(crate) fn has_set_feed(c: &Connection, provider_id: i64) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT 1 FROM feeds WHERE provider_id = ?1 AND format = 'set' LIMIT 1")?
            .query_row([provider_id], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

/// The feeds of one provider, by name.
pub(crate) fn of_provider(c: &Connection, provider_id: i64) -> Result<Vec<Feed>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {FEED_COLUMNS} FROM feeds f JOIN providers p ON p.id = f.provider_id
         WHERE f.provider_id = ?1 ORDER BY f.name"
    ))?;
    let rows = st.query_map([provider_id], feed_of)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn get(c: &Connection, name: &str) -> Result<Option<Feed>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {FEED_COLUMNS} FROM feeds f JOIN providers p ON p.id = f.provider_id
             WHERE f.name = ?1"
    ))?
    .query_row([name], feed_of)
    .optional()?)
}

pub(crate) fn by_id(c: &Connection, id: i64) -> Result<Option<Feed>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {FEED_COLUMNS} FROM feeds f JOIN providers p ON p.id = f.provider_id
             WHERE f.id = ?1"
    ))?
    .query_row([id], feed_of)
    .optional()?)
}

pub(crate) fn require(c: &Connection, name: &str) -> Result<Feed> {
    get(c, name)?.ok_or_else(|| Error::NotFound(format!("no feed named {name}")))
}

/// Pauses or resumes a feed; returns it.
pub(crate) fn set_paused(c: &Connection, name: &str, paused: bool) -> Result<Feed> {
    let f = require(c, name)?;
    c.prepare_cached("UPDATE feeds SET paused = ?2 WHERE id = ?1")?
        .execute(params![f.id, paused])?;
    require(c, name)
}

/// Removes a feed; the provider's events stay for its other feeds until the retention. The
/// provider's last feed takes its events and its counter with it: its changes write no events
/// until it has a feed again (whose numbers start afresh).
pub(crate) fn remove(c: &Connection, name: &str) -> Result<Feed> {
    forget_numbers();
    let f = require(c, name)?;
    c.prepare_cached("DELETE FROM feeds WHERE id = ?1")?
        .execute([f.id])?;
    let others: i64 = c
        .prepare_cached("SELECT count(*) FROM feeds WHERE provider_id = ?1")?
        .query_row([f.provider_id], |r| r.get(0))?;
    if others == 0 {
        c.prepare_cached("DELETE FROM feed_counters WHERE provider_id = ?1")?
            .execute([f.provider_id])?;
        c.prepare_cached(
            "UPDATE activity SET feed_seq = NULL, external_id = NULL
             WHERE provider_id = ?1 AND feed_seq IS NOT NULL",
        )?
        .execute([f.provider_id])?;
    }
    Ok(f)
}

/// Sets where a feed goes on from: it delivers the events after `position` next. Refused
/// before the oldest event kept (those are gone) or past the last one.
pub(crate) fn set_position(c: &Connection, name: &str, position: i64) -> Result<Feed> {
    let f = require(c, name)?;
    let last = last_seq(c, f.provider_id)?;
    let Some(first) = first_seq(c, f.provider_id)? else {
        return Err(Error::Conflict(format!(
            "feed {}: no events are kept (the provider's last is {last}): nothing to replay",
            f.name
        )));
    };
    if position < first - 1 || position > last {
        return Err(Error::Conflict(format!(
            "feed {}: events {first} to {last} are kept; replay from one of them",
            f.name
        )));
    }
    c.prepare_cached(
        "UPDATE feeds SET position = ?2, failing_since = NULL, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![f.id, position])?;
    require(c, name)
}

/// A new signing secret; the old one signs beside it until `old_until` (unix seconds).
pub(crate) fn rotate_secret(
    c: &Connection,
    name: &str,
    secret: &str,
    old_until: i64,
) -> Result<Feed> {
    let f = require(c, name)?;
    c.prepare_cached(
        "UPDATE feeds SET old_secret = secret, old_until = ?3, secret = ?2 WHERE id = ?1",
    )?
    .execute(params![f.id, secret, old_until])?;
    require(c, name)
}

/// Records a delivery: the feed's position moves to `position` (never back: a replay sets it
/// with `set_position`, and a delivery that was under way then does not undo it).
pub(crate) fn delivered(c: &Connection, id: i64, from: i64, position: i64, at: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE feeds SET position = ?3, delivered_at = ?4, failing_since = NULL,
                          last_error = NULL
         WHERE id = ?1 AND position = ?2",
    )?
    .execute(params![id, from, position, at])?;
    Ok(())
}

/// Records what a pulling receiver acknowledged (RFC 8936 `ack` and `setErrs`, as event
/// numbers): the position moves over each event after it that was acknowledged or that the
/// feed does not send, and stops at the first one neither (an acknowledgement after a gap is
/// forgotten, and that event is sent again: at least once). Returns the new position.
pub(crate) fn acknowledge(c: &Connection, f: &Feed, handled: &[i64], at: i64) -> Result<i64> {
    let Some(&top) = handled.iter().max() else {
        return Ok(f.position);
    };
    let mut position = f.position;
    let mut st = c.prepare_cached(concat!(
        "SELECT feed_seq, ",
        op_of_action!(),
        " FROM activity
             WHERE provider_id = ?1 AND feed_seq > ?2 AND feed_seq <= ?3 AND feed_seq IS NOT NULL
             ORDER BY feed_seq"
    ))?;
    let mut rows = st.query(params![f.provider_id, f.position, top])?;
    while let Some(r) = rows.next()? {
        let (seq, op): (i64, Op) = (r.get(0)?, parsed(r, 1, Op::parse)?);
        // Numbers have no gaps (only pruning removes events, the oldest first).
        if f.sends(op.as_str()) && !handled.contains(&seq) {
            break;
        }
        position = seq;
    }
    if position != f.position {
        delivered(c, f.id, f.position, position, at)?;
    }
    Ok(position)
}

/// Records that the activity log now says (or no longer says) the feed is failing.
pub(crate) fn set_failing_noted(c: &Connection, id: i64, noted: bool) -> Result<()> {
    c.prepare_cached("UPDATE feeds SET failing_noted = ?2 WHERE id = ?1")?
        .execute(params![id, noted])?;
    Ok(())
}

/// Records a failed delivery attempt (the first of a run sets `failing_since`).
pub(crate) fn failed(c: &Connection, id: i64, error: &str, at: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE feeds SET failing_since = coalesce(failing_since, ?3), last_error = ?2
         WHERE id = ?1",
    )?
    .execute(params![id, error, at])?;
    Ok(())
}

/// Lets go of the events committed before `before` (unix milliseconds), at most `limit` of
/// each provider's; returns how many. Their activity records lose their number and stay for
/// the activity retention. A provider's oldest events are its first by number (they are
/// numbered in commit order), so this reads the start of the index of numbers and needs no
/// index by time.
pub(crate) fn prune(c: &Connection, before: i64, limit: i64) -> Result<usize> {
    forget_numbers();
    let providers: Vec<i64> = c
        .prepare_cached("SELECT provider_id FROM feed_counters")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut pruned = 0;
    for p in providers {
        // The counter keeps the last number, so that the next event follows it even when
        // every event kept is pruned.
        c.prepare_cached(concat!(
            "UPDATE feed_counters SET last = ",
            last_number!(),
            " WHERE provider_id = ?1"
        ))?
        .execute([p])?;
        pruned += c
            .prepare_cached(
                "UPDATE activity SET feed_seq = NULL, external_id = NULL
                 WHERE at < ?2 AND seq IN
                   (SELECT seq FROM activity WHERE provider_id = ?1 AND feed_seq IS NOT NULL
                    ORDER BY feed_seq LIMIT ?3)",
            )?
            .execute(params![p, before, limit])?;
    }
    Ok(pruned)
}

/// What the feed tests start from.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fresh database with one provider, id 1.
    pub(crate) fn with_provider() -> Connection {
        let c = crate::store::test_conn();
        c.execute(
            "INSERT INTO providers (id, name, kind, created) VALUES (1, 'a', 'generic', 0)",
            [],
        )
        .unwrap();
        c
    }

    /// A webhook feed of provider 1, every operation.
    pub(crate) fn webhook(name: &str) -> NewFeed<'_> {
        NewFeed {
            name,
            provider_id: 1,
            url: Some("https://r.example/hook"),
            format: "webhook",
            audience: None,
            ops: &[],
            full: false,
            ca_file: None,
            secret: "whsec_AAAA",
            now: 0,
        }
    }
}

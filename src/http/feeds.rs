//! The change feed's endpoints on the SCIM listener: the poll of a feed its receiver pulls
//! (RFC 8936, `POST <SCIM base>/Feeds/<name>` with a token of the feed's provider) and the
//! public keys that verify a feed's Security Event Tokens (`GET /feeds/<name>/jwks.json`,
//! no token: they are public).

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::Value;

use crate::app::{AppState, Principal};
use crate::error::Error;
use crate::feed::{self, poll, set};
use crate::store::feeds::{self, Event, Feed};

/// How long a poll that finds nothing waits for events before it answers with none.
const LONG_POLL: Duration = Duration::from_secs(20);
/// How often a waiting poll looks again.
const LOOK_AGAIN: Duration = Duration::from_millis(200);

/// A feed whose key cannot be read or used: the server's fault.
fn internal(e: String) -> Error {
    Error::Store(crate::store::Error::Internal(e))
}

fn json(status: StatusCode, v: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(v.to_string())
}

/// The feed named in the path, when it is one of the caller's provider that its receiver
/// pulls; anything else is not there for this token.
async fn pulled_feed(state: &AppState, principal: &Principal, name: String) -> Result<Feed, Error> {
    let f = state.store.run(move |c| feeds::get(c, &name)).await?;
    match f {
        Some(f) if f.provider_id == principal.provider_id && f.url.is_none() => Ok(f),
        _ => Err(Error::NotFound(
            "no feed of this provider by that name is pulled (`scimd feed add NAME --pull`)".into(),
        )),
    }
}

/// RFC 8936 poll: acknowledges what the request says was taken (or refused), then answers
/// with the next tokens, waiting up to `LONG_POLL` for one unless told to return at once (or
/// the server begins to stop).
pub(crate) async fn poll(
    state: web::Data<AppState>,
    principal: Principal,
    name: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    let (_, name) = name.into_inner();
    let request = match poll::Request::parse(&body) {
        Ok(r) => r,
        Err(e) => return Ok(json(StatusCode::BAD_REQUEST, &poll::error(&e))),
    };
    let mut feed = pulled_feed(&state, &principal, name.clone()).await?;
    for (jti, why) in &request.set_errs {
        tracing::warn!(feed = %feed.name, jti, error = %why, "a feed's receiver refused a token");
    }
    let handled: Vec<i64> = request
        .handled()
        .filter_map(|jti| set::seq_of(feed.id, jti))
        .collect();
    if !handled.is_empty() {
        let (id, now) = (feed.id, chrono::Utc::now().timestamp_millis());
        feed = state
            .store
            .write(move |c| -> Result<Feed, Error> {
                let f = feeds::by_id(c, id)?.ok_or(Error::NotFound("the feed is gone".into()))?;
                feeds::acknowledge(c, &f, &handled, now)?;
                feeds::by_id(c, id)?.ok_or(Error::NotFound("the feed is gone".into()))
            })
            .await?;
    }
    if request.max_events == 0 || feed.paused {
        return Ok(json(StatusCode::OK, &poll::answer(Vec::new(), false)));
    }
    let deadline = Instant::now() + LONG_POLL;
    loop {
        let (wanted, more) = next_events(&state, &feed, request.max_events).await?;
        let stopping = state.stopping.load(std::sync::atomic::Ordering::Relaxed);
        if !wanted.is_empty()
            || request.return_immediately
            || stopping
            || Instant::now() >= deadline
        {
            let sets = sign(&state, &feed, &wanted).await?;
            return Ok(json(StatusCode::OK, &poll::answer(sets, more)));
        }
        tokio::time::sleep(LOOK_AGAIN).await;
    }
}

/// Up to `max` of the events after the feed's position that it sends, and whether more wait.
/// Events it does not send before the first it does are passed over for good (the position
/// moves past them), so a long run of them is read once.
async fn next_events(
    state: &AppState,
    feed: &Feed,
    max: usize,
) -> Result<(Vec<Event>, bool), Error> {
    const PAGE: i64 = 1000;
    let (pid, mut after) = (feed.provider_id, feed.position);
    let mut wanted = Vec::new();
    let mut passed = None;
    let more = 'scan: loop {
        let page = state
            .store
            .run(move |c| feeds::events_after(c, pid, after, PAGE))
            .await?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break false;
        };
        let full = page.len() as i64 == PAGE;
        for e in page {
            if wanted.len() == max {
                break 'scan true;
            }
            if feed.wants(&e) {
                wanted.push(e);
            } else if wanted.is_empty() {
                passed = Some(e.seq);
            }
        }
        if !wanted.is_empty() || !full {
            break full;
        }
        after = last;
    };
    if let Some(to) = passed {
        let (id, from, now) = (
            feed.id,
            feed.position,
            chrono::Utc::now().timestamp_millis(),
        );
        state
            .store
            .write_in_background(move |c| feeds::delivered(c, id, from, to, now))
            .await?;
    }
    Ok((wanted, more))
}

/// The events as signed tokens, by token id.
async fn sign(
    state: &web::Data<AppState>,
    feed: &Feed,
    events: &[Event],
) -> Result<Vec<(String, String)>, Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let refs: Vec<&Event> = events.iter().collect();
    let resources = feed::current_resources_of(&state.clone().into_inner(), feed, &refs).await?;
    let key = set::SigningKey::load(&feed.secret).map_err(internal)?;
    let iss = state.scim_base(&feed.provider);
    events
        .iter()
        .zip(resources)
        .map(|(e, data)| {
            let token = feed::sign_event(&key, feed, &iss, e, data).map_err(internal)?;
            Ok((set::jti(feed.id, e.seq), token))
        })
        .collect()
}

/// The public keys of a feed of Security Event Tokens: the one it signs with, and the one
/// before a rotation while the overlap lasts.
pub(crate) async fn jwks(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let name = name.into_inner();
    let f = state.store.run(move |c| feeds::get(c, &name)).await?;
    let Some(f) = f.filter(|f| f.format == "set") else {
        return Err(Error::NotFound(
            "no feed of Security Event Tokens by that name".into(),
        ));
    };
    let mut keys = vec![set::SigningKey::load(&f.secret).map_err(internal)?];
    if let (Some(old), Some(until)) = (&f.old_secret, f.old_until)
        && until > chrono::Utc::now().timestamp()
    {
        keys.push(set::SigningKey::load(old).map_err(internal)?);
    }
    let keys: Vec<&set::SigningKey> = keys.iter().collect();
    Ok(HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header(("cache-control", "max-age=300"))
        .body(set::jwks(&keys).to_string()))
}

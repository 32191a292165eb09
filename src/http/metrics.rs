//! Prometheus metrics on the admin listener (`admin_listen`), never on the SCIM port: requests
//! by provider, method, endpoint and status with latency histograms, the writer's queue, batch
//! sizes and commit times (counted where they happen, through the `metrics` facade), and at
//! scrape time each token's seconds to expiry, the database and WAL sizes and the build.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;

/// Latency buckets in seconds: from a point read (~0.2 ms) to a stalled write.
const BUCKETS: &[f64] = &[
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Requests committed per writer batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's metrics recorder (once; later calls reuse it).
pub(crate) fn install() -> Result<(), String> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("scimd_writer_batch_size".into()),
                BATCH_BUCKETS,
            )
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    let _ = HANDLE.set(handle);
    Ok(())
}

/// A status code as a label without allocating for the usual ones.
fn status_label(status: u16) -> metrics::SharedString {
    match status {
        200 => "200".into(),
        201 => "201".into(),
        204 => "204".into(),
        304 => "304".into(),
        400 => "400".into(),
        401 => "401".into(),
        404 => "404".into(),
        409 => "409".into(),
        412 => "412".into(),
        429 => "429".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

/// The endpoint a path names, from a fixed set (so paths cannot grow the label values).
pub(crate) fn endpoint(path: &str) -> &'static str {
    let Some(rest) = path.strip_prefix("/scim/v2/") else {
        return match path {
            "/healthz" => "healthz",
            "/readyz" => "readyz",
            _ => "other",
        };
    };
    let mut parts = rest.split('/').skip(1);
    match (parts.next(), parts.next()) {
        (Some("Users"), None) => "Users",
        (Some("Users"), Some(".search")) => "Users/.search",
        (Some("Users"), Some(_)) => "Users/{id}",
        (Some("Groups"), None) => "Groups",
        (Some("Groups"), Some(".search")) => "Groups/.search",
        (Some("Groups"), Some(_)) => "Groups/{id}",
        (Some(".search"), None) => ".search",
        (Some("Schemas"), _) => "Schemas",
        (Some("ResourceTypes"), _) => "ResourceTypes",
        (Some("ServiceProviderConfig"), _) => "ServiceProviderConfig",
        _ => "other",
    }
}

/// The handles of the per-request series, kept: looking a series up by its labels in the
/// recorder (building the key, hashing it) on every request cost point reads about a fifth of
/// their throughput; a handle is an atomic add.
#[derive(Default)]
struct Handles {
    counters: HashMap<String, HashMap<(&'static str, &'static str, u16), metrics::Counter>>,
    histograms: HashMap<(&'static str, &'static str), metrics::Histogram>,
}

thread_local! {
    /// Per worker thread, so recording takes no lock; the handles of one series share its
    /// atomic across threads.
    static HANDLES: std::cell::RefCell<Handles> = std::cell::RefCell::new(Handles::default());
}

/// Counts one answered request. `provider` is the authenticated provider's name, or "-" (a
/// name taken from an unauthenticated URL would let anyone add label values).
pub(crate) fn request(provider: &str, method: &'static str, path: &str, status: u16, seconds: f64) {
    if HANDLE.get().is_none() {
        return;
    }
    let endpoint = endpoint(path);
    HANDLES.with_borrow_mut(|h| record(h, provider, method, endpoint, status, seconds));
}

fn record(
    h: &mut Handles,
    provider: &str,
    method: &'static str,
    endpoint: &'static str,
    status: u16,
    seconds: f64,
) {
    let by_provider = match h.counters.get_mut(provider) {
        Some(m) => m,
        None => h.counters.entry(provider.to_string()).or_default(),
    };
    by_provider
        .entry((method, endpoint, status))
        .or_insert_with(|| {
            metrics::counter!(
                "scimd_requests_total",
                "provider" => provider.to_string(),
                "method" => method,
                "endpoint" => endpoint,
                "status" => status_label(status)
            )
        })
        .increment(1);
    h.histograms
        .entry((method, endpoint))
        .or_insert_with(|| {
            metrics::histogram!(
                "scimd_request_duration_seconds",
                "method" => method,
                "endpoint" => endpoint
            )
        })
        .record(seconds);
}

/// Folds the histogram samples recorded since the last call into their buckets. The exporter
/// keeps each sample until then, so this runs every few seconds, scraped or not: memory stays
/// bounded whatever the request rate.
pub(crate) fn upkeep() {
    if let Some(h) = HANDLE.get() {
        h.run_upkeep();
    }
}

/// `/metrics`: what was counted, then what is read at scrape time.
pub(crate) async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    let mut out = HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let tokens = state
        .store
        .run(|c| crate::store::tokens::list(c, None))
        .await
        .unwrap_or_default();
    out.push_str(
        "# HELP scimd_token_expiry_seconds Seconds until each active token expires.\n\
         # TYPE scimd_token_expiry_seconds gauge\n",
    );
    for t in tokens
        .iter()
        .filter(|t| t.state(now) == crate::auth::TokenState::Active)
    {
        let _ = writeln!(
            out,
            "scimd_token_expiry_seconds{{provider=\"{}\",token=\"{}\"}} {}",
            t.provider,
            t.id,
            t.expires - now
        );
    }
    let size = |suffix: &str| {
        let mut p = state.config.database.as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    };
    let _ = write!(
        out,
        "# HELP scimd_database_bytes Size of the database file.\n\
         # TYPE scimd_database_bytes gauge\n\
         scimd_database_bytes {}\n\
         # HELP scimd_wal_bytes Size of the database's write-ahead log.\n\
         # TYPE scimd_wal_bytes gauge\n\
         scimd_wal_bytes {}\n\
         # HELP scimd_argon2_verifications_total Presented secrets checked with argon2.\n\
         # TYPE scimd_argon2_verifications_total counter\n\
         scimd_argon2_verifications_total {}\n\
         # HELP scimd_build_info The running build.\n\
         # TYPE scimd_build_info gauge\n\
         scimd_build_info{{version=\"{}\"}} 1\n",
        size(""),
        size("-wal"),
        state.verifier.verifications(),
        env!("CARGO_PKG_VERSION")
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn endpoints_are_a_fixed_set() {
        for (path, want) in [
            ("/scim/v2/p/Users", "Users"),
            ("/scim/v2/p/Users/abc", "Users/{id}"),
            ("/scim/v2/p/Users/.search", "Users/.search"),
            ("/scim/v2/p/Groups/x", "Groups/{id}"),
            ("/scim/v2/p/Schemas/urn:x", "Schemas"),
            ("/scim/v2/p/whatever", "other"),
            ("/healthz", "healthz"),
            ("/random", "other"),
        ] {
            assert_eq!(endpoint(path), want, "{path}");
        }
    }
}

//! The non-standard request shapes of one request: noted in its extensions for the access-log
//! line, and counted per identity provider (`app::Counters::quirks`).

use actix_web::{HttpMessage, HttpRequest};

use crate::app::Counters;
use crate::scim::quirks::{Quirk, Quirks};

/// The quirks of one request, for its access-log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Used(pub(crate) Quirks);

/// Notes the quirks a request of `provider` used, and counts them.
pub(crate) fn record(counter: &Counters, req: &HttpRequest, provider: &str, quirks: Quirks) {
    if quirks.is_empty() {
        return;
    }
    let previous = req.extensions().get::<Used>().map(|u| u.0);
    let mut all = previous.unwrap_or_default();
    all.merge(quirks);
    req.extensions_mut().insert(Used(all));
    counter.quirks(provider, quirks);
}

/// The names of the quirks on the access-log line, or "-".
pub(crate) fn names(req: &HttpRequest) -> String {
    match req.extensions().get::<Used>() {
        Some(Used(q)) if !q.is_empty() => q.iter().map(Quirk::name).collect::<Vec<_>>().join(","),
        _ => "-".to_string(),
    }
}

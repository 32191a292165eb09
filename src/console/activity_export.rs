//! One activity record in full, and the activity log as a file (CSV, RFC 4180, or JSON lines):
//! what the Activity page's links open.

use actix_web::HttpResponse;
use actix_web::http::header;
use maud::{Markup, html};
use serde::Deserialize;

use super::view;
use crate::store::activity::Record;

/// Records one export holds at most (the newest, when the filters select more).
pub(crate) const EXPORT_ROWS: usize = 100_000;

#[derive(Deserialize)]
pub(crate) struct Format {
    format: String,
}

/// A CSV field: quoted when it holds a comma, quote or line break (quotes doubled); a value a
/// spreadsheet would take for a formula is prefixed with `'`.
fn csv_field(s: &str) -> String {
    let s = match s.chars().next() {
        Some('=' | '+' | '-' | '@') => format!("'{s}"),
        _ => s.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

const CSV_HEADER: &str = "seq,time,provider,action,count,status,method,path,resource_type,\
                          resource_id,name,changed,version,scim_type,detail,token_id,request_id";

/// The records as a download in `format` (`csv`, else JSON lines).
pub(crate) fn file(format: &Format, records: &[Record]) -> HttpResponse {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    let (body, kind, name) = if format.format == "csv" {
        let mut out = String::from(CSV_HEADER);
        out.push_str("\r\n");
        for r in records {
            let fields = [
                r.seq.to_string(),
                iso(r.at),
                r.provider.clone(),
                r.action.clone(),
                r.count.to_string(),
                r.status.to_string(),
                opt(&r.method),
                opt(&r.path),
                opt(&r.resource_type),
                opt(&r.resource_id),
                opt(&r.name),
                r.changed.join(" "),
                r.version.map(|v| v.to_string()).unwrap_or_default(),
                opt(&r.scim_type),
                opt(&r.detail),
                opt(&r.token_id),
                opt(&r.request_id),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        (out, "text/csv; charset=utf-8", "scimd-activity.csv")
    } else {
        let mut out = String::new();
        for r in records {
            if let Ok(line) = serde_json::to_string(r) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        (out, "application/x-ndjson", "scimd-activity.jsonl")
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(body)
}

/// Every field of one record, for its own page.
pub(crate) fn detail(r: &Record) -> Markup {
    let row = |k: &str, v: Option<String>| {
        html! { @if let Some(v) = v.filter(|v| !v.is_empty()) { dt { (k) } dd { (v) } } }
    };
    let request = match (&r.method, &r.path) {
        (Some(m), Some(p)) => Some(format!("{m} {p}")),
        _ => None,
    };
    html! {
        dl.facts {
            (row("Time", Some(iso(r.at))))
            (row("Provider", Some(r.provider.clone())))
            (row("Action", Some(match r.count { 1 => r.action.clone(), n => format!("{} ×{n}", r.action) })))
            (row("Status", Some(r.status.to_string())))
            (row("Request", request))
            (row("Resource", r.resource_type.as_ref().map(|t| format!("{t} {}", r.name.clone().or(r.resource_id.clone()).unwrap_or_default()))))
            (row("Resource id", r.resource_id.clone()))
            (row("Changed", Some(r.changed.join(", "))))
            (row("Version", r.version.map(|v| v.to_string())))
            (row("SCIM error type", r.scim_type.clone()))
            (row("Detail", r.detail.clone()))
            (row("Request body", r.body_bytes.map(|b| format!("{b} bytes"))))
            (row("Token", r.token_id.clone()))
            (row("Request id", r.request_id.clone()))
            (row("New values", r.values.as_ref().map(|v| v.to_string())))
        }
        p { a href={"/activity?provider=" (super::urlencode(&r.provider))} { "← Activity of " (r.provider) } }
        p.hint { "Times are in UTC. " (view::time_ms(Some(r.at))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }
}

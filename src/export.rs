//! `scimd export`: every User or Group of a provider, streamed page by page (bounded memory
//! whatever the number), as SCIM JSON lines or as a flat CSV of the common attributes.

use std::io::Write;

use crate::scim::ResourceKind;
use crate::scim::projection::Projection;
use crate::scim::summary::{Row, export_columns};
use crate::store::rows::Stored;
use crate::store::search::{self, Paging};
use crate::store::{self, Store, providers, schemas};

/// Rows read and written per step.
const PAGE: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Jsonl,
    Csv,
}

/// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
fn csv_line(fields: &[String], out: &mut Vec<u8>) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(f.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(f.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes every resource of `kind` of the provider to `out`; returns how many.
pub(crate) fn export(
    store: &Store,
    provider: &str,
    kind: ResourceKind,
    format: Format,
    base: &str,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let name = provider.to_string();
    let (pid, model) = store.call(move |c| {
        let p = providers::require(c, &name)?;
        Ok::<_, store::Error>((p.id, schemas::model(c, p.id)?))
    })?;
    let base = format!("{base}/scim/v2/{provider}");
    if format == Format::Csv {
        let mut header = Vec::new();
        let names: Vec<String> = export_columns(kind)
            .iter()
            .map(|c| c.header.to_string())
            .collect();
        csv_line(&names, &mut header);
        out.write_all(&header)?;
    }
    let model = std::sync::Arc::new(model);
    let mut after = 0i64;
    let mut written = 0u64;
    loop {
        let (model, base) = (model.clone(), base.clone());
        let (chunk, last, n) = store.call(move |c| {
            let rt = model.get(kind);
            let page = search::search(c, pid, kind, None, Paging::After(after), PAGE)?;
            let rows: Vec<_> = page.items.iter().collect();
            let last = rows.last().map(|r| r.seq);
            let chunk = match format {
                Format::Jsonl => {
                    let mut json = Vec::with_capacity(rows.len() * 1024);
                    let all = Projection::default();
                    crate::app::push_rows(c, &mut json, (rt, &base), &rows, &all, b"\n")?;
                    if !rows.is_empty() {
                        json.push(b'\n');
                    }
                    json
                }
                Format::Csv => csv_rows(c, kind, &rows)?,
            };
            Ok::<_, store::Error>((chunk, last, rows.len()))
        })?;
        match out.write_all(&chunk) {
            Ok(()) => {}
            // A reader that stops early (`| head`) ends the export quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(written),
            Err(e) => return Err(e.into()),
        }
        written += n as u64;
        match last {
            Some(seq) if n as i64 == PAGE => after = seq,
            _ => break,
        }
    }
    out.flush()?;
    Ok(written)
}

/// CSV lines of `rows`: each column read from the stored document and the row's own fields
/// (members counted only when a column shows the count).
fn csv_rows(
    c: &rusqlite::Connection,
    kind: ResourceKind,
    rows: &[Stored<'_>],
) -> store::Result<Vec<u8>> {
    let columns = export_columns(kind);
    let counts = match columns.iter().any(|col| col.counts_linked()) {
        true => {
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            store::members::member_counts(c, &seqs)?
        }
        false => vec![0; rows.len()],
    };
    let mut csv = Vec::with_capacity(rows.len() * 256);
    for (r, linked) in rows.iter().zip(counts) {
        let doc: serde_json::Value =
            serde_json::from_str(r.doc).map_err(|e| store::Error::Internal(e.to_string()))?;
        let row = Row {
            doc: &doc,
            id: r.id,
            created: r.created,
            modified: r.modified,
            linked,
        };
        let line: Vec<String> = columns.iter().map(|col| col.value(&row)).collect();
        csv_line(&line, &mut csv);
    }
    Ok(csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        csv_line(
            &[
                "plain".into(),
                "a,b".into(),
                "say \"hi\"".into(),
                "two\nlines".into(),
                String::new(),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n"
        );
    }
}

//! Lists and searches of Users and Groups (RFC 7644 §3.4.2, §3.4.3; RFC 9865 cursors): the
//! filter compiled against the provider's model, a page read in one snapshot with its total,
//! rendered as a ListResponse.

use super::{AppState, Principal};
use crate::error::Error;
use crate::render::{self, Paged};
use crate::scim::projection::Projection;
use crate::scim::quirks::Quirks;
use crate::scim::schema::ResourceType;
use crate::scim::{self, ResourceKind, filter};
use crate::store;
use crate::store::query::Compiler;
use crate::store::search::{self, Condition, Paging};

/// What a list or search asks for (RFC 7644 §3.4.2, §3.4.3; RFC 9865 cursors).
pub(crate) struct ListRequest {
    pub(crate) filter: Option<String>,
    pub(crate) sort_by: Option<String>,
    pub(crate) descending: bool,
    pub(crate) start_index: i64,
    pub(crate) count: i64,
    pub(crate) cursor: Option<String>,
    pub(crate) attributes: Option<String>,
    pub(crate) excluded: Option<String>,
}

pub(crate) fn bad_value(msg: String) -> Error {
    Error::Scim(scim::Error::InvalidValue(msg))
}

impl ListRequest {
    pub(crate) fn new(
        filter: Option<String>,
        sort_by: Option<String>,
        sort_order: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
        max: i64,
    ) -> Result<ListRequest, Error> {
        let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(bad_value(format!(
                    "sortOrder must be ascending or descending, got {other:?}"
                )));
            }
        };
        // A blank filter is a mistake, never "no filter": an identity provider that sends a
        // broken one must not get every resource back.
        if filter.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(Error::Scim(scim::Error::InvalidFilter(
                "the filter is empty; leave the parameter out to list everything".into(),
            )));
        }
        Ok(ListRequest {
            filter,
            sort_by: sort_by.filter(|s| !s.trim().is_empty()),
            descending,
            start_index: start_index.unwrap_or(1).max(1),
            count: count.unwrap_or(max).clamp(0, max),
            cursor: None,
            attributes: None,
            excluded: None,
        })
    }

    pub(crate) fn projection(&self, rt: &ResourceType) -> Projection {
        Projection::parse(rt, self.attributes.as_deref(), self.excluded.as_deref())
    }

    /// The parsed filter, if any, and the non-standard shapes it used.
    fn parsed(&self) -> Result<(Option<filter::Filter>, Quirks), Error> {
        match &self.filter {
            None => Ok((None, Quirks::default())),
            Some(text) => {
                let (f, q) = filter::parse_noting(text)?;
                Ok((Some(f), q))
            }
        }
    }
}

fn compile(rt: &ResourceType, base: &str, ast: &filter::Filter) -> Result<Condition, Error> {
    Ok(crate::store::query::condition(rt, base, ast)?)
}

const CURSOR_PREFIX: &str = "c";

fn decode_cursor(cursor: &str) -> Result<i64, Error> {
    if cursor.is_empty() {
        return Ok(0);
    }
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|n| i64::from_str_radix(n, 16).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Error::Scim(scim::Error::InvalidCursor(format!(
                "{cursor:?} is not a cursor this server handed out"
            )))
        })
}

/// A page of one kind's resources, rendered: what a list (`GET /Users`) or a search
/// (`POST /Users/.search`) asks for.
pub(crate) struct Listed {
    pub(crate) body: Vec<u8>,
    /// The request looked like Entra's Test Connection (a random GUID) and found nothing.
    pub(crate) connection_test: bool,
}

/// Lists a page of one kind's resources as `request` asks; `quirks` hears of the non-standard
/// shapes its filter used.
pub(crate) async fn list(
    state: &AppState,
    principal: &Principal,
    kind: ResourceKind,
    request: ListRequest,
    quirks: impl FnOnce(Quirks),
) -> Result<Listed, Error> {
    let base = state.scim_base(&principal.provider_name);
    let model = state.model(principal).await?;
    let rt = model.get(kind);
    let (ast, noted) = request.parsed()?;
    let condition = ast.as_ref().map(|f| compile(rt, &base, f)).transpose()?;
    quirks(noted);
    let order = match &request.sort_by {
        Some(s) => Some(Compiler::new(rt, &base, 1).order_by(s, request.descending)?),
        None => None,
    };
    let after = match &request.cursor {
        Some(_) if order.is_some() => {
            return Err(bad_value(
                "cursor pagination supports the default order only; leave out sortBy".into(),
            ));
        }
        Some(c) => Some(decode_cursor(c)?),
        None => None,
    };
    let projection = request.projection(rt);
    let (start_index, count) = (request.start_index, request.count);
    let pid = principal.provider_id;
    let guid_lookup = ast.as_ref().is_some_and(looks_up_a_guid);
    let (body, total) = state
        .read(principal, move |c| -> store::Result<(Vec<u8>, i64)> {
            let rt = model.get(kind);
            // (`read` runs this in one read transaction: the page and the total agree.)
            let tx: &rusqlite::Connection = c;
            let paging = match after {
                Some(seq) => Paging::After(seq),
                None => Paging::Index {
                    offset: start_index - 1,
                    order: order.as_deref(),
                },
            };
            let page = search::search(tx, pid, kind, condition.as_ref(), paging, count)?;
            let paged = match after {
                None => Paged::Index(start_index),
                Some(_) => Paged::Cursor(
                    page.items
                        .iter()
                        .last()
                        .filter(|_| page.more)
                        .map(|r| format!("{CURSOR_PREFIX}{:x}", r.seq)),
                ),
            };
            let mut out = Vec::with_capacity(page.items.len() * 1536 + 256);
            render::list_start(&mut out, page.total, page.items.len(), &paged);
            let rows: Vec<_> = page.items.iter().collect();
            super::push_rows(tx, &mut out, (rt, &base), &rows, &projection, b",")?;
            render::list_end(&mut out);
            Ok((out, page.total))
        })
        .await?;
    Ok(Listed {
        body,
        connection_test: guid_lookup && total == 0,
    })
}

/// Whether a filter is `attribute eq "<a GUID>"`: Entra's Test Connection looks up a random
/// GUID in the matching attribute and expects an empty list.
fn looks_up_a_guid(f: &filter::Filter) -> bool {
    let filter::Filter::Compare(_, filter::Op::Eq, filter::CompValue::Str(v)) = f else {
        return false;
    };
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `POST /.search` at the provider's root: Users and Groups together, Users first, rendered.
pub(crate) async fn list_all(
    state: &AppState,
    principal: &Principal,
    request: ListRequest,
    quirks: impl FnOnce(Quirks),
) -> Result<Vec<u8>, Error> {
    if request.sort_by.is_some() || request.cursor.is_some() {
        return Err(bad_value(
            "a search across resource types supports neither sortBy nor cursor; search \
             /Users/.search or /Groups/.search instead"
                .into(),
        ));
    }
    let base = state.scim_base(&principal.provider_name);
    let model = state.model(principal).await?;
    // Tests of an attribute one type lacks match nothing of that type; a filter that names no
    // attribute of either type is an error (reported as for Users).
    let (ast, noted) = request.parsed()?;
    quirks(noted);
    let mut kinds = Vec::new();
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let rt = model.get(kind);
        let cond = match &ast {
            None => None,
            Some(f) => match filter::prune(rt, f) {
                Some(pruned) => Some(compile(rt, &base, &pruned)?),
                None => continue,
            },
        };
        kinds.push((kind, cond, request.projection(rt)));
    }
    if kinds.is_empty()
        && let Some(f) = &ast
    {
        filter::check(model.get(ResourceKind::User), f)?;
    }
    let (start_index, count) = (request.start_index, request.count);
    let pid = principal.provider_id;
    state
        .read(principal, move |c| -> store::Result<Vec<u8>> {
            // (`read` runs this in one read transaction: every page reads one snapshot.)
            let tx: &rusqlite::Connection = c;
            let mut total = 0;
            let mut skip = start_index - 1;
            let mut room = count;
            let mut items = Vec::new();
            let mut shown = 0;
            for (kind, cond, projection) in &kinds {
                let paging = Paging::Index {
                    offset: skip,
                    order: None,
                };
                let page = search::search(tx, pid, *kind, cond.as_ref(), paging, room)?;
                total += page.total;
                skip = (skip - page.total).max(0);
                room -= page.items.len() as i64;
                if !page.items.is_empty() {
                    if shown > 0 {
                        items.push(b',');
                    }
                    shown += page.items.len();
                    let rt = model.get(*kind);
                    let rows: Vec<_> = page.items.iter().collect();
                    super::push_rows(tx, &mut items, (rt, &base), &rows, projection, b",")?;
                }
            }
            let mut out = Vec::with_capacity(items.len() + 256);
            render::list_start(&mut out, total, shown, &Paged::Index(start_index));
            out.extend_from_slice(&items);
            render::list_end(&mut out);
            Ok(out)
        })
        .await
}

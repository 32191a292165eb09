//! The attributes that sum up a User or a Group in one row of a table: the columns of the
//! console's lists and of the CSV export, each with where its value comes from: the stored
//! document, or what a resource has besides it (`Row`). Part of the schema model, so no front
//! door spells attribute names itself; read from stored rows, nothing is rendered to be parsed
//! back.

use serde_json::Value;

use super::ResourceKind;
use super::schema::ENTERPRISE_USER;

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The resource's `id`.
    Id,
    /// `meta.created`.
    Created,
    /// `meta.lastModified`.
    Modified,
    /// How many values the computed attribute has (a group's members).
    Linked,
    /// A top-level attribute.
    Attr(&'static str),
    /// A sub-attribute of a complex one (`name.givenName`).
    Sub(&'static str, &'static str),
    /// An attribute of the enterprise extension.
    Enterprise(&'static str),
    /// The `value` of a multi-valued attribute: the primary one, else the first.
    Primary(&'static str),
    /// "active" or "inactive", as a user's page says it (`active` absent counts as true).
    Status,
}

/// A stored resource as the columns read it: its document, and what it has besides.
pub(crate) struct Row<'a> {
    pub(crate) doc: &'a Value,
    pub(crate) id: &'a str,
    pub(crate) created: &'a str,
    pub(crate) modified: &'a str,
    /// How many values its computed attribute has (0 where not read).
    pub(crate) linked: usize,
}

/// One column: its name in a CSV header, its label in the console, and its value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub(crate) header: &'static str,
    pub(crate) label: &'static str,
    pick: Pick,
}

const fn col(header: &'static str, label: &'static str, pick: Pick) -> Column {
    Column {
        header,
        label,
        pick,
    }
}

const ID: Column = col("id", "Id", Pick::Id);
const EXTERNAL_ID: Column = col("externalId", "External id", Pick::Attr("externalId"));
const USER_NAME: Column = col("userName", "userName", Pick::Attr("userName"));
const DISPLAY_NAME: Column = col("displayName", "Display name", Pick::Attr("displayName"));
const EMAIL: Column = col("email", "Email", Pick::Primary("emails"));
const ACTIVE: Column = col("active", "Active", Pick::Attr("active"));
const STATUS: Column = col("status", "Status", Pick::Status);
const CREATED: Column = col("created", "Created", Pick::Created);
const MODIFIED: Column = col("lastModified", "Last modified", Pick::Modified);

const USER_EXPORT: &[Column] = &[
    ID,
    EXTERNAL_ID,
    USER_NAME,
    DISPLAY_NAME,
    col("givenName", "Given name", Pick::Sub("name", "givenName")),
    col("familyName", "Family name", Pick::Sub("name", "familyName")),
    EMAIL,
    ACTIVE,
    col("title", "Title", Pick::Attr("title")),
    col("department", "Department", Pick::Enterprise("department")),
    CREATED,
    MODIFIED,
];
const GROUP_EXPORT: &[Column] = &[
    ID,
    EXTERNAL_ID,
    DISPLAY_NAME,
    col("members", "Members", Pick::Linked),
    CREATED,
    MODIFIED,
];
const USER_LIST: &[Column] = &[USER_NAME, DISPLAY_NAME, EMAIL, STATUS, MODIFIED];
const GROUP_LIST: &[Column] = &[DISPLAY_NAME, EXTERNAL_ID, MODIFIED];

/// The columns of the CSV export.
pub(crate) fn export_columns(kind: ResourceKind) -> &'static [Column] {
    match kind {
        ResourceKind::User => USER_EXPORT,
        ResourceKind::Group => GROUP_EXPORT,
    }
}

/// The columns of the console's list of Users or Groups; the first links to the resource.
pub(crate) fn list_columns(kind: ResourceKind) -> &'static [Column] {
    match kind {
        ResourceKind::User => USER_LIST,
        ResourceKind::Group => GROUP_LIST,
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl Column {
    /// The column's value in a row, as text ("" when absent).
    pub(crate) fn value(&self, row: &Row<'_>) -> String {
        let r = row.doc;
        match self.pick {
            Pick::Id => row.id.to_string(),
            Pick::Created => row.created.to_string(),
            Pick::Modified => row.modified.to_string(),
            Pick::Linked => row.linked.to_string(),
            Pick::Attr(a) => text(r.get(a)),
            Pick::Sub(a, s) => text(r.get(a).and_then(|v| v.get(s))),
            Pick::Enterprise(a) => text(r.get(ENTERPRISE_USER).and_then(|e| e.get(a))),
            Pick::Status => match r.get(ACTIVE.header) {
                Some(Value::Bool(false)) => "inactive".into(),
                _ => "active".into(),
            },
            Pick::Primary(a) => r
                .get(a)
                .and_then(Value::as_array)
                .and_then(|vs| {
                    vs.iter()
                        .find(|v| v.get("primary") == Some(&Value::Bool(true)))
                        .or_else(|| vs.first())
                })
                .map(|v| text(v.get("value")))
                .unwrap_or_default(),
        }
    }

    /// Whether the column counts the computed attribute (which must then be read).
    pub(crate) fn counts_linked(&self) -> bool {
        matches!(self.pick, Pick::Linked)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn columns_read_what_they_name() {
        let user = json!({
            "userName": "a@x", "active": false, "name": {"givenName": "A"},
            "emails": [{"value": "home@x"}, {"value": "work@x", "primary": true}],
            ENTERPRISE_USER: {"department": "R&D"},
        });
        let user = Row {
            doc: &user,
            id: "u1",
            created: "2026-01-01T00:00:00Z",
            modified: "2026-01-02T00:00:00Z",
            linked: 0,
        };
        let row: Vec<String> = export_columns(ResourceKind::User)
            .iter()
            .map(|c| c.value(&user))
            .collect();
        assert_eq!(
            row,
            [
                "u1",
                "",
                "a@x",
                "",
                "A",
                "",
                "work@x",
                "false",
                "",
                "R&D",
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z"
            ]
        );
        let doc = json!({"displayName": "G"});
        let group = Row {
            doc: &doc,
            linked: 2,
            ..user
        };
        let members = export_columns(ResourceKind::Group)
            .iter()
            .find(|c| c.header == "members")
            .map(|c| c.value(&group));
        assert_eq!(members.as_deref(), Some("2"));
        // Every list column is one the export has too, but the status, which the export
        // gives as the raw `active` (blank when absent) and a list as a word.
        for kind in [ResourceKind::User, ResourceKind::Group] {
            for c in list_columns(kind)
                .iter()
                .filter(|c| c.header != STATUS.header)
            {
                assert!(export_columns(kind).iter().any(|e| e.header == c.header));
            }
        }
        let status = |doc: Value| STATUS.value(&Row { doc: &doc, ..user });
        assert_eq!(status(json!({"active": false})), "inactive");
        assert_eq!(status(json!({"active": true})), "active");
        assert_eq!(status(json!({})), "active");
    }
}

/// The attributes the console's search anywhere looks in: the unique name (userName, a
/// group's displayName), the attributes a resource's summary shows in its core schema (names,
/// title, emails, phone numbers) and `externalId`, as filter paths. From the model, so no
/// front door spells the names.
fn search_paths(rt: &super::schema::ResourceType) -> Vec<String> {
    let mut paths = vec![rt.name_attribute().to_string()];
    for (urn, a) in rt.summary() {
        if urn.is_some() || a.name == rt.name_attribute() {
            continue;
        }
        match (a.multi_valued, a.default_sub()) {
            (true, Some(sub)) => paths.push(format!("{}.{}", a.name, sub.name)),
            (false, _) if a.ty == super::schema::Type::String => paths.push(a.name.to_string()),
            _ => {}
        }
    }
    paths
}

/// The SCIM filter behind the console's simple search for `text`: the unique name starting
/// with it; or, with `contains`, any of the `search_paths` containing it.
pub(crate) fn search_filter(
    rt: &super::schema::ResourceType,
    text: &str,
    contains: bool,
) -> String {
    let v = serde_json::to_string(text.trim()).unwrap_or_else(|_| "\"\"".into());
    if !contains {
        return format!("{} sw {v}", rt.name_attribute());
    }
    search_paths(rt)
        .iter()
        .map(|p| format!("{p} co {v}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// What a resource's search anywhere looks in, as the text index keeps it: the values of the
/// `search_paths` that compare regardless of case, case-folded, and those compared exactly
/// (`externalId`), as they are; one value per line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SearchText {
    pub(crate) folded: String,
    pub(crate) exact: String,
}

/// The `SearchText` of a stored resource: its document and its `externalId`.
pub(crate) fn search_text(
    rt: &super::schema::ResourceType,
    doc: &Value,
    external_id: Option<&str>,
) -> SearchText {
    use super::filter::{Target, parse_attr_path, resolve};
    let mut out = SearchText::default();
    for p in search_paths(rt) {
        let Ok(path) = parse_attr_path(&p) else {
            continue;
        };
        let Ok(target) = resolve(rt, &path, None) else {
            continue;
        };
        let mut values: Vec<&str> = Vec::new();
        match &target {
            Target::ExternalId => values.extend(external_id),
            Target::Attr { attr, sub, .. } => {
                let v = doc.get(attr.name);
                match (v, sub) {
                    (Some(Value::Array(items)), Some(s)) => values.extend(
                        items
                            .iter()
                            .filter_map(|i| i.get(s.name).and_then(Value::as_str)),
                    ),
                    (Some(Value::Object(o)), Some(s)) => {
                        values.extend(o.get(s.name).and_then(Value::as_str))
                    }
                    (Some(Value::String(t)), None) => values.push(t),
                    _ => {}
                }
            }
            _ => {}
        }
        let into = if target.case_exact() {
            &mut out.exact
        } else {
            &mut out.folded
        };
        for v in values {
            if !into.is_empty() {
                into.push('\n');
            }
            if target.case_exact() {
                into.push_str(v);
            } else {
                into.push_str(&super::fold(v));
            }
        }
    }
    out
}

/// The text index patterns (SQLite FTS5 with trigrams, GLOB) that find the resources whose
/// `search_text` holds `text` in a value: its folded form among the folded values, or itself
/// among the exact ones (never across two values: no value and no search holds a line break).
/// `None` where trigrams cannot answer: under three characters, a control character, or one
/// of GLOB's own (`*`, `?`, `[`).
pub(crate) fn search_text_patterns(text: &str) -> Option<SearchText> {
    let t = text.trim();
    let folded = super::fold(t);
    if t.chars().count() < 3
        || folded.chars().count() < 3
        || t.chars()
            .any(|c| c.is_control() || matches!(c, '*' | '?' | '['))
    {
        return None;
    }
    Some(SearchText {
        folded: format!("*{folded}*"),
        exact: format!("*{t}*"),
    })
}

#[cfg(test)]
mod search_tests {
    use super::*;

    #[test]
    fn the_simple_search_is_spelled_from_the_model() {
        let users = ResourceKind::User.builtin();
        assert_eq!(search_filter(users, "ann", false), "userName sw \"ann\"");
        let any = search_filter(users, "smith", true);
        for term in [
            "userName co \"smith\"",
            "displayName co \"smith\"",
            "emails.value co \"smith\"",
            "externalId co \"smith\"",
        ] {
            assert!(any.contains(term), "{any}");
        }
        assert!(super::super::filter::parse(&any).is_ok(), "{any}");
        let groups = ResourceKind::Group.builtin();
        assert_eq!(
            search_filter(groups, "sal", true),
            "displayName co \"sal\" or externalId co \"sal\""
        );
    }
}

#[cfg(test)]
mod text_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn search_text_holds_what_the_contains_filter_reads() {
        let users = ResourceKind::User.builtin();
        let doc = json!({
            "userName": "Ann.Smith@Example.com", "displayName": "Ann SMITH", "title": "CTO",
            "emails": [{"value": "ANN@home.example"}, {"value": "a@work.example", "primary": true}],
            "phoneNumbers": [{"value": "+1 555 0100"}],
            "name": {"givenName": "Ann"},
        });
        let t = search_text(users, &doc, Some("Ext-42"));
        for v in [
            "ann.smith@example.com",
            "ann smith",
            "cto",
            "ann@home.example",
            "a@work.example",
            "+1 555 0100",
        ] {
            assert!(t.folded.lines().any(|l| l == v), "{v} in {:?}", t.folded);
        }
        assert_eq!(t.exact, "Ext-42");
        // Every value the filter reads is there: the filter's paths and the text's agree.
        let filter = search_filter(users, "x", true);
        assert_eq!(
            filter.matches(" co ").count(),
            t.folded.lines().count() - 1 + t.exact.lines().count(),
            "{filter}: one email path for two emails"
        );
        let groups = ResourceKind::Group.builtin();
        let g = search_text(groups, &json!({"displayName": "Sales EMEA"}), None);
        assert_eq!(g.folded, "sales emea");
        assert_eq!(g.exact, "");
    }

    #[test]
    fn search_text_patterns_hold_three_characters_or_more_and_no_wildcard() {
        let p = search_text_patterns(" Smi\"th ").unwrap();
        assert_eq!(
            (p.folded.as_str(), p.exact.as_str()),
            ("*smi\"th*", "*Smi\"th*")
        );
        assert!(search_text_patterns("ab").is_none());
        assert!(search_text_patterns("a\nbc").is_none());
        for wild in ["a*bc", "ab?c", "[abc]"] {
            assert!(search_text_patterns(wild).is_none(), "{wild}");
        }
    }
}

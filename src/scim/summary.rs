//! The attributes that sum up a User or a Group in one row of a table: the columns of the
//! console's lists and of the CSV export, each with where its value comes from in a resource
//! as served. Part of the schema model, so no front door spells attribute names itself.

use serde_json::Value;

use super::ResourceKind;
use super::schema::ENTERPRISE_USER;

/// Where a column's value comes from in a served resource.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// A top-level attribute.
    Attr(&'static str),
    /// A sub-attribute of a complex one (`name.givenName`).
    Sub(&'static str, &'static str),
    /// An attribute of the enterprise extension.
    Enterprise(&'static str),
    /// The `value` of a multi-valued attribute: the primary one, else the first.
    Primary(&'static str),
    /// How many values a multi-valued attribute has.
    Count(&'static str),
    /// A sub-attribute of `meta`.
    Meta(&'static str),
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

const ID: Column = col("id", "Id", Pick::Attr("id"));
const EXTERNAL_ID: Column = col("externalId", "External id", Pick::Attr("externalId"));
const USER_NAME: Column = col("userName", "userName", Pick::Attr("userName"));
const DISPLAY_NAME: Column = col("displayName", "Display name", Pick::Attr("displayName"));
const EMAIL: Column = col("email", "Email", Pick::Primary("emails"));
const ACTIVE: Column = col("active", "Active", Pick::Attr("active"));
const CREATED: Column = col("created", "Created", Pick::Meta("created"));
const MODIFIED: Column = col("lastModified", "Last modified", Pick::Meta("lastModified"));

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
    col("members", "Members", Pick::Count("members")),
    CREATED,
    MODIFIED,
];
const USER_LIST: &[Column] = &[USER_NAME, DISPLAY_NAME, EMAIL, ACTIVE, MODIFIED];
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
    /// The column's value in a resource as served, as text ("" when absent).
    pub(crate) fn value(&self, r: &Value) -> String {
        match self.pick {
            Pick::Attr(a) => text(r.get(a)),
            Pick::Sub(a, s) => text(r.get(a).and_then(|v| v.get(s))),
            Pick::Enterprise(a) => text(r.get(ENTERPRISE_USER).and_then(|e| e.get(a))),
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
            Pick::Count(a) => r
                .get(a)
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
                .to_string(),
            Pick::Meta(m) => text(r.get("meta").and_then(|v| v.get(m))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn columns_read_what_they_name() {
        let user = json!({
            "id": "u1", "userName": "a@x", "active": false, "name": {"givenName": "A"},
            "emails": [{"value": "home@x"}, {"value": "work@x", "primary": true}],
            ENTERPRISE_USER: {"department": "R&D"},
            "meta": {"created": "2026-01-01T00:00:00Z", "lastModified": "2026-01-02T00:00:00Z"}
        });
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
        let group = json!({"displayName": "G", "members": [{"value": "u1"}, {"value": "u2"}]});
        let members = export_columns(ResourceKind::Group)
            .iter()
            .find(|c| c.header == "members")
            .map(|c| c.value(&group));
        assert_eq!(members.as_deref(), Some("2"));
        // Every list column is one the export has too.
        for kind in [ResourceKind::User, ResourceKind::Group] {
            for c in list_columns(kind) {
                assert!(export_columns(kind).iter().any(|e| e.header == c.header));
            }
        }
    }
}

//! LDAP entries: users' and groups' from rows of one batch (managers' and members' names read
//! with one statement per batch), the root entry, the organizational units, the root DSE, and
//! an entry as a message with the attributes a search asked for.

use super::*;

impl Session {
    pub(super) fn root_dse(&self) -> Entry {
        let mut contexts = Vec::new();
        // The version only to a bound client: an anonymous one learns nothing to look up.
        let mut version = Vec::new();
        if let Some(b) = &self.bound {
            contexts.push(b.base.clone());
            version.push(env!("CARGO_PKG_VERSION").to_string());
        }
        Entry::new(
            "",
            vec![
                ("objectClass".into(), vec!["top".into()]),
                ("vendorName".into(), vec!["scimd".into()]),
                ("vendorVersion".into(), version),
                ("supportedLDAPVersion".into(), vec!["3".into()]),
                ("supportedControl".into(), vec![OID_PAGED.into()]),
                (
                    "supportedExtension".into(),
                    if self.can_start_tls && !self.tls {
                        vec![OID_WHOAMI.into(), OID_STARTTLS.into()]
                    } else {
                        vec![OID_WHOAMI.into()]
                    },
                ),
                ("supportedSASLMechanisms".into(), vec![]),
                ("subschemaSubentry".into(), vec!["cn=schema".into()]),
                ("namingContexts".into(), contexts),
            ],
        )
    }
}

/// The directory entries of these rows of one kind: deactivated users are left out (they are
/// not in the directory).
pub(super) fn entries(
    tx: &rusqlite::Connection,
    rt: &ResourceType,
    scim: &str,
    pid: i64,
    tree: &str,
    mappings: &[(String, AttrPath)],
    rows: &store::resources::Rows,
) -> store::Result<Vec<Entry>> {
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    // A user's groups, nested ones included, for memberOf (a group's members are read below).
    let groups = match rt.kind() {
        ResourceKind::User => Some(store::members::group_seqs_of_many(tx, &seqs)?),
        ResourceKind::Group => None,
    };
    let docs = rows
        .iter()
        .map(|row| serde_json::from_str::<Value>(row.doc))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| store::Error::Internal(format!("a stored document for LDAP: {e}")))?;
    // The managers' names and the groups' member names: one statement for the whole batch.
    let (managers, members) = match rt.kind() {
        ResourceKind::User => {
            let ids: Vec<&str> = docs.iter().filter_map(directory::manager_id).collect();
            let names = store::resources::names_by_id(tx, pid, ResourceKind::User, &ids)?;
            (names, Default::default())
        }
        ResourceKind::Group => (
            Default::default(),
            store::members::member_names_many(tx, &seqs)?,
        ),
    };
    let mut entries = Vec::with_capacity(seqs.len());
    for ((i, row), doc) in rows.iter().enumerate().zip(docs) {
        let operational = directory::operational(row.id, row.created, row.modified);
        let entry = match rt.kind() {
            ResourceKind::User => {
                if doc.as_object().is_some_and(|d| !rt.is_active(d)) {
                    continue;
                }
                let group_names: Vec<&str> = match &groups {
                    Some((names, lists)) => lists
                        .of(i)
                        .iter()
                        .filter_map(|&(g, _)| names[g].2.as_deref())
                        .collect(),
                    None => Vec::new(),
                };
                let manager = directory::manager_id(&doc)
                    .and_then(|m| managers.get(m))
                    .map(|n| directory::user_dn(tree, n));
                let dn = directory::user_dn(
                    tree,
                    doc.get(rt.name_attribute())
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
                let mut attrs = directory::user_attributes(&doc, tree, manager, &group_names);
                if !mappings.is_empty() {
                    // The document is not needed after this: moved, not copied.
                    let groups = groups.as_ref().map(|(n, l)| (n, l.of(i)));
                    let served = as_served(doc, rt, scim, &row, groups);
                    directory::apply_mappings(&mut attrs, &served, mappings);
                }
                Entry {
                    dn,
                    attributes: attrs,
                    operational,
                }
            }
            ResourceKind::Group => {
                let name = doc
                    .get(rt.name_attribute())
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let members: Vec<String> = members
                    .get(&row.seq)
                    .into_iter()
                    .flatten()
                    .map(|(k, n)| match k {
                        ResourceKind::User => directory::user_dn(tree, n),
                        ResourceKind::Group => directory::group_dn(tree, n),
                    })
                    .collect();
                Entry {
                    dn: directory::group_dn(tree, name),
                    attributes: directory::group_attributes(name, members),
                    operational,
                }
            }
        };
        entries.push(entry);
    }
    Ok(entries)
}

/// A stored document with what a SCIM GET adds to it (`id`, `groups`, `meta`), which a
/// provider's attribute mappings may name.
pub(super) fn as_served(
    doc: Value,
    rt: &ResourceType,
    scim: &str,
    row: &store::resources::Stored<'_>,
    groups: Option<(&store::members::GroupNames, &[(usize, bool)])>,
) -> Value {
    let Value::Object(mut doc) = doc else {
        return doc;
    };
    doc.insert("id".into(), row.id.into());
    if let Some((names, of)) = groups
        && !of.is_empty()
    {
        let groups = of
            .iter()
            .map(|&(g, direct)| {
                let (_, id, name) = &names[g];
                serde_json::json!({
                    "value": id,
                    "display": name,
                    "type": if direct { "direct" } else { "indirect" },
                })
            })
            .collect();
        doc.insert(rt.linked_name().into(), Value::Array(groups));
    }
    doc.insert(
        "meta".into(),
        serde_json::json!({
            "resourceType": rt.name(),
            "created": row.created,
            "lastModified": row.modified,
            "location": format!("{scim}/{}/{}", rt.kind().endpoint(), row.id),
            "version": crate::render::etag(row.version),
        }),
    );
    Value::Object(doc)
}

pub(super) fn top_entry() -> Entry {
    Entry::new(
        "dc=scimd",
        vec![
            (
                "objectClass".into(),
                vec!["top".into(), "dcObject".into(), "organization".into()],
            ),
            ("dc".into(), vec!["scimd".into()]),
            ("o".into(), vec!["scimd".into()]),
        ],
    )
}

pub(super) fn root_entry(provider: &str, tree: &str) -> Entry {
    Entry::new(tree, directory::root_attributes(provider, tree))
}

pub(super) fn ou_entry(ou: &str, tree: &str) -> Entry {
    Entry::new(
        format!("ou={ou},{tree}"),
        vec![
            (
                "objectClass".into(),
                vec!["top".into(), "organizationalUnit".into()],
            ),
            ("ou".into(), vec![ou.to_string()]),
        ],
    )
}

pub(super) fn entry_msg(id: i32, entry: &Entry, wanted: &[String], types_only: bool) -> LdapMsg {
    let attributes = entry
        .select(wanted)
        .into_iter()
        .map(|(atype, vals)| LdapPartialAttribute {
            atype: atype.to_string(),
            vals: if types_only {
                Vec::new()
            } else {
                vals.iter().map(|v| v.clone().into_bytes()).collect()
            },
        })
        .collect();
    LdapMsg::new(
        id,
        LdapOp::SearchResultEntry(LdapSearchResultEntry {
            dn: entry.dn.clone(),
            attributes,
        }),
    )
}

/// Whether a fixed entry (root DSE, tree nodes) matches a filter: equality and substrings
/// compare regardless of case.
pub(super) fn matches_static(f: &LdapFilter, entry: &Entry) -> bool {
    let values = |a: &str| -> Vec<String> { entry.values(a).map(|v| v.to_lowercase()).collect() };
    match f {
        LdapFilter::And(parts) => parts.iter().all(|p| matches_static(p, entry)),
        LdapFilter::Or(parts) => parts.iter().any(|p| matches_static(p, entry)),
        LdapFilter::Not(p) => !matches_static(p, entry),
        LdapFilter::Present(a) => a.eq_ignore_ascii_case("objectClass") || !values(a).is_empty(),
        LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v) => {
            values(a).contains(&v.to_lowercase())
        }
        LdapFilter::Substring(a, s) => values(a).iter().any(|v| {
            s.initial
                .as_ref()
                .is_none_or(|i| v.starts_with(&i.to_lowercase()))
                && s.final_
                    .as_ref()
                    .is_none_or(|e| v.ends_with(&e.to_lowercase()))
                && s.any.iter().all(|m| v.contains(&m.to_lowercase()))
        }),
        LdapFilter::GreaterOrEqual(a, v) => values(a).iter().any(|x| *x >= v.to_lowercase()),
        LdapFilter::LessOrEqual(a, v) => values(a).iter().any(|x| *x <= v.to_lowercase()),
        LdapFilter::Extensible(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_entries_are_filtered_regardless_of_case() {
        let e = ou_entry(directory::PEOPLE, "dc=p,dc=scimd");
        assert!(matches_static(
            &LdapFilter::Present("objectclass".into()),
            &e
        ));
        assert!(matches_static(
            &LdapFilter::Equality("objectClass".into(), "ORGANIZATIONALUNIT".into()),
            &e
        ));
        assert!(!matches_static(
            &LdapFilter::Equality("objectClass".into(), "person".into()),
            &e
        ));
    }
}

//! LDAP entries: users' and groups' from rows of one batch (managers' and members' names read
//! with one statement per batch), the root entry, the organizational units, the root DSE, and
//! an entry as a message with the attributes a search asked for.

use super::*;

impl Session {
    /// The bases of the trees a client may search: a bound client's own, or for an anonymous
    /// one every provider's (as a directory lists its naming contexts, so SSSD and others can
    /// find their search base; reading any of them still needs a bind).
    pub(super) async fn naming_contexts(&self) -> Vec<String> {
        if let Some(b) = &self.bound {
            return vec![b.base.clone()];
        }
        let read = self.state.store.run(|c| {
            let custom = ldap_accounts::custom_bases(c)?;
            let all = store::providers::list(c)?;
            Ok::<_, store::Error>(
                all.into_iter()
                    .map(|p| {
                        custom
                            .iter()
                            .find(|(name, _)| name.eq_ignore_ascii_case(&p.name))
                            .map_or_else(|| directory::base_dn(&p.name), |(_, b)| b.clone())
                    })
                    .collect(),
            )
        });
        read.await.unwrap_or_default()
    }

    pub(super) fn root_dse(&self, contexts: Vec<String>) -> Entry {
        // The version only to a bound client: an anonymous one learns nothing to look up.
        let mut version = Vec::new();
        if self.bound.is_some() {
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
    truth(f, entry) == Some(true)
}

/// A filter's value for a fixed entry: TRUE, FALSE or Undefined (`None`: an attribute neither
/// the entry has nor the directory defines, or extensible matching), with NOT of Undefined
/// Undefined (RFC 4511 §4.5.1.7).
fn truth(f: &LdapFilter, entry: &Entry) -> Option<bool> {
    let values = |a: &str| -> Vec<String> { entry.values(a).map(|v| v.to_lowercase()).collect() };
    let known = |a: &str| entry.values(a).next().is_some() || directory::defines(a);
    let item = |a: &str, test: &dyn Fn(&[String]) -> bool| known(a).then(|| test(&values(a)));
    match f {
        LdapFilter::And(parts) => {
            let vs: Vec<Option<bool>> = parts.iter().map(|p| truth(p, entry)).collect();
            if vs.contains(&Some(false)) {
                Some(false)
            } else if vs.contains(&None) {
                None
            } else {
                Some(true)
            }
        }
        LdapFilter::Or(parts) => {
            let vs: Vec<Option<bool>> = parts.iter().map(|p| truth(p, entry)).collect();
            if vs.contains(&Some(true)) {
                Some(true)
            } else if vs.contains(&None) {
                None
            } else {
                Some(false)
            }
        }
        LdapFilter::Not(p) => truth(p, entry).map(|v| !v),
        LdapFilter::Present(a) => {
            if a.eq_ignore_ascii_case("objectClass") {
                return Some(true);
            }
            item(a, &|vs| !vs.is_empty())
        }
        LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v) => {
            let v = v.to_lowercase();
            item(a, &|vs| vs.contains(&v))
        }
        LdapFilter::Substring(a, s) => item(a, &|vs| {
            vs.iter().any(|v| {
                s.initial
                    .as_ref()
                    .is_none_or(|i| v.starts_with(&i.to_lowercase()))
                    && s.final_
                        .as_ref()
                        .is_none_or(|e| v.ends_with(&e.to_lowercase()))
                    && s.any.iter().all(|m| v.contains(&m.to_lowercase()))
            })
        }),
        LdapFilter::GreaterOrEqual(a, v) => {
            let v = v.to_lowercase();
            item(a, &|vs| vs.iter().any(|x| *x >= v))
        }
        LdapFilter::LessOrEqual(a, v) => {
            let v = v.to_lowercase();
            item(a, &|vs| vs.iter().any(|x| *x <= v))
        }
        // With the attribute's own equality rule: that equality, and with `:dn:` also the
        // values of the entry's DN; else Undefined.
        LdapFilter::Extensible(m) => {
            let attr = m.type_.as_deref()?;
            if !directory::is_own_equality(attr, m.matching_rule.as_deref()) {
                return None;
            }
            let equality = truth(
                &LdapFilter::Equality(attr.to_string(), m.match_value.clone()),
                entry,
            );
            let in_dn = m.dn_attributes
                && directory::parse_dn(&entry.dn).is_some_and(|rdns| {
                    rdns.iter().any(|(a, v)| {
                        a.eq_ignore_ascii_case(attr)
                            && v.to_lowercase() == m.match_value.to_lowercase()
                    })
                });
            if in_dn { Some(true) } else { equality }
        }
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

//! The directory's reads (the use case behind every LDAP search): entries of a binding's tree
//! in batches, each batch one job on a reader thread in one snapshot, after the binding's
//! standing is checked in that same snapshot (a revoked account, a deactivated user or a
//! changed password reads nothing more). LDAP filters become SCIM filters (`scim::directory`)
//! compiled to the same SQL as SCIM searches; entries are built from rows with one statement
//! per batch for managers, groups and members, whatever the batch size.

use crate::scim::borrowed::Json;
use crate::scim::posix::Posix;

use super::AppState;
use crate::scim::ResourceKind;
use crate::scim::directory::{self, Entry, Node, Resolve};
use crate::scim::filter::{AttrPath, CompValue, Filter, Op};
use crate::scim::schema::ResourceType;
use crate::store::{self, ldap_accounts};
use ldap3_proto::proto::LdapFilter;

/// Who is reading, as a batch needs it: the binding's provider and tree, and what its standing
/// is checked against.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    pub(crate) provider_id: i64,
    pub(crate) provider: String,
    /// The tree's base DN.
    pub(crate) tree: String,
    /// Whether the base DN is the provider's own choice.
    pub(crate) custom: bool,
    pub(crate) check: Check,
}

/// What one batch reads: which kinds (in order), the filter, and where to start.
pub(crate) struct Want<'f> {
    pub(crate) kinds: &'f [ResourceKind],
    pub(crate) filter: &'f LdapFilter,
    /// Inside this one entry only (a base-scope search of a user or group): its name.
    pub(crate) only: Option<&'f str>,
    pub(crate) at: Position,
    /// Entries at most.
    pub(crate) count: i64,
}

/// Where a search goes on: the index of a kind in its list, and the key (a row's `seq`) after
/// which that kind's entries follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) phase: usize,
    pub(crate) after: i64,
}

/// Entries read for a search: written into `out` by the caller's encoder, how many, and where
/// the search goes on.
#[derive(Default)]
pub(crate) struct Batch<B> {
    pub(crate) out: B,
    pub(crate) count: usize,
    pub(crate) at: Position,
}

/// Up to `want.count` entries of `reader`'s tree that match the filter, from `want.at` on; all
/// in one job on a reader thread and one read transaction, across kinds (a search of the whole
/// tree is one round trip). Each entry goes through `encode` there, on the reader thread, not
/// on the connection's.
pub(crate) async fn batch<B, E>(
    state: &std::sync::Arc<AppState>,
    reader: &Reader,
    want: Want<'_>,
    encode: E,
) -> Result<Batch<B>, Failure>
where
    B: Default + Send + 'static,
    E: Fn(&mut B, &Entry) + Send + 'static,
{
    read(state, reader, want, Some(encode)).await
}

/// Whether `want` finds any entry (a compare, or whether a search goes on): the rows are
/// read and deactivated users left out as `batch` does, but no entry is built.
pub(crate) async fn exists(
    state: &std::sync::Arc<AppState>,
    reader: &Reader,
    want: Want<'_>,
) -> Result<bool, Failure> {
    let found = read::<(), fn(&mut (), &Entry)>(state, reader, want, None).await?;
    Ok(found.count > 0)
}

/// `batch`, or with no encoder only the count of the entries it would make.
async fn read<B, E>(
    state: &std::sync::Arc<AppState>,
    reader: &Reader,
    want: Want<'_>,
    encode: Option<E>,
) -> Result<Batch<B>, Failure>
where
    B: Default + Send + 'static,
    E: Fn(&mut B, &Entry) + Send + 'static,
{
    let (kinds, filter) = (want.kinds.to_vec(), want.filter.clone());
    let (only, at, count) = (want.only.map(str::to_string), want.at, want.count);
    let (reader, core) = (reader.clone(), state.clone());
    let scim = state.scim_base(&reader.provider);
    state
        .store
        .run(move |c| {
            // One read transaction: every statement below sees the same snapshot, and the
            // snapshot is taken once.
            let tx = store::Snapshot::begin(c)?;
            let (model_version, ldap_version) = match reader.check.standing(&tx)? {
                ldap_accounts::Standing::Valid {
                    model_version,
                    ldap_version,
                } => (model_version, ldap_version),
                ldap_accounts::Standing::Gone(why) => return Err(Failure::Gone(why)),
            };
            let pid = reader.provider_id;
            let model = core.model_at(&tx, pid, model_version)?;
            let settings = core.ldap_settings_at(&tx, pid, ldap_version)?;
            let (mappings, posix) = (&settings.mappings, &settings.posix);
            let tree = reader.tree.as_str();
            let resolver = Resolver {
                c: &tx,
                pid,
                mappings,
                posix: posix.as_ref(),
                base: tree,
                tree: reader.custom.then_some((reader.provider.as_str(), tree)),
                failed: Default::default(),
            };
            let mut out = Batch {
                at,
                ..Batch::default()
            };
            let mut left = count;
            while left > 0 && out.at.phase < kinds.len() {
                let Position { phase, after } = out.at;
                let (kind, rt) = (kinds[phase], model.get(kinds[phase]));
                out.at = Position {
                    phase: phase + 1,
                    after: 0,
                };
                let Some(condition) =
                    entry_condition(rt, &scim, &filter, only.as_deref(), &resolver)?
                else {
                    continue;
                };
                let (rows, more) =
                    store::search::after(&tx, pid, kind, condition.as_ref(), after, left)?;
                let found = match &encode {
                    Some(encode) => {
                        let own: Vec<(String, AttrPath)> = (mappings.iter())
                            .filter(|(k, _, _)| *k == kind)
                            .map(|(_, n, p)| (n.clone(), p.clone()))
                            .collect();
                        let how = Shown {
                            scim: &scim,
                            pid,
                            tree,
                            mappings: &own,
                            posix: posix.as_ref(),
                        };
                        let found = entries(&tx, rt, &how, &rows)?;
                        for entry in &found {
                            encode(&mut out.out, entry);
                        }
                        found.len()
                    }
                    None => in_directory(rt, &rows)?,
                };
                if more && let Some(r) = rows.iter().last() {
                    // Deactivated users among the rows make fewer entries than asked for:
                    // the kind goes on after its last row, in this job.
                    out.at = Position {
                        phase,
                        after: r.seq,
                    };
                }
                out.count += found;
                left -= found as i64;
            }
            Ok(out)
        })
        .await
}

/// Whether the binding may still read (the check each batch makes), for a search that reads
/// no resource.
pub(crate) async fn standing(state: &AppState, reader: &Reader) -> Result<(), Failure> {
    let check = reader.check.clone();
    state
        .store
        .run(move |c| match check.standing(c)? {
            ldap_accounts::Standing::Valid { .. } => Ok(()),
            ldap_accounts::Standing::Gone(why) => Err(Failure::Gone(why)),
        })
        .await
}

/// The record a binding rests on, checked before each search: a service account (by id), or a
/// user and the hash of the password it bound with.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    Account(String),
    User {
        seq: i64,
        password_hash: String,
    },
    /// A user bound with one of their application passwords (its id).
    AppPassword {
        seq: i64,
        id: String,
    },
}

impl Check {
    pub(crate) fn standing(
        &self,
        c: &rusqlite::Connection,
    ) -> store::Result<ldap_accounts::Standing> {
        match self {
            Check::Account(id) => {
                ldap_accounts::account_standing(c, id, chrono::Utc::now().timestamp())
            }
            Check::User { seq, password_hash } => {
                ldap_accounts::user_standing(c, *seq, password_hash)
            }
            Check::AppPassword { seq, id } => {
                store::sign_in::app_password_standing(c, *seq, id, chrono::Utc::now().timestamp())
            }
        }
    }
}

impl From<store::Error> for Failure {
    fn from(e: store::Error) -> Failure {
        Failure::Store(e)
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Store(e.into())
    }
}

/// Why a batch of entries was not read.
pub(crate) enum Failure {
    /// The binding is no longer valid (see `Check`).
    Gone(&'static str),
    Store(store::Error),
}

/// The SQL condition for the entries of `kind` that match an LDAP filter (inside the named
/// entry only, for a base-scope search of a user or group): `None` inside when every entry
/// matches, `None` outside when none can.
pub(crate) fn entry_condition(
    rt: &ResourceType,
    scim: &str,
    filter: &LdapFilter,
    only: Option<&str>,
    resolver: &Resolver<'_>,
) -> store::Result<Option<Option<store::search::Condition>>> {
    let mut f = directory::simplify(directory::to_scim(filter, rt, resolver));
    if let Some(e) = resolver.take_error() {
        return Err(e);
    }
    if !directory::may_match(&f) {
        return Ok(None);
    }
    let name_attr = rt.name_attribute();
    let mut extra = Vec::new();
    if let Some(name) = only {
        extra.push(Filter::Compare(
            AttrPath {
                uri: None,
                attr: name_attr.into(),
                sub: None,
            },
            Op::Eq,
            CompValue::Str(name.to_string()),
        ));
    }
    for e in extra {
        f = if directory::is_always(&f) {
            e
        } else {
            Filter::And(Box::new(e), Box::new(f))
        };
    }
    if directory::is_always(&f) {
        return Ok(Some(None));
    }
    Ok(Some(Some(
        crate::store::query::condition(rt, scim, &f).map_err(store::Error::Rejected)?,
    )))
}

/// A provider's own LDAP attributes and POSIX identities, as of one `ldap_version`.
pub(crate) struct LdapSettings {
    pub(crate) version: i64,
    /// (entries of this type, LDAP name, SCIM path).
    pub(crate) mappings: Vec<(ResourceKind, String, AttrPath)>,
    pub(crate) posix: Option<Posix>,
}

impl LdapSettings {
    pub(crate) fn read(c: &rusqlite::Connection, pid: i64, version: i64) -> store::Result<Self> {
        let mappings = ldap_accounts::mappings(c, pid)?
            .into_iter()
            .filter_map(|(k, n, p)| directory::parse_path(&p).ok().map(|p| (k, n, p)))
            .collect();
        Ok(LdapSettings {
            version,
            mappings,
            posix: ldap_accounts::posix(c, pid)?,
        })
    }
}

/// Finds resources by unique name for DN-valued filters.
pub(crate) struct Resolver<'c> {
    pub(crate) c: &'c rusqlite::Connection,
    pub(crate) pid: i64,
    /// The provider's own attributes: (entries of this type, LDAP name, SCIM path).
    pub(crate) mappings: &'c [(ResourceKind, String, AttrPath)],
    pub(crate) posix: Option<&'c Posix>,
    /// The base DN of the tree.
    pub(crate) base: &'c str,
    /// The provider and the base it chose, if it did.
    pub(crate) tree: Option<(&'c str, &'c str)>,
    /// The first lookup that failed: the translation is then not used (a failing read must not
    /// pass for "no such entry").
    pub(crate) failed: std::cell::RefCell<Option<rusqlite::Error>>,
}

impl Resolver<'_> {
    /// The error of a lookup made while translating, if one failed.
    pub(crate) fn take_error(&self) -> Option<store::Error> {
        self.failed.borrow_mut().take().map(store::Error::from)
    }
}

impl Resolve for Resolver<'_> {
    fn id_of(&self, kind: ResourceKind, name: &str) -> Option<String> {
        match store::resources::entry_id_by_name(self.c, self.pid, kind, name) {
            Ok(id) => id,
            Err(e) => {
                self.failed.borrow_mut().get_or_insert(e);
                None
            }
        }
    }

    fn node(&self, dn: &str) -> Option<Node> {
        match self.tree {
            Some((provider, base)) => directory::locate_under(dn, provider, base),
            None => directory::locate(dn),
        }
    }

    fn mapped(&self, kind: ResourceKind, ldap: &str) -> Option<AttrPath> {
        self.mappings
            .iter()
            .find(|(k, n, _)| *k == kind && n.eq_ignore_ascii_case(ldap))
            .map(|(_, _, p)| p.clone())
    }

    fn posix(&self) -> Option<&Posix> {
        self.posix
    }

    fn base(&self) -> Option<String> {
        Some(self.base.to_string())
    }
}

/// How many of these rows of one kind are in the directory (deactivated users are not).
fn in_directory(rt: &ResourceType, rows: &store::resources::Rows) -> store::Result<usize> {
    if rt.kind() == ResourceKind::Group {
        return Ok(rows.iter().count());
    }
    rows.iter().try_fold(0, |n, row| {
        let doc = Json::parse(row.doc)
            .map_err(|e| store::Error::Internal(format!("a stored document for LDAP: {e}")))?;
        Ok(n + usize::from(rt.is_active_doc(&doc)))
    })
}

/// How a provider's entries are shown: its SCIM base, its tree, its own attributes and its
/// POSIX identities.
pub(crate) struct Shown<'a> {
    pub(crate) scim: &'a str,
    pub(crate) pid: i64,
    pub(crate) tree: &'a str,
    /// The provider's own attributes of these entries.
    pub(crate) mappings: &'a [(String, AttrPath)],
    pub(crate) posix: Option<&'a Posix>,
}

/// The directory entries of these rows of one kind: deactivated users are left out (they are
/// not in the directory).
pub(crate) fn entries(
    tx: &rusqlite::Connection,
    rt: &ResourceType,
    how: &Shown<'_>,
    rows: &store::resources::Rows,
) -> store::Result<Vec<Entry>> {
    let Shown {
        scim,
        pid,
        tree,
        mappings,
        posix,
    } = *how;
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    // A user's groups, nested ones included, for memberOf (a group's members are read below).
    let groups = match rt.kind() {
        ResourceKind::User => Some(store::members::group_seqs_of_many(tx, &seqs)?),
        ResourceKind::Group => None,
    };
    // Read borrowed: the few attributes an entry shows, without copying the document.
    let docs = rows
        .iter()
        .map(|row| Json::parse(row.doc))
        .collect::<Result<Vec<Json<'_>>, _>>()
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
                if !rt.is_active_doc(&doc) {
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
                        .and_then(Json::as_str)
                        .unwrap_or_default(),
                );
                let mut attrs = directory::user_attributes(&doc, tree, manager, &group_names);
                if let Some(p) = posix {
                    let name = doc.get(rt.name_attribute()).and_then(Json::as_str);
                    attrs.extend(p.user_attributes(row.seq, name.unwrap_or_default()));
                }
                if !mappings.is_empty() {
                    let groups = groups.as_ref().map(|(n, l)| (n, l.of(i)));
                    let served = served(rt, scim, &row, groups);
                    directory::apply_mappings(&mut attrs, &doc, Some(&served), mappings);
                }
                directory::posix_class(ResourceKind::User, &mut attrs);
                Entry {
                    dn,
                    attributes: attrs,
                    operational,
                }
            }
            ResourceKind::Group => {
                let name = doc
                    .get(rt.name_attribute())
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                let listed = members.get(&row.seq).map_or(&[][..], Vec::as_slice);
                let dns: Vec<String> = listed
                    .iter()
                    .map(|(k, n)| match k {
                        ResourceKind::User => directory::user_dn(tree, n),
                        ResourceKind::Group => directory::group_dn(tree, n),
                    })
                    .collect();
                let mut attrs = directory::group_attributes(name, dns);
                if let Some(p) = posix {
                    let uids = listed
                        .iter()
                        .filter(|(k, _)| *k == ResourceKind::User)
                        .map(|(_, n)| n.clone())
                        .collect();
                    attrs.extend(p.group_attributes(row.seq, uids));
                }
                if !mappings.is_empty() {
                    directory::apply_mappings(&mut attrs, &doc, None, mappings);
                }
                directory::posix_class(ResourceKind::Group, &mut attrs);
                Entry {
                    dn: directory::group_dn(tree, name),
                    attributes: attrs,
                    operational,
                }
            }
        };
        entries.push(entry);
    }
    Ok(entries)
}

/// What a SCIM GET shows of a user besides its stored document, for mappings that name it.
fn served<'r>(
    rt: &'r ResourceType,
    scim: &str,
    row: &store::rows::Stored<'r>,
    groups: Option<(&'r store::members::GroupNames, &[(usize, bool)])>,
) -> directory::Served<'r> {
    let linked = match groups {
        Some((names, of)) => of
            .iter()
            .map(|&(g, direct)| {
                let (_, id, name) = &names[g];
                (id.as_str(), name.as_deref(), direct)
            })
            .collect(),
        None => Vec::new(),
    };
    directory::Served {
        id: row.id,
        resource_type: rt.name(),
        created: row.created,
        modified: row.modified,
        version: crate::render::etag(row.version),
        location: format!("{scim}/{}/{}", rt.kind().endpoint(), row.id),
        linked_name: rt.linked_name(),
        linked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_that_fails_is_an_error_not_no_match() {
        // No tables at all: the lookup of the member's id fails.
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let resolver = Resolver {
            c: &c,
            pid: 1,
            mappings: &[],
            posix: None,
            base: "dc=p,dc=scimd",
            tree: None,
            failed: Default::default(),
        };
        let filter =
            LdapFilter::Equality("member".into(), "uid=alice,ou=people,dc=p,dc=scimd".into());
        let rt = crate::scim::schema::Model::builtin().get(ResourceKind::Group);
        let condition =
            |r: &Resolver<'_>| entry_condition(rt, "http://h/scim/v2/p", &filter, None, r);
        assert!(condition(&resolver).is_err());
        // With the table there and no such user, the filter simply matches nothing.
        let c = crate::store::test_conn();
        let got = condition(&Resolver { c: &c, ..resolver });
        assert!(matches!(got, Ok(None)), "{:?}", got.err());
    }
}

//! LDAP searches: scope and base to a plan, the filter to SQL through the SCIM filter
//! (`entry_condition`), entries read in batches on a reader thread within one snapshot, paging
//! with opaque authenticated cookies, and the limits of a search.

use super::*;

impl Session {
    pub(super) async fn search(
        &mut self,
        id: i32,
        req: LdapSearchRequest,
        controls: Vec<LdapControl>,
        out: &mut Writer<'_>,
    ) -> std::io::Result<()> {
        let finish = |res: LdapResult, ctrl: Vec<LdapControl>| {
            vec![LdapMsg::new_with_ctrls(
                id,
                LdapOp::SearchResultDone(res),
                ctrl,
            )]
        };
        let config = &self.state.config;
        let (terms, depth) = directory::filter_size(&req.filter);
        let (max_terms, max_depth) = (
            config.ldap_max_filter_terms as usize,
            config.ldap_max_filter_depth as usize,
        );
        if terms > max_terms || depth > max_depth {
            let what = match terms > max_terms {
                true => format!(
                    "the filter has {terms} terms; this server takes at most {max_terms} \
                     (ldap_max_filter_terms)"
                ),
                false => format!(
                    "the filter nests {depth} levels deep; this server takes at most \
                     {max_depth} (ldap_max_filter_depth)"
                ),
            };
            return out
                .send(finish(
                    done(LdapResultCode::AdminLimitExceeded, what),
                    Vec::new(),
                ))
                .await;
        }
        let base = req.base.trim().to_string();
        // The root DSE and the schema subentry answer anyone.
        if base.is_empty() && req.scope == LdapSearchScope::Base {
            let entry = self.root_dse();
            let mut msgs = Vec::new();
            if matches_static(&req.filter, &entry) {
                msgs.push(entry_msg(id, &entry, &req.attrs, req.typesonly));
            }
            msgs.extend(finish(done(LdapResultCode::Success, ""), Vec::new()));
            return out.send(msgs).await;
        }
        if base.eq_ignore_ascii_case("cn=schema") || base.eq_ignore_ascii_case("cn=subschema") {
            let entry = Entry {
                dn: "cn=schema".into(),
                attributes: vec![
                    ("objectClass".into(), vec!["top".into(), "subschema".into()]),
                    ("cn".into(), vec!["schema".into()]),
                ],
                // Operational: clients ask for them by name or with `+`.
                operational: vec![
                    ("attributeTypes".into(), directory::attribute_types()),
                    (
                        "objectClasses".into(),
                        directory::OBJECT_CLASSES
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                    ),
                ],
            };
            let mut msgs = Vec::new();
            if req.scope == LdapSearchScope::Base {
                msgs.push(entry_msg(id, &entry, &req.attrs, req.typesonly));
            }
            msgs.extend(finish(done(LdapResultCode::Success, ""), Vec::new()));
            return out.send(msgs).await;
        }
        let Some(bound) = self.bound.as_ref() else {
            return out
                .send(finish(
                    done(
                        LdapResultCode::InsufficentAccessRights,
                        "bind with a service account first (scimd ldap account add)",
                    ),
                    Vec::new(),
                ))
                .await;
        };
        self.state
            .counters
            .ldap(bound.provider_id, &bound.key(), LdapEvent::Search);
        let node = bound.locate(&base);
        let tree_provider = match &node {
            Some(
                Node::Root(p)
                | Node::People(p)
                | Node::Groups(p)
                | Node::Services(p)
                | Node::User(p, _)
                | Node::Group(p, _)
                | Node::Account(p, _),
            ) => Some(p.clone()),
            Some(Node::Top) => Some(bound.provider.clone()),
            None => None,
        };
        if !tree_provider.is_some_and(|p| p.eq_ignore_ascii_case(&bound.provider)) {
            return out
                .send(finish(
                    done(
                        LdapResultCode::NoSuchObject,
                        format!("{base:?} is not in this account's tree ({})", bound.base),
                    ),
                    Vec::new(),
                ))
                .await;
        }
        let tree = bound.base.clone();
        let scope = req.scope.clone();
        let paged = controls.iter().find_map(|c| match c {
            LdapControl::SimplePagedResults { size, cookie } => Some((*size, cookie.clone())),
            _ => None,
        });
        // A paging cookie goes on only the search it was handed out for, to the one who asked.
        let cookie_context = paged.as_ref().map(|_| {
            format!(
                "{}\0{}\0{base}\0{:?}\0{:?}",
                bound.provider_id,
                bound.key(),
                req.scope,
                req.filter
            )
        });
        // Which static entries and which kinds of resource the scope covers.
        let (statics, kinds, only): (Vec<Entry>, Vec<ResourceKind>, Option<String>) =
            match (node, scope) {
                (Some(Node::Top), LdapSearchScope::Base) => (vec![top_entry()], vec![], None),
                (Some(Node::Top), LdapSearchScope::OneLevel) => {
                    (vec![root_entry(&bound.provider, &tree)], vec![], None)
                }
                (Some(Node::Top | Node::Root(_)), LdapSearchScope::Subtree)
                | (Some(Node::Top | Node::Root(_)), LdapSearchScope::Children) => (
                    vec![
                        root_entry(&bound.provider, &tree),
                        ou_entry(directory::PEOPLE, &tree),
                        ou_entry(directory::GROUPS, &tree),
                    ],
                    vec![ResourceKind::User, ResourceKind::Group],
                    None,
                ),
                (Some(Node::Root(_)), LdapSearchScope::Base) => {
                    (vec![root_entry(&bound.provider, &tree)], vec![], None)
                }
                (Some(Node::Root(_)), LdapSearchScope::OneLevel) => (
                    vec![
                        ou_entry(directory::PEOPLE, &tree),
                        ou_entry(directory::GROUPS, &tree),
                    ],
                    vec![],
                    None,
                ),
                // An organizational unit of users or of groups: itself (base, subtree), its
                // entries (one level, subtree, children).
                (Some(n @ (Node::People(_) | Node::Groups(_))), s) => {
                    let (ou, kind) = match n {
                        Node::People(_) => (directory::PEOPLE, ResourceKind::User),
                        _ => (directory::GROUPS, ResourceKind::Group),
                    };
                    let itself = match s {
                        LdapSearchScope::Base | LdapSearchScope::Subtree => {
                            vec![ou_entry(ou, &tree)]
                        }
                        _ => vec![],
                    };
                    let kinds = match s {
                        LdapSearchScope::Base => vec![],
                        _ => vec![kind],
                    };
                    (itself, kinds, None)
                }
                (Some(Node::Services(_)), LdapSearchScope::Base | LdapSearchScope::Subtree) => {
                    (vec![ou_entry(directory::SERVICES, &tree)], vec![], None)
                }
                (Some(Node::User(_, name)), LdapSearchScope::Base | LdapSearchScope::Subtree) => {
                    (vec![], vec![ResourceKind::User], Some(name))
                }
                (Some(Node::Group(_, name)), LdapSearchScope::Base | LdapSearchScope::Subtree) => {
                    (vec![], vec![ResourceKind::Group], Some(name))
                }
                _ => (vec![], vec![], None),
            };
        // Paging: the cookie says which kind and after which key to go on.
        let (mut phase, mut after) = match &paged {
            Some((_, cookie)) if !cookie.is_empty() => {
                match parse_cookie(cookie, cookie_context.as_deref().unwrap_or_default()) {
                    Some(c) => c,
                    None => {
                        return out
                            .send(finish(
                                done(
                                    LdapResultCode::UnwillingToPerform,
                                    "this paged results cookie was not handed out by this server \
                                 for this search",
                                ),
                                Vec::new(),
                            ))
                            .await;
                    }
                }
            }
            _ => (0, 0),
        };
        let page_size = paged.as_ref().map(|(s, _)| *s).filter(|s| *s > 0);
        let size_limit = i64::from(req.sizelimit.max(0));
        let limit = match (page_size, size_limit) {
            (Some(p), 0) => p,
            (Some(p), s) => p.min(s),
            (None, s) => s,
        };
        let mut sent: i64 = 0;
        let mut msgs = Vec::new();
        // The client's time limit, checked between batches of entries.
        let time_limit = u64::try_from(req.timelimit).unwrap_or(0);
        let deadline = (time_limit > 0)
            .then(|| std::time::Instant::now() + std::time::Duration::from_secs(time_limit));
        // Static entries come first, once (not again on later pages), but only once the
        // binding has been checked: with the first batch, or here when no kind is searched.
        if phase == 0 && after == 0 {
            for e in statics {
                if matches_static(&req.filter, &e) {
                    msgs.push(entry_msg(id, &e, &req.attrs, req.typesonly));
                    sent += 1;
                }
            }
        }
        if kinds.is_empty()
            && let Err(f) = self
                .batch(&[], &req.filter, None, (0, 0), 0, &tree, None)
                .await
        {
            return out.send(finish(self.failed(f), Vec::new())).await;
        }
        let mut next_cookie: Option<(usize, i64)> = None;
        let mut exceeded = false;
        while phase < kinds.len() {
            let room = if limit > 0 {
                limit - sent
            } else {
                batch_size()
            };
            if room <= 0 {
                // The page or the size limit is full: one entry more tells whether anything
                // is left, here or in the kinds after this one.
                let left = match self
                    .batch(
                        &kinds,
                        &req.filter,
                        only.clone(),
                        (phase, after),
                        1,
                        &tree,
                        None,
                    )
                    .await
                {
                    Ok(found) => found.count > 0,
                    Err(f @ Failure::Gone(_)) => {
                        return out.send(finish(self.failed(f), Vec::new())).await;
                    }
                    Err(Failure::Store(_)) => true,
                };
                if left {
                    match page_size {
                        Some(_) => next_cookie = Some((phase, after)),
                        None => exceeded = true,
                    }
                }
                break;
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                out.send(std::mem::take(&mut msgs)).await?;
                return out
                    .send(finish(
                        done(
                            LdapResultCode::TimeLimitExceeded,
                            format!("the search took longer than its time limit of {time_limit} s"),
                        ),
                        Vec::new(),
                    ))
                    .await;
            }
            #[cfg(debug_assertions)]
            test_delay().await;
            let batch = self
                .batch(
                    &kinds,
                    &req.filter,
                    only.clone(),
                    (phase, after),
                    room.min(batch_size()),
                    &tree,
                    Some((id, req.attrs.clone(), req.typesonly)),
                )
                .await;
            let Batch { encoded, count, at } = match batch {
                Ok(b) => b,
                Err(f) => return out.send(finish(self.failed(f), Vec::new())).await,
            };
            sent += count as i64;
            out.send(std::mem::take(&mut msgs)).await?;
            out.send_encoded(encoded).await?;
            (phase, after) = at;
        }
        out.send(std::mem::take(&mut msgs)).await?;
        if exceeded {
            return out
                .send(finish(
                    done(
                        LdapResultCode::SizeLimitExceeded,
                        format!("more than {size_limit} entries match"),
                    ),
                    Vec::new(),
                ))
                .await;
        }
        let ctrl = match page_size {
            Some(_) => vec![LdapControl::SimplePagedResults {
                size: 0,
                cookie: next_cookie
                    .map(|at| cookie_of(at, cookie_context.as_deref().unwrap_or_default()))
                    .unwrap_or_default(),
            }],
            None => Vec::new(),
        };
        out.send(finish(done(LdapResultCode::Success, ""), ctrl))
            .await
    }

    /// Up to `want` entries that match the filter, from the position `at` on: the index of
    /// a kind in `kinds` and the key after which its entries go on. All in one job on a reader
    /// thread and one read transaction, across kinds (a search of the whole tree is one round
    /// trip). Gives the entries, encoded when `render` says how, and where to go on from.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn batch(
        &self,
        kinds: &[ResourceKind],
        filter: &LdapFilter,
        only: Option<String>,
        at: (usize, i64),
        want: i64,
        tree: &str,
        render: Option<(i32, Vec<String>, bool)>,
    ) -> Result<Batch, Failure> {
        let Some(bound) = self.bound.as_ref() else {
            return Ok(Batch::default());
        };
        let (pid, filter, tree) = (bound.provider_id, filter.clone(), tree.to_string());
        let (provider, custom) = (bound.provider.clone(), bound.custom);
        let scim = crate::app::scim_base(&self.state.public_base, &bound.provider);
        let state = self.state.clone();
        let kinds = kinds.to_vec();
        let check = bound.check.clone();
        self.state
            .store
            .run(move |c| {
                // One read transaction: every statement below sees the same snapshot, and the
                // snapshot is taken once.
                let tx = store::Snapshot::begin(c)?;
                let model_version = match check.standing(&tx)? {
                    ldap_accounts::Standing::Valid { model_version } => model_version,
                    ldap_accounts::Standing::Gone(why) => return Err(Failure::Gone(why)),
                };
                let model = state.model_at(&tx, pid, model_version)?;
                let mappings: Vec<(String, AttrPath)> = ldap_accounts::mappings(&tx, pid)?
                    .into_iter()
                    .filter_map(|(n, p)| directory::parse_path(&p).ok().map(|p| (n, p)))
                    .collect();
                let resolver = Resolver {
                    c: &tx,
                    pid,
                    mappings: &mappings,
                    tree: custom.then_some((provider.as_str(), tree.as_str())),
                    failed: Default::default(),
                };
                let mut out = Batch {
                    at,
                    ..Batch::default()
                };
                let mut left = want;
                while left > 0 && out.at.0 < kinds.len() {
                    let (phase, after) = out.at;
                    let kind = kinds[phase];
                    out.at = (phase + 1, 0);
                    let Some(condition) = entry_condition(
                        model.get(kind),
                        &scim,
                        kind,
                        &filter,
                        only.as_deref(),
                        &resolver,
                    )?
                    else {
                        continue;
                    };
                    let (rows, more) =
                        store::search::after(&tx, pid, kind, condition.as_ref(), after, left)?;
                    let found = entries(&tx, model.get(kind), &scim, pid, &tree, &mappings, &rows)?;
                    if more && let Some(r) = rows.iter().last() {
                        // Deactivated users among the rows make fewer entries than asked for:
                        // the kind goes on after its last row, in this job.
                        out.at = (phase, r.seq);
                    }
                    out.count += found.len();
                    left -= found.len() as i64;
                    let Some((id, attrs, types_only)) = &render else {
                        continue;
                    };
                    // Encoded here, on the reader thread, not on the connection's.
                    for entry in &found {
                        let selected = entry.select(attrs);
                        ber::entry(&mut out.encoded, *id, &entry.dn, &selected, *types_only);
                    }
                }
                Ok(out)
            })
            .await
    }

    /// The result of a search whose entries could not be read. A binding whose account or
    /// user is no longer valid (checked before each search) ends, and the answer says why:
    /// the connection reads nothing more until it binds again.
    pub(super) fn failed(&mut self, failure: Failure) -> LdapResult {
        match failure {
            Failure::Gone(why) => {
                if let Some(b) = self.bound.take() {
                    tracing::info!(peer = %self.peer, dn = %b.dn(), why, "LDAP binding ended");
                }
                done(
                    LdapResultCode::InsufficentAccessRights,
                    format!("{why}: this connection's binding has ended; bind again"),
                )
            }
            Failure::Store(e) => unavailable("an LDAP search", &e),
        }
    }
}

/// Entries read per round trip: `BATCH`, or in debug builds `TEST_LDAP_BATCH_SIZE` (tests of
/// what happens between batches).
pub(super) fn batch_size() -> i64 {
    #[cfg(debug_assertions)]
    {
        static SIZE: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
        let size = SIZE.get_or_init(|| {
            std::env::var("TEST_LDAP_BATCH_SIZE")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
        });
        if let Some(n) = size {
            return *n;
        }
    }
    BATCH
}

/// Debug builds only: a pause before each batch of a search (`TEST_LDAP_BATCH_DELAY_MS`), so
/// tests can make a search outlast its time limit.
#[cfg(debug_assertions)]
pub(super) async fn test_delay() {
    static DELAY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ms = *DELAY.get_or_init(|| {
        std::env::var("TEST_LDAP_BATCH_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Entries read for a search: encoded, how many, the key of the last, whether more follow.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) encoded: BytesMut,
    pub(super) count: usize,
    /// Where the search goes on: a kind's index and the key after which its entries follow.
    pub(super) at: (usize, i64),
}

/// The SQL condition for the entries of `kind` that match an LDAP filter (inside the named
/// entry only, for a base-scope search of a user or group): `None` inside when every entry
/// matches, `None` outside when none can.
pub(super) fn entry_condition(
    rt: &ResourceType,
    scim: &str,
    kind: ResourceKind,
    filter: &LdapFilter,
    only: Option<&str>,
    resolver: &Resolver<'_>,
) -> store::Result<Option<Option<store::search::Condition>>> {
    let mut f = directory::simplify(directory::to_scim(filter, kind, resolver));
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

/// The key paging cookies are sealed with: random, made once per process (a restart ends
/// the searches being paged, as it ends their connections).
pub(super) fn cookie_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        key
    })
}

/// 16 bytes of a keyed BLAKE2s digest of `parts`, told apart by `label`.
pub(super) fn sealed(label: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    use blake2::{Blake2s256, Digest};
    let mut h = Blake2s256::new()
        .chain_update(cookie_key())
        .chain_update(label);
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// A paging cookie: where the search goes on, opaque (the position is masked) and
/// authenticated (a tag over the position and `context`, the search and who asked for it).
pub(super) fn cookie_of((phase, after): (usize, i64), context: &str) -> Vec<u8> {
    let mut plain = [0u8; 16];
    plain[..8].copy_from_slice(&(phase as u64).to_be_bytes());
    plain[8..].copy_from_slice(&after.to_be_bytes());
    let tag = sealed(b"tag", &[context.as_bytes(), &plain]);
    let mask = sealed(b"mask", &[&tag]);
    let mut cookie = tag.to_vec();
    cookie.extend(plain.iter().zip(mask).map(|(p, m)| p ^ m));
    cookie
}

/// The position a cookie of `cookie_of` holds, if it was made by this process for `context`.
pub(super) fn parse_cookie(c: &[u8], context: &str) -> Option<(usize, i64)> {
    if c.len() != 32 {
        return None;
    }
    let tag: [u8; 16] = c[..16].try_into().ok()?;
    let mask = sealed(b"mask", &[&tag]);
    let mut plain = [0u8; 16];
    for (i, (m, k)) in c[16..].iter().zip(mask).enumerate() {
        plain[i] = m ^ k;
    }
    let want = sealed(b"tag", &[context.as_bytes(), &plain]);
    let same = want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return None;
    }
    let phase = u64::from_be_bytes(plain[..8].try_into().ok()?);
    let after = i64::from_be_bytes(plain[8..].try_into().ok()?);
    Some((usize::try_from(phase).ok()?, after))
}

/// Finds resources by unique name for DN-valued filters.
pub(super) struct Resolver<'c> {
    pub(super) c: &'c rusqlite::Connection,
    pub(super) pid: i64,
    pub(super) mappings: &'c [(String, AttrPath)],
    /// The provider and the base it chose, if it did.
    pub(super) tree: Option<(&'c str, &'c str)>,
    /// The first lookup that failed: the translation is then not used (a failing read must not
    /// pass for "no such entry").
    pub(super) failed: std::cell::RefCell<Option<rusqlite::Error>>,
}

impl Resolver<'_> {
    /// The error of a lookup made while translating, if one failed.
    pub(super) fn take_error(&self) -> Option<store::Error> {
        self.failed.borrow_mut().take().map(store::Error::from)
    }
}

impl Resolve for Resolver<'_> {
    fn id_of(&self, kind: ResourceKind, name: &str) -> Option<String> {
        match store::resources::id_by_name(self.c, self.pid, kind, name) {
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

    fn mapped(&self, ldap: &str) -> Option<AttrPath> {
        self.mappings
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(ldap))
            .map(|(_, p)| p.clone())
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
            tree: None,
            failed: Default::default(),
        };
        let filter =
            LdapFilter::Equality("member".into(), "uid=alice,ou=people,dc=p,dc=scimd".into());
        let rt = crate::scim::schema::Model::builtin().get(ResourceKind::Group);
        let condition = |r: &Resolver<'_>| {
            entry_condition(
                rt,
                "http://h/scim/v2/p",
                ResourceKind::Group,
                &filter,
                None,
                r,
            )
        };
        assert!(condition(&resolver).is_err());
        // With the table there and no such user, the filter simply matches nothing.
        let c = crate::store::test_conn();
        let got = condition(&Resolver { c: &c, ..resolver });
        assert!(matches!(got, Ok(None)), "{:?}", got.err());
    }

    #[test]
    fn cookies_round_trip_and_foreign_ones_are_refused() {
        let cookie = cookie_of((1, 42), "search a");
        assert_eq!(parse_cookie(&cookie, "search a"), Some((1, 42)));
        // Opaque: the position is not in it as text or as bytes.
        assert!(!cookie.ends_with(&42i64.to_be_bytes()));
        // Another search, or another position written in, is refused.
        assert_eq!(parse_cookie(&cookie, "search b"), None);
        let mut forged = cookie.clone();
        forged[31] ^= 1;
        assert_eq!(parse_cookie(&forged, "search a"), None);
        assert_eq!(parse_cookie(b"scimd:1:42", "search a"), None);
        assert_eq!(parse_cookie(b"other", "search a"), None);
    }
}

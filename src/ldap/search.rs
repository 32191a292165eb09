//! LDAP searches: the base and scope become a `Plan` (fixed entries, kinds of resource, one
//! named entry), entries are read in batches by the core (`app::directory::batch`) and streamed
//! as they come, paged with authenticated cookies (`paging`), within the client's size and time
//! limits and the server's filter limits.

use super::paging::{ForeignCookie, Paging};
use super::*;
use crate::app::directory::{batch, exists, standing};

/// What a search covers, from its base and scope.
pub(super) struct Plan {
    /// Fixed entries (the tree's root and units) it shows, first.
    pub(super) statics: Vec<Entry>,
    /// Kinds of resource whose entries it reads, in this order.
    pub(super) kinds: Vec<ResourceKind>,
    /// Inside this one user or group only (a search based at its entry): its name.
    pub(super) only: Option<String>,
}

impl Plan {
    /// The plan of a search based at `node` of the tree `tree` of `provider`.
    fn of(node: Node, scope: &LdapSearchScope, provider: &str, tree: &str) -> Plan {
        use LdapSearchScope::{Base, Children, OneLevel, Subtree};
        let plan = |statics, kinds| Plan {
            statics,
            kinds,
            only: None,
        };
        let both = || vec![ResourceKind::User, ResourceKind::Group];
        let units = || {
            vec![
                ou_entry(directory::PEOPLE, tree),
                ou_entry(directory::GROUPS, tree),
            ]
        };
        match (node, scope) {
            (Node::Top, Base) => plan(vec![top_entry()], vec![]),
            (Node::Top, OneLevel) | (Node::Root(_), Base) => {
                plan(vec![root_entry(provider, tree)], vec![])
            }
            (Node::Top | Node::Root(_), Subtree | Children) => {
                let mut statics = vec![root_entry(provider, tree)];
                statics.extend(units());
                plan(statics, both())
            }
            (Node::Root(_), OneLevel) => plan(units(), vec![]),
            // An organizational unit of users or of groups: itself (base, subtree), its
            // entries (one level, subtree, children).
            (n @ (Node::People(_) | Node::Groups(_)), s) => {
                let (ou, kind) = match n {
                    Node::People(_) => (directory::PEOPLE, ResourceKind::User),
                    _ => (directory::GROUPS, ResourceKind::Group),
                };
                let itself = match s {
                    Base | Subtree => vec![ou_entry(ou, tree)],
                    _ => vec![],
                };
                let kinds = match s {
                    Base => vec![],
                    _ => vec![kind],
                };
                plan(itself, kinds)
            }
            (Node::Services(_), Base | Subtree) => {
                plan(vec![ou_entry(directory::SERVICES, tree)], vec![])
            }
            (Node::User(_, name), Base | Subtree) => Plan {
                statics: vec![],
                kinds: vec![ResourceKind::User],
                only: Some(name),
            },
            (Node::Group(_, name), Base | Subtree) => Plan {
                statics: vec![],
                kinds: vec![ResourceKind::Group],
                only: Some(name),
            },
            _ => plan(vec![], vec![]),
        }
    }
}

/// The last message of a search's answer.
fn finish(id: i32, res: LdapResult, ctrl: Vec<LdapControl>) -> Vec<LdapMsg> {
    vec![LdapMsg::new_with_ctrls(
        id,
        LdapOp::SearchResultDone(res),
        ctrl,
    )]
}

/// How the entries of a search ended.
enum Ended {
    /// Every entry was sent.
    Complete,
    /// The page is full and more follow from here; so many entries were sent in all.
    PageFull(Position, i64),
    /// More entries match than the client's size limit.
    SizeLimit,
}

impl Ended {
    /// The last message: the result, with a cookie for the next page when the search is paged.
    fn answer(self, id: i32, paging: Option<&Paging>, size_limit: i64) -> Vec<LdapMsg> {
        let success = || done(LdapResultCode::Success, "");
        let (res, ctrl) = match (self, paging) {
            (Ended::SizeLimit, _) => {
                let why = format!("more than {size_limit} entries match");
                (done(LdapResultCode::SizeLimitExceeded, why), None)
            }
            (Ended::PageFull(next, sent), Some(p)) => (success(), Some(p.answer(Some(next), sent))),
            (_, Some(p)) if p.size.is_some() => (success(), Some(p.answer(None, 0))),
            _ => (success(), None),
        };
        finish(id, res, ctrl.into_iter().collect())
    }
}

impl Session {
    pub(super) async fn search(
        &mut self,
        id: i32,
        req: LdapSearchRequest,
        controls: Vec<LdapControl>,
        out: &mut Writer<'_>,
    ) -> std::io::Result<()> {
        if let Some(refusal) = self.too_large(&req.filter) {
            return out.send(finish(id, refusal, Vec::new())).await;
        }
        if let Some(msgs) = self.fixed(id, &req).await {
            return out.send(msgs).await;
        }
        let plan = match self.plan(&req) {
            Ok(p) => p,
            Err(refusal) => return out.send(finish(id, refusal, Vec::new())).await,
        };
        let paging = match Paging::of(&controls, || self.paging_context(&req)) {
            Ok(p) => p,
            Err(ForeignCookie) => {
                let refusal = done(
                    LdapResultCode::UnwillingToPerform,
                    "this paged results cookie was not handed out by this server for this search",
                );
                return out.send(finish(id, refusal, Vec::new())).await;
            }
        };
        self.stream(id, &req, plan, paging, out).await
    }

    /// `adminLimitExceeded` for a filter past `ldap_max_filter_terms` or `…_depth`.
    fn too_large(&self, filter: &LdapFilter) -> Option<LdapResult> {
        let config = &self.state.config;
        let (terms, depth) = directory::filter_size(filter);
        let (max_terms, max_depth) = (
            config.ldap_max_filter_terms as usize,
            config.ldap_max_filter_depth as usize,
        );
        let what = if terms > max_terms {
            format!(
                "the filter has {terms} terms; this server takes at most {max_terms} \
                 (ldap_max_filter_terms)"
            )
        } else if depth > max_depth {
            format!(
                "the filter nests {depth} levels deep; this server takes at most {max_depth} \
                 (ldap_max_filter_depth)"
            )
        } else {
            return None;
        };
        Some(done(LdapResultCode::AdminLimitExceeded, what))
    }

    /// The answer of a search of the root DSE or the schema subentry, which answer anyone.
    async fn fixed(&self, id: i32, req: &LdapSearchRequest) -> Option<Vec<LdapMsg>> {
        let base = req.base.trim();
        let entry = if base.is_empty() && req.scope == LdapSearchScope::Base {
            let contexts = self.naming_contexts().await;
            Some(self.root_dse(contexts)).filter(|e| matches_static(&req.filter, e))
        } else if base.eq_ignore_ascii_case("cn=schema")
            || base.eq_ignore_ascii_case("cn=subschema")
        {
            Some(schema_entry()).filter(|_| req.scope == LdapSearchScope::Base)
        } else {
            return None;
        };
        let mut msgs: Vec<LdapMsg> = entry
            .iter()
            .map(|e| entry_msg(id, e, &req.attrs, req.typesonly))
            .collect();
        msgs.extend(finish(id, done(LdapResultCode::Success, ""), Vec::new()));
        Some(msgs)
    }

    /// What a paging cookie of a search is bound to: the search and the one who asked (made
    /// only for a search that pages).
    fn paging_context(&self, req: &LdapSearchRequest) -> String {
        let who = self.bound.as_ref().map(|b| (b.provider_id, b.key()));
        format!(
            "{who:?}\0{}\0{:?}\0{:?}",
            req.base.trim(),
            req.scope,
            req.filter
        )
    }

    /// The plan of a search of the bound tree; or the refusal (not bound, or a base outside
    /// the binding's tree).
    pub(super) fn plan(&self, req: &LdapSearchRequest) -> Result<Plan, LdapResult> {
        let Some(bound) = self.bound.as_ref() else {
            return Err(done(
                LdapResultCode::InsufficentAccessRights,
                "bind with a service account first (scimd ldap account add)",
            ));
        };
        self.state
            .counters
            .ldap(bound.provider_id, &bound.key(), LdapEvent::Search);
        let base = req.base.trim();
        let node = bound.locate(base).filter(|n| match n {
            Node::Top => true,
            Node::Root(p)
            | Node::People(p)
            | Node::Groups(p)
            | Node::Services(p)
            | Node::User(p, _)
            | Node::Group(p, _)
            | Node::Account(p, _) => p.eq_ignore_ascii_case(&bound.provider),
        });
        let Some(node) = node else {
            return Err(done(
                LdapResultCode::NoSuchObject,
                format!("{base:?} is not in this account's tree ({})", bound.base),
            ));
        };
        Ok(Plan::of(node, &req.scope, &bound.provider, &bound.base))
    }

    /// Sends the plan's entries as they are read, batch by batch, then the result.
    async fn stream(
        &mut self,
        id: i32,
        req: &LdapSearchRequest,
        plan: Plan,
        paging: Option<Paging>,
        out: &mut Writer<'_>,
    ) -> std::io::Result<()> {
        let page_size = paging.as_ref().and_then(|p| p.size);
        let mut at = paging.as_ref().map(|p| p.from).unwrap_or_default();
        let size_limit = i64::from(req.sizelimit.max(0));
        // A size limit counts the entries of every page (RFC 2696 §3).
        let earlier = paging.as_ref().map_or(0, |p| p.sent);
        let left = (size_limit > 0).then(|| (size_limit - earlier).max(0));
        let limit = match (page_size, left) {
            (Some(p), None) => p,
            (Some(p), Some(s)) => p.min(s),
            (None, Some(s)) => s,
            (None, None) => 0,
        };
        let unlimited = page_size.is_none() && left.is_none();
        // The client's time limit, checked between batches of entries.
        let time_limit = u64::try_from(req.timelimit).unwrap_or(0);
        let deadline = (time_limit > 0)
            .then(|| std::time::Instant::now() + std::time::Duration::from_secs(time_limit));
        // Fixed entries come first, once (not again on later pages), but only once the
        // binding has been checked: with the first batch, or here when no kind is searched.
        let mut msgs: Vec<LdapMsg> = match at == Position::default() {
            true => (plan.statics.iter())
                .filter(|e| matches_static(&req.filter, e))
                .map(|e| entry_msg(id, e, &req.attrs, req.typesonly))
                .collect(),
            false => Vec::new(),
        };
        let mut sent = msgs.len() as i64;
        if plan.kinds.is_empty()
            && let Err(f) = self.standing().await
        {
            return out.send(finish(id, self.failed(f), Vec::new())).await;
        }
        let mut ended = Ended::Complete;
        while at.phase < plan.kinds.len() {
            let room = if unlimited {
                batch_size()
            } else {
                limit - sent
            };
            if room <= 0 {
                // The page or the size limit is full: one entry more tells whether anything
                // is left, here or in the kinds after this one.
                match self.more(req, &plan, at).await {
                    Err(f) => return out.send(finish(id, self.failed(f), Vec::new())).await,
                    Ok(false) => {}
                    Ok(true) if left.is_some_and(|l| sent >= l) => ended = Ended::SizeLimit,
                    Ok(true) => ended = Ended::PageFull(at, earlier + sent),
                }
                break;
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                out.send(std::mem::take(&mut msgs)).await?;
                let why = format!("the search took longer than its time limit of {time_limit} s");
                let res = done(LdapResultCode::TimeLimitExceeded, why);
                return out.send(finish(id, res, Vec::new())).await;
            }
            #[cfg(debug_assertions)]
            test_delay().await;
            let batch = match self
                .entries(id, req, &plan, at, room.min(batch_size()))
                .await
            {
                Ok(b) => b,
                Err(f) => return out.send(finish(id, self.failed(f), Vec::new())).await,
            };
            sent += batch.count as i64;
            out.send(std::mem::take(&mut msgs)).await?;
            out.send_encoded(batch.out).await?;
            at = batch.at;
        }
        out.send(msgs).await?;
        if sent == 0 && earlier == 0 {
            // A search based at a user or group that is not in the directory (no such name,
            // or deactivated) names no object: 32, with the unit that does exist.
            match self.missing(&plan).await {
                Ok(Some(res)) => return out.send(finish(id, res, Vec::new())).await,
                Ok(None) => {}
                Err(f) => return out.send(finish(id, self.failed(f), Vec::new())).await,
            }
        }
        out.send(ended.answer(id, paging.as_ref(), size_limit))
            .await
    }

    /// `noSuchObject` (with the DN of the unit that exists) when the plan is based at one user
    /// or group the directory does not have.
    pub(super) async fn missing(&self, plan: &Plan) -> Result<Option<LdapResult>, Failure> {
        let (Some(bound), Some(_), Some(kind)) =
            (self.bound.as_ref(), plan.only.as_ref(), plan.kinds.first())
        else {
            return Ok(None);
        };
        if self
            .any(plan, &LdapFilter::Present("objectClass".into()))
            .await?
        {
            return Ok(None);
        }
        let unit = match kind {
            ResourceKind::User => directory::PEOPLE,
            ResourceKind::Group => directory::GROUPS,
        };
        Ok(Some(LdapResult {
            matcheddn: format!("ou={unit},{}", bound.base),
            ..done(LdapResultCode::NoSuchObject, "no such entry")
        }))
    }

    /// Up to `count` encoded entries of the plan from `at` on (see `app::directory::batch`).
    async fn entries(
        &self,
        id: i32,
        req: &LdapSearchRequest,
        plan: &Plan,
        at: Position,
        count: i64,
    ) -> Result<Batch<BytesMut>, Failure> {
        let Some(bound) = self.bound.as_ref() else {
            return Ok(Batch::default());
        };
        let want = Want {
            kinds: &plan.kinds,
            filter: &req.filter,
            only: plan.only.as_deref(),
            at,
            count,
        };
        let (attrs, types_only) = (req.attrs.clone(), req.typesonly);
        let encode = move |out: &mut BytesMut, entry: &Entry| {
            ber::entry(out, id, &entry.dn, &entry.select(&attrs), types_only);
        };
        batch(&self.state, &bound.reader(), want, encode).await
    }

    /// Whether any entry of the plan follows `at`.
    async fn more(
        &self,
        req: &LdapSearchRequest,
        plan: &Plan,
        at: Position,
    ) -> Result<bool, Failure> {
        let Some(bound) = self.bound.as_ref() else {
            return Ok(false);
        };
        let want = Want {
            kinds: &plan.kinds,
            filter: &req.filter,
            only: plan.only.as_deref(),
            at,
            count: 1,
        };
        match exists(&self.state, &bound.reader(), want).await {
            Ok(found) => Ok(found),
            Err(f @ Failure::Gone(_)) => Err(f),
            // Unknown: said to be more, so the client asks again.
            Err(Failure::Store(_)) => Ok(true),
        }
    }

    /// Whether any entry of the plan matches `filter` (a failing read is a failure here).
    pub(super) async fn any(&self, plan: &Plan, filter: &LdapFilter) -> Result<bool, Failure> {
        let Some(bound) = self.bound.as_ref() else {
            return Ok(false);
        };
        let want = Want {
            kinds: &plan.kinds,
            filter,
            only: plan.only.as_deref(),
            at: Position::default(),
            count: 1,
        };
        exists(&self.state, &bound.reader(), want).await
    }

    /// Whether the binding may still read.
    async fn standing(&self) -> Result<(), Failure> {
        match self.bound.as_ref() {
            Some(bound) => standing(&self.state, &bound.reader()).await,
            None => Ok(()),
        }
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
fn batch_size() -> i64 {
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
async fn test_delay() {
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

/// The schema subentry: the attribute types and object classes of the directory, as
/// operational attributes (clients ask for them by name or with `+`).
fn schema_entry() -> Entry {
    Entry {
        dn: "cn=schema".into(),
        attributes: vec![
            ("objectClass".into(), vec!["top".into(), "subschema".into()]),
            ("cn".into(), vec!["schema".into()]),
        ],
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
    }
}

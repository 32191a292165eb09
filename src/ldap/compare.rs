//! The compare operation (RFC 4511 §4.10): whether an entry has an attribute value, by the
//! attribute's equality matching. It reads as a base search of the entry with an equality
//! filter would — the same access rules, the same entries (deactivated users are not in the
//! directory), the same values (`member` of a group as a `(member=…)` search finds it).

use super::search::Plan;
use super::*;
use ldap3_proto::proto::LdapCompareRequest;

impl Session {
    /// The result of a compare: `compareTrue`, `compareFalse`, `noSuchAttribute` when the
    /// entry has no value of the attribute, `noSuchObject` when there is no such entry.
    pub(super) async fn compare(&mut self, req: &LdapCompareRequest) -> LdapResult {
        // The entry, as a base search of it finds it.
        let search = LdapSearchRequest {
            base: req.dn.clone(),
            scope: LdapSearchScope::Base,
            aliases: ldap3_proto::proto::LdapDerefAliases::Never,
            sizelimit: 1,
            timelimit: 0,
            typesonly: true,
            filter: LdapFilter::Present("objectClass".into()),
            attrs: vec!["1.1".into()],
        };
        let plan = match self.plan(&search) {
            Ok(plan) => plan,
            Err(refusal) => return refusal,
        };
        let Ok(value) = String::from_utf8(req.val.clone()) else {
            return done(LdapResultCode::CompareFalse, "");
        };
        let is = LdapFilter::Equality(req.atype.clone(), value);
        let has = LdapFilter::Present(req.atype.clone());
        match self.decide(&plan, &is, &has).await {
            Ok(res) => res,
            Err(f) => self.failed(f),
        }
    }

    /// The answer for the plan's one entry: the assertion `is`, else whether it `has` the
    /// attribute at all, else whether it exists.
    async fn decide(
        &self,
        plan: &Plan,
        is: &LdapFilter,
        has: &LdapFilter,
    ) -> Result<LdapResult, Failure> {
        let answer = |code, why: &str| Ok(done(code, why));
        if let Some(entry) = plan.statics.first() {
            let code = if matches_static(is, entry) {
                LdapResultCode::CompareTrue
            } else if matches_static(has, entry) {
                LdapResultCode::CompareFalse
            } else {
                LdapResultCode::NoSuchAttribute
            };
            return answer(code, "");
        }
        if plan.only.is_none() {
            return answer(LdapResultCode::NoSuchObject, "no such entry");
        }
        if self.any(plan, is).await? {
            return answer(LdapResultCode::CompareTrue, "");
        }
        if self.any(plan, has).await? {
            return answer(LdapResultCode::CompareFalse, "");
        }
        match self.missing(plan).await? {
            Some(no_such_object) => Ok(no_such_object),
            None => answer(
                LdapResultCode::NoSuchAttribute,
                "the entry has no value of this attribute",
            ),
        }
    }
}

//! PURE: the LDAP view of one identity provider — its tree of DNs, the mapping of SCIM
//! attributes to LDAP ones, and LDAP filters translated to SCIM filters (which the store
//! compiles into the same indexed SQL as a SCIM search). No I/O.
//!
//! Tree of provider `P`: `dc=P,dc=scimd` with `ou=people` (users, `uid=<userName>`) and
//! `ou=groups` (groups, `cn=<displayName>`); service accounts bind as
//! `cn=<name>,ou=services,dc=P,dc=scimd`.

use ldap3_proto::proto::{LdapFilter, LdapSubstringFilter};

use crate::scim::ResourceKind;
use crate::scim::borrowed::Json;
use crate::scim::filter::{self, AttrPath, CompValue, Filter, Op};
use crate::scim::posix::{Part, Posix};
use crate::scim::schema::{ResourceType, Type};

/// The organizational units of a provider's tree: users, groups, service accounts.
pub(crate) const PEOPLE: &str = "people";
pub(crate) const GROUPS: &str = "groups";
pub(crate) const SERVICES: &str = "services";

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// One attribute-value assertion of a DN (`attr=value`), the attribute in lower case.
pub(crate) type Rdn = (String, String);

/// Parses a DN into its RDNs, first (leftmost) first; values unescaped (RFC 4514: `\,` and
/// `\2c` forms). Multi-valued RDNs (`a=1+b=2`) are not used in this tree and are refused.
pub(crate) fn parse_dn(dn: &str) -> Option<Vec<Rdn>> {
    let dn = dn.trim();
    if dn.is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    let mut chars = dn.chars().peekable();
    loop {
        let mut attr = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            attr.push(c);
        }
        let mut value = String::new();
        let mut bytes: Vec<u8> = Vec::new();
        let flush = |bytes: &mut Vec<u8>, value: &mut String| {
            if !bytes.is_empty() {
                value.push_str(&String::from_utf8_lossy(bytes));
                bytes.clear();
            }
        };
        let mut ended = true;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let a = chars.next()?;
                    if a.is_ascii_hexdigit()
                        && let Some(b) = chars.peek().copied().filter(char::is_ascii_hexdigit)
                    {
                        chars.next();
                        let byte = u8::from_str_radix(&format!("{a}{b}"), 16).ok()?;
                        bytes.push(byte);
                    } else {
                        flush(&mut bytes, &mut value);
                        value.push(a);
                    }
                }
                ',' => {
                    ended = false;
                    break;
                }
                '+' => return None,
                c => {
                    flush(&mut bytes, &mut value);
                    value.push(c);
                }
            }
        }
        flush(&mut bytes, &mut value);
        let attr = attr.trim().to_ascii_lowercase();
        if attr.is_empty() {
            return None;
        }
        out.push((attr, value.trim().to_string()));
        if ended {
            return Some(out);
        }
    }
}

/// A value escaped for a DN (RFC 4514 section 2.4).
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// The base DN of a provider's tree.
pub(crate) fn base_dn(provider: &str) -> String {
    format!("dc={},dc=scimd", escape(&provider.to_ascii_lowercase()))
}

pub(crate) fn user_dn(base: &str, user_name: &str) -> String {
    format!("uid={},ou=people,{base}", escape(user_name))
}

pub(crate) fn group_dn(base: &str, name: &str) -> String {
    format!("cn={},ou=groups,{base}", escape(name))
}

/// Where in a tree a DN points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// `dc=scimd`, above every provider.
    Top,
    /// `dc=P,dc=scimd`.
    Root(String),
    People(String),
    Groups(String),
    Services(String),
    User(String, String),
    Group(String, String),
    Account(String, String),
}

/// Locates a DN; `None` when it is not in any tree of this server.
pub(crate) fn locate(dn: &str) -> Option<Node> {
    let mut rdns = parse_dn(dn)?;
    let (top, value) = rdns.pop()?;
    if top != "dc" || !value.eq_ignore_ascii_case("scimd") {
        return None;
    }
    let Some((dc, provider)) = rdns.pop() else {
        return Some(Node::Top);
    };
    if dc != "dc" {
        return None;
    }
    below(rdns, provider)
}

/// Locates a DN in the tree of `provider` rooted at `base` (a base DN of the provider's
/// choosing); `None` when the DN is not in it. Names and values compare regardless of case.
pub(crate) fn locate_under(dn: &str, provider: &str, base: &str) -> Option<Node> {
    let mut rdns = parse_dn(dn)?;
    let base = parse_dn(base)?;
    if base.is_empty() || rdns.len() < base.len() {
        return None;
    }
    let tail = rdns.split_off(rdns.len() - base.len());
    let same = tail
        .iter()
        .zip(&base)
        .all(|((a, v), (b, w))| a == b && v.eq_ignore_ascii_case(w));
    if !same {
        return None;
    }
    below(rdns, provider.to_string())
}

/// The node the RDNs under a provider's root name (leftmost first).
fn below(mut rdns: Vec<Rdn>, provider: String) -> Option<Node> {
    let Some((ou_attr, ou)) = rdns.pop() else {
        return Some(Node::Root(provider));
    };
    if ou_attr != "ou" {
        return None;
    }
    let ou = ou.to_ascii_lowercase();
    let leaf = rdns.pop();
    if !rdns.is_empty() {
        return None;
    }
    Some(match (ou.as_str(), leaf) {
        (PEOPLE, None) => Node::People(provider),
        (GROUPS, None) => Node::Groups(provider),
        (SERVICES, None) => Node::Services(provider),
        (PEOPLE, Some((a, v))) if a == "uid" => Node::User(provider, v),
        (GROUPS, Some((a, v))) if a == "cn" => Node::Group(provider, v),
        (SERVICES, Some((a, v))) if a == "cn" => Node::Account(provider, v),
        _ => return None,
    })
}

fn path(attr: &str, sub: Option<&str>) -> AttrPath {
    AttrPath {
        uri: None,
        attr: attr.into(),
        sub: sub.map(Into::into),
    }
}

fn ext_path(attr: &str) -> AttrPath {
    AttrPath {
        uri: Some(ENTERPRISE.into()),
        attr: attr.into(),
        sub: None,
    }
}

fn always() -> Filter {
    Filter::Not(Box::new(Filter::Never))
}

/// The parts joined as a balanced tree: its depth grows with the logarithm of the number of
/// parts, so a flat list of thousands of terms never becomes a chain that the code walking it
/// (simplification, SQL compilation, SQLite's own parser) must recurse through term by term.
fn all(
    mut parts: Vec<Filter>,
    join: fn(Box<Filter>, Box<Filter>) -> Filter,
    empty: Filter,
) -> Filter {
    fn halves(
        parts: &mut std::vec::Drain<'_, Filter>,
        n: usize,
        join: fn(Box<Filter>, Box<Filter>) -> Filter,
    ) -> Option<Filter> {
        match n {
            0 => None,
            1 => parts.next(),
            _ => {
                let left = halves(parts, n / 2, join)?;
                let right = halves(parts, n - n / 2, join)?;
                Some(join(Box::new(left), Box::new(right)))
            }
        }
    }
    let n = parts.len();
    halves(&mut parts.drain(..), n, join).unwrap_or(empty)
}

/// How big a filter is: its terms (each comparison, presence test and substring part) and
/// how deeply its AND, OR and NOT nest. Counted without recursion, whatever the shape.
pub(crate) fn filter_size(f: &LdapFilter) -> (usize, usize) {
    let (mut terms, mut depth) = (0, 0);
    let mut stack = vec![(f, 0usize)];
    while let Some((f, level)) = stack.pop() {
        depth = depth.max(level);
        match f {
            LdapFilter::And(parts) | LdapFilter::Or(parts) => {
                stack.extend(parts.iter().map(|p| (p, level + 1)));
            }
            LdapFilter::Not(inner) => stack.push((inner, level + 1)),
            LdapFilter::Substring(_, s) => {
                terms += usize::from(s.initial.is_some())
                    + s.any.len()
                    + usize::from(s.final_.is_some());
            }
            _ => terms += 1,
        }
    }
    (terms, depth)
}

/// What a translation needs from the store: the id of the resource a DN names (for
/// `member`, `memberOf` values), and the provider's own user attributes.
pub(crate) trait Resolve {
    fn id_of(&self, kind: ResourceKind, name: &str) -> Option<String>;

    /// Where a DN of a filter value points (in the searching account's tree).
    fn node(&self, dn: &str) -> Option<Node> {
        locate(dn)
    }

    /// The SCIM path a provider maps this (lower-case) LDAP attribute of entries of `kind` to.
    fn mapped(&self, _kind: ResourceKind, _ldap: &str) -> Option<AttrPath> {
        None
    }

    /// The provider's POSIX identities, if it has them.
    fn posix(&self) -> Option<&Posix> {
        None
    }

    /// The base DN of the tree searched.
    fn base(&self) -> Option<String> {
        None
    }
}

/// An LDAP attribute name a provider may map: a letter, then letters, digits or `-`; not
/// `uid` (the users' DNs are made of it) nor `objectClass`.
pub(crate) fn check_mapped_name(name: &str) -> Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.len() <= 64;
    if !ok {
        return Err(format!("{name:?} is not an LDAP attribute name"));
    }
    if name.eq_ignore_ascii_case("uid") || name.eq_ignore_ascii_case("objectClass") {
        return Err(format!(
            "{name} cannot be remapped: entries are named and typed by it"
        ));
    }
    Ok(())
}

/// A SCIM attribute path as a mapping names it (`title`, `name.givenName`,
/// `urn:...:User:costCenter`).
pub(crate) fn parse_path(text: &str) -> Result<AttrPath, String> {
    match crate::scim::filter::parse(&format!("{text} pr")) {
        Ok(Filter::Present(p)) => Ok(p),
        _ => Err(format!("{text:?} is not a SCIM attribute path")),
    }
}

/// The values at a SCIM path of a rendered resource, as LDAP strings.
pub(crate) fn values_at(doc: &Json<'_>, path: &AttrPath) -> Vec<String> {
    fn field<'d, 'a>(v: &'d Json<'a>, name: &str) -> Option<&'d Json<'a>> {
        match v {
            Json::Object(members) => members
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    let holder = match &path.uri {
        Some(uri) => match field(doc, uri) {
            Some(v) => v,
            None => return Vec::new(),
        },
        None => doc,
    };
    let Some(top) = field(holder, &path.attr) else {
        return Vec::new();
    };
    let items = match top {
        Json::Array(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    items
        .iter()
        .filter_map(|v| match &path.sub {
            Some(sub) => field(v, sub),
            None => Some(v),
        })
        .filter_map(|v| match v {
            Json::Str(s) => Some(s.to_string()),
            Json::Bool(b) => Some(if *b { "TRUE".into() } else { "FALSE".into() }),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// What a SCIM GET shows of a user besides its stored document (RFC 7643 §3.1 `id` and
/// `meta`, §4.1.2 `groups`), for mappings that name it. Values are looked up by path, never
/// written out as a document.
pub(crate) struct Served<'a> {
    pub(crate) id: &'a str,
    pub(crate) resource_type: &'a str,
    pub(crate) created: &'a str,
    pub(crate) modified: &'a str,
    /// The ETag (`W/"3"`).
    pub(crate) version: String,
    pub(crate) location: String,
    /// The computed attribute's name (`groups`)...
    pub(crate) linked_name: &'a str,
    /// ...and its values: (id, display name, direct).
    pub(crate) linked: Vec<(&'a str, Option<&'a str>, bool)>,
}

impl Served<'_> {
    /// The values at `path` when it names something served rather than stored.
    pub(crate) fn values(&self, path: &AttrPath) -> Option<Vec<String>> {
        if path.uri.is_some() {
            return None;
        }
        let (attr, sub) = (path.attr.as_str(), path.sub.as_deref());
        let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if is(attr, "id") {
            return Some(vec![self.id.to_string()]);
        }
        if is(attr, "meta") {
            let value = match sub? {
                s if is(s, "resourceType") => self.resource_type.to_string(),
                s if is(s, "created") => self.created.to_string(),
                s if is(s, "lastModified") => self.modified.to_string(),
                s if is(s, "version") => self.version.clone(),
                s if is(s, "location") => self.location.clone(),
                _ => return Some(Vec::new()),
            };
            return Some(vec![value]);
        }
        if !is(attr, self.linked_name) {
            return None;
        }
        let pick = |&(id, display, direct): &(&str, Option<&str>, bool)| match sub {
            Some(s) if is(s, "value") => Some(id.to_string()),
            Some(s) if is(s, "display") => display.map(str::to_string),
            Some(s) if is(s, "type") => Some(if direct { "direct" } else { "indirect" }.into()),
            _ => None,
        };
        Some(self.linked.iter().filter_map(pick).collect())
    }
}

/// Applies a provider's own attributes to a user entry: each replaces the built-in one of its
/// name, read from the stored document or from what is `served` besides it.
pub(crate) fn apply_mappings(
    attrs: &mut Vec<(String, Vec<String>)>,
    doc: &Json<'_>,
    served: Option<&Served<'_>>,
    mappings: &[(String, AttrPath)],
) {
    for (name, path) in mappings {
        attrs.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        let values = served
            .and_then(|s| s.values(path))
            .unwrap_or_else(|| values_at(doc, path));
        if !values.is_empty() {
            attrs.push((name.clone(), values));
        }
    }
}

/// Adds the POSIX object class an entry's attributes make it: `posixAccount` for a user with
/// `uidNumber`, `gidNumber` and `homeDirectory`, `posixGroup` for a group with `gidNumber`.
pub(crate) fn posix_class(kind: ResourceKind, attrs: &mut [(String, Vec<String>)]) {
    let has = |n: &str| attrs.iter().any(|(a, _)| a.eq_ignore_ascii_case(n));
    let class = match kind {
        ResourceKind::User if has("uidNumber") && has("gidNumber") && has("homeDirectory") => {
            "posixAccount"
        }
        ResourceKind::Group if has("gidNumber") => "posixGroup",
        _ => return,
    };
    if let Some((_, classes)) = attrs.iter_mut().find(|(n, _)| n == "objectClass") {
        classes.push(class.into());
    }
}

/// The SCIM filter that selects the entries of `kind` an LDAP filter matches (is TRUE for).
/// A filter item on an attribute this tree does not have, or with a matching this server does
/// not apply, is Undefined (RFC 4511 §4.5.1.7): it matches nothing, and neither does its
/// negation; approximate matching is equality.
/// Values are compared by the syntax of the SCIM attribute they stand for (`rt` is the
/// provider's model of the entries' type): a value that does not fit it is Undefined too.
pub(crate) fn to_scim(f: &LdapFilter, rt: &ResourceType, resolve: &dyn Resolve) -> Filter {
    truth(f, rt, resolve).0
}

/// An LDAP assertion value as a value of a SCIM attribute of type `ty`, compared with `op`;
/// `None` when it does not fit the attribute's syntax (RFC 4517: INTEGER, Boolean,
/// GeneralizedTime), or the syntax has no such matching (no substrings of numbers, times or
/// booleans).
fn typed(p: &AttrPath, ty: Type, op: Op, value: &str) -> Option<Filter> {
    let substring = matches!(op, Op::Sw | Op::Co | Op::Ew);
    let compare = |v: CompValue| Some(Filter::Compare(p.clone(), op, v));
    match ty {
        Type::Integer if !substring => compare(CompValue::Num(value.parse::<i64>().ok()?.into())),
        Type::Decimal if !substring => compare(CompValue::Num(serde_json::Number::from_f64(
            value.parse::<f64>().ok()?,
        )?)),
        Type::Boolean if !substring => match value {
            "TRUE" => compare(CompValue::Bool(true)),
            "FALSE" => compare(CompValue::Bool(false)),
            _ => None,
        },
        Type::DateTime if !substring => {
            // Entries show whole seconds: an assertion of a second covers all of it.
            let (from, to) = parse_generalized_time(value)?;
            let at = |t: chrono::DateTime<chrono::Utc>| {
                CompValue::Str(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            };
            let c = |op, v| Filter::Compare(p.clone(), op, v);
            Some(match op {
                Op::Ge => c(Op::Ge, at(from)),
                Op::Le => c(Op::Le, at(to)),
                _ => Filter::And(Box::new(c(Op::Ge, at(from))), Box::new(c(Op::Le, at(to)))),
            })
        }
        Type::Integer | Type::Decimal | Type::Boolean | Type::DateTime => None,
        _ => compare(CompValue::Str(value.to_string())),
    }
}

/// A GeneralizedTime value (RFC 4517 §3.3.13: `YYYYMMDDHH[MM[SS[.fff]]]` then `Z` or an offset
/// `±HH[MM]`) as the first and last millisecond it names.
fn parse_generalized_time(
    text: &str,
) -> Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    use chrono::{Duration, FixedOffset, NaiveDate, TimeZone};
    let (body, offset) = match text.strip_suffix('Z') {
        Some(b) => (b, 0),
        None => {
            let at = text.rfind(['+', '-'])?;
            let (b, o) = text.split_at(at);
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let digits = &o[1..];
            if !(digits.len() == 2 || digits.len() == 4)
                || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            let h: i32 = digits[..2].parse().ok()?;
            let m: i32 = digits
                .get(2..)
                .filter(|m| !m.is_empty())
                .map_or(Some(0), |m| m.parse().ok())?;
            (b, sign * (h * 3600 + m * 60))
        }
    };
    let (whole, fraction) = match body.split_once(['.', ',']) {
        Some((w, f)) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => (w, Some(f)),
        Some(_) => return None,
        None => (body, None),
    };
    if !matches!(whole.len(), 10 | 12 | 14) || !whole.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| whole.get(r).map_or(Some(0), |d| d.parse::<u32>().ok());
    let date = NaiveDate::from_ymd_opt(whole[..4].parse().ok()?, n(4..6)?, n(6..8)?)?;
    let (h, mi, se) = (n(8..10)?, n(10..12)?, n(12..14)?);
    let naive = date.and_hms_opt(h, mi, se)?;
    let start = FixedOffset::east_opt(offset)?
        .from_local_datetime(&naive)
        .single()?
        .with_timezone(&chrono::Utc);
    // The span the least significant unit given covers.
    let unit = match (whole.len(), fraction) {
        (_, Some(f)) => {
            let digits = f.len().min(3);
            let ms: i64 = f[..digits].parse::<i64>().ok()? * 10_i64.pow(3 - digits as u32);
            let start = start + Duration::milliseconds(ms);
            return Some((
                start,
                start + Duration::milliseconds(10_i64.pow(3 - digits as u32) - 1),
            ));
        }
        (10, None) => Duration::hours(1),
        (12, None) => Duration::minutes(1),
        _ => Duration::seconds(1),
    };
    Some((start, start + unit - Duration::milliseconds(1)))
}

/// The matching rules by OID as well as by name (RFC 4517 §4.2).
const RULE_OIDS: &[(&str, &str)] = &[
    ("objectIdentifierMatch", "2.5.13.0"),
    ("distinguishedNameMatch", "2.5.13.1"),
    ("caseIgnoreMatch", "2.5.13.2"),
    ("caseExactMatch", "2.5.13.5"),
    ("integerMatch", "2.5.13.14"),
    ("telephoneNumberMatch", "2.5.13.20"),
    ("UUIDMatch", "2.5.13.25"),
    ("generalizedTimeMatch", "2.5.13.27"),
    ("caseExactIA5Match", "1.3.6.1.4.1.1466.109.114.1"),
    ("caseIgnoreIA5Match", "1.3.6.1.4.1.1466.109.114.2"),
];

/// Whether `rule` (a name or an OID) is the matching rule named `own`.
fn names_rule(own: &str, rule: &str) -> bool {
    own.eq_ignore_ascii_case(rule) || RULE_OIDS.iter().any(|(n, oid)| *n == own && *oid == rule)
}

/// Whether an extensible match on `attr` with `rule` (`None`: its own) is its equality, for
/// the fixed entries (the tree's root and units), whose attributes any entry may have.
pub(crate) fn is_own_equality(attr: &str, rule: Option<&str>) -> bool {
    let Some(rule) = rule else {
        return true;
    };
    ATTRIBUTES
        .iter()
        .filter(|a| a.is_named(attr))
        .any(|a| a.matching()[0].is_some_and(|o| names_rule(o, rule)))
}

/// An extensible match (RFC 4511 §4.5.1.7.7): with the attribute's own equality rule (or no
/// rule) it is that attribute's equality; `:dn:` also holds for entries whose DN has the
/// attribute value — the unit (`ou=people`, `ou=groups`) or the tree's base. Another rule, or
/// no attribute, is Undefined.
fn extensible(
    m: &ldap3_proto::proto::LdapMatchingRuleAssertion,
    rt: &ResourceType,
    resolve: &dyn Resolve,
) -> (Filter, Filter) {
    let Some(attr) = m.type_.as_deref() else {
        return Item::Undefined.truth();
    };
    let kind = rt.kind();
    if let Some(rule) = &m.matching_rule {
        let own = built_in(kind, &attr.to_ascii_lowercase()).and_then(|a| a.matching()[0]);
        if !own.is_some_and(|o| names_rule(o, rule)) {
            return Item::Undefined.truth();
        }
    }
    let equality = LdapFilter::Equality(attr.to_string(), m.match_value.clone());
    if !m.dn_attributes {
        return truth(&equality, rt, resolve);
    }
    let unit = match kind {
        ResourceKind::User => PEOPLE,
        ResourceKind::Group => GROUPS,
    };
    let mut rdns = vec![("ou".to_string(), unit.to_string())];
    rdns.extend(
        resolve
            .base()
            .and_then(|b| parse_dn(&b))
            .unwrap_or_default(),
    );
    let in_dn = rdns.iter().any(|(a, v)| {
        a.eq_ignore_ascii_case(attr) && crate::scim::fold(v) == crate::scim::fold(&m.match_value)
    });
    match in_dn {
        true => (always(), Filter::Never),
        false => truth(&equality, rt, resolve),
    }
}

/// An item on a POSIX attribute the provider does not map (`value` None: presence): Undefined
/// when the provider has no POSIX identities or the value does not fit.
fn posix_item(
    rt: &ResourceType,
    resolve: &dyn Resolve,
    part: Part,
    op: Op,
    value: Option<&str>,
) -> Item {
    let Some(posix) = resolve.posix() else {
        return Item::Undefined;
    };
    let users = rt.kind() == ResourceKind::User;
    let by_name = |name: Option<&str>| -> Filter {
        let str_eq = |p: AttrPath, v: String| Filter::Compare(p, Op::Eq, CompValue::Str(v));
        match (users, name) {
            (true, Some(n)) => str_eq(path(rt.name_attribute(), None), n.to_string()),
            (true, None) => Filter::Never,
            (false, name) => {
                let Some(members) = scim_path(ResourceKind::Group, "member") else {
                    return Filter::Never;
                };
                match name {
                    None => Filter::Present(members),
                    Some(n) => match resolve.id_of(ResourceKind::User, n) {
                        Some(id) => str_eq(members, id),
                        None => Filter::Never,
                    },
                }
            }
        }
    };
    match posix.condition(part, users, op, value, &by_name) {
        Some(f) => Item::Is(f),
        None => Item::Undefined,
    }
}

/// A filter item's value for an entry: a SCIM condition (TRUE where it holds, FALSE where
/// not), or Undefined for every entry.
enum Item {
    Is(Filter),
    Undefined,
}

impl Item {
    /// The entries for which the item is TRUE, and those for which it is FALSE.
    fn truth(self) -> (Filter, Filter) {
        match self {
            Item::Undefined => (Filter::Never, Filter::Never),
            Item::Is(Filter::Never) => (Filter::Never, always()),
            Item::Is(c) if is_always(&c) => (c, Filter::Never),
            Item::Is(c) => (c.clone(), Filter::Not(Box::new(c))),
        }
    }
}

/// An LDAP filter as the entries it is TRUE for and those it is FALSE for; Undefined is
/// neither. AND is TRUE when all parts are and FALSE when any is; OR the other way round; NOT
/// swaps them, so NOT of Undefined stays Undefined.
fn truth(f: &LdapFilter, rt: &ResourceType, resolve: &dyn Resolve) -> (Filter, Filter) {
    let kind = rt.kind();
    let str_cmp = |attr: &str, op: Op, value: &str| -> Item {
        let ldap = attr.to_ascii_lowercase();
        if ldap == "objectclass" {
            let (class, number, part) = match kind {
                ResourceKind::User => ("posixAccount", "uidnumber", Part::Uid),
                ResourceKind::Group => ("posixGroup", "gidnumber", Part::Gid),
            };
            if op == Op::Eq && value.eq_ignore_ascii_case(class) {
                // POSIX entries: those whose number the provider maps, or all (within the
                // range of numbers) when it has POSIX identities.
                let mapped = resolve.mapped(kind, number).map(Filter::Present);
                let users = kind == ResourceKind::User;
                let posix = (resolve.posix())
                    .and_then(|p| p.condition(part, users, Op::Eq, None, &|_| Filter::Never));
                return Item::Is(match (mapped, posix) {
                    (Some(m), Some(p)) => Filter::Or(Box::new(m), Box::new(p)),
                    (Some(f), None) | (None, Some(f)) => f,
                    (None, None) => Filter::Never,
                });
            }
            return Item::Is(if op == Op::Eq && has_class(kind, value) {
                always()
            } else {
                Filter::Never
            });
        }
        let mapped = resolve.mapped(kind, &ldap);
        if mapped.is_none()
            && let Some(Source::Posix(part)) = built_in(kind, &ldap).map(|a| a.source)
        {
            return posix_item(rt, resolve, part, op, Some(value));
        }
        let Some(p) = mapped.or_else(|| scim_path(kind, &ldap)) else {
            return Item::Undefined;
        };
        // DN-valued attributes compare the id of the entry the DN names.
        let dn_kind = match built_in(kind, &ldap).map(|a| a.source) {
            Some(Source::MemberOf) => Some(ResourceKind::Group),
            Some(Source::Member | Source::Manager) => Some(ResourceKind::User),
            _ => None,
        };
        let value = match dn_kind {
            None => {
                // Other values are converted by the syntax of the attribute they stand for.
                let Ok(target) = filter::resolve(rt, &p, None) else {
                    return Item::Undefined;
                };
                // A telephone number matches with spaces and hyphens ignored, whatever
                // attribute holds it (telephoneNumberMatch); it has no ordering.
                let phone = built_in(kind, &ldap).is_some_and(|a| a.syntax == sx::TELEPHONE_NUMBER);
                if phone && target.ty() == Type::String {
                    return match op {
                        Op::Ge | Op::Le => Item::Undefined,
                        _ => Item::Is(Filter::Compare(p, op, CompValue::Phone(value.to_string()))),
                    };
                }
                return match typed(&p, target.ty(), op, value) {
                    Some(f) => Item::Is(f),
                    None => Item::Undefined,
                };
            }
            // A DN has equality matching only.
            Some(_) if op != Op::Eq => return Item::Undefined,
            Some(k) => {
                let id = match resolve.node(value) {
                    Some(Node::User(_, name)) => resolve.id_of(ResourceKind::User, &name),
                    Some(Node::Group(_, name))
                        if k == ResourceKind::Group || kind == ResourceKind::Group =>
                    {
                        resolve.id_of(ResourceKind::Group, &name)
                    }
                    _ => None,
                };
                match id {
                    Some(id) if op == Op::Eq => id,
                    // A DN that names no entry of the tree matches no value: FALSE.
                    _ => return Item::Is(Filter::Never),
                }
            }
        };
        Item::Is(Filter::Compare(p, op, CompValue::Str(value)))
    };
    let join = |parts: &[LdapFilter], and: bool| {
        let (ts, fs): (Vec<Filter>, Vec<Filter>) =
            parts.iter().map(|p| truth(p, rt, resolve)).unzip();
        type Join = fn(Box<Filter>, Box<Filter>) -> Filter;
        let (t_join, f_join): (Join, Join) = match and {
            true => (Filter::And, Filter::Or),
            false => (Filter::Or, Filter::And),
        };
        let (t_empty, f_empty) = match and {
            true => (always(), Filter::Never),
            false => (Filter::Never, always()),
        };
        (all(ts, t_join, t_empty), all(fs, f_join, f_empty))
    };
    let item = match f {
        LdapFilter::And(parts) => return join(parts, true),
        LdapFilter::Or(parts) => return join(parts, false),
        LdapFilter::Not(inner) => {
            let (t, f) = truth(inner, rt, resolve);
            return (f, t);
        }
        LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v) => str_cmp(a, Op::Eq, v),
        LdapFilter::GreaterOrEqual(a, v) => str_cmp(a, Op::Ge, v),
        LdapFilter::LessOrEqual(a, v) => str_cmp(a, Op::Le, v),
        LdapFilter::Present(a) => {
            let ldap = a.to_ascii_lowercase();
            if ldap == "objectclass" {
                return (always(), Filter::Never);
            }
            let mapped = resolve.mapped(kind, &ldap);
            if mapped.is_none()
                && let Some(Source::Posix(part)) = built_in(kind, &ldap).map(|a| a.source)
            {
                return posix_item(rt, resolve, part, Op::Eq, None).truth();
            }
            match mapped.or_else(|| scim_path(kind, &ldap)) {
                Some(p) => Item::Is(Filter::Present(p)),
                None => Item::Undefined,
            }
        }
        LdapFilter::Substring(
            a,
            LdapSubstringFilter {
                initial,
                any,
                final_,
            },
        ) => {
            let mut items = Vec::new();
            if let Some(i) = initial {
                items.push(str_cmp(a, Op::Sw, i));
            }
            for m in any {
                items.push(str_cmp(a, Op::Co, m));
            }
            if let Some(e) = final_ {
                items.push(str_cmp(a, Op::Ew, e));
            }
            // The parts name one attribute: Undefined for all of them or for none.
            let parts: Option<Vec<Filter>> = items
                .into_iter()
                .map(|i| match i {
                    Item::Is(c) => Some(c),
                    Item::Undefined => None,
                })
                .collect();
            match parts {
                Some(parts) => Item::Is(all(parts, Filter::And, always())),
                None => Item::Undefined,
            }
        }
        LdapFilter::Extensible(m) => return extensible(m, rt, resolve),
    };
    item.truth()
}

// The one table of built-in LDAP attributes: each row says how entries show the attribute, how a
// filter on it becomes a SCIM filter, and how the schema subentry (`cn=schema`) defines it, with
// the standard definitions of what the tree uses (RFC 4519, 4524, 2798, 2307, 4530, 4512), so
// clients that read the schema know the syntax. A new built-in attribute is one row here.

/// The RFC 4517 syntaxes the table uses.
mod syntax {
    pub(super) const DIRECTORY_STRING: &str = "1.3.6.1.4.1.1466.115.121.1.15";
    pub(super) const IA5_STRING: &str = "1.3.6.1.4.1.1466.115.121.1.26";
    pub(super) const TELEPHONE_NUMBER: &str = "1.3.6.1.4.1.1466.115.121.1.50";
    pub(super) const DN: &str = "1.3.6.1.4.1.1466.115.121.1.12";
    pub(super) const OID: &str = "1.3.6.1.4.1.1466.115.121.1.38";
    pub(super) const INTEGER: &str = "1.3.6.1.4.1.1466.115.121.1.27";
    pub(super) const GENERALIZED_TIME: &str = "1.3.6.1.4.1.1466.115.121.1.24";
    pub(super) const UUID: &str = "1.3.6.1.1.16.1";
    pub(super) const ATTRIBUTE_TYPE: &str = "1.3.6.1.4.1.1466.115.121.1.3";
    pub(super) const OBJECT_CLASS: &str = "1.3.6.1.4.1.1466.115.121.1.37";
    pub(super) const MATCHING_RULE: &str = "1.3.6.1.4.1.1466.115.121.1.30";
    pub(super) const MATCHING_RULE_USE: &str = "1.3.6.1.4.1.1466.115.121.1.31";
    pub(super) const SYNTAX: &str = "1.3.6.1.4.1.1466.115.121.1.54";
    pub(super) const CONTENT_RULE: &str = "1.3.6.1.4.1.1466.115.121.1.16";
    pub(super) const STRUCTURE_RULE: &str = "1.3.6.1.4.1.1466.115.121.1.17";
    pub(super) const NAME_FORM: &str = "1.3.6.1.4.1.1466.115.121.1.35";
}

use syntax as sx;

/// Who an attribute is for (RFC 4512 `USAGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    User,
    /// Operational, kept by the directory (`NO-USER-MODIFICATION USAGE directoryOperation`).
    Directory,
    /// The root DSE's (`USAGE dSAOperation`).
    Dsa,
    /// The schema subentry's own (`USAGE directoryOperation`).
    Subschema,
}

/// Where the values of a built-in attribute come from in the entries that have it, and with
/// them what a filter on it compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// In no user or group entry: the root entry's, the root DSE's, the schema subentry's, or
    /// one a provider maps itself (`scimd ldap map`).
    Elsewhere,
    /// The entry's object classes.
    ObjectClass,
    /// A core attribute, or a sub-attribute of one.
    Core(&'static str, Option<&'static str>),
    /// A core attribute, else (for an entry without it) the unique name.
    CoreOrName(&'static str, Option<&'static str>),
    /// An attribute of the enterprise extension.
    Enterprise(&'static str),
    /// All values of a multi-valued attribute, the primary (else a work one) first.
    Values(&'static str),
    /// The DN of the user's manager: compared by the manager's id.
    Manager,
    /// The DNs of the groups a user is in, nested ones included: compared by the group's id.
    MemberOf,
    /// The DNs of a group's members: compared by the member's id.
    Member,
    /// The resource's id (operational).
    Id,
    /// When it was created, last changed (operational).
    Created,
    Modified,
    /// A POSIX identity attribute (see `posix`), when the provider has them.
    Posix(Part),
}

/// One built-in LDAP attribute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LdapAttribute {
    pub(crate) name: &'static str,
    oid: &'static str,
    syntax: &'static str,
    single: bool,
    usage: Usage,
    /// Which entries show it: users, groups.
    users: bool,
    groups: bool,
    /// Other names a filter may use for it.
    aliases: &'static [&'static str],
    source: Source,
}

const fn row(name: &'static str, oid: &'static str, syntax: &'static str) -> LdapAttribute {
    LdapAttribute {
        name,
        oid,
        syntax,
        single: false,
        usage: Usage::User,
        users: false,
        groups: false,
        aliases: &[],
        source: Source::Elsewhere,
    }
}

impl LdapAttribute {
    const fn users(self, source: Source) -> Self {
        LdapAttribute {
            users: true,
            source,
            ..self
        }
    }
    const fn groups(self) -> Self {
        LdapAttribute {
            groups: true,
            ..self
        }
    }
    const fn single(self) -> Self {
        LdapAttribute {
            single: true,
            ..self
        }
    }
    const fn usage(self, usage: Usage) -> Self {
        LdapAttribute { usage, ..self }
    }
    const fn source(self, source: Source) -> Self {
        LdapAttribute { source, ..self }
    }
    const fn aliases(self, aliases: &'static [&'static str]) -> Self {
        LdapAttribute { aliases, ..self }
    }

    /// Its matching rules (RFC 4517 §4.2): equality, ordering and substrings, as its syntax
    /// has them and as scimd compares its values.
    fn matching(&self) -> [Option<&'static str>; 3] {
        match self.name {
            // Compared exactly (values made from templates and paths).
            "homeDirectory" | "loginShell" => return [Some("caseExactIA5Match"), None, None],
            // Names, looked up regardless of case; no substrings.
            "memberUid" => return [Some("caseIgnoreIA5Match"), None, None],
            _ => {}
        }
        match self.syntax {
            sx::DIRECTORY_STRING => [
                Some("caseIgnoreMatch"),
                None,
                Some("caseIgnoreSubstringsMatch"),
            ],
            sx::IA5_STRING => [
                Some("caseIgnoreIA5Match"),
                None,
                Some("caseIgnoreIA5SubstringsMatch"),
            ],
            sx::TELEPHONE_NUMBER => [
                Some("telephoneNumberMatch"),
                None,
                Some("telephoneNumberSubstringsMatch"),
            ],
            sx::DN => [Some("distinguishedNameMatch"), None, None],
            sx::OID => [Some("objectIdentifierMatch"), None, None],
            sx::INTEGER => [Some("integerMatch"), Some("integerOrderingMatch"), None],
            sx::GENERALIZED_TIME => [
                Some("generalizedTimeMatch"),
                Some("generalizedTimeOrderingMatch"),
                None,
            ],
            sx::UUID => [Some("UUIDMatch"), Some("UUIDOrderingMatch"), None],
            sx::STRUCTURE_RULE => [Some("integerFirstComponentMatch"), None, None],
            _ => [Some("objectIdentifierFirstComponentMatch"), None, None],
        }
    }

    /// Its definition in the schema subentry.
    fn definition(&self) -> String {
        let mut d = format!("( {} NAME '{}'", self.oid, self.name);
        for (keyword, rule) in ["EQUALITY", "ORDERING", "SUBSTR"]
            .into_iter()
            .zip(self.matching())
        {
            if let Some(rule) = rule {
                d.push_str(&format!(" {keyword} {rule}"));
            }
        }
        d.push_str(&format!(" SYNTAX {}", self.syntax));
        if self.single {
            d.push_str(" SINGLE-VALUE");
        }
        d.push_str(match self.usage {
            Usage::User => "",
            Usage::Directory => " NO-USER-MODIFICATION USAGE directoryOperation",
            Usage::Dsa if self.single => " NO-USER-MODIFICATION USAGE dSAOperation",
            Usage::Dsa => " USAGE dSAOperation",
            Usage::Subschema => " USAGE directoryOperation",
        });
        d.push_str(" )");
        d
    }

    fn is_named(&self, lower: &str) -> bool {
        self.name.eq_ignore_ascii_case(lower)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(lower))
    }

    fn of(&self, kind: ResourceKind) -> bool {
        match kind {
            ResourceKind::User => self.users,
            ResourceKind::Group => self.groups,
        }
    }

    /// The SCIM attribute a filter on it compares (none: the filter matches nothing).
    fn filter_path(&self) -> Option<AttrPath> {
        Some(match self.source {
            Source::Core(a, sub) | Source::CoreOrName(a, sub) => path(a, sub),
            Source::Enterprise(a) => ext_path(a),
            Source::Values(a) => path(a, Some("value")),
            Source::MemberOf => path("groups", Some("value")),
            Source::Member => path("members", Some("value")),
            Source::Id => path("id", None),
            Source::Manager => AttrPath {
                uri: Some(ENTERPRISE.into()),
                attr: "manager".into(),
                sub: Some("value".into()),
            },
            Source::Created => path("meta", Some("created")),
            Source::Modified => path("meta", Some("lastModified")),
            Source::Elsewhere | Source::ObjectClass | Source::Posix(_) => return None,
        })
    }
}

/// The object classes of user and group entries.
const USER_CLASSES: &[&str] = &["top", "person", "organizationalPerson", "inetOrgPerson"];
const GROUP_CLASSES: &[&str] = &["top", "groupOfNames"];

/// The built-in attributes; entries show theirs in this order.
pub(crate) const ATTRIBUTES: &[LdapAttribute] = &[
    row("objectClass", "2.5.4.0", sx::OID)
        .users(Source::ObjectClass)
        .groups(),
    row("uid", "0.9.2342.19200300.100.1.1", sx::DIRECTORY_STRING)
        .users(Source::Core("userName", None)),
    row("cn", "2.5.4.3", sx::DIRECTORY_STRING)
        .users(Source::CoreOrName("displayName", None))
        .groups(),
    row(
        "displayName",
        "2.16.840.1.113730.3.1.241",
        sx::DIRECTORY_STRING,
    )
    .single()
    .users(Source::Core("displayName", None)),
    row("givenName", "2.5.4.42", sx::DIRECTORY_STRING)
        .users(Source::Core("name", Some("givenName"))),
    // Required by person: the family name, else the userName.
    row("sn", "2.5.4.4", sx::DIRECTORY_STRING)
        .users(Source::CoreOrName("name", Some("familyName"))),
    row("mail", "0.9.2342.19200300.100.1.3", sx::IA5_STRING).users(Source::Values("emails")),
    row("telephoneNumber", "2.5.4.20", sx::TELEPHONE_NUMBER).users(Source::Values("phoneNumbers")),
    row("title", "2.5.4.12", sx::DIRECTORY_STRING).users(Source::Core("title", None)),
    row(
        "departmentNumber",
        "2.16.840.1.113730.3.1.2",
        sx::DIRECTORY_STRING,
    )
    .users(Source::Enterprise("department")),
    row(
        "employeeNumber",
        "2.16.840.1.113730.3.1.3",
        sx::DIRECTORY_STRING,
    )
    .single()
    .users(Source::Enterprise("employeeNumber")),
    row("manager", "0.9.2342.19200300.100.1.10", sx::DN).users(Source::Manager),
    row("memberOf", "1.2.840.113556.1.2.102", sx::DN).users(Source::MemberOf),
    row("member", "2.5.4.31", sx::DN)
        .groups()
        .source(Source::Member)
        .aliases(&["uniqueMember"]),
    row("o", "2.5.4.10", sx::DIRECTORY_STRING),
    row("ou", "2.5.4.11", sx::DIRECTORY_STRING),
    row("dc", "0.9.2342.19200300.100.1.25", sx::IA5_STRING).single(),
    // RFC 2307 (bis): what `scimd ldap posix` serves, or a provider maps itself.
    row("uidNumber", "1.3.6.1.1.1.1.0", sx::INTEGER)
        .single()
        .users(Source::Posix(Part::Uid)),
    row("gidNumber", "1.3.6.1.1.1.1.1", sx::INTEGER)
        .single()
        .users(Source::Posix(Part::Gid))
        .groups(),
    row("homeDirectory", "1.3.6.1.1.1.1.3", sx::IA5_STRING)
        .single()
        .users(Source::Posix(Part::Home)),
    row("loginShell", "1.3.6.1.1.1.1.4", sx::IA5_STRING)
        .single()
        .users(Source::Posix(Part::Shell)),
    row("memberUid", "1.3.6.1.1.1.1.12", sx::IA5_STRING)
        .groups()
        .source(Source::Posix(Part::MemberUid)),
    row("entryUUID", "1.3.6.1.1.16.4", sx::UUID)
        .single()
        .usage(Usage::Directory)
        .users(Source::Id)
        .groups(),
    row("createTimestamp", "2.5.18.1", sx::GENERALIZED_TIME)
        .single()
        .usage(Usage::Directory)
        .users(Source::Created)
        .groups(),
    row("modifyTimestamp", "2.5.18.2", sx::GENERALIZED_TIME)
        .single()
        .usage(Usage::Directory)
        .users(Source::Modified)
        .groups(),
    // What the root DSE and this subentry hold: clients that check names against the schema
    // (ldap3 does) ask for these.
    row("subschemaSubentry", "2.5.18.10", sx::DN)
        .single()
        .usage(Usage::Directory),
    row("attributeTypes", "2.5.21.5", sx::ATTRIBUTE_TYPE).usage(Usage::Subschema),
    row("objectClasses", "2.5.21.6", sx::OBJECT_CLASS).usage(Usage::Subschema),
    row("matchingRules", "2.5.21.4", sx::MATCHING_RULE).usage(Usage::Subschema),
    row("matchingRuleUse", "2.5.21.8", sx::MATCHING_RULE_USE).usage(Usage::Subschema),
    row("ldapSyntaxes", "1.3.6.1.4.1.1466.101.120.16", sx::SYNTAX).usage(Usage::Subschema),
    row("dITContentRules", "2.5.21.2", sx::CONTENT_RULE).usage(Usage::Subschema),
    row("dITStructureRules", "2.5.21.1", sx::STRUCTURE_RULE).usage(Usage::Subschema),
    row("nameForms", "2.5.21.7", sx::NAME_FORM).usage(Usage::Subschema),
    row("namingContexts", "1.3.6.1.4.1.1466.101.120.5", sx::DN).usage(Usage::Dsa),
    row("supportedControl", "1.3.6.1.4.1.1466.101.120.13", sx::OID).usage(Usage::Dsa),
    row("supportedExtension", "1.3.6.1.4.1.1466.101.120.7", sx::OID).usage(Usage::Dsa),
    row("supportedFeatures", "1.3.6.1.4.1.4203.1.3.5", sx::OID).usage(Usage::Dsa),
    row(
        "supportedLDAPVersion",
        "1.3.6.1.4.1.1466.101.120.15",
        sx::INTEGER,
    )
    .usage(Usage::Dsa),
    row(
        "supportedSASLMechanisms",
        "1.3.6.1.4.1.1466.101.120.14",
        sx::DIRECTORY_STRING,
    )
    .usage(Usage::Dsa),
    row("altServer", "1.3.6.1.4.1.1466.101.120.6", sx::IA5_STRING).usage(Usage::Dsa),
    row("vendorName", "1.3.6.1.1.4", sx::DIRECTORY_STRING)
        .single()
        .usage(Usage::Dsa),
    row("vendorVersion", "1.3.6.1.1.5", sx::DIRECTORY_STRING)
        .single()
        .usage(Usage::Dsa),
];

/// The schema subentry's `attributeTypes`: every row's definition.
pub(crate) fn attribute_types() -> Vec<String> {
    ATTRIBUTES.iter().map(LdapAttribute::definition).collect()
}

/// Whether the directory defines an attribute of this name (for any entry), so a filter item on
/// it is TRUE or FALSE rather than Undefined.
pub(crate) fn defines(name: &str) -> bool {
    name.eq_ignore_ascii_case("objectClass") || ATTRIBUTES.iter().any(|a| a.is_named(name))
}

/// The built-in attribute of entries of `kind` a (lower-case) LDAP name names.
fn built_in(kind: ResourceKind, ldap: &str) -> Option<&'static LdapAttribute> {
    ATTRIBUTES.iter().find(|a| a.of(kind) && a.is_named(ldap))
}

/// The SCIM attribute a filter on an LDAP attribute of `kind` compares.
fn scim_path(kind: ResourceKind, ldap: &str) -> Option<AttrPath> {
    built_in(kind, ldap)?.filter_path()
}

/// Whether entries of `kind` have an object class.
fn has_class(kind: ResourceKind, class: &str) -> bool {
    let classes = match kind {
        ResourceKind::User => USER_CLASSES,
        ResourceKind::Group => GROUP_CLASSES,
    };
    classes.iter().any(|c| c.eq_ignore_ascii_case(class))
}

pub(crate) const OBJECT_CLASSES: &[&str] = &[
    "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )",
    "( 2.5.20.1 NAME 'subschema' AUXILIARY \
     MAY ( dITStructureRules $ nameForms $ dITContentRules $ objectClasses $ attributeTypes $ \
     matchingRules $ matchingRuleUse ) )",
    "( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY telephoneNumber )",
    "( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL MAY ( title $ ou ) )",
    "( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson STRUCTURAL \
     MAY ( departmentNumber $ displayName $ employeeNumber $ givenName $ mail $ manager $ uid ) )",
    "( 2.5.6.9 NAME 'groupOfNames' SUP top STRUCTURAL MUST cn MAY member )",
    "( 2.5.6.5 NAME 'organizationalUnit' SUP top STRUCTURAL MUST ou )",
    "( 2.5.6.4 NAME 'organization' SUP top STRUCTURAL MUST o )",
    "( 1.3.6.1.4.1.1466.344 NAME 'dcObject' SUP top AUXILIARY MUST dc )",
    "( 1.3.6.1.1.1.2.0 NAME 'posixAccount' SUP top AUXILIARY \
     MUST ( cn $ uid $ uidNumber $ gidNumber $ homeDirectory ) MAY loginShell )",
    "( 1.3.6.1.1.1.2.2 NAME 'posixGroup' SUP top AUXILIARY MUST ( cn $ gidNumber ) \
     MAY memberUid )",
];

/// A provider's root entry, typed by the first RDN of its base (`dc=`, `ou=`, `o=`, ...).
pub(crate) fn root_attributes(provider: &str, base: &str) -> Vec<(String, Vec<String>)> {
    let first = parse_dn(base)
        .and_then(|r| r.into_iter().next())
        .unwrap_or_else(|| ("dc".into(), provider.to_string()));
    let classes: &[&str] = match first.0.as_str() {
        "dc" => &["top", "dcObject", "organization"],
        "ou" => &["top", "organizationalUnit"],
        "o" => &["top", "organization"],
        "c" => &["top", "country"],
        "l" => &["top", "locality"],
        _ => &["top", "extensibleObject"],
    };
    let mut attrs = vec![
        (
            "objectClass".to_string(),
            classes.iter().map(|c| c.to_string()).collect(),
        ),
        (first.0.clone(), vec![first.1.clone()]),
    ];
    if first.0 == "dc" {
        attrs.push(("o".into(), vec![provider.to_string()]));
    }
    attrs
}

/// Whether a filter can match entries of `kind` at all (`(objectClass=groupOfNames)` cannot
/// match users): spares a search of the other kind.
pub(crate) fn may_match(f: &Filter) -> bool {
    !matches!(f, Filter::Never)
}

/// Simplifies constant parts (`Never`, `not Never`) so `may_match` sees through them.
pub(crate) fn simplify(f: Filter) -> Filter {
    let is_always =
        |f: &Filter| matches!(f, Filter::Not(inner) if matches!(**inner, Filter::Never));
    match f {
        Filter::And(a, b) => {
            let (a, b) = (simplify(*a), simplify(*b));
            match (&a, &b) {
                (Filter::Never, _) | (_, Filter::Never) => Filter::Never,
                _ if is_always(&a) => b,
                _ if is_always(&b) => a,
                _ => Filter::And(Box::new(a), Box::new(b)),
            }
        }
        Filter::Or(a, b) => {
            let (a, b) = (simplify(*a), simplify(*b));
            match (&a, &b) {
                (Filter::Never, _) => b,
                (_, Filter::Never) => a,
                _ if is_always(&a) || is_always(&b) => always(),
                _ => Filter::Or(Box::new(a), Box::new(b)),
            }
        }
        Filter::Not(inner) => match simplify(*inner) {
            Filter::Not(x) => *x,
            x => Filter::Not(Box::new(x)),
        },
        other => other,
    }
}

/// Whether a filter is the constant true (then no SCIM filter is needed).
pub(crate) fn is_always(f: &Filter) -> bool {
    matches!(f, Filter::Not(inner) if matches!(**inner, Filter::Never))
}

/// A user entry's attributes as (LDAP name, values), from its stored SCIM document, its
/// manager's DN and the names of its groups (nested ones included), in the table's order.
pub(crate) fn user_attributes(
    doc: &Json<'_>,
    base: &str,
    manager_dn: Option<String>,
    groups: &[&str],
) -> Vec<(String, Vec<String>)> {
    let text = |v: Option<&Json<'_>>| v.and_then(Json::as_str).map(str::to_string);
    let core = |a: &str, sub: Option<&str>| {
        let v = doc.get(a);
        text(match sub {
            Some(s) => v.and_then(|v| v.get(s)),
            None => v,
        })
    };
    let user_name = text(doc.get("userName")).unwrap_or_default();
    let mut out = Vec::new();
    for attr in ATTRIBUTES
        .iter()
        .filter(|a| a.users && a.usage == Usage::User)
    {
        let values: Vec<String> = match attr.source {
            Source::ObjectClass => USER_CLASSES.iter().map(|c| c.to_string()).collect(),
            Source::Core(a, sub) => core(a, sub).into_iter().collect(),
            Source::CoreOrName(a, sub) => vec![core(a, sub).unwrap_or_else(|| user_name.clone())],
            Source::Enterprise(a) => text(doc.get(ENTERPRISE).and_then(|e| e.get(a)))
                .into_iter()
                .collect(),
            Source::Values(a) => primary_first(doc.get(a)),
            Source::Manager => manager_dn.clone().into_iter().collect(),
            Source::MemberOf => groups.iter().map(|name| group_dn(base, name)).collect(),
            _ => Vec::new(),
        };
        if !values.is_empty() {
            out.push((attr.name.to_string(), values));
        }
    }
    out
}

/// A group entry's attributes: its object classes, its name and its members' DNs.
pub(crate) fn group_attributes(name: &str, members: Vec<String>) -> Vec<(String, Vec<String>)> {
    let mut members = Some(members);
    let mut out = Vec::new();
    for attr in ATTRIBUTES
        .iter()
        .filter(|a| a.groups && a.usage == Usage::User)
    {
        let values: Vec<String> = match attr.source {
            Source::ObjectClass => GROUP_CLASSES.iter().map(|c| c.to_string()).collect(),
            Source::Member => members.take().unwrap_or_default(),
            Source::Posix(_) => Vec::new(),
            _ => vec![name.to_string()],
        };
        if !values.is_empty() {
            out.push((attr.name.to_string(), values));
        }
    }
    out
}

/// The id of a user's manager, as the enterprise extension keeps it.
pub(crate) fn manager_id<'d>(doc: &'d Json<'_>) -> Option<&'d str> {
    doc.get(ENTERPRISE)?.get("manager")?.get("value")?.as_str()
}

/// The values of a multi-valued attribute, the primary (else a work one) first.
fn primary_first(v: Option<&Json<'_>>) -> Vec<String> {
    let Some(items) = v.and_then(Json::as_array) else {
        return Vec::new();
    };
    let mut ranked: Vec<(u8, String)> = items
        .iter()
        .filter_map(|i| {
            let value = i.get("value")?.as_str()?.to_string();
            let rank = if i.get("primary").and_then(Json::as_bool) == Some(true) {
                0
            } else if i.get("type").and_then(Json::as_str) == Some("work") {
                1
            } else {
                2
            };
            Some((rank, value))
        })
        .collect();
    ranked.sort_by_key(|(r, _)| *r);
    ranked.into_iter().map(|(_, v)| v).collect()
}

/// Operational attributes (`+`) of an entry: its id, and when it was created and last changed.
pub(crate) fn operational(id: &str, created: &str, modified: &str) -> Attributes {
    ATTRIBUTES
        .iter()
        .filter(|a| a.usage == Usage::Directory)
        .filter_map(|a| {
            let value = match a.source {
                Source::Id => Some(id.to_string()),
                Source::Created => generalized_time(created),
                Source::Modified => generalized_time(modified),
                _ => None,
            }?;
            Some((a.name.to_string(), vec![value]))
        })
        .collect()
}

/// An RFC 3339 time as LDAP's GeneralizedTime (`20261130071611Z`).
fn generalized_time(t: &str) -> Option<String> {
    // The times scimd stores are UTC (`2026-11-30T07:16:11.123Z`): their digits, rearranged.
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let fraction = b.get(19..b.len().saturating_sub(1)).unwrap_or_default();
    if b.len() >= 20
        && b[b.len() - 1] == b'Z'
        && (b[4], b[7], b[10], b[13], b[16]) == (b'-', b'-', b'T', b':', b':')
        && digits(0..4)
        && digits(5..7)
        && digits(8..10)
        && digits(11..13)
        && digits(14..16)
        && digits(17..19)
        && (fraction.is_empty()
            || (fraction[0] == b'.'
                && fraction.len() > 1
                && fraction[1..].iter().all(u8::is_ascii_digit)))
    {
        return Some(format!(
            "{}{}{}{}{}{}Z",
            &t[0..4],
            &t[5..7],
            &t[8..10],
            &t[11..13],
            &t[14..16],
            &t[17..19]
        ));
    }
    let d = chrono::DateTime::parse_from_rfc3339(t).ok()?;
    Some(
        d.with_timezone(&chrono::Utc)
            .format("%Y%m%d%H%M%SZ")
            .to_string(),
    )
}

/// Attributes of an entry: (name, values) each.
pub(crate) type Attributes = Vec<(String, Vec<String>)>;

/// A directory entry: its DN, its user attributes and its operational attributes (RFC 4512
/// §3.4: sent only when a search names them or asks for `+`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) dn: String,
    pub(crate) attributes: Attributes,
    pub(crate) operational: Attributes,
}

impl Entry {
    /// An entry with user attributes only.
    pub(crate) fn new(dn: impl Into<String>, attributes: Attributes) -> Entry {
        Entry {
            dn: dn.into(),
            attributes,
            operational: Vec::new(),
        }
    }

    /// The values of the attribute `name` (user or operational; regardless of case).
    pub(crate) fn values<'e>(&'e self, name: &'e str) -> impl Iterator<Item = &'e String> + 'e {
        self.attributes
            .iter()
            .chain(&self.operational)
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v)
    }

    /// The attributes a search asked for: none listed or `*` all user attributes, `+` the
    /// operational ones, `1.1` none; names compare regardless of case. User attributes come
    /// first; an attribute without values is left out (RFC 4511 section 4.5.2).
    pub(crate) fn select(&self, wanted: &[String]) -> Vec<(&str, &[String])> {
        let wants = |name: &str| wanted.iter().any(|w| w.eq_ignore_ascii_case(name));
        let (all_user, all_op) = (wanted.is_empty() || wants("*"), wants("+"));
        let user = self
            .attributes
            .iter()
            .filter(|(n, v)| !v.is_empty() && (all_user || wants(n)));
        let op = self
            .operational
            .iter()
            .filter(|(n, v)| !v.is_empty() && (all_op || wants(n)));
        user.chain(op)
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(kind: ResourceKind) -> &'static ResourceType {
        crate::scim::schema::Model::builtin().get(kind)
    }

    #[test]
    fn served_values_are_found_by_path_and_stored_ones_are_not() {
        let served = Served {
            id: "u1",
            resource_type: "User",
            created: "c",
            modified: "m",
            version: "W/\"3\"".into(),
            location: "https://h/scim/v2/p/Users/u1".into(),
            linked_name: "groups",
            linked: vec![("g1", Some("Sales"), true), ("g2", None, false)],
        };
        let at = |p: &str| served.values(&parse_path(p).unwrap());
        assert_eq!(at("id"), Some(vec!["u1".to_string()]));
        assert_eq!(at("meta.LASTMODIFIED"), Some(vec!["m".to_string()]));
        assert_eq!(at("meta.version"), Some(vec!["W/\"3\"".to_string()]));
        assert_eq!(at("groups.value"), Some(vec!["g1".into(), "g2".into()]));
        assert_eq!(at("groups.display"), Some(vec!["Sales".to_string()]));
        assert_eq!(
            at("groups.type"),
            Some(vec!["direct".into(), "indirect".into()])
        );
        // Stored attributes are read from the document.
        assert_eq!(at("name.givenName"), None);
        assert_eq!(at("userName"), None);
    }

    #[test]
    fn times_become_generalized_time_in_utc() {
        for (t, want) in [
            ("2026-11-30T07:16:11Z", Some("20261130071611Z")),
            ("2026-11-30T07:16:11.5Z", Some("20261130071611Z")),
            ("2026-11-30T07:16:11.123456789Z", Some("20261130071611Z")),
            ("2026-11-30T09:16:11+02:00", Some("20261130071611Z")),
            ("2026-12-01T01:16:11.25+18:00", Some("20261130071611Z")),
            ("2026-11-30t07:16:11z", Some("20261130071611Z")),
            ("2026-11-30T07:16:11.Z", None),
            ("2026-11-30 07:16:11", None),
            ("yesterday", None),
            ("", None),
        ] {
            assert_eq!(generalized_time(t).as_deref(), want, "{t}");
        }
    }

    struct Ids;
    impl Resolve for Ids {
        fn id_of(&self, kind: ResourceKind, name: &str) -> Option<String> {
            Some(format!("{}-{name}", kind.name()))
        }

        fn posix(&self) -> Option<&Posix> {
            static POSIX: std::sync::LazyLock<Posix> = std::sync::LazyLock::new(Posix::default);
            Some(&POSIX)
        }
    }

    /// The table links what entries show, what filters search and what the schema defines: an
    /// attribute an entry shows is defined in the schema, and a filter on it selects by the
    /// attribute its values come from.
    #[test]
    fn every_shown_attribute_is_defined_and_searchable() {
        let types = attribute_types();
        // objectClass is answered from the type, not from a SCIM attribute.
        let not_yet = ["objectClass"];
        for kind in [ResourceKind::User, ResourceKind::Group] {
            for a in ATTRIBUTES.iter().filter(|a| a.of(kind)) {
                let defined = format!("NAME '{}'", a.name);
                assert!(types.iter().any(|t| t.contains(&defined)), "{}", a.name);
                let value = match a.source {
                    Source::MemberOf => "cn=g,ou=groups,dc=p,dc=scimd",
                    Source::Member | Source::Manager => "uid=u,ou=people,dc=p,dc=scimd",
                    Source::Created | Source::Modified => "20261130071611Z",
                    Source::Posix(Part::Uid | Part::Gid) => "100005",
                    Source::Posix(Part::Home) => "/home/u",
                    Source::Posix(Part::Shell) => "/bin/bash",
                    _ => "x",
                };
                let f = to_scim(
                    &LdapFilter::Equality(a.name.to_string(), value.to_string()),
                    rt(kind),
                    &Ids,
                );
                if not_yet.contains(&a.name) {
                    continue;
                }
                assert!(
                    matches!(f, Filter::Compare(..) | Filter::And(..) | Filter::Key(..)),
                    "{kind:?} {}: {f:?}",
                    a.name
                );
            }
        }
        // The definitions are the standard ones, character for character.
        for want in [
            "( 0.9.2342.19200300.100.1.3 NAME 'mail' EQUALITY caseIgnoreIA5Match SUBSTR \
             caseIgnoreIA5SubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )",
            "( 2.16.840.1.113730.3.1.241 NAME 'displayName' EQUALITY caseIgnoreMatch SUBSTR \
             caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )",
            "( 1.3.6.1.1.16.4 NAME 'entryUUID' EQUALITY UUIDMatch ORDERING UUIDOrderingMatch \
             SYNTAX 1.3.6.1.1.16.1 SINGLE-VALUE NO-USER-MODIFICATION USAGE directoryOperation )",
            "( 1.3.6.1.1.5 NAME 'vendorVersion' EQUALITY caseIgnoreMatch SUBSTR \
             caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE \
             NO-USER-MODIFICATION USAGE dSAOperation )",
            "( 2.5.21.5 NAME 'attributeTypes' EQUALITY objectIdentifierFirstComponentMatch \
             SYNTAX 1.3.6.1.4.1.1466.115.121.1.3 USAGE directoryOperation )",
            "( 1.3.6.1.4.1.1466.101.120.13 NAME 'supportedControl' EQUALITY \
             objectIdentifierMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.38 USAGE dSAOperation )",
            "( 1.3.6.1.1.1.1.0 NAME 'uidNumber' EQUALITY integerMatch ORDERING \
             integerOrderingMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )",
        ] {
            assert!(types.iter().any(|t| t == want), "{want}");
        }
    }

    fn eq(attr: &str, value: &str) -> LdapFilter {
        LdapFilter::Equality(attr.into(), value.into())
    }

    /// How deeply a SCIM filter nests, measured without recursion.
    fn scim_depth(f: &Filter) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(f, 1)];
        while let Some((f, d)) = stack.pop() {
            deepest = deepest.max(d);
            match f {
                Filter::And(a, b) | Filter::Or(a, b) => {
                    stack.push((a, d + 1));
                    stack.push((b, d + 1));
                }
                Filter::Not(a) => stack.push((a, d + 1)),
                _ => {}
            }
        }
        deepest
    }

    /// Filters of any shape: leaves on the attributes the tree maps and does not, AND/OR
    /// lists up to 64 wide, NOT, nested up to 12 deep.
    fn filter_strategy() -> impl proptest::strategy::Strategy<Value = LdapFilter> {
        use proptest::prelude::*;
        let attr = proptest::sample::select(vec![
            "uid",
            "cn",
            "mail",
            "memberOf",
            "member",
            "objectClass",
            "carLicense",
            "sn",
        ]);
        let value = prop_oneof![Just("x".to_string()), "\\PC{0,8}"];
        let leaf = prop_oneof![
            (attr.clone(), value.clone()).prop_map(|(a, v)| LdapFilter::Equality(a.into(), v)),
            attr.clone().prop_map(|a| LdapFilter::Present(a.into())),
            (attr, proptest::collection::vec(value, 0..5)).prop_map(|(a, any)| {
                LdapFilter::Substring(
                    a.into(),
                    LdapSubstringFilter {
                        initial: None,
                        any,
                        final_: None,
                    },
                )
            }),
        ];
        leaf.prop_recursive(12, 2000, 64, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..64).prop_map(LdapFilter::And),
                proptest::collection::vec(inner.clone(), 0..64).prop_map(LdapFilter::Or),
                inner.prop_map(|f| LdapFilter::Not(Box::new(f))),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever its shape, a filter is measured, translated and simplified without a panic,
        /// and its translation is no deeper than its own nesting plus the logarithm of its
        /// widest list (plus the few levels a leaf becomes).
        #[test]
        fn any_filter_shape_translates_shallowly(f in filter_strategy()) {
            let (terms, depth) = filter_size(&f);
            for kind in [ResourceKind::User, ResourceKind::Group] {
                let scim = simplify(to_scim(&f, rt(kind), &Ids));
                let bound = 4 + depth * (2 + (terms.max(1) as f64).log2().ceil() as usize);
                proptest::prop_assert!(scim_depth(&scim) <= bound, "{} > {bound}", scim_depth(&scim));
            }
        }

        /// DNs of any text: parsed or refused, never a panic; what parses locates or not.
        #[test]
        fn any_dn_text_is_parsed_or_refused(text in "(\\PC|[,=+\\\\#])*") {
            if let Some(rdns) = parse_dn(&text) {
                proptest::prop_assert!(rdns.iter().all(|(a, _)| !a.is_empty()));
            }
            let _ = locate(&text);
            let _ = locate_under(&text, "p", "ou=x,dc=example,dc=com");
        }
    }

    /// RFC 4511 §4.5.1.7: an item on an attribute the tree does not have is Undefined; NOT of
    /// Undefined is Undefined (matches nothing), unlike NOT of FALSE.
    #[test]
    fn values_are_converted_by_syntax_and_a_misfit_is_undefined() {
        let users = rt(ResourceKind::User);
        let at = |text: &str| {
            parse_generalized_time(text).map(|(a, b)| (a.to_rfc3339(), b.to_rfc3339()))
        };
        assert_eq!(
            at("20261130071611Z"),
            Some((
                "2026-11-30T07:16:11+00:00".into(),
                "2026-11-30T07:16:11.999+00:00".into()
            ))
        );
        assert_eq!(
            at("202611300716+0100"),
            Some((
                "2026-11-30T06:16:00+00:00".into(),
                "2026-11-30T06:16:59.999+00:00".into()
            ))
        );
        assert_eq!(
            at("20261130071611.5Z").map(|t| t.1),
            Some("2026-11-30T07:16:11.599+00:00".into())
        );
        for bad in [
            "2026",
            "20261330071611Z",
            "20261130071611",
            "20261130071611.Z",
            "x",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
        // A time compares the instant, a whole second wide.
        let ge = LdapFilter::GreaterOrEqual("modifyTimestamp".into(), "20261130071611Z".into());
        assert_eq!(
            to_scim(&ge, users, &Ids),
            Filter::Compare(
                path("meta", Some("lastModified")),
                Op::Ge,
                CompValue::Str("2026-11-30T07:16:11.000Z".into())
            )
        );
        // A value that is not a time, a substring of one, or an ordering of DNs: Undefined,
        // so neither the item nor its negation matches.
        for undefined in [
            eq("createTimestamp", "yesterday"),
            LdapFilter::Substring(
                "createTimestamp".into(),
                LdapSubstringFilter {
                    initial: Some("2026".into()),
                    any: vec![],
                    final_: None,
                },
            ),
            LdapFilter::LessOrEqual("manager".into(), "uid=u,ou=people,dc=p,dc=scimd".into()),
        ] {
            assert_eq!(
                to_scim(&undefined, users, &Ids),
                Filter::Never,
                "{undefined:?}"
            );
            let not = LdapFilter::Not(Box::new(undefined));
            assert_eq!(to_scim(&not, users, &Ids), Filter::Never, "{not:?}");
        }
        // manager compares the id of the user its DN names.
        assert_eq!(
            to_scim(
                &eq("manager", "uid=boss,ou=people,dc=p,dc=scimd"),
                users,
                &Ids
            ),
            Filter::Compare(
                AttrPath {
                    uri: Some(ENTERPRISE.into()),
                    attr: "manager".into(),
                    sub: Some("value".into())
                },
                Op::Eq,
                CompValue::Str("User-boss".into())
            )
        );
    }

    #[test]
    fn not_of_undefined_matches_nothing() {
        let not = |f: LdapFilter| LdapFilter::Not(Box::new(f));
        let scim = |f: &LdapFilter| simplify(to_scim(f, rt(ResourceKind::User), &Ids));
        let unknown = eq("noSuchAttribute", "x");
        assert!(matches!(scim(&unknown), Filter::Never));
        assert!(matches!(scim(&not(unknown.clone())), Filter::Never));
        assert!(matches!(
            scim(&not(LdapFilter::Present("noSuchAttribute".into()))),
            Filter::Never
        ));
        assert!(matches!(
            scim(&not(LdapFilter::Extensible(Default::default()))),
            Filter::Never
        ));
        // A known attribute: NOT is the negation.
        assert!(matches!(scim(&not(eq("uid", "a"))), Filter::Not(_)));
        // FALSE (a class the entry does not have) negates to everything.
        assert!(is_always(&scim(&not(eq("objectClass", "groupOfNames")))));
        // NOT (Undefined AND uid=a) is TRUE where uid=a is FALSE.
        let both = LdapFilter::And(vec![unknown.clone(), eq("uid", "a")]);
        assert!(matches!(scim(&not(both)), Filter::Not(_)));
        // Undefined OR uid=a is uid=a.
        let either = LdapFilter::Or(vec![unknown, eq("uid", "a")]);
        assert!(matches!(scim(&either), Filter::Compare(..)));
    }

    #[test]
    fn wide_filters_become_shallow_trees_and_are_measured_without_recursion() {
        for n in [1usize, 2, 3, 1000, 100_000] {
            let wide = LdapFilter::Or((0..n).map(|i| eq("uid", &format!("u{i}"))).collect());
            assert_eq!(filter_size(&wide), (n, 1));
            let scim = to_scim(&wide, rt(ResourceKind::User), &Ids);
            let depth = scim_depth(&scim);
            assert!(
                depth <= 2 + n.ilog2() as usize,
                "{n} terms nest {depth} deep"
            );
            // Simplification walks it too.
            assert!(scim_depth(&simplify(scim)) <= depth);
        }
        let nots = LdapFilter::And(
            (0..30_000)
                .map(|i| LdapFilter::Not(Box::new(eq("cn", &i.to_string()))))
                .collect(),
        );
        assert_eq!(filter_size(&nots), (30_000, 2));
        assert!(scim_depth(&to_scim(&nots, rt(ResourceKind::Group), &Ids)) < 20);
        let parts = LdapFilter::Substring(
            "cn".into(),
            LdapSubstringFilter {
                initial: Some("a".into()),
                any: vec!["b".into(); 20_000],
                final_: None,
            },
        );
        assert_eq!(filter_size(&parts), (20_001, 0));
        assert!(scim_depth(&to_scim(&parts, rt(ResourceKind::User), &Ids)) < 20);
        // Nesting counts levels.
        let mut deep = eq("cn", "x");
        for _ in 0..100 {
            deep = LdapFilter::Not(Box::new(LdapFilter::And(vec![deep])));
        }
        assert_eq!(filter_size(&deep), (1, 200));
    }

    #[test]
    fn dns_are_parsed_and_escaped_both_ways() {
        assert_eq!(
            parse_dn("uid=a\\,b,ou=People,dc=Okta,DC=scimd").unwrap(),
            vec![
                ("uid".into(), "a,b".into()),
                ("ou".into(), "People".into()),
                ("dc".into(), "Okta".into()),
                ("dc".into(), "scimd".into())
            ]
        );
        assert_eq!(parse_dn("cn=caf\\c3\\a9,dc=x").unwrap()[0].1, "café");
        assert_eq!(parse_dn("").unwrap(), vec![]);
        assert!(parse_dn("a=1+b=2,dc=x").is_none());
        let name = " #a,b+c\"d\\e<f>g;h=i ";
        let dn = user_dn(&base_dn("p"), name);
        assert_eq!(
            locate(&dn),
            Some(Node::User("p".into(), name.trim().into()))
        );
        assert_eq!(escape("#x "), "\\#x\\ ");
    }

    #[test]
    fn dns_are_located_in_the_tree() {
        assert_eq!(locate("dc=scimd"), Some(Node::Top));
        assert_eq!(locate("dc=okta,dc=scimd"), Some(Node::Root("okta".into())));
        assert_eq!(
            locate("ou=people,dc=okta,dc=scimd"),
            Some(Node::People("okta".into()))
        );
        assert_eq!(
            locate("cn=Sales,ou=groups,dc=okta,dc=scimd"),
            Some(Node::Group("okta".into(), "Sales".into()))
        );
        assert_eq!(
            locate("cn=grafana,ou=services,dc=okta,dc=scimd"),
            Some(Node::Account("okta".into(), "grafana".into()))
        );
        assert_eq!(locate("dc=example,dc=com"), None);
        let base = "ou=Entra,dc=example,dc=com";
        assert_eq!(
            locate_under("uid=a@x,ou=people,OU=entra,DC=Example,dc=com", "p", base),
            Some(Node::User("p".into(), "a@x".into()))
        );
        assert_eq!(locate_under(base, "p", base), Some(Node::Root("p".into())));
        assert_eq!(locate_under("dc=example,dc=com", "p", base), None);
        assert_eq!(
            locate_under("ou=people,ou=other,dc=example,dc=com", "p", base),
            None
        );
        assert_eq!(locate("cn=x,ou=other,dc=okta,dc=scimd"), None);
    }

    #[test]
    fn filters_become_scim_filters() {
        let f = LdapFilter::And(vec![
            eq("objectClass", "inetOrgPerson"),
            eq("uid", "alice@contoso.com"),
        ]);
        assert_eq!(
            simplify(to_scim(&f, rt(ResourceKind::User), &Ids)),
            Filter::Compare(
                path("userName", None),
                Op::Eq,
                CompValue::Str("alice@contoso.com".into())
            )
        );
        // A group class never matches users.
        let g = LdapFilter::And(vec![eq("objectClass", "groupOfNames"), eq("cn", "x")]);
        assert!(!may_match(&simplify(to_scim(
            &g,
            rt(ResourceKind::User),
            &Ids
        ))));
        // memberOf compares the group's id.
        let m = eq("memberOf", "cn=Sales,ou=groups,dc=p,dc=scimd");
        assert_eq!(
            to_scim(&m, rt(ResourceKind::User), &Ids),
            Filter::Compare(
                path("groups", Some("value")),
                Op::Eq,
                CompValue::Str("Group-Sales".into())
            )
        );
        // Substrings: initial, any, final.
        let s = LdapFilter::Substring(
            "mail".into(),
            LdapSubstringFilter {
                initial: Some("a".into()),
                any: vec!["b".into()],
                final_: Some("c".into()),
            },
        );
        let scim = simplify(to_scim(&s, rt(ResourceKind::User), &Ids));
        assert!(matches!(scim, Filter::And(_, _)));
        // Unmapped attributes match nothing; objectClass presence everything.
        assert_eq!(
            to_scim(&eq("carLicense", "x"), rt(ResourceKind::User), &Ids),
            Filter::Never
        );
        assert!(is_always(&simplify(to_scim(
            &LdapFilter::Present("objectClass".into()),
            rt(ResourceKind::Group),
            &Ids
        ))));
        assert_eq!(
            simplify(to_scim(
                &LdapFilter::Or(vec![eq("carLicense", "x"), eq("cn", "G")]),
                rt(ResourceKind::Group),
                &Ids
            )),
            Filter::Compare(
                path("displayName", None),
                Op::Eq,
                CompValue::Str("G".into())
            )
        );
    }

    #[test]
    fn providers_map_their_own_attributes_and_posix_accounts() {
        const CONTOSO: &str = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User";
        let doc = serde_json::json!({
            "userName": "a", "title": "CTO",
            CONTOSO: {"costCenter": "CC-7", "uidNumber": 1001, "gidNumber": 100, "home": "/home/a",
                      "sites": [{"name": "HQ"}, {"name": "Lab"}]}
        });
        let p = |s: &str| parse_path(s).unwrap();
        let mappings = vec![
            ("title".to_string(), p(&format!("{CONTOSO}:costCenter"))),
            ("uidNumber".to_string(), p(&format!("{CONTOSO}:uidNumber"))),
            ("gidNumber".to_string(), p(&format!("{CONTOSO}:gidNumber"))),
            ("homeDirectory".to_string(), p(&format!("{CONTOSO}:home"))),
            ("l".to_string(), p(&format!("{CONTOSO}:sites.name"))),
        ];
        let text = doc.to_string();
        let doc = Json::parse(&text).unwrap();
        let mut attrs = user_attributes(&doc, "dc=p,dc=scimd", None, &[]);
        apply_mappings(&mut attrs, &doc, None, &mappings);
        posix_class(ResourceKind::User, &mut attrs);
        let get = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get("title"),
            Some(vec!["CC-7".into()]),
            "replaces the built-in title"
        );
        assert_eq!(get("uidNumber"), Some(vec!["1001".into()]));
        assert_eq!(get("l"), Some(vec!["HQ".into(), "Lab".into()]));
        assert!(
            get("objectClass")
                .unwrap()
                .contains(&"posixAccount".to_string())
        );
        assert!(check_mapped_name("uid").is_err());
        assert!(check_mapped_name("employeeType").is_ok());
        assert!(check_mapped_name("1x").is_err());
        assert!(parse_path("not a path").is_err());
    }

    #[test]
    fn users_are_mapped_to_inet_org_person() {
        let doc = serde_json::json!({
            "id": "u1", "userName": "alice@contoso.com", "displayName": "Alice Adams",
            "name": {"givenName": "Alice", "familyName": "Adams"},
            "emails": [{"value": "home@x", "type": "home"}, {"value": "alice@contoso.com", "type": "work"}],
            "title": "CTO",
            ENTERPRISE: {"department": "R&D", "employeeNumber": "42"}
        });
        let text = doc.to_string();
        let doc = Json::parse(&text).unwrap();
        let attrs = user_attributes(
            &doc,
            "dc=p,dc=scimd",
            Some("uid=boss,ou=people,dc=p,dc=scimd".into()),
            &["Sales"],
        );
        let get = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("uid"), Some(vec!["alice@contoso.com".into()]));
        assert_eq!(get("cn"), Some(vec!["Alice Adams".into()]));
        assert_eq!(get("sn"), Some(vec!["Adams".into()]));
        assert_eq!(
            get("mail"),
            Some(vec!["alice@contoso.com".into(), "home@x".into()])
        );
        assert_eq!(get("departmentNumber"), Some(vec!["R&D".into()]));
        assert_eq!(
            get("memberOf"),
            Some(vec!["cn=Sales,ou=groups,dc=p,dc=scimd".into()])
        );
        assert_eq!(
            get("manager"),
            Some(vec!["uid=boss,ou=people,dc=p,dc=scimd".into()])
        );
        let op = operational("u1", "2026-11-30T07:16:10.000Z", "2026-11-30T07:16:11.000Z");
        assert_eq!(
            op[2],
            ("modifyTimestamp".into(), vec!["20261130071611Z".into()])
        );
        let entry = Entry {
            dn: "uid=alice,ou=people,dc=p,dc=scimd".into(),
            attributes: attrs.clone(),
            operational: op,
        };
        let picked = entry.select(&["MAIL".into(), "+".into()]);
        let names: Vec<&str> = picked.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["mail", "entryUUID", "createTimestamp", "modifyTimestamp"]
        );
        assert!(entry.select(&["1.1".into()]).is_empty());
        assert_eq!(entry.select(&[]).len(), attrs.len());
        assert_eq!(entry.values("ENTRYUUID").collect::<Vec<_>>(), ["u1"]);
    }
}

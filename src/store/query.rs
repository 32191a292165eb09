//! Compiles SCIM filters and `sortBy` into SQL over `resources r`. Values are always bound as
//! parameters; only attribute names from the static schema model appear in the SQL text.
//!
//! Semantics match `scim::filter::matches` (the tests compare the two): a multi-valued
//! attribute matches when any value does, `ne` is `not eq`, `pr` means a non-empty value, and
//! `caseExact: false` attributes compare case-folded for every operator. Every leaf yields 0 or
//! 1, never NULL, so `not` is plain negation.

use rusqlite::types::Value as Sql;

use crate::scim::filter::{self, CompValue, Filter, Op, Target, normalize_instant};
use crate::scim::schema::{Attribute, ResourceType, Role, Type};
use crate::scim::{self, fold};
use crate::store::rows::{extension_index_attr, extension_index_value, index_attr};
use serde_json::Value;

/// The column a `meta` sub-attribute is kept in.
fn meta_column(m: &Attribute) -> &'static str {
    match m.role {
        Role::Created => "r.created",
        Role::Modified => "r.modified",
        _ => "r.kind",
    }
}

/// A compiled condition (or ORDER BY) and its parameters, numbered from `first`.
pub(crate) struct Compiler<'a> {
    rt: &'a ResourceType,
    base: &'a str,
    first: usize,
    params: Vec<Sql>,
}

/// Where a value lives: an SQL expression, and whether it can be NULL.
type Expr = (String, bool);

fn json_path(parts: &[&str]) -> String {
    let mut p = String::from("$");
    for part in parts {
        p.push_str(&format!(".\"{part}\""));
    }
    p
}

fn json_at(doc: &str, parts: &[&str]) -> String {
    format!("json_extract({doc}, '{}')", json_path(parts))
}

fn invalid(msg: impl Into<String>) -> scim::Error {
    scim::Error::InvalidFilter(msg.into())
}

impl<'a> Compiler<'a> {
    /// `base` is the provider's SCIM base URL (for `$ref` values); parameters are numbered
    /// from `first`.
    pub(crate) fn new(rt: &'a ResourceType, base: &'a str, first: usize) -> Compiler<'a> {
        Compiler {
            rt,
            base,
            first,
            params: Vec::new(),
        }
    }

    pub(crate) fn into_params(self) -> Vec<Sql> {
        self.params
    }

    fn bind(&mut self, v: Sql) -> String {
        self.params.push(v);
        format!("?{}", self.first + self.params.len() - 1)
    }

    /// A boolean SQL condition selecting the resources `f` matches.
    pub(crate) fn filter(&mut self, f: &Filter) -> Result<String, scim::Error> {
        filter::check(self.rt, f)?;
        self.node(f)
    }

    /// A condition over a group's member rows (`members m`, member resource `x`) for the inner
    /// filter of `members[...]`, as PATCH removes them.
    pub(crate) fn member_filter(&mut self, f: &Filter) -> Result<String, scim::Error> {
        let attr = self
            .rt
            .linked()
            .ok_or_else(|| invalid("this resource type has no member attribute"))?;
        self.inner(attr, f, &|c, sub| c.member_expr(sub))
    }

    /// Whether `f` requires the unique name to start with some text: a range of the name index
    /// finds those resources faster than walking the provider's resources in key order.
    pub(crate) fn prefix_of_name(&self, f: &Filter) -> bool {
        let mut conjuncts = Vec::new();
        collect_conjuncts(f, &mut conjuncts);
        conjuncts.iter().any(|c| match c {
            Filter::Compare(p, Op::Sw, CompValue::Str(s)) if !s.is_empty() => matches!(
                filter::resolve(self.rt, p, None),
                Ok(Target::Attr { ext: None, attr, .. }) if attr.role == Role::UniqueName
            ),
            _ => false,
        })
    }

    /// Whether the best way to run `f` is from a lookup in `value_index` or `members` (an
    /// `IN (...)` on the key) rather than from the provider's part of a resources index.
    /// SQLite's planner, without statistics, prefers the latter; the caller then keeps the
    /// provider terms out of index selection.
    pub(crate) fn driven_by_lookup(&self, f: &Filter) -> bool {
        let mut conjuncts = Vec::new();
        collect_conjuncts(f, &mut conjuncts);
        let direct = |f: &Filter| match f {
            Filter::Compare(p, Op::Eq, CompValue::Str(_)) => {
                matches!(
                    filter::resolve(self.rt, p, None),
                    Ok(Target::Id | Target::ExternalId)
                ) || matches!(filter::resolve(self.rt, p, None),
                        Ok(Target::Attr { ext: None, attr, .. }) if attr.role == Role::UniqueName)
            }
            _ => false,
        };
        // `attr[key eq "x" ...]` or `attr.key eq "x"` (`attr eq "x"` meaning its default
        // sub-attribute), where an index answers `key eq`.
        let lookup = |f: &Filter| match f {
            Filter::ValuePath(p, inner) => {
                let Ok(Target::Attr {
                    ext: None, attr, ..
                }) = filter::resolve(self.rt, p, None)
                else {
                    return false;
                };
                let Some(key) = lookup_key(attr) else {
                    return false;
                };
                let mut inner_conjuncts = Vec::new();
                collect_conjuncts(inner, &mut inner_conjuncts);
                inner_conjuncts.iter().any(|c| {
                    matches!(c, Filter::Compare(q, Op::Eq, CompValue::Str(_))
                        if q.uri.is_none() && q.sub.is_none() && q.attr.eq_ignore_ascii_case(key.name))
                })
            }
            Filter::Compare(p, Op::Eq, CompValue::Str(_)) => {
                if let Ok(Target::Attr {
                    ext: Some(urn),
                    attr,
                    sub: None,
                }) = filter::resolve(self.rt, p, None)
                {
                    return self.is_indexed_extension(urn, attr);
                }
                let Ok(Target::Attr {
                    ext: None,
                    attr,
                    sub,
                }) = filter::resolve(self.rt, p, None)
                else {
                    return false;
                };
                let tested = sub.or_else(|| attr.default_sub());
                lookup_key(attr).is_some_and(|key| tested.is_some_and(|t| std::ptr::eq(t, key)))
            }
            _ => false,
        };
        !conjuncts.iter().any(|c| direct(c)) && conjuncts.iter().any(|c| lookup(c))
    }

    fn node(&mut self, f: &Filter) -> Result<String, scim::Error> {
        Ok(match f {
            Filter::And(a, b) => format!("({} AND {})", self.node(a)?, self.node(b)?),
            Filter::Or(a, b) => format!("({} OR {})", self.node(a)?, self.node(b)?),
            Filter::Not(a) => format!("(NOT {})", self.node(a)?),
            Filter::Never => "0".to_string(),
            Filter::Key(op, n) => {
                let p = self.bind(Sql::Integer(*n));
                format!("r.seq {} {p}", sql_op(*op))
            }
            Filter::Present(p) => {
                let t = filter::resolve(self.rt, p, None)?;
                self.leaf(&t, None)?
            }
            Filter::Compare(p, op, v) => {
                let t = filter::resolve(self.rt, p, None)?;
                self.leaf(&t, Some((*op, v)))?
            }
            Filter::ValuePath(p, inner) => {
                let Target::Attr { ext, attr, .. } = filter::resolve(self.rt, p, None)? else {
                    return Err(invalid("a value filter needs a complex attribute"));
                };
                self.any_value(ext, attr, inner)?
            }
        })
    }

    /// The inner filter of `attr[...]`, with sub-attributes mapped by `sub_expr`.
    fn inner(
        &mut self,
        attr: &'static Attribute,
        f: &Filter,
        sub_expr: &dyn Fn(&mut Self, &Attribute) -> Expr,
    ) -> Result<String, scim::Error> {
        Ok(match f {
            Filter::And(a, b) => format!(
                "({} AND {})",
                self.inner(attr, a, sub_expr)?,
                self.inner(attr, b, sub_expr)?
            ),
            Filter::Or(a, b) => format!(
                "({} OR {})",
                self.inner(attr, a, sub_expr)?,
                self.inner(attr, b, sub_expr)?
            ),
            Filter::Not(a) => format!("(NOT {})", self.inner(attr, a, sub_expr)?),
            Filter::Never | Filter::Key(..) => "0".to_string(),
            Filter::Present(p) | Filter::Compare(p, _, _) => {
                let t = filter::resolve(self.rt, p, Some(attr))?;
                let sub = t.leaf().ok_or_else(|| invalid("bad sub-attribute"))?;
                let expr = sub_expr(self, sub);
                match f {
                    Filter::Compare(_, op, v) => self.compare(&expr, &t, *op, v),
                    _ => present(&expr),
                }
            }
            Filter::ValuePath(..) => return Err(invalid("value filters cannot nest")),
        })
    }

    /// One comparison or presence test on a top-level target.
    fn leaf(&mut self, t: &Target, cmp: Option<(Op, &CompValue)>) -> Result<String, scim::Error> {
        let column = |sql: &str, nullable: bool| (sql.to_string(), nullable);
        let expr = match t {
            Target::Id => column("r.id", false),
            Target::ExternalId => column("r.external_id", true),
            Target::Meta(m) => column(meta_column(m), false),
            Target::Attr { ext, attr, sub } => {
                let is_name = ext.is_none() && attr.role == Role::UniqueName;
                if is_name {
                    // The unique name has its own column, case-folded in `name_key` (indexed).
                    if let Some((Op::Eq, CompValue::Str(s))) = cmp {
                        return Ok(format!("r.name_key = {}", self.bind(Sql::Text(fold(s)))));
                    }
                    // A prefix is a range of the same index: every name_key that starts with
                    // the folded prefix, then the test itself (which decides case-exactness).
                    if let Some((Op::Sw, v @ CompValue::Str(s))) = cmp
                        && let Some((low, high)) = prefix_range(&fold(s))
                    {
                        let low = self.bind(Sql::Text(low));
                        let high = self.bind(Sql::Text(high));
                        let test = self.compare(&column("r.name", false), t, Op::Sw, v);
                        return Ok(format!(
                            "(r.name_key >= {low} AND r.name_key < {high} AND {test})"
                        ));
                    }
                    column("r.name", false)
                } else if attr.multi_valued || attr.is_linked() {
                    let sub = sub
                        .or_else(|| attr.default_sub())
                        .ok_or_else(|| invalid("bad sub-attribute"))?;
                    let path = filter::AttrPath {
                        uri: None,
                        attr: sub.name.into(),
                        sub: None,
                    };
                    let (negate, inner) = match cmp {
                        None => (false, Filter::Present(path)),
                        // `eq null`: no value; `ne null`: some value.
                        Some((Op::Eq, CompValue::Null)) => (true, Filter::Present(path)),
                        Some((Op::Ne, CompValue::Null)) => (false, Filter::Present(path)),
                        // `ne` is the negation of "some value equals".
                        Some((Op::Ne, v)) => (true, Filter::Compare(path, Op::Eq, v.clone())),
                        Some((op, v)) => (false, Filter::Compare(path, op, v.clone())),
                    };
                    let any = self.any_value(*ext, attr, &inner)?;
                    return Ok(if negate { format!("(NOT {any})") } else { any });
                } else {
                    if let (Some(urn), Some((Op::Eq, v))) = (ext, cmp)
                        && let Some(sql) = self.indexed_extension_eq(urn, attr, v)
                    {
                        return Ok(sql);
                    }
                    let mut parts: Vec<&str> = ext.iter().copied().collect();
                    parts.push(attr.name);
                    match sub.or_else(|| attr.default_sub()) {
                        Some(s) if attr.is_complex() => parts.push(s.name),
                        _ => {}
                    }
                    (json_at("r.doc", &parts), true)
                }
            }
        };
        Ok(match cmp {
            None => present(&expr),
            Some((op, v)) => self.compare(&expr, t, op, v),
        })
    }

    /// "Some value of `attr` matches `inner`", using an index where one exists.
    fn any_value(
        &mut self,
        ext: Option<&'static str>,
        attr: &'static Attribute,
        inner: &Filter,
    ) -> Result<String, scim::Error> {
        if let Some(fast) = self.fast_value_eq(attr, inner) {
            return Ok(fast);
        }
        // `emails[type eq "work" and value eq "x"]`: narrow with the index, then check the
        // whole inner filter on the few resources left.
        let mut conjuncts = Vec::new();
        collect_conjuncts(inner, &mut conjuncts);
        let narrowing = conjuncts.iter().find_map(|c| self.fast_value_eq(attr, c));
        let general = self.within(ext, attr, |c, sub_expr| c.inner(attr, inner, sub_expr))?;
        Ok(match narrowing {
            Some(n) => format!("({n} AND {general})"),
            None => general,
        })
    }

    /// `eq` on an extension attribute the provider indexed: a `value_index` lookup.
    fn indexed_extension_eq(
        &mut self,
        urn: &str,
        attr: &'static Attribute,
        v: &CompValue,
    ) -> Option<String> {
        if !self.is_indexed_extension(urn, attr) {
            return None;
        }
        let value = match v {
            CompValue::Str(s) => Value::String(s.clone()),
            CompValue::Num(n) => Value::Number(n.clone()),
            CompValue::Bool(b) => Value::Bool(*b),
            CompValue::Null | CompValue::Phone(_) => return None,
        };
        let key = extension_index_value(attr, &value)?;
        let value_key = self.bind(Sql::Text(key));
        let index = self.bind(Sql::Text(extension_index_attr(urn, attr)));
        Some(format!(
            "r.seq IN (SELECT v.seq FROM value_index v WHERE v.attr = {index} AND v.value_key = {value_key})"
        ))
    }

    fn is_indexed_extension(&self, urn: &str, attr: &Attribute) -> bool {
        self.rt
            .indexed_extension()
            .any(|(u, a)| u == urn && std::ptr::eq(a, attr))
    }

    /// Index lookups for the equality tests identity providers run all the time:
    /// `members[value eq ..]`, `groups.value eq ..`, `emails.value eq ..`.
    fn fast_value_eq(&mut self, attr: &'static Attribute, inner: &Filter) -> Option<String> {
        let Filter::Compare(p, Op::Eq, CompValue::Str(s)) = inner else {
            return None;
        };
        let key = lookup_key(attr)?;
        if p.uri.is_some() || p.sub.is_some() || !p.attr.eq_ignore_ascii_case(key.name) {
            return None;
        }
        match attr.role {
            Role::Relation => {
                let id = self.bind(Sql::Text(s.clone()));
                Some(format!(
                    "r.seq IN (SELECT m.group_seq FROM members m WHERE m.member_seq IN \
                     (SELECT x.seq FROM resources x WHERE x.id = {id}))"
                ))
            }
            Role::Computed => {
                let id = self.bind(Sql::Text(s.clone()));
                Some(format!(
                    "r.seq IN (WITH RECURSIVE down(seq) AS (\
                       SELECT m.member_seq FROM members m WHERE m.group_seq IN \
                         (SELECT x.seq FROM resources x WHERE x.id = {id}) \
                       UNION SELECT m.member_seq FROM members m JOIN down ON m.group_seq = down.seq) \
                     SELECT seq FROM down)"
                ))
            }
            _ => {
                let value_key = self.bind(Sql::Text(fold(s)));
                let index = self.bind(Sql::Text(index_attr(attr, key)));
                Some(format!(
                    "r.seq IN (SELECT v.seq FROM value_index v WHERE v.attr = {index} AND v.value_key = {value_key})"
                ))
            }
        }
    }

    /// Wraps `cond` (built with a mapper from sub-attribute to SQL) in the EXISTS that ranges
    /// over the values of `attr`.
    fn within(
        &mut self,
        ext: Option<&'static str>,
        attr: &'static Attribute,
        cond: impl FnOnce(
            &mut Self,
            &dyn Fn(&mut Self, &Attribute) -> Expr,
        ) -> Result<String, scim::Error>,
    ) -> Result<String, scim::Error> {
        match attr.role {
            Role::Relation => {
                let c = cond(self, &|c, sub| c.member_expr(sub))?;
                Ok(format!(
                    "EXISTS (SELECT 1 FROM members m JOIN resources x ON x.seq = m.member_seq \
                     WHERE m.group_seq = r.seq AND {c})"
                ))
            }
            Role::Computed => {
                let c = cond(self, &|c, sub| c.group_expr(sub))?;
                Ok(format!(
                    "EXISTS (WITH RECURSIVE up(seq) AS (\
                       SELECT group_seq FROM members WHERE member_seq = r.seq \
                       UNION SELECT m.group_seq FROM members m JOIN up ON m.member_seq = up.seq) \
                     SELECT 1 FROM up JOIN resources x ON x.seq = up.seq WHERE x.seq != r.seq AND {c})"
                ))
            }
            _ if attr.multi_valued => {
                let mut parts: Vec<&str> = ext.iter().copied().collect();
                parts.push(attr.name);
                let array = json_path(&parts);
                let c = cond(self, &|_, sub| (json_at("e.value", &[sub.name]), true))?;
                Ok(format!(
                    "EXISTS (SELECT 1 FROM json_each(r.doc, '{array}') e WHERE {c})"
                ))
            }
            _ => {
                // A singular complex attribute such as manager: its sub-attributes directly.
                let mut parts: Vec<&'static str> = ext.iter().copied().collect();
                parts.push(attr.name);
                cond(self, &move |_, sub| {
                    let mut p = parts.clone();
                    p.push(sub.name);
                    (json_at("r.doc", &p), true)
                })
            }
        }
    }

    /// A sub-attribute of a member row (`members m`, member resource `x`).
    fn member_expr(&mut self, sub: &Attribute) -> Expr {
        match sub.role {
            Role::RefId => ("x.id".into(), false),
            Role::RefType => ("x.kind".into(), false),
            Role::RefDisplay => ("m.display".into(), true),
            _ => (self.ref_expr(), false),
        }
    }

    /// A sub-attribute of one of a user's groups (group resource `x`).
    fn group_expr(&mut self, sub: &Attribute) -> Expr {
        match sub.role {
            Role::RefId => ("x.id".into(), false),
            Role::RefDisplay => ("x.name".into(), false),
            Role::RefType => (
                "CASE WHEN EXISTS (SELECT 1 FROM members d WHERE d.group_seq = x.seq \
                 AND d.member_seq = r.seq) THEN 'direct' ELSE 'indirect' END"
                    .into(),
                false,
            ),
            _ => (self.ref_expr(), false),
        }
    }

    fn ref_expr(&mut self) -> String {
        let base = self.bind(Sql::Text(self.base.to_string()));
        format!("({base} || CASE x.kind WHEN 'User' THEN '/Users/' ELSE '/Groups/' END || x.id)")
    }

    /// `expr op value`, with the case rules and type of `t`; never NULL.
    fn compare(&mut self, expr: &Expr, t: &Target, op: Op, v: &CompValue) -> String {
        let (sql, nullable) = expr;
        let guard = |s: String| {
            if *nullable {
                format!("({sql} IS NOT NULL AND {s})")
            } else {
                s
            }
        };
        let cond = match v {
            CompValue::Null => {
                let p = present(expr);
                return if op == Op::Ne {
                    p
                } else {
                    format!("(NOT {p})")
                };
            }
            _ if op == Op::Ne => {
                let eq = self.compare(expr, t, Op::Eq, v);
                return format!("(NOT {eq})");
            }
            CompValue::Bool(b) => {
                let p = self.bind(Sql::Integer(i64::from(*b)));
                format!("{sql} = {p}")
            }
            CompValue::Str(s) if t.ty() == Type::Boolean => {
                let b = s.eq_ignore_ascii_case("true");
                let p = self.bind(Sql::Integer(i64::from(b)));
                format!("{sql} = {p}")
            }
            CompValue::Num(n) => {
                let p = match n.as_i64() {
                    Some(i) => self.bind(Sql::Integer(i)),
                    None => self.bind(Sql::Real(n.as_f64().unwrap_or(f64::NAN))),
                };
                format!("{sql} {} {p}", sql_op(op))
            }
            CompValue::Str(s) | CompValue::Phone(s) => {
                let (lhs, rhs) = if let CompValue::Phone(_) = v {
                    (format!("scim_phone({sql})"), filter::phone_fold(s))
                } else if t.ty() == Type::DateTime {
                    (
                        sql.clone(),
                        normalize_instant(s).unwrap_or_else(|| s.clone()),
                    )
                } else if t.case_exact() {
                    (sql.clone(), s.clone())
                } else {
                    (format!("scim_fold({sql})"), fold(s))
                };
                if op == Op::Ew && rhs.is_empty() {
                    // Every string ends with "" (substr with -0 would not say so).
                    return guard(format!("{lhs} IS NOT NULL"));
                }
                let p = self.bind(Sql::Text(rhs));
                match op {
                    Op::Co => format!("instr({lhs}, {p}) > 0"),
                    Op::Sw => format!("substr({lhs}, 1, length({p})) = {p}"),
                    Op::Ew => format!("substr({lhs}, -length({p})) = {p}"),
                    _ => format!("{lhs} {} {p}", sql_op(op)),
                }
            }
        };
        guard(cond)
    }

    /// An ORDER BY clause for `sortBy`: values in the attribute's case rules, resources without
    /// a value last when ascending and first when descending (RFC 7644 §3.4.2.3), and the
    /// creation order as the tie-breaker so pages are stable.
    pub(crate) fn order_by(
        &mut self,
        sort_by: &str,
        descending: bool,
    ) -> Result<String, scim::Error> {
        let bad = |e: scim::Error| scim::Error::InvalidValue(format!("sortBy: {e}"));
        let path = filter::parse_attr_path(sort_by).map_err(bad)?;
        let t = filter::resolve(self.rt, &path, None).map_err(bad)?;
        let fold_if = |sql: String, t: &Target| {
            if t.case_exact() || !matches!(t.ty(), Type::String | Type::Reference) {
                sql
            } else {
                format!("scim_fold({sql})")
            }
        };
        let expr = match &t {
            Target::Id => "r.id".to_string(),
            Target::ExternalId => "r.external_id".to_string(),
            Target::Meta(m) => meta_column(m).to_string(),
            Target::Attr {
                ext: None, attr, ..
            } if attr.role == Role::UniqueName => "r.name_key".to_string(),
            Target::Attr { attr, .. } if attr.is_linked() => {
                return Err(scim::Error::InvalidValue(format!(
                    "sortBy: cannot sort by {}",
                    attr.name
                )));
            }
            Target::Attr { ext, attr, sub } => {
                let mut parts: Vec<&str> = ext.iter().copied().collect();
                parts.push(attr.name);
                let leaf = sub
                    .or_else(|| attr.default_sub().filter(|_| attr.is_complex()))
                    .map(|s| s.name);
                if attr.multi_valued {
                    // The primary value, or else the first.
                    let leaf = leaf
                        .or(attr.default_sub().map(|s| s.name))
                        .unwrap_or_default();
                    fold_if(
                        format!(
                            "(SELECT {} FROM json_each(r.doc, '{}') e \
                             ORDER BY coalesce(json_extract(e.value, '$.\"primary\"'), 0) DESC, e.key LIMIT 1)",
                            json_at("e.value", &[leaf]),
                            json_path(&parts)
                        ),
                        &t,
                    )
                } else {
                    parts.extend(leaf);
                    fold_if(json_at("r.doc", &parts), &t)
                }
            }
        };
        let dir = if descending { "DESC" } else { "ASC" };
        Ok(format!("({expr}) IS NULL {dir}, ({expr}) {dir}, r.seq"))
    }
}

/// A filter compiled for `search`, with how it is best run.
pub fn condition(
    rt: &ResourceType,
    base: &str,
    f: &Filter,
) -> Result<super::search::Condition, scim::Error> {
    condition_from(rt, base, f, 3)
}

/// `condition` with its parameters numbered from `?first`, for a condition around it.
pub(crate) fn condition_from(
    rt: &ResourceType,
    base: &str,
    f: &Filter,
    first: usize,
) -> Result<super::search::Condition, scim::Error> {
    let mut compiler = Compiler::new(rt, base, first);
    let sql = compiler.filter(f)?;
    let driven = compiler.driven_by_lookup(f);
    let by_name = compiler.prefix_of_name(f);
    Ok(super::search::Condition {
        sql,
        params: compiler.into_params(),
        driven,
        by_name,
        count_cap: None,
    })
}

/// The strings that start with `prefix` as a half-open range `[low, high)` in SQLite's text
/// order (UTF-8 bytes, which is code point order): `high` is `prefix` with its last character
/// replaced by the next one. `None` for an empty prefix or one of only `char::MAX`.
fn prefix_range(prefix: &str) -> Option<(String, String)> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some((prefix.to_string(), chars.into_iter().collect()));
        }
    }
    None
}

/// The sub-attribute whose `eq` test an index answers, for an attribute with such an index:
/// the member's or group's id (relation rows), or the indexed sub-attribute (`value_index`).
fn lookup_key(attr: &Attribute) -> Option<&'static Attribute> {
    if attr.is_linked() {
        attr.sub_with(Role::RefId)
    } else if attr.multi_valued {
        attr.indexed_sub()
    } else {
        None
    }
}

fn collect_conjuncts<'f>(f: &'f Filter, out: &mut Vec<&'f Filter>) {
    match f {
        Filter::And(a, b) => {
            collect_conjuncts(a, out);
            collect_conjuncts(b, out);
        }
        other => out.push(other),
    }
}

fn present((sql, nullable): &Expr) -> String {
    if *nullable {
        format!("({sql} IS NOT NULL AND {sql} != '')")
    } else {
        format!("{sql} != ''")
    }
}

fn sql_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Co | Op::Sw | Op::Ew => "=",
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_prefix_is_a_range_of_its_strings() {
        assert_eq!(prefix_range("ab"), Some(("ab".into(), "ac".into())));
        assert_eq!(prefix_range(""), None);
        assert_eq!(
            prefix_range("a\u{D7FF}"),
            Some(("a\u{D7FF}".into(), "a\u{E000}".into()))
        );
        assert_eq!(
            prefix_range("a\u{10FFFF}"),
            Some(("a\u{10FFFF}".into(), "b".into()))
        );
        assert_eq!(prefix_range("\u{10FFFF}"), None);
        let (low, high) = prefix_range("jé").unwrap();
        for s in ["jé", "jéa", "jé\u{10FFFF}x"] {
            assert!(low.as_str() <= s && s < high.as_str(), "{s}");
        }
        for s in ["jd", "jf", "j", "jê"] {
            assert!(!(low.as_str() <= s && s < high.as_str()), "{s}");
        }
    }

    use proptest::prelude::*;
    use proptest::sample::select;
    use rusqlite::Connection;
    use serde_json::{Value, json};

    use super::*;
    use crate::scim::ProviderKind;
    use crate::scim::ResourceKind;
    use crate::scim::filter::{matches, parse};
    use crate::scim::projection::Projection;
    use crate::scim::resource::prepare;
    use crate::scim::schema::ENTERPRISE_USER;
    use crate::store::providers;
    use crate::store::resources;
    /// The first page by position, as a search without a cursor asks for it.
    const FIRST: Paging<'static> = Paging::Index {
        offset: 0,
        order: None,
    };
    use crate::store::search::{self, Paging};
    use crate::store::test_conn;

    const BASE: &str = "http://x/scim/v2/p";

    fn db_with(
        users: &[Value],
        groups: &[(&str, Vec<usize>, Vec<usize>)],
    ) -> (Connection, i64, Vec<String>, Vec<String>) {
        let c = test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        let mut user_ids = Vec::new();
        for u in users {
            let prepared = prepare(ResourceKind::User.builtin(), u).unwrap();
            user_ids.push(
                resources::create(
                    &c,
                    p.id,
                    ResourceKind::User.builtin(),
                    &prepared,
                    None,
                    "2026-03-01T00:00:00.000Z",
                )
                .unwrap()
                .id,
            );
        }
        let mut group_ids: Vec<String> = Vec::new();
        for (name, member_users, member_groups) in groups {
            let mut members: Vec<Value> = member_users
                .iter()
                .map(|i| json!({"value": user_ids[*i]}))
                .collect();
            members.extend(
                member_groups
                    .iter()
                    .map(|i| json!({"value": group_ids[*i]})),
            );
            let prepared = prepare(
                ResourceKind::Group.builtin(),
                &json!({"displayName": name, "members": members}),
            )
            .unwrap();
            group_ids.push(
                resources::create(
                    &c,
                    p.id,
                    ResourceKind::Group.builtin(),
                    &prepared,
                    None,
                    "2026-03-02T00:00:00.000Z",
                )
                .unwrap()
                .id,
            );
        }
        (c, p.id, user_ids, group_ids)
    }

    fn by_sql(
        c: &Connection,
        provider: i64,
        kind: ResourceKind,
        text: &str,
    ) -> Result<Vec<String>, scim::Error> {
        let ast = parse(text)?;
        let cond = condition(kind.builtin(), BASE, &ast)?;
        let page = search::search(
            c,
            provider,
            kind,
            Some(&cond),
            Paging::Index {
                offset: 0,
                order: None,
            },
            10_000,
        )
        .unwrap();
        assert_eq!(page.total as usize, page.items.len());
        // That page ended short of its limit, so its total came from its own rows; a full page
        // and a page past the end take it from the count statement, which must agree.
        let total_at = |offset: i64, limit: i64| {
            search::search(
                c,
                provider,
                kind,
                Some(&cond),
                Paging::Index {
                    offset,
                    order: None,
                },
                limit,
            )
            .unwrap()
            .total
        };
        if page.total > 1 {
            assert_eq!(total_at(0, 1), page.total, "full page: {text}");
        }
        assert_eq!(
            total_at(page.total + 1, 5),
            page.total,
            "past the end: {text}"
        );
        Ok(page.items.iter().map(|r| r.id.to_string()).collect())
    }

    fn by_oracle(c: &Connection, provider: i64, kind: ResourceKind, text: &str) -> Vec<String> {
        let f = parse(text).unwrap();
        let all = search::search(
            c,
            provider,
            kind,
            None,
            Paging::Index {
                offset: 0,
                order: None,
            },
            10_000,
        )
        .unwrap();
        all.items
            .iter()
            .filter(|r| {
                let mut body = Vec::new();
                let (rt, all) = (kind.builtin(), &Projection::default());
                crate::app::push_rows(c, &mut body, (rt, BASE), &[*r], all, b"").unwrap();
                let rendered: Value = serde_json::from_slice(&body).unwrap();
                matches(kind.builtin(), &f, &rendered)
            })
            .map(|r| r.id.to_string())
            .collect()
    }

    fn user_strategy() -> impl Strategy<Value = Value> {
        let name = select(vec![
            "Alice", "alice.b", "Bob", "ZOË", "zoë.x", "Carl", "ölaf", "Ölaf.2",
        ]);
        let title = proptest::option::of(select(vec!["Dev", "dev", "Lead", ""]));
        let active = proptest::option::of(any::<bool>());
        let email_values = select(vec!["a@x.com", "B@X.com", "c@y.org", "Zoë@Y.org"]);
        let emails = (
            proptest::option::of(email_values.clone()),
            proptest::option::of(email_values),
            any::<bool>(),
        );
        let family = proptest::option::of(select(vec!["Öl", "öl", "Smith", "smith"]));
        let external = proptest::option::of(select(vec!["E1", "e1", "E2"]));
        let dept = proptest::option::of(select(vec!["R&D", "r&d", "Ops"]));
        let manager = proptest::option::of(select(vec!["m1", "M1"]));
        (
            name,
            0u32..1000,
            title,
            active,
            emails,
            family,
            external,
            (dept, manager),
        )
            .prop_map(
                |(
                    name,
                    n,
                    title,
                    active,
                    (work, home, primary),
                    family,
                    external,
                    (dept, manager),
                )| {
                    let mut u = json!({"userName": format!("{name}{n}")});
                    if let Some(t) = title {
                        u["title"] = json!(t);
                    }
                    if let Some(a) = active {
                        u["active"] = json!(a);
                    }
                    let mut emails = Vec::new();
                    if let Some(w) = work {
                        emails.push(json!({"value": w, "type": "work", "primary": primary}));
                    }
                    if let Some(h) = home {
                        emails.push(json!({"value": h, "type": "home"}));
                    }
                    if !emails.is_empty() {
                        u["emails"] = json!(emails);
                    }
                    if let Some(f) = family {
                        u["name"] = json!({"familyName": f});
                    }
                    if let Some(e) = external {
                        u["externalId"] = json!(e);
                    }
                    let mut ent = serde_json::Map::new();
                    if let Some(d) = dept {
                        ent.insert("department".into(), json!(d));
                    }
                    if let Some(m) = manager {
                        ent.insert("manager".into(), json!({"value": m}));
                    }
                    if !ent.is_empty() {
                        u[ENTERPRISE_USER] = Value::Object(ent);
                    }
                    u
                },
            )
    }

    fn leaf_strategy() -> impl Strategy<Value = String> {
        let attrs = select(vec![
            "userName",
            "title",
            "active",
            "emails.value",
            "emails.type",
            "emails",
            "emails.primary",
            "name.familyName",
            "externalId",
            "id",
            "meta.created",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        ]);
        let ops = select(vec!["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]);
        let values = select(vec![
            "\"alice\"",
            "\"A\"",
            "\"zoë\"",
            "\"ZOË\"",
            "\"Öl\"",
            "\"dev\"",
            "\"x.com\"",
            "\"work\"",
            "\"E1\"",
            "\"e1\"",
            "\"r&d\"",
            "\"m1\"",
            "true",
            "false",
            "null",
            "\"\"",
            "\"2026-01-01T00:00:00Z\"",
            "\"2026-03-01T01:00:00+02:00\"",
            "\"b\"",
            "\"O\"",
        ]);
        prop_oneof![
            4 => (attrs.clone(), ops, values).prop_map(|(a, o, v)| format!("{a} {o} {v}")),
            1 => attrs.prop_map(|a| format!("{a} pr")),
            1 => (select(vec!["work", "home", "WORK"]), select(vec!["x", "@", "Y.ORG"]))
                .prop_map(|(t, v)| format!("emails[type eq \"{t}\" and value co \"{v}\"]")),
            1 => select(vec!["true", "false"]).prop_map(|b| format!("emails[primary eq {b}].value sw \"a\"")),
            1 => select(vec!["m1", "M1"]).prop_map(|m| format!("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq \"{m}\"]")),
        ]
    }

    fn filter_strategy() -> impl Strategy<Value = String> {
        leaf_strategy().prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
                inner.prop_map(|a| format!("not ({a})")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// The SQL compiler and the in-memory evaluator agree on every filter.
        #[test]
        fn sql_matches_the_in_memory_oracle(
            users in proptest::collection::vec(user_strategy(), 1..10),
            filters in proptest::collection::vec(filter_strategy(), 1..6),
        ) {
            let mut seen = std::collections::HashSet::new();
            let users: Vec<Value> = users
                .into_iter()
                .filter(|u| seen.insert(u["userName"].as_str().unwrap().to_lowercase()))
                .collect();
            let (c, provider, _, _) = db_with(&users, &[]);
            for f in &filters {
                let ast = parse(f).unwrap();
                if filter::check(ResourceKind::User.builtin(), &ast).is_err() {
                    prop_assert!(by_sql(&c, provider, ResourceKind::User, f).is_err());
                    continue;
                }
                let sql = by_sql(&c, provider, ResourceKind::User, f).unwrap();
                let oracle = by_oracle(&c, provider, ResourceKind::User, f);
                prop_assert_eq!(sql, oracle, "filter {}", f);
            }
        }
    }

    #[test]
    fn membership_filters_agree_with_the_oracle() {
        let users: Vec<Value> = (0..4)
            .map(|i| json!({"userName": format!("u{i}"), "displayName": format!("User {i}")}))
            .collect();
        let (c, provider, uids, gids) = db_with(
            &users,
            &[
                ("Inner", vec![0, 1], vec![]),
                ("Outer", vec![2], vec![0]),
                ("Empty", vec![], vec![]),
            ],
        );
        let group_filters = [
            format!("members eq \"{}\"", uids[0]),
            format!("members.value eq \"{}\"", uids[2]),
            format!("members[value eq \"{}\"]", gids[0]),
            format!(
                "id eq \"{}\" and members[value eq \"{}\"]",
                gids[0], uids[1]
            ),
            format!(
                "id eq \"{}\" and members[value eq \"{}\"]",
                gids[1], uids[1]
            ),
            "members[type eq \"group\"]".to_string(),
            "members[display co \"user 1\"]".to_string(),
            "members.display eq \"Inner\"".to_string(),
            "members pr".to_string(),
            "not (members pr)".to_string(),
            format!("members.$ref ew \"/Users/{}\"", uids[2]),
            "displayName eq \"inner\"".to_string(),
            format!("members ne \"{}\"", uids[0]),
        ];
        for f in &group_filters {
            assert_eq!(
                by_sql(&c, provider, ResourceKind::Group, f).unwrap(),
                by_oracle(&c, provider, ResourceKind::Group, f),
                "{f}"
            );
        }
        let user_filters = [
            format!("groups.value eq \"{}\"", gids[1]),
            format!("groups eq \"{}\"", gids[0]),
            format!("groups[value eq \"{}\" and type eq \"indirect\"]", gids[1]),
            format!("groups[value eq \"{}\" and type eq \"direct\"]", gids[1]),
            "groups.display eq \"outer\"".to_string(),
            "groups pr".to_string(),
        ];
        for f in &user_filters {
            assert_eq!(
                by_sql(&c, provider, ResourceKind::User, f).unwrap(),
                by_oracle(&c, provider, ResourceKind::User, f),
                "{f}"
            );
        }
        // Spot checks, so agreement is not agreement on nothing.
        assert_eq!(
            by_sql(&c, provider, ResourceKind::User, &user_filters[0]).unwrap(),
            [uids[0].clone(), uids[1].clone(), uids[2].clone()]
        );
        assert_eq!(
            by_sql(&c, provider, ResourceKind::Group, &group_filters[3]).unwrap(),
            [gids[0].clone()]
        );
        assert!(
            by_sql(&c, provider, ResourceKind::Group, &group_filters[4])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let mut compiler = Compiler::new(ResourceKind::User.builtin(), BASE, 3);
        let sql = compiler
            .filter(
                &parse(
                    r#"title eq "x' OR 1=1 --" or emails.value co "'; DROP TABLE resources; --""#,
                )
                .unwrap(),
            )
            .unwrap();
        assert!(!sql.contains("DROP") && !sql.contains("1=1"), "{sql}");
        assert_eq!(compiler.into_params().len(), 2);
    }

    #[test]
    fn sort_orders_by_case_rules_with_missing_values_last_or_first_descending() {
        let users: Vec<Value> = ["b", "A", "c"]
            .iter()
            .zip([Some("beta"), None, Some("Alpha")])
            .map(|(n, t)| match t {
                Some(t) => json!({"userName": n, "title": t}),
                None => json!({"userName": n}),
            })
            .collect();
        let (c, provider, _, _) = db_with(&users, &[]);
        let order = |by: &str, desc: bool| -> Vec<String> {
            let o = Compiler::new(ResourceKind::User.builtin(), BASE, 1)
                .order_by(by, desc)
                .unwrap();
            search::search(
                &c,
                provider,
                ResourceKind::User,
                None,
                Paging::Index {
                    offset: 0,
                    order: Some(&o),
                },
                100,
            )
            .unwrap()
            .items
            .iter()
            .map(|r| {
                let doc: Value = serde_json::from_str(r.doc).unwrap();
                doc["userName"].as_str().unwrap().to_string()
            })
            .collect()
        };
        assert_eq!(order("userName", false), ["A", "b", "c"]);
        assert_eq!(order("USERNAME", true), ["c", "b", "A"]);
        assert_eq!(
            order("title", false),
            ["c", "b", "A"],
            "Alpha, beta, then no title"
        );
        assert_eq!(
            order("title", true),
            ["A", "b", "c"],
            "no title first, then beta, Alpha"
        );
        assert!(
            Compiler::new(ResourceKind::User.builtin(), BASE, 1)
                .order_by("nope", false)
                .is_err()
        );
        assert!(
            Compiler::new(ResourceKind::User.builtin(), BASE, 1)
                .order_by("groups", false)
                .is_err()
        );
    }

    #[test]
    fn an_indexed_extension_attribute_is_an_index_lookup() {
        let urn = "urn:ietf:params:scim:schemas:extension:Contoso:2.0:User";
        let text = format!(
            r#"{{"id": "{urn}", "attributes": [
                {{"name": "costCenter", "type": "string"}},
                {{"name": "badge", "type": "string", "caseExact": true}},
                {{"name": "plain", "type": "string"}}]}}"#
        );
        let parsed =
            crate::scim::extension::parse(&text, &["costCenter".to_string(), "badge".to_string()])
                .unwrap();
        let model = crate::scim::schema::Model::for_provider(
            1,
            crate::scim::schema::Unknown::Reject,
            &[crate::scim::schema::Registered {
                kind: ResourceKind::User,
                schema: parsed.schema,
                indexed: parsed.indexed,
            }],
        );
        let rt = model.get(ResourceKind::User);
        let c = test_conn();
        let p = providers::insert(&c, "p", "", ProviderKind::Generic, 0).unwrap();
        for i in 0..20 {
            let body = json!({"userName": format!("u{i}"),
                urn: {"costCenter": format!("CC-{}", i % 5), "badge": format!("B{i}"), "plain": "x"}});
            let prepared = prepare(rt, &body).unwrap();
            resources::create(&c, p.id, rt, &prepared, None, "2026-03-01T00:00:00.000Z").unwrap();
        }
        let run = |text: &str| -> (String, usize) {
            let cond = condition(rt, BASE, &parse(text).unwrap()).unwrap();
            let plan = search::explain(&c, p.id, ResourceKind::User, Some(&cond), FIRST, 100)
                .unwrap()
                .join("\n");
            let found = search::search(
                &c,
                p.id,
                ResourceKind::User,
                Some(&cond),
                Paging::Index {
                    offset: 0,
                    order: None,
                },
                100,
            )
            .unwrap()
            .total;
            (plan, found as usize)
        };
        let lookup = "SEARCH v USING PRIMARY KEY (attr=? AND value_key=?)";
        let (plan, found) = run(&format!("{urn}:costCenter eq \"cc-3\""));
        assert!(plan.contains(lookup), "{plan}");
        assert_eq!(found, 4, "regardless of case");
        let (plan, found) = run(&format!("{urn}:badge eq \"B7\""));
        assert!(plan.contains(lookup), "{plan}");
        assert_eq!(found, 1);
        assert_eq!(run(&format!("{urn}:badge eq \"b7\"")).1, 0, "case-exact");
        let (plan, found) = run(&format!("{urn}:plain eq \"X\""));
        assert!(!plan.contains(lookup), "not indexed: {plan}");
        assert_eq!(found, 20);
    }

    #[test]
    fn identity_provider_lookups_use_indexes() {
        let users: Vec<Value> = (0..50)
            .map(|i| {
                json!({"userName": format!("user{i}@contoso.com"), "externalId": format!("ext-{i}"),
                            "emails": [{"type": "work", "value": format!("user{i}@contoso.com")}]})
            })
            .collect();
        let (c, provider, uids, _) = db_with(
            &users,
            &[("g1", vec![0, 1], vec![]), ("g2", vec![2], vec![])],
        );
        let plan = |kind: ResourceKind, text: &str| -> String {
            let cond = condition(kind.builtin(), BASE, &parse(text).unwrap()).unwrap();
            search::explain(&c, provider, kind, Some(&cond), FIRST, 100)
                .unwrap()
                .join("\n")
        };
        let cases = [
            (
                ResourceKind::User,
                "userName eq \"USER7@contoso.com\"".to_string(),
                "resources_name",
            ),
            (
                ResourceKind::User,
                "externalId eq \"ext-7\"".to_string(),
                "resources_external_id",
            ),
            (
                ResourceKind::User,
                "emails.value eq \"user7@contoso.com\"".to_string(),
                "SEARCH v USING PRIMARY KEY (attr=? AND value_key=?)",
            ),
            (
                ResourceKind::User,
                "emails[value eq \"user7@contoso.com\"]".to_string(),
                "SEARCH v USING PRIMARY KEY (attr=? AND value_key=?)",
            ),
            (
                ResourceKind::User,
                format!("id eq \"{}\"", uids[3]),
                "sqlite_autoindex_resources_1",
            ),
            (
                ResourceKind::Group,
                "displayName eq \"G1\"".to_string(),
                "resources_name",
            ),
            (
                ResourceKind::Group,
                format!("members[value eq \"{}\"]", uids[0]),
                "members_member",
            ),
            (
                ResourceKind::Group,
                format!("id eq \"x\" and members[value eq \"{}\"]", uids[0]),
                "INDEX",
            ),
        ];
        for (kind, filter, index) in cases {
            let p = plan(kind, &filter);
            assert!(
                p.contains(index),
                "{filter}: expected {index} in plan:\n{p}"
            );
            for line in p.lines() {
                assert!(
                    !line.starts_with("SCAN r"),
                    "{filter}: full scan of resources:\n{p}"
                );
            }
        }
        // A prefix of the name is a range of its index, by position and by cursor alike (the
        // console's search pages with a cursor).
        for kind in [ResourceKind::User, ResourceKind::Group] {
            let name = if kind == ResourceKind::User {
                "userName"
            } else {
                "displayName"
            };
            let cond = condition(
                kind.builtin(),
                BASE,
                &parse(&format!("{name} sw \"uSeR1\"")).unwrap(),
            )
            .unwrap();
            for paging in [FIRST, Paging::After(1)] {
                let p = search::explain(&c, provider, kind, Some(&cond), paging, 100)
                    .unwrap()
                    .join("\n");
                assert!(
                    p.contains("USING INDEX resources_name (provider_id=? AND kind=? AND name_key>? AND name_key<?)"),
                    "{name} sw: {p}"
                );
            }
        }
    }
}

//! The SCIM filter language (RFC 7644 §3.4.2.2): parser, attribute resolution against the schema
//! model, and an in-memory evaluator (used for PATCH value paths and as the oracle the SQL
//! compiler is tested against).

use serde_json::{Number, Value};

use super::Error;
use super::quirks::{Quirk, Quirks};
use super::schema::{self, Attribute, ResourceType, Role, Type};

/// Longest filter accepted, in bytes, and deepest nesting.
pub(crate) const MAX_LEN: usize = 4096;
pub(crate) const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(Number),
    Bool(bool),
    Null,
    /// A telephone number compared as LDAP's telephoneNumberMatch and
    /// telephoneNumberSubstringsMatch compare them (RFC 4517 §4.2.29, RFC 4518 §2.6.1): case
    /// folded, with spaces and hyphens ignored on both sides (`phone_fold`). The LDAP
    /// directory's filters make it; SCIM filters never do.
    Phone(String),
}

/// A telephone number as telephoneNumberMatch compares it: case folded, spaces and hyphens
/// removed (RFC 4518 §2.6.1).
pub(crate) fn phone_fold(s: &str) -> String {
    super::fold(s)
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}'))
        .collect()
}

/// An attribute path as written: optional schema URN, attribute, optional sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub(crate) uri: Option<String>,
    pub(crate) attr: String,
    pub(crate) sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, Op, CompValue),
    /// `attr[filter]`: some value of the multi-valued `attr` matches the inner filter, whose
    /// paths name sub-attributes.
    ValuePath(AttrPath, Box<Filter>),
    /// Matches nothing: what a test of an attribute a resource type lacks becomes in a search
    /// across resource types (see `prune`).
    Never,
    /// A comparison of the resource's key (the store's never-reused row number), which the
    /// LDAP directory's POSIX numbers are made of; SCIM filters never name it.
    Key(Op, i64),
}

/// For a search across resource types: tests of attributes `kind` does not have match nothing
/// of that kind. Returns `None` when nothing of the filter applies to `kind`.
pub(crate) fn prune(rt: &ResourceType, f: &Filter) -> Option<Filter> {
    fn go(rt: &ResourceType, f: &Filter, any: &mut bool) -> Filter {
        let known = |p: &AttrPath| resolve(rt, p, None).is_ok();
        match f {
            Filter::And(a, b) => Filter::And(Box::new(go(rt, a, any)), Box::new(go(rt, b, any))),
            Filter::Or(a, b) => Filter::Or(Box::new(go(rt, a, any)), Box::new(go(rt, b, any))),
            Filter::Not(a) => Filter::Not(Box::new(go(rt, a, any))),
            Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) if known(p) => {
                *any = true;
                f.clone()
            }
            Filter::Key(..) => {
                *any = true;
                f.clone()
            }
            _ => Filter::Never,
        }
    }
    let mut any = false;
    let pruned = go(rt, f, &mut any);
    any.then_some(pruned)
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidFilter(msg.into())
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(Number),
    LParen,
    RParen,
    LBracket,
    RBracket,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, Error> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            b'[' => {
                out.push(Tok::LBracket);
                i += 1;
            }
            b']' => {
                out.push(Tok::RBracket);
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if i >= b.len() {
                    return Err(invalid("unterminated string"));
                }
                i += 1;
                let text: String = serde_json::from_str(&s[start..i])
                    .map_err(|e| invalid(format!("bad string {}: {e}", &s[start..i])))?;
                out.push(Tok::Str(text));
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < b.len()
                    && !b[i].is_ascii_whitespace()
                    && !matches!(b[i], b'(' | b')' | b'[' | b']' | b'"')
                {
                    i += 1;
                }
                let text = &s[start..i];
                match serde_json::from_str::<Number>(text) {
                    Ok(n) => out.push(Tok::Num(n)),
                    // An unquoted date-time (`meta.created gt 2015-10-10T14:38:21Z`): a bare
                    // value like the unquoted words tolerated below, checked by the
                    // attribute's type.
                    Err(_) if text.starts_with(|c: char| c.is_ascii_digit()) => {
                        out.push(Tok::Word(text.to_string()))
                    }
                    Err(_) => return Err(invalid(format!("bad number {text}"))),
                }
            }
            // `emails[type eq "work"].value`: a sub-attribute right after the brackets.
            b'.' if out.last() == Some(&Tok::RBracket) => {
                let start = i;
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'-' | b'$'))
                {
                    i += 1;
                }
                out.push(Tok::Word(s[start..i].to_string()));
            }
            c if c.is_ascii_alphabetic() || c == b'$' || c == b'_' => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || matches!(b[i], b':' | b'.' | b'_' | b'-' | b'$'))
                {
                    i += 1;
                }
                out.push(Tok::Word(s[start..i].to_string()));
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(invalid(format!("unexpected character {ch:?}")));
            }
        }
    }
    Ok(out)
}

/// Splits `urn:...:User:name.givenName` or `name.givenName` into its parts.
pub(crate) fn parse_attr_path(word: &str) -> Result<AttrPath, Error> {
    let bad = || invalid(format!("{word:?} is not an attribute path"));
    // `get`, not an index: the fifth byte may be inside a multi-byte character.
    let (uri, rest) = if word.len() > 4
        && word
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        let cut = word.rfind(':').ok_or_else(bad)?;
        (Some(word[..cut].to_string()), &word[cut + 1..])
    } else {
        (None, word)
    };
    let mut parts = rest.split('.');
    let attr = parts.next().filter(|a| !a.is_empty()).ok_or_else(bad)?;
    let sub = parts.next();
    if parts.next().is_some() || sub.is_some_and(str::is_empty) {
        return Err(bad());
    }
    Ok(AttrPath {
        uri,
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
    quirks: Quirks,
}

pub fn parse(text: &str) -> Result<Filter, Error> {
    parse_noting(text).map(|(f, _)| f)
}

/// Parses a filter and reports the non-standard shapes it accepted on the way.
pub(crate) fn parse_noting(text: &str) -> Result<(Filter, Quirks), Error> {
    if text.len() > MAX_LEN {
        return Err(invalid(format!("filter is longer than {MAX_LEN} bytes")));
    }
    if text.trim().is_empty() {
        return Err(invalid("empty filter"));
    }
    let mut p = Parser {
        toks: tokenize(text)?,
        pos: 0,
        depth: 0,
        quirks: Quirks::default(),
    };
    let f = p.or()?;
    if p.pos != p.toks.len() {
        return Err(invalid(format!(
            "unexpected {} after the filter",
            p.describe()
        )));
    }
    Ok((f, p.quirks))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "end of filter".into(),
            Some(Tok::Word(w)) => format!("{w:?}"),
            Some(Tok::Str(s)) => format!("string {s:?}"),
            Some(Tok::Num(n)) => format!("number {n}"),
            Some(Tok::LParen) => "'('".into(),
            Some(Tok::RParen) => "')'".into(),
            Some(Tok::LBracket) => "'['".into(),
            Some(Tok::RBracket) => "']'".into(),
        }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), Error> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            Err(invalid(format!(
                "expected {what}, found {}",
                self.describe()
            )))
        }
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid(format!(
                "filter nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, Error> {
        let mut left = self.and()?;
        while self.keyword("or") {
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, Error> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, Error> {
        if matches!(self.toks.get(self.pos + 1), Some(Tok::LParen)) && self.keyword("not") {
            self.enter()?;
            self.expect(Tok::LParen, "'('")?;
            let inner = self.or()?;
            self.expect(Tok::RParen, "')'")?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.expect(Tok::RParen, "')'")?;
            self.depth -= 1;
            return Ok(inner);
        }
        self.attr_expr()
    }

    fn attr_expr(&mut self) -> Result<Filter, Error> {
        let Some(Tok::Word(word)) = self.peek().cloned() else {
            return Err(invalid(format!(
                "expected an attribute, found {}",
                self.describe()
            )));
        };
        self.pos += 1;
        let path = parse_attr_path(&word)?;
        if self.peek() == Some(&Tok::LBracket) {
            if path.sub.is_some() {
                return Err(invalid(format!(
                    "{word}[...]: a value filter applies to an attribute, not a sub-attribute"
                )));
            }
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.expect(Tok::RBracket, "']'")?;
            self.depth -= 1;
            // `emails[type eq "work"].value eq "x"`: a sub-attribute after the brackets.
            if let Some(Tok::Word(w)) = self.peek().cloned()
                && let Some(sub) = w.strip_prefix('.')
            {
                self.pos += 1;
                let sub_path = AttrPath {
                    uri: None,
                    attr: sub.to_string(),
                    sub: None,
                };
                let tail = self.operator(sub_path)?;
                return Ok(Filter::ValuePath(
                    path,
                    Box::new(Filter::And(Box::new(inner), Box::new(tail))),
                ));
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        self.operator(path)
    }

    fn operator(&mut self, path: AttrPath) -> Result<Filter, Error> {
        let Some(Tok::Word(op)) = self.peek().cloned() else {
            return Err(invalid(format!(
                "expected an operator, found {}",
                self.describe()
            )));
        };
        self.pos += 1;
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = Op::parse(&op).ok_or_else(|| invalid(format!("unknown operator {op:?}")))?;
        let value = match self.peek().cloned() {
            Some(Tok::Str(s)) => CompValue::Str(s),
            Some(Tok::Num(n)) => CompValue::Num(n),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => CompValue::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => CompValue::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => CompValue::Null,
            // An unquoted value (`externalId eq jyoung`, seen in Microsoft's own examples).
            Some(Tok::Word(w))
                if !["and", "or", "not"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                self.quirks.note(Quirk::BareFilterValue);
                CompValue::Str(w)
            }
            _ => {
                return Err(invalid(format!(
                    "expected a value, found {}",
                    self.describe()
                )));
            }
        };
        self.pos += 1;
        Ok(Filter::Compare(path, op, value))
    }
}

/// What an attribute path names, once checked against the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    Id,
    ExternalId,
    /// A sub-attribute of `meta` kept in a column: created, lastModified, resourceType.
    Meta(&'static Attribute),
    /// An attribute of the stored document: `ext` is the extension URN holding it, if any.
    Attr {
        ext: Option<&'static str>,
        attr: &'static Attribute,
        sub: Option<&'static Attribute>,
    },
}

impl Target {
    /// The attribute that decides the type and case rules of comparisons.
    pub(crate) fn leaf(&self) -> Option<&'static Attribute> {
        match self {
            Target::Attr { attr, sub, .. } => Some(sub.unwrap_or(attr)),
            _ => None,
        }
    }

    pub(crate) fn case_exact(&self) -> bool {
        match self {
            Target::Id | Target::ExternalId => true,
            Target::Meta(_) => true,
            Target::Attr { attr, sub, .. } => match sub {
                Some(s) => s.case_exact,
                // `emails eq "x"` compares the values of a multi-valued complex attribute.
                None if attr.is_complex() => attr.default_sub().is_some_and(|v| v.case_exact),
                None => attr.case_exact,
            },
        }
    }

    pub(crate) fn ty(&self) -> Type {
        match self {
            Target::Meta(m) => m.ty,
            Target::Id | Target::ExternalId => Type::String,
            Target::Attr { attr, sub, .. } => match sub {
                Some(s) => s.ty,
                None if attr.is_complex() => attr.default_sub().map_or(Type::Complex, |v| v.ty),
                None => attr.ty,
            },
        }
    }
}

/// Resolves a path of a filter on `kind` resources (`within` is the multi-valued attribute a
/// value filter applies to, whose sub-attributes the inner paths name).
pub(crate) fn resolve(
    rt: &ResourceType,
    path: &AttrPath,
    within: Option<&'static Attribute>,
) -> Result<Target, Error> {
    let unknown = || {
        let full = match (&path.uri, &path.sub) {
            (Some(u), Some(s)) => format!("{u}:{}.{s}", path.attr),
            (Some(u), None) => format!("{u}:{}", path.attr),
            (None, Some(s)) => format!("{}.{s}", path.attr),
            (None, None) => path.attr.clone(),
        };
        invalid(format!("unknown attribute {full:?} for {}", rt.name()))
    };
    if let Some(parent) = within {
        if path.uri.is_some() || path.sub.is_some() {
            return Err(unknown());
        }
        let sub = parent.sub(&path.attr).ok_or_else(unknown)?;
        return Ok(Target::Attr {
            ext: None,
            attr: parent,
            sub: Some(sub),
        });
    }
    let core = path
        .uri
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(rt.schema().id));
    if core {
        let common = schema::common(&path.attr).and_then(|a| match (a.role, &path.sub) {
            (Role::Id, None) => Some(Target::Id),
            (Role::ExternalId, None) => Some(Target::ExternalId),
            (Role::Meta, Some(s)) => a
                .sub(s)
                .filter(|m| matches!(m.role, Role::Created | Role::Modified | Role::ResourceType))
                .map(Target::Meta),
            _ => None,
        });
        if let Some(t) = common {
            return Ok(t);
        }
    }
    let (ext, attr) = rt
        .locate(path.uri.as_deref(), &path.attr)
        .ok_or_else(unknown)?;
    let sub = match &path.sub {
        None => None,
        Some(s) => Some(attr.sub(s).ok_or_else(unknown)?),
    };
    Ok(Target::Attr { ext, attr, sub })
}

/// Checks every path and operator of a filter for `kind`, so errors surface as 400
/// `invalidFilter` before any query runs.
pub(crate) fn check(rt: &ResourceType, f: &Filter) -> Result<(), Error> {
    check_in(rt, f, None)
}

fn check_in(
    rt: &ResourceType,
    f: &Filter,
    within: Option<&'static Attribute>,
) -> Result<(), Error> {
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => {
            check_in(rt, a, within)?;
            check_in(rt, b, within)
        }
        Filter::Not(a) => check_in(rt, a, within),
        Filter::Never => Ok(()),
        Filter::Key(..) if within.is_none() => Ok(()),
        Filter::Key(..) => Err(invalid("a value filter cannot compare the resource's key")),
        Filter::Present(p) => comparable(resolve(rt, p, within)?).map(|_| ()),
        Filter::Compare(p, op, v) => {
            let t = comparable(resolve(rt, p, within)?)?;
            check_operands(&t, *op, v)
        }
        Filter::ValuePath(p, inner) => {
            if within.is_some() {
                return Err(invalid("value filters cannot nest"));
            }
            match resolve(rt, p, None)? {
                Target::Attr {
                    ext: None,
                    attr,
                    sub: None,
                } if attr.multi_valued && attr.is_complex() => check_in(rt, inner, Some(attr)),
                Target::Attr {
                    ext: Some(_),
                    attr,
                    sub: None,
                } if attr.is_complex() => check_in(rt, inner, Some(attr)),
                _ => Err(invalid(format!(
                    "{}[...] needs a complex attribute",
                    p.attr
                ))),
            }
        }
    }
}

/// A complex attribute compares through its `value` sub-attribute, if it has one.
fn comparable(t: Target) -> Result<Target, Error> {
    match t {
        Target::Attr {
            attr, sub: None, ..
        } if attr.is_complex() && attr.default_sub().is_none() => Err(invalid(format!(
            "{} is complex: name one of its sub-attributes",
            attr.name
        ))),
        t => Ok(t),
    }
}

fn check_operands(t: &Target, op: Op, v: &CompValue) -> Result<(), Error> {
    let ty = t.ty();
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    if matches!(ty, Type::Boolean | Type::Binary | Type::Complex) && (ordering || substring) {
        return Err(invalid(
            format!("operator {op:?} does not apply to {ty:?} attributes").to_lowercase(),
        ));
    }
    match (ty, v) {
        (_, CompValue::Null) if matches!(op, Op::Eq | Op::Ne) => Ok(()),
        (_, CompValue::Null) => Err(invalid("null only compares with eq or ne")),
        (Type::Boolean, CompValue::Bool(_)) => Ok(()),
        (Type::Boolean, CompValue::Str(s))
            if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
        {
            Ok(())
        }
        (Type::Integer | Type::Decimal, CompValue::Num(_)) => Ok(()),
        (Type::DateTime, CompValue::Str(s)) => normalize_instant(s)
            .map(|_| ())
            .ok_or_else(|| invalid(format!("{s:?} is not an RFC 3339 date-time"))),
        (Type::String | Type::Reference | Type::Binary, CompValue::Str(_)) => Ok(()),
        (Type::String, CompValue::Phone(_)) => Ok(()),
        (ty, v) => Err(invalid(
            format!("cannot compare a {ty:?} attribute with {v:?}").to_lowercase(),
        )),
    }
}

/// An RFC 3339 instant in the one form timestamps are stored in (UTC, milliseconds, `Z`), so
/// that comparing the strings compares the instants.
pub(crate) fn normalize_instant(s: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| {
        d.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    })
}

/// Evaluates a (checked) filter against a rendered resource. Semantics, shared with the SQL
/// compiler: a multi-valued attribute matches when any value matches; `ne` is `not eq`;
/// `pr` means a non-empty value; case rules come from the schema.
pub(crate) fn matches(rt: &ResourceType, f: &Filter, resource: &Value) -> bool {
    eval(rt, f, resource, None)
}

fn eval(rt: &ResourceType, f: &Filter, r: &Value, within: Option<&'static Attribute>) -> bool {
    match f {
        Filter::And(a, b) => eval(rt, a, r, within) && eval(rt, b, r, within),
        Filter::Or(a, b) => eval(rt, a, r, within) || eval(rt, b, r, within),
        Filter::Not(a) => !eval(rt, a, r, within),
        // A rendered resource does not carry its key.
        Filter::Never | Filter::Key(..) => false,
        Filter::Present(p) => match resolve(rt, p, within) {
            Ok(t) => values_at(&t, r, within.is_some()).iter().any(non_empty),
            Err(_) => false,
        },
        Filter::Compare(p, op, v) => match resolve(rt, p, within) {
            Ok(t) => {
                let vals = values_at(&t, r, within.is_some());
                if *v == CompValue::Null {
                    // `eq null`: no value; `ne null`: some value.
                    return vals.iter().any(non_empty) == (*op == Op::Ne);
                }
                match op {
                    Op::Ne => !vals.iter().any(|x| compare(&t, x, Op::Eq, v)),
                    _ => vals.iter().any(|x| compare(&t, x, *op, v)),
                }
            }
            Err(_) => false,
        },
        Filter::ValuePath(p, inner) => match resolve(rt, p, None) {
            Ok(Target::Attr { ext, attr, .. }) => {
                let container = match ext {
                    Some(e) => r.get(e).and_then(|x| x.get(attr.name)),
                    None => r.get(attr.name),
                };
                let elements: Vec<&Value> = match container {
                    Some(Value::Array(items)) => items.iter().collect(),
                    Some(v @ Value::Object(_)) => vec![v],
                    _ => Vec::new(),
                };
                elements.iter().any(|e| eval(rt, inner, e, Some(attr)))
            }
            _ => false,
        },
    }
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// The values a target has in `r` (an element of a multi-valued attribute when `element`).
fn values_at(t: &Target, r: &Value, element: bool) -> Vec<Value> {
    let get = |v: Option<&Value>| v.cloned().into_iter().collect::<Vec<_>>();
    match t {
        Target::Id => get(r.get(schema::ID.name)),
        Target::ExternalId => get(r.get(schema::EXTERNAL_ID.name)),
        Target::Meta(m) => get(r.get(schema::META.name).and_then(|x| x.get(m.name))),
        Target::Attr { ext, attr, sub } => {
            if element {
                return get(sub.and_then(|s| r.get(s.name)));
            }
            let base = match ext {
                Some(e) => r.get(*e).and_then(|x| x.get(attr.name)),
                None => r.get(attr.name),
            };
            let leaf_name = match (sub, attr.is_complex()) {
                (Some(s), _) => Some(s.name),
                (None, true) => attr.default_sub().map(|s| s.name),
                (None, false) => None,
            };
            let items: Vec<&Value> = match base {
                Some(Value::Array(items)) => items.iter().collect(),
                Some(v) => vec![v],
                None => Vec::new(),
            };
            items
                .into_iter()
                .filter_map(|v| match leaf_name {
                    Some(n) => v.get(n).cloned(),
                    None => Some(v.clone()),
                })
                .collect()
        }
    }
}

fn compare(t: &Target, actual: &Value, op: Op, want: &CompValue) -> bool {
    let ty = t.ty();
    match (actual, want) {
        (Value::Bool(a), CompValue::Bool(b)) => op == Op::Eq && a == b,
        (Value::Bool(a), CompValue::Str(s)) => {
            op == Op::Eq && Some(*a) == super::resource::boolean(&Value::from(s.as_str()))
        }
        (Value::Number(a), CompValue::Num(b)) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
                return false;
            };
            match op {
                Op::Eq => a == b,
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
                _ => false,
            }
        }
        (Value::String(a), CompValue::Str(b) | CompValue::Phone(b)) => {
            let (a, b) = if let CompValue::Phone(_) = want {
                (phone_fold(a), phone_fold(b))
            } else if ty == Type::DateTime {
                match (normalize_instant(a), normalize_instant(b)) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return false,
                }
            } else if t.case_exact() {
                (a.clone(), b.clone())
            } else {
                (super::fold(a), super::fold(b))
            };
            match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::ENTERPRISE_USER;
    use crate::scim::schema::ResourceKind;
    use serde_json::json;

    fn p(s: &str) -> Filter {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn path(attr: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            uri: None,
            attr: attr.into(),
            sub: sub.map(Into::into),
        }
    }

    fn cmp(attr: &str, op: Op, v: &str) -> Filter {
        Filter::Compare(path(attr, None), op, CompValue::Str(v.into()))
    }

    #[test]
    fn every_operator_parses_case_insensitively() {
        for (word, op) in [
            ("eq", Op::Eq),
            ("NE", Op::Ne),
            ("Co", Op::Co),
            ("sw", Op::Sw),
            ("ew", Op::Ew),
            ("gt", Op::Gt),
            ("GE", Op::Ge),
            ("lt", Op::Lt),
            ("le", Op::Le),
        ] {
            assert_eq!(
                p(&format!("userName {word} \"x\"")),
                cmp("userName", op, "x")
            );
        }
        assert_eq!(p("title pr"), Filter::Present(path("title", None)));
        assert_eq!(p("title PR"), Filter::Present(path("title", None)));
    }

    #[test]
    fn an_unquoted_date_time_is_a_bare_value_and_numbers_stay_numbers() {
        let quoted = p(r#"meta.created gt "2015-10-10T14:38:21Z""#);
        assert_eq!(p("meta.created gt 2015-10-10T14:38:21Z"), quoted);
        assert_eq!(
            p("(meta.lastModified ge 2015-10-10T14:38:21.5+02:00)"),
            p(r#"meta.lastModified ge "2015-10-10T14:38:21.5+02:00""#)
        );
        assert!(matches!(
            p("x gt -1.5e3"),
            Filter::Compare(_, Op::Gt, CompValue::Num(_))
        ));
        assert!(matches!(
            p("(x eq 7)"),
            Filter::Compare(_, Op::Eq, CompValue::Num(_))
        ));
        assert!(parse("x gt -1.5.5").is_err());
    }

    #[test]
    fn precedence_not_and_or() {
        let a = || cmp("a", Op::Eq, "1");
        let b = || cmp("b", Op::Eq, "2");
        let c = || cmp("c", Op::Eq, "3");
        assert_eq!(
            p(r#"a eq "1" or b eq "2" and c eq "3""#),
            Filter::Or(
                Box::new(a()),
                Box::new(Filter::And(Box::new(b()), Box::new(c())))
            )
        );
        assert_eq!(
            p(r#"(a eq "1" or b eq "2") and c eq "3""#),
            Filter::And(
                Box::new(Filter::Or(Box::new(a()), Box::new(b()))),
                Box::new(c())
            )
        );
        assert_eq!(
            p(r#"not (a eq "1") and b eq "2""#),
            Filter::And(Box::new(Filter::Not(Box::new(a()))), Box::new(b()))
        );
        assert_eq!(
            p(r#"a eq "1" AND b eq "2" Or c eq "3""#),
            Filter::Or(
                Box::new(Filter::And(Box::new(a()), Box::new(b()))),
                Box::new(c())
            )
        );
    }

    #[test]
    fn values_escapes_and_literals() {
        assert_eq!(
            p(r#"a eq "q\"uote \\ \u00e9""#),
            cmp("a", Op::Eq, "q\"uote \\ é")
        );
        assert_eq!(
            p("a eq true"),
            Filter::Compare(path("a", None), Op::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            p("a eq False"),
            Filter::Compare(path("a", None), Op::Eq, CompValue::Bool(false))
        );
        assert_eq!(
            p("a eq null"),
            Filter::Compare(path("a", None), Op::Eq, CompValue::Null)
        );
        assert_eq!(
            p("a gt -1.5e3"),
            Filter::Compare(
                path("a", None),
                Op::Gt,
                CompValue::Num(serde_json::from_str("-1.5e3").unwrap())
            )
        );
        assert_eq!(p(r#"a eq "日本語""#), cmp("a", Op::Eq, "日本語"));
    }

    #[test]
    fn paths_with_uris_subs_and_value_filters() {
        assert_eq!(
            p(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x""#),
            Filter::Compare(
                AttrPath {
                    uri: Some(ENTERPRISE_USER.into()),
                    attr: "department".into(),
                    sub: None
                },
                Op::Eq,
                CompValue::Str("x".into())
            )
        );
        assert_eq!(
            p(r#"name.familyName sw "O'""#),
            Filter::Compare(
                path("name", Some("familyName")),
                Op::Sw,
                CompValue::Str("O'".into())
            )
        );
        let f = p(r#"emails[type eq "work" and value co "@contoso.com"]"#);
        assert_eq!(
            f,
            Filter::ValuePath(
                path("emails", None),
                Box::new(Filter::And(
                    Box::new(cmp("type", Op::Eq, "work")),
                    Box::new(cmp("value", Op::Co, "@contoso.com"))
                ))
            )
        );
        let f = p(r#"emails[type eq "work"].value eq "a@b""#);
        assert_eq!(
            f,
            Filter::ValuePath(
                path("emails", None),
                Box::new(Filter::And(
                    Box::new(cmp("type", Op::Eq, "work")),
                    Box::new(cmp("value", Op::Eq, "a@b"))
                ))
            )
        );
        assert!(matches!(
            p(r#"id eq "g" and members[value eq "u"]"#),
            Filter::And(_, _)
        ));
    }

    #[test]
    fn malformed_filters_are_invalid() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName xx \"a\"",
            "userName eq \"a",
            "(userName eq \"a\"",
            "userName eq \"a\")",
            "emails[type eq \"work\"",
            "userName eq \"a\" and",
            "and",
            "not userName eq \"a\"",
            "userName eq 'a'",
            "name..x eq \"a\"",
            "emails.value[type eq \"w\"]",
            "userName eq \"a\" userName",
            "a eq \"\\x\"",
            "# eq 1",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.scim_type(), "invalidFilter", "{bad}");
        }
        let long = format!("userName eq \"{}\"", "x".repeat(MAX_LEN));
        assert!(parse(&long).is_err());
        let deep = format!("{}userName eq \"a\"{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().to_string().contains("deeper"));
        // A long flat chain is not deep: only parentheses, not() and brackets nest.
        let wide: Vec<String> = (0..100).map(|i| format!("a eq \"{i}\"")).collect();
        assert!(parse(&wide.join(" or ")).is_ok());
    }

    #[test]
    fn resolution_against_the_schema() {
        let u = ResourceKind::User.builtin();
        for ok in [
            "userName eq \"a\"",
            "USERNAME eq \"a\"",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"a\"",
            "name.familyName eq \"a\"",
            "emails eq \"a\"",
            "emails.value eq \"a\"",
            "meta.lastModified gt \"2026-01-01T00:00:00Z\"",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m\"",
            "active eq true",
            "active eq \"True\"",
            "id eq \"x\"",
            "externalId pr",
            "emails[type eq \"work\"]",
            "groups.value eq \"g\"",
        ] {
            check(u, &p(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "shoeSize eq 1",
            "name.nick eq \"a\"",
            "name eq \"a\"",
            "active gt true",
            "active eq \"yes\"",
            "userName eq 5",
            "meta.created gt \"yesterday\"",
            "emails[kind eq \"x\"]",
            "userName[value eq \"x\"]",
            "members eq \"x\"",
            "urn:example:ext:foo eq \"x\"",
            "userName gt null",
        ] {
            let e = check(u, &p(bad)).expect_err(bad);
            assert_eq!(e.scim_type(), "invalidFilter", "{bad}");
        }
        check(
            ResourceKind::Group.builtin(),
            &p(r#"members[value eq "u"] and id eq "g""#),
        )
        .unwrap();
        check(ResourceKind::Group.builtin(), &p(r#"members.value eq "u""#)).unwrap();
        check(ResourceKind::Group.builtin(), &p(r#"members eq "u""#)).unwrap();
    }

    #[test]
    fn evaluation_follows_case_rules_and_any_value() {
        let u = ResourceKind::User.builtin();
        let r = json!({
            "id": "AbC", "externalId": "Ext-1", "userName": "Alice@Contoso.com", "active": false,
            "name": {"familyName": "Ölund"},
            "emails": [{"value": "a@x.com", "type": "work"}, {"value": "B@Y.com", "type": "home", "primary": true}],
            ENTERPRISE_USER: {"manager": {"value": "m1"}, "department": "R&D"},
            "meta": {"created": "2026-03-01T10:00:00.000Z", "lastModified": "2026-03-02T10:00:00.000Z"}
        });
        let t = |s: &str| {
            let f = p(s);
            check(u, &f).unwrap();
            matches(u, &f, &r)
        };
        assert!(t(r#"userName eq "alice@contoso.com""#));
        assert!(t(r#"userName sw "ALICE""#));
        assert!(t(r#"name.familyName eq "ölund""#), "unicode case folding");
        assert!(!t(r#"id eq "abc""#), "id is caseExact");
        assert!(t(r#"id eq "AbC""#));
        assert!(!t(r#"externalId eq "ext-1""#));
        assert!(t(r#"emails.value eq "b@y.com""#));
        assert!(t(r#"emails eq "A@X.COM""#));
        assert!(t(r#"emails[type eq "work" and value co "@x"]"#));
        assert!(!t(r#"emails[type eq "work" and value co "@y"]"#));
        assert!(t(r#"emails[type eq "work"].value eq "a@x.com""#));
        assert!(t(r#"emails[primary eq true].value eq "b@y.com""#));
        assert!(t("active eq false"));
        assert!(t(r#"active eq "False""#));
        assert!(t("title eq null"));
        assert!(t("title ne \"x\""), "absent attributes are ne anything");
        assert!(t("userName ne null") && !t("title ne null"));
        assert!(
            !t("emails.value ne \"a@x.com\""),
            "ne is not-eq over all values"
        );
        assert!(t("externalId pr"));
        assert!(!t("title pr"));
        assert!(t(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1""#
        ));
        assert!(t(r#"meta.lastModified gt "2026-03-02T09:00:00Z""#));
        assert!(
            t(r#"meta.lastModified gt "2026-03-02T11:00:00+02:00""#),
            "instants, not strings"
        );
        assert!(!t(r#"meta.created ge "2026-03-01T10:00:00.001Z""#));
        assert!(t(
            r#"not (userName eq "bob") and (active eq true or emails pr)"#
        ));
    }

    #[test]
    fn telephone_numbers_ignore_spaces_and_hyphens() {
        assert_eq!(phone_fold(" +1 (555) 010-0 X1 "), "+1(555)0100x1");
        assert_eq!(phone_fold("+1\u{2010}555\u{2212}0100"), "+15550100");
        let u = ResourceKind::User.builtin();
        let r = json!({"userName": "a", "phoneNumbers": [{"value": "+1 555 0100"}]});
        let phone = |op, v: &str| {
            let f = Filter::Compare(
                AttrPath {
                    uri: None,
                    attr: "phoneNumbers".into(),
                    sub: Some("value".into()),
                },
                op,
                CompValue::Phone(v.into()),
            );
            check(u, &f).unwrap();
            matches(u, &f, &r)
        };
        assert!(phone(Op::Eq, "+1-555-0100"));
        assert!(phone(Op::Sw, "+1555"));
        assert!(phone(Op::Ew, "5 0100"));
        assert!(!phone(Op::Eq, "+1 555 0101"));
    }
}

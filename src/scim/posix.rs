//! PURE: POSIX identities a provider's LDAP tree gives its users and groups without any help
//! from the identity provider (`scimd ldap posix`): `uidNumber` and `gidNumber` are a first
//! number plus the resource's key in the store — a row number that is never reused, survives
//! backup and restore and does not change when a user is renamed — so a number stays one
//! user's or group's for good. Users and groups share the key space, so a user's private
//! group (gidNumber = uidNumber) never collides with a group's number. No I/O.

use crate::scim::filter::{Filter, Op};

/// A provider's POSIX settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Posix {
    /// The number of the resource with key 0; a resource's number is this plus its key.
    pub(crate) first_id: i64,
    /// No number above this is given: a resource past it is not a POSIX account or group.
    pub(crate) last_id: i64,
    /// `homeDirectory`, with `{uid}` for the user's name and `{local}` for the part before `@`.
    pub(crate) home: String,
    pub(crate) shell: String,
    /// Every user's primary group; `None`: each user's own (its gidNumber is its uidNumber,
    /// as SSSD's `auto_private_groups` expects).
    pub(crate) primary_gid: Option<i64>,
}

impl Default for Posix {
    fn default() -> Self {
        Posix {
            first_id: 100_000,
            last_id: 2_000_000_000,
            home: "/home/{uid}".into(),
            shell: "/bin/bash".into(),
            primary_gid: None,
        }
    }
}

/// What a POSIX attribute of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Uid,
    Gid,
    Home,
    Shell,
    /// A group's members' user names (RFC 2307; `member` holds their DNs).
    MemberUid,
}

impl Posix {
    /// Checks settings as an admin gives them.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.first_id < 1
            || self.last_id <= self.first_id
            || self.last_id > i64::from(u32::MAX - 1)
        {
            return Err(format!(
                "the numbers {}-{} are not a range of POSIX ids (1 to 4294967294, first below last)",
                self.first_id, self.last_id
            ));
        }
        if !self.home.starts_with('/') || !self.shell.starts_with('/') {
            return Err("the home directory and the shell must be absolute paths".into());
        }
        if self
            .primary_gid
            .is_some_and(|g| g < 0 || g > i64::from(u32::MAX - 1))
        {
            return Err("the primary group's number is not a POSIX id".into());
        }
        Ok(())
    }

    /// The number of the resource with key `seq`, if it is within the range.
    pub(crate) fn number(&self, seq: i64) -> Option<i64> {
        self.first_id
            .checked_add(seq)
            .filter(|n| *n <= self.last_id)
    }

    /// The keys in the range, as a condition.
    fn in_range(&self) -> Filter {
        Filter::Key(Op::Le, self.last_id - self.first_id)
    }

    /// A user's home directory.
    pub(crate) fn home_of(&self, user_name: &str) -> String {
        let local = user_name.split('@').next().unwrap_or(user_name);
        self.home
            .replace("{uid}", user_name)
            .replace("{local}", local)
    }

    /// A user's POSIX attributes (none past the range).
    pub(crate) fn user_attributes(&self, seq: i64, user_name: &str) -> Vec<(String, Vec<String>)> {
        let Some(n) = self.number(seq) else {
            return Vec::new();
        };
        let gid = self.primary_gid.unwrap_or(n);
        vec![
            ("uidNumber".into(), vec![n.to_string()]),
            ("gidNumber".into(), vec![gid.to_string()]),
            ("homeDirectory".into(), vec![self.home_of(user_name)]),
            ("loginShell".into(), vec![self.shell.clone()]),
        ]
    }

    /// A group's POSIX attributes: its number and its user members' names.
    pub(crate) fn group_attributes(
        &self,
        seq: i64,
        member_uids: Vec<String>,
    ) -> Vec<(String, Vec<String>)> {
        let Some(n) = self.number(seq) else {
            return Vec::new();
        };
        let mut out = vec![("gidNumber".into(), vec![n.to_string()])];
        if !member_uids.is_empty() {
            out.push(("memberUid".into(), member_uids));
        }
        out
    }

    /// Which entries a number assertion (`uidNumber`, a group's `gidNumber`) holds for;
    /// `None` when the value is not a number (Undefined).
    fn numbered(&self, op: Op, value: &str) -> Option<Filter> {
        let n: i64 = value.trim().parse().ok()?;
        let key = n.checked_sub(self.first_id)?;
        Some(Filter::And(
            Box::new(Filter::Key(op, key)),
            Box::new(self.in_range()),
        ))
    }

    /// The condition an equality, ordering or presence assertion (`value` None) on a POSIX
    /// attribute of users (`users`) or groups becomes; `None` for Undefined. `by_name` is the
    /// condition that an entry is the user of this name (of users: for `homeDirectory`) or has
    /// that user as a member (of groups: for `memberUid`; with `None`, any user member).
    pub(crate) fn condition(
        &self,
        part: Part,
        users: bool,
        op: Op,
        value: Option<&str>,
        by_name: &dyn Fn(Option<&str>) -> Filter,
    ) -> Option<Filter> {
        let never = Filter::Never;
        let Some(value) = value else {
            return Some(match (part, users) {
                (Part::MemberUid, true) | (Part::Uid | Part::Home | Part::Shell, false) => never,
                (Part::MemberUid, false) => by_name(None),
                _ => self.in_range(),
            });
        };
        if matches!(op, Op::Sw | Op::Co | Op::Ew) && matches!(part, Part::Uid | Part::Gid) {
            return None;
        }
        match (part, users) {
            (Part::Uid, true) | (Part::Gid, false) => self.numbered(op, value),
            (Part::Gid, true) => match self.primary_gid {
                None => self.numbered(op, value),
                Some(g) => {
                    let n: i64 = value.trim().parse().ok()?;
                    let holds = match op {
                        Op::Ge => g >= n,
                        Op::Le => g <= n,
                        _ => g == n,
                    };
                    Some(if holds { self.in_range() } else { never })
                }
            },
            (Part::Shell, true) if op == Op::Eq => Some(if value == self.shell {
                self.in_range()
            } else {
                never
            }),
            (Part::Home, true) if op == Op::Eq => {
                // `/home/{uid}` and the like: the name between what the template puts around it.
                let (before, after) = self.home.split_once("{uid}")?;
                let name = value.strip_prefix(before)?.strip_suffix(after)?;
                Some(Filter::And(
                    Box::new(by_name(Some(name))),
                    Box::new(self.in_range()),
                ))
            }
            (Part::MemberUid, false) if op == Op::Eq => Some(by_name(Some(value))),
            (Part::MemberUid, true) | (Part::Uid | Part::Home | Part::Shell, false) => Some(never),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_from_the_key_within_the_range() {
        let p = Posix {
            first_id: 10_000,
            last_id: 10_005,
            ..Posix::default()
        };
        assert_eq!(p.number(3), Some(10_003));
        assert_eq!(p.number(6), None);
        let attrs = p.user_attributes(3, "alice@contoso.com");
        assert_eq!(attrs[0], ("uidNumber".into(), vec!["10003".into()]));
        assert_eq!(attrs[1], ("gidNumber".into(), vec!["10003".into()]));
        assert_eq!(
            attrs[2],
            (
                "homeDirectory".into(),
                vec!["/home/alice@contoso.com".into()]
            )
        );
        assert!(p.user_attributes(9, "late").is_empty());
        let local = Posix {
            home: "/srv/{local}".into(),
            primary_gid: Some(100),
            ..p.clone()
        };
        let attrs = local.user_attributes(3, "alice@contoso.com");
        assert_eq!(attrs[1], ("gidNumber".into(), vec!["100".into()]));
        assert_eq!(
            attrs[2],
            ("homeDirectory".into(), vec!["/srv/alice".into()])
        );
    }

    #[test]
    fn assertions_become_key_conditions_and_misfits_are_undefined() {
        let p = Posix {
            first_id: 10_000,
            last_id: 20_000,
            ..Posix::default()
        };
        let name = |n: Option<&str>| {
            Filter::Compare(
                crate::scim::filter::AttrPath {
                    uri: None,
                    attr: "userName".into(),
                    sub: None,
                },
                Op::Eq,
                crate::scim::filter::CompValue::Str(n.unwrap_or_default().into()),
            )
        };
        let range = Filter::Key(Op::Le, 10_000);
        assert_eq!(
            p.condition(Part::Uid, true, Op::Eq, Some("10003"), &name),
            Some(Filter::And(
                Box::new(Filter::Key(Op::Eq, 3)),
                Box::new(range.clone())
            ))
        );
        assert_eq!(p.condition(Part::Uid, true, Op::Eq, Some("x"), &name), None);
        assert_eq!(p.condition(Part::Uid, true, Op::Sw, Some("1"), &name), None);
        assert_eq!(
            p.condition(Part::Home, true, Op::Eq, Some("/home/bob"), &name),
            Some(Filter::And(
                Box::new(name(Some("bob"))),
                Box::new(range.clone())
            ))
        );
        assert_eq!(
            p.condition(Part::Shell, true, Op::Eq, Some("/bin/zsh"), &name),
            Some(Filter::Never)
        );
        assert_eq!(
            p.condition(Part::Uid, false, Op::Eq, Some("1"), &name),
            Some(Filter::Never)
        );
        assert_eq!(
            p.condition(Part::Gid, true, Op::Eq, None, &name),
            Some(range)
        );
        let bad = Posix {
            first_id: 5,
            last_id: 4,
            ..Posix::default()
        };
        assert!(bad.check().is_err());
        assert!(Posix::default().check().is_ok());
    }
}

//! Non-standard request shapes scimd accepts because real identity providers send them. Pure
//! code notes each one it tolerates; the server counts them per identity provider and logs them,
//! so operators can see what their IdP sends.

/// One tolerated deviation from RFC 7643/7644.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Quirk {
    /// `"True"` / `"False"` strings for booleans (Microsoft Entra ID's default dialect).
    StringBoolean,
    /// `manager` as a bare id, a one-element list, or `""` to clear it (Entra).
    ManagerShape,
    /// A typed value path creating the value it names, e.g. `phoneNumbers[type eq "mobile"].value`.
    TypedPathUpsert,
    /// `remove` on `members` with a list of the members to remove (Entra's default dialect).
    MemberRemoveByValue,
    /// Keys of a no-path PATCH value that are paths, e.g. `"name.givenName"` (aadOptscim062020).
    PathKeysInValue,
    /// A schema URN scimd does not know, accepted and ignored.
    UnknownSchema,
    /// An extension object whose URN is missing from `schemas`.
    ExtensionWithoutUrn,
    /// An unquoted filter value, e.g. `externalId eq jyoung`.
    BareFilterValue,
    /// A complex value sent as a JSON string (Entra's AppRoleAssignmentsComplex roles).
    JsonStringValue,
    /// `remove` with a value filter on the single-valued `manager`, e.g. `manager[value eq "id"]`.
    ManagerValueFilter,
}

impl Quirk {
    pub(crate) const ALL: [Quirk; 10] = [
        Quirk::StringBoolean,
        Quirk::ManagerShape,
        Quirk::TypedPathUpsert,
        Quirk::MemberRemoveByValue,
        Quirk::PathKeysInValue,
        Quirk::UnknownSchema,
        Quirk::ExtensionWithoutUrn,
        Quirk::BareFilterValue,
        Quirk::JsonStringValue,
        Quirk::ManagerValueFilter,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Quirk::StringBoolean => "string_boolean",
            Quirk::ManagerShape => "manager_shape",
            Quirk::TypedPathUpsert => "typed_path_upsert",
            Quirk::MemberRemoveByValue => "member_remove_by_value",
            Quirk::PathKeysInValue => "path_keys_in_value",
            Quirk::UnknownSchema => "unknown_schema",
            Quirk::ExtensionWithoutUrn => "extension_without_urn",
            Quirk::BareFilterValue => "bare_filter_value",
            Quirk::JsonStringValue => "json_string_value",
            Quirk::ManagerValueFilter => "manager_value_filter",
        }
    }
}

/// The quirks one request used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Quirks(u32);

impl Quirks {
    pub(crate) fn note(&mut self, q: Quirk) {
        self.0 |= 1 << (q as u32);
    }

    pub(crate) fn merge(&mut self, other: Quirks) {
        self.0 |= other.0;
    }

    pub(crate) fn contains(&self, q: Quirk) -> bool {
        self.0 & (1 << (q as u32)) != 0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Quirk> + '_ {
        Quirk::ALL.into_iter().filter(|q| self.contains(*q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_of_quirks() {
        let mut q = Quirks::default();
        assert!(q.is_empty());
        q.note(Quirk::StringBoolean);
        q.note(Quirk::ManagerValueFilter);
        let mut other = Quirks::default();
        other.note(Quirk::TypedPathUpsert);
        q.merge(other);
        assert_eq!(
            q.iter().collect::<Vec<_>>(),
            [
                Quirk::StringBoolean,
                Quirk::TypedPathUpsert,
                Quirk::ManagerValueFilter
            ]
        );
    }
}

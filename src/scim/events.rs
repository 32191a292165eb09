//! What a change feed calls the changes of users and groups (RFC 9967 names the same kinds of
//! provisioning event): created, replaced, patched, deleted, activated, deactivated, and a
//! group's members changed. Pure vocabulary.

/// The member of a change feed's event that carries the resource's `externalId`, named as
/// SCIM names the attribute.
pub(crate) const EXTERNAL_ID: &str = "externalId";

/// One operation of a feed's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Create,
    Replace,
    Patch,
    Delete,
    Activate,
    Deactivate,
    Members,
}

impl Op {
    /// Every operation, in the order help texts list them.
    pub(crate) const ALL: [Op; 7] = [
        Op::Create,
        Op::Replace,
        Op::Patch,
        Op::Delete,
        Op::Activate,
        Op::Deactivate,
        Op::Members,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Replace => "replace",
            Op::Patch => "patch",
            Op::Delete => "delete",
            Op::Activate => "activate",
            Op::Deactivate => "deactivate",
            // A group's membership attribute, as the model names it.
            Op::Members => super::schema::MEMBERS_ATTRIBUTE,
        }
    }

    /// The operation `text` names, regardless of case.
    pub(crate) fn parse(text: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_read_back_from_their_names() {
        for op in Op::ALL {
            assert_eq!(Op::parse(&op.as_str().to_uppercase()), Some(op));
        }
        assert_eq!(Op::parse("update"), None);
        assert_eq!(Op::Members.as_str(), "members");
    }
}

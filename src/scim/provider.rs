//! The type of an identity provider: which client's documented preferences scimd follows where
//! the RFCs leave a choice.

use std::fmt;
use std::str::FromStr;

/// How a provider's clients behave; `entra` enables Microsoft Entra ID's documented preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Generic,
    Entra,
}

impl ProviderKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Generic => "generic",
            ProviderKind::Entra => "entra",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "generic" => Ok(ProviderKind::Generic),
            "entra" => Ok(ProviderKind::Entra),
            other => Err(format!(
                "unknown provider type {other:?} (use generic or entra)"
            )),
        }
    }
}

/// What a provider's SCIM requests may do to users' passwords (`provider set --scim-passwords`).
/// Some identity providers send a password nobody knows in every create (Okta does, with
/// password sync off) and the real one, if at all, in a later PUT or PATCH; Entra ID never
/// sends one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ScimPasswords {
    /// Never stored; the provider's stored passwords are removed when it is set.
    Ignore,
    /// Stored from a PUT or PATCH, ignored in a create (the default).
    #[default]
    Updates,
    /// Stored from creates too.
    All,
}

impl ScimPasswords {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ScimPasswords::Ignore => "ignore",
            ScimPasswords::Updates => "updates",
            ScimPasswords::All => "all",
        }
    }

    /// Whether a password the provider sends in a create (`creating`) or an update is kept.
    pub(crate) fn keeps(self, creating: bool) -> bool {
        match self {
            ScimPasswords::Ignore => false,
            ScimPasswords::Updates => !creating,
            ScimPasswords::All => true,
        }
    }
}

impl FromStr for ScimPasswords {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "ignore" => Ok(ScimPasswords::Ignore),
            "updates" => Ok(ScimPasswords::Updates),
            "all" => Ok(ScimPasswords::All),
            other => Err(format!(
                "SCIM password policy {other:?} must be ignore, updates or all"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_creates_are_kept_only_when_all_are() {
        let kept = |p: ScimPasswords| (p.keeps(true), p.keeps(false));
        assert_eq!(kept(ScimPasswords::Ignore), (false, false));
        assert_eq!(kept(ScimPasswords::default()), (false, true));
        assert_eq!(kept(ScimPasswords::All), (true, true));
        for p in [
            ScimPasswords::Ignore,
            ScimPasswords::Updates,
            ScimPasswords::All,
        ] {
            assert_eq!(p.as_str().parse::<ScimPasswords>(), Ok(p));
        }
    }
}

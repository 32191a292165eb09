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

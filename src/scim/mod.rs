//! Pure SCIM logic, no I/O and no locks: the schema model, request validation, PATCH, the
//! filter language, response projection, and `directory`: how the users and groups appear
//! in LDAP (DNs, the attribute table, LDAP filters as SCIM filters).

pub(crate) mod borrowed;
pub(crate) mod directory;
pub(crate) mod events;
pub(crate) mod extension;
pub(crate) mod filter;
#[cfg(test)]
mod fuzz;
pub(crate) mod patch;
pub(crate) mod posix;
pub(crate) mod projection;
pub(crate) mod provider;
pub(crate) mod quirks;
pub(crate) mod resource;
pub(crate) mod schema;
pub(crate) mod summary;

pub use provider::ProviderKind;
pub(crate) use provider::ScimPasswords;
pub use schema::ResourceKind;

/// Case folding for attributes compared regardless of case (`caseExact: false`), such as
/// userName and displayName uniqueness.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// A request that breaks a SCIM rule; always a 400 with the `scimType` of RFC 7644 §3.12.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0}")]
    InvalidSyntax(String),
    #[error("{0}")]
    Mutability(String),
    #[error("{0}")]
    InvalidFilter(String),
    #[error("{0}")]
    InvalidCursor(String),
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    NoTarget(String),
}

impl Error {
    pub(crate) fn scim_type(&self) -> &'static str {
        match self {
            Error::InvalidValue(_) => "invalidValue",
            Error::InvalidSyntax(_) => "invalidSyntax",
            Error::Mutability(_) => "mutability",
            Error::InvalidFilter(_) => "invalidFilter",
            Error::InvalidCursor(_) => "invalidCursor",
            Error::InvalidPath(_) => "invalidPath",
            Error::NoTarget(_) => "noTarget",
        }
    }
}

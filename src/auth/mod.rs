//! Bearer tokens: their format, argon2id hashing, and the verification cache the server uses;
//! sign-in with an identity provider (OpenID Connect).

pub(crate) mod oidc;
pub(crate) mod token;
pub(crate) mod verifier;

pub(crate) use token::{Secret, TokenState};
pub(crate) use verifier::{Secrets, Verdict, Verifier};

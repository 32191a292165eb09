//! Bearer tokens: their format, argon2id hashing, and the verification cache the server uses.

pub mod token;
pub mod verifier;

pub(crate) use token::{Secret, TokenState};
pub(crate) use verifier::{Verdict, Verifier};

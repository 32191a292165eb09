//! Bearer tokens: their format, argon2id hashing, and the verification cache the server uses.

pub mod token;
pub mod verifier;

pub use token::{Secret, TokenState};
pub use verifier::Verifier;

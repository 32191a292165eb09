//! scimd: a SCIM 2.0 server (RFC 7643/7644) with an embedded SQLite database.
//!
//! Data flows one way: `http` (routes, auth) -> `store` (SQLite). `auth` holds the token
//! format and verification; `jobs` the periodic cleanup; `commands` what each CLI command does.

pub mod auth;
pub mod cli;
pub mod commands;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod http;
pub mod jobs;
pub mod render;
pub mod scim;
pub mod store;

//! scimd: a SCIM 2.0 server (RFC 7643/7644) with an embedded SQLite database.
//!
//! A request flows one way: `http` parses it, `scim` decides (pure: no I/O), `store` does it,
//! `render` writes the answer.
//!
//! - `scim`: the schema model (`scim::schema`: every attribute, the common ones included, each
//!   with a role — indexed, relation rows, computed, a reference in Entra's shapes, a
//!   write-only secret — in a `Model` that can be built per provider), request validation
//!   (`resource`), PATCH (`patch`), the filter language (`filter`), `attributes` projection,
//!   the provider types and the non-standard shapes clients send (`quirks`).
//! - `store`: SQLite. The use cases every writer calls — `resources::{create, replace, patch,
//!   delete}`, provider and token administration — run on the one group-committing `writer`
//!   thread, which survives a panicking job; reads run on reader threads. `members` keeps
//!   memberships as rows, `search` pages, `query` compiles filters to SQL, `Error` is the
//!   domain's outcomes plus `Internal`.
//! - `render`: the one renderer, from stored rows and their computed values to response bodies.
//! - `http`: routes, authentication, the SCIM error mapping (`error`), `/healthz`.
//! - `auth`: the token format, argon2id hashing and the verification cache.
//! - `jobs`: the periodic token cleanup, which writes through the store's writer like every
//!   other change.
//! - `config`: every setting declared once; `cli` and `commands`: the command line, whose
//!   commands open the store and call the same use cases as the server.

pub(crate) mod app;
pub mod auth;
pub mod cli;
pub mod commands;
pub(crate) mod config;
pub(crate) mod console;
pub(crate) mod error;
pub mod export;
pub(crate) mod http;
pub mod jobs;
pub(crate) mod ldap;
pub mod render;
pub mod scim;
pub(crate) mod server;
pub mod store;
pub(crate) mod tls;
pub(crate) mod web;

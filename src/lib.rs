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

#![warn(unreachable_pub)]

pub(crate) mod app;
pub(crate) mod auth;
pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod console;
pub(crate) mod error;
pub(crate) mod export;
pub(crate) mod http;
pub(crate) mod jobs;
pub(crate) mod ldap;
pub(crate) mod render;
pub(crate) mod scim;
pub(crate) mod server;
pub(crate) mod store;
pub(crate) mod tls;
pub(crate) mod web;

/// What the binary, the integration tests and the benchmarks reach, in the crate's own shape;
/// nothing else is public, and the `unreachable_pub` lint keeps every other item `pub(crate)`.
pub mod api {
    pub use crate::cli::Cli;
    pub use crate::commands::run;

    pub mod auth {
        pub mod token {
            pub use crate::auth::token::{generate, hash};
        }
    }

    pub mod jobs {
        pub use crate::jobs::{CleanupPolicy, cleanup_once};
    }

    pub mod render {
        pub use crate::render::push_rows;
    }

    pub mod scim {
        pub use crate::scim::{ProviderKind, ResourceKind};
        pub mod filter {
            pub use crate::scim::filter::parse;
        }
        pub mod patch {
            pub use crate::scim::patch::parse_request;
        }
        pub mod projection {
            pub use crate::scim::projection::Projection;
        }
        pub mod resource {
            pub use crate::scim::resource::prepare;
        }
        pub mod schema {
            pub use crate::scim::schema::Model;
        }
    }

    pub mod store {
        pub use crate::store::{Error, OpenMode, Store};
        pub mod providers {
            pub use crate::store::providers::{insert, require};
        }
        pub mod query {
            pub use crate::store::query::condition;
        }
        pub mod resources {
            pub use crate::store::resources::{create, patch};
        }
        pub mod search {
            pub use crate::store::search::{Paging, search};
        }
        pub mod tokens {
            pub use crate::store::tokens::{NewTokenRow, create, list};
        }
    }
}

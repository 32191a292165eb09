//! scimd: a SCIM 2.0 server (RFC 7643/7644) with an embedded SQLite database, an admin console
//! and a read-only LDAP directory over the same identities.
//!
//! Four front doors stand on one core, and data flows one way: a door parses and presents,
//! `app` authorises and runs the use case, `scim` decides (pure: no I/O, no locks), `store` does
//! the I/O. `server` wires it all. `tests/it/layers.rs` keeps these rules.
//!
//! - Doors: `http` (the SCIM API), `console` (the admin console), `ldap` (the directory, in
//!   layers: transport, session, bind, search, entries), `cli` and `commands` (the command
//!   line, which opens the store and calls the same core).
//! - `server`: the composition root: listeners, the core, the doors, jobs, signals, systemd.
//! - `app`: the core: `AppState`, the caller of a SCIM request (`caller`), credentials
//!   (`credentials`), provider summaries and overviews (`providers`), what is counted between
//!   flushes (`counters`).
//! - `scim`: the schema model with its roles, validation, PATCH, filters, projection, the
//!   summary columns (`summary`) and the LDAP view with its one attribute table (`directory`).
//! - `store`: SQLite: the writer thread every change goes through, the readers, one file per
//!   table family; SQL lives here only. `render`: rows into response bodies.
//! - `auth` (token format, argon2, the verifier), `tls`, `web` (what the HTTP doors share),
//!   `config` (every setting declared once), `jobs` (cleanup), `export`, `error` (the SCIM
//!   error type and its responses).
//! - `api`: the only public items: what the binary, the tests and the benchmarks use.

#![warn(unreachable_pub)]

pub(crate) mod app;
pub(crate) mod auth;
pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod console;
pub(crate) mod error;
pub(crate) mod export;
pub(crate) mod feed;
pub(crate) mod http;
pub(crate) mod jobs;
pub(crate) mod ldap;
pub(crate) mod outbound;
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
            pub use crate::auth::token::{fingerprint, generate, hash};
        }
    }

    pub mod jobs {
        pub use crate::jobs::{CleanupPolicy, cleanup_once};
    }

    pub mod app {
        pub use crate::app::push_rows;
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

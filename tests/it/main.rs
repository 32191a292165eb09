//! Integration tests: the real `scimd` binary, a temporary database file, real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod activity;
mod auth;
mod cli;
mod config;
mod console;
mod discovery;
mod durability;
mod extensions;
mod faults;
mod harness;
mod hostile;
mod http_basics;
mod interop;
mod jobs;
mod layers;
mod ldap;
mod ldap_abuse;
mod ops;
mod patch;
mod query;
mod quickstart;
mod replays;
mod resources;
mod tls;

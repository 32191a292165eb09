//! The `scimd` binary: parse the command line and dispatch the subcommand.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's malloc: a request's memory is allocated on an HTTP worker and
/// freed on the writer thread (and the answer the other way), and glibc serialises such frees on
/// the owning arena's lock, which profiles of write loads showed as the workers' largest wait.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = scimd::api::Cli::parse();
    match scimd::api::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

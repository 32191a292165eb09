//! Faults an integration test can inject into a debug build, to prove that the writer and the
//! readers survive a bug and that `/healthz` reports a stuck one. Only debug builds compile
//! this, and only a server started with `SCIMD_TEST_FAULTS=1` honours the request header
//! `x-scimd-test-fault`; release builds have neither.

use std::sync::LazyLock;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The request's write panics after it changed rows (`panic-in-write`).
    PanicInWrite,
    /// The request's write holds the writer this long (`stall-write=<ms>`).
    StallWrite(Duration),
    /// The request's read holds its reader thread this long (`stall-read=<ms>`).
    StallRead(Duration),
}

static ENABLED: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("SCIMD_TEST_FAULTS").is_some_and(|v| v == "1"));

/// The fault a request asks for (its `x-scimd-test-fault` header), when faults are enabled.
pub(crate) fn requested(header: Option<&str>) -> Option<Fault> {
    if !*ENABLED {
        return None;
    }
    let v = header?;
    let ms = |s: &str| s.parse().ok().map(Duration::from_millis);
    match v.split_once('=') {
        None if v == "panic-in-write" => Some(Fault::PanicInWrite),
        Some(("stall-write", n)) => ms(n).map(Fault::StallWrite),
        Some(("stall-read", n)) => ms(n).map(Fault::StallRead),
        _ => None,
    }
}

/// Runs inside the writer, after the request's own write.
pub(crate) fn after_write(fault: Option<Fault>) {
    match fault {
        Some(Fault::PanicInWrite) => panic!("injected fault: panic-in-write"),
        Some(Fault::StallWrite(d)) => std::thread::sleep(d),
        _ => {}
    }
}

/// Runs on the reader thread, before the request's read.
pub(crate) fn before_read(fault: Option<Fault>) {
    if let Some(Fault::StallRead(d)) = fault {
        std::thread::sleep(d);
    }
}

//! Who may hold an LDAP connection open: at most so many at once overall and from one client
//! address. A connection past either cap is closed as it arrives, so a client opening
//! thousands of idle connections can neither exhaust the process's file descriptors (which the
//! SCIM port and the console share) nor its memory. Refusals are logged once a minute with a
//! count, never one line each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// File descriptors kept for everything but LDAP (the SCIM and admin listeners and their
/// connections, the database and its WAL, logs) when the LDAP cap is fitted to the process's
/// limit.
const RESERVED_FDS: u64 = 256;

/// How often refused connections are logged, as a count.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct Gate {
    max: usize,
    per_address: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    /// Connections refused since `logged`, and when that was.
    refused: u64,
    logged: Option<Instant>,
}

/// An admitted connection: its place is given back when it is dropped.
pub(crate) struct Admitted {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.gate.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.ip);
            }
        }
    }
}

impl Gate {
    /// A gate for `max` connections (fewer when the process may not open that many files:
    /// half of what is left after `RESERVED_FDS`) and `per_address` from one address.
    pub(crate) fn new(max: u32, per_address: u32, fd_limit: Option<u64>) -> Gate {
        let mut max = max as usize;
        if let Some(limit) = fd_limit {
            let room = (limit.saturating_sub(RESERVED_FDS) / 2).max(1) as usize;
            if room < max {
                tracing::warn!(
                    ldap_max_connections = max,
                    open_files_limit = limit,
                    "the process may open only {limit} files: at most {room} LDAP connections \
                     are accepted (raise LimitNOFILE in the systemd unit, or ulimit -n)"
                );
                max = room;
            }
        }
        Gate {
            max,
            per_address: per_address as usize,
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a connection from `ip`, or why there is none.
    pub(crate) fn admit(self: &Arc<Gate>, ip: IpAddr) -> Result<Admitted, &'static str> {
        let mut open = self.lock();
        let from_ip = open.by_address.get(&ip).copied().unwrap_or(0);
        let why = if open.total >= self.max {
            Some("ldap_max_connections")
        } else if from_ip >= self.per_address {
            Some("ldap_max_connections_per_address")
        } else {
            None
        };
        if let Some(why) = why {
            open.refused += 1;
            let due = open.logged.is_none_or(|t| t.elapsed() >= LOG_EVERY);
            if due {
                tracing::warn!(
                    peer = %ip,
                    refused = open.refused,
                    open = open.total,
                    "LDAP connections refused: {why} reached (counted, logged at most once a \
                     minute)"
                );
                open.refused = 0;
                open.logged = Some(Instant::now());
            }
            return Err(why);
        }
        open.total += 1;
        *open.by_address.entry(ip).or_default() += 1;
        Ok(Admitted {
            gate: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().total
    }
}

/// Raises the soft limit of open files to the hard limit (as systemd's `LimitNOFILE` or the
/// shell's `ulimit -Hn` allows) and gives the limit in force.
pub(crate) fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open files limit");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_overall_and_per_address_and_given_back() {
        let gate = Arc::new(Gate::new(3, 2, None));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = gate.admit(a).unwrap();
        let a2 = gate.admit(a).unwrap();
        assert_eq!(
            gate.admit(a).err(),
            Some("ldap_max_connections_per_address")
        );
        let b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).err(), Some("ldap_max_connections"));
        drop(a1);
        assert_eq!(gate.open(), 2);
        let b2 = gate.admit(b).unwrap();
        drop((a2, b1, b2));
        assert_eq!(gate.open(), 0);
        assert!(gate.lock().by_address.is_empty());
    }

    #[test]
    fn the_cap_fits_the_open_files_limit() {
        assert_eq!(Gate::new(1024, 8, Some(1024)).max, 384);
        assert_eq!(Gate::new(1024, 8, Some(65_536)).max, 1024);
        assert_eq!(Gate::new(1024, 8, Some(10)).max, 1);
    }
}

//! Configuration: raw layers (file, environment, flags) merged into one validated `Config`.
//!
//! Precedence, lowest first: built-in defaults, the TOML file, `SCIMD_*` environment variables,
//! command-line flags. Every layer is a `RawConfig` whose fields are all optional; `validate`
//! turns the merged layers into a `Config` or a list of every problem found.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Declares every configuration key once: its raw type in a layer (what a file, a variable or
/// a flag gives), its validated type in `Config`, its default as an operator would write it,
/// how it is checked, and how `check-config` shows it. From this one table come the layer
/// type `RawConfig` (serde, unknown keys refused), `KEYS`, setting a key from text, merging
/// layers, validation reporting every problem at once, `Config` and its redacted output.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $key:ident: $raw:ty => $ty:ty = $default:expr, check $check:path, show $show:path;
    )*) => {
        /// One layer of configuration as written by the operator; `None` means "not set here".
        #[derive(Debug, Default, Clone, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct RawConfig {
            $(pub(crate) $key: Option<$raw>,)*
        }

        /// Every key, in the order `config.example.toml` documents them.
        #[cfg(test)]
        pub(crate) const KEYS: &[&str] = &[$(stringify!($key)),*];

        /// The validated configuration every part of the server reads.
        #[derive(Debug, Clone)]
        pub(crate) struct Config {
            $($(#[doc = $doc])* pub(crate) $key: $ty,)*
        }

        impl RawConfig {
            /// The built-in defaults, written the way an operator would write them.
            pub(crate) fn defaults() -> RawConfig {
                RawConfig {
                    $($key: $default,)*
                }
            }

            /// Sets one key from its text form (environment variables and flags arrive as
            /// text).
            pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
                match key {
                    $(stringify!($key) => self.$key = Some(FromText::from_text(key, value)?),)*
                    _ => return Err(format!("unknown setting {key:?}")),
                }
                Ok(())
            }

            /// `other` wins wherever it sets a value.
            pub(crate) fn overlay(self, other: RawConfig) -> RawConfig {
                RawConfig {
                    $($key: other.$key.or(self.$key),)*
                }
            }

            /// Checks every key (falling back to its default) and reports all problems at
            /// once.
            fn check_each(&self, problems: &mut Vec<String>) -> Option<Config> {
                let d = RawConfig::defaults();
                $(
                    let $key = $check(self.$key.as_ref().or(d.$key.as_ref()))
                        .map_err(|e| problems.push(format!("{}: {e}", stringify!($key))))
                        .ok();
                )*
                Some(Config {
                    $($key: $key?,)*
                })
            }
        }

        impl Config {
            /// The effective configuration as TOML, with anything secret replaced by `***`.
            pub(crate) fn to_redacted_toml(&self) -> String {
                let mut out = String::new();
                $(out.push_str(&format!("{} = {}\n", stringify!($key), $show(&self.$key)));)*
                out
            }
        }
    };
}

settings! {
    listen: String => SocketAddr = Some("127.0.0.1:8080".into()),
        check socket_address, show shown_text;
    database: String => PathBuf = Some("scimd.db".into()), check file_path, show shown_path;
    /// Scheme, host and optional path prefix, without a trailing slash.
    public_url: String => Option<String> = None, check public_url, show shown_url;
    log_level: String => String = Some("info".into()), check log_level, show shown_text;
    log_format: String => LogFormat = Some("text".into()), check log_format, show shown_format;
    cleanup_interval: String => Duration = Some("1h".into()),
        check positive_duration, show shown_duration;
    token_retention: String => Duration = Some("30d".into()), check duration, show shown_duration;
    token_expiry_warning: String => Duration = Some("14d".into()),
        check duration, show shown_duration;
    token_max_lifetime: String => Duration = Some("730d".into()),
        check positive_duration, show shown_duration;
    max_body_size: String => usize = Some("1MiB".into()), check body_size, show shown_size;
    /// How long a request body may take to arrive once the request's head has.
    body_timeout: String => Duration = Some("30s".into()),
        check positive_duration, show shown_duration;
    /// Reverse proxies whose `X-Forwarded-For` names the client (addresses or networks).
    trusted_proxies: String => Vec<ipnet::IpNet> = Some(String::new()),
        check networks, show shown_networks;
    /// How long activity records are kept (a change's record that is also a change feed's event
    /// stays until `feed_retention` is over).
    activity_retention: String => Duration = Some("30d".into()),
        check duration, show shown_duration;
    /// Most activity records kept per identity provider (the oldest go first).
    activity_max_records: u32 => u32 = Some(1_000_000), check at_least_one, show shown_number;
    /// How long the audit log (what admins did) is kept.
    audit_retention: String => Duration = Some("365d".into()),
        check duration, show shown_duration;
    /// How long the change feed's events are kept (delivered or not).
    feed_retention: String => Duration = Some("7d".into()),
        check duration, show shown_duration;
    /// How long a change feed's receiver may fail in a row before the feed is marked failing
    /// (in the activity log, the console and `scimd_feed_failing`); it keeps trying.
    feed_failing_after: String => Duration = Some("15m".into()),
        check duration, show shown_duration;
    /// Whether change feeds may post to plain `http://` receivers that are not on loopback
    /// (inside a trusted network); HTTPS is always allowed.
    feed_allow_http: String => bool = Some("off".into()), check on_off, show shown_on_off;
    /// How often refused authentications and request counts are written to the activity log.
    activity_interval: String => Duration = Some("60s".into()),
        check positive_duration, show shown_duration;
    /// Address of the admin listener (the admin console and `/metrics`); empty disables it.
    /// Never the SCIM port.
    admin_listen: String => Option<SocketAddr> = Some("127.0.0.1:8081".into()),
        check optional_socket_address, show shown_optional_address;
    /// The console's external URL, where browsers reach it (sign-in with an identity provider
    /// redirects back to `<console_url>/oidc/callback`); empty means `http(s)://` followed by
    /// `admin_listen`.
    console_url: String => Option<String> = Some(String::new()), check external_url, show shown_url;
    /// How long an admin console session lasts without a request.
    admin_session_idle: String => Duration = Some("30m".into()),
        check positive_duration, show shown_duration;
    /// How long an admin console session lasts at most after logging in, however busy.
    admin_session_lifetime: String => Duration = Some("12h".into()),
        check positive_duration, show shown_duration;
    /// Address of the read-only LDAP directory; empty (the default) turns it off.
    ldap_listen: String => Option<SocketAddr> = Some(String::new()),
        check optional_socket_address, show shown_optional_address;
    /// Address of the LDAP directory over TLS from the first byte (LDAPS, with `tls_cert` and
    /// `tls_key`); empty (the default) turns it off.
    ldaps_listen: String => Option<SocketAddr> = Some(String::new()),
        check optional_socket_address, show shown_optional_address;
    /// Whether LDAP simple binds may send passwords unencrypted from the loopback interface.
    ldap_plaintext_loopback: String => bool = Some("off".into()), check on_off, show shown_on_off;
    /// Most LDAP connections open at once; more are closed as they arrive.
    ldap_max_connections: u32 => u32 = Some(1024), check at_least_one, show shown_number;
    /// Most LDAP connections open at once from one client address.
    ldap_max_connections_per_address: u32 => u32 = Some(128),
        check at_least_one, show shown_number;
    /// Largest LDAP request a connection may send before it has bound.
    ldap_max_request_anonymous: String => usize = Some("64KiB".into()),
        check body_size, show shown_size;
    /// Largest LDAP request a bound connection may send.
    ldap_max_request: String => usize = Some("1MiB".into()), check body_size, show shown_size;
    /// How long a request that has begun to arrive may take to arrive whole.
    ldap_request_timeout: String => Duration = Some("10s".into()),
        check positive_duration, show shown_duration;
    /// How long an LDAP connection may stay without a request before it is closed.
    ldap_idle_timeout: String => Duration = Some("10m".into()),
        check positive_duration, show shown_duration;
    /// Most terms (comparisons, presence tests, substring parts) one LDAP search filter may have.
    ldap_max_filter_terms: u32 => u32 = Some(1000), check at_least_one, show shown_number;
    /// How deeply AND, OR and NOT may nest in one LDAP search filter.
    ldap_max_filter_depth: u32 => u32 = Some(32), check at_least_one, show shown_number;
    /// PEM certificate chain (leaf first) for native TLS; with `tls_key`, scimd speaks HTTPS.
    tls_cert: String => Option<PathBuf> = Some(String::new()), check optional_path, show shown_optional_path;
    /// PEM private key of `tls_cert`.
    tls_key: String => Option<PathBuf> = Some(String::new()), check optional_path, show shown_optional_path;
    /// How long a client may read nothing of a response before its connection is closed.
    send_timeout: String => Duration = Some("60s".into()),
        check positive_duration, show shown_duration;
    shutdown_timeout: String => Duration = Some("30s".into()), check duration, show shown_duration;
    busy_timeout: String => Duration = Some("5s".into()), check duration, show shown_duration;
    pool_size: u32 => u32 = Some(default_pool_size()), check at_least_one, show shown_number;
    /// Most resources one list or search response carries (`filter.maxResults`).
    max_page_size: u32 => u32 = Some(1000), check at_least_one, show shown_number;
    /// Most operations one PATCH request may carry.
    max_patch_operations: u32 => u32 = Some(1000), check at_least_one, show shown_number;
}

/// Environment variables with the `SCIMD_` prefix that are not configuration keys.
/// (`SCIMD_TEST_FAULTS` enables the fault injection of debug builds, see `http::faults`.)
const ENV_NOT_KEYS: &[&str] = &["SCIMD_CONFIG", "SCIMD_TEST_FAULTS"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// A raw value from its text form.
trait FromText: Sized {
    fn from_text(key: &str, text: &str) -> Result<Self, String>;
}

impl FromText for String {
    fn from_text(_: &str, text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }
}

impl FromText for u32 {
    fn from_text(key: &str, text: &str) -> Result<u32, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("{key} must be a whole number, got {text:?}"))
    }
}

fn given<T>(v: Option<&T>) -> Result<&T, String> {
    v.ok_or_else(|| "missing".to_string())
}

fn socket_address(v: Option<&String>) -> Result<SocketAddr, String> {
    let s = given(v)?;
    s.parse().map_err(|_| {
        format!("{s:?} is not an IP address and port such as 127.0.0.1:8080 or [::]:8080")
    })
}

fn file_path(v: Option<&String>) -> Result<PathBuf, String> {
    let s = given(v)?;
    if s.trim().is_empty() {
        return Err("must name a file".into());
    }
    Ok(PathBuf::from(s))
}

fn public_url(v: Option<&String>) -> Result<Option<String>, String> {
    match v.map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(u) => check_public_url(u).map(Some),
    }
}

impl Config {
    /// The console's external URL: `console_url`, else `http(s)://` and `admin_listen`.
    pub(crate) fn console_url(&self) -> String {
        if let Some(u) = &self.console_url {
            return u.clone();
        }
        let scheme = match self.tls_cert.is_some() && self.tls_key.is_some() {
            true => "https",
            false => "http",
        };
        match self.admin_listen {
            Some(a) => format!("{scheme}://{a}"),
            None => format!("{scheme}://127.0.0.1:8081"),
        }
    }
}

/// `public_url`'s rules, for another external URL (`console_url`).
fn external_url(v: Option<&String>) -> Result<Option<String>, String> {
    public_url(v)
}

fn log_level(v: Option<&String>) -> Result<String, String> {
    let s = given(v)?;
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map_err(|e| format!("{s:?} is not a valid level or filter: {e}"))?;
    Ok(s.clone())
}

fn log_format(v: Option<&String>) -> Result<LogFormat, String> {
    match given(v)?.as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?} must be \"text\" or \"json\"")),
    }
}

fn duration(v: Option<&String>) -> Result<Duration, String> {
    parse_duration(given(v)?)
}

fn positive_duration(v: Option<&String>) -> Result<Duration, String> {
    match duration(v)? {
        d if d.is_zero() => Err("must be longer than zero".into()),
        d => Ok(d),
    }
}

fn body_size(v: Option<&String>) -> Result<usize, String> {
    match parse_size(given(v)?)? {
        0 => Err("must be larger than zero".into()),
        n => Ok(n),
    }
}

/// A comma-separated list of IP addresses and networks (`10.0.0.5, 192.168.0.0/16, ::1`).
pub(crate) fn networks(v: Option<&String>) -> Result<Vec<ipnet::IpNet>, String> {
    given(v)?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{s:?} is not an IP address or a network such as 10.0.0.0/8"))
        })
        .collect()
}

fn shown_networks(v: &[ipnet::IpNet]) -> String {
    let list: Vec<String> = v.iter().map(|n| n.to_string()).collect();
    quoted(&list.join(", "))
}

fn optional_socket_address(v: Option<&String>) -> Result<Option<SocketAddr>, String> {
    match v.map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            format!("{s:?} is not an IP address and port such as 127.0.0.1:8081 (empty: off)")
        }),
    }
}

fn on_off(v: Option<&String>) -> Result<bool, String> {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("off" | "false" | "no") => Ok(false),
        Some("on" | "true" | "yes") => Ok(true),
        Some(other) => Err(format!("{other:?} is neither on nor off")),
    }
}

fn shown_on_off(b: &bool) -> String {
    quoted(if *b { "on" } else { "off" })
}

fn shown_optional_address(a: &Option<SocketAddr>) -> String {
    quoted(&a.map(|a| a.to_string()).unwrap_or_default())
}

fn optional_path(v: Option<&String>) -> Result<Option<PathBuf>, String> {
    match v.map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(p) => Ok(Some(PathBuf::from(p))),
    }
}

fn shown_optional_path(p: &Option<PathBuf>) -> String {
    quoted(
        &p.as_deref()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default(),
    )
}

fn at_least_one(v: Option<&u32>) -> Result<u32, String> {
    match *given(v)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn shown_text(v: &impl std::fmt::Display) -> String {
    quoted(&v.to_string())
}

fn shown_path(p: &Path) -> String {
    quoted(&p.to_string_lossy())
}

fn shown_url(u: &Option<String>) -> String {
    quoted(&u.as_deref().map(redact_userinfo).unwrap_or_default())
}

fn shown_format(f: &LogFormat) -> String {
    quoted(match f {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    })
}

fn shown_duration(d: &Duration) -> String {
    quoted(&format_duration(*d))
}

fn shown_size(n: &usize) -> String {
    quoted(&format_size(*n))
}

fn shown_number(n: &u32) -> String {
    n.to_string()
}

impl RawConfig {
    pub(crate) fn from_toml(text: &str) -> Result<RawConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    pub(crate) fn from_file(path: &Path) -> Result<RawConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        RawConfig::from_toml(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    /// Reads `SCIMD_<KEY>` variables. An unknown `SCIMD_` variable is an error that names it,
    /// so a typo never silently falls back to a default.
    pub(crate) fn from_env<I>(vars: I) -> Result<RawConfig, Vec<String>>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut raw = RawConfig::default();
        let mut problems = Vec::new();
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("SCIMD_") else {
                continue;
            };
            if ENV_NOT_KEYS.contains(&name.as_str()) {
                continue;
            }
            let key = key.to_ascii_lowercase();
            if let Err(e) = raw.set(&key, &value) {
                problems.push(format!("environment variable {name}: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(raw)
        } else {
            Err(problems)
        }
    }

    /// Checks every key and reports all problems at once.
    pub(crate) fn validate(&self) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        match self.check_each(&mut problems) {
            Some(config) if problems.is_empty() => {
                if config.tls_cert.is_some() != config.tls_key.is_some() {
                    return Err(vec![
                        "tls_cert and tls_key: give both (a certificate chain and its key) or \
                         neither"
                            .into(),
                    ]);
                }
                if config.ldaps_listen.is_some() && config.tls_cert.is_none() {
                    return Err(vec![
                        "ldaps_listen: LDAPS needs tls_cert and tls_key (the same certificate \
                         as HTTPS)"
                            .into(),
                    ]);
                }
                Ok(config)
            }
            _ => Err(problems),
        }
    }
}

fn check_public_url(u: &str) -> Result<String, String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{u:?} must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{u:?} has no host"));
    }
    if u.contains('?') || u.contains('#') {
        return Err(format!("{u:?} must not contain a query or fragment"));
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// Twice the CPUs the process may use (one reader thread per connection). Reads are CPU work
/// once the database is in the page cache: more threads than that only take turns on the same
/// cores, and each turn costs throughput and tail latency (measured on 2 CPUs: 4 reading
/// threads served 13-32 % more point reads than 20). A database larger than memory waits on
/// the disk instead; raise it then.
pub(crate) fn default_pool_size() -> u32 {
    std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).min(64) as u32)
}

/// `https://user:secret@host/x` -> `https://***@host/x`.
fn redact_userinfo(u: &str) -> String {
    let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => u.to_string(),
    }
}

const UNITS: &[(&str, u64)] = &[
    ("w", 7 * 86_400),
    ("d", 86_400),
    ("h", 3_600),
    ("m", 60),
    ("s", 1),
];

/// Parses durations such as `90d`, `24h`, `1h30m`, `45s`, `2w`. A bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let bad = || format!("{text:?} is not a duration such as 30s, 15m, 24h, 90d or 2w");
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let (_, secs) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?;
        total = n
            .checked_mul(*secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// The shortest exact form, e.g. 86400s -> `1d`, 5400s -> `1h30m`.
pub(crate) fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in UNITS.iter().skip(1) {
        if secs >= *size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

const SIZE_UNITS: &[(&str, usize)] = &[
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

/// Parses sizes such as `1MiB`, `512KiB`, `2MB` or a plain number of bytes.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let s = text.trim();
    let bad = || format!("{text:?} is not a size such as 1048576, 512KiB or 1MiB");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if split == 0 {
        return Err(bad());
    }
    let n: usize = s[..split].parse().map_err(|_| bad())?;
    let unit = s[split..].trim();
    if unit.is_empty() {
        return Ok(n);
    }
    let (_, mult) = SIZE_UNITS
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(unit))
        .ok_or_else(bad)?;
    n.checked_mul(*mult).ok_or_else(bad)
}

fn format_size(n: usize) -> String {
    for (unit, size) in SIZE_UNITS.iter().take(3) {
        if n >= *size && n.is_multiple_of(*size) {
            return format!("{}{unit}", n / size);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_round_trip() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration(" 45 "), Ok(Duration::from_secs(45)));
        for bad in ["", "d", "10x", "1.5h", "-3d", "h1"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        for s in ["1d", "1h30m", "45s", "2d3h4m5s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512kib"), Ok(512 << 10));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1 parsec").is_err());
        assert_eq!(format_size(1 << 20), "1MiB");
    }

    #[test]
    fn later_layers_win() {
        let file =
            RawConfig::from_toml("listen = \"127.0.0.1:1000\"\nlog_level = \"debug\"\n").unwrap();
        let env = RawConfig::from_env(vec![
            ("SCIMD_LISTEN".to_string(), "127.0.0.1:2000".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ])
        .unwrap();
        let mut flags = RawConfig::default();
        flags.set("database", "/tmp/x.db").unwrap();
        let cfg = RawConfig::defaults()
            .overlay(file)
            .overlay(env)
            .overlay(flags)
            .validate()
            .unwrap();
        assert_eq!(cfg.listen.port(), 2000, "env beats file");
        assert_eq!(cfg.log_level, "debug", "file beats default");
        assert_eq!(cfg.database, PathBuf::from("/tmp/x.db"));
        assert_eq!(cfg.token_max_lifetime, Duration::from_secs(730 * 86_400));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = RawConfig::from_toml("listn = \"x\"\n").unwrap_err();
        assert!(e.contains("listn"), "{e}");
        let e =
            RawConfig::from_env(vec![("SCIMD_LISTN".to_string(), "x".to_string())]).unwrap_err();
        assert!(e[0].contains("SCIMD_LISTN"), "{e:?}");
    }

    #[test]
    fn every_problem_is_reported() {
        let mut raw = RawConfig::defaults();
        raw.set("listen", "nowhere").unwrap();
        raw.set("cleanup_interval", "soon").unwrap();
        raw.set("log_format", "xml").unwrap();
        raw.set("public_url", "ftp://x").unwrap();
        let problems = raw.validate().unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn public_url_is_normalised_and_redacted() {
        let mut raw = RawConfig::defaults();
        raw.set("public_url", "https://u:pw@scim.example.com/base/")
            .unwrap();
        let cfg = raw.validate().unwrap();
        assert_eq!(
            cfg.public_url.as_deref(),
            Some("https://u:pw@scim.example.com/base")
        );
        let shown = cfg.to_redacted_toml();
        assert!(
            shown.contains("https://***@scim.example.com/base"),
            "{shown}"
        );
        assert!(!shown.contains("pw"), "{shown}");
    }

    #[test]
    fn example_file_lists_every_key_with_its_default() {
        let example = include_str!("../config.example.toml");
        let uncommented: String = example
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| KEYS.iter().any(|k| l.starts_with(&format!("{k} ="))))
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = RawConfig::from_toml(&uncommented).unwrap();
        let mut defaults = RawConfig::defaults();
        defaults.public_url = Some(String::new());
        assert_eq!(parsed, defaults);
        for key in KEYS {
            let env = format!("SCIMD_{}", key.to_ascii_uppercase());
            assert!(
                example.contains(&env),
                "config.example.toml does not mention {env}"
            );
        }
    }
}

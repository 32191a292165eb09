//! Configuration: raw layers (file, environment, flags) merged into one validated `Config`.
//!
//! Precedence, lowest first: built-in defaults, the TOML file, `SCIMD_*` environment variables,
//! command-line flags. Every layer is a `RawConfig` whose fields are all optional; `validate`
//! turns the merged layers into a `Config` or a list of every problem found.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// One layer of configuration as written by the operator; `None` means "not set here".
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub public_url: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub cleanup_interval: Option<String>,
    pub token_retention: Option<String>,
    pub token_expiry_warning: Option<String>,
    pub token_max_lifetime: Option<String>,
    pub max_body_size: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub busy_timeout: Option<String>,
    pub pool_size: Option<u32>,
    pub max_page_size: Option<u32>,
}

/// Every key, in the order `config.example.toml` documents them.
pub const KEYS: &[&str] = &[
    "listen",
    "database",
    "public_url",
    "log_level",
    "log_format",
    "cleanup_interval",
    "token_retention",
    "token_expiry_warning",
    "token_max_lifetime",
    "max_body_size",
    "shutdown_timeout",
    "busy_timeout",
    "pool_size",
    "max_page_size",
];

/// Environment variables with the `SCIMD_` prefix that are not configuration keys.
/// (`SCIMD_TEST_FAULTS` enables the fault injection of debug builds, see `http::faults`.)
const ENV_NOT_KEYS: &[&str] = &["SCIMD_CONFIG", "SCIMD_TEST_FAULTS"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration every part of the server reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: PathBuf,
    /// Scheme, host and optional path prefix, without a trailing slash.
    pub public_url: Option<String>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub cleanup_interval: Duration,
    pub token_retention: Duration,
    pub token_expiry_warning: Duration,
    pub token_max_lifetime: Duration,
    pub max_body_size: usize,
    pub shutdown_timeout: Duration,
    pub busy_timeout: Duration,
    pub pool_size: u32,
    /// Most resources one list or search response carries (`filter.maxResults`).
    pub max_page_size: u32,
}

impl RawConfig {
    /// The built-in defaults, written the way an operator would write them.
    pub fn defaults() -> RawConfig {
        RawConfig {
            listen: Some("127.0.0.1:8080".into()),
            database: Some("scimd.db".into()),
            public_url: None,
            log_level: Some("info".into()),
            log_format: Some("text".into()),
            cleanup_interval: Some("1h".into()),
            token_retention: Some("30d".into()),
            token_expiry_warning: Some("14d".into()),
            token_max_lifetime: Some("730d".into()),
            max_body_size: Some("1MiB".into()),
            shutdown_timeout: Some("30s".into()),
            busy_timeout: Some("5s".into()),
            pool_size: Some(default_pool_size()),
            max_page_size: Some(1000),
        }
    }

    pub fn from_toml(text: &str) -> Result<RawConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    pub fn from_file(path: &Path) -> Result<RawConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        RawConfig::from_toml(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    /// Reads `SCIMD_<KEY>` variables. An unknown `SCIMD_` variable is an error that names it,
    /// so a typo never silently falls back to a default.
    pub fn from_env<I>(vars: I) -> Result<RawConfig, Vec<String>>
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

    /// Sets one key from its text form (environment variables and flags arrive as text).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = Some(value.to_string());
        match key {
            "listen" => self.listen = v,
            "database" => self.database = v,
            "public_url" => self.public_url = v,
            "log_level" => self.log_level = v,
            "log_format" => self.log_format = v,
            "cleanup_interval" => self.cleanup_interval = v,
            "token_retention" => self.token_retention = v,
            "token_expiry_warning" => self.token_expiry_warning = v,
            "token_max_lifetime" => self.token_max_lifetime = v,
            "max_body_size" => self.max_body_size = v,
            "shutdown_timeout" => self.shutdown_timeout = v,
            "busy_timeout" => self.busy_timeout = v,
            "pool_size" | "max_page_size" => {
                let n = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("{key} must be a whole number, got {value:?}"))?;
                if key == "pool_size" {
                    self.pool_size = Some(n);
                } else {
                    self.max_page_size = Some(n);
                }
            }
            _ => return Err(format!("unknown setting {key:?}")),
        }
        Ok(())
    }

    /// `other` wins wherever it sets a value.
    pub fn overlay(self, other: RawConfig) -> RawConfig {
        RawConfig {
            listen: other.listen.or(self.listen),
            database: other.database.or(self.database),
            public_url: other.public_url.or(self.public_url),
            log_level: other.log_level.or(self.log_level),
            log_format: other.log_format.or(self.log_format),
            cleanup_interval: other.cleanup_interval.or(self.cleanup_interval),
            token_retention: other.token_retention.or(self.token_retention),
            token_expiry_warning: other.token_expiry_warning.or(self.token_expiry_warning),
            token_max_lifetime: other.token_max_lifetime.or(self.token_max_lifetime),
            max_body_size: other.max_body_size.or(self.max_body_size),
            shutdown_timeout: other.shutdown_timeout.or(self.shutdown_timeout),
            busy_timeout: other.busy_timeout.or(self.busy_timeout),
            pool_size: other.pool_size.or(self.pool_size),
            max_page_size: other.max_page_size.or(self.max_page_size),
        }
    }

    /// Checks every key and reports all problems at once.
    pub fn validate(&self) -> Result<Config, Vec<String>> {
        let d = RawConfig::defaults();
        let mut problems = Vec::new();
        let mut text = |key: &str, own: &Option<String>, def: &Option<String>| -> String {
            match own.as_ref().or(def.as_ref()) {
                Some(v) => v.clone(),
                None => {
                    problems.push(format!("{key}: missing"));
                    String::new()
                }
            }
        };
        let listen_s = text("listen", &self.listen, &d.listen);
        let database_s = text("database", &self.database, &d.database);
        let log_level = text("log_level", &self.log_level, &d.log_level);
        let log_format_s = text("log_format", &self.log_format, &d.log_format);
        let durations = [
            (
                "cleanup_interval",
                &self.cleanup_interval,
                &d.cleanup_interval,
            ),
            ("token_retention", &self.token_retention, &d.token_retention),
            (
                "token_expiry_warning",
                &self.token_expiry_warning,
                &d.token_expiry_warning,
            ),
            (
                "token_max_lifetime",
                &self.token_max_lifetime,
                &d.token_max_lifetime,
            ),
            (
                "shutdown_timeout",
                &self.shutdown_timeout,
                &d.shutdown_timeout,
            ),
            ("busy_timeout", &self.busy_timeout, &d.busy_timeout),
        ]
        .map(|(key, own, def)| (key, text(key, own, def)));
        let body_s = text("max_body_size", &self.max_body_size, &d.max_body_size);

        let listen = listen_s.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "listen: {listen_s:?} is not an IP address and port such as 127.0.0.1:8080 or [::]:8080"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        if database_s.trim().is_empty() {
            problems.push("database: must name a file".into());
        }
        let public_url = match self.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => match check_public_url(u) {
                Ok(u) => Some(u),
                Err(e) => {
                    problems.push(format!("public_url: {e}"));
                    None
                }
            },
        };
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_level) {
            problems.push(format!(
                "log_level: {log_level:?} is not a valid level or filter: {e}"
            ));
        }
        let log_format = match log_format_s.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                problems.push(format!(
                    "log_format: {other:?} must be \"text\" or \"json\""
                ));
                LogFormat::Text
            }
        };
        let [cleanup, retention, warning, max_lifetime, shutdown, busy] =
            durations.map(|(key, v)| match parse_duration(&v) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(format!("{key}: {e}"));
                    Duration::ZERO
                }
            });
        if cleanup.is_zero() && !problems.iter().any(|p| p.starts_with("cleanup_interval")) {
            problems.push("cleanup_interval: must be longer than zero".into());
        }
        if max_lifetime.is_zero() && !problems.iter().any(|p| p.starts_with("token_max_lifetime")) {
            problems.push("token_max_lifetime: must be longer than zero".into());
        }
        let max_body_size = match parse_size(&body_s) {
            Ok(0) => {
                problems.push("max_body_size: must be larger than zero".into());
                0
            }
            Ok(n) => n,
            Err(e) => {
                problems.push(format!("max_body_size: {e}"));
                0
            }
        };
        let pool_size = self
            .pool_size
            .or(d.pool_size)
            .unwrap_or_else(default_pool_size);
        if pool_size == 0 {
            problems.push("pool_size: must be at least 1".into());
        }
        let max_page_size = self.max_page_size.or(d.max_page_size).unwrap_or(1000);
        if max_page_size == 0 {
            problems.push("max_page_size: must be at least 1".into());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            listen,
            database: PathBuf::from(database_s),
            public_url,
            log_level,
            log_format,
            cleanup_interval: cleanup,
            token_retention: retention,
            token_expiry_warning: warning,
            token_max_lifetime: max_lifetime,
            max_body_size,
            shutdown_timeout: shutdown,
            busy_timeout: busy,
            pool_size,
            max_page_size,
        })
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

impl Config {
    /// The validated defaults, as used when nothing else is configured.
    pub fn default_config() -> Config {
        match RawConfig::defaults().validate() {
            Ok(c) => c,
            Err(problems) => unreachable!("built-in defaults are invalid: {problems:?}"),
        }
    }

    /// The effective configuration as TOML, with anything secret replaced by `***`.
    pub fn to_redacted_toml(&self) -> String {
        let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k} = {v}\n"));
        line("listen", q(&self.listen.to_string()));
        line("database", q(&self.database.to_string_lossy()));
        match &self.public_url {
            Some(u) => line("public_url", q(&redact_userinfo(u))),
            None => line("public_url", q("")),
        }
        line("log_level", q(&self.log_level));
        let fmt = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        line("log_format", q(fmt));
        line(
            "cleanup_interval",
            q(&format_duration(self.cleanup_interval)),
        );
        line("token_retention", q(&format_duration(self.token_retention)));
        line(
            "token_expiry_warning",
            q(&format_duration(self.token_expiry_warning)),
        );
        line(
            "token_max_lifetime",
            q(&format_duration(self.token_max_lifetime)),
        );
        line("max_body_size", q(&format_size(self.max_body_size)));
        line(
            "shutdown_timeout",
            q(&format_duration(self.shutdown_timeout)),
        );
        line("busy_timeout", q(&format_duration(self.busy_timeout)));
        line("pool_size", self.pool_size.to_string());
        line("max_page_size", self.max_page_size.to_string());
        out
    }
}

/// Twice the CPUs the process may use (one reader thread per connection). Reads are CPU work
/// once the database is in the page cache: more threads than that only take turns on the same
/// cores, and each turn costs throughput and tail latency (measured on 2 CPUs: 4 reading
/// threads served 13-32 % more point reads than 20). A database larger than memory waits on
/// the disk instead; raise it then.
pub fn default_pool_size() -> u32 {
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
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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
pub fn format_duration(d: Duration) -> String {
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
pub fn parse_size(text: &str) -> Result<usize, String> {
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

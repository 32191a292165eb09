//! What each subcommand does: configuration loading, logging set-up and the admin commands.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

use crate::app::admin::Actor;
use crate::app::credentials::{self, Issue, Minted, Validity};
use crate::auth::{Secret, TokenState, token};
use crate::cli::{
    ActivityArgs, AdminCommand, AuditArgs, Cli, Command, DbCommand, LdapAccountCommand,
    LdapCommand, OnOff, ProviderCommand, QuickstartArgs, SchemaCommand, ServeArgs, TokenCommand,
};
use crate::config::{self, Config, LogFormat, RawConfig};
use crate::scim::ProviderKind;
use crate::store::activity;
use crate::store::admins;
use crate::store::credentials::CredentialKind;
use crate::store::providers::{self, Provider};
use crate::store::schemas;
use crate::store::tokens::{self, TokenInfo};
use crate::store::{self, OpenMode, Store};
use crate::{app, server};

mod feed;
mod sign_in;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::CheckConfig = cli.command {
        return Ok(check_config(&cli));
    }
    let serve_args = match &cli.command {
        Command::Serve(a) => Some(&a.serve),
        Command::Quickstart(a) => Some(&a.serve),
        _ => None,
    };
    let config = load_config(&cli, serve_args)
        .map_err(|problems| anyhow!("invalid configuration:\n  {}", problems.join("\n  ")))?;
    match cli.command {
        Command::Serve(a) => serve(config, a.create)?,
        Command::Quickstart(args) => quickstart(config, &args)?,
        Command::Provider(cmd) => provider(&config, cmd)?,
        Command::Token(cmd) => token_command(&config, cmd)?,
        Command::AppPassword(cmd) => sign_in::app_password_command(&config, cmd)?,
        Command::Schema(cmd) => schema_command(&config, cmd)?,
        Command::Activity(args) => activity_command(&config, args)?,
        Command::Audit(args) => audit_command(&config, &args)?,
        Command::Backup { path, vacuum } => {
            let r = store::maintenance::backup(&config.database, &path, vacuum)?;
            println!(
                "backed up {} to {} ({} bytes, schema {})",
                config.database.display(),
                path.display(),
                r.bytes,
                r.schema_version
            );
        }
        Command::Restore { path } => {
            let now = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            let aside = store::maintenance::restore(&config.database, &path, &now)?;
            println!(
                "restored {} from {}",
                config.database.display(),
                path.display()
            );
            if let Some(a) = aside {
                println!("the replaced database is kept as {}", a.display());
            }
        }
        Command::Db(DbCommand::Check) => return db_check(&config),
        Command::Admin(cmd) => admin_command(&config, cmd)?,
        Command::Ldap(LdapCommand::Account(cmd)) => ldap_account_command(&config, cmd)?,
        Command::Ldap(cmd) => ldap_mapping_command(&config, cmd)?,
        Command::Export {
            provider,
            resource_type,
            format,
        } => {
            let store = open(&config, OpenMode::MustExist)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let format = match format {
                crate::cli::ExportFormat::Jsonl => crate::export::Format::Jsonl,
                crate::cli::ExportFormat::Csv => crate::export::Format::Csv,
            };
            let n = crate::export::export(
                &store,
                &provider,
                resource_type.into(),
                format,
                &cli_base(&config),
                &mut out,
            )?;
            drop(out);
            eprintln!("exported {n} resources");
        }
        Command::Feed(cmd) => feed::feed_command(&config, cmd)?,
        Command::CheckConfig => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Merges defaults, the config file, `SCIMD_*` variables and flags, in that order.
pub(crate) fn load_config(cli: &Cli, serve: Option<&ServeArgs>) -> Result<Config, Vec<String>> {
    let mut raw = RawConfig::defaults();
    let file = cli
        .config
        .clone()
        .or_else(|| std::env::var_os("SCIMD_CONFIG").map(Into::into));
    let mut problems = Vec::new();
    if let Some(path) = file {
        match RawConfig::from_file(&path) {
            Ok(f) => raw = raw.overlay(f),
            Err(e) => problems.push(e),
        }
    }
    match RawConfig::from_env(std::env::vars()) {
        Ok(env) => raw = raw.overlay(env),
        Err(e) => problems.extend(e),
    }
    let mut flags = RawConfig::default();
    if let Some(db) = &cli.database {
        flags.database = Some(db.to_string_lossy().into_owned());
    }
    if let Some(s) = serve {
        flags.listen.clone_from(&s.listen);
        flags.public_url.clone_from(&s.public_url);
        flags.admin_listen.clone_from(&s.admin_listen);
    }
    raw = raw.overlay(flags);
    match raw.validate() {
        Ok(c) if problems.is_empty() => Ok(c),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

fn check_config(cli: &Cli) -> ExitCode {
    match load_config(cli, None) {
        Ok(c) => {
            if let (Some(cert), Some(key)) = (&c.tls_cert, &c.tls_key) {
                match crate::tls::load(cert, key) {
                    Err(e) => {
                        eprintln!("configuration has 1 problem(s):");
                        eprintln!("  - {e}");
                        return ExitCode::FAILURE;
                    }
                    Ok(loaded) if let Err(e) = loaded.check_validity(Utc::now()) => {
                        eprintln!("configuration has 1 problem(s):");
                        eprintln!("  - tls_cert {}: {e}", cert.display());
                        return ExitCode::FAILURE;
                    }
                    Ok(loaded) => match loaded.not_after {
                        Some(at) if at - Utc::now() < chrono::Duration::days(14) => eprintln!(
                            "warning: the TLS certificate expires {} ({} days): renew it",
                            at.to_rfc3339(),
                            (at - Utc::now()).num_days()
                        ),
                        Some(at) => {
                            println!(
                                "# TLS certificate and key go together; expires {}",
                                at.to_rfc3339()
                            )
                        }
                        None => println!("# TLS certificate and key go together"),
                    },
                }
            }
            if let Some(a) = c.admin_listen
                && !a.ip().is_loopback()
            {
                eprintln!(
                    "warning: admin_listen {a} is reachable from other hosts: the console's login \
                     page and /metrics (which needs no login) are open to them; keep it on an \
                     internal or loopback address"
                );
            }
            println!("# configuration is valid; effective settings:");
            print!("{}", c.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("configuration has {} problem(s):", problems.len());
            for p in problems {
                eprintln!("  - {p}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Log lines are formatted on the thread that logs and written to stderr by a thread of their
/// own (tracing-appender), in batches, so a request never waits on the write to the terminal or
/// the journal: one write per request cost about a tenth of the point-read throughput. Nothing
/// is dropped: when the writer falls behind, the logging threads wait. The queue holds 8,192
/// lines (about 2 MB; tracing-appender's default of 128,000 preallocated 4 MB and let a lagging
/// writer hold tens of MB of lines). Keep the returned guard alive while serving; dropping it
/// writes out what is still queued.
fn init_logging(config: &Config) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(8192)
        .thread_name("scimd-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("warning: logging already initialised: {e}");
    }
    guard
}

fn open(config: &Config, mode: OpenMode) -> anyhow::Result<Store> {
    Store::open(
        &config.database,
        mode,
        config.busy_timeout,
        config.pool_size,
    )
}

/// `open` for `serve` and `quickstart` (see `Store::open_to_serve`).
fn open_to_serve(config: &Config, mode: OpenMode) -> anyhow::Result<Store> {
    Store::open_to_serve(
        &config.database,
        mode,
        config.busy_timeout,
        config.pool_size,
    )
}

/// `scimd db check`: prints what it found; exit code 0 when all is well.
fn db_check(config: &Config) -> anyhow::Result<ExitCode> {
    let r = store::maintenance::check(&config.database)?;
    println!("database:        {}", config.database.display());
    println!(
        "schema version:  {} (this binary: {})",
        r.schema_version, r.latest_version
    );
    match r.integrity.is_empty() {
        true => println!("integrity:       ok"),
        false => println!("integrity:       {}", r.integrity.join("; ")),
    }
    match r.foreign_keys.is_empty() {
        true => println!("foreign keys:    ok"),
        false => println!("foreign keys:    {}", r.foreign_keys.join("; ")),
    }
    match &r.wal {
        None => println!("write-ahead log: ok"),
        Some(why) => println!("write-ahead log: {why}"),
    }
    if r.schema_version < r.latest_version {
        println!("(the next `scimd serve` upgrades the schema)");
    }
    Ok(match r.is_ok() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

fn serve(config: Config, create: bool) -> anyhow::Result<()> {
    let _log = init_logging(&config);
    let mode = match create {
        true => OpenMode::CreateIfMissing,
        false => OpenMode::MustExistToServe,
    };
    let store = open_to_serve(&config, mode)?;
    // One server per database: a second one on it is refused.
    let _serving = store::maintenance::claim_for_serving(&config.database)?;
    // Held while serving, so `scimd restore` can tell the database is in use.
    let _in_use = store::maintenance::hold(&config.database)?;
    let (listener, base) = server::bind(&config)?;
    let admin = server::bind_admin(&config)?;
    tracing::info!(database = %config.database.display(), schema = store::schema_version(), "database ready");
    server::serve(config, store, listener, admin, base)
}

fn quickstart(config: Config, args: &QuickstartArgs) -> anyhow::Result<()> {
    let _log = init_logging(&config);
    let store = open_to_serve(&config, OpenMode::CreateIfMissing)?;
    let _serving = store::maintenance::claim_for_serving(&config.database)?;
    let _in_use = store::maintenance::hold(&config.database)?;
    // The ports first: a start that cannot bind them fails before it makes a token it would
    // never show.
    let (listener, base) = server::bind(&config)?;
    let admin = server::bind_admin(&config)?;
    let now = Utc::now();
    let name = args.provider.clone();
    let provider = store.write_blocking(move |c| {
        app::admin::ensure_provider(
            c,
            &Actor::command_line(),
            &name,
            "created by scimd quickstart",
            ProviderKind::Generic,
            now.timestamp(),
        )
    })?;
    let expires = now.timestamp() + 24 * 3600;
    let (info, secret) = create_token(
        &store,
        &provider,
        expires,
        store::credentials::TRIAL_TOKEN,
        false,
        now,
    )?;
    let scim = app::scim_base(&base, &provider.name);
    let database = std::fs::canonicalize(&config.database).unwrap_or(config.database.clone());
    let console = match &admin {
        None => "off (admin_listen is empty)".to_string(),
        Some(listener) => {
            let url = server::admin_url(&config, listener);
            // The first admin account, with a password shown now and never again; later runs
            // leave existing accounts alone.
            let password = crate::auth::token::random_hex(32)[..24].to_string();
            let hash = token::hash_str(&password).map_err(|e| anyhow!(e))?;
            let created = now.timestamp();
            let made = store.write_blocking(move |c| {
                app::admin::add_first_admin(c, &Actor::command_line(), "admin", &hash, created)
            })?;
            match made {
                true => format!(
                    "{url}\n  console login: admin / {password} (shown only now; change it with \
                     `scimd admin passwd admin`)"
                ),
                false => format!("{url} (log in with your admin account)"),
            }
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nscimd is ready for a trial.\n\n  \
         database:   {}\n  \
         provider:   {} ({})\n  \
         SCIM URL:   {scim}\n  \
         token:      {}\n  \
         expires:    {} (token id {}; shown only now)\n  \
         console:    {console}\n\n\
         Try it:\n\n  \
         curl -H 'Authorization: Bearer {}' {scim}/ServiceProviderConfig\n\n\
         For Microsoft Entra ID, use the SCIM URL as Tenant URL and the token as Secret Token \
         (Entra needs an https URL that it can reach; see docs/identity-providers.md).\n\
         Press Ctrl-C to stop.\n",
        database.display(),
        provider.name,
        provider.kind,
        secret.expose(),
        fmt_time(info.expires),
        info.id,
        secret.expose(),
    )?;
    out.flush()?;
    drop(out);
    server::serve(config, store, listener, admin, base)
}

/// The base URL commands print: `public_url` when configured, else the one the last server
/// on this database served under, else the configured listen address.
fn cli_base(config: &Config) -> String {
    match &config.public_url {
        Some(u) => u.clone(),
        None => store::served_url(&config.database)
            .unwrap_or_else(|| server::public_base(config, config.listen)),
    }
}

fn provider(config: &Config, cmd: ProviderCommand) -> anyhow::Result<()> {
    let base = cli_base(config);
    match cmd {
        ProviderCommand::Add {
            name,
            description,
            kind,
        } => {
            let store = open(config, OpenMode::CreateIfMissing)?;
            let now = Utc::now().timestamp();
            let kind = kind.into();
            let p = store.write_blocking(move |c| {
                app::admin::add_provider(c, &Actor::command_line(), &name, &description, kind, now)
            })?;
            println!("created identity provider {} ({})", p.name, p.kind);
            println!("SCIM base URL: {}", app::scim_base(&base, &p.name));
            println!(
                "next: scimd token create --provider {} --valid-for 365d",
                p.name
            );
        }
        ProviderCommand::List => {
            let store = open(config, OpenMode::MustExist)?;
            let now_ms = Utc::now().timestamp_millis();
            let rows: Vec<Vec<String>> = store
                .call(move |c| app::providers::summaries(c, now_ms, None))?
                .into_iter()
                .map(
                    |app::providers::Summary {
                         provider: p,
                         usage,
                         status: st,
                     }| {
                        vec![
                            p.name.clone(),
                            p.kind.to_string(),
                            usage.users.to_string(),
                            usage.groups.to_string(),
                            ago(st.last_request, now_ms),
                            ago(st.last_write, now_ms),
                            st.errors_24h.to_string(),
                            app::scim_base(&base, &p.name),
                            p.description,
                        ]
                    },
                )
                .collect();
            if rows.is_empty() {
                println!("no identity providers yet: scimd provider add NAME");
            } else {
                print_table(
                    &[
                        "NAME",
                        "TYPE",
                        "USERS",
                        "GROUPS",
                        "LAST REQUEST",
                        "LAST WRITE",
                        "ERRORS 24H",
                        "SCIM URL",
                        "DESCRIPTION",
                    ],
                    &rows,
                );
            }
        }
        ProviderCommand::Show { name } => {
            let store = open(config, OpenMode::MustExist)?;
            let now = Utc::now().timestamp();
            let now_ms = Utc::now().timestamp_millis();
            let o = store.call(move |c| app::providers::overview(c, &name, now_ms, None))?;
            let toks: Vec<TokenInfo> = o.of_kind(CredentialKind::Token).cloned().collect();
            let accounts: Vec<_> = o.of_kind(CredentialKind::LdapAccount).collect();
            let (p, usage, st) = (&o.summary.provider, o.summary.usage, &o.summary.status);
            let (extensions, ldap) = (&o.extensions, &o.ldap_traffic);
            let active = toks
                .iter()
                .filter(|t| t.state(now) == TokenState::Active)
                .count();
            println!("name:          {}", p.name);
            println!("type:          {}", p.kind);
            println!("description:   {}", p.description);
            println!("created:       {}", fmt_time(p.created));
            println!("SCIM base URL: {}", app::scim_base(&base, &p.name));
            println!("users:         {}", usage.users);
            println!("groups:        {}", usage.groups);
            println!(
                "unknown attributes: {} (attributes of schemas not registered)",
                p.unknown_attributes.as_str()
            );
            for e in extensions {
                println!("extension:     {} ({})", e.urn, e.kind.name());
            }
            println!(
                "activity values: {} (new attribute values in activity records)",
                if p.activity_values { "on" } else { "off" }
            );
            println!(
                "SCIM passwords: {} (ignore, updates: kept from PUT and PATCH only, or all)",
                p.scim_passwords.as_str()
            );
            println!("last request:  {}", when(st.last_request, now_ms));
            println!("last write:    {}", when(st.last_write, now_ms));
            match &st.last_error {
                Some((at, what)) => println!("last error:    {}: {what}", when(Some(*at), now_ms)),
                None => println!("last error:    none"),
            }
            println!(
                "last 24 hours: {} requests, {} writes, {} errors",
                st.requests_24h, st.writes_24h, st.errors_24h
            );
            println!("tokens:        {active} active, {} in total", toks.len());
            let live = accounts
                .iter()
                .filter(|a| a.state(now) == TokenState::Active)
                .count();
            println!(
                "LDAP accounts: {live} active, {} in total (scimd ldap account list)",
                accounts.len()
            );
            if !toks.is_empty() {
                println!();
                print_tokens(&toks, now);
            }
            if !ldap.is_empty() {
                println!();
                println!("LDAP, last 24 hours:");
                let rows: Vec<Vec<String>> = ldap
                    .iter()
                    .map(|t| {
                        vec![
                            t.account.clone(),
                            t.binds.to_string(),
                            t.failed_binds.to_string(),
                            t.searches.to_string(),
                            ago(Some(t.last), now_ms),
                        ]
                    })
                    .collect();
                print_table(
                    &["ACCOUNT", "BINDS", "FAILED BINDS", "SEARCHES", "LAST"],
                    &rows,
                );
            }
        }
        ProviderCommand::Set {
            name,
            description,
            kind,
            unknown_attributes,
            activity_values,
            scim_passwords,
        } => {
            if description.is_none()
                && kind.is_none()
                && unknown_attributes.is_none()
                && activity_values.is_none()
                && scim_passwords.is_none()
            {
                bail!(
                    "nothing to change: give --type, --description, --unknown-attributes, \
                     --activity-values and/or --scim-passwords"
                );
            }
            let store = open(config, OpenMode::MustExist)?;
            let changes = app::admin::ProviderChanges {
                description,
                kind: kind.map(Into::into),
                unknown_attributes: unknown_attributes.map(Into::into),
                activity_values: activity_values.map(|v| matches!(v, OnOff::On)),
                scim_passwords: scim_passwords.map(crate::scim::ScimPasswords::from),
            };
            let (p, removed) = store.write_blocking(move |c| {
                app::admin::set_provider(c, &Actor::command_line(), &name, &changes)
            })?;
            println!(
                "updated identity provider {}: type {}, unknown attributes {}, activity values \
                 {}, SCIM passwords {}, description {:?}",
                p.name,
                p.kind,
                p.unknown_attributes.as_str(),
                if p.activity_values { "on" } else { "off" },
                p.scim_passwords.as_str(),
                p.description
            );
            if removed > 0 {
                println!(
                    "removed the {removed} stored passwords: those users no longer bind to LDAP \
                     with them"
                );
            }
        }
        ProviderCommand::Oidc(cmd) => sign_in::oidc_command(config, cmd)?,
        ProviderCommand::Remove { name, yes } => {
            let store = open(config, OpenMode::MustExist)?;
            let removing = name.clone();
            let usage = store.write_blocking(move |c| {
                app::admin::remove_provider(c, &Actor::command_line(), &removing, yes)
            })?;
            println!(
                "removed identity provider {name} with its tokens, {} users and {} groups",
                usage.users, usage.groups
            );
        }
    }
    Ok(())
}

fn schema_command(config: &Config, cmd: SchemaCommand) -> anyhow::Result<()> {
    match cmd {
        SchemaCommand::Add {
            provider,
            resource_type,
            index,
            file,
        } => {
            let definition = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| anyhow!("reading {}: {e}", file.display()))?
            };
            let store = open(config, OpenMode::MustExist)?;
            let now = Utc::now().timestamp();
            let kind = resource_type.into();
            let name = match file.as_os_str() == "-" {
                true => "standard input".to_string(),
                false => file.display().to_string(),
            };
            let s = store
                .write_blocking(move |c| {
                    let by = Actor::command_line();
                    app::admin::add_schema(c, &by, &provider, kind, &definition, &index, now)
                })
                .map_err(|e| match e {
                    store::Error::Invalid(why) => anyhow!("{name}: {why}"),
                    other => other.into(),
                })?;
            println!(
                "registered {} for {} of identity provider {}",
                s.urn,
                s.kind.endpoint(),
                s.provider
            );
            if !s.indexed.is_empty() {
                println!("indexed: {}", s.indexed.join(", "));
            }
        }
        SchemaCommand::List { provider } => {
            let store = open(config, OpenMode::MustExist)?;
            let rows = store.call(move |c| schemas::list(c, provider.as_deref()))?;
            if rows.is_empty() {
                println!(
                    "no extension schemas registered: scimd schema add --provider NAME FILE.json"
                );
            } else {
                let rows: Vec<Vec<String>> = rows
                    .into_iter()
                    .map(|s| {
                        vec![
                            s.provider,
                            s.kind.name().to_string(),
                            s.urn,
                            s.indexed.join(","),
                            fmt_time(s.created),
                        ]
                    })
                    .collect();
                print_table(&["PROVIDER", "TYPE", "URN", "INDEXED", "REGISTERED"], &rows);
            }
        }
        SchemaCommand::Show { provider, urn } => {
            let store = open(config, OpenMode::MustExist)?;
            let (s, used) = store.call(move |c| {
                let s = schemas::require(c, &provider, &urn)?;
                let used = schemas::usage(c, &provider, &s.urn)?;
                Ok((s, used))
            })?;
            println!("# {} for {} of {}", s.urn, s.kind.endpoint(), s.provider);
            println!(
                "# registered {}; values in {used} resources",
                fmt_time(s.created)
            );
            if !s.indexed.is_empty() {
                println!("# indexed: {}", s.indexed.join(", "));
            }
            println!("{}", s.definition.trim_end());
        }
        SchemaCommand::Remove { provider, urn, yes } => {
            let store = open(config, OpenMode::MustExist)?;
            let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let (p, u) = (provider.clone(), urn.clone());
            let (urn, changed) = store.write_blocking(move |c| {
                app::admin::remove_schema(c, &Actor::command_line(), &p, &u, yes, &now)
            })?;
            println!(
                "removed {urn} from identity provider {provider}; values deleted from {changed} resources"
            );
        }
    }
    Ok(())
}

/// "3 min ago", for a table.
fn ago(at_ms: Option<i64>, now_ms: i64) -> String {
    let Some(at) = at_ms else {
        return "never".into();
    };
    let secs = (now_ms - at).max(0) / 1000;
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// A time with how long ago it was.
fn when(at_ms: Option<i64>, now_ms: i64) -> String {
    match at_ms {
        None => "never".into(),
        Some(at) => format!("{} ({})", fmt_ms(at), ago(Some(at), now_ms)),
    }
}

fn fmt_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
    )
}

/// `--since 1h` (that long ago) or a date or time.
fn since_arg(text: &str, flag: &str, now: DateTime<Utc>) -> anyhow::Result<i64> {
    if let Ok(d) = config::parse_duration(text) {
        let d = chrono::Duration::from_std(d).map_err(|e| anyhow!("{flag}: {e}"))?;
        return Ok((now - d).timestamp_millis());
    }
    credentials::parse_date(text)
        .map(|d| d.timestamp_millis())
        .map_err(|_| {
            anyhow!(
                "{flag}: {text:?} is neither an age such as 1h or 7d nor a date such as \
             2026-11-30 or 2026-11-30T08:00:00Z"
            )
        })
}

fn activity_command(config: &Config, args: ActivityArgs) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut q = activity::Query {
        provider: args.provider.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| since_arg(s, "--since", now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| since_arg(s, "--until", now))
            .transpose()?,
        failed: args.failed,
        resource_id: args.resource.clone(),
        name: match (&args.user, &args.group) {
            (Some(u), _) => Some((crate::scim::ResourceKind::User, u.clone())),
            (_, Some(g)) => Some((crate::scim::ResourceKind::Group, g.clone())),
            _ => None,
        },
        window: None,
        before_seq: None,
        after_seq: None,
        seq: None,
        action: None,
        status: None,
        limit: args.limit,
    };
    let store = open(config, OpenMode::MustExist)?;
    if let Some(p) = &args.provider {
        let p = p.clone();
        store.call(move |c| providers::require(c, &p).map(|_| ()))?;
    }
    let query = q.clone();
    let records = store.call(move |c| activity::query(c, &query))?;
    if records.is_empty() && !args.follow && !args.json {
        println!("no activity recorded that matches");
    }
    print_records(&records, args.json, true);
    if !args.follow {
        return Ok(());
    }
    // Onwards from the newest record there is now, matching or not.
    let mut last: i64 = store.call(|c| {
        Ok(
            c.query_row("SELECT coalesce(max(seq), 0) FROM activity", [], |r| {
                r.get(0)
            })?,
        )
    })?;
    q.limit = 1000;
    loop {
        std::io::stdout().flush()?;
        std::thread::sleep(Duration::from_millis(500));
        q.after_seq = Some(last);
        let query = q.clone();
        let records = store.call(move |c| activity::query(c, &query))?;
        if let Some(r) = records.last() {
            last = r.seq;
        }
        print_records(&records, args.json, false);
    }
}

fn audit_command(config: &Config, args: &AuditArgs) -> anyhow::Result<()> {
    let store = open(config, OpenMode::MustExist)?;
    let (provider, limit) = (args.provider.clone(), args.limit);
    let mut records = store.call(move |c| app::admin::log(c, provider.as_deref(), None, limit))?;
    records.reverse();
    if args.json {
        for r in &records {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    if records.is_empty() {
        println!("no admin actions recorded that match");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                fmt_ms(r.at),
                r.actor.clone(),
                r.client.clone().unwrap_or_default(),
                r.action.clone(),
                r.provider.clone().unwrap_or_default(),
                r.target.clone(),
                r.detail.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "TIME", "WHO", "FROM", "ACTION", "PROVIDER", "TARGET", "DETAIL",
        ],
        &rows,
    );
    Ok(())
}

fn print_records(records: &[activity::Record], json: bool, header: bool) {
    if json {
        for r in records {
            if let Ok(line) = serde_json::to_string(r) {
                println!("{line}");
            }
        }
        return;
    }
    if records.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let what = match (&r.resource_type, &r.name, &r.resource_id) {
                (Some(t), Some(n), _) if !n.is_empty() => format!("{t} {n}"),
                (Some(t), _, Some(id)) => format!("{t} {id}"),
                _ => r.path.clone().unwrap_or_else(|| "-".into()),
            };
            let mut detail = Vec::new();
            if !r.changed.is_empty() {
                detail.push(r.changed.join(","));
            }
            if let Some(v) = r.version {
                detail.push(format!("v{v}"));
            }
            if let Some(t) = &r.scim_type {
                detail.push(t.clone());
            }
            if let Some(d) = &r.detail {
                detail.push(d.clone());
            }
            if r.count > 1 {
                detail.push(format!("x{}", r.count));
            }
            vec![
                fmt_ms(r.at),
                r.provider.clone(),
                r.token_id.clone().unwrap_or_else(|| "-".into()),
                r.action.clone(),
                r.status.to_string(),
                what,
                detail.join("; "),
            ]
        })
        .collect();
    if header {
        print_table(
            &[
                "TIME", "PROVIDER", "TOKEN", "ACTION", "STATUS", "RESOURCE", "DETAIL",
            ],
            &rows,
        );
    } else {
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
            println!("{}", cells.join("  "));
        }
    }
}

fn token_command(config: &Config, cmd: TokenCommand) -> anyhow::Result<()> {
    let now = Utc::now();
    match cmd {
        TokenCommand::Create {
            provider,
            valid_for,
            expires,
            description,
            read_only,
        } => {
            let expires = expiry(
                valid_for.as_deref(),
                expires.as_deref(),
                now,
                config.token_max_lifetime,
            )
            .map_err(|e| anyhow!(e))?;
            let store = open(config, OpenMode::CreateIfMissing)?;
            let p = store.call(|c| providers::require(c, &provider))?;
            let (info, secret) = create_token(&store, &p, expires, &description, read_only, now)?;
            print_new_token(config, &p.name, &info, &secret);
        }
        TokenCommand::List { provider } => {
            let store = open(config, OpenMode::MustExist)?;
            let toks = store.call(|c| {
                let id = match &provider {
                    Some(name) => Some(providers::require(c, name)?.id),
                    None => None,
                };
                tokens::list(c, id)
            })?;
            if toks.is_empty() {
                println!("no tokens: scimd token create --provider NAME --valid-for 90d");
            } else {
                print_tokens(&toks, now.timestamp());
            }
        }
        TokenCommand::Revoke { id } => {
            let store = open(config, OpenMode::MustExist)?;
            let at = now.timestamp();
            let t = store.write_blocking(move |c| {
                app::admin::revoke(c, &Actor::command_line(), CredentialKind::Token, &id, at)
            })?;
            println!(
                "revoked token {} of identity provider {}; it stops working on its next request",
                t.id, t.provider
            );
        }
        TokenCommand::Rotate {
            id,
            overlap,
            valid_for,
        } => {
            let overlap =
                config::parse_duration(&overlap).map_err(|e| anyhow!("--overlap: {e}"))?;
            let store = open(config, OpenMode::MustExist)?;
            let (old, p) = store.call(|c| {
                let old = tokens::require(c, &id)?;
                let p = providers::require(c, &old.provider)?;
                Ok((old, p))
            })?;
            let valid_for = valid_for
                .map(|v| config::parse_duration(&v).map_err(|e| anyhow!("--valid-for: {e}")))
                .transpose()?;
            let plan = credentials::plan_rotation(
                old.clone(),
                valid_for,
                overlap,
                now,
                config.token_max_lifetime,
            )
            .map_err(|e| anyhow!("{e} (scimd token create)"))?;
            let (minted, secret) = Minted::here().map_err(|e| anyhow!(e))?;
            let rotating = p.clone();
            let (info, old_now) = store.write_blocking(move |c| {
                app::admin::rotate_token(c, &Actor::command_line(), &minted, &rotating, &plan)
            })?;
            print_new_token(config, &p.name, &info, &secret);
            println!(
                "The old token {} keeps working until {}: put the new one into the identity \
                 provider before then.",
                old.id,
                fmt_time(old_now.expires)
            );
        }
    }
    Ok(())
}

/// A new password: the first line of standard input, or typed twice on the terminal.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("New password: ").map_err(|e| {
            anyhow!("reading the password from the terminal: {e} (or use --password-stdin)")
        })?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    };
    admins::check_password(&password).map_err(|e| anyhow!(e))?;
    Ok(password)
}

fn admin_command(config: &Config, cmd: AdminCommand) -> anyhow::Result<()> {
    let now = Utc::now().timestamp();
    match cmd {
        AdminCommand::Add {
            name,
            password_stdin,
        } => {
            admins::check_name(&name).map_err(|e| anyhow!(e))?;
            let password = read_password(password_stdin)?;
            let hash = token::hash_str(&password).map_err(|e| anyhow!(e))?;
            let store = open(config, OpenMode::CreateIfMissing)?;
            let a = store.write_blocking(move |c| {
                app::admin::add_admin(c, &Actor::command_line(), &name, &hash, now)
            })?;
            println!("added admin {}; log in at {}", a.name, console_url(config));
        }
        AdminCommand::Passwd {
            name,
            password_stdin,
        } => {
            let store = open(config, OpenMode::MustExist)?;
            let checked = name.clone();
            store.call(move |c| admins::require(c, &checked))?;
            let password = read_password(password_stdin)?;
            let hash = token::hash_str(&password).map_err(|e| anyhow!(e))?;
            let a = store.write_blocking(move |c| {
                app::admin::set_admin_password(c, &Actor::command_line(), &name, &hash, now)
            })?;
            println!(
                "changed the password of {}; its console sessions have ended",
                a.name
            );
        }
        AdminCommand::List => {
            let store = open(config, OpenMode::MustExist)?;
            let list = store.call(|c| admins::list(c))?;
            if list.is_empty() {
                println!("no admin accounts: scimd admin add NAME");
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|a| {
                        vec![
                            a.name.clone(),
                            fmt_time(a.created),
                            a.last_login.map_or("never".into(), fmt_time),
                            a.sessions.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "CREATED", "LAST LOGIN", "SESSIONS"], &rows);
            }
        }
        AdminCommand::Remove { name } => {
            let store = open(config, OpenMode::MustExist)?;
            let a = store.write_blocking(move |c| {
                app::admin::remove_admin(c, &Actor::command_line(), &name, false)
            })?;
            println!("removed admin {} and ended its sessions", a.name);
        }
    }
    Ok(())
}

fn ldap_mapping_command(config: &Config, cmd: LdapCommand) -> anyhow::Result<()> {
    use crate::scim::directory;
    let store = open(config, OpenMode::MustExist)?;
    match cmd {
        LdapCommand::Map {
            provider,
            groups,
            attribute,
            path,
        } => {
            use crate::scim::ResourceKind;
            directory::check_mapped_name(&attribute).map_err(|e| anyhow!(e))?;
            let parsed = directory::parse_path(&path).map_err(|e| anyhow!(e))?;
            let kind = if groups {
                ResourceKind::Group
            } else {
                ResourceKind::User
            };
            // The path must name an attribute of the provider's users (or groups) as its model
            // has them; one of the other type's says which flag is missing.
            let (checked, shown) = (provider.clone(), path.clone());
            store.call(move |c| {
                let p = providers::require(c, &checked)?;
                let model = schemas::model(c, p.id)?;
                let resolve = |k| crate::scim::filter::resolve(model.get(k), &parsed, None);
                resolve(kind).map(|_| ()).map_err(|e| {
                    let other = match kind {
                        ResourceKind::User => ResourceKind::Group,
                        ResourceKind::Group => ResourceKind::User,
                    };
                    let hint = match (resolve(other).is_ok(), other) {
                        (true, ResourceKind::Group) => " (an attribute of Groups: add --groups)",
                        (true, ResourceKind::User) => {
                            " (an attribute of Users: leave out --groups)"
                        }
                        (false, _) => "",
                    };
                    store::Error::Invalid(format!("{shown}: {e}{hint}"))
                })
            })?;
            let (p, a, s) = (provider.clone(), attribute.clone(), path.clone());
            store.write_blocking(move |c| {
                app::admin::set_mapping(c, &Actor::command_line(), &p, (kind, &a), &s)
            })?;
            let whose = kind.endpoint().to_lowercase();
            println!("{whose} of {provider} now have {attribute} from {path}");
        }
        LdapCommand::Unmap {
            provider,
            groups,
            attribute,
        } => {
            let kind = match groups {
                true => crate::scim::ResourceKind::Group,
                false => crate::scim::ResourceKind::User,
            };
            let (p, a) = (provider.clone(), attribute.clone());
            store.write_blocking(move |c| {
                app::admin::remove_mapping(c, &Actor::command_line(), &p, (kind, &a))
            })?;
            let whose = kind.endpoint().to_lowercase();
            println!("{attribute} of {provider}'s {whose} is the built-in one again (if any)");
        }
        LdapCommand::Base {
            provider,
            dn,
            default: _,
        } => {
            if let Some(dn) = &dn {
                directory::parse_dn(dn)
                    .filter(|r| {
                        !r.is_empty() && r.iter().all(|(a, v)| !a.is_empty() && !v.is_empty())
                    })
                    .ok_or_else(|| {
                        anyhow!("{dn:?} is not a DN such as ou=entra,dc=example,dc=com")
                    })?;
            }
            let (p, d) = (provider.clone(), dn.clone());
            store.write_blocking(move |c| {
                app::admin::set_base(c, &Actor::command_line(), &p, d.as_deref())
            })?;
            match dn {
                Some(dn) => println!("the LDAP tree of {provider} is now {dn}"),
                None => println!(
                    "the LDAP tree of {provider} is {} again",
                    directory::base_dn(&provider)
                ),
            }
        }
        LdapCommand::Posix {
            provider,
            on,
            off,
            first_id,
            last_id,
            home,
            shell,
            primary_group,
        } => {
            let current = {
                let p = provider.clone();
                store.call(move |c| {
                    let pid = providers::require(c, &p)?.id;
                    store::ldap_accounts::posix(c, pid)
                })?
            };
            let changing = on
                || first_id.is_some()
                || last_id.is_some()
                || home.is_some()
                || shell.is_some()
                || primary_group.is_some();
            let wanted = if off {
                None
            } else if changing {
                let mut x = current.clone().unwrap_or_default();
                x.first_id = first_id.unwrap_or(x.first_id);
                x.last_id = last_id.unwrap_or(x.last_id);
                x.home = home.unwrap_or(x.home);
                x.shell = shell.unwrap_or(x.shell);
                if let Some(g) = primary_group {
                    x.primary_gid = match g.as_str() {
                        "private" => None,
                        n => Some(n.parse().map_err(|_| {
                            anyhow!("--primary-group: {n:?} is neither `private` nor a number")
                        })?),
                    };
                }
                Some(x)
            } else {
                print_posix(&provider, current.as_ref());
                return Ok(());
            };
            let (p, w) = (provider.clone(), wanted.clone());
            store.write_blocking(move |c| {
                app::admin::set_posix(c, &Actor::command_line(), &p, w.as_ref())
            })?;
            print_posix(&provider, wanted.as_ref());
        }
        LdapCommand::Mappings { provider } => {
            let rows = store.call(move |c| {
                let p = providers::require(c, &provider)?;
                store::ldap_accounts::mappings(c, p.id)
            })?;
            if rows.is_empty() {
                println!("only the built-in mapping (docs/ldap/README.md: the tree)");
            } else {
                let rows: Vec<Vec<String>> = (rows.into_iter())
                    .map(|(k, a, p)| vec![k.endpoint().to_string(), a, p])
                    .collect();
                print_table(&["OF", "LDAP ATTRIBUTE", "SCIM PATH"], &rows);
            }
        }
        LdapCommand::Account(_) => {}
    }
    Ok(())
}

fn ldap_account_command(config: &Config, cmd: LdapAccountCommand) -> anyhow::Result<()> {
    let now = Utc::now();
    match cmd {
        LdapAccountCommand::Add {
            name,
            provider,
            valid_for,
            expires,
        } => {
            store::ldap_accounts::check_name(&name).map_err(|e| anyhow!(e))?;
            let valid_for = match (&valid_for, &expires) {
                (None, None) => Some("365d".to_string()),
                _ => valid_for,
            };
            let expires = expiry(
                valid_for.as_deref(),
                expires.as_deref(),
                now,
                config.token_max_lifetime,
            )
            .map_err(|e| anyhow!(e))?;
            let (minted, new) = Minted::bare_here().map_err(|e| anyhow!(e))?;
            let store = open(config, OpenMode::MustExist)?;
            let created = now.timestamp();
            let a = store.write_blocking(move |c| {
                app::admin::add_ldap_account(
                    c,
                    &Actor::command_line(),
                    &store::ldap_accounts::NewAccount {
                        id: &minted.id,
                        provider: &provider,
                        name: &name,
                        secret_hash: &minted.hash,
                        fingerprint: Some(&minted.fingerprint),
                        created,
                        expires,
                    },
                )
            })?;
            println!(
                "created LDAP account {} ({}) for identity provider {}, valid until {}",
                a.name,
                a.id,
                a.provider,
                fmt_time(a.expires)
            );
            let pid = a.provider_id;
            let base = store
                .call(move |c| store::ldap_accounts::base_of(c, pid))?
                .unwrap_or_else(|| crate::scim::directory::base_dn(&a.provider));
            println!(
                "bind DN:  cn={},ou=services,{base}",
                crate::scim::directory::escape(&a.name)
            );
            println!("base DN:  {base}");
            println!("password (shown only this once; only a hash is stored):");
            println!();
            println!("{}", new.secret.expose());
            println!();
            if config.ldap_listen.is_none() {
                println!("The LDAP directory is off: set ldap_listen (e.g. \"127.0.0.1:3389\").");
            }
        }
        LdapAccountCommand::List { provider } => {
            let store = open(config, OpenMode::MustExist)?;
            let list = store.call(|c| {
                let pid = match &provider {
                    Some(p) => Some(providers::require(c, p)?.id),
                    None => None,
                };
                store::ldap_accounts::list(c, pid)
            })?;
            if list.is_empty() {
                println!("no LDAP accounts: scimd ldap account add NAME --provider PROVIDER");
            } else {
                let now = now.timestamp();
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|a| {
                        vec![
                            a.id.clone(),
                            a.provider.clone(),
                            a.name.clone(),
                            fmt_time(a.created),
                            fmt_time(a.expires),
                            a.last_used.map_or("never".into(), fmt_time),
                            a.state(now).as_str().to_string(),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "ID",
                        "PROVIDER",
                        "NAME",
                        "CREATED",
                        "EXPIRES",
                        "LAST USED",
                        "STATE",
                    ],
                    &rows,
                );
            }
        }
        LdapAccountCommand::Revoke { id } => {
            let store = open(config, OpenMode::MustExist)?;
            let at = now.timestamp();
            let a = store.write_blocking(move |c| {
                let by = Actor::command_line();
                app::admin::revoke(c, &by, CredentialKind::LdapAccount, &id, at)
            })?;
            println!(
                "revoked LDAP account {} ({}) of identity provider {}: its open connections read nothing more and its next bind fails",
                a.name, a.id, a.provider
            );
        }
    }
    Ok(())
}

fn print_posix(provider: &str, posix: Option<&crate::scim::posix::Posix>) {
    let Some(x) = posix else {
        println!(
            "POSIX identities of {provider}: off (scimd ldap posix --provider {provider} --on)"
        );
        return;
    };
    println!("POSIX identities of {provider}: on");
    println!(
        "  numbers:        {} + the resource's key, at most {}",
        x.first_id, x.last_id
    );
    println!("  home directory: {}", x.home);
    println!("  login shell:    {}", x.shell);
    match x.primary_gid {
        None => println!("  primary group:  each user's own (gidNumber = uidNumber)"),
        Some(g) => println!("  primary group:  {g}"),
    }
}

/// Where the admin console is served, as the command line tells people.
fn console_url(config: &Config) -> String {
    let scheme = if config.tls_cert.is_some() && config.tls_key.is_some() {
        "https"
    } else {
        "http"
    };
    match config.admin_listen {
        Some(a) if a.port() == 0 => {
            "the admin console (admin_listen has port 0: the server logs its address)".into()
        }
        Some(a) => format!("{scheme}://{a}/"),
        None => "the admin console once admin_listen is set".into(),
    }
}

/// Hashes a new secret (outside any transaction: argon2 is slow) and stores the token.
fn create_token(
    store: &Store,
    provider: &Provider,
    expires: i64,
    description: &str,
    read_only: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<(TokenInfo, Secret)> {
    let (minted, secret) = Minted::here().map_err(|e| anyhow!(e))?;
    let issue = Issue {
        description: description.to_string(),
        read_only,
        created: now.timestamp(),
        expires,
    };
    let p = provider.clone();
    let info = store.write_blocking(move |c| {
        app::admin::create_token(c, &Actor::command_line(), &minted, &p, &issue)
    })?;
    Ok((info, secret))
}

fn print_new_token(config: &Config, provider: &str, info: &TokenInfo, secret: &Secret) {
    let base = cli_base(config);
    println!(
        "created {} token {} for identity provider {provider}, valid until {}",
        info.scope(),
        info.id,
        fmt_time(info.expires)
    );
    println!("SCIM base URL: {}", app::scim_base(&base, provider));
    println!("token (shown only this once; only a hash is stored):");
    println!();
    println!("{}", secret.expose());
    println!();
}

/// The expiry (unix seconds) of a token created at `now`, from `--valid-for` or `--expires`
/// (the rules are the core's, `credentials::expiry`; the flag is named here).
fn expiry(
    valid_for: Option<&str>,
    expires: Option<&str>,
    now: DateTime<Utc>,
    max_lifetime: Duration,
) -> Result<i64, String> {
    let (validity, flag) = match (valid_for, expires) {
        (Some(v), None) => (Validity::For(v), "--valid-for"),
        (None, Some(e)) => (Validity::Until(e), "--expires"),
        _ => return Err("give exactly one of --valid-for and --expires".into()),
    };
    credentials::expiry(validity, now, max_lifetime).map_err(|e| {
        // "not in the future" and the limit are about the token, not the flag.
        if e.starts_with("the token") || e.starts_with("tokens") {
            e
        } else {
            format!("{flag}: {e}")
        }
    })
}

fn fmt_time(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn print_tokens(toks: &[TokenInfo], now: i64) {
    let rows: Vec<Vec<String>> = toks
        .iter()
        .map(|t| {
            let mut state = t.state(now).as_str().to_string();
            if let Some(r) = &t.replaced_by {
                state.push_str(&format!(" (replaced by {r})"));
            }
            vec![
                t.id.clone(),
                t.provider.clone(),
                t.description.clone(),
                t.scope().to_string(),
                fmt_time(t.created),
                fmt_time(t.expires),
                t.last_used.map_or_else(|| "never".to_string(), fmt_time),
                state,
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "PROVIDER",
            "DESCRIPTION",
            "SCOPE",
            "CREATED",
            "EXPIRES",
            "LAST USED",
            "STATE",
        ],
        &rows,
    );
}

/// Characters of one table cell; a longer value is cut, ending in `…` (`activity --json`
/// gives records whole).
const CELL: usize = 200;

/// A cell's text: at most `CELL` characters, without line breaks or other control characters.
fn cell(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(CELL)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if value.chars().nth(CELL).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn expiry_from_duration_or_date() {
        let now = at("2026-11-29T10:00:00Z");
        let max = Duration::from_secs(730 * 86_400);
        assert_eq!(
            expiry(Some("90d"), None, now, max),
            Ok(at("2027-02-27T10:00:00Z").timestamp())
        );
        assert_eq!(
            expiry(None, Some("2027-03-01"), now, max),
            Ok(at("2027-03-01T00:00:00Z").timestamp())
        );
        assert_eq!(
            expiry(None, Some("2027-03-01T12:30:00+01:00"), now, max),
            Ok(at("2027-03-01T11:30:00Z").timestamp())
        );
    }

    #[test]
    fn expiry_refuses_the_past_the_limit_and_nonsense() {
        let now = at("2026-11-29T10:00:00Z");
        let max = Duration::from_secs(365 * 86_400);
        assert!(
            expiry(None, Some("2026-11-01"), now, max)
                .unwrap_err()
                .contains("not in the future")
        );
        assert!(expiry(Some("0s"), None, now, max).is_err());
        assert!(
            expiry(Some("400d"), None, now, max)
                .unwrap_err()
                .contains("at most 365d")
        );
        assert!(expiry(None, Some("next tuesday"), now, max).is_err());
        assert!(expiry(Some("1d"), Some("2027-01-01"), now, max).is_err());
        assert!(expiry(None, None, now, max).is_err());
    }
}

//! Command-line interface definitions (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::scim::schema::Unknown;
use crate::scim::{ProviderKind, ResourceKind};

#[derive(Debug, Parser)]
#[command(
    name = "scimd",
    version,
    about = "A SCIM 2.0 server (RFC 7643/7644) with an embedded SQLite database",
    long_about = "A SCIM 2.0 server (RFC 7643/7644) with an embedded SQLite database.\n\n\
        Identity providers such as Microsoft Entra ID push Users and Groups to it over SCIM; \
        each identity provider has its own SCIM base URL, data and bearer tokens.\n\n\
        Quick trial: `scimd quickstart`. Production: `scimd serve --config /etc/scimd/config.toml`.\n\n\
        Settings come from built-in defaults, then the --config file, then SCIMD_* environment \
        variables, then flags; see config.example.toml. Every command works on the same \
        database file, also while `scimd serve` is running."
)]
pub struct Cli {
    /// TOML configuration file (see config.example.toml). Also: SCIMD_CONFIG.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,

    /// SQLite database file; overrides `database` from the file and SCIMD_DATABASE.
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) database: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the SCIM server until SIGTERM or SIGINT (requests in flight are finished first).
    ///
    /// The database file must exist (`provider add` or `quickstart` creates it), so that a
    /// database that was moved or deleted is never silently replaced by an empty one; `--create`
    /// allows creating it on a first start.
    Serve(ServeCommand),
    /// One-command local trial: create the database, an identity provider and a 24-hour token
    /// if needed, print the SCIM URL, the token and a curl line to try, then serve.
    ///
    /// Running it again on the same database reuses the provider and prints a fresh token.
    Quickstart(QuickstartArgs),
    /// Manage identity providers (each has its own SCIM base URL, Users, Groups and tokens).
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Manage bearer tokens. A token's secret is shown once, at creation; only an argon2id
    /// hash is stored.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Users' application passwords (made by each user on the console's /me page after
    /// signing in with the identity provider): list and revoke. Nobody but the user ever sees
    /// a secret.
    #[command(subcommand)]
    AppPassword(AppPasswordCommand),
    /// Manage an identity provider's extension schemas (custom attributes, e.g. Entra's
    /// `urn:ietf:params:scim:schemas:extension:<Name>:2.0:User`). Changes reach a running
    /// server with the provider's next request.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Show the activity log: what identity providers changed, what was refused and why, and
    /// refused authentications per minute. Newest last; works while `scimd serve` runs.
    ///
    /// A resource's history: `scimd activity --resource ID` (or --user NAME, --group NAME).
    Activity(ActivityArgs),
    /// What admins did, from the command line or the console: providers, schemas, tokens, LDAP
    /// accounts and settings, admin accounts, console logins. Newest last; each record was
    /// written with the change it describes. Kept for `audit_retention` (365 days).
    Audit(AuditArgs),
    /// Write a consistent copy of the database to PATH (mode 0600), also while `scimd serve`
    /// runs: SQLite's online backup copies the pages of one read transaction.
    Backup {
        /// Where to write the copy; must not exist yet.
        path: PathBuf,
        /// Write a compacted copy (VACUUM INTO) instead of a page-for-page one.
        #[arg(long)]
        vacuum: bool,
    },
    /// Replace the database with a backup. Refuses while a server uses the database, and
    /// refuses a file that is not a scimd database or was written by a newer scimd; the
    /// replaced file is kept beside it (`<database>.replaced-<time>`).
    Restore {
        /// The backup to restore.
        path: PathBuf,
    },
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// The read-only LDAP directory (`ldap_listen`): service accounts applications bind with.
    #[command(subcommand)]
    Ldap(LdapCommand),
    /// Manage the admin console's accounts (the console is served on `admin_listen`, by
    /// default http://127.0.0.1:8081/). Passwords are stored as argon2id hashes.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Write every User (or Group) of a provider to standard output, as SCIM JSON lines (the
    /// representation a GET returns) or as CSV of the common attributes; memory stays small
    /// whatever the number. Works while `scimd serve` runs.
    Export {
        #[arg(long, value_name = "NAME")]
        provider: String,
        #[arg(long, value_enum, default_value = "user")]
        resource_type: ResourceTypeArg,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
    /// Validate the configuration, list every problem, and print the effective settings with
    /// secrets redacted. Exits non-zero when the configuration is invalid.
    CheckConfig,
    /// The change feed: every change of a provider's users and groups, pushed to a receiver as
    /// signed webhooks (Standard Webhooks), in commit order, at least once. Changes reach a
    /// running server within a second.
    #[command(subcommand)]
    Feed(FeedCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum FeedCommand {
    /// Add a feed: from now on each committed change of the provider's users and groups is
    /// posted to URL (or kept for the receiver to pull, with --pull). Prints a webhook feed's
    /// signing secret (whsec_...) once, or where a SET feed's public key is published.
    #[command(group(clap::ArgGroup::new("to").required(true).args(["url", "pull"])))]
    Add {
        /// The feed's name (letters, digits, '-', '_', '.').
        name: String,
        #[arg(long, value_name = "NAME")]
        provider: String,
        /// The receiver: https://..., or plain http:// to 127.0.0.1 or ::1 (to any host with
        /// feed_allow_http = "on").
        #[arg(long)]
        url: Option<String>,
        /// The receiver pulls the events (RFC 8936 poll at <SCIM base>/Feeds/NAME, with a
        /// token of the provider); implies --format set.
        #[arg(long)]
        pull: bool,
        /// webhook: Standard Webhooks messages (JSON, HMAC-SHA256); set: Security Event Tokens
        /// of RFC 9967 (JWTs signed with ES256, pushed per RFC 8935 or pulled).
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
        /// A SET's audience (aud claim); default: the receiver's URL, or the feed's name when
        /// it pulls.
        #[arg(long, value_name = "AUD")]
        audience: Option<String>,
        /// Only these operations, comma-separated: create, replace, patch, delete, activate,
        /// deactivate, members (default: all).
        #[arg(long, value_name = "OPS")]
        events: Option<String>,
        /// Each event carries the resource as it stands when delivered.
        #[arg(long)]
        full: bool,
        /// Trust this CA (PEM) for the receiver's certificate instead of the system's.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
    },
    /// List the feeds: provider, receiver, position, state.
    List,
    /// One feed in full: its receiver, events, position and the provider's last event, and
    /// its last delivery or error.
    Show { name: String },
    /// Stop delivering (events are kept and delivered after `resume`).
    Pause { name: String },
    /// Deliver again after `pause`.
    Resume { name: String },
    /// Remove a feed.
    Remove { name: String },
    /// Deliver again from event SEQ on (as long as it is kept).
    Replay {
        name: String,
        #[arg(long, value_name = "SEQ")]
        from: i64,
    },
    /// A new signing secret, printed once (a SET feed: a new key, published beside the old
    /// one); the old one signs (or stays published) for --overlap (default 24h), so the
    /// receiver can switch without missing a message.
    RotateSecret {
        name: String,
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        overlap: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address and port to listen on, e.g. 127.0.0.1:8080 or [::]:8080; port 0 picks a free
    /// port. Overrides `listen` and SCIMD_LISTEN.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,

    /// External URL clients use to reach this server, e.g. https://scim.example.com; used in
    /// SCIM base URLs and meta.location. Overrides `public_url` and SCIMD_PUBLIC_URL.
    #[arg(long, value_name = "URL")]
    pub(crate) public_url: Option<String>,

    /// Address and port of the admin console and /metrics (default 127.0.0.1:8081; port 0
    /// picks a free port; an empty value turns them off). Overrides `admin_listen` and
    /// SCIMD_ADMIN_LISTEN.
    #[arg(long, value_name = "ADDR")]
    pub(crate) admin_listen: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeCommand {
    #[command(flatten)]
    pub(crate) serve: ServeArgs,

    /// Create the database file if it does not exist yet (a new installation). Without it,
    /// a missing database is an error.
    #[arg(long)]
    pub(crate) create: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QuickstartArgs {
    #[command(flatten)]
    pub(crate) serve: ServeArgs,

    /// Name of the identity provider to create or reuse.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub(crate) provider: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KindArg {
    /// Any RFC 7643/7644 client (Okta, OneLogin, JumpCloud, ...).
    Generic,
    /// Microsoft Entra ID: follow Microsoft's documented preferences where the RFC allows a choice.
    Entra,
}

impl From<KindArg> for ProviderKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Generic => ProviderKind::Generic,
            KindArg::Entra => ProviderKind::Entra,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProviderCommand {
    /// Create an identity provider and print its SCIM base URL.
    Add {
        /// 1-64 letters, digits, '-', '_' or '.'; part of the SCIM base URL.
        name: String,
        /// Free text shown in `provider list`.
        #[arg(long, default_value = "")]
        description: String,
        /// What kind of client will connect.
        #[arg(long = "type", value_enum, default_value = "generic")]
        kind: KindArg,
    },
    /// List identity providers with their SCIM base URLs and how many Users and Groups each holds.
    List,
    /// Show one identity provider, its SCIM base URL and its tokens.
    Show { name: String },
    /// Change an identity provider's type or description.
    Set {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "type", value_enum)]
        kind: Option<KindArg>,
        /// What to do with attributes of schemas the provider has not registered: `reject`
        /// (400 naming the attribute; the default) or `ignore` (drop them, log them once).
        #[arg(long, value_enum, value_name = "POLICY")]
        unknown_attributes: Option<UnknownArg>,
        /// Whether activity records carry the new attribute values (personal data): on or off
        /// (the default).
        #[arg(long, value_enum, value_name = "ON_OFF")]
        activity_values: Option<OnOff>,
        /// What the provider's SCIM requests may do to users' passwords (used for LDAP binds):
        /// `updates` (the default) keeps a password sent in a PUT or PATCH and ignores one in a
        /// create (Okta sends a random one in every create); `all` keeps those too; `ignore`
        /// keeps none and removes the passwords stored so far.
        #[arg(long, value_enum, value_name = "POLICY")]
        scim_passwords: Option<ScimPasswordsArg>,
    },
    /// Remove an identity provider with its tokens. Refuses while it still holds Users or Groups
    /// unless --yes is given, which removes them too.
    Remove {
        name: String,
        /// Also delete every User and Group of this provider.
        #[arg(long)]
        yes: bool,
    },
    /// Sign-in with the identity provider (OpenID Connect): its users sign in to the console's
    /// /me page and make application passwords for LDAP applications; members of an admin
    /// group get the admin pages.
    #[command(subcommand)]
    Oidc(OidcCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum OidcCommand {
    /// Set (or change) the provider's OpenID Connect client. Register
    /// `<console_url>/oidc/callback` as its redirect URI at the identity provider. The first
    /// set needs --issuer, --client-id and --client-secret-file; later ones change what they
    /// name.
    Set {
        name: String,
        /// The issuer URL (its /.well-known/openid-configuration is read), e.g.
        /// https://login.microsoftonline.com/<tenant-id>/v2.0. HTTPS, or plain HTTP on
        /// 127.0.0.0/8 or ::1 only.
        #[arg(long)]
        issuer: Option<String>,
        /// The application's client id at the identity provider.
        #[arg(long)]
        client_id: Option<String>,
        /// A file holding the client secret (a trailing newline is ignored).
        #[arg(long, value_name = "PATH")]
        client_secret_file: Option<std::path::PathBuf>,
        /// PEM certificates to trust for the issuer instead of the system's roots.
        #[arg(long, value_name = "PEM")]
        ca_file: Option<std::path::PathBuf>,
        /// Which claim names the provisioned user, and the SCIM attribute it must equal:
        /// `preferred_username=userName` (the default), `sub=externalId`, Entra's
        /// `oid=externalId`, `email=emails.value`.
        #[arg(long = "match", value_name = "CLAIM=SCIM_ATTRIBUTE")]
        matching: Option<String>,
        /// Members (directly or through nested groups) of the provisioned group with this
        /// displayName get the admin pages when they sign in.
        #[arg(long, value_name = "GROUP", conflicts_with = "no_admin_group")]
        admin_group: Option<String>,
        /// Nobody gets the admin pages by signing in (local admin accounts only).
        #[arg(long)]
        no_admin_group: bool,
    },
    /// Show the provider's OpenID Connect client (never its secret) and the redirect URI.
    Show { name: String },
    /// Turn sign-in with the provider off and end the sessions it started.
    Unset { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AppPasswordCommand {
    /// List application passwords (never their secrets): all, one provider's, or one user's.
    List {
        #[arg(long)]
        provider: Option<String>,
        /// A userName (with --provider).
        #[arg(long, requires = "provider")]
        user: Option<String>,
    },
    /// Revoke an application password: binds with it fail at once, also on open connections.
    Revoke { id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ExportFormat {
    /// One SCIM JSON resource per line.
    Jsonl,
    /// A header line, then id, externalId, userName or displayName and the other common
    /// attributes (RFC 4180).
    Csv,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Check the database: SQLite's integrity and foreign key checks and the schema version.
    /// Exits 0 when all is well, 1 otherwise (for scripts and monitoring).
    Check,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LdapCommand {
    /// Service accounts: each reads one identity provider's tree, binding as
    /// `cn=NAME,ou=services,dc=PROVIDER,dc=scimd` with a secret shown once.
    #[command(subcommand)]
    Account(LdapAccountCommand),
    /// Map an LDAP attribute of a provider's users (or with --groups its groups) to a SCIM
    /// attribute path, e.g.
    /// `employeeType urn:ietf:params:scim:schemas:extension:Contoso:2.0:User:employeeType`; it
    /// replaces the built-in attribute of that name. With uidNumber, gidNumber and
    /// homeDirectory mapped, users are posixAccounts too; with gidNumber, groups are
    /// posixGroups. Applies from each search on.
    Map {
        #[arg(long, value_name = "NAME")]
        provider: String,
        /// The attribute is the groups' (the path names a Group attribute).
        #[arg(long)]
        groups: bool,
        attribute: String,
        path: String,
    },
    /// Remove a provider's mapping of an LDAP attribute (the built-in one applies again).
    Unmap {
        #[arg(long, value_name = "NAME")]
        provider: String,
        /// The mapping of the groups' attribute.
        #[arg(long)]
        groups: bool,
        attribute: String,
    },
    /// Set the base DN of a provider's tree (e.g. `ou=entra,dc=example,dc=com`; default
    /// `dc=<provider>,dc=scimd`); `--default` goes back to the default. Binds and searches use
    /// it from their next request.
    Base {
        #[arg(long, value_name = "NAME")]
        provider: String,
        #[arg(required_unless_present = "default", conflicts_with = "default")]
        dn: Option<String>,
        #[arg(long)]
        default: bool,
    },
    /// Show a provider's own LDAP attribute mappings.
    Mappings {
        #[arg(long, value_name = "NAME")]
        provider: String,
    },
    /// POSIX identities for a provider's users and groups, needing nothing from the identity
    /// provider: users become posixAccounts (uidNumber, gidNumber, homeDirectory, loginShell),
    /// groups posixGroups (gidNumber, memberUid). Numbers are FIRST plus the resource's key in
    /// the database, which is never reused and survives renames, backups and restores; a value
    /// the provider maps itself (`scimd ldap map`) wins. Without options: show the settings.
    Posix {
        #[arg(long, value_name = "NAME")]
        provider: String,
        /// Turn POSIX identities on with these settings (the defaults, or the ones given).
        #[arg(long, conflicts_with = "off")]
        on: bool,
        /// Turn them off: entries lose their POSIX attributes at the next search.
        #[arg(long)]
        off: bool,
        /// The number the first resource's key counts from (default 100000).
        #[arg(long, value_name = "N", conflicts_with = "off")]
        first_id: Option<i64>,
        /// No number above this is given (default 2000000000).
        #[arg(long, value_name = "N", conflicts_with = "off")]
        last_id: Option<i64>,
        /// The home directory; {uid} is the user's name, {local} its part before '@'
        /// (default /home/{uid}).
        #[arg(long, value_name = "TEMPLATE", conflicts_with = "off")]
        home: Option<String>,
        /// The login shell (default /bin/bash).
        #[arg(long, value_name = "PATH", conflicts_with = "off")]
        shell: Option<String>,
        /// Every user's primary group: `private` (each user's own, gidNumber = uidNumber; the
        /// default) or a group number.
        #[arg(long, value_name = "private|GID", conflicts_with = "off")]
        primary_group: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LdapAccountCommand {
    /// Create an account and print its bind DN and secret (once; only a hash is stored).
    Add {
        name: String,
        #[arg(long, value_name = "NAME")]
        provider: String,
        /// How long it is valid, e.g. 90d, 12h (default 365d).
        #[arg(long, value_name = "DURATION", conflicts_with = "expires")]
        valid_for: Option<String>,
        /// The date it stops working (2027-03-01 or an RFC 3339 time).
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
    },
    /// List accounts (never their secrets).
    List {
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
    },
    /// Revoke an account: its open connections read nothing more, its next bind fails.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Add an admin account. The password (12 characters or more) is asked for twice on the
    /// terminal, or read from the first line of standard input with --password-stdin.
    Add {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password for an account; ends all of its console sessions.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the admin accounts with their last login and open sessions.
    List,
    /// Remove an admin account and end its sessions.
    Remove { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Debug, Args)]
pub(crate) struct ActivityArgs {
    /// Only this identity provider's records.
    #[arg(long, value_name = "NAME")]
    pub(crate) provider: Option<String>,
    /// From this long ago (e.g. 1h, 7d) or this date or time (2026-11-30, 2026-11-30T08:00:00Z).
    #[arg(long, value_name = "AGE|DATE")]
    pub(crate) since: Option<String>,
    /// Up to this date or time.
    #[arg(long, value_name = "DATE")]
    pub(crate) until: Option<String>,
    /// Only refused requests and authentication failures (status 400 and above).
    #[arg(long)]
    pub(crate) failed: bool,
    /// One resource's history, by its SCIM id.
    #[arg(long, value_name = "ID", conflicts_with_all = ["user", "group"])]
    pub(crate) resource: Option<String>,
    /// The history of the user with this userName (regardless of case).
    #[arg(long, value_name = "USERNAME", conflicts_with = "group")]
    pub(crate) user: Option<String>,
    /// The history of the group with this displayName (regardless of case).
    #[arg(long, value_name = "NAME")]
    pub(crate) group: Option<String>,
    /// Most records shown (the newest).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) limit: usize,
    /// Keep running and print new records as they are committed.
    #[arg(long)]
    pub(crate) follow: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only records about this identity provider (also one since removed).
    #[arg(long, value_name = "NAME")]
    pub(crate) provider: Option<String>,
    /// Most records shown (the newest).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) limit: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ScimPasswordsArg {
    /// Keep none; remove the stored ones.
    Ignore,
    /// Keep those sent in a PUT or PATCH, not in a create.
    Updates,
    /// Keep those sent in creates too.
    All,
}

impl From<ScimPasswordsArg> for crate::scim::ScimPasswords {
    fn from(p: ScimPasswordsArg) -> Self {
        match p {
            ScimPasswordsArg::Ignore => crate::scim::ScimPasswords::Ignore,
            ScimPasswordsArg::Updates => crate::scim::ScimPasswords::Updates,
            ScimPasswordsArg::All => crate::scim::ScimPasswords::All,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum UnknownArg {
    /// Refuse the request with 400, naming the attribute and the command that registers it.
    Reject,
    /// Drop the attribute; it is counted as a quirk and logged the first time.
    Ignore,
}

impl From<UnknownArg> for Unknown {
    fn from(u: UnknownArg) -> Self {
        match u {
            UnknownArg::Reject => Unknown::Reject,
            UnknownArg::Ignore => Unknown::Ignore,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ResourceTypeArg {
    User,
    Group,
}

impl From<ResourceTypeArg> for ResourceKind {
    fn from(r: ResourceTypeArg) -> Self {
        match r {
            ResourceTypeArg::User => ResourceKind::User,
            ResourceTypeArg::Group => ResourceKind::Group,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum SchemaCommand {
    /// Register an extension schema from a file holding its RFC 7643 §7 representation:
    /// {"id": URN, "name": ..., "description": ..., "attributes": [{"name", "type", "multiValued",
    /// "caseExact", "required", "mutability", "returned", "uniqueness", "canonicalValues",
    /// "subAttributes"}, ...]}. Use - to read standard input.
    Add {
        /// The identity provider it is for.
        #[arg(long, value_name = "NAME")]
        provider: String,
        /// The resource type it extends.
        #[arg(long, value_enum, default_value = "user")]
        resource_type: ResourceTypeArg,
        /// A single-valued string attribute to index, so an identity provider can match on it
        /// (`eq` is an index lookup, like externalId). Repeat for several.
        #[arg(long, value_name = "ATTRIBUTE")]
        index: Vec<String>,
        /// The schema file (JSON), or - for standard input.
        file: PathBuf,
    },
    /// List registered extension schemas.
    List {
        /// Only this identity provider's schemas.
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
    },
    /// Print a registered schema as it was given, and how many resources hold values of it.
    Show {
        #[arg(long, value_name = "NAME")]
        provider: String,
        urn: String,
    },
    /// Remove a registered schema. Refuses while resources hold values of it unless --yes is
    /// given, which deletes those values in the same transaction.
    Remove {
        #[arg(long, value_name = "NAME")]
        provider: String,
        urn: String,
        /// Also delete every value stored under this schema.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token for an identity provider and print it once.
    Create {
        /// The identity provider the token is for.
        #[arg(long, value_name = "NAME")]
        provider: String,
        /// Validity from now, e.g. 90d, 12w, 24h.
        #[arg(
            long,
            value_name = "DURATION",
            conflicts_with = "expires",
            required_unless_present = "expires"
        )]
        valid_for: Option<String>,
        /// Expiry date (UTC midnight) or time, e.g. 2027-03-01 or 2027-03-01T12:00:00Z.
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
        /// Free text shown in `token list`, e.g. where the token is configured.
        #[arg(long, default_value = "")]
        description: String,
        /// The token may only read (GET and searches); writes get 403.
        #[arg(long)]
        read_only: bool,
    },
    /// List tokens (never their secrets) with scope, dates and state.
    List {
        /// Only this identity provider's tokens.
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
    },
    /// Revoke a token: it stops working on the very next request.
    Revoke {
        /// The token id, as shown by `token list` (the part after `scimd_`).
        id: String,
    },
    /// Create a replacement token with the same provider, scope and description, and let the
    /// old one expire after an overlap, so the identity provider can be switched over without
    /// a provisioning outage.
    Rotate {
        id: String,
        /// How long the old token keeps working.
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        overlap: String,
        /// Validity of the new token; defaults to the old token's full validity period.
        #[arg(long, value_name = "DURATION")]
        valid_for: Option<String>,
    },
}

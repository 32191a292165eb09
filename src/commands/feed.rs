//! `feed add|list|show|pause|resume|remove|replay|rotate-secret`.

use anyhow::anyhow;
use chrono::Utc;

use super::{fmt_time, open};
use crate::app::admin::Actor;
use crate::app::feeds::{self, FeedSpec, Format};
use crate::cli::FeedCommand;
use crate::config::Config;
use crate::store::OpenMode;
use crate::store::feeds::{self as stored, Feed};

/// A feed's state as `list` and `show` name it.
fn state(f: &Feed) -> String {
    feeds::State::of(f).text(fmt_time)
}

pub(super) fn feed_command(config: &Config, cmd: FeedCommand) -> anyhow::Result<()> {
    let store = open(config, OpenMode::MustExist)?;
    let by = Actor::command_line();
    match cmd {
        FeedCommand::Add {
            name,
            provider,
            url,
            pull: _,
            format,
            audience,
            events,
            full,
            ca_file,
        } => {
            let ops = feeds::parse_ops(events.as_deref()).map_err(|e| anyhow!(e))?;
            let format = match (format.as_deref(), &url) {
                (Some(f), _) => {
                    Format::parse(f).ok_or_else(|| anyhow!("--format {f}: webhook or set"))?
                }
                (None, Some(_)) => Format::Webhook,
                (None, None) => Format::Set,
            };
            if let Some(path) = &ca_file {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
                crate::outbound::agent(Some(&pem), std::time::Duration::from_secs(1))
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            }
            let spec = FeedSpec {
                name,
                provider,
                url,
                format,
                audience,
                ops,
                full,
                ca_file: ca_file.map(|p| p.display().to_string()),
                allow_http: config.feed_allow_http,
            };
            let now = Utc::now().timestamp();
            let (f, secret) = store.write_blocking(move |c| feeds::add(c, &by, &spec, now))?;
            let base = super::cli_base(config);
            match &f.url {
                Some(url) => println!(
                    "added feed {} of provider {}: each change from now on is posted to {url}",
                    f.name, f.provider
                ),
                None => println!(
                    "added feed {} of provider {}: each change from now on waits for the \
                     receiver to pull it (RFC 8936) from\n  POST {}\nwith a token of provider {} \
                     (`scimd token create --provider {} --read-only`)",
                    f.name,
                    f.provider,
                    feeds::poll_url(&base, &f),
                    f.provider,
                    f.provider
                ),
            }
            match format {
                Format::Webhook => {
                    println!(
                        "signing secret (shown once; the receiver checks webhook-signature with it):"
                    );
                    println!("{secret}");
                }
                Format::Set => {
                    println!(
                        "Security Event Tokens (RFC 9967) signed with ES256, audience {}; the \
                         receiver verifies them with the key published at",
                        f.audience.as_deref().unwrap_or_default()
                    );
                    println!("{}", feeds::jwks_url(&base, &f.name));
                }
            }
        }
        FeedCommand::List => {
            let all = store.call(|c| stored::list(c))?;
            if all.is_empty() {
                println!("no feeds (add one with `scimd feed add NAME --provider P --url URL`)");
            }
            for f in all {
                println!(
                    "{}  provider {}  {} {}  at event {}  {}",
                    f.name,
                    f.provider,
                    f.format,
                    feeds::receiver(&f),
                    f.position,
                    state(&f)
                );
            }
        }
        FeedCommand::Show { name } => {
            let (f, last, first) = store.call(move |c| {
                let f = stored::require(c, &name)?;
                let last = stored::last_seq(c, f.provider_id)?;
                let first = stored::first_seq(c, f.provider_id)?;
                Ok((f, last, first))
            })?;
            println!("feed:        {}", f.name);
            println!("provider:    {}", f.provider);
            let base = super::cli_base(config);
            println!("receiver:    {}", feeds::receiver(&f));
            if f.url.is_none() {
                println!(
                    "poll:        POST {} (RFC 8936) with a token of the provider",
                    feeds::poll_url(&base, &f)
                );
            }
            match f.format.as_str() {
                "set" => {
                    println!("format:      set (RFC 9967 Security Event Tokens, ES256)");
                    println!("audience:    {}", f.audience.as_deref().unwrap_or_default());
                    println!("keys:        {}", feeds::jwks_url(&base, &f.name));
                }
                _ => println!("format:      webhook (Standard Webhooks signatures)"),
            }
            println!(
                "events:      {}{}",
                f.ops.join(", "),
                if f.full { " (with the resource)" } else { "" }
            );
            if let Some(ca) = &f.ca_file {
                println!("CA file:     {ca}");
            }
            println!("created:     {}", fmt_time(f.created));
            println!("state:       {}", state(&f));
            println!(
                "position:    event {} of {} ({} behind)",
                f.position,
                last,
                last - f.position
            );
            if let Some(first) = first {
                println!("kept:        events {first}..{last} (replay from any of them)");
            }
            if let Some(at) = f.delivered_at {
                println!("delivered:   {}", fmt_time(at / 1000));
            }
            if let Some(e) = &f.last_error {
                println!("last error:  {e}");
            }
            if let Some(until) = f.old_until.filter(|u| *u > Utc::now().timestamp()) {
                let what = match f.format.as_str() {
                    "set" => "old key:     published beside the new one until",
                    _ => "old secret:  signs beside the new one until",
                };
                println!("{what} {}", fmt_time(until));
            }
        }
        FeedCommand::Pause { name } => {
            let f = store.write_blocking(move |c| feeds::set_paused(c, &by, &name, true))?;
            println!("paused feed {} at event {}", f.name, f.position);
        }
        FeedCommand::Resume { name } => {
            let f = store.write_blocking(move |c| feeds::set_paused(c, &by, &name, false))?;
            println!("resumed feed {} from event {}", f.name, f.position + 1);
        }
        FeedCommand::Remove { name } => {
            let f = store.write_blocking(move |c| feeds::remove(c, &by, &name))?;
            println!("removed feed {}", f.name);
        }
        FeedCommand::Replay { name, from } => {
            let f = store.write_blocking(move |c| feeds::replay(c, &by, &name, from))?;
            println!(
                "feed {} delivers again from event {}",
                f.name,
                f.position + 1
            );
        }
        FeedCommand::RotateSecret { name, overlap } => {
            let overlap =
                crate::config::parse_duration(&overlap).map_err(|e| anyhow!("--overlap: {e}"))?;
            let until =
                Utc::now().timestamp() + i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX / 2);
            let (f, secret) = store.write_blocking(move |c| feeds::rotate(c, &by, &name, until))?;
            match Format::parse(&f.format).unwrap_or(Format::Webhook) {
                Format::Webhook => {
                    println!(
                        "new signing secret of feed {} (shown once); the old one signs beside it \
                         until {}:",
                        f.name,
                        fmt_time(until)
                    );
                    println!("{secret}");
                }
                Format::Set => println!(
                    "feed {} signs with a new key from now on; the old one stays published at {} \
                     until {}",
                    f.name,
                    feeds::jwks_url(&super::cli_base(config), &f.name),
                    fmt_time(until)
                ),
            }
        }
    }
    Ok(())
}

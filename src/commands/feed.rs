//! `feed add|list|show|pause|resume|remove|replay|rotate-secret`.

use anyhow::anyhow;
use chrono::Utc;

use super::{fmt_time, open};
use crate::app::admin::Actor;
use crate::app::feeds::{self, FeedSpec};
use crate::cli::FeedCommand;
use crate::config::Config;
use crate::store::OpenMode;
use crate::store::feeds::{self as stored, Feed};

/// A feed's state as `list` and `show` name it.
fn state(f: &Feed) -> String {
    match (f.paused, f.failing_since) {
        (true, _) => "paused".into(),
        (false, Some(since)) => format!("failing since {}", fmt_time(since / 1000)),
        (false, None) => "delivering".into(),
    }
}

pub(super) fn feed_command(config: &Config, cmd: FeedCommand) -> anyhow::Result<()> {
    let store = open(config, OpenMode::MustExist)?;
    let by = Actor::command_line();
    match cmd {
        FeedCommand::Add {
            name,
            provider,
            url,
            events,
            full,
            ca_file,
        } => {
            let ops = feeds::parse_ops(events.as_deref()).map_err(|e| anyhow!(e))?;
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
                ops,
                full,
                ca_file: ca_file.map(|p| p.display().to_string()),
            };
            let secret = feeds::new_secret();
            let (kept, now) = (secret.clone(), Utc::now().timestamp());
            let f = store.write_blocking(move |c| feeds::add(c, &by, &spec, &kept, now))?;
            println!(
                "added feed {} of provider {}: each change from now on is posted to {}",
                f.name, f.provider, f.url
            );
            println!("signing secret (shown once; the receiver checks webhook-signature with it):");
            println!("{secret}");
        }
        FeedCommand::List => {
            let all = store.call(|c| stored::list(c))?;
            if all.is_empty() {
                println!("no feeds (add one with `scimd feed add NAME --provider P --url URL`)");
            }
            for f in all {
                println!(
                    "{}  provider {}  {}  at event {}  {}",
                    f.name,
                    f.provider,
                    f.url,
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
            println!("receiver:    {}", f.url);
            println!("format:      {} (Standard Webhooks signatures)", f.format);
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
                println!(
                    "old secret:  signs beside the new one until {}",
                    fmt_time(until)
                );
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
            let secret = feeds::new_secret();
            let kept = secret.clone();
            let f = store.write_blocking(move |c| feeds::rotate(c, &by, &name, &kept, until))?;
            println!(
                "new signing secret of feed {} (shown once); the old one signs beside it until {}:",
                f.name,
                fmt_time(until)
            );
            println!("{secret}");
        }
    }
    Ok(())
}

//! `mvault sync`: bring the clone's record up to date with its remote.

use std::io::Write;

use mvault::model::text::escape;
use mvault::ops::sync::{self, SyncOutcome};

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;

/// Bring this clone's record up to date with its remote: fetch main and
/// the tags, fast-forward main (a rewritten main or a changed tag is
/// refused), and verify what is new from the root keys.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Refuse a server whose signed timestamp is older than this (90s,
    /// 15m, 24h, 7d; needs a server key pinned in the vault).
    #[arg(long, value_name = "AGE", value_parser = super::values::max_age)]
    max_age: Option<i64>,
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let o = sync::sync(
        &vault,
        ctx.now.unix_timestamp(),
        args.max_age.map(|seconds| sync::freshness::MaxAge {
            seconds,
            explicit: true,
        }),
    )?;
    render(out, &o, args.json)
}

fn render(out: &mut dyn Write, o: &SyncOutcome, json: bool) -> CliResult {
    if json {
        return json_line(out, o);
    }
    let short = |id: &str| id.chars().take(12).collect::<String>();
    match &o.main_before {
        Some(b) if o.commits == 0 => writeln!(
            out,
            "main is up to date with {} at {}",
            escape(&o.remote),
            short(b)
        )?,
        before => writeln!(
            out,
            "main fast-forwarded from {} to {} ({} commit(s) from {})",
            before
                .as_deref()
                .map(short)
                .unwrap_or_else(|| "nothing".into()),
            short(&o.main_after),
            o.commits,
            escape(&o.remote)
        )?,
    }
    for t in &o.new_tags {
        writeln!(out, "new tag {}", escape(t))?;
    }
    writeln!(out, "record verified from the root keys")?;
    Ok(())
}

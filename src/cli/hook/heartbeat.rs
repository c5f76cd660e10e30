//! `mvault hook heartbeat`: refresh the server's signed timestamp.

use std::io::Write;
use std::path::PathBuf;

use mvault::model::text::escape;
use mvault::server::receipts;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Sign a fresh timestamp (the server's time and its newest receipt) on
/// `refs/mvault/timestamp`, and log pushes that ended without landing.
/// Run it from cron or a systemd timer (`mvault hook install --server-key`
/// prints both); clients refuse a server whose timestamp is older than
/// their `--max-age`.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The bare repository (default: $GIT_DIR, else the current directory).
    repo: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let repo = match &args.repo {
        Some(r) => ctx.path(r),
        None => super::git_dir(ctx),
    };
    let t = receipts::heartbeat(&repo, ctx.now).map_err(|e| {
        CliError::user(format!("no heartbeat for {}: {e}", repo.display()))
            .hint("configure the server key: mvault hook install REPO --root-key KEY.pub --server-key FILE")
    })?;
    if args.json {
        return json_line(out, &t);
    }
    writeln!(
        out,
        "timestamp {} signed: newest receipt {} ({})",
        escape(&t.time),
        t.seq,
        t.receipt
    )?;
    Ok(())
}

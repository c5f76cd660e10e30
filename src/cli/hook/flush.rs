//! `mvault hook flush`: deliver the server log's lines still queued for
//! the sinks.

use std::io::Write;
use std::path::PathBuf;

use mvault::model::text::escape;
use mvault::server::alerts;
use mvault::vault::{ErrorKind, VaultError};

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Deliver the lines queued for the sinks (mvault.sink) after a failed
/// delivery, oldest first; exits non-zero while some remain queued.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The bare repository.
    repo: PathBuf,
    /// The outcome as one JSON object: delivered, queued, failures.
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let repo = ctx.path(&args.repo);
    let d = alerts::flush(&repo).map_err(|e| CliError::from(VaultError::from(e)))?;
    if args.json {
        json_line(out, &d)?;
    } else {
        writeln!(
            out,
            "delivered {} line(s); {} still queued",
            d.delivered, d.queued
        )?;
    }
    if d.queued > 0 {
        let why = d
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.sink, f.error))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(CliError::new(
            ErrorKind::Internal,
            format!("{} line(s) still queued: {}", d.queued, escape(&why)),
        )
        .hint("bring the sink back, then run mvault hook flush again (the next push or fetch retries too)"));
    }
    Ok(())
}

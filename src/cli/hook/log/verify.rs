//! `mvault hook log verify`: no line of the decision log edited, removed
//! or inserted.

use std::io::Write;
use std::path::PathBuf;

use mvault::server::log as server_log;
use mvault::vault::{ErrorKind, VaultError};

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Check that no line of the decision log was edited, removed or inserted.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The bare repository (default: the current one).
    repo: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let repo = args
        .repo
        .as_deref()
        .map(|r| ctx.path(r))
        .unwrap_or_else(|| ctx.dir.clone());
    let store =
        mvault::store::Store::open(&repo).map_err(|e| CliError::from(VaultError::from(e)))?;
    match server_log::verify_log(store.git_dir()) {
        Ok(n) => render(out, n, args.json),
        Err(e) => Err(CliError::new(ErrorKind::Integrity, e)
            .hint("the server's decision log was altered; compare with a backup and investigate")),
    }
}

fn render(out: &mut dyn Write, entries: usize, json: bool) -> CliResult {
    if json {
        return json_line(
            out,
            &serde_json::json!({ "log": server_log::LOG_FILE, "entries": entries, "intact": true }),
        );
    }
    writeln!(
        out,
        "{}: {entries} entries (decisions and fetches), chain intact",
        server_log::LOG_FILE
    )?;
    Ok(())
}

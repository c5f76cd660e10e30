//! `mvault hook install-pre-push`: the client-side check into a clone.

use std::io::Write;
use std::path::Path;

use mvault::server::install as hook_install;
use mvault::vault::VaultError;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Install the client-side pre-push check into this clone.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let store =
        mvault::store::Store::open(&ctx.dir).map_err(|e| CliError::from(VaultError::from(e)))?;
    let path = hook_install::install_pre_push(&store, &std::env::current_exe()?)?;
    render(out, &path, args.json)
}

fn render(out: &mut dyn Write, path: &Path, json: bool) -> CliResult {
    if json {
        return json_line(
            out,
            &serde_json::json!({ "installed": path.display().to_string() }),
        );
    }
    writeln!(
        out,
        "installed {}: pushes are checked against the vault's rules first",
        path.display()
    )?;
    Ok(())
}

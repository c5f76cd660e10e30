//! `mvault hook pack-objects`: git's pack-objects, with the fetch logged.

use std::io::Write;

use mvault::server::log as server_log;
use mvault::vault::ErrorKind;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};

/// Run in place of git pack-objects (uploadpack.packObjectsHook): log
/// who fetched which refs, then pack.
#[derive(clap::Args, Debug)]
#[command(trailing_var_arg = true)]
pub(in crate::cli) struct Args {
    /// The pack-objects command line git passes.
    #[arg(allow_hyphen_values = true)]
    command: Vec<String>,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, _out: &mut dyn Write) -> CliResult {
    let git_dir = super::git_dir(ctx);
    let code =
        server_log::pack_objects(&git_dir, &args.command, |k| std::env::var(k).ok(), ctx.now)?;
    if code != 0 {
        // pack-objects said why on stderr; its exit status is the answer.
        return Err(CliError::new(ErrorKind::Internal, ""));
    }
    Ok(())
}

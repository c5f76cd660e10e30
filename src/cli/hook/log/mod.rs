//! `mvault hook log`: the hook's hash-chained decision log.

mod rotate;
mod verify;

use std::io::Write;

use clap::Subcommand;

use crate::cli::context::Ctx;
use crate::cli::error::CliResult;

/// The hook's hash-chained decision log.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    #[command(subcommand)]
    command: HookLogCommand,
}

#[derive(Subcommand, Debug)]
enum HookLogCommand {
    Verify(verify::Args),
    Rotate(rotate::Args),
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    match args.command {
        HookLogCommand::Verify(args) => verify::run(args, ctx, out),
        HookLogCommand::Rotate(args) => rotate::run(args, ctx, out),
    }
}

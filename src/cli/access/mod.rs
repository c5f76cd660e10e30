//! `mvault access`: reviews of who may do what.

mod review;

use std::io::Write;

use clap::Subcommand;

use super::context::Ctx;
use super::error::CliResult;

/// Review who can do what: grants, keys, activity, old data keys.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    #[command(subcommand)]
    command: AccessCommand,
}

#[derive(Subcommand, Debug)]
enum AccessCommand {
    Review(review::Args),
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    match args.command {
        AccessCommand::Review(args) => review::run(args, ctx, out),
    }
}

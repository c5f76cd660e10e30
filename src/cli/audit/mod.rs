//! `mvault audit`: checks of the whole record.

mod verify;

use std::io::Write;

use clap::Subcommand;

use super::context::Ctx;
use super::error::CliResult;

/// Check the integrity of the whole record.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    Verify(verify::Args),
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    match args.command {
        AuditCommand::Verify(args) => verify::run(args, ctx, out),
    }
}

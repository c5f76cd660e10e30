//! `mvault completions SHELL`: the shell completion script, generated from
//! the same clap definitions as the parser and `--help`, so it offers every
//! command, option and listed value (stages, log actions) there is.

use std::io::Write;

use clap::CommandFactory;

use super::context::Ctx;
use super::error::CliResult;
use super::Cli;

/// Print the completion script for a shell (see the README's Install
/// section for where to put it).
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

/// Write the completion script for the shell to `out`.
pub(super) fn run(args: Args, _ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    // Generated into memory first: clap_complete panics on a failed write,
    // and a reader that leaves (`| head`) is not a failure.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "mvault", &mut script);
    out.write_all(&script)?;
    Ok(())
}

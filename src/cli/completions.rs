//! `mvault completions SHELL`: the shell completion script, generated from
//! the same clap definitions as the parser and `--help`, so it offers every
//! command, option and listed value (stages, log actions) there is.

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, CliResult};

/// Write the completion script for `shell` to `out`.
pub(super) fn run(shell: clap_complete::Shell, out: &mut dyn Write) -> CliResult {
    // Generated into memory first: clap_complete panics on a failed write,
    // and a reader that leaves (`| head`) is not a failure.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "mvault", &mut script);
    out.write_all(&script)?;
    Ok(())
}

//! `mvault man DIR`: one man page per command and subcommand, rendered by
//! clap_mangen from the same clap definitions as `--help`, so the help text
//! is written once (the doc comments on the clap structs).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::context::Ctx;
use super::error::{CliError, CliResult};
use super::Cli;

/// Write a man page for mvault and one for each command and subcommand
/// (mvault.1, mvault-promote.1, mvault-policy-grant.1, …) into DIR.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Where to write them; created if missing.
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// Write `mvault.1` and `mvault-<command>[-<subcommand>].1` into the
/// directory, and list the files written.
pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let dir = &ctx.path(&args.dir);
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    // Built, so each subcommand's display name is its full name
    // (mvault-policy-grant) and the global options reach every page.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();
    write_pages(command, dir, &mut written)?;
    for page in &written {
        writeln!(out, "{}", page.display())?;
    }
    Ok(())
}

/// The page of `command`, then those of its subcommands, depth first.
fn write_pages(command: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> CliResult {
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    let page = clap_mangen::Man::new(command).source(concat!("mvault ", env!("CARGO_PKG_VERSION")));
    let path = dir.join(page.get_filename());
    page.generate_to(dir).map_err(|e| write_error(&path, e))?;
    written.push(path);
    for sub in subcommands {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

fn write_error(path: &Path, e: std::io::Error) -> CliError {
    CliError::user(format!("cannot write {}: {e}", path.display()))
}

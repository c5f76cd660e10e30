//! `mvault hook post-receive`: git's post-receive hook on the server.

use std::io::Write;

use mvault::server::receipts;

use crate::cli::context::Ctx;
use crate::cli::error::CliResult;

/// Run as git's post-receive hook (reads the updates that landed on
/// stdin): write the server's receipt and log that the push landed.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {}

pub(in crate::cli) fn run(_args: Args, ctx: &Ctx, _out: &mut dyn Write) -> CliResult {
    let git_dir = super::git_dir(ctx);
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
    let lines = std::panic::catch_unwind(|| {
        receipts::post_receive(&git_dir, &input, |k| std::env::var(k).ok(), ctx.now)
    })
    .unwrap_or_else(|_| vec!["mvault: warning: the post-receive hook crashed: no receipt".into()]);
    let mut err = std::io::stderr().lock();
    for l in &lines {
        writeln!(err, "{l}")?;
    }
    Ok(())
}

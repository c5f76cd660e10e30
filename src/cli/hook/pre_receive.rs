//! `mvault hook pre-receive`: git's pre-receive hook on the server.

use std::io::Write;

use mvault::vault::ErrorKind;
use mvault::verify::receive;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};

/// Run as git's pre-receive hook (reads git's lines on stdin).
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {}

pub(in crate::cli) fn run(_args: Args, ctx: &Ctx, _out: &mut dyn Write) -> CliResult {
    let git_dir = super::git_dir(ctx);
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
    // Fail closed: a panic anywhere refuses the push.
    let result = std::panic::catch_unwind(|| {
        receive::pre_receive(&git_dir, &input, |k| std::env::var(k).ok(), ctx.now)
    });
    let (ok, lines) = result.unwrap_or_else(|_| {
        (
            false,
            vec![
                "mvault: refused: internal error: the hook crashed".to_owned(),
                "hint: the hook fails closed; ask the server admin to check mvault hook check"
                    .to_owned(),
            ],
        )
    });
    // The hook's lines go to git, which relays stderr to the pusher.
    let mut err = std::io::stderr().lock();
    for l in &lines {
        writeln!(err, "{l}")?;
    }
    if !ok {
        return Err(CliError::new(ErrorKind::Policy, "push refused").quiet());
    }
    Ok(())
}

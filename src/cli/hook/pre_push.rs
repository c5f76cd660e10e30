//! `mvault hook pre-push`: the server's rules, run on the client before
//! a push (git's pre-push hook).

use std::io::Write;

use mvault::ops::register;
use mvault::vault::{ErrorKind, VaultError};
use mvault::verify::prepush;

use crate::cli::context::{load_identity, Ctx};
use crate::cli::error::{CliError, CliResult};

/// Client side: run the server's rules before a push (git's pre-push hook).
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The remote's name, as git passes it.
    remote: Option<String>,
    /// The remote's URL, as git passes it.
    url: Option<String>,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, _out: &mut dyn Write) -> CliResult {
    let store =
        mvault::store::Store::open(&ctx.dir).map_err(|e| CliError::from(VaultError::from(e)))?;
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
    // Who pushes, when it can be known here: the server decides anyway.
    // git runs this hook, so no --key: the usual lookup.
    let pusher = std::env::var("MVAULT_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let vault = ctx.vault().ok()?;
            let identity = load_identity(None, &ctx.dir).ok()?;
            register::signer_user(&vault.policy().ok()?, &identity).ok()
        });
    let (ok, lines) = prepush::pre_push(
        &store,
        args.remote.as_deref().unwrap_or("origin"),
        &input,
        pusher,
        ctx.now,
    );
    // The check's lines go to git, which shows stderr to the user.
    let mut err = std::io::stderr().lock();
    for l in &lines {
        writeln!(err, "{l}")?;
    }
    if !ok {
        return Err(CliError::new(ErrorKind::Policy, ""));
    }
    Ok(())
}

//! `mvault policy show`: the policy in force on main.

use std::io::Write;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Print the policy in force on main.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The policy as one JSON object, with the keys of policy.toml.
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let text = ctx.vault()?.policy()?.to_toml();
    render(out, &text, args.json)
}

fn render(out: &mut dyn Write, text: &str, json: bool) -> CliResult {
    if json {
        let value: toml::Value =
            toml::from_str(text).map_err(|e| CliError::user(format!("the policy as TOML: {e}")))?;
        return json_line(out, &value);
    }
    write!(out, "{text}")?;
    Ok(())
}

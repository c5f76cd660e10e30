//! `mvault witness REMOTE`: check the server's receipt chain and decision
//! log, then push a signed cosignature of its newest receipt.

use std::io::Write;

use mvault::ops::witness::{self, WitnessError};
use mvault::vault::ErrorKind;

use super::context::Ctx;
use super::error::{CliError, CliResult};
use super::render::json_line;

/// Witness a server: fetch its receipt chain, check every receipt's
/// signature by the server key the policy pins, the links between
/// receipts and the decision log's chain between their heads, and that it
/// extends this witness's last checkpoint; then push a cosignature of the
/// newest receipt to refs/mvault/witness/<you>. Needs the auditor role on
/// `**`.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// The server: a remote name or git URL.
    remote: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let identity = ctx.identity()?;
    let vault = ctx.vault()?;
    let w = witness::witness(&vault, &args.remote, &identity, ctx.now).map_err(cli_error)?;
    if args.json {
        return json_line(out, &w);
    }
    writeln!(
        out,
        "witnessed {}: receipt {} ({}) cosigned by {} at {}; {} receipt(s) and {} decision-log line(s) checked",
        mvault::model::text::escape(&w.remote),
        w.seq,
        w.receipt,
        w.witness,
        w.time,
        w.checked,
        w.log_lines
    )?;
    Ok(())
}

/// A witness failure as the user sees it.
pub(super) fn cli_error(e: WitnessError) -> CliError {
    match e {
        WitnessError::Vault(v) => CliError::from(*v),
        WitnessError::Broken(m) => CliError::new(ErrorKind::Integrity, format!("refused to cosign: {m}"))
            .hint("the server's record or decision log was rewritten: keep this witness's state and investigate with the server admin"),
        WitnessError::TooFewWitnesses(m) => CliError::new(ErrorKind::Integrity, m)
            .hint("ask the witnesses to run mvault witness REMOTE, or lower --witnesses / raise --witness-max-age"),
        WitnessError::NotAWitness(m) => CliError::new(ErrorKind::Policy, m)
            .hint("a witness needs the auditor role on '**': mvault policy grant USER --role auditor --models '**'"),
        other => CliError::user(other.to_string()),
    }
}

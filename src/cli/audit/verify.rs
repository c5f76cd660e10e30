//! `mvault audit verify`: replay the whole history and name the first break.

use std::io::Write;

use mvault::audit::events::AuditReport;
use mvault::vault::ErrorKind;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Replay the whole history: every signature against the policy in force
/// at its point, every manifest against its tree, every promotion chain
/// link and approval, every key ring against its readers. Names the
/// first break.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// Also decrypt every version your key can read and check every digest.
    #[arg(long)]
    decrypt: bool,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let identity = if args.decrypt {
        Some(ctx.identity()?)
    } else {
        None
    };
    let r = mvault::ops::audit::verify(&vault, identity.as_ref())?;
    render(out, &r, args.decrypt, args.json)?;
    match r.first_break {
        Some(b) => Err(CliError::new(
            ErrorKind::Integrity,
            format!("record broken at {}: {}: {}", b.object, b.rule, b.detail),
        )
        .hint("everything before this point verified; investigate this object (git show) and compare with the server")),
        None => Ok(()),
    }
}

fn render(out: &mut dyn Write, r: &AuditReport, decrypt: bool, json: bool) -> CliResult {
    if json {
        return json_line(out, r);
    }
    if r.ok {
        writeln!(
            out,
            "record intact: {} commits, {} tags, {} signatures checked{}",
            r.commits,
            r.tags,
            r.signatures,
            if decrypt {
                format!(
                    ", {} versions decrypted and every digest checked",
                    r.versions_decrypted
                )
            } else {
                String::new()
            }
        )?;
        if let Some(s) = &r.receipts {
            writeln!(
                out,
                "receipts: {} in the chain, {} from the pinned server key; {} commits and tags received under a receipt, {} from before receipts began{}",
                s.receipts,
                s.believed,
                s.received,
                s.before_receipts,
                if s.not_yet_covered > 0 {
                    format!(
                        ", {} newer than this clone's receipts (mvault sync fetches them)",
                        s.not_yet_covered
                    )
                } else {
                    String::new()
                }
            )?;
        }
    }
    Ok(())
}

//! `mvault list`: every version in the vault.

use std::io::Write;

use mvault::model::text::escape;
use mvault::vault::VersionSummary;

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;

/// List every version in the vault.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// JSON lines.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let versions = ctx.vault()?.list()?;
    render(out, &versions, args.json)
}

fn render(out: &mut dyn Write, versions: &[VersionSummary], json: bool) -> CliResult {
    for s in versions {
        if json {
            json_line(out, s)?;
        } else {
            writeln!(
                out,
                "{}@{}\t{} file(s)\t{} bytes\t{}\t{}",
                s.model,
                s.version,
                s.files,
                s.size,
                escape(&s.author),
                escape(&s.created)
            )?;
        }
    }
    Ok(())
}

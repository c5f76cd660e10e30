//! `mvault report`: a compliance report for a model and a period.

use std::io::Write;
use std::path::PathBuf;

use mvault::audit::report::{self, Report};
use mvault::model::names::ModelName;

use super::context::Ctx;
use super::error::{CliError, CliResult};
use super::render::write_escaped;
use super::values;

/// A compliance report for a model and a period.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    #[arg(value_parser = values::model)]
    model: ModelName,
    #[arg(long, value_parser = values::time)]
    since: Option<i64>,
    #[arg(long, value_parser = values::time)]
    until: Option<i64>,
    /// json, md or html (a single self-contained file).
    #[arg(long, value_enum, default_value_t = Format::Md)]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// The report as JSON (the same as --format json).
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

/// The report's formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    #[value(alias = "markdown")]
    Md,
    Html,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let r = mvault::ops::audit::report(
        &vault,
        &args.model,
        args.since,
        args.until,
        ctx.now,
        mvault::ops::audit::verify(&vault, None)?,
    )?;
    let text = render(&r, args.format, args.json)?;
    match &args.output {
        Some(p) => {
            let p = ctx.path(p);
            std::fs::write(&p, text)?;
            writeln!(out, "wrote {}", p.display())?;
        }
        None => write_escaped(out, &text)?,
    }
    Ok(())
}

fn render(r: &Report, format: Format, json: bool) -> Result<String, CliError> {
    let json_error = |e: serde_json::Error| CliError::user(e.to_string());
    Ok(match format {
        // --json: one line, like every other command's JSON.
        _ if json => serde_json::to_string(r).map_err(json_error)? + "\n",
        Format::Json => serde_json::to_string_pretty(r).map_err(json_error)? + "\n",
        Format::Md => report::markdown(r),
        Format::Html => report::html(r),
    })
}

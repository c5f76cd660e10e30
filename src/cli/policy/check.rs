//! `mvault policy check`: lint a policy file.

use std::io::Write;
use std::path::{Path, PathBuf};

use mvault::model::policy::PolicyError;
use mvault::ops::admin::{self, PolicySummary};
use mvault::vault::ErrorKind;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Lint a policy file; errors name the line.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    file: PathBuf,
    /// One JSON object: ok, and the counts or the error.
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, _ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::user(format!("cannot read {}: {e}", args.file.display())))?;
    let checked = admin::check_policy_text(&text);
    render(out, &args.file, &checked, args.json)?;
    match checked {
        Ok(_) => Ok(()),
        Err(e) => Err(CliError::new(
            ErrorKind::Integrity,
            format!("{}: {e}", args.file.display()),
        )),
    }
}

fn render(
    out: &mut dyn Write,
    file: &Path,
    checked: &Result<PolicySummary, PolicyError>,
    json: bool,
) -> CliResult {
    if json {
        return json_line(
            out,
            &match checked {
                Ok(summary) => serde_json::json!({
                    "file": file.display().to_string(),
                    "ok": true,
                    "summary": summary,
                    "error": null,
                }),
                Err(e) => serde_json::json!({
                    "file": file.display().to_string(),
                    "ok": false,
                    "summary": null,
                    "error": e.to_string(),
                }),
            },
        );
    }
    if let Ok(summary) = checked {
        writeln!(out, "{}: ok: {summary}", file.display())?;
    }
    Ok(())
}

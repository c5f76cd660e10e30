//! `mvault policy check`: lint a policy file.

use std::io::Write;
use std::path::{Path, PathBuf};

use mvault::model::policy::PolicyError;
use mvault::model::text::escape;
use mvault::ops::admin::{self, PolicySummary};
use mvault::vault::ErrorKind;

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Lint a policy file; errors name the line (and column). Run in a
/// vault, it also warns (on stderr) about globs that match none of its
/// models.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    file: PathBuf,
    /// One JSON object: ok, and the counts or the error.
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::user(format!("cannot read {}: {e}", args.file.display())))?;
    // The models of the vault the check runs in, if it runs in one: globs
    // that match none of them are warned about.
    let known = match ctx.vault() {
        Ok(v) => admin::model_names(&v).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let checked = admin::check_policy_text(&text, &known);
    if let Ok(summary) = &checked {
        for w in &summary.warnings {
            eprintln!(
                "mvault: warning: {}: {}",
                args.file.display(),
                escape(&w.to_string())
            );
        }
    }
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

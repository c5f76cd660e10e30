//! `mvault verify`: check a version (decrypting every blob), or a deployed
//! directory against its manifest.

use std::io::Write;
use std::path::{Path, PathBuf};

use mvault::model::names::VersionRef;
use mvault::model::text::escape;
use mvault::ops::retrieve::{self, DirProblem, Verified};
use mvault::vault::VaultError;

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// Verify a version's signatures and every blob (decrypting), or a
/// deployed directory against the manifest (--dir).
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// nlp/bert@1.2.0, or nlp/bert for the newest version.
    #[arg(value_parser = values::version_ref)]
    reference: VersionRef,
    /// Compare this directory with the manifest instead (no key needed).
    #[arg(long = "dir", id = "check_dir", value_name = "DIR")]
    check_dir: Option<PathBuf>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    match &args.check_dir {
        Some(d) => {
            let d = ctx.path(d);
            let (v, problems) = retrieve::verify_dir(&vault, &args.reference, &d)?;
            render_dir(out, &v, &problems, &d, args.json)?;
            if !problems.is_empty() {
                return Err(VaultError::DirMismatch {
                    dir: d.display().to_string(),
                    model: v.model,
                    version: v.version,
                    count: problems.len(),
                }
                .into());
            }
            Ok(())
        }
        None => {
            let identity = ctx.identity()?;
            let v = retrieve::verify(&vault, &args.reference, &identity, &ctx.progress)?;
            render(out, &v, args.json)
        }
    }
}

fn render(out: &mut dyn Write, v: &Verified, json: bool) -> CliResult {
    if json {
        return json_line(out, v);
    }
    writeln!(
        out,
        "verified {}@{}: manifest and commit signatures, {} blob(s) decrypted, {} bytes, every digest matches",
        v.model, v.version, v.files, v.bytes
    )?;
    Ok(())
}

/// Each difference between the directory and the manifest, or that it
/// matches.
fn render_dir(
    out: &mut dyn Write,
    v: &Verified,
    problems: &[DirProblem],
    d: &Path,
    json: bool,
) -> CliResult {
    if json {
        return json_line(
            out,
            &serde_json::json!({"verified": v, "problems": problems}),
        );
    }
    for p in problems {
        match p {
            DirProblem::Missing { path } => writeln!(out, "missing     {}", escape(path))?,
            DirProblem::Changed {
                path,
                check,
                expected,
                found,
            } => writeln!(
                out,
                "changed     {} ({check}: expected {expected}, found {})",
                escape(path),
                escape(found)
            )?,
            DirProblem::Unexpected { path } => writeln!(out, "unexpected  {}", escape(path))?,
        }
    }
    if problems.is_empty() {
        writeln!(
            out,
            "{} matches {}@{}: {} file(s)",
            d.display(),
            v.model,
            v.version,
            v.files
        )?;
    }
    Ok(())
}

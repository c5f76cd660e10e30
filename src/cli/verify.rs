//! `mvault verify`: check a version (decrypting every blob), a deployed
//! directory against its manifest, or a Python environment against its
//! dependency pins.

use std::io::Write;
use std::path::{Path, PathBuf};

use mvault::model::names::VersionRef;
use mvault::model::text::escape;
use mvault::ops::deps::{self, DepProblem, DepsReport, Strictness};
use mvault::ops::retrieve::{self, DirProblem, Verified};
use mvault::vault::VaultError;

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// Verify a version's signatures and every blob (decrypting), or a
/// deployed directory against the manifest (--dir), or a Python
/// environment against the version's dependency pins (--deps).
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// nlp/bert@1.2.0, or nlp/bert for the newest version.
    #[arg(value_parser = values::version_ref)]
    reference: VersionRef,
    /// Compare this directory with the manifest instead (no key needed).
    #[arg(long = "dir", id = "check_dir", value_name = "DIR")]
    check_dir: Option<PathBuf>,
    /// Compare the installed Python packages with the version's pins
    /// instead (no key needed); each difference on its own line, exit 4.
    #[arg(long, conflicts_with = "check_dir")]
    deps: bool,
    /// The interpreter to ask (default: $VIRTUAL_ENV/bin/python, else
    /// python3 on PATH).
    #[arg(long, value_name = "PATH", requires = "deps")]
    python: Option<PathBuf>,
    /// Installed packages that no pin names are differences too (pip,
    /// setuptools, wheel and distribute excepted, as pip freeze leaves
    /// them out).
    #[arg(long, requires = "deps")]
    strict: bool,
    /// Check the SHA-256 of each wheel in DIR (the wheels the environment
    /// was installed from) against the pinned digests.
    #[arg(long, value_name = "DIR", requires = "deps")]
    wheels: Option<PathBuf>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    if args.deps {
        let python = args
            .python
            .as_deref()
            .map_or_else(deps::default_python, |p| ctx.path(p));
        let wheels = args.wheels.as_deref().map(|w| ctx.path(w));
        let how = Strictness {
            extras: args.strict,
        };
        let r = deps::verify_deps(&vault, &args.reference, &python, wheels.as_deref(), how)?;
        render_deps(out, &r, args.json)?;
        if !r.problems.is_empty() {
            return Err(VaultError::DepsMismatch {
                model: r.model,
                version: r.version,
                count: r.problems.len(),
            }
            .into());
        }
        return Ok(());
    }
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
            let v = retrieve::verify(&vault, &args.reference, &identity, &ctx.progress)
                .inspect_err(|e| {
                    super::pull::report_finding(
                        ctx,
                        &vault,
                        Some(&identity),
                        "verify",
                        &args.reference,
                        e,
                    )
                })?;
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

/// `--deps`: one line per difference, or that the environment matches.
fn render_deps(out: &mut dyn Write, r: &DepsReport, json: bool) -> CliResult {
    if json {
        return json_line(out, r);
    }
    for p in &r.problems {
        let line = match p {
            DepProblem::Missing { name, pinned } => {
                format!("missing        {name} (pinned {})", pinned.join(" or "))
            }
            DepProblem::OtherVersion {
                name,
                pinned,
                installed,
            } => format!(
                "other version  {name} {} (pinned {})",
                escape(installed),
                pinned.join(" or ")
            ),
            DepProblem::Extra { name, installed } => {
                format!("extra          {} {}", escape(name), escape(installed))
            }
            DepProblem::NoVersion { name, pinned } if pinned.is_empty() => format!(
                "no version     {} is installed without a version in its metadata",
                escape(name)
            ),
            DepProblem::NoVersion { name, pinned } => format!(
                "no version     {} is installed without a version in its metadata (pinned {})",
                escape(name),
                pinned.join(" or ")
            ),
            DepProblem::WheelDigest {
                file,
                name,
                version,
                sha256,
            } => format!(
                "wheel digest   {} ({name} {}): sha256 {sha256} is not pinned",
                escape(file),
                escape(version)
            ),
            DepProblem::NoDigestPinned {
                file,
                name,
                version,
            } => format!(
                "no digest      {} ({name} {}): the pin records no artifact digest",
                escape(file),
                escape(version)
            ),
            DepProblem::UnpinnedWheel {
                file,
                name,
                version,
            } => format!(
                "unpinned wheel {} ({name} {})",
                escape(file),
                escape(version)
            ),
            DepProblem::NoWheel { name, version } => {
                format!(
                    "no wheel       {name} {} in the wheel directory",
                    escape(version)
                )
            }
        };
        writeln!(out, "{line}")?;
    }
    for s in &r.skipped {
        writeln!(
            out,
            "not here       {} {}: marker {} does not hold for this interpreter",
            escape(&s.name),
            escape(&s.version),
            escape(&s.marker)
        )?;
    }
    if r.problems.is_empty() {
        writeln!(
            out,
            "python {} at {} matches the {} pinned package(s) of {}@{}{}",
            escape(&r.python),
            escape(&r.interpreter),
            r.pinned,
            r.model,
            r.version,
            match r.wheels {
                Some(n) => format!(", and {n} wheel(s) their digests"),
                None => String::new(),
            }
        )?;
    }
    Ok(())
}

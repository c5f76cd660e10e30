//! `mvault deploy` and `mvault deployments`: record that a version went to
//! an environment, and show what is deployed where.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use mvault::model::names::{ModelName, VersionRef};
use mvault::model::text::escape;
use mvault::ops::deploy;

use super::{json_line, load_identity, open_vault, CliResult};

/// Arguments of `mvault deploy`.
#[derive(Args, Debug)]
pub(super) struct DeployArgs {
    /// nlp/bert#production for what a stage serves, or nlp/bert@1.2.0.
    reference: String,
    /// The environment, as the policy's [[environments]] name it.
    #[arg(long, value_name = "ENVIRONMENT")]
    env: String,
    /// Why (one line; recorded in the record and the commit).
    #[arg(long)]
    reason: Option<String>,
    /// Keep the record local even when the clone has a remote.
    #[arg(long)]
    no_push: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `mvault deployments`.
#[derive(Args, Debug)]
pub(super) struct DeploymentsArgs {
    /// Only this model.
    model: Option<String>,
    /// One JSON object: the current deployments and the history.
    #[arg(long)]
    json: bool,
}

/// `mvault deploy REF --env ENV`.
pub(super) fn run_deploy(
    args: DeployArgs,
    key_path: &Option<PathBuf>,
    dir: &Path,
    now: time::OffsetDateTime,
    out: &mut dyn Write,
) -> CliResult {
    let r = VersionRef::parse(&args.reference)?;
    let vault = open_vault(dir)?;
    let identity = load_identity(key_path, dir)?;
    let o = deploy::deploy(
        &vault,
        &r,
        &args.env,
        args.reason.as_deref(),
        &identity,
        now,
        !args.no_push,
    )?;
    if args.json {
        return json_line(out, &o);
    }
    writeln!(
        out,
        "deployed {}@{} ({}) to {}: commit {}{}",
        o.model,
        o.version,
        o.stage,
        o.environment,
        o.commit,
        match &o.previous {
            Some(p) => format!(", replacing {p}"),
            None => String::new(),
        }
    )?;
    match &o.pushed {
        Some(r) => writeln!(out, "pushed to {r}")?,
        None => writeln!(out, "not pushed (no remote, or --no-push)")?,
    }
    Ok(())
}

/// `mvault deployments [MODEL]`.
pub(super) fn run_deployments(
    args: DeploymentsArgs,
    dir: &Path,
    now: time::OffsetDateTime,
    out: &mut dyn Write,
) -> CliResult {
    let model = args.model.as_deref().map(ModelName::parse).transpose()?;
    let vault = open_vault(dir)?;
    let d = deploy::deployments(&vault, model.as_ref(), now.unix_timestamp())?;
    if args.json {
        return json_line(out, &d);
    }
    if d.current.is_empty() {
        writeln!(out, "nothing deployed")?;
    }
    for c in &d.current {
        writeln!(
            out,
            "{}  {}@{}  ({})  by {} at {}",
            escape(&c.environment),
            escape(&c.model),
            escape(&c.version),
            c.stage,
            escape(&c.deployed_by),
            c.time
        )?;
    }
    if !d.history.is_empty() {
        writeln!(out, "\nhistory:")?;
    }
    for e in &d.history {
        writeln!(
            out,
            "{}  {} deployed {}@{} to {}{}",
            e.time,
            escape(&e.actor),
            escape(e.model.as_deref().unwrap_or("?")),
            escape(e.version.as_deref().unwrap_or("?")),
            escape(e.environment.as_deref().unwrap_or("?")),
            e.reason
                .as_deref()
                .map(|r| format!(": {}", escape(r)))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

//! `mvault pull`: decrypt and verify a version into a directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use mvault::crypto::SshIdentity;
use mvault::model::names::VersionRef;
use mvault::model::text::escape;
use mvault::ops::report;
use mvault::ops::retrieve::{self, Verified};
use mvault::ops::sync::freshness::{MaxAge, DEFAULT_PULL_FROM_MAX_AGE};
use mvault::vault::{Vault, VaultError};

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// Decrypt and verify a version, then write it to a directory. In a
/// clone, the version's payload is fetched from the remote when the
/// clone lacks it; with --from, no clone is needed.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// nlp/bert@1.2.0, nlp/bert for the newest version, or
    /// nlp/bert#production for what a stage serves.
    #[arg(value_parser = values::version_ref)]
    reference: VersionRef,
    /// Destination directory.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Pull straight from a server (any git URL): the record is kept in
    /// a cache directory, and only this version's payload is fetched.
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// The cache directory for --from (default
    /// $XDG_CACHE_HOME/mvault/<hash of the URL>).
    #[arg(long, value_name = "DIR", requires = "from")]
    cache: Option<PathBuf>,
    /// Refuse a version that may not be deployed to this environment
    /// (not in the stage it requires, or a model it may not serve).
    #[arg(long, value_name = "ENVIRONMENT")]
    env: Option<String>,
    /// Refuse a server whose signed timestamp is older than this (90s,
    /// 15m, 24h, 7d): a frozen server serves an old record as if it were
    /// current. With --from it defaults to 24h when the vault pins a
    /// server key; in a clone it also refreshes the record first.
    #[arg(long, value_name = "AGE", value_parser = values::max_age)]
    max_age: Option<i64>,
    /// Require this many witnesses (auditors) to have cosigned the
    /// server's receipt chain, as this clone sees it, since the newest
    /// receipt recording a promotion of the model; refuse otherwise.
    #[arg(long, value_name = "K", conflicts_with = "from")]
    witnesses: Option<usize>,
    /// With --witnesses: count only cosignatures newer than this (90s,
    /// 30m, 12h, 2d).
    #[arg(long, value_name = "AGE", value_parser = values::max_age, requires = "witnesses")]
    witness_max_age: Option<i64>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let output = ctx.path(&args.output);
    let identity = ctx.identity()?;
    let r = &args.reference;
    let env = args.env.as_deref();
    let v = match &args.from {
        Some(url) => {
            let cache = args.cache.as_deref().map(|c| ctx.path(c));
            retrieve::pull_from(
                &retrieve::FromServer {
                    url,
                    cache: cache.as_deref(),
                    max_age: MaxAge {
                        seconds: args.max_age.unwrap_or(DEFAULT_PULL_FROM_MAX_AGE),
                        explicit: args.max_age.is_some(),
                    },
                },
                r,
                env,
                &output,
                &identity,
                &ctx.progress,
            )?
        }
        None => {
            let vault = ctx.vault()?;
            let pulled = match retrieve::refresh_for(
                &vault,
                r,
                args.max_age.map(|seconds| MaxAge {
                    seconds,
                    explicit: true,
                }),
            ) {
                Ok(warning) => {
                    if let Some(warning) = warning {
                        eprintln!("mvault: warning: {warning}");
                    }
                    if let Some(count) = args.witnesses {
                        require_witnesses(&vault, r, count, args.witness_max_age, ctx)?;
                    }
                    retrieve::pull(&vault, r, env, &output, &identity, &ctx.progress)
                }
                Err(e) => Err(e),
            };
            match pulled {
                Ok(v) => v,
                Err(e) => {
                    report_finding(ctx, &vault, Some(&identity), "pull", r, &e);
                    return Err(e.into());
                }
            }
        }
    };
    render(out, &v, &output, args.json)
}

/// When `e` is an integrity failure, note it in the clone's event log and
/// send a signed report to the remote, saying on stderr whether it went;
/// the caller's error stays what it was.
pub(super) fn report_finding(
    ctx: &Ctx,
    vault: &Vault,
    signer: Option<&SshIdentity>,
    command: &'static str,
    reference: &VersionRef,
    e: &VaultError,
) {
    let finding = report::Finding {
        command,
        reference,
        error: e,
    };
    if let Some(incident) = report::report_finding(vault, signer, finding, ctx.now) {
        match (&incident.report_ref, &incident.send_error) {
            (Some(r), _) => eprintln!("mvault: integrity report sent: {}", escape(r)),
            (None, why) => eprintln!(
                "mvault: integrity report not sent: {}",
                escape(why.as_deref().unwrap_or("unknown reason"))
            ),
        }
    }
}

/// `--witnesses K`: refuse unless K witnesses cosigned the chain this
/// clone sees from its remote.
fn require_witnesses(
    vault: &mvault::vault::Vault,
    r: &VersionRef,
    count: usize,
    max_age: Option<i64>,
    ctx: &Ctx,
) -> CliResult {
    use mvault::ops::witness::{require_witnesses, WitnessRequirement};
    let remote = mvault::ops::sync::remote(vault)
        .ok_or_else(|| super::error::CliError::user("--witnesses needs a clone with a remote"))?;
    let need = WitnessRequirement { count, max_age };
    require_witnesses(vault, &remote, r.model(), need, ctx.now)
        .map_err(super::witness::cli_error)?;
    Ok(())
}

fn render(out: &mut dyn Write, v: &Verified, output: &Path, json: bool) -> CliResult {
    if json {
        return json_line(out, v);
    }
    writeln!(
        out,
        "pulled {}@{} into {}: {} file(s), {} bytes, signed by {}, every digest verified",
        v.model,
        v.version,
        output.display(),
        v.files,
        v.bytes,
        v.author
    )?;
    Ok(())
}

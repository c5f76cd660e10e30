//! `mvault hook log verify`: no line of the decision log edited, removed
//! or inserted, across its sealed segments.

use std::io::Write;
use std::path::PathBuf;

use mvault::server::log as server_log;
use mvault::server::segments::{self, LogVerification};
use mvault::vault::{ErrorKind, VaultError};

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Check that no line of the decision log was edited, removed or inserted:
/// the seals of rotated segments, each sealed segment present, the live log.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The bare repository (default: the current one).
    repo: Option<PathBuf>,
    /// A directory holding archived segments (`mvault-decisions.NNNNNN.jsonl`)
    /// moved out of the repository; may be repeated.
    #[arg(long = "segments", value_name = "DIR")]
    segments: Vec<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let repo = args
        .repo
        .as_deref()
        .map(|r| ctx.path(r))
        .unwrap_or_else(|| ctx.dir.clone());
    let store =
        mvault::store::Store::open(&repo).map_err(|e| CliError::from(VaultError::from(e)))?;
    let archives: Vec<PathBuf> = args.segments.iter().map(|d| ctx.path(d)).collect();
    match segments::verify_segments(store.git_dir(), &archives) {
        Ok(v) => render(out, &v, args.json),
        Err(e) => Err(CliError::new(ErrorKind::Integrity, e.to_string())
            .hint("the server's decision log was altered; compare with a backup and investigate")),
    }
}

fn render(out: &mut dyn Write, v: &LogVerification, json: bool) -> CliResult {
    if json {
        let segments: Vec<serde_json::Value> = v
            .segments
            .iter()
            .map(|s| {
                serde_json::json!({
                    "segment": s.seal.segment,
                    "file": segments::segment_file(s.seal.segment),
                    "entries": s.seal.entries,
                    "last": s.seal.last,
                    "present": s.location.is_some(),
                })
            })
            .collect();
        return json_line(
            out,
            &serde_json::json!({
                "log": server_log::LOG_FILE,
                "entries": v.entries(),
                "intact": true,
                "segments": segments,
                "verified_from_seal": v.verified_from,
            }),
        );
    }
    for s in &v.segments {
        let file = segments::segment_file(s.seal.segment);
        match &s.location {
            Some(path) => writeln!(
                out,
                "{file}: sealed segment {}, {} entries, verified ({})",
                s.seal.segment,
                s.seal.entries,
                path.display()
            )?,
            None => writeln!(
                out,
                "{file}: sealed segment {}, {} entries, not present (archived); its seal is in the chain",
                s.seal.segment, s.seal.entries
            )?,
        }
    }
    let from = match v.verified_from {
        Some(n) => format!(
            "verified from seal {n} (last hash {})",
            v.segments[n as usize - 1].seal.last
        ),
        None => "verified from the first line".to_owned(),
    };
    writeln!(
        out,
        "{}: {} entries (decisions and fetches), chain intact, {from}",
        server_log::LOG_FILE,
        v.entries()
    )?;
    Ok(())
}

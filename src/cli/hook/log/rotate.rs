//! `mvault hook log rotate`: seal the live decision log as the next
//! segment, so it can be archived without breaking verification.

use std::io::Write;
use std::path::PathBuf;

use mvault::server::segments::{self, RotateError, Rotation};
use mvault::vault::{ErrorKind, VaultError};

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::render::json_line;

/// Seal the live decision log as the next segment
/// (`mvault-decisions.NNNNNN.jsonl`, its seal in `mvault-decisions.seals`);
/// the live log starts again empty and chains from the seal. Safe while
/// pushes run; run it from cron.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The bare repository (default: the current one).
    repo: Option<PathBuf>,
    /// Rotate only when the live log holds at least this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    if_larger_than: u64,
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
    let rotation =
        segments::rotate(store.git_dir(), ctx.now, args.if_larger_than).map_err(|e| match e {
            RotateError::Broken(_) => CliError::new(ErrorKind::Integrity, e.to_string())
                .hint("run mvault hook log verify and investigate before sealing"),
            RotateError::Io(_) => CliError::user(e.to_string()),
        })?;
    match rotation {
        Rotation::Sealed(seal) => {
            let file = segments::segment_file(seal.segment);
            if args.json {
                return json_line(
                    out,
                    &serde_json::json!({
                        "rotated": true,
                        "segment": seal.segment,
                        "file": file,
                        "entries": seal.entries,
                        "bytes": seal.bytes,
                        "last": seal.last,
                    }),
                );
            }
            writeln!(
                out,
                "sealed segment {} ({file}): {} entries, {} bytes, last hash {}; the live log continues from it",
                seal.segment, seal.entries, seal.bytes, seal.last
            )?;
        }
        Rotation::Kept { bytes } => {
            if args.json {
                return json_line(
                    out,
                    &serde_json::json!({ "rotated": false, "bytes": bytes }),
                );
            }
            writeln!(
                out,
                "not rotated: the live log holds {bytes} bytes (needs at least one entry and {} bytes)",
                args.if_larger_than
            )?;
        }
    }
    Ok(())
}

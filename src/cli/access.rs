//! `mvault access review`: for each model, who can read, register,
//! promote, approve, deploy, roll back and administer it, through which
//! grant; keys and their expiry; last activity; stale users; former
//! readers who still hold old data keys.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use time::OffsetDateTime;

use mvault::audit::{access, access_text};

use super::{json_line, open_vault, CliResult};

#[derive(Subcommand, Debug)]
pub(super) enum AccessCommand {
    /// For each model, who can read, register, promote, approve, deploy,
    /// roll back and administer it, and through which grant; every key
    /// with its fingerprint and expiry; each user's last activity (from
    /// the record, and from the server's log when run on the server's
    /// repository); users with grants and no recent activity; former
    /// readers who still hold an old data-key generation.
    Review(ReviewArgs),
}

#[derive(Args, Debug)]
pub(super) struct ReviewArgs {
    /// Only models matching this glob (`*` stays within one segment of a
    /// model name, `**` crosses them).
    #[arg(long, value_name = "GLOB")]
    model: Option<String>,
    /// A user with grants and no activity for this many days is stale.
    #[arg(long, value_name = "N", default_value_t = access::DEFAULT_STALE_DAYS)]
    stale_days: u64,
    /// text, md, or html (a single self-contained page).
    #[arg(long, value_enum, default_value_t = ReviewFormat::Text)]
    format: ReviewFormat,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The review as one line of JSON.
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(super) enum ReviewFormat {
    Text,
    Md,
    Html,
}

pub(super) fn run(
    cmd: AccessCommand,
    dir: &Path,
    now: OffsetDateTime,
    out: &mut dyn Write,
) -> CliResult {
    let AccessCommand::Review(a) = cmd;
    let vault = open_vault(dir)?;
    let glob = a
        .model
        .as_deref()
        .map(super::audit::model_glob)
        .transpose()?;
    let r = mvault::ops::audit::access_review(&vault, glob.as_ref(), a.stale_days, now)?;
    if a.json {
        return json_line(out, &r);
    }
    let text = match a.format {
        ReviewFormat::Text => access_text::text(&r),
        ReviewFormat::Md => access_text::markdown(&r),
        ReviewFormat::Html => access_text::html(&r),
    };
    match a.output {
        Some(p) => {
            let p = if p.is_relative() { dir.join(p) } else { p };
            std::fs::write(&p, text)?;
            writeln!(out, "wrote {}", p.display())?;
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}

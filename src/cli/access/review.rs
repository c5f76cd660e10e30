//! `mvault access review`: who can do what on each model, through which
//! grant; keys and expiry; last activity; stale users; former readers who
//! still hold old data keys.

use std::io::Write;
use std::path::PathBuf;

use mvault::audit::{access, access_text};

use crate::cli::context::Ctx;
use crate::cli::error::CliResult;
use crate::cli::render::json_line;
use crate::cli::values;

/// For each model, who can read, register, promote, approve, deploy, roll
/// back and administer it, and through which grant; every key with its
/// fingerprint and expiry; each user's last activity (from the record, and
/// from the server's log when run on the server's repository); users with
/// grants and no recent activity; former readers who still hold an old
/// data-key generation, and the versions it opens.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// Only models matching this glob (`*` stays within one segment of a
    /// model name, `**` crosses them).
    #[arg(long, value_name = "GLOB", value_parser = values::model_glob)]
    model: Option<globset::GlobMatcher>,
    /// A user with grants and no activity for this many days is stale.
    #[arg(long, value_name = "N", default_value_t = access::DEFAULT_STALE_DAYS)]
    stale_days: u64,
    /// text, md, or html (a single self-contained page).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The review as one line of JSON.
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

/// The review's formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::cli) enum Format {
    Text,
    #[value(alias = "markdown")]
    Md,
    Html,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let r =
        mvault::ops::audit::access_review(&vault, args.model.as_ref(), args.stale_days, ctx.now)?;
    if args.json {
        return json_line(out, &r);
    }
    // The renderers escape what they take from the repository.
    let text = match args.format {
        Format::Text => access_text::text(&r),
        Format::Md => access_text::markdown(&r),
        Format::Html => access_text::html(&r),
    };
    match &args.output {
        Some(p) => {
            let p = ctx.path(p);
            std::fs::write(&p, text)?;
            writeln!(out, "wrote {}", p.display())?;
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(())
}

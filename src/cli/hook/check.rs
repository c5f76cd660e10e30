//! `mvault hook check`: whether a server repository is installed correctly.

use std::io::Write;
use std::path::PathBuf;

use mvault::server::install::{self as hook_install, CheckItem};

use crate::cli::context::Ctx;
use crate::cli::error::CliResult;
use crate::cli::render::json_line;

/// Report whether a server repository is installed correctly: the
/// hook, the pinned keys, the git options, HEAD, and whether fetches
/// are logged.
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    /// The bare repository.
    repo: PathBuf,
    /// The git config file the server's git reads as global, when it
    /// is not this shell's (a web server's GIT_CONFIG_GLOBAL).
    #[arg(long, value_name = "FILE")]
    log_fetches: Option<PathBuf>,
    /// Who runs the repository's hooks (see hook install --layout).
    #[arg(long, value_enum, default_value_t = super::LayoutArg::Auto)]
    layout: super::LayoutArg,
    /// GitLab's server-wide custom_hooks_dir, when the hook was chained there.
    #[arg(long, value_name = "DIR")]
    forge_hooks_dir: Option<PathBuf>,
    /// One JSON object per check: status (ok, warn, fail) and what.
    #[arg(long)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let repo = ctx.path(&args.repo);
    let log_fetches = args.log_fetches.as_deref().map(|f| ctx.path(f));
    let forge_hooks_dir = args.forge_hooks_dir.as_deref().map(|f| ctx.path(f));
    let items = hook_install::check(
        &repo,
        &hook_install::CheckRequest {
            log_fetches: log_fetches.as_deref(),
            layout: args.layout.layout(),
            forge_hooks_dir: forge_hooks_dir.as_deref(),
        },
    );
    render(out, &items, args.json)?;
    super::not_installed(&repo, &items)
}

fn render(out: &mut dyn Write, items: &[CheckItem], json: bool) -> CliResult {
    if json {
        for i in items {
            json_line(out, i)?;
        }
        return Ok(());
    }
    super::print_check(out, items)
}

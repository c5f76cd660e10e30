//! `mvault list`: every version in the vault.

use std::io::Write;

use mvault::model::manifest::ModelType;
use mvault::model::text::escape;
use mvault::vault::VersionSummary;

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// List every version in the vault.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Only versions of this model type.
    #[arg(long = "type", value_name = "TYPE", value_parser = values::model_type())]
    model_type: Option<ModelType>,
    /// Only versions with this label (repeatable: every one).
    #[arg(long = "label", value_name = "LABEL", value_parser = values::label)]
    labels: Vec<String>,
    /// JSON lines.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let versions: Vec<VersionSummary> = ctx
        .vault()?
        .list()?
        .into_iter()
        .filter(|s| args.keeps(s))
        .collect();
    render(out, &versions, args.json)
}

impl Args {
    /// `--type` and every `--label`.
    fn keeps(&self, s: &VersionSummary) -> bool {
        self.model_type
            .is_none_or(|t| s.model_type == Some(t.as_str()))
            && self.labels.iter().all(|l| s.labels.contains(l))
    }
}

fn render(out: &mut dyn Write, versions: &[VersionSummary], json: bool) -> CliResult {
    for s in versions {
        if json {
            json_line(out, s)?;
        } else {
            writeln!(
                out,
                "{}@{}\t{} file(s)\t{} bytes\t{}\t{}",
                s.model,
                s.version,
                s.files,
                s.size,
                escape(&s.author),
                escape(&s.created)
            )?;
        }
    }
    Ok(())
}

//! `mvault status`: what each stage serves, and why.

use std::io::Write;

use mvault::model::names::ModelName;
use mvault::model::text::escape;
use mvault::ops::release::{self, ModelStatus};

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// What each stage of every model serves, and why; each version's stage.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// Only this model.
    #[arg(value_parser = values::model)]
    model: Option<ModelName>,
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    for m in release::status(&vault, args.model.as_ref())? {
        if args.json {
            json_line(out, &m)?;
        } else {
            render(out, &m)?;
        }
    }
    Ok(())
}

/// One model's status as text: each stage with what it serves and why,
/// each version with its stage, then every promotion tag not believed.
fn render(out: &mut dyn Write, m: &ModelStatus) -> CliResult {
    writeln!(
        out,
        "{}  latest {}",
        escape(&m.model),
        escape(m.latest.as_deref().unwrap_or("-"))
    )?;
    for h in &m.heads {
        writeln!(
            out,
            "  {:<12} {:<10} {}",
            h.stage.as_str(),
            escape(h.serving.as_deref().unwrap_or("-")),
            escape(&h.why())
        )?;
    }
    for v in &m.versions {
        let note = match &v.replaced_by {
            Some(tag) => format!(", replaced by {}", escape(tag)),
            None => String::new(),
        };
        writeln!(out, "    {:<16} {}{note}", escape(&v.version), v.stage)?;
    }
    for t in &m.untrusted_tags {
        writeln!(
            out,
            "  not believed: {}: {}: {}",
            escape(&t.object),
            escape(&t.rule),
            escape(&t.detail)
        )?;
    }
    if !m.untrusted_tags.is_empty() {
        writeln!(
            out,
            "  (left out above; {}#STAGE refuses until each is deleted, e.g. git tag -d '{}', or the server's copy is fetched with mvault sync)",
            escape(&m.model),
            escape(&m.untrusted_tags[0].object)
        )?;
    }
    Ok(())
}

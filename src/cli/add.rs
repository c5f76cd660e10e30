//! `mvault add`: register a model version.

use std::io::Write;
use std::path::PathBuf;

use mvault::model::names::{ModelName, Version};
use mvault::model::text::escape;
use mvault::ops::register::{self, AddOutcome, AddRequest};

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// Register a model version from a file or directory.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// A model file, or a directory of them (shards, tokenizer, config).
    path: PathBuf,
    /// Model name, e.g. nlp/bert.
    #[arg(long, value_parser = values::model)]
    model: ModelName,
    /// SemVer version, e.g. 1.2.0.
    #[arg(long, value_parser = values::version)]
    version: Version,
    /// The version this one was derived from (lineage).
    #[arg(long, value_parser = values::version)]
    parent: Option<Version>,
    /// Framework, e.g. pytorch.
    #[arg(long)]
    framework: Option<String>,
    /// Free metadata, KEY=VALUE (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = values::meta)]
    meta: Vec<(String, String)>,
    /// A numeric metric, KEY=NUMBER (repeatable).
    #[arg(long = "metric", value_name = "KEY=NUMBER", value_parser = values::metric)]
    metric: Vec<(String, f64)>,
    /// Provenance, KEY=VALUE: training_data, code_revision, params.* (repeatable).
    #[arg(long = "provenance", value_name = "KEY=VALUE", value_parser = values::provenance)]
    provenance: Vec<(String, String)>,
    #[command(flatten)]
    card: super::card::CardArgs,
    /// Commit message text.
    #[arg(long, short)]
    message: Option<String>,
    /// Keep the commit and tag local even when the clone has a remote.
    #[arg(long)]
    no_push: bool,
    /// The largest part a file is split into (bytes, or with K, M or
    /// G; default 16M, else git config mvault.partSize).
    #[arg(long, value_name = "SIZE", value_parser = values::part_size)]
    part_size: Option<u64>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let card = args.card.card(ctx)?;
    let vault = ctx.vault()?;
    let identity = ctx.identity()?;
    let o = register::add(
        &vault,
        AddRequest {
            path: ctx.path(&args.path),
            model: args.model,
            version: args.version,
            parent: args.parent,
            framework: args.framework,
            metadata: values::key_map(&args.meta),
            metrics: values::key_map(&args.metric),
            provenance: values::key_map(&args.provenance),
            card,
            message: args.message,
            identity: &identity,
            push: !args.no_push,
            now: ctx.now,
            part_size: args.part_size,
            progress: &ctx.progress,
        },
    )?;
    render(out, &o, args.json)
}

fn render(out: &mut dyn Write, o: &AddOutcome, json: bool) -> CliResult {
    if json {
        return json_line(out, o);
    }
    writeln!(
        out,
        "registered {}@{}: {} file(s), {} bytes, {} reused from earlier versions",
        o.model, o.version, o.files, o.bytes, o.reused
    )?;
    writeln!(out, "manifest sha256 {}", o.manifest_sha256)?;
    writeln!(out, "commit {} tag {}", o.commit, o.tag)?;
    if o.new_key_ring {
        writeln!(out, "created the key ring of {}", o.model)?;
    }
    if !o.key_rotated_for.is_empty() {
        writeln!(
            out,
            "rotated the data key of {}: {} no longer reader(s), cut off from this version on",
            o.model,
            escape(&o.key_rotated_for.join(", "))
        )?;
    }
    match &o.pushed {
        Some(p) if p.rebuilds > 0 => writeln!(
            out,
            "pushed to {} (rebuilt {} time(s) on a newer main)",
            p.remote, p.rebuilds
        )?,
        Some(p) => writeln!(out, "pushed to {}", p.remote)?,
        None => writeln!(out, "not pushed (no remote, or --no-push)")?,
    }
    Ok(())
}

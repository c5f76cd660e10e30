//! `mvault show`: one version's manifest summary and files.

use std::io::Write;

use mvault::model::names::VersionRef;
use mvault::model::text::escape;
use mvault::vault::{Vault, VersionRecord};

use super::context::Ctx;
use super::error::CliResult;
use super::render::json_line;
use super::values;

/// Show one version's manifest summary and files.
#[derive(clap::Args, Debug)]
pub(super) struct Args {
    /// nlp/bert@1.2.0, or nlp/bert for the newest version.
    #[arg(value_parser = values::version_ref)]
    reference: VersionRef,
    /// JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let vault = ctx.vault()?;
    let (m, v) = mvault::ops::resolve::resolve(&vault, &args.reference)?;
    let rec = vault.record(&m, &v)?;
    vault.verify_manifest_signature(&rec)?;
    render(out, &rec, args.json)
}

fn render(out: &mut dyn Write, rec: &VersionRecord, json: bool) -> CliResult {
    let s = Vault::summary(rec);
    if json {
        let files: Vec<_> = rec
            .manifest
            .files
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "size": f.size, "sha256": f.sha256.to_hex()}))
            .collect();
        return json_line(
            out,
            &serde_json::json!({
                "summary": s,
                "metadata": rec.manifest.metadata,
                "metrics": rec.manifest.metrics,
                "provenance": rec.manifest.provenance,
                "card": rec.manifest.card.view(),
                "data_key": rec.manifest.data_key,
                "files": files,
            }),
        );
    }
    writeln!(out, "{}@{}", s.model, s.version)?;
    if let Some(p) = &s.parent {
        writeln!(out, "parent      {}@{p}", s.model)?;
    }
    writeln!(
        out,
        "author      {} ({})",
        escape(&s.author),
        escape(&rec.manifest.author_key)
    )?;
    writeln!(out, "created     {}", escape(&s.created))?;
    if let Some(f) = &s.framework {
        writeln!(out, "framework   {}", escape(f))?;
    }
    writeln!(out, "manifest    sha256 {}", s.manifest_sha256)?;
    writeln!(out, "merkle root {}", s.merkle_root)?;
    writeln!(out, "data key    {}", rec.manifest.data_key)?;
    for (k, v) in &rec.manifest.metrics {
        writeln!(out, "metric      {} = {v}", escape(k))?;
    }
    for (k, v) in &rec.manifest.metadata {
        writeln!(out, "meta        {} = {}", escape(k), escape(v))?;
    }
    for (k, v) in &rec.manifest.provenance {
        writeln!(out, "provenance  {} = {}", escape(k), escape(v))?;
    }
    super::card::print_card(out, &rec.manifest.card)?;
    writeln!(out, "files       {} ({} bytes)", s.files, s.size)?;
    for f in &rec.manifest.files {
        writeln!(
            out,
            "  {}  {:>12}  {}",
            f.sha256.to_hex(),
            f.size,
            escape(&f.path)
        )?;
    }
    Ok(())
}

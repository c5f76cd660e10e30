//! The model card on the command line: the arguments `add` takes for it
//! (`--model-type`, `--description`, `--input-schema`, `--output-schema`,
//! `--label`, `--training-dataset`, `--deps`) and how `show` prints it.

use std::io::Write;
use std::path::{Path, PathBuf};

use mvault::model::manifest::{JsonSchemaDoc, ModelCard, ModelType, TrainingDataset, MAX_LABELS};
use mvault::model::text::escape;

use super::context::Ctx;
use super::error::{CliError, CliResult};
use super::values;

/// The model card of `add`: typed metadata stored in the signed manifest.
#[derive(clap::Args, Debug)]
pub(super) struct CardArgs {
    /// What kind of model this is.
    #[arg(long, value_name = "TYPE", value_parser = values::model_type())]
    model_type: Option<ModelType>,
    /// A description (at most 4096 bytes; newlines and tabs allowed).
    #[arg(long, value_parser = values::description)]
    description: Option<String>,
    /// A JSON Schema document describing the model's input (checked
    /// against its draft's meta-schema; stored in the manifest).
    #[arg(long, value_name = "FILE")]
    input_schema: Option<PathBuf>,
    /// A JSON Schema document describing the model's output.
    #[arg(long, value_name = "FILE")]
    output_schema: Option<PathBuf>,
    /// A label to find the version by with `list --label` (repeatable;
    /// a-z 0-9 . _ : / = -).
    #[arg(long = "label", value_name = "LABEL", value_parser = values::label)]
    labels: Vec<String>,
    /// The training data: a URI, optionally with the SHA-256 of what it
    /// named (s3://bucket/train@sha256:HEX).
    #[arg(long, value_name = "URI[@sha256:HEX]", value_parser = values::training_dataset)]
    training_dataset: Option<TrainingDataset>,
    /// Pin the Python packages of a lock or requirements file: pip freeze
    /// or pip-compile --generate-hashes output, uv.lock or poetry.lock.
    /// Names, versions and artifact SHA-256s go into the manifest; check
    /// an environment with `mvault verify REF --deps`.
    #[arg(long, value_name = "FILE")]
    deps: Option<PathBuf>,
}

impl CardArgs {
    /// Read the files the card names (relative to `-C DIR`) and build it.
    pub(super) fn card(&self, ctx: &Ctx) -> Result<ModelCard, CliError> {
        let mut card = ModelCard {
            model_type: self.model_type,
            description: self.description.clone(),
            labels: self.labels.iter().cloned().collect(),
            training_dataset: self.training_dataset.clone(),
            ..ModelCard::default()
        };
        if card.labels.len() > MAX_LABELS {
            return Err(CliError::user(format!(
                "{} labels; at most {MAX_LABELS}",
                card.labels.len()
            )));
        }
        if let Some(f) = &self.input_schema {
            card.input_schema = Some(read_schema("--input-schema", &ctx.path(f))?);
        }
        if let Some(f) = &self.output_schema {
            card.output_schema = Some(read_schema("--output-schema", &ctx.path(f))?);
        }
        if let Some(f) = &self.deps {
            card.dependencies = mvault::ops::deps::read_lock(&ctx.path(f))?.pins;
        }
        Ok(card)
    }
}

fn read_schema(flag: &str, path: &Path) -> Result<JsonSchemaDoc, CliError> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| CliError::user(format!("{flag} {shown}: {e}")))?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return Err(CliError::user(format!(
            "{flag} {shown}: a JSON file of at most 1 MiB"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| CliError::user(format!("{flag} {shown}: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::user(format!("{flag} {shown}: not UTF-8 text")))?;
    JsonSchemaDoc::parse(&text).map_err(|why| CliError::user(format!("{flag} {shown}: {why}")))
}

/// `show`: the card's lines.
pub(super) fn print_card(out: &mut dyn Write, card: &ModelCard) -> CliResult {
    if let Some(t) = card.model_type {
        writeln!(out, "type        {t}")?;
    }
    if let Some(d) = &card.description {
        let mut lines = d.lines();
        writeln!(
            out,
            "description {}",
            escape(lines.next().unwrap_or_default())
        )?;
        for l in lines {
            writeln!(out, "            {}", escape(l))?;
        }
    }
    if !card.labels.is_empty() {
        let labels: Vec<&str> = card.labels.iter().map(String::as_str).collect();
        writeln!(out, "labels      {}", labels.join(", "))?;
    }
    if let Some(t) = &card.training_dataset {
        match t.sha256 {
            Some(d) => writeln!(out, "training    {} (sha256 {d})", escape(&t.uri))?,
            None => writeln!(out, "training    {}", escape(&t.uri))?,
        }
    }
    for (what, s) in [
        ("input", &card.input_schema),
        ("output", &card.output_schema),
    ] {
        if let Some(s) = s {
            writeln!(out, "{what:<12}schema, {} bytes of JSON", s.as_str().len())?;
        }
    }
    if !card.dependencies.is_empty() {
        writeln!(out, "python deps {}", card.dependencies.len())?;
        for p in &card.dependencies {
            writeln!(
                out,
                "  {}=={}  {} artifact digest(s)",
                p.name,
                p.version,
                p.sha256.len()
            )?;
        }
    }
    Ok(())
}

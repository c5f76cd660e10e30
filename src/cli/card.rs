//! The model card on the command line: the arguments `add` takes for it
//! (`--model-type`, `--description`, `--input-schema`, `--output-schema`,
//! `--label`, `--training-dataset`, `--deps`), the filters of `list`, and
//! how `show` and `verify --deps` print it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use mvault::model::manifest::{
    is_label, JsonSchemaDoc, ModelCard, ModelType, TrainingDataset, LABEL_RULE, MAX_LABELS,
};
use mvault::model::text::escape;
use mvault::ops::deps::{DepProblem, DepsReport};
use mvault::vault::VersionSummary;

use super::{CliError, CliResult};

/// What kind of model a version is (`--model-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub(super) enum ModelTypeArg {
    Classification,
    Regression,
    Nlp,
    ComputerVision,
    Generative,
    Recommendation,
    Other,
}

impl From<ModelTypeArg> for ModelType {
    fn from(t: ModelTypeArg) -> Self {
        match t {
            ModelTypeArg::Classification => ModelType::Classification,
            ModelTypeArg::Regression => ModelType::Regression,
            ModelTypeArg::Nlp => ModelType::Nlp,
            ModelTypeArg::ComputerVision => ModelType::ComputerVision,
            ModelTypeArg::Generative => ModelType::Generative,
            ModelTypeArg::Recommendation => ModelType::Recommendation,
            ModelTypeArg::Other => ModelType::Other,
        }
    }
}

/// The model card of `add`: typed metadata stored in the signed manifest.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct CardArgs {
    /// What kind of model this is.
    #[arg(long, value_enum, value_name = "TYPE")]
    model_type: Option<ModelTypeArg>,
    /// A description (at most 4096 bytes; newlines and tabs allowed).
    #[arg(long)]
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
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// The training data: a URI, optionally with the SHA-256 of what it
    /// named (s3://bucket/train@sha256:HEX).
    #[arg(long, value_name = "URI[@sha256:HEX]")]
    training_dataset: Option<String>,
    /// Pin the Python packages of a lock or requirements file: pip freeze
    /// or pip-compile --generate-hashes output, uv.lock or poetry.lock.
    /// Names, versions and artifact SHA-256s go into the manifest; check
    /// an environment with `mvault verify REF --deps`.
    #[arg(long, value_name = "FILE")]
    deps: Option<PathBuf>,
}

impl CardArgs {
    /// Read and check every field into a card; files are relative to `dir`.
    pub(super) fn card(&self, dir: &Path) -> Result<ModelCard, CliError> {
        let abs = |p: &Path| {
            if p.is_relative() {
                dir.join(p)
            } else {
                p.to_owned()
            }
        };
        let mut card = ModelCard {
            model_type: self.model_type.map(ModelType::from),
            ..ModelCard::default()
        };
        if let Some(d) = &self.description {
            mvault::model::manifest::check_description(d)
                .map_err(|why| CliError::user(format!("--description: {why}")))?;
            card.description = Some(d.clone());
        }
        for (flag, file, slot) in [
            ("--input-schema", &self.input_schema, &mut card.input_schema),
            (
                "--output-schema",
                &self.output_schema,
                &mut card.output_schema,
            ),
        ] {
            if let Some(f) = file {
                *slot = Some(read_schema(flag, &abs(f))?);
            }
        }
        for l in &self.labels {
            if !is_label(l) {
                return Err(CliError::user(format!("--label {l:?}: {LABEL_RULE}")));
            }
            card.labels.insert(l.clone());
        }
        if card.labels.len() > MAX_LABELS {
            return Err(CliError::user(format!(
                "{} labels; at most {MAX_LABELS}",
                card.labels.len()
            )));
        }
        if let Some(t) = &self.training_dataset {
            card.training_dataset = Some(
                TrainingDataset::parse_arg(t)
                    .map_err(|why| CliError::user(format!("--training-dataset {why}")))?,
            );
        }
        if let Some(f) = &self.deps {
            card.dependencies = mvault::ops::deps::read_lock(&abs(f))?.pins;
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

/// `list --type/--label`: which versions to show.
#[derive(Args, Debug, Clone, Default)]
pub(super) struct ListFilter {
    /// Only versions of this model type.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    model_type: Option<ModelTypeArg>,
    /// Only versions with this label (repeatable: every one).
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
}

impl ListFilter {
    pub(super) fn keeps(&self, s: &VersionSummary) -> bool {
        let type_ok = self
            .model_type
            .is_none_or(|t| s.model_type == Some(ModelType::from(t).as_str()));
        type_ok && self.labels.iter().all(|l| s.labels.contains(l))
    }
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

/// `verify --deps`: one line per difference, or the summary.
pub(super) fn print_deps(out: &mut dyn Write, r: &DepsReport) -> CliResult {
    for p in &r.problems {
        let line = match p {
            DepProblem::Missing { name, pinned } => {
                format!("missing        {name} (pinned {})", pinned.join(" or "))
            }
            DepProblem::OtherVersion {
                name,
                pinned,
                installed,
            } => format!(
                "other version  {name} {} (pinned {})",
                escape(installed),
                pinned.join(" or ")
            ),
            DepProblem::Extra { name, installed } => {
                format!("extra          {} {}", escape(name), escape(installed))
            }
            DepProblem::WheelDigest {
                file,
                name,
                version,
                sha256,
            } => format!(
                "wheel digest   {} ({name} {}): sha256 {sha256} is not pinned",
                escape(file),
                escape(version)
            ),
            DepProblem::NoDigestPinned {
                file,
                name,
                version,
            } => format!(
                "no digest      {} ({name} {}): the pin records no artifact digest",
                escape(file),
                escape(version)
            ),
            DepProblem::UnpinnedWheel {
                file,
                name,
                version,
            } => format!(
                "unpinned wheel {} ({name} {})",
                escape(file),
                escape(version)
            ),
            DepProblem::NoWheel { name, version } => {
                format!(
                    "no wheel       {name} {} in the wheel directory",
                    escape(version)
                )
            }
        };
        writeln!(out, "{line}")?;
    }
    if r.problems.is_empty() {
        writeln!(
            out,
            "python {} at {} matches the {} pinned package(s) of {}@{}{}",
            escape(&r.python),
            escape(&r.interpreter),
            r.pinned,
            r.model,
            r.version,
            match r.wheels {
                Some(n) => format!(", and {n} wheel(s) their digests"),
                None => String::new(),
            }
        )?;
    }
    Ok(())
}

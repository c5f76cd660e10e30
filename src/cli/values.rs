//! The value parsers: each turns one command-line string into a checked
//! type while clap parses, so a command's `run` never sees a string it
//! must still validate. A closed set of names (stages, roles) is a
//! possible-values parser, so clap lists the names, suggests the nearest
//! on a typo and completions offer them; anything else is refused with a
//! [`CliError`] carrying the library's own message and hint, which
//! `cli::run` prints like any other failure.

use std::collections::BTreeMap;

use clap::builder::{PossibleValuesParser, TypedValueParser};

use mvault::model::manifest::{
    check_description, is_label, ModelType, TrainingDataset, LABEL_RULE,
};
use mvault::model::names::{ModelName, Stage, Version, VersionRef};
use mvault::model::policy::{self, Role};
use mvault::ops::register;

use super::error::CliError;

/// A model name, e.g. `nlp/bert`.
pub(super) fn model(s: &str) -> Result<ModelName, CliError> {
    Ok(ModelName::parse(s)?)
}

/// A SemVer version, e.g. `1.2.0`.
pub(super) fn version(s: &str) -> Result<Version, CliError> {
    Ok(Version::parse(s)?)
}

/// `nlp/bert@1.2.0`, `nlp/bert` or `nlp/bert#production`.
pub(super) fn version_ref(s: &str) -> Result<VersionRef, CliError> {
    Ok(VersionRef::parse(s)?)
}

/// Exactly one version: `nlp/bert@1.2.0`.
pub(super) fn one_version(s: &str) -> Result<(ModelName, Version), CliError> {
    match VersionRef::parse(s)? {
        VersionRef::Exact(model, version) => Ok((model, version)),
        _ => Err(CliError::user(format!(
            "{s}: name one version, as MODEL@VERSION"
        ))),
    }
}

/// A stage, typed at the clap boundary: clap lists the stages on a typo
/// and suggests the nearest one, and completions offer them.
pub(super) fn stage() -> impl TypedValueParser<Value = Stage> {
    PossibleValuesParser::new(Stage::ALL.map(Stage::as_str))
        .map(|s| Stage::parse(&s).expect("clap admits only the names of Stage::ALL"))
}

/// A role, like [`stage`]: listed, suggested and completed by clap.
pub(super) fn role() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.map(Role::as_str))
        .map(|s| Role::parse(&s).expect("clap admits only the names of Role::ALL"))
}

/// `--model GLOB`: `*` stays within one segment of a model name.
pub(super) fn model_glob(glob: &str) -> Result<globset::GlobMatcher, CliError> {
    Ok(globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| CliError::user(format!("--model {glob:?}: {e}")))?
        .compile_matcher())
}

/// A time as unix seconds: RFC 3339, YYYY-MM-DD (00:00 UTC) or unix seconds.
pub(super) fn time(s: &str) -> Result<i64, CliError> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    if let Some(d) = policy::parse_date(s) {
        return Ok(d.midnight().assume_utc().unix_timestamp());
    }
    Err(CliError::user(format!("{s:?} is not a time: use RFC 3339 (2026-11-22T10:00:00Z), a date (2026-11-22) or unix seconds")))
}

/// `--expires`: a day, YYYY-MM-DD.
pub(super) fn expiry_date(s: &str) -> Result<time::Date, CliError> {
    policy::parse_date(s)
        .ok_or_else(|| CliError::user(format!("--expires {s:?}: expected YYYY-MM-DD")))
}

/// `--max-age`: seconds, from `90s`, `15m`, `24h`, `7d`.
pub(super) fn max_age(s: &str) -> Result<i64, CliError> {
    mvault::ops::sync::freshness::parse_max_age(s).map_err(CliError::user)
}

/// `--part-size`: bytes, or with K, M or G.
pub(super) fn part_size(s: &str) -> Result<u64, CliError> {
    register::parse_size(s).ok_or_else(|| {
        CliError::user(format!(
            "--part-size {s:?}: a size in bytes, or with K, M or G (16M)"
        ))
    })
}

/// `--meta KEY=VALUE`.
pub(super) fn meta(s: &str) -> Result<(String, String), CliError> {
    key_value(s, "meta")
}

/// `--provenance KEY=VALUE`.
pub(super) fn provenance(s: &str) -> Result<(String, String), CliError> {
    key_value(s, "provenance")
}

/// `--metric KEY=NUMBER`: the number finite.
pub(super) fn metric(s: &str) -> Result<(String, f64), CliError> {
    let (k, v) = key_value(s, "metric")?;
    let n = v
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .ok_or_else(|| CliError::user(format!("--metric {k}={v}: a metric is a finite number")))?;
    Ok((k, n))
}

/// Repeated KEY=VALUE options as a map: the last value of a key wins.
pub(super) fn key_map<V: Clone>(items: &[(String, V)]) -> BTreeMap<String, V> {
    items.iter().cloned().collect()
}

/// `KEY=VALUE` with the key `[A-Za-z0-9._-]+` (trimmed), for `--what`.
fn key_value(item: &str, what: &str) -> Result<(String, String), CliError> {
    let Some((k, v)) = item.split_once('=') else {
        return Err(CliError::user(format!(
            "--{what} {item:?}: expected KEY=VALUE"
        )));
    };
    let k = k.trim();
    if k.is_empty()
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(CliError::user(format!(
            "--{what} {item:?}: a key is [A-Za-z0-9._-]+"
        )));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// A model type, like [`stage`]: listed, suggested and completed by clap.
pub(super) fn model_type() -> impl TypedValueParser<Value = ModelType> {
    PossibleValuesParser::new(ModelType::ALL.map(ModelType::as_str))
        .map(|s| ModelType::parse(&s).expect("clap admits only the names of ModelType::ALL"))
}

/// A label of the model card.
pub(super) fn label(s: &str) -> Result<String, CliError> {
    if is_label(s) {
        Ok(s.to_owned())
    } else {
        Err(CliError::user(format!("{s:?}: {LABEL_RULE}")))
    }
}

/// `--training-dataset URI[@sha256:HEX]`.
pub(super) fn training_dataset(s: &str) -> Result<TrainingDataset, CliError> {
    TrainingDataset::parse_arg(s).map_err(CliError::user)
}

/// `--description`: the manifest's rule, checked before any work.
pub(super) fn description(s: &str) -> Result<String, CliError> {
    check_description(s).map_err(CliError::user)?;
    Ok(s.to_owned())
}

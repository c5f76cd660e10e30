//! Globs that match no model the vault knows: not an error (a grant may
//! come before the model's first version), but most often a mistake such
//! as `*` for `**` (`*` never crosses a `/`, so it matches no two-segment
//! model such as `nlp/bert`). `policy grant`, `policy rule` and
//! `policy check` warn about them, with a glob that would match.

use serde::Serialize;

use super::compile_glob;
use crate::model::names::ModelName;

/// A glob of the policy that matches none of the known models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlobWarning {
    /// Where the glob is: `grants[2].models`, `stages[0].models`, ….
    pub field: String,
    pub glob: String,
    /// A glob close to it that matches some known model, if there is one.
    pub suggestion: Option<String>,
}

impl std::fmt::Display for GlobWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: '{}' matches none of the models in the vault",
            self.field, self.glob
        )?;
        if let Some(s) = &self.suggestion {
            write!(f, "; '{s}' would match (a * never crosses a /)")?;
        }
        Ok(())
    }
}

/// Whether `glob` matches any of `known`; an invalid glob matches nothing.
pub fn matches_any(glob: &str, known: &[ModelName]) -> bool {
    compile_glob(glob).is_ok_and(|m| known.iter().any(|k| m.is_match(k.as_str())))
}

/// A glob close to `glob` that matches one of `known`: each `*` that is a
/// whole path segment widened to `**`, then the glob in lower case (model
/// names are), then both.
pub fn suggest(glob: &str, known: &[ModelName]) -> Option<String> {
    let widened = glob
        .split('/')
        .map(|seg| if seg == "*" { "**" } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    let lower = glob.to_lowercase();
    let both = widened.to_lowercase();
    [widened, lower, both]
        .into_iter()
        .find(|c| c != glob && matches_any(c, known))
}

/// The warning for `glob` at `field`, if it matches none of `known`.
/// Nothing is said when the vault knows no model yet.
pub fn check_glob(field: &str, glob: &str, known: &[ModelName]) -> Option<GlobWarning> {
    if known.is_empty() || matches_any(glob, known) {
        return None;
    }
    Some(GlobWarning {
        field: field.to_owned(),
        glob: glob.to_owned(),
        suggestion: suggest(glob, known),
    })
}

impl super::Policy {
    /// Every glob of the policy (grants, stage rules, model settings,
    /// environments) that matches none of `known`.
    pub fn unmatched_globs(&self, known: &[ModelName]) -> Vec<GlobWarning> {
        let grants = self
            .grants
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("grants[{i}].models"), g.models.as_str()));
        let stages = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("stages[{i}].models"), s.models.as_str()));
        let models = self
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("models[{i}].models"), m.models.as_str()));
        // Review of issue 10: an environment's `models = "*"` served no
        // two-segment model, without a word.
        let environments = self
            .environments
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("environments[{i}].models"), e.models.as_str()));
        grants
            .chain(stages)
            .chain(models)
            .chain(environments)
            .filter_map(|(field, glob)| check_glob(&field, glob, known))
            .collect()
    }
}

//! Model names, versions and the references users type (`nlp/bert@1.2.0`,
//! `nlp/bert`, `nlp/bert#production`).
//!
//! Names end up in git ref names, tree paths and tag messages, so they are
//! validated once, here, into types that cannot hold anything else. The hook
//! uses the same types, so the CLI and the server refuse the same names.

use std::fmt;
use std::str::FromStr;

/// The rule a model name must follow, quoted in every refusal.
pub const MODEL_NAME_RULE: &str =
    "1 to 4 segments separated by '/', each [a-z0-9][a-z0-9._-]{0,63}";

/// The rule a version must follow, quoted in every refusal.
pub const VERSION_RULE: &str = "strict SemVer 2.0 such as 1.2.0 or 1.2.0-rc.1 (no leading 'v')";

/// A name or reference that does not follow its rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// The model name breaks [`MODEL_NAME_RULE`].
    #[error("invalid model name {name:?}: {reason}; a model name is {MODEL_NAME_RULE}")]
    Model { name: String, reason: &'static str },
    /// The version is not strict SemVer.
    #[error("invalid version {version:?}: a version is {VERSION_RULE}")]
    Version { version: String },
    /// The stage is not one of the known stages.
    #[error("unknown stage {stage:?}: stages are development, staging, production, deprecated, archived")]
    Stage {
        stage: String,
        /// The stage it most likely meant ([`Stage::nearest`]), for a
        /// "did you mean" hint.
        suggestion: Option<Stage>,
    },
}

/// A validated model name such as `nlp/bert`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelName(String);

impl ModelName {
    /// Validate `name` against [`MODEL_NAME_RULE`].
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let err = |reason| NameError::Model {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(err("it is empty"));
        }
        let segs: Vec<&str> = name.split('/').collect();
        if segs.len() > 4 {
            return Err(err("it has more than 4 segments"));
        }
        for seg in segs {
            if seg.is_empty() {
                return Err(err("it has an empty segment"));
            }
            if seg.len() > 64 {
                return Err(err("a segment is longer than 64 characters"));
            }
            let mut chars = seg.chars();
            let first = chars.next().unwrap_or('-');
            if first.is_ascii_uppercase() || chars.clone().any(|c| c.is_ascii_uppercase()) {
                return Err(err("it has capital letters"));
            }
            if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
                return Err(err("a segment does not start with [a-z0-9]"));
            }
            if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)) {
                return Err(err("a segment has a character outside [a-z0-9._-]"));
            }
        }
        Ok(ModelName(name.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directory of the model in the tree: `models/<model>`.
    pub fn tree_dir(&self) -> String {
        format!("models/{}", self.0)
    }

    /// The key ring of the model: `.mvault/keys/<model>.age`.
    pub fn keyring_path(&self) -> String {
        format!(".mvault/keys/{}.age", self.0)
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ModelName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelName::parse(s)
    }
}

/// A strict SemVer 2.0 version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(semver::Version);

impl Version {
    /// Validate `version` as strict SemVer (no `v` prefix, no missing parts).
    pub fn parse(version: &str) -> Result<Self, NameError> {
        semver::Version::parse(version)
            .map(Version)
            .map_err(|_| NameError::Version {
                version: version.to_owned(),
            })
    }
    /// The semver value.
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .cmp_precedence(&other.0)
            .then_with(|| self.0.cmp(&other.0))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The stages a version moves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Development,
    Staging,
    Production,
    Deprecated,
    Archived,
}

impl Stage {
    /// All stages, in order.
    pub const ALL: [Stage; 5] = [
        Stage::Development,
        Stage::Staging,
        Stage::Production,
        Stage::Deprecated,
        Stage::Archived,
    ];
    /// The stage's name as used in tags and policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Development => "development",
            Stage::Staging => "staging",
            Stage::Production => "production",
            Stage::Deprecated => "deprecated",
            Stage::Archived => "archived",
        }
    }
    /// Parse a stage name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| NameError::Stage {
                stage: s.to_owned(),
                suggestion: Stage::nearest(s),
            })
    }

    /// The stage a mistyped name most likely meant: the only stage it is a
    /// prefix of (`prod`), else the closest within two edits (`prodution`,
    /// `archive`), else none.
    pub fn nearest(s: &str) -> Option<Stage> {
        let s = s.to_ascii_lowercase();
        let prefixed: Vec<Stage> = Stage::ALL
            .into_iter()
            .filter(|st| !s.is_empty() && st.as_str().starts_with(&s))
            .collect();
        if let [only] = prefixed.as_slice() {
            return Some(*only);
        }
        Stage::ALL
            .into_iter()
            .map(|st| (edit_distance(&s, st.as_str()), st))
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d)
            .map(|(_, st)| st)
    }
}

/// Levenshtein distance in characters (for suggestions only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user names on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    /// `nlp/bert@1.2.0`
    Exact(ModelName, Version),
    /// `nlp/bert`: the newest version by SemVer precedence.
    Latest(ModelName),
    /// `nlp/bert#production`: the version the stage serves (`rules::stages`).
    Stage(ModelName, Stage),
}

impl VersionRef {
    /// Parse `model@version`, `model#stage` or `model`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if let Some((m, v)) = s.split_once('@') {
            let v = v
                .strip_prefix('v')
                .filter(|_| v.starts_with('v'))
                .unwrap_or(v);
            return Ok(VersionRef::Exact(ModelName::parse(m)?, Version::parse(v)?));
        }
        if let Some((m, st)) = s.split_once('#') {
            return Ok(VersionRef::Stage(ModelName::parse(m)?, Stage::parse(st)?));
        }
        Ok(VersionRef::Latest(ModelName::parse(s)?))
    }
    /// The model the reference names.
    pub fn model(&self) -> &ModelName {
        match self {
            VersionRef::Exact(m, _) | VersionRef::Latest(m) | VersionRef::Stage(m, _) => m,
        }
    }
}

/// The registration tag of a version: `<model>@v<version>`.
pub fn registration_tag(model: &ModelName, version: &Version) -> String {
    format!("{model}@v{version}")
}

/// The tree directory of a version: `models/<model>/<version>`.
pub fn version_dir(model: &ModelName, version: &Version) -> String {
    format!("models/{model}/{version}")
}

/// Where the payloads live: one ref per version, never moved.
pub const DATA_PREFIX: &str = "refs/mvault/data/";

/// The payload ref of a version: `refs/mvault/data/<model>/<version>`.
pub fn payload_ref(model: &ModelName, version: &Version) -> String {
    format!("{DATA_PREFIX}{model}/{version}")
}

/// The model and version a payload ref names, if it is one.
pub fn parse_payload_ref(name: &str) -> Option<(ModelName, Version)> {
    let rest = name.strip_prefix(DATA_PREFIX)?;
    let (model, version) = rest.rsplit_once('/')?;
    Some((ModelName::parse(model).ok()?, Version::parse(version).ok()?))
}

/// The purge record of a version, beside its manifest.
pub fn purge_path(model: &ModelName, version: &Version) -> String {
    format!("{}/purge.toml", version_dir(model, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_typo_suggests_the_stage_it_most_likely_meant() {
        for (typed, meant) in [
            ("prodution", Some(Stage::Production)),
            ("prod", Some(Stage::Production)),
            ("Production", Some(Stage::Production)),
            ("stagng", Some(Stage::Staging)),
            ("dev", Some(Stage::Development)),
            ("archive", Some(Stage::Archived)),
            ("deprecate", Some(Stage::Deprecated)),
            // A prefix of two stages, or far from all of them: no guess.
            ("de", None),
            ("bogus", None),
            ("", None),
        ] {
            assert_eq!(Stage::nearest(typed), meant, "{typed:?}");
        }
        assert_eq!(
            Stage::parse("prodution"),
            Err(NameError::Stage {
                stage: "prodution".into(),
                suggestion: Some(Stage::Production)
            })
        );
    }

    #[test]
    fn payload_refs_round_trip() {
        let m = ModelName::parse("nlp/bert").unwrap();
        let v = Version::parse("1.2.0-rc.1").unwrap();
        let r = payload_ref(&m, &v);
        assert_eq!(r, "refs/mvault/data/nlp/bert/1.2.0-rc.1");
        assert_eq!(parse_payload_ref(&r), Some((m, v)));
        assert_eq!(parse_payload_ref("refs/mvault/data/nlp/bert"), None);
        assert_eq!(parse_payload_ref("refs/mvault/data/NLP/1.0.0"), None);
    }

    #[test]
    fn model_names_follow_the_rule() {
        for ok in ["nlp/bert", "a", "a/b/c/d", "x9._-y", "0abc"] {
            ModelName::parse(ok).unwrap();
        }
        for bad in [
            "",
            "NLP/bert",
            "nlp//bert",
            "/nlp",
            "nlp/",
            "a/b/c/d/e",
            "-a",
            ".a",
            "a b",
            "a\\b",
            "..",
            "nlp/../x",
        ] {
            assert!(ModelName::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = "a".repeat(65);
        assert!(ModelName::parse(&long).is_err());
    }

    #[test]
    fn capitals_are_named_in_the_refusal() {
        let e = ModelName::parse("NLP/bert").unwrap_err().to_string();
        assert!(e.contains("capital"), "{e}");
        assert!(e.contains(MODEL_NAME_RULE), "{e}");
    }

    #[test]
    fn versions_are_strict_semver() {
        for ok in ["1.2.0", "0.0.1-rc.1+b.5"] {
            Version::parse(ok).unwrap();
        }
        for bad in ["1.2", "v1.2.0", "1.2.0.0", "01.2.0", " 1.2.0", ""] {
            assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refs_parse_in_three_forms() {
        assert!(matches!(
            VersionRef::parse("nlp/bert@1.2.0").unwrap(),
            VersionRef::Exact(..)
        ));
        assert!(matches!(
            VersionRef::parse("nlp/bert@v1.2.0").unwrap(),
            VersionRef::Exact(..)
        ));
        assert!(matches!(
            VersionRef::parse("nlp/bert").unwrap(),
            VersionRef::Latest(..)
        ));
        assert!(matches!(
            VersionRef::parse("nlp/bert#production").unwrap(),
            VersionRef::Stage(_, Stage::Production)
        ));
        assert!(VersionRef::parse("nlp/bert#prod").is_err());
    }

    #[test]
    fn prerelease_sorts_before_release() {
        let a = Version::parse("1.0.0-rc.1").unwrap();
        let b = Version::parse("1.0.0").unwrap();
        assert!(a < b);
    }
}

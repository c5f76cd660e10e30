//! A deployment record: which version of a model went to which
//! environment, who sent it, when and why. One file per environment and
//! model on `main`, `deployments/<environment>/<model>/_deployment.toml`,
//! replaced by each new deployment in a signed commit that does only that;
//! the tree of `main` says what is deployed where, and the commits that
//! changed the file are its history.
//!
//! ```toml
//! environment = "prod-eu"
//! model = "nlp/bert"
//! version = "1.2.0"
//! stage = "production"
//! manifest_sha256 = "…"
//! deployed_by = "alice"
//! time = "2026-12-07T12:00:00Z"
//! reason = "CHG-42"
//! ```
//!
//! The file name starts with `_`, which no model name segment does, so a
//! model nested under another (`nlp` and `nlp/bert`) never puts a file and
//! a directory at one path.

use serde::{Deserialize, Serialize};

use crate::model::names::{ModelName, Stage, Version};
use crate::model::policy::EnvironmentName;

/// Where deployment records live on `main`.
pub const DEPLOYMENTS_DIR: &str = "deployments";
/// The record's file name in its model's directory.
pub const RECORD_FILE: &str = "_deployment.toml";
/// The trailer naming the environment of a deploy commit.
pub const ENVIRONMENT_TRAILER: &str = "Mvault-Environment";

/// The path of the record of `model` in `env`.
pub fn deployment_path(env: &EnvironmentName, model: &ModelName) -> String {
    format!("{DEPLOYMENTS_DIR}/{env}/{model}/{RECORD_FILE}")
}

/// The environment and model a record path names, if it is one.
pub fn parse_deployment_path(path: &str) -> Option<(EnvironmentName, ModelName)> {
    let rest = path.strip_prefix(DEPLOYMENTS_DIR)?.strip_prefix('/')?;
    let rest = rest.strip_suffix(RECORD_FILE)?.strip_suffix('/')?;
    let (env, model) = rest.split_once('/')?;
    Some((
        EnvironmentName::parse(env).ok()?,
        ModelName::parse(model).ok()?,
    ))
}

/// A checked deployment record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    pub environment: EnvironmentName,
    pub model: ModelName,
    pub version: Version,
    /// The stage the version was in, which the environment requires.
    pub stage: Stage,
    /// SHA-256 (hex) of the version's `manifest.toml`: the record binds it.
    pub manifest_sha256: String,
    /// Policy user of the signer of the deploy commit.
    pub deployed_by: String,
    /// RFC 3339 UTC, seconds: the deploy commit's own date.
    pub time: String,
    /// One line, when given.
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    environment: String,
    model: String,
    version: String,
    stage: String,
    manifest_sha256: String,
    deployed_by: String,
    time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Why a deployment record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{RECORD_FILE}: {0}")]
pub struct DeploymentError(pub String);

/// Whether `reason` is acceptable: one line of 1 to 1000 characters.
pub fn check_reason(reason: &str) -> Result<(), DeploymentError> {
    if reason.trim().is_empty()
        || reason.trim() != reason
        || reason.len() > 1000
        || reason.chars().any(char::is_control)
    {
        return Err(DeploymentError(
            "reason: one line of 1 to 1000 characters, no leading or trailing space".into(),
        ));
    }
    Ok(())
}

impl DeploymentRecord {
    /// Canonical TOML bytes.
    pub fn to_canonical(&self) -> String {
        toml::to_string(&Raw {
            environment: self.environment.to_string(),
            model: self.model.to_string(),
            version: self.version.to_string(),
            stage: self.stage.as_str().to_owned(),
            manifest_sha256: self.manifest_sha256.clone(),
            deployed_by: self.deployed_by.clone(),
            time: self.time.clone(),
            reason: self.reason.clone(),
        })
        .expect("a deployment record always serialises")
    }

    /// Parse and check; refuses anything not canonical.
    pub fn parse(text: &str) -> Result<Self, DeploymentError> {
        let err = |e: &dyn std::fmt::Display| DeploymentError(e.to_string());
        let raw: Raw = toml::from_str(text).map_err(|e| err(&e))?;
        let environment = EnvironmentName::parse(&raw.environment).map_err(|e| err(&e))?;
        let model = ModelName::parse(&raw.model).map_err(|e| err(&e))?;
        let version = Version::parse(&raw.version).map_err(|e| err(&e))?;
        let stage = Stage::parse(&raw.stage).map_err(|e| err(&e))?;
        let hex = raw.manifest_sha256.len() == 64
            && raw
                .manifest_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(DeploymentError(
                "manifest_sha256: 64 lower-case hex digits".into(),
            ));
        }
        if raw.deployed_by.is_empty() {
            return Err(DeploymentError("deployed_by must not be empty".into()));
        }
        if let Some(r) = &raw.reason {
            check_reason(r)?;
        }
        let t =
            time::OffsetDateTime::parse(&raw.time, &time::format_description::well_known::Rfc3339)
                .map_err(|e| DeploymentError(format!("time {:?}: {e}", raw.time)))?;
        if t.offset() != time::UtcOffset::UTC {
            return Err(DeploymentError(format!("time {:?}: not UTC", raw.time)));
        }
        let r = DeploymentRecord {
            environment,
            model,
            version,
            stage,
            manifest_sha256: raw.manifest_sha256,
            deployed_by: raw.deployed_by,
            time: raw.time,
            reason: raw.reason,
        };
        if r.to_canonical() != text {
            return Err(DeploymentError(
                "not canonical: re-serialising it gives other bytes".into(),
            ));
        }
        Ok(r)
    }

    /// The record's path on `main`.
    pub fn path(&self) -> String {
        deployment_path(&self.environment, &self.model)
    }
}

/// The message of a deploy commit.
pub fn deploy_message(r: &DeploymentRecord) -> String {
    let mut m = format!("deploy {}@{} to {}\n\n", r.model, r.version, r.environment);
    if let Some(reason) = &r.reason {
        m.push_str(reason);
        m.push_str("\n\n");
    }
    m.push_str(&format!(
        "Mvault-Action: deploy\nMvault-Model: {}\nMvault-Version: {}\n{ENVIRONMENT_TRAILER}: {}\nMvault-Manifest-Sha256: {}\n",
        r.model, r.version, r.environment, r.manifest_sha256
    ));
    m
}

/// The reason a deploy commit's message gives, as [`deploy_message`]
/// writes it: the paragraph between the subject and the trailers.
pub fn deploy_reason(message: &str) -> Option<String> {
    let parts: Vec<&str> = message.split("\n\n").collect();
    match parts.as_slice() {
        [_, reason, _trailers, ..]
            if !reason.trim().is_empty() && !reason.starts_with("Mvault-") =>
        {
            Some(reason.trim().to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DeploymentRecord {
        DeploymentRecord {
            environment: EnvironmentName::parse("prod-eu").unwrap(),
            model: ModelName::parse("nlp/bert").unwrap(),
            version: Version::parse("1.2.0").unwrap(),
            stage: Stage::Production,
            manifest_sha256: "ab".repeat(32),
            deployed_by: "alice".into(),
            time: "2026-12-07T12:00:00Z".into(),
            reason: Some("CHG-42".into()),
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let r = record();
        let text = r.to_canonical();
        assert_eq!(DeploymentRecord::parse(&text).unwrap(), r);
        let no_reason = DeploymentRecord {
            reason: None,
            ..record()
        };
        let t = no_reason.to_canonical();
        assert!(!t.contains("reason"));
        assert_eq!(DeploymentRecord::parse(&t).unwrap(), no_reason);
        for bad in [
            format!("{text}\n"),
            format!("# x\n{text}"),
            format!("{text}extra = 1\n"),
            text.replace("1.2.0", "v1"),
            text.replace("prod-eu", "Prod"),
            text.replace("production", "prod"),
            text.replace(&"ab".repeat(32), &"AB".repeat(32)),
            text.replace(&"ab".repeat(32), "abc"),
            text.replace("\"alice\"", "\"\""),
            text.replace("CHG-42", ""),
            text.replace("CHG-42", " CHG-42"),
            text.replace("CHG-42", "a\\nb"),
            text.replace("12:00:00Z", "12:00:00+01:00"),
            text.replace("2026-12-07T12:00:00Z", "yesterday"),
        ] {
            assert!(DeploymentRecord::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_round_trip_and_never_collide_with_a_nested_model() {
        let r = record();
        assert_eq!(r.path(), "deployments/prod-eu/nlp/bert/_deployment.toml");
        let (e, m) = parse_deployment_path(&r.path()).unwrap();
        assert_eq!((e, m), (r.environment.clone(), r.model.clone()));
        for bad in [
            "deployments/prod-eu/_deployment.toml",
            "deployments/prod-eu/nlp/bert/deployment.toml",
            "deployments/Prod/nlp/bert/_deployment.toml",
            "models/prod-eu/nlp/bert/_deployment.toml",
            "deployments/prod-eu/nlp/../_deployment.toml",
        ] {
            assert!(parse_deployment_path(bad).is_none(), "{bad}");
        }
        // No model segment starts with '_': the record of nlp is never a
        // directory of another model's path.
        assert!(ModelName::parse("nlp/_deployment.toml").is_err());
    }

    #[test]
    fn the_message_carries_the_trailers() {
        let m = deploy_message(&record());
        assert!(m.starts_with("deploy nlp/bert@1.2.0 to prod-eu\n\nCHG-42\n\n"));
        assert!(m.contains("Mvault-Action: deploy\n"));
        assert!(m.contains("Mvault-Environment: prod-eu\n"));
        assert_eq!(deploy_reason(&m).as_deref(), Some("CHG-42"));
        let none = deploy_message(&DeploymentRecord {
            reason: None,
            ..record()
        });
        assert_eq!(deploy_reason(&none), None);
    }
}

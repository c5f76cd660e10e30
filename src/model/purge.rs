//! A purge record: `models/<model>/<version>/purge.toml`, written on `main`
//! by a signed commit, the one thing that lets a version's payload ref be
//! deleted. The record of the version stays; only its ciphertext goes.
//!
//! ```toml
//! model = "nlp/bert"
//! version = "1.0.0"
//! purged_by = "root"
//! time = "2026-12-02T12:00:00Z"
//! reason = "retention: archived for 400 days"
//! ```

use serde::{Deserialize, Serialize};

use crate::model::names::{ModelName, Version};

/// A checked purge record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRecord {
    pub model: ModelName,
    pub version: Version,
    /// Policy user of the signer of the purge commit.
    pub purged_by: String,
    /// RFC 3339 UTC, seconds; the purge commit's own date.
    pub time: String,
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    model: String,
    version: String,
    purged_by: String,
    time: String,
    reason: String,
}

/// Why a purge record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("purge.toml: {0}")]
pub struct PurgeError(pub String);

impl PurgeRecord {
    /// Canonical TOML bytes.
    pub fn to_canonical(&self) -> String {
        toml::to_string(&Raw {
            model: self.model.to_string(),
            version: self.version.to_string(),
            purged_by: self.purged_by.clone(),
            time: self.time.clone(),
            reason: self.reason.clone(),
        })
        .expect("a purge record always serialises")
    }

    /// Parse and check; refuses anything not canonical.
    pub fn parse(text: &str) -> Result<Self, PurgeError> {
        let raw: Raw = toml::from_str(text).map_err(|e| PurgeError(e.to_string()))?;
        let model = ModelName::parse(&raw.model).map_err(|e| PurgeError(e.to_string()))?;
        let version = Version::parse(&raw.version).map_err(|e| PurgeError(e.to_string()))?;
        if raw.purged_by.is_empty() {
            return Err(PurgeError("purged_by must not be empty".into()));
        }
        let reason = raw.reason.trim();
        if reason.is_empty() || reason.len() > 1000 || reason.chars().any(char::is_control) {
            return Err(PurgeError(
                "reason: one line of 1 to 1000 characters, required".into(),
            ));
        }
        time::OffsetDateTime::parse(&raw.time, &time::format_description::well_known::Rfc3339)
            .map_err(|e| PurgeError(format!("time {:?}: {e}", raw.time)))?;
        let r = PurgeRecord {
            model,
            version,
            purged_by: raw.purged_by,
            time: raw.time,
            reason: raw.reason,
        };
        if r.to_canonical() != text {
            return Err(PurgeError(
                "not canonical: re-serialising it gives other bytes".into(),
            ));
        }
        Ok(r)
    }

    /// The unix time of `time`.
    pub fn unix_time(&self) -> i64 {
        time::OffsetDateTime::parse(&self.time, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let r = PurgeRecord {
            model: ModelName::parse("nlp/bert").unwrap(),
            version: Version::parse("1.0.0").unwrap(),
            purged_by: "root".into(),
            time: "2026-12-02T12:00:00Z".into(),
            reason: "retention".into(),
        };
        let text = r.to_canonical();
        assert_eq!(PurgeRecord::parse(&text).unwrap(), r);
        assert!(PurgeRecord::parse(&text.replace("retention", "")).is_err());
        assert!(PurgeRecord::parse(&format!("{text}\n")).is_err());
        assert!(PurgeRecord::parse(&text.replace("1.0.0", "v1")).is_err());
    }
}

//! Approval tags: "this person approves this version, with this manifest,
//! for this stage", parsed from the tag's bytes and signature-checked.
//!
//! An approval tag is named `mvault-approval/<stage>/<user>/<model>/<version>`
//! (outside GTO's two forms, so registry tools skip it), points at the commit
//! that added the version, and binds the manifest's SHA-256 in its message.

use serde::Serialize;
use ssh_key::PublicKey;

use crate::crypto;
use crate::model::names::{ModelName, Stage, Version};
use crate::model::trailers::{trailer, trailers};
use crate::store::objects::{self, ObjectId, Person};

/// The trailer by which an approval or promotion names the record it was made against.
pub const RECORD_TRAILER: &str = "Mvault-Record";

/// The prefix of approval tag names.
pub const APPROVAL_PREFIX: &str = "mvault-approval/";

/// The name of an approval tag.
pub fn approval_name(stage: Stage, user: &str, model: &ModelName, version: &Version) -> String {
    format!("{APPROVAL_PREFIX}{stage}/{user}/{model}/{version}")
}

/// Parse an approval tag name: `(stage, user, model, version)`.
pub fn parse_approval_name(name: &str) -> Option<(Stage, String, ModelName, Version)> {
    let rest = name.strip_prefix(APPROVAL_PREFIX)?;
    let (stage, rest) = rest.split_once('/')?;
    let (user, rest) = rest.split_once('/')?;
    let (model, version) = rest.rsplit_once('/')?;
    Some((
        Stage::parse(stage).ok()?,
        user.to_owned(),
        ModelName::parse(model).ok()?,
        Version::parse(version).ok()?,
    ))
}

/// A parsed, signature-checked approval tag.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub name: String,
    pub id: String,
    pub stage: Stage,
    /// The approver named in the tag name.
    pub user: String,
    pub model: String,
    pub version: String,
    pub manifest_sha256: String,
    pub comment: Option<String>,
    /// The tagger's unix time.
    pub time: i64,
    /// The tagger, as the tag says.
    #[serde(skip)]
    pub tagger: Option<Person>,
    /// `Mvault-Record`: the commit of main the approval was made against.
    pub record: Option<String>,
    #[serde(skip)]
    pub key: PublicKey,
    #[serde(skip)]
    pub target: ObjectId,
}

/// Why an approval does not count.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The tag is not a well-formed, signed approval.
    #[error("approval {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// Parse approval tag `name` (object `id`, bytes `data`) and check its signature.
pub fn parse_approval(name: &str, id: ObjectId, data: &[u8]) -> Result<Approval, ApprovalError> {
    let bad = |reason: String| ApprovalError::Invalid {
        name: name.to_owned(),
        reason,
    };
    let (stage, user, model, version) = parse_approval_name(name).ok_or_else(|| {
        bad(format!(
            "not {APPROVAL_PREFIX}<stage>/<user>/<model>/<version>"
        ))
    })?;
    let tag = objects::parse_tag(data).map_err(|e| bad(e.to_string()))?;
    if tag.name != name.as_bytes() {
        return Err(bad(format!(
            "the tag object is named {:?}",
            String::from_utf8_lossy(&tag.name)
        )));
    }
    let (sig, payload) = tag
        .signature
        .as_ref()
        .ok_or_else(|| bad("unsigned".into()))?;
    let key = crypto::verify_signature(sig, crypto::GIT_NAMESPACE, payload)
        .map_err(|e| bad(e.to_string()))?;
    let t = trailers(&tag.message);
    let get = |k: &str| trailer(&t, k).map(str::to_owned);
    if get("Mvault-Action").as_deref() != Some("approve") {
        return Err(bad("Mvault-Action is not approve".into()));
    }
    for (k, want) in [
        ("Mvault-Model", model.to_string()),
        ("Mvault-Version", version.to_string()),
        ("Mvault-Stage", stage.to_string()),
        ("Mvault-Approver", user.clone()),
    ] {
        if get(k).as_deref() != Some(want.as_str()) {
            return Err(bad(format!("{k} does not match the tag name ({want})")));
        }
    }
    let manifest_sha256 =
        get("Mvault-Manifest-Sha256").ok_or_else(|| bad("no Mvault-Manifest-Sha256".into()))?;
    let tagger = tag.tagger.as_ref();
    Ok(Approval {
        name: name.to_owned(),
        id: id.to_string(),
        stage,
        user,
        model: model.to_string(),
        version: version.to_string(),
        manifest_sha256,
        comment: get("Mvault-Comment"),
        time: tagger.map(|p| p.time).unwrap_or(i64::MIN),
        tagger: tagger.cloned(),
        record: get(RECORD_TRAILER),
        key,
        target: tag.target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_names_round_trip() {
        let m = ModelName::parse("nlp/bert").unwrap();
        let v = Version::parse("1.2.0").unwrap();
        let n = approval_name(Stage::Production, "bob", &m, &v);
        assert_eq!(n, "mvault-approval/production/bob/nlp/bert/1.2.0");
        let (s, u, m2, v2) = parse_approval_name(&n).unwrap();
        assert_eq!((s, u.as_str(), m2, v2), (Stage::Production, "bob", m, v));
        assert!(parse_approval_name("mvault-approval/prod/bob/nlp/bert/1.2.0").is_none());
    }
}

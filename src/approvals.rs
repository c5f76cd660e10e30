//! Approvals: signed tags that say "this person approves this version, with
//! this manifest, for this stage".
//!
//! An approval tag is named `mvault-approval/<stage>/<user>/<model>/<version>`
//! (outside GTO's two forms, so registry tools skip it), points at the commit
//! that added the version, and binds the manifest's SHA-256 in its message.
//! Which approvals count for a promotion is decided by [`count_approvals`],
//! used alike by the CLI (to pick them) and the hook (to check them).

use std::collections::BTreeSet;

use gix::ObjectId;
use serde::Serialize;
use ssh_key::PublicKey;
use time::OffsetDateTime;

use crate::crypto;
use crate::names::{ModelName, Stage, Version};
use crate::policy::{Policy, StageRule};
use crate::stages::{trailer, trailers};
use crate::store::{Store, StoreError};
use crate::vault::split_tag_signature;

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
    pub time: i64,
    #[serde(skip)]
    pub key: PublicKey,
    #[serde(skip)]
    pub target: ObjectId,
}

/// Why an approval does not count.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tag is not a well-formed, signed approval.
    #[error("approval {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// Why a tag name is not of the approval form, quoted in refusals.
fn not_an_approval_name() -> String {
    format!("not {APPROVAL_PREFIX}<stage>/<user>/<model>/<version>")
}

/// Read approval tag `name` (object `id`) and check its signature.
pub fn read_approval(store: &Store, name: &str, id: ObjectId) -> Result<Approval, ApprovalError> {
    let bad = |reason: String| ApprovalError::Invalid {
        name: name.to_owned(),
        reason,
    };
    // The name is checked before the store is asked for anything.
    parse_approval_name(name).ok_or_else(|| bad(not_an_approval_name()))?;
    let (kind, data) = store.object(id)?;
    if kind != gix::object::Kind::Tag {
        return Err(bad("not an annotated tag".into()));
    }
    parse_approval_tag(name, id, &data)
}

/// Parse and signature-check the bytes of the tag object `id` named `name`
/// as an approval. This is [`read_approval`] without the store, so it can be
/// tested on any bytes.
pub fn parse_approval_tag(
    name: &str,
    id: ObjectId,
    data: &[u8],
) -> Result<Approval, ApprovalError> {
    let bad = |reason: String| ApprovalError::Invalid {
        name: name.to_owned(),
        reason,
    };
    let (stage, user, model, version) =
        parse_approval_name(name).ok_or_else(|| bad(not_an_approval_name()))?;
    let tag = gix::objs::TagRef::from_bytes(data, gix::hash::Kind::Sha1)
        .map_err(|e| bad(e.to_string()))?;
    if tag.name != name.as_bytes() {
        return Err(bad(format!(
            "the tag object is named {:?}",
            String::from_utf8_lossy(tag.name)
        )));
    }
    let (payload, sig) = split_tag_signature(data).ok_or_else(|| bad("unsigned".into()))?;
    let key = crypto::verify_signature(sig, crypto::GIT_NAMESPACE, payload)
        .map_err(|e| bad(e.to_string()))?;
    let message = String::from_utf8_lossy(tag.message).into_owned();
    let t = trailers(&message);
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
    let tagger = tag.tagger().ok().flatten();
    Ok(Approval {
        name: name.to_owned(),
        id: id.to_string(),
        stage,
        user,
        model: model.to_string(),
        version: version.to_string(),
        manifest_sha256,
        comment: get("Mvault-Comment"),
        time: tagger
            .and_then(|s| s.time().ok())
            .map(|t| t.seconds)
            .unwrap_or(0),
        key,
        target: tag.target(),
    })
}

/// Every approval tag for `stage` of `model@version` in the repository.
pub fn approvals_for(
    store: &Store,
    model: &ModelName,
    version: &Version,
    stage: Stage,
) -> Result<Vec<Result<Approval, ApprovalError>>, StoreError> {
    let prefix = format!("refs/tags/{APPROVAL_PREFIX}{stage}/");
    let mut out = Vec::new();
    for (name, id) in store.refs_with_prefix(&prefix)? {
        let short = name.trim_start_matches("refs/tags/");
        match parse_approval_name(short) {
            Some((_, _, m, v)) if &m == model && &v == version => {
                out.push(read_approval(store, short, id))
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The outcome of counting approvals for one promotion.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApprovalCount {
    /// Approvals that count, one per person.
    pub counted: Vec<Approval>,
    /// Approvals that do not count, with the reason.
    pub rejected: Vec<(String, String)>,
}

/// Who is involved in a promotion, to keep people from approving their own work.
pub struct Parties<'a> {
    pub author: &'a str,
    pub promoter: &'a str,
}

/// Decide which approvals count: valid for this version, stage and
/// manifest, signed by the approver the name says, holding the rule's
/// approver role (or ml_admin) at `now`, not the author or promoter unless
/// the rule allows it, and one per person however many keys they have.
pub fn count_approvals(
    policy: &Policy,
    rule: &StageRule,
    model: &ModelName,
    manifest_sha256: &str,
    parties: &Parties<'_>,
    candidates: Vec<Approval>,
    now: OffsetDateTime,
) -> ApprovalCount {
    let mut out = ApprovalCount::default();
    let mut people = BTreeSet::new();
    for a in candidates {
        let reject = |why: String| (a.name.clone(), why);
        let signer = policy.user_of_key(&a.key);
        let r = match signer {
            None => Err(reject(format!(
                "signed by key {}, which is in no policy entry",
                crypto::fingerprint(&a.key)
            ))),
            Some(u) if u.name != a.user => Err(reject(format!(
                "named for {} but signed by {}",
                a.user, u.name
            ))),
            Some(u) if !u.active_at(now) => Err(reject(format!("{}'s key has expired", u.name))),
            Some(_) if a.manifest_sha256 != manifest_sha256 => Err(reject(format!(
                "binds manifest {}, the version's is {manifest_sha256}",
                a.manifest_sha256
            ))),
            Some(u) if !rule.allow_self_approval && u.name == parties.author => {
                Err(reject(format!(
                    "{} is the version's author; self-approval is not allowed",
                    u.name
                )))
            }
            Some(u) if !rule.allow_self_approval && u.name == parties.promoter => Err(reject(
                format!("{} is the promoter; self-approval is not allowed", u.name),
            )),
            Some(u) => {
                if policy.has_role(&u.name, model, rule.approver_role) {
                    if people.insert(u.name.clone()) {
                        Ok(())
                    } else {
                        Err(reject(format!(
                            "{} already counted once; approvals are one per person",
                            u.name
                        )))
                    }
                } else {
                    Err(reject(format!(
                        "{} does not hold {} on {model}",
                        u.name, rule.approver_role
                    )))
                }
            }
        };
        match r {
            Ok(()) => out.counted.push(a),
            Err(e) => out.rejected.push(e),
        }
    }
    out
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

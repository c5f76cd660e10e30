//! Key rings: a model's data key is wrapped to exactly the policy's
//! readers of that model, checked from the age header's `ssh-ed25519`
//! stanza tags without decrypting.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::escape;
use crate::crypto;
use crate::model::names::ModelName;
use crate::model::policy::Policy;

/// A key ring's `ssh-ed25519` stanzas must name exactly the model's
/// readers at `at`, one stanza each; any other recipient type (but age's
/// one grease stanza) is refused. `Err` holds the reason.
pub fn check_ring(
    sealed: &[u8],
    policy: &Policy,
    model: &ModelName,
    at: OffsetDateTime,
) -> Result<(), String> {
    let header = crypto::age_header(sealed).map_err(|e| e.to_string())?;
    if header.scrypt {
        return Err("wrapped to a passphrase, not to the readers' SSH keys".into());
    }
    let mut found = BTreeSet::new();
    let mut grease = 0;
    for s in &header.stanzas {
        if s.tag == "ssh-ed25519" {
            // One stanza per reader: a second stanza under a reader's tag
            // could be wrapped to anyone (the tag is only a hint).
            let tag = s.args.first().cloned().unwrap_or_default();
            if !found.insert(tag.clone()) {
                return Err(format!(
                    "two ssh-ed25519 stanzas carry the tag {}",
                    escape(&tag)
                ));
            }
        } else if s.tag.ends_with("-grease") && grease == 0 {
            // age adds one random "grease" stanza to every header.
            grease += 1;
        } else {
            return Err(format!(
                "a {} recipient is not a reader in the policy",
                escape(&s.tag)
            ));
        }
    }
    let readers = policy.readers(model, at);
    let expected: BTreeMap<String, &str> = readers
        .iter()
        .map(|(u, k)| (crypto::ssh_stanza_tag(k), *u))
        .collect();
    let expected_tags: BTreeSet<String> = expected.keys().cloned().collect();
    if found != expected_tags {
        let extra = found.difference(&expected_tags).count();
        let missing: Vec<&str> = expected_tags
            .difference(&found)
            .filter_map(|t| expected.get(t).copied())
            .collect();
        return Err(format!(
            "wrapped to {} key(s), the policy's readers are {} key(s); {extra} recipient(s) are not readers, missing: [{}]",
            found.len(),
            expected_tags.len(),
            missing.join(", ")
        ));
    }
    Ok(())
}

/// The `ssh-ed25519` stanza tags of a sealed key ring: who holds its
/// wrapping, as far as the header says without decrypting.
pub fn ring_holders(sealed: &[u8]) -> Result<BTreeSet<String>, String> {
    let header = crypto::age_header(sealed).map_err(|e| e.to_string())?;
    Ok(header
        .stanzas
        .into_iter()
        .filter(|s| s.tag == "ssh-ed25519")
        .filter_map(|s| s.args.into_iter().next())
        .collect())
}

/// The stanza tags of the model's readers at `at`.
pub fn reader_tags(policy: &Policy, model: &ModelName, at: OffsetDateTime) -> BTreeSet<String> {
    policy
        .readers(model, at)
        .into_iter()
        .map(|(_, k)| crypto::ssh_stanza_tag(k))
        .collect()
}

/// The holders of a key ring who are no longer readers of the model at
/// `at` (expired, or their grant gone), by policy name where the policy
/// still names their key (`"an unknown key"` otherwise). A write to the
/// model at `at` must first give it a new data-key generation sealed to
/// the readers alone: "expiry cuts readers off going forward".
pub fn former_readers(
    sealed: &[u8],
    policy: &Policy,
    model: &ModelName,
    at: OffsetDateTime,
) -> Result<Vec<String>, String> {
    let readers = reader_tags(policy, model, at);
    let by_tag: BTreeMap<String, String> = policy
        .users
        .values()
        .flat_map(|u| {
            u.keys.iter().map(move |k| {
                let who = match u.expires {
                    Some(d) if at.date() >= d => format!("{} (expired {d})", u.name),
                    _ => u.name.clone(),
                };
                (crypto::ssh_stanza_tag(k), who)
            })
        })
        .collect();
    let mut out: Vec<String> = ring_holders(sealed)?
        .difference(&readers)
        .map(|t| {
            by_tag
                .get(t)
                .cloned()
                .unwrap_or_else(|| "an unknown key".to_owned())
        })
        .collect();
    out.dedup();
    Ok(out)
}

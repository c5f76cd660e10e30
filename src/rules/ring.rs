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

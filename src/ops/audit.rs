//! `mvault audit verify`: the replay of the whole record, and with a key,
//! the decryption of every version it can read, each plaintext digest
//! checked.

use crate::audit::events::{AuditBreak, AuditReport};
use crate::crypto::SshIdentity;
use crate::model::names::VersionRef;
use crate::vault::{now, Vault, VaultError};
use crate::verify::replay;

/// Replay the record; with `decrypt`, also decrypt and check every
/// version the key can read.
pub fn verify(vault: &Vault, decrypt: Option<&SshIdentity>) -> Result<AuditReport, VaultError> {
    let mut report = replay::verify(&vault.store, now().unix_timestamp());
    let Some(who) = decrypt.filter(|_| report.ok) else {
        return Ok(report);
    };
    let (_, tip_tree) = vault.main()?;
    for (model, versions) in vault.models(tip_tree)? {
        for v in versions {
            let r = VersionRef::Exact(model.clone(), v.clone());
            match crate::ops::retrieve::verify(vault, &r, who, &crate::ops::progress::Silent) {
                Ok(_) => report.versions_decrypted += 1,
                Err(VaultError::NoReadAccess { .. }) => {}
                Err(e) => {
                    report.ok = false;
                    report.first_break = Some(AuditBreak {
                        object: format!("{model}@{v}"),
                        rule: "plaintext check failed".into(),
                        detail: e.to_string(),
                    });
                    return Ok(report);
                }
            }
        }
    }
    Ok(report)
}

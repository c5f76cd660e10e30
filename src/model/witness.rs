//! Witness cosignatures: an independent party's signed word that it
//! checked the server's receipt chain up to a receipt, and the decision
//! log's chain with it.
//!
//! A checkpoint names the receipt (its number, hash and commit), the
//! decision-log head that receipt carries, the server's time in it, and
//! the witness's own time. It is canonical TOML, SSH-signed by the witness
//! in namespace `mvault-witness`, kept as a commit (`checkpoint.toml` and
//! `checkpoint.toml.sig`) on `refs/mvault/witness/<name>`, each checkpoint
//! commit the child of the witness's previous one.

use serde::{Deserialize, Serialize};

use crate::model::manifest::Sha256Digest;
use crate::model::receipt::parse_time;

/// Where witness `<name>` keeps its cosignatures.
pub const WITNESS_PREFIX: &str = "refs/mvault/witness/";
/// The SSH signature namespace of checkpoints.
pub const WITNESS_NAMESPACE: &str = "mvault-witness";
/// The checkpoint's file in a cosignature commit's tree (`.sig` beside it).
pub const CHECKPOINT_FILE: &str = "checkpoint.toml";
/// The `format` of a checkpoint this mvault writes and reads.
pub const CHECKPOINT_FORMAT: &str = "mvault-witness/1";
/// The file, in a receipt commit's tree, holding the decision-log lines
/// written since the previous receipt: what a witness recomputes the log's
/// chain from.
pub const RECEIPT_LOG_FILE: &str = "decisions.jsonl";

/// The ref of witness `name`.
pub fn witness_ref(name: &str) -> String {
    format!("{WITNESS_PREFIX}{name}")
}

/// The witness a ref names, if it is a witness ref: one path component.
pub fn parse_witness_ref(refname: &str) -> Option<&str> {
    let name = refname.strip_prefix(WITNESS_PREFIX)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// What a witness signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// The witness: a policy user with the auditor role on `**`.
    pub witness: String,
    /// The receipt checked last: its number…
    pub seq: u64,
    /// …the SHA-256 of its file…
    pub receipt: String,
    /// …and its commit on `refs/mvault/receipts`.
    pub commit: String,
    /// The decision-log head that receipt carries.
    pub decision_log: String,
    /// The server's time in that receipt (RFC 3339).
    pub server_time: String,
    /// The witness's clock when it signed (RFC 3339): what "newer than" means.
    pub time: String,
}

/// Why checkpoint bytes are not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not TOML of the checkpoint's shape.
    #[error("not a checkpoint: {0}")]
    Syntax(String),
    /// Parses, but is not the canonical form.
    #[error("not in canonical form (re-rendering gives other bytes)")]
    NotCanonical,
    /// A field breaks the format.
    #[error("{field}: {reason}")]
    Field {
        field: &'static str,
        reason: &'static str,
    },
}

impl Checkpoint {
    /// The canonical bytes: what is signed.
    pub fn render(&self) -> String {
        toml::to_string(self).expect("a checkpoint always serialises")
    }

    /// The witness's time, unix seconds.
    pub fn unix_time(&self) -> i64 {
        parse_time(&self.time).unwrap_or(i64::MIN)
    }

    /// Parse untrusted bytes; only the canonical form is accepted.
    pub fn parse(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let field = |field, reason| CheckpointError::Field { field, reason };
        let text =
            std::str::from_utf8(bytes).map_err(|e| CheckpointError::Syntax(e.to_string()))?;
        let c: Checkpoint =
            toml::from_str(text).map_err(|e| CheckpointError::Syntax(e.to_string()))?;
        if c.format != CHECKPOINT_FORMAT {
            return Err(field("format", "this mvault reads mvault-witness/1"));
        }
        if c.witness.is_empty()
            || c.witness.contains('/')
            || c.witness.chars().any(char::is_control)
        {
            return Err(field("witness", "a policy user name"));
        }
        if c.seq == 0 {
            return Err(field("seq", "a receipt number, from 1"));
        }
        for (name, v) in [("receipt", &c.receipt), ("decision_log", &c.decision_log)] {
            if Sha256Digest::from_hex(v).is_none() {
                return Err(field(name, "64 lower-case hex digits"));
            }
        }
        if crate::store::objects::parse_id(&c.commit).is_none() {
            return Err(field("commit", "40 hex digits"));
        }
        if parse_time(&c.time).is_none() || parse_time(&c.server_time).is_none() {
            return Err(field("time", "an RFC 3339 time"));
        }
        if c.render().as_bytes() != bytes {
            return Err(CheckpointError::NotCanonical);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_parse_only_in_canonical_form() {
        let c = Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            witness: "wanda".into(),
            seq: 3,
            receipt: "ab".repeat(32),
            commit: "1".repeat(40),
            decision_log: "cd".repeat(32),
            server_time: "2026-12-07T10:00:00Z".into(),
            time: "2026-12-07T10:05:00Z".into(),
        };
        let text = c.render();
        assert_eq!(Checkpoint::parse(text.as_bytes()), Ok(c));
        assert_eq!(
            Checkpoint::parse(format!("{text}\n").as_bytes()),
            Err(CheckpointError::NotCanonical)
        );
        assert!(Checkpoint::parse(text.replace("wanda", "a/b").as_bytes()).is_err());
        assert_eq!(
            parse_witness_ref("refs/mvault/witness/wanda"),
            Some("wanda")
        );
        assert_eq!(parse_witness_ref("refs/mvault/witness/a/b"), None);
    }
}

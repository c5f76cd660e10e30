//! Server receipts and the server's timestamp: what the server signs after
//! a push landed, and on a schedule.
//!
//! A receipt says "these ref updates landed here, pushed by this user, at
//! this server time, after this decision-log head, following that receipt".
//! Receipts chain by the SHA-256 of the previous receipt's bytes, and each
//! is SSH-signed by the server key the policy pins (namespace
//! `mvault-receipt`). The timestamp names the newest receipt and the
//! server's time, signed in namespace `mvault-timestamp`; the server
//! refreshes it on every receipt and on every `mvault hook heartbeat`.
//!
//! Both are canonical TOML: a file is believed only if rendering what was
//! parsed gives back the same bytes, so one receipt has one hash.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::manifest::Sha256Digest;
use crate::store::objects::{parse_id, ObjectId};

/// The ref the server keeps its receipt chain on (one commit per receipt).
pub const RECEIPTS_REF: &str = "refs/mvault/receipts";
/// The ref of the server's newest timestamp (one commit, replaced).
pub const TIMESTAMP_REF: &str = "refs/mvault/timestamp";
/// The SSH signature namespace of receipts.
pub const RECEIPT_NAMESPACE: &str = "mvault-receipt";
/// The SSH signature namespace of timestamps.
pub const TIMESTAMP_NAMESPACE: &str = "mvault-timestamp";
/// The receipt's file in a receipt commit's tree; its signature is `.sig`.
pub const RECEIPT_FILE: &str = "receipt.toml";
/// The timestamp's file in the timestamp commit's tree.
pub const TIMESTAMP_FILE: &str = "timestamp.toml";
/// The `format` of a receipt this mvault writes and reads.
pub const RECEIPT_FORMAT: &str = "mvault-receipt/1";
/// The `format` of a timestamp.
pub const TIMESTAMP_FORMAT: &str = "mvault-timestamp/1";

/// The `prev` of the first receipt.
pub fn zero_hash() -> String {
    "0".repeat(64)
}

/// One ref a push moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptUpdate {
    #[serde(rename = "ref")]
    pub refname: String,
    /// 40 hex digits; zeros for a creation.
    pub old: String,
    /// 40 hex digits; zeros for a deletion.
    pub new: String,
}

impl ReceiptUpdate {
    /// The object the ref points at after the update, unless deleted.
    pub fn new_id(&self) -> Option<ObjectId> {
        parse_id(&self.new).filter(|id| !id.is_null())
    }
}

/// A receipt, as the server signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    /// 1 for the first receipt, one more for each after it.
    pub seq: u64,
    /// The server's time when the updates landed (RFC 3339, UTC, seconds).
    pub time: String,
    /// The pusher, as the server knew them.
    pub pusher: String,
    /// SHA-256 of the previous receipt's file ([`zero_hash`] for the first).
    pub prev: String,
    /// The decision log's head when the receipt was written: the SHA-256
    /// of its last line (the accept of this push, or a later line)…
    pub decision_log: String,
    /// …and its length in bytes.
    pub decision_log_bytes: u64,
    /// What landed, in git's order.
    pub updates: Vec<ReceiptUpdate>,
}

/// The server's signed statement of freshness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timestamp {
    /// [`TIMESTAMP_FORMAT`].
    pub format: String,
    /// The server's time when it signed (RFC 3339, UTC, seconds).
    pub time: String,
    /// The newest receipt's seq (0: none yet).
    pub seq: u64,
    /// SHA-256 of the newest receipt's file ([`zero_hash`]: none yet).
    pub receipt: String,
}

/// Why receipt or timestamp bytes are not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not TOML of the receipt's shape.
    #[error("not a receipt: {0}")]
    Syntax(String),
    /// Parses, but is not the canonical form (one receipt, one hash).
    #[error("not in canonical form (re-rendering gives other bytes)")]
    NotCanonical,
    /// A field breaks the format.
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
}

fn field(field: &'static str, reason: impl Into<String>) -> ReceiptError {
    ReceiptError::Field {
        field,
        reason: reason.into(),
    }
}

fn check_hash(name: &'static str, v: &str) -> Result<(), ReceiptError> {
    Sha256Digest::from_hex(v)
        .map(drop)
        .ok_or_else(|| field(name, "64 lower-case hex digits"))
}

fn check_time(name: &'static str, v: &str) -> Result<i64, ReceiptError> {
    parse_time(v).ok_or_else(|| field(name, "an RFC 3339 time"))
}

/// Unix seconds of an RFC 3339 time.
pub fn parse_time(v: &str) -> Option<i64> {
    OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// RFC 3339, UTC, whole seconds: the form receipts carry.
pub fn format_time(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

impl Receipt {
    /// The canonical bytes: what is signed and hashed.
    pub fn render(&self) -> String {
        toml::to_string(self).expect("a receipt always serialises")
    }

    /// SHA-256 of the canonical bytes: what the next receipt's `prev` names.
    pub fn hash(&self) -> String {
        Sha256Digest::of(self.render().as_bytes()).to_hex()
    }

    /// The server's time, unix seconds.
    pub fn unix_time(&self) -> i64 {
        parse_time(&self.time).unwrap_or(i64::MIN)
    }

    /// Parse untrusted bytes; only the canonical form is accepted.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ReceiptError::Syntax(e.to_string()))?;
        let r: Receipt = toml::from_str(text).map_err(|e| ReceiptError::Syntax(e.to_string()))?;
        if r.format != RECEIPT_FORMAT {
            return Err(field(
                "format",
                format!("this mvault reads {RECEIPT_FORMAT}"),
            ));
        }
        if r.seq == 0 {
            return Err(field("seq", "counts from 1"));
        }
        check_time("time", &r.time)?;
        check_hash("prev", &r.prev)?;
        check_hash("decision_log", &r.decision_log)?;
        if r.pusher.is_empty() || r.pusher.chars().any(char::is_control) {
            return Err(field("pusher", "a name without control characters"));
        }
        if r.updates.is_empty() {
            return Err(field("updates", "at least one ref update"));
        }
        for u in &r.updates {
            let ok_id = |s: &str| parse_id(s).is_some();
            if !u.refname.starts_with("refs/") || u.refname.chars().any(char::is_control) {
                return Err(field("updates.ref", "a full ref name"));
            }
            if !ok_id(&u.old) || !ok_id(&u.new) {
                return Err(field("updates.old/new", "40 hex digits"));
            }
        }
        if r.render().as_bytes() != bytes {
            return Err(ReceiptError::NotCanonical);
        }
        Ok(r)
    }
}

impl Timestamp {
    /// The canonical bytes: what is signed.
    pub fn render(&self) -> String {
        toml::to_string(self).expect("a timestamp always serialises")
    }

    /// The server's time, unix seconds.
    pub fn unix_time(&self) -> i64 {
        parse_time(&self.time).unwrap_or(i64::MIN)
    }

    /// Parse untrusted bytes; only the canonical form is accepted.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ReceiptError::Syntax(e.to_string()))?;
        let t: Timestamp = toml::from_str(text).map_err(|e| ReceiptError::Syntax(e.to_string()))?;
        if t.format != TIMESTAMP_FORMAT {
            return Err(field(
                "format",
                format!("this mvault reads {TIMESTAMP_FORMAT}"),
            ));
        }
        check_time("time", &t.time)?;
        check_hash("receipt", &t.receipt)?;
        if t.render().as_bytes() != bytes {
            return Err(ReceiptError::NotCanonical);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        Receipt {
            format: RECEIPT_FORMAT.into(),
            seq: 1,
            time: "2026-12-07T10:00:00Z".into(),
            pusher: "alice".into(),
            prev: zero_hash(),
            decision_log: "ab".repeat(32),
            decision_log_bytes: 120,
            updates: vec![ReceiptUpdate {
                refname: "refs/heads/main".into(),
                old: "0".repeat(40),
                new: "1".repeat(40),
            }],
        }
    }

    #[test]
    fn a_receipt_round_trips_and_only_its_canonical_form_parses() {
        let r = sample();
        let text = r.render();
        assert_eq!(Receipt::parse(text.as_bytes()).expect("parses"), r);
        let spaced = text.replace("seq = 1", "seq  =  1");
        assert_eq!(
            Receipt::parse(spaced.as_bytes()),
            Err(ReceiptError::NotCanonical)
        );
        let extra = format!("{text}\nextra = 1\n");
        assert!(Receipt::parse(extra.as_bytes()).is_err());
    }

    #[test]
    fn a_receipt_with_a_bad_field_is_named() {
        let mut r = sample();
        r.prev = "xyz".into();
        let err = Receipt::parse(r.render().as_bytes()).expect_err("bad prev");
        assert!(matches!(err, ReceiptError::Field { field: "prev", .. }));
        let mut r = sample();
        r.updates.clear();
        assert!(Receipt::parse(r.render().as_bytes()).is_err());
    }

    #[test]
    fn a_timestamp_round_trips() {
        let t = Timestamp {
            format: TIMESTAMP_FORMAT.into(),
            time: "2026-12-07T10:00:00Z".into(),
            seq: 0,
            receipt: zero_hash(),
        };
        assert_eq!(Timestamp::parse(t.render().as_bytes()).expect("parses"), t);
        assert_eq!(t.unix_time(), 1_796_637_600);
    }
}

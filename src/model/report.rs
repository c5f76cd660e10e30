//! Integrity reports: what a client found wrong with what a server served
//! (a digest, a signature, a size, a chain), as a small JSON document that
//! the client signs and pushes under `refs/mvault/reports/<user>/<id>`.
//!
//! A report is the message of a signed commit with no parent and the empty
//! tree: git carries, signs and verifies it like any commit, and it never
//! touches `main`. Its id is the start of the SHA-256 of the JSON, so the
//! ref name says which report it holds. The text is the reporter's claim;
//! the hook checks who signed and pushed it, never whether it is true.

use serde::{Deserialize, Serialize};

use crate::model::manifest::Sha256Digest;
use crate::model::names::{ModelName, Version};
use crate::model::policy::valid_user_name;

/// Where reports live on the server.
pub const REPORT_PREFIX: &str = "refs/mvault/reports/";
/// The `kind` every report carries.
pub const REPORT_KIND: &str = "integrity-report";
/// The schema version of the report JSON.
pub const REPORT_SCHEMA: u32 = 1;
/// The largest report accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 16 * 1024;
/// How many hex digits of the SHA-256 name a report.
pub const REPORT_ID_LEN: usize = 16;
/// The id of git's empty tree, the tree of every report commit.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// What a client's check found broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// A file's or blob's digest differs from the signed manifest.
    Digest,
    /// A signature does not verify, or its signer had no right to sign.
    Signature,
    /// A size differs from the manifest.
    Size,
    /// The record does not chain back to the root keys (a tag, a
    /// rewritten main, a promotion chain).
    Chain,
    /// Decryption failed: the ciphertext was altered.
    Decrypt,
}

impl Check {
    /// The name the report and the logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Digest => "digest",
            Check::Signature => "signature",
            Check::Size => "size",
            Check::Chain => "chain",
            Check::Decrypt => "decrypt",
        }
    }
}

/// One integrity report, checked: every field holds a valid value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityReport {
    /// [`REPORT_SCHEMA`].
    pub schema: u32,
    /// [`REPORT_KIND`].
    pub kind: String,
    /// The reporter's policy user name.
    pub reporter: String,
    /// When the client found it (RFC 3339, the client's clock).
    pub time: String,
    /// The model concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The version concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Which check failed.
    pub check: Check,
    /// The client's error message.
    pub detail: String,
    /// The command that found it (`pull`, `verify`).
    pub command: String,
    /// The client's `main` when it found it, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<String>,
}

/// Why bytes are not a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Too long to be a report.
    #[error("a report is at most {MAX_REPORT_BYTES} bytes; this one is {0}")]
    TooLarge(usize),
    /// Not the report JSON.
    #[error("not a report: {0}")]
    Json(String),
    /// A field holds a value it may not.
    #[error("report field {field}: {reason}")]
    Field { field: &'static str, reason: String },
    /// The ref does not name the report as `<prefix><user>/<id>`.
    #[error("a report's ref is {REPORT_PREFIX}<user>/<id>, <id> the first {REPORT_ID_LEN} hex digits of the report's SHA-256 (expected {expected})")]
    RefName { expected: String },
}

impl IntegrityReport {
    /// The report's bytes (the commit message): compact JSON and a newline.
    pub fn to_message(&self) -> String {
        let mut text = serde_json::to_string(self).expect("a report always serialises");
        text.push('\n');
        text
    }

    /// Parse and check a report from a commit message.
    pub fn parse(message: &[u8]) -> Result<Self, ReportError> {
        if message.len() > MAX_REPORT_BYTES {
            return Err(ReportError::TooLarge(message.len()));
        }
        let r: IntegrityReport =
            serde_json::from_slice(message).map_err(|e| ReportError::Json(e.to_string()))?;
        let field = |field: &'static str, reason: &str| ReportError::Field {
            field,
            reason: reason.to_owned(),
        };
        if r.schema != REPORT_SCHEMA {
            return Err(field("schema", &format!("must be {REPORT_SCHEMA}")));
        }
        if r.kind != REPORT_KIND {
            return Err(field("kind", &format!("must be {REPORT_KIND:?}")));
        }
        if !valid_user_name(&r.reporter) {
            return Err(field("reporter", "not a policy user name"));
        }
        if time::OffsetDateTime::parse(&r.time, &time::format_description::well_known::Rfc3339)
            .is_err()
        {
            return Err(field("time", "not an RFC 3339 time"));
        }
        if let Some(m) = &r.model {
            ModelName::parse(m).map_err(|e| field("model", &e.to_string()))?;
        }
        if let Some(v) = &r.version {
            Version::parse(v).map_err(|e| field("version", &e.to_string()))?;
        }
        if !matches!(r.command.as_str(), "pull" | "verify") {
            return Err(field("command", "must be pull or verify"));
        }
        if let Some(m) = &r.main {
            if m.len() != 40 || !m.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(field("main", "not a commit id"));
            }
        }
        Ok(r)
    }

    /// The report's id: the first hex digits of the SHA-256 of `message`.
    pub fn id_of(message: &[u8]) -> String {
        Sha256Digest::of(message).to_hex()[..REPORT_ID_LEN].to_owned()
    }

    /// The ref a report with these bytes is pushed to.
    pub fn ref_for(reporter: &str, message: &[u8]) -> String {
        format!("{REPORT_PREFIX}{reporter}/{}", Self::id_of(message))
    }

    /// Check that `refname` is the ref of this report with bytes `message`.
    pub fn check_ref(&self, refname: &str, message: &[u8]) -> Result<(), ReportError> {
        let expected = Self::ref_for(&self.reporter, message);
        if refname != expected {
            return Err(ReportError::RefName { expected });
        }
        Ok(())
    }
}

/// The user a report ref names, `refs/mvault/reports/<user>/<id>`.
pub fn report_ref_user(refname: &str) -> Option<&str> {
    let (user, id) = refname.strip_prefix(REPORT_PREFIX)?.split_once('/')?;
    (valid_user_name(user)
        && id.len() == REPORT_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IntegrityReport {
        IntegrityReport {
            schema: REPORT_SCHEMA,
            kind: REPORT_KIND.into(),
            reporter: "bob".into(),
            time: "2026-11-22T10:00:00Z".into(),
            model: Some("nlp/bert".into()),
            version: Some("1.0.0".into()),
            check: Check::Digest,
            detail: "payload tree check failed".into(),
            command: "pull".into(),
            main: None,
        }
    }

    #[test]
    fn a_report_round_trips_and_names_its_ref() {
        let r = sample();
        let msg = r.to_message();
        assert_eq!(IntegrityReport::parse(msg.as_bytes()), Ok(r.clone()));
        let name = IntegrityReport::ref_for("bob", msg.as_bytes());
        assert_eq!(report_ref_user(&name), Some("bob"));
        assert!(r.check_ref(&name, msg.as_bytes()).is_ok());
        let other = format!("{REPORT_PREFIX}bob/0123456789abcdef");
        assert!(matches!(
            r.check_ref(&other, msg.as_bytes()),
            Err(ReportError::RefName { .. })
        ));
    }

    #[test]
    fn hostile_reports_are_refused_with_the_field() {
        let mut r = sample();
        r.model = Some("NLP/../x".into());
        let err = IntegrityReport::parse(r.to_message().as_bytes()).expect_err("bad model");
        assert!(
            matches!(err, ReportError::Field { field: "model", .. }),
            "{err}"
        );
        let mut r = sample();
        r.reporter = "Bob".into();
        assert!(IntegrityReport::parse(r.to_message().as_bytes()).is_err());
        assert!(matches!(
            IntegrityReport::parse(b"{\"schema\":1,\"extra\":true}"),
            Err(ReportError::Json(_))
        ));
        let big = vec![b' '; MAX_REPORT_BYTES + 1];
        assert!(matches!(
            IntegrityReport::parse(&big),
            Err(ReportError::TooLarge(_))
        ));
        assert_eq!(report_ref_user("refs/mvault/reports/bob/../x"), None);
        assert_eq!(
            report_ref_user("refs/mvault/reports/bob/0123456789ABCDEF"),
            None
        );
    }
}

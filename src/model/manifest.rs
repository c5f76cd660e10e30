//! The manifest: what a version is, in plaintext, canonical TOML.
//!
//! The manifest is the one document every party reads: `add` writes it, `pull`
//! checks every byte it writes against it, the hook checks it against the tree
//! without decrypting anything, and auditors read it with `git show`. It is
//! parsed into raw serde structs and then validated into [`Manifest`], which
//! cannot hold an invalid path, digest or name. Canonical means the same inputs
//! give byte-identical TOML, so a manifest that does not re-serialise to its
//! own bytes is refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::names::{ModelName, NameError, Version};
pub use crate::model::paths::{
    check_path_set, fold_name, is_dotgit_name, is_hfs_ignorable, validate_component, validate_path,
    MAX_PATH_LEN, PATH_RULE,
};

mod card;
pub use card::{
    check_description, check_uri, is_label, CardView, JsonSchemaDoc, ModelCard, ModelType,
    TrainingDataset, LABEL_RULE, MAX_LABELS,
};

/// The schema version this build writes and reads (layout 2: the payload
/// lives under its own ref, files are split into parts). Schema 1 (layout
/// 1, blobs on `main`) is not read: no such vault was ever released.
pub const SCHEMA: u32 = 2;

/// The smallest and largest part size a manifest may declare.
pub const PART_SIZE_RANGE: std::ops::RangeInclusive<u64> = 65_536..=67_108_864;

/// A SHA-256 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parse 64 lower-case hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Sha256Digest(out))
    }
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Digest(Sha256::digest(bytes).into())
    }
}

impl std::fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One part of a file: a run of its bytes, stored as one age file, one git
/// blob in the payload tree named by the part's plaintext SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Plaintext SHA-256 of the part: its name in the payload tree.
    pub sha256: Sha256Digest,
    /// Plaintext bytes, at least 1 and at most the manifest's `part_size`.
    pub size: u64,
    /// Ciphertext bytes: the git blob's size.
    pub blob_size: u64,
}

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative path, validated by [`validate_path`].
    pub path: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Plaintext SHA-256 of the whole file (what `sha256sum` prints).
    pub sha256: Sha256Digest,
    /// The file's parts in order; their sizes add up to `size`. An empty
    /// file has none.
    pub parts: Vec<Part>,
}

/// Where the model came from.
pub type Provenance = BTreeMap<String, String>;

/// A validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub model: ModelName,
    pub version: Version,
    pub parent: Option<Version>,
    pub author: String,
    pub author_key: String,
    /// RFC 3339 UTC, seconds.
    pub created: String,
    pub framework: Option<String>,
    /// The age recipient (`age1…`) of the data key the parts are encrypted to.
    pub data_key: String,
    /// The git tree id (40 hex) of the payload: one entry per distinct part.
    pub payload: String,
    /// The largest part, in plaintext bytes, this version was split with.
    pub part_size: u64,
    pub metadata: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub provenance: Provenance,
    /// Type, description, schemas, labels, training data, dependencies.
    pub card: ModelCard,
    /// Sorted by path, unique.
    pub files: Vec<FileEntry>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML of the manifest's shape.
    #[error("manifest line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A field breaks its rule.
    #[error("manifest line {line}: {field}: {rule} (found {found:?})")]
    Field {
        line: usize,
        field: String,
        rule: String,
        found: String,
    },
    /// A name or version is invalid.
    #[error("manifest: {0}")]
    Name(#[from] NameError),
    /// The bytes are not the canonical form of what they say.
    #[error("manifest is not canonical: re-serialising it gives other bytes (rule: manifests are canonical TOML)")]
    NotCanonical,
    /// The manifest's Merkle root does not match its file list.
    #[error("manifest merkle_root {found} does not match its files (expected {expected})")]
    MerkleRoot { expected: String, found: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    schema: toml::Spanned<u32>,
    model: toml::Spanned<String>,
    version: toml::Spanned<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<toml::Spanned<String>>,
    author: toml::Spanned<String>,
    author_key: String,
    created: toml::Spanned<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    framework: Option<String>,
    data_key: toml::Spanned<String>,
    payload: toml::Spanned<String>,
    part_size: toml::Spanned<u64>,
    merkle_root: toml::Spanned<String>,
    file_count: u64,
    total_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_type: Option<toml::Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<toml::Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<toml::Spanned<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    training_dataset: Option<toml::Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    training_dataset_sha256: Option<toml::Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_schema: Option<toml::Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_schema: Option<toml::Spanned<String>>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
    #[serde(default)]
    provenance: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<RawPin>,
    files: Vec<RawFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    name: toml::Spanned<String>,
    version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sha256: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    marker: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: toml::Spanned<String>,
    size: u64,
    sha256: toml::Spanned<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<RawPart>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    sha256: toml::Spanned<String>,
    size: u64,
    blob_size: u64,
}

/// The Merkle root over `(path, digest)` pairs in path order (see docs/formats.md).
pub fn merkle_root(files: &[FileEntry]) -> Sha256Digest {
    let mut level: Vec<[u8; 32]> = files
        .iter()
        .map(|f| {
            let mut h = Sha256::new();
            h.update([0u8]);
            h.update(f.path.as_bytes());
            h.update([0u8]);
            h.update(f.sha256.0);
            h.finalize().into()
        })
        .collect();
    if level.is_empty() {
        return Sha256Digest(Sha256::digest([]).into());
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut h = Sha256::new();
                    h.update([1u8]);
                    h.update(l);
                    h.update(r);
                    h.finalize().into()
                }
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    Sha256Digest(level[0])
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

impl Manifest {
    /// The canonical TOML bytes.
    pub fn to_canonical(&self) -> String {
        fn sp<T>(_: std::ops::Range<usize>, v: T) -> toml::Spanned<T> {
            toml::Spanned::new(0..0, v)
        }
        let c = &self.card;
        let raw = RawManifest {
            schema: sp(0..0, SCHEMA),
            model: sp(0..0, self.model.to_string()),
            version: sp(0..0, self.version.to_string()),
            parent: self.parent.as_ref().map(|p| sp(0..0, p.to_string())),
            author: sp(0..0, self.author.clone()),
            author_key: self.author_key.clone(),
            created: sp(0..0, self.created.clone()),
            framework: self.framework.clone(),
            data_key: sp(0..0, self.data_key.clone()),
            payload: sp(0..0, self.payload.clone()),
            part_size: sp(0..0, self.part_size),
            merkle_root: sp(0..0, merkle_root(&self.files).to_hex()),
            file_count: self.files.len() as u64,
            total_size: self.total_size(),
            model_type: c.model_type.map(|t| sp(0..0, t.as_str().to_owned())),
            description: c.description.clone().map(|d| sp(0..0, d)),
            labels: (!c.labels.is_empty()).then(|| sp(0..0, c.labels.iter().cloned().collect())),
            training_dataset: c.training_dataset.as_ref().map(|t| sp(0..0, t.uri.clone())),
            training_dataset_sha256: c
                .training_dataset
                .as_ref()
                .and_then(|t| t.sha256)
                .map(|d| sp(0..0, d.to_hex())),
            input_schema: c
                .input_schema
                .as_ref()
                .map(|s| sp(0..0, s.as_str().to_owned())),
            output_schema: c
                .output_schema
                .as_ref()
                .map(|s| sp(0..0, s.as_str().to_owned())),
            metadata: self.metadata.clone(),
            metrics: self.metrics.clone(),
            provenance: self.provenance.clone(),
            dependencies: c
                .dependencies
                .iter()
                .map(|p| RawPin {
                    name: sp(0..0, p.name.clone()),
                    version: p.version.clone(),
                    sha256: p.sha256.iter().map(Sha256Digest::to_hex).collect(),
                    marker: p.marker.clone(),
                })
                .collect(),
            files: self
                .files
                .iter()
                .map(|f| RawFile {
                    path: sp(0..0, f.path.clone()),
                    size: f.size,
                    sha256: sp(0..0, f.sha256.to_hex()),
                    parts: f
                        .parts
                        .iter()
                        .map(|p| RawPart {
                            sha256: sp(0..0, p.sha256.to_hex()),
                            size: p.size,
                            blob_size: p.blob_size,
                        })
                        .collect(),
                })
                .collect(),
        };
        toml::to_string(&raw).expect("a manifest always serialises")
    }

    /// Sum of the plaintext sizes.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The SHA-256 of the canonical bytes.
    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest::of(self.to_canonical().as_bytes())
    }

    /// Parse and validate manifest bytes, refusing anything not canonical.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| {
                    let line = line_of(text, s.start);
                    let col = s.start - text[..s.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                    (line, col)
                })
                .unwrap_or((0, 0));
            ManifestError::Syntax {
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        let field = |span: std::ops::Range<usize>, field: &str, rule: &str, found: &str| {
            ManifestError::Field {
                line: line_of(text, span.start),
                field: field.to_owned(),
                rule: rule.to_owned(),
                found: found.to_owned(),
            }
        };
        if *raw.schema.get_ref() != SCHEMA {
            return Err(field(
                raw.schema.span(),
                "schema",
                "this mvault reads schema 2 (layout 2; schema 1 was never released)",
                &raw.schema.get_ref().to_string(),
            ));
        }
        let model = ModelName::parse(raw.model.get_ref())?;
        let version = Version::parse(raw.version.get_ref())?;
        let parent = raw
            .parent
            .as_ref()
            .map(|p| Version::parse(p.get_ref()))
            .transpose()?;
        if raw.author.get_ref().is_empty() {
            return Err(field(raw.author.span(), "author", "must not be empty", ""));
        }
        if time::OffsetDateTime::parse(
            raw.created.get_ref(),
            &time::format_description::well_known::Rfc3339,
        )
        .is_err()
        {
            return Err(field(
                raw.created.span(),
                "created",
                "RFC 3339 time",
                raw.created.get_ref(),
            ));
        }
        if raw
            .data_key
            .get_ref()
            .parse::<age::x25519::Recipient>()
            .is_err()
        {
            return Err(field(
                raw.data_key.span(),
                "data_key",
                "an age X25519 recipient (age1…)",
                raw.data_key.get_ref(),
            ));
        }
        let payload = raw.payload.get_ref();
        if payload.len() != 40
            || !payload
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(field(
                raw.payload.span(),
                "payload",
                "the payload's git tree id, 40 lower-case hex digits",
                payload,
            ));
        }
        let part_size = *raw.part_size.get_ref();
        if !PART_SIZE_RANGE.contains(&part_size) {
            return Err(field(
                raw.part_size.span(),
                "part_size",
                "between 65536 and 67108864 bytes",
                &part_size.to_string(),
            ));
        }
        // One plaintext digest is one object: its sizes agree everywhere.
        let mut part_sizes: BTreeMap<Sha256Digest, (u64, u64)> = BTreeMap::new();
        let mut files = Vec::with_capacity(raw.files.len());
        for (i, f) in raw.files.iter().enumerate() {
            let path = f.path.get_ref();
            if let Err(why) = validate_path(path) {
                return Err(field(
                    f.path.span(),
                    &format!("files[{i}].path"),
                    PATH_RULE,
                    &format!("{path} ({why})"),
                ));
            }
            let Some(sha256) = Sha256Digest::from_hex(f.sha256.get_ref()) else {
                return Err(field(
                    f.sha256.span(),
                    &format!("files[{i}].sha256"),
                    "64 lower-case hex digits",
                    f.sha256.get_ref(),
                ));
            };
            let mut parts = Vec::with_capacity(f.parts.len());
            let mut sum = 0u64;
            for (k, p) in f.parts.iter().enumerate() {
                let at = format!("files[{i}].parts[{k}]");
                let Some(digest) = Sha256Digest::from_hex(p.sha256.get_ref()) else {
                    return Err(field(
                        p.sha256.span(),
                        &format!("{at}.sha256"),
                        "64 lower-case hex digits",
                        p.sha256.get_ref(),
                    ));
                };
                if p.size == 0 || p.size > part_size {
                    return Err(field(
                        p.sha256.span(),
                        &format!("{at}.size"),
                        "at least 1 and at most part_size bytes",
                        &p.size.to_string(),
                    ));
                }
                if !crate::crypto::plausible_ciphertext_size(p.size, p.blob_size) {
                    return Err(field(
                        p.sha256.span(),
                        &format!("{at}.blob_size"),
                        "the age ciphertext size of a part of that size",
                        &p.blob_size.to_string(),
                    ));
                }
                let known = *part_sizes.entry(digest).or_insert((p.size, p.blob_size));
                if known != (p.size, p.blob_size) {
                    return Err(field(
                        p.sha256.span(),
                        &at,
                        "parts with one digest are one object, of one size",
                        &format!("{} bytes ({} stored)", p.size, p.blob_size),
                    ));
                }
                sum = sum.saturating_add(p.size);
                parts.push(Part {
                    sha256: digest,
                    size: p.size,
                    blob_size: p.blob_size,
                });
            }
            if sum != f.size {
                return Err(field(
                    f.path.span(),
                    &format!("files[{i}].parts"),
                    "the parts' sizes add up to the file's size",
                    &format!("{sum} for a file of {}", f.size),
                ));
            }
            let entry = FileEntry {
                path: path.clone(),
                size: f.size,
                sha256,
                parts,
            };
            files.push(entry);
        }
        // The sizes must add up within TOML's integers (i64): a sum past
        // u64 would wrap, and exabytes of files could claim a total of 0.
        let total = files.iter().try_fold(0u64, |t, f| t.checked_add(f.size));
        if total.is_none_or(|t| i64::try_from(t).is_err()) {
            return Err(ManifestError::Field {
                line: 0,
                field: "total_size".into(),
                rule: "the sum of the files' sizes, at most 2^63-1".into(),
                found: raw.total_size.to_string(),
            });
        }
        if files.is_empty() {
            return Err(ManifestError::Field {
                line: 0,
                field: "files".into(),
                rule: "a version has at least one file".into(),
                found: "none".into(),
            });
        }
        check_path_set(files.iter().map(|f| f.path.as_str())).map_err(|why| {
            ManifestError::Field {
                line: 0,
                field: "files".into(),
                rule: "paths are unique, even with case folded, and no file is also a directory"
                    .into(),
                found: why,
            }
        })?;
        // Canonical order: one set of files has one manifest.
        if let Some(pair) = files
            .windows(2)
            .find(|w| w[0].path.as_bytes() >= w[1].path.as_bytes())
        {
            return Err(ManifestError::Field {
                line: 0,
                field: "files".into(),
                rule: "sorted by path (byte order)".into(),
                found: format!("{:?} before {:?}", pair[0].path, pair[1].path),
            });
        }
        let card = card::parse_card(&raw, text)?;
        let m = Manifest {
            model,
            version,
            parent,
            author: raw.author.get_ref().clone(),
            author_key: raw.author_key,
            created: raw.created.get_ref().clone(),
            framework: raw.framework,
            data_key: raw.data_key.get_ref().clone(),
            payload: payload.clone(),
            part_size,
            metadata: raw.metadata,
            metrics: raw.metrics,
            provenance: raw.provenance,
            card,
            files,
        };
        let expected = merkle_root(&m.files).to_hex();
        if *raw.merkle_root.get_ref() != expected {
            return Err(ManifestError::MerkleRoot {
                expected,
                found: raw.merkle_root.get_ref().clone(),
            });
        }
        if m.to_canonical() != text {
            return Err(ManifestError::NotCanonical);
        }
        Ok(m)
    }

    /// The payload tree's entries: each distinct part once, by digest, with
    /// its plaintext and ciphertext sizes.
    pub fn distinct_parts(&self) -> BTreeMap<Sha256Digest, (u64, u64)> {
        let mut out = BTreeMap::new();
        for f in &self.files {
            for p in &f.parts {
                out.entry(p.sha256).or_insert((p.size, p.blob_size));
            }
        }
        out
    }

    /// Sum of the ciphertext sizes of the distinct parts: what the payload
    /// ref holds.
    pub fn payload_size(&self) -> u64 {
        self.distinct_parts().values().map(|(_, b)| b).sum()
    }

    /// Sort files by path; call before serialising a manifest built in code.
    pub fn sort_files(&mut self) {
        self.files
            .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seed: &[u8], size: u64, extra: u64) -> Part {
        Part {
            sha256: Sha256Digest::of(seed),
            size,
            blob_size: crate::crypto::ciphertext_size_bounds(size).0 + extra,
        }
    }

    fn sample() -> Manifest {
        let mut m = Manifest {
            model: ModelName::parse("nlp/bert").unwrap(),
            version: Version::parse("1.2.0").unwrap(),
            parent: Some(Version::parse("1.1.0").unwrap()),
            author: "alice".into(),
            author_key: "SHA256:abc".into(),
            created: "2026-11-22T10:00:00Z".into(),
            framework: Some("pytorch".into()),
            data_key: age::x25519::Identity::generate().to_public().to_string(),
            payload: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
            part_size: 16 << 20,
            metadata: [("team".to_string(), "search".to_string())].into(),
            metrics: [("f1".to_string(), 0.91)].into(),
            provenance: [("training_data".to_string(), "s3://x".to_string())].into(),
            card: ModelCard::default(),
            files: vec![
                FileEntry {
                    path: "weights/b.bin".into(),
                    size: 10,
                    sha256: Sha256Digest::of(b"b"),
                    parts: vec![part(b"b1", 6, 0), part(b"b2", 4, 0)],
                },
                FileEntry {
                    path: "config.json".into(),
                    size: 3,
                    sha256: Sha256Digest::of(b"a"),
                    parts: vec![part(b"a", 3, 40)],
                },
            ],
        };
        m.sort_files();
        m
    }

    #[test]
    fn canonical_round_trip() {
        let m = sample();
        let text = m.to_canonical();
        let back = Manifest::parse(&text).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.to_canonical(), text);
        assert!(
            text.starts_with("schema = 2\nmodel = \"nlp/bert\"\n"),
            "{text}"
        );
    }

    #[test]
    fn non_canonical_bytes_are_refused() {
        let text = sample()
            .to_canonical()
            .replace("schema = 2\n", "schema = 2\n\n");
        assert!(matches!(
            Manifest::parse(&text),
            Err(ManifestError::NotCanonical)
        ));
    }

    #[test]
    fn traversal_path_is_refused_with_its_line() {
        let text = sample()
            .to_canonical()
            .replace("config.json", "../etc/passwd");
        let e = Manifest::parse(&text).unwrap_err().to_string();
        assert!(e.contains("files[0].path") && e.contains("line"), "{e}");
    }

    #[test]
    fn edited_digest_breaks_merkle_root() {
        let m = sample();
        let text = m.to_canonical();
        let old = m.files[0].sha256.to_hex();
        let new = Sha256Digest::of(b"zzz").to_hex();
        let tampered = text.replacen(&old, &new, 1);
        let e = Manifest::parse(&tampered).unwrap_err();
        assert!(matches!(e, ManifestError::MerkleRoot { .. }), "{e}");
    }

    #[test]
    fn file_sizes_that_overflow_the_total_are_refused() {
        // Four files of 2^62 bytes sum to 2^64, which wrapped to a stated
        // total_size of 0 and was accepted (and panicked in debug builds).
        // Empty parts lists keep the per-file sums out of the way.
        let mut m = sample();
        m.files.clear();
        for (i, name) in ["x0", "x1", "x2", "x3"].iter().enumerate() {
            m.files.push(FileEntry {
                path: (*name).into(),
                size: 0,
                sha256: Sha256Digest::of(&[i as u8]),
                parts: vec![],
            });
        }
        let big = 1u64 << 62;
        // The stated total_size stays 0: what 4 * 2^62 wraps to.
        let text = m
            .to_canonical()
            .replace("\nsize = 0\n", &format!("\nsize = {big}\n"));
        assert!(text.contains("total_size = 0\n"));
        let e = Manifest::parse(&text).unwrap_err();
        assert!(
            matches!(&e, ManifestError::Field { field, .. } if field == "total_size"
                || field.ends_with(".parts")),
            "{e}"
        );
    }

    #[test]
    fn parts_must_add_up_and_agree() {
        let m = sample();
        let text = m.to_canonical();
        // A part that claims another size (with a ciphertext size to match)
        // breaks the file's sum.
        let (six, seven) = (
            crate::crypto::ciphertext_size_bounds(6).0,
            crate::crypto::ciphertext_size_bounds(7).0,
        );
        let resized = text.replacen(
            &format!("size = 6\nblob_size = {six}\n"),
            &format!("size = 7\nblob_size = {seven}\n"),
            1,
        );
        assert_ne!(resized, text);
        let e = Manifest::parse(&resized).unwrap_err();
        assert!(e.to_string().contains("add up"), "{e}");
        // Without it, the part is refused first, for its ciphertext size.
        let e = Manifest::parse(&text.replacen("size = 6\n", "size = 7\n", 1)).unwrap_err();
        assert!(e.to_string().contains("blob_size"), "{e}");
        // The same digest under two sizes is refused.
        let mut two = m.clone();
        two.files[1].parts[1].sha256 = two.files[1].parts[0].sha256;
        let e = Manifest::parse(&two.to_canonical()).unwrap_err();
        assert!(e.to_string().contains("one object"), "{e}");
        // A payload that is not a tree id, and a part size out of range.
        let e = Manifest::parse(&text.replace(&m.payload, "HEAD")).unwrap_err();
        assert!(e.to_string().contains("payload"), "{e}");
        let e =
            Manifest::parse(&text.replace("part_size = 16777216", "part_size = 1")).unwrap_err();
        assert!(e.to_string().contains("part_size"), "{e}");
    }

    #[test]
    fn unsorted_files_are_refused() {
        // formats.md: files sorted by path. Out of order, the same files
        // had a second, different "canonical" manifest.
        let mut m = sample();
        m.files.reverse();
        let e = Manifest::parse(&m.to_canonical()).unwrap_err();
        assert!(e.to_string().contains("sorted by path"), "{e}");
    }

    #[test]
    fn merkle_root_depends_on_paths_and_digests() {
        let m = sample();
        let mut other = m.clone();
        other.files[0].path = "config2.json".into();
        assert_ne!(merkle_root(&m.files), merkle_root(&other.files));
    }
}

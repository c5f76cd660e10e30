//! The model card: the typed description of a version that the signed
//! manifest carries beside its files. What kind of model it is, what it
//! takes and gives (JSON Schema documents), labels to find it by, the
//! training data it came from and the Python packages it ran with.
//!
//! Every field is optional; each has a rule, checked by `add` before it
//! writes and again by every reader (the hook included) on the manifest's
//! untrusted bytes.

use std::collections::BTreeSet;

use super::{line_of, ManifestError, RawManifest};
use crate::model::deps::{is_normalised_name, normalise_version, Pin};
use crate::model::manifest::Sha256Digest;

/// The most labels a version may carry.
pub const MAX_LABELS: usize = 64;
/// The longest description, in bytes.
pub const MAX_DESCRIPTION: usize = 4096;
/// The largest input or output schema, in bytes of canonical JSON.
pub const MAX_SCHEMA: usize = 64 << 10;
/// The longest training dataset URI, in bytes.
pub const MAX_URI: usize = 2048;

/// The rule for a label, as shown in refusals.
pub const LABEL_RULE: &str =
    "1 to 64 characters of a-z 0-9 . _ : / = -, starting with a letter or digit";

/// What kind of model a version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelType {
    Classification,
    Regression,
    Nlp,
    ComputerVision,
    Generative,
    Recommendation,
    Other,
}

impl ModelType {
    pub const ALL: [ModelType; 7] = [
        ModelType::Classification,
        ModelType::Regression,
        ModelType::Nlp,
        ModelType::ComputerVision,
        ModelType::Generative,
        ModelType::Recommendation,
        ModelType::Other,
    ];

    /// The name in manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Classification => "classification",
            ModelType::Regression => "regression",
            ModelType::Nlp => "nlp",
            ModelType::ComputerVision => "computer_vision",
            ModelType::Generative => "generative",
            ModelType::Recommendation => "recommendation",
            ModelType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for ModelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The data a version was trained on: a URI, and optionally the SHA-256 of
/// what it named at the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingDataset {
    pub uri: String,
    pub sha256: Option<Sha256Digest>,
}

impl TrainingDataset {
    /// `URI[@sha256:HEX]`, as `--training-dataset` takes it.
    pub fn parse_arg(s: &str) -> Result<Self, String> {
        let (uri, sha256) = match s.rsplit_once("@sha256:") {
            Some((uri, hex)) => {
                let d = Sha256Digest::from_hex(&hex.to_ascii_lowercase()).ok_or_else(|| {
                    format!("{s:?}: after @sha256: come 64 hex digits, found {hex:?}")
                })?;
                (uri, Some(d))
            }
            None => (s, None),
        };
        check_uri(uri)?;
        Ok(TrainingDataset {
            uri: uri.to_owned(),
            sha256,
        })
    }
}

/// A URI with a scheme (`s3://…`, `https://…`, `hf://…`, `file:…`), no
/// spaces or control characters.
pub fn check_uri(uri: &str) -> Result<(), String> {
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or_default();
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if !scheme_ok || uri.len() <= scheme.len() + 1 {
        return Err(format!(
            "{uri:?}: a URI with a scheme (s3://bucket/data, https://…, hf://datasets/…)"
        ));
    }
    if uri.len() > MAX_URI {
        return Err(format!("a URI of {} bytes; at most {MAX_URI}", uri.len()));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{uri:?}: a URI has no spaces or control characters"
        ));
    }
    Ok(())
}

/// A JSON Schema document, held as its canonical JSON text (compact, keys
/// sorted), which is what the manifest stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonSchemaDoc(String);

impl JsonSchemaDoc {
    /// Check `text` as a JSON Schema document: JSON, an object, valid
    /// against the meta-schema of the draft its `$schema` names (2020-12
    /// when it names none), and self-contained (no `$ref` outside itself).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > 16 * MAX_SCHEMA {
            return Err(format!(
                "{} bytes; at most {MAX_SCHEMA} of compact JSON",
                text.len()
            ));
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("not JSON: line {}, column {}: {e}", e.line(), e.column()))?;
        if !value.is_object() {
            return Err("a JSON Schema document here is a JSON object".into());
        }
        if let Err(e) = jsonschema::meta::validate(&value) {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            return Err(format!("not a valid JSON Schema: at {at}: {e}"));
        }
        if let Err(e) = jsonschema::validator_for(&value) {
            return Err(format!("not a usable JSON Schema: {e}"));
        }
        let canonical = serde_json::to_string(&value).expect("a JSON value serialises");
        if canonical.len() > MAX_SCHEMA {
            return Err(format!(
                "{} bytes of compact JSON; at most {MAX_SCHEMA}",
                canonical.len()
            ));
        }
        Ok(JsonSchemaDoc(canonical))
    }

    /// Check text that must already be canonical (a manifest's).
    pub fn parse_canonical(text: &str) -> Result<Self, String> {
        let doc = Self::parse(text)?;
        if doc.0 != text {
            return Err("not canonical JSON (compact, keys sorted)".into());
        }
        Ok(doc)
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The document as a JSON value.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).expect("held text is JSON")
    }
}

/// The typed description of a version. `Default` is a card with nothing
/// on it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelCard {
    pub model_type: Option<ModelType>,
    /// Free text, at most [`MAX_DESCRIPTION`] bytes; no control characters
    /// but newline and tab.
    pub description: Option<String>,
    /// Sorted, unique, each following [`LABEL_RULE`].
    pub labels: BTreeSet<String>,
    pub training_dataset: Option<TrainingDataset>,
    pub input_schema: Option<JsonSchemaDoc>,
    pub output_schema: Option<JsonSchemaDoc>,
    /// Sorted by name then version, unique; see [`crate::model::deps`].
    pub dependencies: Vec<Pin>,
}

/// A card as JSON shows it (`show --json`, the report): schemas as JSON
/// values, digests as hex.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CardView {
    pub model_type: Option<&'static str>,
    pub description: Option<String>,
    pub labels: Vec<String>,
    pub training_dataset: Option<DatasetView>,
    pub input_schema: Option<serde_json::Value>,
    pub output_schema: Option<serde_json::Value>,
    pub dependencies: Vec<PinView>,
}

/// [`TrainingDataset`] for JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DatasetView {
    pub uri: String,
    pub sha256: Option<String>,
}

/// [`Pin`] for JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PinView {
    pub name: String,
    pub version: String,
    pub sha256: Vec<String>,
    /// The PEP 508 marker under which the pin applies; absent: everywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

impl ModelCard {
    /// Whether nothing is on the card.
    pub fn is_empty(&self) -> bool {
        *self == ModelCard::default()
    }

    /// The card for JSON.
    pub fn view(&self) -> CardView {
        CardView {
            model_type: self.model_type.map(ModelType::as_str),
            description: self.description.clone(),
            labels: self.labels.iter().cloned().collect(),
            training_dataset: self.training_dataset.as_ref().map(|t| DatasetView {
                uri: t.uri.clone(),
                sha256: t.sha256.map(|d| d.to_hex()),
            }),
            input_schema: self.input_schema.as_ref().map(JsonSchemaDoc::value),
            output_schema: self.output_schema.as_ref().map(JsonSchemaDoc::value),
            dependencies: self
                .dependencies
                .iter()
                .map(|p| PinView {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    sha256: p.sha256.iter().map(Sha256Digest::to_hex).collect(),
                    marker: p.marker.clone(),
                })
                .collect(),
        }
    }
}

/// Whether `label` follows [`LABEL_RULE`].
pub fn is_label(label: &str) -> bool {
    let b = label.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._:/=-".contains(c))
}

/// Check a description.
pub fn check_description(d: &str) -> Result<(), String> {
    if d.trim().is_empty() {
        return Err("empty".into());
    }
    if d.len() > MAX_DESCRIPTION {
        return Err(format!("{} bytes; at most {MAX_DESCRIPTION}", d.len()));
    }
    if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("a control character (only newline and tab are allowed)".into());
    }
    Ok(())
}

/// Check a pin read from a manifest: normalised name and version, at most
/// [`crate::model::deps::MAX_DIGESTS`] digests.
pub fn check_pin(p: &Pin) -> Result<(), String> {
    if !is_normalised_name(&p.name) {
        return Err(format!(
            "{:?}: a PEP 503 normalised package name (lower case, one - between words)",
            p.name
        ));
    }
    if normalise_version(&p.version).as_deref() != Some(p.version.as_str()) {
        return Err(format!(
            "{} {:?}: a normalised PEP 440 version",
            p.name, p.version
        ));
    }
    if p.sha256.len() > crate::model::deps::MAX_DIGESTS {
        return Err(format!(
            "{}: more than {} digests",
            p.name,
            crate::model::deps::MAX_DIGESTS
        ));
    }
    if let Some(m) = &p.marker {
        if m.trim() != m || m.is_empty() {
            return Err(format!(
                "{}: marker {m:?} with leading or trailing space",
                p.name
            ));
        }
        crate::model::deps::marker::check(m)
            .map_err(|e| format!("{}: environment marker {m:?}: {e}", p.name))?;
    }
    Ok(())
}

/// Check the model card's fields of a raw manifest (`text` gives lines).
pub(super) fn parse_card(raw: &RawManifest, text: &str) -> Result<ModelCard, ManifestError> {
    let field =
        |span: std::ops::Range<usize>, field: &str, rule: &str, found: &str| ManifestError::Field {
            line: line_of(text, span.start),
            field: field.to_owned(),
            rule: rule.to_owned(),
            found: found.to_owned(),
        };
    let mut card = ModelCard::default();
    if let Some(t) = &raw.model_type {
        card.model_type = Some(ModelType::parse(t.get_ref()).ok_or_else(|| {
            let names: Vec<_> = ModelType::ALL.iter().map(|t| t.as_str()).collect();
            field(
                t.span(),
                "model_type",
                &format!("one of {}", names.join(", ")),
                t.get_ref(),
            )
        })?);
    }
    if let Some(d) = &raw.description {
        check_description(d.get_ref())
            .map_err(|why| field(d.span(), "description", &why, d.get_ref()))?;
        card.description = Some(d.get_ref().clone());
    }
    if let Some(labels) = &raw.labels {
        let list = labels.get_ref();
        if let Some(bad) = list.iter().find(|l| !is_label(l)) {
            return Err(field(labels.span(), "labels", LABEL_RULE, bad));
        }
        if list.is_empty() || list.len() > MAX_LABELS || list.windows(2).any(|w| w[0] >= w[1]) {
            return Err(field(
                labels.span(),
                "labels",
                "1 to 64 labels, sorted, each once",
                &format!("{list:?}"),
            ));
        }
        card.labels = list.iter().cloned().collect();
    }
    match (&raw.training_dataset, &raw.training_dataset_sha256) {
        (None, Some(d)) => {
            return Err(field(
                d.span(),
                "training_dataset_sha256",
                "only with training_dataset",
                d.get_ref(),
            ))
        }
        (None, None) => {}
        (Some(uri), digest) => {
            check_uri(uri.get_ref())
                .map_err(|why| field(uri.span(), "training_dataset", &why, uri.get_ref()))?;
            let sha256 = digest
                .as_ref()
                .map(|d| {
                    Sha256Digest::from_hex(d.get_ref()).ok_or_else(|| {
                        field(
                            d.span(),
                            "training_dataset_sha256",
                            "64 lower-case hex digits",
                            d.get_ref(),
                        )
                    })
                })
                .transpose()?;
            card.training_dataset = Some(TrainingDataset {
                uri: uri.get_ref().clone(),
                sha256,
            });
        }
    }
    for (name, raw_schema, slot) in [
        ("input_schema", &raw.input_schema, &mut card.input_schema),
        ("output_schema", &raw.output_schema, &mut card.output_schema),
    ] {
        if let Some(s) = raw_schema {
            *slot = Some(
                JsonSchemaDoc::parse_canonical(s.get_ref())
                    .map_err(|why| field(s.span(), name, &why, ""))?,
            );
        }
    }
    for (i, p) in raw.dependencies.iter().enumerate() {
        let at = format!("dependencies[{i}]");
        let mut sha256 = std::collections::BTreeSet::new();
        for h in &p.sha256 {
            let d = Sha256Digest::from_hex(h).ok_or_else(|| {
                field(
                    p.name.span(),
                    &format!("{at}.sha256"),
                    "64 lower-case hex digits",
                    h,
                )
            })?;
            if !sha256.insert(d) || sha256.last() != Some(&d) {
                return Err(field(
                    p.name.span(),
                    &format!("{at}.sha256"),
                    "digests sorted, each once",
                    h,
                ));
            }
        }
        let pin = Pin {
            name: p.name.get_ref().clone(),
            version: p.version.clone(),
            sha256,
            marker: p.marker.clone(),
        };
        check_pin(&pin).map_err(|why| field(p.name.span(), &at, &why, &pin.name))?;
        if let Some(prev) = card.dependencies.last() {
            if (&prev.name, &prev.version) >= (&pin.name, &pin.version) {
                return Err(field(
                    p.name.span(),
                    &at,
                    "sorted by name and version, each pair once",
                    &format!(
                        "{} {} after {} {}",
                        pin.name, pin.version, prev.name, prev.version
                    ),
                ));
            }
        }
        card.dependencies.push(pin);
    }
    if card.dependencies.len() > crate::model::deps::MAX_PINS {
        return Err(ManifestError::Field {
            line: 0,
            field: "dependencies".into(),
            rule: format!("at most {} packages", crate::model::deps::MAX_PINS),
            found: card.dependencies.len().to_string(),
        });
    }
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::{FileEntry, Manifest, Part};
    use crate::model::names::{ModelName, Version};

    fn manifest(card: ModelCard) -> Manifest {
        Manifest {
            model: ModelName::parse("nlp/bert").unwrap(),
            version: Version::parse("1.0.0").unwrap(),
            parent: None,
            author: "alice".into(),
            author_key: "SHA256:abc".into(),
            created: "2026-11-22T10:00:00Z".into(),
            framework: None,
            data_key: age::x25519::Identity::generate().to_public().to_string(),
            payload: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
            part_size: 16 << 20,
            metadata: Default::default(),
            metrics: Default::default(),
            provenance: Default::default(),
            card,
            files: vec![FileEntry {
                path: "m.bin".into(),
                size: 1,
                sha256: Sha256Digest::of(b"m"),
                parts: vec![Part {
                    sha256: Sha256Digest::of(b"m"),
                    size: 1,
                    blob_size: crate::crypto::ciphertext_size_bounds(1).0,
                }],
            }],
        }
    }

    fn full_card() -> ModelCard {
        ModelCard {
            model_type: Some(ModelType::ComputerVision),
            description: Some("Finds cats.\nIn photos.".into()),
            labels: ["team:vision".to_owned(), "prod".to_owned()].into(),
            training_dataset: Some(
                TrainingDataset::parse_arg(&format!("s3://b/cats@sha256:{}", "AB".repeat(32)))
                    .unwrap(),
            ),
            input_schema: Some(
                JsonSchemaDoc::parse(r#"{ "type": "object", "required": ["image"] }"#).unwrap(),
            ),
            output_schema: Some(JsonSchemaDoc::parse(r#"{"type":"number"}"#).unwrap()),
            dependencies: vec![Pin {
                name: "numpy".into(),
                version: "1.26.4".into(),
                sha256: [Sha256Digest::of(b"w1"), Sha256Digest::of(b"w2")].into(),
                marker: Some("sys_platform == \"linux\"".into()),
            }],
        }
    }

    #[test]
    fn a_full_card_round_trips_canonically() {
        let m = manifest(full_card());
        let text = m.to_canonical();
        let back = Manifest::parse(&text).unwrap();
        assert_eq!(back, m);
        assert!(
            text.contains("model_type = \"computer_vision\"\n"),
            "{text}"
        );
        assert!(
            text.contains("labels = [\"prod\", \"team:vision\"]"),
            "{text}"
        );
        assert!(
            text.contains(r#"input_schema = '{"required":["image"],"type":"object"}'"#),
            "{text}"
        );
        assert!(
            text.contains("[[dependencies]]\nname = \"numpy\""),
            "{text}"
        );
        // An empty card writes nothing: older manifests keep their bytes.
        let plain = manifest(ModelCard::default()).to_canonical();
        assert!(!plain.contains("model_type") && !plain.contains("dependencies"));
    }

    #[test]
    fn hostile_card_fields_are_refused_with_their_line() {
        let text = manifest(full_card()).to_canonical();
        let cases: &[(&str, &str, &str)] = &[
            ("\"computer_vision\"", "\"vision\"", "model_type"),
            (
                "\"prod\", \"team:vision\"",
                "\"team:vision\", \"prod\"",
                "labels",
            ),
            ("\"prod\"", "\"Prod\"", "labels"),
            ("Finds cats.", "\\u001b[2J", "description"),
            ("\"s3://b/cats\"", "\"not a uri\"", "training_dataset"),
            (r#""type":"number""#, r#""type":"numbr""#, "output_schema"),
            (r#"'{"type":"number"}'"#, "'[1]'", "output_schema"),
            (
                r#"'{"type":"number"}'"#,
                "'{\"type\": \"number\"}'",
                "canonical",
            ),
            (r#"'{"type":"number"}'"#, "'not json'", "not JSON"),
            ("name = \"numpy\"", "name = \"NumPy\"", "dependencies[0]"),
            (
                "version = \"1.26.4\"",
                "version = \"1.26.4-RC1\"",
                "dependencies[0]",
            ),
        ];
        for (from, to, fragment) in cases {
            assert!(text.contains(from), "{from}");
            let bad = text.replacen(from, to, 1);
            let e = Manifest::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(fragment), "{to}: {e}");
            assert!(e.contains("line"), "{to}: {e}");
        }
        let unsorted = {
            let mut c = full_card();
            let mut p = c.dependencies[0].clone();
            p.name = "aaa".into();
            c.dependencies.push(p);
            manifest(c).to_canonical()
        };
        let e = Manifest::parse(&unsorted).unwrap_err().to_string();
        assert!(e.contains("sorted by name"), "{e}");
    }

    #[test]
    fn schemas_are_checked_against_their_meta_schema() {
        assert!(JsonSchemaDoc::parse(r#"{"type":"strin"}"#).is_err());
        assert!(JsonSchemaDoc::parse(r#"{"minLength":-1}"#).is_err());
        assert!(JsonSchemaDoc::parse("true").is_err());
        assert!(JsonSchemaDoc::parse("{\"type\": ")
            .unwrap_err()
            .contains("line 1"));
        // Draft 7 is read as draft 7, not 2020-12.
        let d7 =
            r#"{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}]}"#;
        assert!(JsonSchemaDoc::parse(d7).is_ok());
        // A reference outside the document is refused: nothing is fetched.
        assert!(JsonSchemaDoc::parse(r#"{"$ref":"https://example.com/s.json"}"#).is_err());
        assert_eq!(
            JsonSchemaDoc::parse("{ \"b\": 1, \"a\": {} }\n")
                .unwrap()
                .as_str(),
            r#"{"a":{},"b":1}"#
        );
    }

    #[test]
    fn training_dataset_argument() {
        let t = TrainingDataset::parse_arg("hf://datasets/imdb@main").unwrap();
        assert_eq!(
            (t.uri.as_str(), t.sha256),
            ("hf://datasets/imdb@main", None)
        );
        assert!(TrainingDataset::parse_arg("s3://x@sha256:abc").is_err());
        assert!(TrainingDataset::parse_arg("data/train.csv").is_err());
        assert!(TrainingDataset::parse_arg("s3://x y").is_err());
    }

    #[test]
    fn model_types_and_labels() {
        for t in ModelType::ALL {
            assert_eq!(ModelType::parse(t.as_str()), Some(t));
        }
        assert!(is_label("team:search") && is_label("k=v") && !is_label("-x") && !is_label(""));
        assert!(!is_label(&"a".repeat(65)) && !is_label("A"));
    }
}

//! Manifests and the paths they name.

use rand::rngs::StdRng;
use rand::Rng;

use super::{mutate_once, mutated, random_string, run, seeded, text};
use crate::crypto::{self, DataKey};
use crate::model::deps::{is_normalised_name, normalise_version, Pin};
use crate::model::manifest::{
    self, check_path_set, is_label, validate_path, FileEntry, JsonSchemaDoc, Manifest, ModelCard,
    ModelType, Part, Sha256Digest, TrainingDataset, PART_SIZE_RANGE,
};
use crate::model::names::{ModelName, Version};

const PATH_ALPHABET: &[&str] = &[
    "a",
    "b",
    "Z",
    "0",
    ".",
    "-",
    "_",
    " ",
    "/",
    "..",
    "\u{e9}",
    "\u{1f980}",
    "\"",
    "'",
    "=",
    "[",
    "#",
    "\u{212a}",
    "\u{202e}",
];

/// A path that [`validate_path`] should accept, or close to one.
fn random_path(rng: &mut StdRng) -> String {
    let parts = rng.gen_range(1..4);
    (0..parts)
        .map(|_| {
            let mut c = random_string(rng, PATH_ALPHABET, 8);
            if c.is_empty() {
                c.push('x');
            }
            c
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The parts of a file of `size` bytes cut at most `part_size` apart, at
/// random places as a content-defined splitter cuts; now and then a part
/// seen before (`seen`, same digest, same sizes: one object) is used again.
fn random_parts(rng: &mut StdRng, size: u64, part_size: u64, seen: &mut Vec<Part>) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut left = size;
    while left > 0 {
        if rng.gen_bool(0.2) {
            if let Some(p) = seen.iter().find(|p| p.size <= left).copied() {
                left -= p.size;
                parts.push(p);
                continue;
            }
        }
        // Past a few cuts, whole parts: the count stays small.
        let n = if parts.len() >= 8 || rng.gen_bool(0.5) {
            left.min(part_size)
        } else {
            rng.gen_range(1..=left.min(part_size))
        };
        let (lo, hi) = crypto::ciphertext_size_bounds(n);
        let p = Part {
            sha256: Sha256Digest(rng.gen()),
            size: n,
            blob_size: rng.gen_range(lo..=hi),
        };
        seen.push(p);
        parts.push(p);
        left -= n;
    }
    parts
}

/// A manifest built in code from random valid parts.
fn random_manifest(rng: &mut StdRng, recipients: &[String]) -> Manifest {
    let part_size = match rng.gen_range(0..3) {
        0 => *PART_SIZE_RANGE.start(),
        1 => *PART_SIZE_RANGE.end(),
        _ => rng.gen_range(PART_SIZE_RANGE),
    };
    let mut seen = Vec::new();
    let mut files: Vec<FileEntry> = Vec::new();
    for _ in 0..rng.gen_range(1..5) {
        let path = random_path(rng);
        let size = match rng.gen_range(0..5) {
            0 => 0,
            1 => rng.gen_range(1..100),
            2 => rng.gen_range(65_530..65_540),
            3 => rng.gen_range(part_size - 2..part_size + 3),
            // Up to sixteen whole parts: large files, few parts.
            _ => rng.gen_range(0..16 * part_size),
        };
        let parts = random_parts(rng, size, part_size, &mut seen);
        let size = parts.iter().map(|p| p.size).sum();
        files.push(FileEntry {
            path,
            size,
            sha256: Sha256Digest(rng.gen()),
            parts,
        });
    }
    let mut kept: Vec<FileEntry> = Vec::new();
    for f in files {
        let paths = kept.iter().map(|k| k.path.as_str());
        if validate_path(&f.path).is_ok()
            && check_path_set(paths.chain(std::iter::once(f.path.as_str()))).is_ok()
        {
            kept.push(f);
        }
    }
    let mut files = kept;
    if files.is_empty() {
        files.push(FileEntry {
            path: "model.bin".into(),
            size: 1,
            sha256: Sha256Digest(rng.gen()),
            parts: vec![Part {
                sha256: Sha256Digest(rng.gen()),
                size: 1,
                blob_size: crypto::ciphertext_size_bounds(1).0,
            }],
        });
    }
    let words = ["team", "a b", "\"q\"", "\u{e9}", "x.y", "", "\n", "[t]"];
    let pick = |rng: &mut StdRng| words[rng.gen_range(0..words.len())].to_owned();
    let mut m = Manifest {
        model: ModelName::parse(["nlp/bert", "a", "a/b/c/d", "x9._-y"][rng.gen_range(0..4)])
            .expect("valid"),
        version: Version::parse(["1.2.0", "0.0.1-rc.1+b.5", "10.20.30"][rng.gen_range(0..3)])
            .expect("valid"),
        parent: rng
            .gen_bool(0.5)
            .then(|| Version::parse("1.1.0").expect("valid")),
        author: ["alice", "b\u{e9}b", "\"x\""][rng.gen_range(0..3)].to_owned(),
        author_key: "SHA256:abc".into(),
        created: ["2026-11-22T10:00:00Z", "1970-01-01T00:00:00Z"][rng.gen_range(0..2)].into(),
        framework: rng.gen_bool(0.5).then(|| pick(rng)),
        data_key: recipients[rng.gen_range(0..recipients.len())].clone(),
        payload: hex::encode(rng.gen::<[u8; 20]>()),
        part_size,
        metadata: (0..rng.gen_range(0..3))
            .map(|_| (pick(rng), pick(rng)))
            .collect(),
        metrics: (0..rng.gen_range(0..3))
            .map(|_| {
                let v = [0.91, -0.0, 1e300, f64::MIN_POSITIVE, 3.0][rng.gen_range(0..5)];
                (pick(rng), v)
            })
            .collect(),
        provenance: (0..rng.gen_range(0..3))
            .map(|_| (pick(rng), pick(rng)))
            .collect(),
        card: random_card(rng),
        files,
    };
    m.sort_files();
    m
}

/// A model card with some of its fields, each valid.
fn random_card(rng: &mut StdRng) -> ModelCard {
    let schemas = [
        r#"{"type":"object","properties":{"text":{"type":"string"}}}"#,
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","items":{"type":"number"}}"#,
        r#"{"enum":[null,1.5,"\u0000",true]}"#,
        "{}",
    ];
    let schema = |rng: &mut StdRng| {
        rng.gen_bool(0.4)
            .then(|| JsonSchemaDoc::parse(schemas[rng.gen_range(0..schemas.len())]).expect("valid"))
    };
    let names = ["numpy", "torch", "a", "ruamel-yaml", "x9"];
    let versions = [
        "1.26.4",
        "2.0.0rc1",
        "1.0.post1",
        "1!1.0+local.7",
        "2023.7.22",
    ];
    let mut dependencies: Vec<Pin> = (0..rng.gen_range(0..4))
        .map(|_| Pin {
            name: names[rng.gen_range(0..names.len())].into(),
            version: versions[rng.gen_range(0..versions.len())].into(),
            sha256: (0..rng.gen_range(0..3))
                .map(|_| Sha256Digest(rng.gen()))
                .collect(),
            marker: rng
                .gen_bool(0.3)
                .then(|| "sys_platform == \"win32\"".to_owned()),
        })
        .collect();
    dependencies.sort();
    dependencies.dedup_by(|a, b| (&a.name, &a.version) == (&b.name, &b.version));
    let descriptions = [
        "A model.",
        "two\nlines\twith \"quotes\" and 'single'",
        "\u{e9}\u{1f980}",
    ];
    let labels = ["prod", "team:search", "a", "x.y_z-1", "k=v"];
    ModelCard {
        model_type: rng
            .gen_bool(0.5)
            .then(|| ModelType::ALL[rng.gen_range(0..ModelType::ALL.len())]),
        description: rng
            .gen_bool(0.5)
            .then(|| descriptions[rng.gen_range(0..descriptions.len())].to_owned()),
        labels: (0..rng.gen_range(0..3))
            .map(|_| labels[rng.gen_range(0..labels.len())].to_owned())
            .collect(),
        training_dataset: rng.gen_bool(0.4).then(|| TrainingDataset {
            uri: ["s3://bucket/data", "hf://datasets/x@main", "file:/d"][rng.gen_range(0..3)]
                .into(),
            sha256: rng.gen_bool(0.5).then(|| Sha256Digest(rng.gen())),
        }),
        input_schema: schema(rng),
        output_schema: schema(rng),
        dependencies,
    }
}

/// Canonical text with every file emptied (no parts) and then given
/// `size` bytes, and `total_size` the sum as it wraps in u64: files whose
/// sizes no TOML integer (i64) can sum, and whose parts do not add up.
fn with_huge_sizes(m: &Manifest, size: u64) -> String {
    let mut empty = m.clone();
    for f in &mut empty.files {
        f.size = 0;
        f.parts.clear();
    }
    let n = empty.files.len() as u64;
    empty
        .to_canonical()
        .replace("\nsize = 0\n", &format!("\nsize = {size}\n"))
        .replace(
            "total_size = 0\n",
            &format!(
                "total_size = {}\n",
                size.wrapping_mul(n) & (i64::MAX as u64)
            ),
        )
}

/// Canonical text with one part's size changed by `delta` (the file's
/// sum broken, or the digest's two sizes made to disagree).
fn with_part_resized(rng: &mut StdRng, m: &Manifest) -> String {
    let text = m.to_canonical();
    let sizes: Vec<u64> = m
        .files
        .iter()
        .flat_map(|f| f.parts.iter().map(|p| p.size))
        .collect();
    if sizes.is_empty() {
        return text;
    }
    let old = sizes[rng.gen_range(0..sizes.len())];
    let new = [old + 1, old - 1, 0, m.part_size + 1][rng.gen_range(0..4)];
    text.replacen(
        &format!("\nsize = {old}\n"),
        &format!("\nsize = {new}\n"),
        1,
    )
}

#[test]
fn manifests_that_parse_are_canonical() {
    let mut setup = seeded("manifest-corpus");
    let recipients: Vec<String> = (0..4)
        .map(|_| DataKey::generate("t").recipient().to_string())
        .collect();
    let corpus: Vec<Manifest> = (0..24)
        .map(|_| random_manifest(&mut setup, &recipients))
        .collect();
    let seeds: Vec<Vec<u8>> = corpus
        .iter()
        .map(|m| m.to_canonical().into_bytes())
        .collect();
    let dict: &[&[u8]] = &[
        b"schema = 1\n",
        b"schema = 2\n",
        b"[[files]]\n",
        b"[[files.parts]]\n",
        b"part_size = ",
        b"part_size = 65535\n",
        b"payload = ",
        b"payload = \"HEAD\"\n",
        b"sha256 = ",
        b"[metadata]\n",
        b"[metrics]\n",
        b"[provenance]\n",
        b"size = ",
        b"blob_size = ",
        b"total_size = ",
        b"file_count = ",
        b"path = \"../x\"\n",
        b"path = \"A\"\n",
        b"merkle_root = ",
        b"blobs/",
        b"parent = \"1.0.0\"\n",
        b"x = 1\n",
        b"model_type = \"nlp\"\n",
        b"model_type = \"NLP\"\n",
        b"labels = [\"b\", \"a\"]\n",
        b"labels = []\n",
        b"description = \"\\u001b[2J\"\n",
        b"training_dataset = \"no scheme\"\n",
        b"training_dataset_sha256 = ",
        b"input_schema = '{\"type\":\"strin\"}'\n",
        b"output_schema = '[1]'\n",
        b"input_schema = '{\"b\":1,\"a\":2}'\n",
        b"[[dependencies]]\n",
        b"name = \"NumPy\"\n",
        b"version = \"1.0-RC1\"\n",
        b"sha256 = []\n",
    ];
    run(
        "manifest",
        |rng| match rng.gen_range(0..12) {
            // Writer and parser agree on anything the writer can write.
            0 => random_manifest(rng, &recipients)
                .to_canonical()
                .into_bytes(),
            // The same files out of order: a second "canonical" form.
            2 => {
                let mut m = random_manifest(rng, &recipients);
                m.files.reverse();
                m.to_canonical().into_bytes()
            }
            // A part resized: sums and one-object sizes broken.
            3 => {
                let m = &corpus[rng.gen_range(0..corpus.len())];
                with_part_resized(rng, m).into_bytes()
            }
            // Sizes that overflow the total when re-serialised.
            1 => {
                let m = &corpus[rng.gen_range(0..corpus.len())];
                let size = [
                    1u64 << 62,
                    1 << 61,
                    i64::MAX as u64 / 2,
                    (i64::MAX as u64) - 70_000,
                ][rng.gen_range(0..4)];
                with_huge_sizes(m, size).into_bytes()
            }
            _ => mutated(rng, &seeds, dict),
        },
        |input| {
            let Ok(s) = std::str::from_utf8(input) else {
                return;
            };
            let Ok(m) = Manifest::parse(s) else {
                if let Some(i) = seeds.iter().position(|x| x == input) {
                    panic!("seed manifest {i} refused: {:?}", Manifest::parse(s).err());
                }
                return;
            };
            // 1. Canonical: the parsed value re-serialises to the same bytes.
            assert_eq!(m.to_canonical(), s);
            // 2. What the type promises: valid, sorted, unique, non-empty files.
            assert!(!m.files.is_empty());
            assert!(PART_SIZE_RANGE.contains(&m.part_size));
            assert!(m.payload.len() == 40 && m.payload.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(m.payload, m.payload.to_ascii_lowercase());
            let mut one_object = std::collections::BTreeMap::new();
            for f in &m.files {
                assert!(validate_path(&f.path).is_ok(), "{:?}", f.path);
                // Parts of 1..=part_size bytes that add up to the file.
                assert_eq!(f.parts.iter().map(|p| p.size).sum::<u64>(), f.size);
                for p in &f.parts {
                    assert!((1..=m.part_size).contains(&p.size), "{p:?}");
                    assert!(crypto::plausible_ciphertext_size(p.size, p.blob_size));
                    let sizes = one_object.entry(p.sha256).or_insert((p.size, p.blob_size));
                    assert_eq!(*sizes, (p.size, p.blob_size), "one digest, two sizes");
                }
            }
            assert_eq!(m.distinct_parts(), one_object);
            let stored = one_object
                .values()
                .try_fold(0u64, |t, (_, b)| t.checked_add(*b));
            assert_eq!(stored, Some(m.payload_size()));
            check_path_set(m.files.iter().map(|f| f.path.as_str())).expect("path set");
            let sum = m.files.iter().try_fold(0u64, |t, f| t.checked_add(f.size));
            assert_eq!(sum, Some(m.total_size()), "total_size wrapped");
            assert!(m.files.windows(2).all(|w| w[0].path < w[1].path));
            // The card: every field by its rule.
            let c = &m.card;
            assert!(c.labels.iter().all(|l| is_label(l)) && c.labels.len() <= 64);
            if let Some(d) = &c.description {
                assert!(!d
                    .chars()
                    .any(|ch| ch.is_control() && ch != '\n' && ch != '\t'));
            }
            if let Some(t) = &c.training_dataset {
                assert!(manifest::check_uri(&t.uri).is_ok(), "{:?}", t.uri);
            }
            for s in c.input_schema.iter().chain(&c.output_schema) {
                assert!(s.value().is_object());
                assert_eq!(serde_json::to_string(&s.value()).expect("json"), s.as_str());
            }
            assert!(c
                .dependencies
                .windows(2)
                .all(|w| (&w[0].name, &w[0].version) < (&w[1].name, &w[1].version)));
            for p in &c.dependencies {
                assert!(is_normalised_name(&p.name), "{:?}", p.name);
                assert_eq!(
                    normalise_version(&p.version).as_deref(),
                    Some(p.version.as_str())
                );
            }
            // 3. It parses again to itself.
            let again = Manifest::parse(&m.to_canonical()).expect("re-parse");
            assert_eq!(again.digest(), m.digest());
        },
    );
}

/// [`manifest::PATH_RULE`], restated.
fn follows_path_rule(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= manifest::MAX_PATH_LEN
        && !p.contains('\\')
        && !p.chars().any(char::is_control)
        && p.split('/').all(|c| {
            !matches!(c, "" | "." | "..")
                && !c.contains(':')
                && !c.ends_with('.')
                && !c.ends_with(' ')
                && !reads_as_dot_git(c)
        })
}

/// Whether a file system could open component `c` as `.git`, restated:
/// HFS+ drops the ignorable code points, NTFS has the short name GIT~N.
fn reads_as_dot_git(c: &str) -> bool {
    let ignorable = |ch: char| matches!(ch, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}');
    let visible: String = c
        .chars()
        .filter(|ch| !ignorable(*ch))
        .collect::<String>()
        .to_ascii_lowercase();
    visible == ".git"
        || visible
            .strip_prefix("git~")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The path-set rule, restated pairwise: no two paths equal with case
/// folded, and no path (case folded) a directory of another.
fn follows_path_set_rule(paths: &[String]) -> bool {
    use unicode_normalization::UnicodeNormalization;
    let folded: Vec<String> = paths
        .iter()
        .map(|p| p.nfc().collect::<String>().to_lowercase().nfc().collect())
        .collect();
    folded.iter().enumerate().all(|(i, a)| {
        folded
            .iter()
            .enumerate()
            .all(|(j, b)| i == j || (a != b && !b.starts_with(&format!("{a}/"))))
    })
}

#[test]
fn paths_and_path_sets_follow_their_rules() {
    run(
        "paths",
        |rng| {
            // One to six paths built from a few shared parts, so that case
            // twins and file/directory clashes are common; NUL-separated.
            let parts = [
                "a", "A", "a.b", "a-x", "b", "\u{e9}", "\u{c9}", "..", ".", "",
            ];
            let set: Vec<String> = (0..rng.gen_range(1..7))
                .map(|_| {
                    let mut p = if rng.gen_bool(0.3) {
                        random_path(rng)
                    } else {
                        (0..rng.gen_range(1..4))
                            .map(|_| parts[rng.gen_range(0..parts.len())])
                            .collect::<Vec<_>>()
                            .join("/")
                    };
                    if rng.gen_bool(0.1) {
                        let mut b = p.into_bytes();
                        mutate_once(rng, &mut b, &[], &[b"/", b"\\", b"..", b"\x07"]);
                        p = String::from_utf8_lossy(&b).replace('\0', "");
                    }
                    if rng.gen_bool(0.01) {
                        p.push_str(&"x".repeat(manifest::MAX_PATH_LEN));
                    }
                    p
                })
                .collect();
            set.join("\0").into_bytes()
        },
        |input| {
            let s = text(input);
            let paths: Vec<String> = s.split('\0').map(str::to_owned).collect();
            for p in &paths {
                assert_eq!(
                    validate_path(p).is_ok(),
                    follows_path_rule(p),
                    "validate_path({p:?})"
                );
            }
            let valid: Vec<String> = paths
                .iter()
                .filter(|p| validate_path(p).is_ok())
                .cloned()
                .collect();
            assert_eq!(
                check_path_set(valid.iter().map(String::as_str)).is_ok(),
                follows_path_set_rule(&valid),
                "check_path_set({valid:?})"
            );
        },
    );
}

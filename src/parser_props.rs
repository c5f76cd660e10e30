//! Parsers that survive anything: every parser of untrusted bytes is fed
//! generated and mutated inputs inside `cargo test`, on the stable toolchain.
//!
//! Manifests, policies, tag names and messages, key rings, age headers, SSH
//! keys and signatures, and the server's decision log all arrive from
//! someone else's machine. Each parser here gets a budget of inputs from a
//! seeded generator: valid documents made by mvault's own writers, then
//! mutated the way an attacker or a broken disk would (byte flips, special
//! bytes, truncation at boundaries, splices, duplicated lines, huge numbers,
//! deep nesting, very long lines). Each test checks properties of what the
//! parser accepts, not only that it did not panic, and on a failure names
//! the seed and the input in hex.
//!
//! `MVAULT_FUZZ_ITERS=<n>` multiplies every budget for a longer run:
//! `MVAULT_FUZZ_ITERS=100 cargo test --release --lib parser_props -- --nocapture`.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use gix::ObjectId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ssh_key::{HashAlg, LineEnding, PrivateKey};

use crate::crypto::{self, DataKey, KeyRing};
use crate::model::approval::{
    approval_name, parse_approval as parse_approval_tag, parse_approval_name,
};
use crate::model::manifest::{
    self, check_path_set, validate_path, FileEntry, Manifest, Sha256Digest,
};
use crate::model::names::{ModelName, Stage, Version, VersionRef};
use crate::model::policy::{self, Policy, Role};
use crate::model::promotion::{
    parse_promotion as parse_promotion_tag, parse_promotion_name, promotion_name,
};
use crate::model::trailers as stages;
use crate::store::objects::split_tag_signature;

/// Inputs per parser in one run, before `MVAULT_FUZZ_ITERS`. The sum is the
/// number of inputs one `cargo test --release` run feeds the parsers.
const BUDGET: &[(&str, usize)] = &[
    ("names", 30_000),
    ("tag_names", 15_000),
    ("manifest", 15_000),
    ("paths", 15_000),
    ("policy", 8_000),
    ("date", 10_000),
    ("trailers", 10_000),
    ("promotion_tag", 8_000),
    ("approval_tag", 4_000),
    ("age_header", 8_000),
    ("keyring", 4_000),
    ("public_key", 8_000),
    ("signature", 4_000),
    ("tag_signature_split", 10_000),
    ("decision_log", 2_000),
    ("pre_receive_lines", 5_000),
];

/// The factor `MVAULT_FUZZ_ITERS` sets (1 when unset or unreadable).
fn multiplier() -> usize {
    std::env::var("MVAULT_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n: &usize| *n >= 1)
        .unwrap_or(1)
}

fn budget(parser: &str) -> usize {
    let base = BUDGET
        .iter()
        .find(|(name, _)| *name == parser)
        .unwrap_or_else(|| panic!("{parser} is missing from BUDGET"))
        .1;
    base * multiplier()
}

/// The seed of input `i` of `parser`: stable across runs and machines.
fn seed_of(parser: &str, i: usize) -> u64 {
    let d = Sha256Digest::of(format!("{parser}/{i}").as_bytes());
    u64::from_le_bytes(d.0[..8].try_into().expect("8 bytes"))
}

/// Feed `parser`'s budget of inputs made by `make` to `check`. A panic, be it
/// the parser's or a failed property, is reported with the seed and the
/// input in hex so it can be replayed.
fn run<T: AsRef<[u8]>>(
    parser: &str,
    mut make: impl FnMut(&mut StdRng) -> T,
    mut check: impl FnMut(&T),
) -> usize {
    let n = budget(parser);
    for i in 0..n {
        let seed = seed_of(parser, i);
        let mut rng = StdRng::seed_from_u64(seed);
        let input = make(&mut rng);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            let why = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            panic!(
                "parser_props {parser}: input {i} (seed {seed:#018x}) failed: {why}\ninput hex: {}\ninput text: {:?}",
                hex::encode(input.as_ref()),
                String::from_utf8_lossy(input.as_ref())
            );
        }
    }
    eprintln!("parser_props {parser}: {n} inputs, no panics, properties held");
    n
}

/// Bytes as text, the way a parser of `&str` would see them after a lossy read.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

// ---------------------------------------------------------------------------
// The mutator
// ---------------------------------------------------------------------------

/// Short tokens that break parsers: delimiters, invalid and multibyte UTF-8,
/// control characters, numbers at and past every integer limit.
const SPECIAL: &[&[u8]] = &[
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\n",
    b"\r\n",
    b"\r",
    b"\t",
    b" ",
    b"\"",
    b"'",
    b"\\",
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"{",
    b"}",
    b"=",
    b",",
    b"#",
    b".",
    b"/",
    b":",
    b": ",
    b"@",
    b"-",
    b"+",
    b"\"\"\"",
    b"'''",
    b"\\u0000",
    b"\\uD800",
    "\u{e9}".as_bytes(),
    "\u{10ffff}".as_bytes(),
    "\u{1f980}".as_bytes(),
    "\u{202e}".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{85}".as_bytes(),
    "\u{2028}".as_bytes(),
    "\u{212a}".as_bytes(),
    b"0",
    b"-1",
    b"-0.0",
    b"1e999",
    b"nan",
    b"inf",
    b"0x7f",
    b"true",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999999999999999999",
    b"1979-05-27T07:32:00Z",
    b"-----BEGIN SSH SIGNATURE-----\n",
    b"-----END SSH SIGNATURE-----\n",
];

/// A token: one of [`SPECIAL`], one of the parser's own words, a huge
/// repetition (deep nesting, a very long line) or random bytes.
fn token(rng: &mut StdRng, dict: &[&[u8]]) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0..=3 => SPECIAL[rng.gen_range(0..SPECIAL.len())].to_vec(),
        4..=6 if !dict.is_empty() => dict[rng.gen_range(0..dict.len())].to_vec(),
        7 => {
            let unit: &[u8] = match rng.gen_range(0..6) {
                0 => b"[",
                1 => b"{a=",
                2 => b"a",
                3 => b"[[a]]\n",
                4 => b"\"",
                _ => b"9",
            };
            unit.repeat(rng.gen_range(100..5000))
        }
        _ => (0..rng.gen_range(1..12)).map(|_| rng.gen()).collect(),
    }
}

/// A position worth cutting or inserting at: a line start, a delimiter, or anywhere.
fn boundary(rng: &mut StdRng, data: &[u8]) -> usize {
    if data.is_empty() || rng.gen_bool(0.3) {
        return rng.gen_range(0..=data.len());
    }
    let start = rng.gen_range(0..data.len());
    data[start..]
        .iter()
        .position(|b| b"\n=\"[]{},:# /@.".contains(b))
        .map_or(data.len(), |p| start + p + usize::from(rng.gen_bool(0.5)))
        .min(data.len())
}

/// The byte ranges of the lines of `data`, newline included.
fn line_ranges(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < data.len() {
        out.push(start..data.len());
    }
    out
}

/// Apply one mutation to `data`; `others` are inputs to splice with.
fn mutate_once(rng: &mut StdRng, data: &mut Vec<u8>, others: &[Vec<u8>], dict: &[&[u8]]) {
    let len = data.len();
    match rng.gen_range(0..14) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            data[i] ^= 1 << rng.gen_range(0..8);
        }
        // Overwrite one byte.
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            data[i] = rng.gen();
        }
        // Insert a token anywhere or at a boundary.
        2 | 3 => {
            let at = if rng.gen_bool(0.5) {
                boundary(rng, data)
            } else {
                rng.gen_range(0..=len)
            };
            let t = token(rng, dict);
            data.splice(at..at, t);
        }
        // Replace a short run with a token.
        4 if len > 0 => {
            let at = rng.gen_range(0..len);
            let end = (at + rng.gen_range(1..16)).min(len);
            let t = token(rng, dict);
            data.splice(at..end, t);
        }
        // Delete a range.
        5 if len > 0 => {
            let at = rng.gen_range(0..len);
            let end = (at + rng.gen_range(1..64)).min(len);
            data.drain(at..end);
        }
        // Truncate at a boundary.
        6 => {
            let at = boundary(rng, data);
            data.truncate(at);
        }
        // Splice: our head, another input's tail.
        7 if !others.is_empty() => {
            let other = &others[rng.gen_range(0..others.len())];
            let a = boundary(rng, data);
            let b = boundary(rng, other);
            data.truncate(a);
            data.extend_from_slice(&other[b..]);
        }
        // Duplicate a line elsewhere (duplicate keys and sections).
        8 | 9 => {
            let lines = line_ranges(data);
            if !lines.is_empty() {
                let line = data[lines[rng.gen_range(0..lines.len())].clone()].to_vec();
                let at = lines[rng.gen_range(0..lines.len())].start;
                data.splice(at..at, line);
            }
        }
        // Delete a line.
        10 => {
            let lines = line_ranges(data);
            if !lines.is_empty() {
                data.drain(lines[rng.gen_range(0..lines.len())].clone());
            }
        }
        // Swap two lines.
        11 => {
            let lines = line_ranges(data);
            if lines.len() >= 2 {
                let mut picked = [
                    lines[rng.gen_range(0..lines.len())].clone(),
                    lines[rng.gen_range(0..lines.len())].clone(),
                ];
                picked.sort_by_key(|r| r.start);
                let [a, b] = picked;
                if a.end <= b.start {
                    let mut out = data[..a.start].to_vec();
                    out.extend_from_slice(&data[b.clone()]);
                    out.extend_from_slice(&data[a.end..b.start]);
                    out.extend_from_slice(&data[a.clone()]);
                    out.extend_from_slice(&data[b.end..]);
                    *data = out;
                }
            }
        }
        // Replace a run of digits with a number at or past a limit.
        12 => {
            if let Some(start) = (0..len)
                .map(|k| (rng.gen_range(0..len.max(1)) + k) % len)
                .take(16)
                .find(|&i| data[i].is_ascii_digit())
            {
                let end = data[start..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |p| start + p);
                let n: &[u8] = match rng.gen_range(0..6) {
                    0 => b"9223372036854775807",
                    1 => b"9223372036854775808",
                    2 => b"4611686018427387904",
                    3 => b"18446744073709551616",
                    4 => b"-1",
                    _ => b"0",
                };
                data.splice(start..end, n.iter().copied());
            }
        }
        // Upper-case or lower-case a run (names are case-sensitive).
        _ => {
            if len > 0 {
                let at = rng.gen_range(0..len);
                let end = (at + rng.gen_range(1..8)).min(len);
                let upper = rng.gen_bool(0.5);
                for b in &mut data[at..end] {
                    *b = if upper {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    };
                }
            }
        }
    }
}

/// One input: a seed, unchanged one time in twenty, else mutated 1 to 4 times.
fn mutated(rng: &mut StdRng, seeds: &[Vec<u8>], dict: &[&[u8]]) -> Vec<u8> {
    let mut data = seeds[rng.gen_range(0..seeds.len())].clone();
    if rng.gen_bool(0.05) {
        return data;
    }
    for _ in 0..rng.gen_range(1..=4) {
        mutate_once(rng, &mut data, seeds, dict);
    }
    data
}

/// A random string over `alphabet`, `0..max` characters long.
fn random_string(rng: &mut StdRng, alphabet: &[&str], max: usize) -> String {
    (0..rng.gen_range(0..max))
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
        .collect()
}

fn seeded(label: &str) -> StdRng {
    StdRng::seed_from_u64(seed_of(label, usize::MAX))
}

fn ssh_key(rng: &mut StdRng) -> PrivateKey {
    PrivateKey::random(rng, ssh_key::Algorithm::Ed25519).expect("an ed25519 key generates")
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// [`crate::model::names::MODEL_NAME_RULE`], restated independently.
fn follows_model_name_rule(s: &str) -> bool {
    let segs: Vec<&str> = s.split('/').collect();
    (1..=4).contains(&segs.len())
        && segs.iter().all(|seg| {
            let b = seg.as_bytes();
            (1..=64).contains(&b.len())
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && b[1..]
                    .iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
        })
}

/// Strict SemVer 2.0 (semver.org's grammar, numbers within u64), restated.
fn is_strict_semver(s: &str) -> bool {
    fn number(n: &str) -> bool {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n == "0" || !n.starts_with('0'))
            && n.parse::<u64>().is_ok()
    }
    fn ident(id: &str) -> bool {
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    nums.len() == 3
        && nums.iter().all(|n| number(n))
        && pre.is_none_or(|p| {
            p.split('.').all(|id| {
                ident(id)
                    && (!id.bytes().all(|b| b.is_ascii_digit())
                        || id == "0"
                        || !id.starts_with('0'))
            })
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

const NAME_ALPHABET: &[&str] = &[
    "a",
    "b",
    "z",
    "0",
    "9",
    ".",
    "_",
    "-",
    "/",
    "/",
    "@",
    "#",
    "v",
    "A",
    "Z",
    " ",
    "+",
    "\u{e9}",
    "\u{212a}",
    "\0",
    "\n",
    "..",
    "production",
    "staging",
    "1.2.0",
];

const NAME_SEEDS: &[&str] = &[
    "nlp/bert",
    "a",
    "a/b/c/d",
    "x9._-y",
    "0abc",
    "nlp/bert@1.2.0",
    "nlp/bert@v1.2.0",
    "nlp/bert@1.0.0-rc.1+build.5",
    "nlp/bert#production",
    "vision/resnet#archived",
    "1.2.0",
    "0.0.1-rc.1+b.5",
    "1.0.0-alpha.0.beta-x+001.sha-5",
    "18446744073709551615.0.0",
    "development",
    "staging",
    "production",
    "deprecated",
    "archived",
];

fn name_input(rng: &mut StdRng) -> Vec<u8> {
    if rng.gen_bool(0.4) {
        let mut s = random_string(rng, NAME_ALPHABET, 24);
        if rng.gen_bool(0.1) {
            s.push_str(&"a".repeat(rng.gen_range(60..70)));
        }
        return s.into_bytes();
    }
    let seeds: Vec<Vec<u8>> = NAME_SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    mutated(
        rng,
        &seeds,
        &[b"/", b"@", b"#", b"v", b"-rc.1", b"+b", b".0", b"01"],
    )
}

#[test]
fn names_follow_their_rules_on_any_input() {
    run("names", name_input, |input| {
        let s = text(input);
        let s = s.as_ref();
        // ModelName: accepted exactly when the documented rule holds.
        match ModelName::parse(s) {
            Ok(m) => {
                assert_eq!(m.as_str(), s);
                assert!(
                    follows_model_name_rule(s),
                    "{s:?} accepted against the rule"
                );
            }
            Err(_) => assert!(
                !follows_model_name_rule(s),
                "{s:?} refused yet follows the rule"
            ),
        }
        // Version: strict SemVer, and it prints back as written.
        match Version::parse(s) {
            Ok(v) => {
                assert_eq!(v.to_string(), s);
                assert!(is_strict_semver(s), "{s:?} accepted as a version");
            }
            Err(_) => assert!(!is_strict_semver(s), "{s:?} refused yet is strict SemVer"),
        }
        // Stage: one of five names.
        match Stage::parse(s) {
            Ok(st) => assert_eq!(st.as_str(), s),
            Err(_) => assert!(Stage::ALL.iter().all(|st| st.as_str() != s)),
        }
        // VersionRef: what it holds spells the input.
        if let Ok(r) = VersionRef::parse(s) {
            let spelled = match &r {
                VersionRef::Exact(m, v) => {
                    vec![format!("{m}@{v}"), format!("{m}@v{v}")]
                }
                VersionRef::Latest(m) => vec![m.to_string()],
                VersionRef::Stage(m, st) => vec![format!("{m}#{st}")],
            };
            assert!(spelled.iter().any(|x| x == s), "{s:?} parsed as {r:?}");
            assert!(follows_model_name_rule(r.model().as_str()));
        }
    });
}

fn tag_name_input(rng: &mut StdRng) -> Vec<u8> {
    let seeds: Vec<Vec<u8>> = [
        "nlp/bert#production#12",
        "a#staging#1",
        "a/b/c/d#archived#18446744073709551615",
        "nlp/bert#production#01",
        "nlp/bert@v1.0.0",
        "mvault-approval/production/bob/nlp/bert/1.2.0",
        "mvault-approval/staging/alice/a/1.0.0-rc.1+b",
        "mvault-approval/production/bob/a/b/c/d/0.0.0",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    mutated(
        rng,
        &seeds,
        &[
            b"#",
            b"/",
            b"mvault-approval/",
            b"#production#",
            b"18446744073709551616",
        ],
    )
}

#[test]
fn tag_names_print_back_as_written() {
    run("tag_names", tag_name_input, |input| {
        let s = text(input);
        let s = s.as_ref();
        if let Some((m, st, n)) = parse_promotion_name(s) {
            assert_eq!(promotion_name(&m, st, n), s);
        }
        if let Some((st, user, m, v)) = parse_approval_name(s) {
            assert!(!user.contains('/'), "user {user:?}");
            assert_eq!(approval_name(st, &user, &m, &v), s);
        }
    });
}

// ---------------------------------------------------------------------------
// Manifests and paths
// ---------------------------------------------------------------------------

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

/// A manifest built in code from random valid parts.
fn random_manifest(rng: &mut StdRng, recipients: &[String]) -> Manifest {
    let mut files: Vec<FileEntry> = Vec::new();
    for _ in 0..rng.gen_range(1..5) {
        let path = random_path(rng);
        let size = match rng.gen_range(0..4) {
            0 => 0,
            1 => rng.gen_range(1..100),
            2 => rng.gen_range(65_530..65_540),
            _ => rng.gen_range(0..1u64 << 40),
        };
        let (lo, hi) = crypto::ciphertext_size_bounds(size);
        files.push(FileEntry {
            path,
            size,
            sha256: Sha256Digest(rng.gen()),
            blob_size: rng.gen_range(lo..=hi),
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
            blob_size: crypto::ciphertext_size_bounds(1).0,
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
        files,
    };
    m.sort_files();
    m
}

/// Canonical text with every file's size set to `size`, its blob size made
/// plausible for it, and `total_size` the sum as it wraps in u64: files
/// whose sizes no TOML integer (i64) can sum.
fn with_huge_sizes(m: &Manifest, size: u64) -> String {
    let mut small = m.clone();
    for f in &mut small.files {
        f.size = 1;
        f.blob_size = crypto::ciphertext_size_bounds(1).0;
    }
    let n = small.files.len() as u64;
    let one = crypto::ciphertext_size_bounds(1).0;
    small
        .to_canonical()
        .replace(
            &format!("blob_size = {one}\n"),
            &format!("blob_size = {}\n", crypto::ciphertext_size_bounds(size).0),
        )
        .replace("\nsize = 1\n", &format!("\nsize = {size}\n"))
        .replace(
            &format!("total_size = {n}\n"),
            &format!(
                "total_size = {}\n",
                size.wrapping_mul(n) & (i64::MAX as u64)
            ),
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
        b"[[files]]\n",
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
            for f in &m.files {
                assert!(validate_path(&f.path).is_ok(), "{:?}", f.path);
                assert!(crypto::plausible_ciphertext_size(f.size, f.blob_size));
            }
            check_path_set(m.files.iter().map(|f| f.path.as_str())).expect("path set");
            let sum = m.files.iter().try_fold(0u64, |t, f| t.checked_add(f.size));
            assert_eq!(sum, Some(m.total_size()), "total_size wrapped");
            assert!(m.files.windows(2).all(|w| w[0].path < w[1].path));
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

// ---------------------------------------------------------------------------
// Policies and dates
// ---------------------------------------------------------------------------

#[test]
fn policies_that_parse_round_trip() {
    let mut setup = seeded("policy-corpus");
    let keys: Vec<String> = (0..4)
        .map(|_| crypto::public_key_line(ssh_key(&mut setup).public_key()))
        .collect();
    let k = |i: usize| crypto::parse_public_key(&keys[i]).expect("a generated key");
    let mut p = Policy::initial("admin", &k(0));
    let mut seeds = vec![p.to_toml().into_bytes()];
    p.add_user("alice", &k(1), policy::parse_date("2030-01-01"))
        .expect("add alice");
    p.grant("alice", Role::Developer, "nlp/*").expect("grant");
    seeds.push(p.to_toml().into_bytes());
    p.add_user("bob", &k(2), None).expect("add bob");
    p.grant("bob", Role::Approver, "{nlp,vision}/**")
        .expect("grant");
    p.grant("bob", Role::Viewer, "a/[bc]?").expect("grant");
    seeds.push(p.to_toml().into_bytes());
    seeds.push(
        format!(
            "schema = 1\n[users.c]\nkeys = [\"{} c@host\"]\nexpires = \"2027-02-28\"\n[[grants]]\nuser = \"c\"\nrole = \"ml_engineer\"\nmodels = \"**\"\n[[stages]]\nstage = \"staging\"\nmodels = \"nlp/*\"\napprovals = 2\nallow_self_approval = true\nrequire_ticket = true\n[[stages]]\nstage = \"archived\"\nmodels = \"**\"\npromote_role = \"ml_admin\"\napprover_role = \"ml_admin\"\n",
            keys[3]
        )
        .into_bytes(),
    );
    let dict: &[&[u8]] = &[
        b"schema = 1\n",
        b"[users.x]\n",
        b"[[grants]]\n",
        b"[[stages]]\n",
        b"keys = []\n",
        b"expires = \"2020-02-30\"\n",
        b"expires = \"+2020-01-01\"\n",
        b"role = \"god\"\n",
        b"models = \"{a\"\n",
        b"models = \"[\"\n",
        b"models = \"***\"\n",
        b"stage = \"prod\"\n",
        b"approvals = 4294967296\n",
        b"ssh-rsa ",
        b"AAAAC3NzaC1lZDI1NTE5AAAAI",
    ];
    run(
        "policy",
        |rng| mutated(rng, &seeds, dict),
        |input| {
            let Ok(s) = std::str::from_utf8(input) else {
                return;
            };
            let Ok(p) = Policy::parse(s) else {
                if seeds.iter().any(|x| x == input) {
                    panic!("a seed policy was refused");
                }
                return;
            };
            // 1. It round-trips through its canonical TOML.
            let toml = p.to_toml();
            let again = Policy::parse(&toml).expect("canonical policy re-parses");
            assert_eq!(again.to_toml(), toml);
            // 2. What the type promises: valid names, keys, known grantees.
            let mut lines = 0;
            for (name, u) in &p.users {
                assert!(name.len() <= 64 && name.starts_with(|c: char| c.is_ascii_lowercase()));
                assert!(!u.keys.is_empty());
                for key in &u.keys {
                    assert_eq!(key.algorithm(), ssh_key::Algorithm::Ed25519);
                    lines += 1;
                }
            }
            for g in &p.grants {
                assert!(p.users.contains_key(&g.user), "grant to {}", g.user);
            }
            // 3. allowed_signers has one line per key and no stray newline.
            let signers = p.allowed_signers();
            assert_eq!(signers.lines().count(), lines);
        },
    );
}

#[test]
fn dates_are_exactly_yyyy_mm_dd() {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    run(
        "date",
        |rng| {
            if rng.gen_bool(0.5) {
                // Digits in the YYYY-MM-DD shape, valid or not as dates.
                format!(
                    "{:04}-{:02}-{:02}",
                    rng.gen_range(0..10_000),
                    rng.gen_range(0..14),
                    rng.gen_range(0..33)
                )
                .into_bytes()
            } else {
                let seeds = [
                    b"2030-01-01".to_vec(),
                    b"2024-02-29".to_vec(),
                    b"0000-01-01".to_vec(),
                ];
                mutated(rng, &seeds, &[b"+", b"-", b"00", b"99999"])
            }
        },
        |input| {
            let s = text(input);
            let shaped = s.len() == 10
                && s.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            match policy::parse_date(&s) {
                Some(d) => {
                    assert!(shaped, "{s:?} accepted as YYYY-MM-DD");
                    assert_eq!(d.format(&fmt).expect("formats"), s);
                    // Policy edits write `Date`'s Display; it must read back.
                    assert_eq!(policy::parse_date(&d.to_string()), Some(d), "{d}");
                }
                None if shaped => {
                    let (y, m, d) = (&s[..4], &s[5..7], &s[8..]);
                    let valid = time::Month::try_from(m.parse::<u8>().expect("digits"))
                        .ok()
                        .and_then(|m| {
                            time::Date::from_calendar_date(
                                y.parse().expect("digits"),
                                m,
                                d.parse().expect("digits"),
                            )
                            .ok()
                        });
                    assert!(valid.is_none(), "{s:?} refused yet a real date");
                }
                None => {}
            }
        },
    );
}

// ---------------------------------------------------------------------------
// Trailers and tag messages
// ---------------------------------------------------------------------------

const TARGET: &str = "1111111111111111111111111111111111111111";

fn tag_object(name: &str, message: &str, tagger: &str, time: i64) -> Vec<u8> {
    let tag = gix::objs::Tag {
        target: ObjectId::from_hex(TARGET.as_bytes()).expect("hex"),
        target_kind: gix::object::Kind::Commit,
        name: name.into(),
        tagger: Some(gix::actor::Signature {
            name: tagger.into(),
            email: format!("{tagger}@mvault").into(),
            time: gix::date::Time::new(time, 0),
        }),
        message: message.into(),
        signature: None,
    };
    let mut bytes = Vec::new();
    gix::objs::WriteTo::write_to(&tag, &mut bytes).expect("a tag serialises");
    bytes
}

fn signed(key: &PrivateKey, mut payload: Vec<u8>) -> Vec<u8> {
    let sig = key
        .sign(crypto::GIT_NAMESPACE, HashAlg::Sha512, &payload)
        .expect("signs")
        .to_pem(LineEnding::LF)
        .expect("armors");
    payload.extend_from_slice(sig.as_bytes());
    payload
}

/// A promotion message as `mvault promote` writes it.
fn promotion_message(rng: &mut StdRng, model: &str, to: Stage) -> String {
    let mut msg = format!(
        "promote {model}@1.2.0 to {to}\n\nMvault-Action: {}\nMvault-Model: {model}\nMvault-Version: 1.2.0\nMvault-Manifest-Sha256: {}\nMvault-From-Stage: {}\nMvault-To-Stage: {to}\nMvault-Previous-Promotion: {}\n",
        ["promote", "rollback"][rng.gen_range(0..2)],
        Sha256Digest(rng.gen()),
        ["none", "development", "staging"][rng.gen_range(0..3)],
        if rng.gen_bool(0.5) { "none".to_owned() } else { TARGET.to_owned() },
    );
    for _ in 0..rng.gen_range(0..3) {
        msg.push_str(&format!(
            "Mvault-Approval: mvault-approval/{to}/bob/{model}/1.2.0 {TARGET}\n"
        ));
    }
    if rng.gen_bool(0.5) {
        msg.push_str("Mvault-Ticket: JIRA-1 \u{e9}\n");
    }
    if rng.gen_bool(0.5) {
        msg.push_str("Mvault-Reason: because: reasons\n");
    }
    msg
}

fn approval_message(model: &str, version: &str, stage: Stage, user: &str, digest: &str) -> String {
    format!(
        "approve {model}@{version} for {stage}\n\nMvault-Action: approve\nMvault-Model: {model}\nMvault-Version: {version}\nMvault-Stage: {stage}\nMvault-Approver: {user}\nMvault-Manifest-Sha256: {digest}\nMvault-Comment: looks good: ship it\n"
    )
}

const MESSAGE_DICT: &[&[u8]] = &[
    b"Mvault-",
    b"Mvault-Action: ",
    b"Mvault-Action: promote\n",
    b"Mvault-Action: approve\n",
    b"Mvault-Model: ",
    b"Mvault-Version: ",
    b"Mvault-To-Stage: production\n",
    b"Mvault-From-Stage: prod\n",
    b"Mvault-Approval: x\n",
    b"Mvault-Manifest-Sha256: ",
    b"Mvault Bad: x\n",
    b": ",
    b"\n\n",
];

#[test]
fn trailers_are_mvault_lines_of_the_message() {
    let mut setup = seeded("trailer-corpus");
    let mut seeds: Vec<Vec<u8>> = (0..8)
        .map(|_| promotion_message(&mut setup, "nlp/bert", Stage::Production).into_bytes())
        .collect();
    seeds.push(approval_message("nlp/bert", "1.2.0", Stage::Staging, "bob", "ab").into_bytes());
    seeds.push(
        b"init vault\n\nMvault-Action: init\nMvault-Admin: admin ssh-ed25519 AAAA\n".to_vec(),
    );
    run(
        "trailers",
        |rng| mutated(rng, &seeds, MESSAGE_DICT),
        |input| {
            let msg = text(input);
            let t = stages::trailers(&msg);
            let lines: Vec<&str> = msg.lines().collect();
            assert!(t.len() <= lines.len());
            for (k, v) in &t {
                assert!(k.starts_with("Mvault-") && !k.contains(' ') && !k.contains('\n'));
                assert_eq!(v, v.trim());
                assert!(
                    lines.iter().any(|l| l
                        .split_once(": ")
                        .is_some_and(|(lk, lv)| lk == k && lv.trim() == v)),
                    "trailer {k}: {v} is no line of the message"
                );
            }
            for (k, _) in &t {
                let count = t.iter().filter(|(k2, _)| k2 == k).count();
                assert_eq!(stages::trailer(&t, k).is_some(), count == 1, "{k}");
            }
        },
    );
}

#[test]
fn promotion_tags_say_what_their_names_say() {
    let mut setup = seeded("promotion-corpus");
    let key = ssh_key(&mut setup);
    let id = ObjectId::from_hex(TARGET.as_bytes()).expect("hex");
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (model, stage)) in [
        ("nlp/bert", Stage::Production),
        ("a", Stage::Staging),
        ("a/b/c/d", Stage::Archived),
    ]
    .into_iter()
    .enumerate()
    {
        for n in [1u64, 12, u64::MAX] {
            let name = format!("{model}#{stage}#{n}");
            let msg = promotion_message(&mut setup, model, stage);
            let bytes = tag_object(&name, &msg, "alice", 1_790_000_000 + i as i64);
            let bytes = if n == 12 { signed(&key, bytes) } else { bytes };
            seeds.push((name, bytes));
        }
    }
    let raw: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    // Each input is a tag name, NUL, then the tag object's bytes.
    run(
        "promotion_tag",
        |rng| {
            let (name, bytes) = &seeds[rng.gen_range(0..seeds.len())];
            let (name, bytes) = match rng.gen_range(0..4) {
                0 => (name.clone(), bytes.clone()),
                1 => {
                    let msg = promotion_message(rng, "nlp/bert", Stage::Production);
                    let msg = mutated(rng, &[msg.into_bytes()], MESSAGE_DICT);
                    let name = "nlp/bert#production#3".to_owned();
                    let bytes = tag_object(&name, &text(&msg), "alice", rng.gen());
                    (name, bytes)
                }
                2 => {
                    let n = mutated(rng, &[name.clone().into_bytes()], &[b"#", b"/"]);
                    (text(&n).replace('\0', ""), bytes.clone())
                }
                _ => (name.clone(), mutated(rng, &raw, MESSAGE_DICT)),
            };
            let mut input = name.into_bytes();
            input.push(0);
            input.extend_from_slice(&bytes);
            input
        },
        |input| {
            let at = input.iter().position(|b| *b == 0).expect("NUL");
            let name = text(&input[..at]);
            let data = &input[at + 1..];
            let result = parse_promotion_tag(&name, id, data);
            if seeds.iter().any(|(n, b)| *n == name && b == data) {
                assert!(result.is_ok(), "seed refused: {:?}", result.err());
            }
            let Ok(p) = result else { return };
            let (model, stage, counter) = parse_promotion_name(&name).expect("name parses");
            assert_eq!(p.name, name);
            assert_eq!(
                (p.model.as_str(), p.stage, p.counter),
                (model.as_str(), stage, counter)
            );
            for (a, _) in &p.approvals {
                assert!(!a.contains(' '));
            }
            assert_ne!(p.previous.as_deref(), Some("none"));
        },
    );
}

#[test]
fn approval_tags_count_only_what_was_signed() {
    let mut setup = seeded("approval-corpus");
    let key = ssh_key(&mut setup);
    let other = ssh_key(&mut setup);
    let id = ObjectId::from_hex(TARGET.as_bytes()).expect("hex");
    let digest = Sha256Digest(setup.gen()).to_hex();
    let name = "mvault-approval/production/bob/nlp/bert/1.2.0";
    let msg = approval_message("nlp/bert", "1.2.0", Stage::Production, "bob", &digest);
    let payload = tag_object(name, &msg, "bob", 1_790_000_000);
    let good = signed(&key, payload.clone());
    let by_other = signed(&other, payload.clone());
    let expected = parse_approval_tag(name, id, &good).expect("the seed approval is valid");
    let seeds = vec![good.clone(), by_other.clone(), payload.clone()];
    // Each input: one byte saying how it was made, then the tag object.
    run(
        "approval_tag",
        |rng| {
            let (kind, bytes) = match rng.gen_range(0..3) {
                // A mutated message, signed: reaches the message parser.
                0 => {
                    let m = mutated(rng, &[msg.clone().into_bytes()], MESSAGE_DICT);
                    (0u8, signed(&key, tag_object(name, &text(&m), "bob", 1)))
                }
                // Mutated signed bytes: must not verify to anything new.
                _ => (1u8, mutated(rng, &seeds, MESSAGE_DICT)),
            };
            let mut input = vec![kind];
            input.extend_from_slice(&bytes);
            input
        },
        |input| {
            let data = &input[1..];
            let Ok(a) = parse_approval_tag(name, id, data) else {
                return;
            };
            let signers = [key.public_key().key_data(), other.public_key().key_data()];
            assert!(signers.contains(&a.key.key_data()), "signed by a stranger");
            assert_eq!(
                (
                    a.stage,
                    a.user.as_str(),
                    a.model.as_str(),
                    a.version.as_str()
                ),
                (Stage::Production, "bob", "nlp/bert", "1.2.0")
            );
            if input[0] == 1 {
                // 1. The signed part is the seed's own: no forgery.
                let (p, _) = split_tag_signature(data).expect("signed");
                assert_eq!(p, &payload[..], "a changed payload verified");
                // 2. Nothing outside the signature changed what it says.
                assert_eq!(a.manifest_sha256, expected.manifest_sha256);
                assert_eq!(a.comment, expected.comment, "an unsigned comment was read");
                assert_eq!(a.time, expected.time);
            }
        },
    );
}

// ---------------------------------------------------------------------------
// Crypto: age headers, key rings, public keys, signatures
// ---------------------------------------------------------------------------

#[test]
fn age_headers_are_read_without_panics() {
    let mut setup = seeded("age-corpus");
    let readers: Vec<ssh_key::PublicKey> = (0..3)
        .map(|_| ssh_key(&mut setup).public_key().clone())
        .collect();
    let ring = KeyRing {
        generations: vec![DataKey::generate("t1")],
    };
    let mut seeds = Vec::new();
    let mut expected_tags = Vec::new();
    for n in 1..=3 {
        seeds.push(ring.seal("nlp/bert", &readers[..n]).expect("seals"));
        expected_tags.push(
            readers[..n]
                .iter()
                .map(crypto::ssh_stanza_tag)
                .collect::<BTreeSet<_>>(),
        );
    }
    for size in [0usize, 100, 70_000] {
        let mut out = Vec::new();
        crypto::encrypt_stream(&ring.current().recipient(), &vec![7u8; size][..], &mut out)
            .expect("encrypts");
        out.truncate(4096);
        seeds.push(out);
    }
    for (i, tags) in expected_tags.iter().enumerate() {
        let stanzas = crypto::age_header_stanzas(&seeds[i]).expect("a real age header");
        let got: BTreeSet<String> = stanzas
            .iter()
            .filter(|(k, _)| k == "ssh-ed25519")
            .map(|(_, args)| args[0].clone())
            .collect();
        assert_eq!(&got, tags, "the ssh-ed25519 stanzas name the readers");
    }
    run(
        "age_header",
        |rng| {
            mutated(
                rng,
                &seeds,
                &[b"-> ", b"-> X25519 ", b"---", b"age-encryption.org/v1\n"],
            )
        },
        |input| {
            if let Some(stanzas) = crypto::age_header_stanzas(input) {
                assert!(input.starts_with(b"age-encryption.org/v1\n"));
                let arrows = input.windows(3).filter(|w| w == b"-> ").count();
                assert!(stanzas.len() <= arrows);
                for (kind, args) in &stanzas {
                    for part in std::iter::once(kind).chain(args) {
                        assert!(!part.contains(' ') && !part.contains('\n'), "{part:?}");
                    }
                }
            }
        },
    );
}

#[test]
fn key_rings_that_parse_render_and_parse_again() {
    let rings: Vec<KeyRing> = (1..=3)
        .map(|n| KeyRing {
            generations: (0..n)
                .map(|i| DataKey::generate(&format!("2026-0{}-01T00:00:00Z", i + 1)))
                .collect(),
        })
        .collect();
    let seeds: Vec<Vec<u8>> = rings
        .iter()
        .map(|r| r.render("nlp/bert").into_bytes())
        .collect();
    run(
        "keyring",
        |rng| {
            mutated(
                rng,
                &seeds,
                &[b"# generation ", b" created ", b"AGE-SECRET-KEY-1", b"#"],
            )
        },
        |input| {
            let s = text(input);
            let Ok(ring) = KeyRing::parse(&s) else { return };
            assert!(!ring.generations.is_empty());
            let again = KeyRing::parse(&ring.render("m")).expect("a rendered ring parses");
            let recipients = |r: &KeyRing| {
                r.generations
                    .iter()
                    .map(|g| (g.recipient().to_string(), g.created.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(recipients(&again), recipients(&ring));
        },
    );
}

#[test]
fn public_keys_that_parse_are_usable_ed25519_keys() {
    let mut setup = seeded("public-key-corpus");
    let keys: Vec<PrivateKey> = (0..3).map(|_| ssh_key(&mut setup)).collect();
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for k in &keys {
        let line = crypto::public_key_line(k.public_key());
        seeds.push(line.clone().into_bytes());
        seeds.push(format!("{line} alice@host\n").into_bytes());
        seeds.push(format!("  {line}  comment with spaces ").into_bytes());
    }
    // A key of another algorithm, which must be refused.
    let ed = ssh_key::public::Ed25519PublicKey::try_from(
        &keys[0]
            .public_key()
            .key_data()
            .ed25519()
            .expect("ed25519")
            .0[..],
    )
    .expect("32 bytes");
    let sk = ssh_key::PublicKey::new(
        ssh_key::public::KeyData::SkEd25519(ssh_key::public::SkEd25519::new(ed, "ssh:")),
        "",
    );
    let sk_line = sk.to_openssh().expect("encodes");
    assert!(crypto::parse_public_key(&sk_line).is_err());
    seeds.push(sk_line.into_bytes());
    run(
        "public_key",
        |rng| {
            mutated(
                rng,
                &seeds,
                &[b"ssh-ed25519 ", b"ssh-rsa ", b"AAAA", b"=", b"+/"],
            )
        },
        |input| {
            let s = text(input);
            let Ok(k) = crypto::parse_public_key(&s) else {
                assert!(!seeds[..9].iter().any(|x| x == input), "a seed key refused");
                return;
            };
            assert_eq!(k.algorithm(), ssh_key::Algorithm::Ed25519);
            let line = crypto::public_key_line(&k);
            let back = crypto::parse_public_key(&line).expect("its own line parses");
            assert_eq!(back.key_data(), k.key_data());
            let _ = crypto::fingerprint(&k);
            let _ = crypto::ssh_stanza_tag(&k);
        },
    );
}

#[test]
fn garbage_signatures_never_verify() {
    let mut setup = seeded("signature-corpus");
    let key = ssh_key(&mut setup);
    let msg = b"object 1111\ntype commit\ntag x\n\nhello\n".to_vec();
    let sig = |ns: &str, m: &[u8]| {
        key.sign(ns, HashAlg::Sha512, m)
            .expect("signs")
            .to_pem(LineEnding::LF)
            .expect("armors")
            .into_bytes()
    };
    let seeds = vec![
        sig(crypto::GIT_NAMESPACE, &msg),
        sig(crypto::MANIFEST_NAMESPACE, &msg),
        sig(crypto::GIT_NAMESPACE, b""),
    ];
    assert!(crypto::verify_signature(&seeds[0], crypto::GIT_NAMESPACE, &msg).is_ok());
    // Each input: a flag (0: the signature was mutated, 1: the message was),
    // the message's length as 4 bytes, the message, the signature.
    run(
        "signature",
        |rng| {
            let (flag, m, s) = if rng.gen_bool(0.7) {
                (
                    0u8,
                    msg.clone(),
                    mutated(rng, &seeds, &[b"-----", b"=", b"\n"]),
                )
            } else {
                (
                    1u8,
                    mutated(rng, std::slice::from_ref(&msg), &[]),
                    seeds[0].clone(),
                )
            };
            let mut input = vec![flag];
            input.extend_from_slice(&(m.len() as u32).to_le_bytes());
            input.extend_from_slice(&m);
            input.extend_from_slice(&s);
            input
        },
        |input| {
            let len = u32::from_le_bytes(input[1..5].try_into().expect("4 bytes")) as usize;
            let (m, s) = input[5..].split_at(len);
            for ns in [crypto::GIT_NAMESPACE, crypto::MANIFEST_NAMESPACE] {
                if let Ok(k) = crypto::verify_signature(s, ns, m) {
                    assert_eq!(k.key_data(), key.public_key().key_data(), "a forged signer");
                    assert!(m == msg || m.is_empty(), "a changed message verified");
                }
            }
        },
    );
}

#[test]
fn tag_signature_split_is_exact() {
    let mut setup = seeded("split-corpus");
    let key = ssh_key(&mut setup);
    let payload = tag_object(
        "nlp/bert#production#1",
        "promote\n\nMvault-Action: promote\n",
        "a",
        1,
    );
    let seeds = vec![
        signed(&key, payload.clone()),
        payload,
        b"-----BEGIN SSH SIGNATURE-----".to_vec(),
        b"x -----BEGIN SSH SIGNATURE-----\n".to_vec(),
    ];
    const MARK: &[u8] = b"-----BEGIN SSH SIGNATURE-----";
    run(
        "tag_signature_split",
        |rng| mutated(rng, &seeds, &[MARK, b"\n", b"-----"]),
        |input| {
            // The first line, from the top, that starts with the mark.
            let oracle = std::iter::once(0)
                .chain(
                    input
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .find(|&i| input[i..].starts_with(MARK));
            match split_tag_signature(input) {
                Some((a, b)) => {
                    assert_eq!(Some(a.len()), oracle);
                    assert_eq!([a, b].concat(), *input);
                    assert!(b.starts_with(MARK));
                }
                None => assert_eq!(oracle, None),
            }
        },
    );
}

// ---------------------------------------------------------------------------
// The server's decision log and the hook's input
// ---------------------------------------------------------------------------

#[test]
fn edited_decision_logs_never_verify() {
    use crate::server::log::{append_chained, verify_log, HEAD_FILE, LOG_FILE};
    let seed_dir = tempfile::tempdir().expect("tempdir");
    for i in 0..4 {
        append_chained(
            seed_dir.path(),
            serde_json::json!({"time": "2026-01-01T00:00:00Z", "decision": if i % 2 == 0 {"accept"} else {"refuse"}, "pusher": format!("u{i} \u{e9}\n"), "updates": [{"refname": "refs/heads/main"}]}),
        )
        .expect("appends");
    }
    assert_eq!(verify_log(seed_dir.path()), Ok(4));
    let log = std::fs::read(seed_dir.path().join(LOG_FILE)).expect("log");
    let head = std::fs::read(seed_dir.path().join(HEAD_FILE)).expect("head");
    let dir = tempfile::tempdir().expect("tempdir");
    let deep = b"[".repeat(200);
    let dict: &[&[u8]] = &[b"\"prev\":", b"{", b"\\n", &deep];
    // Each input: the log's length as 4 bytes, the log, the head.
    run(
        "decision_log",
        |rng| {
            let (l, h) = match rng.gen_range(0..5) {
                0 => (
                    log.clone(),
                    mutated(rng, std::slice::from_ref(&head), &[b" ", b"0"]),
                ),
                _ => (mutated(rng, std::slice::from_ref(&log), dict), head.clone()),
            };
            let mut input = (l.len() as u32).to_le_bytes().to_vec();
            input.extend_from_slice(&l);
            input.extend_from_slice(&h);
            input
        },
        |input| {
            let len = u32::from_le_bytes(input[..4].try_into().expect("4 bytes")) as usize;
            let (l, h) = input[4..].split_at(len);
            std::fs::write(dir.path().join(LOG_FILE), l).expect("write log");
            std::fs::write(dir.path().join(HEAD_FILE), h).expect("write head");
            match verify_log(dir.path()) {
                Ok(n) => {
                    assert_eq!(l, &log[..], "an edited log verified");
                    assert_eq!(
                        text(h).trim(),
                        text(&head).trim(),
                        "an edited head verified"
                    );
                    assert_eq!(n, 4);
                }
                Err(e) => assert!(!e.is_empty()),
            }
        },
    );
}

#[test]
fn pre_receive_lines_parse_exactly() {
    let z = "0".repeat(40);
    let a = "a".repeat(40);
    let seeds: Vec<Vec<u8>> = vec![
        format!("{z} {a} refs/heads/main\n").into_bytes(),
        format!("{a} {z} refs/tags/nlp/bert#production#1\n{z} {a} refs/tags/x y\n\n").into_bytes(),
    ];
    run(
        "pre_receive_lines",
        |rng| mutated(rng, &seeds, &[b" ", b"\n", b"refs/"]),
        |input| {
            let s = text(input);
            let Ok(updates) = crate::model::updates::parse_updates(&s) else {
                return;
            };
            let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(updates.len(), lines.len());
            for (u, l) in updates.iter().zip(lines) {
                assert_eq!((u.old.len(), u.new.len()), (40, 40));
                assert_eq!(format!("{} {} {}", u.old, u.new, u.refname), l);
            }
        },
    );
}

#[test]
fn fuzz_budget_reaches_the_acceptance_bar() {
    let total: usize = BUDGET.iter().map(|(_, n)| n * multiplier()).sum();
    eprintln!(
        "parser_props: {total} inputs across {} parser tests per run (MVAULT_FUZZ_ITERS={})",
        BUDGET.len(),
        multiplier()
    );
    assert!(total >= 100_000, "{total}");
}

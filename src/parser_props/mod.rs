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
use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ssh_key::PrivateKey;

use crate::model::manifest::Sha256Digest;

mod crypto;
mod manifest;
mod names;
mod policy;
mod server;
mod tags;

/// Inputs per parser in one run, before `MVAULT_FUZZ_ITERS`. The sum is the
/// number of inputs one `cargo test --release` run feeds the parsers.
const BUDGET: &[(&str, usize)] = &[
    ("names", 30_000),
    ("tag_names", 15_000),
    ("manifest", 15_000),
    ("paths", 15_000),
    ("policy", 8_000),
    ("deployment_record", 4_000),
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

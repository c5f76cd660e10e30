//! Model names, versions, references, and promotion and approval tag names.

use rand::rngs::StdRng;
use rand::Rng;

use super::{mutated, random_string, run, text};
use crate::model::approval::{approval_name, parse_approval_name};
use crate::model::names::{ModelName, Stage, Version, VersionRef};
use crate::model::promotion::{parse_promotion_name, promotion_name};

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

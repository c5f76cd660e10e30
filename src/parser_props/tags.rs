//! Commit trailers and the messages of promotion and approval tags.

use gix::ObjectId;
use rand::rngs::StdRng;
use rand::Rng;
use ssh_key::{HashAlg, LineEnding, PrivateKey};

use super::{mutated, run, seeded, ssh_key, text};
use crate::crypto;
use crate::model::approval::parse_approval as parse_approval_tag;
use crate::model::manifest::Sha256Digest;
use crate::model::names::Stage;
use crate::model::promotion::{parse_promotion as parse_promotion_tag, parse_promotion_name};
use crate::model::trailers as stages;
use crate::store::objects::split_tag_signature;

const TARGET: &str = "1111111111111111111111111111111111111111";

pub(super) fn tag_object(name: &str, message: &str, tagger: &str, time: i64) -> Vec<u8> {
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

pub(super) fn signed(key: &PrivateKey, mut payload: Vec<u8>) -> Vec<u8> {
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

//! Crypto: age headers, key rings, public keys, signatures.

use std::collections::BTreeSet;

use rand::Rng;
use ssh_key::{HashAlg, LineEnding, PrivateKey};

use super::tags::{signed, tag_object};
use super::{mutated, run, seeded, ssh_key, text};
use crate::crypto::{self, DataKey, KeyRing};
use crate::store::objects::split_tag_signature;

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

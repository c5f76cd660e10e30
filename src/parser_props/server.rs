//! The server's decision log and the hook's input.

use rand::Rng;

use super::{mutated, run, text};

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

//! Witnesses: two auditors cosign the server's receipt chain with `mvault
//! witness`; a client requiring k fresh cosignatures accepts or refuses a
//! pull of `#staging`; a decision log rewritten on the server (its hashes
//! recomputed so the file alone still verifies) is caught at the next
//! witness run. The real binary, stock git and the hook throughout.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use crate::hook_server::{pub_arg, Server};

/// The server with receipts on: its key made by `hook install
/// --server-key`, pinned by the admin; auditors wanda and walt, each with
/// a clone of the server; nlp/bert@1.0.0 promoted to staging.
struct Witnessed {
    s: Server,
    wanda: (Key, PathBuf),
    walt: (Key, PathBuf),
}

fn admin(s: &Server, args: &[&str]) -> Run {
    s.mvault_as(&s.work, &s.admin, Some("admin"), args)
        .success()
}

/// `mvault witness origin` as `name`, at `now`.
fn witness(s: &Server, who: &(Key, PathBuf), name: &str, now: u64) -> Run {
    witness_with(s, who, name, now, &[])
}

fn witness_with(s: &Server, who: &(Key, PathBuf), name: &str, now: u64, extra: &[&str]) -> Run {
    let mut args = vec!["witness", "origin"];
    args.extend_from_slice(extra);
    let mut cmd = s.mvault_command(&who.1, &who.0, &args);
    cmd.env("MVAULT_USER", name)
        .env("MVAULT_NOW", now.to_string());
    s.run(cmd)
}

/// `mvault pull nlp/bert#staging --witnesses …` in the admin's clone, at `now`.
fn pull(s: &Server, now: u64, extra: &[&str]) -> Run {
    let out = s.path(&format!("out-{now}-{}", extra.join("-")));
    let mut args = vec!["pull", "nlp/bert#staging", "-o", path_str(&out)];
    args.extend_from_slice(extra);
    let mut cmd = s.mvault_command(&s.work, &s.admin, &args);
    cmd.env("MVAULT_NOW", now.to_string());
    s.run(cmd)
}

impl Witnessed {
    fn new() -> Self {
        let s = Server::with_version();
        let key_file = s.path("server-key/id");
        let bare = path_str(&s.bare).to_owned();
        s.mvault_as(
            s.root(),
            &s.admin,
            None,
            &[
                "hook",
                "install",
                &bare,
                "--root-key",
                &pub_arg(&s.admin),
                "--server-key",
                path_str(&key_file),
            ],
        )
        .success();
        admin(
            &s,
            &[
                "policy",
                "server-key",
                "--key-file",
                &format!("{}.pub", path_str(&key_file)),
            ],
        );
        let mut auditors = Vec::new();
        for name in ["wanda", "walt"] {
            let key = s.keygen(name);
            admin(
                &s,
                &["policy", "add-user", name, "--key-file", &pub_arg(&key)],
            );
            admin(
                &s,
                &[
                    "policy", "grant", name, "--role", "auditor", "--models", "**",
                ],
            );
            let clone = s.git_clone(&s.bare, name);
            auditors.push((key, clone));
        }
        admin(&s, &["promote", "nlp/bert@1.0.0", "--to", "staging"]);
        let walt = auditors.pop().expect("walt");
        let wanda = auditors.pop().expect("wanda");
        for (_, clone) in [&wanda, &walt] {
            s.git_ok(clone, &["pull", "-q", "--ff-only"]);
        }
        Witnessed { s, wanda, walt }
    }
}

/// Rewrite the server's decision log as an admin with a text editor would
/// to hide an action: alice's accepted pushes become carol's, then every
/// `prev` link and the head are recomputed, so the file alone verifies.
fn rewrite_log(server: &Path) {
    let path = server.join("mvault-decisions.jsonl");
    let text = fs::read_to_string(&path).expect("log");
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("json");
        if v["pusher"] == "alice" {
            v["pusher"] = "carol".into();
        }
        v["prev"] = prev.clone().into();
        let line = serde_json::to_string(&v).expect("json");
        prev = sha256_hex(line.as_bytes());
        out.push_str(&line);
        out.push('\n');
    }
    fs::write(&path, &out).expect("write log");
    fs::write(
        server.join("mvault-decisions.head"),
        format!("{} {prev}\n", out.len()),
    )
    .expect("write head");
}

#[test]
fn witness_two_cosign_clients_count_them_and_a_rewritten_log_is_caught() {
    let w = Witnessed::new();
    let s = &w.s;
    witness(s, &w.wanda, "wanda", NOW + 60)
        .success()
        .mentions(&["cosigned by wanda", "decision-log line(s) checked"]);
    witness(s, &w.walt, "walt", NOW + 60)
        .success()
        .mentions(&["cosigned by walt"]);

    // A client requiring two accepts; three is one too many.
    pull(s, NOW + 120, &["--witnesses", "2"]).success();
    pull(s, NOW + 120, &["--witnesses", "3"])
        .mvault_error()
        .mentions(&["2 of the 3 required witness cosignatures", "wanda", "walt"]);

    // Two hours on, walt cosigns again; wanda's cosignature is stale.
    let later = NOW + 7200;
    let json = witness_with(s, &w.walt, "walt", later, &["--json"])
        .success()
        .stdout();
    let out = crate::json_schemas::Schemas::load().check("witness", &json);
    assert_eq!(out[0]["witness"], "walt", "{json}");
    pull(
        s,
        later + 60,
        &["--witnesses", "2", "--witness-max-age", "1h"],
    )
    .mvault_error()
    .mentions(&[
        "1 of the 2 required",
        "wanda: its checkpoint is from",
        "older than 3600 s",
    ]);
    pull(
        s,
        later + 60,
        &["--witnesses", "1", "--witness-max-age", "1h"],
    )
    .success();

    // Only the witness a ref names may move it, with its own signature.
    let walt_cosig = s.git_ok(
        &w.walt.1,
        &["rev-parse", "refs/mvault/witnessed/witness/walt"],
    );
    let mut push = s.git_command(
        &w.walt.1,
        &[
            "push",
            "origin",
            &format!("{walt_cosig}:refs/mvault/witness/mallory"),
        ],
    );
    push.env("MVAULT_USER", "walt");
    s.run(push).failure().mentions(&[
        "refs/mvault/witness/mallory",
        "witness ref",
        "pushed by walt",
    ]);
    let mut push = s.git_command(
        &w.walt.1,
        &[
            "push",
            "origin",
            &format!("+{walt_cosig}:refs/mvault/witness/wanda"),
        ],
    );
    push.env("MVAULT_USER", "wanda");
    s.run(push)
        .failure()
        .mentions(&["refs/mvault/witness/wanda", "bad cosignature"]);

    // The server's admin rewrites the log; the file alone still verifies.
    rewrite_log(&s.bare);
    let mut verify = s.command(env!("CARGO_BIN_EXE_mvault"));
    verify.args(["hook", "log", "verify"]).arg(&s.bare);
    s.run(verify).success().mentions(&["chain intact"]);
    // The next push carries the rewritten chain in its receipt; wanda,
    // whose last checkpoint pinned the old head, refuses and says where.
    let model = s.model(2);
    s.add(&s.work, &s.alice, Some("alice"), &model, "1.1.0", &[])
        .success();
    let run = witness(s, &w.wanda, "wanda", later + 120).mvault_error();
    assert_eq!(run.status.code(), Some(4), "{}", run.output());
    run.mentions(&[
        "refused to cosign: the decision log's chain breaks between receipt",
        "the decision log was rewritten at or before the last line receipt",
    ]);
}

//! Log retention: the server log rotated into sealed segments whose heads
//! chain. Decisions come from stock `git push` to a bare repository with
//! the hook; rotation and verification run the real binary.

use std::fs;
use std::path::Path;

use crate::common::*;

/// One refused push (a branch outside mvault's namespaces): one decision.
fn refused_push(v: &Vault, server: &Path, branch: &str) {
    let mut push = v.git_command(
        &v.repo,
        &[
            "push",
            path_str(server),
            &format!("main:refs/heads/{branch}"),
        ],
    );
    push.env("MVAULT_USER", "alice");
    v.run(push).failure();
}

fn hook_log(v: &Vault, server: &Path, args: &[&str]) -> Run {
    let mut cmd = v.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.args(["hook", "log"]).args(args).arg(server);
    v.run(cmd)
}

#[test]
fn log_segments_rotate_archive_and_name_an_edited_line() {
    let v = Vault::new();
    let (server, _) = v.hooked_server("server.git", &[]);
    refused_push(&v, &server, "a");
    refused_push(&v, &server, "b");
    hook_log(&v, &server, &["rotate"])
        .success()
        .mentions(&["sealed segment 1 (mvault-decisions.000001.jsonl): 2 entries"]);
    hook_log(&v, &server, &["rotate"])
        .success()
        .mentions(&["not rotated"]);
    refused_push(&v, &server, "c");
    refused_push(&v, &server, "d");
    hook_log(&v, &server, &["rotate", "--if-larger-than", "1000000"])
        .success()
        .mentions(&["not rotated"]);
    hook_log(&v, &server, &["rotate"])
        .success()
        .mentions(&["sealed segment 2", "2 entries"]);
    refused_push(&v, &server, "e");

    // Rotated twice: the whole chain verifies, and reads as one log.
    hook_log(&v, &server, &["verify"])
        .success()
        .mentions(&["5 entries", "chain intact, verified from the first line"]);
    let mut log = v.mvault_command(&server, &v.admin, &["log", "--server"]);
    log.env_remove("GIT_DIR");
    let lines = v.run(log).success().stdout();
    let branches: Vec<&str> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .filter(|b| lines.contains(&format!("refs/heads/{b}")))
        .collect();
    assert_eq!(
        branches.len(),
        5,
        "log --server reads across segments:\n{lines}"
    );

    // Archive the first segment: the rest still verifies, from seal 1.
    let archive = v.path("archive");
    fs::create_dir_all(&archive).expect("archive dir");
    fs::rename(
        server.join("mvault-decisions.000001.jsonl"),
        archive.join("mvault-decisions.000001.jsonl"),
    )
    .expect("archive segment 1");
    hook_log(&v, &server, &["verify"]).success().mentions(&[
        "sealed segment 1, 2 entries, not present",
        "3 entries (decisions and fetches), chain intact, verified from seal 1",
    ]);
    let archive_arg = path_str(&archive).to_owned();
    hook_log(&v, &server, &["verify", "--segments", &archive_arg])
        .success()
        .mentions(&["5 entries", "verified from the first line"]);
    let schemas = crate::json_schemas::Schemas::load();
    let json = hook_log(&v, &server, &["verify", "--json"])
        .success()
        .stdout();
    let out = schemas.check("hook_log_verify", &json);
    assert_eq!(out[0]["verified_from_seal"], 1, "{json}");
    assert_eq!(out[0]["segments"][0]["present"], false, "{json}");
    let json = hook_log(
        &v,
        &server,
        &["rotate", "--json", "--if-larger-than", "1000000"],
    )
    .success()
    .stdout();
    assert_eq!(schemas.check("hook_log_rotate", &json)[0]["rotated"], false);

    // Edit the first line of sealed segment 2: verification names the
    // segment and the line the chain breaks at.
    let seg2 = server.join("mvault-decisions.000002.jsonl");
    let text = fs::read_to_string(&seg2).expect("segment 2");
    fs::write(&seg2, text.replacen("\"alice\"", "\"carol\"", 1)).expect("edit");
    let run = hook_log(&v, &server, &["verify"]).mvault_error();
    assert_eq!(run.status.code(), Some(4), "{}", run.output());
    run.mentions(&[
        "sealed segment 2 (mvault-decisions.000002.jsonl) line 2: chain broken",
        "line 1 was edited",
    ]);
    // A broken log is never sealed.
    refused_push(&v, &server, "f");
    fs::write(&seg2, &text).expect("restore segment 2");
    let live = server.join("mvault-decisions.jsonl");
    let live_text = fs::read_to_string(&live).expect("live");
    fs::write(&live, live_text.replacen("\"alice\"", "\"carol\"", 1)).expect("edit live");
    hook_log(&v, &server, &["rotate"])
        .mvault_error()
        .mentions(&[
            "not rotated, the log does not verify",
            "mvault-decisions.jsonl line 2",
        ]);
}

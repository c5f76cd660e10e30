//! Server receipts and freshness (issue 11), in one scenario on a bare
//! repository guarded by `mvault hook install --server-key`: every push
//! that lands gets exactly one receipt, a push refused by mvault or by a
//! hook chained after mvault's gets none and the decision log says so;
//! `report --since` uses the server's time; `audit verify` names a commit
//! placed behind the hook's back; a client refuses a rolled-back, frozen or
//! mixed-up server and accepts a fresh one.
//!
//! The hook runs with the pusher's environment (path transport), so each
//! command's `MVAULT_NOW` is the server's clock for its push.

use std::path::Path;

use crate::common::*;
use crate::hook_server::{pub_arg, Server};

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// `mvault ARGS…` in `dir` signed with `key`, pushing as `pusher`, at `t`.
fn at(s: &Server, t: i64, dir: &Path, key: &Key, pusher: &str, args: &[&str]) -> Run {
    let mut cmd = s.mvault_command(dir, key, args);
    cmd.env("MVAULT_NOW", t.to_string())
        .env("MVAULT_USER", pusher)
        .env("GIT_COMMITTER_NAME", &key.name)
        .env("GIT_COMMITTER_EMAIL", format!("{}@mvault", key.name));
    s.run(cmd)
}

/// The decision log's lines, parsed.
fn decisions(s: &Server) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.bare.join("mvault-decisions.jsonl"))
        .expect("the decision log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn receipts_cover_every_landed_push_and_clients_refuse_rollback_freeze_and_injection() {
    let s = Server::new();
    let now = NOW as i64;
    let (admin, alice) = (&s.admin, &s.alice);
    let bare = path_str(&s.bare).to_owned();
    let key = s.path("srv/receipt-key");
    // The server key, then a hook chained after mvault's that refuses
    // while a marker file exists (as a forge's own check would).
    at(
        &s,
        now,
        s.root(),
        admin,
        "admin",
        &[
            "hook",
            "install",
            &bare,
            "--root-key",
            &pub_arg(admin),
            "--server-key",
            path_str(&key),
        ],
    )
    .success()
    .mentions(&["server key", "hook heartbeat", "post-receive"]);
    at(&s, now, s.root(), admin, "admin", &["hook", "check", &bare])
        .success()
        .mentions(&[
            "the server key signs receipts",
            "writes receipts",
            "no signed timestamp yet",
        ]);
    let marker = s.path("freeze-marker");
    let mvault_bin = env!("CARGO_BIN_EXE_mvault");
    std::fs::write(
        s.bare.join("hooks/pre-receive"),
        format!(
            "#!/bin/sh\nin=$(cat)\nprintf '%s\\n' \"$in\" | '{mvault_bin}' hook pre-receive || exit 1\nif [ -e '{}' ]; then echo 'change-freeze: refused: no pushes during the freeze' >&2; exit 1; fi\n",
            marker.display()
        ),
    )
    .expect("chained hook");

    // A scripted run: policy changes, add, promote, approve, deploy. Each
    // lands as one push.
    let key_pub = format!("{}.pub", key.display());
    let mut t = now;
    let mut landed = 0;
    let mut step = |key: &Key, user: &str, args: &[&str]| {
        t += 60;
        at(&s, t, &s.work, key, user, args).success();
        landed += 1;
    };
    step(
        admin,
        "admin",
        &["policy", "server-key", "--key-file", &key_pub],
    );
    step(
        admin,
        "admin",
        &[
            "policy",
            "grant",
            "alice",
            "--role",
            "ml_engineer",
            "--models",
            "nlp/*",
        ],
    );
    step(
        admin,
        "admin",
        &[
            "policy",
            "rule",
            "env",
            "add",
            "prod-eu",
            "--stage",
            "production",
            "--models",
            "nlp/**",
        ],
    );
    let m1 = s.model(1);
    step(
        alice,
        "alice",
        &[
            "add",
            path_str(&m1),
            "--model",
            "nlp/bert",
            "--version",
            "1.0.0",
        ],
    );
    step(
        alice,
        "alice",
        &["promote", "nlp/bert@1.0.0", "--to", "staging"],
    );
    // The server as it is now, to roll back to later.
    let snapshot = s.path("snapshot.git");
    let mut cp = s.command("cp");
    cp.arg("-a").arg(&s.bare).arg(&snapshot);
    s.run(cp).success();
    step(
        admin,
        "admin",
        &["approve", "nlp/bert@1.0.0", "--stage", "production"],
    );
    step(
        alice,
        "alice",
        &["promote", "nlp/bert@1.0.0", "--to", "production"],
    );
    step(
        alice,
        "alice",
        &[
            "deploy",
            "nlp/bert#production",
            "--env",
            "prod-eu",
            "--reason",
            "CHG-1",
        ],
    );

    // Refused by mvault (rule 90): no receipt.
    let mut push = s.command("git");
    push.current_dir(&s.work)
        .args(["push", "origin", "+main:refs/mvault/receipts"])
        .env("MVAULT_USER", "admin");
    s.run(push)
        .failure()
        .mentions(&["refs/mvault/receipts", "receipts are the server's"]);
    // Accepted by mvault, refused by the hook after it: no receipt.
    std::fs::write(&marker, b"").expect("marker");
    let m2 = s.model(2);
    at(
        &s,
        t + 60,
        &s.work,
        alice,
        "alice",
        &[
            "add",
            path_str(&m2),
            "--model",
            "nlp/bert",
            "--version",
            "1.1.0",
        ],
    )
    .failure();
    std::fs::remove_file(&marker).expect("marker");

    // Backdated but accepted: 1.1.0 signed at t+120, pushed a day later.
    let signed = t + 120;
    let server_time = now + 86_400;
    at(
        &s,
        signed,
        &s.work,
        alice,
        "alice",
        &[
            "add",
            path_str(&m2),
            "--model",
            "nlp/bert",
            "--version",
            "1.1.0",
            "--no-push",
        ],
    )
    .success();
    let mut push = s.command("git");
    push.current_dir(&s.work)
        .args([
            "push",
            "--atomic",
            "origin",
            "main",
            "refs/tags/nlp/bert@v1.1.0",
            "refs/mvault/data/nlp/bert/1.1.0",
        ])
        .env("MVAULT_USER", "alice")
        .env("MVAULT_NOW", server_time.to_string());
    s.run(push).success().mentions(&["mvault: receipt"]);
    landed += 1;

    // (a) One receipt per landed push; none for the two refused ones.
    let count = s.git_ok(&s.bare, &["rev-list", "--count", "refs/mvault/receipts"]);
    assert_eq!(count.trim(), landed.to_string(), "receipts vs pushes");
    let log = decisions(&s);
    let with_receipt = log
        .iter()
        .filter(|l| l["event"] == "landed" && l["receipt"].is_object())
        .count();
    assert_eq!(
        with_receipt, landed,
        "one landed line with a receipt per push"
    );
    assert!(
        log.iter()
            .any(|l| l["decision"] == "refuse"
                && l["refusal"]["rule"] == "receipts are the server's"),
        "the refusal by mvault is logged"
    );
    let not_landed: Vec<_> = log.iter().filter(|l| l["event"] == "not-landed").collect();
    assert_eq!(not_landed.len(), 1, "{log:?}");
    assert!(
        not_landed[0]["missing"]
            .as_array()
            .expect("missing")
            .iter()
            .any(|r| r == "refs/tags/nlp/bert@v1.1.0"),
        "{:?}",
        not_landed[0]
    );
    // The newest receipt verifies with stock ssh-keygen, and chains.
    let receipt = s.git_show_bytes(&s.bare, "refs/mvault/receipts:receipt.toml");
    let text = String::from_utf8(receipt.clone()).expect("utf-8");
    assert!(text.contains(&format!("seq = {landed}\n")), "{text}");
    assert!(
        text.contains(&format!("time = \"{}\"", rfc3339(server_time))),
        "{text}"
    );
    let sig = s.path("receipt.sig");
    s.git_show_to(&s.bare, "refs/mvault/receipts:receipt.toml.sig", &sig);
    let allowed = s.path("allowed");
    let line = std::fs::read_to_string(&key_pub).expect("key");
    write_file(&allowed, format!("mvault-server {line}").as_bytes());
    let mut verify = s.command("ssh-keygen");
    verify
        .args([
            "-Y",
            "verify",
            "-n",
            "mvault-receipt",
            "-I",
            "mvault-server",
            "-f",
        ])
        .arg(&allowed)
        .arg("-s")
        .arg(&sig);
    s.run_with_input(verify, &receipt).success();

    // (d, fresh) The clone fetches the receipts with the record.
    let day = server_time + 60;
    at(
        &s,
        day,
        &s.work,
        admin,
        "admin",
        &["sync", "--max-age", "1h"],
    )
    .success();

    // (c) The report places the backdated version when the server took it.
    let report = at(
        &s,
        day,
        &s.work,
        admin,
        "admin",
        &[
            "report",
            "nlp/bert",
            "--since",
            &rfc3339(server_time - 60),
            "--json",
        ],
    )
    .success()
    .stdout();
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    let events = report["events"].as_array().expect("events");
    let register = events
        .iter()
        .find(|e| e["action"] == "register" && e["version"] == "1.1.0")
        .unwrap_or_else(|| panic!("1.1.0 in the period: {events:?}"));
    assert_eq!(register["time"], rfc3339(signed));
    assert_eq!(register["received"], rfc3339(server_time));
    assert!(
        !events.iter().any(|e| e["version"] == "1.0.0"),
        "1.0.0 was received the day before: {events:?}"
    );
    at(&s, day, &s.work, admin, "admin", &["lineage", "nlp/bert"])
        .success()
        .mentions(&[&format!("(received {})", rfc3339(server_time))]);
    at(&s, day, &s.bare, admin, "admin", &["audit", "verify"])
        .success()
        .mentions(&[&format!("receipts: {landed} in the chain")]);

    // (d) Frozen is refused until a heartbeat; a default max age for
    // pull --from.
    let later = day + 7200;
    at(
        &s,
        later,
        &s.work,
        admin,
        "admin",
        &["sync", "--max-age", "1h"],
    )
    .failure()
    .mentions(&["more than --max-age 1h", "frozen"]);
    at(
        &s,
        later,
        s.root(),
        admin,
        "admin",
        &["hook", "heartbeat", &bare],
    )
    .success();
    at(
        &s,
        later,
        &s.work,
        admin,
        "admin",
        &["sync", "--max-age", "1h"],
    )
    .success();
    let out = s.path("pulled");
    let from = |t: i64| {
        at(
            &s,
            t,
            s.root(),
            admin,
            "admin",
            &[
                "pull",
                "nlp/bert@1.0.0",
                "--from",
                &bare,
                "-o",
                path_str(&out),
            ],
        )
    };
    from(later + 2 * 86_400)
        .failure()
        .mentions(&["more than --max-age 1d"]);
    from(later).success();
    // Rollback: the server serves the chain as it was five pushes ago.
    let current = s.path("current.git");
    std::fs::rename(&s.bare, &current).expect("move aside");
    std::fs::rename(&snapshot, &s.bare).expect("roll back");
    at(&s, later, &s.work, admin, "admin", &["sync"])
        .failure()
        .mentions(&["rollback", &format!("has seen receipt {landed}")]);
    std::fs::remove_dir_all(&s.bare).expect("drop the old copy");
    std::fs::rename(&current, &s.bare).expect("restore");

    // (b) A commit placed on main with plumbing, past the hook.
    let clone = s.stock_clone("mallet");
    let m3 = s.model(3);
    at(
        &s,
        later,
        &clone,
        alice,
        "alice",
        &[
            "add",
            path_str(&m3),
            "--model",
            "nlp/bert",
            "--version",
            "1.2.0",
            "--no-push",
        ],
    )
    .success();
    let injected = s.git_ok(&clone, &["rev-parse", "HEAD"]);
    let injected = injected.trim();
    s.git_ok(&s.bare, &["fetch", "-q", path_str(&clone), "main"]);
    s.git_ok(&s.bare, &["update-ref", "refs/heads/main", "FETCH_HEAD"]);
    at(&s, later, &s.bare, admin, "admin", &["audit", "verify"])
        .failure()
        .mentions(&[injected, "not received under any receipt"]);
    at(&s, later, &s.work, admin, "admin", &["sync"])
        .failure()
        .mentions(&[injected, "says main moved to"]);
}

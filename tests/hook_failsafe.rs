//! The hook fails closed (acceptance 5), keeps a tamper-evident decision
//! log, and `mvault hook check` tells the admin when it is not installed.

use crate::common::*;
use crate::hook_server::*;

/// A valid, unpushed registration by alice in a stock clone.
fn valid_push(s: &Server) -> std::path::PathBuf {
    s.prepared("c", &s.alice, "2.0.0")
}

/// A hook that cannot record its decision must not accept the push: an
/// unlogged acceptance would be a hole in the audit trail.
#[test]
fn unwritable_decision_log_refuses_the_push() {
    let s = Server::with_version();
    let clone = valid_push(&s);
    let log = s.bare.join("mvault-decisions.jsonl");
    std::fs::remove_file(&log).expect("remove the log");
    std::fs::create_dir(&log).expect("a directory where the log goes");
    let before = s.server_refs();
    let run = s.push(&clone, Some("alice"), &["origin", "main"]).failure();
    let stderr = run.stderr();
    assert!(
        stderr.contains("mvault: refused") && stderr.contains("internal error"),
        "{stderr}"
    );
    assert_eq!(s.server_refs(), before, "a ref moved: {stderr}");
}

/// A pinned root key the hook cannot read is an internal error, and the
/// hook fails closed rather than judging without it.
#[test]
fn unreadable_server_config_refuses_the_push() {
    let s = Server::with_version();
    let clone = valid_push(&s);
    s.git_ok(
        &s.bare,
        &["config", "--replace-all", "mvault.rootKey", "not a key"],
    );
    let run = s.refused_main(&clone, Some("alice"), "internal error");
    assert!(run.stderr().contains("mvault.rootKey"), "{}", run.stderr());
}

/// If the hook's binary is gone, the shim fails and git refuses the push:
/// a broken install never lets everything through.
#[test]
fn hook_shim_pointing_at_a_missing_binary_refuses_the_push() {
    let s = Server::with_version();
    let clone = valid_push(&s);
    let hook = s.bare.join("hooks/pre-receive");
    let text = std::fs::read_to_string(&hook).expect("read the shim");
    let broken: String = text
        .lines()
        .map(|l| {
            if l.starts_with("MVAULT_BIN=") {
                "MVAULT_BIN='/nonexistent/mvault'".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(
        broken.trim(),
        text.trim(),
        "the shim has no MVAULT_BIN line"
    );
    std::fs::write(&hook, broken).expect("write the shim");
    let before = s.server_refs();
    let run = s.push(&clone, Some("alice"), &["origin", "main"]).failure();
    assert!(
        run.stderr().contains("pre-receive hook declined"),
        "{}",
        run.stderr()
    );
    assert_eq!(s.server_refs(), before, "a ref moved: {}", run.stderr());
    let bare = s.bare.to_str().expect("utf-8 path").to_owned();
    s.mvault_as(s.root(), &s.admin, None, &["hook", "check", &bare])
        .failure()
        .mentions(&["FAIL", "/nonexistent/mvault"]);
}

/// Several accepted and refused pushes, so the log has lines of both kinds.
fn busy_log(s: &Server) {
    // 1: refused (bob is a viewer), 2: accepted, 3: refused (deletion).
    let clone = valid_push(s);
    s.push(&clone, Some("bob"), &["origin", "main"]).failure();
    s.push(
        &clone,
        Some("alice"),
        &["origin", "main", "refs/tags/nlp/bert@v2.0.0"],
    )
    .success();
    s.push(
        &clone,
        Some("alice"),
        &["origin", ":refs/tags/nlp/bert@v2.0.0"],
    )
    .failure();
}

/// The decision log is hash-chained: flipping a refusal into an
/// acceptance after the fact is detected.
#[test]
fn decision_log_detects_an_edited_line() {
    let s = Server::with_version();
    busy_log(&s);
    let bare = s.bare.to_str().expect("utf-8 path").to_owned();
    let lines = s.decisions();
    // with_version logged the registration; busy_log three more.
    assert_eq!(lines.len(), 4, "{lines:?}");
    s.mvault_as(s.root(), &s.admin, None, &["hook", "log", "verify", &bare])
        .success()
        .mentions(&["4 entries", "intact"]);
    assert!(lines[1].contains("\"decision\":\"refuse\""), "{}", lines[1]);
    let mut edited = lines.clone();
    edited[1] = edited[1].replace("\"decision\":\"refuse\"", "\"decision\":\"accept\"");
    write_file(
        &s.bare.join("mvault-decisions.jsonl"),
        format!("{}\n", edited.join("\n")).as_bytes(),
    );
    // The edit of line 2 shows as line 3 no longer chaining to it.
    s.mvault_as(s.root(), &s.admin, None, &["hook", "log", "verify", &bare])
        .mvault_error()
        .mentions(&["chain broken"])
        .mentions_any(&["line 2", "line 3"]);
}

/// Removing a decision (say, an embarrassing refusal) is detected.
#[test]
fn decision_log_detects_a_deleted_line() {
    let s = Server::with_version();
    busy_log(&s);
    let bare = s.bare.to_str().expect("utf-8 path").to_owned();
    let mut lines = s.decisions();
    lines.remove(1);
    write_file(
        &s.bare.join("mvault-decisions.jsonl"),
        format!("{}\n", lines.join("\n")).as_bytes(),
    );
    s.mvault_as(s.root(), &s.admin, None, &["hook", "log", "verify", &bare])
        .mvault_error()
        .mentions(&["chain broken", "line 2"]);
}

/// `mvault hook check` confirms an install and names what is missing when
/// the hook file is gone (a server that would accept anything).
#[test]
fn hook_check_passes_after_install_and_fails_without_the_hook() {
    let s = Server::new();
    let bare = s.bare.to_str().expect("utf-8 path").to_owned();
    let ok = s
        .mvault_as(s.root(), &s.admin, None, &["hook", "check", &bare])
        .success();
    assert!(!ok.stdout().contains("FAIL"), "{}", ok.stdout());
    std::fs::remove_file(s.bare.join("hooks/pre-receive")).expect("remove the hook");
    let run = s
        .mvault_as(s.root(), &s.admin, None, &["hook", "check", &bare])
        .mvault_error()
        .mentions(&["FAIL", "hooks/pre-receive"]);
    let fails: Vec<String> = run
        .stdout()
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(str::to_owned)
        .collect();
    assert!(
        fails.iter().any(|l| l.contains("hooks/pre-receive")),
        "{fails:?}"
    );
}

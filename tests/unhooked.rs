//! The same objects forced past the hook: a copy of the server's bare
//! repository without its pre-receive hook (and without git's own fsck),
//! where a stock `git push` lands whatever it carries, replayed by
//! `mvault audit verify`. Every rule that is not push-only names the same
//! thing in the hook and in the replay (docs/hook.md, "What it checks").

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::hook_server::*;

/// A copy of the server's bare repository (refs, objects, config with the
/// pinned root key, decision log) with `hooks/pre-receive` removed and
/// `receive.fsckObjects` off: nothing judges a push into it.
pub fn unhooked_copy(s: &Server, name: &str) -> PathBuf {
    let copy = s.path(name);
    let mut cp = s.command("cp");
    cp.arg("-a").arg(&s.bare).arg(&copy);
    s.run(cp).success();
    std::fs::remove_file(copy.join("hooks/pre-receive")).expect("remove the hook of the copy");
    s.git_ok(&copy, &["config", "receive.fsckObjects", "false"]);
    copy
}

/// Forces `refspecs` from `dir` into an unhooked copy of the server, then
/// asserts that `mvault audit verify` there (exit 4) breaks at `object`
/// with `rule`, and that `audit verify --json` names the same
/// `first_break`. Returns the human run.
#[track_caller]
pub fn assert_replay_names(
    s: &Server,
    dir: &Path,
    refspecs: &[&str],
    object: &str,
    rule: &str,
) -> Run {
    let copy = unhooked_copy(s, "unhooked.git");
    let mut args = vec!["push", "-q", path_str(&copy)];
    args.extend_from_slice(refspecs);
    let owned = s.with_payloads(dir, &args);
    let args: Vec<&str> = owned.iter().map(String::as_str).collect();
    s.git(dir, &args).success();
    let run = s.mvault(&copy, &s.admin, &["audit", "verify"]).failure();
    assert_eq!(
        run.status.code(),
        Some(4),
        "a broken record exits with 4: {}",
        run.output()
    );
    let want = format!("mvault: record broken at {object}: {rule}: ");
    assert!(
        run.stderr().contains(&want),
        "expected the replay to print {want:?}; stderr:\n{}",
        run.stderr()
    );
    let json = s
        .mvault(&copy, &s.admin, &["audit", "verify", "--json"])
        .stdout();
    let json: serde_json::Value = serde_json::from_str(json.trim())
        .unwrap_or_else(|e| panic!("audit verify --json is not JSON: {e}: {json}"));
    assert_eq!(json["ok"], false, "{json}");
    assert_eq!(json["first_break"]["rule"], rule, "{json}");
    assert_eq!(json["first_break"]["object"], object, "{json}");
    run
}

/// `refused_main`, then `assert_replay_names` for the same `main` forced
/// into a copy: the hook and the replay name `rule`, the replay at main's
/// new tip in `clone`.
#[track_caller]
pub fn refused_main_everywhere(s: &Server, clone: &Path, pusher: &str, rule: &str) -> Run {
    let run = s.refused_main(clone, Some(pusher), rule);
    let tip = s.git_ok(clone, &["rev-parse", "main"]);
    assert_replay_names(s, clone, &["main"], &tip, rule);
    run
}

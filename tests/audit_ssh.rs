//! The server's access log over a real SSH transport (issue "Audit",
//! acceptance 5): `mvault hook install --log-fetches FILE` sets git's
//! `uploadpack.packObjectsHook` in FILE, the server user's global git
//! configuration (sshd's forced command points `GIT_CONFIG_GLOBAL` at it);
//! a `git clone` over ssh then appears in the server log with the user the
//! forced command vouches for (`MVAULT_USER`), chained with the hook's
//! decisions, and `mvault hook log verify` still passes.
//!
//! The sshd fixture is the shared one (`common::sshd`), with the server's
//! configuration file as the sessions' `GIT_CONFIG_GLOBAL`.

use std::path::PathBuf;

use crate::common::sshd::Sshd;
use crate::common::*;

#[test]
fn audit_ssh_clone_over_ssh_is_in_the_server_access_log_with_the_fetching_user() {
    let v = Vault::new();
    let bob = v.add_user("bob");
    v.grant("bob", "viewer", "nlp/*");
    let model = v.path("model");
    sample_model(&model, 20_000, 41);
    v.add(&model, "nlp/bert", "1.0.0", &[]).success();

    // The server: the history, then the hook with fetch logging into the
    // server user's global git configuration.
    let server_config = v.path("server-gitconfig");
    let (server, install) =
        v.hooked_server("server.git", &["--log-fetches", path_str(&server_config)]);
    install.mentions(&["uploadpack.packObjectsHook"]);
    let mut get = v.command("git");
    get.args(["config", "--file"])
        .arg(&server_config)
        .args(["--get", "uploadpack.packObjectsHook"]);
    let hook_value = v.run(get).success().stdout();
    assert!(
        hook_value.contains("hook pack-objects"),
        "uploadpack.packObjectsHook = {hook_value}"
    );

    let sshd = Sshd::start(&v, &[&v.alice, &bob], &server_config);
    let url = sshd.url(&server);
    let clone_as = |key: &Key, name: &str| -> PathBuf {
        let dest = v.path(name);
        let mut cmd = v.git_command(v.root(), &["clone", "-q", &url, path_str(&dest)]);
        sshd.connect_as(&mut cmd, key);
        v.run(cmd).success();
        dest
    };

    let bobs = clone_as(&bob, "bob-clone");
    assert_eq!(
        v.git_ok(&bobs, &["rev-parse", "main"]),
        v.git_ok(&server, &["rev-parse", "main"])
    );
    // The clone went through sshd.
    sshd.assert_accepted_a_key();

    let server_log = |args: &[&str]| {
        let mut all = vec!["log", "--server"];
        all.extend_from_slice(args);
        v.mvault(&server, &v.admin, &all).success().stdout()
    };
    let text = server_log(&[]);
    let fetch_line = text
        .lines()
        .find(|l| l.contains(" fetch ") && l.contains(" bob "))
        .unwrap_or_else(|| panic!("no fetch by bob in `mvault log --server`:\n{text}"));
    assert!(fetch_line.contains("refs/heads/main"), "{fetch_line}");
    assert!(
        fetch_line.starts_with("2026-11-22T10:00:00Z"),
        "{fetch_line}"
    );

    // A second user is told apart from the first.
    clone_as(&v.alice, "alice-clone");
    let lines: Vec<serde_json::Value> = server_log(&["--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("server log lines are JSON"))
        .collect();
    let fetchers: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "fetch")
        .map(|l| l["user"].as_str().expect("user"))
        .collect();
    assert_eq!(fetchers, ["bob", "alice"], "{lines:?}");
    let refs = lines[0]["refs"].as_array().expect("refs");
    assert!(
        refs.iter().any(|r| r == "refs/tags/nlp/bert@v1.0.0"),
        "the clone wanted the registration tag: {refs:?}"
    );

    let mut verify = v.command(env!("CARGO_BIN_EXE_mvault"));
    verify.args(["hook", "log", "verify"]).arg(&server);
    v.run(verify)
        .success()
        .mentions(&["2 entries", "chain intact"]);
    v.mvault(&server, &v.admin, &["audit", "verify"])
        .success()
        .mentions(&["record intact"]);
}

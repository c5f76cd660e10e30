//! The vault behind a real gitolite (Debian's gitolite3, `common::gitolite`)
//! reached over the shared sshd fixture: gitolite's own `authorized_keys`
//! and gitolite-shell decide who logs in, and hand the user to git and the
//! hook as `GL_USER`. `mvault hook install` runs as the hosting user and
//! puts the hook in through gitolite's repo-specific hooks; gitolite's own
//! hooks stay, and a later gitolite compile keeps mvault's.

use std::fs;

use crate::common::served::*;
use crate::common::*;

#[test]
fn server_gitolite_install_goes_through_repo_specific_hooks_and_points_head_at_main() {
    let s = Served::gitolite();
    let installed = s.install.stdout();
    assert!(
        installed.contains("gitolite repository vault"),
        "install should say it saw gitolite:\n{installed}"
    );
    assert!(
        installed.contains("HEAD: refs/heads/master -> refs/heads/main"),
        "gitolite made HEAD master; install should move it:\n{installed}"
    );
    assert!(installed.contains("POST_COMPILE"), "{installed}");
    assert!(!installed.contains("FAIL"), "{installed}");

    // gitolite's hooks are gitolite's: its update hook, its driver as
    // pre-receive, and mvault's shim as one hook the driver runs.
    let hooks = s.server.join("hooks");
    let update = fs::read_link(hooks.join("update")).expect("gitolite's update hook is a link");
    assert!(
        update.starts_with(s.path("gitolite-home/.gitolite/hooks")),
        "{}",
        update.display()
    );
    let driver = fs::read_link(hooks.join("pre-receive")).expect("pre-receive is gitolite's link");
    assert!(
        driver.ends_with("multi-hook-driver"),
        "{}",
        driver.display()
    );
    let ours =
        fs::read_link(hooks.join("pre-receive.h00-mvault")).expect("gitolite linked mvault's hook");
    assert_eq!(
        ours,
        s.path("gitolite-home/local/hooks/repo-specific/mvault")
    );

    let check = s.hook_check().success().mentions(&[
        "HEAD points at refs/heads/main",
        "gitolite runs mvault's hook",
        "gitolite.conf gives repo vault `option hook.pre-receive = mvault`",
        "gitolite accepts ref names with '#'",
        "fetches are logged",
    ]);
    assert!(!check.stdout().contains("FAIL"), "{}", check.stdout());

    // A plain clone checks out main.
    let clone = s.clone_as(&s.bob, "plain-clone");
    assert_eq!(
        s.git_ok(&clone, &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );
    assert_eq!(
        s.git_ok(&clone, &["rev-parse", "HEAD"]),
        s.server_rev("refs/heads/main").expect("server main")
    );

    // The admin changes gitolite.conf again: gitolite rewrites the links,
    // and mvault's hook is still there.
    let Front::Gitolite { gitolite, .. } = &s.front else {
        unreachable!("a gitolite world")
    };
    let carol = s.keygen("carol");
    gitolite.admin_push(&s.vault, &[&carol], "repo other\n    RW = carol\n");
    s.hook_check()
        .success()
        .mentions(&["layout gitolite", "gitolite runs mvault's hook"]);

    // Another repo-specific hook after mvault's, a change freeze: gitolite's
    // driver runs mvault's (which accepts), then the freeze, which refuses.
    // `mvault add` shows the freeze's own lines and git's verdict
    // verbatim, and no ref moves.
    let freeze = s.path("gitolite-home/local/hooks/repo-specific/freeze");
    write_file(
        &freeze,
        b"#!/bin/sh\ncat >/dev/null\necho 'FREEZE: vault is frozen until the audit ends (ask #infra)'\nexit 1\n",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&freeze, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    gitolite.admin_push(
        &s.vault,
        &[],
        "repo vault\n    option hook.pre-receive = mvault freeze\n",
    );
    let before = s.server_rev("refs/heads/main");
    let alices = s.clone_as(&s.alice, "alice-clone");
    let model = s.path("model");
    sample_model(&model, 20_000, 67);
    s.add_as(&s.alice, &s.alice, &alices, &model, "1.0.0", &[])
        .failure()
        .mentions(&[
            "another hook on the server refused it, not mvault's rules; the server said:",
            "remote: FREEZE: vault is frozen until the audit ends (ask #infra)",
            "remote: mvault: accepted refs/heads/main",
            "[remote rejected] (pre-receive hook declined)",
        ]);
    assert_eq!(s.server_rev("refs/heads/main"), before);
    assert_eq!(s.server_rev("refs/tags/nlp/bert@v1.0.0"), None);
}

#[test]
fn server_gitolite_allowed_add_lands_and_the_decision_names_gl_user() {
    allowed_add_lands(&Served::gitolite());
}

#[test]
fn server_gitolite_refused_push_shows_mvaults_line_and_moves_no_ref() {
    refused_push_shows_mvaults_line(&Served::gitolite());
}

#[test]
fn server_gitolite_pull_of_one_version_is_in_the_access_log_with_user_address_and_version() {
    pull_of_one_version_is_in_the_access_log(&Served::gitolite());
}

#[test]
fn server_gitolite_purge_deletes_exactly_the_archived_versions_payload_ref() {
    purge_deletes_one_payload_ref(&Served::gitolite());
}

/// Without gitolite's repo-specific hooks there is nowhere to put the hook
/// that gitolite will keep: install refuses and says what to enable,
/// and changes nothing.
#[test]
fn server_gitolite_install_refuses_without_repo_specific_hooks() {
    let v = Vault::new();
    let gitolite = crate::common::gitolite::Gitolite::start(&v, &v.admin);
    gitolite.admin_push(&v, &[&v.alice], "repo vault\n    RW = alice\n");
    let rc = gitolite.home.join(".gitolite.rc");
    let text = fs::read_to_string(&rc).expect("rc");
    write_file(
        &rc,
        text.replace("'repo-specific-hooks',", "# 'repo-specific-hooks',")
            .as_bytes(),
    );
    let server = gitolite.repo_path("vault");
    let mut install = gitolite.server_command(&v, env!("CARGO_BIN_EXE_mvault"));
    install
        .args(["hook", "install"])
        .arg(&server)
        .arg("--root-key")
        .arg(&v.admin.public);
    v.run(install)
        .mvault_error()
        .mentions(&["gitolite", "repo-specific", "ENABLE"]);
    assert!(
        v.git(&server, &["config", "mvault.rootKey"]).status.code() == Some(1),
        "a refused install pinned keys"
    );
    assert!(!server.join("hooks/pre-receive.h00-mvault").exists());
}

/// gitolite's default pattern for ref names has no '#': every promotion
/// tag would pass mvault and then die in gitolite's update hook. Install
/// refuses, naming the rc line to add.
#[test]
fn server_gitolite_install_refuses_when_gitolite_refuses_promotion_tag_names() {
    let v = Vault::new();
    let gitolite = crate::common::gitolite::Gitolite::start(&v, &v.admin);
    gitolite.admin_push(&v, &[&v.alice], "repo vault\n    RW = alice\n");
    let rc = gitolite.home.join(".gitolite.rc");
    let text = fs::read_to_string(&rc).expect("rc");
    write_file(
        &rc,
        text.replace(crate::common::gitolite::HASH_IN_REF_NAMES, "")
            .as_bytes(),
    );
    let server = gitolite.repo_path("vault");
    let mut install = gitolite.server_command(&v, env!("CARGO_BIN_EXE_mvault"));
    install
        .args(["hook", "install"])
        .arg(&server)
        .arg("--root-key")
        .arg(&v.admin.public);
    v.run(install)
        .mvault_error()
        .mentions(&["refuses ref names with '#'", "REF_OR_FILENAME_PATT"]);
    assert!(!server.join("hooks/pre-receive.h00-mvault").exists());
}

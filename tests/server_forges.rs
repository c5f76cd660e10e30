//! Forges that own a repository's hooks: GitLab and Gitea/Forgejo. Each
//! server repository here is a bare repository whose `hooks/pre-receive`
//! is a small shell stand-in for the forge's own dispatch, written from
//! the forges' documentation (GitLab: "Git server hooks"; Gitea: the
//! `hooks/pre-receive` it generates), so that stock `git push` runs the
//! chain the way the forge does, with a foreign hook in it beside
//! mvault's:
//!
//! - GitLab runs `custom_hooks/pre-receive`, then every executable file of
//!   `custom_hooks/pre-receive.d/` in sorted order (editor backups `*~`
//!   skipped), each with git's input, and stops at the first that fails;
//! - Gitea runs every executable regular file of `hooks/pre-receive.d/`
//!   with git's input, all of them, then exits with the first failure.
//!
//! `mvault hook install` detects the layout and chains its file in,
//! leaving the forge's files as they were; `hook check` follows the
//! chain. The pusher's name comes from the forge's variable (`GL_USERNAME`,
//! `GITEA_PUSHER_NAME`) or sshd's `MVAULT_USER`, and reaches the policy
//! user through the user's aliases. A push refused by the foreign hook
//! shows that hook's lines verbatim in `mvault add`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

/// GitLab's dispatch of a repository's server hooks.
const GITLAB_DISPATCH: &str = r#"#!/bin/sh
# Test stand-in for GitLab (Gitaly) running a repository's server hooks
# after its own checks: custom_hooks/pre-receive, then each executable file
# of custom_hooks/pre-receive.d in sorted order, then those of the
# server-wide custom_hooks_dir's pre-receive.d; editor backups (*~) are
# skipped; each reads git's input; the first failure refuses the push.
input=$(cat; printf .)
input=${input%.}
for hook in custom_hooks/pre-receive custom_hooks/pre-receive.d/* '@GLOBAL@'/pre-receive.d/*; do
    case "$hook" in *~) continue ;; esac
    if [ -f "$hook" ] && [ -x "$hook" ]; then
        printf '%s' "$input" | "$hook" || exit 1
    fi
done
exit 0
"#;

/// GitLab's dispatch, with the server-wide `custom_hooks_dir` `global`.
fn gitlab_dispatch(global: Option<&Path>) -> String {
    GITLAB_DISPATCH.replace(
        "@GLOBAL@",
        global.map_or("/nonexistent-custom-hooks-dir", path_str),
    )
}

/// A site hook of the GitLab project: a change freeze.
const GITLAB_FREEZE: &str = r#"#!/bin/sh
cat >/dev/null
if [ -e freeze ]; then
    echo "GL-HOOK-ERR: this project is frozen for the release; pushes wait until Monday"
    exit 1
fi
"#;

/// The `hooks/pre-receive` Gitea and Forgejo generate, in substance.
const GITEA_DISPATCH: &str = r#"#!/bin/sh
# Test stand-in for the hooks/pre-receive Gitea generates: every executable
# regular file of hooks/pre-receive.d reads git's input; all of them run;
# the push fails with the first non-zero status.
input=$(cat)
hookname=$(basename "$0")
statuses=""
for hook in "${GIT_DIR:-.}/hooks/${hookname}.d"/*; do
    [ -x "$hook" ] && [ -f "$hook" ] || continue
    echo "$input" | "$hook"
    statuses="$statuses $?"
done
for s in $statuses; do
    [ "$s" -eq 0 ] || exit "$s"
done
"#;

/// Gitea's own hook (`gitea hooks pre-receive`), in substance: branch
/// protection.
const GITEA_OWN: &str = r#"#!/bin/sh
if grep -q ' refs/heads/main$' && [ -e protected-main ]; then
    echo "Gitea: branch main is protected: pushes need a merge request"
    exit 1
fi
exit 0
"#;

fn executable(path: &Path, text: &str) {
    write_file(path, text.as_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// The vault (alice an ml_engineer with aliases `Alice` and
/// `alice@corp.example`, added by admin-signed policy commits) on a bare
/// server repository `name` laid out by `forge`, before the hook.
fn forge_server(forge: impl Fn(&Path)) -> (Vault, PathBuf) {
    let v = Vault::new();
    for alias in ["Alice", "alice@corp.example"] {
        v.mvault(
            &v.repo,
            &v.admin,
            &["policy", "alias", "add", "alice", alias],
        )
        .success()
        .mentions(&[&format!("alias-add alice {alias}")]);
    }
    let server = v.bare_remote("forge.git");
    v.git_ok(&v.repo, &["push", "-q", path_str(&server), "main"]);
    v.git_ok(&v.repo, &["push", "-q", "--tags", path_str(&server)]);
    forge(&server);
    (v, server)
}

fn install(v: &Vault, server: &Path) -> Run {
    let mut cmd = v.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.args(["hook", "install"])
        .arg(server)
        .arg("--root-key")
        .arg(&v.admin.public);
    v.run(cmd).success()
}

fn hook_check(v: &Vault, server: &Path) -> Run {
    let mut cmd = v.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.args(["hook", "check"]).arg(server);
    v.run(cmd)
}

/// `mvault add` of a small model as alice in `clone`, the server naming
/// her `var=name`.
fn add_as(v: &Vault, clone: &Path, version: &str, seed: u64, var: &str, name: &str) -> Run {
    let model = v.path(&format!("model-{version}"));
    sample_model(&model, 20_000, seed);
    let mut cmd = v.mvault_command(
        clone,
        &v.alice,
        &[
            "add",
            path_str(&model),
            "--model",
            "nlp/bert",
            "--version",
            version,
        ],
    );
    cmd.env(var, name);
    v.run(cmd)
}

fn server_rev(v: &Vault, server: &Path, rev: &str) -> Option<String> {
    let run = v.git(server, &["rev-parse", "-q", "--verify", rev]);
    run.status.success().then(|| run.stdout().trim().to_owned())
}

fn last_decision(v: &Vault, server: &Path) -> serde_json::Value {
    let run = v
        .mvault(
            server,
            &v.admin,
            &[
                "log", "--server", "--json", "--action", "accept", "--action", "refuse", "--limit",
                "1",
            ],
        )
        .success();
    serde_json::from_str(run.stdout().trim()).expect("a decision as JSON")
}

#[test]
fn server_gitlab_layout_chains_mvaults_hook_maps_aliases_and_shows_a_foreign_refusal_verbatim() {
    let (v, server) = forge_server(|server| {
        executable(&server.join("hooks/pre-receive"), &gitlab_dispatch(None));
        executable(
            &server.join("custom_hooks/pre-receive.d/00-freeze"),
            GITLAB_FREEZE,
        );
    });
    let installed = install(&v, &server).mentions(&[
        "GitLab layout",
        "custom_hooks/pre-receive.d/mvault",
        "the forge's own hooks stay as they are",
    ]);
    assert!(
        !installed.stdout().contains("FAIL"),
        "{}",
        installed.stdout()
    );
    // The forge's files are as they were.
    assert_eq!(
        fs::read_to_string(server.join("hooks/pre-receive")).expect("dispatch"),
        gitlab_dispatch(None)
    );
    assert_eq!(
        fs::read_to_string(server.join("custom_hooks/pre-receive.d/00-freeze")).expect("freeze"),
        GITLAB_FREEZE
    );
    let check = hook_check(&v, &server).success().mentions(&[
        "layout gitlab",
        "custom_hooks/pre-receive.d/mvault runs mvault hook pre-receive",
        "GitLab reaches it",
        "HEAD points at refs/heads/main",
    ]);
    assert!(!check.stdout().contains("FAIL"), "{}", check.stdout());

    // GitLab names alice `Alice`: her alias; the push lands, and the
    // decision records both names.
    let clone = v.git_clone(&server, "alice-clone");
    add_as(&v, &clone, "1.0.0", 71, "GL_USERNAME", "Alice").success();
    assert_eq!(
        server_rev(&v, &server, "refs/tags/nlp/bert@v1.0.0"),
        Some(v.git_ok(&clone, &["rev-parse", "refs/tags/nlp/bert@v1.0.0"]))
    );
    let decision = last_decision(&v, &server);
    assert_eq!(decision["pusher"], "alice", "{decision}");
    assert_eq!(decision["server_name"], "Alice", "{decision}");
    assert_eq!(decision["decision"], "accept", "{decision}");

    // Names match exactly: `ALICE` is no alias, and mvault's own one-line
    // refusal is what the pusher sees.
    let refused = add_as(&v, &clone, "1.1.0", 72, "GL_USERNAME", "ALICE")
        .failure()
        .mentions(&["mvault: refused refs/heads/main", "ALICE"]);
    assert!(
        !refused.stderr().contains("another hook"),
        "mvault refused this one:\n{}",
        refused.stderr()
    );

    // The freeze hook, first in sorted order, refuses: its own line and
    // git's verdict, verbatim; nothing moved.
    let before = server_rev(&v, &server, "refs/heads/main");
    write_file(&server.join("freeze"), b"");
    let frozen = add_as(&v, &clone, "1.1.0", 72, "GL_USERNAME", "Alice").failure();
    frozen.mentions(&[
        "another hook on the server refused it, not mvault's rules; the server said:",
        "remote: GL-HOOK-ERR: this project is frozen for the release; pushes wait until Monday",
        "refs/heads/main:refs/heads/main [remote rejected] (pre-receive hook declined)",
    ]);
    assert_eq!(server_rev(&v, &server, "refs/heads/main"), before);
    assert_eq!(server_rev(&v, &server, "refs/tags/nlp/bert@v1.1.0"), None);

    // An alias taken by another user is refused where it stands.
    let policy = v.path("colliding-policy.toml");
    let text = v.git_ok(&v.repo, &["show", "main:.mvault/policy.toml"]);
    let text = text.replacen(
        "[users.alice]",
        &format!(
            "[users.bob]\nkeys = [\"{}\"]\naliases = [\"bob\", \"ALICE@corp.example\"]\n\n[users.alice]",
            v.keygen("bob").public_line()
        ),
        1,
    );
    write_file(&policy, text.as_bytes());
    v.mvault(&v.repo, &v.admin, &["policy", "check", path_str(&policy)])
        .failure()
        .mentions(&["users.bob.aliases[0]", "another name than the user's own"]);
    let text = text.replace("\"bob\", ", "");
    write_file(&policy, text.as_bytes());
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("aliases = [\"ALICE"))
        .expect("bob's aliases");
    v.mvault(&v.repo, &v.admin, &["policy", "check", path_str(&policy)])
        .failure()
        .mentions(&[
            &format!("policy line {line}, column 12: users.bob.aliases[0]"),
            "collides with alice's alias",
        ]);
}

#[test]
fn server_gitea_layout_chains_mvaults_hook_maps_aliases_and_shows_a_foreign_refusal_verbatim() {
    let (v, server) = forge_server(|server| {
        executable(&server.join("hooks/pre-receive"), GITEA_DISPATCH);
        executable(&server.join("hooks/pre-receive.d/gitea"), GITEA_OWN);
    });
    let installed =
        install(&v, &server).mentions(&["Gitea/Forgejo layout", "hooks/pre-receive.d/mvault"]);
    assert!(
        !installed.stdout().contains("FAIL"),
        "{}",
        installed.stdout()
    );
    assert_eq!(
        fs::read_to_string(server.join("hooks/pre-receive")).expect("dispatch"),
        GITEA_DISPATCH
    );
    assert_eq!(
        fs::read_to_string(server.join("hooks/pre-receive.d/gitea")).expect("gitea"),
        GITEA_OWN
    );
    let check = hook_check(&v, &server).success().mentions(&[
        "layout gitea",
        "is Gitea's dispatcher and runs every file in hooks/pre-receive.d",
        "Gitea reaches it",
    ]);
    assert!(!check.stdout().contains("FAIL"), "{}", check.stdout());
    // Asked for the plain layout, install refuses to overwrite Gitea's
    // dispatcher.
    let mut plain = v.command(env!("CARGO_BIN_EXE_mvault"));
    plain
        .args(["hook", "install", "--layout", "plain"])
        .arg(&server)
        .arg("--root-key")
        .arg(&v.admin.public);
    v.run(plain)
        .mvault_error()
        .mentions(&["--layout plain", "gitea repository"]);

    // The directory says `alice@corp.example` (sshd's MVAULT_USER from an
    // LDAP-fed authorized_keys); the domain's case does not matter.
    let clone = v.git_clone(&server, "alice-clone");
    add_as(&v, &clone, "1.0.0", 73, "MVAULT_USER", "alice@CORP.example").success();
    let decision = last_decision(&v, &server);
    assert_eq!(decision["pusher"], "alice", "{decision}");
    assert_eq!(decision["server_name"], "alice@CORP.example", "{decision}");

    // A fetch by the same directory name: the access log names the policy
    // user and the server's name.
    let gitconfig = v.path("server-gitconfig");
    write_file(
        &gitconfig,
        format!(
            "[uploadpack]\n\tpackObjectsHook = {} hook pack-objects\n",
            env!("CARGO_BIN_EXE_mvault")
        )
        .as_bytes(),
    );
    let mut fetch = v.command("git");
    fetch
        .args(["clone", "-q"])
        .arg(format!("file://{}", path_str(&server)))
        .arg(v.path("reader"))
        .env("GIT_CONFIG_GLOBAL", &gitconfig)
        .env("MVAULT_USER", "alice@corp.example");
    v.run(fetch).success();
    let run = v
        .mvault(
            &server,
            &v.admin,
            &[
                "log", "--server", "--json", "--action", "fetch", "--actor", "alice",
            ],
        )
        .success();
    let fetched: serde_json::Value =
        serde_json::from_str(run.stdout().trim()).expect("one fetch as JSON");
    assert_eq!(fetched["user"], "alice", "{fetched}");
    assert_eq!(fetched["server_name"], "alice@corp.example", "{fetched}");

    // Gitea's own hook refuses (mvault accepted: Gitea runs them all):
    // its line and git's verdict, verbatim; nothing moved.
    let before = server_rev(&v, &server, "refs/heads/main");
    write_file(&server.join("protected-main"), b"");
    let refused = add_as(&v, &clone, "1.1.0", 74, "GITEA_PUSHER_NAME", "Alice").failure();
    refused.mentions(&[
        "another hook on the server refused it, not mvault's rules; the server said:",
        "remote: Gitea: branch main is protected: pushes need a merge request",
        "remote: mvault: accepted",
        "[remote rejected] (pre-receive hook declined)",
    ]);
    assert_eq!(server_rev(&v, &server, "refs/heads/main"), before);
}

/// `--forge-hooks-dir DIR`: mvault's hook in GitLab's server-wide
/// `custom_hooks_dir`, which GitLab runs for every repository. It judges
/// the vault's pushes and lets a repository without a vault pass.
#[test]
fn server_gitlab_server_wide_hook_judges_the_vault_and_lets_other_repositories_pass() {
    let global = std::cell::RefCell::new(None);
    let (v, server) = forge_server(|server| {
        let dir = server.with_file_name("custom_hooks_dir");
        executable(
            &server.join("hooks/pre-receive"),
            &gitlab_dispatch(Some(&dir)),
        );
        *global.borrow_mut() = Some(dir);
    });
    let global = global.into_inner().expect("the global dir");
    let mut cmd = v.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.args(["hook", "install"])
        .arg(&server)
        .arg("--root-key")
        .arg(&v.admin.public)
        .arg("--forge-hooks-dir")
        .arg(&global);
    v.run(cmd)
        .success()
        .mentions(&["GitLab layout", "custom_hooks_dir/pre-receive.d/mvault"]);
    assert!(!server.join("custom_hooks").exists());
    let mut check = v.command(env!("CARGO_BIN_EXE_mvault"));
    check
        .args(["hook", "check"])
        .arg(&server)
        .arg("--forge-hooks-dir")
        .arg(&global);
    v.run(check)
        .success()
        .mentions(&["lets repositories without a vault pass"]);

    // The vault: mvault judges (an unknown name is refused, alice lands).
    let clone = v.git_clone(&server, "alice-clone");
    add_as(&v, &clone, "1.0.0", 75, "GL_USERNAME", "mallory")
        .failure()
        .mentions(&["mvault: refused refs/heads/main", "mallory"]);
    add_as(&v, &clone, "1.0.0", 75, "GL_USERNAME", "alice").success();
    assert_eq!(last_decision(&v, &server)["pusher"], "alice");

    // Another project of the same GitLab, no vault: the same hook runs and
    // lets a plain commit through.
    let other = v.bare_remote("other.git");
    executable(
        &other.join("hooks/pre-receive"),
        &gitlab_dispatch(Some(&global)),
    );
    let work = v.path("other-work");
    let mut init = v.command("git");
    init.args(["init", "-q", "-b", "main"]).arg(&work);
    v.run(init).success();
    write_file(&work.join("README"), b"not a vault\n");
    v.git_ok(&work, &["add", "README"]);
    v.git_ok(&work, &["commit", "-q", "-m", "readme"]);
    let mut push = v.git_command(&work, &["push", "-q", path_str(&other), "main"]);
    push.env("GL_USERNAME", "mallory");
    v.run(push).success();
    assert!(!other.join("mvault-decisions.jsonl").exists());
}

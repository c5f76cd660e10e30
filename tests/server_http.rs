//! The vault behind smart HTTP (`common::http`): stock `git http-backend`
//! behind Debian's nginx with basic authentication, the user nginx
//! authenticated reaching the hook and the fetch log as `REMOTE_USER`, the
//! client's address as `REMOTE_ADDR`. The server repository is made by a
//! plain `git init --bare` (HEAD on master); fetch logging is in the file
//! the web server gives git as `GIT_CONFIG_GLOBAL`.

use crate::common::served::*;
use crate::common::*;

#[test]
fn server_http_install_points_head_at_main_and_check_sees_fetch_logging() {
    let s = Served::http();
    let installed = s.install.stdout();
    assert!(
        installed.contains("HEAD: refs/heads/master -> refs/heads/main"),
        "{installed}"
    );
    let check = s
        .hook_check()
        .success()
        .mentions(&["HEAD points at refs/heads/main", "fetches are logged"]);
    assert!(!check.stdout().contains("FAIL"), "{}", check.stdout());

    // Without the web server's config file, this shell's git reads no
    // fetch hook: a warning, not a failure.
    let mut plain = s.command(env!("CARGO_BIN_EXE_mvault"));
    plain.args(["hook", "check"]).arg(&s.server);
    s.run(plain)
        .success()
        .mentions(&["warn fetches are not logged"]);

    let clone = s.clone_as(&s.bob, "plain-clone");
    assert_eq!(
        s.git_ok(&clone, &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );

    // nginx authenticates alice as `Alice` (htpasswd); the admin gives
    // alice that alias, and her fetch and push reach the policy as alice,
    // the logs keeping the server's name too.
    let admins = s.clone_as(&s.admin, "admin-clone");
    let mut alias = s.mvault_command(
        &admins,
        &s.admin,
        &["policy", "alias", "add", "alice", "Alice"],
    );
    s.connect_as(&mut alias, &s.admin);
    s.run(alias).success().mentions(&["pushed to origin"]);
    let Front::Http { http, name, .. } = &s.front else {
        unreachable!("an http world")
    };
    let alices = s.path("alice-as-Alice");
    s.git_as(
        &s.alice,
        s.root(),
        &["clone", "-q", &http.url("Alice", name), path_str(&alices)],
    )
    .success();
    let model = s.path("model");
    sample_model(&model, 20_000, 68);
    s.add_as(&s.alice, &s.alice, &alices, &model, "1.0.0", &[])
        .success();
    let decision = s.last_decision();
    assert_eq!(decision["pusher"], "alice", "{decision}");
    assert_eq!(decision["server_name"], "Alice", "{decision}");
    assert_eq!(decision["decision"], "accept", "{decision}");
    let fetches = s.server_log(&["--action", "fetch", "--actor", "alice"]);
    assert!(
        fetches.iter().any(|f| f["server_name"] == "Alice"),
        "{fetches:#?}"
    );
    let log = http.access_log();
    assert!(
        log.contains(" - Alice ["),
        "nginx authenticated no Alice:\n{log}"
    );
}

#[test]
fn server_http_allowed_add_lands_and_the_decision_names_remote_user() {
    allowed_add_lands(&Served::http());
}

#[test]
fn server_http_refused_push_shows_mvaults_line_and_moves_no_ref() {
    refused_push_shows_mvaults_line(&Served::http());
}

#[test]
fn server_http_pull_of_one_version_is_in_the_access_log_with_user_address_and_version() {
    pull_of_one_version_is_in_the_access_log(&Served::http());
}

#[test]
fn server_http_purge_deletes_exactly_the_archived_versions_payload_ref() {
    purge_deletes_one_payload_ref(&Served::http());
}

/// The web server, not the client, says who pushes: a wrong password gets
/// no further than nginx, and nothing reaches the hook.
#[test]
fn server_http_wrong_password_is_refused_before_git() {
    let s = Served::http();
    let Front::Http { http, name, .. } = &s.front else {
        unreachable!("an http world")
    };
    // bob's clone: one fetch in the log.
    s.clone_as(&s.bob, "bob-clone");
    let logged = s.server_log(&[]).len();
    let dest = s.path("nobody");
    let run = s
        .git_as(
            &s.alice,
            s.root(),
            &[
                "clone",
                "-q",
                &http.url_with_wrong_password("alice", name),
                path_str(&dest),
            ],
        )
        .failure();
    run.mentions_any(&["401", "authentication failed"]);
    assert_eq!(
        s.server_log(&[]).len(),
        logged,
        "a refused login reached git"
    );
    assert!(!dest.exists());
}

//! Progress: on a terminal, `add` and `pull` draw a bar with bytes and
//! rate; with stderr to a file, or with `--quiet`, they draw nothing. The
//! terminal is a real pseudo-terminal from util-linux's `script`.

use std::process::Command;

use crate::common::*;

/// `cmd` run under `script` in a pseudo-terminal: what the terminal showed
/// (stdout and stderr of `cmd` both go to it).
fn on_a_terminal(vault: &Vault, cmd: &Command) -> String {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_str().expect("utf-8 argument");
            assert!(!a.contains('\''), "argument {a:?} cannot be quoted");
            format!("'{a}'")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = vault.command("script");
    // A terminal that can move the cursor (with TERM unset or "dumb",
    // nothing is drawn).
    script
        .env("TERM", "xterm")
        .args(["-q", "-f", "-e", "-c", &line, "/dev/null"]);
    let run = vault.run(script);
    assert!(
        run.status.success(),
        "`script` (util-linux; apt-get install bsdutils) failed: {}\n{}",
        run.what,
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

/// A drawn bar names the step and shows bytes done of the total and a rate.
fn assert_drawn(screen: &str, step: &str) {
    assert!(
        screen.contains(step),
        "no {step:?} step on the terminal:\n{screen}"
    );
    assert!(
        screen.contains("/64.00 MiB"),
        "no byte count of the 64 MiB on the terminal:\n{screen}"
    );
    assert!(
        screen.contains("MiB/s"),
        "no rate on the terminal:\n{screen}"
    );
}

#[test]
fn add_and_pull_draw_progress_on_a_terminal_and_nothing_into_a_file() {
    let vault = Vault::new();
    let model = vault.path("model");
    write_pseudo_random(&model.join("weights.bin"), 64 * MIB, 7);
    let dir = model.to_str().expect("utf-8 path");

    // On a terminal: a bar with bytes and rate, then the usual summary.
    let add = vault.mvault_command(
        &vault.repo,
        &vault.alice,
        &["add", dir, "--model", "nlp/bert", "--version", "1.0.0"],
    );
    let screen = on_a_terminal(&vault, &add);
    assert_drawn(&screen, "encrypting weights.bin");
    assert!(screen.contains("registered nlp/bert@1.0.0"), "{screen}");
    let out = vault.path("out-tty");
    let pull = vault.mvault_command(
        &vault.repo,
        &vault.alice,
        &["pull", "nlp/bert@1.0.0", "-o", out.to_str().unwrap()],
    );
    let screen = on_a_terminal(&vault, &pull);
    assert_drawn(&screen, "decrypting weights.bin");
    assert_same_file(&model.join("weights.bin"), &out.join("weights.bin"));

    // stderr to a file (here a pipe): not one progress line.
    let add = vault
        .add(&model, "nlp/bert", "1.0.1", &["--parent", "1.0.0"])
        .success();
    let out = vault.path("out-file");
    let pull = vault
        .pull_in(&vault.repo, &vault.alice, "nlp/bert@1.0.1", &out)
        .success();
    for run in [&add, &pull] {
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            !err.contains("MiB") && !err.contains("crypting"),
            "progress on a stderr that is no terminal:\n{err}"
        );
    }

    // --quiet on a terminal: the summary, no bar.
    let quiet = vault.mvault_command(
        &vault.repo,
        &vault.alice,
        &["--quiet", "verify", "nlp/bert@1.0.1"],
    );
    let screen = on_a_terminal(&vault, &quiet);
    assert!(screen.contains("verified nlp/bert@1.0.1"), "{screen}");
    assert!(
        !screen.contains("MiB/s"),
        "--quiet drew progress:\n{screen}"
    );
    // And -v, with stderr no terminal: one line per step and file.
    let told = vault
        .mvault(
            &vault.repo,
            &vault.alice,
            &["-v", "verify", "nlp/bert@1.0.1"],
        )
        .success();
    let err = String::from_utf8_lossy(&told.stderr);
    assert!(err.contains("mvault: verifying weights.bin"), "{err}");
    assert!(
        err.contains("mvault: verifying done: 64.00 MiB in"),
        "{err}"
    );
}

//! Shell completions and man pages, generated from the same clap
//! definitions as the parser and `--help` (`mvault completions SHELL`,
//! `mvault man DIR`). The bash script is loaded into a real bash and driven
//! the way bash-completion drives it; the man pages are checked against the
//! commands `--help` lists, so a new command without a page fails here.

use std::path::Path;

use crate::common::*;

fn mvault_run(env: &TestEnv, args: &[&str]) -> Run {
    let mut cmd = env.command(env!("CARGO_BIN_EXE_mvault"));
    cmd.args(args);
    env.run(cmd)
}

/// The candidates bash's completion of mvault offers for the command line
/// `words`, the last word being the one completed: the script is sourced,
/// COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT are set, and the
/// function `complete -p mvault` names is called as bash calls it (command,
/// current word, previous word); COMPREPLY holds the answer.
fn bash_complete(env: &TestEnv, script: &Path, words: &[&str]) -> Vec<String> {
    let bash = require_program("bash", "bash");
    const DRIVER: &str = r#"
source "$1" || exit 10
shift
spec=$(complete -p mvault) || { echo "the script registers no completion for mvault" >&2; exit 11; }
fn=${spec##*-F }
fn=${fn%% *}
declare -F "$fn" >/dev/null || { echo "no function $fn: $spec" >&2; exit 12; }
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let mut cmd = env.command(bash);
    cmd.args(["--norc", "--noprofile", "-c", DRIVER, "bash"])
        .arg(script)
        .args(words);
    env.run(cmd)
        .success()
        .stdout()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_completes_pro_to_promote() {
    let env = TestEnv::new();
    let script = env.path("mvault.bash");
    write_file(
        &script,
        &mvault_run(&env, &["completions", "bash"]).success().stdout,
    );
    assert_eq!(
        bash_complete(&env, &script, &["mvault", "pro"]),
        ["promote"]
    );
    assert_eq!(
        bash_complete(&env, &script, &["mvault", "policy", "gr"]),
        ["grant"]
    );
    // Values clap knows are offered too: stages and log actions.
    assert_eq!(
        bash_complete(
            &env,
            &script,
            &["mvault", "promote", "nlp/bert@1.0.0", "--to", "prod"]
        ),
        ["production"]
    );
    assert_eq!(
        bash_complete(&env, &script, &["mvault", "log", "--action", "key-r"]),
        ["key-rewrap", "key-rotation"]
    );
}

#[test]
fn zsh_and_fish_completions_are_generated() {
    let env = TestEnv::new();
    let zsh = mvault_run(&env, &["completions", "zsh"]).success().stdout();
    assert!(zsh.starts_with("#compdef mvault\n"), "{zsh}");
    assert!(zsh.contains("_mvault"), "{zsh}");
    for word in ["promote", "production", "key-rotation"] {
        assert!(zsh.contains(word), "zsh script lacks {word}");
    }
    let fish = mvault_run(&env, &["completions", "fish"])
        .success()
        .stdout();
    assert!(
        fish.lines()
            .filter(|l| l.starts_with("complete -c mvault "))
            .count()
            > 100,
        "{fish}"
    );
    assert!(fish.contains("-a \"promote\""), "{fish}");
    assert!(fish.contains("production"), "{fish}");
    // A shell mvault does not know is refused with the list.
    mvault_run(&env, &["completions", "tcsh"])
        .failure()
        .mentions(&["possible values", "bash", "zsh", "fish"]);
}

/// The commands `mvault ARGS… --help` lists (its "Commands:" section),
/// without `help`.
fn listed_commands(env: &TestEnv, args: &[&str]) -> Vec<String> {
    let mut with_help = args.to_vec();
    with_help.push("--help");
    let help = mvault_run(env, &with_help).success().stdout();
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// `mvault` and every command and subcommand under it, as
/// (the words that run it, the man page's name).
fn all_commands(env: &TestEnv) -> Vec<(Vec<String>, String)> {
    let mut out = vec![(Vec::new(), "mvault".to_owned())];
    let mut i = 0;
    while i < out.len() {
        let (words, name) = out[i].clone();
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        for sub in listed_commands(env, &args) {
            let mut sub_words = words.clone();
            sub_words.push(sub.clone());
            out.push((sub_words, format!("{name}-{sub}")));
        }
        i += 1;
    }
    out
}

#[test]
fn man_writes_a_page_for_every_command_and_subcommand() {
    let env = TestEnv::new();
    let dir = env.path("share/man/man1");
    let run = mvault_run(&env, &["man", path_str(&dir)]).success();
    let commands = all_commands(&env);
    // Not only the top level: subcommands of subcommands too.
    for expected in [
        "mvault-promote",
        "mvault-policy-grant",
        "mvault-audit-verify",
    ] {
        assert!(
            commands.iter().any(|(_, name)| name == expected),
            "{expected} is not among {commands:?}"
        );
    }
    let mut written: Vec<String> = run.stdout().lines().map(str::to_owned).collect();
    written.sort();
    let mut expected: Vec<String> = commands
        .iter()
        .map(|(_, name)| path_str(&dir.join(format!("{name}.1"))).to_owned())
        .collect();
    expected.sort();
    assert_eq!(written, expected, "the pages listed are one per command");
    assert_eq!(
        list_files(&dir).len(),
        commands.len(),
        "{:?}",
        list_files(&dir)
    );
    for (words, name) in &commands {
        let page = std::fs::read_to_string(dir.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        // A man page: after the string definitions roff output opens with
        // (.ie/.el), the first request is the title, then NAME names it.
        let requests: Vec<&str> = page
            .lines()
            .filter(|l| l.starts_with('.') && !l.starts_with(".ie") && !l.starts_with(".el"))
            .collect();
        assert!(
            requests
                .first()
                .is_some_and(|l| l.starts_with(&format!(".TH {name} 1 "))),
            "{name}.1 does not start with its .TH title:\n{page}"
        );
        assert_eq!(requests.get(1).copied(), Some(".SH NAME"), "{name}.1");
        assert!(
            page.contains(&name.replace('-', "\\-")),
            "{name}.1 does not name {name}"
        );
        // Its synopsis is the command line that runs it.
        let synopsis = std::iter::once("mvault".to_owned())
            .chain(words.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
            .replace('-', "\\-");
        assert!(
            page.contains(&format!("\\fB{synopsis}\\fR")),
            "{name}.1 has no synopsis `{synopsis}`:\n{page}"
        );
    }
    // The help text is the clap doc comments': the promote page lists the stages.
    let promote = std::fs::read_to_string(dir.join("mvault-promote.1")).expect("promote page");
    assert!(promote.contains("production"), "{promote}");
}

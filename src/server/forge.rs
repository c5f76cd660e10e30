//! Forges that own a repository's hooks, and how mvault's hook joins
//! their chain instead of replacing it.
//!
//! - **plain**: a bare repository whose `hooks/pre-receive` is mvault's.
//! - **gitolite**: gitolite's repo-specific hooks (see `install.rs`).
//! - **GitLab**: Gitaly runs GitLab's own checks, then the repository's
//!   `custom_hooks/pre-receive`, then every executable file of
//!   `custom_hooks/pre-receive.d/` in sorted order, then those of the
//!   server-wide `custom_hooks_dir/pre-receive.d/`; each gets git's input
//!   on stdin, and the first that exits non-zero refuses the push. Files
//!   ending in `~` (editor backups) are skipped. mvault adds
//!   `pre-receive.d/mvault`.
//! - **Gitea / Forgejo**: the repository's `hooks/pre-receive` is a script
//!   Gitea generates, which runs every executable regular file of
//!   `hooks/pre-receive.d/` (Gitea's own is `gitea`) with git's input, all
//!   of them, and exits with the first non-zero status. mvault adds
//!   `hooks/pre-receive.d/mvault`; Gitea regenerates only its own files.
//!
//! In the two forge layouts nothing of the forge is overwritten: mvault's
//! shim is one more file in the forge's directory.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::config::ROOT_KEY_CONFIG;
use super::install::{CheckItem, CheckStatus, GITOLITE_MARKER};

/// The name of mvault's file in a forge's `pre-receive.d`.
pub const CHAINED_HOOK_NAME: &str = "mvault";

/// Who runs a repository's hooks, as `--layout` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// A plain bare repository.
    Plain,
    /// A gitolite repository (it has `gl-conf`).
    Gitolite,
    /// A GitLab (Gitaly) repository: `custom_hooks/pre-receive.d`.
    Gitlab,
    /// A Gitea or Forgejo repository: `hooks/pre-receive.d`.
    Gitea,
}

impl Layout {
    /// The name `--layout` and the output use.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Plain => "plain",
            Layout::Gitolite => "gitolite",
            Layout::Gitlab => "gitlab",
            Layout::Gitea => "gitea",
        }
    }

    /// The layout a repository shows: gitolite's `gl-conf`; GitLab's
    /// `custom_hooks` directory or the `gitlab.fullpath` it sets in a
    /// repository's config; Gitea's generated `hooks/pre-receive` that
    /// runs `hooks/pre-receive.d` (or Gitea's own file there); else plain.
    pub fn detect(git_dir: &Path, config: impl Fn(&str) -> Option<String>) -> Layout {
        if git_dir.join(GITOLITE_MARKER).is_file() {
            Layout::Gitolite
        } else if git_dir.join("custom_hooks").is_dir() || config("gitlab.fullpath").is_some() {
            Layout::Gitlab
        } else if gitea_dispatcher(git_dir) || git_dir.join("hooks/pre-receive.d/gitea").is_file() {
            Layout::Gitea
        } else {
            Layout::Plain
        }
    }
}

/// What keeps a forge layout from taking mvault's hook.
#[derive(Debug, thiserror::Error)]
pub enum ForgeProblem {
    /// `--layout` names another layout than the repository shows, and
    /// installing as asked would put the hook where nothing runs it or
    /// where the forge replaces it.
    #[error("--layout {asked} was given, but the repository is a {found} repository ({why})")]
    Mismatch {
        asked: &'static str,
        found: &'static str,
        why: &'static str,
    },
    /// `--layout gitea` on a repository whose `hooks/pre-receive` does not
    /// run `hooks/pre-receive.d`.
    #[error("hooks/pre-receive is not Gitea's dispatcher (a script that runs every file in hooks/pre-receive.d)")]
    NoGiteaDispatcher,
    /// `--forge-hooks-dir` given for a layout that has no server-wide
    /// hook directory.
    #[error("--forge-hooks-dir is GitLab's custom_hooks_dir; the {0} layout has none")]
    HooksDirNotForLayout(&'static str),
}

/// Where a forge layout runs mvault's file from.
#[derive(Debug, Clone)]
pub struct Chain {
    pub layout: Layout,
    /// The directory the forge runs every file of (`…/pre-receive.d`).
    pub dir: PathBuf,
    /// Whether the directory serves every repository of the server
    /// (GitLab's `custom_hooks_dir`): then mvault's shim lets a repository
    /// without a pinned root key pass, as it holds no vault.
    pub server_wide: bool,
}

impl Chain {
    /// The chain of a GitLab or Gitea repository; `None` for the layouts
    /// whose hook is not one file among the forge's.
    pub fn of(
        git_dir: &Path,
        layout: Layout,
        forge_hooks_dir: Option<&Path>,
    ) -> Result<Option<Chain>, ForgeProblem> {
        match (layout, forge_hooks_dir) {
            (Layout::Gitlab, Some(global)) => Ok(Some(Chain {
                layout,
                dir: global.join("pre-receive.d"),
                server_wide: true,
            })),
            (Layout::Gitlab, None) => Ok(Some(Chain {
                layout,
                dir: git_dir.join("custom_hooks/pre-receive.d"),
                server_wide: false,
            })),
            (other, Some(_)) => Err(ForgeProblem::HooksDirNotForLayout(other.as_str())),
            (Layout::Gitea, None) => Ok(Some(Chain {
                layout,
                dir: git_dir.join("hooks/pre-receive.d"),
                server_wide: false,
            })),
            (Layout::Plain | Layout::Gitolite, None) => Ok(None),
        }
    }

    /// mvault's file in the chain.
    pub fn hook(&self) -> PathBuf {
        self.dir.join(CHAINED_HOOK_NAME)
    }
}

/// The layout asked for: `--layout`, else GitLab's when a server-wide
/// hook directory (GitLab's `custom_hooks_dir`) is given.
pub fn asked(layout: Option<Layout>, forge_hooks_dir: Option<&Path>) -> Option<Layout> {
    layout.or(forge_hooks_dir.map(|_| Layout::Gitlab))
}

/// Check `asked` against what the repository shows; the layout to use.
pub fn choose(
    git_dir: &Path,
    asked: Option<Layout>,
    detected: Layout,
) -> Result<Layout, ForgeProblem> {
    let Some(asked) = asked else {
        return Ok(detected);
    };
    let mismatch = |why| ForgeProblem::Mismatch {
        asked: asked.as_str(),
        found: detected.as_str(),
        why,
    };
    match (asked, detected) {
        (a, d) if a == d => Ok(a),
        (_, Layout::Gitolite) => Err(mismatch("it has gl-conf; gitolite rewrites its hooks")),
        (Layout::Gitolite, _) => Err(mismatch("it has no gl-conf")),
        (Layout::Gitea, _) if !gitea_dispatcher(git_dir) => Err(ForgeProblem::NoGiteaDispatcher),
        (Layout::Plain, Layout::Gitea) => Err(mismatch(
            "its hooks/pre-receive is Gitea's dispatcher, which Gitea regenerates",
        )),
        // GitLab's marks may be missing on a fresh repository, and a plain
        // layout on a GitLab repository is the admin's call.
        (a, _) => Ok(a),
    }
}

/// Whether `hooks/pre-receive` runs every file of `hooks/pre-receive.d`,
/// as the script Gitea and Forgejo generate does.
fn gitea_dispatcher(git_dir: &Path) -> bool {
    std::fs::read_to_string(git_dir.join("hooks/pre-receive")).is_ok_and(|t| {
        t.contains("${hookname}.d")
            || t.replace("custom_hooks/", "")
                .contains("hooks/pre-receive.d")
    })
}

/// The shim for a server-wide directory: a repository with no pinned root
/// key holds no vault and passes; one that cannot be asked is refused.
pub fn server_wide_shim(repo_shim: &str) -> String {
    let guard = format!(
        "# This directory serves every repository: one without a pinned root key\n\
         # ({ROOT_KEY_CONFIG}) holds no vault and passes; if git cannot say, refuse.\n\
         git config --get-all {ROOT_KEY_CONFIG} >/dev/null 2>&1\n\
         case $? in\n  0) ;;\n  1) exit 0 ;;\n  *) echo 'mvault: refused: cannot read the repository config ({ROOT_KEY_CONFIG})'; exit 1 ;;\nesac\n"
    );
    match repo_shim.find("MVAULT_BIN=") {
        Some(i) => format!("{}{guard}{}", &repo_shim[..i], &repo_shim[i..]),
        None => format!("{repo_shim}{guard}"),
    }
}

/// What `hook check` finds about a forge chain: mvault's file is there,
/// regular, executable and reached by the forge's dispatch. Returns the
/// file for the checks every layout shares.
pub fn check_chain(
    git_dir: &Path,
    chain: &Chain,
    runs_mvault: impl Fn(&Path) -> bool,
) -> (Vec<CheckItem>, PathBuf) {
    let mut items = Vec::new();
    let mut item = |ok: bool, what: String| {
        items.push(CheckItem {
            status: if ok {
                CheckStatus::Ok
            } else {
                CheckStatus::Fail
            },
            what,
        })
    };
    let hook = chain.hook();
    let forge = match chain.layout {
        Layout::Gitlab => "GitLab",
        _ => "Gitea",
    };
    item(
        true,
        format!(
            "layout {}: mvault's hook is chained in {}",
            chain.layout.as_str(),
            chain.dir.display()
        ),
    );
    let regular = std::fs::symlink_metadata(&hook).is_ok_and(|m| m.is_file());
    item(
        regular && runs_mvault(&hook),
        format!("{} runs mvault hook pre-receive", hook.display()),
    );
    if chain.layout == Layout::Gitea {
        // Gitea's script skips what is not an executable regular file.
        let dispatcher = git_dir.join("hooks/pre-receive");
        item(
            gitea_dispatcher(git_dir) && executable(&dispatcher),
            format!(
                "{} is Gitea's dispatcher and runs every file in hooks/pre-receive.d",
                dispatcher.display()
            ),
        );
    }
    // GitLab runs the executable files of the directory in sorted order
    // and skips editor backups; a directory that is no directory runs
    // nothing.
    item(
        chain.dir.is_dir() && regular && executable(&hook),
        format!("{forge} reaches it: an executable regular file in its pre-receive.d"),
    );
    if chain.server_wide {
        let shim = std::fs::read_to_string(&hook).unwrap_or_default();
        item(
            shim.contains(&format!("--get-all {ROOT_KEY_CONFIG}")),
            format!(
                "{} lets repositories without a vault pass (server-wide directory)",
                hook.display()
            ),
        );
    }
    (items, hook)
}

/// Whether `path` is executable.
pub fn executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        dir
    }

    #[test]
    fn layouts_are_told_by_their_marks() {
        let none = |_: &str| None;
        let plain = repo(&[("hooks/pre-receive.sample", "")]);
        assert_eq!(Layout::detect(plain.path(), none), Layout::Plain);
        let gl = repo(&[("gl-conf", "")]);
        assert_eq!(Layout::detect(gl.path(), none), Layout::Gitolite);
        let gitea = repo(&[(
            "hooks/pre-receive",
            "#!/usr/bin/env bash\nfor hook in ${GIT_DIR}/hooks/${hookname}.d/*; do :; done\n",
        )]);
        assert_eq!(Layout::detect(gitea.path(), none), Layout::Gitea);
        let gitlab = repo(&[("custom_hooks/pre-receive.d/.keep", "")]);
        assert_eq!(Layout::detect(gitlab.path(), none), Layout::Gitlab);
        let fullpath = |k: &str| (k == "gitlab.fullpath").then(|| "group/vault".to_owned());
        assert_eq!(Layout::detect(plain.path(), fullpath), Layout::Gitlab);
    }

    #[test]
    fn an_asked_layout_that_the_repository_contradicts_is_refused() {
        let gitea = repo(&[(
            "hooks/pre-receive",
            "for h in hooks/pre-receive.d/*; do :; done\n",
        )]);
        assert!(choose(gitea.path(), Some(Layout::Plain), Layout::Gitea).is_err());
        assert!(choose(gitea.path(), Some(Layout::Gitolite), Layout::Gitea).is_err());
        let plain = repo(&[]);
        assert!(matches!(
            choose(plain.path(), Some(Layout::Gitea), Layout::Plain),
            Err(ForgeProblem::NoGiteaDispatcher)
        ));
        assert_eq!(
            choose(plain.path(), Some(Layout::Gitlab), Layout::Plain).ok(),
            Some(Layout::Gitlab)
        );
        assert_eq!(
            choose(plain.path(), None, Layout::Plain).ok(),
            Some(Layout::Plain)
        );
    }

    #[test]
    fn the_server_wide_shim_passes_repositories_without_a_vault_and_fails_closed() {
        let shim = server_wide_shim(
            "#!/bin/sh\n# c\nMVAULT_BIN='/x'\nexec \"$MVAULT_BIN\" hook pre-receive\n",
        );
        let guard = shim.find("--get-all mvault.rootKey").expect("guard");
        assert!(guard < shim.find("exec ").expect("exec"), "{shim}");
        assert!(
            shim.contains("  1) exit 0 ;;") && shim.contains("  *) echo"),
            "{shim}"
        );
    }
}

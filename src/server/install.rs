//! Installing the hook into a server repository, checking an
//! installation, and the client's pre-push shim.

use std::path::{Path, PathBuf};

use serde::Serialize;

use ssh_key::PublicKey;

use super::config::{ServerConfig, LOCAL_USER_CONFIG, ROOT_KEY_CONFIG};
use crate::crypto;
use crate::store::Store;

/// The shim `mvault hook install` writes as `hooks/pre-receive`.
pub fn shim(mvault_bin: &Path) -> String {
    let template = include_str!("../../hooks/pre-receive");
    template.replace(
        "@MVAULT_BIN@",
        &mvault_bin.display().to_string().replace('\'', "'\\''"),
    )
}

/// The git settings the hook relies on, set by `mvault hook install`.
pub const SERVER_CONFIG: &[(&str, &str)] = &[
    ("receive.denyNonFastForwards", "true"),
    // Branches only (git's own rule); payload refs are the hook's to judge.
    ("receive.denyDeletes", "true"),
    ("receive.unpackLimit", "1"),
    ("core.looseCompression", "0"),
    ("pack.compression", "0"),
    ("core.bigFileThreshold", "1048576"),
    ("core.packedGitWindowSize", "16777216"),
    ("core.packedGitLimit", "67108864"),
    ("uploadpack.allowFilter", "true"),
    // git's own object checks on every push, behind the hook's: malformed
    // trees and names are refused before the hook even runs.
    ("receive.fsckObjects", "true"),
];

/// The attributes a bare repository reads from `info/attributes`.
pub const SERVER_ATTRIBUTES: &str =
    ".mvault/keys/** binary -delta\n????????????????????????????????????????????????????????????????  binary -delta\n";

/// What `hook install` did or `hook check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckItem {
    pub ok: bool,
    pub what: String,
}

/// Install the hook into a bare repository.
pub fn install(
    repo: &Path,
    root_keys: &[PublicKey],
    mvault_bin: &Path,
    local_user: Option<&str>,
) -> Result<Vec<CheckItem>, String> {
    let store = Store::open(repo).map_err(|e| e.to_string())?;
    let git_dir = store.git_dir().to_owned();
    if store.work_dir().is_some() {
        return Err(format!(
            "{} has a work tree; install the hook in the server's bare repository",
            repo.display()
        ));
    }
    if root_keys.is_empty() {
        return Err("give at least one --root-key".into());
    }
    let git = |args: &[&str]| store.git(args).map_err(|e| e.to_string());
    let _ = git(&["config", "--unset-all", ROOT_KEY_CONFIG]);
    for k in root_keys {
        git(&[
            "config",
            "--add",
            ROOT_KEY_CONFIG,
            &crypto::public_key_line(k),
        ])?;
    }
    if let Some(u) = local_user {
        git(&["config", LOCAL_USER_CONFIG, u])?;
    }
    for (k, v) in SERVER_CONFIG {
        git(&["config", k, v])?;
    }
    let info = git_dir.join("info");
    std::fs::create_dir_all(&info).map_err(|e| e.to_string())?;
    std::fs::write(info.join("attributes"), SERVER_ATTRIBUTES).map_err(|e| e.to_string())?;
    let hooks = git_dir.join("hooks");
    std::fs::create_dir_all(&hooks).map_err(|e| e.to_string())?;
    let hook = hooks.join("pre-receive");
    let tmp = hooks.join(".pre-receive.mvault-tmp");
    std::fs::write(&tmp, shim(mvault_bin)).map_err(|e| e.to_string())?;
    set_executable(&tmp).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &hook).map_err(|e| e.to_string())?;
    Ok(check(repo))
}

#[cfg(unix)]
fn set_executable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Check that a server repository is installed correctly.
pub fn check(repo: &Path) -> Vec<CheckItem> {
    let mut out = Vec::new();
    let mut item = |ok: bool, what: String| out.push(CheckItem { ok, what });
    let store = match Store::open(repo) {
        Ok(s) => s,
        Err(e) => {
            item(false, e.to_string());
            return out;
        }
    };
    item(store.work_dir().is_none(), "the repository is bare".into());
    let hook = store.git_dir().join("hooks/pre-receive");
    let text = std::fs::read_to_string(&hook).unwrap_or_default();
    item(
        text.contains("hook pre-receive"),
        format!("{} runs mvault hook pre-receive", hook.display()),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let exec = std::fs::metadata(&hook)
            .map(|m| m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        item(exec, "the hook is executable".into());
    }
    let bin = text.lines().find_map(|l| {
        l.strip_prefix("MVAULT_BIN='")
            .and_then(|r| r.strip_suffix('\''))
    });
    item(
        bin.is_some_and(|b| Path::new(b).exists()),
        format!(
            "the mvault binary the hook runs exists ({})",
            bin.unwrap_or("?")
        ),
    );
    match ServerConfig::read(&store) {
        Ok(cfg) => item(
            !cfg.root_keys.is_empty(),
            format!(
                "{} root key(s) pinned in the server config",
                cfg.root_keys.len()
            ),
        ),
        Err(e) => item(false, e),
    }
    for (k, v) in SERVER_CONFIG {
        let got = store.config_string(k);
        item(
            got.as_deref() == Some(*v),
            format!(
                "{k} = {v} (found {})",
                got.unwrap_or_else(|| "unset".into())
            ),
        );
    }
    let attrs =
        std::fs::read_to_string(store.git_dir().join("info/attributes")).unwrap_or_default();
    item(
        attrs.contains("-delta"),
        "info/attributes keeps blobs out of delta search".into(),
    );
    out
}

/// The client-side pre-push shim `mvault hook install-pre-push` writes.
pub fn pre_push_shim(mvault_bin: &Path) -> String {
    format!(
        "#!/bin/sh\n# mvault pre-push check, installed by `mvault hook install-pre-push`:\n# runs the server's rules locally so a refusal is known before pushing.\nexec '{}' hook pre-push \"$@\"\n",
        mvault_bin.display().to_string().replace('\'', "'\\''")
    )
}

/// Install the pre-push shim into a clone's hooks directory.
pub fn install_pre_push(store: &Store, mvault_bin: &Path) -> std::io::Result<PathBuf> {
    let hooks = store.git_dir().join("hooks");
    std::fs::create_dir_all(&hooks)?;
    let path = hooks.join("pre-push");
    std::fs::write(&path, pre_push_shim(mvault_bin))?;
    set_executable(&path)?;
    Ok(path)
}

//! What every command is handed besides its own arguments: the global
//! options (`--key`, `-C`, `--quiet`, `-v`) and the clock, read once, and
//! the two things most commands need from them: the user's key and the
//! vault.

use std::path::{Path, PathBuf};

use mvault::crypto::SshIdentity;
use mvault::vault::{Vault, VaultError};

use super::error::CliError;
use super::progress::Feedback;

/// The shared context of one run.
pub(super) struct Ctx {
    /// `--key`, if given.
    key: Option<PathBuf>,
    /// `-C DIR`, else `.`: relative paths in arguments are taken from here.
    pub(super) dir: PathBuf,
    /// The time of this run.
    pub(super) now: time::OffsetDateTime,
    /// Progress on the terminal, per `--quiet` and `-v`.
    pub(super) progress: Feedback,
}

impl Ctx {
    pub(super) fn new(
        key: Option<PathBuf>,
        dir: Option<PathBuf>,
        quiet: bool,
        verbose: u8,
    ) -> Self {
        Ctx {
            key,
            dir: dir.unwrap_or_else(|| PathBuf::from(".")),
            now: mvault::vault::now(),
            progress: Feedback::new(quiet, verbose),
        }
    }

    /// A path from the command line, as if mvault had started in `-C DIR`
    /// (an absolute path stays as it is).
    pub(super) fn path(&self, p: &Path) -> PathBuf {
        self.dir.join(p)
    }

    /// The vault in `-C DIR`.
    pub(super) fn vault(&self) -> Result<Vault, CliError> {
        Ok(Vault::open(&self.dir)?)
    }

    /// The user's key: `--key`, else the usual lookup ([`load_identity`]).
    pub(super) fn identity(&self) -> Result<SshIdentity, CliError> {
        load_identity(self.key.as_deref(), &self.dir)
    }
}

/// Find the user's key: `key`, $MVAULT_KEY, git's user.signingkey,
/// ~/.ssh/id_ed25519.
pub(super) fn load_identity(key: Option<&Path>, dir: &Path) -> Result<SshIdentity, CliError> {
    let pass = std::env::var("MVAULT_PASSPHRASE").ok();
    let path = if let Some(k) = key {
        k.to_owned()
    } else if let Some(k) = std::env::var_os("MVAULT_KEY").filter(|k| !k.is_empty()) {
        PathBuf::from(k)
    } else if let Some(k) = git_signing_key(dir)? {
        k
    } else {
        let home = std::env::var_os("HOME").ok_or_else(|| {
            CliError::user("no key: pass --key or set MVAULT_KEY (HOME is not set)")
        })?;
        let p = Path::new(&home).join(".ssh/id_ed25519");
        if !p.exists() {
            return Err(
                CliError::user(format!("no key: {} does not exist", p.display())).hint(
                    "pass --key PATH, set MVAULT_KEY, or create one with ssh-keygen -t ed25519",
                ),
            );
        }
        p
    };
    SshIdentity::open(&path, pass.as_deref()).map_err(|e| CliError::from(VaultError::from(e)))
}

/// git's `user.signingkey` in `dir`, as the private key file it names.
fn git_signing_key(dir: &Path) -> Result<Option<PathBuf>, CliError> {
    let Ok(out) = std::process::Command::new("git")
        .args(["config", "--get", "user.signingkey"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return Ok(None);
    };
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if v.is_empty() {
        return Ok(None);
    }
    if v.starts_with("key::") || v.starts_with("ssh-") {
        return Err(CliError::user(
            "git's user.signingkey holds a public key literal; mvault needs the private key file",
        )
        .hint("pass --key PATH or set MVAULT_KEY"));
    }
    let expanded = match v.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(rest),
        None => PathBuf::from(&v),
    };
    let private = match expanded.to_str().and_then(|s| s.strip_suffix(".pub")) {
        Some(p) => PathBuf::from(p),
        None => expanded,
    };
    Ok(Some(private))
}

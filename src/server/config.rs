//! The server's own settings for the hook, from the bare repository's git
//! config (outside the tree, out of a push's reach), and who is pushing or
//! fetching, from where.

use crate::crypto;
use crate::model::policy::Policy;
use crate::rules::context::{RootKeys, DEFAULT_SKEW_SECONDS};
use crate::store::Store;
use ssh_key::PublicKey;

/// git config key holding a pinned root admin key (multi-valued).
pub const ROOT_KEY_CONFIG: &str = "mvault.rootKey";
/// git config key naming a trusted local user, used when no server variable
/// names the pusher (local pushes on the server itself).
pub const LOCAL_USER_CONFIG: &str = "mvault.localUser";
/// git config key: how many seconds a date may run ahead of the server's clock.
pub const CLOCK_SKEW_CONFIG: &str = "mvault.clockSkew";

/// The environment variables that carry the pusher's identity, first found
/// wins: sshd's forced command, gitolite, GitLab, Gitea/Forgejo, GitHub
/// Enterprise, and HTTP servers. Push options never set identity.
pub const IDENTITY_VARS: &[&str] = &[
    "MVAULT_USER",
    "GL_USER",
    "GL_USERNAME",
    "GITEA_PUSHER_NAME",
    "GITHUB_USER_LOGIN",
    "REMOTE_USER",
];

/// The server's own settings for the hook, from the repository's config.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    pub root_keys: Vec<PublicKey>,
    pub local_user: Option<String>,
    /// Seconds a date may run ahead of the server's clock.
    pub skew: i64,
}

impl ServerConfig {
    /// Read the pinned settings from the repository's config.
    pub fn read(store: &Store) -> Result<Self, String> {
        let mut root_keys = Vec::new();
        for text in store.config_strings(ROOT_KEY_CONFIG) {
            root_keys.push(
                crypto::parse_public_key(&text).map_err(|e| format!("{ROOT_KEY_CONFIG}: {e}"))?,
            );
        }
        let local_user = store
            .config_string(LOCAL_USER_CONFIG)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let skew = match store.config_string(CLOCK_SKEW_CONFIG) {
            None => DEFAULT_SKEW_SECONDS,
            Some(s) => s
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=86_400).contains(n))
                .ok_or_else(|| {
                    format!("{CLOCK_SKEW_CONFIG}: {s:?} is not a number of seconds from 0 to 86400")
                })?,
        };
        Ok(ServerConfig {
            root_keys,
            local_user,
            skew,
        })
    }

    /// The pinned root keys.
    pub fn roots(&self) -> RootKeys {
        RootKeys::from_keys(&self.root_keys)
    }
}

/// Who is pushing, from the server's environment.
pub fn pusher_from_env(get: impl Fn(&str) -> Option<String>, cfg: &ServerConfig) -> Option<String> {
    for var in IDENTITY_VARS {
        if let Some(v) = get(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
        {
            return Some(v);
        }
    }
    cfg.local_user.clone()
}

/// Who the server says is pushing or fetching, and the policy user that
/// name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The name as the server gave it (`Alice`, `alice@corp.example`).
    pub server_name: String,
    /// The policy user: the user of that name, or the user with that
    /// alias; the server's name unchanged when the policy knows neither
    /// (every rule then refuses it as unknown).
    pub user: String,
}

impl ServerIdentity {
    /// Map `server_name` through the aliases of `policy`, the policy in
    /// force (on `main` before the push). Without a policy (a first push
    /// into an empty repository), the name stays as it is.
    pub fn resolve(server_name: String, policy: Option<&Policy>) -> Self {
        let user = policy
            .and_then(|p| p.user_for_server_name(&server_name))
            .unwrap_or(&server_name)
            .to_owned();
        ServerIdentity { server_name, user }
    }
}

/// The policy in force on the repository's `main`, for mapping a server's
/// name to a policy user; `None` without `main` or a readable policy.
pub fn policy_on_main(store: &Store) -> Option<Policy> {
    let tip = store.main_tip().ok().flatten()?;
    crate::rules::source::policy_at(store, tip).ok()
}

/// Where the client connects from, as the server saw it: the first field
/// of sshd's `SSH_CLIENT` (`ADDRESS PORT PORT`, which gitolite passes
/// through), else `REMOTE_ADDR` from a web server (CGI). `None` for a local
/// fetch by path.
pub fn client_address_from_env(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let ssh = get("SSH_CLIENT").and_then(|v| v.split_whitespace().next().map(str::to_owned));
    ssh.or_else(|| {
        get("REMOTE_ADDR")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn gitolite_and_http_servers_name_the_user() {
        let cfg = ServerConfig::default();
        assert_eq!(
            pusher_from_env(env(&[("GL_USER", "alice")]), &cfg).as_deref(),
            Some("alice")
        );
        assert_eq!(
            pusher_from_env(env(&[("REMOTE_USER", "bob")]), &cfg).as_deref(),
            Some("bob")
        );
        // sshd's forced command wins over what a web server would set.
        assert_eq!(
            pusher_from_env(
                env(&[("REMOTE_USER", "bob"), ("MVAULT_USER", "carol")]),
                &cfg
            )
            .as_deref(),
            Some("carol")
        );
        assert_eq!(pusher_from_env(env(&[("GL_USER", " ")]), &cfg), None);
    }

    #[test]
    fn client_address_comes_from_ssh_client_then_remote_addr() {
        assert_eq!(
            client_address_from_env(env(&[("SSH_CLIENT", "127.0.0.1 51022 2222")])).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            client_address_from_env(env(&[
                ("SSH_CLIENT", "::1 51022 2222"),
                ("REMOTE_ADDR", "10.0.0.1")
            ]))
            .as_deref(),
            Some("::1")
        );
        assert_eq!(
            client_address_from_env(env(&[("REMOTE_ADDR", "10.0.0.1")])).as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(client_address_from_env(env(&[])), None);
    }
}

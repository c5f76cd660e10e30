//! The policy's users as files read them and admins change them: the
//! keys that may sign (`allowed_signers`, `mvault signers`), and the
//! user and grant edits behind `policy add-user`, `remove-user`, `grant`
//! and `revoke`.

use ssh_key::PublicKey;
use time::Date;

use super::{Policy, PolicyError, RawGrant, RawUser, Role, SignerEntry};
use crate::crypto;

impl Policy {
    /// Every key that may sign, with its user, the namespaces it signs in
    /// and the day it stops counting: what `allowed_signers` writes.
    pub fn signers(&self) -> Vec<SignerEntry> {
        let mut out = Vec::new();
        for u in self.users.values() {
            for k in &u.keys {
                out.push(SignerEntry {
                    user: u.name.clone(),
                    namespaces: vec![
                        crypto::GIT_NAMESPACE.to_owned(),
                        crypto::MANIFEST_NAMESPACE.to_owned(),
                    ],
                    expires: u.expires.map(|d| {
                        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
                    }),
                    fingerprint: crypto::fingerprint(k),
                    key: crypto::public_key_line(k),
                });
            }
        }
        out
    }

    /// An `allowed_signers` file for git and `ssh-keygen -Y verify`.
    pub fn allowed_signers(&self) -> String {
        let mut out = String::new();
        for s in self.signers() {
            // valid-before is the first day the key no longer counts.
            let valid = s
                .expires
                .map(|d| format!(" valid-before=\"{}\"", d.replace('-', "")))
                .unwrap_or_default();
            out.push_str(&format!(
                "{} namespaces=\"{}\"{} {}\n",
                s.user,
                s.namespaces.join(","),
                valid,
                s.key
            ));
        }
        out
    }

    /// Add a user (policy edit).
    pub fn add_user(
        &mut self,
        name: &str,
        key: &PublicKey,
        expires: Option<Date>,
    ) -> Result<(), PolicyError> {
        let mut raw = self.raw.clone();
        if raw.users.contains_key(name) {
            let u = raw.users.get_mut(name).expect("checked");
            u.keys
                .push(toml::Spanned::new(0..0, crypto::public_key_line(key)));
        } else {
            raw.users.insert(
                name.to_owned(),
                RawUser {
                    keys: vec![toml::Spanned::new(0..0, crypto::public_key_line(key))],
                    expires: None,
                    aliases: Vec::new(),
                },
            );
        }
        if let Some(d) = expires {
            raw.users.get_mut(name).expect("inserted").expires =
                Some(toml::Spanned::new(0..0, d.to_string()));
        }
        self.replace(raw)
    }

    /// Remove a user and their grants (policy edit).
    pub fn remove_user(&mut self, name: &str) -> Result<bool, PolicyError> {
        let mut raw = self.raw.clone();
        let had = raw.users.remove(name).is_some();
        raw.grants.retain(|g| g.user.get_ref() != name);
        self.replace(raw)?;
        Ok(had)
    }

    /// Grant a role (policy edit); returns false when it was already granted.
    pub fn grant(&mut self, user: &str, role: Role, models: &str) -> Result<bool, PolicyError> {
        if self
            .grants
            .iter()
            .any(|g| g.user == user && g.role == role && g.models == models)
        {
            return Ok(false);
        }
        let mut raw = self.raw.clone();
        raw.grants.push(RawGrant {
            user: toml::Spanned::new(0..0, user.to_owned()),
            role: toml::Spanned::new(0..0, role.as_str().to_owned()),
            models: toml::Spanned::new(0..0, models.to_owned()),
        });
        self.replace(raw)?;
        Ok(true)
    }

    /// Revoke a role (policy edit); returns false when there was no such grant.
    pub fn revoke(&mut self, user: &str, role: Role, models: &str) -> Result<bool, PolicyError> {
        let mut raw = self.raw.clone();
        let before = raw.grants.len();
        raw.grants.retain(|g| {
            !(g.user.get_ref() == user
                && g.role.get_ref() == role.as_str()
                && g.models.get_ref() == models)
        });
        let changed = raw.grants.len() != before;
        self.replace(raw)?;
        Ok(changed)
    }
}

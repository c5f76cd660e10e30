//! Aliases: the other names a policy user goes by on a git server. An
//! HTTP server, a directory or a forge hands the hook a name of its own
//! (`Alice`, `alice@corp.example`) where the policy says `alice`; the
//! user's `aliases` list those names, and the hook maps the name the
//! server vouches for to the policy user before any rule looks at it.
//!
//! Matching is exact, except the domain of an e-mail form (`local@domain`),
//! which is compared without regard to ASCII case, as domains are. A
//! collision is judged more strictly, without regard to case anywhere: a
//! directory that folds case must never see one login as two users, so no
//! alias may equal another user's name or alias in any case.

use std::collections::BTreeMap;

use super::{line_col, Policy, PolicyError, RawPolicy};

/// What an alias may be.
pub const ALIAS_RULE: &str =
    "a name or e-mail form of 1 to 256 characters, no spaces or control characters, at most one '@' with text on both sides";

/// Whether `alias` is well-formed (see [`ALIAS_RULE`]).
pub fn valid_alias(alias: &str) -> bool {
    let shaped = !alias.is_empty()
        && alias.chars().count() <= 256
        && !alias.chars().any(|c| c.is_whitespace() || c.is_control());
    let at = alias.matches('@').count();
    let parts_ok = match alias.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty(),
        None => true,
    };
    shaped && at <= 1 && parts_ok
}

/// Whether the name a server gave, `server_name`, is the alias `alias`:
/// exact, but for the domain of an e-mail form.
pub fn alias_matches(alias: &str, server_name: &str) -> bool {
    match (alias.split_once('@'), server_name.split_once('@')) {
        (Some((al, ad)), Some((sl, sd))) => al == sl && ad.eq_ignore_ascii_case(sd),
        (None, None) => alias == server_name,
        _ => false,
    }
}

/// The form two names collide in: every letter in lower case.
fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// Check every user's aliases: well-formed, and none equal (in any case)
/// to another user's name or alias, or twice to one user's.
pub(super) fn check(
    raw: &RawPolicy,
    text: &str,
) -> Result<BTreeMap<String, Vec<String>>, PolicyError> {
    // Every name a user is known by, folded: their policy name first.
    let mut owner: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
    for name in raw.users.keys() {
        owner.insert(fold(name), (name.clone(), "name"));
    }
    let mut out = BTreeMap::new();
    for (name, u) in &raw.users {
        let mut aliases = Vec::new();
        for (i, a) in u.aliases.iter().enumerate() {
            let (line, column) = line_col(text, a.span().start);
            let at = |rule: String| PolicyError::At {
                line,
                column,
                field: format!("users.{name}.aliases[{i}]"),
                rule,
                found: a.get_ref().clone(),
            };
            let alias = a.get_ref();
            if !valid_alias(alias) {
                return Err(at(format!("an alias is {ALIAS_RULE}")));
            }
            if alias == name {
                return Err(at("an alias is another name than the user's own".into()));
            }
            match owner.get(&fold(alias)) {
                Some((other, what)) if other != name => {
                    return Err(at(format!(
                        "an alias names one user; it collides with {other}'s {what} (names are compared without regard to case)"
                    )))
                }
                Some((_, "alias")) => {
                    return Err(at(format!("{name} already has this alias")));
                }
                _ => {}
            }
            owner.insert(fold(alias), (name.clone(), "alias"));
            aliases.push(alias.clone());
        }
        out.insert(name.clone(), aliases);
    }
    Ok(out)
}

impl Policy {
    /// The policy user the server's name for a pusher or reader stands
    /// for: the user of that name, else the user with that alias. `None`
    /// when neither is in the policy (every rule then denies).
    pub fn user_for_server_name(&self, server_name: &str) -> Option<&str> {
        if let Some(u) = self.users.get(server_name) {
            return Some(&u.name);
        }
        self.users
            .values()
            .find(|u| u.aliases.iter().any(|a| alias_matches(a, server_name)))
            .map(|u| u.name.as_str())
    }

    /// Give `user` another alias (policy edit); false when they have it.
    pub fn add_alias(&mut self, user: &str, alias: &str) -> Result<bool, PolicyError> {
        let mut raw = self.raw.clone();
        let Some(u) = raw.users.get_mut(user) else {
            return Err(no_such_user(user));
        };
        if u.aliases.iter().any(|a| a.get_ref() == alias) {
            return Ok(false);
        }
        u.aliases.push(toml::Spanned::new(0..0, alias.to_owned()));
        self.replace(raw)?;
        Ok(true)
    }

    /// Take an alias from `user` (policy edit); false when they had none such.
    pub fn remove_alias(&mut self, user: &str, alias: &str) -> Result<bool, PolicyError> {
        let mut raw = self.raw.clone();
        let Some(u) = raw.users.get_mut(user) else {
            return Err(no_such_user(user));
        };
        let before = u.aliases.len();
        u.aliases.retain(|a| a.get_ref() != alias);
        let changed = u.aliases.len() != before;
        self.replace(raw)?;
        Ok(changed)
    }
}

fn no_such_user(user: &str) -> PolicyError {
    PolicyError::Rule {
        line: 0,
        field: format!("users.{user}"),
        rule: "a user defined under [users]".into(),
        found: user.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd9ghdDaDwXwdAnm6LdD0mdBN2HGNHUSqdn5ebgGy5N";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpQgt0aS5dHZbjwkZd+j3fPAAuFbHuDT8Pp5dAS8oOg";

    fn policy(alice_aliases: &str, bob_aliases: &str) -> Result<Policy, PolicyError> {
        Policy::parse(&format!(
            "schema = 1\n\n[users.alice]\nkeys = [\"{KEY_A}\"]\naliases = {alice_aliases}\n\n[users.bob]\nkeys = [\"{KEY_B}\"]\naliases = {bob_aliases}\n"
        ))
    }

    #[test]
    fn server_names_map_to_the_user_by_name_or_alias() {
        let p = policy(r#"["Alice", "alice@corp.example"]"#, "[]").expect("valid");
        assert_eq!(p.user_for_server_name("alice"), Some("alice"));
        assert_eq!(p.user_for_server_name("Alice"), Some("alice"));
        assert_eq!(p.user_for_server_name("alice@corp.example"), Some("alice"));
        // The domain's case does not matter; the local part's and a
        // name's do.
        assert_eq!(p.user_for_server_name("alice@CORP.Example"), Some("alice"));
        assert_eq!(p.user_for_server_name("Alice@corp.example"), None);
        assert_eq!(p.user_for_server_name("ALICE"), None);
        assert_eq!(p.user_for_server_name("alice@corp.example.evil"), None);
        assert_eq!(p.user_for_server_name("bob"), Some("bob"));
        assert_eq!(p.user_for_server_name("carol"), None);
    }

    #[test]
    fn an_alias_that_collides_with_another_users_name_or_alias_is_refused_at_its_line_and_column() {
        let e = policy("[]", r#"["Alice"]"#).expect_err("collides with alice's name");
        let text = e.to_string();
        assert!(
            text.starts_with("policy line 9, column 12: users.bob.aliases[0]"),
            "{text}"
        );
        assert!(text.contains("collides with alice's name"), "{text}");

        let e = policy(r#"["a@corp.example"]"#, r#"["x", "A@CORP.example"]"#)
            .expect_err("collides with alice's alias");
        let text = e.to_string();
        assert!(
            text.starts_with("policy line 9, column 17: users.bob.aliases[1]"),
            "{text}"
        );
        assert!(text.contains("collides with alice's alias"), "{text}");

        let e = policy(r#"["Al", "al"]"#, "[]").expect_err("twice");
        assert!(
            e.to_string().contains("alice already has this alias"),
            "{e}"
        );
        let e = policy(r#"["alice"]"#, "[]").expect_err("own name");
        assert!(
            e.to_string().contains("another name than the user's own"),
            "{e}"
        );
        for bad in [
            r#"["a b"]"#,
            r#"[""]"#,
            r#"["@corp"]"#,
            r#"["a@b@c"]"#,
            "[\"a\\u0007\"]",
        ] {
            let e = policy(bad, "[]").expect_err(bad);
            assert!(
                e.to_string().contains("an alias is a name or e-mail form"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn aliases_are_added_and_removed_by_policy_edits() {
        let mut p = policy("[]", "[]").expect("valid");
        assert!(p.add_alias("alice", "Alice").expect("adds"));
        assert!(!p.add_alias("alice", "Alice").expect("already"));
        assert!(
            p.add_alias("bob", "ALICE").is_err(),
            "collides with alice's alias"
        );
        assert!(
            p.to_toml().contains("aliases = [\"Alice\"]"),
            "{}",
            p.to_toml()
        );
        assert_eq!(p.user_for_server_name("Alice"), Some("alice"));
        assert!(p.remove_alias("alice", "Alice").expect("removes"));
        assert!(!p.remove_alias("alice", "Alice").expect("gone"));
        assert!(!p.to_toml().contains("aliases"), "{}", p.to_toml());
        assert!(p.add_alias("carol", "c").is_err());
    }
}

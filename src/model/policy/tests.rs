//! Unit tests of the policy: roles per glob, expiry, errors that name their
//! line, signed dates, TOML round trips.

use super::*;

const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd9ghdDaDwXwdAnm6LdD0mdBN2HGNHUSqdn5ebgGy5N a";
const KEY_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpQgt0aS5dHZbjwkZd+j3fPAAuFbHuDT8Pp5dAS8oOg b";

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
}

fn policy() -> Policy {
    let a = crypto::parse_public_key(KEY_A).unwrap();
    let b = crypto::parse_public_key(KEY_B).unwrap();
    let mut p = Policy::initial("admin", &a);
    p.add_user("alice", &b, None).unwrap();
    p.grant("alice", Role::Developer, "nlp/*").unwrap();
    p
}

#[test]
fn roles_are_per_glob_and_fail_closed() {
    let p = policy();
    let bert = ModelName::parse("nlp/bert").unwrap();
    let deep = ModelName::parse("nlp/x/y").unwrap();
    let vision = ModelName::parse("vision/resnet").unwrap();
    p.check("alice", &bert, Ability::Register, now()).unwrap();
    assert!(p.check("alice", &deep, Ability::Register, now()).is_err());
    let d = p
        .check("alice", &bert, Ability::Promote, now())
        .unwrap_err();
    assert_eq!(
        d.to_string(),
        "alice has role developer on nlp/* on nlp/bert; promote needs ml_engineer"
    );
    assert!(p.check("alice", &vision, Ability::Read, now()).is_err());
    assert!(p.check("nobody", &bert, Ability::Read, now()).is_err());
    p.check("admin", &vision, Ability::Admin, now()).unwrap();
    assert!(p.check("alice", &bert, Ability::Admin, now()).is_err());
}

#[test]
fn expired_users_lose_everything() {
    let mut p = policy();
    let b = crypto::parse_public_key(KEY_B).unwrap();
    p.add_user("alice", &b, parse_date("2020-01-01"))
        .unwrap_err(); // same key twice
    let mut raw = p.to_toml();
    raw = raw.replace(
        "[users.alice]\n",
        "[users.alice]\nexpires = \"2020-01-01\"\n",
    );
    let p = Policy::parse(&raw).unwrap();
    let bert = ModelName::parse("nlp/bert").unwrap();
    assert!(p.check("alice", &bert, Ability::Read, now()).is_err());
    assert!(p.readers(&bert, now()).iter().all(|(u, _)| *u != "alice"));
    assert!(p.allowed_signers().contains("valid-before=\"20200101\""));
}

#[test]
fn bad_policy_names_line_and_rule() {
    let text = "schema = 1\n[users.a]\nkeys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd9ghdDaDwXwdAnm6LdD0mdBN2HGNHUSqdn5ebgGy5N\"]\n[[grants]]\nuser = \"a\"\nrole = \"god\"\nmodels = \"**\"\n";
    let e = Policy::parse(text).unwrap_err().to_string();
    assert!(e.contains("line 6") && e.contains("grants[0].role"), "{e}");
    let e = Policy::parse("schema = 1\nusers = 3\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn expiry_dates_with_a_sign_are_refused() {
    assert_eq!(parse_date("+2030-01-01"), None);
    assert_eq!(parse_date("-0001-01-01"), None);
    assert_eq!(parse_date("2030-1-01"), None);
    assert!(parse_date("2030-01-01").is_some());
    let text = format!("schema = 1\n[users.a]\nkeys = [\"{KEY_A}\"]\nexpires = \"+2030-01-01\"\n");
    let e = Policy::parse(&text).unwrap_err().to_string();
    assert!(e.contains("users.a.expires"), "{e}");
}

#[test]
fn round_trips_through_toml() {
    let p = policy();
    let again = Policy::parse(&p.to_toml()).unwrap();
    assert_eq!(again.to_toml(), p.to_toml());
    assert_eq!(again.grants.len(), 2);
    assert_eq!(
        again
            .stage_rule(&ModelName::parse("a").unwrap(), Stage::Production)
            .unwrap()
            .approvals,
        1
    );
}

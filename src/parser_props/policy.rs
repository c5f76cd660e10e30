//! Policies and the dates in them.

use rand::Rng;

use super::{mutated, run, seeded, ssh_key, text};
use crate::crypto;
use crate::model::policy::{self, Policy, Role};

#[test]
fn policies_that_parse_round_trip() {
    let mut setup = seeded("policy-corpus");
    let keys: Vec<String> = (0..4)
        .map(|_| crypto::public_key_line(ssh_key(&mut setup).public_key()))
        .collect();
    let k = |i: usize| crypto::parse_public_key(&keys[i]).expect("a generated key");
    let mut p = Policy::initial("admin", &k(0));
    let mut seeds = vec![p.to_toml().into_bytes()];
    p.add_user("alice", &k(1), policy::parse_date("2030-01-01"))
        .expect("add alice");
    p.grant("alice", Role::Developer, "nlp/*").expect("grant");
    seeds.push(p.to_toml().into_bytes());
    p.add_user("bob", &k(2), None).expect("add bob");
    p.grant("bob", Role::Approver, "{nlp,vision}/**")
        .expect("grant");
    p.grant("bob", Role::Viewer, "a/[bc]?").expect("grant");
    seeds.push(p.to_toml().into_bytes());
    seeds.push(
        format!(
            "schema = 1\n[users.c]\nkeys = [\"{} c@host\"]\nexpires = \"2027-02-28\"\n[[grants]]\nuser = \"c\"\nrole = \"ml_engineer\"\nmodels = \"**\"\n[[stages]]\nstage = \"staging\"\nmodels = \"nlp/*\"\napprovals = 2\nallow_self_approval = true\nrequire_ticket = true\n[[stages]]\nstage = \"archived\"\nmodels = \"**\"\npromote_role = \"ml_admin\"\napprover_role = \"ml_admin\"\n[[stages]]\nstage = \"production\"\nmodels = \"nlp/**\"\nrollback_role = \"ml_engineer\"\n[[models]]\nmodels = \"nlp/**\"\nretention_days = 30\npurge_role = \"ml_engineer\"\nmax_versions = 5\nallowed_environments = [\"prod-eu\", \"staging\"]\n[[models]]\nmodels = \"**\"\nmax_versions = 100\n[[environments]]\nname = \"prod-eu\"\nstage = \"production\"\nmodels = \"nlp/**\"\ndeploy_role = \"approver\"\n[[environments]]\nname = \"qa\"\nstage = \"staging\"\nmodels = \"**\"\n",
            keys[3]
        )
        .into_bytes(),
    );
    let dict: &[&[u8]] = &[
        b"schema = 1\n",
        b"[users.x]\n",
        b"[[grants]]\n",
        b"[[stages]]\n",
        b"[[environments]]\n",
        b"name = \"prod-eu\"\n",
        b"deploy_role = \"god\"\n",
        b"keys = []\n",
        b"expires = \"2020-02-30\"\n",
        b"expires = \"+2020-01-01\"\n",
        b"role = \"god\"\n",
        b"models = \"{a\"\n",
        b"models = \"[\"\n",
        b"models = \"***\"\n",
        b"stage = \"prod\"\n",
        b"approvals = 4294967296\n",
        b"[[models]]\n",
        b"retention_days = -1\n",
        b"retention_days = 36501\n",
        b"max_versions = 0\n",
        b"max_versions = 9223372036854775807\n",
        b"purge_role = \"ml_engineer\"\n",
        b"rollback_role = \"ml_admin\"\n",
        b"allowed_environments = [\"a\", \"a\"]\n",
        b"allowed_environments = [\"Prod EU\"]\n",
        b"allowed_environments = []\n",
        b"ssh-rsa ",
        b"AAAAC3NzaC1lZDI1NTE5AAAAI",
    ];
    run(
        "policy",
        |rng| mutated(rng, &seeds, dict),
        |input| {
            let Ok(s) = std::str::from_utf8(input) else {
                return;
            };
            let Ok(p) = Policy::parse(s) else {
                if seeds.iter().any(|x| x == input) {
                    panic!("a seed policy was refused");
                }
                return;
            };
            // 1. It round-trips through its canonical TOML.
            let toml = p.to_toml();
            let again = Policy::parse(&toml).expect("canonical policy re-parses");
            assert_eq!(again.to_toml(), toml);
            // 2. What the type promises: valid names, keys, known grantees.
            let mut lines = 0;
            for (name, u) in &p.users {
                assert!(name.len() <= 64 && name.starts_with(|c: char| c.is_ascii_lowercase()));
                assert!(!u.keys.is_empty());
                for key in &u.keys {
                    assert_eq!(key.algorithm(), ssh_key::Algorithm::Ed25519);
                    lines += 1;
                }
            }
            for g in &p.grants {
                assert!(p.users.contains_key(&g.user), "grant to {}", g.user);
            }
            // The lifecycle settings hold what their rules allow.
            for m in &p.models {
                let s = &m.settings;
                assert!(s.retention_days.is_none_or(|d| d <= 36_500));
                assert!(s.max_versions.is_none_or(|n| n >= 1));
                assert!(s.purge_role.is_none() || s.retention_days.is_some());
                for e in s.allowed_environments.iter().flatten() {
                    assert!(policy::valid_environment_name(e), "environment {e:?}");
                }
            }
            for r in &p.stages {
                assert!(
                    r.stage == crate::model::names::Stage::Production
                        || r.rollback_role == Role::MlAdmin
                );
            }
            for (i, e) in p.environments.iter().enumerate() {
                assert!(policy::DEPLOYABLE_STAGES.contains(&e.stage));
                assert!(p.environments[..i].iter().all(|o| o.name != e.name));
            }
            // 3. allowed_signers has one line per key and no stray newline.
            let signers = p.allowed_signers();
            assert_eq!(signers.lines().count(), lines);
        },
    );
}

#[test]
fn dates_are_exactly_yyyy_mm_dd() {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    run(
        "date",
        |rng| {
            if rng.gen_bool(0.5) {
                // Digits in the YYYY-MM-DD shape, valid or not as dates.
                format!(
                    "{:04}-{:02}-{:02}",
                    rng.gen_range(0..10_000),
                    rng.gen_range(0..14),
                    rng.gen_range(0..33)
                )
                .into_bytes()
            } else {
                let seeds = [
                    b"2030-01-01".to_vec(),
                    b"2024-02-29".to_vec(),
                    b"0000-01-01".to_vec(),
                ];
                mutated(rng, &seeds, &[b"+", b"-", b"00", b"99999"])
            }
        },
        |input| {
            let s = text(input);
            let shaped = s.len() == 10
                && s.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            match policy::parse_date(&s) {
                Some(d) => {
                    assert!(shaped, "{s:?} accepted as YYYY-MM-DD");
                    assert_eq!(d.format(&fmt).expect("formats"), s);
                    // Policy edits write `Date`'s Display; it must read back.
                    assert_eq!(policy::parse_date(&d.to_string()), Some(d), "{d}");
                }
                None if shaped => {
                    let (y, m, d) = (&s[..4], &s[5..7], &s[8..]);
                    let valid = time::Month::try_from(m.parse::<u8>().expect("digits"))
                        .ok()
                        .and_then(|m| {
                            time::Date::from_calendar_date(
                                y.parse().expect("digits"),
                                m,
                                d.parse().expect("digits"),
                            )
                            .ok()
                        });
                    assert!(valid.is_none(), "{s:?} refused yet a real date");
                }
                None => {}
            }
        },
    );
}

#[test]
fn deployment_records_that_parse_are_canonical() {
    use crate::model::deployment::{parse_deployment_path, DeploymentRecord};
    let seeds = vec![
        b"environment = \"prod-eu\"\nmodel = \"nlp/bert\"\nversion = \"1.2.0\"\nstage = \"production\"\nmanifest_sha256 = \"abababababababababababababababababababababababababababababababab\"\ndeployed_by = \"alice\"\ntime = \"2026-12-07T12:00:00Z\"\nreason = \"CHG-42\"\n".to_vec(),
        b"environment = \"qa\"\nmodel = \"a/b/c/d\"\nversion = \"1.0.0-rc.1+b.5\"\nstage = \"staging\"\nmanifest_sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\ndeployed_by = \"bob\"\ntime = \"2026-12-07T12:00:00Z\"\n".to_vec(),
    ];
    let dict: &[&[u8]] = &[
        b"reason = \"\"\n",
        b"\\n",
        b"+01:00",
        b"stage = \"archived\"\n",
        b"environment = \"a/b\"\n",
        b"deployments/prod-eu/",
        b"/_deployment.toml",
    ];
    run(
        "deployment_record",
        |rng| mutated(rng, &seeds, dict),
        |input| {
            let s = text(input);
            // Paths: what parses names a record path that prints back.
            if let Some((e, m)) = parse_deployment_path(&s) {
                assert_eq!(crate::model::deployment::deployment_path(&e, &m), s);
            }
            let Ok(r) = DeploymentRecord::parse(&s) else {
                assert!(
                    !seeds.iter().any(|x| x == input),
                    "a seed record was refused"
                );
                return;
            };
            // Canonical: exactly its own bytes, and one line of reason.
            assert_eq!(r.to_canonical(), s);
            assert!(r.reason.iter().all(|x| !x.contains('\n')));
            assert_eq!(r.manifest_sha256.len(), 64);
        },
    );
}

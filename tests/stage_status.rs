//! Stage status that tells the truth (issue 12, acceptance 4): `status`
//! shows what each stage serves — the one definition `nlp/bert#stage`,
//! `lineage` and the report also use — and says why a stage serves several
//! or none; a stray local tag is named, not fatal. Each case pins the
//! `status` text and JSON (insta, random ids redacted) and, where GTO can
//! read the repository, that `gto show --json` agrees.
//!
//! The cases are the ones the issue reported:
//! - a version that moved on from staging to production is no longer shown
//!   in staging (GTO still shows it there: docs/tags.md, "GTO");
//! - two versions promoted to production: the newest promotion wins, the
//!   older is shown as replaced, not as a second production version;
//! - after a deprecation, production serves nothing, `status` says so, and
//!   `verify nlp/bert#production` gives the same reason instead of "no
//!   version has been promoted to production";
//! - a stray unsigned local tag is reported and `status` goes on.

use crate::audit_events::redact;
use crate::common::*;
use crate::promotion_stock_tools::assert_gto_agrees;
use crate::promotion_world::*;

/// `mvault status nlp/bert` as text and as pretty JSON, redacted, in
/// `key`'s clone brought up to date with the server.
fn status(r: &Release, key: &Key) -> (String, String) {
    let json = r.status(key);
    let text = r.mv(key, &["status", MODEL]).success().stdout();
    let pretty = serde_json::to_string_pretty(&json).expect("JSON");
    (redact(&text), redact(&pretty))
}

#[test]
fn stage_status_a_version_that_moved_on_from_staging_is_not_shown_there() {
    let r = Release::in_production();
    let (text, json) = status(&r, &r.carol);
    insta::assert_snapshot!("moved_on_text", text);
    insta::assert_snapshot!("moved_on_json", json);
    // `nlp/bert#staging` gives the reason status gives.
    r.status(&r.bob);
    r.mv(&r.bob, &["show", "nlp/bert#staging"])
        .failure()
        .mentions(&[
            "nlp/bert#staging: serves no version",
            "nlp/bert@1.0.0, the last version promoted to staging, has moved on to production (nlp/bert#production#2)",
        ]);
    assert_gto_agrees(&r, &r.dir(&r.carol));
}

#[test]
fn stage_status_two_versions_promoted_to_production_the_newest_wins() {
    let r = Release::in_production();
    r.register("1.1.0", 2);
    r.promote(&r.carol, "1.1.0", "staging").success();
    r.approve(&r.dave, "1.1.0", "production").success();
    r.promote(&r.carol, "1.1.0", "production").success();
    let (text, json) = status(&r, &r.carol);
    insta::assert_snapshot!("two_in_production_text", text);
    insta::assert_snapshot!("two_in_production_json", json);
    assert_gto_agrees(&r, &r.dir(&r.carol));

    // A rollback: production serves 1.0.0 again, and says it was rolled
    // back from 1.1.0 and why; 1.1.0 is deprecated. carol (ml_engineer)
    // rolls back under the rule's rollback_role.
    r.let_engineers_roll_back();
    r.mv(
        &r.carol,
        &[
            "rollback",
            MODEL,
            "--to",
            "1.0.0",
            "--reason",
            "latency regression",
        ],
    )
    .success();
    let (text, json) = status(&r, &r.carol);
    insta::assert_snapshot!("rolled_back_text", text);
    insta::assert_snapshot!("rolled_back_json", json);
    assert_gto_agrees(&r, &r.dir(&r.carol));
    // lineage draws the same story.
    let lineage = r.mv(&r.carol, &["lineage", MODEL]).success().stdout();
    assert!(
        lineage.contains("1.0.0 [production]") && lineage.contains("1.1.0 [deprecated]"),
        "{lineage}"
    );
}

#[test]
fn stage_status_after_a_deprecation_production_serves_nothing_and_verify_agrees() {
    let r = Release::in_production();
    r.promote(&r.carol, "1.0.0", "deprecated").success();
    let (text, json) = status(&r, &r.carol);
    insta::assert_snapshot!("deprecated_text", text);
    insta::assert_snapshot!("deprecated_json", json);
    assert_gto_agrees(&r, &r.dir(&r.carol));

    // The issue: `verify nlp/bert#production` said nothing had ever been
    // promoted there. It now gives status's reason.
    r.status(&r.bob);
    let run = r
        .mv(&r.bob, &["verify", "nlp/bert#production"])
        .failure()
        .mentions(&[
            "nlp/bert#production: serves no version",
            "nlp/bert@1.0.0, the last version promoted to production, has moved on to deprecated (nlp/bert#deprecated#3)",
            "promote a version to production or roll one back",
        ]);
    assert!(
        !run.stderr().contains("has been promoted"),
        "{}",
        run.stderr()
    );
    // The report's stage table says the same.
    let report = r.mv(&r.carol, &["report", MODEL]).success().stdout();
    assert!(
        report.contains(
            "| production | - | none: 1.0.0 moved on to deprecated (nlp/bert#deprecated#3) |"
        ),
        "{report}"
    );
}

#[test]
fn stage_status_a_stray_unsigned_local_tag_is_reported_and_status_goes_on() {
    let r = Release::in_production();
    let dir = r.dir(&r.carol);
    r.status(&r.carol);
    let commit = r.commit_of(&dir, "1.0.0");
    // A lightweight tag in the promotion form, as a typo of `git tag` makes
    // one, and an unsigned annotated one with the next counter.
    r.git_ok(&dir, &["tag", "nlp/bert#production#7", &commit]);
    r.git_ok(
        &dir,
        &[
            "tag",
            "-a",
            "-m",
            "promote nlp/bert@1.0.0 to archived",
            "nlp/bert#archived#3",
            &commit,
        ],
    );
    let (text, json) = status(&r, &r.carol);
    insta::assert_snapshot!("stray_tag_text", text);
    insta::assert_snapshot!("stray_tag_json", json);

    // What status leaves out, `#stage` refuses: the stray tag is named.
    let out = r.path("out-stray");
    let run = r
        .mv(
            &r.carol,
            &["pull", "nlp/bert#production", "-o", path_str(&out)],
        )
        .failure();
    run.mentions_any(&["nlp/bert#production#7", "nlp/bert#archived#3"]);
    assert!(list_files(&out).is_empty(), "a refused pull wrote files");
    // Deleted, the tags are gone from status and `#stage` works again.
    r.git_ok(
        &dir,
        &["tag", "-d", "nlp/bert#production#7", "nlp/bert#archived#3"],
    );
    let (text, _) = status(&r, &r.carol);
    assert!(!text.contains("not believed"), "{text}");
    r.mv(&r.carol, &["show", "nlp/bert#production"]).success();
}

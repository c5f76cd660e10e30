//! The stage machine and one model's stage story, replayed from its
//! promotions in counter order: what stage a version is in, what a stage
//! serves. Pure: the promotions come from whoever read the tags.
//!
//! What a stage serves is decided here and nowhere else ([`ModelStages::head`]):
//! `status`, `REF#stage` (pull, verify, show), `lineage`, the report, the
//! rollback rule and the GTO comparison all read it. The newest promotion
//! into a stage wins, as in GTO; the stage serves that promotion's version
//! while the version is still in the stage, and nothing once it has moved
//! on (to production, to deprecated): then no older version silently takes
//! its place, only a new promotion or a rollback does.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::names::Stage;
use crate::model::promotion::{Promotion, PromotionAction};

/// The stage story of one model, replayed from its promotion tags.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelStages {
    /// Promotions in counter order.
    pub promotions: Vec<Promotion>,
    /// The highest counter on any tag of the model.
    pub max_counter: u64,
}

/// One version's place in the stage machine.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStage {
    pub stage: Stage,
    /// Whether the version was ever promoted into production.
    pub ever_production: bool,
}

impl ModelStages {
    /// The latest promotion (highest counter).
    pub fn last(&self) -> Option<&Promotion> {
        self.promotions.last()
    }

    /// The stage of `version`: its latest promotion's, else development.
    pub fn stage_of(&self, version: &str) -> VersionStage {
        let mut stage = Stage::Development;
        let mut ever_production = false;
        for p in self.promotions.iter().filter(|p| p.version == version) {
            stage = p.stage;
            ever_production |= p.stage == Stage::Production;
        }
        VersionStage {
            stage,
            ever_production,
        }
    }

    /// When `version` was archived (its promotion into archived, which no
    /// promotion follows: archived is the last stage), if it is archived.
    pub fn archived_since(&self, version: &str) -> Option<i64> {
        self.latest_of(version)
            .filter(|p| p.stage == Stage::Archived)
            .map(|p| p.time)
    }

    /// How many of `versions` count toward a model's `max_versions`: those
    /// not archived (a purged version is archived too).
    pub fn counted_versions<'v>(&self, versions: impl IntoIterator<Item = &'v str>) -> usize {
        versions
            .into_iter()
            .filter(|v| self.stage_of(v).stage != Stage::Archived)
            .count()
    }

    /// The version's latest promotion, if it has one.
    fn latest_of(&self, version: &str) -> Option<&Promotion> {
        self.promotions.iter().rev().find(|p| p.version == version)
    }

    /// What `stage` serves and why: the one definition (module docs).
    pub fn head(&self, stage: Stage) -> StageHead {
        let mut into = self.promotions.iter().rev().filter(|p| p.stage == stage);
        let Some(last) = into.next() else {
            return StageHead {
                stage,
                serving: None,
                last_promotion: None,
                state: StageState::NeverPromoted,
                replaced: self.replaced_in(stage, None),
            };
        };
        // The promotion that took the version out of the stage, if any.
        let left = self
            .promotions
            .iter()
            .find(|p| p.version == last.version && p.counter > last.counter);
        let (serving, state) = match (left, last.action) {
            (Some(l), _) => (
                None,
                StageState::MovedOn {
                    version: last.version.clone(),
                    to: l.stage,
                    tag: l.name.clone(),
                },
            ),
            (None, PromotionAction::Rollback) if stage == Stage::Production => (
                Some(last.version.clone()),
                StageState::RolledBack {
                    // The version the stage served just before the rollback.
                    from: into.next().map(|p| p.version.clone()),
                    reason: last.reason.clone(),
                },
            ),
            (None, PromotionAction::Rollback) => (
                Some(last.version.clone()),
                StageState::MovedByRollback {
                    reason: last.reason.clone(),
                },
            ),
            (None, PromotionAction::Promote) => (Some(last.version.clone()), StageState::Promoted),
        };
        StageHead {
            stage,
            replaced: self.replaced_in(stage, serving.as_deref()),
            serving,
            last_promotion: Some(LastPromotion::of(last)),
            state,
        }
    }

    /// The versions the stage machine still places in `stage` (they were
    /// promoted into it and have not left) other than `serving`.
    fn replaced_in(&self, stage: Stage, serving: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.promotions.iter().filter(|p| p.stage == stage) {
            if Some(p.version.as_str()) != serving
                && !out.contains(&p.version)
                && self.latest_of(&p.version).is_some_and(|l| l.stage == stage)
            {
                out.push(p.version.clone());
            }
        }
        out
    }

    /// The version `model#stage` names, if the stage serves one.
    pub fn serving(&self, stage: Stage) -> Option<String> {
        self.head(stage).serving
    }

    /// Every stage's head, in stage order.
    pub fn heads(&self) -> Vec<StageHead> {
        Stage::ALL.iter().map(|s| self.head(*s)).collect()
    }

    /// Each stage that serves a version, and that version.
    pub fn serving_map(&self) -> BTreeMap<&'static str, String> {
        self.heads()
            .into_iter()
            .filter_map(|h| h.serving.map(|v| (h.stage.as_str(), v)))
            .collect()
    }

    /// Where `version` stands: its stage, whether that stage serves it, and
    /// the promotion that replaced it there if one did.
    pub fn version_view(&self, version: &str) -> VersionView {
        let stage = self.stage_of(version).stage;
        let latest = self.latest_of(version);
        let serving = self.serving(stage).as_deref() == Some(version);
        let replaced_by = match latest {
            Some(l) if !serving => self
                .promotions
                .iter()
                .find(|p| p.counter > l.counter && p.stage == stage)
                .map(|p| p.name.clone()),
            _ => None,
        };
        VersionView {
            version: version.to_owned(),
            stage,
            serving,
            replaced_by,
        }
    }
}

/// The newest promotion into a stage: what GTO shows for the stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastPromotion {
    /// The tag, `<model>#<stage>#<n>`.
    pub tag: String,
    pub version: String,
    pub action: PromotionAction,
}

impl LastPromotion {
    fn of(p: &Promotion) -> Self {
        LastPromotion {
            tag: p.name.clone(),
            version: p.version.clone(),
            action: p.action,
        }
    }
}

/// Why a stage serves what it serves, or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StageState {
    /// No version was ever promoted into the stage.
    NeverPromoted,
    /// It serves the version its newest promotion brought in.
    Promoted,
    /// It serves the version its newest promotion, a rollback, put back.
    RolledBack {
        /// The version it served before the rollback.
        from: Option<String>,
        reason: Option<String>,
    },
    /// It serves the version the second half of a rollback moved into it
    /// (production's version, to deprecated).
    MovedByRollback { reason: Option<String> },
    /// It serves nothing: the version its newest promotion brought in has
    /// moved on to another stage, by promotion tag `tag`.
    MovedOn {
        version: String,
        to: Stage,
        tag: String,
    },
}

/// One stage of one model: what it serves and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageHead {
    pub stage: Stage,
    /// The version `model#stage` names, if any.
    pub serving: Option<String>,
    /// The newest promotion into the stage, GTO's answer for the stage.
    pub last_promotion: Option<LastPromotion>,
    /// Why it serves that, or nothing.
    #[serde(rename = "why")]
    pub state: StageState,
    /// Other versions the stage machine places in this stage: promoted
    /// into it earlier and replaced there since, without leaving it.
    pub replaced: Vec<String>,
}

impl StageHead {
    /// Why the stage serves what it serves, in words, for `status` and the
    /// report: "promoted by m#production#4", "rolled back from 1.1.0 by …",
    /// "1.0.0 moved on to deprecated (m#deprecated#3)", "never promoted to".
    /// Unescaped: the reason is free text, escaped by whoever prints it.
    pub fn why(&self) -> String {
        let tag = self
            .last_promotion
            .as_ref()
            .map(|l| l.tag.as_str())
            .unwrap_or_default();
        let mut why = match &self.state {
            StageState::NeverPromoted => "never promoted to".to_owned(),
            StageState::Promoted => format!("promoted by {tag}"),
            StageState::RolledBack { from, reason } => {
                let from = from
                    .as_deref()
                    .map(|f| format!(" from {f}"))
                    .unwrap_or_default();
                let reason = reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                format!("rolled back{from} by {tag}{reason}")
            }
            StageState::MovedByRollback { reason } => {
                let reason = reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                format!("moved here by the rollback {tag}{reason}")
            }
            StageState::MovedOn { version, to, tag } => {
                format!("none: {version} moved on to {to} ({tag})")
            }
        };
        if !self.replaced.is_empty() {
            why.push_str(&format!(
                "; also here, replaced: {}",
                self.replaced.join(", ")
            ));
        }
        why
    }
}

/// One version's place: its stage and whether that stage serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionView {
    pub version: String,
    pub stage: Stage,
    /// Whether `model#<stage>` names this version.
    pub serving: bool,
    /// The promotion that replaced it in its stage, when one did.
    pub replaced_by: Option<String>,
}

/// Whether the stage machine allows `from → to` as a plain promotion.
pub fn transition_allowed(from: Stage, to: Stage) -> bool {
    use Stage::*;
    matches!(
        (from, to),
        (Development, Staging)
            | (Staging, Production)
            | (Staging, Development)
            | (Production, Deprecated)
            | (Deprecated, Archived)
    )
}

/// The stages reachable from `from`, for messages.
pub fn next_stages(from: Stage) -> Vec<&'static str> {
    Stage::ALL
        .iter()
        .filter(|to| transition_allowed(from, **to))
        .map(|s| s.as_str())
        .collect()
}

/// Why `from → to` is not a promotion, as a clause for messages: "from
/// staging it can go to development or production, not archived", or, from
/// the last stage, "archived is the last stage: nothing can follow it".
pub fn refused_move(from: Stage, to: Stage) -> String {
    match next_stages(from).as_slice() {
        [] => format!("{from} is the last stage: nothing can follow it"),
        [only] => format!("from {from} it can go to {only}, not {to}"),
        [first @ .., last] => {
            format!(
                "from {from} it can go to {} or {last}, not {to}",
                first.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_move_names_where_the_version_can_go_or_that_nothing_follows() {
        use Stage::*;
        assert_eq!(
            refused_move(Staging, Archived),
            "from staging it can go to development or production, not archived"
        );
        assert_eq!(
            refused_move(Development, Production),
            "from development it can go to staging, not production"
        );
        assert_eq!(
            refused_move(Archived, Production),
            "archived is the last stage: nothing can follow it"
        );
    }

    #[test]
    fn stage_machine() {
        use Stage::*;
        assert!(transition_allowed(Development, Staging));
        assert!(!transition_allowed(Development, Production));
        assert!(transition_allowed(Staging, Development));
        assert!(!transition_allowed(Archived, Production));
        assert_eq!(next_stages(Staging), vec!["development", "production"]);
    }

    /// A model's story from `(version, stage, action)` steps, counters 1…
    fn story(steps: &[(&str, Stage, PromotionAction)]) -> ModelStages {
        let promotions: Vec<Promotion> = steps
            .iter()
            .enumerate()
            .map(|(i, (v, stage, action))| Promotion {
                name: format!("m#{stage}#{}", i + 1),
                id: crate::store::objects::null_id(),
                model: "m".into(),
                stage: *stage,
                counter: i as u64 + 1,
                version: (*v).into(),
                from: None,
                action: *action,
                previous: None,
                approvals: Vec::new(),
                manifest_sha256: String::new(),
                ticket: None,
                reason: (*action == PromotionAction::Rollback).then(|| "why".into()),
                record: None,
                tagger: "carol".into(),
                time: 0,
                target: crate::store::objects::null_id(),
            })
            .collect();
        ModelStages {
            max_counter: promotions.len() as u64,
            promotions,
        }
    }

    const P: PromotionAction = PromotionAction::Promote;
    const R: PromotionAction = PromotionAction::Rollback;

    #[test]
    fn a_version_that_moved_on_leaves_its_stage_serving_nothing() {
        use Stage::*;
        let s = story(&[("1.0.0", Staging, P), ("1.0.0", Production, P)]);
        let h = s.head(Staging);
        assert_eq!(h.serving, None);
        assert_eq!(
            h.state,
            StageState::MovedOn {
                version: "1.0.0".into(),
                to: Production,
                tag: "m#production#2".into()
            }
        );
        // GTO's answer for the stage is still the newest promotion into it.
        assert_eq!(
            h.last_promotion.map(|l| l.version).as_deref(),
            Some("1.0.0")
        );
        assert_eq!(s.serving(Production).as_deref(), Some("1.0.0"));
    }

    #[test]
    fn the_newest_promotion_wins_and_the_older_version_is_replaced() {
        use Stage::*;
        let s = story(&[
            ("1.0.0", Staging, P),
            ("1.0.0", Production, P),
            ("1.1.0", Staging, P),
            ("1.1.0", Production, P),
        ]);
        let h = s.head(Production);
        assert_eq!(h.serving.as_deref(), Some("1.1.0"));
        assert_eq!(h.replaced, vec!["1.0.0".to_owned()]);
        let old = s.version_view("1.0.0");
        assert_eq!((old.stage, old.serving), (Production, false));
        assert_eq!(old.replaced_by.as_deref(), Some("m#production#4"));
        assert!(s.version_view("1.1.0").serving);
    }

    #[test]
    fn a_deprecated_production_version_is_not_served_and_no_older_one_returns() {
        use Stage::*;
        let s = story(&[
            ("1.0.0", Staging, P),
            ("1.0.0", Production, P),
            ("1.1.0", Staging, P),
            ("1.1.0", Production, P),
            ("1.1.0", Deprecated, P),
        ]);
        let h = s.head(Production);
        assert_eq!(h.serving, None, "{h:?}");
        assert!(
            matches!(h.state, StageState::MovedOn { ref version, to: Deprecated, .. } if version == "1.1.0")
        );
        assert_eq!(h.replaced, vec!["1.0.0".to_owned()]);
        assert_eq!(s.serving(Deprecated).as_deref(), Some("1.1.0"));
    }

    #[test]
    fn a_rollback_serves_the_earlier_version_and_names_the_one_it_replaced() {
        use Stage::*;
        let s = story(&[
            ("1.0.0", Staging, P),
            ("1.0.0", Production, P),
            ("1.1.0", Staging, P),
            ("1.1.0", Production, P),
            ("1.0.0", Production, R),
            ("1.1.0", Deprecated, P),
        ]);
        let h = s.head(Production);
        assert_eq!(h.serving.as_deref(), Some("1.0.0"));
        assert_eq!(
            h.state,
            StageState::RolledBack {
                from: Some("1.1.0".into()),
                reason: Some("why".into())
            }
        );
        assert!(h.replaced.is_empty());
        assert_eq!(
            s.serving_map().into_iter().collect::<Vec<_>>(),
            vec![
                ("deprecated", "1.1.0".to_owned()),
                ("production", "1.0.0".to_owned())
            ]
        );
    }

    #[test]
    fn an_unpromoted_stage_serves_nothing_and_says_so() {
        let s = story(&[]);
        for h in s.heads() {
            assert_eq!((h.serving, h.state), (None, StageState::NeverPromoted));
        }
        let v = s.version_view("0.1.0");
        assert_eq!(
            (v.stage, v.serving, v.replaced_by),
            (Stage::Development, false, None)
        );
    }
}

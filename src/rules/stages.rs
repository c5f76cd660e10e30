//! The stage machine and one model's stage story, replayed from its
//! promotions in counter order: what stage a version is in, what a stage
//! serves. Pure: the promotions come from whoever read the tags.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::names::Stage;
use crate::model::promotion::Promotion;

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

    /// The current version of `stage`: the one most recently promoted into it.
    pub fn current(&self, stage: Stage) -> Option<&str> {
        self.promotions
            .iter()
            .rev()
            .find(|p| p.stage == stage)
            .map(|p| p.version.as_str())
    }

    /// The version to serve for `stage`: the one most recently promoted
    /// into it that is still in it. Unlike [`ModelStages::current`] (GTO's
    /// view), a version that moved on, to deprecated say, is not served.
    pub fn serving(&self, stage: Stage) -> Option<&str> {
        self.promotions
            .iter()
            .rev()
            .filter(|p| p.stage == stage)
            .map(|p| p.version.as_str())
            .find(|v| self.stage_of(v).stage == stage)
    }

    /// Each stage's current version.
    pub fn heads(&self) -> BTreeMap<&'static str, String> {
        Stage::ALL
            .iter()
            .filter_map(|s| self.current(*s).map(|v| (s.as_str(), v.to_owned())))
            .collect()
    }
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
}

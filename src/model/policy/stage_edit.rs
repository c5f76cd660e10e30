//! Edits of the `[[stages]]` rules, for `mvault policy rule stage`: a rule
//! is named by its stage and glob, as the first-match lookup reads them.

use super::{PolicyError, RawStageRule, Role};
use crate::model::names::Stage;

/// A change to the `[[stages]]` rule of (`stage`, `models`): each `Some`
/// sets a key; a rule that does not exist yet is added with the defaults
/// for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRuleEdit {
    pub stage: Stage,
    pub models: String,
    pub promote_role: Option<Role>,
    pub approvals: Option<u32>,
    pub approver_role: Option<Role>,
    pub allow_self_approval: Option<bool>,
    pub require_ticket: Option<bool>,
    pub rollback_role: Option<Role>,
    /// A new rule goes first (it then wins over every other rule of its
    /// stage), not last.
    pub first: bool,
}

impl StageRuleEdit {
    /// An edit of the rule of (`stage`, `models`) that sets nothing yet.
    pub fn new(stage: Stage, models: &str) -> Self {
        StageRuleEdit {
            stage,
            models: models.to_owned(),
            promote_role: None,
            approvals: None,
            approver_role: None,
            allow_self_approval: None,
            require_ticket: None,
            rollback_role: None,
            first: false,
        }
    }
}

fn spanned<T>(v: T) -> toml::Spanned<T> {
    toml::Spanned::new(0..0, v)
}

impl super::Policy {
    /// Add or change the stage rule of (`edit.stage`, `edit.models`)
    /// (policy edit); returns false when it changes nothing.
    pub fn set_stage_rule(&mut self, edit: &StageRuleEdit) -> Result<bool, PolicyError> {
        let mut raw = self.raw.clone();
        let pos = raw.stages.iter().position(|s| {
            s.stage.get_ref() == edit.stage.as_str() && *s.models.get_ref() == edit.models
        });
        let mut rule = match pos {
            Some(p) => raw.stages[p].clone(),
            None => RawStageRule {
                stage: spanned(edit.stage.as_str().to_owned()),
                models: spanned(edit.models.clone()),
                promote_role: None,
                approvals: 0,
                approver_role: None,
                allow_self_approval: false,
                require_ticket: false,
                rollback_role: None,
            },
        };
        let role = |r: Role| Some(spanned(r.as_str().to_owned()));
        if let Some(r) = edit.promote_role {
            rule.promote_role = role(r);
        }
        if let Some(n) = edit.approvals {
            rule.approvals = n;
        }
        if let Some(r) = edit.approver_role {
            rule.approver_role = role(r);
        }
        if let Some(b) = edit.allow_self_approval {
            rule.allow_self_approval = b;
        }
        if let Some(b) = edit.require_ticket {
            rule.require_ticket = b;
        }
        if let Some(r) = edit.rollback_role {
            rule.rollback_role = role(r);
        }
        match pos {
            Some(p) => raw.stages[p] = rule,
            None if edit.first => raw.stages.insert(0, rule),
            None => raw.stages.push(rule),
        }
        let before = self.to_toml();
        self.replace(raw)?;
        Ok(self.to_toml() != before)
    }

    /// Remove the stage rule of (`stage`, `models`) (policy edit); returns
    /// false when there was none.
    pub fn remove_stage_rule(&mut self, stage: Stage, models: &str) -> Result<bool, PolicyError> {
        let mut raw = self.raw.clone();
        let before = raw.stages.len();
        raw.stages
            .retain(|s| !(s.stage.get_ref() == stage.as_str() && s.models.get_ref() == models));
        let changed = raw.stages.len() != before;
        self.replace(raw)?;
        Ok(changed)
    }
}

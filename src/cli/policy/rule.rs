//! `mvault policy rule …`: add, change and remove the policy's rules
//! without editing the file by hand. Each kind of rule is one subcommand
//! with its own `set` and `remove`; another kind (environments, say) is
//! one more variant of [`RuleCommand`] and one more arm of [`change`].

use std::io::Write;

use clap::Subcommand;

use mvault::model::names::Stage;
use mvault::model::policy::{
    EnvironmentChange, EnvironmentName, EnvironmentSpec, ModelSettingsEdit, Role, SettingKey,
    StageRuleEdit,
};
use mvault::ops::admin::{PolicyChange, RuleChange};

use crate::cli::context::Ctx;
use crate::cli::error::{CliError, CliResult};
use crate::cli::values;

/// Add, change or remove a stage rule or model settings (admin-signed
/// commit, like grant).
#[derive(clap::Args, Debug)]
pub(in crate::cli) struct Args {
    #[command(subcommand)]
    command: RuleCommand,
    #[arg(long, global = true)]
    no_push: bool,
    #[arg(long, global = true)]
    json: bool,
}

pub(in crate::cli) fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    let change = change(args.command)?;
    super::apply(change, args.no_push, args.json, ctx, out)
}

/// A kind of rule of the policy.
#[derive(Subcommand, Debug)]
enum RuleCommand {
    /// Promotion rules, `[[stages]]`: who promotes into a stage, with how
    /// many approvals, and who may roll back production.
    Stage {
        #[command(subcommand)]
        command: StageRuleCommand,
    },
    /// Per-model settings, `[[models]]`: retention, purge role, version
    /// cap, allowed environments.
    Model {
        #[command(subcommand)]
        command: ModelRuleCommand,
    },
    /// Environments versions are deployed to, `[[environments]]`.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
}

/// What to do to a stage rule.
#[derive(Subcommand, Debug)]
enum StageRuleCommand {
    /// Add the rule of a stage and glob, or change the keys given.
    Set(StageRuleArgs),
    /// Remove the rule of a stage and glob.
    Remove {
        #[arg(long, value_parser = values::stage())]
        stage: Stage,
        /// The rule's model glob, exactly as in the policy.
        #[arg(long)]
        models: String,
    },
}

/// The keys of a `[[stages]]` rule; those left out keep their value (or
/// the default, for a new rule).
#[derive(clap::Args, Debug)]
struct StageRuleArgs {
    #[arg(long, value_parser = values::stage())]
    stage: Stage,
    /// Model glob, e.g. 'nlp/**' (the first matching rule wins).
    #[arg(long)]
    models: String,
    /// Role needed to promote into the stage.
    #[arg(long, value_parser = values::role())]
    promote_role: Option<Role>,
    /// Approvals needed before the promotion.
    #[arg(long)]
    approvals: Option<u32>,
    /// Role an approver needs.
    #[arg(long, value_parser = values::role())]
    approver_role: Option<Role>,
    /// Whether the version's author or the promoter may approve.
    #[arg(long)]
    allow_self_approval: Option<bool>,
    /// Whether a promotion must name a ticket.
    #[arg(long)]
    require_ticket: Option<bool>,
    /// Role needed to roll back (production rules only; ml_admin by default).
    #[arg(long, value_parser = values::role())]
    rollback_role: Option<Role>,
    /// Put a new rule first, so that it wins over every other rule of its
    /// stage (by default it goes last).
    #[arg(long)]
    first: bool,
}

/// What to do to model settings.
#[derive(Subcommand, Debug)]
enum ModelRuleCommand {
    /// Add the settings of a glob, or change the keys given.
    Set(ModelRuleArgs),
    /// Remove the settings of a glob.
    Remove {
        /// The entry's model glob, exactly as in the policy.
        #[arg(long)]
        models: String,
    },
}

/// The keys of a `[[models]]` entry; those left out keep their value.
#[derive(clap::Args, Debug)]
struct ModelRuleArgs {
    /// Model glob, e.g. 'nlp/**' (the first matching entry wins).
    #[arg(long)]
    models: String,
    /// Days an archived version's payload is kept.
    #[arg(long)]
    retention_days: Option<u32>,
    /// Role that may purge a version whose retention is due.
    #[arg(long, value_parser = values::role())]
    purge_role: Option<Role>,
    /// Versions not archived the model may have.
    #[arg(long)]
    max_versions: Option<u32>,
    /// Environments the model may be deployed to, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    allowed_environments: Option<Vec<String>>,
    /// Remove a key from the entry (repeatable).
    #[arg(long, value_parser = setting_key_arg())]
    unset: Vec<SettingKey>,
    /// Put a new entry first, so that it wins over every other.
    #[arg(long)]
    first: bool,
}

fn setting_key_arg() -> impl clap::builder::TypedValueParser<Value = SettingKey> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(SettingKey::ALL.map(SettingKey::as_str))
        .map(|s| SettingKey::parse(&s).expect("clap admits only the names of SettingKey::ALL"))
}

/// The library's change for a `policy rule` command.
fn change(cmd: RuleCommand) -> Result<PolicyChange, CliError> {
    let rule = match cmd {
        RuleCommand::Env { command } => return env_change(command),
        RuleCommand::Stage {
            command: StageRuleCommand::Set(a),
        } => RuleChange::SetStage(StageRuleEdit {
            promote_role: a.promote_role,
            approvals: a.approvals,
            approver_role: a.approver_role,
            allow_self_approval: a.allow_self_approval,
            require_ticket: a.require_ticket,
            rollback_role: a.rollback_role,
            first: a.first,
            ..StageRuleEdit::new(a.stage, &a.models)
        }),
        RuleCommand::Stage {
            command: StageRuleCommand::Remove { stage, models },
        } => RuleChange::RemoveStage { stage, models },
        RuleCommand::Model {
            command: ModelRuleCommand::Set(a),
        } => RuleChange::SetModel(ModelSettingsEdit {
            models: a.models,
            retention_days: a.retention_days,
            purge_role: a.purge_role,
            max_versions: a.max_versions,
            allowed_environments: a.allowed_environments,
            unset: a.unset,
            first: a.first,
        }),
        RuleCommand::Model {
            command: ModelRuleCommand::Remove { models },
        } => RuleChange::RemoveModel { models },
    };
    Ok(PolicyChange::Rule(rule))
}

/// `mvault policy rule env …`.
#[derive(Subcommand, Debug)]
enum EnvCommand {
    /// Define an environment.
    Add {
        /// Its name, e.g. prod-eu.
        #[arg(value_parser = env_name)]
        name: EnvironmentName,
        /// The stage a version must be in to be deployed there.
        #[arg(long, value_parser = deployable_stage())]
        stage: Stage,
        /// The models it may serve (a glob, e.g. 'nlp/**').
        #[arg(long)]
        models: String,
        /// The role that deploys there (ml_admin always may; default ml_engineer).
        #[arg(long, value_parser = values::role())]
        deploy_role: Option<Role>,
    },
    /// Change an environment's stage, models or deploy role.
    Change {
        #[arg(value_parser = env_name)]
        name: EnvironmentName,
        #[arg(long, value_parser = deployable_stage())]
        stage: Option<Stage>,
        #[arg(long)]
        models: Option<String>,
        #[arg(long, value_parser = values::role())]
        deploy_role: Option<Role>,
    },
    /// Remove an environment (its deployment records stay in history).
    Remove {
        #[arg(value_parser = env_name)]
        name: EnvironmentName,
    },
}

fn deployable_stage() -> impl clap::builder::TypedValueParser<Value = Stage> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(
        mvault::model::policy::DEPLOYABLE_STAGES.map(Stage::as_str),
    )
    .map(|s| Stage::parse(&s).expect("clap admits only stage names"))
}

fn env_name(name: &str) -> Result<EnvironmentName, CliError> {
    EnvironmentName::parse(name).map_err(|e| CliError::user(e.to_string()))
}

/// The library's change for a `policy rule env` command.
fn env_change(cmd: EnvCommand) -> Result<PolicyChange, CliError> {
    Ok(match cmd {
        EnvCommand::Add {
            name,
            stage,
            models,
            deploy_role,
        } => PolicyChange::EnvAdd(EnvironmentSpec {
            name,
            stage,
            models,
            deploy_role,
        }),
        EnvCommand::Change {
            name,
            stage,
            models,
            deploy_role,
        } => {
            let change = EnvironmentChange {
                stage,
                models,
                deploy_role,
            };
            if change.is_empty() {
                return Err(CliError::user(format!(
                    "policy rule env change {name}: nothing to change"
                ))
                .hint("pass --stage, --models or --deploy-role"));
            }
            PolicyChange::EnvChange { name, change }
        }
        EnvCommand::Remove { name } => PolicyChange::EnvRemove { name },
    })
}

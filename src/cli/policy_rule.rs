//! `mvault policy rule env add|change|remove`: environments in the policy
//! without hand edits, each an admin-signed commit like `policy grant`.

use clap::Subcommand;

use mvault::model::names::Stage;
use mvault::model::policy::{EnvironmentChange, EnvironmentName, EnvironmentSpec, Role};
use mvault::ops::admin::PolicyChange;

use super::CliError;

/// `mvault policy rule …`.
#[derive(Subcommand, Debug)]
pub(super) enum RuleCommand {
    /// Environments versions are deployed to.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
}

/// `mvault policy rule env …`.
#[derive(Subcommand, Debug)]
pub(super) enum EnvCommand {
    /// Define an environment.
    Add {
        /// Its name, e.g. prod-eu.
        name: String,
        /// The stage a version must be in to be deployed there.
        #[arg(long, value_parser = deployable_stage())]
        stage: Stage,
        /// The models it may serve (a glob, e.g. 'nlp/**').
        #[arg(long)]
        models: String,
        /// The role that deploys there (ml_admin always may; default ml_engineer).
        #[arg(long, value_parser = role_arg())]
        deploy_role: Option<Role>,
        #[arg(long)]
        no_push: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change an environment's stage, models or deploy role.
    Change {
        name: String,
        #[arg(long, value_parser = deployable_stage())]
        stage: Option<Stage>,
        #[arg(long)]
        models: Option<String>,
        #[arg(long, value_parser = role_arg())]
        deploy_role: Option<Role>,
        #[arg(long)]
        no_push: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove an environment (its deployment records stay in history).
    Remove {
        name: String,
        #[arg(long)]
        no_push: bool,
        #[arg(long)]
        json: bool,
    },
}

fn deployable_stage() -> impl clap::builder::TypedValueParser<Value = Stage> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(
        mvault::model::policy::DEPLOYABLE_STAGES.map(Stage::as_str),
    )
    .map(|s| Stage::parse(&s).expect("clap admits only stage names"))
}

fn role_arg() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Role::ALL.map(Role::as_str))
        .map(|s| Role::parse(&s).expect("clap admits only role names"))
}

fn env_name(name: &str) -> Result<EnvironmentName, CliError> {
    EnvironmentName::parse(name).map_err(|e| CliError::user(e.to_string()))
}

/// The policy change a `rule` subcommand asks for, with `--no-push` and `--json`.
pub(super) fn change(cmd: RuleCommand) -> Result<(PolicyChange, bool, bool), CliError> {
    let RuleCommand::Env { command } = cmd;
    Ok(match command {
        EnvCommand::Add {
            name,
            stage,
            models,
            deploy_role,
            no_push,
            json,
        } => (
            PolicyChange::EnvAdd(EnvironmentSpec {
                name: env_name(&name)?,
                stage,
                models,
                deploy_role,
            }),
            no_push,
            json,
        ),
        EnvCommand::Change {
            name,
            stage,
            models,
            deploy_role,
            no_push,
            json,
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
            (
                PolicyChange::EnvChange {
                    name: env_name(&name)?,
                    change,
                },
                no_push,
                json,
            )
        }
        EnvCommand::Remove {
            name,
            no_push,
            json,
        } => (
            PolicyChange::EnvRemove {
                name: env_name(&name)?,
            },
            no_push,
            json,
        ),
    })
}

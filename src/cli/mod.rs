//! The command line. One file per command (a subcommand group is a
//! directory): its clap `Args`, whose doc comments are the help text, man
//! page and completions; a `run` that makes one library call; and a
//! renderer for text and `--json`. Arguments arrive typed (`values`);
//! `context` holds what every command shares (key, directory, clock,
//! progress); `error` is the one error type and its exit codes.

mod access;
mod add;
mod approve;
mod audit;
mod card;
mod completions;
mod context;
mod demo;
mod deploy;
mod deployments;
mod error;
mod hook;
mod init;
mod lineage;
mod list;
mod log;
mod man;
mod policy;
mod progress;
mod promote;
mod pull;
mod purge;
mod render;
mod report;
mod retention;
mod rollback;
mod show;
mod signers;
mod status;
mod sync;
mod values;
mod verify;
mod witness;

use std::error::Error as _;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use mvault::model::text::escape;

use context::Ctx;
use error::{CliError, CliResult};

/// Keep ML models as encrypted, signed blobs in a git repository.
#[derive(Parser, Debug)]
#[command(name = "mvault", version, about, long_about = None)]
pub struct Cli {
    /// Your OpenSSH ed25519 private key (else $MVAULT_KEY, else git's
    /// user.signingkey, else ~/.ssh/id_ed25519). A passphrase is read from
    /// $MVAULT_PASSPHRASE.
    #[arg(long, global = true, value_name = "PATH")]
    key: Option<PathBuf>,
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Draw no progress on the terminal (errors and warnings still print).
    #[arg(short = 'q', long, global = true)]
    quiet: bool,
    /// Say what each long step did: one line per step and per file on
    /// stderr, terminal or not.
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Every command; the help text of each is on its `Args`.
#[derive(Subcommand, Debug)]
enum Command {
    Init(init::Args),
    // Boxed: the model card makes its arguments the largest by far.
    Add(Box<add::Args>),
    Pull(pull::Args),
    Purge(purge::Args),
    Verify(verify::Args),
    List(list::Args),
    Show(show::Args),
    Approve(approve::Args),
    Promote(promote::Args),
    Rollback(rollback::Args),
    Deploy(deploy::Args),
    Deployments(deployments::Args),
    Status(status::Args),
    Sync(sync::Args),
    Log(log::Args),
    Audit(audit::Args),
    Access(access::Args),
    Lineage(lineage::Args),
    Report(report::Args),
    Signers(signers::Args),
    Retention(retention::Args),
    Policy(policy::Args),
    Hook(hook::Args),
    Demo(demo::Args),
    Completions(completions::Args),
    Man(man::Args),
    Witness(witness::Args),
}

/// Parse arguments, run, print; returns the exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A value our parsers refused (a model name, a version, a
        // reference…): the library's message and hint, as from any other
        // failure. Everything else (usage, --help, a flag's possible
        // values, "did you mean") clap prints and exits with, 2 or 0.
        Err(e) => match e.source().and_then(|s| s.downcast_ref::<CliError>()) {
            Some(refused) => return print_error(refused.clone(), &mut std::io::stdout()),
            None => e.exit(),
        },
    };
    let mut out = std::io::stdout().lock();
    let ctx = Ctx::new(cli.key, cli.dir, cli.quiet, cli.verbose);
    let result = dispatch(cli.command, &ctx, &mut out);
    match result {
        Ok(()) => 0,
        Err(e) => print_error(e, &mut out),
    }
}

/// Print an error as `mvault: …` and `hint: …` lines; its exit code.
fn print_error(e: CliError, out: &mut dyn Write) -> i32 {
    if e.broken_pipe {
        return 0;
    }
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    if e.message.is_empty() {
        return e.exit_code();
    }
    // Messages quote paths, names and text from the repository and the
    // server: escaped line by line, so none can forge a line or drive the
    // terminal.
    let mut lines = e.message.lines();
    let first = lines.next().unwrap_or_default();
    let _ = writeln!(err, "mvault: {}", escape(first));
    for l in lines {
        let _ = writeln!(err, "{}", escape(l));
    }
    for h in &e.hints {
        let _ = writeln!(err, "hint: {}", escape(h));
    }
    e.exit_code()
}

fn dispatch(command: Command, ctx: &Ctx, out: &mut dyn Write) -> CliResult {
    match command {
        Command::Init(args) => init::run(args, ctx, out),
        Command::Add(args) => add::run(*args, ctx, out),
        Command::Pull(args) => pull::run(args, ctx, out),
        Command::Purge(args) => purge::run(args, ctx, out),
        Command::Verify(args) => verify::run(args, ctx, out),
        Command::Witness(args) => witness::run(args, ctx, out),
        Command::List(args) => list::run(args, ctx, out),
        Command::Show(args) => show::run(args, ctx, out),
        Command::Approve(args) => approve::run(args, ctx, out),
        Command::Promote(args) => promote::run(args, ctx, out),
        Command::Rollback(args) => rollback::run(args, ctx, out),
        Command::Deploy(args) => deploy::run(args, ctx, out),
        Command::Deployments(args) => deployments::run(args, ctx, out),
        Command::Status(args) => status::run(args, ctx, out),
        Command::Sync(args) => sync::run(args, ctx, out),
        Command::Log(args) => log::run(args, ctx, out),
        Command::Audit(args) => audit::run(args, ctx, out),
        Command::Access(args) => access::run(args, ctx, out),
        Command::Lineage(args) => lineage::run(args, ctx, out),
        Command::Report(args) => report::run(args, ctx, out),
        Command::Signers(args) => signers::run(args, ctx, out),
        Command::Retention(args) => retention::run(args, ctx, out),
        Command::Policy(args) => policy::run(args, ctx, out),
        Command::Hook(args) => hook::run(args, ctx, out),
        Command::Demo(args) => demo::run(args, ctx, out),
        Command::Completions(args) => completions::run(args, ctx, out),
        Command::Man(args) => man::run(args, ctx, out),
    }
}

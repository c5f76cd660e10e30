//! The command line's one error type: a kind (user, policy, integrity,
//! internal) that chooses the exit code, a message and hints.

use mvault::vault::{ErrorKind, VaultError};

/// A failure as the user sees it. It is also the error of the value
/// parsers (`values`), so that a name refused while clap parses reaches
/// the user with the library's message and hint, as any other failure.
#[derive(Debug, Clone)]
pub struct CliError {
    pub(super) kind: ErrorKind,
    pub(super) message: String,
    pub(super) hints: Vec<String>,
    /// Output went to a reader that left (`mvault log | head`): not a failure.
    pub(super) broken_pipe: bool,
}

impl CliError {
    pub(super) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
            hints: Vec::new(),
            broken_pipe: false,
        }
    }
    pub(super) fn user(message: impl Into<String>) -> Self {
        CliError::new(ErrorKind::User, message)
    }
    /// An error whose lines were already printed.
    pub(super) fn quiet(mut self) -> Self {
        self.message.clear();
        self
    }
    pub(super) fn hint(mut self, h: impl Into<String>) -> Self {
        self.hints.push(h.into());
        self
    }
    pub(super) fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::User => 2,
            ErrorKind::Policy => 3,
            ErrorKind::Integrity => 4,
            ErrorKind::Internal => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<VaultError> for CliError {
    fn from(e: VaultError) -> Self {
        CliError {
            kind: e.kind(),
            message: e.to_string(),
            hints: e.hint().into_iter().collect(),
            broken_pipe: false,
        }
    }
}

impl From<mvault::model::names::NameError> for CliError {
    fn from(e: mvault::model::names::NameError) -> Self {
        // The same message and hint ("did you mean …") as from the library.
        CliError::from(VaultError::Name(e))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError {
            kind: ErrorKind::Internal,
            message: e.to_string(),
            hints: Vec::new(),
            broken_pipe: e.kind() == std::io::ErrorKind::BrokenPipe,
        }
    }
}

pub(super) type CliResult = Result<(), CliError>;

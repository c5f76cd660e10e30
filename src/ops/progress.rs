//! How far a long step has come. The library only counts bytes and names
//! the step and the file it is at; whoever called it draws that (the CLI,
//! on a terminal) or ignores it. Steps are told from several threads at
//! once.

/// What a long step tells as it goes.
pub trait Progress: Sync {
    /// A step begins: `step` names it ("encrypting", "pushing", …) and
    /// `total` is its size in bytes, or 0 when it has no size to count.
    fn begin(&self, _step: &str, _total: u64) {}
    /// The step has reached the file at `path` (a relative path of the
    /// version: untrusted text, to be escaped before it is shown).
    fn file(&self, _path: &str) {}
    /// `bytes` more bytes of the step are done.
    fn advance(&self, _bytes: u64) {}
    /// The step is over.
    fn end(&self) {}
}

/// Nothing is told: for library callers that draw nothing.
pub struct Silent;

impl Progress for Silent {}

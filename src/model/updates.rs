//! git's pre-receive lines, `<old> <new> <ref>`: untrusted text read into
//! checked updates.

use serde::Serialize;

use crate::store::objects::{self, ObjectId};

/// One ref update git asks about.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    pub old: String,
    pub new: String,
    pub refname: String,
}

impl Update {
    /// The old value, `None` when the ref is created.
    pub fn old_id(&self) -> Option<ObjectId> {
        objects::parse_id(&self.old).filter(|id| !id.is_null())
    }

    /// The new value, `None` when the ref is deleted.
    pub fn new_id(&self) -> Option<ObjectId> {
        objects::parse_id(&self.new).filter(|id| !id.is_null())
    }

    /// Whether the update deletes its ref.
    pub fn is_deletion(&self) -> bool {
        self.new.bytes().all(|b| b == b'0')
    }

    /// Whether the update creates its ref.
    pub fn is_creation(&self) -> bool {
        self.old.bytes().all(|b| b == b'0')
    }
}

/// Parse git's pre-receive input.
pub fn parse_updates(input: &str) -> Result<Vec<Update>, String> {
    let mut out = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(old), Some(new), Some(refname)) if old.len() == 40 && new.len() == 40 => out
                .push(Update {
                    old: old.to_owned(),
                    new: new.to_owned(),
                    refname: refname.to_owned(),
                }),
            _ => {
                return Err(format!(
                    "unreadable pre-receive line {:?}",
                    crate::model::text::escape(line)
                ))
            }
        }
    }
    Ok(out)
}

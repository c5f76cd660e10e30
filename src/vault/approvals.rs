//! The approval tags of a repository, read through the store.

use crate::model::approval::{
    parse_approval, parse_approval_name, Approval, ApprovalError, APPROVAL_PREFIX,
};
use crate::model::names::{ModelName, Stage, Version};
use crate::store::{ObjectId, Store, StoreError};

/// Read approval tag `name` (object `id`) from the store and check it.
pub fn read_approval(
    store: &Store,
    name: &str,
    id: ObjectId,
) -> Result<Approval, ReadApprovalError> {
    let (_, data) = store.object(id)?;
    Ok(parse_approval(name, id, &data)?)
}

/// Why an approval could not be read from the store.
#[derive(Debug, thiserror::Error)]
pub enum ReadApprovalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invalid(#[from] ApprovalError),
}

/// Every approval tag for `stage` of `model@version` in the repository.
pub fn approvals_for(
    store: &Store,
    model: &ModelName,
    version: &Version,
    stage: Stage,
) -> Result<Vec<Result<Approval, ReadApprovalError>>, StoreError> {
    let prefix = format!("refs/tags/{APPROVAL_PREFIX}{stage}/");
    let mut out = Vec::new();
    for (name, id) in store.refs_with_prefix(&prefix)? {
        let short = name.trim_start_matches("refs/tags/");
        match parse_approval_name(short) {
            Some((_, _, m, v)) if &m == model && &v == version => {
                out.push(read_approval(store, short, id))
            }
            _ => {}
        }
    }
    Ok(out)
}

//! The deployment records on a tree of `main`: what is deployed where.
//! Read by `deployments`, `lineage` and the report; each record on a
//! replayed main was judged by the deploy rules (rules 79 to 82).

use crate::model::deployment::{
    parse_deployment_path, DeploymentRecord, DEPLOYMENTS_DIR, RECORD_FILE,
};
use crate::model::names::ModelName;
use crate::store::ObjectId;

use super::{Vault, VaultError};

impl Vault {
    /// Every deployment record on `tree` (of `model` only, when given), by
    /// environment then model.
    pub fn deployments(
        &self,
        tree: ObjectId,
        model: Option<&ModelName>,
    ) -> Result<Vec<DeploymentRecord>, VaultError> {
        let mut out = Vec::new();
        let mut stack = vec![DEPLOYMENTS_DIR.to_owned()];
        while let Some(dir) = stack.pop() {
            for e in self.store.list_dir(tree, &dir)? {
                let path = format!("{dir}/{}", e.name);
                if e.is_tree {
                    // deployments/<env>/<at most 4 model segments>
                    if path.matches('/').count() <= 5 {
                        stack.push(path);
                    }
                    continue;
                }
                if e.name != RECORD_FILE {
                    continue;
                }
                let Some((_, m)) = parse_deployment_path(&path) else {
                    continue;
                };
                if model.is_some_and(|want| *want != m) {
                    continue;
                }
                let (_, bytes) = self.store.object(e.id)?;
                let r =
                    DeploymentRecord::parse(&String::from_utf8_lossy(&bytes)).map_err(|err| {
                        VaultError::Input {
                            path: path.clone(),
                            reason: err.to_string(),
                        }
                    })?;
                out.push(r);
            }
        }
        out.sort_by(|a, b| (&a.environment, &a.model).cmp(&(&b.environment, &b.model)));
        Ok(out)
    }
}

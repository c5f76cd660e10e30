//! A model's promotions, read from the repository's tags.

use std::collections::BTreeSet;

use crate::model::names::{ModelName, Stage, Version};
use crate::model::promotion::{parse_promotion, parse_promotion_name, Promotion, PromotionError};
use crate::rules::stages::ModelStages;
use crate::store::{Store, StoreError};

/// Why a model's promotions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadPromotionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Invalid(#[from] PromotionError),
}

/// Read promotion tag `name` (object `id`) from the store.
pub fn read_promotion(
    store: &Store,
    name: &str,
    id: crate::store::ObjectId,
) -> Result<Promotion, ReadPromotionError> {
    let (_, data) = store.object(id)?;
    Ok(parse_promotion(name, id, &data)?)
}

/// Read every promotion tag of `model` from the repository's refs.
pub fn read_stages(store: &Store, model: &ModelName) -> Result<ModelStages, ReadPromotionError> {
    read_stages_excluding(store, model, &BTreeSet::new())
}

/// Like [`read_stages`], ignoring the refs named in `exclude`.
pub fn read_stages_excluding(
    store: &Store,
    model: &ModelName,
    exclude: &BTreeSet<String>,
) -> Result<ModelStages, ReadPromotionError> {
    let prefix = format!("refs/tags/{model}#");
    let mut promotions = Vec::new();
    let mut max_counter = 0;
    for (name, id) in store.refs_with_prefix(&prefix)? {
        if exclude.contains(&name) {
            continue;
        }
        let short = name.trim_start_matches("refs/tags/");
        let Some((m, _, n)) = parse_promotion_name(short) else {
            continue;
        };
        if &m != model {
            continue;
        }
        max_counter = max_counter.max(n);
        promotions.push(read_promotion(store, short, id)?);
    }
    promotions.sort_by_key(|p| p.counter);
    Ok(ModelStages {
        promotions,
        max_counter,
    })
}

/// The stage of `version` as of main's commit `at`: only promotions whose
/// `Mvault-Record` is `at` or an ancestor of it count.
pub fn stage_at(
    store: &Store,
    model: &ModelName,
    version: &Version,
    at: crate::store::ObjectId,
) -> Result<Stage, StoreError> {
    Ok(stages_at(store, model, at)?
        .stage_of(&version.to_string())
        .stage)
}

/// The stage story of `model` as of main's commit `at`: only promotions
/// whose `Mvault-Record` is `at` or an ancestor of it count.
pub fn stages_at(
    store: &Store,
    model: &ModelName,
    at: crate::store::ObjectId,
) -> Result<ModelStages, StoreError> {
    let mut stages = read_stages(store, model).map_err(|e| StoreError::Git(e.to_string()))?;
    let mut kept = Vec::new();
    for p in std::mem::take(&mut stages.promotions) {
        let Some(record) = p.record.as_deref().and_then(|r| r.parse().ok()) else {
            continue;
        };
        if store.has_object(record) && store.is_ancestor(record, at)? {
            kept.push(p);
        }
    }
    stages.promotions = kept;
    Ok(stages)
}

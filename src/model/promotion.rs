//! Stages and promotions, derived from signed tags alone.
//!
//! A promotion is an annotated, signed tag `<model>#<stage>#<n>` (the GTO
//! form) on the commit that added the version; `n` is one more than the
//! highest counter on any tag of the model, and each promotion names the
//! object id of the one before, so the promotions of a model form a hash
//! chain. A version's stage is the stage of its latest promotion
//! (development when it has none); what a stage serves is decided in
//! `rules::stages` alone.
//!
//! Two promotions racing for the same counter are serialised by git itself:
//! every promotion also creates `refs/mvault/seq/<model>/<n>`, and a ref can
//! be created only once, so exactly one of two pushes with the same `n` lands.

use serde::Serialize;

use crate::model::approval::RECORD_TRAILER;
use crate::model::names::{ModelName, Stage};
use crate::model::trailers::{trailer, trailers};
use crate::store::objects::{self, ObjectId};

/// Namespace of the refs that serialise promotion counters.
pub const SEQ_PREFIX: &str = "refs/mvault/seq/";

/// What a promotion tag does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionAction {
    /// A move along the stage machine.
    Promote,
    /// An earlier production version put back in production.
    Rollback,
}

impl PromotionAction {
    /// The trailer value.
    pub fn as_str(self) -> &'static str {
        match self {
            PromotionAction::Promote => "promote",
            PromotionAction::Rollback => "rollback",
        }
    }
}

/// A parsed promotion tag.
#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    /// The tag name, `<model>#<stage>#<n>`.
    pub name: String,
    #[serde(serialize_with = "ser_id")]
    pub id: ObjectId,
    pub model: String,
    pub stage: Stage,
    pub counter: u64,
    pub version: String,
    pub from: Option<Stage>,
    pub action: PromotionAction,
    /// Object id of the previous promotion tag of the model, `None` for the first.
    pub previous: Option<String>,
    /// Approval tags it relies on: `(name, object id)`.
    pub approvals: Vec<(String, String)>,
    pub manifest_sha256: String,
    pub ticket: Option<String>,
    pub reason: Option<String>,
    /// `Mvault-Record`: the commit of main the promotion was made against.
    pub record: Option<String>,
    /// Tagger name and unix time.
    pub tagger: String,
    pub time: i64,
    #[serde(serialize_with = "ser_id")]
    pub target: ObjectId,
}

fn ser_id<S: serde::Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_string())
}

impl serde::Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A tag name of the promotion form: `(model, stage, counter)`.
pub fn parse_promotion_name(name: &str) -> Option<(ModelName, Stage, u64)> {
    let (rest, n) = name.rsplit_once('#')?;
    let (model, stage) = rest.rsplit_once('#')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    Some((
        ModelName::parse(model).ok()?,
        Stage::parse(stage).ok()?,
        n.parse().ok()?,
    ))
}

/// The name of a promotion tag.
pub fn promotion_name(model: &ModelName, stage: Stage, n: u64) -> String {
    format!("{model}#{stage}#{n}")
}

/// The seq ref that serialises counter `n` of `model`.
pub fn seq_ref(model: &ModelName, n: u64) -> String {
    format!("{SEQ_PREFIX}{model}/{n}")
}

/// Why a promotion tag could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PromotionError {
    /// The tag is not a well-formed promotion.
    #[error("tag {name}: {reason}")]
    Malformed { name: String, reason: String },
}

/// Parse promotion tag `name` (object `id`, bytes `data`). The signature
/// is checked by the rules, which know whose it must be.
pub fn parse_promotion(name: &str, id: ObjectId, data: &[u8]) -> Result<Promotion, PromotionError> {
    let bad = |reason: &str| PromotionError::Malformed {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let (model, stage, counter) =
        parse_promotion_name(name).ok_or_else(|| bad("not <model>#<stage>#<n>"))?;
    let tag = objects::parse_tag(data).map_err(|e| bad(&e.to_string()))?;
    let t = trailers(&tag.message);
    let get = |k: &str| trailer(&t, k).map(str::to_owned);
    let action = match get("Mvault-Action").as_deref() {
        Some("promote") => PromotionAction::Promote,
        Some("rollback") => PromotionAction::Rollback,
        _ => return Err(bad("Mvault-Action is not promote or rollback")),
    };
    // The message must say what the name says.
    if get("Mvault-Model").as_deref() != Some(model.as_str()) {
        return Err(bad("Mvault-Model does not match the tag name"));
    }
    if get("Mvault-To-Stage").as_deref() != Some(stage.as_str()) {
        return Err(bad("Mvault-To-Stage does not match the tag name"));
    }
    let from = match get("Mvault-From-Stage").as_deref() {
        None | Some("none") => None,
        Some(s) => Some(Stage::parse(s).map_err(|e| bad(&e.to_string()))?),
    };
    let previous = get("Mvault-Previous-Promotion").filter(|p| p != "none");
    let approvals = t
        .iter()
        .filter(|(k, _)| k == "Mvault-Approval")
        .filter_map(|(_, v)| v.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
        .collect();
    let tagger = tag.tagger.as_ref();
    Ok(Promotion {
        name: name.to_owned(),
        id,
        model: model.to_string(),
        stage,
        counter,
        version: get("Mvault-Version").ok_or_else(|| bad("no Mvault-Version"))?,
        from,
        action,
        previous,
        approvals,
        manifest_sha256: get("Mvault-Manifest-Sha256")
            .ok_or_else(|| bad("no Mvault-Manifest-Sha256"))?,
        ticket: get("Mvault-Ticket"),
        reason: get("Mvault-Reason"),
        tagger: tagger.map(|s| s.name.clone()).unwrap_or_default(),
        time: tagger.map(|s| s.time).unwrap_or(i64::MIN),
        record: get(RECORD_TRAILER),
        target: tag.target,
    })
}

/// Whether a tag object carries an SSH signature (checked elsewhere).
pub fn is_signed(data: &[u8]) -> bool {
    objects::split_tag_signature(data).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_names_parse() {
        let (m, s, n) = parse_promotion_name("nlp/bert#production#12").unwrap();
        assert_eq!((m.as_str(), s, n), ("nlp/bert", Stage::Production, 12));
        assert!(parse_promotion_name("nlp/bert#prod#1").is_none());
        assert!(parse_promotion_name("nlp/bert#production#01").is_none());
        assert!(parse_promotion_name("nlp/bert@v1.0.0").is_none());
        assert!(parse_promotion_name("nlp/bert#production#").is_none());
    }
}

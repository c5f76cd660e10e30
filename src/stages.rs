//! Stages and promotions, derived from signed tags alone.
//!
//! A promotion is an annotated, signed tag `<model>#<stage>#<n>` (the GTO
//! form) on the commit that added the version; `n` is one more than the
//! highest counter on any tag of the model, and each promotion names the
//! object id of the one before, so the promotions of a model form a hash
//! chain. A version's stage is the stage of its latest promotion
//! (development when it has none); a stage's current version is the version
//! most recently promoted into it, which is what GTO shows too.
//!
//! Two promotions racing for the same counter are serialised by git itself:
//! every promotion also creates `refs/mvault/seq/<model>/<n>`, and a ref can
//! be created only once, so exactly one of two pushes with the same `n` lands.

use std::collections::BTreeMap;

use gix::ObjectId;
use serde::Serialize;

use crate::names::{ModelName, Stage, Version};
use crate::store::{Store, StoreError};
use crate::vault::split_tag_signature;

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

/// The `Mvault-*` trailers of a message, in order.
pub fn trailers(message: &str) -> Vec<(String, String)> {
    message
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| k.starts_with("Mvault-") && !k.contains(' '))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The single value of trailer `key`.
pub fn trailer<'a>(t: &'a [(String, String)], key: &str) -> Option<&'a str> {
    let mut it = t.iter().filter(|(k, _)| k == key);
    let first = it.next()?;
    if it.next().is_some() {
        return None;
    }
    Some(first.1.as_str())
}

/// Why a promotion tag could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PromotionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tag is not a well-formed promotion.
    #[error("tag {name}: {reason}")]
    Malformed { name: String, reason: String },
}

/// Why a tag name is not of the promotion form, quoted in refusals.
const NOT_A_PROMOTION_NAME: &str = "not <model>#<stage>#<n>";

/// Parse the promotion tag object `id` named `name`.
pub fn read_promotion(
    store: &Store,
    name: &str,
    id: ObjectId,
) -> Result<Promotion, PromotionError> {
    let bad = |reason: &str| PromotionError::Malformed {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    // The name is checked before the store is asked for anything.
    parse_promotion_name(name).ok_or_else(|| bad(NOT_A_PROMOTION_NAME))?;
    let (kind, data) = store.object(id)?;
    if kind != gix::object::Kind::Tag {
        return Err(bad("not an annotated tag"));
    }
    parse_promotion_tag(name, id, &data)
}

/// Parse the bytes of the tag object `id` named `name` as a promotion: the
/// message must say what the name says. This is [`read_promotion`] without
/// the store, so it can be tested on any bytes.
pub fn parse_promotion_tag(
    name: &str,
    id: ObjectId,
    data: &[u8],
) -> Result<Promotion, PromotionError> {
    let bad = |reason: &str| PromotionError::Malformed {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let (model, stage, counter) =
        parse_promotion_name(name).ok_or_else(|| bad(NOT_A_PROMOTION_NAME))?;
    let tag = gix::objs::TagRef::from_bytes(data, gix::hash::Kind::Sha1)
        .map_err(|e| bad(&e.to_string()))?;
    let message = String::from_utf8_lossy(tag.message).into_owned();
    let t = trailers(&message);
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
    let tagger = tag.tagger().ok().flatten();
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
        tagger: tagger.map(|s| s.name.to_string()).unwrap_or_default(),
        time: tagger
            .and_then(|s| s.time().ok())
            .map(|t| t.seconds)
            .unwrap_or(0),
        target: tag.target(),
    })
}

/// Whether a tag object carries an SSH signature (checked elsewhere).
pub fn is_signed(data: &[u8]) -> bool {
    split_tag_signature(data).is_some()
}

/// The stage story of one model, replayed from its promotion tags.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelStages {
    /// Promotions in counter order.
    pub promotions: Vec<Promotion>,
    /// The highest counter on any tag of the model.
    pub max_counter: u64,
}

/// One version's place in the stage machine.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStage {
    pub stage: Stage,
    /// Whether the version was ever promoted into production.
    pub ever_production: bool,
}

impl ModelStages {
    /// Read every promotion tag of `model` from the repository's refs.
    pub fn read(store: &Store, model: &ModelName) -> Result<Self, PromotionError> {
        Self::read_excluding(store, model, &std::collections::BTreeSet::new())
    }

    /// Like [`ModelStages::read`], ignoring the refs named in `exclude`.
    pub fn read_excluding(
        store: &Store,
        model: &ModelName,
        exclude: &std::collections::BTreeSet<String>,
    ) -> Result<Self, PromotionError> {
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

    /// The latest promotion (highest counter).
    pub fn last(&self) -> Option<&Promotion> {
        self.promotions.last()
    }

    /// The stage of `version`: its latest promotion's, else development.
    pub fn stage_of(&self, version: &str) -> VersionStage {
        let mut stage = Stage::Development;
        let mut ever_production = false;
        for p in self.promotions.iter().filter(|p| p.version == version) {
            stage = p.stage;
            ever_production |= p.stage == Stage::Production;
        }
        VersionStage {
            stage,
            ever_production,
        }
    }

    /// The current version of `stage`: the one most recently promoted into it.
    pub fn current(&self, stage: Stage) -> Option<&str> {
        self.promotions
            .iter()
            .rev()
            .find(|p| p.stage == stage)
            .map(|p| p.version.as_str())
    }

    /// The version to serve for `stage`: the one most recently promoted
    /// into it that is still in it. Unlike [`ModelStages::current`] (GTO's
    /// view), a version that moved on, to deprecated say, is not served.
    pub fn serving(&self, stage: Stage) -> Option<&str> {
        self.promotions
            .iter()
            .rev()
            .filter(|p| p.stage == stage)
            .map(|p| p.version.as_str())
            .find(|v| self.stage_of(v).stage == stage)
    }

    /// Each stage's current version.
    pub fn heads(&self) -> BTreeMap<&'static str, String> {
        Stage::ALL
            .iter()
            .filter_map(|s| self.current(*s).map(|v| (s.as_str(), v.to_owned())))
            .collect()
    }
}

/// Whether the stage machine allows `from → to` as a plain promotion.
pub fn transition_allowed(from: Stage, to: Stage) -> bool {
    use Stage::*;
    matches!(
        (from, to),
        (Development, Staging)
            | (Staging, Production)
            | (Staging, Development)
            | (Production, Deprecated)
            | (Deprecated, Archived)
    )
}

/// The stages reachable from `from`, for messages.
pub fn next_stages(from: Stage) -> Vec<&'static str> {
    Stage::ALL
        .iter()
        .filter(|to| transition_allowed(from, **to))
        .map(|s| s.as_str())
        .collect()
}

/// The version that `nlp/bert#production` names.
pub fn resolve_stage(
    store: &Store,
    model: &ModelName,
    stage: Stage,
) -> Result<Option<Version>, PromotionError> {
    let stages = ModelStages::read(store, model)?;
    Ok(stages.serving(stage).and_then(|v| Version::parse(v).ok()))
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

    #[test]
    fn stage_machine() {
        use Stage::*;
        assert!(transition_allowed(Development, Staging));
        assert!(!transition_allowed(Development, Production));
        assert!(transition_allowed(Staging, Development));
        assert!(!transition_allowed(Archived, Production));
        assert_eq!(next_stages(Staging), vec!["development", "production"]);
    }
}

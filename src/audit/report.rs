//! Lineage and compliance reports, built from the audit events alone.
//!
//! The HTML report is one self-contained file: inline CSS and an inline SVG
//! drawing of the lineage, no script, no external fetch, so it opens
//! offline and can be archived with the evidence it describes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::audit::events::{self, AuditReport, Event, Filter};
use crate::model::manifest::CardView;
use crate::model::names::ModelName;
use crate::rules::stages::{ModelStages, StageHead};
use crate::vault::{Vault, VaultError};

/// One version in the lineage tree.
#[derive(Debug, Clone, Serialize)]
pub struct LineageNode {
    pub version: String,
    pub parent: Option<String>,
    pub author: String,
    pub created: String,
    /// When the server accepted the version, from the receipt that landed
    /// its commit (`None`: no receipt of the pinned server key names it).
    pub received: Option<String>,
    pub stage: &'static str,
    /// Whether its stage serves it (`model#stage` names it); a version
    /// replaced in its stage by a newer promotion is not served.
    pub serving: bool,
    /// `(counter, stage, action)` in order.
    pub history: Vec<(u64, String, String)>,
    /// The environments whose newest deployment of the model is this
    /// version (main's deployment records).
    pub deployed_to: Vec<String>,
}

/// `mvault lineage MODEL`, from the model's promotions as the caller
/// believes them (`ops::audit::lineage` replays them first).
pub fn lineage(
    vault: &Vault,
    model: &ModelName,
    stages: &ModelStages,
) -> Result<Vec<LineageNode>, VaultError> {
    let (_, tree) = vault.main()?;
    let versions = vault.versions_of(tree, model)?;
    let deployed = vault.deployments(tree, Some(model))?;
    if versions.is_empty() {
        return Err(VaultError::NoSuchModel {
            model: model.to_string(),
        });
    }
    let received = crate::audit::events::received_times(&vault.store);
    let mut out = Vec::new();
    for v in versions {
        let rec = vault.record(model, &v)?;
        let vs = v.to_string();
        let view = stages.version_view(&vs);
        out.push(LineageNode {
            serving: view.serving,
            parent: rec.manifest.parent.as_ref().map(|p| p.to_string()),
            author: rec.manifest.author.clone(),
            created: rec.manifest.created.clone(),
            received: rec
                .commit
                .and_then(|c| received.get(&c))
                .and_then(|r| time::OffsetDateTime::from_unix_timestamp(r.time).ok())
                .map(crate::vault::rfc3339),
            stage: view.stage.as_str(),
            history: stages
                .promotions
                .iter()
                .filter(|p| p.version == vs)
                .map(|p| (p.counter, p.stage.to_string(), p.action.as_str().to_owned()))
                .collect(),
            deployed_to: deployed
                .iter()
                .filter(|d| d.version == v)
                .map(|d| d.environment.to_string())
                .collect(),
            version: vs,
        });
    }
    Ok(out)
}

/// Render a lineage as an indented tree.
pub fn lineage_text(model: &str, nodes: &[LineageNode]) -> String {
    let mut out = format!("{model}\n");
    fn walk(out: &mut String, nodes: &[LineageNode], parent: Option<&str>, depth: usize) {
        for n in nodes.iter().filter(|n| {
            n.parent.as_deref() == parent
                || (depth == 0
                    && parent.is_none()
                    && n.parent
                        .as_deref()
                        .is_some_and(|p| !nodes.iter().any(|m| m.version == p)))
        }) {
            let hist: Vec<String> = n
                .history
                .iter()
                .map(|(c, s, a)| {
                    if a == "rollback" {
                        format!("#{c} {s} (rollback)")
                    } else {
                        format!("#{c} {s}")
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "{}{} [{}{}] {} {}{}{}{}",
                "  ".repeat(depth + 1),
                n.version,
                n.stage,
                if n.serving || n.history.is_empty() {
                    ""
                } else {
                    ", replaced"
                },
                n.author,
                n.created,
                n.received
                    .as_deref()
                    .map(|r| format!(" (received {r})"))
                    .unwrap_or_default(),
                if hist.is_empty() {
                    String::new()
                } else {
                    format!("  {}", hist.join(" → "))
                },
                if n.deployed_to.is_empty() {
                    String::new()
                } else {
                    format!("  deployed to {}", n.deployed_to.join(", "))
                }
            );
            walk(out, nodes, Some(&n.version), depth + 1);
        }
    }
    walk(&mut out, nodes, None, 0);
    out
}

/// A compliance report for one model and period.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub generated: String,
    pub events_by_action: BTreeMap<String, usize>,
    pub actors: BTreeMap<String, usize>,
    pub versions_affected: Vec<String>,
    /// Each promotion in the period and the approvals behind it.
    pub promotions: Vec<PromotionLine>,
    /// For each stage that serves a version, that version.
    pub current_stages: BTreeMap<&'static str, String>,
    /// Every stage: what it serves and why (rules::stages).
    pub stage_heads: Vec<StageHead>,
    pub integrity: AuditReport,
    pub lineage: Vec<LineageNode>,
    /// Each version's model card (type, labels, data, schemas, pins).
    pub model_cards: Vec<VersionCard>,
    /// Each deployment in the period: the chain of custody into the
    /// environments.
    pub deployments: Vec<DeploymentLine>,
    pub events: Vec<Event>,
}

/// One version's card, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct VersionCard {
    pub version: String,
    pub card: CardView,
}

/// A deployment, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentLine {
    pub time: String,
    pub version: String,
    pub environment: String,
    pub by: String,
    pub manifest_sha256: Option<String>,
    pub reason: Option<String>,
    /// The deploy commit.
    pub commit: String,
}

/// A promotion and its approvals, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct PromotionLine {
    pub tag: String,
    pub time: String,
    pub version: String,
    pub from: Option<String>,
    pub to: String,
    pub by: String,
    pub approvals: Vec<String>,
    pub ticket: Option<String>,
    pub reason: Option<String>,
}

/// Build the report.
pub fn build(
    vault: &Vault,
    model: &ModelName,
    since: Option<i64>,
    until: Option<i64>,
    now: time::OffsetDateTime,
    integrity: AuditReport,
    stages: &ModelStages,
) -> Result<Report, VaultError> {
    let filter = Filter {
        since,
        until,
        ..Filter::default()
    };
    // The model's own events, and the policy events that concern it: those
    // naming no model (users added or removed) and grants whose glob covers it.
    let events: Vec<Event> = events::events(vault, &filter)?
        .into_iter()
        .filter(|e| match &e.model {
            None => true,
            Some(m) if m == model.as_str() => true,
            Some(g) => {
                e.version.is_none()
                    && globset::GlobBuilder::new(g)
                        .literal_separator(true)
                        .build()
                        .is_ok_and(|g| g.compile_matcher().is_match(model.as_str()))
            }
        })
        .collect();
    let mut events_by_action = BTreeMap::new();
    let mut actors = BTreeMap::new();
    let mut versions = std::collections::BTreeSet::new();
    for e in &events {
        *events_by_action.entry(e.action.clone()).or_insert(0) += 1;
        *actors.entry(e.actor.clone()).or_insert(0) += 1;
        if let Some(v) = &e.version {
            versions.insert(v.clone());
        }
    }
    let promotions = stages
        .promotions
        .iter()
        .filter(|p| since.is_none_or(|s| p.time >= s) && until.is_none_or(|u| p.time <= u))
        .map(|p| PromotionLine {
            tag: p.name.clone(),
            time: time::OffsetDateTime::from_unix_timestamp(p.time)
                .map(crate::vault::rfc3339)
                .unwrap_or_default(),
            version: p.version.clone(),
            from: p.from.map(|s| s.to_string()),
            to: p.stage.to_string(),
            by: p.tagger.clone(),
            approvals: p.approvals.iter().map(|(n, _)| n.clone()).collect(),
            ticket: p.ticket.clone(),
            reason: p.reason.clone(),
        })
        .collect();
    let deployments = events
        .iter()
        .filter(|e| e.action == "deploy")
        .map(|e| DeploymentLine {
            time: e.time.clone(),
            version: e.version.clone().unwrap_or_default(),
            environment: e.environment.clone().unwrap_or_default(),
            by: e.actor.clone(),
            manifest_sha256: e.manifest_sha256.clone(),
            reason: e.reason.clone(),
            commit: e.source.clone(),
        })
        .collect();
    let fmt = |t: Option<i64>| {
        t.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .map(crate::vault::rfc3339)
    };
    let (_, tree) = vault.main()?;
    let mut model_cards = Vec::new();
    for v in vault.versions_of(tree, model)? {
        let rec = vault.record(model, &v)?;
        model_cards.push(VersionCard {
            version: v.to_string(),
            card: rec.manifest.card.view(),
        });
    }
    Ok(Report {
        model_cards,
        model: model.to_string(),
        since: fmt(since),
        until: fmt(until),
        generated: crate::vault::rfc3339(now),
        events_by_action,
        actors,
        versions_affected: versions.into_iter().collect(),
        promotions,
        current_stages: stages.serving_map(),
        stage_heads: stages.heads(),
        integrity,
        lineage: lineage(vault, model, stages)?,
        deployments,
        events,
    })
}

fn integrity_line(r: &AuditReport) -> String {
    match &r.first_break {
        None => format!(
            "intact: {} commits, {} tags, {} signatures checked",
            r.commits, r.tags, r.signatures
        ),
        Some(b) => format!("BROKEN at {}: {}: {}", b.object, b.rule, b.detail),
    }
}

/// Markdown.
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Compliance report: {}\n", r.model);
    let _ = writeln!(
        o,
        "- period: {} to {}",
        r.since.as_deref().unwrap_or("the beginning"),
        r.until.as_deref().unwrap_or("now")
    );
    let _ = writeln!(o, "- generated: {}", r.generated);
    let _ = writeln!(o, "- chain integrity: {}\n", integrity_line(&r.integrity));
    let _ = writeln!(
        o,
        "## Current stages\n\n| stage | serves | why |\n| --- | --- | --- |"
    );
    for h in &r.stage_heads {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            h.stage,
            h.serving.as_deref().unwrap_or("-"),
            md_escape(&h.why())
        );
    }
    let _ = writeln!(
        o,
        "\n## Events by type\n\n| action | count |\n| --- | --- |"
    );
    for (a, n) in &r.events_by_action {
        let _ = writeln!(o, "| {a} | {n} |");
    }
    let _ = writeln!(o, "\n## Actors\n\n| actor | events |\n| --- | --- |");
    for (a, n) in &r.actors {
        let _ = writeln!(o, "| {} | {n} |", md_escape(a));
    }
    let _ = writeln!(
        o,
        "\n## Versions affected\n\n{}",
        r.versions_affected.join(", ")
    );
    let _ = writeln!(o, "\n## Promotions and their approvals\n\n| tag | time | version | from → to | by | approvals | ticket | reason |\n| --- | --- | --- | --- | --- | --- | --- | --- |");
    for p in &r.promotions {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} → {} | {} | {} | {} | {} |",
            md_escape(&p.tag),
            p.time,
            p.version,
            p.from.as_deref().unwrap_or("-"),
            p.to,
            md_escape(&p.by),
            md_escape(&p.approvals.join(", ")),
            md_escape(p.ticket.as_deref().unwrap_or("")),
            md_escape(p.reason.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(o, "\n## Deployments\n\n| time | version | environment | by | manifest | reason | commit |\n| --- | --- | --- | --- | --- | --- | --- |");
    for d in &r.deployments {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            d.time,
            md_escape(&d.version),
            md_escape(&d.environment),
            md_escape(&d.by),
            d.manifest_sha256.as_deref().unwrap_or(""),
            md_escape(d.reason.as_deref().unwrap_or("")),
            md_escape(&d.commit)
        );
    }
    let _ = writeln!(
        o,
        "\n## Model cards\n\n| version | type | labels | training data | schemas | dependencies | description |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for c in &r.model_cards {
        let [v, t, l, d, s, p, desc] = card_cells(c);
        let _ = writeln!(
            o,
            "| {v} | {t} | {} | {} | {s} | {p} | {} |",
            md_escape(&l),
            md_escape(&d),
            md_escape(&desc)
        );
    }
    let _ = writeln!(
        o,
        "\n## Lineage\n\n```\n{}```",
        lineage_text(&r.model, &r.lineage)
    );
    let _ = writeln!(o, "\n## Timeline\n\n| time | action | actor | version | stage | source |\n| --- | --- | --- | --- | --- | --- |");
    for e in &r.events {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            e.time,
            e.action,
            md_escape(&e.actor),
            e.version.as_deref().unwrap_or(""),
            md_escape(
                e.stage
                    .as_deref()
                    .or(e.environment.as_deref())
                    .unwrap_or("")
            ),
            md_escape(&e.source)
        );
    }
    o
}

/// A card's cells: version, type, labels, training data, schemas,
/// dependencies (count and names), description; unescaped.
fn card_cells(c: &VersionCard) -> [String; 7] {
    let k = &c.card;
    let data = k
        .training_dataset
        .as_ref()
        .map(|d| match &d.sha256 {
            Some(h) => format!("{} (sha256 {h})", d.uri),
            None => d.uri.clone(),
        })
        .unwrap_or_default();
    let schemas = match (&k.input_schema, &k.output_schema) {
        (Some(_), Some(_)) => "input, output",
        (Some(_), None) => "input",
        (None, Some(_)) => "output",
        (None, None) => "",
    };
    let deps = if k.dependencies.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = k
            .dependencies
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect();
        format!("{}: {}", names.len(), names.join(", "))
    };
    [
        c.version.clone(),
        k.model_type.unwrap_or("").to_owned(),
        k.labels.join(", "),
        data,
        schemas.to_owned(),
        deps,
        k.description.clone().unwrap_or_default(),
    ]
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn stage_color(stage: &str) -> &'static str {
    match stage {
        "production" => "#2e7d32",
        "staging" => "#f9a825",
        "deprecated" => "#8d6e63",
        "archived" => "#9e9e9e",
        _ => "#1565c0",
    }
}

/// The lineage as an inline SVG: one row per version, indented by depth,
/// an edge from each parent, colored by current stage.
pub fn lineage_svg(nodes: &[LineageNode]) -> String {
    // Depth by following parents (a parent may have a higher version).
    let parent: BTreeMap<&str, &str> = nodes
        .iter()
        .filter_map(|n| n.parent.as_deref().map(|p| (n.version.as_str(), p)))
        .collect();
    let known: std::collections::BTreeSet<&str> =
        nodes.iter().map(|n| n.version.as_str()).collect();
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes {
        let mut d = 0;
        let mut at = n.version.as_str();
        while let Some(p) = parent.get(at).copied().filter(|p| known.contains(p)) {
            d += 1;
            at = p;
            if d > nodes.len() {
                break;
            }
        }
        depth.insert(&n.version, d);
    }
    let row = 46;
    let width = 200 + 120 * depth.values().max().copied().unwrap_or(0) + 260;
    let height = 20 + row * nodes.len().max(1);
    let mut pos: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut svg = format!(
        "<svg id=\"lineage\" role=\"img\" aria-label=\"lineage graph\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"13\">\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        let x = 20 + 120 * depth[n.version.as_str()];
        let y = 20 + row * i;
        pos.insert(&n.version, (x, y));
    }
    for n in nodes {
        if let Some((px, py)) = n.parent.as_deref().and_then(|p| pos.get(p)) {
            let (x, y) = pos[n.version.as_str()];
            let _ = writeln!(
                svg,
                "<path class=\"edge\" d=\"M{} {} V{} H{}\" fill=\"none\" stroke=\"#555\" stroke-width=\"1.5\"/>",
                px + 20,
                py + 28,
                y + 14,
                x
            );
        }
    }
    for n in nodes {
        let (x, y) = pos[n.version.as_str()];
        let _ = writeln!(
            svg,
            "<g class=\"node\"><rect x=\"{x}\" y=\"{y}\" width=\"110\" height=\"28\" rx=\"6\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" fill=\"#fff\">{}</text><text x=\"{}\" y=\"{}\" fill=\"#333\">{} · {}{}</text></g>",
            stage_color(n.stage),
            x + 8,
            y + 19,
            html_escape(&n.version),
            x + 120,
            y + 19,
            n.stage,
            html_escape(&n.author),
            if n.deployed_to.is_empty() {
                String::new()
            } else {
                format!(" · in {}", html_escape(&n.deployed_to.join(", ")))
            }
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A single self-contained HTML file.
pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let title = format!("Compliance report: {}", html_escape(&r.model));
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}th{{background:#f3f3f3}}.ok{{color:#2e7d32}}.bad{{color:#c62828;font-weight:bold}}</style></head><body>\n<h1>{title}</h1>\n"
    );
    let _ = writeln!(
        o,
        "<p>Period: {} to {}. Generated {}.</p>",
        html_escape(r.since.as_deref().unwrap_or("the beginning")),
        html_escape(r.until.as_deref().unwrap_or("now")),
        html_escape(&r.generated)
    );
    let cls = if r.integrity.ok { "ok" } else { "bad" };
    let _ = writeln!(
        o,
        "<p id=\"integrity\" class=\"{cls}\">Chain integrity: {}</p>",
        html_escape(&integrity_line(&r.integrity))
    );
    let _ = writeln!(o, "<h2>Lineage</h2>\n{}", lineage_svg(&r.lineage));
    let _ = writeln!(
        o,
        "<h2>Current stages</h2><table><tr><th>stage</th><th>serves</th><th>why</th></tr>"
    );
    for h in &r.stage_heads {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            h.stage,
            html_escape(h.serving.as_deref().unwrap_or("-")),
            html_escape(&h.why())
        );
    }
    let _ = writeln!(
        o,
        "</table><h2>Events by type</h2><table><tr><th>action</th><th>count</th></tr>"
    );
    for (a, n) in &r.events_by_action {
        let _ = writeln!(o, "<tr><td>{}</td><td>{n}</td></tr>", html_escape(a));
    }
    let _ = writeln!(
        o,
        "</table><h2>Actors</h2><table><tr><th>actor</th><th>events</th></tr>"
    );
    for (a, n) in &r.actors {
        let _ = writeln!(o, "<tr><td>{}</td><td>{n}</td></tr>", html_escape(a));
    }
    let _ = writeln!(
        o,
        "</table><h2>Versions affected</h2><p>{}</p>",
        html_escape(&r.versions_affected.join(", "))
    );
    let _ = writeln!(o, "<h2>Promotions and their approvals</h2><table><tr><th>tag</th><th>time</th><th>version</th><th>from → to</th><th>by</th><th>approvals</th><th>ticket</th><th>reason</th></tr>");
    for p in &r.promotions {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&p.tag),
            p.time,
            html_escape(&p.version),
            p.from.as_deref().unwrap_or("-"),
            p.to,
            html_escape(&p.by),
            html_escape(&p.approvals.join(", ")),
            html_escape(p.ticket.as_deref().unwrap_or("")),
            html_escape(p.reason.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(o, "</table><h2>Model cards</h2><table id=\"model-cards\"><tr><th>version</th><th>type</th><th>labels</th><th>training data</th><th>schemas</th><th>dependencies</th><th>description</th></tr>");
    for c in &r.model_cards {
        let cells = card_cells(c).map(|x| html_escape(&x));
        let _ = writeln!(o, "<tr><td>{}</td></tr>", cells.join("</td><td>"));
    }
    let _ = writeln!(o, "</table><h2>Deployments</h2><table id=\"deployments\"><tr><th>time</th><th>version</th><th>environment</th><th>by</th><th>manifest</th><th>reason</th><th>commit</th></tr>");
    for d in &r.deployments {
        let _ = writeln!(
            o,
            "<tr class=\"deployment\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&d.time),
            html_escape(&d.version),
            html_escape(&d.environment),
            html_escape(&d.by),
            html_escape(d.manifest_sha256.as_deref().unwrap_or("")),
            html_escape(d.reason.as_deref().unwrap_or("")),
            html_escape(&d.commit)
        );
    }
    let _ = writeln!(o, "</table><h2>Timeline</h2><table id=\"timeline\"><tr><th>time</th><th>action</th><th>actor</th><th>version</th><th>stage</th><th>source</th></tr>");
    for e in &r.events {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.time,
            html_escape(&e.action),
            html_escape(&e.actor),
            html_escape(e.version.as_deref().unwrap_or("")),
            html_escape(
                e.stage
                    .as_deref()
                    .or(e.environment.as_deref())
                    .unwrap_or("")
            ),
            html_escape(&e.source)
        );
    }
    o.push_str("</table></body></html>\n");
    o
}

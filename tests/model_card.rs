//! The model card (issue 10, typed metadata): `add` records it in the
//! signed manifest, `show` and `show --json` print it, `list --type` and
//! `--label` filter by it, and the compliance report carries it in JSON,
//! Markdown and HTML.

use crate::common::*;

fn card_vault() -> Vault {
    let v = Vault::new();
    let model = v.path("model");
    write_file(&model.join("weights.bin"), b"weights");
    let input = v.path("in.json");
    write_file(
        &input,
        br#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {"text": {"type": "string", "maxLength": 512}}}"#,
    );
    let output = v.path("out.json");
    write_file(
        &output,
        br#"{"type": "array", "items": {"type": "number"}}"#,
    );
    v.add(
        &model,
        "nlp/bert",
        "1.0.0",
        &[
            "--model-type",
            "nlp",
            "--description",
            "Sentiment of reviews.\nEnglish only <b>.",
            "--label",
            "prod",
            "--label",
            "team:search",
            "--training-dataset",
            &format!("s3://corpus/reviews@sha256:{}", "ab".repeat(32)),
            "--input-schema",
            path_str(&input),
            "--output-schema",
            path_str(&output),
        ],
    )
    .success();
    write_file(&model.join("weights.bin"), b"weights 2");
    v.add(
        &model,
        "nlp/bert",
        "1.1.0",
        &["--model-type", "classification", "--label", "prod"],
    )
    .success();
    v.add(&model, "nlp/gpt", "1.0.0", &[]).success();
    v
}

#[test]
fn show_prints_the_card_and_list_filters_by_type_and_label() {
    let v = card_vault();
    let show = v
        .mvault(&v.repo, &v.alice, &["show", "nlp/bert@1.0.0"])
        .success()
        .stdout();
    for line in [
        "type        nlp\n",
        "description Sentiment of reviews.\n            English only <b>.\n",
        "labels      prod, team:search\n",
        &format!(
            "training    s3://corpus/reviews (sha256 {})\n",
            "ab".repeat(32)
        ),
        "input       schema, ",
        "output      schema, ",
    ] {
        assert!(show.contains(line), "{line:?} in:\n{show}");
    }
    let json: serde_json::Value = serde_json::from_str(
        &v.mvault(&v.repo, &v.alice, &["show", "nlp/bert@1.0.0", "--json"])
            .success()
            .stdout(),
    )
    .expect("JSON");
    let card = &json["card"];
    assert_eq!(card["model_type"], "nlp");
    assert_eq!(card["labels"], serde_json::json!(["prod", "team:search"]));
    assert_eq!(card["input_schema"]["properties"]["text"]["maxLength"], 512);
    assert_eq!(card["output_schema"]["items"]["type"], "number");
    assert_eq!(card["training_dataset"]["uri"], "s3://corpus/reviews");

    let list = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["list"];
        all.extend_from_slice(args);
        v.mvault(&v.repo, &v.alice, &all)
            .success()
            .stdout()
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(list(&[]).len(), 3);
    assert_eq!(list(&["--type", "nlp"]), ["nlp/bert@1.0.0"]);
    assert_eq!(
        list(&["--label", "prod"]),
        ["nlp/bert@1.0.0", "nlp/bert@1.1.0"]
    );
    assert_eq!(
        list(&["--label", "prod", "--label", "team:search"]),
        ["nlp/bert@1.0.0"]
    );
    assert!(list(&["--type", "generative"]).is_empty());
    // A typo in the type: clap names the values and the nearest.
    let run = v.mvault(&v.repo, &v.alice, &["list", "--type", "computer-vision"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.output());
    assert!(run.stderr().contains("computer_vision"), "{}", run.output());
}

#[test]
fn the_report_carries_each_versions_card_in_every_format() {
    let v = card_vault();
    let report = |format: &str| {
        v.mvault(
            &v.repo,
            &v.admin,
            &["report", "nlp/bert", "--format", format],
        )
        .success()
        .stdout()
    };
    let json: serde_json::Value = serde_json::from_str(&report("json")).expect("JSON");
    let cards = json["model_cards"].as_array().expect("model_cards");
    assert_eq!(cards.len(), 2, "{json}");
    assert_eq!(cards[0]["version"], "1.0.0");
    assert_eq!(cards[0]["card"]["model_type"], "nlp");
    assert_eq!(cards[1]["card"]["model_type"], "classification");
    let md = report("md");
    assert!(
        md.contains(&format!(
            "| 1.0.0 | nlp | prod, team:search | s3://corpus/reviews (sha256 {}) | input, output |  | Sentiment of reviews. English only <b>. |",
            "ab".repeat(32)
        )),
        "{md}"
    );
    let html = report("html");
    assert!(html.contains("<table id=\"model-cards\">"), "{html}");
    assert!(
        html.contains("<td>Sentiment of reviews.\nEnglish only &lt;b&gt;.</td>"),
        "the description is escaped: {html}"
    );
}

#[test]
fn hostile_card_values_are_refused_before_anything_is_written() {
    let v = Vault::new();
    let model = v.path("model");
    write_file(&model.join("weights.bin"), b"w");
    let cases: &[(&[&str], &str)] = &[
        (&["--description", "clear\u{1b}[2J"], "control character"),
        (&["--label", "Prod"], "\"Prod\": 1 to 64 characters"),
        (&["--training-dataset", "train.csv"], "a URI with a scheme"),
        (
            &["--training-dataset", "s3://x@sha256:abc"],
            "64 hex digits",
        ),
    ];
    for (args, fragment) in cases {
        let run = v.add(&model, "nlp/x", "1.0.0", args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.output());
        assert!(
            run.stderr().contains(fragment),
            "{args:?}: {}",
            run.output()
        );
        assert!(!run.stderr().contains('\u{1b}'), "{}", run.output());
    }
    assert!(v
        .mvault(&v.repo, &v.alice, &["list"])
        .success()
        .stdout()
        .is_empty());
}

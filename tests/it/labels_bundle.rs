//! The label vocabulary read from the real upstream NV-Segment-CTMR files, and
//! from temporary bundles that mirror the upstream layout (with and without
//! `configs/inference.json`). Expectations are computed from the JSON files
//! independently of the code under test wherever they can be.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ctmr_skill::labels::{LabelError, LabelTable, MatchKind, Modality, ResolveErrorKind};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `<repo>/../shared/upstream-data/NV-Segment-CTMR` (CI), else the machine's shared copy.
fn upstream_root() -> PathBuf {
    let beside = common::repo_root().join("../shared/upstream-data/NV-Segment-CTMR");
    let shared = PathBuf::from("/work/shared/upstream-data/NV-Segment-CTMR");
    for candidate in [beside, shared] {
        if candidate.join("configs/metadata.json").is_file() {
            return candidate;
        }
    }
    panic!(
        "upstream label files not found: place NV-Segment-CTMR/configs/{{metadata,label_dict,label_mappings}}.json \
         under ../shared/upstream-data beside the repository"
    );
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn channel_def() -> serde_json::Map<String, Value> {
    read_json(&upstream_root().join("configs/metadata.json"))["network_data_format"]["outputs"]
        ["pred"]["channel_def"]
        .as_object()
        .unwrap()
        .clone()
}

/// Second element of each pair of a dataset in label_mappings.json.
fn mapped_ids(dataset: &str) -> BTreeSet<u32> {
    read_json(&upstream_root().join("configs/label_mappings.json"))[dataset]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1].as_u64().unwrap() as u32)
        .collect()
}

fn ct_body_expected() -> BTreeSet<u32> {
    let excluded = [
        2, 16, 18, 20, 21, 23, 24, 25, 26, 27, 128, 129, 130, 131, 132,
    ];
    (1..=132).filter(|id| !excluded.contains(id)).collect()
}

fn upstream() -> LabelTable {
    LabelTable::load_bundle(&upstream_root()).expect("upstream bundle loads")
}

/// A temporary bundle with copies of the three real upstream files.
fn temp_bundle() -> tempfile::TempDir {
    let dir = common::fresh_dir();
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    for name in ["metadata.json", "label_dict.json", "label_mappings.json"] {
        std::fs::copy(
            upstream_root().join("configs").join(name),
            configs.join(name),
        )
        .unwrap();
    }
    dir
}

fn write_inference(bundle: &Path, config: &Value) {
    std::fs::write(
        bundle.join("configs/inference.json"),
        serde_json::to_vec_pretty(config).unwrap(),
    )
    .unwrap();
}

/// The label-related keys of the upstream inference.json, in the upstream forms.
fn upstream_style_inference() -> Value {
    serde_json::json!({
        "bundle_root": "./",
        "label_mapping": "$json.loads(pathlib.Path(@bundle_root + '/configs/label_mappings.json').read_text())",
        "ct_body": "$list(set([i+1 for i in range(132)]) - set([2,16,18,20,21,23,24,25,26,27,128,129,130,131,132]))",
        "mri_body": "$[i[1] for i in @label_mapping['TotalSegmentatorMR']]",
        "mri_brain": "$[i[1] for i in @label_mapping['LUMIR']]",
        "modality": "MRI_BODY",
        "everything_labels": "${'CT_BODY': @ct_body, 'MRI_BODY': @mri_body, 'MRI_BRAIN': @mri_brain}[@modality]",
        "subclass": {
            "2": [14, 5],
            "20": [28, 29, 30, 31, 32],
            "21": "$list(range(33, 57)) + list(range(63, 98)) + [114, 120, 122]"
        }
    })
}

#[test]
fn upstream_has_345_classes_named_as_channel_def() {
    let table = upstream();
    let def = channel_def();
    assert_eq!(table.len(), 345);
    assert_eq!(
        table.len(),
        def.len() - 1,
        "every channel_def entry but background"
    );
    assert!(table.get(0).is_none(), "background is not a class");
    assert_eq!(table.name(5), Some("right kidney"));
    assert_eq!(table.name(14), Some("left kidney"));
    for (id, name) in &def {
        let id: u32 = id.parse().unwrap();
        if id != 0 {
            assert_eq!(table.name(id), name.as_str(), "id {id}");
        }
    }
    let ids: Vec<u32> = table.iter().map(|c| c.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "iteration is in id order"
    );
}

#[test]
fn deprecated_classes_are_the_names_ending_deprecated() {
    let table = upstream();
    let expected: BTreeSet<u32> = channel_def()
        .iter()
        .filter(|(_, n)| n.as_str().unwrap().ends_with("(deprecated)"))
        .map(|(id, _)| id.parse().unwrap())
        .collect();
    let flagged: BTreeSet<u32> = table
        .iter()
        .filter(|c| c.deprecated)
        .map(|c| c.id)
        .collect();
    assert_eq!(flagged, expected);
    assert_eq!(flagged.len(), 16);
    assert!(flagged.contains(&16) && flagged.contains(&162));
    assert!(!table.get(1).unwrap().deprecated);
}

#[test]
fn classes_carry_label_dict_datasets_and_label_mappings() {
    let table = upstream();
    let dict = read_json(&upstream_root().join("configs/label_dict.json"));
    let liver = table.get(1).unwrap();
    let mut expected: Vec<String> = ["CT", "MRI"]
        .iter()
        .flat_map(|m| dict["liver"][m].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(liver.datasets, expected);
    assert_eq!(liver.modalities, vec!["CT", "MRI"]);
    // AMOS22 labels left kidney 3 (label_mappings.json: [3, 14]).
    let left = table.get(14).unwrap();
    assert!(left
        .dataset_labels
        .iter()
        .any(|d| d.dataset == "AMOS22" && d.local_id == 3));
    assert!(
        table.get(2).unwrap().datasets.is_empty(),
        "kidney has no training data"
    );
}

#[test]
fn sources_are_the_files_read_with_their_sha256() {
    let table = upstream();
    let names: Vec<String> = table
        .sources()
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["metadata.json", "label_dict.json", "label_mappings.json"]
    );
    for source in table.sources() {
        let digest = Sha256::digest(std::fs::read(&source.path).unwrap());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(source.sha256, hex, "{}", source.path.display());
    }
    assert!(table
        .notes()
        .iter()
        .any(|n| n.contains("inference.json absent")));
}

#[test]
fn everything_sets_without_inference_json_use_the_documented_definitions() {
    let table = upstream();
    let ct = table.everything_set(Modality::CtBody).unwrap();
    assert_eq!(ct, &ct_body_expected());
    assert_eq!(ct.len(), 117, "upstream docs: 117 CT classes");
    assert!(table
        .everything_set_source(Modality::CtBody)
        .unwrap()
        .starts_with("built-in"));

    let mri_body = table.everything_set(Modality::MriBody).unwrap();
    assert_eq!(mri_body, &mapped_ids("TotalSegmentatorMR"));
    assert_eq!(
        mri_body.len(),
        50,
        "upstream docs: the 50 TotalSegmentatorMR classes"
    );
    let source = table.everything_set_source(Modality::MriBody).unwrap();
    assert!(source.contains("label_mappings.json") && source.contains("TotalSegmentatorMR"));

    let brain = table.everything_set(Modality::MriBrain).unwrap();
    assert_eq!(brain, &mapped_ids("LUMIR"));
    assert!(!brain.is_empty());
    assert!(table
        .everything_set_source(Modality::MriBrain)
        .unwrap()
        .contains("LUMIR"));
}

#[test]
fn prompt_expansion_follows_upstream_subclasses() {
    let table = upstream();
    assert_eq!(table.expand_prompts(&[2]), BTreeSet::from([5, 14]));
    assert_eq!(table.expand_prompts(&[20]), (28..=32).collect());
    let bone: BTreeSet<u32> = (33..=56).chain(63..=97).chain([114, 120, 122]).collect();
    assert_eq!(table.expand_prompts(&[21]), bone);
    assert_eq!(
        table.expand_prompts(&[1, 2, 3]),
        BTreeSet::from([1, 3, 5, 14])
    );
    assert_eq!(table.expand_prompts(&[14]), BTreeSet::from([14]));
    assert!(table.expand_prompts(&[]).is_empty());
    assert!(table.subclass_source().unwrap().starts_with("built-in"));
}

#[test]
fn resolves_exact_normalised_and_substring_names() {
    let table = upstream();
    assert_eq!(table.resolve("Liver"), Ok(1));
    assert_eq!(
        table.resolve("kidney"),
        Ok(2),
        "an exact name wins over substrings"
    );
    assert_eq!(table.resolve("lung"), Ok(20));
    for variant in [
        "Left Kidney",
        "kidney_left",
        "left-kidney",
        "kidney left",
        " KIDNEY  LEFT ",
    ] {
        assert_eq!(table.resolve(variant), Ok(14), "{variant}");
    }
    assert_eq!(table.resolve("right_kidney"), Ok(5));
    let costal = table.resolve_match("costal").unwrap();
    assert_eq!((costal.id, costal.matched_by), (114, MatchKind::Substring));
    let brain = table
        .resolve_match("left superior parietal lobule")
        .unwrap();
    assert_eq!(brain.name, "Left-SPL---superior-parietal-lobule");
    assert_eq!(table.resolve("14"), Ok(14));
}

#[test]
fn every_class_resolves_from_its_name_in_any_spelling() {
    let table = upstream();
    for class in table.iter() {
        let exact = table.resolve_match(&class.name).unwrap();
        assert_eq!((exact.id, exact.matched_by), (class.id, MatchKind::Exact));
        let shouted = class.name.to_uppercase().replace(' ', "_");
        assert_eq!(table.resolve(&shouted), Ok(class.id), "{shouted}");
        let words: Vec<&str> = class
            .name
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let reversed = words.iter().rev().copied().collect::<Vec<_>>().join("-");
        assert_eq!(table.resolve(&reversed), Ok(class.id), "{reversed}");
        assert_eq!(table.resolve(&class.id.to_string()), Ok(class.id));
    }
}

#[test]
fn deprecated_classes_resolve_and_are_flagged() {
    let table = upstream();
    let tumour = table.resolve_match("liver tumor").unwrap();
    assert_eq!((tumour.id, tumour.deprecated), (130, true));
    assert_eq!(tumour.matched_by, MatchKind::Normalised);
    let exact = table.resolve_match("Uterus (deprecated)").unwrap();
    assert_eq!((exact.id, exact.matched_by), (162, MatchKind::Exact));
    assert!(table.resolve_match("uterus").unwrap().deprecated);
}

#[test]
fn ambiguous_names_list_every_match() {
    let table = upstream();
    let err = table.resolve("vertebra").unwrap_err();
    assert_eq!(err.kind, ResolveErrorKind::Ambiguous);
    let expected: BTreeSet<u32> = channel_def()
        .iter()
        .filter(|(_, n)| n.as_str().unwrap().to_lowercase().contains("vertebra"))
        .map(|(id, _)| id.parse().unwrap())
        .collect();
    let got: BTreeSet<u32> = err.candidates.iter().map(|(id, _)| *id).collect();
    assert_eq!(got, expected);
    let message = err.to_string();
    assert!(message.starts_with(&format!("'vertebra' matches {} classes: ", expected.len())));
    assert!(message.contains("and 18 more"), "{message}");

    let lobes = table.resolve("lung lobe").unwrap_err();
    assert_eq!(lobes.kind, ResolveErrorKind::Ambiguous);
    let got: BTreeSet<u32> = lobes.candidates.iter().map(|(id, _)| *id).collect();
    assert_eq!(got, (28..=32).collect());
}

#[test]
fn unknown_names_list_the_closest_real_names() {
    let table = upstream();
    let err = table.resolve("hepar").unwrap_err();
    assert_eq!(err.kind, ResolveErrorKind::Unknown);
    assert_eq!(err.candidates.len(), 5);
    for (id, name) in &err.candidates {
        assert_eq!(
            table.name(*id),
            Some(name.as_str()),
            "candidates are real classes"
        );
    }
    assert!(
        err.candidates[0].1.starts_with("hepatic"),
        "{:?}",
        err.candidates
    );
    let message = err.to_string();
    let (first_id, first_name) = &err.candidates[0];
    assert!(message.starts_with(&format!(
        "no class named 'hepar'; closest: {first_name} ({first_id})"
    )));
    assert_eq!(
        table.resolve("").unwrap_err().kind,
        ResolveErrorKind::Unknown
    );
    let err = table.resolve("0").unwrap_err();
    assert_eq!(err.kind, ResolveErrorKind::Unknown);
    assert!(
        err.candidates.is_empty(),
        "a number is an id, never a substring"
    );
    assert_eq!(
        err.to_string(),
        "no class has id 0; pass a defined class id or a class name"
    );
}

/// `resolve` names of `length` characters that match no class: distinct words of
/// pseudo-random letters, so every name goes through every stage and the ranking.
fn unmatched_names(count: usize, length: usize) -> Vec<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..count)
        .map(|_| {
            (0..length)
                .map(|j| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if j % 7 == 6 {
                        ' '
                    } else {
                        char::from(b'a' + (state % 26) as u8)
                    }
                })
                .collect()
        })
        .collect()
}

/// Issue 21 (6): `list_labels` `resolve` states its caps in the manifest; at the caps
/// (count × length) it answers quickly with a bounded reply on the 345-class table,
/// and one name or one character more is refused naming the argument and the cap.
#[test]
fn resolve_at_the_manifest_caps_answers_quickly_and_beyond_them_is_refused() {
    use ctmr_skill::manifest::args::validate;
    use ctmr_skill::tools::list_labels::{document, LabelsRequest};
    let manifest = ctmr_skill::manifest::embedded().unwrap();
    let tool = manifest.tool("list_labels").unwrap();
    let spec = tool.argument("resolve").unwrap();
    let count = spec.max_items.expect("resolve states max_items");
    let length = spec.items.as_ref().and_then(|i| i.max_length);
    let length = length.expect("resolve's items state max_length");
    let mut names = unmatched_names(count, length);
    let args = serde_json::json!({ "resolve": names });
    validate(tool, args.as_object().unwrap()).expect("at the caps is accepted");

    let table = upstream();
    let request = LabelsRequest {
        resolve: names.clone(),
        ..LabelsRequest::default()
    };
    let started = std::time::Instant::now();
    let doc = document(&table, &request);
    let took = started.elapsed();
    let bytes = doc.to_string().len();
    eprintln!(
        "bench: resolve {count} names x {length} chars, {} classes: {:.3} s, reply {bytes} bytes",
        table.len(),
        took.as_secs_f64()
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "stalled: {took:?}"
    );
    let resolved = doc["resolved"].as_array().unwrap();
    assert_eq!(resolved.len(), count);
    assert!(resolved
        .iter()
        .all(|r| r["id"].is_null() && r["candidates"].as_array().unwrap().len() <= 10));
    assert!(
        bytes < count * (2 * length + 1024),
        "reply of {bytes} bytes"
    );
    // Below the manifest (the CLI's `labels --resolve`), one megabyte-long name costs
    // what its first 64 characters cost.
    let megabyte = unmatched_names(1, 1 << 20).remove(0);
    let started = std::time::Instant::now();
    assert!(table.resolve(&megabyte).is_err());
    eprintln!(
        "bench: resolve one 1 MiB name: {:.3} s",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    names.push("liver".into());
    let e = validate(
        tool,
        serde_json::json!({ "resolve": names }).as_object().unwrap(),
    );
    let e = e.unwrap_err().to_string();
    assert!(
        e.starts_with("argument 'resolve': ") && e.contains(&format!("at most {count} items")),
        "{e}"
    );
    let long = vec!["k".repeat(length + 1)];
    let e = validate(
        tool,
        serde_json::json!({ "resolve": long }).as_object().unwrap(),
    );
    let e = e.unwrap_err().to_string();
    assert!(
        e.starts_with("argument 'resolve[0]': ")
            && e.contains(&format!("at most {length} characters")),
        "{e}"
    );
}

#[test]
fn table_serialises_for_the_tools() {
    let json = serde_json::to_value(upstream()).unwrap();
    assert_eq!(json["classes"].as_array().unwrap().len(), 345);
    assert_eq!(json["classes"][13]["name"], "left kidney");
    assert_eq!(
        json["everything_sets"]["CT_BODY"]["ids"]
            .as_array()
            .unwrap()
            .len(),
        117
    );
    assert_eq!(json["sources"].as_array().unwrap().len(), 3);
}

#[test]
fn upstream_inference_json_expressions_are_evaluated() {
    let bundle = temp_bundle();
    write_inference(bundle.path(), &upstream_style_inference());
    let table = LabelTable::load_bundle(bundle.path()).unwrap();
    assert_eq!(
        table.everything_set(Modality::CtBody).unwrap(),
        &ct_body_expected()
    );
    assert_eq!(
        table.everything_set(Modality::MriBody).unwrap(),
        &mapped_ids("TotalSegmentatorMR")
    );
    assert_eq!(
        table.everything_set(Modality::MriBrain).unwrap(),
        &mapped_ids("LUMIR")
    );
    assert_eq!(
        table.everything_set_source(Modality::MriBody),
        Some("configs/inference.json: everything_labels['MRI_BODY'] = @mri_body")
    );
    assert_eq!(
        table.subclass_source(),
        Some("configs/inference.json: subclass")
    );
    let bone: BTreeSet<u32> = (33..=56).chain(63..=97).chain([114, 120, 122]).collect();
    assert_eq!(table.expand_prompts(&[21]), bone);
    assert_eq!(table.expand_prompts(&[2]), BTreeSet::from([5, 14]));
    let names: Vec<String> = table
        .sources()
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "metadata.json",
            "label_dict.json",
            "label_mappings.json",
            "inference.json"
        ]
    );
    assert!(table.notes().is_empty(), "{:?}", table.notes());
}

#[test]
fn a_different_bundle_yields_its_own_sets() {
    let bundle = temp_bundle();
    let mut config = upstream_style_inference();
    config["ct_body"] = "$list(range(1, 4)) + [14]".into();
    config["mri_brain"] = serde_json::json!([214, 215]);
    config["subclass"] = serde_json::json!({"2": [14]});
    write_inference(bundle.path(), &config);
    let table = LabelTable::load_bundle(bundle.path()).unwrap();
    assert_eq!(
        table.everything_set(Modality::CtBody).unwrap(),
        &BTreeSet::from([1, 2, 3, 14])
    );
    assert_eq!(
        table.everything_set(Modality::MriBrain).unwrap(),
        &BTreeSet::from([214, 215])
    );
    assert_eq!(table.expand_prompts(&[2, 20]), BTreeSet::from([14, 20]));
}

#[test]
fn plain_modality_keys_and_partial_configs() {
    let bundle = temp_bundle();
    // No everything_labels: the lower-case modality key is read; what is absent falls back.
    write_inference(bundle.path(), &serde_json::json!({"ct_body": [1, 3]}));
    let table = LabelTable::load_bundle(bundle.path()).unwrap();
    assert_eq!(
        table.everything_set(Modality::CtBody).unwrap(),
        &BTreeSet::from([1, 3])
    );
    assert_eq!(
        table.everything_set_source(Modality::CtBody),
        Some("configs/inference.json: ct_body")
    );
    let body_source = table.everything_set_source(Modality::MriBody).unwrap();
    assert!(
        body_source.contains("does not define MRI_BODY"),
        "{body_source}"
    );
    assert!(table
        .subclass_source()
        .unwrap()
        .contains("has no `subclass`"));
}

fn load_err(config: Value) -> LabelError {
    let bundle = temp_bundle();
    write_inference(bundle.path(), &config);
    LabelTable::load_bundle(bundle.path()).unwrap_err()
}

#[test]
fn unsupported_expressions_are_errors_naming_the_key() {
    let err = load_err(serde_json::json!({"ct_body": "$__import__('os').listdir('.')"}));
    assert!(matches!(err, LabelError::UnsupportedExpression { ref key, .. } if key == "ct_body"));
    let message = err.to_string();
    assert!(
        message.contains("inference.json") && message.contains("ct_body"),
        "{message}"
    );

    let err = load_err(serde_json::json!({"everything_labels": "$@ct_body"}));
    assert!(err.to_string().contains("expected a dict literal"), "{err}");

    let err = load_err(serde_json::json!({"a": "$@b", "b": "$@a", "ct_body": "$@a"}));
    assert!(err.to_string().contains("circular reference"), "{err}");

    // As in MONAI, `#` navigates the raw config, never an expression's result.
    let err = load_err(serde_json::json!({
        "label_mapping": "$json.loads(pathlib.Path(@bundle_root + '/configs/label_mappings.json').read_text())",
        "ct_body": "$[i[1] for i in @label_mapping#LUMIR]"
    }));
    assert!(err.to_string().contains("no config item 'LUMIR'"), "{err}");

    let err = load_err(serde_json::json!({"ct_body": "$@nowhere"}));
    assert!(err.to_string().contains("@nowhere is not a key"), "{err}");
}

#[test]
fn ids_the_bundle_does_not_define_are_kept_and_noted() {
    let bundle = temp_bundle();
    write_inference(
        bundle.path(),
        &serde_json::json!({"ct_body": [1, 999], "subclass": {"777": [14, 5]}}),
    );
    let table = LabelTable::load_bundle(bundle.path()).unwrap();
    assert_eq!(
        table.everything_set(Modality::CtBody).unwrap(),
        &BTreeSet::from([1, 999]),
        "what the config runs with, not a filtered guess"
    );
    assert_eq!(table.expand_prompts(&[777]), BTreeSet::from([5, 14]));
    let notes = table.notes().join("\n");
    assert!(
        notes.contains("`ct_body` names 1 id(s)") && notes.contains("(999)"),
        "{notes}"
    );
    assert!(notes.contains("(777)"), "{notes}");
}

#[test]
fn values_that_cannot_be_ids_are_errors() {
    for config in [
        serde_json::json!({"subclass": {"2": [14, 0]}}),
        serde_json::json!({"ct_body": [1, -3]}),
        serde_json::json!({"ct_body": [1, 4294967296_u64]}),
    ] {
        let err = load_err(config.clone());
        assert!(
            matches!(err, LabelError::BadValue { .. }),
            "{config}: {err}"
        );
        assert!(err.to_string().contains("cannot be class ids"), "{err}");
    }
}

#[test]
fn the_demo_bundle_yields_its_own_vocabulary_and_the_upstream_sets() {
    let root = common::repo_root().join("examples/demo-bundle");
    let table = LabelTable::load_bundle(&root).unwrap();
    let metadata = read_json(&root.join("configs/metadata.json"));
    let def = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
        .as_object()
        .unwrap();
    assert_eq!(table.len(), def.len() - 1);
    assert_eq!(table.name(14), Some("left kidney"));
    assert!(table.get(2).is_none(), "the demo does not define kidney");

    assert_eq!(
        table.everything_set(Modality::CtBody).unwrap(),
        &ct_body_expected()
    );
    let mappings = read_json(&root.join("configs/label_mappings.json"));
    for (modality, dataset) in [
        (Modality::MriBody, "TotalSegmentatorMR"),
        (Modality::MriBrain, "LUMIR"),
    ] {
        let expected: BTreeSet<u32> = mappings[dataset]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| pair[1].as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            table.everything_set(modality),
            Some(&expected),
            "{modality}"
        );
        assert!(table
            .everything_set_source(modality)
            .unwrap()
            .starts_with("configs/inference.json"));
    }
    assert_eq!(table.expand_prompts(&[2]), BTreeSet::from([5, 14]));
    assert_eq!(table.resolve("kidney_left"), Ok(14));
    let err = table.resolve("kidney").unwrap_err();
    assert_eq!(
        err.kind,
        ResolveErrorKind::Ambiguous,
        "only right and left kidney exist"
    );
    assert!(
        table
            .notes()
            .iter()
            .any(|n| n.contains("@ct_body` names 110 id(s)")),
        "{:?}",
        table.notes()
    );
    assert!(table
        .sources()
        .iter()
        .any(|s| s.path.ends_with("configs/inference.json")));
}

#[test]
fn missing_and_broken_files_name_the_path_and_the_fix() {
    let empty = common::fresh_dir();
    let err = LabelTable::load_bundle(empty.path()).unwrap_err();
    assert!(matches!(err, LabelError::NotABundle { .. }));
    let message = err.to_string();
    assert!(message.contains(&empty.path().display().to_string()));
    assert!(message.contains("configs/metadata.json"), "{message}");

    let bundle = temp_bundle();
    let metadata = bundle.path().join("configs/metadata.json");
    std::fs::write(&metadata, b"{ not json").unwrap();
    let err = LabelTable::load_bundle(bundle.path()).unwrap_err();
    assert!(
        matches!(err, LabelError::Json { ref path, .. } if path == &metadata),
        "{err}"
    );

    std::fs::write(&metadata, br#"{"network_data_format": {}}"#).unwrap();
    let err = LabelTable::load_bundle(bundle.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("network_data_format.outputs.pred.channel_def"),
        "{err}"
    );
}

#[test]
fn label_dict_that_disagrees_with_channel_def_is_an_error() {
    let bundle = temp_bundle();
    let path = bundle.path().join("configs/label_dict.json");
    std::fs::write(&path, br#"{"spleen": {"index": 1, "datasets": []}}"#).unwrap();
    let err = LabelTable::load_bundle(bundle.path()).unwrap_err();
    assert!(
        matches!(err, LabelError::Inconsistent { path: ref p, .. } if p == &path),
        "{err}"
    );
    assert!(err.to_string().contains("'liver'"), "{err}");
}

#[test]
fn optional_files_may_be_absent() {
    let bundle = temp_bundle();
    std::fs::remove_file(bundle.path().join("configs/label_mappings.json")).unwrap();
    std::fs::remove_file(bundle.path().join("configs/label_dict.json")).unwrap();
    let table = LabelTable::load_bundle(bundle.path()).unwrap();
    assert_eq!(table.len(), 345);
    assert!(table.everything_set(Modality::MriBody).is_none());
    assert!(table.everything_set_source(Modality::MriBody).is_none());
    assert!(table.everything_set(Modality::CtBody).is_some());
    assert_eq!(table.sources().len(), 1);
    assert!(table.notes().iter().any(|n| n.contains("no MRI_BODY set")));
}

//! Our closed evaluator of `inference.json` label expressions against MONAI's
//! own `ConfigParser` on the same files: both must yield the same everything-sets
//! and sub-classes, for the upstream forms and for a bundle with other forms.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use ctmr_skill::labels::{LabelTable, Modality};
use serde_json::{json, Value};

fn upstream_root() -> PathBuf {
    let beside = common::repo_root().join("../shared/upstream-data/NV-Segment-CTMR");
    let shared = PathBuf::from("/work/shared/upstream-data/NV-Segment-CTMR");
    [beside, shared]
        .into_iter()
        .find(|c| c.join("configs/metadata.json").is_file())
        .expect("upstream label files under ../shared/upstream-data/NV-Segment-CTMR/configs")
}

/// MONAI evaluates `everything_labels` once per modality, and `subclass`.
const MONAI_SCRIPT: &str = r#"
import json, sys
from monai.bundle import ConfigParser
root = sys.argv[1]
parser = ConfigParser()
parser.read_config(root + "/configs/inference.json")
parser["bundle_root"] = root
out = {"everything": {}, "subclass": {}}
for modality in ["CT_BODY", "MRI_BODY", "MRI_BRAIN"]:
    parser["modality"] = modality
    out["everything"][modality] = sorted(set(int(i) for i in parser.get_parsed_content("everything_labels", lazy=False)))
for key, ids in parser.get_parsed_content("subclass", lazy=False).items():
    out["subclass"][key] = [int(i) for i in ids]
print(json.dumps(out))
"#;

fn bundle_with(inference: &Value) -> tempfile::TempDir {
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
    std::fs::write(
        configs.join("inference.json"),
        serde_json::to_vec_pretty(inference).unwrap(),
    )
    .unwrap();
    dir
}

fn monai_view(root: &Path) -> Value {
    let out = Command::new(common::python())
        .arg("-c")
        .arg(MONAI_SCRIPT)
        .arg(root)
        .output()
        .expect("spawn python");
    assert!(
        out.status.success(),
        "MONAI ConfigParser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().expect("one JSON line")).unwrap()
}

fn assert_same_as_monai(inference: &Value) -> LabelTable {
    let bundle = bundle_with(inference);
    let table = LabelTable::load_bundle(bundle.path()).unwrap();
    let monai = monai_view(bundle.path());
    for modality in Modality::ALL {
        let expected: BTreeSet<u32> = monai["everything"][modality.as_str()]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert!(!expected.is_empty(), "{modality}");
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
    let expected: BTreeMap<u32, Vec<u32>> = monai["subclass"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let ids = v.as_array().unwrap().iter();
            (
                k.parse().unwrap(),
                ids.map(|i| i.as_u64().unwrap() as u32).collect(),
            )
        })
        .collect();
    assert_eq!(table.subclasses(), &expected);
    table
}

fn imports() -> Value {
    json!(["$import json", "$import pathlib"])
}

#[test]
fn upstream_forms_evaluate_as_monai_does() {
    let table = assert_same_as_monai(&json!({
        "imports": imports(),
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
    }));
    assert_eq!(table.everything_set(Modality::CtBody).unwrap().len(), 117);
}

#[test]
fn other_forms_evaluate_as_monai_does() {
    assert_same_as_monai(&json!({
        "imports": imports(),
        "bundle_root": "./",
        "label_mapping": "$json.loads(pathlib.Path(@bundle_root + '/configs/label_mappings.json').read_text())",
        "brain_pairs": [[1, 214], [2, 215], [3, 215]],
        "ct_body": "$sorted(list(set(@subclass#20) - set([29]))) + list(range(1, 4))",
        "mri_body": "$list(x[1] for x in @label_mapping['TotalSegmentatorMR'])",
        "mri_brain": "$[p[-1] for p in @brain_pairs]",
        "modality": "CT_BODY",
        "everything_labels": "${'CT_BODY': @ct_body, 'MRI_BODY': @mri_body, 'MRI_BRAIN': @mri_brain,}[@modality]",
        "subclass": {"2": [14], "20": "$[28, 30, 29]"}
    }));
}

//! The documented argv, read back by the real venv Python the way `monai.bundle` reads
//! it (python-fire's value parser, `ast.literal_eval`), for paths with spaces, quotes,
//! backslashes, control and non-ASCII characters.

use crate::common;

use std::path::PathBuf;

use ctmr_skill::upstream::{
    build_argv, build_batch_argv, BatchRequest, DeviceRequest, UpstreamRequest,
    CPU_POSTPROCESSING_OVERRIDE,
};
use serde_json::{json, Value};

fn request(input: &str, prompts: Option<Vec<u32>>) -> UpstreamRequest {
    UpstreamRequest {
        python: PathBuf::from("/venv/bin/python"),
        bundle_root: PathBuf::from("/bundle"),
        input: PathBuf::from(input),
        output_dir: PathBuf::from("/out dir/x"),
        modality: "CT_BODY".into(),
        label_prompts: prompts,
        overrides: vec![],
        device: DeviceRequest::Auto,
        tensorrt: false,
    }
}

fn parse_like_monai(args: &[String]) -> Vec<Value> {
    let script = common::repo_root().join("tests/fixtures/upstream/parse_like_monai.py");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    serde_json::from_str(&common::run_python(&script, &refs)).unwrap()
}

#[test]
fn input_dict_round_trips_through_python_exactly() {
    // (path, our text must equal Python's repr)
    let cases: Vec<(&str, bool)> = vec![
        ("/data/plain.nii.gz", true),
        ("/data/with space/case 1.nii.gz", true),
        ("/data/it's.nii.gz", true),
        ("/data/say \"hi\".nii.gz", true),
        ("/data/both ' and \".nii.gz", true),
        ("/data/back\\slash\\'q.nii.gz", true),
        ("/data/tab\there/new\nline/cr\r.nii.gz", true),
        ("/data/ctl\u{1}\u{7f}.nii.gz", true),
        ("/data/ünïcödé 日本語 🫁.nii.gz", true),
        (
            "/data/nbsp\u{a0}ls\u{2028}bom\u{feff}pua\u{e000}.nii.gz",
            true,
        ),
        (
            "/data/$notexpr @notref %notmacro #hash {brace}.nii.gz",
            true,
        ),
        // An unassigned code point: Python escapes it, we keep it; both read back the same.
        ("/data/unassigned\u{378}.nii.gz", false),
    ];
    let mut args = Vec::new();
    let mut texts = Vec::new();
    for (i, (path, _)) in cases.iter().enumerate() {
        let prompts = (i % 2 == 1).then(|| vec![3, 14]);
        let argv = build_argv(&request(path, prompts)).unwrap();
        assert_eq!(argv[6], "--input_dict");
        texts.push(argv[7].clone());
        args.push(argv[7].clone());
        args.push(path.to_string());
    }
    let parsed = parse_like_monai(&args);
    assert_eq!(parsed.len(), cases.len());
    for (i, ((path, exact), entry)) in cases.iter().zip(&parsed).enumerate() {
        let mut expected = json!({ "image": path });
        if i % 2 == 1 {
            expected["label_prompt"] = json!([3, 14]);
        }
        assert_eq!(
            entry["literal_eval"], expected,
            "ast.literal_eval of {}",
            texts[i]
        );
        assert_eq!(entry["fire"], expected, "fire's parse of {}", texts[i]);
        if *exact {
            assert_eq!(
                entry["repr_of_expected"].as_str().unwrap(),
                texts[i],
                "not written as Python's repr"
            );
        }
    }
}

#[test]
fn other_values_reach_monai_as_intended() {
    let mut req = request("/data/ct.nii.gz", Some(vec![3, 14]));
    req.overrides = vec![
        ("patch_size".into(), "[64,64,64]".into()),
        ("sw_batch_size".into(), "2".into()),
        (
            CPU_POSTPROCESSING_OVERRIDE.0.into(),
            CPU_POSTPROCESSING_OVERRIDE.1.into(),
        ),
    ];
    let argv = build_argv(&req).unwrap();
    req.tensorrt = true;
    let trt = build_argv(&req).unwrap();
    let batch = build_batch_argv(&BatchRequest {
        python: PathBuf::from("/venv/bin/python"),
        bundle_root: PathBuf::from("/bundle"),
        input_dir: PathBuf::from("/data/in dir"),
        output_dir: PathBuf::from("/data/out"),
        modality: "MRI_BODY".into(),
        overrides: vec![],
        device: DeviceRequest::Auto,
        tensorrt: true,
    })
    .unwrap();
    // value, what fire must make of it
    let checks = [
        (argv[9].clone(), json!("/out dir/x")),
        (argv[11].clone(), json!("CT_BODY")),
        (argv[13].clone(), json!([64, 64, 64])),
        (argv[15].clone(), json!(2)),
        // `_disabled_` must arrive as a real boolean false.
        (argv[17].clone(), json!(false)),
        (
            trt[5].clone(),
            json!(["configs/inference.json", "configs/inference_trt.json"]),
        ),
        (
            batch[5].clone(),
            json!([
                "configs/inference.json",
                "configs/batch_inference.json",
                "configs/inference_trt.json"
            ]),
        ),
        (batch[7].clone(), json!("/data/in dir")),
    ];
    // Some values are not Python literals (fire falls back to the text): ask fire alone.
    let code = "import json, sys\nfrom fire import parser\nprint(json.dumps([parser.DefaultParseValue(v) for v in sys.argv[1:]]))";
    let out = std::process::Command::new(common::python())
        .arg("-c")
        .arg(code)
        .args(checks.iter().map(|(v, _)| v))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fired: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for ((value, want), got) in checks.iter().zip(&fired) {
        assert_eq!(got, want, "fire reads {value:?} as {got}");
    }
}

//! One real run: `.venv/bin/python -m monai.bundle run` against a tiny bundle written
//! here, whose `run` loads the input with MONAI's LoadImage, writes a mask with
//! SaveImage (the upstream's writer and output layout) and records what it was given.
//! Proves the argv, working directory and environment reach real MONAI as intended.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ctmr_skill::upstream::{
    child_env, expected_mask_path, git_commit, inventory, probe_environment, resolve_root, run,
    weights_provenance, DeviceRequest, MaskAdoption, RunOptions, RunOutcome, UpstreamRequest,
    WeightsProvenance, DEFAULT_PROBE_TIMEOUT,
};
use serde_json::{json, Value};

const TINY_BUNDLE_CONFIG: &str = r#"{
  "imports": ["$import os", "$import json", "$import pathlib"],
  "bundle_root": "./",
  "output_dir": "$@bundle_root + '/eval'",
  "input_dict": "${'image': 'example/missing.nii.gz'}",
  "modality": "MRI_BODY",
  "patch_size": [192, 192, 128],
  "loader": {"_target_": "LoadImage", "image_only": true},
  "saver": {"_target_": "SaveImage", "output_dir": "@output_dir", "output_postfix": "trans",
            "output_ext": ".nii.gz", "separate_folder": true, "resample": false,
            "output_dtype": "$np.float32"},
  "record": "$pathlib.Path(@output_dir, 'record.json')",
  "run": [
    "$print('tiny bundle: segmenting', flush=True)",
    "$@saver(@loader(@input_dict['image']) > 0)",
    "$@record.write_text(json.dumps({'input_dict': @input_dict, 'modality': @modality, 'patch_size': @patch_size, 'cwd': os.getcwd(), 'env': {k: os.environ.get(k) for k in ['MONAI_DATA_DIRECTORY', 'CUDA_VISIBLE_DEVICES']}}))"
  ]
}
"#;

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        }
        out.push(path);
    }
    out.sort();
    out
}

#[tokio::test]
async fn real_monai_bundle_run_gets_the_documented_argv_cwd_and_env() {
    let dir = common::fresh_dir();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let bundle = base.join("bundle");
    std::fs::create_dir_all(bundle.join("configs")).unwrap();
    std::fs::write(bundle.join("configs/inference.json"), TINY_BUNDLE_CONFIG).unwrap();
    let bundle_files_before = files_under(&bundle);

    // A real NIfTI volume (nibabel), at a path with a space, a quote and an inner dot.
    let input = base.join("in dir/case it's.v2.nii.gz");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    let write = "import sys, nibabel as nib, numpy as np\n\
a = np.zeros((8, 8, 8), np.float32); a[2:5, 2:5, 2:5] = 7\n\
nib.save(nib.Nifti1Image(a, np.diag([1.5, 1.5, 2.0, 1.0])), sys.argv[1])";
    let status = std::process::Command::new(common::python())
        .args(["-c", write])
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());

    let resolution = resolve_root(Some(&bundle), None, &base);
    let root = resolution.require().unwrap().to_path_buf();
    assert_eq!(root, bundle);
    let inv = inventory(&root);
    assert!(inv.config_present && !inv.model_pt_present);
    assert_eq!(weights_provenance(&inv, None), WeightsProvenance::Upstream);
    assert_eq!(git_commit(&root), None);

    let out = base.join("out");
    let req = UpstreamRequest {
        python: common::python(),
        bundle_root: root.clone(),
        input: input.clone(),
        output_dir: out.clone(),
        modality: "CT_BODY".into(),
        label_prompts: Some(vec![3, 14]),
        overrides: vec![("patch_size".into(), "[64,64,64]".into())],
        device: DeviceRequest::Cpu,
        tensorrt: false,
    };
    let opts = RunOptions::new(out.join("logs"), Duration::from_secs(600));
    let env = child_env(opts.base_env.clone(), &out, req.device);
    let probe = probe_environment(&req.python, &env, &root, DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap();
    let res = run(&req, &probe, &opts).await.unwrap();
    assert_eq!(
        res.outcome,
        RunOutcome::Exited {
            code: 0,
            signal: None
        },
        "stderr: {}",
        res.stderr_tail
    );
    assert!(std::fs::read_to_string(&res.stdout_log)
        .unwrap()
        .contains("tiny bundle: segmenting"));
    // MONAI logs the overrides it received.
    assert!(res.stderr_tail.contains("patch_size") || res.stdout_tail.contains("patch_size"));

    // What MONAI resolved from our argv, in the bundle root, under our environment.
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("record.json")).unwrap()).unwrap();
    assert_eq!(
        record["input_dict"],
        json!({"image": input.display().to_string(), "label_prompt": [3, 14]})
    );
    assert_eq!(record["modality"], "CT_BODY");
    assert_eq!(record["patch_size"], json!([64, 64, 64]));
    assert_eq!(record["cwd"], root.display().to_string());
    assert_eq!(record["env"]["CUDA_VISIBLE_DEVICES"], "");
    if std::env::var_os("MONAI_DATA_DIRECTORY").is_none() {
        assert_eq!(
            record["env"]["MONAI_DATA_DIRECTORY"],
            out.join("_monai_data").display().to_string()
        );
    }

    // SaveImage wrote exactly where expected_mask_path says, and the run adopted it.
    let mask = expected_mask_path(&out, &input);
    assert_eq!(mask, out.join("case it's.v2/case it's.v2_trans.nii.gz"));
    let Some(MaskAdoption::Adopted { path, .. }) = &res.mask else {
        panic!("mask not adopted: {:?}", res.mask)
    };
    assert_eq!(path, &mask);
    let check = "import sys, nibabel as nib, numpy as np\n\
m = np.asarray(nib.load(sys.argv[1]).dataobj)\n\
print(m.shape, int((m == 1).sum()), int((m == 0).sum()))";
    let said = std::process::Command::new(common::python())
        .args(["-c", check])
        .arg(&mask)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&said.stdout).trim(),
        "(8, 8, 8) 27 485"
    );

    assert_eq!(res.device.as_deref(), Some("cpu"));
    // The upstream checkout was not written into (no eval/, no __pycache__).
    assert_eq!(files_under(&bundle), bundle_files_before);
}

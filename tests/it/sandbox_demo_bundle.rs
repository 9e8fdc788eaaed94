//! The sandbox around a real MONAI run: a copy of the demo bundle whose
//! `configs/inference.json` writes outside the output directory from a `$` expression
//! at startup (its `initialize` list) fails, and nothing appears outside; the same
//! bundle run without the sandbox does write there (the premise). Needs the project's
//! venv (tests/common::python); skipped where the kernel has no Landlock.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ctmr_skill::upstream::{
    expected_mask_path, landlock_abi, probe_for_request, run, DeviceRequest, MaskAdoption,
    RunOptions, UpstreamRequest, DEFAULT_PROBE_TIMEOUT,
};
use serde_json::Value;

/// Put `$open(path, 'w').write('escaped')` first in the config's `initialize` list for
/// each path.
fn add_escapes(bundle: &Path, paths: &[&Path]) {
    let config = bundle.join("configs/inference.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let init = json["initialize"]
        .as_array_mut()
        .expect("an initialize list");
    for path in paths {
        init.insert(
            0,
            Value::String(format!(
                "$open({:?}, 'w').write('escaped')",
                path.display().to_string()
            )),
        );
    }
    std::fs::write(&config, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

#[tokio::test]
async fn a_bundle_config_cannot_write_outside_the_output_dir() {
    if let Err(why) = landlock_abi() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = common::fresh_dir();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    let elsewhere = base.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let escape = elsewhere.join("escape.txt");
    let into_bundle = bundle.join("escape.txt");
    add_escapes(&bundle, &[&escape, &into_bundle]);

    let input = base.join("data/ct.nii.gz");
    common::run_python(
        &common::repo_root().join("scripts/make-demo-volume.py"),
        &[input.to_str().unwrap(), "--shape", "32", "32", "16"],
    );
    let out = base.join("runs/demo");
    let req = UpstreamRequest {
        python: common::python(),
        bundle_root: bundle.clone(),
        input: input.clone(),
        output_dir: out.clone(),
        modality: "CT_BODY".into(),
        label_prompts: None,
        overrides: vec![],
        device: DeviceRequest::Cpu,
        tensorrt: false,
    };
    let mut opts = RunOptions::new(out.join("logs"), Duration::from_secs(600));
    opts.require_sandbox = true;
    let probe = probe_for_request(&req, &opts, DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap();

    let res = run(&req, &probe, &opts).await.unwrap();
    assert!(!res.succeeded(), "the escaping config ran to the end");
    assert!(
        res.stderr_tail.contains("PermissionError"),
        "{}",
        res.stderr_tail
    );
    assert!(!escape.exists(), "a file appeared outside the output dir");
    assert!(!into_bundle.exists(), "a file appeared in the bundle");
    assert!(res.sandbox.enforced, "{:?}", res.sandbox);
    assert!(res.sandbox.writable.contains(&out.display().to_string()));
    assert!(!matches!(res.mask, Some(MaskAdoption::Adopted { .. })));

    // The premise: unconfined, the same config does write there, and the run goes on.
    opts.sandbox = false;
    opts.require_sandbox = false;
    let res = run(&req, &probe, &opts).await.unwrap();
    assert!(res.succeeded(), "{}", res.stderr_tail);
    assert_eq!(std::fs::read_to_string(&escape).unwrap(), "escaped");
    let mask: PathBuf = expected_mask_path(&out, &input);
    assert!(mask.exists());
}

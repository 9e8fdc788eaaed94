//! The project's demo bundle (examples/demo-bundle: the upstream's config layout, a
//! `scripts` package, CheckpointLoader, SaveImaged) run through the library's `run`
//! with real MONAI, from a copy so the repository is never written to.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ctmr_skill::upstream::{
    expected_mask_path, inventory, probe_for_request, resolve_root, run, sha256_file,
    weights_provenance, DeviceRequest, MaskAdoption, RunOptions, RunOutcome, UpstreamRequest,
    WeightsProvenance, DEFAULT_PROBE_TIMEOUT,
};

fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        }
        let len = std::fs::metadata(&path).unwrap().len();
        out.push((path, len));
    }
    out.sort();
    out
}

fn python(args: &[&std::ffi::OsStr]) {
    let out = Command::new(common::python()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn demo_bundle_runs_through_the_library() {
    let repo = common::repo_root();
    let dir = common::fresh_dir();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    let model = bundle.join("models/model.pt");
    let input = base.join("data/demo ct.nii.gz");
    python(&[
        repo.join("scripts/make-demo-volume.py").as_os_str(),
        input.as_os_str(),
        "--shape".as_ref(),
        "32".as_ref(),
        "32".as_ref(),
        "16".as_ref(),
    ]);

    let root = resolve_root(Some(&bundle), None, &base)
        .require()
        .unwrap()
        .to_path_buf();
    let inv = inventory(&root);
    assert!(inv.demo_bundle && inv.model_pt_present && inv.batch_config_present);
    let digest = sha256_file(&model).unwrap();
    assert_eq!(
        weights_provenance(&inv, Some(&digest)),
        WeightsProvenance::DemoBundle
    );
    let log = bundle.join("training.log");
    let before: Vec<_> = files_under(&bundle)
        .into_iter()
        .filter(|(path, _)| path != &log)
        .collect();

    let out = base.join("runs/demo");
    let req = UpstreamRequest {
        python: common::python(),
        bundle_root: root,
        input: input.clone(),
        output_dir: out.clone(),
        modality: "CT_BODY".into(),
        label_prompts: Some(vec![1, 3]),
        overrides: vec![],
        device: DeviceRequest::Cpu,
        tensorrt: false,
    };
    let opts = RunOptions::new(out.join("logs"), Duration::from_secs(600));
    let probe = probe_for_request(&req, &opts, DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(probe.device, "cpu");
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
    let mask = expected_mask_path(&out, &input);
    assert_eq!(mask, out.join("demo ct/demo ct_trans.nii.gz"));
    assert!(
        matches!(&res.mask, Some(MaskAdoption::Adopted { path, .. }) if path == &mask),
        "{:?}",
        res.mask
    );
    // The bundle copy is exactly as it was: no eval/, no __pycache__, no new files, but
    // for the log file its logging.conf declares (`training.log`, as upstream's), which
    // the sandbox lets the run append to and nothing else.
    assert!(
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 0),
        "the bundle's own log was not written"
    );
    let after: Vec<_> = files_under(&bundle)
        .into_iter()
        .filter(|(path, _)| path != &log)
        .collect();
    assert_eq!(after, before);
}

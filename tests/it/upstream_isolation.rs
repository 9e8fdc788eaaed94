//! The child cannot be redirected to other code: a `monai/` package (or `runpy.py`)
//! placed in the bundle root does not shadow the installed MONAI, in the probe or in the
//! run (both launch forms: the documented line with the path shim, and the `-c`
//! bootstrap for Pythons before 3.11), while the bundle's own `scripts` package still
//! imports; and the client's `PYTHONPATH` / `PYTHONSTARTUP` never reach the child. Real MONAI from the project's
//! venv (tests/common::python), the demo bundle copied per test.

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ctmr_skill::upstream::{
    expected_mask_path, launch_argv, probe_for_request, run, safe_path_honoured, DeviceRequest,
    MaskAdoption, RunOptions, UpstreamError, UpstreamRequest, DEFAULT_PROBE_TIMEOUT, PATH_SHIM,
};

/// A package that announces itself: writes `$FAKE_MARKER_DIR/<name>` (when it can),
/// then fails the import, so any use of it shows in the outcome.
fn plant_fake_package(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(
        dir.join(name).join("__init__.py"),
        format!(
            "import os, pathlib\n\
try:\n    pathlib.Path(os.environ['FAKE_MARKER_DIR'], '{name}').write_text(__file__)\n\
except Exception:\n    pass\n\
raise ImportError('fake {name} imported from ' + __file__)\n"
        ),
    )
    .unwrap();
}

/// The installed MONAI's version, asked from a neutral directory without PYTHONPATH.
fn real_monai_version() -> String {
    let out = Command::new(common::python())
        .args(["-c", "import monai; print(monai.__version__)"])
        .current_dir("/")
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct World {
    _dir: tempfile::TempDir,
    bundle: PathBuf,
    /// A directory with a fake `monai` package, for `PYTHONPATH`.
    pythonpath: PathBuf,
    markers: PathBuf,
    input: PathBuf,
    out: PathBuf,
}

impl World {
    /// The demo bundle with a fake `monai/` and `runpy.py` in its root, a fake `monai`
    /// on a separate directory, and a small input volume.
    fn new() -> World {
        let dir = common::fresh_dir();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let bundle = base.join("demo-bundle");
        common::demo_bundle_copy(&bundle);
        plant_fake_package(&bundle, "monai");
        std::fs::write(
            bundle.join("runpy.py"),
            "raise SystemExit('fake runpy from the bundle root')\n",
        )
        .unwrap();
        let pythonpath = base.join("client-pythonpath");
        plant_fake_package(&pythonpath, "monai");
        plant_fake_package(&pythonpath, "torch");
        let out = base.join("runs/demo");
        let markers = out.join("markers");
        std::fs::create_dir_all(&markers).unwrap();
        let input = base.join("data/ct.nii.gz");
        common::run_python(
            &common::repo_root().join("scripts/make-demo-volume.py"),
            &[input.to_str().unwrap(), "--shape", "32", "32", "16"],
        );
        World {
            _dir: dir,
            bundle,
            pythonpath,
            markers,
            input,
            out,
        }
    }

    fn request(&self) -> UpstreamRequest {
        UpstreamRequest {
            python: common::python(),
            bundle_root: self.bundle.clone(),
            input: self.input.clone(),
            output_dir: self.out.clone(),
            modality: "CT_BODY".into(),
            label_prompts: Some(vec![1, 3]),
            overrides: vec![],
            device: DeviceRequest::Cpu,
            tensorrt: false,
        }
    }

    /// Our environment plus the client's Python settings pointing at fakes.
    fn options(&self) -> RunOptions {
        let mut opts = RunOptions::new(self.out.join("logs"), Duration::from_secs(600));
        let startup = self.pythonpath.join("startup.py");
        std::fs::write(
            &startup,
            format!(
                "open({:?}, 'w').write('startup ran')\n",
                self.markers.join("startup").display().to_string()
            ),
        )
        .unwrap();
        opts.base_env.retain(|(k, _)| {
            ![
                "PYTHONPATH",
                "PYTHONSTARTUP",
                "PYTHONINSPECT",
                "FAKE_MARKER_DIR",
            ]
            .contains(&k.to_string_lossy().as_ref())
        });
        for (k, v) in [
            ("PYTHONPATH", self.pythonpath.as_os_str()),
            ("PYTHONSTARTUP", startup.as_os_str()),
            ("PYTHONINSPECT", "1".as_ref()),
            ("FAKE_MARKER_DIR", self.markers.as_os_str()),
        ] {
            opts.base_env.push((OsString::from(k), v.to_os_string()));
        }
        opts
    }

    fn markers(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.markers)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn the_fakes_do_shadow_a_plain_interpreter_started_in_the_bundle_root() {
    // The premise of the other tests: without the safeguards, the fake wins.
    let w = World::new();
    let out = Command::new(common::python())
        .args(["-c", "import monai"])
        .current_dir(&w.bundle)
        .env_remove("PYTHONPATH")
        .env("FAKE_MARKER_DIR", &w.markers)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fake monai imported from"), "{stderr}");

    let out = Command::new(common::python())
        .args(["-c", "import monai"])
        .current_dir("/")
        .env("PYTHONPATH", &w.pythonpath)
        .env("FAKE_MARKER_DIR", &w.markers)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn probe_and_run_use_the_installed_monai_and_the_bundles_scripts() {
    let w = World::new();
    let req = w.request();
    let opts = w.options();

    let probe = probe_for_request(&req, &opts, DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("probe shadowed or failed: {e}"));
    assert_eq!(probe.monai_version, real_monai_version());
    assert_eq!(probe.device, "cpu");

    let res = run(&req, &probe, &opts).await.unwrap();
    assert!(
        res.succeeded(),
        "{:?}\nstderr: {}",
        res.outcome,
        res.stderr_tail
    );
    let mask = expected_mask_path(&w.out, &w.input);
    assert!(
        matches!(&res.mask, Some(MaskAdoption::Adopted { path, .. }) if path == &mask),
        "{:?}",
        res.mask
    );
    assert!(w.markers().is_empty(), "fakes ran: {:?}", w.markers());
    assert_eq!(
        res.env_removed,
        ["PYTHONPATH", "PYTHONSTARTUP", "PYTHONINSPECT"]
    );
    assert_eq!(res.env_set["PYTHONSAFEPATH"], "1");
    // Python >= 3.11: the documented line itself ran, with our path shim as PYTHONPATH.
    assert!(safe_path_honoured(&probe.python_version));
    assert_eq!(res.command[1..3], ["-m", "monai.bundle"]);
    assert_eq!(res.launch_argv, res.command);
    let shim = PathBuf::from(&res.env_set["PYTHONPATH"]);
    assert_ne!(shim, w.pythonpath);
    assert!(!shim.exists(), "the shim dir outlived the run");
}

#[tokio::test]
async fn older_pythons_get_the_bootstrap_line_and_the_same_protection() {
    // The probe of a Python without PYTHONSAFEPATH: the run starts through the `-c`
    // bootstrap (which works on any Python, this one included).
    let w = World::new();
    let req = w.request();
    let opts = w.options();
    let mut probe = probe_for_request(&req, &opts, DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap();
    probe.python_version = "3.10.14".into();
    let res = run(&req, &probe, &opts).await.unwrap();
    assert!(
        res.succeeded(),
        "{:?}\nstderr: {}",
        res.outcome,
        res.stderr_tail
    );
    assert!(w.markers().is_empty(), "fakes ran: {:?}", w.markers());
    assert_eq!(res.launch_argv, launch_argv(&res.command));
    assert_eq!(res.launch_argv[1], "-c");
    assert_eq!(res.launch_argv[3..], res.command[3..]);
    assert!(!res.env_set.contains_key("PYTHONPATH"));
    let mask = expected_mask_path(&w.out, &w.input);
    assert!(mask.exists());
}

#[test]
fn the_shim_steps_aside_for_the_environments_own_sitecustomize() {
    let dir = common::fresh_dir();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let (shim, own, cwd) = (base.join("shim"), base.join("own"), base.join("cwd"));
    for d in [&shim, &own, &cwd] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(shim.join("sitecustomize.py"), PATH_SHIM).unwrap();
    std::fs::write(
        own.join("sitecustomize.py"),
        "import sys\nsys.own_sitecustomize_ran = True\n",
    )
    .unwrap();
    std::fs::write(
        cwd.join("sitecustomize.py"),
        "raise SystemExit('bundle sitecustomize ran')\n",
    )
    .unwrap();
    let code = "import json, os, sys\n\
print(json.dumps({'own': getattr(sys, 'own_sitecustomize_ran', False), 'path': sys.path, 'cwd': os.getcwd()}))";
    let mut pythonpath = std::ffi::OsString::from(&shim);
    pythonpath.push(":");
    pythonpath.push(&own);
    let out = Command::new(common::python())
        .args(["-c", code])
        .current_dir(&cwd)
        .env("PYTHONSAFEPATH", "1")
        .env("PYTHONPATH", &pythonpath)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen["own"], true,
        "the environment's sitecustomize did not run"
    );
    let path: Vec<String> = serde_json::from_value(seen["path"].clone()).unwrap();
    let cwd = cwd.display().to_string();
    assert_eq!(path.last(), Some(&cwd), "{path:?}");
    assert_eq!(path.iter().filter(|p| **p == cwd).count(), 1, "{path:?}");
    assert!(!path.contains(&shim.display().to_string()), "{path:?}");
    let site = path.iter().position(|p| p.ends_with("site-packages"));
    assert!(site.is_some(), "{path:?}");
}

#[tokio::test]
async fn a_probe_under_a_shadowing_pythonpath_alone_still_sees_the_real_monai() {
    // Only the client's PYTHONPATH (no fakes in the bundle root): the probe's answer is
    // the installed MONAI, not an ImportError from the fake.
    let w = World::new();
    std::fs::remove_dir_all(w.bundle.join("monai")).unwrap();
    let mut req = w.request();
    req.device = DeviceRequest::Auto;
    let probe = probe_for_request(&req, &w.options(), DEFAULT_PROBE_TIMEOUT).await;
    match probe {
        Ok(p) => assert_eq!(p.monai_version, real_monai_version()),
        Err(e @ UpstreamError::RuntimeMissing { .. }) => panic!("the fake was imported: {e}"),
        Err(e) => panic!("{e}"),
    }
    assert!(w.markers().is_empty(), "fakes ran: {:?}", w.markers());
}

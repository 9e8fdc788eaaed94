//! Running the upstream bundle: root resolution, the documented argv
//! (`python -m monai.bundle run --config_file configs/inference.json ...`), and a
//! supervised child process (own process group, timeout, cancellation, logs).
//!
//! Why a child process and not an embedded runtime: the evidence claims that the
//! *upstream's own documented entry point* produced the mask, so we launch exactly
//! that command from the bundle root and record everything needed to re-run it.
//!
//! The pieces, in the order a run uses them:
//!
//! | step | function | module |
//! |---|---|---|
//! | find the bundle | [`resolve_root`] (or [`resolve_root_here`]) → [`RootResolution::require`], [`inventory`], [`weights_provenance`] | `root` |
//! | find Python | [`find_python`] (or [`find_python_here`]) | `python` |
//! | check the runtime | [`probe_for_request`] / [`probe_environment`] → [`EnvProbe`], [`check_device`], [`check_tensorrt`] | `python` |
//! | build the command | [`build_argv`], [`build_batch_argv`], [`config_files`] (pure) | `argv` |
//! | guard the output | [`check_output_dir`], [`check_output_location`], [`expected_mask_path`], [`move_aside_stale`] | `output` |
//! | start it unshadowed | [`plan_launch`] (documented line + [`PATH_SHIM`] on Python >= 3.11, else [`launch_argv`]) | `launch` |
//! | run it | [`run`] / [`run_batch`] / [`supervise()`] → [`RunResult`] | `supervise` |
//! | confine it | [`sandbox_for`] ([`build_policy`] pure) → [`SandboxReport`], [`harden`] | `sandbox` |
//! | adopt the mask | [`adopt_mask`] | `output` |
//! | provenance | [`git_commit`], [`sha256_file`] | `root`, `hash` |
//!
//! A single-volume run, end to end:
//!
//! ```no_run
//! # async fn demo() -> Result<(), ctmr_skill::upstream::UpstreamError> {
//! use std::time::Duration;
//! use ctmr_skill::upstream::*;
//!
//! let cwd = std::env::current_dir().unwrap();
//! let roots = resolve_root_here(None, &cwd); // keep `roots.checked` for the evidence
//! let root = roots.require()?.to_path_buf();
//! let inv = inventory(&root);
//! inv.require_model()?;
//! let python = find_python_here(None, &cwd)?;
//! let req = UpstreamRequest {
//!     python: python.path,
//!     bundle_root: root,
//!     input: "/data/ct.nii.gz".into(),
//!     output_dir: "/runs/ct".into(),
//!     modality: "CT_BODY".into(),
//!     label_prompts: Some(vec![3, 14]),
//!     overrides: vec![],
//!     device: DeviceRequest::Auto,
//!     tensorrt: false,
//! };
//! let opts = RunOptions::new("/runs/ct/logs", Duration::from_secs(3600));
//! let probe = probe_for_request(&req, &opts, DEFAULT_PROBE_TIMEOUT).await?;
//! let result = run(&req, &probe, &opts).await?;
//! if let Some(mask) = result.mask.as_ref().and_then(MaskAdoption::path) {
//!     let _digest = sha256_file(mask);
//! }
//! # Ok(()) }
//! ```
//!
//! Nothing here prints to stdout: stdout belongs to the MCP protocol, and the child's
//! stdout/stderr go to log files, never to ours.

mod argv;
pub(crate) mod bundle_logs;
mod error;
pub(crate) mod fingerprint;
pub(crate) mod gpu;
mod hash;
mod launch;
pub(crate) mod oom;
mod output;
mod python;
mod root;
mod sandbox;
mod supervise;
pub(crate) mod usage;
pub(crate) mod worker;

pub use argv::{
    build_argv, build_batch_argv, config_file_value, config_files, config_files_of, launch_argv,
    python_repr_str, BatchRequest, UpstreamRequest, BATCH_CONFIG_FILES, CONFIG_FILE,
    CPU_POSTPROCESSING_OVERRIDE, MONAI_SPECIAL, RUN_BOOTSTRAP, SUPPORTED_MODALITIES,
    TRT_CONFIG_FILE,
};
pub use error::{install_hint, weights_hint, UpstreamError};
pub use hash::sha256_file;
pub use launch::{plan_launch, safe_path_honoured, Launch, PATH_SHIM};
pub use output::{
    adopt_mask, check_output_dir, check_output_location, expected_mask_path, move_aside_stale,
    nifti_stem, MaskAdoption, StaleOutput,
};
pub use python::{
    check_device, check_tensorrt, child_env, find_python, find_python_here, probe_environment,
    probe_environment_in, CheckedPython, ChildEnv, DeviceRequest, EnvProbe, PythonChoice,
    PythonSource, DEFAULT_PROBE_TIMEOUT, ENV_PYTHON, PROBE_SCRIPT, SAFE_PATH_PRELUDE,
    STRIPPED_PYTHON_VARS,
};
pub use root::{
    git_commit, inventory, resolve_root, resolve_root_here, weights_provenance, BundleInventory,
    CheckedRoot, LabelFile, RootRejection, RootResolution, RootSource, StandInMarker,
    WeightsProvenance, ENV_ROOT, WORKBENCH_ROOT,
};
pub use sandbox::{
    build_policy, discover_inputs, handled_fs, harden, landlock_abi, prepare, rights, sandbox_for,
    PathRule, PreparedSandbox, PrivateTmp, RuleKind, SandboxError, SandboxInputs, SandboxPolicy,
    SandboxReport, SandboxRequest,
};
pub use supervise::tail_of_file;
pub use supervise::{
    probe_for_request, run, run_batch, supervise, Invocation, ProgressEvent, ProgressHook,
    RunOptions, RunOutcome, RunResult, Stream, TAIL_CHARS,
};

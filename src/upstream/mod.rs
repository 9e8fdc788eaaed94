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
//! | find the bundle | [`resolve_root`] → [`RootResolution::require`], [`inventory`], [`weights_provenance`] | `root` |
//! | find Python | [`find_python`] | `python` |
//! | check the runtime | [`probe_for_request`] / [`probe_environment`] → [`EnvProbe`], [`check_device`], [`check_tensorrt`] | `python` |
//! | build the command | [`build_argv`], [`build_batch_argv`], [`config_files`] (pure) | `argv` |
//! | guard the output | [`check_output_dir`](output::check_output_dir), [`check_output_location`], [`expected_mask_path`], [`move_aside_stale`] | `output` |
//! | start it unshadowed | [`plan_launch`](launch::plan_launch) (documented line + [`PATH_SHIM`] on Python >= 3.11, else [`launch_argv`]) | `launch` |
//! | run it | [`run`] / [`run_batch`] / [`supervise()`] → [`RunResult`] | `supervise` |
//! | confine it | [`sandbox_for`](sandbox::sandbox_for) ([`build_policy`](sandbox::build_policy) pure) → [`SandboxReport`], [`harden`](sandbox::harden) | `sandbox` |
//! | adopt the mask | [`adopt_mask`] | `output` |
//! | provenance | [`git_commit`], [`sha256_file`] | `root`, `hash` |
//!
//! A single-volume run, end to end, is `tools/run_script/run.rs` (the gates in
//! `tools/run_script/gates.rs` resolve the root and Python first).
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
    build_argv, build_batch_argv, config_files, config_files_of, launch_argv, BatchRequest,
    UpstreamRequest, CPU_POSTPROCESSING_OVERRIDE,
};
pub(crate) use argv::{
    python_repr_str, BATCH_CONFIG_FILES, CONFIG_FILE, MONAI_SPECIAL, TRT_CONFIG_FILE,
};
pub(crate) use error::install_hint;
pub use error::UpstreamError;
pub use hash::sha256_file;
pub use launch::{safe_path_honoured, PATH_SHIM};
pub(crate) use output::{
    adopt_mask, check_output_location, move_aside_stale, nifti_stem, StaleOutput,
};
pub use output::{expected_mask_path, MaskAdoption};
pub(crate) use python::{check_device, check_tensorrt, find_python, PythonChoice, PythonSource};
pub use python::{
    child_env, probe_environment, probe_environment_in, DeviceRequest, EnvProbe,
    DEFAULT_PROBE_TIMEOUT,
};
pub use root::{git_commit, inventory, resolve_root, weights_provenance, WeightsProvenance};
pub(crate) use root::{BundleInventory, RootRejection, RootResolution};
pub use sandbox::{landlock_abi, SandboxRequest};
pub(crate) use sandbox::{SandboxError, SandboxReport};
pub(crate) use supervise::tail_of_file;
pub use supervise::{
    probe_for_request, run, run_batch, supervise, Invocation, ProgressEvent, RunOptions,
    RunOutcome, RunResult, Stream, TAIL_CHARS,
};

//! Types of `output.json`. Field docs become the descriptions of the JSON Schema.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::sanity::SanityResult;

pub(crate) const EVIDENCE_SCHEMA_VERSION: &str = "ctmr-skill.evidence/1";
pub(crate) const SKILL_NAME: &str = "nv_segment_ctmr";
pub(crate) const MODEL_NAME: &str = "NVIDIA-Medtech/NV-Segment-CTMR (VISTA3D CT/MRI)";
pub(crate) const MODEL_REPO: &str =
    "https://github.com/NVIDIA-Medtech/NV-Segment-CTMR/tree/main/NV-Segment-CTMR";
pub(crate) const LICENSE: &str =
    "Wrapper Apache-2.0; upstream model and repository licenses apply.";
pub(crate) const OFFICIAL_ENTRYPOINT: &str = "python -m monai.bundle run";
pub(crate) const DISCLAIMER: &str = "Engineering verification only. Not for clinical use: output is NOT clinically \
meaningful and has no diagnostic validity. This tool invokes the upstream MONAI bundle entry point documented \
by NVIDIA-Medtech/NV-Segment-CTMR; it does not modify inference, preprocessing, or postprocessing.";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The upstream exited 0 and its mask was read.
    Succeeded,
    /// The upstream exited non-zero, or produced no readable mask.
    UpstreamFailed,
    /// The upstream ran past `timeout_seconds`; its process group was killed.
    TimedOut,
    /// The caller cancelled; the process group was killed.
    Cancelled,
    /// A gate refused the arguments; nothing ran.
    Refused,
}

impl RunStatus {
    /// The word the documents use (`upstream_failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::UpstreamFailed => "upstream_failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Refused => "refused",
        }
    }
}

/// Where the model weights came from. Output of stand-in or demo weights is never a
/// real segmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeightsProvenance {
    /// Weights as installed for the upstream bundle (presumed the published ones).
    Upstream,
    /// Randomly initialised stand-in weights (scripts/make-standin-weights.py): NOT a segmentation.
    StandInRandomInit,
    /// The project's demo bundle: synthetic intensity-based labels, NOT NV-Segment-CTMR.
    DemoBundle,
    /// No weights file was found.
    Missing,
}

/// The model file used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Weights {
    pub provenance: WeightsProvenance,
    pub path: Option<String>,
    pub sha256: Option<String>,
    /// Plain words on what the output means given the provenance.
    pub note: String,
}

/// Where the input volume came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputSource {
    /// The NIfTI file the caller named, read as it is.
    #[default]
    Nifti,
    /// A DICOM series the caller named, converted into the pack (see `input.dicom`).
    DicomSeries,
}

/// The input volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InputInfo {
    /// Absolute path of the volume the upstream read (for DICOM, the converted
    /// `input_converted.nii.gz` in the pack).
    pub path: String,
    pub shape: Vec<usize>,
    pub ndim: usize,
    /// Voxel spacing in mm (nibabel zooms, rounded to 6 decimals as the reference).
    pub spacing: Vec<f64>,
    pub modality: String,
    pub ground_truth_path: Option<String>,
    pub sha256: Option<String>,
    /// The 4x4 voxel-to-world affine (nibabel `img.affine`).
    pub affine: Option<Vec<Vec<f64>>>,
    /// Axis codes such as ["R", "A", "S"].
    pub orientation: Option<Vec<String>>,
    /// `nifti` or `dicom_series`; packs written before this field read `nifti`.
    #[serde(default)]
    pub source: InputSource,
    /// The DICOM series the volume was converted from (no patient data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dicom: Option<crate::dicom::DicomSeriesInfo>,
}

/// Mask geometry against the input (the reference's 8 fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Geometry {
    pub input_shape: Vec<usize>,
    pub output_shape: Vec<usize>,
    pub shape_match: bool,
    pub input_spacing: Vec<f64>,
    pub output_spacing: Vec<f64>,
    pub spacing_match: bool,
    pub affine_max_abs_diff: Option<f64>,
    /// `affine_max_abs_diff <= 1e-4`.
    pub affine_match: bool,
}

/// One class present in the mask, keyed by its upstream id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClassRow {
    pub id: i64,
    pub name: String,
    pub voxels: u64,
    pub volume_ml: f64,
    /// Inclusive voxel-index bounding box.
    pub bbox_min: Vec<usize>,
    pub bbox_max: Vec<usize>,
    /// Touches a face of the volume (reported; nothing is zeroed).
    pub touches_border: bool,
    /// In the expected set (everything-set of the modality, or the expanded prompts).
    pub expected: bool,
}

/// A mask that predated the run and was moved aside, never adopted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StaleOutput {
    pub original: String,
    pub moved_to: String,
}

/// The produced label map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutputInfo {
    /// Absolute path of `<output_dir>/<stem>/<stem>_trans.nii.gz`, null when none was produced.
    pub path: Option<String>,
    pub shape: Vec<usize>,
    pub label_prompts_requested: Option<Vec<u32>>,
    /// Non-zero integer values present (including 255 when present).
    pub label_ids_present: Vec<i64>,
    /// Present ids outside the expected set or the label table.
    pub unexpected_label_ids: Vec<i64>,
    pub label_set_valid: bool,
    pub label_map_loaded: bool,
    pub label_map_source: Option<String>,
    /// Voxel count per class name (reference field; see `classes` for id-keyed rows).
    pub class_counts: BTreeMap<String, u64>,
    pub voxel_volume_ml: Option<f64>,
    pub class_volumes_ml: BTreeMap<String, f64>,
    pub any_label_present: bool,
    pub geometry: Geometry,
    pub sha256: Option<String>,
    /// On-disk datatype of the mask (the upstream writes float32).
    pub dtype: Option<String>,
    /// The ids this run may produce: the modality's everything-set, or the expanded prompts.
    pub expected_label_ids: Vec<u32>,
    pub classes: Vec<ClassRow>,
    /// Voxels whose value is not an integer (never truncated into a class).
    pub non_integer_voxels: u64,
    pub nan_voxels: u64,
    /// Voxels equal to 255: the upstream's NaN sentinel, and also a real MRI-brain class id.
    pub nan_sentinel_255_voxels: u64,
    pub stale_output: Option<StaleOutput>,
}

/// Model files found under the bundle root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelInventory {
    pub model_pt_present: bool,
    pub model_pt_path: String,
    pub label_map_present: bool,
    pub label_map_path: Option<String>,
}

/// A bundle root that was considered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckedRoot {
    pub path: String,
    /// `flag`, `env` or `default`.
    pub source: String,
    pub valid: bool,
    pub reason: Option<String>,
}

/// sha256 of the bundle's `configs/*.json` and `scripts/**/*.py`, compared with the
/// published NV-Segment-CTMR bundle at `published_commit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BundleFingerprint {
    /// sha256 over the sorted `path  sha256` lines of `files`.
    pub digest: String,
    /// Relative path → sha256.
    pub files: BTreeMap<String, String>,
    pub published_commit: String,
    /// Every file is published with the same hash and nothing published is missing.
    pub matches_published: bool,
    /// Published, with another hash here.
    pub differing: Vec<String>,
    /// Published, absent here.
    pub missing: Vec<String>,
    /// Here, not published.
    pub extra: Vec<String>,
}

/// How the upstream ran: the documented command in a fresh process, or a request to a
/// warm worker that kept the bundle loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    #[default]
    OneShot,
    WarmWorker,
}

/// The warm worker that served a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkerInfo {
    pub id: String,
    pub pid: u32,
    pub started_at: String,
    /// Requests it had served, this one included.
    pub requests_served: u64,
    /// Seconds its first request spent building the network and loading the weights.
    pub model_load_seconds: Option<f64>,
    /// Seconds from its start to its environment report (Python, torch, MONAI imported).
    pub start_seconds: f64,
}

/// How the upstream was invoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Invocation {
    /// Always `python -m monai.bundle run`.
    pub official_entrypoint: String,
    pub upstream_root: Option<String>,
    pub upstream_commit: Option<String>,
    pub config_file: Option<String>,
    /// Every `--config_file` entry of `command`, in the order MONAI merges them,
    /// relative to `upstream_root`: `configs/inference.json`, then
    /// `configs/batch_inference.json` for a batch, then `configs/inference_trt.json`
    /// when `tensorrt` was asked for. Empty in packs written before this field.
    #[serde(default)]
    pub config_files: Vec<String>,
    pub output_dir: String,
    pub modality: String,
    pub label_prompts: Option<Vec<u32>>,
    /// `one_shot` (the documented command in its own process) or `warm_worker`; packs
    /// written before this field ran one-shot.
    #[serde(default)]
    pub mode: RunMode,
    /// The worker, for `warm_worker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerInfo>,
    /// Why a warm worker did not serve this run (it ran one-shot instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The exact argv (no shell): the documented command a reader can run again, with
    /// the same result, whichever `mode` ran it.
    pub command: Vec<String>,
    /// What was executed when it differs from `command` (an interpreter flag or a
    /// bootstrap that keeps the bundle root from shadowing site-packages); the bundle
    /// sees the same arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_argv: Vec<String>,
    /// Environment variables not passed to the upstream (`PYTHONPATH`, `PYTHONSTARTUP`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_removed: Vec<String>,
    /// Exit code of the upstream process; 124 on timeout, null when it never ran. For a
    /// batch volume whose mask was written before the batch process failed on a later
    /// volume: 0, with the process's code in `batch_process_exit_code`.
    pub exit_code: Option<i32>,
    /// Set only in the case above: the exit code of the batch process that wrote this
    /// volume's mask and then failed (the remaining volumes were retried without the one
    /// that killed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_process_exit_code: Option<i32>,
    pub model_inventory: ModelInventory,
    pub checked_roots: Vec<CheckedRoot>,
    /// The Python interpreter and why it was chosen.
    pub python: Option<String>,
    pub python_source: Option<String>,
    /// The bundle's code and configs by hash and how they compare with the published
    /// upstream. Absent in packs written before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_fingerprint: Option<BundleFingerprint>,
    /// Documented overrides passed to the bundle as `--key value` (`patch_size`,
    /// `sw_batch_size`; `cpu_postprocessing` as `postprocessing#transforms#0#_disabled_: False`).
    pub overrides: BTreeMap<String, String>,
}

/// Where and how long the upstream ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RuntimeInfo {
    pub subprocess_seconds: f64,
    /// The device the run actually used (`cuda` or `cpu`), probed under the run's environment.
    pub device: String,
    pub device_requested: String,
    pub python_version: Option<String>,
    pub monai_version: Option<String>,
    pub torch_version: Option<String>,
    pub cuda_available: Option<bool>,
    /// The Landlock sandbox around the upstream: enforced or not (and why), the
    /// writable paths, the network rule. Absent in packs written before this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::upstream::SandboxReport>,
    /// Seconds per phase of the call (gates, queue_wait, probe, worker_start,
    /// model_load, upstream, hashing_wait, inspection_and_writing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phases: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<RunCost>,
    /// Where the run ran when inside a Slurm job (an array task of `run_batch`'s
    /// Slurm executor): job id, array task id, node, GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::cluster::Placement>,
}

/// What a run cost, measured on the upstream's processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunCost {
    /// Wall-clock seconds of the whole call (gates to pack).
    pub wall_seconds: f64,
    /// CPU seconds (user + system) of the upstream during this run.
    pub cpu_seconds: Option<f64>,
    /// Peak resident memory of the upstream process, in MiB.
    pub peak_rss_mib: Option<f64>,
    /// Which processes the figures cover.
    pub measured_on: String,
    pub gpu: GpuCost,
}

/// GPU figures (peak memory, utilisation, GPU-seconds) when NVML measured them.
pub(crate) use crate::upstream::gpu::GpuCost;

/// Upstream output: full logs on disk, tails here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Logs {
    pub stdout_tail: String,
    pub stderr_tail: String,
    pub stdout_log: Option<String>,
    pub stderr_log: Option<String>,
}

/// How one gate came out (`skipped`: it did not apply to this request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Passed,
    Failed,
    Skipped,
}

/// Outcome of one gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateResult {
    /// The gate id declared in skill_manifest.yaml.
    pub name: String,
    /// `passed`, `failed` or `skipped`.
    pub status: GateStatus,
    pub message: String,
}

impl GateResult {
    pub fn failed(&self) -> bool {
        self.status == GateStatus::Failed
    }
}

/// `output.json`: the evidence of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// `ctmr-skill.evidence/1`.
    pub schema_version: String,
    pub status: RunStatus,
    /// One sentence on what happened, for people and models.
    pub summary: String,
    pub run_id: String,
    /// The evidence pack directory (the run's output_dir).
    pub pack_dir: String,
    pub skill: String,
    pub skill_id: String,
    pub skill_version: String,
    pub model: String,
    pub model_repo: String,
    pub license: String,
    pub weights: Weights,
    pub input: InputInfo,
    pub output: OutputInfo,
    pub invocation: Invocation,
    pub runtime: RuntimeInfo,
    pub logs: Logs,
    pub gates: Vec<GateResult>,
    #[schemars(with = "Vec<SanityResultSchema>")]
    pub sanity_checks: Vec<SanityResult>,
    pub intended_use_disclaimer: String,
}

/// Schema stand-in for [`SanityResult`] (which lives in the manifest module).
#[derive(JsonSchema)]
#[allow(dead_code)]
struct SanityResultSchema {
    path: String,
    op: String,
    expected: serde_json::Value,
    actual: serde_json::Value,
    /// `passed` or `failed`.
    status: String,
    reason: String,
}

/// The JSON Schema of [`Evidence`]: 2020-12, subschemas inlined (no `$ref`).
pub(crate) fn evidence_schema() -> serde_json::Value {
    crate::json_schema::schema_of::<Evidence>()
}

#[cfg(test)]
mod tests {
    #[test]
    fn evidence_schema_is_flat_and_closed_over_the_reference_fields() {
        let schema = super::evidence_schema();
        let text = serde_json::to_string(&schema).unwrap();
        assert!(!text.contains("$ref"), "subschemas must be inlined");
        assert!(
            !text.contains("\"format\""),
            "Rust number formats are not JSON Schema formats"
        );
        assert_eq!(schema["type"], "object");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for field in [
            "skill",
            "model",
            "model_repo",
            "license",
            "input",
            "output",
            "invocation",
            "runtime",
            "logs",
        ] {
            assert!(required.contains(&field), "{field}");
        }
        let geometry = &schema["properties"]["output"]["properties"]["geometry"]["properties"];
        assert_eq!(geometry.as_object().unwrap().len(), 8);
    }
}

//! The verifier report: the reference verifier's blocks (`verifier`, `target`,
//! `artifact_inventory`, `anatomy_plausibility`, `label_set_subset`, `gt_metrics`,
//! `overall`) plus what it lacks (recomputed geometry, claims side by side, metric
//! statuses and conventions, surface metrics, reasons for the overall verdict).
//!
//! Fields are declared in alphabetical order so that `serde_json::to_string` of a
//! struct already emits sorted keys, like the reference's `json.dumps(sort_keys=True)`;
//! [`VerifierReport::to_value`] additionally sorts any map, whatever serde_json's
//! features. The JSON Schema is `verifiers/ct_segmentation_quality_v1/report.schema.json`.

use serde::Serialize;

use super::bounds::ClassBounds;
use super::surface::EmptyStatus;

/// Verdict of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Nothing to judge (no ground truth recorded, no expected label set known).
    Skipped,
    /// The block does not apply to this pack (a modality no verifier covers yet).
    NotApplicable,
}

/// The overall verdict: only `pass` or `fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Pass,
    Fail,
}

/// Status of one check record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
}

/// Status of a cross-class rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    Pass,
    Fail,
    Skipped,
}

/// One check record `{name, status, reason}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub reason: String,
    pub status: CheckStatus,
}

impl Check {
    pub fn new(name: &str, passed: bool, reason: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            reason: reason.into(),
            status: if passed {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
        }
    }

    pub fn passed(&self) -> bool {
        self.status == CheckStatus::Pass
    }
}

/// Names the verifier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifierInfo {
    pub id: String,
    pub version: String,
}

/// What was verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    /// Run-level checks: skill id, run status, validation summary, modality.
    pub checks: Vec<Check>,
    pub evidence_pack: String,
    pub ground_truth_path: Option<String>,
    pub input_image_path: Option<String>,
    pub input_modality: Option<String>,
    pub label_map_path: Option<String>,
    /// Where class names came from (label table path, sidecar, or ids only).
    pub label_names_source: String,
    /// Why the modality is or is not covered.
    pub modality_note: String,
    pub modality_supported: bool,
    /// Which evidence `run_succeeded` used: `status`, or (no status, the reference
    /// wrapper's layout) `exit_code_and_validation`, or `none`.
    pub run_success_evidence: super::pack::RunSuccessEvidence,
    pub skill_id: String,
    /// `output.json` `invocation.exit_code` as recorded (`null` when absent).
    pub source_exit_code: Option<i64>,
    /// `validation_summary.json` `overall_status` as recorded (`null` when absent).
    pub source_overall_status: Option<String>,
    /// `output.json` `status` as recorded (`null` when absent).
    pub source_status: Option<String>,
}

/// What the pack claimed, reported next to what the verifier recomputed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClaimedFacts {
    pub affine_match: Option<bool>,
    pub label_ids_present: Option<Vec<u32>>,
    pub mask_sha256: Option<String>,
    pub shape: Option<Vec<u64>>,
    pub shape_match: Option<bool>,
    pub spacing_match: Option<bool>,
    pub voxel_volume_ml: Option<f64>,
}

/// The files, read and recomputed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactInventory {
    /// Recomputed: mask affine equals the input image affine within `geometry_tolerance`.
    pub affine_match: bool,
    pub affine_max_abs_diff: Option<f64>,
    pub checks: Vec<Check>,
    pub claimed: ClaimedFacts,
    pub geometry_tolerance: f64,
    pub input_image_path: Option<String>,
    pub input_image_readable: bool,
    pub input_shape: Vec<usize>,
    pub input_spacing: Vec<f64>,
    /// Non-zero label ids found in the mask file.
    pub label_ids_present: Vec<u32>,
    pub label_map_dtype: Option<String>,
    pub label_map_path: Option<String>,
    pub label_map_readable: bool,
    pub label_map_sha256: Option<String>,
    pub label_map_shape: Vec<usize>,
    pub label_map_spacing: Vec<f64>,
    pub nan_sentinel_255_voxels: Option<u64>,
    pub nan_voxels: Option<u64>,
    pub non_integer_voxels: Option<u64>,
    /// Recomputed: mask shape equals the input image shape.
    pub shape_match: bool,
    pub spacing_match: bool,
    pub verdict: Verdict,
    pub voxel_volume_ml: Option<f64>,
}

/// Plausibility of one class present in the mask.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassPlausibility {
    /// The bounds applied; `null` for classes without bounds (reported, not bounded).
    pub bounds: Option<ClassBounds>,
    pub component_count: u64,
    /// `null` when the class has no bounds.
    pub components_ok: Option<bool>,
    pub label_id: u32,
    pub largest_cc_fraction: f64,
    pub largest_cc_fraction_ok: Option<bool>,
    pub name: String,
    pub volume_bounds_ok: Option<bool>,
    pub volume_ml: f64,
    pub voxel_count: u64,
}

/// Liver larger than spleen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiverGtSpleen {
    pub liver_volume_ml: Option<f64>,
    pub reason: String,
    pub spleen_volume_ml: Option<f64>,
    pub status: RuleStatus,
}

/// One bilateral pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BilateralPair {
    pub label_ids: [u32; 2],
    pub names: [String; 2],
    pub ok: bool,
    pub relative_diff: f64,
    pub volumes_ml: [f64; 2],
}

/// Bilateral symmetry over all bounded pairs present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BilateralSymmetry {
    pub max_relative_diff: f64,
    pub pairs: Vec<BilateralPair>,
    pub reason: String,
    /// The worst pair's relative difference.
    pub relative_diff: Option<f64>,
    pub status: RuleStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossClass {
    pub bilateral_symmetry: BilateralSymmetry,
    pub liver_gt_spleen: LiverGtSpleen,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnatomyPlausibility {
    pub checks: Vec<Check>,
    pub classes_failing_volume_bounds: Vec<String>,
    pub classes_overfragmented: Vec<String>,
    pub cross_class: CrossClass,
    pub per_class: Vec<ClassPlausibility>,
    pub reason: String,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelSetSubset {
    /// `prompts` (expanded requested prompts), `everything_set` (the modality's
    /// segment-everything set) or `none` (no expected set could be formed).
    pub basis: String,
    /// Where sub-class expansion / the everything-set came from.
    pub basis_source: Option<String>,
    pub extras: Vec<u32>,
    pub missing: Vec<u32>,
    pub present: Vec<u32>,
    /// The prompts as recorded, before expansion.
    pub prompts: Vec<u32>,
    pub reason: String,
    /// The expected set: expanded prompts or the everything-set.
    pub requested: Vec<u32>,
    pub tolerance: u32,
    pub verdict: Verdict,
}

/// How metric values are to be read; every report names its conventions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricConventions {
    pub dice_iou: String,
    pub empty_masks: String,
    pub hd95: String,
    pub nsd: String,
    pub scoring_scope: String,
    pub surface: String,
}

/// Ground truth geometry against the mask, recomputed from both headers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GtGeometry {
    pub affine_match: bool,
    pub affine_max_abs_diff: f64,
    pub gt_shape: Vec<usize>,
    pub gt_spacing: Vec<f64>,
    pub shape_match: bool,
    pub spacing_match: bool,
}

/// Metrics of one class against the ground truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GtClassMetrics {
    pub assd_mm: Option<f64>,
    pub dice: Option<f64>,
    pub dice_floor: Option<f64>,
    /// `null` when the class has no floor or is not scored.
    pub dice_ok: Option<bool>,
    pub gt_voxels: u64,
    pub hausdorff_mm: Option<f64>,
    pub hd95_mm: Option<f64>,
    pub iou: Option<f64>,
    pub label_id: u32,
    pub name: String,
    pub nsd: Option<f64>,
    pub pred_voxels: u64,
    /// Whether the class counts toward the verdict (see `conventions.scoring_scope`).
    pub scored: bool,
    pub status: EmptyStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GtMetrics {
    pub acceptable: bool,
    pub checks: Vec<Check>,
    pub conventions: MetricConventions,
    pub geometry: Option<GtGeometry>,
    pub ground_truth_path: Option<String>,
    pub per_class: Vec<GtClassMetrics>,
    pub reason: String,
    pub surface_tolerance_mm: f64,
    pub verdict: Verdict,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifierReport {
    pub anatomy_plausibility: AnatomyPlausibility,
    pub artifact_inventory: ArtifactInventory,
    pub gt_metrics: GtMetrics,
    pub label_set_subset: LabelSetSubset,
    pub not_for_clinical_use: String,
    pub overall: Overall,
    /// Why `overall` is `fail` (empty on pass).
    pub overall_reasons: Vec<String>,
    pub target: Target,
    pub verifier: VerifierInfo,
}

impl VerifierReport {
    /// True when the overall verdict is `pass`.
    pub fn passed(&self) -> bool {
        self.overall == Overall::Pass
    }

    /// One line for humans and logs.
    pub fn summary(&self) -> String {
        let blocks = format!(
            "artifacts={} anatomy={} label_set={} gt={}",
            verdict_str(self.artifact_inventory.verdict),
            verdict_str(self.anatomy_plausibility.verdict),
            verdict_str(self.label_set_subset.verdict),
            verdict_str(self.gt_metrics.verdict)
        );
        if self.passed() {
            format!("{}: pass ({blocks})", self.verifier.id)
        } else {
            format!(
                "{}: fail ({blocks}): {}",
                self.verifier.id,
                self.overall_reasons.join("; ")
            )
        }
    }

    /// The report as a JSON value with every object's keys sorted.
    pub fn to_value(&self) -> serde_json::Value {
        sort_keys(
            serde_json::to_value(self)
                .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() })),
        )
    }
}

pub(crate) fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Skipped => "skipped",
        Verdict::NotApplicable => "not_applicable",
    }
}

/// Rebuild every object with keys in sorted order.
pub(crate) fn sort_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sort_keys).collect())
        }
        other => other,
    }
}

//! The paired verifier `medagent.verifiers.ct_segmentation_quality_v1`: trusts nothing
//! in the evidence pack, recomputes everything from the files, and fails closed.
//!
//! Why a separate verifier: the skill proves the upstream ran and wrote a mask; the
//! verifier asks whether the mask is *plausible* and, with a ground truth, *accurate*,
//! without believing anything the skill wrote about it. The pack's JSON is used only
//! to find files (mask, input image, ground truth) and to report its claims next to
//! the recomputed values; geometry, label sets, volumes, components, Dice/IoU and
//! surface metrics all come from the NIfTI files.
//!
//! Layout: [`pack`] reads the JSON documents, [`load`] is the only module that reads
//! images, [`verdict`] and [`surface`] are pure, [`report`] is the output contract
//! (`verifiers/ct_segmentation_quality_v1/report.schema.json`), [`bounds`] the anatomy
//! bounds data, [`vocabulary`] the label names and sets.
//!
//! This file is the entry ([`verify_pack`]) and the order of the checks (`Context::run`);
//! each section of the report is recomputed in its own file, one `impl Context` block
//! each: `recorded` (the files the pack records, opened, hashed and scanned), `target`
//! (what ran and whether it says it succeeded), `artifacts` (the mask against the input
//! and the pack's claims), `anatomy` (plausibility against the bounds), `label_set`
//! (the vocabulary and the expected set), `ground_truth` (Dice, IoU and surfaces).
//!
//! Decisions:
//! - **Covered modalities** are those of the bounds file (`CT_BODY`, `MRI_BODY`): organ
//!   volumes do not depend on the modality. In `MRI_BODY` only the classes of its
//!   everything-set (TotalSegmentatorMR) are bounded; others are reported, not bounded.
//! - **Unsupported modalities** (`MRI_BRAIN`): `modality_supported: false`,
//!   anatomy plausibility `not_applicable`, overall `fail` with the reason that no
//!   verifier covers them. Artifacts, label set and ground truth are still checked
//!   and reported. Overall can never pass by default for them.
//! - **Ground truth** recorded but missing, unreadable or misaligned: `fail`.
//! - **Surface metrics** are reported per class, not gated (no published floors).

mod anatomy;
mod artifacts;
pub mod bounds;
mod ground_truth;
mod label_set;
pub mod load;
pub(crate) mod pack;
mod recorded;
pub(crate) mod report;
pub mod surface;
mod target;
pub(crate) mod trust;
pub(crate) mod verdict;
pub(crate) mod vocabulary;

use std::path::{Path, PathBuf};

use crate::inspect::geometry::DEFAULT_GEOMETRY_TOLERANCE;

use anatomy::bounds_for_modality;
use bounds::{AnatomyBounds, BoundsError};
use label_set::vocabulary_for;
use pack::{PackDoc, PackFacts};
use recorded::open_recorded;
pub use report::VerifierReport;
use report::{Target, VerifierInfo};
use vocabulary::Vocabulary;

/// The verifier's id, as in the reference's manifest.
pub const VERIFIER_ID: &str = "medagent.verifiers.ct_segmentation_quality_v1";
/// The verifier's version (the crate's).
pub(crate) const VERIFIER_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Skill ids whose packs this verifier reads (the reference's target set).
pub(crate) const TARGET_SKILL_IDS: &[&str] = &[
    "nv_segment_ctmr",
    "medagent.nv_segment_ctmr",
    "nv_segment_ct",
    "medagent.nv_segment_ct",
];
/// The modality assumed when a pack records none (and the CT skill's).
pub(crate) const SUPPORTED_MODALITY: &str = "CT_BODY";
/// Default tolerance of the normalised surface Dice, in mm.
pub(crate) const DEFAULT_SURFACE_TOLERANCE_MM: f64 = 1.0;
/// The upstream's NaN sentinel in CT_BODY masks.
pub(crate) const NAN_SENTINEL: u32 = 255;

/// Where class names come from, when the caller wants to choose.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelSource {
    /// An NV-Segment-CTMR bundle root (its `configs/`).
    Bundle(PathBuf),
    /// A `labels.json` sidecar.
    LabelsJson(PathBuf),
    /// Do not load any table: ids only.
    IdsOnly,
}

/// Options; `Default` is the documented behaviour.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Label table to use instead of the one the pack points at.
    pub labels: Option<LabelSource>,
    /// Anatomy bounds file instead of the embedded one.
    pub bounds_path: Option<PathBuf>,
    /// NSD tolerance in mm (default [`DEFAULT_SURFACE_TOLERANCE_MM`]).
    pub surface_tolerance_mm: Option<f64>,
    /// Affine/spacing tolerance (default the reference's 1e-4).
    pub geometry_tolerance: Option<f64>,
    /// Extra labels tolerated by the subset check (default 0, strict).
    pub label_set_tolerance: u32,
    /// Where relative paths recorded in a pack are also looked for, after the pack
    /// directory (the caller's working directory, from its config).
    pub cwd: Option<PathBuf>,
}

/// Errors that mean "no verdict could be formed": the CLI maps them to exit 2.
#[derive(Debug, thiserror::Error)]
pub enum VerifyUsageError {
    #[error("evidence pack directory {} does not exist (pass the run's output_dir)", .0.display())]
    PackDirMissing(PathBuf),
    #[error("{} is not a directory (pass the run's output_dir, which holds output.json)", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} is missing: not an evidence pack (pass the run's output_dir)", .0.display())]
    OutputJsonMissing(PathBuf),
    #[error("{} cannot be used: {reason} (the pack is damaged; re-run the skill)", path.display())]
    OutputJsonInvalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Bounds(#[from] BoundsError),
    #[error("label table {} cannot be loaded: {reason}", path.display())]
    Labels { path: PathBuf, reason: String },
    #[error("{what} must be a finite, non-negative number, got {value}")]
    BadOption { what: &'static str, value: f64 },
}

/// Verify one evidence pack.
pub fn verify_pack(
    pack_dir: &Path,
    opts: &VerifyOptions,
) -> Result<VerifierReport, VerifyUsageError> {
    if !pack_dir.exists() {
        return Err(VerifyUsageError::PackDirMissing(pack_dir.to_path_buf()));
    }
    if !pack_dir.is_dir() {
        return Err(VerifyUsageError::NotADirectory(pack_dir.to_path_buf()));
    }
    let output = match PackDoc::read(pack_dir, "output.json") {
        PackDoc::Parsed(v) => v,
        PackDoc::Missing(p) => return Err(VerifyUsageError::OutputJsonMissing(p)),
        PackDoc::Invalid { path, reason } => {
            return Err(VerifyUsageError::OutputJsonInvalid { path, reason })
        }
    };
    let surface_tolerance = opts
        .surface_tolerance_mm
        .unwrap_or(DEFAULT_SURFACE_TOLERANCE_MM);
    let geometry_tolerance = opts
        .geometry_tolerance
        .unwrap_or(DEFAULT_GEOMETRY_TOLERANCE);
    for (what, value) in [
        ("surface tolerance (mm)", surface_tolerance),
        ("geometry tolerance", geometry_tolerance),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(VerifyUsageError::BadOption { what, value });
        }
    }
    let bounds = match &opts.bounds_path {
        Some(p) => AnatomyBounds::load(p)?,
        None => AnatomyBounds::embedded(),
    };
    let manifest = PackDoc::read(pack_dir, "manifest.json");
    let validation = PackDoc::read(pack_dir, "validation_summary.json");
    let facts = PackFacts::gather(&output, manifest.value(), validation.value());
    let cwd = opts.cwd.as_deref();
    let vocab = vocabulary_for(pack_dir, cwd, &facts, opts.labels.as_ref())?;
    let (bounds, bounds_note) = bounds_for_modality(bounds, &facts, &vocab);
    let ctx = Context {
        pack_dir,
        cwd,
        facts: &facts,
        bounds: &bounds,
        bounds_note,
        vocab: &vocab,
        surface_tolerance,
        geometry_tolerance,
    };
    Ok(ctx.run(&manifest, &validation, opts.label_set_tolerance))
}

/// Everything one verification needs, borrowed.
struct Context<'a> {
    pack_dir: &'a Path,
    cwd: Option<&'a Path>,
    facts: &'a PackFacts,
    bounds: &'a AnatomyBounds,
    /// How the bounds were fitted to the pack's modality, when they were.
    bounds_note: Option<String>,
    vocab: &'a Vocabulary,
    surface_tolerance: f64,
    geometry_tolerance: f64,
}

impl Context<'_> {
    fn run(
        &self,
        manifest: &PackDoc,
        validation: &PackDoc,
        label_set_tolerance: u32,
    ) -> VerifierReport {
        let facts = self.facts;
        let (modality_supported, modality_note) = self.modality();
        let target_checks =
            self.target_checks(manifest, validation, modality_supported, &modality_note);

        // --- artifacts: the mask against the input image, from the headers --------
        let mask = open_recorded(
            (self.pack_dir, self.cwd),
            facts.mask_path.as_deref(),
            "label map",
            "output.path",
        );
        let input = open_recorded(
            (self.pack_dir, self.cwd),
            facts.input_path.as_deref(),
            "input image",
            "input.path",
        );
        let gt = facts.ground_truth_path.as_deref().map(|raw| {
            open_recorded(
                (self.pack_dir, self.cwd),
                Some(raw),
                "ground truth",
                "input.ground_truth_path",
            )
        });
        let (gt_geometry, scan) = self.scan_mask(&mask, gt.as_ref());
        let artifacts = self.artifact_inventory(&mask, &input, scan.as_ref());

        // --- anatomy ---------------------------------------------------------------
        let present: Vec<u32> = artifacts.label_ids_present.clone();
        let anatomy = self.anatomy(modality_supported, &modality_note, scan.as_ref(), &mask);

        // --- label set ---------------------------------------------------------------
        let expected = self.expected_set();
        let subset = verdict::label_set_subset(
            &present,
            &facts.prompts,
            expected.as_ref(),
            label_set_tolerance,
        );

        // --- ground truth ------------------------------------------------------------
        let gt_metrics = self.gt_metrics(
            gt.as_ref(),
            &mask,
            scan.as_ref(),
            gt_geometry.as_ref(),
            expected.as_ref(),
        );

        let target = Target {
            checks: target_checks,
            evidence_pack: self.pack_dir.display().to_string(),
            ground_truth_path: gt.as_ref().and_then(|g| g.shown.clone()),
            input_image_path: input.shown.clone(),
            input_modality: facts.modality.clone(),
            label_map_path: mask.shown.clone(),
            label_names_source: self.label_names_source(),
            modality_note,
            modality_supported,
            run_success_evidence: facts.run_succeeded().1,
            skill_id: facts.skill_id.clone(),
            source_exit_code: facts.exit_code,
            source_overall_status: facts.validation_overall.clone(),
            source_status: facts.status.clone(),
        };
        let (overall, overall_reasons) =
            verdict::overall(&target, &artifacts, &anatomy, &subset, &gt_metrics);
        VerifierReport {
            anatomy_plausibility: anatomy,
            artifact_inventory: artifacts,
            gt_metrics,
            label_set_subset: subset,
            not_for_clinical_use: crate::NOT_FOR_CLINICAL_USE.to_string(),
            overall,
            overall_reasons,
            target,
            verifier: VerifierInfo {
                id: VERIFIER_ID.to_string(),
                version: VERIFIER_VERSION.to_string(),
            },
        }
    }
}

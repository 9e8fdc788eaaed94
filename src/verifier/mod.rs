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

pub mod bounds;
pub mod load;
pub mod pack;
pub mod report;
pub mod surface;
pub mod trust;
pub mod verdict;
pub mod vocabulary;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::inspect::geometry::{compare_facts, GeometryComparison, DEFAULT_GEOMETRY_TOLERANCE};
use crate::nifti::Header;

use bounds::{AnatomyBounds, BoundsError};
use load::{LabelVoxels, MaskScan};
use pack::{resolve_recorded_path, HashedFile, PackDoc, PackFacts};
pub use report::VerifierReport;
use report::*;
use surface::BoolGrid;
use verdict::{ClassObservation, ClassOverlap, ExpectedSet};
use vocabulary::Vocabulary;

/// The verifier's id, as in the reference's manifest.
pub const VERIFIER_ID: &str = "medagent.verifiers.ct_segmentation_quality_v1";
/// The verifier's version (the crate's).
pub const VERIFIER_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Skill ids whose packs this verifier reads (the reference's target set).
pub const TARGET_SKILL_IDS: &[&str] = &[
    "nv_segment_ctmr",
    "medagent.nv_segment_ctmr",
    "nv_segment_ct",
    "medagent.nv_segment_ct",
];
/// The modality assumed when a pack records none (and the CT skill's).
pub const SUPPORTED_MODALITY: &str = "CT_BODY";
/// Default tolerance of the normalised surface Dice, in mm.
pub const DEFAULT_SURFACE_TOLERANCE_MM: f64 = 1.0;
/// The upstream's NaN sentinel in CT_BODY masks.
pub const NAN_SENTINEL: u32 = 255;

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

/// The bounds as they apply to the pack's modality: for a covered modality other than
/// `CT_BODY`, only the classes of its everything-set stay bounded (the others are
/// reported, not bounded); the note says which set was used and what was dropped.
fn bounds_for_modality(
    bounds: AnatomyBounds,
    facts: &PackFacts,
    vocab: &Vocabulary,
) -> (AnatomyBounds, Option<String>) {
    let Some(m) = facts.modality.as_deref() else {
        return (bounds, None);
    };
    if m == SUPPORTED_MODALITY || !bounds.covers(m) {
        return (bounds, None);
    }
    match vocab.everything_sets.get(m) {
        Some((ids, source)) => {
            let (kept, dropped) = bounds.restricted_to(ids);
            let note = format!(
                "bounded classes are those of the {m} set ({source}): {:?}{}",
                kept.ids(),
                if dropped.is_empty() {
                    String::new()
                } else {
                    format!("; outside it, reported not bounded: {dropped:?}")
                }
            );
            (kept, Some(note))
        }
        None => {
            let note = format!(
                "the {m} class set is unknown (no label table gives it), so every bounded class is bounded: {:?}",
                bounds.ids()
            );
            (bounds, Some(note))
        }
    }
}

/// The label vocabulary for this pack (see [`vocabulary`] for the order tried).
fn vocabulary_for(
    pack_dir: &Path,
    cwd: Option<&Path>,
    facts: &PackFacts,
    explicit: Option<&LabelSource>,
) -> Result<Vocabulary, VerifyUsageError> {
    match explicit {
        Some(LabelSource::IdsOnly) => {
            return Ok(Vocabulary::ids_only(vec![
                "ids only: requested by the caller".to_string(),
            ]))
        }
        Some(LabelSource::Bundle(p)) => {
            return vocabulary::from_bundle(p).map_err(|reason| VerifyUsageError::Labels {
                path: p.clone(),
                reason,
            })
        }
        Some(LabelSource::LabelsJson(p)) => {
            return vocabulary::from_labels_json(p).map_err(|reason| VerifyUsageError::Labels {
                path: p.clone(),
                reason,
            })
        }
        None => {}
    }
    let mut notes = Vec::new();
    let mut candidates: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(src) = &facts.label_map_source {
        candidates.push((
            "output.label_map_source",
            resolve_recorded_path(pack_dir, src, cwd),
        ));
    }
    if let Some(root) = &facts.upstream_root {
        candidates.push((
            "invocation.upstream_root",
            resolve_recorded_path(pack_dir, root, cwd),
        ));
    }
    for (field, path) in candidates {
        match vocabulary::from_recorded_path(&path) {
            Ok(v) => return Ok(Vocabulary { notes, ..v }),
            Err(e) => notes.push(format!("{field} {}: {e}", path.display())),
        }
    }
    let sidecar = pack_dir.join("labels.json");
    if sidecar.exists() {
        match vocabulary::from_labels_json(&sidecar) {
            Ok(v) => return Ok(Vocabulary { notes, ..v }),
            Err(e) => notes.push(format!("{}: {e}", sidecar.display())),
        }
    } else {
        notes.push(format!("{} is absent", sidecar.display()));
    }
    Ok(Vocabulary::ids_only(notes))
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

/// A file recorded in the pack, resolved, with its header when readable.
struct Opened {
    shown: Option<String>,
    path: Option<PathBuf>,
    header: Result<Header, String>,
}

fn open_recorded(
    (pack_dir, cwd): (&Path, Option<&Path>),
    raw: Option<&str>,
    what: &str,
    field: &str,
) -> Opened {
    let Some(raw) = raw else {
        return Opened {
            shown: None,
            path: None,
            header: Err(format!("no {what} recorded ({field} is absent)")),
        };
    };
    let path = resolve_recorded_path(pack_dir, raw, cwd);
    let shown = Some(path.display().to_string());
    let header = if !path.exists() {
        Err(format!("{what} {} does not exist", path.display()))
    } else {
        crate::nifti::read_header(&path).map_err(|e| e.to_string())
    };
    Opened {
        shown,
        path: Some(path),
        header,
    }
}

/// Compare a file's SHA-256 with every hash the pack records for it; `None` when the
/// pack records none.
fn hash_check<'c>(
    name: &str,
    path: &Path,
    claims: impl Iterator<Item = &'c pack::HashClaim>,
) -> Option<Check> {
    let claims: Vec<&pack::HashClaim> = claims.collect();
    if claims.is_empty() {
        return None;
    }
    Some(match load::sha256_file(path) {
        Err(e) => Check::new(name, false, format!("cannot hash {}: {e}", path.display())),
        Ok(sha) => {
            let wrong: Vec<String> = claims
                .iter()
                .filter(|c| c.sha256 != sha)
                .map(|c| format!("{} records {}", c.field, c.sha256))
                .collect();
            if wrong.is_empty() {
                Check::new(
                    name,
                    true,
                    format!("sha256 {sha} equals {} recorded hash(es)", claims.len()),
                )
            } else {
                Check::new(
                    name,
                    false,
                    format!(
                        "{} has sha256 {sha}, but {}",
                        path.display(),
                        wrong.join(", ")
                    ),
                )
            }
        }
    })
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

    /// Whether anatomy bounds cover the pack's modality, and the note saying so.
    fn modality(&self) -> (bool, String) {
        let facts = self.facts;
        let modality_is_ct_skill = matches!(
            facts.skill_id.as_str(),
            "nv_segment_ct" | "medagent.nv_segment_ct"
        );
        let modality = facts.modality.as_deref();
        let modality_supported =
            modality_is_ct_skill || modality.is_some_and(|m| self.bounds.covers(m));
        let covered = self.bounds.modalities.join(", ");
        let modality_note = match (modality_supported, modality) {
            (true, Some(m)) if m != SUPPORTED_MODALITY => format!(
                "{m} is covered: organ volumes do not depend on the modality, so the adult anatomy \
                 bounds apply{}",
                self.bounds_note
                    .as_deref()
                    .map(|n| format!("; {n}"))
                    .unwrap_or_default()
            ),
            (true, _) => format!(
                "{} is covered: adult CT anatomy bounds apply",
                modality.unwrap_or("CT")
            ),
            (false, Some("MRI_BRAIN")) => format!(
                "no verifier covers MRI_BRAIN: its classes are brain structures, not the abdominal \
                 organs the anatomy bounds describe (they cover {covered}), so this pack cannot pass"
            ),
            (false, m) => format!(
                "no verifier covers {}: anatomy bounds here cover {covered} only, so this pack cannot pass",
                m.unwrap_or("an unrecorded modality")
            ),
        };
        (modality_supported, modality_note)
    }

    /// Target checks: what ran, and did it succeed by its own account.
    fn target_checks(
        &self,
        manifest: &PackDoc,
        validation: &PackDoc,
        modality_supported: bool,
        modality_note: &str,
    ) -> Vec<Check> {
        let facts = self.facts;
        let mut target_checks = vec![
            Check::new(
                "skill_id_recognised",
                TARGET_SKILL_IDS.contains(&facts.skill_id.as_str()),
                format!(
                    "skill_id {:?}; this verifier reads packs of {TARGET_SKILL_IDS:?}",
                    facts.skill_id
                ),
            ),
            self.manifest_check(manifest),
            {
                let (ok, _, reason) = facts.run_succeeded();
                Check::new("run_succeeded", ok, reason)
            },
            Check::new(
                "validation_passed",
                facts.validation_overall.as_deref() == Some("passed"),
                match (validation.problem(), &facts.validation_overall) {
                    (Some(p), _) => p,
                    (None, Some(s)) => format!("validation_summary.json overall_status is {s:?}"),
                    (None, None) => "validation_summary.json records no overall_status".to_string(),
                },
            ),
            Check::new(
                "modality_supported",
                modality_supported,
                modality_note.to_string(),
            ),
        ];
        let normalised: BTreeSet<&str> = facts
            .skill_id_claims
            .iter()
            .map(|(_, id)| id.strip_prefix("medagent.").unwrap_or(id))
            .collect();
        if normalised.len() > 1 {
            let listed: Vec<String> = facts
                .skill_id_claims
                .iter()
                .map(|(f, id)| format!("{f} = {id:?}"))
                .collect();
            target_checks.push(Check::new(
                "skill_ids_agree",
                false,
                format!("the documents name different skills: {}", listed.join(", ")),
            ));
        }
        if !facts.prompt_problems.is_empty() {
            target_checks.push(Check::new(
                "label_prompts_readable",
                false,
                facts.prompt_problems.join("; "),
            ));
        }
        target_checks
    }

    /// `manifest.json` parses; a reference-layout pack may lack it (the reference
    /// wrapper writes none), a ctmr-skill pack may not.
    fn manifest_check(&self, manifest: &PackDoc) -> Check {
        match manifest {
            PackDoc::Missing(p) if self.facts.reference_layout() => Check::new(
                "manifest_readable",
                true,
                format!(
                    "{} is absent, as in the reference wrapper's packs (output.json records no \
                     ctmr-skill schema_version); hashes are recomputed from the files",
                    p.display()
                ),
            ),
            _ => Check::new(
                "manifest_readable",
                manifest.problem().is_none(),
                manifest
                    .problem()
                    .unwrap_or_else(|| "manifest.json parsed".to_string()),
            ),
        }
    }

    /// The ground truth's geometry against the mask's, and the scan of the mask
    /// (together with the ground truth when it is aligned voxel for voxel).
    fn scan_mask(
        &self,
        mask: &Opened,
        gt: Option<&Opened>,
    ) -> (Option<GeometryComparison>, Option<Result<MaskScan, String>>) {
        // GT usable for voxelwise comparison only when its geometry equals the mask's.
        let gt_geometry = match (&mask.header, gt.map(|g| &g.header)) {
            (Ok(m), Some(Ok(g))) => Some(compare_facts(
                &load::geometry_facts(m),
                &load::geometry_facts(g),
                self.geometry_tolerance,
            )),
            _ => None,
        };
        let gt_aligned = gt_geometry
            .as_ref()
            .is_some_and(|c| c.shape_match && c.spacing_match && c.affine_match);

        let scan: Option<Result<MaskScan, String>> = match (&mask.header, &mask.path) {
            (Ok(_), Some(p)) => {
                let gt_path = if gt_aligned {
                    gt.and_then(|g| g.path.as_deref())
                } else {
                    None
                };
                Some(load::scan(p, gt_path, true).map_err(|e| e.to_string()))
            }
            _ => None,
        };
        (gt_geometry, scan)
    }

    /// Anatomy plausibility, or why it is not judged.
    fn anatomy(
        &self,
        modality_supported: bool,
        modality_note: &str,
        scan: Option<&Result<MaskScan, String>>,
        mask: &Opened,
    ) -> AnatomyPlausibility {
        if !modality_supported {
            return verdict::anatomy_not_judged(
                Verdict::NotApplicable,
                "modality_supported",
                modality_note,
                self.bounds,
            );
        }
        match scan {
            Some(Ok(s)) => verdict::anatomy_plausibility(&self.observations(s, mask), self.bounds),
            Some(Err(e)) => verdict::anatomy_not_judged(
                Verdict::Fail,
                "label_map_readable",
                &format!("label map unreadable: {e}"),
                self.bounds,
            ),
            None => verdict::anatomy_not_judged(
                Verdict::Fail,
                "label_map_readable",
                mask.header
                    .as_ref()
                    .err()
                    .map(String::as_str)
                    .unwrap_or("label map unreadable"),
                self.bounds,
            ),
        }
    }

    /// Where class names came from, with what was tried first.
    fn label_names_source(&self) -> String {
        if self.vocab.notes.is_empty() {
            self.vocab.source.clone()
        } else {
            format!(
                "{} (tried first: {})",
                self.vocab.source,
                self.vocab.notes.join("; ")
            )
        }
    }

    fn artifact_inventory(
        &self,
        mask: &Opened,
        input: &Opened,
        scan: Option<&Result<MaskScan, String>>,
    ) -> ArtifactInventory {
        let facts = self.facts;
        let mut checks = Vec::new();
        let mut inv = ArtifactInventory {
            affine_match: false,
            affine_max_abs_diff: None,
            checks: Vec::new(),
            claimed: facts.claimed.clone(),
            geometry_tolerance: self.geometry_tolerance,
            input_image_path: input.shown.clone(),
            input_image_readable: input.header.is_ok(),
            input_shape: Vec::new(),
            input_spacing: Vec::new(),
            label_ids_present: Vec::new(),
            label_map_dtype: None,
            label_map_path: mask.shown.clone(),
            label_map_readable: false,
            label_map_sha256: None,
            label_map_shape: Vec::new(),
            label_map_spacing: Vec::new(),
            nan_sentinel_255_voxels: None,
            nan_voxels: None,
            non_integer_voxels: None,
            shape_match: false,
            spacing_match: false,
            verdict: Verdict::Fail,
            voxel_volume_ml: None,
        };
        if let Ok(h) = &input.header {
            inv.input_shape = h.shape.to_vec();
            inv.input_spacing = h.spacing.to_vec();
        }
        match &mask.header {
            Err(e) => checks.push(Check::new("label_map_readable", false, e.clone())),
            Ok(h) => self.mask_checks(h, mask, scan, &mut inv, &mut checks),
        }
        self.geometry_checks(mask, input, &mut inv, &mut checks);
        if let (Some(path), true) = (&input.path, input.header.is_ok()) {
            if let Some(c) = hash_check(
                "input_hash_matches_claims",
                path,
                facts.hashes_of(HashedFile::Input),
            ) {
                checks.push(c);
            }
        }
        if inv.label_map_readable {
            checks.push(self.claims_check(&inv));
        }
        inv.verdict = if !checks.is_empty() && checks.iter().all(Check::passed) {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        inv.checks = checks;
        inv
    }

    /// The readable mask: its header facts, its voxels (from the scan) and its hash.
    fn mask_checks(
        &self,
        h: &Header,
        mask: &Opened,
        scan: Option<&Result<MaskScan, String>>,
        inv: &mut ArtifactInventory,
        checks: &mut Vec<Check>,
    ) {
        inv.label_map_dtype = Some(h.datatype.name().to_string());
        inv.label_map_shape = h.shape.to_vec();
        inv.label_map_spacing = h.spacing.to_vec();
        inv.voxel_volume_ml = Some(h.voxel_volume_ml());
        match scan {
            Some(Ok(s)) => self.voxel_checks(s, mask, inv, checks),
            Some(Err(e)) => checks.push(Check::new(
                "label_map_readable",
                false,
                format!("header read, voxels not: {e}"),
            )),
            None => checks.push(Check::new(
                "label_map_readable",
                false,
                "label map not read",
            )),
        }
        match mask.path.as_deref().map(load::sha256_file) {
            Some(Ok(sha)) => inv.label_map_sha256 = Some(sha),
            Some(Err(e)) => checks.push(Check::new(
                "label_map_hashed",
                false,
                format!("cannot hash the label map: {e}"),
            )),
            None => {}
        }
    }

    /// What every voxel of the mask holds: ids present, integer ids only, no NaN sentinel.
    fn voxel_checks(
        &self,
        s: &MaskScan,
        mask: &Opened,
        inv: &mut ArtifactInventory,
        checks: &mut Vec<Check>,
    ) {
        inv.label_map_readable = true;
        checks.push(Check::new(
            "label_map_readable",
            true,
            format!(
                "read every voxel of {}",
                mask.shown.as_deref().unwrap_or("?")
            ),
        ));
        inv.label_ids_present = s
            .tally
            .labels
            .iter()
            .filter_map(|l| u32::try_from(l.id).ok())
            .collect();
        let negative: Vec<i64> = s
            .tally
            .labels
            .iter()
            .map(|l| l.id)
            .filter(|&id| id < 0)
            .collect();
        inv.non_integer_voxels = Some(s.tally.non_integer_voxels);
        inv.nan_voxels = Some(s.tally.nan_voxels);
        inv.nan_sentinel_255_voxels = Some(s.tally.value_255_voxels);
        let bad = s.tally.non_integer_voxels + s.tally.nan_voxels;
        checks.push(Check::new(
            "integer_labels",
            bad == 0 && negative.is_empty(),
            format!(
                "{} non-integer, {} NaN voxels, negative ids {negative:?} (a label map holds non-negative integer ids only)",
                s.tally.non_integer_voxels, s.tally.nan_voxels
            ),
        ));
        // 255 is a class only in MRI_BRAIN; in the body modalities it is the sentinel.
        let modality = self.facts.modality.as_deref();
        if modality.is_none_or(|m| m == SUPPORTED_MODALITY || m == "MRI_BODY") {
            checks.push(Check::new(
                "no_nan_sentinel",
                s.tally.value_255_voxels == 0,
                format!(
                    "{} voxels equal {NAN_SENTINEL}, the upstream's NaN sentinel (not a {} class)",
                    s.tally.value_255_voxels,
                    modality.unwrap_or(SUPPORTED_MODALITY)
                ),
            ));
        }
    }

    /// The mask's geometry against the input image's, from the headers.
    fn geometry_checks(
        &self,
        mask: &Opened,
        input: &Opened,
        inv: &mut ArtifactInventory,
        checks: &mut Vec<Check>,
    ) {
        match (&mask.header, &input.header) {
            (Ok(m), Ok(i)) => {
                let c = compare_facts(
                    &load::geometry_facts(m),
                    &load::geometry_facts(i),
                    self.geometry_tolerance,
                );
                inv.shape_match = c.shape_match;
                inv.spacing_match = c.spacing_match;
                inv.affine_match = c.affine_match;
                inv.affine_max_abs_diff = Some(c.affine_max_abs_diff);
                let why = if c.differences.is_empty() {
                    "equal within tolerance".to_string()
                } else {
                    c.differences.join("; ")
                };
                checks.push(Check::new(
                    "shape_match",
                    c.shape_match,
                    format!("mask {:?} vs input {:?}", m.shape, i.shape),
                ));
                checks.push(Check::new(
                    "spacing_match",
                    c.spacing_match,
                    format!("mask {:?} vs input {:?} mm", m.spacing, i.spacing),
                ));
                checks.push(Check::new(
                    "affine_match",
                    c.affine_match,
                    format!(
                        "max |mask − input| affine difference {} (tolerance {}): {why}",
                        c.affine_max_abs_diff, self.geometry_tolerance
                    ),
                ));
            }
            (_, Err(e)) => checks.push(Check::new(
                "input_image_readable",
                false,
                format!("cannot recompute geometry against the input: {e}"),
            )),
            (Err(_), Ok(_)) => {}
        }
    }

    /// The pack's claims must equal the recomputation; a disagreement means the pack
    /// does not describe these files (stale, edited, or wrong).
    fn claims_check(&self, inv: &ArtifactInventory) -> Check {
        let c = &self.facts.claimed;
        let mut diffs = Vec::new();
        if let Some(ids) = &c.label_ids_present {
            if ids != &inv.label_ids_present {
                diffs.push(format!(
                    "label_ids_present claimed {ids:?}, found {:?}",
                    inv.label_ids_present
                ));
            }
        }
        if let Some(shape) = &c.shape {
            let found: Vec<u64> = inv.label_map_shape.iter().map(|&v| v as u64).collect();
            if shape != &found {
                diffs.push(format!("shape claimed {shape:?}, found {found:?}"));
            }
        }
        for (name, claimed, found) in [
            ("shape_match", c.shape_match, inv.shape_match),
            ("spacing_match", c.spacing_match, inv.spacing_match),
            ("affine_match", c.affine_match, inv.affine_match),
        ] {
            if let Some(claimed) = claimed {
                if inv.input_image_readable && claimed != found {
                    diffs.push(format!(
                        "geometry.{name} claimed {claimed}, recomputed {found}"
                    ));
                }
            }
        }
        if let Some(found) = &inv.label_map_sha256 {
            for claim in self
                .facts
                .hashes_of(HashedFile::Mask)
                .filter(|c| &c.sha256 != found)
            {
                diffs.push(format!(
                    "mask sha256 claimed {} ({}), file has {found}",
                    claim.sha256, claim.field
                ));
            }
        }
        if let (Some(claimed), Some(found)) = (c.voxel_volume_ml, inv.voxel_volume_ml) {
            if (claimed - found).abs() > 1e-9 * found.abs().max(1.0) {
                diffs.push(format!(
                    "voxel_volume_ml claimed {claimed}, header gives {found}"
                ));
            }
        }
        Check::new(
            "pack_claims_match_files",
            diffs.is_empty(),
            if diffs.is_empty() {
                "every claim the pack makes about the mask matches the files".to_string()
            } else {
                diffs.join("; ")
            },
        )
    }

    fn observations(&self, s: &MaskScan, mask: &Opened) -> Vec<ClassObservation> {
        let voxel_ml = mask
            .header
            .as_ref()
            .map(Header::voxel_volume_ml)
            .unwrap_or(0.0);
        s.tally
            .labels
            .iter()
            .filter_map(|l| {
                let id = u32::try_from(l.id).ok()?;
                let comp = s.components.get(&l.id);
                Some(ClassObservation {
                    label_id: id,
                    name: self.vocab.name(id),
                    voxels: l.voxels,
                    volume_ml: l.voxels as f64 * voxel_ml,
                    components: comp.map_or(0, |c| c.count),
                    largest_fraction: comp.map_or(0.0, |c| c.largest_fraction),
                })
            })
            .collect()
    }

    /// Expanded prompts, else the modality's everything-set, else unknown.
    fn expected_set(&self) -> Option<ExpectedSet> {
        let facts = self.facts;
        if !facts.prompts.is_empty() {
            return Some(ExpectedSet {
                basis: "prompts".to_string(),
                ids: self.vocab.expand_prompts(&facts.prompts),
                source: Some(format!("sub-classes: {}", self.vocab.subclass_source)),
            });
        }
        let modality = facts.modality.as_deref().unwrap_or(SUPPORTED_MODALITY);
        self.vocab
            .everything_sets
            .get(modality)
            .map(|(ids, source)| ExpectedSet {
                basis: "everything_set".to_string(),
                ids: ids.clone(),
                source: Some(source.clone()),
            })
    }

    fn gt_metrics(
        &self,
        gt: Option<&Opened>,
        mask: &Opened,
        scan: Option<&Result<MaskScan, String>>,
        geometry: Option<&crate::inspect::GeometryComparison>,
        expected: Option<&ExpectedSet>,
    ) -> GtMetrics {
        let mut m = GtMetrics {
            acceptable: false,
            checks: Vec::new(),
            conventions: verdict::conventions(self.surface_tolerance),
            geometry: None,
            ground_truth_path: gt.and_then(|g| g.shown.clone()),
            per_class: Vec::new(),
            reason: String::new(),
            surface_tolerance_mm: self.surface_tolerance,
            verdict: Verdict::Fail,
        };
        let Some(gt) = gt else {
            m.verdict = Verdict::Skipped;
            m.acceptable = true;
            m.reason = "no ground_truth_path recorded in the evidence pack".to_string();
            return m;
        };
        match self.compare_with_gt(&mut m, gt, mask, scan, geometry, expected) {
            Ok(()) => m,
            Err((name, reason)) => {
                m.checks.push(Check::new(name, false, reason.clone()));
                m.reason = reason;
                m.verdict = Verdict::Fail;
                m.acceptable = false;
                m
            }
        }
    }

    /// The ground-truth comparison step by step; the first failing step ends it
    /// (with the name of its check and the reason), keeping the checks passed so far.
    fn compare_with_gt(
        &self,
        m: &mut GtMetrics,
        gt: &Opened,
        mask: &Opened,
        scan: Option<&Result<MaskScan, String>>,
        geometry: Option<&crate::inspect::GeometryComparison>,
        expected: Option<&ExpectedSet>,
    ) -> Result<(), GtFailure> {
        let gt_header = self.gt_readable(m, gt)?;
        gt_aligned(m, gt_header, mask, geometry)?;
        let s = match scan {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(("voxels_readable", format!("cannot read voxels: {e}"))),
            None => return Err(("voxels_readable", "label map not read".to_string())),
        };
        let Some(confusion) = &s.confusion else {
            return Err(("voxels_readable", "ground truth was not read".to_string()));
        };
        let gt_bad = confusion.gt_nan_voxels + confusion.gt_non_integer_voxels;
        if gt_bad > 0 {
            return Err((
                "ground_truth_integer_labels",
                format!(
                    "ground truth has {} NaN and {} non-integer voxels",
                    confusion.gt_nan_voxels, confusion.gt_non_integer_voxels
                ),
            ));
        }
        let overlaps = self.class_overlaps(s, confusion, mask);
        // Fail closed: a class present in both maps must have its surfaces measured.
        let unmeasured: Vec<u32> = overlaps
            .iter()
            .filter(|o| o.pred_voxels > 0 && o.gt_voxels > 0 && o.surface.is_none())
            .map(|o| o.label_id)
            .collect();
        if !unmeasured.is_empty() {
            return Err((
                "surface_metrics_computed",
                format!("surface metrics could not be computed for label ids {unmeasured:?} (ids above 65535, or volumes above {} voxels, are not supported)", load::MAX_SURFACE_VOXELS),
            ));
        }
        self.score(m, &overlaps, expected);
        Ok(())
    }

    /// The ground truth's header is readable and its hash matches the pack's claims.
    fn gt_readable<'g>(&self, m: &mut GtMetrics, gt: &'g Opened) -> Result<&'g Header, GtFailure> {
        let gt_header = match &gt.header {
            Ok(h) => h,
            Err(e) => {
                return Err((
                    "ground_truth_readable",
                    format!("recorded ground truth cannot be used: {e}"),
                ))
            }
        };
        m.checks.push(Check::new(
            "ground_truth_readable",
            true,
            format!("header of {} read", gt.shown.as_deref().unwrap_or("?")),
        ));
        if let Some(path) = &gt.path {
            match hash_check(
                "ground_truth_hash_matches_claims",
                path,
                self.facts.hashes_of(HashedFile::GroundTruth),
            ) {
                Some(c) if !c.passed() => {
                    return Err(("ground_truth_hash_matches_claims", c.reason))
                }
                Some(c) => m.checks.push(c),
                None => {}
            }
        }
        Ok(gt_header)
    }

    /// Per-class voxel counts, overlaps and (for classes in both maps) surface metrics.
    fn class_overlaps(
        &self,
        s: &MaskScan,
        confusion: &crate::inspect::confusion::ConfusionTally,
        mask: &Opened,
    ) -> Vec<ClassOverlap> {
        let spacing = mask.header.as_ref().map(|h| h.spacing).unwrap_or([1.0; 3]);
        let boxes = match (&s.pred_voxels, &s.gt_voxels) {
            (Some(p), Some(g)) => union_bboxes(p, g),
            _ => BTreeMap::new(),
        };
        let mut overlaps = Vec::new();
        for o in confusion.overlaps() {
            let Ok(id) = u32::try_from(o.label_id) else {
                continue;
            };
            let surface = match (
                &s.pred_voxels,
                &s.gt_voxels,
                u16::try_from(id)
                    .ok()
                    .and_then(|i| boxes.get(&i).map(|b| (i, *b))),
            ) {
                (Some(p), Some(g), Some((id16, bbox))) if o.pred_voxels > 0 && o.gt_voxels > 0 => {
                    Some(class_surface(
                        p,
                        g,
                        id16,
                        bbox,
                        spacing,
                        self.surface_tolerance,
                    ))
                }
                _ => None,
            };
            overlaps.push(ClassOverlap {
                label_id: id,
                name: self.vocab.name(id),
                pred_voxels: o.pred_voxels,
                gt_voxels: o.gt_voxels,
                intersection: o.intersection,
                surface,
            });
        }
        overlaps
    }

    /// Per-class rows against the Dice floors, and the verdict from them.
    fn score(&self, m: &mut GtMetrics, overlaps: &[ClassOverlap], expected: Option<&ExpectedSet>) {
        let scope: Option<BTreeSet<u32>> = expected.map(|e| e.ids.clone());
        let (rows, checks) = verdict::gt_rows(overlaps, scope.as_ref(), self.bounds);
        m.checks.extend(checks);
        let scored = rows.iter().filter(|r| r.scored).count();
        m.per_class = rows;
        if scored == 0 {
            m.verdict = Verdict::Skipped;
            m.acceptable = true;
            m.reason =
                "the ground truth annotates no class inside the expected set: nothing to score"
                    .to_string();
            return;
        }
        let failed = verdict::failed_reasons(&m.checks);
        m.verdict = if failed.is_none() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        m.acceptable = failed.is_none();
        m.reason = failed.unwrap_or_else(|| {
            format!("{scored} scored class(es) meet their Dice floors; none missed")
        });
    }
}

/// A failed ground-truth step: the name of its check and the reason.
type GtFailure = (&'static str, String);

/// The ground truth lies on the mask's grid (shape, spacing, affine); its geometry is recorded.
fn gt_aligned(
    m: &mut GtMetrics,
    gt_header: &Header,
    mask: &Opened,
    geometry: Option<&crate::inspect::GeometryComparison>,
) -> Result<(), GtFailure> {
    let Some(geometry) = geometry else {
        let why = mask
            .header
            .as_ref()
            .err()
            .cloned()
            .unwrap_or_else(|| "label map unreadable".to_string());
        return Err((
            "label_map_readable",
            format!("cannot compare with the ground truth: {why}"),
        ));
    };
    m.geometry = Some(GtGeometry {
        affine_match: geometry.affine_match,
        affine_max_abs_diff: geometry.affine_max_abs_diff,
        gt_shape: gt_header.shape.to_vec(),
        gt_spacing: gt_header.spacing.to_vec(),
        shape_match: geometry.shape_match,
        spacing_match: geometry.spacing_match,
    });
    if !(geometry.shape_match && geometry.spacing_match && geometry.affine_match) {
        return Err((
            "ground_truth_aligned",
            format!(
                "ground truth and mask are not on the same grid: {}",
                geometry.differences.join("; ")
            ),
        ));
    }
    m.checks.push(Check::new(
        "ground_truth_aligned",
        true,
        "same shape, spacing and affine as the mask",
    ));
    Ok(())
}

/// Inclusive bounding box per label id over the union of both label maps, in one
/// pass (so many classes cost one scan, not one scan each).
fn union_bboxes(pred: &LabelVoxels, gt: &LabelVoxels) -> BTreeMap<u16, ([usize; 3], [usize; 3])> {
    let [nx, ny, _] = pred.shape;
    let mut boxes: BTreeMap<u16, ([usize; 3], [usize; 3])> = BTreeMap::new();
    let mut grow = |id: u16, c: [usize; 3]| {
        let b = boxes.entry(id).or_insert((c, c));
        for (k, &v) in c.iter().enumerate() {
            b.0[k] = b.0[k].min(v);
            b.1[k] = b.1[k].max(v);
        }
    };
    for (i, (&p, &g)) in pred.ids.iter().zip(&gt.ids).enumerate() {
        if p != 0 || g != 0 {
            let c = [i % nx, (i / nx) % ny, i / (nx * ny)];
            if p != 0 {
                grow(p, c);
            }
            if g != 0 && g != p {
                grow(g, c);
            }
        }
    }
    boxes
}

/// Surface metrics of one class, on the crop of its union bounding box.
fn class_surface(
    pred: &LabelVoxels,
    gt: &LabelVoxels,
    id: u16,
    bbox: ([usize; 3], [usize; 3]),
    spacing: [f64; 3],
    tolerance: f64,
) -> surface::SurfaceMetrics {
    let (lo, hi) = bbox;
    let [nx, ny, _] = pred.shape;
    let crop = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
    let at = |v: &LabelVoxels, x: usize, y: usize, z: usize| {
        v.ids[(lo[0] + x) + nx * ((lo[1] + y) + ny * (lo[2] + z))] == id
    };
    let p = BoolGrid::from_fn(crop, |x, y, z| at(pred, x, y, z));
    let g = BoolGrid::from_fn(crop, |x, y, z| at(gt, x, y, z));
    surface::surface_metrics(&g, &p, spacing, tolerance)
}

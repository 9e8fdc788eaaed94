//! Ground-truth metrics: when the pack records a ground truth, the mask is compared
//! with it voxel for voxel (Dice, IoU) and surface by surface (per class, on the crop
//! of its bounding box), and scored against the Dice floors.
//!
//! Why apart: this is the only accuracy check, and it fails closed step by step
//! (unreadable, misaligned, non-integer, unmeasured surfaces) before anything is scored.

use std::collections::{BTreeMap, BTreeSet};

use super::load::{self, LabelVoxels, MaskScan};
use super::pack::HashedFile;
use super::recorded::{hash_check, Opened};
use super::report::{Check, GtGeometry, GtMetrics, Verdict};
use super::surface::{self, BoolGrid};
use super::verdict::{self, ClassOverlap, ExpectedSet};
use super::Context;
use crate::nifti::Header;

impl Context<'_> {
    pub(super) fn gt_metrics(
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

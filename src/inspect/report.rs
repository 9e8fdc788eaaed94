//! The inspection report: what the CLI prints, the MCP tool returns, and the evidence
//! builder and verifier read. Its JSON Schema is `schemas/inspect_report.schema.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::components::ComponentStats;
use super::confusion::{ConfusionEntry, ConfusionTally, LabelOverlap};
use super::geometry::GeometryComparison;
use super::intensity::IntensityStats;
use super::stats::VolumeTally;

/// The report's schema identifier.
pub(crate) const SCHEMA_VERSION: &str = "ctmr-skill.inspect/1";

/// Identity and geometry of the inspected label map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskInfo {
    pub path: String,
    /// Voxels per axis (x, y, z).
    pub shape: [usize; 3],
    /// Voxel size in mm per axis.
    pub spacing: [f64; 3],
    /// Voxel index -> world mm (RAS+), as nibabel's `img.affine`.
    pub affine: [[f64; 4]; 4],
    pub sform_code: i32,
    pub qform_code: i32,
    /// Orientation codes of the affine, e.g. "RAS".
    pub orientation: String,
    /// On-disk data type, e.g. "float32".
    pub dtype: String,
}

/// Statistics of one label id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelStats {
    pub id: i64,
    /// Class name, when a label table was attached (`attach_names`).
    pub name: Option<String>,
    pub voxels: u64,
    /// `voxels` x voxel volume, in mL.
    pub volume_ml: f64,
    /// Smallest voxel index per axis (inclusive).
    pub bbox_min: [usize; 3],
    /// Largest voxel index per axis (inclusive).
    pub bbox_max: [usize; 3],
    /// Mean voxel index per axis.
    pub centroid_voxel: [f64; 3],
    /// `centroid_voxel` mapped through the affine, in world mm.
    pub centroid_mm: [f64; 3],
    /// Some voxel of the label lies on a face of the volume (reported, never altered).
    pub touches_border: bool,
    /// 26-connected components, when requested.
    pub components: Option<ComponentStats>,
    /// Reference-image intensities under the label, when a reference was given and
    /// at least one of its voxels under the label is finite.
    pub intensity: Option<IntensityStats>,
}

/// Prediction vs ground truth, from one streamed pass over both maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub pred_path: String,
    pub gt_path: String,
    /// Geometry of the prediction (a) vs the ground truth (b).
    pub geometry: GeometryComparison,
    pub total_voxels: u64,
    /// Voxels where both maps hold an integer: the joint histogram's mass.
    pub compared_voxels: u64,
    /// Voxels where either map is NaN or non-integer, left out of every figure.
    pub excluded_voxels: u64,
    pub pred_nan_voxels: u64,
    pub pred_non_integer_voxels: u64,
    pub gt_nan_voxels: u64,
    pub gt_non_integer_voxels: u64,
    /// Joint histogram: non-zero (pred id, gt id) cells, 0 = background.
    pub confusion: Vec<ConfusionEntry>,
    /// Per-label overlap for every non-zero id present in either map.
    pub labels: Vec<LabelOverlap>,
}

impl Comparison {
    /// Assemble from the paths, the geometry check and the pass's joint histogram.
    pub(crate) fn from_tally(
        pred_path: String,
        gt_path: String,
        geometry: GeometryComparison,
        tally: ConfusionTally,
    ) -> Self {
        let labels = tally.overlaps();
        Comparison {
            pred_path,
            gt_path,
            geometry,
            total_voxels: tally.total_voxels,
            compared_voxels: tally.compared_voxels,
            excluded_voxels: tally.excluded_voxels,
            pred_nan_voxels: tally.pred_nan_voxels,
            pred_non_integer_voxels: tally.pred_non_integer_voxels,
            gt_nan_voxels: tally.gt_nan_voxels,
            gt_non_integer_voxels: tally.gt_non_integer_voxels,
            confusion: tally.confusion,
            labels,
        }
    }

    /// The overlap of `label_id`, also for an id neither map holds (`both_empty`).
    pub fn overlap(&self, label_id: i64) -> LabelOverlap {
        self.labels
            .iter()
            .find(|l| l.label_id == label_id)
            .copied()
            .unwrap_or_else(|| LabelOverlap::from_counts(label_id, 0, 0, 0))
    }
}

/// Everything one inspection found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectReport {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: String,
    pub mask: MaskInfo,
    /// Volume of one voxel in mL (product of spacings / 1000).
    pub voxel_volume_ml: f64,
    pub total_voxels: u64,
    /// Voxels equal to 0.
    pub background_voxels: u64,
    /// Finite voxels with a fractional part, or infinite: counted under no label.
    pub non_integer_voxels: u64,
    /// NaN voxels: counted under no label.
    pub nan_voxels: u64,
    /// Voxels equal to 255: the upstream writes NaN as 255, and 255 is also a real
    /// MRI-brain class id. They are counted under label 255 *and* here, so a reader
    /// can tell which case applies from the modality.
    pub value_255_voxels: u64,
    /// False when any voxel is NaN or non-integer: such a map is flagged, never
    /// silently truncated.
    pub integer_valued: bool,
    /// Every non-zero integer id present, ascending.
    pub labels: Vec<LabelStats>,
    /// The reference image whose intensities were measured, when one was given.
    pub reference_path: Option<String>,
    /// Geometry of the mask (a) vs the reference image (b), when one was given.
    pub reference_geometry: Option<GeometryComparison>,
    /// Overlap with a ground-truth map, when one was given on the label map's grid.
    pub ground_truth: Option<Comparison>,
    /// Geometry of the mask (a) vs a ground truth that is *not* on its voxel grid
    /// (the overlap is then skipped; on the grid, the geometry is in `ground_truth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_truth_geometry: Option<GeometryComparison>,
    /// Figures not computed, each with why (a second image off the label map's grid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Always the crate's `NOT_FOR_CLINICAL_USE` statement.
    pub not_for_clinical_use: String,
}

/// Per-label statistics from a pass's tallies: volumes, world centroids, and the
/// optional components and intensities joined by id.
pub(crate) fn label_stats(
    tally: &VolumeTally,
    voxel_volume_ml: f64,
    affine: &[[f64; 4]; 4],
    components: Option<&BTreeMap<i64, ComponentStats>>,
    intensity: Option<&BTreeMap<i64, IntensityStats>>,
) -> Vec<LabelStats> {
    tally
        .labels
        .iter()
        .map(|g| LabelStats {
            id: g.id,
            name: None,
            voxels: g.voxels,
            volume_ml: g.voxels as f64 * voxel_volume_ml,
            bbox_min: g.bbox_min,
            bbox_max: g.bbox_max,
            centroid_voxel: g.centroid_voxel,
            centroid_mm: voxel_to_world(affine, g.centroid_voxel),
            touches_border: g.touches_border,
            components: components.and_then(|c| c.get(&g.id).copied()),
            intensity: intensity.and_then(|i| i.get(&g.id).copied()),
        })
        .collect()
}

/// Map a (fractional) voxel index through the affine.
pub(crate) fn voxel_to_world(affine: &[[f64; 4]; 4], ijk: [f64; 3]) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (r, o) in out.iter_mut().enumerate() {
        *o = affine[r][0] * ijk[0] + affine[r][1] * ijk[1] + affine[r][2] * ijk[2] + affine[r][3];
    }
    out
}

impl InspectReport {
    /// One sentence on the second images' geometry when anything differs from the
    /// label map's (every difference, and what was skipped); `None` when all match.
    pub fn geometry_note(&self) -> Option<String> {
        let mut parts = Vec::new();
        let gt = self
            .ground_truth
            .as_ref()
            .map(|c| &c.geometry)
            .or(self.ground_truth_geometry.as_ref());
        for (role, g) in [
            ("reference image", self.reference_geometry.as_ref()),
            ("ground truth", gt),
        ] {
            if let Some(g) = g.filter(|g| !g.matches()) {
                parts.push(format!(
                    "Geometry differs from the {role}: {}.",
                    g.differences.join("; ")
                ));
            }
        }
        for s in &self.skipped {
            parts.push(format!("Skipped: {s}."));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// Fill in class names from a label table (`None` leaves a label unnamed).
    pub fn attach_names(&mut self, lookup: impl Fn(i64) -> Option<String>) {
        for label in &mut self.labels {
            label.name = lookup(label.id);
        }
    }

    /// A readable text table of the whole report, for terminals and logs.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let m = &self.mask;
        let _ = writeln!(out, "label map: {}", m.path);
        let _ = writeln!(
            out,
            "  shape {} x {} x {}, spacing {} x {} x {} mm, orientation {}, dtype {}, sform {} / qform {}",
            m.shape[0],
            m.shape[1],
            m.shape[2],
            fmt_num(m.spacing[0]),
            fmt_num(m.spacing[1]),
            fmt_num(m.spacing[2]),
            m.orientation,
            m.dtype,
            m.sform_code,
            m.qform_code
        );
        let _ = writeln!(
            out,
            "  voxel volume {} mL; {} voxels: {} background, {} labelled in {} labels",
            fmt_num(self.voxel_volume_ml),
            self.total_voxels,
            self.background_voxels,
            self.labels.iter().map(|l| l.voxels).sum::<u64>(),
            self.labels.len()
        );
        if !self.integer_valued {
            let _ = writeln!(
                out,
                "  WARNING: not integer-valued: {} non-integer and {} NaN voxels, counted under no label",
                self.non_integer_voxels, self.nan_voxels
            );
        }
        if self.value_255_voxels > 0 {
            let _ = writeln!(
                out,
                "  NOTE: {} voxels have value 255 (NaN as written by the upstream, or the MRI-brain class 255)",
                self.value_255_voxels
            );
        }
        out.push('\n');
        out.push_str(&self.render_label_rows());
        if let Some(g) = &self.reference_geometry {
            let _ = writeln!(
                out,
                "\nreference image: {}",
                self.reference_path.as_deref().unwrap_or("?")
            );
            render_geometry(&mut out, g);
        }
        if let Some(c) = &self.ground_truth {
            out.push('\n');
            out.push_str(&render_comparison(c));
        }
        if let Some(g) = &self.ground_truth_geometry {
            let _ = writeln!(out, "\nground truth (not on the label map's grid):");
            render_geometry(&mut out, g);
        }
        for s in &self.skipped {
            let _ = writeln!(out, "  SKIPPED: {s}");
        }
        let _ = writeln!(out, "\n{}", self.not_for_clinical_use);
        out
    }

    fn render_label_rows(&self) -> String {
        let names: Vec<String> = self
            .labels
            .iter()
            .map(|l| l.name.clone().unwrap_or_else(|| "-".into()))
            .collect();
        let name_w = names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(1)
            .max(4);
        let with_comp = self.labels.iter().any(|l| l.components.is_some());
        let with_int = self.labels.iter().any(|l| l.intensity.is_some());
        let mut out = String::new();
        let _ = write!(
            out,
            "{:>6}  {:<name_w$}  {:>10}  {:>11}  {:<17}  {:<17}  {:<26}  {:<6}",
            "id", "name", "voxels", "volume_ml", "bbox_min", "bbox_max", "centroid_mm", "border"
        );
        if with_comp {
            let _ = write!(out, "  {:>5}  {:>7}", "comps", "largest");
        }
        if with_int {
            let _ = write!(
                out,
                "  {:>23}  {:>21}",
                "intensity mean ± std", "min .. max"
            );
        }
        out.push('\n');
        for (l, name) in self.labels.iter().zip(&names) {
            let _ = write!(
                out,
                "{:>6}  {:<name_w$}  {:>10}  {:>11.4}  {:<17}  {:<17}  {:<26}  {:<6}",
                l.id,
                name,
                l.voxels,
                l.volume_ml,
                format!("{:?}", l.bbox_min),
                format!("{:?}", l.bbox_max),
                format!(
                    "({:.1}, {:.1}, {:.1})",
                    l.centroid_mm[0], l.centroid_mm[1], l.centroid_mm[2]
                ),
                if l.touches_border { "yes" } else { "no" }
            );
            if with_comp {
                match &l.components {
                    Some(c) => {
                        let _ = write!(
                            out,
                            "  {:>5}  {:>6.1}%",
                            c.count,
                            100.0 * c.largest_fraction
                        );
                    }
                    None => {
                        let _ = write!(out, "  {:>5}  {:>7}", "-", "-");
                    }
                }
            }
            if with_int {
                match &l.intensity {
                    Some(i) => {
                        let _ = write!(
                            out,
                            "  {:>23}  {:>21}",
                            format!("{:.2} ± {:.2}", i.mean, i.std),
                            format!("{:.1} .. {:.1}", i.min, i.max)
                        );
                    }
                    None => {
                        let _ = write!(out, "  {:>23}  {:>21}", "-", "-");
                    }
                }
            }
            out.push('\n');
        }
        if self.labels.is_empty() {
            out.push_str("  (no labels: every voxel is background, NaN or non-integer)\n");
        }
        out
    }
}

fn render_geometry(out: &mut String, g: &GeometryComparison) {
    if g.differences.is_empty() {
        let _ = writeln!(
            out,
            "  geometry matches (affine max abs diff {:e} <= {:e})",
            g.affine_max_abs_diff, g.tolerance
        );
    } else {
        for d in &g.differences {
            let _ = writeln!(out, "  geometry: {d}");
        }
    }
}

fn render_comparison(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ground truth: {}", c.gt_path);
    render_geometry(&mut out, &c.geometry);
    if c.excluded_voxels > 0 {
        let _ = writeln!(
            out,
            "  WARNING: {} voxels excluded (NaN or non-integer in either map)",
            c.excluded_voxels
        );
    }
    let _ = writeln!(
        out,
        "{:>6}  {:>10}  {:>10}  {:>12}  {:>7}  {:>7}  status",
        "id", "pred", "gt", "intersection", "dice", "iou"
    );
    for l in &c.labels {
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        let status = serde_json::to_value(l.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>6}  {:>10}  {:>10}  {:>12}  {:>7}  {:>7}  {}",
            l.label_id,
            l.pred_voxels,
            l.gt_voxels,
            l.intersection,
            f(l.dice),
            f(l.iou),
            status
        );
    }
    out
}

/// Short decimal rendering without trailing zeros noise ("1.5", "0.8", "3").
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_centroid_goes_through_the_affine() {
        let affine = [
            [-0.5, 0.0, 0.0, 10.0],
            [0.0, 0.8, 0.0, -20.0],
            [0.0, 0.0, 3.0, 5.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(voxel_to_world(&affine, [2.0, 5.0, 1.5]), [9.0, -16.0, 9.5]);
    }

    #[test]
    fn an_all_background_map_renders_without_labels_or_warnings() {
        let report = InspectReport {
            schema_version: SCHEMA_VERSION.into(),
            mask: MaskInfo {
                path: "empty.nii.gz".into(),
                shape: [2, 2, 2],
                spacing: [1.0, 1.0, 2.5],
                affine: [
                    [1.0, 0.0, 0.0, 0.0],
                    [0.0, 1.0, 0.0, 0.0],
                    [0.0, 0.0, 2.5, 0.0],
                    [0.0, 0.0, 0.0, 1.0],
                ],
                sform_code: 1,
                qform_code: 1,
                orientation: "RAS".into(),
                dtype: "uint8".into(),
            },
            voxel_volume_ml: 0.0025,
            total_voxels: 8,
            background_voxels: 8,
            non_integer_voxels: 0,
            nan_voxels: 0,
            value_255_voxels: 0,
            integer_valued: true,
            labels: vec![],
            reference_path: None,
            reference_geometry: None,
            ground_truth_geometry: None,
            skipped: Vec::new(),
            ground_truth: None,
            not_for_clinical_use: crate::NOT_FOR_CLINICAL_USE.into(),
        };
        let table = report.render_table();
        assert!(table.contains("(no labels"), "{table}");
        assert!(table.contains("spacing 1 x 1 x 2.5 mm"), "{table}");
        assert!(
            !table.contains("WARNING") && !table.contains("NOTE"),
            "{table}"
        );
        assert!(!table.contains("ground truth") && !table.contains("reference image"));
        assert!(table.contains(crate::NOT_FOR_CLINICAL_USE));
    }

    #[test]
    fn number_rendering_is_short() {
        assert_eq!(fmt_num(1.5), "1.5");
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(0.000976), "0.000976");
    }
}

//! Geometry comparison of two images: shape, spacing, affine (with its largest element
//! difference), orientation codes, sform/qform codes, with a human-readable list of
//! every difference at once.
//!
//! The affine tolerance defaults to 1e-4 like the reference wrapper
//! (`max |A - B| <= 1e-4`); spacings use the same tolerance per axis.

use serde::{Deserialize, Serialize};

/// The default affine / spacing tolerance (the reference wrapper's `GEOMETRY_TOLERANCE`).
pub(crate) const DEFAULT_GEOMETRY_TOLERANCE: f64 = 1e-4;

/// The geometry facts of one image that the comparison needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GeometryFacts {
    pub shape: [usize; 3],
    pub spacing: [f64; 3],
    pub affine: [[f64; 4]; 4],
    pub orientation: [char; 3],
    /// The header's `sform_code` and `qform_code` (0 = unknown).
    pub sform_code: i32,
    pub qform_code: i32,
}

/// How two images' geometries relate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeometryComparison {
    pub shape_a: [usize; 3],
    pub shape_b: [usize; 3],
    pub shape_match: bool,
    pub spacing_a: [f64; 3],
    pub spacing_b: [f64; 3],
    pub spacing_match: bool,
    pub affine_max_abs_diff: f64,
    /// `[row, column]` of the affine element with the largest difference (the first
    /// one on ties; `[0, 0]` when the affines are equal).
    #[serde(default)]
    pub affine_max_abs_diff_at: [usize; 2],
    pub affine_match: bool,
    /// The tolerance applied to the affine and the spacings.
    pub tolerance: f64,
    /// Orientation codes, e.g. "RAS".
    pub orientation_a: String,
    pub orientation_b: String,
    pub orientation_match: bool,
    /// `sform_code` / `qform_code` of each image (0 = unknown, 1 = scanner, 2 = aligned,
    /// 3 = Talairach, 4 = MNI, 5 = template).
    #[serde(default)]
    pub sform_code_a: i32,
    #[serde(default)]
    pub sform_code_b: i32,
    #[serde(default)]
    pub qform_code_a: i32,
    #[serde(default)]
    pub qform_code_b: i32,
    /// Both codes equal.
    #[serde(default = "yes")]
    pub codes_match: bool,
    /// One sentence per difference; empty when everything matches.
    pub differences: Vec<String>,
}

fn yes() -> bool {
    true
}

impl GeometryComparison {
    /// True when shape, spacing, affine, orientation and the sform/qform codes all match.
    pub fn matches(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Compare two geometries under `tolerance`.
pub(crate) fn compare_facts(
    a: &GeometryFacts,
    b: &GeometryFacts,
    tolerance: f64,
) -> GeometryComparison {
    let mut differences = Vec::new();
    for axis in 0..3 {
        if a.shape[axis] != b.shape[axis] {
            differences.push(format!(
                "shape differs on axis {axis}: {} vs {}",
                a.shape[axis], b.shape[axis]
            ));
        }
    }
    let mut spacing_match = true;
    for axis in 0..3 {
        // A NaN spacing never matches: `within` is false for NaN.
        let within = (a.spacing[axis] - b.spacing[axis]).abs() <= tolerance;
        if !within {
            spacing_match = false;
            differences.push(format!(
                "spacing differs on axis {axis}: {:?} vs {:?}",
                a.spacing[axis], b.spacing[axis]
            ));
        }
    }
    let mut affine_max_abs_diff = 0.0f64;
    let mut affine_max_abs_diff_at = [0usize; 2];
    for r in 0..4 {
        for c in 0..4 {
            let d = (a.affine[r][c] - b.affine[r][c]).abs();
            // A NaN difference wins and stays (nothing compares above it).
            if (d.is_nan() && !affine_max_abs_diff.is_nan()) || d > affine_max_abs_diff {
                affine_max_abs_diff = d;
                affine_max_abs_diff_at = [r, c];
            }
        }
    }
    let affine_match = affine_max_abs_diff <= tolerance;
    if !affine_match {
        let [r, c] = affine_max_abs_diff_at;
        differences.push(format!(
            "affine differs: max abs difference {affine_max_abs_diff:?} at element [{r}][{c}] \
             ({:?} vs {:?}) exceeds tolerance {tolerance:?}",
            a.affine[r][c], b.affine[r][c]
        ));
    }
    let orientation_a: String = a.orientation.iter().collect();
    let orientation_b: String = b.orientation.iter().collect();
    let orientation_match = orientation_a == orientation_b;
    if !orientation_match {
        differences.push(format!(
            "orientation differs: {orientation_a} vs {orientation_b}"
        ));
    }
    for (name, x, y) in [
        ("sform_code", a.sform_code, b.sform_code),
        ("qform_code", a.qform_code, b.qform_code),
    ] {
        if x != y {
            differences.push(format!("{name} differs: {x} vs {y}"));
        }
    }
    let codes_match = a.sform_code == b.sform_code && a.qform_code == b.qform_code;
    GeometryComparison {
        shape_a: a.shape,
        shape_b: b.shape,
        shape_match: a.shape == b.shape,
        spacing_a: a.spacing,
        spacing_b: b.spacing,
        spacing_match,
        affine_max_abs_diff,
        affine_max_abs_diff_at,
        affine_match,
        tolerance,
        orientation_a,
        orientation_b,
        orientation_match,
        sform_code_a: a.sform_code,
        sform_code_b: b.sform_code,
        qform_code_a: a.qform_code,
        qform_code_b: b.qform_code,
        codes_match,
        differences,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(spacing: [f64; 3], orientation: [char; 3]) -> GeometryFacts {
        let mut affine = [[0.0; 4]; 4];
        for i in 0..3 {
            affine[i][i] = spacing[i];
        }
        affine[3][3] = 1.0;
        GeometryFacts {
            shape: [10, 20, 30],
            spacing,
            affine,
            orientation,
            sform_code: 1,
            qform_code: 1,
        }
    }

    #[test]
    fn identical_geometry_has_no_differences() {
        let a = facts([1.0, 1.0, 1.5], ['R', 'A', 'S']);
        let c = compare_facts(&a, &a.clone(), DEFAULT_GEOMETRY_TOLERANCE);
        assert!(c.matches());
        assert!(c.shape_match && c.spacing_match && c.affine_match && c.orientation_match);
        assert_eq!(c.affine_max_abs_diff, 0.0);
    }

    #[test]
    fn names_each_difference() {
        let a = facts([1.0, 1.0, 1.5], ['R', 'A', 'S']);
        let mut b = facts([1.0, 1.0, 3.0], ['L', 'P', 'S']);
        b.shape[0] = 11;
        b.sform_code = 0;
        b.qform_code = 2;
        let c = compare_facts(&a, &b, DEFAULT_GEOMETRY_TOLERANCE);
        assert!(!c.shape_match && !c.spacing_match && !c.affine_match && !c.orientation_match);
        assert!(!c.codes_match && !c.matches());
        assert_eq!(c.affine_max_abs_diff, 1.5);
        assert_eq!(c.affine_max_abs_diff_at, [2, 2]);
        assert_eq!(
            c.differences,
            vec![
                "shape differs on axis 0: 10 vs 11".to_string(),
                "spacing differs on axis 2: 1.5 vs 3.0".to_string(),
                "affine differs: max abs difference 1.5 at element [2][2] (1.5 vs 3.0) exceeds \
                 tolerance 0.0001"
                    .to_string(),
                "orientation differs: RAS vs LPS".to_string(),
                "sform_code differs: 1 vs 0".to_string(),
                "qform_code differs: 1 vs 2".to_string(),
            ]
        );
    }

    #[test]
    fn differences_within_tolerance_match() {
        let a = facts([1.0, 1.0, 1.5], ['R', 'A', 'S']);
        let mut b = a.clone();
        b.affine[0][3] = 5e-5;
        b.spacing[1] = 1.00005;
        let c = compare_facts(&a, &b, DEFAULT_GEOMETRY_TOLERANCE);
        assert!(c.matches(), "{:?}", c.differences);
        assert_eq!(c.affine_max_abs_diff, 5e-5);
        let strict = compare_facts(&a, &b, 1e-6);
        assert!(!strict.affine_match && !strict.spacing_match);
    }
}

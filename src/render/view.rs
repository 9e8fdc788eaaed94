//! Which voxel axes a view shows, and which way: the three orthogonal views in
//! radiological convention, derived from the affine (via nibabel's `io_orientation`),
//! so a file stored RAS and one stored LPS of the same patient look the same.
//!
//! World axes are RAS+ (nibabel): +x toward the patient's Right, +y Anterior,
//! +z Superior. Radiological display: the patient's right on the image's left, as
//! if looking up from the feet (axial) or facing the patient (coronal); sagittal
//! with anterior on the left; superior always up.

use schemars::JsonSchema;
use serde::Serialize;

use crate::nifti::orientation::io_orientation;
use crate::nifti::Affine;

/// One of the three orthogonal views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum View {
    Axial,
    Coronal,
    Sagittal,
}

impl View {
    pub(crate) const ALL: [View; 3] = [View::Axial, View::Coronal, View::Sagittal];

    /// The world axis the view's plane is normal to.
    fn normal(self) -> usize {
        match self {
            View::Axial => 2,
            View::Coronal => 1,
            View::Sagittal => 0,
        }
    }

    /// (world axis, world direction) along which image columns increase, and the same
    /// for rows (downward).
    fn display_axes(self) -> [(usize, i8); 2] {
        match self {
            // Columns toward the patient's left (world -x), rows toward posterior.
            View::Axial => [(0, -1), (1, -1)],
            // Columns toward the patient's left, rows toward inferior.
            View::Coronal => [(0, -1), (2, -1)],
            // Columns toward posterior (anterior on the left), rows toward inferior.
            View::Sagittal => [(1, -1), (2, -1)],
        }
    }

    /// The letters at the image's left, right, top and bottom edges.
    pub(crate) fn edge_letters(self) -> [&'static str; 4] {
        match self {
            View::Axial => ["R", "L", "A", "P"],
            View::Coronal => ["R", "L", "S", "I"],
            View::Sagittal => ["A", "P", "S", "I"],
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            View::Axial => "axial",
            View::Coronal => "coronal",
            View::Sagittal => "sagittal",
        }
    }
}

/// A voxel axis shown along one image direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShownAxis {
    /// The voxel axis (0, 1, 2).
    pub axis: usize,
    /// True when the image index runs against the voxel index.
    pub reversed: bool,
}

/// How a view maps voxel axes to the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViewAxes {
    /// The voxel axis held fixed (the plane's normal).
    pub normal: usize,
    /// True when that voxel axis runs against the world axis (e.g. L for R).
    pub normal_reversed: bool,
    pub columns: ShownAxis,
    pub rows: ShownAxis,
}

/// Voxel axis ↔ world axis correspondence of an affine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Orientation {
    /// For each world axis: the voxel axis along it and that axis' direction (+1/-1).
    world_to_voxel: [(usize, i8); 3],
    /// False when the affine gave no orientation (degenerate): voxel axes are then
    /// shown as if the file were RAS, and the picture says so.
    pub known: bool,
}

impl Orientation {
    /// From a voxel-to-world affine.
    pub(crate) fn of(affine: &Affine) -> Orientation {
        let mut world_to_voxel = [(usize::MAX, 1i8); 3];
        if let Some(ornt) = io_orientation(affine) {
            for (voxel_axis, entry) in ornt.iter().enumerate() {
                if let Some((world, dir)) = entry {
                    world_to_voxel[*world] = (voxel_axis, *dir);
                }
            }
        }
        if world_to_voxel.iter().all(|(a, _)| *a < 3) {
            Orientation {
                world_to_voxel,
                known: true,
            }
        } else {
            Orientation {
                world_to_voxel: [(0, 1), (1, 1), (2, 1)],
                known: false,
            }
        }
    }

    /// The voxel axes of `view`.
    pub(crate) fn axes(&self, view: View) -> ViewAxes {
        let shown = |(world, wanted): (usize, i8)| {
            let (axis, dir) = self.world_to_voxel[world];
            ShownAxis {
                axis,
                reversed: dir != wanted,
            }
        };
        let [columns, rows] = view.display_axes();
        let (normal, dir) = self.world_to_voxel[view.normal()];
        ViewAxes {
            normal,
            normal_reversed: dir < 0,
            columns: shown(columns),
            rows: shown(rows),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(x: f64, y: f64, z: f64) -> Affine {
        [
            [x, 0.0, 0.0, 0.0],
            [0.0, y, 0.0, 0.0],
            [0.0, 0.0, z, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    #[test]
    fn ras_and_lps_show_the_patient_left_on_the_image_right() {
        // RAS: voxel x grows toward the patient's right, so columns (toward the
        // patient's left) run against it; LPS: with it.
        let ras = Orientation::of(&diag(1.0, 1.0, 1.0)).axes(View::Axial);
        let lps = Orientation::of(&diag(-1.0, -1.0, 1.0)).axes(View::Axial);
        assert_eq!(ras.normal, 2);
        assert!(ras.columns.reversed && ras.rows.reversed);
        assert!(!lps.columns.reversed && !lps.rows.reversed);
    }

    #[test]
    fn a_permuted_affine_picks_the_voxel_axis_along_each_world_axis() {
        // Voxel x along world z (S), voxel y along world x (R), voxel z along world y (A).
        let affine = [
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let o = Orientation::of(&affine);
        assert!(o.known);
        let axial = o.axes(View::Axial);
        assert_eq!(
            (axial.normal, axial.columns.axis, axial.rows.axis),
            (0, 1, 2)
        );
        let sagittal = o.axes(View::Sagittal);
        assert_eq!(
            (sagittal.normal, sagittal.columns.axis, sagittal.rows.axis),
            (1, 2, 0)
        );
    }

    #[test]
    fn a_degenerate_affine_falls_back_to_voxel_axes() {
        let o = Orientation::of(&diag(f64::NAN, 1.0, 1.0));
        assert!(!o.known);
        assert_eq!(o.axes(View::Coronal).normal, 1);
    }
}

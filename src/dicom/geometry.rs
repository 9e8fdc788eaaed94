//! Where the slices are: sorted along the slice normal, spaced from their positions,
//! and the LPS→RAS affine, as dcm2niix, dicom2nifti and SimpleITK compute them.
//!
//! The row direction `r` and column direction `c` come from ImageOrientationPatient;
//! the normal is `n = r × c`; each slice sits at `d = ImagePositionPatient · n`. The
//! slices are sorted by `d` (never by InstanceNumber or file name), the spacing
//! between slices is the mean gap of `d` (never SliceThickness), and the volume's
//! voxel (i, j, k) lies at `P0 + i·Δcol·r + j·Δrow·c + k·Δd·n` in DICOM's LPS
//! space; NIfTI's RAS negates x and y. Anything that breaks this model (missing or
//! repeated positions, several orientations, positions off the normal, uneven gaps)
//! is refused, naming the slices concerned.

use super::info::{Check, ConversionCheck};
use super::series::SliceMeta;
use super::{DicomError, CONVERT_ELSEWHERE};
use crate::nifti::Affine;

/// Two orientations (direction cosines) are the same within this.
pub(crate) const ORIENTATION_TOLERANCE: f64 = 1e-4;
/// Two slices closer than this (mm, along the normal) share a position.
pub(crate) const DUPLICATE_TOLERANCE_MM: f64 = 1e-3;
/// A gap may differ from the mean gap by this many mm, or by
/// [`SPACING_TOLERANCE_FRACTION`] of the mean gap, whichever is larger.
pub(crate) const SPACING_TOLERANCE_MM: f64 = 0.01;
pub(crate) const SPACING_TOLERANCE_FRACTION: f64 = 0.01;
/// A slice may lie this far (mm) off the line through the first slice along the
/// normal, plus 1e-4 of its distance along it, before the series counts as tilted.
pub(crate) const TILT_TOLERANCE_MM: f64 = 0.01;

type V3 = [f64; 3];

/// One slice's (ImagePositionPatient, ImageOrientationPatient, PixelSpacing).
type SliceGeometry = (V3, [f64; 6], [f64; 2]);

fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn unit(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// The sorted slices and the grid they make.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// Indices into the series' slices, sorted along the normal.
    pub order: Vec<usize>,
    pub row: V3,
    pub col: V3,
    pub normal: V3,
    /// mm along x (columns), y (rows), z (slices).
    pub spacing: V3,
    /// LPS position of voxel (0, 0, 0): the first sorted slice's ImagePositionPatient.
    pub origin: V3,
    pub orientation: [f64; 6],
    pub checks: Vec<ConversionCheck>,
}

impl Layout {
    /// The voxel-to-RAS affine (NIfTI's convention).
    pub(crate) fn affine_ras(&self) -> Affine {
        let axes = [self.row, self.col, self.normal];
        let mut a = [[0.0; 4]; 4];
        for (i, row) in a.iter_mut().take(3).enumerate() {
            for j in 0..3 {
                row[j] = axes[j][i] * self.spacing[j];
            }
            row[3] = self.origin[i];
        }
        a[3][3] = 1.0;
        for row in a.iter_mut().take(2) {
            row.iter_mut().for_each(|v| *v = -*v);
        }
        a
    }
}

fn passed(check: Check, detail: String) -> ConversionCheck {
    ConversionCheck {
        check,
        passed: true,
        detail,
    }
}

/// Sort and check the slices of one series; `name(k)` names slice `k` for messages.
pub(crate) fn layout(
    slices: &[SliceMeta],
    name: &dyn Fn(usize) -> String,
) -> Result<Layout, DicomError> {
    let mut checks = Vec::new();
    let geometry = present(slices, name)?;
    checks.push(passed(
        Check::PositionsPresent,
        format!(
            "{0} of {0} slices have ImagePositionPatient, ImageOrientationPatient and PixelSpacing",
            slices.len()
        ),
    ));
    let (row, col, orientation) = one_orientation(&geometry, name)?;
    checks.push(passed(
        Check::OneOrientation,
        format!("every slice has ImageOrientationPatient {orientation:?}"),
    ));
    let normal = unit(cross(row, col));
    let mut order: Vec<usize> = (0..slices.len()).collect();
    let along = |k: usize| dot(geometry[k].0, normal);
    order.sort_by(|&a, &b| along(a).total_cmp(&along(b)));
    let d: Vec<f64> = order.iter().map(|&k| along(k)).collect();
    distinct(&d, &order, name)?;
    checks.push(passed(
        Check::PositionsDistinct,
        format!("{} distinct positions along the slice normal", d.len()),
    ));
    let first = geometry[order[0]].0;
    let tilt = no_tilt(&geometry, &order, normal, name)?;
    checks.push(passed(Check::NoGantryTilt, tilt));
    let (mean, detail) = uniform(&d, &order, name)?;
    checks.push(passed(Check::UniformSpacing, detail));
    let [row_spacing, col_spacing] = geometry[order[0]].2;
    Ok(Layout {
        order,
        row,
        col,
        normal,
        spacing: [col_spacing, row_spacing, mean],
        origin: first,
        orientation,
        checks,
    })
}

/// (position, orientation, pixel spacing) of every slice, or which ones lack them.
fn present(
    slices: &[SliceMeta],
    name: &dyn Fn(usize) -> String,
) -> Result<Vec<SliceGeometry>, DicomError> {
    let missing: Vec<usize> = (0..slices.len())
        .filter(|&k| {
            let s = &slices[k];
            s.position.is_none() || s.orientation.is_none() || s.pixel_spacing.is_none()
        })
        .collect();
    if let Some(&k) = missing.first() {
        return Err(DicomError::check(
            Check::PositionsPresent,
            format!(
                "{} of {} slices lack ImagePositionPatient, ImageOrientationPatient or \
                 PixelSpacing (first: {}), so their place in the volume is unknown",
                missing.len(),
                slices.len(),
                name(k)
            ),
            "pass a series whose slices carry their position and orientation (a derived or \
             secondary-capture image does not)",
        ));
    }
    if slices.len() < 2 {
        return Err(DicomError::check(
            Check::PositionsDistinct,
            "the series has one slice, which is not a 3-D volume",
            "pass a series of at least two slices",
        ));
    }
    Ok(slices
        .iter()
        .map(|s| {
            (
                s.position.unwrap(),
                s.orientation.unwrap(),
                s.pixel_spacing.unwrap(),
            )
        })
        .collect())
}

fn one_orientation(
    geometry: &[SliceGeometry],
    name: &dyn Fn(usize) -> String,
) -> Result<(V3, V3, [f64; 6]), DicomError> {
    let first = geometry[0].1;
    if let Some(k) = (1..geometry.len())
        .find(|&k| (0..6).any(|i| (geometry[k].1[i] - first[i]).abs() > ORIENTATION_TOLERANCE))
    {
        return Err(DicomError::check(
            Check::OneOrientation,
            format!(
                "mixed orientations: {} has ImageOrientationPatient {:?}, {} has {:?}; one \
                 volume has one orientation",
                name(0),
                first,
                name(k),
                geometry[k].1
            ),
            format!(
                "pass the slices of one orientation only (a localizer or a reformat is mixed \
                 in?), or {CONVERT_ELSEWHERE}"
            ),
        ));
    }
    let r = [first[0], first[1], first[2]];
    let c = [first[3], first[4], first[5]];
    let (nr, nc) = (dot(r, r).sqrt(), dot(c, c).sqrt());
    if (nr - 1.0).abs() > 1e-3 || (nc - 1.0).abs() > 1e-3 || dot(r, c).abs() > 1e-3 {
        return Err(DicomError::check(
            Check::OneOrientation,
            format!(
                "ImageOrientationPatient {first:?} is not two orthogonal unit vectors \
                 (lengths {nr:.6} and {nc:.6}, dot product {:.6})",
                dot(r, c)
            ),
            "the files are damaged or not from a scanner; re-export the series",
        ));
    }
    Ok((unit(r), unit(c), first))
}

fn distinct(d: &[f64], order: &[usize], name: &dyn Fn(usize) -> String) -> Result<(), DicomError> {
    let dups = (1..d.len())
        .filter(|&i| d[i] - d[i - 1] < DUPLICATE_TOLERANCE_MM)
        .count();
    if let Some(i) = (1..d.len()).find(|&i| d[i] - d[i - 1] < DUPLICATE_TOLERANCE_MM) {
        return Err(DicomError::check(
            Check::PositionsDistinct,
            format!(
                "duplicate positions: {} and {} both lie at {:.3} mm along the slice normal \
                 ({dups} such pair(s)); the series holds several volumes (echoes, phases, \
                 repeats) or the same file twice",
                name(order[i - 1]),
                name(order[i]),
                d[i]
            ),
            format!("pass one volume's slices (one file per position), or {CONVERT_ELSEWHERE}"),
        ));
    }
    Ok(())
}

fn no_tilt(
    geometry: &[SliceGeometry],
    order: &[usize],
    normal: V3,
    name: &dyn Fn(usize) -> String,
) -> Result<String, DicomError> {
    let first = geometry[order[0]].0;
    // (excess over the tolerance, distance off the normal, distance along it, slice)
    let (excess, perp, along, k) = order[1..]
        .iter()
        .map(|&k| {
            let v = sub(geometry[k].0, first);
            let along = dot(v, normal);
            let off = sub(v, [along * normal[0], along * normal[1], along * normal[2]]);
            let perp = dot(off, off).sqrt();
            (
                perp - TILT_TOLERANCE_MM - 1e-4 * along.abs(),
                perp,
                along,
                k,
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .expect("two slices at least");
    let degrees = perp.atan2(along.abs()).to_degrees();
    if excess > 0.0 {
        return Err(DicomError::check(
            Check::NoGantryTilt,
            format!(
                "the slices do not advance along their normal: {} lies {perp:.3} mm off the \
                 normal through {} ({along:.3} mm along it), a gantry tilt or shear of about \
                 {degrees:.2} degrees",
                name(k),
                name(order[0])
            ),
            "convert with dcm2niix, which corrects gantry tilt, and pass the NIfTI file",
        ));
    }
    Ok(format!(
        "the slices advance along their normal (largest offset {perp:.4} mm, tilt {degrees:.4} degrees)"
    ))
}

fn uniform(
    d: &[f64],
    order: &[usize],
    name: &dyn Fn(usize) -> String,
) -> Result<(f64, String), DicomError> {
    let n = d.len();
    let mean = (d[n - 1] - d[0]) / (n - 1) as f64;
    let tolerance = SPACING_TOLERANCE_MM.max(SPACING_TOLERANCE_FRACTION * mean);
    let deviation = |i: usize| (d[i] - d[i - 1] - mean).abs();
    let worst = (1..n)
        .max_by(|&a, &b| deviation(a).total_cmp(&deviation(b)))
        .expect("two slices at least");
    let off = (1..n).filter(|&i| deviation(i) > tolerance).count();
    if off > 0 {
        return Err(DicomError::check(
            Check::UniformSpacing,
            format!(
                "non-uniform slice spacing: the gap between slices {} and {} of the sorted \
                 series ({} at {:.3} mm, {} at {:.3} mm along the normal) is {:.3} mm where the \
                 mean gap is {mean:.3} mm (tolerance {tolerance:.3} mm; {off} gap(s) off): a \
                 slice is missing or the series mixes spacings",
                worst,
                worst + 1,
                name(order[worst - 1]),
                d[worst - 1],
                name(order[worst]),
                d[worst],
                d[worst] - d[worst - 1],
            ),
            format!(
                "check that no file of the series is missing; a series acquired with varying \
                 spacing must be resampled: {CONVERT_ELSEWHERE}"
            ),
        ));
    }
    Ok((
        mean,
        format!(
            "{} gaps of {mean:.4} mm, largest deviation {:.4} mm (tolerance {tolerance:.3} mm)",
            n - 1,
            deviation(worst)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

    fn slice(position: V3, orientation: [f64; 6]) -> SliceMeta {
        SliceMeta {
            position: Some(position),
            orientation: Some(orientation),
            pixel_spacing: Some([0.8, 0.7]),
            ..SliceMeta::default()
        }
    }

    fn name(k: usize) -> String {
        format!("file{k}")
    }

    fn axial(zs: &[f64]) -> Vec<SliceMeta> {
        zs.iter()
            .map(|&z| slice([-100.0, -120.0, z], AXIAL))
            .collect()
    }

    #[test]
    fn slices_sort_by_position_not_by_file_order_and_the_affine_is_ras() {
        let slices = axial(&[10.0, 0.0, 5.0, 7.5, 2.5]);
        let l = layout(&slices, &name).unwrap();
        assert_eq!(l.order, vec![1, 4, 2, 3, 0]);
        assert_eq!(l.spacing, [0.7, 0.8, 2.5]);
        let a = l.affine_ras();
        assert_eq!(a[0], [-0.7, 0.0, 0.0, 100.0]);
        assert_eq!(a[1], [0.0, -0.8, 0.0, 120.0]);
        assert_eq!(a[2], [0.0, 0.0, 2.5, 0.0]);
        assert_eq!(a[3], [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(l.checks.len(), 5);
        assert!(l.checks.iter().all(|c| c.passed));
    }

    #[test]
    fn an_oblique_series_sorts_along_its_normal() {
        let (s, c) = (20f64.to_radians().sin(), 20f64.to_radians().cos());
        // Rotated about x: rows along x, columns tilted towards z.
        let o = [1.0, 0.0, 0.0, 0.0, c, -s];
        let normal = cross([1.0, 0.0, 0.0], [0.0, c, -s]);
        let at = |k: f64| {
            [
                5.0 + 3.0 * k * normal[0],
                3.0 * k * normal[1],
                3.0 * k * normal[2],
            ]
        };
        let slices = vec![slice(at(2.0), o), slice(at(0.0), o), slice(at(1.0), o)];
        let l = layout(&slices, &name).unwrap();
        assert_eq!(l.order, vec![1, 2, 0]);
        assert!((l.spacing[2] - 3.0).abs() < 1e-12);
        let a = l.affine_ras();
        // The slice axis is the normal times the spacing, in RAS.
        assert!((a[2][2] - 3.0 * normal[2]).abs() < 1e-12);
        assert!((a[1][2] + 3.0 * normal[1]).abs() < 1e-12);
    }

    #[test]
    fn refusals_name_the_check_and_the_slices() {
        let mut missing = axial(&[0.0, 1.0, 2.0]);
        missing[2].position = None;
        let e = layout(&missing, &name).unwrap_err().to_string();
        assert!(
            e.contains("positions_present") && e.contains("file2"),
            "{e}"
        );

        let e = layout(&axial(&[0.0, 1.0, 1.0, 2.0]), &name)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("positions_distinct") && e.contains("duplicate"),
            "{e}"
        );

        let e = layout(&axial(&[0.0, 2.5, 5.0, 10.0, 12.5]), &name)
            .unwrap_err()
            .to_string();
        assert!(e.contains("uniform_spacing"), "{e}");
        assert!(
            e.contains("file2") && e.contains("file3") && e.contains("5.000 mm"),
            "{e}"
        );

        let mut mixed = axial(&[0.0, 1.0, 2.0]);
        mixed[1].orientation = Some([0.0, 1.0, 0.0, 0.0, 0.0, -1.0]);
        let e = layout(&mixed, &name).unwrap_err().to_string();
        assert!(e.contains("one_orientation") && e.contains("file1"), "{e}");

        // Gantry tilt: each slice shifted 0.5 mm in y per 2.5 mm in z (11 degrees).
        let tilted: Vec<SliceMeta> = (0..4)
            .map(|k| slice([0.0, 0.5 * k as f64, 2.5 * k as f64], AXIAL))
            .collect();
        let e = layout(&tilted, &name).unwrap_err().to_string();
        assert!(e.contains("no_gantry_tilt") && e.contains("degrees"), "{e}");

        let e = layout(&axial(&[3.0]), &name).unwrap_err().to_string();
        assert!(e.contains("one slice"), "{e}");
    }

    #[test]
    fn small_jitter_within_tolerance_is_accepted() {
        let l = layout(&axial(&[0.0, 2.5004, 5.0, 7.4998, 10.0]), &name).unwrap();
        assert!((l.spacing[2] - 2.5).abs() < 1e-12);
    }
}

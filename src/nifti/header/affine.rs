//! The affines of a header as nibabel computes them: the qform from its quaternion,
//! the fallback ("base") affine when neither transform is set, and how far sform and
//! qform disagree.

use crate::nifti::Affine;

pub(super) fn identity() -> Affine {
    let mut a = [[0.0; 4]; 4];
    for (i, row) in a.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    a
}

pub(super) fn max_abs_diff(a: &Affine, b: &Affine) -> f64 {
    let mut worst: f64 = 0.0;
    for (ra, rb) in a.iter().zip(b) {
        for (x, y) in ra.iter().zip(rb) {
            let d = (x - y).abs();
            // NaN must count as disagreement, so it wins over any number.
            if d.is_nan() || d > worst {
                worst = d;
            }
        }
    }
    worst
}

/// The inputs of the qform, already fixed as nibabel fixes them.
pub(crate) struct QformParams {
    pub bcd: [f64; 3],
    pub offset: [f64; 3],
    pub pixdim: [f64; 3],
    pub qfac: f64,
}

/// nibabel's `get_qform`: `fillpositive` (w from b, c, d; threshold 3 float32 eps)
/// then `quat2mat`, columns scaled by pixdim with the z one multiplied by qfac.
pub(crate) fn qform_affine(p: &QformParams) -> Result<Affine, String> {
    // nibabel's Nifti1Header.quaternion_threshold, also used for NIfTI-2.
    let threshold = 3.0 * f64::from(f32::EPSILON);
    let [x, y, z] = p.bcd;
    let w2 = 1.0 - (x * x + y * y + z * z);
    if !w2.is_finite() {
        return Err(format!(
            "quaternion (b, c, d) = ({x}, {y}, {z}) is not finite"
        ));
    }
    let w = if w2.abs() < threshold {
        0.0
    } else if w2 < 0.0 {
        return Err(format!(
            "quaternion (b, c, d) = ({x}, {y}, {z}) has b²+c²+d² > 1, so it is not a rotation"
        ));
    } else {
        w2.sqrt()
    };
    let rotation = quat2mat([w, x, y, z]);
    let scale = [p.pixdim[0], p.pixdim[1], p.pixdim[2] * p.qfac];
    let mut a = identity();
    for r in 0..3 {
        for c in 0..3 {
            a[r][c] = rotation[r][c] * scale[c];
        }
        a[r][3] = p.offset[r];
    }
    Ok(a)
}

/// nibabel's `quaternions.quat2mat` (accepts non-unit quaternions).
fn quat2mat(q: [f64; 4]) -> [[f64; 3]; 3] {
    let [w, x, y, z] = q;
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// nibabel's `get_base_affine` (`shape_zoom_affine` with x flipped): the centre
/// of the volume at the origin, radiological x.
pub(crate) fn base_affine(shape: &[usize; 3], spacing: &[f64; 3]) -> Affine {
    let zooms = [-spacing[0], spacing[1], spacing[2]];
    let mut a = identity();
    for i in 0..3 {
        let origin = (shape[i] as f64 - 1.0) / 2.0;
        a[i][i] = zooms[i];
        a[i][3] = -origin * zooms[i];
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_affine_matches_nibabel_docstring() {
        // nibabel: shape (3, 5, 7), zooms (3, 2, 1) -> diag(-3, 2, 1), translation (3, -4, -3).
        let a = base_affine(&[3, 5, 7], &[3.0, 2.0, 1.0]);
        assert_eq!(a[0], [-3.0, 0.0, 0.0, 3.0]);
        assert_eq!(a[1], [0.0, 2.0, 0.0, -4.0]);
        assert_eq!(a[2], [0.0, 0.0, 1.0, -3.0]);
        assert_eq!(a[3], [0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn quaternion_180_about_x() {
        let p = QformParams {
            bcd: [1.0, 0.0, 0.0],
            offset: [1.0, 2.0, 3.0],
            pixdim: [2.0, 3.0, 4.0],
            qfac: -1.0,
        };
        let a = qform_affine(&p).unwrap();
        assert_eq!(a[0][..3], [2.0, 0.0, 0.0]);
        assert_eq!(a[1][..3], [0.0, -3.0, 0.0]);
        assert_eq!(a[2][..3], [0.0, 0.0, 4.0]);
        assert_eq!([a[0][3], a[1][3], a[2][3]], [1.0, 2.0, 3.0]);
    }

    #[test]
    fn non_rotation_quaternion_is_refused() {
        let p = QformParams {
            bcd: [1.0, 1.0, 0.0],
            offset: [0.0; 3],
            pixdim: [1.0; 3],
            qfac: 1.0,
        };
        assert!(qform_affine(&p).unwrap_err().contains("not a rotation"));
    }
}

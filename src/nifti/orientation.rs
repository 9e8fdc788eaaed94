//! Axis codes as nibabel's `aff2axcodes(affine)` (via `io_orientation`).
//!
//! nibabel normalises the columns of the 3x3 part, replaces it by its closest
//! orthogonal matrix (polar decomposition through an SVD, discarding singular
//! values below `max(S) * 3 * eps`), then assigns each voxel axis the world axis
//! it moves along most, strongest columns first, never reusing a world axis.
//! We get the polar factor from a Jacobi eigen-decomposition of `RSᵀRS`
//! (`RS = U S Vᵀ`, so `RS v = s u`), which needs no linear-algebra dependency.
//!
//! Agreement with nibabel is exact except at exact ties: an axis stored at
//! exactly 45 degrees (equal magnitudes in the float32 header) is decided in
//! nibabel by the last bit of LAPACK's SVD rounding. There we pick the first
//! world axis consistently, which is as right; the tests check such cases for
//! consistency rather than bit-for-bit agreement.

use super::Affine;

type M3 = [[f64; 3]; 3];

/// `['R','A','S']`-style codes; `'?'` where nibabel returns `None`.
pub(crate) fn axcodes(affine: &Affine) -> [char; 3] {
    const LABELS: [(char, char); 3] = [('L', 'R'), ('P', 'A'), ('I', 'S')];
    let mut codes = ['?'; 3];
    if let Some(ornt) = io_orientation(affine) {
        for (code, axis) in codes.iter_mut().zip(ornt) {
            if let Some((world, flip)) = axis {
                let (neg, pos) = LABELS[world];
                *code = if flip < 0 { neg } else { pos };
            }
        }
    }
    codes
}

/// For each voxel axis: the world axis (0..3) and direction (+1/-1), or `None`.
/// `None` overall when the affine is not finite.
pub(crate) fn io_orientation(affine: &Affine) -> Option<[Option<(usize, i8)>; 3]> {
    let mut rs: M3 = [[0.0; 3]; 3];
    for c in 0..3 {
        let mut norm = (0..3)
            .map(|r| affine[r][c] * affine[r][c])
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            norm = 1.0;
        }
        for r in 0..3 {
            rs[r][c] = affine[r][c] / norm;
        }
    }
    if rs.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    let mut r = polar_factor(&rs);

    // Strongest columns first (stable), as nibabel's argsort of -max(R²).
    let mut in_axes = [0usize, 1, 2];
    let strength = |m: &M3, c: usize| (0..3).map(|i| m[i][c] * m[i][c]).fold(0.0, f64::max);
    let strengths = [strength(&r, 0), strength(&r, 1), strength(&r, 2)];
    in_axes.sort_by(|&a, &b| strengths[b].total_cmp(&strengths[a]));

    let mut out = [None; 3];
    for in_ax in in_axes {
        let col = [r[0][in_ax], r[1][in_ax], r[2][in_ax]];
        // np.allclose(col, 0): |x| <= atol (1e-8).
        if col.iter().all(|v| v.abs() <= 1e-8) {
            continue;
        }
        let mut out_ax = 0;
        for i in 1..3 {
            if col[i].abs() > col[out_ax].abs() {
                out_ax = i;
            }
        }
        out[in_ax] = Some((out_ax, if col[out_ax] < 0.0 { -1 } else { 1 }));
        r[out_ax] = [0.0; 3];
    }
    Some(out)
}

/// The orthogonal factor `U Vᵀ` of `m = U S Vᵀ`, keeping only singular values
/// above nibabel's rank tolerance.
fn polar_factor(m: &M3) -> M3 {
    let mtm = mul(&transpose(m), m);
    let (eigenvalues, v) = jacobi_eigen(mtm);
    let singular: Vec<f64> = eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let s_max = singular.iter().cloned().fold(0.0, f64::max);
    let tol = s_max * 3.0 * f64::EPSILON;
    let mut r = [[0.0; 3]; 3];
    for k in 0..3 {
        if singular[k] <= tol {
            continue;
        }
        let vk = [v[0][k], v[1][k], v[2][k]];
        let mut uk = [0.0; 3];
        for i in 0..3 {
            uk[i] = (0..3).map(|j| m[i][j] * vk[j]).sum::<f64>() / singular[k];
        }
        for i in 0..3 {
            for j in 0..3 {
                r[i][j] += uk[i] * vk[j];
            }
        }
    }
    r
}

fn transpose(m: &M3) -> M3 {
    let mut t = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            t[i][j] = m[j][i];
        }
    }
    t
}

fn mul(a: &M3, b: &M3) -> M3 {
    let mut p = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            p[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    p
}

/// Cyclic Jacobi for a symmetric 3x3 matrix: eigenvalues and eigenvectors (columns).
fn jacobi_eigen(mut a: M3) -> ([f64; 3], M3) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..64 {
        let off = a[0][1].abs() + a[0][2].abs() + a[1][2].abs();
        if off == 0.0 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // a <- Jᵀ a J
            for row in a.iter_mut() {
                let akp = row[p];
                let akq = row[q];
                row[p] = c * akp - s * akq;
                row[q] = s * akp + c * akq;
            }
            #[allow(clippy::needless_range_loop)] // rows p and q are both written
            for k in 0..3 {
                let apk = a[p][k];
                let aqk = a[q][k];
                a[p][k] = c * apk - s * aqk;
                a[q][k] = s * apk + c * aqk;
            }
            for row in v.iter_mut() {
                let vkp = row[p];
                let vkq = row[q];
                row[p] = c * vkp - s * vkq;
                row[q] = s * vkp + c * vkq;
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
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
    fn diagonal_affines() {
        assert_eq!(axcodes(&diag(1.0, 2.0, 3.0)), ['R', 'A', 'S']);
        assert_eq!(axcodes(&diag(-1.0, -2.0, 3.0)), ['L', 'P', 'S']);
        assert_eq!(axcodes(&diag(-0.7, 0.7, -5.0)), ['L', 'A', 'I']);
    }

    #[test]
    fn permuted_and_oblique() {
        // voxel x -> world y (A), voxel y -> world z (I), voxel z -> world x (R), slightly oblique.
        let a = [
            [0.05, 0.0, 2.0, 0.0],
            [1.0, 0.1, 0.0, 0.0],
            [0.0, -1.0, 0.2, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(axcodes(&a), ['A', 'I', 'R']);
    }

    #[test]
    fn degenerate_column_is_unknown() {
        assert_eq!(axcodes(&diag(1.0, 0.0, 1.0)), ['R', '?', 'S']);
        let mut nan = diag(1.0, 1.0, 1.0);
        nan[0][0] = f64::NAN;
        assert_eq!(axcodes(&nan), ['?', '?', '?']);
    }

    #[test]
    fn jacobi_recovers_rotation_of_sheared_matrix() {
        let m = [[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let r = polar_factor(&m);
        let rtr = mul(&transpose(&r), &r);
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((rtr[i][j] - want).abs() < 1e-12, "{rtr:?}");
            }
        }
    }
}

//! The exact Euclidean distance transform on the corner grid, with anisotropic
//! spacing: the one numerical kernel behind every surface distance.

/// Exact squared Euclidean distance transform to the `feature` points, with per-axis
/// spacing (Felzenszwalb & Huttenlocher, separable lower envelope of parabolas).
/// Points with no feature anywhere get `f64::INFINITY`.
pub(crate) fn squared_edt(feature: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let mut d: Vec<f64> = feature
        .iter()
        .map(|&f| if f { 0.0 } else { f64::INFINITY })
        .collect();
    let stride = [1, dims[0], dims[0] * dims[1]];
    let mut line = Vec::new();
    let mut out = Vec::new();
    for axis in 0..3 {
        let n = dims[axis];
        let (o1, o2) = match axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        for b in 0..dims[o2] {
            for a in 0..dims[o1] {
                let base = a * stride[o1] + b * stride[o2];
                line.clear();
                line.extend((0..n).map(|t| d[base + t * stride[axis]]));
                lower_envelope(&line, spacing[axis], &mut out);
                for t in 0..n {
                    d[base + t * stride[axis]] = out[t];
                }
            }
        }
    }
    d
}

/// One 1-D pass: `out[p] = min_q f[q] + (s·(p−q))²` (lower envelope of parabolas).
fn lower_envelope(f: &[f64], s: f64, out: &mut Vec<f64>) {
    let n = f.len();
    out.clear();
    out.resize(n, f64::INFINITY);
    let pos = |q: usize| q as f64 * s;
    // sites[k] owns the envelope from bounds[k] to bounds[k + 1].
    let mut sites: Vec<usize> = Vec::with_capacity(n);
    let mut bounds: Vec<f64> = Vec::with_capacity(n);
    for q in (0..n).filter(|&q| f[q].is_finite()) {
        let height_q = f[q] + pos(q) * pos(q);
        loop {
            let Some(&v) = sites.last() else {
                sites.push(q);
                bounds.push(f64::NEG_INFINITY);
                break;
            };
            // Where parabola q starts to lie below parabola v (finite: both finite).
            let x = (height_q - (f[v] + pos(v) * pos(v))) / (2.0 * (pos(q) - pos(v)));
            if sites.len() > 1 && x <= bounds[bounds.len() - 1] {
                sites.pop();
                bounds.pop();
                continue;
            }
            sites.push(q);
            bounds.push(x);
            break;
        }
    }
    let mut k = 0;
    for (p, slot) in out.iter_mut().enumerate() {
        if sites.is_empty() {
            break;
        }
        let x = pos(p);
        while k + 1 < sites.len() && bounds[k + 1] < x {
            k += 1;
        }
        let dx = x - pos(sites[k]);
        *slot = dx * dx + f[sites[k]];
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edt_matches_brute_force_with_anisotropic_spacing() {
        let dims = [7, 5, 6];
        let spacing = [0.7, 1.9, 1.3];
        let mut feature = vec![false; 7 * 5 * 6];
        for &(x, y, z) in &[(0, 0, 0), (6, 4, 5), (3, 2, 1), (1, 4, 3)] {
            feature[x + 7 * (y + 5 * z)] = true;
        }
        let d = squared_edt(&feature, dims, spacing);
        for z in 0..6 {
            for y in 0..5 {
                for x in 0..7 {
                    let mut best = f64::INFINITY;
                    for (i, &f) in feature.iter().enumerate() {
                        if f {
                            let (fx, fy, fz) = (i % 7, (i / 7) % 5, i / 35);
                            let dd = ((x as f64 - fx as f64) * spacing[0]).powi(2)
                                + ((y as f64 - fy as f64) * spacing[1]).powi(2)
                                + ((z as f64 - fz as f64) * spacing[2]).powi(2);
                            best = best.min(dd);
                        }
                    }
                    let got = d[x + 7 * (y + 5 * z)];
                    assert!((got - best).abs() < 1e-9, "({x},{y},{z}): {got} vs {best}");
                }
            }
        }
        let none = squared_edt(&[false; 8], [2, 2, 2], [1.0; 3]);
        assert!(none.iter().all(|v| v.is_infinite()));
    }

    #[test]
    fn edt_matches_brute_force_on_random_sparse_features() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (dims, spacing) in [
            ([9, 4, 6], [1.0, 2.5, 0.5]),
            ([3, 11, 5], [0.8, 0.8, 3.0]),
            ([6, 6, 6], [1.0, 1.0, 1.0]),
        ] {
            let n = dims[0] * dims[1] * dims[2];
            let feature: Vec<bool> = (0..n).map(|_| next() % 17 == 0).collect();
            let d = squared_edt(&feature, dims, spacing);
            let coord = |i: usize| {
                [
                    i % dims[0],
                    (i / dims[0]) % dims[1],
                    i / (dims[0] * dims[1]),
                ]
            };
            for (p, &got) in d.iter().enumerate() {
                let best = (0..n)
                    .filter(|&q| feature[q])
                    .map(|q| {
                        let (a, b) = (coord(p), coord(q));
                        (0..3)
                            .map(|k| ((a[k] as f64 - b[k] as f64) * spacing[k]).powi(2))
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min);
                assert!(
                    (got - best).abs() < 1e-9 || (got.is_infinite() && best.is_infinite()),
                    "{dims:?} point {p}: {got} vs {best}"
                );
            }
        }
    }
}

//! The surfel area of each of the 256 corner-grid neighbour codes, derived from the
//! iso-surface of the code rather than copied from DeepMind's hand-listed table (the
//! method is described in the parent module; a test there compares the result with
//! MONAI's copy of the table).

use std::collections::BTreeMap;

/// Surfel area (mm²) of every neighbour code at the given spacing (axes 0, 1, 2).
pub fn surfel_area_table(spacing: [f64; 3]) -> [f64; 256] {
    let scale = [
        spacing[1] * spacing[2],
        spacing[0] * spacing[2],
        spacing[0] * spacing[1],
    ];
    let mut table = [0.0; 256];
    for (code, slot) in table.iter_mut().enumerate() {
        let mut area = 0.0;
        for poly in code_loops(code as u8) {
            for (a, b, c) in max_area_triangulation(&poly) {
                area += scaled_triangle_area(poly[a], poly[b], poly[c], scale);
            }
        }
        *slot = area;
    }
    table
}

/// Is cube corner `(a, b, c)` inside for this code (DeepMind's bit order)?
fn corner_inside(code: u8, corner: [u8; 3]) -> bool {
    let bit = 7 - (4 * corner[0] + 2 * corner[1] + corner[2]);
    (code >> bit) & 1 == 1
}

/// The closed iso-surface loops of one code, as polygons of edge midpoints in unit
/// cube coordinates.
fn code_loops(code: u8) -> Vec<Vec<[f64; 3]>> {
    // Separate the minority corners so a code and its complement share one surface.
    let minority_inside = code.count_ones() <= 4;
    type Corner = [u8; 3];
    let mut segments: Vec<((Corner, Corner), (Corner, Corner))> = Vec::new();
    let edge = |u: Corner, v: Corner| if u <= v { (u, v) } else { (v, u) };
    for axis in 0..3 {
        let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
        for val in 0..2u8 {
            let cycle: Vec<Corner> = [(0u8, 0u8), (1, 0), (1, 1), (0, 1)]
                .iter()
                .map(|&(p, q)| {
                    let mut c = [0u8; 3];
                    c[axis] = val;
                    c[others[0]] = p;
                    c[others[1]] = q;
                    c
                })
                .collect();
            let inside: Vec<bool> = cycle.iter().map(|&c| corner_inside(code, c)).collect();
            let crossing: Vec<usize> = (0..4)
                .filter(|&i| inside[i] != inside[(i + 1) % 4])
                .collect();
            match crossing.len() {
                2 => {
                    let (i, j) = (crossing[0], crossing[1]);
                    segments.push((
                        edge(cycle[i], cycle[(i + 1) % 4]),
                        edge(cycle[j], cycle[(j + 1) % 4]),
                    ));
                }
                4 => {
                    for i in 0..4 {
                        if inside[i] == minority_inside {
                            let prev = edge(cycle[(i + 3) % 4], cycle[i]);
                            let next = edge(cycle[i], cycle[(i + 1) % 4]);
                            segments.push((prev, next));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Chain segments into loops: every crossing edge lies on exactly two faces.
    let mut adjacency: BTreeMap<(Corner, Corner), Vec<(Corner, Corner)>> = BTreeMap::new();
    for &(a, b) in &segments {
        adjacency.entry(a).or_default().push(b);
        adjacency.entry(b).or_default().push(a);
    }
    let midpoint = |e: (Corner, Corner)| -> [f64; 3] {
        [0, 1, 2].map(|k| (f64::from(e.0[k]) + f64::from(e.1[k])) / 2.0)
    };
    let mut visited: Vec<(Corner, Corner)> = Vec::new();
    let mut loops = Vec::new();
    for &start in adjacency.keys() {
        if visited.contains(&start) {
            continue;
        }
        let mut poly = vec![midpoint(start)];
        visited.push(start);
        let mut prev = start;
        let mut cur = adjacency[&start][0];
        while cur != start {
            poly.push(midpoint(cur));
            visited.push(cur);
            let next = adjacency[&cur]
                .iter()
                .copied()
                .find(|&n| n != prev)
                .unwrap_or(start);
            prev = cur;
            cur = next;
        }
        loops.push(poly);
    }
    loops
}

fn cross(u: [f64; 3], v: [f64; 3]) -> [f64; 3] {
    [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ]
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn scaled_triangle_area(p: [f64; 3], q: [f64; 3], r: [f64; 3], scale: [f64; 3]) -> f64 {
    let n = cross(sub(q, p), sub(r, p));
    let s = [
        n[0] * scale[0] / 2.0,
        n[1] * scale[1] / 2.0,
        n[2] * scale[2] / 2.0,
    ];
    (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]).sqrt()
}

/// Triangulation of a polygon with maximal total area in voxel units (dynamic
/// programming over diagonals); returns vertex index triples.
fn max_area_triangulation(poly: &[[f64; 3]]) -> Vec<(usize, usize, usize)> {
    let n = poly.len();
    if n < 3 {
        return Vec::new();
    }
    let unit = [1.0; 3];
    // best[i][j]: (area, split k) for the sub-polygon i..=j.
    let mut best = vec![vec![(0.0f64, usize::MAX); n]; n];
    for len in 2..n {
        for i in 0..n - len {
            let j = i + len;
            let mut choice = (f64::NEG_INFINITY, usize::MAX);
            for k in i + 1..j {
                let area = best[i][k].0
                    + best[k][j].0
                    + scaled_triangle_area(poly[i], poly[k], poly[j], unit);
                if area > choice.0 + 1e-12 {
                    choice = (area, k);
                }
            }
            best[i][j] = choice;
        }
    }
    let mut triangles = Vec::with_capacity(n - 2);
    let mut stack = vec![(0usize, n - 1)];
    while let Some((i, j)) = stack.pop() {
        if j < i + 2 {
            continue;
        }
        let k = best[i][j].1;
        triangles.push((i, k, j));
        stack.push((i, k));
        stack.push((k, j));
    }
    triangles
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_table_has_the_canonical_planar_values() {
        let t = surfel_area_table([1.0, 1.0, 1.0]);
        assert_eq!(t[0], 0.0);
        assert_eq!(t[255], 0.0);
        let corner = 3f64.sqrt() / 8.0; // triangle through three edge midpoints
        for code in [1usize, 2, 4, 8, 16, 32, 64, 128, 254, 127] {
            assert!((t[code] - corner).abs() < 1e-12, "code {code}: {}", t[code]);
        }
        assert!((t[0b0000_1111] - 1.0).abs() < 1e-12, "a face");
        assert!((t[0b0000_0011] - 0.5f64.sqrt()).abs() < 1e-12, "an edge");
        // A code and its complement share a surface.
        for code in 0..256 {
            assert!((t[code] - t[255 - code]).abs() < 1e-12, "code {code}");
        }
        // Anisotropic: a face perpendicular to axis 0 has area s1*s2.
        let t = surfel_area_table([2.0, 3.0, 5.0]);
        assert!((t[0b1111_0000] - 15.0).abs() < 1e-12, "{}", t[0b1111_0000]);
    }
}

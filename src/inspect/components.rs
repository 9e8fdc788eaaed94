//! Exact 26-connected components per label, streamed slice by slice.
//!
//! Why this shape: labelling a 512x512x400 volume the textbook way needs a full-size
//! label array. Two voxels can only be 26-adjacent if their slices differ by at most
//! one, so it is enough to keep the runs of the previous slice, each tagged with the
//! component it belongs to. Each new slice links its runs to each other (rows y-1 of
//! the same slice) and to the previous slice (rows y-1, y, y+1) with a union-find
//! over "open components of the previous slice + runs of this slice". A component
//! that no run of the new slice joins can never grow again: it is closed and only
//! its size is kept in a per-label table. Memory is proportional to the runs of two
//! slices, whatever the depth of the volume.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::runs::{Run, VoxelClass};

/// Connected components of one label (26-connectivity).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ComponentStats {
    /// Number of 26-connected components.
    pub count: u64,
    /// Voxels in the largest component.
    pub largest_voxels: u64,
    /// `largest_voxels` / all voxels of the label, in (0, 1].
    pub largest_fraction: f64,
}

/// A run of one label (its row is implied by the row index), tagged with the open
/// component it belongs to.
#[derive(Debug, Clone, Copy)]
struct LabelRun {
    x0: u32,
    x1: u32,
    label: i64,
    comp: u32,
}

/// Per-label totals of closed components.
#[derive(Debug, Clone, Copy, Default)]
struct ClosedTally {
    count: u64,
    largest: u64,
    total: u64,
}

const NO_ID: u32 = u32::MAX;

/// Streams slices and labels 26-connected components of every non-zero integer label.
#[derive(Debug)]
pub(crate) struct ComponentAccumulator {
    shape: [usize; 3],
    next_z: usize,
    /// Runs of the previous slice with their open component ids.
    prev: Vec<LabelRun>,
    /// `prev_rows[y]..prev_rows[y + 1]` indexes the runs of row y in `prev`.
    prev_rows: Vec<usize>,
    /// Size and label of each open component (ids `0..open_size.len()`).
    open_size: Vec<u64>,
    open_label: Vec<i64>,
    closed: BTreeMap<i64, ClosedTally>,
    // Scratch reused across slices so memory stays flat.
    cur: Vec<LabelRun>,
    cur_rows: Vec<usize>,
    parent: Vec<u32>,
    root_size: Vec<u64>,
    root_alive: Vec<bool>,
    new_id: Vec<u32>,
}

impl ComponentAccumulator {
    /// An empty accumulator for a volume of `shape` (x, y, z).
    pub(crate) fn new(shape: [usize; 3]) -> Self {
        ComponentAccumulator {
            shape,
            next_z: 0,
            prev: Vec::new(),
            prev_rows: vec![0; shape[1] + 1],
            open_size: Vec::new(),
            open_label: Vec::new(),
            closed: BTreeMap::new(),
            cur: Vec::new(),
            cur_rows: vec![0; shape[1] + 1],
            parent: Vec::new(),
            root_size: Vec::new(),
            root_alive: Vec::new(),
            new_id: Vec::new(),
        }
    }

    /// Feed slice `z` (x fastest). Slices must come in order 0, 1, 2, ...
    /// (Tests feed whole slices; the pass shares one split between accumulators.)
    #[cfg(test)]
    pub(crate) fn push_slice(&mut self, z: usize, values: &[f64]) {
        let mut runs = super::runs::SliceRuns::default();
        runs.fill(values, self.shape[0], self.shape[1]);
        self.push_runs(z, runs.runs());
    }

    /// Feed slice `z` already split into runs (row-major order).
    pub(crate) fn push_runs(&mut self, z: usize, runs: &[Run]) {
        debug_assert_eq!(z, self.next_z, "slices must be pushed in order");
        self.next_z = z + 1;
        let ny = self.shape[1];

        // This slice's label runs, indexed by row.
        self.cur.clear();
        self.cur_rows.iter_mut().for_each(|r| *r = 0);
        for run in runs {
            if let VoxelClass::Label(label) = run.class {
                self.cur.push(LabelRun {
                    x0: run.x0,
                    x1: run.x1,
                    label,
                    comp: NO_ID,
                });
                self.cur_rows[run.y as usize + 1] += 1;
            }
        }
        for y in 0..ny {
            self.cur_rows[y + 1] += self.cur_rows[y];
        }

        // Union-find nodes: open components 0..k, then this slice's runs k..k+m.
        let k = self.open_size.len();
        let m = self.cur.len();
        self.parent.clear();
        self.parent.extend(0..(k + m) as u32);

        for y in 0..ny {
            let row = &self.cur[self.cur_rows[y]..self.cur_rows[y + 1]];
            if row.is_empty() {
                continue;
            }
            let base = k + self.cur_rows[y];
            if y > 0 {
                let start = self.cur_rows[y - 1];
                let above = &self.cur[start..self.cur_rows[y]];
                link_rows(&mut self.parent, row, base, above, |i| k + start + i);
            }
            for ny_row in y.saturating_sub(1)..=(y + 1).min(ny - 1) {
                let below = &self.prev[self.prev_rows[ny_row]..self.prev_rows[ny_row + 1]];
                link_rows(&mut self.parent, row, base, below, |i| {
                    below[i].comp as usize
                });
            }
        }

        // Sizes per root; a root is alive when a run of this slice belongs to it.
        self.root_size.clear();
        self.root_size.resize(k + m, 0);
        self.root_alive.clear();
        self.root_alive.resize(k + m, false);
        for i in 0..k {
            let r = find(&mut self.parent, i);
            self.root_size[r] += self.open_size[i];
        }
        for j in 0..m {
            let r = find(&mut self.parent, k + j);
            let run = &self.cur[j];
            self.root_size[r] += u64::from(run.x1 - run.x0) + 1;
            self.root_alive[r] = true;
        }
        // Open components joined by no run of this slice can never grow again.
        // They are singletons (open components only merge through a run of this
        // slice), so each one closes with its own size.
        for i in 0..k {
            let r = find(&mut self.parent, i);
            if !self.root_alive[r] {
                let tally = self.closed.entry(self.open_label[i]).or_default();
                tally.count += 1;
                tally.largest = tally.largest.max(self.root_size[r]);
                tally.total += self.root_size[r];
            }
        }
        // Renumber the surviving roots densely as the new open components.
        self.new_id.clear();
        self.new_id.resize(k + m, NO_ID);
        self.open_size.clear();
        self.open_label.clear();
        for j in 0..m {
            let r = find(&mut self.parent, k + j);
            if self.new_id[r] == NO_ID {
                self.new_id[r] = self.open_size.len() as u32;
                self.open_size.push(self.root_size[r]);
                self.open_label.push(self.cur[j].label);
            }
            self.cur[j].comp = self.new_id[r];
        }
        std::mem::swap(&mut self.prev, &mut self.cur);
        std::mem::swap(&mut self.prev_rows, &mut self.cur_rows);
    }

    /// Close every open component and return the per-label statistics.
    pub(crate) fn finish(mut self) -> BTreeMap<i64, ComponentStats> {
        for (size, label) in self.open_size.iter().zip(&self.open_label) {
            let tally = self.closed.entry(*label).or_default();
            tally.count += 1;
            tally.largest = tally.largest.max(*size);
            tally.total += size;
        }
        self.closed
            .into_iter()
            .map(|(label, t)| {
                (
                    label,
                    ComponentStats {
                        count: t.count,
                        largest_voxels: t.largest,
                        largest_fraction: t.largest as f64 / t.total as f64,
                    },
                )
            })
            .collect()
    }
}

/// Union every run of `row` (nodes `base..`) with the runs of a neighbouring row that
/// carry the same label and touch it in x, diagonals included (26-connectivity).
/// Both rows are sorted by x, so one forward pointer finds the candidates.
fn link_rows(
    parent: &mut [u32],
    row: &[LabelRun],
    base: usize,
    neighbours: &[LabelRun],
    node_of: impl Fn(usize) -> usize,
) {
    let mut p = 0;
    for (j, run) in row.iter().enumerate() {
        while p < neighbours.len() && neighbours[p].x1 + 1 < run.x0 {
            p += 1;
        }
        let mut q = p;
        while q < neighbours.len() && neighbours[q].x0 <= run.x1 + 1 {
            if neighbours[q].label == run.label {
                union(parent, base + j, node_of(q));
            }
            q += 1;
        }
    }
}

#[inline]
fn find(parent: &mut [u32], mut i: usize) -> usize {
    while parent[i] as usize != i {
        let grand = parent[parent[i] as usize];
        parent[i] = grand;
        i = grand as usize;
    }
    i
}

#[inline]
fn union(parent: &mut [u32], a: usize, b: usize) {
    let ra = find(parent, a);
    let rb = find(parent, b);
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi] = lo as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(shape: [usize; 3], vol: &[f64]) -> BTreeMap<i64, ComponentStats> {
        let plane = shape[0] * shape[1];
        let mut acc = ComponentAccumulator::new(shape);
        for z in 0..shape[2] {
            acc.push_slice(z, &vol[z * plane..(z + 1) * plane]);
        }
        acc.finish()
    }

    /// Brute-force 26-connected labelling with a flood fill, as the oracle.
    fn brute_force(shape: [usize; 3], vol: &[f64]) -> BTreeMap<i64, (u64, u64)> {
        let [nx, ny, nz] = shape;
        let idx = |x: usize, y: usize, z: usize| x + nx * (y + ny * z);
        let mut seen = vec![false; vol.len()];
        let mut out: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        for start in 0..vol.len() {
            let v = vol[start];
            if seen[start] || v == 0.0 {
                continue;
            }
            seen[start] = true;
            let mut stack = vec![start];
            let mut size = 0u64;
            while let Some(i) = stack.pop() {
                size += 1;
                let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
                for dz in -1i64..=1 {
                    for dy in -1i64..=1 {
                        for dx in -1i64..=1 {
                            let (a, b, c) = (x as i64 + dx, y as i64 + dy, z as i64 + dz);
                            if a < 0 || b < 0 || c < 0 {
                                continue;
                            }
                            let (a, b, c) = (a as usize, b as usize, c as usize);
                            if a >= nx || b >= ny || c >= nz {
                                continue;
                            }
                            let j = idx(a, b, c);
                            if !seen[j] && vol[j] == v {
                                seen[j] = true;
                                stack.push(j);
                            }
                        }
                    }
                }
            }
            let e = out.entry(v as i64).or_default();
            e.0 += 1;
            e.1 = e.1.max(size);
        }
        out
    }

    #[test]
    fn diagonal_contact_across_slices_joins_components() {
        // Two voxels of label 1 touching only by a corner across z.
        let shape = [3, 3, 2];
        let mut vol = vec![0.0; 18];
        vol[0] = 1.0; // (0,0,0)
        vol[9 + 4] = 1.0; // (1,1,1)
        vol[8] = 1.0; // (2,2,0): corner contact with (1,1,1) too
        let got = components(shape, &vol);
        assert_eq!(got[&1].count, 1);
        assert_eq!(got[&1].largest_voxels, 3);
    }

    #[test]
    fn u_shape_merges_late_and_separate_labels_stay_apart() {
        // A U in one slice: two arms that meet only at the last row.
        let shape = [5, 4, 1];
        #[rustfmt::skip]
        let vol = vec![
            1.0, 0.0, 0.0, 0.0, 1.0,
            1.0, 0.0, 2.0, 0.0, 1.0,
            1.0, 0.0, 2.0, 0.0, 1.0,
            1.0, 1.0, 1.0, 1.0, 1.0,
        ];
        let got = components(shape, &vol);
        assert_eq!(got[&1].count, 1);
        assert_eq!(got[&1].largest_voxels, 11);
        assert_eq!(got[&2].count, 1);
        assert_eq!(got[&2].largest_voxels, 2);
    }

    #[test]
    fn matches_flood_fill_on_pseudo_random_volumes() {
        // xorshift noise with 3 labels at several densities: many merges and splits.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for density in [0.2, 0.35, 0.5] {
            let shape = [13, 11, 9];
            let n = shape.iter().product::<usize>();
            let vol: Vec<f64> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                    if u < density {
                        1.0 + (state % 3) as f64
                    } else {
                        0.0
                    }
                })
                .collect();
            let got = components(shape, &vol);
            let want = brute_force(shape, &vol);
            assert_eq!(got.len(), want.len());
            for (label, (count, largest)) in want {
                assert_eq!(got[&label].count, count, "label {label} density {density}");
                assert_eq!(got[&label].largest_voxels, largest, "label {label}");
            }
        }
    }
}

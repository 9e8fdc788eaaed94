//! Per-label counts, bounding boxes, centroids and border contact, accumulated run by
//! run so a volume is seen once, one slice at a time.

use std::collections::BTreeMap;

use super::runs::{Run, VoxelClass};

/// Label ids in `0..DENSE_LABELS` live in a directly indexed table (the common case:
/// upstream ids are < 400); any other id goes to an ordered map.
const DENSE_LABELS: usize = 1 << 16;

/// What one label has accumulated so far.
#[derive(Debug, Clone, Copy)]
struct LabelAcc {
    voxels: u64,
    min: [u32; 3],
    max: [u32; 3],
    /// Sums of voxel indices per axis; exact integers, so centroids do not drift.
    sum: [u64; 3],
    touches_border: bool,
}

impl LabelAcc {
    const EMPTY: LabelAcc = LabelAcc {
        voxels: 0,
        min: [u32::MAX; 3],
        max: [0; 3],
        sum: [0; 3],
        touches_border: false,
    };

    #[inline]
    fn add_run(&mut self, run: &Run, z: u32, on_border: bool) {
        let len = run.voxels();
        self.voxels += len;
        self.min[0] = self.min[0].min(run.x0);
        self.max[0] = self.max[0].max(run.x1);
        self.min[1] = self.min[1].min(run.y);
        self.max[1] = self.max[1].max(run.y);
        self.min[2] = self.min[2].min(z);
        self.max[2] = self.max[2].max(z);
        // Sum of x0..=x1 is (x0 + x1) * len / 2; the product is always even.
        self.sum[0] += (u64::from(run.x0) + u64::from(run.x1)) * len / 2;
        self.sum[1] += u64::from(run.y) * len;
        self.sum[2] += u64::from(z) * len;
        self.touches_border |= on_border;
    }
}

/// The finished geometry of one label, in voxel indices.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelGeometry {
    pub id: i64,
    pub voxels: u64,
    pub bbox_min: [usize; 3],
    pub bbox_max: [usize; 3],
    pub centroid_voxel: [f64; 3],
    pub touches_border: bool,
}

/// Whole-volume tallies plus the per-label geometry, ids ascending.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VolumeTally {
    pub total_voxels: u64,
    pub background_voxels: u64,
    pub non_integer_voxels: u64,
    pub nan_voxels: u64,
    pub value_255_voxels: u64,
    pub labels: Vec<LabelGeometry>,
}

/// Streams slices of a label map and tallies every voxel exactly once.
#[derive(Debug)]
pub(crate) struct LabelStatsAccumulator {
    shape: [usize; 3],
    dense: Vec<LabelAcc>,
    sparse: BTreeMap<i64, LabelAcc>,
    total: u64,
    background: u64,
    non_integer: u64,
    nan: u64,
    value_255: u64,
}

impl LabelStatsAccumulator {
    /// An empty accumulator for a volume of `shape` (x, y, z).
    pub(crate) fn new(shape: [usize; 3]) -> Self {
        LabelStatsAccumulator {
            shape,
            dense: Vec::new(),
            sparse: BTreeMap::new(),
            total: 0,
            background: 0,
            non_integer: 0,
            nan: 0,
            value_255: 0,
        }
    }

    /// Tally slice `z` (x fastest, `nx * ny` values).
    /// (Tests feed whole slices; the pass shares one split between accumulators.)
    #[cfg(test)]
    pub(crate) fn push_slice(&mut self, z: usize, values: &[f64]) {
        let mut runs = super::runs::SliceRuns::default();
        runs.fill(values, self.shape[0], self.shape[1]);
        self.push_runs(z, runs.runs());
    }

    /// Tally slice `z` already split into runs (shared with the other accumulators).
    pub(crate) fn push_runs(&mut self, z: usize, runs: &[Run]) {
        let [nx, ny, nz] = self.shape;
        let z32 = z as u32;
        let z_face = z == 0 || z + 1 == nz;
        for run in runs {
            let len = run.voxels();
            self.total += len;
            match run.class {
                VoxelClass::Background => self.background += len,
                VoxelClass::Nan => self.nan += len,
                VoxelClass::NonInteger => self.non_integer += len,
                VoxelClass::Label(id) => {
                    if id == 255 {
                        self.value_255 += len;
                    }
                    let on_border = z_face
                        || run.y == 0
                        || run.y as usize + 1 == ny
                        || run.x0 == 0
                        || run.x1 as usize + 1 == nx;
                    self.entry(id).add_run(run, z32, on_border);
                }
            }
        }
    }

    #[inline]
    fn entry(&mut self, id: i64) -> &mut LabelAcc {
        match usize::try_from(id) {
            Ok(i) if i < DENSE_LABELS => {
                if i >= self.dense.len() {
                    self.dense.resize(i + 1, LabelAcc::EMPTY);
                }
                &mut self.dense[i]
            }
            _ => self.sparse.entry(id).or_insert(LabelAcc::EMPTY),
        }
    }

    /// The tally, labels sorted by id.
    pub(crate) fn finish(self) -> VolumeTally {
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, acc)| acc.voxels > 0)
            .map(|(i, acc)| (i as i64, *acc));
        let mut all: Vec<(i64, LabelAcc)> = dense.chain(self.sparse).collect();
        all.sort_by_key(|(id, _)| *id);
        let labels = all
            .into_iter()
            .map(|(id, acc)| {
                let n = acc.voxels as f64;
                LabelGeometry {
                    id,
                    voxels: acc.voxels,
                    bbox_min: acc.min.map(|v| v as usize),
                    bbox_max: acc.max.map(|v| v as usize),
                    centroid_voxel: acc.sum.map(|s| s as f64 / n),
                    touches_border: acc.touches_border,
                }
            })
            .collect();
        VolumeTally {
            total_voxels: self.total,
            background_voxels: self.background,
            non_integer_voxels: self.non_integer,
            nan_voxels: self.nan,
            value_255_voxels: self.value_255,
            labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed a volume given as a closure of (x, y, z) and return the tally.
    fn tally(shape: [usize; 3], f: impl Fn(usize, usize, usize) -> f64) -> VolumeTally {
        let mut acc = LabelStatsAccumulator::new(shape);
        let mut slice = Vec::new();
        for z in 0..shape[2] {
            slice.clear();
            for y in 0..shape[1] {
                for x in 0..shape[0] {
                    slice.push(f(x, y, z));
                }
            }
            acc.push_slice(z, &slice);
        }
        acc.finish()
    }

    #[test]
    fn counts_bbox_centroid_and_border_of_an_interior_box() {
        // Label 3 fills x 2..=4, y 1..=2, z 1..=1 inside a 6x4x3 volume.
        let t = tally([6, 4, 3], |x, y, z| {
            if (2..=4).contains(&x) && (1..=2).contains(&y) && z == 1 {
                3.0
            } else {
                0.0
            }
        });
        assert_eq!(t.total_voxels, 72);
        assert_eq!(t.background_voxels, 66);
        assert_eq!(t.labels.len(), 1);
        let l = &t.labels[0];
        assert_eq!((l.id, l.voxels), (3, 6));
        assert_eq!(l.bbox_min, [2, 1, 1]);
        assert_eq!(l.bbox_max, [4, 2, 1]);
        assert_eq!(l.centroid_voxel, [3.0, 1.5, 1.0]);
        assert!(!l.touches_border, "interior box must not touch the border");
    }

    #[test]
    fn flags_border_contact_on_every_face() {
        for face in 0..6 {
            let t = tally([5, 5, 5], |x, y, z| {
                let c = [x, y, z];
                let on = match face {
                    0 => c == [0, 2, 2],
                    1 => c == [4, 2, 2],
                    2 => c == [2, 0, 2],
                    3 => c == [2, 4, 2],
                    4 => c == [2, 2, 0],
                    _ => c == [2, 2, 4],
                };
                if on {
                    1.0
                } else {
                    0.0
                }
            });
            assert!(t.labels[0].touches_border, "face {face}");
        }
    }

    #[test]
    fn keeps_nan_non_integer_and_255_apart() {
        let t = tally([4, 1, 2], |x, _, z| match (x, z) {
            (0, 0) => f64::NAN,
            (1, 0) => 1.5,
            (2, 0) => 255.0,
            (3, 0) => 255.0,
            (0, 1) => -2.0,
            (1, 1) => 70000.0,
            _ => 0.0,
        });
        assert_eq!(t.nan_voxels, 1);
        assert_eq!(t.non_integer_voxels, 1);
        assert_eq!(t.value_255_voxels, 2);
        assert_eq!(t.background_voxels, 2);
        let ids: Vec<(i64, u64)> = t.labels.iter().map(|l| (l.id, l.voxels)).collect();
        assert_eq!(ids, vec![(-2, 1), (255, 2), (70000, 1)]);
    }
}

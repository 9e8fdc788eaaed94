//! Voxel classification and run extraction.
//!
//! Why runs: label maps are piecewise constant along x, so every accumulator works
//! per run of equal values instead of per voxel. Counting, bounding boxes, centroid
//! sums and component linking then cost one step per run, and the only per-voxel
//! work left is a bit-equality test while scanning a row.

/// What a voxel value means for a label map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VoxelClass {
    /// Exactly 0.
    Background,
    /// A non-zero integer value, the label id.
    Label(i64),
    /// Not a number.
    Nan,
    /// A finite value with a fractional part, an infinity, or an integer beyond what
    /// an `i64` label id can hold: never counted under any label.
    NonInteger,
}

/// Largest magnitude accepted as an integer label id: every integer up to 2^53 is
/// exact in `f64`, beyond that "integer" no longer means a distinct id.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Classify one voxel value.
#[inline]
pub(crate) fn classify(value: f64) -> VoxelClass {
    if value.is_nan() {
        VoxelClass::Nan
    } else if value == 0.0 {
        VoxelClass::Background
    } else if value.fract() == 0.0 && value.abs() <= MAX_EXACT_INTEGER {
        VoxelClass::Label(value as i64)
    } else {
        VoxelClass::NonInteger
    }
}

/// A maximal run of bit-identical values along x in one row of a slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Run {
    /// Row index (y).
    pub y: u32,
    /// First x of the run (inclusive).
    pub x0: u32,
    /// Last x of the run (inclusive).
    pub x1: u32,
    /// The class shared by every voxel of the run.
    pub class: VoxelClass,
}

impl Run {
    /// Number of voxels in the run (never 0).
    #[inline]
    pub(crate) fn voxels(&self) -> u64 {
        u64::from(self.x1 - self.x0) + 1
    }
}

/// The runs of one z-slice, in row-major order (y, then x), reusing its buffer
/// from slice to slice.
#[derive(Debug, Default)]
pub(crate) struct SliceRuns {
    runs: Vec<Run>,
}

impl SliceRuns {
    /// Split `values` (x fastest, `nx * ny` values) into runs. Runs of bit-identical
    /// values are merged, so NaN runs stay runs and `-0.0` is its own run of
    /// background (classification, not equality, decides the meaning).
    pub(crate) fn fill(&mut self, values: &[f64], nx: usize, ny: usize) {
        debug_assert_eq!(values.len(), nx * ny);
        self.runs.clear();
        for (y, row) in values.chunks_exact(nx).take(ny).enumerate() {
            let mut x0 = 0usize;
            while x0 < nx {
                let end = run_end(row, x0);
                self.runs.push(Run {
                    y: y as u32,
                    x0: x0 as u32,
                    x1: (end - 1) as u32,
                    class: classify(row[x0]),
                });
                x0 = end;
            }
        }
    }

    /// The runs, row-major.
    pub(crate) fn runs(&self) -> &[Run] {
        &self.runs
    }
}

/// The first index after `start` whose value differs bitwise from `row[start]`
/// (`row.len()` if none). Label maps are mostly long runs, so whole blocks of 16 are
/// compared at once (branch-free, vectorised), then the tail voxel by voxel.
#[inline]
pub(crate) fn run_end(row: &[f64], start: usize) -> usize {
    const BLOCK: usize = 16;
    let bits = row[start].to_bits();
    let mut i = start + 1;
    while let Some(block) = row.get(i..i + BLOCK) {
        // OR of XORs is zero iff every value matches: no branch per voxel.
        let diff = block.iter().fold(0u64, |acc, v| acc | (v.to_bits() ^ bits));
        if diff != 0 {
            break;
        }
        i += BLOCK;
    }
    while i < row.len() && row[i].to_bits() == bits {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_kind_of_value() {
        assert_eq!(classify(0.0), VoxelClass::Background);
        assert_eq!(classify(-0.0), VoxelClass::Background);
        assert_eq!(classify(3.0), VoxelClass::Label(3));
        assert_eq!(classify(-7.0), VoxelClass::Label(-7));
        assert_eq!(classify(255.0), VoxelClass::Label(255));
        assert_eq!(classify(2.5), VoxelClass::NonInteger);
        assert_eq!(classify(f64::INFINITY), VoxelClass::NonInteger);
        assert_eq!(classify(1e300), VoxelClass::NonInteger);
        assert_eq!(classify(f64::NAN), VoxelClass::Nan);
    }

    #[test]
    fn run_end_handles_blocks_and_tails() {
        let mut row = vec![1.0; 30];
        assert_eq!(run_end(&row, 0), 30);
        for cut in [1, 7, 8, 9, 15, 16, 17, 29] {
            row[cut] = 2.0;
            assert_eq!(run_end(&row, 0), cut, "cut at {cut}");
            assert_eq!(run_end(&row, cut), cut + 1);
            row[cut] = 1.0;
        }
        assert_eq!(run_end(&row, 29), 30);
    }

    #[test]
    fn splits_rows_into_runs_without_crossing_rows() {
        // 4 x 2 slice: row 0 = [0 0 5 5], row 1 = [5 NaN NaN 2.5]
        let nan = f64::NAN;
        let values = [0.0, 0.0, 5.0, 5.0, 5.0, nan, nan, 2.5];
        let mut runs = SliceRuns::default();
        runs.fill(&values, 4, 2);
        let got: Vec<(u32, u32, u32, VoxelClass)> = runs
            .runs()
            .iter()
            .map(|r| (r.y, r.x0, r.x1, r.class))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, 1, VoxelClass::Background),
                (0, 2, 3, VoxelClass::Label(5)),
                (1, 0, 0, VoxelClass::Label(5)),
                (1, 1, 2, VoxelClass::Nan),
                (1, 3, 3, VoxelClass::NonInteger),
            ]
        );
        assert_eq!(runs.runs()[0].voxels(), 2);
    }
}

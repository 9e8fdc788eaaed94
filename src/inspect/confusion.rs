//! Joint histogram of two label maps (prediction vs ground truth) in one streamed pass,
//! and per-label Dice / IoU derived from it.
//!
//! Every overlap figure comes with an explicit status, so an empty case is never an
//! unlabelled NaN: Dice and IoU are `None` only when both maps lack the label.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::runs::{classify, run_end, Run, SliceRuns, VoxelClass};

/// Ids in `0..DENSE_SIDE` on both axes are counted in a flat table (2 MiB).
const DENSE_SIDE: usize = 512;

/// How a label's overlap figures should be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapStatus {
    /// Present in both maps: Dice and IoU are ordinary numbers.
    Ok,
    /// Absent from both maps: Dice and IoU are undefined (`None`).
    BothEmpty,
    /// Only in the ground truth: the prediction missed it (Dice = IoU = 0).
    PredEmpty,
    /// Only in the prediction: a false positive label (Dice = IoU = 0).
    GtEmpty,
}

/// One cell of the joint histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionEntry {
    pub pred: i64,
    pub gt: i64,
    pub voxels: u64,
}

/// Overlap of one label between prediction and ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelOverlap {
    pub label_id: i64,
    pub pred_voxels: u64,
    pub gt_voxels: u64,
    pub intersection: u64,
    /// 2|P∩G| / (|P| + |G|); `None` only when `status` is `both_empty`.
    pub dice: Option<f64>,
    /// |P∩G| / |P∪G|; `None` only when `status` is `both_empty`.
    pub iou: Option<f64>,
    pub status: OverlapStatus,
}

impl LabelOverlap {
    /// Overlap figures from the three counts.
    pub(crate) fn from_counts(
        label_id: i64,
        pred_voxels: u64,
        gt_voxels: u64,
        intersection: u64,
    ) -> Self {
        let status = match (pred_voxels, gt_voxels) {
            (0, 0) => OverlapStatus::BothEmpty,
            (0, _) => OverlapStatus::PredEmpty,
            (_, 0) => OverlapStatus::GtEmpty,
            _ => OverlapStatus::Ok,
        };
        let (dice, iou) = if status == OverlapStatus::BothEmpty {
            (None, None)
        } else {
            let sum = (pred_voxels + gt_voxels) as f64;
            let union = (pred_voxels + gt_voxels - intersection) as f64;
            (
                Some(2.0 * intersection as f64 / sum),
                Some(intersection as f64 / union),
            )
        };
        LabelOverlap {
            label_id,
            pred_voxels,
            gt_voxels,
            intersection,
            dice,
            iou,
            status,
        }
    }
}

/// The finished joint histogram and the voxels left out of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfusionTally {
    pub total_voxels: u64,
    /// Voxels where both maps hold an integer (0 included): the histogram's mass.
    pub compared_voxels: u64,
    /// Voxels where either map is NaN or non-integer: not in the histogram.
    pub excluded_voxels: u64,
    pub pred_nan_voxels: u64,
    pub pred_non_integer_voxels: u64,
    pub gt_nan_voxels: u64,
    pub gt_non_integer_voxels: u64,
    /// Non-zero cells, sorted by (pred, gt).
    pub confusion: Vec<ConfusionEntry>,
}

impl ConfusionTally {
    /// Overlap of every non-zero label present in either map, ids ascending.
    pub(crate) fn overlaps(&self) -> Vec<LabelOverlap> {
        let mut pred: BTreeMap<i64, u64> = BTreeMap::new();
        let mut gt: BTreeMap<i64, u64> = BTreeMap::new();
        let mut both: BTreeMap<i64, u64> = BTreeMap::new();
        for e in &self.confusion {
            *pred.entry(e.pred).or_default() += e.voxels;
            *gt.entry(e.gt).or_default() += e.voxels;
            if e.pred == e.gt {
                *both.entry(e.pred).or_default() += e.voxels;
            }
        }
        let ids: BTreeSet<i64> = pred
            .keys()
            .chain(gt.keys())
            .copied()
            .filter(|&id| id != 0)
            .collect();
        ids.into_iter()
            .map(|id| {
                LabelOverlap::from_counts(
                    id,
                    pred.get(&id).copied().unwrap_or(0),
                    gt.get(&id).copied().unwrap_or(0),
                    both.get(&id).copied().unwrap_or(0),
                )
            })
            .collect()
    }
}

/// Streams pairs of slices and counts (pred id, gt id) pairs.
#[derive(Debug)]
pub(crate) struct ConfusionAccumulator {
    nx: usize,
    ny: usize,
    dense: Vec<u64>,
    sparse: HashMap<(i64, i64), u64>,
    tally: ConfusionTally,
    runs: SliceRuns,
}

impl ConfusionAccumulator {
    /// An empty histogram for slices of `nx` x `ny` voxels.
    pub(crate) fn new(nx: usize, ny: usize) -> Self {
        ConfusionAccumulator {
            nx,
            ny,
            dense: vec![0; DENSE_SIDE * DENSE_SIDE],
            sparse: HashMap::new(),
            tally: ConfusionTally::default(),
            runs: SliceRuns::default(),
        }
    }

    /// Feed the prediction and ground-truth slices at the same z (x fastest, both
    /// `nx * ny` long).
    pub(crate) fn push_slice(&mut self, pred: &[f64], gt: &[f64]) {
        let mut runs = std::mem::take(&mut self.runs);
        runs.fill(pred, self.nx, self.ny);
        self.push_runs(runs.runs(), gt);
        self.runs = runs;
    }

    /// Feed the prediction's slice as runs (shared with the other accumulators) and
    /// the ground-truth slice at the same z: each prediction run is split where the
    /// ground truth changes, so every joint run costs one histogram update.
    pub(crate) fn push_runs(&mut self, pred_runs: &[Run], gt: &[f64]) {
        for run in pred_runs {
            let row = run.y as usize * self.nx;
            let gt_run = &gt[row..=row + run.x1 as usize];
            let mut start = run.x0 as usize;
            while start < gt_run.len() {
                let end = run_end(gt_run, start);
                self.add(run.class, gt_run[start], (end - start) as u64);
                start = end;
            }
        }
    }

    #[inline]
    fn add(&mut self, pred: VoxelClass, gt: f64, len: u64) {
        let t = &mut self.tally;
        t.total_voxels += len;
        let p = integer_id(
            pred,
            &mut t.pred_nan_voxels,
            &mut t.pred_non_integer_voxels,
            len,
        );
        let g = integer_id(
            classify(gt),
            &mut t.gt_nan_voxels,
            &mut t.gt_non_integer_voxels,
            len,
        );
        let (Some(p), Some(g)) = (p, g) else {
            t.excluded_voxels += len;
            return;
        };
        t.compared_voxels += len;
        match (usize::try_from(p), usize::try_from(g)) {
            (Ok(pi), Ok(gi)) if pi < DENSE_SIDE && gi < DENSE_SIDE => {
                self.dense[pi * DENSE_SIDE + gi] += len;
            }
            _ => *self.sparse.entry((p, g)).or_default() += len,
        }
    }

    /// The joint histogram, cells sorted by (pred, gt).
    pub(crate) fn finish(self) -> ConfusionTally {
        let mut tally = self.tally;
        let mut cells: Vec<ConfusionEntry> = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, &v)| v > 0)
            .map(|(i, &voxels)| ConfusionEntry {
                pred: (i / DENSE_SIDE) as i64,
                gt: (i % DENSE_SIDE) as i64,
                voxels,
            })
            .chain(
                self.sparse
                    .into_iter()
                    .map(|((pred, gt), voxels)| ConfusionEntry { pred, gt, voxels }),
            )
            .collect();
        cells.sort_by_key(|e| (e.pred, e.gt));
        tally.confusion = cells;
        tally
    }
}

/// The integer id of a voxel class (background is 0), counting NaN / non-integer.
#[inline]
fn integer_id(class: VoxelClass, nan: &mut u64, non_integer: &mut u64, len: u64) -> Option<i64> {
    match class {
        VoxelClass::Background => Some(0),
        VoxelClass::Label(id) => Some(id),
        VoxelClass::Nan => {
            *nan += len;
            None
        }
        VoxelClass::NonInteger => {
            *non_integer += len;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pairs_and_derives_dice_iou_with_statuses() {
        let pred = [0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 0.0, 700.0, f64::NAN, 0.5];
        let gt = [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 3.0, 700.0, 1.0, 1.0];
        // Two slices of 5 x 1 voxels.
        let mut acc = ConfusionAccumulator::new(5, 1);
        acc.push_slice(&pred[..5], &gt[..5]);
        acc.push_slice(&pred[5..], &gt[5..]);
        let t = acc.finish();
        assert_eq!(t.total_voxels, 10);
        assert_eq!(t.excluded_voxels, 2);
        assert_eq!(t.compared_voxels, 8);
        assert_eq!((t.pred_nan_voxels, t.pred_non_integer_voxels), (1, 1));
        assert_eq!((t.gt_nan_voxels, t.gt_non_integer_voxels), (0, 0));
        let cells: Vec<(i64, i64, u64)> = t
            .confusion
            .iter()
            .map(|e| (e.pred, e.gt, e.voxels))
            .collect();
        assert_eq!(
            cells,
            vec![
                (0, 0, 1),
                (0, 3, 1),
                (1, 0, 1),
                (1, 1, 2),
                (2, 0, 2),
                (700, 700, 1)
            ]
        );

        let o = t.overlaps();
        let ids: Vec<i64> = o.iter().map(|l| l.label_id).collect();
        assert_eq!(ids, vec![1, 2, 3, 700]);
        assert_eq!(o[0].status, OverlapStatus::Ok);
        assert_eq!(
            (o[0].pred_voxels, o[0].gt_voxels, o[0].intersection),
            (3, 2, 2)
        );
        assert_eq!(o[0].dice, Some(0.8));
        assert_eq!(o[0].iou, Some(2.0 / 3.0));
        assert_eq!(o[1].status, OverlapStatus::GtEmpty);
        assert_eq!((o[1].dice, o[1].iou), (Some(0.0), Some(0.0)));
        assert_eq!(o[2].status, OverlapStatus::PredEmpty);
        assert_eq!(o[3].dice, Some(1.0));
        let none = LabelOverlap::from_counts(9, 0, 0, 0);
        assert_eq!(none.status, OverlapStatus::BothEmpty);
        assert_eq!((none.dice, none.iou), (None, None));
    }
}

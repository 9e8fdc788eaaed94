//! Statistics of a reference image under each label, streamed in lockstep with the
//! label map.
//!
//! Each run contributes its own mean and sum of squared deviations, merged into the
//! label's running totals with Chan et al.'s pairwise update: as accurate as a
//! two-pass computation, in one pass.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::runs::{Run, VoxelClass};

/// Reference-image intensities under one label (population std, ddof = 0).
/// Non-finite reference voxels are left out and counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntensityStats {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// Finite reference voxels the figures are computed from.
    pub voxels: u64,
    /// Reference voxels under the label that were NaN or infinite, left out.
    pub non_finite_voxels: u64,
}

#[derive(Debug, Clone, Copy)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    non_finite: u64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            non_finite: 0,
        }
    }
}

impl Moments {
    fn add_values(&mut self, values: &[f64]) {
        let mut n = 0u64;
        let mut sum = 0.0;
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        for &v in values {
            if v.is_finite() {
                n += 1;
                sum += v;
                min = min.min(v);
                max = max.max(v);
            }
        }
        self.non_finite += values.len() as u64 - n;
        if n == 0 {
            return;
        }
        let mean = sum / n as f64;
        let m2: f64 = values
            .iter()
            .filter(|v| v.is_finite())
            .map(|v| (v - mean) * (v - mean))
            .sum();
        let total = self.n + n;
        let delta = mean - self.mean;
        self.mean += delta * n as f64 / total as f64;
        self.m2 += m2 + delta * delta * (self.n as f64) * (n as f64) / total as f64;
        self.n = total;
        self.min = self.min.min(min);
        self.max = self.max.max(max);
    }
}

/// Streams (label slice runs, reference slice) pairs and accumulates per-label moments.
#[derive(Debug)]
pub(crate) struct IntensityAccumulator {
    shape: [usize; 3],
    labels: BTreeMap<i64, Moments>,
}

impl IntensityAccumulator {
    /// An empty accumulator for volumes of `shape` (x, y, z).
    pub(crate) fn new(shape: [usize; 3]) -> Self {
        IntensityAccumulator {
            shape,
            labels: BTreeMap::new(),
        }
    }

    /// Feed one label slice and the reference slice at the same z.
    /// (Tests feed whole slices; the pass shares one split between accumulators.)
    #[cfg(test)]
    pub(crate) fn push_slice(&mut self, labels: &[f64], reference: &[f64]) {
        let mut runs = super::runs::SliceRuns::default();
        runs.fill(labels, self.shape[0], self.shape[1]);
        self.push_runs(runs.runs(), reference);
    }

    /// Feed the runs of one label slice and the reference slice at the same z.
    pub(crate) fn push_runs(&mut self, runs: &[Run], reference: &[f64]) {
        let nx = self.shape[0];
        let mut last: Option<(i64, &mut Moments)> = None;
        for run in runs {
            let VoxelClass::Label(id) = run.class else {
                continue;
            };
            let start = run.y as usize * nx;
            let values = &reference[start + run.x0 as usize..=start + run.x1 as usize];
            // Consecutive runs often share a label: skip the map lookup then.
            match &mut last {
                Some((last_id, moments)) if *last_id == id => moments.add_values(values),
                _ => {
                    let moments = self.labels.entry(id).or_default();
                    moments.add_values(values);
                    last = Some((id, moments));
                }
            }
        }
    }

    /// Per-label statistics; a label whose reference voxels are all non-finite is
    /// absent (there is no mean to report).
    pub(crate) fn finish(self) -> BTreeMap<i64, IntensityStats> {
        self.labels
            .into_iter()
            .filter(|(_, m)| m.n > 0)
            .map(|(id, m)| {
                (
                    id,
                    IntensityStats {
                        mean: m.mean,
                        std: (m.m2 / m.n as f64).max(0.0).sqrt(),
                        min: m.min,
                        max: m.max,
                        voxels: m.n,
                        non_finite_voxels: m.non_finite,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_two_pass_statistics_across_runs_and_slices() {
        let shape = [4, 2, 2];
        let labels = [
            [1.0, 1.0, 0.0, 2.0, 1.0, 2.0, 2.0, 0.0],
            [0.0, 1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 0.0],
        ];
        let reference = [
            [10.0, 12.0, 99.0, -3.0, 1000.5, 4.0, f64::NAN, 7.0],
            [5.0, 11.0, 13.0, 9.0, 2.0, 0.0, 0.0, 0.0],
        ];
        let mut acc = IntensityAccumulator::new(shape);
        for z in 0..2 {
            acc.push_slice(&labels[z], &reference[z]);
        }
        let got = acc.finish();
        let check = |id: i64, vals: &[f64], non_finite: u64| {
            let n = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / n;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let s = got[&id];
            assert!((s.mean - mean).abs() < 1e-12, "mean {id}");
            assert!((s.std - var.sqrt()).abs() < 1e-12, "std {id}");
            assert_eq!(s.min, vals.iter().cloned().fold(f64::INFINITY, f64::min));
            assert_eq!(
                s.max,
                vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            );
            assert_eq!(s.voxels, vals.len() as u64);
            assert_eq!(s.non_finite_voxels, non_finite);
        };
        check(1, &[10.0, 12.0, 1000.5, 11.0, 13.0, 9.0], 0);
        check(2, &[-3.0, 4.0, 2.0], 1);
    }

    #[test]
    fn a_label_with_only_non_finite_reference_voxels_has_no_statistics() {
        let mut acc = IntensityAccumulator::new([3, 1, 1]);
        acc.push_slice(&[4.0, 4.0, 5.0], &[f64::NAN, f64::INFINITY, 2.0]);
        let got = acc.finish();
        assert!(!got.contains_key(&4), "no mean exists for label 4");
        assert_eq!(got[&5].mean, 2.0);
    }
}

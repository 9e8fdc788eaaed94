//! One streamed pass: every accumulator fed from the same slice, in lockstep with the
//! optional reference image and ground truth. Pure (slices in, tallies out), so the
//! file-level functions only read slices and hand them over.

use std::collections::BTreeMap;

use super::components::{ComponentAccumulator, ComponentStats};
use super::confusion::{ConfusionAccumulator, ConfusionTally};
use super::intensity::{IntensityAccumulator, IntensityStats};
use super::runs::SliceRuns;
use super::stats::{LabelStatsAccumulator, VolumeTally};

/// Which optional accumulators a pass runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PassPlan {
    pub components: bool,
    pub reference: bool,
    pub ground_truth: bool,
}

/// The tallies of a finished pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PassResult {
    pub tally: VolumeTally,
    pub components: Option<BTreeMap<i64, ComponentStats>>,
    pub intensity: Option<BTreeMap<i64, IntensityStats>>,
    pub confusion: Option<ConfusionTally>,
}

/// A pass in progress over a volume of a known shape.
#[derive(Debug)]
pub(crate) struct InspectPass {
    shape: [usize; 3],
    next_z: usize,
    runs: SliceRuns,
    stats: LabelStatsAccumulator,
    components: Option<ComponentAccumulator>,
    intensity: Option<IntensityAccumulator>,
    confusion: Option<ConfusionAccumulator>,
}

impl InspectPass {
    /// Start a pass over a volume of `shape` (x, y, z).
    pub(crate) fn new(shape: [usize; 3], plan: PassPlan) -> Self {
        InspectPass {
            shape,
            next_z: 0,
            runs: SliceRuns::default(),
            stats: LabelStatsAccumulator::new(shape),
            components: plan.components.then(|| ComponentAccumulator::new(shape)),
            intensity: plan.reference.then(|| IntensityAccumulator::new(shape)),
            confusion: plan
                .ground_truth
                .then(|| ConfusionAccumulator::new(shape[0], shape[1])),
        }
    }

    /// The number of values one slice holds.
    pub(crate) fn slice_len(&self) -> usize {
        self.shape[0] * self.shape[1]
    }

    /// Feed the next z-slice of the mask, with the reference and ground-truth slices
    /// at the same z when the plan has them (all `slice_len()` long).
    pub(crate) fn push(
        &mut self,
        mask: &[f64],
        reference: Option<&[f64]>,
        ground_truth: Option<&[f64]>,
    ) {
        let z = self.next_z;
        self.next_z += 1;
        self.runs.fill(mask, self.shape[0], self.shape[1]);
        let runs = self.runs.runs();
        self.stats.push_runs(z, runs);
        if let Some(c) = &mut self.components {
            c.push_runs(z, runs);
        }
        if let (Some(acc), Some(reference)) = (&mut self.intensity, reference) {
            acc.push_runs(runs, reference);
        }
        if let (Some(acc), Some(gt)) = (&mut self.confusion, ground_truth) {
            acc.push_runs(runs, gt);
        }
    }

    /// Slices pushed so far.
    #[cfg(test)]
    pub(crate) fn slices_pushed(&self) -> usize {
        self.next_z
    }

    /// Finish every accumulator.
    pub(crate) fn finish(self) -> PassResult {
        PassResult {
            tally: self.stats.finish(),
            components: self.components.map(ComponentAccumulator::finish),
            intensity: self.intensity.map(IntensityAccumulator::finish),
            confusion: self.confusion.map(ConfusionAccumulator::finish),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_feeds_every_accumulator_the_same_slices() {
        let shape = [3, 2, 2];
        let mask = [
            [1.0, 1.0, 0.0, 0.0, 0.0, 2.0],
            [0.0, 0.0, 0.0, 1.0, 0.0, 2.0],
        ];
        let reference = [
            [1.0, 3.0, 0.0, 0.0, 0.0, 8.0],
            [0.0, 0.0, 0.0, 5.0, 0.0, 10.0],
        ];
        let gt = [
            [1.0, 0.0, 0.0, 0.0, 0.0, 2.0],
            [0.0, 0.0, 0.0, 1.0, 0.0, 2.0],
        ];
        let plan = PassPlan {
            components: true,
            reference: true,
            ground_truth: true,
        };
        let mut pass = InspectPass::new(shape, plan);
        for z in 0..2 {
            pass.push(&mask[z], Some(&reference[z]), Some(&gt[z]));
        }
        assert_eq!(pass.slices_pushed(), 2);
        let r = pass.finish();
        let counts: Vec<(i64, u64)> = r.tally.labels.iter().map(|l| (l.id, l.voxels)).collect();
        assert_eq!(counts, vec![(1, 3), (2, 2)]);
        let comps = r.components.unwrap();
        assert_eq!((comps[&1].count, comps[&1].largest_voxels), (1, 3));
        assert_eq!((comps[&2].count, comps[&2].largest_voxels), (1, 2));
        let intensity = r.intensity.unwrap();
        assert_eq!(intensity[&1].mean, 3.0);
        assert_eq!(intensity[&2].mean, 9.0);
        let overlaps = r.confusion.unwrap().overlaps();
        assert_eq!(overlaps[0].dice, Some(0.8));
        assert_eq!(overlaps[1].dice, Some(1.0));
    }
}

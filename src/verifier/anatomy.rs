//! Anatomy plausibility: each class's volume and components against the bounds of
//! the pack's modality.
//!
//! Why apart: this is the one check that needs the bounds file, and the place that
//! fits the bounds to a modality other than `CT_BODY`; the pure judgement is in
//! `verdict`.

use super::bounds::AnatomyBounds;
use super::load::MaskScan;
use super::pack::PackFacts;
use super::recorded::Opened;
use super::report::{AnatomyPlausibility, Verdict};
use super::verdict::{self, ClassObservation};
use super::vocabulary::Vocabulary;
use super::{Context, SUPPORTED_MODALITY};
use crate::nifti::Header;

/// The bounds as they apply to the pack's modality: for a covered modality other than
/// `CT_BODY`, only the classes of its everything-set stay bounded (the others are
/// reported, not bounded); the note says which set was used and what was dropped.
pub(super) fn bounds_for_modality(
    bounds: AnatomyBounds,
    facts: &PackFacts,
    vocab: &Vocabulary,
) -> (AnatomyBounds, Option<String>) {
    let Some(m) = facts.modality.as_deref() else {
        return (bounds, None);
    };
    if m == SUPPORTED_MODALITY || !bounds.covers(m) {
        return (bounds, None);
    }
    match vocab.everything_sets.get(m) {
        Some((ids, source)) => {
            let (kept, dropped) = bounds.restricted_to(ids);
            let note = format!(
                "bounded classes are those of the {m} set ({source}): {:?}{}",
                kept.ids(),
                if dropped.is_empty() {
                    String::new()
                } else {
                    format!("; outside it, reported not bounded: {dropped:?}")
                }
            );
            (kept, Some(note))
        }
        None => {
            let note = format!(
                "the {m} class set is unknown (no label table gives it), so every bounded class is bounded: {:?}",
                bounds.ids()
            );
            (bounds, Some(note))
        }
    }
}

impl Context<'_> {
    /// Anatomy plausibility, or why it is not judged.
    pub(super) fn anatomy(
        &self,
        modality_supported: bool,
        modality_note: &str,
        scan: Option<&Result<MaskScan, String>>,
        mask: &Opened,
    ) -> AnatomyPlausibility {
        if !modality_supported {
            return verdict::anatomy_not_judged(
                Verdict::NotApplicable,
                "modality_supported",
                modality_note,
                self.bounds,
            );
        }
        match scan {
            Some(Ok(s)) => verdict::anatomy_plausibility(&self.observations(s, mask), self.bounds),
            Some(Err(e)) => verdict::anatomy_not_judged(
                Verdict::Fail,
                "label_map_readable",
                &format!("label map unreadable: {e}"),
                self.bounds,
            ),
            None => verdict::anatomy_not_judged(
                Verdict::Fail,
                "label_map_readable",
                mask.header
                    .as_ref()
                    .err()
                    .map(String::as_str)
                    .unwrap_or("label map unreadable"),
                self.bounds,
            ),
        }
    }

    fn observations(&self, s: &MaskScan, mask: &Opened) -> Vec<ClassObservation> {
        let voxel_ml = mask
            .header
            .as_ref()
            .map(Header::voxel_volume_ml)
            .unwrap_or(0.0);
        s.tally
            .labels
            .iter()
            .filter_map(|l| {
                let id = u32::try_from(l.id).ok()?;
                let comp = s.components.get(&l.id);
                Some(ClassObservation {
                    label_id: id,
                    name: self.vocab.name(id),
                    voxels: l.voxels,
                    volume_ml: l.voxels as f64 * voxel_ml,
                    components: comp.map_or(0, |c| c.count),
                    largest_fraction: comp.map_or(0.0, |c| c.largest_fraction),
                })
            })
            .collect()
    }
}

//! `cohort_volumes.png`: the cohort's per-class volumes against the paired verifier's
//! anatomy bounds (drawn by [`crate::render::cohort`]), beside `cohort_volumes.csv`.
//! Here, in the tool, because it joins two domain modules (the cohort's rows and the
//! verifier's bounds) that do not know each other.

use std::collections::BTreeMap;
use std::path::Path;

use crate::evidence::cohort::Cohort;
use crate::render::cohort::{cohort_plot, CohortRow};
use crate::verifier::bounds::AnatomyBounds;

/// The plot's file name in the output root.
pub(crate) const COHORT_PLOT_FILE: &str = "cohort_volumes.png";

/// One row per class present in a succeeded (or reused) volume, in name order.
pub(crate) fn rows(cohort: &Cohort, bounds: &AnatomyBounds) -> Vec<CohortRow> {
    let by_name: BTreeMap<String, (f64, f64)> = bounds
        .classes
        .values()
        .map(|b| (b.name.to_lowercase(), (b.volume_ml_min, b.volume_ml_max)))
        .collect();
    let mut classes: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
    for row in cohort.volumes.iter().filter(|r| r.status.ok()) {
        for (class, ml) in &row.class_volumes_ml {
            classes
                .entry(class)
                .or_default()
                .push((row.id.clone(), *ml));
        }
    }
    classes
        .into_iter()
        .map(|(class, volumes)| CohortRow {
            class: class.to_string(),
            volumes,
            bounds: by_name.get(&class.to_lowercase()).copied(),
        })
        .collect()
}

/// Write the plot atomically; a plot that cannot be drawn is a warning, not a failed batch.
pub(crate) fn write(dir: &Path, cohort: &Cohort) {
    let rows = rows(cohort, &AnatomyBounds::embedded());
    let title = format!(
        "{} volume(s), {}: per-class volume (mL)",
        cohort.volumes.iter().filter(|r| r.status.ok()).count(),
        cohort.modality
    );
    let written = cohort_plot(&rows, &title).and_then(|png| {
        crate::atomic::write(&dir.join(COHORT_PLOT_FILE), &png).map_err(|e| e.to_string())
    });
    if let Err(e) = written {
        tracing::warn!("{COHORT_PLOT_FILE} not written in {}: {e}", dir.display());
    }
}

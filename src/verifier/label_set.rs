//! Which labels a pack should hold and what they are called: the vocabulary chosen
//! for the pack, and the expected set (expanded prompts, or the modality's
//! everything-set).
//!
//! Why apart: names and sets come from files the pack points at (the bundle, a
//! `labels.json`); the order tried is decided here, the reading in `vocabulary`.

use std::path::{Path, PathBuf};

use super::pack::{resolve_recorded_path, PackFacts};
use super::verdict::ExpectedSet;
use super::vocabulary::{self, Vocabulary};
use super::{Context, LabelSource, VerifyUsageError, SUPPORTED_MODALITY};

/// The label vocabulary for this pack (see [`vocabulary`] for the order tried).
pub(super) fn vocabulary_for(
    pack_dir: &Path,
    cwd: Option<&Path>,
    facts: &PackFacts,
    explicit: Option<&LabelSource>,
) -> Result<Vocabulary, VerifyUsageError> {
    match explicit {
        Some(LabelSource::IdsOnly) => {
            return Ok(Vocabulary::ids_only(vec![
                "ids only: requested by the caller".to_string(),
            ]))
        }
        Some(LabelSource::Bundle(p)) => {
            return vocabulary::from_bundle(p).map_err(|reason| VerifyUsageError::Labels {
                path: p.clone(),
                reason,
            })
        }
        Some(LabelSource::LabelsJson(p)) => {
            return vocabulary::from_labels_json(p).map_err(|reason| VerifyUsageError::Labels {
                path: p.clone(),
                reason,
            })
        }
        None => {}
    }
    let mut notes = Vec::new();
    let mut candidates: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(src) = &facts.label_map_source {
        candidates.push((
            "output.label_map_source",
            resolve_recorded_path(pack_dir, src, cwd),
        ));
    }
    if let Some(root) = &facts.upstream_root {
        candidates.push((
            "invocation.upstream_root",
            resolve_recorded_path(pack_dir, root, cwd),
        ));
    }
    for (field, path) in candidates {
        match vocabulary::from_recorded_path(&path) {
            Ok(v) => return Ok(Vocabulary { notes, ..v }),
            Err(e) => notes.push(format!("{field} {}: {e}", path.display())),
        }
    }
    let sidecar = pack_dir.join("labels.json");
    if sidecar.exists() {
        match vocabulary::from_labels_json(&sidecar) {
            Ok(v) => return Ok(Vocabulary { notes, ..v }),
            Err(e) => notes.push(format!("{}: {e}", sidecar.display())),
        }
    } else {
        notes.push(format!("{} is absent", sidecar.display()));
    }
    Ok(Vocabulary::ids_only(notes))
}

impl Context<'_> {
    /// Where class names came from, with what was tried first.
    pub(super) fn label_names_source(&self) -> String {
        if self.vocab.notes.is_empty() {
            self.vocab.source.clone()
        } else {
            format!(
                "{} (tried first: {})",
                self.vocab.source,
                self.vocab.notes.join("; ")
            )
        }
    }

    /// Expanded prompts, else the modality's everything-set, else unknown.
    pub(super) fn expected_set(&self) -> Option<ExpectedSet> {
        let facts = self.facts;
        if !facts.prompts.is_empty() {
            return Some(ExpectedSet {
                basis: "prompts".to_string(),
                ids: self.vocab.expand_prompts(&facts.prompts),
                source: Some(format!("sub-classes: {}", self.vocab.subclass_source)),
            });
        }
        let modality = facts.modality.as_deref().unwrap_or(SUPPORTED_MODALITY);
        self.vocab
            .everything_sets
            .get(modality)
            .map(|(ids, source)| ExpectedSet {
                basis: "everything_set".to_string(),
                ids: ids.clone(),
                source: Some(source.clone()),
            })
    }
}

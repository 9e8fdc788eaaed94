//! The target checks: what ran (skill id, modality) and whether it succeeded by its
//! own account (manifest, run status, validation summary).
//!
//! Why apart: these checks read only what the pack says about itself; they decide
//! whether the rest of the report is about a pack this verifier may judge at all.

use std::collections::BTreeSet;

use super::pack::PackDoc;
use super::report::Check;
use super::{Context, SUPPORTED_MODALITY, TARGET_SKILL_IDS};

impl Context<'_> {
    /// Whether anatomy bounds cover the pack's modality, and the note saying so.
    pub(super) fn modality(&self) -> (bool, String) {
        let facts = self.facts;
        let modality_is_ct_skill = matches!(
            facts.skill_id.as_str(),
            "nv_segment_ct" | "medagent.nv_segment_ct"
        );
        let modality = facts.modality.as_deref();
        let modality_supported =
            modality_is_ct_skill || modality.is_some_and(|m| self.bounds.covers(m));
        let covered = self.bounds.modalities.join(", ");
        let modality_note = match (modality_supported, modality) {
            (true, Some(m)) if m != SUPPORTED_MODALITY => format!(
                "{m} is covered: organ volumes do not depend on the modality, so the adult anatomy \
                 bounds apply{}",
                self.bounds_note
                    .as_deref()
                    .map(|n| format!("; {n}"))
                    .unwrap_or_default()
            ),
            (true, _) => format!(
                "{} is covered: adult CT anatomy bounds apply",
                modality.unwrap_or("CT")
            ),
            (false, Some("MRI_BRAIN")) => format!(
                "no verifier covers MRI_BRAIN: its classes are brain structures, not the abdominal \
                 organs the anatomy bounds describe (they cover {covered}), so this pack cannot pass"
            ),
            (false, m) => format!(
                "no verifier covers {}: anatomy bounds here cover {covered} only, so this pack cannot pass",
                m.unwrap_or("an unrecorded modality")
            ),
        };
        (modality_supported, modality_note)
    }

    /// Target checks: what ran, and did it succeed by its own account.
    pub(super) fn target_checks(
        &self,
        manifest: &PackDoc,
        validation: &PackDoc,
        modality_supported: bool,
        modality_note: &str,
    ) -> Vec<Check> {
        let facts = self.facts;
        let mut target_checks = vec![
            Check::new(
                "skill_id_recognised",
                TARGET_SKILL_IDS.contains(&facts.skill_id.as_str()),
                format!(
                    "skill_id {:?}; this verifier reads packs of {TARGET_SKILL_IDS:?}",
                    facts.skill_id
                ),
            ),
            self.manifest_check(manifest),
            {
                let (ok, _, reason) = facts.run_succeeded();
                Check::new("run_succeeded", ok, reason)
            },
            Check::new(
                "validation_passed",
                facts.validation_overall.as_deref() == Some("passed"),
                match (validation.problem(), &facts.validation_overall) {
                    (Some(p), _) => p,
                    (None, Some(s)) => format!("validation_summary.json overall_status is {s:?}"),
                    (None, None) => "validation_summary.json records no overall_status".to_string(),
                },
            ),
            Check::new(
                "modality_supported",
                modality_supported,
                modality_note.to_string(),
            ),
        ];
        let normalised: BTreeSet<&str> = facts
            .skill_id_claims
            .iter()
            .map(|(_, id)| id.strip_prefix("medagent.").unwrap_or(id))
            .collect();
        if normalised.len() > 1 {
            let listed: Vec<String> = facts
                .skill_id_claims
                .iter()
                .map(|(f, id)| format!("{f} = {id:?}"))
                .collect();
            target_checks.push(Check::new(
                "skill_ids_agree",
                false,
                format!("the documents name different skills: {}", listed.join(", ")),
            ));
        }
        if !facts.prompt_problems.is_empty() {
            target_checks.push(Check::new(
                "label_prompts_readable",
                false,
                facts.prompt_problems.join("; "),
            ));
        }
        target_checks
    }

    /// `manifest.json` parses; a reference-layout pack may lack it (the reference
    /// wrapper writes none), a ctmr-skill pack may not.
    fn manifest_check(&self, manifest: &PackDoc) -> Check {
        match manifest {
            PackDoc::Missing(p) if self.facts.reference_layout() => Check::new(
                "manifest_readable",
                true,
                format!(
                    "{} is absent, as in the reference wrapper's packs (output.json records no \
                     ctmr-skill schema_version); hashes are recomputed from the files",
                    p.display()
                ),
            ),
            _ => Check::new(
                "manifest_readable",
                manifest.problem().is_none(),
                manifest
                    .problem()
                    .unwrap_or_else(|| "manifest.json parsed".to_string()),
            ),
        }
    }
}

//! The evidence pack on disk: `output.json`, `manifest.json`,
//! `validation_summary.json` (each written atomically), beside the upstream logs
//! and the label sidecars that the run writes into the same directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::document::{Evidence, GateResult, RunStatus};
use super::sanity::{CheckStatus, SanityResult};

/// `manifest.json`: who ran what, where, with which inputs (by hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunManifest {
    pub schema_version: String,
    pub run_id: String,
    pub skill_id: String,
    pub skill_version: String,
    pub created_at: String,
    pub finished_at: String,
    pub command: Vec<String>,
    pub environment: BTreeMap<String, Option<String>>,
    pub hashes: BTreeMap<String, Option<String>>,
    pub not_for_clinical_use: String,
}

/// `validation_summary.json`: gate and sanity-check statuses at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ValidationSummary {
    pub schema_version: String,
    /// `passed` when the run succeeded and every gate and sanity check passed.
    pub overall_status: String,
    pub status: RunStatus,
    pub gates: Vec<GateResult>,
    pub sanity_checks: Vec<SanityResult>,
    pub not_for_clinical_use: String,
}

impl ValidationSummary {
    pub(crate) fn from_evidence(evidence: &Evidence) -> Self {
        let passed = evidence.status == RunStatus::Succeeded
            && evidence.gates.iter().all(|g| !g.failed())
            && evidence
                .sanity_checks
                .iter()
                .all(|c| c.status == CheckStatus::Passed);
        ValidationSummary {
            schema_version: "ctmr-skill.validation/1".into(),
            overall_status: if passed { "passed" } else { "failed" }.into(),
            status: evidence.status,
            gates: evidence.gates.clone(),
            sanity_checks: evidence.sanity_checks.clone(),
            not_for_clinical_use: crate::NOT_FOR_CLINICAL_USE.into(),
        }
    }
}

/// The files a pack write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackFiles {
    pub output_json: PathBuf,
    pub manifest_json: PathBuf,
    pub validation_summary_json: PathBuf,
}

/// Write the three JSON documents of a pack, each atomically. `manifest.json` and
/// `validation_summary.json` go first, so a complete `output.json` implies a complete pack.
pub(crate) fn write_pack(
    dir: &Path,
    evidence: &Evidence,
    manifest: &RunManifest,
) -> std::io::Result<PackFiles> {
    let files = PackFiles {
        output_json: dir.join("output.json"),
        manifest_json: dir.join("manifest.json"),
        validation_summary_json: dir.join("validation_summary.json"),
    };
    crate::atomic::write_json(&files.manifest_json, manifest)?;
    crate::atomic::write_json(
        &files.validation_summary_json,
        &ValidationSummary::from_evidence(evidence),
    )?;
    crate::atomic::write_json(&files.output_json, evidence)?;
    Ok(files)
}

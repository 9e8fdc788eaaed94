//! The combined trust summary of "run, then verify" (`verify: true` on `run_script` /
//! `run_batch`, `--verify` on the CLI): the skill's own status, the paired verifier's
//! verdict and failing checks, and the SHA-256 of every file the verifier judged, as
//! they were when it judged them. Written into the pack as [`TRUST_SUMMARY_FILE`].

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{verify_pack, VerifyOptions, VERIFIER_ID, VERIFIER_VERSION};

/// The file name of the trust summary in the pack.
pub(crate) const TRUST_SUMMARY_FILE: &str = "trust_summary.json";
/// The summary's schema version.
pub(crate) const TRUST_SCHEMA_VERSION: &str = "ctmr-skill.trust/1";

/// One file the verifier judged, hashed when it judged it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgedFile {
    /// `output.json`, `manifest.json`, `validation_summary.json`, `label_map`,
    /// `input_image` or `ground_truth`.
    pub role: String,
    pub path: String,
    /// `null` when the file could not be read (the reason is in `failing_checks`).
    pub sha256: Option<String>,
}

/// "Ran and verified", or "ran but failed verification, because ...".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrustSummary {
    pub schema_version: String,
    /// The skill's own `status` (`succeeded` when the verifier ran).
    pub skill_status: String,
    pub verifier_id: String,
    pub verifier_version: String,
    /// `pass` or `fail` (the verifier's `overall`), or `error` when no verdict could
    /// be formed (the pack could not be read as one).
    pub verdict: String,
    /// True only when the skill succeeded and the verifier passed.
    pub trusted: bool,
    /// The verifier's `overall_reasons` (empty on pass).
    pub failing_checks: Vec<String>,
    pub judged_files: Vec<JudgedFile>,
    /// One sentence for the caller.
    pub summary: String,
    pub not_for_clinical_use: String,
}

impl TrustSummary {
    /// The summary when the verifier could not run at all: untrusted, with the reason.
    pub(crate) fn not_formed(skill_status: &str, reason: String) -> TrustSummary {
        TrustSummary {
            schema_version: TRUST_SCHEMA_VERSION.to_string(),
            skill_status: skill_status.to_string(),
            verifier_id: VERIFIER_ID.to_string(),
            verifier_version: VERIFIER_VERSION.to_string(),
            verdict: "error".to_string(),
            trusted: false,
            summary: format!("Ran, but could not be verified: {reason}"),
            failing_checks: vec![reason],
            judged_files: Vec::new(),
            not_for_clinical_use: crate::NOT_FOR_CLINICAL_USE.to_string(),
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("trust summary serialises")
    }
}

/// Run the paired verifier on the pack of a run whose status is `skill_status`, write
/// `trust_summary.json` into the pack, and return the summary. A write failure is
/// reported in the summary's `failing_checks` and makes it untrusted.
pub(crate) fn verify_and_record(
    pack_dir: &Path,
    skill_status: &str,
    opts: &VerifyOptions,
) -> TrustSummary {
    let mut summary = judge(pack_dir, skill_status, opts);
    if let Err(e) = crate::atomic::write_json(&pack_dir.join(TRUST_SUMMARY_FILE), &summary) {
        summary.trusted = false;
        summary.failing_checks.push(format!(
            "{TRUST_SUMMARY_FILE} could not be written into {}: {e}",
            pack_dir.display()
        ));
    }
    summary
}

fn judge(pack_dir: &Path, skill_status: &str, opts: &VerifyOptions) -> TrustSummary {
    let mut files: Vec<(String, PathBuf)> =
        ["output.json", "manifest.json", "validation_summary.json"]
            .into_iter()
            .map(|n| (n.to_string(), pack_dir.join(n)))
            .collect();
    let (verdict, failing_checks) = match verify_pack(pack_dir, opts) {
        Ok(report) => {
            for (role, path) in [
                ("label_map", &report.target.label_map_path),
                ("input_image", &report.target.input_image_path),
                ("ground_truth", &report.target.ground_truth_path),
            ] {
                if let Some(p) = path {
                    files.push((role.to_string(), PathBuf::from(p)));
                }
            }
            let verdict = if report.passed() { "pass" } else { "fail" };
            (verdict.to_string(), report.overall_reasons.clone())
        }
        Err(e) => (
            "error".to_string(),
            vec![format!("no verdict could be formed: {e}")],
        ),
    };
    let judged_files = files
        .into_iter()
        .filter(|(_, p)| p.exists())
        .map(|(role, p)| JudgedFile {
            role,
            sha256: super::load::sha256_file(&p).ok(),
            path: p.display().to_string(),
        })
        .collect();
    let trusted = skill_status == "succeeded" && verdict == "pass";
    let summary = if trusted {
        format!("Ran and verified: {VERIFIER_ID} passed the pack.")
    } else if verdict == "error" {
        format!(
            "Ran, but could not be verified: {}",
            failing_checks.join("; ")
        )
    } else if skill_status != "succeeded" {
        format!("The run did not succeed (status {skill_status}); verifier verdict {verdict}.")
    } else {
        format!(
            "Ran but failed verification by {VERIFIER_ID}, because: {}",
            failing_checks.join("; ")
        )
    };
    TrustSummary {
        schema_version: TRUST_SCHEMA_VERSION.to_string(),
        skill_status: skill_status.to_string(),
        verifier_id: VERIFIER_ID.to_string(),
        verifier_version: VERIFIER_VERSION.to_string(),
        verdict,
        trusted,
        failing_checks,
        judged_files,
        summary,
        not_for_clinical_use: crate::NOT_FOR_CLINICAL_USE.to_string(),
    }
}

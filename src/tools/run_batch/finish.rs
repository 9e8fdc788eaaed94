//! The cohort finish of `run_batch`, whichever executor ran it: the cohort summary
//! from the volume rows, `cohort.json` and the CSV written, the paired verifier on
//! each succeeded pack when `verify: true`, and the call's MCP answer.
//!
//! Why apart: this is the one place that turns rows into what the caller reads; the
//! local and Slurm executors only fill rows, and `mod.rs` only decides what runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::plot;
use super::request::BatchRunRequest;
use super::{report, BatchCall, BatchOutput, RunBatch, VolumeTrust};
use crate::call::CallContext;
use crate::config::Config;
use crate::evidence::cohort::{self, Attempt, Cohort, Failure, VolumeRow, VolumeStatus};
use crate::evidence::RunIds;
use crate::tools::registry::{Answer, FailureKind, Outcome, ToolFailure};

/// The paired verifier on every succeeded or reused volume's pack, in row order.
pub(super) async fn verify_volumes(cohort: &Cohort, config: &Config) -> Vec<VolumeTrust> {
    let mut out = Vec::new();
    for row in &cohort.volumes {
        let ok = matches!(row.status, VolumeStatus::Succeeded | VolumeStatus::Reused);
        let Some(pack) = row.pack_dir.clone().filter(|_| ok) else {
            continue;
        };
        let opts = crate::verifier::VerifyOptions {
            cwd: Some(config.cwd.clone()),
            ..crate::verifier::VerifyOptions::default()
        };
        let dir = PathBuf::from(&pack);
        let trust = tokio::task::spawn_blocking(move || {
            crate::verifier::trust::verify_and_record(&dir, "succeeded", &opts)
        })
        .await
        .unwrap_or_else(|e| {
            crate::verifier::trust::TrustSummary::not_formed(
                "succeeded",
                format!("the verifier stopped: {e}"),
            )
        });
        out.push(VolumeTrust {
            id: row.id.clone(),
            pack_dir: pack,
            trust,
        });
    }
    out
}

/// One line per volume: verified, or why not.
fn trust_lines(trust: &[VolumeTrust]) -> String {
    let trusted = trust.iter().filter(|t| t.trust.trusted).count();
    let mut out = format!(
        "Verification: {trusted} of {} succeeded volume(s) ran and verified.",
        trust.len()
    );
    for t in trust.iter().filter(|t| !t.trust.trusted) {
        out.push_str(&format!("\n- {}: {}", t.id, t.trust.summary));
    }
    out
}

/// Write `cohort.json` and the CSV, report the end, and answer.
/// `total` counts the volumes that passed their gates (the progress denominator).
pub(super) fn finish(
    request: &BatchRunRequest,
    cohort: Cohort,
    total: usize,
    ctx: &CallContext,
) -> BatchCall {
    if let Err(e) = std::fs::create_dir_all(&request.output_root)
        .and_then(|_| cohort::write(&request.output_root, &cohort))
    {
        return BatchCall::NotStarted {
            message: format!(
                "the batch ran but its cohort summary could not be written to {}: {e}",
                request.output_root.display()
            ),
        };
    }
    plot::write(&request.output_root, &cohort);
    report(
        ctx,
        total as f64,
        total,
        format!("{total}/{total} done: {}", cohort.summary),
    );
    BatchCall::Ran(Box::new(cohort))
}

pub(super) fn summarise(
    request: &BatchRunRequest,
    rows: Vec<VolumeRow>,
    attempts: Vec<Attempt>,
    stopped: Option<VolumeStatus>,
    ids: &RunIds,
    root: &Path,
    t0: Instant,
) -> Cohort {
    let (status, counts) = cohort::overall(&rows, stopped);
    let failures: Vec<Failure> = rows
        .iter()
        .filter(|r| !r.status.ok())
        .map(|r| Failure {
            id: r.id.clone(),
            input: r.input.clone(),
            status: r.status,
            reason: r.reason.clone().unwrap_or_default(),
        })
        .collect();
    let ok = rows.iter().filter(|r| r.status.ok()).count();
    let reused = counts.get("reused").copied().unwrap_or(0);
    let summary = format!(
        "{ok} of {} volumes segmented ({reused} reused from earlier packs) in {} upstream attempt(s); {} failed or refused. Not for clinical use.",
        rows.len(),
        attempts.len(),
        failures.len()
    );
    Cohort {
        schema_version: cohort::COHORT_SCHEMA_VERSION.into(),
        run_id: ids.run_id.clone(),
        status,
        summary,
        output_root: request.output_root.display().to_string(),
        modality: request.settings.modality.as_str().into(),
        label_prompts: request.settings.label_prompts.clone(),
        upstream_root: root.display().to_string(),
        created_at: ids.created_at.clone(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        seconds: (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        counts,
        classes: cohort::class_summaries(&rows),
        volumes_csv: cohort::volumes_csv(&rows),
        volumes: rows,
        attempts,
        failures,
        intended_use_disclaimer: crate::evidence::DISCLAIMER.into(),
        slurm: None,
    }
}

impl BatchCall {
    /// The typed answer: the cohort as the output (isError with the cohort when
    /// nothing succeeded, see `Tool::is_error`); a call that ran nothing as a failure.
    pub(crate) fn into_outcome(self) -> Outcome<RunBatch> {
        let (cohort, trust_summaries) = match self {
            BatchCall::Refused { .. } | BatchCall::NotStarted { .. } => {
                return Err(self.into_failure())
            }
            BatchCall::Verified(cohort, trust) => (*cohort, Some(trust)),
            BatchCall::Ran(cohort) => (*cohort, None),
        };
        Ok(Answer::new(BatchOutput {
            cohort,
            trust_summaries,
        }))
    }

    /// A call that ran nothing, as a failure (its refusal document for the CLI).
    pub(crate) fn into_failure(self) -> ToolFailure {
        match self {
            BatchCall::Refused { message, document } => ToolFailure {
                document: Some(document),
                ..ToolFailure::new(FailureKind::Refused, message)
            },
            BatchCall::NotStarted { message } => ToolFailure::new(FailureKind::NotStarted, message),
            ran => match ran.into_outcome() {
                Err(failure) => failure,
                Ok(answer) => ToolFailure::failed(head(&answer.output)),
            },
        }
    }
}

/// The head line of `run_batch`'s answer.
pub(super) fn head(output: &BatchOutput) -> String {
    let cohort = &output.cohort;
    let mut summary = format!(
        "{} Cohort summary: {}/cohort.json and cohort_volumes.csv; one evidence pack per volume under {}.",
        cohort.summary, cohort.output_root, cohort.output_root
    );
    for f in &cohort.failures {
        summary.push_str(&format!(
            "\n- {} ({}): {}",
            f.id,
            f.status.as_str(),
            f.reason
        ));
    }
    match &output.trust_summaries {
        Some(trust) => format!("{} {summary}", trust_lines(trust)),
        None => summary,
    }
}

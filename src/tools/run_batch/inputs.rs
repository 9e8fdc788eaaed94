//! The inputs of a batch before anything runs: collected (a list or a directory),
//! each put through `run_script`'s gates (a refusal not about the input refuses the
//! batch), and resumed where an earlier pack for the same bytes can stand.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::plan::{self, Volume};
use super::request::{BatchInputs, BatchRunRequest};
use super::{BatchCall, Entry, RunBatch};
use crate::evidence::cohort::{self, VolumeRow, VolumeStatus};
use crate::evidence::{Evidence, RunStatus};
use crate::tools::run_script::gates::{self, Refusal};
use crate::tools::run_script::request::RunRequest;
use crate::tools::write_gate::Written;
use crate::upstream;

/// Gates about the input file itself: failing one leaves that input out.
const INPUT_GATES: [&str; 4] = [
    "input_exists",
    "input_is_nifti",
    "input_is_3d",
    "dicom_series_convertible",
];

impl RunBatch {
    /// Every input through `run_script`'s gates. A refusal that is not about the input
    /// itself refuses the batch; a bad input becomes a refused row.
    pub(super) fn gate_inputs(
        &self,
        inputs: &[PathBuf],
        request: &BatchRunRequest,
    ) -> Result<(Vec<Entry>, Vec<VolumeRow>), BatchCall> {
        let root = &request.output_root;
        let problem = gates::output_dir_problem(root, &[".runs", ".batch"]).or_else(|| {
            crate::tools::write_gate::check(&self.config, root, Written::Directory)
                .err()
                .map(|refusal| format!("output_dir_allowed: {refusal}"))
        });
        if let Some(problem) = problem {
            return Err(refused(
                format!(
                    "run_batch refused before running anything: argument 'output_root': {problem}"
                ),
                json!(null),
            ));
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut rows: Vec<VolumeRow> = Vec::new();
        for volume in plan::assign_ids(inputs) {
            let single_request = per_volume_request(request, &volume);
            match gates::evaluate(single_request, &self.config, &self.manifest) {
                Ok(gated) => entries.push(Entry {
                    volume,
                    gated,
                    input_sha: None,
                    row: None,
                    stale: None,
                }),
                Err(refusal) => {
                    if let Some(general) = not_about_the_input(&refusal) {
                        return Err(refused(
                            format!(
                                "run_batch refused before running anything (checked on {}):\n{general}",
                                volume.input.display()
                            ),
                            json!(refusal.gates),
                        ));
                    }
                    rows.push(refused_row(&volume, &refusal));
                }
            }
        }
        if entries.is_empty() {
            let reasons: Vec<String> = rows
                .iter()
                .map(|r| format!("- {}: {}", r.input, r.reason.clone().unwrap_or_default()))
                .collect();
            return Err(refused(
                format!(
                    "run_batch refused: every input failed its gates; nothing ran:\n{}",
                    reasons.join("\n")
                ),
                json!(rows),
            ));
        }
        Ok((entries, rows))
    }
}

/// Resume: keep complete earlier packs for the same input bytes, modality and prompts.
pub(super) fn resume(entries: &mut [Entry], request: &BatchRunRequest, prompts: Option<&[u32]>) {
    for entry in entries.iter_mut() {
        entry.input_sha = upstream::sha256_file(&entry.gated.request.input).ok();
        if let Some(row) = reuse(entry, request.settings.modality.as_str(), prompts) {
            entry.row = Some(row);
        }
    }
}

pub(super) fn refused(message: String, gates: Value) -> BatchCall {
    BatchCall::Refused {
        document: json!({
            "status": RunStatus::Refused,
            "message": message,
            "gates": gates,
            "intended_use_disclaimer": crate::evidence::DISCLAIMER,
        }),
        message,
    }
}

pub(super) fn collect_inputs(request: &BatchRunRequest) -> Result<Vec<PathBuf>, String> {
    match &request.inputs {
        BatchInputs::List(list) => Ok(list.clone()),
        BatchInputs::Dir { dir, suffix } => {
            if !dir.is_dir() {
                return Err(format!(
                    "run_batch refused: argument 'input_dir': {} is not a directory. Fix: pass an existing directory of NIfTI volumes, or pass `inputs`",
                    dir.display()
                ));
            }
            let found = plan::discover(dir, suffix, &request.output_root).map_err(|e| {
                format!(
                    "run_batch refused: argument 'input_dir': cannot list {}: {e}",
                    dir.display()
                )
            })?;
            if found.is_empty() {
                return Err(format!(
                    "run_batch refused: argument 'input_dir': no file ending in '{suffix}' under {}. Fix: check the directory, or pass suffix (e.g. \".nii\")",
                    dir.display()
                ));
            }
            Ok(found)
        }
    }
}

fn per_volume_request(request: &BatchRunRequest, volume: &Volume) -> RunRequest {
    RunRequest {
        input: volume.input.clone(),
        series_uid: None,
        output_dir: request.output_root.join(&volume.id),
        ground_truth: None,
        settings: request.settings.clone(),
        batch_config: true,
        preview: false,
    }
}

/// The failures of a refusal that are not about the input file, as one message.
fn not_about_the_input(refusal: &Refusal) -> Option<String> {
    let general: Vec<String> = refusal
        .gates
        .iter()
        .filter(|g| g.failed() && !INPUT_GATES.contains(&g.name.as_str()))
        .map(|g| format!("- {}: {}", g.name, g.message))
        .collect();
    (!general.is_empty()).then(|| general.join("\n"))
}

fn refused_row(volume: &Volume, refusal: &Refusal) -> VolumeRow {
    let reasons: Vec<String> = refusal
        .gates
        .iter()
        .filter(|g| g.failed())
        .map(|g| format!("{}: {}", g.name, g.message))
        .collect();
    VolumeRow {
        id: volume.id.clone(),
        input: volume.input.display().to_string(),
        input_sha256: None,
        pack_dir: None,
        status: VolumeStatus::Refused,
        reason: Some(reasons.join("; ")),
        attempt: None,
        mask: None,
        class_volumes_ml: Default::default(),
    }
}

/// The earlier pack of `entry`, when it can stand.
fn reuse(entry: &Entry, modality: &str, prompts: Option<&[u32]>) -> Option<VolumeRow> {
    let pack = &entry.gated.request.output_dir;
    let text =
        crate::files::read_to_string_capped(&pack.join("output.json"), crate::files::JSON_CAP)
            .ok()?;
    let previous: Evidence = serde_json::from_str(&text).ok()?;
    if let Some(mask) = previous.output.path.as_deref() {
        if plan::mask_in_pack(pack, mask).is_none() {
            tracing::warn!(
                "{}: earlier pack not reused: its output.json names a mask outside the pack ({mask})",
                entry.volume.id
            );
            return None;
        }
    }
    let sha = entry.input_sha.as_deref()?;
    match plan::reusable(&previous, sha, modality, prompts, |p| {
        upstream::sha256_file(p).ok()
    }) {
        Ok(()) => Some(cohort::row_from_evidence(
            &entry.volume.id,
            &previous,
            VolumeStatus::Reused,
            None,
            None,
        )),
        Err(why) => {
            tracing::info!("{}: earlier pack not reused: {why}", entry.volume.id);
            None
        }
    }
}

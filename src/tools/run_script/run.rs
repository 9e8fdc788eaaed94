//! Executing a gated request: the upstream run, then the evidence built from the
//! files it left (never from what the child printed), then the pack on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::gates::Gated;
use crate::config::Config;
use crate::evidence::*;
use crate::inspect::{self, InspectOptions, InspectReport};
use crate::manifest::sanity::evaluate_all;
use crate::manifest::Manifest;
use crate::tools::{CallContext, Progress};
use crate::upstream::{self, MaskAdoption, RunOutcome, RunResult, UpstreamRequest};

/// Progress phases, as fractions of a run (inference takes most of it).
const PHASES: &[(&str, f64)] = &[
    ("validating", 0.0),
    ("starting upstream", 0.05),
    ("inference", 0.1),
    ("writing", 0.85),
    ("inspecting", 0.9),
];

fn report(ctx: &CallContext, phase: &str, detail: Option<String>) {
    let progress = PHASES
        .iter()
        .find(|(p, _)| *p == phase)
        .map(|(_, f)| *f)
        .unwrap_or(0.0);
    let message = match detail {
        Some(d) => format!("{phase}: {d}"),
        None => phase.to_string(),
    };
    (ctx.progress)(Progress {
        progress: progress * 100.0,
        total: Some(100.0),
        message: Some(message),
        item: None,
    });
}

/// A run that could not start for a reason found after the gates (no Python, no CUDA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure(pub String);

/// Run the upstream for `gated` and write the evidence pack. Returns the evidence
/// whatever the outcome (succeeded, failed, timed out, cancelled).
pub async fn execute(
    gated: Gated,
    config: &Config,
    manifest: &Manifest,
    ctx: &CallContext,
) -> Result<Evidence, StartFailure> {
    let request = &gated.request;
    let run_id = new_run_id();
    let created_at = chrono::Utc::now().to_rfc3339();
    report(ctx, "starting upstream", None);

    let python = find_python(config)?;
    let upstream_request = UpstreamRequest {
        python: python.path.clone(),
        bundle_root: gated.root.clone(),
        input: request.input.clone(),
        output_dir: request.output_dir.clone(),
        modality: request.settings.modality.as_str().to_string(),
        label_prompts: gated.prompts.clone().filter(|p| !p.is_empty()),
        overrides: overrides_of(request),
        device: request.settings.device,
        tensorrt: request.settings.tensorrt,
    };
    if let Ok(argv) = upstream::build_argv(&upstream_request) {
        declared_entry_point(&argv, manifest)?;
    }
    let mut options =
        upstream::RunOptions::new(request.output_dir.join("logs"), request.settings.timeout);
    options.cancel = ctx.cancel.clone();
    let hook_ctx = ctx.clone();
    let started = std::time::Instant::now();
    options.progress = Some(Arc::new(move |event| {
        let detail = match event {
            upstream::ProgressEvent::Line { line, .. } => line.chars().take(160).collect(),
            upstream::ProgressEvent::Tick { .. } => {
                format!("{:.0} s elapsed", started.elapsed().as_secs_f64())
            }
        };
        report(&hook_ctx, "inference", Some(detail));
    }));
    // The probe runs under exactly the environment the run will get, so the device it
    // reports is the device the run uses.
    let probe = upstream::probe_for_request(&upstream_request, &options, Duration::from_secs(120))
        .await
        .map_err(|e| StartFailure(e.to_string()))?;
    // Hash the inputs while the upstream runs: the real model file is ~900 MB, and a
    // client that disconnects right after the run must still get a complete pack.
    let (model_path, input_path) = (gated.inventory.model_pt_path.clone(), request.input.clone());
    let hashing = tokio::task::spawn_blocking(move || {
        (
            sha256_cached(&model_path),
            upstream::sha256_file(&input_path).ok(),
        )
    });
    let result = upstream::run(&upstream_request, &probe, &options)
        .await
        .map_err(|e| StartFailure(e.to_string()))?;

    report(ctx, "writing", None);
    report(ctx, "inspecting", None);
    let (model, input) = hashing.await.unwrap_or((None, None));
    write_evidence(
        &gated,
        &result,
        &probe,
        &python,
        &RunIds { run_id, created_at },
        InputHashes { model, input },
        manifest,
    )
}

/// Digests computed while the upstream ran (see [`model_sha256`]).
#[derive(Debug, Clone, Default)]
pub struct InputHashes {
    pub model: Option<String>,
    pub input: Option<String>,
}

/// The weights' sha256, remembered per (path, size, mtime) for the life of the process.
pub fn model_sha256(path: &Path) -> Option<String> {
    sha256_cached(path)
}

/// A fresh run id: UTC time and a random suffix.
pub fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The interpreter a run uses ($CTMR_SKILL_PYTHON, the project venv, PATH).
pub fn find_python(config: &Config) -> Result<upstream::PythonChoice, StartFailure> {
    let exe = std::env::current_exe().ok();
    upstream::find_python(
        config.python.as_deref(),
        config.python_env.as_deref().map(std::path::Path::as_os_str),
        &config.cwd,
        exe.as_deref(),
        std::env::var_os("PATH").as_deref(),
    )
    .map_err(|e| StartFailure(e.to_string()))
}

/// Identity of one run's evidence.
#[derive(Debug, Clone)]
pub struct RunIds {
    pub run_id: String,
    /// RFC 3339, when the run was created.
    pub created_at: String,
}

/// Build the evidence of a finished upstream run from the files it left (the adopted
/// mask in `result.mask`) and write the pack into `gated.request.output_dir`. Shared by
/// `run_script` and `run_batch` (one call per volume), so both write the same document.
pub fn write_evidence(
    gated: &Gated,
    result: &RunResult,
    probe: &upstream::EnvProbe,
    python: &upstream::PythonChoice,
    ids: &RunIds,
    hashes: InputHashes,
    manifest: &Manifest,
) -> Result<Evidence, StartFailure> {
    let request = &gated.request;
    let run_id = &ids.run_id;
    let mask = result
        .mask
        .as_ref()
        .and_then(MaskAdoption::path)
        .map(Path::to_path_buf);
    let inspection = mask
        .as_ref()
        .map(|path| inspect::inspect(path, &InspectOptions::default()).map_err(|e| e.to_string()));
    let InputHashes {
        model: model_sha,
        input: input_sha,
    } = hashes;
    let mask_sha = mask.as_deref().and_then(|m| upstream::sha256_file(m).ok());

    let mut evidence = build(
        gated,
        result,
        inspection.as_ref(),
        Hashes {
            input: input_sha,
            mask: mask_sha,
            model: model_sha,
        },
        probe,
        python,
        run_id,
        manifest,
    );
    let doc = serde_json::to_value(&evidence).expect("evidence serialises");
    evidence.sanity_checks = evaluate_all(&manifest.sanity_checks(), &doc);

    if let (Some(table), Some(Ok(report))) = (&gated.labels, &inspection) {
        let ids: BTreeSet<u32> = report
            .labels
            .iter()
            .filter_map(|l| u32::try_from(l.id).ok())
            .collect();
        let mask_ref = mask.as_deref().zip(evidence.output.sha256.as_deref());
        if let Err(e) = crate::labels::write_sidecars(table, &ids, mask_ref, &request.output_dir) {
            tracing::warn!("label sidecars not written: {e}");
        }
    }
    let run_manifest = RunManifest {
        schema_version: "ctmr-skill.manifest/1".into(),
        run_id: run_id.clone(),
        skill_id: manifest.id.clone(),
        skill_version: manifest.version.clone(),
        created_at: ids.created_at.clone(),
        finished_at: result.finished_at.clone(),
        command: result.command.clone(),
        environment: BTreeMap::from([
            (
                "python".to_string(),
                Some(python.path.display().to_string()),
            ),
            (
                "python_version".to_string(),
                Some(probe.python_version.clone()),
            ),
            (
                "monai_version".to_string(),
                Some(probe.monai_version.clone()),
            ),
            (
                "torch_version".to_string(),
                Some(probe.torch_version.clone()),
            ),
            (
                "cuda_available".to_string(),
                Some(probe.cuda_available.to_string()),
            ),
            ("platform".to_string(), Some(probe.platform.clone())),
            (
                "ctmr_skill_version".to_string(),
                Some(env!("CARGO_PKG_VERSION").to_string()),
            ),
        ]),
        hashes: BTreeMap::from([
            ("input_sha256".to_string(), evidence.input.sha256.clone()),
            ("mask_sha256".to_string(), evidence.output.sha256.clone()),
            ("model_sha256".to_string(), evidence.weights.sha256.clone()),
            (
                "ground_truth_sha256".to_string(),
                request
                    .ground_truth
                    .as_deref()
                    .and_then(|p| upstream::sha256_file(p).ok()),
            ),
        ]),
        not_for_clinical_use: crate::NOT_FOR_CLINICAL_USE.into(),
    };
    if let Err(e) = write_pack(&request.output_dir, &evidence, &run_manifest) {
        return Err(StartFailure(format!(
            "the run finished ({:?}) but its evidence pack could not be written to {}: {e}",
            evidence.status,
            request.output_dir.display()
        )));
    }
    Ok(evidence)
}

/// sha256 of a file, remembered per (path, size, mtime) for the life of the process:
/// the weights are the same file run after run, and hashing them costs seconds.
fn sha256_cached(path: &Path) -> Option<String> {
    type Key = (std::path::PathBuf, u64, Option<std::time::SystemTime>);
    static CACHE: std::sync::OnceLock<std::sync::Mutex<BTreeMap<Key, String>>> =
        std::sync::OnceLock::new();
    let meta = std::fs::metadata(path).ok()?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().ok()?.get(&key) {
        return Some(hit.clone());
    }
    let digest = upstream::sha256_file(path).ok()?;
    cache.lock().ok()?.insert(key, digest.clone());
    Some(digest)
}

/// Refuse a command that would leave the manifest's declared entry point (a defect of
/// ctmr-skill or of an edited manifest, never of the caller's request).
pub fn declared_entry_point(argv: &[String], manifest: &Manifest) -> Result<(), StartFailure> {
    super::knobs::check_declared_entry_point(argv, &manifest.runtime).map_err(|why| {
        StartFailure(format!(
            "refused before running anything: the command would not be the manifest's declared \
             entry point (`{} --config_file {}`): {why}. This is a ctmr-skill defect; the command \
             was {argv:?}",
            manifest.runtime.official_entrypoint, manifest.runtime.config_file
        ))
    })
}

/// The documented memory/speed overrides passed to the bundle as `--key value`
/// (`tensorrt` is not one: it adds a config file, see [`upstream::config_files`]).
pub fn overrides_of(request: &super::request::RunRequest) -> Vec<(String, String)> {
    let mut overrides = Vec::new();
    if let Some(patch) = &request.settings.patch_size {
        overrides.push((
            "patch_size".to_string(),
            format!("{patch:?}").replace(' ', ""),
        ));
    }
    if let Some(n) = request.settings.sw_batch_size {
        overrides.push(("sw_batch_size".to_string(), n.to_string()));
    }
    if request.settings.cpu_postprocessing {
        let (key, value) = upstream::CPU_POSTPROCESSING_OVERRIDE;
        overrides.push((key.to_string(), value.to_string()));
    }
    overrides
}

struct Hashes {
    input: Option<String>,
    mask: Option<String>,
    model: Option<String>,
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[allow(clippy::too_many_arguments)]
fn build(
    gated: &Gated,
    result: &RunResult,
    inspection: Option<&Result<InspectReport, String>>,
    hashes: Hashes,
    probe: &upstream::EnvProbe,
    python: &upstream::PythonChoice,
    run_id: &str,
    manifest: &Manifest,
) -> Evidence {
    let request = &gated.request;
    let header = &gated.input_header;
    let input_spacing: Vec<f64> = header.spacing.iter().copied().map(round6).collect();
    let report = inspection.and_then(|r| r.as_ref().ok());
    let inspect_error = inspection.and_then(|r| r.as_ref().err());

    let provenance = upstream::weights_provenance(&gated.inventory, hashes.model.as_deref());
    let (provenance, note) = match provenance {
        upstream::WeightsProvenance::DemoBundle => (
            WeightsProvenance::DemoBundle,
            "The ctmr-skill DEMO bundle: synthetic intensity-based labels, NOT NV-Segment-CTMR and not a segmentation.",
        ),
        upstream::WeightsProvenance::StandIn => (
            WeightsProvenance::StandInRandomInit,
            "Randomly initialised stand-in weights: the output exercises the real upstream code but is NOT a segmentation.",
        ),
        upstream::WeightsProvenance::Upstream => (
            WeightsProvenance::Upstream,
            "Weights as installed in the upstream bundle (presumed the published NV-Segment-CTMR checkpoint).",
        ),
    };

    let expected: BTreeSet<u32> = match (&gated.labels, &gated.prompts) {
        (Some(table), Some(prompts)) if !prompts.is_empty() => table.expand_prompts(prompts),
        (Some(table), _) => table
            .everything_set(request.settings.modality)
            .cloned()
            .unwrap_or_default(),
        _ => BTreeSet::new(),
    };
    let name_of = |id: i64| -> String {
        gated
            .labels
            .as_ref()
            .and_then(|t| u32::try_from(id).ok().and_then(|i| t.name(i)))
            .map(str::to_string)
            .unwrap_or_else(|| format!("label_id_{id}"))
    };
    let in_table = |id: i64| {
        gated
            .labels
            .as_ref()
            .is_some_and(|t| u32::try_from(id).ok().and_then(|i| t.get(i)).is_some())
    };
    let is_expected = |id: i64| -> bool {
        match &gated.labels {
            Some(_) if !expected.is_empty() => {
                u32::try_from(id).is_ok_and(|i| expected.contains(&i))
            }
            Some(_) => in_table(id),
            None => id > 0,
        }
    };

    let mut output = OutputInfo {
        path: None,
        shape: Vec::new(),
        label_prompts_requested: request.settings.label_prompts.clone(),
        label_ids_present: Vec::new(),
        unexpected_label_ids: Vec::new(),
        label_set_valid: false,
        label_map_loaded: gated.labels.is_some(),
        label_map_source: gated
            .labels
            .as_ref()
            .and_then(|t| t.sources().first())
            .map(|s| s.path.display().to_string()),
        class_counts: BTreeMap::new(),
        voxel_volume_ml: None,
        class_volumes_ml: BTreeMap::new(),
        any_label_present: false,
        geometry: Geometry {
            input_shape: header.shape.to_vec(),
            output_shape: Vec::new(),
            shape_match: false,
            input_spacing: input_spacing.clone(),
            output_spacing: Vec::new(),
            spacing_match: false,
            affine_max_abs_diff: None,
            affine_match: false,
        },
        sha256: hashes.mask.clone(),
        dtype: None,
        expected_label_ids: expected.iter().copied().collect(),
        classes: Vec::new(),
        non_integer_voxels: 0,
        nan_voxels: 0,
        nan_sentinel_255_voxels: 0,
        stale_output: result.stale_output.as_ref().map(|s| StaleOutput {
            original: s.original.display().to_string(),
            moved_to: s.moved_to.display().to_string(),
        }),
    };
    if let Some(report) = report {
        let mask_header = crate::nifti::read_header(Path::new(&report.mask.path)).ok();
        output.path = Some(report.mask.path.clone());
        output.shape = report.mask.shape.to_vec();
        output.dtype = Some(report.mask.dtype.clone());
        output.voxel_volume_ml = Some((report.voxel_volume_ml * 1e8).round() / 1e8);
        output.non_integer_voxels = report.non_integer_voxels;
        output.nan_voxels = report.nan_voxels;
        output.nan_sentinel_255_voxels = report.value_255_voxels;
        for label in &report.labels {
            let name = name_of(label.id);
            output.label_ids_present.push(label.id);
            if !is_expected(label.id) {
                output.unexpected_label_ids.push(label.id);
            }
            *output.class_counts.entry(name.clone()).or_default() += label.voxels;
            *output.class_volumes_ml.entry(name.clone()).or_default() +=
                (label.volume_ml * 1e4).round() / 1e4;
            output.classes.push(ClassRow {
                id: label.id,
                name,
                voxels: label.voxels,
                volume_ml: label.volume_ml,
                bbox_min: label.bbox_min.to_vec(),
                bbox_max: label.bbox_max.to_vec(),
                touches_border: label.touches_border,
                expected: is_expected(label.id),
            });
        }
        output.label_set_valid = output.unexpected_label_ids.is_empty() && report.integer_valued;
        output.any_label_present = !output.label_ids_present.is_empty();
        if let Some(mask_header) = &mask_header {
            let geometry = inspect::compare_geometry(header, mask_header, 1e-4);
            let output_spacing: Vec<f64> =
                mask_header.spacing.iter().copied().map(round6).collect();
            output.geometry = Geometry {
                input_shape: header.shape.to_vec(),
                output_shape: mask_header.shape.to_vec(),
                shape_match: geometry.shape_match,
                spacing_match: input_spacing == output_spacing,
                input_spacing: input_spacing.clone(),
                output_spacing,
                affine_max_abs_diff: Some((geometry.affine_max_abs_diff * 1e8).round() / 1e8),
                affine_match: geometry.affine_match,
            };
        }
    }

    let status = match (&result.outcome, report) {
        (RunOutcome::Exited { code: 0, .. }, Some(_)) => RunStatus::Succeeded,
        (RunOutcome::TimedOut, _) => RunStatus::TimedOut,
        (RunOutcome::Cancelled, _) => RunStatus::Cancelled,
        _ => RunStatus::UpstreamFailed,
    };
    let summary = summarise(status, result, &output, inspect_error, provenance);
    let model_path = gated.inventory.model_pt_path.display().to_string();
    Evidence {
        schema_version: EVIDENCE_SCHEMA_VERSION.into(),
        status,
        summary,
        run_id: run_id.into(),
        pack_dir: request.output_dir.display().to_string(),
        skill: SKILL_NAME.into(),
        skill_id: manifest.id.clone(),
        skill_version: manifest.version.clone(),
        model: if provenance == WeightsProvenance::DemoBundle {
            "ctmr-skill demo bundle (synthetic labels; NOT NV-Segment-CTMR)".into()
        } else {
            MODEL_NAME.into()
        },
        model_repo: MODEL_REPO.into(),
        license: LICENSE.into(),
        weights: Weights {
            provenance,
            path: Some(model_path.clone()),
            sha256: hashes.model,
            note: note.into(),
        },
        input: InputInfo {
            path: request.input.display().to_string(),
            shape: header.shape.to_vec(),
            ndim: 3,
            spacing: input_spacing,
            modality: request.settings.modality.as_str().into(),
            ground_truth_path: request
                .ground_truth
                .as_ref()
                .map(|p| p.display().to_string()),
            sha256: hashes.input,
            affine: Some(header.affine.iter().map(|row| row.to_vec()).collect()),
            orientation: Some(header.orientation().iter().map(|c| c.to_string()).collect()),
        },
        output,
        invocation: Invocation {
            official_entrypoint: OFFICIAL_ENTRYPOINT.into(),
            upstream_root: Some(gated.root.display().to_string()),
            upstream_commit: upstream::git_commit(&gated.root),
            config_file: Some(gated.inventory.config_file.display().to_string()),
            config_files: upstream::config_files_of(&result.command).unwrap_or_default(),
            output_dir: request.output_dir.display().to_string(),
            modality: request.settings.modality.as_str().into(),
            label_prompts: gated.prompts.clone().filter(|p| !p.is_empty()),
            command: result.command.clone(),
            exit_code: result.exit_code,
            batch_process_exit_code: result.batch_process_exit_code,
            model_inventory: ModelInventory {
                model_pt_present: gated.inventory.model_pt_present,
                model_pt_path: model_path,
                label_map_present: gated.inventory.label_map_path.is_some(),
                label_map_path: gated
                    .inventory
                    .label_map_path
                    .as_ref()
                    .map(|p| p.display().to_string()),
            },
            checked_roots: checked_roots(&gated.resolution),
            python: Some(python.path.display().to_string()),
            python_source: Some(format!("{:?}", python.source)),
            overrides: overrides_of(request).into_iter().collect(),
        },
        runtime: RuntimeInfo {
            subprocess_seconds: (result.seconds * 1000.0).round() / 1000.0,
            device: result
                .device
                .clone()
                .unwrap_or_else(|| probe.device.clone()),
            device_requested: format!("{:?}", request.settings.device).to_lowercase(),
            python_version: Some(probe.python_version.clone()),
            monai_version: Some(probe.monai_version.clone()),
            torch_version: Some(probe.torch_version.clone()),
            cuda_available: Some(probe.cuda_available),
        },
        logs: Logs {
            stdout_tail: result.stdout_tail.clone(),
            stderr_tail: result.stderr_tail.clone(),
            stdout_log: Some(result.stdout_log.display().to_string()),
            stderr_log: Some(result.stderr_log.display().to_string()),
        },
        gates: gated.gates.clone(),
        sanity_checks: Vec::new(),
        intended_use_disclaimer: DISCLAIMER.into(),
    }
}

/// The bundle roots considered, for the evidence.
pub fn checked_roots(resolution: &upstream::RootResolution) -> Vec<CheckedRoot> {
    resolution
        .checked
        .iter()
        .map(|c| CheckedRoot {
            path: c.path.display().to_string(),
            source: c.source.describe().to_string(),
            valid: c.rejected.is_none(),
            reason: c.rejected.map(|r| format!("{r:?}")),
        })
        .collect()
}

fn summarise(
    status: RunStatus,
    result: &RunResult,
    output: &OutputInfo,
    inspect_error: Option<&String>,
    provenance: WeightsProvenance,
) -> String {
    let caveat = match provenance {
        WeightsProvenance::DemoBundle => " (demo bundle: synthetic labels, not NV-Segment-CTMR)",
        WeightsProvenance::StandInRandomInit => " (stand-in random weights: not a segmentation)",
        _ => "",
    };
    match status {
        RunStatus::Succeeded => format!(
            "Segmented {} classes in {:.1} s{caveat}; geometry {}; label set {}. Not for clinical use.",
            output.classes.len(),
            result.seconds,
            if output.geometry.shape_match && output.geometry.affine_match { "matches the input" } else { "DIFFERS from the input" },
            if output.label_set_valid { "valid" } else { "has unexpected ids" },
        ),
        RunStatus::TimedOut => format!("The upstream run timed out after {:.0} s; its process group was killed.", result.seconds),
        RunStatus::Cancelled => "The run was cancelled; the upstream process group was killed.".into(),
        _ if crate::tools::run_batch::oom::is_cuda_oom(&result.stderr_tail) => format!(
            "The upstream run failed (exit code {}): {}",
            result.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
            crate::tools::run_batch::oom::OOM_FIX
        ),
        _ => match inspect_error {
            Some(e) => format!("The upstream exited but its mask could not be read: {e}"),
            None => format!(
                "The upstream run failed (exit code {}); see logs.stderr_tail. {}",
                result.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
                match &result.mask {
                    Some(MaskAdoption::Adopted { .. }) | None => String::new(),
                    Some(other) => format!("Mask: {other:?}."),
                }
            ),
        },
    }
}

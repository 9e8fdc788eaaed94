//! Building the evidence of one finished upstream run from the files it left (never
//! from what the child printed), and writing its pack.
//!
//! Why here and not in a tool: `run_script` writes one pack per call and `run_batch`
//! one per volume; both hand this module the same [`RunFacts`] (what the gates
//! learned) and [`UpstreamRun`] (what the child did), so the two can never write
//! different documents.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::document::*;
use super::pack::{write_pack, RunManifest};
use super::sanity::{evaluate_all, SanityCheck};
use crate::inspect::{self, InspectOptions, InspectReport};
use crate::labels::{LabelTable, Modality};
use crate::nifti::Header;
use crate::upstream::{
    self, BundleInventory, DeviceRequest, EnvProbe, MaskAdoption, PythonChoice, PythonSource,
    RootRejection, RootResolution, RunOutcome, RunResult,
};

/// What the gates established about a run, before it ran.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    /// Absolute.
    pub input: &'a Path,
    /// Absolute: the evidence pack.
    pub output_dir: &'a Path,
    pub ground_truth: Option<&'a Path>,
    pub modality: Modality,
    /// The prompts as the caller gave them (before `structures` were resolved).
    pub label_prompts_requested: Option<&'a [u32]>,
    pub device_requested: DeviceRequest,
    /// The documented `--key value` overrides passed to the bundle.
    pub overrides: &'a [(String, String)],
    pub input_header: &'a Header,
    pub resolution: &'a RootResolution,
    pub root: &'a Path,
    pub inventory: &'a BundleInventory,
    pub labels: Option<&'a LabelTable>,
    /// Prompts after resolving `structures`.
    pub prompts: Option<&'a [u32]>,
    pub gates: &'a [GateResult],
    /// For a DICOM input: the series `input` was converted from.
    pub dicom: Option<&'a crate::dicom::DicomSeriesInfo>,
}

/// What the upstream child did, and with which interpreter.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamRun<'a> {
    pub result: &'a RunResult,
    pub probe: &'a EnvProbe,
    pub python: &'a PythonChoice,
    /// The warm worker that served it (`None`: one-shot).
    pub worker: Option<WorkerInfo>,
    /// Why a warm worker did not serve it.
    pub fallback_reason: Option<String>,
    /// The interpreter's `pip freeze` ([`super::replay::environment_lock`]).
    pub environment_lock: Option<String>,
    /// Seconds per phase so far (the builder adds its own).
    pub phases: BTreeMap<String, f64>,
    /// The cost, without the builder's own time (it adds that to the wall time).
    pub cost: Option<RunCost>,
}

/// The skill as the manifest declares it: identity and the checks every document gets.
#[derive(Debug, Clone, Copy)]
pub struct Skill<'a> {
    pub id: &'a str,
    pub version: &'a str,
    pub sanity_checks: &'a [SanityCheck],
}

/// Identity of one run's evidence.
#[derive(Debug, Clone)]
pub(crate) struct RunIds {
    pub run_id: String,
    /// RFC 3339, when the run was created.
    pub created_at: String,
}

/// Digests computed while the upstream ran (the weights are ~900 MB).
#[derive(Debug, Clone, Default)]
pub(crate) struct InputHashes {
    pub model: Option<String>,
    pub input: Option<String>,
}

struct Hashes {
    input: Option<String>,
    mask: Option<String>,
    model: Option<String>,
}

/// Build the evidence from the files the run left (the adopted mask in
/// `run.result.mask`), evaluate the sanity checks, write the label sidecars and the
/// pack into `facts.output_dir`. An `Err` says why the pack could not be written.
pub(crate) fn write_evidence(
    facts: &RunFacts<'_>,
    run: &UpstreamRun<'_>,
    ids: &RunIds,
    hashes: InputHashes,
    skill: &Skill<'_>,
) -> Result<Evidence, String> {
    let t0 = std::time::Instant::now();
    let mask = run
        .result
        .mask
        .as_ref()
        .and_then(MaskAdoption::path)
        .map(Path::to_path_buf);
    let inspection = mask
        .as_ref()
        .map(|path| inspect::inspect(path, &InspectOptions::default()).map_err(|e| e.to_string()));
    let hashes = Hashes {
        input: hashes.input,
        mask: mask.as_deref().and_then(|m| upstream::sha256_file(m).ok()),
        model: hashes.model,
    };
    let mut evidence = build(facts, run, inspection.as_ref(), hashes, &ids.run_id, skill);
    let own = round3(t0.elapsed().as_secs_f64());
    evidence
        .runtime
        .phases
        .insert("inspection_and_writing".into(), own);
    if let Some(cost) = &mut evidence.runtime.cost {
        cost.wall_seconds = round3(cost.wall_seconds + own);
    }
    let doc = serde_json::to_value(&evidence).expect("evidence serialises");
    evidence.sanity_checks = evaluate_all(skill.sanity_checks, &doc);
    if let (Some(table), Some(Ok(report))) = (facts.labels, &inspection) {
        write_sidecars(table, report, mask.as_deref(), &evidence, facts.output_dir);
    }
    let mut manifest = run_manifest(facts, run, ids, &evidence, skill);
    manifest
        .hashes
        .extend(write_replay(facts, run, &ids.run_id));
    if let (Some(path), Some(Ok(report))) = (&mask, &inspection) {
        manifest.hashes.insert(
            "preview_png_sha256".to_string(),
            write_preview(facts, report, path),
        );
    }
    write_pack(facts.output_dir, &evidence, &manifest).map_err(|e| {
        format!(
            "the run finished ({}) but its evidence pack could not be written to {}: {e}",
            evidence.status.as_str(),
            facts.output_dir.display()
        )
    })?;
    Ok(evidence)
}

/// `replay.sh` and `environment.lock` into the pack; their hashes for the manifest.
fn write_replay(
    facts: &RunFacts<'_>,
    run: &UpstreamRun<'_>,
    run_id: &str,
) -> Vec<(String, Option<String>)> {
    use sha2::{Digest, Sha256};
    let digest = |bytes: &[u8]| {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut hashes = Vec::new();
    let script =
        super::replay::replay_script(run_id, &run.result.command, facts.root, &run.result.env_set);
    let path = facts.output_dir.join("replay.sh");
    let written = crate::atomic::write(&path, script.as_bytes()).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
    });
    hashes.push((
        "replay_sh_sha256".to_string(),
        written.ok().map(|()| digest(script.as_bytes())),
    ));
    let lock = run.environment_lock.as_deref().and_then(|text| {
        crate::atomic::write(&facts.output_dir.join("environment.lock"), text.as_bytes())
            .ok()
            .map(|()| digest(text.as_bytes()))
    });
    hashes.push(("environment_lock_sha256".to_string(), lock));
    hashes
}

/// `preview.png` in the pack: the mask over the input (the mask alone when the input
/// cannot be drawn under it), the prompted structures present or else the largest.
/// Returns its sha256; a picture that cannot be drawn is a warning, not a failed run.
fn write_preview(facts: &RunFacts<'_>, report: &InspectReport, mask: &Path) -> Option<String> {
    let present: BTreeSet<u32> = report
        .labels
        .iter()
        .filter_map(|l| u32::try_from(l.id).ok())
        .collect();
    let options = crate::render::RenderOptions {
        structures: facts
            .prompts
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|id| present.contains(id))
            .collect(),
        modality: Some(facts.modality),
        ..crate::render::RenderOptions::default()
    };
    let draw =
        |image: Option<&Path>| crate::render::render(mask, image, report, facts.labels, &options);
    let picture = draw(Some(facts.input))
        .or_else(|e| {
            tracing::info!("preview drawn without the input image: {e}");
            draw(None)
        })
        .map_err(|e| tracing::warn!("preview.png not written: {e}"))
        .ok()?;
    let path = facts.output_dir.join(PREVIEW_FILE);
    match crate::atomic::write(&path, &picture.png) {
        Ok(()) => {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(&picture.png);
            Some(digest.iter().map(|b| format!("{b:02x}")).collect())
        }
        Err(e) => {
            tracing::warn!("preview.png not written to {}: {e}", path.display());
            None
        }
    }
}

/// The overlay picture of a run's mask in its evidence pack.
pub(crate) const PREVIEW_FILE: &str = "preview.png";

fn write_sidecars(
    table: &LabelTable,
    report: &InspectReport,
    mask: Option<&Path>,
    evidence: &Evidence,
    dir: &Path,
) {
    let ids: BTreeSet<u32> = report
        .labels
        .iter()
        .filter_map(|l| u32::try_from(l.id).ok())
        .collect();
    let mask_ref = mask.zip(evidence.output.sha256.as_deref());
    if let Err(e) = crate::labels::write_sidecars(table, &ids, mask_ref, dir) {
        tracing::warn!("label sidecars not written: {e}");
    }
}

fn run_manifest(
    facts: &RunFacts<'_>,
    run: &UpstreamRun<'_>,
    ids: &RunIds,
    evidence: &Evidence,
    skill: &Skill<'_>,
) -> RunManifest {
    let probe = run.probe;
    let some = |s: &str| Some(s.to_string());
    RunManifest {
        schema_version: "ctmr-skill.manifest/1".into(),
        run_id: ids.run_id.clone(),
        skill_id: skill.id.into(),
        skill_version: skill.version.into(),
        created_at: ids.created_at.clone(),
        finished_at: run.result.finished_at.clone(),
        command: run.result.command.clone(),
        environment: BTreeMap::from([
            (
                "python".into(),
                some(&run.python.path.display().to_string()),
            ),
            ("python_version".into(), some(&probe.python_version)),
            ("monai_version".into(), some(&probe.monai_version)),
            ("torch_version".into(), some(&probe.torch_version)),
            (
                "cuda_available".into(),
                some(&probe.cuda_available.to_string()),
            ),
            ("platform".into(), some(&probe.platform)),
            ("ctmr_skill_version".into(), some(env!("CARGO_PKG_VERSION"))),
        ]),
        hashes: BTreeMap::from_iter([
            ("input_sha256".into(), evidence.input.sha256.clone()),
            ("mask_sha256".into(), evidence.output.sha256.clone()),
            ("model_sha256".into(), evidence.weights.sha256.clone()),
            (
                "ground_truth_sha256".into(),
                facts
                    .ground_truth
                    .and_then(|p| upstream::sha256_file(p).ok()),
            ),
        ])
        .into_iter()
        .chain(dicom_hashes(facts, evidence))
        .collect(),
        not_for_clinical_use: crate::NOT_FOR_CLINICAL_USE.into(),
    }
}

/// A DICOM input's pack also holds the converted volume (`input_converted_sha256`,
/// the same file as `input_sha256`) and names the DICOM files by hash.
fn dicom_hashes(facts: &RunFacts<'_>, evidence: &Evidence) -> Vec<(String, Option<String>)> {
    match facts.dicom {
        None => Vec::new(),
        Some(dicom) => vec![
            (
                "input_converted_sha256".into(),
                evidence.input.sha256.clone(),
            ),
            (
                "dicom_files_sha256".into(),
                Some(dicom.files_sha256.clone()),
            ),
        ],
    }
}

/// The weights' sha256, remembered per (path, size, mtime) for the life of the process:
/// the weights are the same file run after run, and hashing them costs seconds.
pub(crate) fn model_sha256(path: &Path) -> Option<String> {
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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn build(
    facts: &RunFacts<'_>,
    run: &UpstreamRun<'_>,
    inspection: Option<&Result<InspectReport, String>>,
    hashes: Hashes,
    run_id: &str,
    skill: &Skill<'_>,
) -> Evidence {
    let report = inspection.and_then(|r| r.as_ref().ok());
    let inspect_error = inspection.and_then(|r| r.as_ref().err());
    let (provenance, note) = weights_of(facts.inventory, hashes.model.as_deref());
    let mut output = empty_output(facts, run.result, &hashes);
    if let Some(report) = report {
        fill_output(&mut output, facts, report);
    }
    let status = match (&run.result.outcome, report) {
        (RunOutcome::Exited { code: 0, .. }, Some(_)) => RunStatus::Succeeded,
        (RunOutcome::TimedOut, _) => RunStatus::TimedOut,
        (RunOutcome::Cancelled, _) => RunStatus::Cancelled,
        _ => RunStatus::UpstreamFailed,
    };
    let summary = summarise(status, run.result, &output, inspect_error, provenance);
    let model_path = facts.inventory.model_pt_path.display().to_string();
    Evidence {
        schema_version: EVIDENCE_SCHEMA_VERSION.into(),
        status,
        summary,
        run_id: run_id.into(),
        pack_dir: facts.output_dir.display().to_string(),
        skill: SKILL_NAME.into(),
        skill_id: skill.id.into(),
        skill_version: skill.version.into(),
        model: if provenance == WeightsProvenance::DemoBundle {
            "ctmr-skill demo bundle (synthetic labels; NOT NV-Segment-CTMR)".into()
        } else {
            MODEL_NAME.into()
        },
        model_repo: MODEL_REPO.into(),
        license: LICENSE.into(),
        weights: Weights {
            provenance,
            path: Some(model_path),
            sha256: hashes.model,
            note: note.into(),
        },
        input: input_info(facts, hashes.input),
        output,
        invocation: invocation(facts, run),
        runtime: runtime_info(facts, run),
        logs: Logs {
            stdout_tail: run.result.stdout_tail.clone(),
            stderr_tail: run.result.stderr_tail.clone(),
            stdout_log: Some(run.result.stdout_log.display().to_string()),
            stderr_log: Some(run.result.stderr_log.display().to_string()),
        },
        gates: facts.gates.to_vec(),
        sanity_checks: Vec::new(),
        intended_use_disclaimer: DISCLAIMER.into(),
    }
}

fn weights_of(
    inventory: &BundleInventory,
    model_sha256: Option<&str>,
) -> (WeightsProvenance, &'static str) {
    match upstream::weights_provenance(inventory, model_sha256) {
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
    }
}

/// The ids this run may produce: the expanded prompts, or the modality's everything-set.
fn expected_ids(facts: &RunFacts<'_>) -> BTreeSet<u32> {
    match (facts.labels, facts.prompts) {
        (Some(table), Some(prompts)) if !prompts.is_empty() => table.expand_prompts(prompts),
        (Some(table), _) => table
            .everything_set(facts.modality)
            .cloned()
            .unwrap_or_default(),
        _ => BTreeSet::new(),
    }
}

fn input_info(facts: &RunFacts<'_>, sha256: Option<String>) -> InputInfo {
    let header = facts.input_header;
    InputInfo {
        path: facts.input.display().to_string(),
        shape: header.shape.to_vec(),
        ndim: 3,
        spacing: header.spacing.iter().copied().map(round6).collect(),
        modality: facts.modality.as_str().into(),
        ground_truth_path: facts.ground_truth.map(|p| p.display().to_string()),
        sha256,
        affine: Some(header.affine.iter().map(|row| row.to_vec()).collect()),
        orientation: Some(header.orientation().iter().map(|c| c.to_string()).collect()),
        source: match facts.dicom {
            Some(_) => InputSource::DicomSeries,
            None => InputSource::Nifti,
        },
        dicom: facts.dicom.cloned(),
    }
}

/// The output block before the mask is read: shapes and ids empty, validity false.
fn empty_output(facts: &RunFacts<'_>, result: &RunResult, hashes: &Hashes) -> OutputInfo {
    let header = facts.input_header;
    OutputInfo {
        path: None,
        shape: Vec::new(),
        label_prompts_requested: facts.label_prompts_requested.map(<[u32]>::to_vec),
        label_ids_present: Vec::new(),
        unexpected_label_ids: Vec::new(),
        label_set_valid: false,
        label_map_loaded: facts.labels.is_some(),
        label_map_source: facts
            .labels
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
            input_spacing: header.spacing.iter().copied().map(round6).collect(),
            output_spacing: Vec::new(),
            spacing_match: false,
            affine_max_abs_diff: None,
            affine_match: false,
        },
        sha256: hashes.mask.clone(),
        dtype: None,
        expected_label_ids: expected_ids(facts).into_iter().collect(),
        classes: Vec::new(),
        non_integer_voxels: 0,
        nan_voxels: 0,
        nan_sentinel_255_voxels: 0,
        stale_output: result.stale_output.as_ref().map(|s| StaleOutput {
            original: s.original.display().to_string(),
            moved_to: s.moved_to.display().to_string(),
        }),
    }
}

/// Names and expectations of the ids, from the label table when there is one.
struct Naming<'a> {
    labels: Option<&'a LabelTable>,
    expected: BTreeSet<u32>,
}

impl Naming<'_> {
    fn name(&self, id: i64) -> String {
        self.labels
            .and_then(|t| u32::try_from(id).ok().and_then(|i| t.name(i)))
            .map(str::to_string)
            .unwrap_or_else(|| format!("label_id_{id}"))
    }

    fn expected(&self, id: i64) -> bool {
        match self.labels {
            Some(_) if !self.expected.is_empty() => {
                u32::try_from(id).is_ok_and(|i| self.expected.contains(&i))
            }
            Some(t) => u32::try_from(id).ok().and_then(|i| t.get(i)).is_some(),
            None => id > 0,
        }
    }
}

/// Everything the inspection of the mask tells.
fn fill_output(output: &mut OutputInfo, facts: &RunFacts<'_>, report: &InspectReport) {
    let naming = Naming {
        labels: facts.labels,
        expected: expected_ids(facts),
    };
    output.path = Some(report.mask.path.clone());
    output.shape = report.mask.shape.to_vec();
    output.dtype = Some(report.mask.dtype.clone());
    output.voxel_volume_ml = Some((report.voxel_volume_ml * 1e8).round() / 1e8);
    output.non_integer_voxels = report.non_integer_voxels;
    output.nan_voxels = report.nan_voxels;
    output.nan_sentinel_255_voxels = report.value_255_voxels;
    for label in &report.labels {
        let name = naming.name(label.id);
        let expected = naming.expected(label.id);
        output.label_ids_present.push(label.id);
        if !expected {
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
            expected,
        });
    }
    output.label_set_valid = output.unexpected_label_ids.is_empty() && report.integer_valued;
    output.any_label_present = !output.label_ids_present.is_empty();
    if let Ok(mask_header) = crate::nifti::read_header(Path::new(&report.mask.path)) {
        output.geometry = geometry(facts.input_header, &mask_header);
    }
}

fn geometry(input: &Header, mask: &Header) -> Geometry {
    let compared = inspect::compare_geometry(input, mask, 1e-4);
    let input_spacing: Vec<f64> = input.spacing.iter().copied().map(round6).collect();
    let output_spacing: Vec<f64> = mask.spacing.iter().copied().map(round6).collect();
    Geometry {
        input_shape: input.shape.to_vec(),
        output_shape: mask.shape.to_vec(),
        shape_match: compared.shape_match,
        spacing_match: input_spacing == output_spacing,
        input_spacing,
        output_spacing,
        affine_max_abs_diff: Some((compared.affine_max_abs_diff * 1e8).round() / 1e8),
        affine_match: compared.affine_match,
    }
}

fn invocation(facts: &RunFacts<'_>, run: &UpstreamRun<'_>) -> Invocation {
    let inventory = facts.inventory;
    Invocation {
        official_entrypoint: OFFICIAL_ENTRYPOINT.into(),
        upstream_root: Some(facts.root.display().to_string()),
        upstream_commit: upstream::git_commit(facts.root),
        config_file: Some(inventory.config_file.display().to_string()),
        config_files: upstream::config_files_of(&run.result.command).unwrap_or_default(),
        output_dir: facts.output_dir.display().to_string(),
        modality: facts.modality.as_str().into(),
        label_prompts: facts.prompts.filter(|p| !p.is_empty()).map(<[u32]>::to_vec),
        mode: if run.worker.is_some() {
            RunMode::WarmWorker
        } else {
            RunMode::OneShot
        },
        worker: run.worker.clone(),
        fallback_reason: run.fallback_reason.clone(),
        command: run.result.command.clone(),
        launch_argv: if run.result.launch_argv == run.result.command {
            Vec::new()
        } else {
            run.result.launch_argv.clone()
        },
        env_removed: run.result.env_removed.clone(),
        exit_code: run.result.exit_code,
        batch_process_exit_code: run.result.batch_process_exit_code,
        model_inventory: ModelInventory {
            model_pt_present: inventory.model_pt_present,
            model_pt_path: inventory.model_pt_path.display().to_string(),
            label_map_present: inventory.label_map_path.is_some(),
            label_map_path: inventory
                .label_map_path
                .as_ref()
                .map(|p| p.display().to_string()),
        },
        checked_roots: checked_roots(facts.resolution),
        python: Some(run.python.path.display().to_string()),
        python_source: Some(python_source_word(run.python.source).into()),
        bundle_fingerprint: Some(fingerprint_of(facts.root)),
        overrides: facts.overrides.iter().cloned().collect(),
    }
}

fn fingerprint_of(root: &Path) -> BundleFingerprint {
    let f = upstream::fingerprint::fingerprint(root);
    BundleFingerprint {
        digest: f.digest,
        files: f.files,
        published_commit: upstream::fingerprint::PUBLISHED_COMMIT.into(),
        matches_published: f.matches_published,
        differing: f.differing,
        missing: f.missing,
        extra: f.extra,
    }
}

/// The word the evidence has always used for where the interpreter came from.
fn python_source_word(source: PythonSource) -> &'static str {
    match source {
        PythonSource::Explicit => "Explicit",
        PythonSource::Env => "Env",
        PythonSource::CwdVenv => "CwdVenv",
        PythonSource::ExecutableVenv => "ExecutableVenv",
        PythonSource::Path => "Path",
    }
}

fn runtime_info(facts: &RunFacts<'_>, run: &UpstreamRun<'_>) -> RuntimeInfo {
    let probe = run.probe;
    RuntimeInfo {
        subprocess_seconds: (run.result.seconds * 1000.0).round() / 1000.0,
        device: run
            .result
            .device
            .clone()
            .unwrap_or_else(|| probe.device.clone()),
        device_requested: facts.device_requested.as_str().into(),
        python_version: Some(probe.python_version.clone()),
        monai_version: Some(probe.monai_version.clone()),
        torch_version: Some(probe.torch_version.clone()),
        cuda_available: Some(probe.cuda_available),
        sandbox: Some(run.result.sandbox.clone()),
        phases: run.phases.clone(),
        cost: run.cost.clone(),
        slurm: crate::cluster::Placement::from_env(),
    }
}

/// The bundle roots considered, for the evidence.
pub(crate) fn checked_roots(resolution: &RootResolution) -> Vec<CheckedRoot> {
    resolution
        .checked
        .iter()
        .map(|c| CheckedRoot {
            path: c.path.display().to_string(),
            source: c.source.describe().to_string(),
            valid: c.rejected.is_none(),
            reason: c.rejected.map(|r| rejection_word(r).to_string()),
        })
        .collect()
}

/// The word the evidence has always used for why a root was not taken.
fn rejection_word(rejection: RootRejection) -> &'static str {
    match rejection {
        RootRejection::Missing => "Missing",
        RootRejection::NotADirectory => "NotADirectory",
        RootRejection::NoInferenceConfig => "NoInferenceConfig",
    }
}

fn exit_code_text(result: &RunResult) -> String {
    result
        .exit_code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "none".into())
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
        _ if upstream::oom::is_cuda_oom(&result.stderr_tail) => format!(
            "The upstream run failed (exit code {}): {}",
            exit_code_text(result),
            upstream::oom::OOM_FIX
        ),
        _ => match inspect_error {
            Some(e) => format!("The upstream exited but its mask could not be read: {e}"),
            None => format!(
                "The upstream run failed (exit code {}); see logs.stderr_tail. {}",
                exit_code_text(result),
                match &result.mask {
                    Some(MaskAdoption::Adopted { .. }) | None => String::new(),
                    Some(other) => format!("Mask: {}.", mask_words(other)),
                }
            ),
        },
    }
}

/// A mask that was not adopted, in words.
fn mask_words(mask: &MaskAdoption) -> String {
    match mask {
        MaskAdoption::Adopted { path, .. } => format!("adopted {}", path.display()),
        MaskAdoption::Missing { path } => format!("no file at {}", path.display()),
        MaskAdoption::NotAFile { path } => format!("{} is not a regular file", path.display()),
        MaskAdoption::Empty { path } => format!("{} is empty", path.display()),
        MaskAdoption::Stale { path } => {
            format!("{} predates the run (not its output)", path.display())
        }
    }
}

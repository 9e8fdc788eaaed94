//! The gates of `run_script`, evaluated before anything runs. Every gate the request
//! touches is evaluated (not just the first failure), so one refusal tells the caller
//! everything to fix. Gate ids, rules and fixes come from `skill_manifest.yaml`.

use std::path::{Path, PathBuf};

use super::dicom_input::{self, DicomInput};
use super::request::RunRequest;
use crate::config::Config;
use crate::evidence::{GateResult, GateStatus, RunFacts};
use crate::labels::{LabelTable, Modality};
use crate::manifest::Manifest;
use crate::nifti::{read_header, Header, NiftiError};
use crate::tools::write_gate::{self, Written};
use crate::upstream::{self, BundleInventory, RootResolution};

/// A request that passed every gate, with what the gates learned on the way.
#[derive(Debug)]
pub struct Gated {
    pub request: RunRequest,
    pub input_header: Header,
    pub resolution: RootResolution,
    pub root: PathBuf,
    pub inventory: BundleInventory,
    /// The bundle's label table; `None` when it could not be loaded (recorded, not fatal).
    pub labels: Option<LabelTable>,
    pub label_error: Option<String>,
    /// Prompts after resolving `structures` (ids, in request order, deduplicated).
    pub prompts: Option<Vec<u32>>,
    pub mask_path: PathBuf,
    pub gates: Vec<GateResult>,
    /// For a DICOM input: the series converted into the pack (`request.input` is then
    /// the converted volume).
    pub dicom: Option<crate::dicom::DicomSeriesInfo>,
}

impl Gated {
    /// What the evidence builder needs to know of this request.
    pub fn facts<'a>(&'a self, overrides: &'a [(String, String)]) -> RunFacts<'a> {
        let settings = &self.request.settings;
        RunFacts {
            input: &self.request.input,
            output_dir: &self.request.output_dir,
            ground_truth: self.request.ground_truth.as_deref(),
            modality: settings.modality,
            label_prompts_requested: settings.label_prompts.as_deref(),
            device_requested: settings.device,
            overrides,
            input_header: &self.input_header,
            resolution: &self.resolution,
            root: &self.root,
            inventory: &self.inventory,
            labels: self.labels.as_ref(),
            prompts: self.prompts.as_deref(),
            gates: &self.gates,
            dicom: self.dicom.as_ref(),
        }
    }
}

/// A refusal: the gate results (failed ones carry the message) and one message for the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub gates: Vec<GateResult>,
    pub message: String,
    pub resolution: Option<RootResolution>,
}

pub(super) struct Recorder<'a> {
    manifest: &'a Manifest,
    pub(super) results: Vec<GateResult>,
}

impl Recorder<'_> {
    pub(super) fn pass(&mut self, id: &str, message: impl Into<String>) {
        self.results.push(GateResult {
            name: id.into(),
            status: GateStatus::Passed,
            message: message.into(),
        });
    }
    pub(super) fn skip(&mut self, id: &str, message: impl Into<String>) {
        self.results.push(GateResult {
            name: id.into(),
            status: GateStatus::Skipped,
            message: message.into(),
        });
    }
    pub(super) fn fail(&mut self, id: &str, argument: &str, problem: impl Into<String>) {
        let fix = self
            .manifest
            .gate(id)
            .map(|g| g.fix.clone())
            .unwrap_or_default();
        let rule = self
            .manifest
            .gate(id)
            .map(|g| g.rule.clone())
            .unwrap_or_default();
        self.results.push(GateResult {
            name: id.into(),
            status: GateStatus::Failed,
            message: format!(
                "argument '{argument}': {}. Rule: {rule}. Fix: {fix}",
                problem.into()
            ),
        });
    }
    fn failed(&self) -> bool {
        self.results.iter().any(GateResult::failed)
    }
}

/// Evaluate every gate of `request`; a DICOM input that passes is converted into
/// the pack as the last step.
pub fn evaluate(
    request: RunRequest,
    config: &Config,
    manifest: &Manifest,
) -> Result<Gated, Box<Refusal>> {
    gate(request, config, manifest, true)
        .map(|gated| gated.expect("with the conversion, passed gates give a Gated"))
}

/// Every gate, writing nothing: a DICOM input's headers are checked but the series is
/// not converted (the admission of a `wait: false` call; the run evaluates again).
pub fn check(
    request: RunRequest,
    config: &Config,
    manifest: &Manifest,
) -> Result<(), Box<Refusal>> {
    gate(request, config, manifest, false).map(|_| ())
}

fn gate(
    request: RunRequest,
    config: &Config,
    manifest: &Manifest,
    convert: bool,
) -> Result<Option<Gated>, Box<Refusal>> {
    let mut rec = Recorder {
        manifest,
        results: Vec::new(),
    };
    let dicom = dicom_input::plan(&mut rec, &request);
    let input_header = match dicom {
        DicomInput::NotDicom => check_volume(&mut rec, &request.input),
        _ => None,
    };
    let upstream_input = dicom.upstream_input(&request);
    check_modality(&mut rec, &request, dicom.modality());
    rec.pass(
        "timeout_in_bounds",
        format!("{} s", request.settings.timeout.as_secs_f64()),
    );
    let (resolution, root_inventory) = check_root(&mut rec, &request, config);
    let root = root_inventory.as_ref().map(|(r, _)| r.as_path());
    check_knobs(&mut rec, &request, root);
    let mask_path = check_output_dir(&mut rec, &request, &upstream_input, config, root);
    // Labels: prompts and structures are checked against the bundle's own table.
    let (labels, label_error) = match root {
        Some(root) => match LabelTable::load_bundle(root) {
            Ok(table) => (Some(table), None),
            Err(e) => (None, Some(e.to_string())),
        },
        None => (None, Some("no bundle root".to_string())),
    };
    let prompts = check_labels(&mut rec, &request, labels.as_ref(), label_error.as_deref());
    check_ground_truth(&mut rec, &request);
    if rec.failed() {
        return Err(Box::new(refusal(rec.results, resolution)));
    }
    let (input_header, info) = match dicom {
        DicomInput::Planned(_) if !convert => return Ok(None),
        DicomInput::Planned(plan) => {
            let modality = request.settings.modality;
            match dicom_input::convert(&mut rec, &plan, &upstream_input, modality) {
                Some((header, info)) => (header, Some(info)),
                None => return Err(Box::new(refusal(rec.results, resolution))),
            }
        }
        _ => (
            input_header.expect("gates passed, so the input header was read"),
            None,
        ),
    };
    let (root, inventory) = root_inventory.expect("gates passed, so the root resolved");
    Ok(Some(Gated {
        request: RunRequest {
            input: upstream_input,
            ..request
        },
        input_header,
        resolution,
        root,
        inventory,
        labels,
        label_error,
        prompts,
        mask_path: mask_path.expect("gates passed, so the output location was checked"),
        gates: rec.results,
        dicom: info,
    }))
}

/// One message listing every failed gate.
fn refusal(gates: Vec<GateResult>, resolution: RootResolution) -> Refusal {
    let failures: Vec<String> = gates
        .iter()
        .filter(|g| g.failed())
        .map(|g| format!("- {}: {}", g.name, g.message))
        .collect();
    Refusal {
        message: format!(
            "run_script refused before running anything:\n{}",
            failures.join("\n")
        ),
        gates,
        resolution: Some(resolution),
    }
}

fn check_modality(rec: &mut Recorder, request: &RunRequest, dicom_modality: Option<&str>) {
    let settings = &request.settings;
    let warning = dicom_modality
        .and_then(|m| dicom_input::modality_warning(m, settings.modality))
        .map(|w| format!("; warning: {w}"))
        .unwrap_or_default();
    rec.pass(
        "modality_known",
        format!("modality {}{warning}", settings.modality),
    );
    if settings.modality != Modality::MriBrain {
        rec.skip(
            "brain_preprocessing_acknowledged",
            "only MRI_BRAIN needs it",
        );
    } else if settings.preprocessed_brain_input {
        rec.pass(
            "brain_preprocessing_acknowledged",
            "the caller acknowledged preprocessed brain input",
        );
    } else {
        rec.fail(
            "brain_preprocessing_acknowledged",
            "preprocessed_brain_input",
            "MRI_BRAIN needs an input already preprocessed by the upstream brain pipeline, and the call did not say so",
        );
    }
}

/// The bundle root and its weights.
fn check_root(
    rec: &mut Recorder,
    request: &RunRequest,
    config: &Config,
) -> (RootResolution, Option<(PathBuf, BundleInventory)>) {
    let resolution = upstream::resolve_root(
        request.settings.upstream_root.as_deref(),
        config.env_root.as_deref().map(std::ffi::OsStr::new),
        &config.cwd,
    );
    let root = match resolution.require() {
        Ok(root) => root.to_path_buf(),
        Err(e) => {
            rec.fail("upstream_root_valid", "upstream_root", e.to_string());
            rec.skip("model_weights_present", "no bundle root");
            return (resolution, None);
        }
    };
    rec.pass(
        "upstream_root_valid",
        format!("bundle root {}", root.display()),
    );
    let inventory = upstream::inventory(&root);
    match inventory.require_model() {
        Ok(model) => rec.pass(
            "model_weights_present",
            format!("weights {}", model.display()),
        ),
        Err(e) => rec.fail("model_weights_present", "upstream_root", e.to_string()),
    }
    (resolution, Some((root, inventory)))
}

fn check_ground_truth(rec: &mut Recorder, request: &RunRequest) {
    match &request.ground_truth {
        None => rec.skip("ground_truth_readable", "no ground truth given"),
        Some(gt) => match read_header(gt) {
            Ok(_) => rec.pass(
                "ground_truth_readable",
                format!("ground truth {}", gt.display()),
            ),
            Err(e) => rec.fail("ground_truth_readable", "ground_truth", e.to_string()),
        },
    }
}

/// `cpu_postprocessing` and `tensorrt` depend on what the bundle ships (and TensorRT on
/// CUDA): checked here so a request the bundle cannot honour never starts.
fn check_knobs(rec: &mut Recorder, request: &RunRequest, root: Option<&Path>) {
    if !request.settings.tensorrt {
        rec.skip("tensorrt_config_present", "tensorrt not requested");
        rec.skip("tensorrt_needs_cuda", "tensorrt not requested");
    } else {
        match root {
            None => rec.skip("tensorrt_config_present", "no bundle root"),
            Some(root) => {
                let trt = root.join(upstream::TRT_CONFIG_FILE);
                if trt.is_file() {
                    rec.pass("tensorrt_config_present", format!("{}", trt.display()));
                } else {
                    rec.fail(
                        "tensorrt_config_present",
                        "tensorrt",
                        format!("{} does not exist in this bundle", trt.display()),
                    );
                }
            }
        }
        if request.settings.device == upstream::DeviceRequest::Cpu {
            rec.fail(
                "tensorrt_needs_cuda",
                "tensorrt",
                "device 'cpu' was requested, and TensorRT runs only on an NVIDIA GPU",
            );
        } else {
            rec.pass(
                "tensorrt_needs_cuda",
                format!(
                    "device '{}'; the environment probe confirms CUDA before the run",
                    request.settings.device.as_str()
                ),
            );
        }
    }

    if !request.settings.cpu_postprocessing {
        rec.skip(
            "cpu_postprocessing_supported",
            "cpu_postprocessing not requested",
        );
        return;
    }
    let Some(root) = root else {
        rec.skip("cpu_postprocessing_supported", "no bundle root");
        return;
    };
    // The configs this run merges, as far as they exist (a missing TensorRT config is
    // its own gate's failure; a missing batch config, the batch run's).
    let mut parsed = Vec::new();
    for name in upstream::config_files(request.batch_config, request.settings.tensorrt) {
        let path = root.join(name);
        if name != upstream::CONFIG_FILE && !path.is_file() {
            continue;
        }
        let read = crate::files::read_capped(&path, crate::files::JSON_CAP)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
            });
        match read {
            Ok(value) => parsed.push((name, value)),
            Err(problem) => {
                rec.fail(
                    "cpu_postprocessing_supported",
                    "cpu_postprocessing",
                    problem,
                );
                return;
            }
        }
    }
    let configs: Vec<(&str, &serde_json::Value)> = parsed.iter().map(|(n, v)| (*n, v)).collect();
    match super::knobs::check_cpu_postprocessing(&configs) {
        Ok(()) => rec.pass(
            "cpu_postprocessing_supported",
            format!(
                "postprocessing.transforms[0] is the bundle's disabled ToDeviced(cpu); the run enables it with --{} {}",
                upstream::CPU_POSTPROCESSING_OVERRIDE.0,
                upstream::CPU_POSTPROCESSING_OVERRIDE.1
            ),
        ),
        Err(problem) => rec.fail(
            "cpu_postprocessing_supported",
            "cpu_postprocessing",
            format!("this bundle cannot move its postprocessing to the CPU: {problem}"),
        ),
    }
}

fn check_volume(rec: &mut Recorder, input: &Path) -> Option<Header> {
    if !input.is_file() {
        rec.fail(
            "input_exists",
            "input",
            format!("{} does not exist or is not a file", input.display()),
        );
        rec.skip("input_is_nifti", "no input file");
        rec.skip("input_is_3d", "no input file");
        return None;
    }
    rec.pass("input_exists", format!("{}", input.display()));
    match read_header(input) {
        Ok(header) => {
            rec.pass(
                "input_is_nifti",
                format!("{} {}", header.version, header.datatype.name()),
            );
            rec.pass("input_is_3d", format!("shape {:?}", header.shape));
            Some(header)
        }
        Err(e @ NiftiError::NotThreeD { .. }) => {
            rec.pass("input_is_nifti", "parses as NIfTI");
            rec.fail("input_is_3d", "input", e.to_string());
            None
        }
        Err(e) => {
            rec.fail("input_is_nifti", "input", e.to_string());
            rec.skip("input_is_3d", "not NIfTI");
            None
        }
    }
}

/// `input` is the file the upstream will read (for DICOM, the converted volume).
fn check_output_dir(
    rec: &mut Recorder,
    request: &RunRequest,
    input: &Path,
    config: &Config,
    root: Option<&Path>,
) -> Option<PathBuf> {
    let stem = upstream::nifti_stem(input);
    if let Some(problem) = output_dir_problem(&request.output_dir, &["logs", ".runs", &stem]) {
        rec.fail("output_dir_allowed", "output_dir", problem);
        return None;
    }
    if let Err(refusal) = write_gate::check(config, &request.output_dir, Written::Directory) {
        rec.fail("output_dir_allowed", "output_dir", refusal.to_string());
        return None;
    }
    let Some(root) = root else {
        rec.skip("output_dir_allowed", "no bundle root to compare with");
        return None;
    };
    match upstream::check_output_location(input, &request.output_dir, root) {
        Ok(mask) => {
            rec.pass(
                "output_dir_allowed",
                format!("{}", request.output_dir.display()),
            );
            Some(mask)
        }
        Err(e) => {
            rec.fail("output_dir_allowed", "output_dir", e.to_string());
            None
        }
    }
}

/// How many unresolved structure names a refusal spells out.
const SHOWN_PROBLEMS: usize = 10;

fn check_labels(
    rec: &mut Recorder,
    request: &RunRequest,
    labels: Option<&LabelTable>,
    label_error: Option<&str>,
) -> Option<Vec<u32>> {
    let wants_labels =
        request.settings.label_prompts.is_some() || !request.settings.structures.is_empty();
    let Some(table) = labels.filter(|_| wants_labels) else {
        if wants_labels {
            let why = label_error.unwrap_or("the label table is unavailable");
            if request.settings.label_prompts.is_some() {
                rec.fail(
                    "label_prompts_known",
                    "label_prompts",
                    format!("cannot check prompts: {why}"),
                );
            }
            if !request.settings.structures.is_empty() {
                rec.fail(
                    "structures_resolve",
                    "structures",
                    format!("cannot resolve names: {why}"),
                );
            }
        } else {
            rec.skip("label_prompts_known", "no prompts: segment everything");
            rec.skip("structures_resolve", "no structures");
        }
        return None;
    };
    let mut prompts: Vec<u32> = Vec::new();
    match &request.settings.label_prompts {
        None => rec.skip("label_prompts_known", "no prompts"),
        Some(ids) => {
            let bad: Vec<String> = ids
                .iter()
                .filter_map(|id| match table.get(*id) {
                    None => Some(format!("{id} is not a class of this bundle")),
                    Some(c) if c.deprecated => Some(format!("{id} ({}) is deprecated", c.name)),
                    Some(_) => None,
                })
                .collect();
            if bad.is_empty() {
                rec.pass("label_prompts_known", format!("prompts {ids:?}"));
            } else {
                rec.fail("label_prompts_known", "label_prompts", bad.join("; "));
            }
            prompts.extend(ids);
        }
    }
    if request.settings.structures.is_empty() {
        rec.skip("structures_resolve", "no structures");
    } else {
        let mut problems = Vec::new();
        let mut resolved = Vec::new();
        for name in &request.settings.structures {
            match table.resolve(name) {
                Ok(id) => {
                    resolved.push(format!("{name} -> {id}"));
                    prompts.push(id);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if problems.is_empty() {
            rec.pass("structures_resolve", resolved.join(", "));
        } else {
            // Up to 512 names may fail: the refusal names the first few and counts the rest.
            let more = problems.len().saturating_sub(SHOWN_PROBLEMS);
            problems.truncate(SHOWN_PROBLEMS);
            if more > 0 {
                problems.push(format!("and {more} more names that do not resolve"));
            }
            rec.fail("structures_resolve", "structures", problems.join("; "));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    prompts.retain(|id| seen.insert(*id));
    Some(prompts)
}

/// What makes `output_dir` unusable before its location is even compared: it is a
/// file or a dangling link, or a name the run writes through inside it (`logs/`, the
/// mask's `<stem>/`, `.runs/`) is a symbolic link, which would carry the upstream's
/// logs, the mask or the run record outside the allowed directories.
pub(crate) fn output_dir_problem(output_dir: &Path, written_names: &[&str]) -> Option<String> {
    let shown = output_dir.display();
    match std::fs::symlink_metadata(output_dir) {
        Err(_) => return None,
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::metadata(output_dir) {
            Err(_) => return Some(format!("{shown} is a symbolic link to nothing (dangling)")),
            Ok(target) if !target.is_dir() => {
                return Some(format!(
                    "{shown} links to something that is not a directory"
                ))
            }
            Ok(_) => {}
        },
        Ok(meta) if !meta.is_dir() => {
            return Some(format!("{shown} exists and is not a directory"))
        }
        Ok(_) => {}
    }
    for name in written_names {
        let inside = output_dir.join(name);
        if std::fs::symlink_metadata(&inside).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(format!(
                "{} is a symbolic link; a run writes there, so it must be a real directory (remove the link)",
                inside.display()
            ));
        }
    }
    None
}

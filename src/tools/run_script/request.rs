//! Normalising a `run_script` call. Three surfaces reach the same request: the
//! reference argv form (`script` + `args`, parsed with the reference grammar in
//! [`super::argv`]), the structured form (top-level fields), and `ctmr-skill run`. The
//! argv form is first turned into structured fields ([`normalise`]); then the manifest
//! validates them once, serde types them ([`RunScriptArgs`]) and [`request`] resolves
//! paths.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::argv::RunArgs;
use crate::config::Config;
use crate::labels::Modality;
use crate::manifest::args::{validate, ArgError};
use crate::manifest::ToolDecl;
use crate::upstream::DeviceRequest;

/// A validated `run_script` request (gates not yet evaluated).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Absolute: a NIfTI file, or a DICOM series (directory or .zip) until the gates
    /// convert it, after which it is the converted volume in the pack.
    pub input: PathBuf,
    /// For a DICOM input with several series: the one to convert.
    pub series_uid: Option<String>,
    /// Absolute.
    pub output_dir: PathBuf,
    pub ground_truth: Option<PathBuf>,
    /// What `run_batch` requests share.
    pub settings: RunSettings,
    /// This volume runs through the batch config (`run_batch`), so the gates read
    /// `configs/batch_inference.json` as part of the bundle's config.
    pub batch_config: bool,
    /// Answer with the pack's preview.png as an image content item (`preview`).
    pub preview: bool,
}

/// The reference entry point the argv form names.
pub(crate) const REFERENCE_SCRIPT: &str = "scripts/run_ctmr.py";

/// The argv form's grammar: exactly the flags of `ctmr-skill run`.
#[derive(Debug, Parser)]
#[command(
    name = "scripts/run_ctmr.py",
    no_binary_name = false,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct ArgvForm {
    #[command(flatten)]
    run: RunArgs,
}

/// What `run_script` and `run_batch` share, as the manifest declares it. A field the
/// manifest gives a default is no `Option`: validation filled it in, and the default
/// is stated once, in the manifest (the start-up check refuses a field without one).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SettingsArgs {
    pub modality: Modality,
    pub label_prompts: Option<Vec<u32>>,
    pub structures: Option<Vec<String>>,
    pub device: DeviceRequest,
    pub upstream_root: Option<String>,
    pub timeout_seconds: f64,
    pub preprocessed_brain_input: bool,
    pub patch_size: Option<Vec<u32>>,
    pub sw_batch_size: Option<u32>,
    pub cpu_postprocessing: bool,
    pub tensorrt: bool,
    /// false: start in the background and answer with a run record.
    pub wait: bool,
    /// true: after a successful run, run the paired verifier on the pack.
    pub verify: bool,
    /// `summary` (default) or `full`: how much of the result the server answers with
    /// (the server shapes the answer; the tool ignores it).
    pub detail: Option<String>,
}

/// `run_script`'s arguments after the manifest checked them (defaults filled in).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RunScriptArgs {
    pub script: Option<String>,
    pub args: Option<Vec<String>>,
    pub input: Option<String>,
    pub series_uid: Option<String>,
    pub output_dir: Option<String>,
    pub ground_truth: Option<String>,
    /// false: no image content item in the answer (preview.png is still written).
    pub preview: bool,
    #[serde(flatten)]
    pub settings: SettingsArgs,
}

/// The argv form (`script` + `args`) as structured fields; the structured form as is.
/// `wait`, `verify` and `detail` may accompany either form.
pub(crate) fn normalise(
    tool: &ToolDecl,
    args: Map<String, Value>,
) -> Result<Map<String, Value>, ArgError> {
    if !args.contains_key("script") && !args.contains_key("args") {
        return Ok(args);
    }
    let mixed: Vec<&str> = args
        .keys()
        .map(String::as_str)
        .filter(|k| {
            !matches!(
                *k,
                "script" | "args" | "wait" | "verify" | "detail" | "preview"
            )
        })
        .collect();
    if !mixed.is_empty() {
        return Err(ArgError::new(
            "args",
            format!(
                "the argv form (script + args) cannot be combined with structured fields ({})",
                mixed.join(", ")
            ),
            "pass either script + args, or the structured fields alone",
        ));
    }
    let checked = validate(tool, &args)?;
    let argv = argv_strings(&checked)?;
    let parsed =
        ArgvForm::try_parse_from(std::iter::once(REFERENCE_SCRIPT.to_string()).chain(argv))
            .map_err(argv_error)?;
    let mut structured = parsed.run.to_arguments();
    for key in ["wait", "verify", "detail", "preview"] {
        if let Some(v) = args.get(key) {
            structured.insert(key.into(), v.clone());
        }
    }
    Ok(structured)
}

fn argv_error(e: clap::Error) -> ArgError {
    let text = e.render().to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("cannot parse")
        .trim_start_matches("error: ")
        .to_string();
    ArgError::new(
        "args",
        first,
        "use the flags of scripts/run_ctmr.py: IMAGE --modality M --output-dir DIR \
         [--series-uid UID] [--label-prompts 3,14] [--ground-truth GT] [--device auto|cuda|cpu] \
         [--upstream-root DIR] [--timeout-seconds N] [--patch-size 64,64,64] \
         [--sw-batch-size N] [--cpu-postprocessing] [--tensorrt]",
    )
}

fn argv_strings(args: &Map<String, Value>) -> Result<Vec<String>, ArgError> {
    match args.get("script") {
        Some(Value::String(s)) if s == REFERENCE_SCRIPT => {}
        _ => {
            return Err(ArgError::new(
                "script",
                "is required with args and must be scripts/run_ctmr.py",
                "pass \"script\": \"scripts/run_ctmr.py\"",
            ))
        }
    }
    let items = args.get("args").and_then(Value::as_array).ok_or_else(|| {
        ArgError::new(
            "args",
            "is required with script",
            "pass the reference CLI arguments as an array of strings",
        )
    })?;
    Ok(items
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect())
}

/// How to run: what a `run_script` request and a `run_batch` request (and so each of
/// its volumes) share: modality, prompts, device, bundle, limits and the upstream's
/// switches.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    pub modality: Modality,
    pub label_prompts: Option<Vec<u32>>,
    pub structures: Vec<String>,
    pub device: DeviceRequest,
    /// Absolute.
    pub upstream_root: Option<PathBuf>,
    pub timeout: Duration,
    pub preprocessed_brain_input: bool,
    pub patch_size: Option<Vec<u32>>,
    pub sw_batch_size: Option<u32>,
    /// Enable the bundle's disabled `ToDeviced(cpu)` postprocessing transform (less GPU memory).
    pub cpu_postprocessing: bool,
    /// Add the bundle's `configs/inference_trt.json` to the config list (needs CUDA).
    pub tensorrt: bool,
    /// After a successful run, run the paired verifier and write `trust_summary.json`.
    pub verify: bool,
}

impl SettingsArgs {
    /// The settings, with relative paths resolved against the working directory and
    /// the bundle root admitted by the operator's policy ([`Config::bundle_root_for`]).
    pub fn settings(self, config: &Config) -> Result<RunSettings, ArgError> {
        let upstream_root = admit_root(config, self.upstream_root.as_deref())?;
        Ok(RunSettings {
            modality: self.modality,
            label_prompts: self.label_prompts,
            structures: self.structures.unwrap_or_default(),
            device: self.device,
            upstream_root,
            timeout: Duration::from_secs_f64(self.timeout_seconds),
            preprocessed_brain_input: self.preprocessed_brain_input,
            patch_size: self.patch_size,
            sw_batch_size: self.sw_batch_size,
            cpu_postprocessing: self.cpu_postprocessing,
            tensorrt: self.tensorrt,
            verify: self.verify,
        })
    }
}

/// A path argument with a NUL byte can name no file; say so before anything uses it.
pub(crate) fn no_nul(argument: &str, value: Option<&str>) -> Result<(), ArgError> {
    match value {
        Some(v) if v.contains('\0') => Err(ArgError::new(
            argument,
            "contains a NUL byte, which no file name can hold",
            "pass the path without the \\u0000 character",
        )),
        _ => Ok(()),
    }
}

/// A bundle root named in a call, if the operator's policy admits it.
pub(crate) fn admit_root(
    config: &Config,
    requested: Option<&str>,
) -> Result<Option<PathBuf>, ArgError> {
    config.bundle_root_for(requested).map_err(|rule| {
        ArgError::new(
            "upstream_root",
            rule.to_string(),
            "omit upstream_root to use the operator's default bundle, or ask the operator to add one with `serve --bundle-root NAME=DIR`",
        )
    })
}

/// Typed arguments → request: the input is required (the manifest cannot say "input,
/// unless the argv form"), paths become absolute, and the output directory defaults to
/// the reference's `<stem>_nv_segment_ctmr_out` beside the input.
pub(crate) fn request(args: RunScriptArgs, config: &Config) -> Result<RunRequest, ArgError> {
    for (name, value) in [
        ("input", &args.input),
        ("output_dir", &args.output_dir),
        ("ground_truth", &args.ground_truth),
        ("upstream_root", &args.settings.upstream_root),
    ] {
        no_nul(name, value.as_deref())?;
    }
    let input = args.input.ok_or_else(|| {
        ArgError::new(
            "input",
            "is required",
            "pass the path of a CT or MRI NIfTI volume (.nii or .nii.gz)",
        )
    })?;
    let input = config.absolute(Path::new(&input));
    let output_dir = match args.output_dir {
        Some(dir) => config.absolute(Path::new(&dir)),
        None => {
            let stem = crate::upstream::nifti_stem(&input);
            input
                .parent()
                .unwrap_or(&config.cwd)
                .join(format!("{stem}_nv_segment_ctmr_out"))
        }
    };
    Ok(RunRequest {
        input,
        series_uid: args.series_uid,
        output_dir,
        ground_truth: args.ground_truth.map(|p| config.absolute(Path::new(&p))),
        settings: args.settings.settings(config)?,
        batch_config: false,
        preview: args.preview,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry's parse path (the one every call takes), for these tests.
    fn from_tool_arguments(
        tool: &ToolDecl,
        args: &Map<String, Value>,
        config: &Config,
    ) -> Result<RunRequest, ArgError> {
        let manifest = std::sync::Arc::new(crate::manifest::embedded().unwrap());
        let runner = super::super::RunScript::new(std::sync::Arc::new(config.clone()), manifest);
        crate::tools::registry::parse(&runner, tool, args).map(|p| p.request)
    }

    fn from_run_args(
        tool: &ToolDecl,
        run: &RunArgs,
        config: &Config,
    ) -> Result<RunRequest, ArgError> {
        from_tool_arguments(tool, &run.to_arguments(), config)
    }
    use serde_json::json;

    fn world() -> (tempfile::TempDir, Config, ToolDecl) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path().to_path_buf(), vec![], None, None, 1);
        let tool = crate::manifest::embedded()
            .unwrap()
            .tool("run_script")
            .unwrap()
            .clone();
        (dir, config, tool)
    }

    #[test]
    fn argv_and_structured_forms_normalise_to_the_same_request() {
        let (_dir, config, tool) = world();
        let argv = json!({"script": "scripts/run_ctmr.py", "args": [
            "/data/ct.nii.gz", "--modality", "CT_BODY", "--output-dir", "runs/case1", "--label-prompts", "3,14"]});
        let structured = json!({"input": "/data/ct.nii.gz", "modality": "CT_BODY", "output_dir": "runs/case1",
            "label_prompts": [3, 14]});
        let a = from_tool_arguments(&tool, argv.as_object().unwrap(), &config).unwrap();
        let b = from_tool_arguments(&tool, structured.as_object().unwrap(), &config).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.output_dir, config.cwd.join("runs/case1"));
        assert_eq!(a.settings.label_prompts, Some(vec![3, 14]));
        assert_eq!(a.settings.timeout, Duration::from_secs(3600));
    }

    #[test]
    fn knobs_reach_the_request_from_every_form() {
        let (_dir, config, tool) = world();
        let argv = json!({"script": "scripts/run_ctmr.py", "args": [
            "/data/ct.nii.gz", "--cpu-postprocessing", "--tensorrt", "--patch-size", "64,64,64"]});
        let structured = json!({"input": "/data/ct.nii.gz", "cpu_postprocessing": true,
            "tensorrt": true, "patch_size": [64, 64, 64]});
        let a = from_tool_arguments(&tool, argv.as_object().unwrap(), &config).unwrap();
        let b = from_tool_arguments(&tool, structured.as_object().unwrap(), &config).unwrap();
        assert_eq!(a, b);
        assert!(a.settings.cpu_postprocessing && a.settings.tensorrt);
        let cli =
            ArgvForm::try_parse_from(["ctmr-skill", "/data/ct.nii.gz", "--tensorrt"]).unwrap();
        let c = from_run_args(&tool, &cli.run, &config).unwrap();
        assert!(c.settings.tensorrt && !c.settings.cpu_postprocessing);
        // Off unless asked for.
        let plain = json!({"input": "/data/ct.nii.gz"});
        let d = from_tool_arguments(&tool, plain.as_object().unwrap(), &config).unwrap();
        assert!(!d.settings.cpu_postprocessing && !d.settings.tensorrt);
        // The manifest types them as booleans.
        let bad = json!({"input": "/data/ct.nii.gz", "tensorrt": "yes"});
        let e = from_tool_arguments(&tool, bad.as_object().unwrap(), &config).unwrap_err();
        assert_eq!(e.argument, "tensorrt");
    }

    #[test]
    fn mixing_forms_is_refused() {
        let (_dir, config, tool) = world();
        let args =
            json!({"script": "scripts/run_ctmr.py", "args": ["/x.nii.gz"], "modality": "CT_BODY"});
        let e = from_tool_arguments(&tool, args.as_object().unwrap(), &config).unwrap_err();
        assert_eq!(e.argument, "args");
        assert!(e.rule.contains("modality"), "{e}");
    }

    #[test]
    fn argv_form_errors_name_the_flag() {
        let (_dir, config, tool) = world();
        let args =
            json!({"script": "scripts/run_ctmr.py", "args": ["/x.nii.gz", "--modalty", "CT_BODY"]});
        let e = from_tool_arguments(&tool, args.as_object().unwrap(), &config).unwrap_err();
        assert_eq!(e.argument, "args");
        assert!(e.rule.contains("--modalty"), "{e}");
        // Values parsed from argv still meet the manifest's rules.
        let args =
            json!({"script": "scripts/run_ctmr.py", "args": ["/x.nii.gz", "--modality", "PET"]});
        let e = from_tool_arguments(&tool, args.as_object().unwrap(), &config).unwrap_err();
        assert_eq!(e.argument, "modality");
        let args = json!({"script": "other.py", "args": []});
        assert_eq!(
            from_tool_arguments(&tool, args.as_object().unwrap(), &config)
                .unwrap_err()
                .argument,
            "script"
        );
    }

    #[test]
    fn default_output_dir_follows_the_reference() {
        let (_dir, config, tool) = world();
        let args = json!({"input": "/data/case 7.nii.gz"});
        let r = from_tool_arguments(&tool, args.as_object().unwrap(), &config).unwrap();
        assert_eq!(
            r.output_dir,
            PathBuf::from("/data/case 7_nv_segment_ctmr_out")
        );
        assert_eq!(r.settings.modality, Modality::CtBody);
        assert_eq!(r.settings.device, DeviceRequest::Auto);
    }

    #[test]
    fn input_is_required() {
        let (_dir, config, tool) = world();
        let e = from_tool_arguments(&tool, &Map::new(), &config).unwrap_err();
        assert_eq!(e.argument, "input");
    }
}

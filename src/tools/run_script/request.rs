//! Normalising a `run_script` call. Three surfaces reach the same request: the
//! reference argv form (`script` + `args`, parsed with the CLI's own grammar), the
//! structured form (top-level fields), and `ctmr-skill run`. All three become a
//! structured argument map that is validated against the manifest once.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Map, Value};

use crate::cli::RunArgs;
use crate::config::Config;
use crate::labels::Modality;
use crate::manifest::args::{validate, ArgError};
use crate::manifest::ToolDecl;
use crate::upstream::DeviceRequest;

/// A validated `run_script` request (gates not yet evaluated).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Absolute.
    pub input: PathBuf,
    /// Absolute.
    pub output_dir: PathBuf,
    pub ground_truth: Option<PathBuf>,
    /// What `run_batch` requests share.
    pub settings: RunSettings,
    /// This volume runs through the batch config (`run_batch`), so the gates read
    /// `configs/batch_inference.json` as part of the bundle's config.
    pub batch_config: bool,
}

/// The reference entry point the argv form names.
pub const REFERENCE_SCRIPT: &str = "scripts/run_ctmr.py";

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

/// Normalise tool arguments of either form into a request.
pub fn from_tool_arguments(
    tool: &ToolDecl,
    args: &Map<String, Value>,
    config: &Config,
) -> Result<RunRequest, ArgError> {
    let structured = if args.contains_key("script") || args.contains_key("args") {
        let mixed: Vec<&str> = args
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "script" && *k != "args")
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
        let checked = validate(tool, args)?;
        let argv = argv_strings(&checked)?;
        let parsed =
            ArgvForm::try_parse_from(std::iter::once(REFERENCE_SCRIPT.to_string()).chain(argv))
                .map_err(|e| {
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
                     [--label-prompts 3,14] [--ground-truth GT] [--device auto|cuda|cpu] \
                     [--upstream-root DIR] [--timeout-seconds N] [--patch-size 64,64,64] \
                     [--sw-batch-size N] [--cpu-postprocessing] [--tensorrt]",
                )
                })?;
        structured_from_run_args(&parsed.run)
    } else {
        args.clone()
    };
    let checked = validate(tool, &structured)?;
    typed(&checked, config)
}

/// `ctmr-skill run`: the same path as the tool.
pub fn from_run_args(
    tool: &ToolDecl,
    run: &RunArgs,
    config: &Config,
) -> Result<RunRequest, ArgError> {
    let checked = validate(tool, &structured_from_run_args(run))?;
    typed(&checked, config)
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

/// The CLI grammar's result as structured fields (absent flags stay absent, so the
/// manifest's defaults apply uniformly).
fn structured_from_run_args(run: &RunArgs) -> Map<String, Value> {
    let mut map = Map::new();
    let path = |p: &PathBuf| json!(p.to_string_lossy());
    map.insert("input".into(), path(&run.input));
    map.insert("modality".into(), json!(run.modality));
    if let Some(dir) = &run.output_dir {
        map.insert("output_dir".into(), path(dir));
    }
    if let Some(prompts) = &run.label_prompts {
        map.insert("label_prompts".into(), json!(prompts));
    }
    if !run.structures.is_empty() {
        map.insert("structures".into(), json!(run.structures));
    }
    if let Some(gt) = &run.ground_truth {
        map.insert("ground_truth".into(), path(gt));
    }
    map.insert("device".into(), json!(run.device));
    if let Some(root) = &run.upstream_root {
        map.insert("upstream_root".into(), path(root));
    }
    map.insert("timeout_seconds".into(), json!(run.timeout_seconds));
    if run.preprocessed_brain_input {
        map.insert("preprocessed_brain_input".into(), json!(true));
    }
    run.knobs.insert_into(&mut map);
    map
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
}

/// The settings from a manifest-validated map (defaults were filled in by the
/// validation); only the checks the manifest cannot express (path resolution) happen here.
pub fn run_settings(args: &Map<String, Value>, config: &Config) -> Result<RunSettings, ArgError> {
    let string = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
    let u32_list = |k: &str| -> Option<Vec<u32>> {
        args.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_f64())
                .map(|f| f as u32)
                .collect()
        })
    };
    let flag = |k: &str| args.get(k).and_then(Value::as_bool).unwrap_or(false);
    let modality: Modality = string("modality")
        .unwrap_or_else(|| "CT_BODY".into())
        .parse()
        .map_err(|_| {
            ArgError::new(
                "modality",
                "must be CT_BODY, MRI_BODY or MRI_BRAIN",
                "choose one of the three",
            )
        })?;
    Ok(RunSettings {
        modality,
        label_prompts: u32_list("label_prompts"),
        structures: args
            .get("structures")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        device: match string("device").as_deref().unwrap_or("auto") {
            "cuda" => DeviceRequest::Cuda,
            "cpu" => DeviceRequest::Cpu,
            _ => DeviceRequest::Auto,
        },
        upstream_root: string("upstream_root").map(|p| config.absolute(std::path::Path::new(&p))),
        timeout: Duration::from_secs_f64(
            args.get("timeout_seconds")
                .and_then(Value::as_f64)
                .unwrap_or(3600.0),
        ),
        preprocessed_brain_input: flag("preprocessed_brain_input"),
        patch_size: u32_list("patch_size"),
        sw_batch_size: args
            .get("sw_batch_size")
            .and_then(Value::as_f64)
            .map(|f| f as u32),
        cpu_postprocessing: flag("cpu_postprocessing"),
        tensorrt: flag("tensorrt"),
    })
}

fn typed(args: &Map<String, Value>, config: &Config) -> Result<RunRequest, ArgError> {
    let string = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
    let input = string("input").ok_or_else(|| {
        ArgError::new(
            "input",
            "is required",
            "pass the path of a CT or MRI NIfTI volume (.nii or .nii.gz)",
        )
    })?;
    let input = config.absolute(std::path::Path::new(&input));
    let output_dir = match string("output_dir") {
        Some(dir) => config.absolute(std::path::Path::new(&dir)),
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
        output_dir,
        ground_truth: string("ground_truth").map(|p| config.absolute(std::path::Path::new(&p))),
        settings: run_settings(args, config)?,
        batch_config: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

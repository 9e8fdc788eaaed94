//! Normalising a `run_batch` call (tool arguments or `ctmr-skill run-batch`) into one
//! validated request. Values are checked against the manifest once.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::cli::RunBatchArgs;
use crate::config::Config;
use crate::manifest::args::{validate, ArgError};
use crate::manifest::ToolDecl;
use crate::tools::run_script::request::RunSettings;

/// Where the cohort comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchInputs {
    /// Absolute paths, in the caller's order (the order the upstream processes them).
    List(Vec<PathBuf>),
    /// Absolute directory, searched recursively for names ending in `suffix`.
    Dir { dir: PathBuf, suffix: String },
}

/// A validated `run_batch` request (gates not yet evaluated).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRunRequest {
    pub inputs: BatchInputs,
    /// Absolute.
    pub output_root: PathBuf,
    /// What every volume's request gets.
    pub settings: RunSettings,
}

/// Tool arguments → request.
pub fn from_tool_arguments(
    tool: &ToolDecl,
    args: &Map<String, Value>,
    config: &Config,
) -> Result<BatchRunRequest, ArgError> {
    let checked = validate(tool, args)?;
    typed(&checked, config)
}

/// The flags of `ctmr-skill run-batch`, as tool arguments (absent flags stay absent so
/// the manifest's defaults apply).
pub fn arguments_from_cli(cli: &RunBatchArgs) -> Map<String, Value> {
    let mut map = Map::new();
    let path = |p: &Path| json!(p.to_string_lossy());
    if !cli.inputs.is_empty() {
        map.insert(
            "inputs".into(),
            Value::Array(cli.inputs.iter().map(|p| path(p)).collect()),
        );
    }
    if let Some(dir) = &cli.input_dir {
        map.insert("input_dir".into(), path(dir));
    }
    if let Some(s) = &cli.suffix {
        map.insert("suffix".into(), json!(s));
    }
    map.insert("modality".into(), json!(cli.modality));
    map.insert("output_root".into(), path(&cli.output_root));
    if let Some(p) = &cli.label_prompts {
        map.insert("label_prompts".into(), json!(p));
    }
    if !cli.structures.is_empty() {
        map.insert("structures".into(), json!(cli.structures));
    }
    map.insert("device".into(), json!(cli.device));
    if let Some(root) = &cli.upstream_root {
        map.insert("upstream_root".into(), path(root));
    }
    if let Some(t) = cli.timeout_seconds {
        map.insert("timeout_seconds".into(), json!(t));
    }
    if cli.preprocessed_brain_input {
        map.insert("preprocessed_brain_input".into(), json!(true));
    }
    cli.knobs.insert_into(&mut map);
    map
}

fn typed(args: &Map<String, Value>, config: &Config) -> Result<BatchRunRequest, ArgError> {
    let string = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_string);
    let abs = |s: String| config.absolute(Path::new(&s));
    let list: Option<Vec<PathBuf>> = args.get("inputs").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(|s| abs(s.to_string())))
            .collect()
    });
    let inputs = match (list, string("input_dir")) {
        (Some(_), Some(_)) => {
            return Err(ArgError::new(
                "input_dir",
                "cannot be combined with inputs",
                "pass either inputs (a list of volumes) or input_dir (a directory), not both",
            ))
        }
        (Some(list), None) => BatchInputs::List(list),
        (None, Some(dir)) => BatchInputs::Dir {
            dir: abs(dir),
            suffix: string("suffix").unwrap_or_else(|| ".nii.gz".into()),
        },
        (None, None) => {
            return Err(ArgError::new(
                "inputs",
                "is required (or input_dir)",
                "pass inputs: [\"/data/a.nii.gz\", ...] or input_dir: \"/data/cohort\"",
            ))
        }
    };
    let output_root = string("output_root").map(abs).ok_or_else(|| {
        ArgError::new(
            "output_root",
            "is required",
            "pass the directory for the per-volume packs and the cohort summary",
        )
    })?;
    Ok(BatchRunRequest {
        inputs,
        output_root,
        settings: crate::tools::run_script::request::run_settings(args, config)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Modality;
    use crate::upstream::DeviceRequest;
    use std::time::Duration;

    fn world() -> (tempfile::TempDir, Config, ToolDecl) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path().to_path_buf(), vec![], None, None, 1);
        let tool = crate::manifest::embedded()
            .unwrap()
            .tool("run_batch")
            .unwrap()
            .clone();
        (dir, config, tool)
    }

    #[test]
    fn list_or_directory_not_both() {
        let (_d, config, tool) = world();
        let args =
            json!({"inputs": ["a.nii.gz", "/x/b.nii"], "output_root": "out", "label_prompts": [3]});
        let r = from_tool_arguments(&tool, args.as_object().unwrap(), &config).unwrap();
        assert_eq!(
            r.inputs,
            BatchInputs::List(vec![config.cwd.join("a.nii.gz"), PathBuf::from("/x/b.nii")])
        );
        assert_eq!(r.output_root, config.cwd.join("out"));
        assert_eq!(r.settings.label_prompts, Some(vec![3]));
        assert_eq!(r.settings.modality, Modality::CtBody);

        let args = json!({"input_dir": "/data", "output_root": "/o"});
        let r = from_tool_arguments(&tool, args.as_object().unwrap(), &config).unwrap();
        assert_eq!(
            r.inputs,
            BatchInputs::Dir {
                dir: PathBuf::from("/data"),
                suffix: ".nii.gz".into()
            }
        );

        let both = json!({"input_dir": "/data", "inputs": ["/a.nii.gz"], "output_root": "/o"});
        let e = from_tool_arguments(&tool, both.as_object().unwrap(), &config).unwrap_err();
        assert_eq!(e.argument, "input_dir");
        let neither = json!({"output_root": "/o"});
        let e = from_tool_arguments(&tool, neither.as_object().unwrap(), &config).unwrap_err();
        assert_eq!(e.argument, "inputs");
        let no_root = json!({"inputs": ["/a.nii.gz"]});
        let e = from_tool_arguments(&tool, no_root.as_object().unwrap(), &config).unwrap_err();
        assert_eq!(e.argument, "output_root");
        let empty = json!({"inputs": [], "output_root": "/o"});
        let e = from_tool_arguments(&tool, empty.as_object().unwrap(), &config).unwrap_err();
        assert_eq!(e.argument, "inputs");
    }

    #[test]
    fn cli_flags_map_to_the_same_request() {
        let (_d, config, tool) = world();
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            batch: RunBatchArgs,
        }
        let cli = Cli::try_parse_from([
            "run-batch",
            "/a.nii.gz",
            "--modality",
            "MRI_BODY",
            "-o",
            "/o",
            "--label-prompts",
            "3,14",
            "--device",
            "cpu",
            "--timeout-seconds",
            "60",
            "--patch-size",
            "64,64,64",
            "--cpu-postprocessing",
        ])
        .unwrap();
        let map = arguments_from_cli(&cli.batch);
        let r = from_tool_arguments(&tool, &map, &config).unwrap();
        assert_eq!(r.settings.modality, Modality::MriBody);
        assert_eq!(r.settings.device, DeviceRequest::Cpu);
        assert_eq!(r.settings.timeout, Duration::from_secs(60));
        assert_eq!(r.settings.patch_size, Some(vec![64, 64, 64]));
        assert!(r.settings.cpu_postprocessing && !r.settings.tensorrt);
    }
}

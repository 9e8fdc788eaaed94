//! Normalising a `run_batch` call (tool arguments or `ctmr-skill run-batch`) into one
//! validated request. Values are checked against the manifest once.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use super::slurm::options::{Executor, SlurmArgs};
use crate::config::Config;
use crate::manifest::args::ArgError;
use crate::tools::run_script::request::{RunSettings, SettingsArgs};

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
    /// Here (default) or as a Slurm job array.
    pub executor: Executor,
}

/// `run_batch`'s arguments after the manifest checked them (defaults filled in).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct BatchArgs {
    pub inputs: Option<Vec<String>>,
    pub input_dir: Option<String>,
    pub suffix: String,
    /// Required by the manifest, so never absent here.
    pub output_root: String,
    #[serde(flatten)]
    pub settings: SettingsArgs,
    #[serde(flatten)]
    pub slurm: SlurmArgs,
}

/// Typed arguments → request: a list or a directory (not both), paths absolute.
pub(crate) fn request(args: BatchArgs, config: &Config) -> Result<BatchRunRequest, ArgError> {
    let abs = |s: String| config.absolute(Path::new(&s));
    let inputs = match (args.inputs, args.input_dir) {
        (Some(_), Some(_)) => {
            return Err(ArgError::new(
                "input_dir",
                "cannot be combined with inputs",
                "pass either inputs (a list of volumes) or input_dir (a directory), not both",
            ))
        }
        (Some(list), None) => BatchInputs::List(list.into_iter().map(abs).collect()),
        (None, Some(dir)) => BatchInputs::Dir {
            dir: abs(dir),
            suffix: args.suffix,
        },
        (None, None) => {
            return Err(ArgError::new(
                "inputs",
                "is required (or input_dir)",
                "pass inputs: [\"/data/a.nii.gz\", ...] or input_dir: \"/data/cohort\"",
            ))
        }
    };
    Ok(BatchRunRequest {
        inputs,
        output_root: abs(args.output_root),
        settings: args.settings.settings(config)?,
        executor: args.slurm.executor(&config.slurm_allow_flags)?,
    })
}

/// A scratch working directory, a config over it and `run_batch`'s declaration: what
/// the tests of the request and of its CLI flags start from.
#[cfg(test)]
pub(crate) fn test_world() -> (tempfile::TempDir, Config, crate::manifest::ToolDecl) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path().to_path_buf(), vec![], None, None, 1);
    let tool = crate::manifest::embedded()
        .unwrap()
        .tool(<super::RunBatch as crate::tools::Tool>::NAME)
        .unwrap()
        .clone();
    (dir, config, tool)
}

/// The registry's parse path (the one every call takes) of `run_batch`, for tests.
#[cfg(test)]
pub(crate) fn parse_for_tests(
    tool: &crate::manifest::ToolDecl,
    args: &serde_json::Map<String, serde_json::Value>,
    config: &Config,
) -> Result<BatchRunRequest, ArgError> {
    use std::sync::Arc;
    let manifest = Arc::new(crate::manifest::embedded().unwrap());
    let slots = Arc::new(crate::runner::slots::RunSlots::new(1));
    let runner = super::RunBatch::new(Arc::new(config.clone()), manifest, slots);
    crate::tools::registry::parse(&runner, tool, args).map(|p| p.request)
}

#[cfg(test)]
mod tests {
    use super::parse_for_tests as from_tool_arguments;
    use super::test_world as world;
    use super::*;
    use crate::labels::Modality;
    use serde_json::json;

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
}

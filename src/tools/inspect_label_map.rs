//! `inspect_label_map`: statistics and geometry of a label map, through the same
//! engine as `ctmr-skill inspect` and the evidence builder.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::inspect::{inspect, InspectOptions, InspectReport};
use crate::labels::LabelTable;
use crate::manifest::args::validate;
use crate::manifest::Manifest;
use crate::tools::ToolOutcome;

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectRequest {
    pub mask: PathBuf,
    pub options: InspectOptions,
    pub upstream_root: Option<PathBuf>,
}

pub fn parse(
    manifest: &Manifest,
    args: &Map<String, Value>,
    config: &Config,
) -> Result<InspectRequest, String> {
    let tool = manifest
        .tool("inspect_label_map")
        .expect("manifest declares inspect_label_map");
    let args = validate(tool, args).map_err(|e| e.to_string())?;
    let path = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .map(|p| config.absolute(std::path::Path::new(p)))
    };
    Ok(InspectRequest {
        mask: path("mask").expect("validated: mask is required"),
        options: InspectOptions {
            components: args
                .get("components")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            reference: path("reference"),
            ground_truth: path("ground_truth"),
            ..InspectOptions::default()
        },
        upstream_root: path("upstream_root"),
    })
}

/// Run an inspection and name the ids from the bundle's label table when one is found.
/// Returns the report and, when no table was found, why.
pub fn execute(
    request: &InspectRequest,
    config: &Config,
) -> Result<(InspectReport, Option<String>), String> {
    let mut report = inspect(&request.mask, &request.options).map_err(|e| e.to_string())?;
    let table = load_table(request.upstream_root.as_deref(), config);
    let note = match &table {
        Ok(table) => {
            report.attach_names(|id| {
                u32::try_from(id)
                    .ok()
                    .and_then(|i| table.name(i))
                    .map(str::to_string)
            });
            None
        }
        Err(e) => Some(e.clone()),
    };
    Ok((report, note))
}

/// The label table of the resolved bundle root (explicit, env, workbench).
pub fn load_table(
    explicit: Option<&std::path::Path>,
    config: &Config,
) -> Result<LabelTable, String> {
    let resolution = crate::upstream::resolve_root(
        explicit,
        config.env_root.as_deref().map(std::ffi::OsStr::new),
        &config.cwd,
    );
    let root = resolution.require().map_err(|e| e.to_string())?;
    LabelTable::load_bundle(root).map_err(|e| e.to_string())
}

pub fn outcome(result: Result<(InspectReport, Option<String>), String>) -> ToolOutcome {
    match result {
        Err(message) => ToolOutcome::Failure {
            message,
            structured: None,
        },
        Ok((report, note)) => {
            let mut summary = format!(
                "{} labels in {:?} ({} voxels, {:.4} mL each); non-integer {}, NaN {}, value 255 {}.",
                report.labels.len(),
                report.mask.shape,
                report.total_voxels,
                report.voxel_volume_ml,
                report.non_integer_voxels,
                report.nan_voxels,
                report.value_255_voxels
            );
            if let Some(note) = note {
                summary.push_str(&format!(" Ids are unnamed: {note}"));
            }
            summary.push_str(" Not for clinical use.");
            ToolOutcome::Success {
                structured: serde_json::to_value(&report).expect("report serialises"),
                summary,
            }
        }
    }
}

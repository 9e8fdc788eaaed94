//! `ctmr-skill inspect`: its clap flags and its function, the `inspect_label_map`
//! tool through the registry; `--labels` names the ids from a label file instead.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map};

use super::call::{call_tool, path_arg};
use super::error::CliError;
use super::exit_codes::ExitCode;
use super::out;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::tools::inspect_label_map::InspectLabelMap;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The label map.
    pub mask: PathBuf,
    /// An image (NIfTI, or a DICOM series: directory or .zip): every geometry difference
    /// from the label map, and intensity statistics per label when it is on the label
    /// map's voxel grid (same shape).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// A reference label map: per-label Dice and IoU.
    #[arg(long)]
    pub ground_truth: Option<PathBuf>,
    /// Bundle root whose label table names the ids.
    #[arg(long, conflicts_with = "labels")]
    pub upstream_root: Option<PathBuf>,
    /// A labels.json sidecar naming the ids.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Count 26-connected components per label.
    #[arg(long)]
    pub components: bool,
    /// JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `ctmr-skill inspect`: the report as a table (or JSON) on stdout; exit 2 on bad
/// input, or when a bundle root named explicitly gives no names.
pub(super) fn inspect(
    args: &InspectArgs,
    config: &Config,
    manifest: Manifest,
) -> Result<ExitCode, CliError> {
    let table = match &args.labels {
        Some(file) => Some(
            crate::labels::LabelTable::load_labels_json(&config.absolute(file))
                .map_err(|e| CliError::Input(e.to_string()))?,
        ),
        None => None,
    };
    let mut arguments = Map::new();
    arguments.insert("mask".into(), path_arg(&args.mask));
    let paths = [
        ("reference", &args.reference),
        ("ground_truth", &args.ground_truth),
        ("upstream_root", &args.upstream_root),
    ];
    for (name, path) in paths {
        if let Some(p) = path {
            arguments.insert(name.into(), path_arg(p));
        }
    }
    arguments.insert("components".into(), json!(args.components));
    let mut output = call_tool::<InspectLabelMap>(config, manifest, arguments)?;
    if let (Some(_), Some(why)) = (&args.upstream_root, &output.unnamed) {
        return Err(CliError::Input(why.to_string()));
    }
    if let Some(table) = &table {
        output.report.attach_names(|id| {
            u32::try_from(id)
                .ok()
                .and_then(|i| table.name(i))
                .map(str::to_string)
        });
    }
    if args.json {
        out::json(&output.report);
    } else {
        out::text(&output.report.render_table());
    }
    Ok(ExitCode::Success)
}

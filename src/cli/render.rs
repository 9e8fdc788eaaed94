//! `ctmr-skill render`: its clap flags, the `render_overlay` tool's arguments. The
//! default window is the manifest's (see [`super::command`]); `--out` defaults to
//! `overlay.png` here because the tool has no default file. Its function calls the
//! tool through the registry.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map};

use super::call::{call_tool, path_arg};
use super::error::CliError;
use super::exit_codes::ExitCode;
use super::out;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::tools::render_overlay::RenderOverlay;

/// `ctmr-skill render`: the arguments of the `render_overlay` tool.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// The label map (.nii or .nii.gz).
    pub mask: PathBuf,
    /// The image the mask was segmented from (same voxel grid), drawn under it.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Class names or ids to show, comma-separated (default: the largest, up to 6).
    #[arg(long, value_delimiter = ',')]
    pub structures: Vec<String>,
    /// auto | soft_tissue | bone | lung | percentile.
    #[arg(long)]
    pub window: String,
    /// Where to write the PNG.
    #[arg(long, short = 'o', default_value = "overlay.png")]
    pub out: PathBuf,
    /// Bundle whose label table names the classes (default: as for run; else built in).
    #[arg(long)]
    pub upstream_root: Option<PathBuf>,
}

/// `ctmr-skill render`: the picture's description as JSON on stdout; exit 2 on bad input.
pub(super) fn render(
    args: &RenderArgs,
    config: &Config,
    manifest: Manifest,
) -> Result<ExitCode, CliError> {
    let mut arguments = Map::new();
    arguments.insert("mask".into(), path_arg(&args.mask));
    if let Some(image) = &args.image {
        arguments.insert("image".into(), path_arg(image));
    }
    if !args.structures.is_empty() {
        arguments.insert("structures".into(), json!(args.structures));
    }
    arguments.insert("window".into(), json!(args.window));
    arguments.insert("out".into(), path_arg(&args.out));
    if let Some(root) = &args.upstream_root {
        arguments.insert("upstream_root".into(), path_arg(root));
    }
    out::json(&call_tool::<RenderOverlay>(config, manifest, arguments)?);
    Ok(ExitCode::Success)
}

//! `ctmr-skill render`: its clap flags, the `render_overlay` tool's arguments. The
//! default window is the manifest's (see [`super::command`]); `--out` defaults to
//! `overlay.png` here because the tool has no default file. (The subcommand's function
//! is still in `commands.rs`.)

use std::path::PathBuf;

use clap::Args;

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

//! `ctmr-skill inspect`: its clap flags. (The subcommand's function is still in
//! `commands.rs`.)

use std::path::PathBuf;

use clap::Args;

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

//! `ctmr-skill labels`: its clap flags. (The subcommand's function is still in
//! `commands.rs`.)

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct LabelsArgs {
    /// Case-insensitive substring filter.
    pub query: Option<String>,
    /// Resolve these names to ids (repeatable).
    #[arg(long)]
    pub resolve: Vec<String>,
    /// Restrict to a modality's everything-set.
    #[arg(long)]
    pub modality: Option<String>,
    #[arg(long)]
    pub upstream_root: Option<PathBuf>,
    /// JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

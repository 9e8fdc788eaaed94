//! `ctmr-skill schema`: the JSON Schemas generated from `skill_manifest.yaml` and the
//! Rust types, written under `schemas/` (or checked to be current, which CI does).

use std::path::PathBuf;

use clap::Args;

use super::error::CliError;
use super::exit_codes::ExitCode;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::tools::CtmrTools;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Repository root to write schemas/ into.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Only check that the files on disk are current (exit 1 when they drifted).
    #[arg(long)]
    pub check: bool,
}

/// Write (or check) the generated schema files; a drifted file is an error.
pub(super) fn schema(
    args: &SchemaArgs,
    config: Config,
    manifest: Manifest,
) -> Result<ExitCode, CliError> {
    let tools = CtmrTools::new(config, manifest).map_err(|e| CliError::Tools(e.to_string()))?;
    let mut drifted = Vec::new();
    for (relative, content) in tools.schema_files() {
        let path = args.root.join(&relative);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(content.as_str()) {
            continue;
        }
        if args.check {
            drifted.push(relative);
            continue;
        }
        crate::atomic::write(&path, content.as_bytes()).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
        eprintln!("wrote {}", path.display());
    }
    if drifted.is_empty() {
        Ok(ExitCode::Success)
    } else {
        Err(CliError::SchemasOutOfDate(drifted))
    }
}

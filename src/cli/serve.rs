//! `ctmr-skill serve`: the MCP server on stdio, with what the operator decides for
//! every client (bundle roots, sandbox, warm workers, Slurm flags) taken from flags.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::error::CliError;
use super::exit_codes::ExitCode;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::tools::inspect_label_map::InspectLabelMap;
use crate::tools::list_labels::ListLabels;
use crate::tools::run_script::RunScript;
use crate::tools::verify_evidence::VerifyEvidence;
use crate::tools::{CtmrTools, Tool};

/// `ctmr-skill serve`: what the operator decides for every client.
#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// A bundle root clients may use (repeatable): `DIR` or `NAME=DIR`. The first is
    /// the default. Clients choose among these (and $NV_SEGMENT_CTMR_ROOT as `env`,
    /// the workbench root as `default`) by name or path, and cannot name another.
    #[arg(long = "bundle-root", value_name = "[NAME=]DIR")]
    pub bundle_roots: Vec<String>,
    /// Refuse to run the upstream where the Landlock sandbox cannot be applied
    /// (default: run unconfined and say so in the evidence).
    #[arg(long)]
    pub require_sandbox: bool,
    /// Run the documented command for every call instead of keeping a warm worker
    /// (a Python process with the model loaded) per bundle and device.
    #[arg(long, conflicts_with = "warm")]
    pub no_warm: bool,
    /// Start the default bundle's warm worker now (Python, torch, MONAI imported, CUDA
    /// initialised), not on the first call; the model itself loads on the first call.
    #[arg(long)]
    pub warm: bool,
    /// An sbatch flag clients may add to a Slurm cohort in `slurm_flags`, e.g.
    /// `--constraint` (repeatable; adds to CTMR_SKILL_SLURM_ALLOW_FLAGS).
    #[arg(
        long = "slurm-allow-flag",
        value_name = "--FLAG",
        allow_hyphen_values = true
    )]
    pub slurm_allow_flags: Vec<String>,
}

/// MCP over stdio until stdin closes.
pub(super) fn serve(
    args: &ServeArgs,
    mut config: Config,
    manifest: Manifest,
) -> Result<ExitCode, CliError> {
    config
        .declare_roots(&args.bundle_roots)
        .map_err(|e| CliError::flag("bundle-root", e.to_string()))?;
    config.root_policy = crate::config::RootPolicy::Declared;
    config.require_sandbox |= args.require_sandbox;
    config.warm_workers = !args.no_warm;
    config
        .slurm_allow_flags
        .extend(args.slurm_allow_flags.iter().cloned());
    crate::server::init_stderr_logging();
    let tools = CtmrTools::new(config, manifest).map_err(|e| CliError::Tools(e.to_string()))?;
    let tools = Arc::new(tools);
    let rt = super::runtime();
    if let Some(prewarm) = tools.prewarm().filter(|_| args.warm) {
        rt.spawn(async move {
            match prewarm.await {
                Ok(line) => tracing::info!("{line}"),
                Err(e) => tracing::warn!("serve --warm: no worker started: {e}"),
            }
        });
    }
    let served = rt.block_on(crate::server::serve_stdio(tools, options()));
    // A tool that ignores cancellation must not keep the process alive after stdin
    // closed; upstream process groups are killed by their supervisors' drop guards.
    rt.shutdown_timeout(Duration::from_secs(1));
    served.map_err(|e| CliError::Server(e.to_string()))?;
    Ok(ExitCode::Success)
}

/// The server's name, version and the instructions a client shows its model.
fn options() -> crate::server::ServerOptions {
    crate::server::ServerOptions {
        name: "ctmr-skill".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        instructions: format!(
            "Runs NVIDIA NV-Segment-CTMR (MONAI bundle, 345 CT/MRI classes) on NIfTI volumes via its documented \
             entry point and returns verifiable evidence. Use {} to find class ids, {} to segment, \
             {} for mask statistics, {} to check a pack. {}",
            ListLabels::NAME,
            RunScript::NAME,
            InspectLabelMap::NAME,
            VerifyEvidence::NAME,
            crate::NOT_FOR_CLINICAL_USE
        ),
    }
}

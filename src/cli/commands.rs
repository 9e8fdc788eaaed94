//! The one match over [`Command`]: each arm calls its subcommand, which returns a
//! `Result<ExitCode, CliError>` for [`super::main`] to report.

use super::error::CliError;
use super::exit_codes::ExitCode;
use super::progress_bar::ProgressMode;
use super::Command;
use crate::config::Config;

/// Run `command` with the embedded manifest.
pub(crate) fn dispatch(
    command: Command,
    config: Config,
    progress: ProgressMode,
) -> Result<ExitCode, CliError> {
    let manifest = crate::manifest::embedded().map_err(|e| CliError::Manifest(e.to_string()))?;
    match command {
        Command::Serve(args) => super::serve::serve(&args, config, manifest),
        Command::Run(args) => super::run::run(&args, config, manifest, progress),
        Command::RunBatch(args) => super::run_batch::run_batch(&args, config, manifest, progress),
        Command::Inspect(args) => super::inspect::inspect(&args, &config, manifest),
        Command::Labels(args) => super::labels::labels(&args, &config, manifest),
        Command::Render(args) => super::render::render(&args, &config, manifest),
        Command::Verify(args) => super::verify::verify(&args, &config),
        Command::Schema(args) => super::schema::schema(&args, config, manifest),
        Command::Doctor(args) => Ok(super::doctor::doctor(&args, &config)),
    }
}

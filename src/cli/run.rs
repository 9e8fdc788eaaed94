//! `ctmr-skill run`: one upstream run through the `run_script` tool (its flags are
//! [`RunArgs`], beside the tool's arguments); progress on stderr, the evidence (and
//! after `--verify` the trust summary) on stdout.

use std::sync::Arc;

use super::call::in_process;
use super::error::CliError;
use super::exit_codes::ExitCode;
use super::out;
use super::progress::{run_bar_label, run_interruptible, ProgressOutput};
use super::progress_bar::{ProgressMode, Units};
use super::RunArgs;
use crate::call::{Progress, ProgressSink};
use crate::config::Config;
use crate::manifest::Manifest;
use crate::tools::run_script::RunScript;

/// `ctmr-skill run`: the evidence JSON on stdout, its summary on stderr; the exit code
/// is [`ExitCode::of_call`]'s.
pub(super) fn run(
    args: &RunArgs,
    config: Config,
    manifest: Manifest,
    mode: ProgressMode,
) -> Result<ExitCode, CliError> {
    let tools = in_process(config, manifest)?;
    let arguments = args.to_arguments();
    let plain: ProgressSink = Arc::new(|p: Progress| {
        if let Some(message) = p.message {
            eprintln!("[{:>3.0}%] {message}", p.progress);
        }
    });
    let shown = std::sync::Mutex::new(String::new());
    let progress = ProgressOutput::new(mode, Units::Percent, plain, move |p: &Progress| {
        let message = p.message.as_deref()?;
        let mut shown = shown.lock().unwrap_or_else(|e| e.into_inner());
        *shown = run_bar_label(&shown, message);
        Some(shown.clone())
    });
    let outcome = run_interruptible("run", &progress, |ctx| {
        tools.call_typed::<RunScript>(&arguments, ctx)
    });
    let code = ExitCode::of_call(&outcome);
    let output = outcome.map_err(CliError::Call)?.output;
    eprintln!("{}", output.evidence.summary);
    match &output.trust_summary {
        Some(trust) => {
            eprintln!("{}", trust.summary);
            out::json(&output);
        }
        None => out::json(&output.evidence),
    }
    Ok(code)
}

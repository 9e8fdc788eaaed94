//! Command-line interface: parse once into a typed command, dispatch, and map every
//! outcome to a documented exit code ([`ExitCode`]). [`main`] is the one choke point
//! where errors meet the user: subcommands return a [`CliError`] and it prints it, as
//! `ctmr-skill <subcommand>: <message>`, and picks the exit code.
//!
//! One file per subcommand, its clap flags beside its function (`run`'s flags are
//! [`RunArgs`], beside the `run_script` tool's arguments): `serve`, `run`,
//! `run-batch`, `inspect`, `labels`, `render`, `verify`, `schema`, `doctor`. Each
//! returns `Result<ExitCode, CliError>`; [`commands::dispatch`] is the one match over
//! [`Command`], `call` the way into a tool (the registry, as the server uses it),
//! `progress` the progress and interrupt handling `run` and `run-batch` share, and
//! [`ExitCode::of_call`] the one place a finished run becomes an exit code.

mod call;
pub(crate) mod commands;
mod doctor;
mod error;
mod exit_codes;
mod inspect;
mod labels;
mod out;
mod progress;
pub(crate) mod progress_bar;
mod render;
mod run;
mod run_batch;
mod schema;
mod serve;
mod verify;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::Value;

use crate::config::Config;
pub(crate) use crate::tools::run_script::argv::RunArgs;
pub(crate) use doctor::DoctorArgs;
pub(crate) use error::CliError;
pub use exit_codes::ExitCode;
pub(crate) use inspect::InspectArgs;
pub(crate) use labels::LabelsArgs;
use progress_bar::ProgressMode;
pub(crate) use render::RenderArgs;
pub(crate) use run_batch::RunBatchArgs;
pub(crate) use schema::SchemaArgs;
pub(crate) use serve::ServeArgs;
pub(crate) use verify::VerifyArgs;

/// Run NV-Segment-CTMR through its documented MONAI entry point and return verifiable
/// evidence. Research and benchmarking only: not for clinical use.
#[derive(Debug, Parser)]
#[command(name = "ctmr-skill", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Python interpreter for the upstream bundle (default: $CTMR_SKILL_PYTHON, then
    /// ./.venv/bin/python, then the .venv beside the binary, then python3).
    #[arg(long, global = true, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Progress of run and run-batch on stderr: auto (a bar redrawn in place when
    /// stderr is a terminal, plain lines otherwise), bar, plain, or none.
    #[arg(long, global = true, value_enum, value_name = "MODE", default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the tools over MCP on stdio (JSON-RPC 2.0, one message per line).
    Serve(ServeArgs),
    /// Run the upstream bundle on one volume; evidence JSON on stdout, pack in --output-dir.
    Run(RunArgs),
    /// Run the upstream's batch config once over a cohort; one evidence pack per volume
    /// and cohort.json / cohort_volumes.csv in --output-root (resumable).
    RunBatch(RunBatchArgs),
    /// Statistics and geometry of a label map (one streamed pass).
    Inspect(InspectArgs),
    /// List the upstream label table, or resolve names to ids.
    Labels(LabelsArgs),
    /// Draw a label map (over its image) as a PNG: axial, coronal and sagittal planes
    /// through each structure's centroid. The picture's description as JSON on stdout.
    Render(RenderArgs),
    /// Verify an evidence pack with ct_segmentation_quality_v1 (exit 0 pass, 1 fail, 2 usage).
    Verify(VerifyArgs),
    /// Write the JSON Schemas generated from skill_manifest.yaml (or check they are current).
    Schema(SchemaArgs),
    /// Report the Python runtime, MONAI, torch, CUDA, the bundle root and the model file.
    Doctor(DoctorArgs),
}

impl Command {
    /// The subcommand's name on the command line, as errors are prefixed with it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Serve(_) => "serve",
            Command::Run(_) => "run",
            Command::RunBatch(_) => "run-batch",
            Command::Inspect(_) => "inspect",
            Command::Labels(_) => "labels",
            Command::Render(_) => "render",
            Command::Verify(_) => "verify",
            Command::Schema(_) => "schema",
            Command::Doctor(_) => "doctor",
        }
    }
}

/// A subcommand whose stdout is closed early (`ctmr-skill inspect ... | head`) ends
/// quietly, as command-line tools do, instead of panicking on the failed write. (The
/// server keeps Rust's default: a closed stdout is an error it handles, ending the
/// session and its children in order.)
fn quiet_on_broken_pipe() {
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The command line, with every value flag of `run`, `run-batch` and `render`
/// defaulting to its argument's default in the manifest: the clap structs state none
/// of their own, so the manifest is the one place a default lives, and `--help` shows it.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let Ok(manifest) = crate::manifest::embedded() else {
        return cmd; // a build defect the manifest's tests catch; the tools refuse later
    };
    use crate::tools::{
        render_overlay::RenderOverlay, run_batch::RunBatch, run_script::RunScript, Tool,
    };
    let faces = [
        ("run", RunScript::NAME),
        ("run-batch", RunBatch::NAME),
        ("render", RenderOverlay::NAME),
    ];
    for (sub, tool) in faces {
        if let Some(decl) = manifest.tool(tool) {
            cmd = cmd.mut_subcommand(sub, |c| manifest_defaults(c, decl));
        }
    }
    cmd
}

/// `cmd` with each flag that takes a value defaulting to the manifest's default for
/// the argument of the same name (switches stay off unless given); a flag with a
/// default is never required.
fn manifest_defaults(mut cmd: clap::Command, decl: &crate::manifest::ToolDecl) -> clap::Command {
    for arg in &decl.arguments {
        let takes_value = cmd
            .get_arguments()
            .any(|a| a.get_id() == arg.name.as_str() && a.get_action().takes_values());
        let Some(default) = arg.default_json().filter(|_| takes_value) else {
            continue;
        };
        let text = match default {
            Value::String(s) => s,
            other => other.to_string(),
        };
        // clap keeps defaults as `&'static str`; a few short strings, once per process.
        let text: &'static str = Box::leak(text.into_boxed_str());
        cmd = cmd.mut_arg(arg.name.as_str(), |a| a.default_value(text).required(false));
    }
    cmd
}

/// Parse the process arguments, run, and map the outcome to an exit code: the one
/// place that prints an error (clap prints its own usage errors).
pub fn main() -> std::process::ExitCode {
    let cli = match command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            let code = if err.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Success
            };
            return code.into();
        }
    };
    let name = cli.command.name();
    if !matches!(cli.command, Command::Serve(_)) {
        quiet_on_broken_pipe();
    }
    let code = run(cli).unwrap_or_else(|e| report(name, &e));
    // The result is on stdout only once it is flushed: a failed write overrides.
    match out::finish() {
        Ok(()) => code.into(),
        Err(e) => report(name, &CliError::Stdout(e)).into(),
    }
}

/// The configuration from the environment and the flags, then the subcommand.
fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let mut config = Config::from_env().map_err(|e| CliError::Environment(e.to_string()))?;
    if let Some(python) = &cli.python {
        config.python = Some(config.absolute(python));
    }
    commands::dispatch(cli.command, config, cli.progress)
}

/// `error` on stderr, after the subcommand's name when it is the subcommand's; its code.
fn report(subcommand: &str, error: &CliError) -> ExitCode {
    if error.in_subcommand() {
        eprintln!("ctmr-skill {subcommand}: {error}");
    } else {
        eprintln!("ctmr-skill: {error}");
    }
    if let Some(document) = error.document() {
        out::json(&document);
    }
    error.exit_code()
}

/// The multi-threaded runtime a subcommand's async work runs on.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::run_batch::request::parse_for_tests as from_tool_arguments;
    use crate::tools::run_batch::request::test_world as world;
    use std::time::Duration;

    #[test]
    fn the_command_line_takes_its_defaults_from_the_manifest() {
        let (_d, config, tool) = world();
        let parse = |argv: &[&str]| {
            let matches = command().try_get_matches_from(argv).unwrap();
            Cli::from_arg_matches(&matches).unwrap().command
        };
        let Command::RunBatch(batch) = parse(&["ctmr-skill", "run-batch", "/a.nii.gz", "-o", "/o"])
        else {
            panic!("not run-batch");
        };
        assert_eq!(batch.modality.as_deref(), Some("CT_BODY"));
        assert_eq!(batch.device.as_deref(), Some("auto"));
        assert_eq!(batch.suffix.as_deref(), Some(".nii.gz"));
        let r = from_tool_arguments(&tool, &batch.to_arguments(), &config).unwrap();
        assert_eq!(r.settings.timeout, Duration::from_secs(3600));
        let Command::Run(run) = parse(&["ctmr-skill", "run", "/a.nii.gz"]) else {
            panic!("not run");
        };
        assert_eq!(run.modality.as_deref(), Some("CT_BODY"));
        assert_eq!(run.device.as_deref(), Some("auto"));
        assert_eq!(run.timeout_seconds, Some(3600.0));
        // The structs alone state none; --help shows the manifest's.
        let bare = <RunArgs as clap::Args>::augment_args(clap::Command::new("run"));
        let mut valued = bare
            .get_arguments()
            .filter(|a| a.get_action().takes_values());
        assert!(valued.all(|a| a.get_default_values().is_empty()));
        let help = command()
            .find_subcommand_mut("run")
            .unwrap()
            .render_help()
            .to_string();
        assert!(
            help.contains("[default: CT_BODY]") && help.contains("[default: 3600]"),
            "{help}"
        );
    }

    #[test]
    fn render_takes_its_default_window_from_the_manifest() {
        let matches = command()
            .try_get_matches_from(["ctmr-skill", "render", "/m.nii.gz"])
            .unwrap();
        let Command::Render(render) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!("not render");
        };
        assert_eq!(render.window, "auto");
        assert_eq!(render.out, PathBuf::from("overlay.png"));
        let bare = <RenderArgs as clap::Args>::augment_args(clap::Command::new("render"));
        let window = bare.get_arguments().find(|a| a.get_id() == "window");
        assert!(window.unwrap().get_default_values().is_empty());
    }
}

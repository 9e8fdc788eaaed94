//! The one match over [`Command`]: each arm calls its subcommand and brings the
//! outcome to a `Result<ExitCode, CliError>`, which [`super::main`] reports. Also, for
//! now, the functions of `run`, `run-batch`, `inspect`, `render` and `labels` (which
//! still print their own errors and return the `u8` codes of `exit_codes.rs`),
//! and the progress output `run` and `run-batch` share.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::error::CliError;
use super::exit_codes::{
    ExitCode, EXIT_CANCELLED, EXIT_ERROR, EXIT_OK, EXIT_TIMED_OUT, EXIT_UPSTREAM_FAILED, EXIT_USAGE,
};
use super::out;
use super::progress_bar::{ProgressMode, ProgressStyle, TerminalBar, Units};
use super::runtime;
use super::{Command, InspectArgs, LabelsArgs, RunArgs, RunBatchArgs};
use crate::call::{CallContext, Progress, ProgressSink};
use crate::config::Config;
use crate::evidence::cohort::CohortStatus;
use crate::evidence::RunStatus;
use crate::manifest::Manifest;
use crate::tools::registry::{FailureKind, ToolFailure};
use crate::tools::run_script::RunScript;
use crate::tools::CtmrTools;

/// Run `command`; the subcommands that answer in `u8` have their code typed here.
pub(crate) fn dispatch(
    command: Command,
    config: Config,
    progress: ProgressMode,
) -> Result<ExitCode, CliError> {
    let manifest = crate::manifest::embedded().map_err(|e| CliError::Manifest(e.to_string()))?;
    let typed = ExitCode::from_u8;
    match command {
        Command::Serve(args) => super::serve::serve(&args, config, manifest),
        Command::Run(args) => Ok(typed(run(&args, config, manifest, progress))),
        Command::RunBatch(args) => Ok(typed(run_batch(&args, config, manifest, progress))),
        Command::Inspect(args) => Ok(typed(inspect(&args, &config))),
        Command::Labels(args) => Ok(typed(labels(&args, &config))),
        Command::Render(args) => Ok(typed(render(&args, &config))),
        Command::Verify(args) => super::verify::verify(&args, &config),
        Command::Schema(args) => super::schema::schema(&args, config, manifest),
        Command::Doctor(args) => Ok(super::doctor::doctor(&args, &config)),
    }
}

/// `ctmr-skill run`: one upstream run; evidence JSON on stdout, progress on stderr.
fn run(args: &RunArgs, config: Config, manifest: Manifest, mode: ProgressMode) -> u8 {
    let Some(tools) = in_process("run", config, manifest) else {
        return EXIT_ERROR;
    };
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
    let output = match outcome {
        Ok(answer) => answer.output,
        Err(failure) => return failed("run", failure),
    };
    eprintln!("{}", output.evidence.summary);
    if let Some(trust) = &output.trust_summary {
        eprintln!("{}", trust.summary);
        out::json(&output);
        return if trust.trusted { EXIT_OK } else { EXIT_ERROR };
    }
    out::json(&output.evidence);
    match output.evidence.status {
        RunStatus::Succeeded => EXIT_OK,
        RunStatus::TimedOut => EXIT_TIMED_OUT,
        RunStatus::Cancelled => EXIT_CANCELLED,
        RunStatus::Refused => EXIT_USAGE,
        RunStatus::UpstreamFailed => EXIT_UPSTREAM_FAILED,
    }
}

/// The tools for an in-process call by `command`; `None` (said on stderr) when the
/// manifest and the implementations disagree.
fn in_process(command: &str, config: Config, manifest: Manifest) -> Option<CtmrTools> {
    CtmrTools::in_process(config, manifest)
        .map_err(|e| eprintln!("ctmr-skill {command}: {e}"))
        .ok()
}

/// A run tool's call that ran nothing: a refusal (its document on stdout, exit 2) or a
/// run that could not start (exit 1).
fn failed(command: &str, failure: ToolFailure) -> u8 {
    eprintln!("ctmr-skill {command}: {}", failure.message);
    match failure.kind {
        FailureKind::Refused => {
            out::json(&failure.document.unwrap_or_else(
                || json!({"status": RunStatus::Refused, "message": failure.message}),
            ));
            EXIT_USAGE
        }
        FailureKind::NotStarted | FailureKind::Failed => {
            out::json(&json!({"status": "not_started", "message": failure.message}));
            EXIT_ERROR
        }
    }
}

/// `ctmr-skill run-batch`: cohort JSON on stdout, one progress line per change on stderr.
fn run_batch(args: &RunBatchArgs, config: Config, manifest: Manifest, mode: ProgressMode) -> u8 {
    use crate::tools::run_batch::RunBatch;
    let Some(tools) = in_process("run-batch", config, manifest) else {
        return EXIT_ERROR;
    };
    let arguments = args.to_arguments();
    // Plain lines, one each time the count or the volume in flight changes.
    let last = std::sync::Mutex::new(String::new());
    let plain: ProgressSink = Arc::new(move |p: Progress| {
        let Some(message) = p.message else { return };
        // Elapsed time and the estimate change every tick; the rest is the news.
        let key: Vec<&str> = message
            .split("; ")
            .filter(|part| !part.ends_with(" elapsed") && !part.ends_with(" left"))
            .collect();
        let key = key.join("; ");
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if *last != key {
            eprintln!("ctmr-skill run-batch: {message}");
            *last = key;
        }
    });
    let progress = ProgressOutput::new(mode, Units::Count, plain, batch_bar_label);
    let outcome = run_interruptible("run-batch", &progress, |ctx| {
        tools.call_typed::<RunBatch>(&arguments, ctx)
    });
    let output = match outcome {
        Ok(answer) => answer.output,
        Err(failure) => return failed("run-batch", failure),
    };
    let cohort = &output.cohort;
    eprintln!("{}", cohort.summary);
    let untrusted = match &output.trust_summaries {
        Some(trust) => {
            for t in trust {
                eprintln!("  {}: {}", t.id, t.trust.summary);
            }
            out::json(&output);
            trust.iter().any(|t| !t.trust.trusted)
        }
        None => {
            for f in &cohort.failures {
                eprintln!("  {} ({}): {}", f.id, f.status.as_str(), f.reason);
            }
            out::json(cohort);
            false
        }
    };
    match cohort.status {
        _ if untrusted => EXIT_ERROR,
        CohortStatus::Succeeded => EXIT_OK,
        CohortStatus::TimedOut => EXIT_TIMED_OUT,
        CohortStatus::Cancelled => EXIT_CANCELLED,
        CohortStatus::Partial | CohortStatus::Failed => EXIT_UPSTREAM_FAILED,
    }
}

/// Where progress goes during run and run-batch: today's plain lines, nothing, or the
/// bar (see [`super::progress_bar`]) fed with labels cut down to the thing in flight.
#[derive(Clone)]
struct ProgressOutput {
    sink: ProgressSink,
    bar: Option<Arc<TerminalBar>>,
}

impl ProgressOutput {
    fn new(
        mode: ProgressMode,
        units: Units,
        plain: ProgressSink,
        label: impl Fn(&Progress) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        match mode.resolve_for_stderr() {
            ProgressStyle::Plain => {
                init_cli_logging(None);
                ProgressOutput {
                    sink: plain,
                    bar: None,
                }
            }
            ProgressStyle::Quiet => {
                init_cli_logging(None);
                ProgressOutput {
                    sink: Arc::new(|_| {}),
                    bar: None,
                }
            }
            ProgressStyle::Bar => {
                let bar = Arc::new(TerminalBar::stderr(units));
                init_cli_logging(Some(bar.clone()));
                let fed = bar.clone();
                let sink: ProgressSink = Arc::new(move |p: Progress| {
                    fed.update(Progress {
                        message: label(&p),
                        ..p
                    })
                });
                ProgressOutput {
                    sink,
                    bar: Some(bar),
                }
            }
        }
    }

    /// A line on stderr that does not garble the bar.
    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// End the bar's line before the summary is printed.
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Warnings of `run` and `run-batch` (a mask that could not be moved, a run record
/// not written) on stderr, through the bar when one is drawn; `RUST_LOG` as for `serve`.
fn init_cli_logging(bar: Option<Arc<TerminalBar>>) {
    let Some(bar) = bar else {
        return crate::server::init_stderr_logging();
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(crate::server::log_filter())
        .with_ansi(false)
        .with_writer(super::progress_bar::LogThroughBar(bar))
        .try_init();
}

/// The bar's label for `run`: the phase and its latest upstream line. A tick (`phase:
/// N s elapsed`) keeps the line already shown: the bar has its own elapsed time.
fn run_bar_label(shown: &str, message: &str) -> String {
    match message.split_once(": ") {
        Some((phase, detail)) if is_seconds_elapsed(detail) => {
            if shown == phase || shown.starts_with(&format!("{phase}: ")) {
                shown.to_string()
            } else {
                phase.to_string()
            }
        }
        _ => message.to_string(),
    }
}

/// `12 s elapsed`, as the progress messages write elapsed time.
fn is_seconds_elapsed(text: &str) -> bool {
    text.strip_suffix(" s elapsed")
        .is_some_and(|n| n.parse::<f64>().is_ok())
}

/// The bar's label for `run-batch`: the volume in flight (the bar draws the count,
/// the elapsed time and the estimate itself); before the volumes, what the tool says
/// (gates, a place in the queue); nothing once all is done (the summary is printed
/// after the bar). `None` keeps the label shown.
fn batch_bar_label(p: &Progress) -> Option<String> {
    if let Some(item) = &p.item {
        return Some(item.clone());
    }
    let message = p.message.as_ref()?;
    let all_done = p.total.is_some_and(|total| p.progress >= total);
    Some(if all_done {
        String::new()
    } else {
        message.clone()
    })
}

/// Run a tool future on a fresh runtime with progress on stderr; Ctrl-C cancels it
/// (which stops the upstream process group) instead of killing us mid-write. The bar,
/// if any, ticks once a second (elapsed time) and its line is ended before returning.
fn run_interruptible<T, F>(
    name: &str,
    output: &ProgressOutput,
    call: impl FnOnce(CallContext) -> F,
) -> T
where
    F: std::future::Future<Output = T>,
{
    let ctx = CallContext::new(
        output.sink.clone(),
        tokio_util::sync::CancellationToken::new(),
    );
    let interrupt = ctx.cancel.clone();
    let name = name.to_string();
    let notice = output.clone();
    let ticking = output.bar.clone();
    let result = runtime().block_on(async move {
        tokio::spawn(async move {
            // Ctrl-C, or SIGTERM (what `kill` and schedulers send): stop cleanly, so
            // the upstream process group (or a Slurm array, via scancel) goes too.
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => s.recv().await,
                    Err(_) => std::future::pending().await,
                }
            };
            let stopped = tokio::select! {
                c = tokio::signal::ctrl_c() => c.is_ok(),
                t = term => t.is_some(),
            };
            if stopped {
                notice.println(&format!(
                    "ctmr-skill {name}: interrupted; stopping the upstream process group"
                ));
                interrupt.cancel();
            }
        });
        if let Some(bar) = ticking {
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    bar.tick();
                }
            });
        }
        call(ctx).await
    });
    output.finish();
    result
}

/// A path argument as a tool takes it.
fn path_arg(path: &std::path::Path) -> Value {
    json!(path.to_string_lossy())
}

/// Call `T` in process with `arguments`, waited, for `command`; the failure message
/// said on stderr.
fn call_tool<T: crate::tools::Tool>(
    command: &str,
    config: &Config,
    arguments: Map<String, Value>,
) -> Result<T::Output, u8> {
    let manifest = crate::manifest::embedded().map_err(|e| {
        eprintln!("ctmr-skill {command}: {e}");
        EXIT_ERROR
    })?;
    let tools = in_process(command, config.clone(), manifest).ok_or(EXIT_ERROR)?;
    runtime()
        .block_on(tools.call_typed::<T>(&arguments, CallContext::detached()))
        .map(|answer| answer.output)
        .map_err(|failure| {
            eprintln!("ctmr-skill {command}: {}", failure.message);
            EXIT_USAGE
        })
}

/// `ctmr-skill inspect`: the `inspect_label_map` tool; `--labels` names the ids from
/// a label file instead of the bundle's table.
fn inspect(args: &InspectArgs, config: &Config) -> u8 {
    use crate::tools::inspect_label_map::InspectLabelMap;
    let table = match &args.labels {
        Some(file) => match crate::labels::LabelTable::load_labels_json(&config.absolute(file)) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("ctmr-skill inspect: {e}");
                return EXIT_USAGE;
            }
        },
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
    let mut output = match call_tool::<InspectLabelMap>("inspect", config, arguments) {
        Ok(output) => output,
        Err(code) => return code,
    };
    // A bundle root named explicitly must give names.
    if let (Some(_), Some(why)) = (&args.upstream_root, &output.unnamed) {
        eprintln!("ctmr-skill inspect: {why}");
        return EXIT_USAGE;
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
    EXIT_OK
}

/// `ctmr-skill render`: the `render_overlay` tool; exit 2 on bad input.
fn render(args: &super::RenderArgs, config: &Config) -> u8 {
    use crate::tools::render_overlay::RenderOverlay;
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
    match call_tool::<RenderOverlay>("render", config, arguments) {
        Ok(info) => {
            out::json(&info);
            EXIT_OK
        }
        Err(code) => code,
    }
}

/// `ctmr-skill labels`: the `list_labels` tool; exit 2 when a name does not resolve.
fn labels(args: &LabelsArgs, config: &Config) -> u8 {
    use crate::tools::list_labels::ListLabels;
    let mut arguments = Map::new();
    if let Some(query) = &args.query {
        arguments.insert("query".into(), json!(query));
    }
    if !args.resolve.is_empty() {
        arguments.insert("resolve".into(), json!(args.resolve));
    }
    if let Some(modality) = &args.modality {
        arguments.insert("modality".into(), json!(modality));
    }
    if let Some(root) = &args.upstream_root {
        arguments.insert("upstream_root".into(), path_arg(root));
    }
    let doc = match call_tool::<ListLabels>("labels", config, arguments) {
        Ok(list) => list.0,
        Err(code) => return code,
    };
    if args.json {
        out::json(&doc);
    } else {
        for label in doc["labels"].as_array().into_iter().flatten() {
            let deprecated = if label["deprecated"] == json!(true) {
                "  (deprecated)"
            } else {
                ""
            };
            out::line(&format!(
                "{:>4}  {}{deprecated}",
                label["id"],
                label["name"].as_str().unwrap_or("")
            ));
        }
        for r in doc["resolved"].as_array().into_iter().flatten() {
            match r["id"].as_u64() {
                Some(id) => out::line(&format!(
                    "{} -> {id} {}",
                    r["query"],
                    r["name"].as_str().unwrap_or("")
                )),
                None => out::line(&format!(
                    "{} -> {}",
                    r["query"],
                    r["error"].as_str().unwrap_or("unresolved")
                )),
            }
        }
    }
    let unresolved = doc["resolved"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["id"].is_null());
    if unresolved {
        EXIT_USAGE
    } else {
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_labels_show_the_volume_in_flight() {
        let report = |progress: f64, message: Option<&str>, item: Option<&str>| Progress {
            progress,
            total: Some(3.0),
            message: message.map(str::to_string),
            item: item.map(str::to_string),
        };
        let counted = "1/3 volumes done; current b; 41 s elapsed; about 62 s left";
        assert_eq!(
            batch_bar_label(&report(1.0, Some(counted), Some("b"))).unwrap(),
            "b"
        );
        // An id that looks like a count is still the id.
        assert_eq!(
            batch_bar_label(&report(1.0, Some(counted), Some("3/4 done"))).unwrap(),
            "3/4 done"
        );
        let queued = "queued for the CPU: position 2; 1 run(s) at a time per device";
        assert_eq!(
            batch_bar_label(&report(0.0, Some(queued), None)).unwrap(),
            queued
        );
        let summary = "3/3 done: 3 of 3 volumes segmented; 0 failed or refused.";
        assert_eq!(
            batch_bar_label(&report(3.0, Some(summary), None)).unwrap(),
            ""
        );
        assert_eq!(batch_bar_label(&report(1.0, None, None)), None);
    }

    #[test]
    fn run_labels_keep_the_last_upstream_line_through_ticks() {
        let line = run_bar_label("", "inference: computing patch 3 of 8");
        assert_eq!(line, "inference: computing patch 3 of 8");
        assert_eq!(run_bar_label(&line, "inference: 12 s elapsed"), line);
        assert_eq!(
            run_bar_label("starting upstream", "inference: 3 s elapsed"),
            "inference"
        );
        assert_eq!(run_bar_label(&line, "writing"), "writing");
    }
}

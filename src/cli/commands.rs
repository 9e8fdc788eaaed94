//! The one match over [`Command`]: each arm calls its subcommand and brings the
//! outcome to a `Result<ExitCode, CliError>`, which [`super::main`] reports. Also, for
//! now, the functions of `run`, `run-batch`, `inspect`, `render` and `labels` (which
//! still print their own errors and return the `u8` codes of `exit_codes.rs`),
//! and the progress output `run` and `run-batch` share.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

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
use crate::tools::run_script::{request, RunCall, RunScript};

/// Run `command`; the subcommands that answer in `u8` have their code typed here.
pub fn dispatch(
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
    let tool = manifest
        .tool("run_script")
        .expect("manifest declares run_script")
        .clone();
    let request = match request::from_run_args(&tool, args, &config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ctmr-skill run: {e}");
            out::json(
                &json!({"status": RunStatus::Refused, "message": e.to_string(), "argument": e.argument}),
            );
            return EXIT_USAGE;
        }
    };
    let runner = RunScript::new(Arc::new(config), Arc::new(manifest));
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
    let call = run_interruptible("run", &progress, |ctx| async move {
        runner.run(request, ctx).await
    });
    match call {
        RunCall::Refused { message, document } => {
            eprintln!("ctmr-skill run: {message}");
            out::json(&document);
            EXIT_USAGE
        }
        RunCall::NotStarted { message } => {
            eprintln!("ctmr-skill run: {message}");
            out::json(&json!({"status": "not_started", "message": message}));
            EXIT_ERROR
        }
        RunCall::Verified(evidence, trust) => {
            eprintln!("{}", evidence.summary);
            eprintln!("{}", trust.summary);
            let mut document = serde_json::to_value(&*evidence).expect("evidence serialises");
            document["trust_summary"] = trust.to_value();
            out::json(&document);
            if trust.trusted {
                EXIT_OK
            } else {
                EXIT_ERROR
            }
        }
        RunCall::Ran(evidence) => {
            eprintln!("{}", evidence.summary);
            out::json(&evidence);
            match evidence.status {
                RunStatus::Succeeded => EXIT_OK,
                RunStatus::TimedOut => EXIT_TIMED_OUT,
                RunStatus::Cancelled => EXIT_CANCELLED,
                RunStatus::Refused => EXIT_USAGE,
                RunStatus::UpstreamFailed => EXIT_UPSTREAM_FAILED,
            }
        }
    }
}

/// `ctmr-skill run-batch`: cohort JSON on stdout, one progress line per change on stderr.
fn run_batch(args: &RunBatchArgs, config: Config, manifest: Manifest, mode: ProgressMode) -> u8 {
    use crate::tools::run_batch::{request as batch_request, BatchCall, RunBatch};
    let arguments = args.to_arguments();
    let tool = manifest
        .tool("run_batch")
        .expect("manifest declares run_batch")
        .clone();
    let request = match batch_request::from_tool_arguments(&tool, &arguments, &config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ctmr-skill run-batch: {e}");
            out::json(
                &json!({"status": RunStatus::Refused, "message": e.to_string(), "argument": e.argument}),
            );
            return EXIT_USAGE;
        }
    };
    let slots = Arc::new(crate::runner::slots::RunSlots::new(
        config.max_concurrent_runs,
    ));
    let runner = RunBatch::new(Arc::new(config), Arc::new(manifest), slots);
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
    let call = run_interruptible("run-batch", &progress, |ctx| async move {
        runner.run(request, ctx).await
    });
    match call {
        BatchCall::Refused { message, document } => {
            eprintln!("ctmr-skill run-batch: {message}");
            out::json(&document);
            EXIT_USAGE
        }
        BatchCall::NotStarted { message } => {
            eprintln!("ctmr-skill run-batch: {message}");
            out::json(&json!({"status": "not_started", "message": message}));
            EXIT_ERROR
        }
        BatchCall::Verified(cohort, trust) => {
            eprintln!("{}", cohort.summary);
            for t in &trust {
                eprintln!("  {}: {}", t.id, t.trust.summary);
            }
            let mut document = serde_json::to_value(&*cohort).expect("cohort serialises");
            document["trust_summaries"] = json!(trust);
            out::json(&document);
            match cohort.status {
                _ if trust.iter().any(|t| !t.trust.trusted) => EXIT_ERROR,
                CohortStatus::Succeeded => EXIT_OK,
                CohortStatus::TimedOut => EXIT_TIMED_OUT,
                CohortStatus::Cancelled => EXIT_CANCELLED,
                CohortStatus::Partial | CohortStatus::Failed => EXIT_UPSTREAM_FAILED,
            }
        }
        BatchCall::Ran(cohort) => {
            eprintln!("{}", cohort.summary);
            for f in &cohort.failures {
                eprintln!("  {} ({}): {}", f.id, f.status.as_str(), f.reason);
            }
            out::json(&cohort);
            match cohort.status {
                CohortStatus::Succeeded => EXIT_OK,
                CohortStatus::TimedOut => EXIT_TIMED_OUT,
                CohortStatus::Cancelled => EXIT_CANCELLED,
                CohortStatus::Partial | CohortStatus::Failed => EXIT_UPSTREAM_FAILED,
            }
        }
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

/// `ctmr-skill inspect`.
fn inspect(args: &InspectArgs, config: &Config) -> u8 {
    let options = crate::inspect::InspectOptions {
        components: args.components,
        reference: args.reference.as_ref().map(|p| config.absolute(p)),
        ground_truth: args.ground_truth.as_ref().map(|p| config.absolute(p)),
        ..crate::inspect::InspectOptions::default()
    };
    let mask = config.absolute(&args.mask);
    let mut report = match crate::tools::inspect_label_map::inspect_any(&mask, &options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ctmr-skill inspect: {e}");
            return EXIT_USAGE;
        }
    };
    let table = match (&args.labels, &args.upstream_root) {
        (Some(file), _) => {
            match crate::labels::LabelTable::load_labels_json(&config.absolute(file)) {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("ctmr-skill inspect: {e}");
                    return EXIT_USAGE;
                }
            }
        }
        (None, Some(root)) => {
            match crate::tools::inspect_label_map::load_table(Some(&config.absolute(root)), config)
            {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("ctmr-skill inspect: {e}");
                    return EXIT_USAGE;
                }
            }
        }
        // Without an explicit source, name ids when a default bundle root exists.
        (None, None) => crate::tools::inspect_label_map::load_table(None, config).ok(),
    };
    if let Some(table) = &table {
        report.attach_names(|id| {
            u32::try_from(id)
                .ok()
                .and_then(|i| table.name(i))
                .map(str::to_string)
        });
    }
    if args.json {
        out::json(&report);
    } else {
        out::text(&report.render_table());
    }
    EXIT_OK
}

/// `ctmr-skill render`: the `render_overlay` tool's code; exit 2 on bad input.
fn render(args: &super::RenderArgs, config: &Config) -> u8 {
    use crate::tools::render_overlay::{execute, RenderRequest};
    let window = match args.window.parse() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ctmr-skill render: --{e}");
            return EXIT_USAGE;
        }
    };
    let request = RenderRequest {
        mask: config.absolute(&args.mask),
        image: args.image.as_ref().map(|p| config.absolute(p)),
        structures: args.structures.clone(),
        window,
        out: Some(config.absolute(&args.out)),
        upstream_root: args.upstream_root.as_ref().map(|p| config.absolute(p)),
    };
    match execute(&request, config) {
        Ok(picture) => {
            out::json(&picture.info);
            EXIT_OK
        }
        Err(e) => {
            eprintln!("ctmr-skill render: {e}");
            EXIT_USAGE
        }
    }
}

/// `ctmr-skill labels`.
fn labels(args: &LabelsArgs, config: &Config) -> u8 {
    let modality = match args
        .modality
        .as_deref()
        .map(str::parse::<crate::labels::Modality>)
    {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(_)) => {
            eprintln!("ctmr-skill labels: --modality must be CT_BODY, MRI_BODY or MRI_BRAIN");
            return EXIT_USAGE;
        }
    };
    let request = crate::tools::list_labels::LabelsRequest {
        query: args.query.clone(),
        resolve: args.resolve.clone(),
        modality,
        upstream_root: args.upstream_root.as_ref().map(|p| config.absolute(p)),
    };
    let doc = match crate::tools::list_labels::execute(&request, config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ctmr-skill labels: {e}");
            return EXIT_USAGE;
        }
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

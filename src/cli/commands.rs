//! The CLI subcommands: each is a thin face over the library, printing JSON or a
//! readable table and returning the documented exit code (see [`super`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::out;
use super::progress_bar::{ProgressMode, ProgressStyle, TerminalBar, Units};
use super::{
    Command, DoctorArgs, InspectArgs, LabelsArgs, RunArgs, RunBatchArgs, SchemaArgs, VerifyArgs,
};
use crate::call::{CallContext, Progress, ProgressSink};
use crate::config::Config;
use crate::evidence::cohort::CohortStatus;
use crate::evidence::RunStatus;
use crate::manifest::Manifest;
use crate::tools::registry::{FailureKind, ToolFailure};
use crate::tools::run_script::RunScript;
use crate::tools::CtmrTools;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: internal or I/O error; for `verify`, a fail verdict.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: usage error or gate refusal.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the upstream run failed.
pub const EXIT_UPSTREAM_FAILED: u8 = 3;
/// Exit code: the upstream run timed out.
pub const EXIT_TIMED_OUT: u8 = 4;
/// Exit code: the run was cancelled.
pub const EXIT_CANCELLED: u8 = 5;

pub fn dispatch(command: Command, config: Config, progress: ProgressMode) -> u8 {
    let manifest = match crate::manifest::embedded() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("ctmr-skill: {e}");
            return EXIT_ERROR;
        }
    };
    let code = match command {
        Command::Serve(args) => serve(&args, config, manifest),
        Command::Run(args) => run(&args, config, manifest, progress),
        Command::RunBatch(args) => run_batch(&args, config, manifest, progress),
        Command::Inspect(args) => inspect(&args, &config),
        Command::Labels(args) => labels(&args, &config),
        Command::Render(args) => render(&args, &config),
        Command::Verify(args) => verify(&args, &config),
        Command::Schema(args) => schema(&args, config, manifest),
        Command::Doctor(args) => doctor(&args, &config),
    };
    out::finish(code)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

/// `ctmr-skill serve`: MCP over stdio until stdin closes.
fn serve(args: &super::ServeArgs, mut config: Config, manifest: Manifest) -> u8 {
    if let Err(e) = config.declare_roots(&args.bundle_roots) {
        eprintln!("ctmr-skill serve: --bundle-root: {e}");
        return EXIT_USAGE;
    }
    config.root_policy = crate::config::RootPolicy::Declared;
    config.require_sandbox |= args.require_sandbox;
    config.warm_workers = !args.no_warm;
    config
        .slurm_allow_flags
        .extend(args.slurm_allow_flags.iter().cloned());
    crate::server::init_stderr_logging();
    let options = crate::server::ServerOptions {
        name: "ctmr-skill".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        instructions: format!(
            "Runs NVIDIA NV-Segment-CTMR (MONAI bundle, 345 CT/MRI classes) on NIfTI volumes via its documented \
             entry point and returns verifiable evidence. Use list_labels to find class ids, run_script to segment, \
             inspect_label_map for mask statistics, verify_evidence to check a pack. {}",
            crate::NOT_FOR_CLINICAL_USE
        ),
    };
    let tools = match CtmrTools::new(config, manifest) {
        Ok(tools) => Arc::new(tools),
        Err(e) => {
            eprintln!("ctmr-skill serve: {e}");
            return EXIT_ERROR;
        }
    };
    let rt = runtime();
    if let Some(prewarm) = tools.prewarm().filter(|_| args.warm) {
        rt.spawn(async move {
            match prewarm.await {
                Ok(line) => tracing::info!("{line}"),
                Err(e) => tracing::warn!("serve --warm: no worker started: {e}"),
            }
        });
    }
    let served = rt.block_on(crate::server::serve_stdio(tools, options));
    // A tool that ignores cancellation must not keep the process alive after stdin
    // closed; upstream process groups are killed by their supervisors' drop guards.
    rt.shutdown_timeout(Duration::from_secs(1));
    match served {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("ctmr-skill serve: {e}");
            EXIT_ERROR
        }
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
fn path_arg(path: &Path) -> Value {
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

/// `ctmr-skill verify`: report on stdout with sorted keys; exit 0 pass, 1 fail, 2 usage
/// (the error as `{"error": ...}` on stdout and on stderr).
fn verify(args: &VerifyArgs, config: &Config) -> u8 {
    use crate::verifier::{LabelSource, VerifyOptions, VerifyUsageError};
    let usage = |message: String| {
        eprintln!("ctmr-skill verify: {message}");
        out::json(&json!({"error": message}));
        EXIT_USAGE
    };
    const LABELS_FIX: &str = "pass a labels.json sidecar or an NV-Segment-CTMR bundle root";
    let labels = match args.labels.as_ref().map(|p| config.absolute(p)) {
        None => None,
        Some(dir) if dir.is_dir() => Some(LabelSource::Bundle(dir)),
        Some(file) if file.is_file() => Some(LabelSource::LabelsJson(file)),
        Some(missing) => {
            return usage(format!(
                "--labels {}: no such file or directory ({LABELS_FIX})",
                missing.display()
            ))
        }
    };
    let bounds_path = match args.bounds.as_ref().map(|p| config.absolute(p)) {
        Some(missing) if !missing.is_file() => {
            return usage(format!(
                "--bounds {}: no such file (pass an anatomy bounds JSON in the format of \
                 verifiers/ct_segmentation_quality_v1/anatomy_bounds.json)",
                missing.display()
            ))
        }
        bounds => bounds,
    };
    let options = VerifyOptions {
        labels,
        bounds_path,
        surface_tolerance_mm: args.surface_tolerance,
        cwd: Some(config.cwd.clone()),
        ..VerifyOptions::default()
    };
    match crate::verifier::verify_pack(&config.absolute(&args.pack_dir), &options) {
        Err(e @ VerifyUsageError::Bounds(_)) => usage(format!(
            "--bounds: {e} (fix the file; verifiers/ct_segmentation_quality_v1/anatomy_bounds.json \
             shows the format)"
        )),
        Err(e @ VerifyUsageError::Labels { .. }) if args.labels.is_some() => {
            usage(format!("--labels: {e} ({LABELS_FIX})"))
        }
        Err(e) => usage(e.to_string()),
        Ok(report) => {
            let value: Value = serde_json::to_value(&report).expect("report serialises");
            out::json(&value);
            eprintln!("{}", report.summary());
            if let Some(out) = &args.render {
                if let Err(e) = render_failing(&report, &config.absolute(out), config) {
                    eprintln!("ctmr-skill verify: --render: {e}");
                    return EXIT_ERROR;
                }
            }
            if report.passed() {
                EXIT_OK
            } else {
                EXIT_ERROR
            }
        }
    }
}

/// `verify --render`: the classes the verifier failed, drawn over the pack's input.
fn render_failing(
    report: &crate::verifier::VerifierReport,
    out: &Path,
    config: &Config,
) -> Result<(), String> {
    let mask = report
        .target
        .label_map_path
        .as_deref()
        .ok_or("the pack names no label map to draw")?;
    let failing = failing_classes(report);
    let table = crate::tools::inspect_label_map::load_table(None, config).ok();
    let options = crate::render::RenderOptions {
        structures: failing.clone(),
        ..crate::render::RenderOptions::default()
    };
    let image = report.target.input_image_path.as_deref().map(Path::new);
    let mask = Path::new(mask);
    let picture = crate::render::render_files(mask, image, table.as_ref(), &options)
        .or_else(|_| crate::render::render_files(mask, None, table.as_ref(), &options))
        .map_err(|e| e.to_string())?;
    crate::atomic::write(out, &picture.png)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let what = if failing.is_empty() {
        "no class failed: the largest classes".to_string()
    } else {
        format!("failing classes {failing:?}")
    };
    eprintln!("ctmr-skill verify: drew {what} in {}", out.display());
    Ok(())
}

/// Class ids the verifier failed: volume bounds, fragmentation, or present unrequested.
fn failing_classes(report: &crate::verifier::VerifierReport) -> Vec<u32> {
    let mut ids: Vec<u32> = report
        .anatomy_plausibility
        .per_class
        .iter()
        .filter(|c| {
            [
                c.volume_bounds_ok,
                c.components_ok,
                c.largest_cc_fraction_ok,
            ]
            .contains(&Some(false))
        })
        .map(|c| c.label_id)
        .chain(report.label_set_subset.extras.iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(crate::render::MAX_SHOWN);
    ids
}

/// One line of `doctor`: a prerequisite, its status and the fix.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    fix: &'static str,
}

impl Check {
    fn new(name: &'static str, ok: bool, detail: impl Into<String>, fix: &'static str) -> Self {
        Check {
            name,
            ok,
            detail: detail.into(),
            fix,
        }
    }

    fn optional(&self) -> bool {
        OPTIONAL_CHECKS.contains(&self.name)
    }

    fn json(&self) -> Value {
        json!({"check": self.name, "ok": self.ok, "detail": self.detail,
               "fix": if self.ok { Value::Null } else { json!(self.fix) }})
    }
}

/// `ctmr-skill doctor`: each prerequisite with its status and the fix.
fn doctor(args: &DoctorArgs, config: &Config) -> u8 {
    let (mut checks, cuda) = python_checks(config);
    checks.extend(bundle_checks(args, config, cuda));
    let workers = crate::tools::workers::listing::list(&crate::tools::workers::listing::dir_for(
        &config.runs_dir,
    ));
    let gpu_memory = crate::upstream::gpu::memory_by_pid().unwrap_or_default();
    checks.push(gpu_metrics_check());
    checks.push(workers_check(&workers, &gpu_memory));
    let ok = checks.iter().all(|c| c.ok || c.optional());
    if args.json {
        let checks: Vec<Value> = checks.iter().map(Check::json).collect();
        let workers: Vec<Value> = workers
            .iter()
            .map(|w| worker_json(w, &gpu_memory))
            .collect();
        out::json(&json!({"ok": ok, "checks": checks, "workers": workers,
                           "not_for_clinical_use": crate::NOT_FOR_CLINICAL_USE}));
    } else {
        for c in &checks {
            let mark = match (c.ok, c.optional()) {
                (true, _) => "ok  ",
                (false, true) => "note",
                (false, false) => "FAIL",
            };
            out::line(&format!("{mark} {:<18} {}", c.name, c.detail));
            if !c.ok {
                out::line(&format!("     fix: {}", c.fix));
            }
        }
    }
    if ok {
        EXIT_OK
    } else {
        EXIT_ERROR
    }
}

/// The interpreter and what it imports; whether CUDA is usable.
fn python_checks(config: &Config) -> (Vec<Check>, bool) {
    let python = crate::tools::run_script::run::find_python(config);
    let choice = match python {
        Ok(choice) => choice,
        Err(e) => {
            let fix = "run scripts/setup-python.sh or set CTMR_SKILL_PYTHON";
            return (vec![Check::new("python", false, e.0, fix)], false);
        }
    };
    let mut checks = vec![Check::new(
        "python",
        true,
        format!("{} ({})", choice.path.display(), choice.source.describe()),
        "",
    )];
    let env = crate::upstream::child_env(
        config.child_env.clone(),
        &config.cwd,
        crate::upstream::DeviceRequest::Auto,
    );
    let probe = runtime().block_on(crate::upstream::probe_environment(
        &choice.path,
        &env,
        &config.cwd,
        Duration::from_secs(120),
    ));
    let p = match probe {
        Ok(p) => p,
        Err(e) => {
            checks.push(Check::new(
                "monai",
                false,
                e.to_string(),
                "run scripts/setup-python.sh",
            ));
            return (checks, false);
        }
    };
    checks.push(Check::new("monai", true, p.monai_version.clone(), ""));
    checks.push(Check::new("torch", true, p.torch_version.clone(), ""));
    checks.push(Check::new(
        "cuda",
        p.cuda_available,
        p.cuda_device_name
            .clone()
            .unwrap_or_else(|| "not available: runs use the CPU".into()),
        "optional: a CUDA GPU with a CUDA build of torch makes runs ~100x faster",
    ));
    (checks, p.cuda_available)
}

/// The bundle root, its weights, its label table and its optional modes.
fn bundle_checks(args: &DoctorArgs, config: &Config, cuda: bool) -> Vec<Check> {
    let explicit = args.upstream_root.as_ref().map(|p| config.absolute(p));
    let resolution = crate::upstream::resolve_root(
        explicit.as_deref(),
        config.env_root.as_deref().map(std::ffi::OsStr::new),
        &config.cwd,
    );
    let hint = crate::upstream::install_hint();
    let root = match resolution.require() {
        Ok(root) => root,
        Err(e) => return vec![Check::new("bundle_root", false, e.to_string(), hint)],
    };
    let mut checks = vec![Check::new(
        "bundle_root",
        true,
        root.display().to_string(),
        "",
    )];
    let inventory = crate::upstream::inventory(root);
    checks.push(match inventory.require_model() {
        Ok(model) => {
            let sha =
                crate::upstream::sha256_file(model).unwrap_or_else(|e| format!("unreadable: {e}"));
            let provenance = crate::upstream::weights_provenance(&inventory, Some(&sha));
            let detail = format!("{} sha256 {sha} ({})", model.display(), provenance.as_str());
            Check::new("model", true, detail, "")
        }
        Err(e) => Check::new("model", false, e.to_string(), hint),
    });
    checks.push(match crate::labels::LabelTable::load_bundle(root) {
        Ok(t) => Check::new("label_table", true, format!("{} classes", t.len()), ""),
        Err(e) => Check::new(
            "label_table",
            false,
            e.to_string(),
            "the bundle's configs/metadata.json must be readable",
        ),
    });
    for (name, ok, detail, fix) in switch_checks(root, cuda) {
        checks.push(Check::new(name, ok, detail, fix));
    }
    checks
}

/// What `doctor` reports without failing: runs work without them.
const OPTIONAL_CHECKS: [&str; 6] = [
    "cuda",
    "batch_config",
    "cpu_postprocessing",
    "tensorrt",
    "gpu_metrics",
    "warm_workers",
];

/// Whether runs can record GPU memory and utilisation (NVML).
fn gpu_metrics_check() -> Check {
    match crate::upstream::gpu::available() {
        Ok(()) => Check::new("gpu_metrics", true, "NVML answers: runs record GPU memory, utilisation and GPU-seconds", ""),
        Err(reason) => Check::new(
            "gpu_metrics",
            false,
            reason,
            "optional: GPU figures need the NVIDIA driver's libnvidia-ml.so.1; runs work without it",
        ),
    }
}

/// The warm workers `serve` processes on this machine keep, with their memory now.
fn workers_check(
    workers: &[crate::tools::workers::listing::Found],
    gpu: &std::collections::BTreeMap<u32, u64>,
) -> Check {
    let alive: Vec<String> = workers
        .iter()
        .filter(|w| w.alive)
        .map(|w| {
            let l = &w.listed;
            let gpu = gpu.get(&l.pid).map_or("GPU -".to_string(), |b| {
                format!("GPU {:.1} GiB", *b as f64 / (1u64 << 30) as f64)
            });
            format!(
                "{} pid {} ({}, {}): RSS {} MiB, {gpu}, {} requests, stops after {} s idle",
                l.id,
                l.pid,
                l.bundle_root.display(),
                l.device,
                w.rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
                l.requests_served,
                l.idle_stop_seconds
            )
        })
        .collect();
    let stale = workers.len() - alive.len();
    let mut detail = match alive.len() {
        0 => {
            "none running (serve starts them on the first run_script call, or at start with --warm)"
                .to_string()
        }
        n => format!("{n} running: {}", alive.join("; ")),
    };
    if stale > 0 {
        detail.push_str(&format!(
            "; {stale} stale listing(s) of workers that are gone"
        ));
    }
    Check::new("warm_workers", true, detail, "")
}

/// One worker for `doctor --json`, with its GPU memory now (`gpu`: bytes per pid).
fn worker_json(
    w: &crate::tools::workers::listing::Found,
    gpu: &std::collections::BTreeMap<u32, u64>,
) -> Value {
    let l = &w.listed;
    json!({"id": l.id, "pid": l.pid, "server_pid": l.server_pid, "alive": w.alive,
           "bundle_root": l.bundle_root, "python": l.python, "device": l.device,
           "started_at": l.started_at, "start_seconds": l.start_seconds,
           "requests_served": l.requests_served, "last_request_at": l.last_request_at,
           "idle_stop_seconds": l.idle_stop_seconds, "rss_mib": w.rss_mib,
           "gpu_memory_mib": gpu.get(&l.pid).map(|b| *b as f64 / 1048576.0)})
}

/// Which of the bundle's optional run modes and switches this bundle (and machine)
/// can honour: `(check, ok, detail, fix)`, with the same checks the gates make.
fn switch_checks(
    root: &std::path::Path,
    cuda: bool,
) -> Vec<(&'static str, bool, String, &'static str)> {
    let batch = root.join(crate::upstream::BATCH_CONFIG_FILES[1]);
    let trt = root.join(crate::upstream::TRT_CONFIG_FILE);
    let inference = root.join(crate::upstream::CONFIG_FILE);
    let postprocessing = crate::files::read_to_string_capped(&inference, crate::files::JSON_CAP)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()))
        .and_then(|config| {
            crate::tools::run_script::knobs::check_cpu_postprocessing(&[(
                "configs/inference.json",
                &config,
            )])
        });
    vec![
        (
            "batch_config",
            batch.is_file(),
            format!(
                "{} {}",
                batch.display(),
                if batch.is_file() { "present: run_batch loads the model once" } else { "missing" }
            ),
            "run_batch needs the bundle's configs/batch_inference.json",
        ),
        (
            "cpu_postprocessing",
            postprocessing.is_ok(),
            match &postprocessing {
                Ok(()) => "supported: postprocessing.transforms[0] is ToDeviced(cpu)".to_string(),
                Err(why) => format!("not supported: {why}"),
            },
            "only needed to save GPU memory; use a smaller patch_size instead",
        ),
        (
            "tensorrt",
            trt.is_file() && cuda,
            match (trt.is_file(), cuda) {
                (true, true) => format!("{} present, CUDA available", trt.display()),
                (true, false) => format!("{} present, but no CUDA here", trt.display()),
                (false, _) => format!("{} missing", trt.display()),
            },
            "optional: TensorRT needs the bundle's configs/inference_trt.json, a CUDA GPU and TensorRT",
        ),
    ]
}

/// `ctmr-skill schema`: write (or check) the generated schema files.
fn schema(args: &SchemaArgs, config: Config, manifest: Manifest) -> u8 {
    let tools = match CtmrTools::new(config, manifest) {
        Ok(tools) => tools,
        Err(e) => {
            eprintln!("ctmr-skill schema: {e}");
            return EXIT_ERROR;
        }
    };
    let mut drifted = Vec::new();
    for (relative, content) in tools.schema_files() {
        let path = args.root.join(&relative);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(content.as_str()) {
            continue;
        }
        if args.check {
            drifted.push(relative);
        } else if let Err(e) = crate::atomic::write(&path, content.as_bytes()) {
            eprintln!("ctmr-skill: cannot write {}: {e}", path.display());
            return EXIT_ERROR;
        } else {
            eprintln!("wrote {}", display(&path));
        }
    }
    if drifted.is_empty() {
        EXIT_OK
    } else {
        eprintln!(
            "ctmr-skill: generated schemas are out of date: {}. Fix: run `ctmr-skill schema`",
            drifted.join(", ")
        );
        EXIT_ERROR
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
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

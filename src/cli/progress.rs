//! Progress of `run` and `run-batch` on stderr, and the interrupt that cancels them:
//! both subcommands call a long tool with the same output (plain lines, nothing, or
//! the bar of [`super::progress_bar`]) and the same Ctrl-C / SIGTERM handling, so it
//! lives here once. The interrupt notice is a status line, not an error: the call
//! still ends with its document and its exit code.

use std::sync::Arc;
use std::time::Duration;

use super::progress_bar::{ProgressMode, ProgressStyle, TerminalBar, Units};
use super::runtime;
use crate::call::{CallContext, Progress, ProgressSink};

/// Where progress goes during run and run-batch: today's plain lines, nothing, or the
/// bar (see [`super::progress_bar`]) fed with labels cut down to the thing in flight.
#[derive(Clone)]
pub(super) struct ProgressOutput {
    sink: ProgressSink,
    bar: Option<Arc<TerminalBar>>,
}

impl ProgressOutput {
    pub(super) fn new(
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
pub(super) fn run_bar_label(shown: &str, message: &str) -> String {
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
pub(super) fn batch_bar_label(p: &Progress) -> Option<String> {
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
pub(super) fn run_interruptible<T, F>(
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

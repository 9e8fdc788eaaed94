//! What a running call deals in, below every layer that runs one: progress reports,
//! the context a call gets (progress sink, cancellation), and the outcome it ends with.
//!
//! Why a foundation module: the job table, the tools, the server and the CLI all pass
//! these values along; keeping them here lets each of those depend on this file
//! instead of on each other.

use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One progress report; forwarded as `notifications/progress` when the request
/// carried a `progressToken`.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub progress: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
    /// The item in flight (a volume id), for displays that draw the count and the
    /// times themselves (the CLI's bar); `message` says the same in words.
    pub item: Option<String>,
}

/// Seconds left at the pace so far, as both `run_batch`'s progress message and the
/// CLI's bar estimate it. `done` counts what this run did (not reused volumes) and
/// `elapsed_s` runs from this run's start. The time to the first completion holds the
/// start-up (Python, MONAI's import, the model load), paid once; so once more was done
/// after `first_done` (`(elapsed_s, done)` when the first completion was seen), the
/// pace is measured from there on. `None` until something was done, or with nothing left.
pub(crate) fn estimate_seconds_left(
    done: f64,
    left: f64,
    elapsed_s: f64,
    first_done: Option<(f64, f64)>,
) -> Option<f64> {
    if !(done > 0.0 && left > 0.0 && elapsed_s > 0.0 && left.is_finite()) {
        return None;
    }
    let pace = match first_done {
        Some((at_s, at_done)) if done > at_done && elapsed_s > at_s => {
            (elapsed_s - at_s) / (done - at_done)
        }
        _ => elapsed_s / done,
    };
    Some(pace * left)
}

/// Where a running tool reports progress. Cheap to clone.
pub(crate) type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// Told the process id of each upstream child a call starts (the group leader), so a
/// background run's record can name the process a restarted server must not leave
/// running.
pub(crate) type ChildSink = Arc<dyn Fn(u32) + Send + Sync>;

/// What a tool call gets besides its arguments.
#[derive(Clone)]
pub struct CallContext {
    pub progress: ProgressSink,
    /// Cancelled when the client sends `notifications/cancelled` or the server shuts down.
    pub cancel: CancellationToken,
    pub children: ChildSink,
}

impl CallContext {
    /// A context with these progress and cancellation, that records no children.
    pub fn new(progress: ProgressSink, cancel: CancellationToken) -> Self {
        CallContext {
            progress,
            cancel,
            children: Arc::new(|_| {}),
        }
    }

    /// A context that drops progress and is never cancelled (CLI use, tests).
    pub fn detached() -> Self {
        Self::new(Arc::new(|_| {}), CancellationToken::new())
    }
}

/// A PNG picture a tool answers with beside its text (an MCP `image` content item).
#[derive(Clone, PartialEq)]
pub struct Image {
    pub png: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({} bytes of PNG)", self.png.len())
    }
}

/// What a summary answer (`detail: summary`) says of a result beyond its one-line
/// head: the result's state word, the tool's own lines (classes, failed checks,
/// counts, ...) and where its pack is. Each tool builds it from its typed output; the
/// server only lays it out, so the server knows no tool and no document shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Brief {
    pub status: Option<String>,
    pub lines: Vec<String>,
    pub pack: Option<String>,
}

/// The result of a tool call that reached the tool.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutcome {
    /// `isError: false`: `structured` conforms to the tool's output schema; `images`
    /// are pictures of the result (e.g. the overlay preview), usually none.
    Success {
        structured: Value,
        summary: String,
        images: Vec<Image>,
        brief: Brief,
    },
    /// `isError: true`: `message` names the argument, the rule and the fix;
    /// `structured` carries evidence when there is some (e.g. a failed upstream run).
    Failure {
        message: String,
        structured: Option<Value>,
        brief: Brief,
    },
}

impl ToolOutcome {
    /// A failure with a message and nothing structured (a refusal, a missing file).
    pub fn failure(message: impl Into<String>) -> Self {
        ToolOutcome::Failure {
            message: message.into(),
            structured: None,
            brief: Brief::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::estimate_seconds_left;

    #[test]
    fn the_estimate_leaves_the_start_up_out_once_it_can() {
        // Nothing done, nothing left, no time: no estimate.
        assert_eq!(estimate_seconds_left(0.0, 3.0, 10.0, None), None);
        assert_eq!(estimate_seconds_left(3.0, 0.0, 10.0, None), None);
        assert_eq!(estimate_seconds_left(1.0, 3.0, 0.0, None), None);
        // One volume done after 20 s: the only pace there is.
        assert_eq!(
            estimate_seconds_left(1.0, 3.0, 20.0, Some((20.0, 1.0))),
            Some(60.0)
        );
        // 20 s to the first, 4 s for the next two: 2 s a volume.
        assert_eq!(
            estimate_seconds_left(3.0, 3.0, 24.0, Some((20.0, 1.0))),
            Some(6.0)
        );
        // Two masks seen in the same poll count from that poll on, not as one volume.
        assert_eq!(
            estimate_seconds_left(2.0, 3.0, 20.0, Some((20.0, 2.0))),
            Some(30.0)
        );
    }
}

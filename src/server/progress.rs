//! Progress for one tool call: turns a tool's [`Progress`] reports into
//! `notifications/progress` for the request's `progressToken`.
//!
//! Two rules come from the spec and from real clients: the `progress` value must
//! increase with every notification (so a report that does not move forward is
//! nudged just past the last value sent), and clients that reset their request
//! timeout on progress need a heartbeat, so a quiet call re-sends its last state
//! every `keepalive`. Without a token nothing is sent at all.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::RoleServer;
use rmcp::Peer;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::tools::{Progress, ProgressSink};

/// What one notification carries (besides the token).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub progress: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
}

/// The pure rule: strictly increasing values, last state remembered for heartbeats.
#[derive(Debug, Default)]
pub(crate) struct Monotonic {
    last: Option<f64>,
    total: Option<f64>,
    message: Option<String>,
}

/// The smallest step we add when a value must move forward without real progress:
/// visible to any float parser, negligible next to any real progress scale.
fn nudge(last: f64) -> f64 {
    let bumped = last + 1e-6 * last.abs().max(1.0);
    if bumped > last {
        bumped
    } else {
        last.next_up()
    }
}

impl Monotonic {
    /// The notification for a tool's report.
    pub(crate) fn report(&mut self, p: Progress) -> Report {
        let value = match self.last {
            _ if !p.progress.is_finite() => self.last.map_or(0.0, nudge),
            Some(last) if p.progress <= last => nudge(last),
            _ => p.progress,
        };
        self.last = Some(value);
        if let Some(total) = p.total.filter(|t| t.is_finite()) {
            self.total = Some(total);
        }
        if p.message.is_some() {
            self.message = p.message;
        }
        self.current()
    }

    /// The heartbeat: the last state, nudged forward.
    pub(crate) fn keepalive(&mut self) -> Report {
        let value = self.last.map_or(0.0, nudge);
        self.last = Some(value);
        if self.message.is_none() {
            self.message = Some("working".to_owned());
        }
        self.current()
    }

    fn current(&self) -> Report {
        Report {
            progress: self.last.unwrap_or(0.0),
            total: self.total,
            message: self.message.clone(),
        }
    }
}

/// The running forwarder of one call; [`ProgressPump::finish`] stops it.
pub(crate) struct ProgressPump {
    done: CancellationToken,
    task: JoinHandle<()>,
}

impl ProgressPump {
    /// Send what the tool reported before it returned, then stop: no progress may
    /// follow the call's response.
    pub(crate) async fn finish(self) {
        self.done.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "progress forwarder ended abnormally");
        }
    }
}

/// A sink for the tool and, when the request asked for progress, the forwarder
/// behind it.
pub(crate) fn start(
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    keepalive: Duration,
) -> (ProgressSink, Option<ProgressPump>) {
    let Some(token) = token else {
        return (Arc::new(|_| {}), None);
    };
    let (tx, rx) = mpsc::unbounded_channel::<Progress>();
    let sink: ProgressSink = Arc::new(move |p| {
        let _ = tx.send(p); // after the call ended the receiver is gone: drop
    });
    let done = CancellationToken::new();
    let task = tokio::spawn(forward(peer, token, rx, done.clone(), keepalive));
    (sink, Some(ProgressPump { done, task }))
}

async fn send(peer: &Peer<RoleServer>, token: &ProgressToken, report: Report) {
    let mut param = ProgressNotificationParam::new(token.clone(), report.progress);
    if let Some(total) = report.total {
        param = param.with_total(total);
    }
    if let Some(message) = report.message {
        param = param.with_message(message);
    }
    if let Err(e) = peer.notify_progress(param).await {
        tracing::debug!(error = %e, "could not send a progress notification");
    }
}

async fn forward(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    mut rx: mpsc::UnboundedReceiver<Progress>,
    done: CancellationToken,
    keepalive: Duration,
) {
    let mut state = Monotonic::default();
    let mut last_sent = Instant::now();
    let mut tool_holds_sink = true;
    loop {
        tokio::select! {
            biased;
            _ = done.cancelled() => {
                while let Ok(p) = rx.try_recv() {
                    send(&peer, &token, state.report(p)).await;
                }
                return;
            }
            p = rx.recv(), if tool_holds_sink => match p {
                Some(p) => {
                    send(&peer, &token, state.report(p)).await;
                    last_sent = Instant::now();
                }
                None => tool_holds_sink = false,
            },
            _ = tokio::time::sleep_until(last_sent + keepalive) => {
                send(&peer, &token, state.keepalive()).await;
                last_sent = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(progress: f64) -> Progress {
        Progress {
            progress,
            total: None,
            message: None,
            item: None,
        }
    }

    #[test]
    fn values_strictly_increase_even_when_the_tool_goes_backwards() {
        let mut m = Monotonic::default();
        let mut sent = vec![];
        for v in [1.0, 5.0, 3.0, 5.0, f64::NAN, 6.0] {
            sent.push(m.report(p(v)).progress);
        }
        sent.push(m.keepalive().progress);
        for pair in sent.windows(2) {
            assert!(pair[1] > pair[0], "not increasing: {sent:?}");
        }
        assert_eq!(sent[0], 1.0);
        assert_eq!(sent[1], 5.0);
        assert_eq!(sent[5], 6.0);
    }

    #[test]
    fn keepalive_repeats_total_and_message() {
        let mut m = Monotonic::default();
        assert_eq!(m.keepalive().progress, 0.0);
        m.report(Progress {
            progress: 2.0,
            total: Some(10.0),
            message: Some("segmenting".into()),
            item: None,
        });
        let k = m.keepalive();
        assert!(k.progress > 2.0 && k.progress < 2.001);
        assert_eq!(k.total, Some(10.0));
        assert_eq!(k.message.as_deref(), Some("segmenting"));
    }

    #[test]
    fn nudge_moves_huge_values() {
        assert!(nudge(1e300) > 1e300);
        assert!(nudge(-3.0) > -3.0);
    }
}

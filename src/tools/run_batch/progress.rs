//! Per-volume progress of a batch attempt, read from the files the upstream writes
//! (a mask appears when a volume is done), not from what it prints.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::call::{estimate_seconds_left, Progress, ProgressSink};

/// Watches one attempt's expected masks, in the order the upstream processes them.
pub(crate) struct Tracker {
    state: Mutex<State>,
    sink: ProgressSink,
}

struct State {
    /// (volume id, expected mask) in processing order.
    order: Vec<(String, PathBuf)>,
    /// Masks of this attempt seen so far (the prefix of `order`).
    next: usize,
    total: usize,
    /// Volumes settled before this attempt (reused or processed by earlier attempts).
    settled_before: usize,
    /// Volumes settled by this batch run before this attempt (for the estimate).
    processed_before: usize,
    t0: Instant,
    /// (seconds since t0, volumes processed) when this attempt's first mask was seen:
    /// the attempt's start-up lies before it.
    first_done: Option<(f64, usize)>,
}

/// The progress line: `done/total`, the volume in flight, elapsed, and an estimate
/// from the pace of the volumes this run processed (none until one finished; see
/// [`estimate_seconds_left`] for `first_done`).
pub(crate) fn message(
    done: usize,
    total: usize,
    current: Option<&str>,
    elapsed_s: f64,
    processed: usize,
    first_done: Option<(f64, usize)>,
) -> String {
    let mut m = format!("{done}/{total} volumes done");
    if let Some(c) = current {
        m.push_str(&format!("; current {c}"));
    }
    m.push_str(&format!("; {elapsed_s:.0} s elapsed"));
    let remaining = total.saturating_sub(done);
    if let Some(eta) = estimate_seconds_left(
        processed as f64,
        remaining as f64,
        elapsed_s,
        first_done.map(|(at, n)| (at, n as f64)),
    ) {
        m.push_str(&format!("; about {eta:.0} s left"));
    }
    m
}

impl Tracker {
    pub(crate) fn new(
        order: Vec<(String, PathBuf)>,
        total: usize,
        settled_before: usize,
        processed_before: usize,
        t0: Instant,
        sink: ProgressSink,
    ) -> Self {
        Tracker {
            state: Mutex::new(State {
                order,
                next: 0,
                total,
                settled_before,
                processed_before,
                t0,
                first_done: None,
            }),
            sink,
        }
    }

    /// Check for newly written masks and report.
    pub(crate) fn poll(&self) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        while s.next < s.order.len()
            && std::fs::metadata(&s.order[s.next].1).is_ok_and(|m| m.len() > 0)
        {
            s.next += 1;
        }
        let done = s.settled_before + s.next;
        let processed = s.processed_before + s.next;
        let elapsed_s = s.t0.elapsed().as_secs_f64();
        if s.next > 0 && s.first_done.is_none() {
            s.first_done = Some((elapsed_s, processed));
        }
        let current = s.order.get(s.next).map(|(id, _)| id.as_str());
        let text = message(done, s.total, current, elapsed_s, processed, s.first_done);
        (self.sink)(Progress {
            progress: done as f64,
            total: Some(s.total as f64),
            message: Some(text),
            item: current.map(str::to_string),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn message_has_counts_current_elapsed_and_estimate() {
        assert_eq!(
            message(0, 3, Some("a"), 4.2, 0, None),
            "0/3 volumes done; current a; 4 s elapsed"
        );
        assert_eq!(
            message(2, 4, Some("c"), 20.0, 2, None),
            "2/4 volumes done; current c; 20 s elapsed; about 20 s left"
        );
        assert_eq!(
            message(3, 3, None, 30.0, 3, None),
            "3/3 volumes done; 30 s elapsed"
        );
        // Start-up (16 s to the first volume), then 2 s a volume: the estimate follows
        // the pace after the first volume.
        assert_eq!(
            message(3, 10, Some("d"), 20.0, 3, Some((16.0, 1))),
            "3/10 volumes done; current d; 20 s elapsed; about 14 s left"
        );
    }

    #[test]
    fn masks_on_disk_move_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let order: Vec<(String, PathBuf)> = ["a", "b"]
            .iter()
            .map(|id| {
                (
                    id.to_string(),
                    dir.path().join(format!("{id}_trans.nii.gz")),
                )
            })
            .collect();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = seen.clone();
        let tracker = Tracker::new(
            order.clone(),
            3,
            1,
            0,
            Instant::now(),
            Arc::new(move |p: Progress| sink_seen.lock().unwrap().push(p)),
        );
        tracker.poll();
        std::fs::write(&order[0].1, b"mask").unwrap();
        tracker.poll();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].progress, 1.0);
        assert!(seen[0].message.as_ref().unwrap().contains("current a"));
        assert_eq!(seen[0].item.as_deref(), Some("a"));
        assert_eq!(seen[1].item.as_deref(), Some("b"));
        assert_eq!(seen[1].progress, 2.0);
        assert_eq!(seen[1].total, Some(3.0));
        assert!(seen[1]
            .message
            .as_ref()
            .unwrap()
            .starts_with("2/3 volumes done; current b"));
    }
}

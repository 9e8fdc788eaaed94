//! `doctor`'s view of the machine beyond one run: GPU metrics (NVML) and the warm
//! workers that `serve` processes keep here, with their memory now.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::Check;
use crate::runner::workers::listing::Found;

/// Whether runs can record GPU memory and utilisation (NVML).
pub(super) fn gpu_metrics_check() -> Check {
    match crate::upstream::gpu::available() {
        Ok(()) => Check::new("gpu_metrics", true, "NVML answers: runs record GPU memory, utilisation and GPU-seconds", ""),
        Err(reason) => Check::new(
            "gpu_metrics",
            false,
            reason.to_string(),
            "optional: GPU figures need the NVIDIA driver's libnvidia-ml.so.1; runs work without it",
        ),
    }
}

/// The warm workers `serve` processes on this machine keep, with their memory now.
pub(super) fn workers_check(workers: &[Found], gpu: &BTreeMap<u32, u64>) -> Check {
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
            "none running (serve starts them on the first segmentation run, or at start with --warm)"
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
pub(super) fn worker_json(w: &Found, gpu: &BTreeMap<u32, u64>) -> Value {
    let l = &w.listed;
    json!({"id": l.id, "pid": l.pid, "server_pid": l.server_pid, "alive": w.alive,
           "bundle_root": l.bundle_root, "python": l.python, "device": l.device,
           "started_at": l.started_at, "start_seconds": l.start_seconds,
           "requests_served": l.requests_served, "last_request_at": l.last_request_at,
           "idle_stop_seconds": l.idle_stop_seconds, "rss_mib": w.rss_mib,
           "gpu_memory_mib": gpu.get(&l.pid).map(|b| *b as f64 / 1048576.0)})
}

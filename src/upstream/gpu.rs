//! What a run cost on the GPU, sampled through NVML while the upstream runs.
//!
//! NVML (`libnvidia-ml.so.1`) ships with the NVIDIA driver, not with this binary: it is
//! loaded at run time (`nvml-wrapper`), so the same build runs on machines without a
//! GPU and says there why nothing was measured. A sampler thread reads, every
//! [`INTERVAL`], the GPU memory of the processes in the upstream's process group and
//! the utilisation of the devices they run on. Memory is attributed per process, so
//! another job on the same GPU does not count; utilisation is per device (NVML has no
//! per-process figure that every driver fills), which the evidence says.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How often the sampler reads NVML.
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);

/// GPU figures of one run, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GpuCost {
    pub measured: bool,
    /// Why nothing was measured (no driver, NVML failed, the run used no GPU).
    pub reason: Option<String>,
    /// The devices the upstream's processes ran on (NVML index and name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Largest GPU memory held by the upstream's processes at one sample, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_mib: Option<f64>,
    /// Mean utilisation of those devices over the samples, in percent (device-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_utilisation_percent: Option<f64>,
    /// Utilisation integrated over time: busy seconds summed over those devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_seconds: Option<f64>,
    /// Samples taken, and the interval between them in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

impl GpuCost {
    /// Nothing measured, and why.
    pub(crate) fn unmeasured(reason: impl Into<String>) -> Self {
        GpuCost {
            measured: false,
            reason: Some(reason.into()),
            devices: Vec::new(),
            peak_memory_mib: None,
            mean_utilisation_percent: None,
            gpu_seconds: None,
            samples: None,
            interval_ms: None,
        }
    }
}

/// Why GPU figures cannot be had: NVML is not there, or it failed to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GpuError {
    /// libnvidia-ml could not be loaded; `driver` says whether a device node exists.
    #[error("NVML (libnvidia-ml) could not be loaded: {detail}; {driver}")]
    NoNvml {
        detail: String,
        driver: &'static str,
    },
    /// NVML is loaded but a query failed (its message).
    #[error("{0}")]
    Query(String),
}

/// NVML, initialised once per process, or why it could not be.
fn nvml() -> Result<&'static Nvml, GpuError> {
    static NVML: OnceLock<Result<Nvml, GpuError>> = OnceLock::new();
    NVML.get_or_init(|| {
        Nvml::init().map_err(|e| {
            let driver = if std::path::Path::new("/dev/nvidiactl").exists() {
                "an NVIDIA device node is present"
            } else {
                "no NVIDIA driver on this machine (/dev/nvidiactl is absent)"
            };
            GpuError::NoNvml {
                detail: e.to_string(),
                driver,
            }
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether NVML answers on this machine (for `doctor`).
pub(crate) fn available() -> Result<(), GpuError> {
    nvml().map(|_| ())
}

/// GPU memory per process id on every device, in bytes (for `doctor`'s worker list).
pub(crate) fn memory_by_pid() -> Result<std::collections::BTreeMap<u32, u64>, GpuError> {
    let nvml = nvml()?;
    let query = |e: nvml_wrapper::error::NvmlError| GpuError::Query(e.to_string());
    let mut out = std::collections::BTreeMap::new();
    for index in 0..nvml.device_count().map_err(query)? {
        let device = nvml.device_by_index(index).map_err(query)?;
        for p in device.running_compute_processes().unwrap_or_default() {
            if let UsedGpuMemory::Used(bytes) = p.used_gpu_memory {
                *out.entry(p.pid).or_insert(0) += bytes;
            }
        }
    }
    Ok(out)
}

/// The process group of `pid` (field 5 of `/proc/<pid>/stat`).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// A running sampler; [`GpuSampler::finish`] stops it and sums up.
pub(crate) struct GpuSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<GpuCost>>,
}

/// Sums kept across samples.
#[derive(Default)]
struct Tally {
    devices: BTreeSet<String>,
    peak_bytes: u64,
    utilisation_sum: f64,
    utilisation_samples: u32,
    busy_seconds: f64,
    samples: u32,
}

impl GpuSampler {
    /// Start sampling the processes of process group `group` (0 until the caller
    /// knows it: a one-shot child's group appears when it is spawned).
    pub(crate) fn start(group: Arc<AtomicU32>) -> GpuSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gpu-sampler".into())
            .spawn(move || sample_until(&flag, &group))
            .ok();
        GpuSampler { stop, thread }
    }

    /// Stop sampling and return what was measured.
    pub(crate) fn finish(mut self) -> GpuCost {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(cost)) => cost,
            _ => GpuCost::unmeasured("the GPU sampler thread could not run"),
        }
    }
}

impl Drop for GpuSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sample_until(stop: &AtomicBool, group: &AtomicU32) -> GpuCost {
    let nvml = match nvml() {
        Ok(n) => n,
        Err(reason) => return GpuCost::unmeasured(reason.to_string()),
    };
    let mut tally = Tally::default();
    let mut last = Instant::now();
    loop {
        let group_id = group.load(Ordering::Relaxed);
        if group_id != 0 {
            let dt = last.elapsed().as_secs_f64();
            sample(nvml, group_id, dt, &mut tally);
        }
        last = Instant::now();
        if stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(INTERVAL);
    }
    tally.into_cost()
}

/// One sample: memory of the group's processes; utilisation of their devices.
fn sample(nvml: &Nvml, group: u32, dt: f64, tally: &mut Tally) {
    let Ok(count) = nvml.device_count() else {
        return;
    };
    tally.samples += 1;
    let mut bytes = 0u64;
    for index in 0..count {
        let Ok(device) = nvml.device_by_index(index) else {
            continue;
        };
        let ours: Vec<_> = device
            .running_compute_processes()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| process_group(p.pid) == Some(group))
            .collect();
        if ours.is_empty() {
            continue;
        }
        for p in &ours {
            if let UsedGpuMemory::Used(b) = p.used_gpu_memory {
                bytes += b;
            }
        }
        let name = device.name().unwrap_or_else(|_| "unknown".into());
        tally.devices.insert(format!("{index}: {name}"));
        if let Ok(u) = device.utilization_rates() {
            tally.utilisation_sum += f64::from(u.gpu);
            tally.utilisation_samples += 1;
            tally.busy_seconds += f64::from(u.gpu) / 100.0 * dt;
        }
    }
    tally.peak_bytes = tally.peak_bytes.max(bytes);
}

impl Tally {
    fn into_cost(self) -> GpuCost {
        if self.devices.is_empty() {
            return GpuCost {
                samples: Some(self.samples),
                interval_ms: Some(INTERVAL.as_millis() as u64),
                ..GpuCost::unmeasured(
                    "NVML answered, but no process of the upstream held a GPU context while it was sampled",
                )
            };
        }
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        GpuCost {
            measured: true,
            reason: None,
            devices: self.devices.into_iter().collect(),
            peak_memory_mib: Some(round(self.peak_bytes as f64 / (1024.0 * 1024.0))),
            mean_utilisation_percent: (self.utilisation_samples > 0)
                .then(|| round(self.utilisation_sum / f64::from(self.utilisation_samples))),
            gpu_seconds: Some(round(self.busy_seconds)),
            samples: Some(self.samples),
            interval_ms: Some(INTERVAL.as_millis() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_without_nvml_says_why_and_one_with_it_samples() {
        let group = Arc::new(AtomicU32::new(process_group(std::process::id()).unwrap()));
        let sampler = GpuSampler::start(group);
        std::thread::sleep(INTERVAL * 2);
        let cost = sampler.finish();
        match nvml() {
            Err(reason) => {
                assert!(!cost.measured);
                let reason = reason.to_string();
                assert_eq!(cost.reason.as_deref(), Some(reason.as_str()));
                assert!(reason.contains("NVML"), "{reason}");
            }
            // This test process holds no GPU context: NVML answers, nothing is ours.
            Ok(_) => {
                assert!(!cost.measured);
                assert!(cost.samples.is_some_and(|s| s >= 1), "{cost:?}");
            }
        }
    }

    #[test]
    fn the_tally_sums_utilisation_over_time() {
        let mut tally = Tally::default();
        tally.devices.insert("0: H200".into());
        tally.peak_bytes = 3 * 1024 * 1024 * 1024;
        for _ in 0..4 {
            tally.utilisation_sum += 50.0;
            tally.utilisation_samples += 1;
            tally.busy_seconds += 0.5 * 0.25;
            tally.samples += 1;
        }
        let cost = tally.into_cost();
        assert!(cost.measured);
        assert_eq!(cost.peak_memory_mib, Some(3072.0));
        assert_eq!(cost.mean_utilisation_percent, Some(50.0));
        assert_eq!(cost.gpu_seconds, Some(0.5));
        assert_eq!(cost.samples, Some(4));
    }

    #[test]
    fn this_process_has_a_process_group() {
        let group = process_group(std::process::id());
        // SAFETY: getpgrp has no preconditions.
        let expected = unsafe { libc::getpgrp() } as u32;
        assert_eq!(group, Some(expected));
    }
}

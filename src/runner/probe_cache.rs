//! The environment probe (Python, torch, MONAI, CUDA device), once per interpreter,
//! bundle and device: its facts do not change between runs, and its imports cost
//! seconds (17 s cold on an H200). Remembered in memory and in `probe-cache.json` beside
//! the runs index, so a CLI run (a fresh process each time) pays for it only once per
//! interpreter too. The key holds the interpreter's path, size and mtime: a reinstalled
//! interpreter is probed again.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use crate::config::Config;
use crate::upstream::{DeviceRequest, EnvProbe};

/// The cached probe of `python` for `root` and `device`, or `probe()`'s answer (then
/// remembered). Only successful probes are kept; a failed one comes back as `probe()`
/// gave it.
pub(crate) async fn cached<F, Fut, E>(
    config: &Config,
    python: &Path,
    root: &Path,
    device: DeviceRequest,
    probe: F,
) -> Result<EnvProbe, E>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<EnvProbe, E>>,
{
    static MEMORY: std::sync::Mutex<BTreeMap<String, EnvProbe>> =
        std::sync::Mutex::new(BTreeMap::new());
    let key = key(python, root, device);
    let file = config
        .runs_dir
        .parent()
        .unwrap_or(&config.runs_dir)
        .join("probe-cache.json");
    let on_disk = || -> BTreeMap<String, EnvProbe> {
        crate::files::read_capped(&file, crate::files::JSON_CAP)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    };
    let remembered = MEMORY.lock().ok().and_then(|m| m.get(&key).cloned());
    if let Some(hit) = remembered.or_else(|| on_disk().remove(&key)) {
        return Ok(hit);
    }
    let fresh = probe().await?;
    if let Ok(mut memory) = MEMORY.lock() {
        memory.insert(key.clone(), fresh.clone());
    }
    let mut all = on_disk();
    all.insert(key, fresh.clone());
    if let Err(e) = crate::atomic::write_json(&file, &all) {
        tracing::debug!("probe cache {} not written: {e}", file.display());
    }
    Ok(fresh)
}

/// Interpreter path, size and mtime; bundle root; device.
fn key(python: &Path, root: &Path, device: DeviceRequest) -> String {
    let meta = std::fs::metadata(python).ok();
    let mtime = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}|{}|{mtime}|{}|{}",
        python.display(),
        meta.as_ref().map_or(0, |m| m.len()),
        root.display(),
        device.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(device: &str) -> EnvProbe {
        serde_json::from_value(serde_json::json!({
            "python": "/usr/bin/python3", "python_executable": "/usr/bin/python3", "python_version": "3.11.7",
            "platform": "Linux", "monai_version": "1.5.0", "torch_version": "2.5.0",
            "cuda_available": false, "cuda_device_name": null, "device": device
        }))
        .expect("a probe parses")
    }

    #[test]
    fn a_second_process_reads_the_probe_from_disk_and_a_new_interpreter_is_probed_again() {
        let dir = tempfile_dir();
        let config = Config::new(dir.clone(), vec![], None, None, 1);
        let python = dir.join("python");
        std::fs::write(&python, b"#!/bin/sh\n").unwrap();
        let root = dir.join("bundle");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first = rt.block_on(cached(
            &config,
            &python,
            &root,
            DeviceRequest::Cpu,
            || async { Ok::<_, String>(probe("cpu")) },
        ));
        assert_eq!(first.unwrap().device, "cpu");
        // Same key: answered from the cache (the probe would fail if it ran).
        let again = rt.block_on(cached(
            &config,
            &python,
            &root,
            DeviceRequest::Cpu,
            || async { Err("probed twice".to_string()) },
        ));
        assert!(again.is_ok());
        let file = dir.join(".ctmr-skill/probe-cache.json");
        assert!(file.is_file(), "the cache is on disk for the next process");
        // A reinstalled interpreter (another size) is probed again.
        std::fs::write(&python, b"#!/bin/sh\n# reinstalled\n").unwrap();
        let changed = rt.block_on(cached(
            &config,
            &python,
            &root,
            DeviceRequest::Cpu,
            || async { Err("probed again".to_string()) },
        ));
        assert_eq!(changed.unwrap_err(), "probed again");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ctmr-probe-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

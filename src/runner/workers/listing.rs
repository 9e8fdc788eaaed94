//! The warm workers of every `serve` on this machine, as one small file each under
//! `workers/` beside the runs index, so another process (`ctmr-skill doctor`) can show
//! which models are loaded, by whom, and what memory they hold.
//!
//! A file lives as long as its worker: [`Entry`] removes it when the worker stops (idle,
//! crash, server exit). A server killed with SIGKILL leaves its file behind; readers
//! check that the process is still a worker ([`list`]) and report such files as stale.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a worker's file says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Listed {
    pub id: String,
    pub pid: u32,
    /// The `serve` process that owns it.
    pub server_pid: u32,
    pub python: PathBuf,
    pub bundle_root: PathBuf,
    pub device: String,
    pub started_at: String,
    /// Seconds from spawn until Python, torch and MONAI were imported.
    pub start_seconds: f64,
    pub requests_served: u64,
    pub last_request_at: Option<String>,
    /// It stops after this many seconds without a request.
    pub idle_stop_seconds: u64,
}

/// The folder of worker files for a runs index.
pub(crate) fn dir_for(runs_dir: &Path) -> PathBuf {
    runs_dir.parent().unwrap_or(runs_dir).join("workers")
}

/// A worker's file, removed when dropped.
pub(crate) struct Entry {
    file: PathBuf,
    pub listed: Listed,
}

impl Entry {
    /// Write the file (best effort: a worker runs whether or not it is listed).
    pub(crate) fn create(dir: &Path, listed: Listed) -> Entry {
        let entry = Entry {
            file: dir.join(format!("{}.json", listed.id)),
            listed,
        };
        entry.write();
        entry
    }

    /// Record one more request served.
    pub(crate) fn served(&mut self, requests: u64) {
        self.listed.requests_served = requests;
        self.listed.last_request_at = Some(chrono::Utc::now().to_rfc3339());
        self.write();
    }

    fn write(&self) {
        let text = serde_json::to_vec_pretty(&self.listed).expect("a listing serialises");
        let written = self
            .file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| crate::atomic::write(&self.file, &text));
        if let Err(e) = written {
            tracing::warn!(
                "cannot list the warm worker in {}: {e}",
                self.file.display()
            );
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// A listed worker as found now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    pub listed: Listed,
    /// The process is alive and is a ctmr-skill worker (not a reused pid).
    pub alive: bool,
    /// Resident memory now, in MiB.
    pub rss_mib: Option<f64>,
}

/// Every worker file under `dir`, with whether its process still runs.
pub(crate) fn list(dir: &Path) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Found> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| crate::files::read_capped(&e.path(), 1 << 16).ok())
        .filter_map(|bytes| serde_json::from_slice::<Listed>(&bytes).ok())
        .map(|listed| {
            let alive = is_worker(listed.pid);
            let rss_mib = alive
                .then(|| crate::upstream::usage::process_rss_kib(listed.pid))
                .flatten();
            Found {
                alive,
                rss_mib: rss_mib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0),
                listed,
            }
        })
        .collect();
    found.sort_by(|a, b| a.listed.started_at.cmp(&b.listed.started_at));
    found
}

/// Whether `pid` runs the worker driver (`ctmr_worker.py` on its command line).
fn is_worker(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .any(|arg| arg.ends_with(b"ctmr_worker.py"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, pid: u32) -> Listed {
        Listed {
            id: id.into(),
            pid,
            server_pid: std::process::id(),
            python: "/usr/bin/python3".into(),
            bundle_root: "/bundles/demo".into(),
            device: "auto".into(),
            started_at: chrono::Utc::now().to_rfc3339(),
            start_seconds: 1.5,
            requests_served: 0,
            last_request_at: None,
            idle_stop_seconds: 300,
        }
    }

    #[test]
    fn a_file_lives_as_long_as_its_entry_and_a_stranger_pid_is_not_alive() {
        let dir = std::env::temp_dir().join(format!("ctmr-workers-{}", uuid::Uuid::new_v4()));
        // Our own pid runs the test binary, not the worker driver: listed, not alive.
        let mut entry = Entry::create(&dir, listed("w-1", std::process::id()));
        entry.served(3);
        let found = list(&dir);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].listed.requests_served, 3);
        assert!(found[0].listed.last_request_at.is_some());
        assert!(!found[0].alive);
        assert_eq!(found[0].rss_mib, None);
        drop(entry);
        assert!(list(&dir).is_empty(), "the file goes with its entry");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_process_running_the_driver_is_alive_and_has_memory() {
        let dir = std::env::temp_dir().join(format!("ctmr-workers-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("ctmr_worker.py");
        std::fs::write(&script, "import time\ntime.sleep(30)\n").unwrap();
        let mut child = std::process::Command::new("python3")
            .arg(&script)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !is_worker(child.id()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let entry = Entry::create(&dir, listed("w-2", child.id()));
        let found = list(&dir);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found[0].alive, "{found:?}");
        assert!(found[0].rss_mib.is_some_and(|m| m > 0.0), "{found:?}");
        drop(entry);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

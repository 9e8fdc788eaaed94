//! The warm workers of a real `ctmr-skill serve --warm`, seen from outside: the worker
//! starts before any call and `doctor` lists it with its memory; a call runs through
//! it; a cancelled call kills it (its process group, its listing) and leaves a
//! `cancelled` pack; the next call starts a fresh worker and succeeds. The demo bundle
//! (a real `monai.bundle` workflow) on CPU.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::stdio::Server;

struct World {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    runs: PathBuf,
}

fn world() -> World {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("demo-bundle");
    common::demo_bundle_copy(&root);
    // A small volume, and one large enough (~10 s on CPU) to cancel while it runs.
    for (name, shape) in [
        ("small", ["40", "40", "24"]),
        ("large", ["256", "256", "160"]),
    ] {
        common::demo_volume(&base.join(format!("{name}.nii.gz")), shape);
    }
    let runs = base.join("state/runs");
    World {
        _dir: dir,
        base,
        root,
        runs,
    }
}

impl World {
    fn env(&self) -> [(&'static str, &Path); 2] {
        [
            ("NV_SEGMENT_CTMR_ROOT", self.root.as_path()),
            ("CTMR_SKILL_RUNS_DIR", self.runs.as_path()),
        ]
    }

    /// `ctmr-skill doctor --json`'s `workers`, in the server's environment.
    fn doctor_workers(&self) -> Vec<Value> {
        let mut command = std::process::Command::new(common::binary());
        command
            .args(["doctor", "--json"])
            .current_dir(&self.base)
            .env("CTMR_SKILL_PYTHON", common::python());
        for (k, v) in self.env() {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let report = common::stdout_json(&out);
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "warm_workers")
            .cloned()
            .unwrap_or_else(|| panic!("doctor has no warm_workers check: {report}"));
        assert_eq!(check["ok"], true, "{check}");
        report["workers"].as_array().unwrap().clone()
    }

    fn evidence(&self, out: &str) -> Value {
        let text = std::fs::read_to_string(self.base.join(out).join("output.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn args(&self, input: &str, out: &str) -> Value {
        json!({"input": self.base.join(format!("{input}.nii.gz")),
               "output_dir": self.base.join(out), "modality": "CT_BODY"})
    }
}

fn pid_alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Poll `what` until it holds, or fail naming it.
fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn serve_warm_starts_lists_serves_and_replaces_a_cancelled_worker() {
    let w = world();
    let env = w.env();
    let mut server = Server::start_with_args(&w.base, Some(&common::python()), &env, &["--warm"]);
    server.initialize();

    // Started before any call, and listed with its memory.
    let mut listed = Vec::new();
    wait_until(
        "doctor lists the warm worker",
        Duration::from_secs(180),
        || {
            listed = w.doctor_workers();
            listed.iter().any(|x| x["alive"] == true)
        },
    );
    let first = listed.iter().find(|x| x["alive"] == true).unwrap().clone();
    assert_eq!(first["requests_served"], 0, "{first}");
    assert!(first["rss_mib"].as_f64().unwrap() > 10.0, "{first}");
    assert_eq!(
        Path::new(first["bundle_root"].as_str().unwrap()),
        w.root,
        "{first}"
    );

    // A call with default settings runs through it: no worker start in its phases.
    server.call(1, "run_script", w.args("small", "a"));
    let reply = server.response(1, Duration::from_secs(300));
    assert_eq!(reply["result"]["isError"], false, "{reply}");
    let a = w.evidence("a");
    assert_eq!(a["status"], "succeeded", "{a}");
    assert_eq!(a["invocation"]["mode"], "warm_worker");
    assert_eq!(a["invocation"]["worker"]["id"], first["id"]);
    assert!(a["runtime"]["phases"].get("worker_start").is_none(), "{a}");
    let after = w.doctor_workers();
    assert_eq!(after[0]["requests_served"], 1, "{after:?}");

    // Cancelled mid-run: the worker's process group dies, its listing goes, and the
    // pack says `cancelled`.
    server.call(2, "run_script", w.args("large", "b"));
    std::thread::sleep(Duration::from_secs(3));
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                       "params": {"requestId": 2, "reason": "test"}}),
    );
    wait_until(
        "the cancelled pack is written",
        Duration::from_secs(60),
        || w.base.join("b/output.json").is_file(),
    );
    let b = w.evidence("b");
    assert_eq!(b["status"], "cancelled", "{}", b["summary"]);
    let pid = first["pid"].as_u64().unwrap();
    wait_until(
        "the cancelled worker is gone",
        Duration::from_secs(30),
        || !pid_alive(pid),
    );
    wait_until("its listing is gone", Duration::from_secs(30), || {
        w.doctor_workers().iter().all(|x| x["id"] != first["id"])
    });

    // The next call starts a new worker and succeeds.
    server.call(3, "run_script", w.args("small", "c"));
    let reply = server.response(3, Duration::from_secs(300));
    assert_eq!(reply["result"]["isError"], false, "{reply}");
    let c = w.evidence("c");
    assert_eq!(c["status"], "succeeded");
    assert_eq!(c["invocation"]["mode"], "warm_worker");
    assert_ne!(c["invocation"]["worker"]["id"], first["id"]);
    assert!(c["runtime"]["phases"].get("worker_start").is_some(), "{c}");
    server.close_and_wait(Duration::from_secs(20));
    wait_until(
        "the server's exit removes the listing",
        Duration::from_secs(20),
        || w.doctor_workers().is_empty(),
    );
}

//! The trust boundary, tried as an attacker would through the real `ctmr-skill serve`
//! over the raw wire: an MCP client (whose arguments a prompt injection may steer)
//! cannot run code of its own through a bundle root, cannot make the server write
//! outside the allowed directories (before the gates, or through links), and cannot
//! turn a run id into a path.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::stdio::Server;
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

/// A server whose working directory is `base/cwd` and temp dir `base/tmp` (the two
/// allowed directories), with the demo bundle copy at `base/demo` installed by the
/// operator as `demo`. `base/outside` is outside every allowed directory.
struct World {
    _dir: tempfile::TempDir,
    base: PathBuf,
    input: PathBuf,
    server: Server,
}

fn world() -> World {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    for sub in ["cwd", "tmp", "outside"] {
        std::fs::create_dir_all(base.join(sub)).unwrap();
    }
    common::demo_bundle_copy(&base.join("demo"));
    let input = base.join("cwd/ct.nii.gz");
    common::make_volume(&input, &[]);
    let roots = PathBuf::from(format!("demo={}", base.join("demo").display()));
    let mut server = Server::start_with_env(
        &base.join("cwd"),
        Some(&common::python()),
        &[
            ("CTMR_SKILL_BUNDLE_ROOTS", &roots),
            ("TMPDIR", &base.join("tmp")),
            ("CTMR_SKILL_RUNS_DIR", &base.join("cwd/runs-index")),
        ],
    );
    server.initialize();
    World {
        _dir: dir,
        base,
        input,
        server,
    }
}

impl World {
    fn call(&mut self, id: i64, tool: &str, arguments: Value) -> Value {
        self.server.request(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
            MINUTE,
        )["result"]
            .clone()
    }
}

fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn refused(result: &Value, needles: &[&str]) {
    assert_eq!(result["isError"], true, "{result}");
    let text = text(result);
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Defect: a directory the client prepared ran as a bundle (its config's
/// `$`-expression executed code as the server's user).
#[test]
fn a_client_cannot_introduce_a_bundle_root() {
    let mut w = world();
    let evil = w.base.join("cwd/evil-bundle");
    let marker = w.base.join("outside/pwned");
    std::fs::create_dir_all(evil.join("configs")).unwrap();
    std::fs::create_dir_all(evil.join("models")).unwrap();
    std::fs::copy(
        w.base.join("demo/configs/metadata.json"),
        evil.join("configs/metadata.json"),
    )
    .unwrap();
    let payload = format!("$__import__('os').system('touch {}')", marker.display());
    std::fs::write(
        evil.join("configs/inference.json"),
        json!({"imports": ["$import os"], "pwn": payload, "run": [payload]}).to_string(),
    )
    .unwrap();
    std::fs::write(evil.join("models/model.pt"), b"x").unwrap();
    let out = w.base.join("cwd/out");
    let result = w.call(
        1,
        "run_script",
        json!({"input": w.input, "output_dir": out, "upstream_root": evil, "device": "cpu"}),
    );
    refused(&result, &["upstream_root", "operator", "demo ("]);
    let result = w.call(
        2,
        "list_labels",
        json!({"query": "liver", "upstream_root": evil}),
    );
    refused(&result, &["upstream_root"]);
    assert!(!marker.exists(), "the client's bundle ran");
    assert!(!out.exists(), "a refused call wrote {}", out.display());
    // The operator's roots stay usable by name and by path.
    for (id, root) in [(3, json!("demo")), (4, json!(w.base.join("demo")))] {
        let result = w.call(
            id,
            "list_labels",
            json!({"resolve": ["liver"], "upstream_root": root}),
        );
        assert_eq!(result["isError"], false, "{result}");
        assert_eq!(result["structuredContent"]["resolved"][0]["id"], 1);
    }
}

/// Defect: with `wait: false` the run record (and every missing parent) was written
/// outside the allowed directories before the gates ran.
#[test]
fn a_background_call_is_gated_before_it_writes() {
    let mut w = world();
    let outside = w.base.join("outside");
    let result = w.call(
        1,
        "run_script",
        json!({"input": w.input, "output_dir": outside.join("pack/deeper"), "wait": false}),
    );
    refused(
        &result,
        &["output_dir_allowed", "not inside an allowed directory"],
    );
    let result = w.call(
        2,
        "run_batch",
        json!({"inputs": [w.input], "output_root": outside.join("cohort"), "wait": false}),
    );
    refused(&result, &["output_dir_allowed"]);
    assert!(entries(&outside).is_empty(), "{:?}", entries(&outside));
    let result = w.call(3, "list_runs", json!({}));
    assert_eq!(result["structuredContent"]["runs"], json!([]), "{result}");
}

/// Defect: links inside an allowed output directory (`logs/`, `<stem>/`, `.runs/`)
/// carried the logs, the mask and the run record outside.
#[test]
fn links_inside_the_output_dir_are_refused() {
    let mut w = world();
    let outside = w.base.join("outside");
    for (id, name, wait) in [(1, "logs", true), (2, "ct", true), (3, ".runs", false)] {
        let out = w.base.join(format!("cwd/out-{id}"));
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink(&outside, out.join(name)).unwrap();
        let result = w.call(
            id,
            "run_script",
            json!({"input": w.input, "output_dir": out, "device": "cpu", "wait": wait}),
        );
        refused(&result, &["symbolic link", name]);
    }
    assert!(entries(&outside).is_empty(), "{:?}", entries(&outside));
}

/// Defect: `get_run` joined the run id onto the runs directory, so `../x` and
/// absolute paths read (and rewrote) JSON files outside it.
#[test]
fn run_ids_are_not_paths() {
    let mut w = world();
    let planted = w.base.join("cwd/x.json");
    let pointer = json!({"run_id": "x", "record": w.base.join("outside/record.json")});
    std::fs::write(&planted, pointer.to_string()).unwrap();
    let record = json!({"schema_version": "ctmr-skill.run/1", "run_id": "x", "tool": "run_script",
        "state": "running", "pack_dir": "/", "result_file": "etc/hostname", "pid": 1,
        "started_at": "2026-01-01T00:00:00Z", "finished_at": null, "message": null, "progress": null});
    std::fs::write(w.base.join("outside/record.json"), record.to_string()).unwrap();
    let before = std::fs::read_to_string(w.base.join("outside/record.json")).unwrap();
    for (id, run_id) in [(1, "../x"), (2, "/etc/passwd"), (3, "../../cwd/x")] {
        let result = w.call(id, "get_run", json!({"run_id": run_id}));
        refused(&result, &["run_id", "is not a run id"]);
        let result = w.call(id + 10, "cancel_run", json!({"run_id": run_id}));
        refused(&result, &["run_id"]);
    }
    let after = std::fs::read_to_string(w.base.join("outside/record.json")).unwrap();
    assert_eq!(
        before, after,
        "a record outside the runs index was rewritten"
    );
}

/// Smaller defects: an output_dir with a NUL byte, one that is a file, one that is a
/// dangling link: each refused before anything runs, naming the problem.
#[test]
fn unusable_output_dirs_are_refused_in_words() {
    let mut w = world();
    let file = w.base.join("cwd/a-file");
    std::fs::write(&file, b"x").unwrap();
    let dangling = w.base.join("cwd/dangling");
    std::os::unix::fs::symlink(w.base.join("cwd/nothing-here"), &dangling).unwrap();
    let cases = [
        (json!(format!("{}/a\u{0}b", w.base.display())), "NUL byte"),
        (json!(file), "is not a directory"),
        (json!(dangling), "dangling"),
    ];
    for (id, (out, words)) in (1..).zip(cases) {
        let result = w.call(
            id,
            "run_script",
            json!({"input": w.input, "output_dir": out, "device": "cpu"}),
        );
        refused(&result, &["output_dir", words]);
    }
    assert!(!w.base.join("cwd/nothing-here").exists());
}

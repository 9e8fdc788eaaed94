//! The trust boundary, tried as an attacker would through the real `ctmr-skill serve`
//! over the raw wire: an MCP client (whose arguments a prompt injection may steer)
//! cannot run code of its own through a bundle root, cannot make the server write
//! outside the allowed directories (before the gates, or through links), and cannot
//! turn a run id into a path. Second round (issue 21): every argument that names a
//! written path goes through one gate; a file read back from a pack (run record,
//! `output.json`) neither widens what the server reads nor chooses what it signals;
//! only files a run wrote are served.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::stdio::Server;
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
    let server = serve(&base);
    World {
        _dir: dir,
        base,
        input,
        server,
    }
}

/// `ctmr-skill serve` in `base/cwd`, initialised.
fn serve(base: &Path) -> Server {
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
    server
}

impl World {
    /// Stop the server and start a fresh one on the same directories.
    fn restart(&mut self) {
        let old = std::mem::replace(&mut self.server, serve(&self.base));
        old.close_and_wait(MINUTE);
    }

    /// A raw request's `result` (or its `error`).
    fn ask(&mut self, id: i64, method: &str, params: Value) -> Value {
        let reply = self.server.request(id, method, params, MINUTE);
        reply.get("result").cloned().unwrap_or(reply)
    }

    /// Start a `wait: false` run_script into `out` and wait until it has ended.
    fn run_in_background(&mut self, id: i64, out: &Path) -> String {
        let started = self.call(
            id,
            "run_script",
            json!({"input": self.input, "output_dir": out, "device": "cpu", "wait": false}),
        );
        let run_id = started["structuredContent"]["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no run_id: {started}"))
            .to_string();
        for poll in 0..600 {
            let view = self.call(id * 1000 + poll, "get_run", json!({"run_id": run_id}));
            if view["structuredContent"]["run"]["state"] != "running" {
                assert_eq!(
                    view["structuredContent"]["run"]["state"], "succeeded",
                    "{view}"
                );
                return run_id;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("run {run_id} did not end within two minutes");
    }

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

/// The arguments that name a written path, as the manifest declares them
/// (`writes: directory | picture`), by tool.
fn written_path_arguments() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(common::repo_root().join("skill_manifest.yaml")).unwrap();
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for tool in manifest["interface"]["tools"].as_sequence().unwrap() {
        for arg in tool["arguments"].as_sequence().into_iter().flatten() {
            if let Some(kind) = arg["writes"].as_str() {
                let name = |v: &serde_yaml::Value| v.as_str().unwrap().to_string();
                out.push((name(&tool["name"]), name(&arg["name"]), kind.to_string()));
            }
        }
    }
    out
}

/// Issue 21, item 1: `render_overlay`'s `out` was written with no allowed-directory
/// check (a dotfile outside, through a linked directory, `<cwd>/..`). Every argument
/// the manifest declares as written is tried with each way out, and each is refused
/// naming the argument, with nothing written.
#[test]
fn every_written_path_argument_goes_through_the_write_gate() {
    let mut w = world();
    let declared = written_path_arguments();
    let names: Vec<String> = declared
        .iter()
        .map(|(t, a, _)| format!("{t}.{a}"))
        .collect();
    assert_eq!(
        names,
        [
            "run_script.output_dir",
            "run_batch.output_root",
            "render_overlay.out"
        ],
        "a new written-path argument: add its tool's base arguments below"
    );
    let outside = w.base.join("outside");
    std::os::unix::fs::symlink(&outside, w.base.join("cwd/link")).unwrap();
    std::fs::write(outside.join(".profile"), "operator's file").unwrap();
    std::fs::write(w.base.join("cwd/.bashrc"), "operator's file").unwrap();
    let input = w.input.clone();
    let mut id = 0;
    for (tool, arg, kind) in &declared {
        let base = match tool.as_str() {
            "run_script" => json!({"input": input, "device": "cpu"}),
            "run_batch" => json!({"inputs": [input], "device": "cpu"}),
            "render_overlay" => json!({"mask": input}),
            other => panic!("no base arguments for {other}"),
        };
        let (file, dir) = (kind == "picture", kind == "directory");
        let mut ways_out = vec![
            (
                outside.join(if file { ".profile" } else { "pack" }),
                "not inside an allowed directory",
            ),
            (
                w.base.join("cwd/link/x.png"),
                "not inside an allowed directory",
            ),
            (
                w.base.join("cwd/../outside/y.png"),
                "not inside an allowed directory",
            ),
            (
                w.base.join("demo/pack.png"),
                "not inside an allowed directory",
            ),
        ];
        if dir {
            ways_out.push((w.base.join("cwd"), "an allowed directory itself"));
            ways_out.push((w.base.join("tmp/."), "an allowed directory itself"));
            ways_out.push((w.base.join("cwd/runs-index/x"), "inside the runs index"));
        }
        if file {
            ways_out.push((w.base.join("cwd/.bashrc"), "not a picture's name"));
            ways_out.push((w.base.join("cwd/notes.txt"), "not a picture's name"));
        }
        for (path, words) in ways_out {
            id += 1;
            let mut args = base.clone();
            args[arg.as_str()] = json!(path);
            let result = w.call(id, tool, args);
            refused(&result, &[arg.as_str(), words]);
        }
    }
    assert_eq!(
        entries(&outside),
        [".profile"],
        "something was written outside"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join(".profile")).unwrap(),
        "operator's file"
    );
    assert_eq!(
        std::fs::read_to_string(w.base.join("cwd/.bashrc")).unwrap(),
        "operator's file"
    );
    assert!(!w.base.join("cwd/runs-index/x").exists());
}

/// Issue 21, item 2: a run record edited in its pack (another `pack_dir`, a
/// `result_file` outside it, `running` with the child of an unrelated process group)
/// and a `pack_dir` written into `output.json` made a fresh server serve files outside
/// every pack and SIGKILL that process group. Now the runs index vouches for the
/// pack, the result file and the child; the pack's files are only data.
#[test]
fn a_forged_run_record_neither_widens_reads_nor_signals() {
    use std::os::unix::process::CommandExt;
    let mut w = world();
    let pack = w.base.join("cwd/pack");
    let run_id = w.run_in_background(1, &pack);
    let secret = w.base.join("outside/secret.json");
    std::fs::write(&secret, r#"{"secret": "operator-only"}"#).unwrap();
    let mut victim = std::process::Command::new("sleep")
        .arg("120")
        .process_group(0)
        .spawn()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", victim.id())).unwrap();
    let start_ticks: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let record_path = pack.join(format!(".runs/{run_id}.json"));
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    record["state"] = json!("running");
    record["pid"] = json!(i32::MAX);
    record["pack_dir"] = json!(w.base.join("outside"));
    record["result_file"] = json!("../outside/secret.json");
    record["child"] = json!({"pid": victim.id(), "start_ticks": start_ticks});
    std::fs::write(&record_path, record.to_string()).unwrap();
    let output = pack.join("output.json");
    let mut evidence: Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    evidence["pack_dir"] = json!(w.base.join("outside"));
    std::fs::write(&output, evidence.to_string()).unwrap();

    w.restart();
    let mut replies = vec![
        w.call(2, "list_runs", json!({})),
        w.ask(3, "resources/list", json!({})),
        w.call(4, "get_run", json!({"run_id": run_id, "detail": "full"})),
    ];
    let listed = replies[1].to_string();
    assert!(
        listed.contains("run_script"),
        "the run's files are no longer listed: {listed}"
    );
    for uri in [
        format!("ctmr://pack{}", secret.display()),
        format!("ctmr://pack{}/../outside/secret.json", pack.display()),
    ] {
        let read = w.ask(5, "resources/read", json!({"uri": uri}));
        assert!(read.get("contents").is_none(), "served {uri}: {read}");
        replies.push(read);
    }
    for reply in &replies {
        assert!(
            !reply.to_string().contains("operator-only"),
            "a file outside the pack was read: {reply}"
        );
    }
    let view = &replies[2]["structuredContent"]["run"];
    assert_eq!(view["pack_dir"], json!(pack), "{view}");
    assert_eq!(view["result_file"], "output.json", "{view}");
    assert!(
        victim.try_wait().unwrap().is_none(),
        "a forged record made the server kill an unrelated process group"
    );
    victim.kill().unwrap();
    let _ = victim.wait();
    // The edited output.json is no longer what the run wrote: not served either.
    let read = w.ask(
        6,
        "resources/read",
        json!({"uri": format!("ctmr://pack{}", output.display())}),
    );
    assert!(
        read.to_string().contains("changed after the run wrote it"),
        "{read}"
    );
}

/// Issue 21, item 3: `output_dir` equal to an allowed directory made it a "pack", and
/// every JSON, YAML and text file already there was served. Now that is refused, and
/// in a pack of its own a run's files are served while what was there before is not.
#[test]
fn only_the_files_a_run_wrote_are_served() {
    let mut w = world();
    std::fs::write(w.base.join("cwd/config.yaml"), "token: operator-only\n").unwrap();
    for (id, wait) in [(1, true), (2, false)] {
        let result = w.call(
            id,
            "run_script",
            json!({"input": w.input, "output_dir": w.base.join("cwd"), "device": "cpu", "wait": wait}),
        );
        refused(&result, &["output_dir", "an allowed directory itself"]);
    }
    let pack = w.base.join("cwd/pack");
    std::fs::create_dir_all(&pack).unwrap();
    let notes = pack.join("notes.txt");
    std::fs::write(&notes, "operator-only notes").unwrap();
    std::process::Command::new("touch")
        .args(["-d", "2020-01-01"])
        .arg(&notes)
        .status()
        .unwrap();
    let result = w.call(
        3,
        "run_script",
        json!({"input": w.input, "output_dir": pack, "device": "cpu", "detail": "summary"}),
    );
    assert_eq!(result["isError"], false, "{result}");
    let links = result["content"].to_string();
    assert!(
        links.contains("output.json") && links.contains("manifest.json"),
        "{links}"
    );
    assert!(
        !links.contains("notes.txt"),
        "a file that was there before was linked: {links}"
    );
    let listed = w.ask(4, "resources/list", json!({})).to_string();
    assert!(listed.contains("output.json"), "{listed}");
    assert!(
        !listed.contains("notes.txt") && !listed.contains("config.yaml"),
        "{listed}"
    );
    let read = w.ask(
        5,
        "resources/read",
        json!({"uri": format!("ctmr://pack{}", pack.join("output.json").display())}),
    );
    assert!(
        read["contents"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("ctmr-skill.evidence/1")),
        "{read}"
    );
    for file in [notes, w.base.join("cwd/config.yaml")] {
        let read = w.ask(
            6,
            "resources/read",
            json!({"uri": format!("ctmr://pack{}", file.display())}),
        );
        assert!(!read.to_string().contains("operator-only"), "{read}");
    }
}

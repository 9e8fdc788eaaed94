//! Paths that name something other than a regular file (a FIFO, `/dev/zero`), given
//! directly or recorded in an evidence pack, are refused at once and in words: the
//! CLI and the MCP server never block on them nor read them without end, and the
//! server keeps answering afterwards. Every wait here is bounded, so a regression
//! fails instead of hanging the suite.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::stdio::Server;
use serde_json::{json, Value};

/// How long any one command may take before the test calls it blocked.
const PROMPT: Duration = Duration::from_secs(20);

fn mkfifo(path: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    path.to_path_buf()
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run the binary with `args`; kill it and fail if it takes longer than [`PROMPT`].
fn run(args: &[&str]) -> Ran {
    let mut child = Command::new(common::binary())
        .args(args)
        .env_remove("NV_SEGMENT_CTMR_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctmr-skill");
    // Drain the pipes on threads so a large report cannot stall the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > PROMPT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ctmr-skill {args:?} blocked for over {PROMPT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The fixture pass pack's label map and input image.
fn mask_and_image() -> (PathBuf, PathBuf) {
    let pack = common::verifier_fixture("pass_pack");
    let output: Value =
        serde_json::from_str(&std::fs::read_to_string(pack.join("output.json")).unwrap()).unwrap();
    (
        PathBuf::from(output["output"]["path"].as_str().unwrap()),
        PathBuf::from(output["input"]["path"].as_str().unwrap()),
    )
}

/// A copy of the fixture pass pack under `into`.
fn pass_pack_copy(into: &Path) -> PathBuf {
    let src = common::verifier_fixture("pass_pack");
    let dst = into.join("pack");
    copy_dir(&src, &dst);
    dst
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn inspect_refuses_a_fifo_mask_reference_ground_truth_or_labels_at_once() {
    let dir = common::fresh_dir();
    let fifo = mkfifo(&dir.path().join("pipe.nii.gz"));
    let (mask, image) = mask_and_image();
    let cases: Vec<Vec<&str>> = vec![
        vec!["inspect", s(&fifo)],
        vec!["inspect", s(&mask), "--reference", s(&fifo)],
        vec!["inspect", s(&mask), "--ground-truth", s(&fifo)],
        vec![
            "inspect",
            s(&mask),
            "--reference",
            s(&image),
            "--ground-truth",
            s(&fifo),
        ],
        vec!["inspect", s(&mask), "--labels", s(&fifo)],
    ];
    for args in cases {
        let ran = run(&args);
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
        assert!(
            ran.stderr.contains(s(&fifo)) && ran.stderr.contains("is a FIFO (named pipe)"),
            "{args:?}: {}",
            ran.stderr
        );
    }
    // The sanity baseline: the same mask and image inspect fine.
    let ran = run(&["inspect", s(&mask), "--reference", s(&image), "--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
}

#[test]
fn inspect_refuses_dev_zero_as_a_character_device() {
    let (mask, _) = mask_and_image();
    for args in [
        vec!["inspect", "/dev/zero"],
        vec!["inspect", s(&mask), "--reference", "/dev/zero"],
        vec!["inspect", s(&mask), "--labels", "/dev/zero"],
    ] {
        let ran = run(&args);
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("/dev/zero") && ran.stderr.contains("is a character device"),
            "{args:?}: {}",
            ran.stderr
        );
    }
}

#[test]
fn verify_refuses_a_pack_whose_output_json_is_a_fifo_or_dev_zero() {
    let dir = common::fresh_dir();
    let pack = pass_pack_copy(dir.path());
    let output = pack.join("output.json");
    std::fs::remove_file(&output).unwrap();
    mkfifo(&output);
    let ran = run(&["verify", s(&pack)]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(s(&output)) && ran.stderr.contains("is a FIFO (named pipe)"),
        "{}",
        ran.stderr
    );

    std::fs::remove_file(&output).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &output).unwrap();
    let ran = run(&["verify", s(&pack)]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("is a character device"),
        "{}",
        ran.stderr
    );
}

#[test]
fn verify_fails_naming_a_recorded_mask_image_or_ground_truth_that_is_a_fifo() {
    let dir = common::fresh_dir();
    let fifo = mkfifo(&dir.path().join("recorded.nii.gz"));
    let fields: [&[&str]; 3] = [
        &["output", "path"],
        &["input", "path"],
        &["input", "ground_truth_path"],
    ];
    for (i, field) in fields.iter().enumerate() {
        let case = dir.path().join(format!("case{i}"));
        let pack = pass_pack_copy(&case);
        edit_json(&pack.join("output.json"), |v| {
            v[field[0]][field[1]] = json!(s(&fifo));
        });
        let ran = run(&["verify", s(&pack)]);
        assert_eq!(ran.code, 1, "{field:?}: {}\n{}", ran.stdout, ran.stderr);
        let all = format!("{}{}", ran.stdout, ran.stderr);
        assert!(
            all.contains(s(&fifo)) && all.contains("is a FIFO (named pipe)"),
            "{field:?}: {all}"
        );
    }
}

#[test]
fn verify_never_reads_dev_zero_or_a_fifo_as_pack_documents_or_label_source() {
    let dir = common::fresh_dir();
    let pack = pass_pack_copy(dir.path());
    let labels_fifo = mkfifo(&dir.path().join("labels.json"));
    // The label source recorded in the pack is /dev/zero; manifest.json is /dev/zero;
    // validation_summary.json is a FIFO; the pack's labels.json sidecar is a FIFO.
    edit_json(&pack.join("output.json"), |v| {
        v["output"]["label_map_source"] = json!("/dev/zero");
    });
    std::fs::remove_file(pack.join("manifest.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", pack.join("manifest.json")).unwrap();
    std::fs::remove_file(pack.join("validation_summary.json")).unwrap();
    mkfifo(&pack.join("validation_summary.json"));
    std::os::unix::fs::symlink(&labels_fifo, pack.join("labels.json")).unwrap();

    let start = Instant::now();
    let ran = run(&["verify", s(&pack)]);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        all.contains("manifest.json cannot be used: is a character device"),
        "{all}"
    );
    assert!(
        all.contains("/dev/zero: is a character device"),
        "the label source is named: {all}"
    );

    // A labels.json sidecar given explicitly as a FIFO: a prompt usage error naming
    // it (the CLI's own argument check refuses it before any read).
    let ran = run(&["verify", s(&pack), "--labels", s(&labels_fifo)]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains(s(&labels_fifo)), "{}", ran.stderr);
}

/// The text of a tools/call answer: an error's message or the result's content.
fn answer_text(m: &Value) -> (bool, String) {
    if let Some(e) = m.get("error") {
        return (true, e.to_string());
    }
    let r = &m["result"];
    (r["isError"] == json!(true), r["content"].to_string())
}

#[test]
fn fifty_concurrent_inspects_of_a_fifo_all_fail_and_the_server_still_answers() {
    let dir = common::fresh_dir();
    let fifo = mkfifo(&dir.path().join("pipe.nii.gz"));
    let mut server = Server::start(dir.path(), None);
    server.initialize();
    const N: i64 = 50;
    for id in 1..=N {
        server.call(id, "inspect_label_map", json!({"mask": s(&fifo)}));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < N as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = server.wait_for("inspect answers", left, |m| {
            m["id"].as_i64().is_some_and(|id| (1..=N).contains(&id)) && m.get("method").is_none()
        });
        let (is_error, text) = answer_text(&m);
        assert!(is_error, "an inspect of a FIFO must fail: {m}");
        assert!(text.contains("FIFO"), "{text}");
        answered.insert(m["id"].as_i64().unwrap());
    }
    let pong = server.request(1000, "ping", json!({}), Duration::from_secs(10));
    assert!(pong.get("result").is_some(), "{pong}");
    let list = server.request(1001, "tools/list", json!({}), Duration::from_secs(10));
    assert!(
        list["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "inspect_label_map")),
        "{list}"
    );
    server.close_and_wait(Duration::from_secs(20));
}

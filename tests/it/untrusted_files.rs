//! Paths that name something other than a regular file (a FIFO, `/dev/zero`), given
//! directly or recorded in an evidence pack, are refused at once and in words: the
//! CLI and the MCP server never block on them nor read them without end, and the
//! server keeps answering afterwards. Every wait here is bounded, so a regression
//! fails instead of hanging the suite.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::stdio::Server;
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
    /// The signal that ended it, if one did (a crash, an abort).
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run the binary with `args`; kill it and fail if it takes longer than [`PROMPT`].
fn run(args: &[&str]) -> Ran {
    run_limited(None, args)
}

/// [`run`], under an address-space limit (`ulimit -v`, in KiB) when one is given.
fn run_limited(limit_kib: Option<u64>, args: &[&str]) -> Ran {
    let mut command = match limit_kib {
        None => Command::new(common::binary()),
        Some(kib) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                .arg(common::binary());
            sh
        }
    };
    let mut child = command
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
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
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

// Hostile DICOM (issue 21, items 4 and 5): each file would crash dicom-rs or make the
// conversion reserve gigabytes; each must fail its call in words, under a memory limit,
// and leave the server answering.

/// The address space the server and the CLI get below: about 2 GB (`ulimit -v` KiB).
const ADDRESS_SPACE_KIB: u64 = 2_000_000;

/// A tiny writer of DICOM files in explicit VR little endian.
mod dicom {
    pub(super) const UNDEFINED: u32 = u32::MAX;
    const SHORT_VRS: [&[u8; 2]; 9] = [
        b"CS", b"DS", b"IS", b"LO", b"UI", b"US", b"UL", b"SH", b"PN",
    ];

    pub(super) fn head(tag: (u16, u16), vr: &[u8; 2], len: u32) -> Vec<u8> {
        let mut out = [tag.0.to_le_bytes(), tag.1.to_le_bytes()].concat();
        if tag.0 == 0xFFFE {
            out.extend(len.to_le_bytes());
        } else if SHORT_VRS.contains(&vr) {
            out.extend(vr);
            out.extend((len as u16).to_le_bytes());
        } else {
            out.extend(vr);
            out.extend([0, 0]);
            out.extend(len.to_le_bytes());
        }
        out
    }

    pub(super) fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut value = value.to_vec();
        if value.len() % 2 == 1 {
            value.push(if vr == b"UI" { 0 } else { b' ' });
        }
        [head(tag, vr, value.len() as u32), value].concat()
    }

    pub(super) fn text(tag: (u16, u16), vr: &[u8; 2], value: &str) -> Vec<u8> {
        element(tag, vr, value.as_bytes())
    }

    pub(super) fn us(tag: (u16, u16), value: u16) -> Vec<u8> {
        element(tag, b"US", &value.to_le_bytes())
    }

    /// Preamble, `DICM`, the meta group (explicit VR little endian), then `data_set`.
    pub(super) fn file(data_set: &[u8]) -> Vec<u8> {
        let group = [
            element((2, 1), b"OB", &[0, 1]),
            text((2, 2), b"UI", "1.2.840.10008.5.1.4.1.1.2"),
            text((2, 3), b"UI", "1.2.826.0.1.3680043.2.1125.1"),
            text((2, 0x10), b"UI", "1.2.840.10008.1.2.1"),
        ]
        .concat();
        let mut out = vec![0u8; 128];
        out.extend(b"DICM");
        out.extend(element((2, 0), b"UL", &(group.len() as u32).to_le_bytes()));
        out.extend(group);
        out.extend(data_set);
        out
    }

    /// The header of a CT slice `k` of a `size` x `size` series, up to (not with) its pixels.
    pub(super) fn slice_header(k: usize, size: u16) -> Vec<u8> {
        [
            text((0x0008, 0x0016), b"UI", "1.2.840.10008.5.1.4.1.1.2"),
            text(
                (0x0008, 0x0018),
                b"UI",
                &format!("1.2.826.0.1.3680043.2.1125.2.{k}"),
            ),
            text((0x0008, 0x0060), b"CS", "CT"),
            text((0x0020, 0x000D), b"UI", "1.2.826.0.1.3680043.2.1125.3"),
            text((0x0020, 0x000E), b"UI", "1.2.826.0.1.3680043.2.1125.4"),
            text((0x0020, 0x0013), b"IS", &k.to_string()),
            text((0x0020, 0x0032), b"DS", &format!("0\\0\\{k}")),
            text((0x0020, 0x0037), b"DS", "1\\0\\0\\0\\1\\0"),
            us((0x0028, 0x0002), 1),
            text((0x0028, 0x0004), b"CS", "MONOCHROME2"),
            us((0x0028, 0x0010), size),
            us((0x0028, 0x0011), size),
            text((0x0028, 0x0030), b"DS", "1\\1"),
            us((0x0028, 0x0100), 16),
            us((0x0028, 0x0101), 16),
            us((0x0028, 0x0102), 15),
            us((0x0028, 0x0103), 1),
        ]
        .concat()
    }
}

/// A hostile series (one directory) and the words its refusal must contain.
struct Hostile {
    dir: PathBuf,
    rule: &'static str,
}

/// The three hostile series of the report, written under `root`.
fn hostile_series(root: &Path) -> Vec<Hostile> {
    use dicom::*;
    let write = |name: &str, files: Vec<Vec<u8>>| {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (k, bytes) in files.into_iter().enumerate() {
            std::fs::write(dir.join(format!("IM{k}")), bytes).unwrap();
        }
        dir
    };
    // 200 000 nested undefined-length sequences (each with one item): 4 MB.
    let level = [
        head((0x0008, 0x1115), b"SQ", UNDEFINED),
        head((0xFFFE, 0xE000), b"  ", UNDEFINED),
    ]
    .concat();
    let deep = file(&[slice_header(0, 2), level.repeat(200_000)].concat());
    assert!(deep.len() > 4_000_000);
    // 1 KB with one element declaring 4 GiB.
    let huge = file(
        &[
            slice_header(0, 2),
            head((0x0009, 0x1010), b"OB", 0xFFFF_FFF0),
            vec![0; 300],
        ]
        .concat(),
    );
    assert!(huge.len() < 1024, "{}", huge.len());
    // Rows x columns x slices at the voxel cap (8192 x 8192 x 16 = 2^30), 8 pixel bytes each.
    let header_only = (0..16)
        .map(|k| {
            file(
                &[
                    slice_header(k, 8192),
                    element((0x7FE0, 0x0010), b"OW", &[0; 8]),
                ]
                .concat(),
            )
        })
        .collect();
    vec![
        Hostile {
            dir: write("deep", vec![deep]),
            rule: "sequences nest deeper than 64 levels",
        },
        Hostile {
            dir: write("huge_length", vec![huge]),
            rule: "declares 4294967280 bytes but only 300 are left",
        },
        Hostile {
            dir: write("header_only", header_only),
            rule: "holds 8 bytes of pixel data where its header",
        },
    ]
}

/// A small label map (4 x 4 x 4, labels 0 and 1) written as `.nii.gz`.
fn small_mask(dir: &Path) -> PathBuf {
    use ctmr_skill::nifti::writer::{nii_gz_bytes, Volume, Voxels};
    let mut eye = [[0.0; 4]; 4];
    (0..4).for_each(|i| eye[i][i] = 1.0);
    let volume = Volume {
        shape: [4, 4, 4],
        affine: eye,
        voxels: Voxels::Int16((0..64).map(|i| (i % 2) as i16).collect()),
        description: "test mask".into(),
    };
    let path = dir.join("mask.nii.gz");
    std::fs::write(&path, nii_gz_bytes(&volume).unwrap()).unwrap();
    path
}

/// The peak resident memory (VmHWM) of a live process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib >> 10
}

#[test]
fn hostile_dicom_series_fail_their_calls_and_the_server_survives_under_a_memory_limit() {
    let dir = common::fresh_dir();
    let mask = small_mask(dir.path());
    let cases = hostile_series(dir.path());
    let mut server = Server::start_limited(dir.path(), ADDRESS_SPACE_KIB);
    server.initialize();
    let mut id = 0;
    for case in &cases {
        let out = dir.path().join(format!("out{id}"));
        let calls = [
            (
                "inspect_label_map",
                json!({"mask": s(&mask), "reference": s(&case.dir)}),
            ),
            (
                "run_script",
                json!({"input": s(&case.dir), "output_dir": s(&out)}),
            ),
        ];
        for (tool, arguments) in calls {
            id += 1;
            let start = Instant::now();
            let params = json!({"name": tool, "arguments": arguments});
            let m = server.request(id, "tools/call", params, Duration::from_secs(60));
            let (is_error, text) = answer_text(&m);
            assert!(
                is_error && text.contains(case.rule),
                "{tool} {}: {m}",
                case.dir.display()
            );
            assert!(text.contains("Fix: "), "{tool}: {text}");
            eprintln!(
                "{tool} {}: refused in {:?}",
                case.dir.display(),
                start.elapsed()
            );
        }
        id += 1;
        let pong = server.request(id, "ping", json!({}), Duration::from_secs(10));
        assert!(pong.get("result").is_some(), "{pong}");
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the server exited"
        );
    }
    let peak = peak_rss_mib(server.child.id());
    eprintln!("server peak RSS after every hostile series: {peak} MiB");
    assert!(
        peak < 1024,
        "the server's resident memory peaked at {peak} MiB"
    );
    server.close_and_wait(Duration::from_secs(20));
}

#[test]
fn the_cli_refuses_hostile_dicom_references_in_words_under_a_memory_limit() {
    let dir = common::fresh_dir();
    let mask = small_mask(dir.path());
    for case in hostile_series(dir.path()) {
        let args = ["inspect", s(&mask), "--reference", s(&case.dir)];
        let ran = run_limited(Some(ADDRESS_SPACE_KIB), &args);
        assert_eq!(ran.signal, None, "{args:?} was killed: {}", ran.stderr);
        assert_ne!(ran.code, 0, "{args:?}: {}", ran.stdout);
        assert!(ran.stderr.contains(case.rule), "{args:?}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("IM0"),
            "the file is named: {}",
            ran.stderr
        );
    }
}

//! The supervised child process, with an executable Python script standing in for the
//! interpreter (tests/fixtures/upstream/fake_python.py): argv/cwd/env wiring, logs and
//! tails, exit codes, stale-mask handling, and that timeout, cancellation and a dropped
//! run kill the whole process group (the grandchild too).

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctmr_skill::upstream::{
    build_argv, expected_mask_path, run, supervise, DeviceRequest, EnvProbe, Invocation,
    MaskAdoption, ProgressEvent, RunOptions, RunOutcome, Stream, UpstreamError, UpstreamRequest,
    TAIL_CHARS,
};
use serde_json::Value;

fn fake_python() -> PathBuf {
    common::repo_root().join("tests/fixtures/upstream/fake_python.py")
}

/// A bundle root, an input file and an output directory in one temp dir.
struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bundle: PathBuf,
    input: PathBuf,
    out: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = common::fresh_dir();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let bundle = root.join("bundle");
        std::fs::create_dir_all(bundle.join("configs")).unwrap();
        std::fs::write(bundle.join("configs/inference.json"), "{}").unwrap();
        let input = root.join("data dir/case it's.nii.gz");
        std::fs::create_dir_all(input.parent().unwrap()).unwrap();
        std::fs::write(&input, b"input volume").unwrap();
        let out = root.join("out");
        World {
            _dir: dir,
            root,
            bundle,
            input,
            out,
        }
    }

    fn request(&self) -> UpstreamRequest {
        UpstreamRequest {
            python: fake_python(),
            bundle_root: self.bundle.clone(),
            input: self.input.clone(),
            output_dir: self.out.clone(),
            modality: "CT_BODY".into(),
            label_prompts: Some(vec![3, 14]),
            overrides: vec![("patch_size".into(), "[64,64,64]".into())],
            device: DeviceRequest::Cpu,
            tensorrt: false,
        }
    }

    /// Options whose child environment is ours plus `fake` (the process env is untouched).
    fn options(&self, fake: &[(&str, String)]) -> RunOptions {
        let mut opts = RunOptions::new(self.out.join("logs"), Duration::from_secs(120));
        opts.kill_grace = Duration::from_secs(1);
        // The fake writes its records and pid files beside the output directory; the
        // sandbox (tests/it/sandbox_supervise.rs) lets it write there.
        opts.writable_dirs.push(self.root.clone());
        opts.base_env
            .retain(|(k, _)| !k.to_string_lossy().starts_with("FAKE_"));
        for (k, v) in fake {
            opts.base_env.push((OsString::from(k), OsString::from(v)));
        }
        opts
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

fn cpu_probe() -> EnvProbe {
    EnvProbe {
        python: fake_python(),
        python_executable: fake_python().display().to_string(),
        python_version: "3.11.7".into(),
        platform: "Linux".into(),
        monai_version: "1.5.2".into(),
        torch_version: "2.9.0".into(),
        cuda_available: false,
        cuda_device_name: None,
        device: "cpu".into(),
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Whether `pid` is a live (non-zombie) process.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !(state.starts_with('Z') || state.starts_with('X'))
        }
        Err(_) => false,
    }
}

/// Wait (bounded) for a killed process to disappear; orphans are reaped by init.
fn gone_eventually(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("grandchild pid file {} missing: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

async fn wait_for_file(path: &Path) {
    let until = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < until, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn wiring_logs_tails_progress_and_mask_adoption() {
    let w = World::new();
    let record = w.path("record.json");
    // A mask left over from an earlier run.
    let mask = expected_mask_path(&w.out, &w.input);
    std::fs::create_dir_all(mask.parent().unwrap()).unwrap();
    std::fs::write(&mask, b"old mask").unwrap();

    let mut opts = w.options(&[
        ("FAKE_RECORD", record.display().to_string()),
        ("FAKE_LINES", "3".into()),
        ("FAKE_MASK", "1".into()),
    ]);
    let lines: Arc<Mutex<Vec<(Stream, String)>>> = Arc::default();
    let sink = lines.clone();
    opts.progress = Some(Arc::new(move |ev| {
        if let ProgressEvent::Line { stream, line } = ev {
            sink.lock().unwrap().push((stream, line));
        }
    }));
    let req = w.request();
    let res = run(&req, &cpu_probe(), &opts).await.unwrap();

    assert_eq!(
        res.outcome,
        RunOutcome::Exited {
            code: 0,
            signal: None
        }
    );
    assert!(res.succeeded());
    assert_eq!(res.exit_code, Some(0));
    let argv = build_argv(&req).unwrap();
    assert_eq!(res.command, argv);
    assert_eq!(res.cwd, w.bundle);
    assert_eq!(res.device.as_deref(), Some("cpu"));
    assert_eq!(res.device_requested, Some(DeviceRequest::Cpu));

    // What the child saw.
    let rec = read_json(&record);
    let seen: Vec<String> = serde_json::from_value(rec["argv"].clone()).unwrap();
    assert_eq!(seen, argv[1..]);
    assert_eq!(rec["cwd"], w.bundle.display().to_string());
    assert_eq!(rec["stdin"], "", "stdin must be null");
    assert_eq!(
        rec["pgid"], rec["pid"],
        "the child leads its own process group"
    );
    let env = &rec["env"];
    assert_eq!(
        env["MONAI_DATA_DIRECTORY"],
        w.out.join("_monai_data").display().to_string()
    );
    assert_eq!(env["CUDA_VISIBLE_DEVICES"], "");
    assert_eq!(env["PYTHONDONTWRITEBYTECODE"], "1");
    if std::env::var_os("PYTORCH_CUDA_ALLOC_CONF").is_none() {
        assert_eq!(
            env["PYTORCH_CUDA_ALLOC_CONF"],
            "max_split_size_mb:128,expandable_segments:True"
        );
        assert!(res.env_set.contains_key("PYTORCH_CUDA_ALLOC_CONF"));
    }
    assert_eq!(res.env_set["CUDA_VISIBLE_DEVICES"], "");

    // Logs, tails and the progress hook.
    assert_eq!(res.stdout_log, w.out.join("logs/upstream.stdout.log"));
    let stdout = std::fs::read_to_string(&res.stdout_log).unwrap();
    let stderr = std::fs::read_to_string(&res.stderr_log).unwrap();
    assert_eq!(stdout, "stdout line 0\nstdout line 1\nstdout line 2\n");
    assert_eq!(stderr, "stderr line 0\nstderr line 1\nstderr line 2\n");
    assert_eq!(res.stdout_tail, stdout);
    assert_eq!(res.stderr_tail, stderr);
    let lines = lines.lock().unwrap().clone();
    for i in 0..3 {
        assert!(lines.contains(&(Stream::Stdout, format!("stdout line {i}"))));
        assert!(lines.contains(&(Stream::Stderr, format!("stderr line {i}"))));
    }

    // The old mask was moved aside, kept, and reported; the new one adopted.
    let stale = res.stale_output.clone().expect("stale output reported");
    assert_eq!(stale.original, mask);
    assert_eq!(std::fs::read(&stale.moved_to).unwrap(), b"old mask");
    let name = stale
        .moved_to
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("case it's_trans.stale-") && name.ends_with(".nii.gz"),
        "{name}"
    );
    assert_eq!(
        res.mask,
        Some(MaskAdoption::Adopted {
            path: mask.clone(),
            bytes: 10
        })
    );
    assert_eq!(std::fs::read(&mask).unwrap(), b"fresh mask");
    assert_eq!(std::fs::read(&w.input).unwrap(), b"input volume");

    // The record serialises (it goes into the evidence).
    let json = serde_json::to_value(&res).unwrap();
    assert_eq!(json["outcome"]["kind"], "exited");
    assert_eq!(json["mask"]["status"], "adopted");
}

#[tokio::test]
async fn failure_exit_code_and_no_mask_means_no_adoption() {
    let w = World::new();
    let mask = expected_mask_path(&w.out, &w.input);
    std::fs::create_dir_all(mask.parent().unwrap()).unwrap();
    std::fs::write(&mask, b"old mask").unwrap();
    let opts = w.options(&[("FAKE_EXIT", "3".into()), ("FAKE_LINES", "1".into())]);
    let res = run(&w.request(), &cpu_probe(), &opts).await.unwrap();
    assert_eq!(
        res.outcome,
        RunOutcome::Exited {
            code: 3,
            signal: None
        }
    );
    assert_eq!(res.exit_code, Some(3));
    assert!(!res.succeeded());
    // The earlier run's mask is not passed off as this run's.
    assert_eq!(res.mask, Some(MaskAdoption::Missing { path: mask.clone() }));
    assert!(res.stale_output.is_some());
    assert_eq!(res.stderr_tail, "stderr line 0\n");
}

#[tokio::test]
async fn long_output_is_logged_whole_and_tailed() {
    let w = World::new();
    let opts = w.options(&[("FAKE_BIG", "200000".into())]);
    let res = run(&w.request(), &cpu_probe(), &opts).await.unwrap();
    let log = std::fs::read_to_string(&res.stdout_log).unwrap();
    assert_eq!(log.len(), 200_000);
    assert_eq!(
        res.stdout_tail,
        format!("...{}", &log[log.len() - TAIL_CHARS..])
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let w = World::new();
    let pidfile = w.path("grandchild.pid");
    let record = w.path("record.json");
    let mut opts = w.options(&[
        ("FAKE_GRANDCHILD", pidfile.display().to_string()),
        ("FAKE_RECORD", record.display().to_string()),
        ("FAKE_SLEEP", "300".into()),
    ]);
    opts.timeout = Duration::from_secs(4);
    let res = run(&w.request(), &cpu_probe(), &opts).await.unwrap();
    assert_eq!(res.outcome, RunOutcome::TimedOut);
    assert_eq!(res.exit_code, Some(124));
    let grandchild = read_pid(&pidfile);
    let child = read_json(&record)["pid"].as_i64().unwrap() as i32;
    assert!(gone_eventually(child), "child {child} survived the timeout");
    assert!(
        gone_eventually(grandchild),
        "grandchild {grandchild} survived the timeout"
    );
    assert!(matches!(res.mask, Some(MaskAdoption::Missing { .. })));
}

#[tokio::test]
async fn sigterm_ignored_escalates_to_sigkill() {
    let w = World::new();
    let pidfile = w.path("grandchild.pid");
    let mut opts = w.options(&[
        ("FAKE_GRANDCHILD", pidfile.display().to_string()),
        ("FAKE_IGNORE_TERM", "1".into()),
        ("FAKE_SLEEP", "300".into()),
    ]);
    opts.timeout = Duration::from_secs(4);
    let res = run(&w.request(), &cpu_probe(), &opts).await.unwrap();
    assert_eq!(res.outcome, RunOutcome::TimedOut);
    let grandchild = read_pid(&pidfile);
    assert!(
        gone_eventually(grandchild),
        "grandchild {grandchild} ignored SIGTERM and survived"
    );
}

#[tokio::test]
async fn cancellation_kills_the_whole_group() {
    let w = World::new();
    let pidfile = w.path("grandchild.pid");
    let opts = w.options(&[
        ("FAKE_GRANDCHILD", pidfile.display().to_string()),
        ("FAKE_SLEEP", "300".into()),
    ]);
    let cancel = opts.cancel.clone();
    let watched = pidfile.clone();
    tokio::spawn(async move {
        wait_for_file(&watched).await;
        cancel.cancel();
    });
    let res = run(&w.request(), &cpu_probe(), &opts).await.unwrap();
    assert_eq!(res.outcome, RunOutcome::Cancelled);
    assert_eq!(res.exit_code, None);
    let grandchild = read_pid(&pidfile);
    assert!(
        gone_eventually(grandchild),
        "grandchild {grandchild} survived cancellation"
    );
}

#[tokio::test]
async fn dropping_the_run_kills_the_whole_group() {
    let w = World::new();
    let pidfile = w.path("grandchild.pid");
    let record = w.path("record.json");
    let opts = w.options(&[
        ("FAKE_GRANDCHILD", pidfile.display().to_string()),
        ("FAKE_RECORD", record.display().to_string()),
        ("FAKE_SLEEP", "300".into()),
    ]);
    let req = w.request();
    let probe = cpu_probe();
    tokio::select! {
        _ = run(&req, &probe, &opts) => panic!("the run should still be going"),
        _ = wait_for_file(&pidfile) => {}
    }
    // The run future is dropped here, mid-run.
    let grandchild = read_pid(&pidfile);
    let child = read_json(&record)["pid"].as_i64().unwrap() as i32;
    assert!(
        gone_eventually(child),
        "child {child} survived the dropped run"
    );
    assert!(
        gone_eventually(grandchild),
        "grandchild {grandchild} survived the dropped run"
    );
}

#[tokio::test]
async fn helpers_left_behind_after_a_normal_exit_are_killed() {
    let w = World::new();
    let pidfile = w.path("grandchild.pid");
    // The grandchild holds our pipes open; the run must still finish.
    let opts = w.options(&[("FAKE_GRANDCHILD", pidfile.display().to_string())]);
    let res = run(&w.request(), &cpu_probe(), &opts).await.unwrap();
    assert_eq!(
        res.outcome,
        RunOutcome::Exited {
            code: 0,
            signal: None
        }
    );
    let grandchild = read_pid(&pidfile);
    assert!(
        gone_eventually(grandchild),
        "grandchild {grandchild} outlived the run"
    );
}

#[tokio::test]
async fn spawn_failure_is_an_outcome_not_a_panic() {
    let w = World::new();
    let mut req = w.request();
    req.python = w.path("no/such/python");
    let res = run(&req, &cpu_probe(), &w.options(&[])).await.unwrap();
    let RunOutcome::SpawnFailed { reason } = &res.outcome else {
        panic!("{:?}", res.outcome)
    };
    assert!(reason.contains("no/such/python"), "{reason}");
    assert_eq!(res.exit_code, None);
}

#[tokio::test]
async fn refusals_happen_before_anything_runs() {
    let w = World::new();
    let record = w.path("record.json");
    let opts = w.options(&[("FAKE_RECORD", record.display().to_string())]);

    let mut req = w.request();
    req.device = DeviceRequest::Cuda;
    let err = run(&req, &cpu_probe(), &opts).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::CudaUnavailable { .. }),
        "{err}"
    );

    let mut req = w.request();
    req.output_dir = w.bundle.join("eval");
    let err = run(&req, &cpu_probe(), &opts).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::OutputInsideBundle { .. }),
        "{err}"
    );
    assert!(
        !w.bundle.join("eval").exists(),
        "nothing may be written into the bundle"
    );

    let mut req = w.request();
    req.input = w.path("missing.nii.gz");
    let err = run(&req, &cpu_probe(), &opts).await.unwrap_err();
    assert!(err.to_string().contains("missing.nii.gz"), "{err}");

    assert!(!record.exists(), "the child must not have run");
}

#[tokio::test]
async fn already_cancelled_never_starts() {
    let w = World::new();
    let record = w.path("record.json");
    let opts = w.options(&[("FAKE_RECORD", record.display().to_string())]);
    opts.cancel.cancel();
    let res = run(&w.request(), &cpu_probe(), &opts).await.unwrap();
    assert_eq!(res.outcome, RunOutcome::Cancelled);
    assert!(!record.exists());
}

#[tokio::test]
async fn ticks_reach_the_hook_and_supervise_runs_any_invocation() {
    let w = World::new();
    let mut opts = w.options(&[("FAKE_SLEEP", "1.5".into())]);
    opts.tick = Duration::from_millis(100);
    let ticks = Arc::new(Mutex::new(0usize));
    let sink = ticks.clone();
    opts.progress = Some(Arc::new(move |ev| {
        if matches!(ev, ProgressEvent::Tick { .. }) {
            *sink.lock().unwrap() += 1;
        }
    }));
    let env = ctmr_skill::upstream::child_env(opts.base_env.clone(), &w.out, DeviceRequest::Auto);
    let inv = Invocation {
        argv: vec![fake_python().display().to_string()],
        cwd: w.root.clone(),
        env,
    };
    let res = supervise(&inv, &opts).await.unwrap();
    assert!(res.succeeded());
    assert!(
        *ticks.lock().unwrap() >= 1,
        "no heartbeat during a 1.5 s run"
    );
    assert_eq!(res.mask, None);
}

#[tokio::test]
async fn batch_run_wiring_and_refusal() {
    let w = World::new();
    let record = w.path("record.json");
    let opts = w.options(&[("FAKE_RECORD", record.display().to_string())]);
    let mut req = ctmr_skill::upstream::BatchRequest {
        python: fake_python(),
        bundle_root: w.bundle.clone(),
        input_dir: w.input.parent().unwrap().to_path_buf(),
        output_dir: w.out.clone(),
        modality: "MRI_BODY".into(),
        overrides: vec![("input_suffix".into(), "*.nii.gz".into())],
        device: DeviceRequest::Auto,
        tensorrt: false,
    };
    let res = ctmr_skill::upstream::run_batch(&req, &cpu_probe(), &opts)
        .await
        .unwrap();
    assert!(res.succeeded());
    let seen: Vec<String> = serde_json::from_value(read_json(&record)["argv"].clone()).unwrap();
    assert_eq!(seen, res.command[1..]);
    assert_eq!(seen[..4], ["-m", "monai.bundle", "run", "--config_file"]);
    assert_eq!(read_json(&record)["cwd"], w.bundle.display().to_string());
    assert!(
        !res.env_set.contains_key("CUDA_VISIBLE_DEVICES"),
        "auto leaves devices alone"
    );

    req.output_dir = w.bundle.join("eval");
    let err = ctmr_skill::upstream::run_batch(&req, &cpu_probe(), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::OutputInsideBundle { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn probe_for_request_uses_the_runs_environment() {
    let w = World::new();
    let record = w.path("record.json");
    // The fake answers no probe: it records what it was given, then fails the probe.
    let opts = w.options(&[("FAKE_RECORD", record.display().to_string())]);
    let err = ctmr_skill::upstream::probe_for_request(&w.request(), &opts, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::ProbeFailed { .. }), "{err}");
    let rec = read_json(&record);
    assert_eq!(rec["argv"][0], "-c");
    assert_eq!(rec["cwd"], w.bundle.display().to_string());
    assert_eq!(rec["env"]["CUDA_VISIBLE_DEVICES"], "");
    assert_eq!(
        rec["env"]["MONAI_DATA_DIRECTORY"],
        w.out.join("_monai_data").display().to_string()
    );
}

#[tokio::test]
async fn extreme_tick_and_timeout_values_are_accepted() {
    let w = World::new();
    let mut opts = w.options(&[]);
    opts.tick = Duration::ZERO;
    opts.timeout = Duration::MAX;
    let env = ctmr_skill::upstream::child_env(opts.base_env.clone(), &w.out, DeviceRequest::Auto);
    let inv = Invocation {
        argv: vec![fake_python().display().to_string()],
        cwd: w.root.clone(),
        env,
    };
    let res = supervise(&inv, &opts).await.unwrap();
    assert!(res.succeeded(), "{:?}", res.outcome);
}

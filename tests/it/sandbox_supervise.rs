//! The Landlock sandbox around a supervised child, for real on this kernel, with small
//! MONAI-free children (`/bin/sh`, the system `python3`): writes outside the run's
//! directories and TCP connections are refused, writes inside and to the private
//! `TMPDIR` work, and the report says what was enforced. Each denial is checked against
//! the same child run with the sandbox off, so the refusal is the sandbox's.
//! Skipped (with a note) where the kernel has no Landlock.

use crate::common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ctmr_skill::upstream::{
    child_env, landlock_abi, supervise, DeviceRequest, Invocation, RunOptions, RunResult,
    UpstreamError,
};

fn landlock() -> Option<u32> {
    match landlock_abi() {
        Ok(abi) => Some(abi),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

struct World {
    _dir: tempfile::TempDir,
    base: PathBuf,
    out: PathBuf,
    outside: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = common::fresh_dir();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let out = base.join("out");
        let outside = base.join("outside");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        World {
            _dir: dir,
            base,
            out,
            outside,
        }
    }

    fn options(&self, sandbox: bool) -> RunOptions {
        let mut opts = RunOptions::new(self.out.join("logs"), Duration::from_secs(60));
        opts.writable_dirs.push(self.out.clone());
        opts.sandbox = sandbox;
        opts
    }

    async fn run(&self, argv: &[&str], sandbox: bool) -> RunResult {
        let inv = Invocation {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            cwd: self.base.clone(),
            env: child_env(std::env::vars_os(), &self.out, DeviceRequest::Auto),
        };
        supervise(&inv, &self.options(sandbox)).await.unwrap()
    }
}

fn python3() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

#[tokio::test]
async fn writes_outside_the_runs_directories_are_denied() {
    let Some(abi) = landlock() else { return };
    let w = World::new();
    let inside = w.out.join("inside.txt");
    let escape = w.outside.join("escape.txt");
    let script = format!(
        "echo in > '{}' && echo tmp > \"$TMPDIR/t.txt\" && cat \"$TMPDIR/t.txt\" && echo out > '{}'",
        inside.display(),
        escape.display()
    );
    let res = w.run(&["/bin/sh", "-c", &script], true).await;
    assert!(!res.succeeded(), "{:?}", res.outcome);
    assert!(
        res.stderr_tail.contains("Permission denied"),
        "{}",
        res.stderr_tail
    );
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "in\n");
    assert_eq!(res.stdout_tail, "tmp\n", "the private TMPDIR is writable");
    assert!(!escape.exists(), "the write outside went through");

    // The report: enforced at the kernel's ABI, with the run's directories.
    let r = &res.sandbox;
    assert!(r.enforced, "{r:?}");
    assert_eq!(r.abi, Some(abi));
    assert_eq!(r.network_denied, abi >= 4);
    let tmpdir = PathBuf::from(&res.env_set["TMPDIR"]);
    for dir in [&w.out, &w.out.join("logs"), &tmpdir] {
        assert!(
            r.writable.contains(&dir.display().to_string()),
            "{} not in {:?}",
            dir.display(),
            r.writable
        );
    }
    assert!(!r.writable.iter().any(|p| Path::new(p) == w.outside));
    assert_eq!(r.rules[0], "/: execute, read_file, read_dir");
    // The private TMPDIR is gone after the run.
    assert!(!tmpdir.exists());

    // Other places the child must not write either: the working directory, /tmp.
    let cwd_file = w.base.join("cwd.txt");
    let res = w
        .run(
            &[
                "/bin/sh",
                "-c",
                "echo x > cwd.txt || echo x > /tmp/ctmr-escape-$$",
            ],
            true,
        )
        .await;
    assert!(!res.succeeded());
    assert!(!cwd_file.exists());

    // The same child without the sandbox writes where it likes.
    let res = w.run(&["/bin/sh", "-c", &script], false).await;
    assert!(res.succeeded(), "{}", res.stderr_tail);
    assert!(escape.exists());
    assert!(!res.sandbox.enforced);
    assert_eq!(
        res.sandbox.reason.as_deref(),
        Some("disabled by the caller")
    );
}

#[tokio::test]
async fn tcp_connect_and_bind_are_denied() {
    let Some(abi) = landlock() else { return };
    if abi < 4 {
        eprintln!("skipped: Landlock ABI {abi} cannot restrict TCP");
        return;
    }
    let w = World::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = r#"import socket, sys
port = int(sys.argv[1])
for what, act in [
    ("connect", lambda s: s.connect(("127.0.0.1", port))),
    ("bind", lambda s: s.bind(("127.0.0.1", 0))),
]:
    s = socket.socket()
    try:
        act(s)
        print(what, "ok")
    except OSError as e:
        print(what, "errno", e.errno)
    s.close()
"#;
    let port = port.to_string();
    let argv = [python3(), "-c", code, &port];
    let res = w.run(&argv, true).await;
    assert!(res.succeeded(), "{}", res.stderr_tail);
    assert!(res.sandbox.network_denied);
    assert!(
        res.sandbox
            .rules
            .contains(&"tcp: bind and connect denied".to_string()),
        "{:?}",
        res.sandbox.rules
    );
    assert_eq!(
        res.stdout_tail,
        format!(
            "connect errno {}\nbind errno {}\n",
            libc::EACCES,
            libc::EACCES
        )
    );
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the listener saw a connection"
    );

    // Unconfined, the same child connects.
    let res = w.run(&argv, false).await;
    assert!(res.succeeded(), "{}", res.stderr_tail);
    assert_eq!(res.stdout_tail, "connect ok\nbind ok\n");
}

#[tokio::test]
async fn descendants_inherit_the_sandbox() {
    let Some(_) = landlock() else { return };
    let w = World::new();
    let escape = w.outside.join("grandchild.txt");
    let script = format!("/bin/sh -c \"echo x > '{}'\"", escape.display());
    let res = w.run(&["/bin/sh", "-c", &script], true).await;
    assert!(!res.succeeded());
    assert!(!escape.exists());
}

#[tokio::test]
async fn a_required_sandbox_that_is_switched_off_refuses_to_start() {
    let w = World::new();
    let mut opts = w.options(false);
    opts.require_sandbox = true;
    let marker = w.out.join("ran.txt");
    let inv = Invocation {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo x > '{}'", marker.display()),
        ],
        cwd: w.base.clone(),
        env: child_env(std::env::vars_os(), &w.out, DeviceRequest::Auto),
    };
    let err = supervise(&inv, &opts).await.unwrap_err();
    assert!(
        matches!(err, UpstreamError::SandboxUnavailable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Nothing ran"), "{err}");
    assert!(!marker.exists());

    // Required and available: it runs confined.
    if landlock().is_some() {
        opts.sandbox = true;
        let res = supervise(&inv, &opts).await.unwrap();
        assert!(res.succeeded(), "{}", res.stderr_tail);
        assert!(res.sandbox.enforced);
        assert!(marker.exists());
    }
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

const PDEATH_PIDFILE: &str = "CTMR_SKILL_TEST_PDEATH_PIDFILE";

/// Run by `the_child_dies_with_the_server` in a separate process (the "server"),
/// which that test then kills with SIGKILL: no drop guard of ours runs.
#[tokio::test]
#[ignore = "helper process of the_child_dies_with_the_server"]
async fn helper_server_killed_mid_run() {
    let Some(pidfile) = std::env::var_os(PDEATH_PIDFILE).map(PathBuf::from) else {
        return;
    };
    let dir = pidfile.parent().unwrap().to_path_buf();
    let mut opts = RunOptions::new(dir.join("logs"), Duration::from_secs(120));
    opts.writable_dirs.push(dir.clone());
    let inv = Invocation {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!(
                "echo $$ > '{}.tmp' && mv '{0}.tmp' '{0}' && exec sleep 300",
                pidfile.display()
            ),
        ],
        cwd: dir.clone(),
        env: child_env(std::env::vars_os(), &dir, DeviceRequest::Auto),
    };
    let _ = supervise(&inv, &opts).await;
}

#[test]
fn the_child_dies_with_the_server() {
    let w = World::new();
    let pidfile = w.out.join("child.pid");
    let mut server = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            // The test's name in the one integration-test binary (`tests/it/main.rs`).
            "sandbox_supervise::helper_server_killed_mid_run",
            "--ignored",
            "--quiet",
        ])
        .env(PDEATH_PIDFILE, &pidfile)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while !pidfile.exists() {
        assert!(std::time::Instant::now() < until, "the child never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    server.kill().unwrap(); // SIGKILL: nothing of the server's own cleanup runs
    server.wait().unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if std::time::Instant::now() > until {
            // Do not leave it behind, then fail.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("child {pid} outlived its server");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

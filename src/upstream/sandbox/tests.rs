//! The sandbox's tests: the policy from given inputs, the decision with a given ABI,
//! the private temp directory.

use super::*;

fn inputs() -> SandboxInputs {
    SandboxInputs {
        writable: vec!["/runs/out".into(), "/runs/out/logs".into(), "/tmp/p".into()],
        caches: vec!["/home/u/.nv/ComputeCache".into()],
        shm: Some("/dev/shm".into()),
        devices: vec![
            "/dev/null".into(),
            "/dev/nvidia0".into(),
            "/dev/nvidiactl".into(),
        ],
        append_files: vec!["/bundle/training.log".into()],
    }
}

fn rule<'a>(p: &'a SandboxPolicy, path: &str) -> &'a PathRule {
    p.rules
        .iter()
        .find(|r| r.path == Path::new(path))
        .unwrap_or_else(|| panic!("no rule for {path}"))
}

#[test]
fn root_is_read_only_and_only_the_listed_paths_are_writable() {
    let p = build_policy(&inputs(), 7);
    let root = rule(&p, "/");
    assert_eq!(root.kind, RuleKind::ReadOnlyRoot);
    assert_eq!(
        root.access,
        AccessFs::Execute | AccessFs::ReadFile | AccessFs::ReadDir
    );
    for dir in [
        "/runs/out",
        "/runs/out/logs",
        "/tmp/p",
        "/home/u/.nv/ComputeCache",
        "/dev/shm",
    ] {
        let r = rule(&p, dir);
        assert_eq!(r.kind, RuleKind::Writable, "{dir}");
        for right in [
            AccessFs::WriteFile,
            AccessFs::MakeReg,
            AccessFs::MakeDir,
            AccessFs::RemoveFile,
            AccessFs::Refer,
            AccessFs::Truncate,
        ] {
            assert!(r.access.contains(right), "{dir} lacks {right:?}");
        }
        assert!(!r.access.contains(AccessFs::MakeChar), "{dir}");
        assert!(!r.access.contains(AccessFs::MakeBlock), "{dir}");
    }
    for dev in ["/dev/null", "/dev/nvidia0", "/dev/nvidiactl"] {
        let r = rule(&p, dev);
        assert_eq!(r.kind, RuleKind::Device);
        assert_eq!(
            r.access,
            AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev
        );
    }
    // The bundle's log file: written (appended), not created, removed or truncated.
    let log = rule(&p, "/bundle/training.log");
    assert_eq!(log.kind, RuleKind::AppendFile);
    assert_eq!(log.access, AccessFs::WriteFile);
    assert!(p.rules.iter().all(|r| r.path != Path::new("/bundle")));
    assert_eq!(p.rules.len(), 1 + 5 + 3 + 1);
    // Everything written is handled, so everything not granted is denied.
    for r in &p.rules {
        assert!(p.handled_fs.contains(r.access), "{:?}", r.path);
    }
    assert!(!p.handled_fs.contains(AccessFs::ResolveUnix));
}

#[test]
fn rights_follow_the_abi_and_tcp_is_denied_from_abi_4() {
    let v1 = build_policy(&inputs(), 1);
    assert!(!v1.deny_tcp);
    assert!(!v1.handled_fs.contains(AccessFs::Refer));
    assert!(!rule(&v1, "/runs/out").access.contains(AccessFs::Truncate));
    assert_eq!(
        rule(&v1, "/dev/null").access,
        AccessFs::ReadFile | AccessFs::WriteFile
    );
    let v3 = build_policy(&inputs(), 3);
    assert!(!v3.deny_tcp);
    assert!(v3.handled_fs.contains(AccessFs::Truncate));
    assert!(!v3.handled_fs.contains(AccessFs::IoctlDev));
    let v4 = build_policy(&inputs(), 4);
    assert!(v4.deny_tcp);
    assert!(!v4.handled_fs.contains(AccessFs::IoctlDev));
    let v5 = build_policy(&inputs(), 5);
    assert!(v5.handled_fs.contains(AccessFs::IoctlDev));
    // Newer ABIs than the crate or this policy knows: the same rights, never ResolveUnix.
    let v99 = build_policy(&inputs(), 99);
    assert!(v99.deny_tcp);
    assert_eq!(v99.handled_fs, build_policy(&inputs(), 7).handled_fs);
    assert!(!v99.handled_fs.contains(AccessFs::ResolveUnix));
}

#[test]
fn the_report_lists_every_rule_and_the_network() {
    let mut i = inputs();
    i.writable.push("/runs/out".into()); // a duplicate is one rule
    let r = build_policy(&i, 7).report();
    assert!(r.enforced && r.network_denied && r.reason.is_none());
    assert_eq!(r.abi, Some(7));
    assert_eq!(
        r.writable,
        [
            "/runs/out",
            "/runs/out/logs",
            "/tmp/p",
            "/home/u/.nv/ComputeCache",
            "/dev/shm",
            "/dev/null",
            "/dev/nvidia0",
            "/dev/nvidiactl",
            "/bundle/training.log"
        ]
    );
    assert_eq!(r.rules[0], "/: execute, read_file, read_dir");
    assert!(r
        .rules
        .contains(&"/bundle/training.log: write_file".to_string()));
    assert_eq!(r.rules.last().unwrap(), "tcp: bind and connect denied");
    assert!(r
        .rules
        .contains(&"/dev/nvidiactl: read_file, write_file, truncate, ioctl_dev".to_string()));
    let r = build_policy(&i, 3).report();
    assert!(!r.network_denied);
    assert_eq!(
        r.rules.last().unwrap(),
        "tcp: not restricted (Landlock ABI 3 < 4)"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["enforced"], true);
    assert_eq!(json["abi"], 3);
}

#[test]
fn discovery_keeps_what_exists_and_reads_the_childs_env() {
    let t = tempfile::tempdir().unwrap();
    let dev = t.path().join("dev");
    for d in ["shm", "dri", "nvidia-caps"] {
        std::fs::create_dir_all(dev.join(d)).unwrap();
    }
    for f in ["null", "nvidia0", "nvidiactl", "sda"] {
        std::fs::write(dev.join(f), "").unwrap();
    }
    let home = t.path().join("home");
    std::fs::create_dir_all(home.join(".nv/ComputeCache")).unwrap();
    let cuda_cache = t.path().join("cuda-cache");
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let env = ChildEnv {
        vars: [
            ("HOME".into(), home.clone().into_os_string()),
            (
                "CUDA_CACHE_PATH".into(),
                cuda_cache.clone().into_os_string(),
            ),
        ]
        .into_iter()
        .collect(),
        set_by_us: Default::default(),
        removed: Vec::new(),
    };
    let missing = t.path().join("not-yet");
    let i = discover_inputs_in(&[out.clone(), missing, "relative".into()], &env, &dev);
    assert_eq!(i.writable, [out]);
    assert_eq!(i.caches, [home.join(".nv/ComputeCache")]);
    assert_eq!(i.shm, Some(dev.join("shm")));
    assert_eq!(
        i.devices,
        [
            dev.join("null"),
            dev.join("nvidia-caps"),
            dev.join("nvidia0"),
            dev.join("nvidiactl"),
            dev.join("dri")
        ]
    );
    std::fs::create_dir_all(&cuda_cache).unwrap();
    let i = discover_inputs_in(&[], &env, &dev);
    assert_eq!(i.caches, [home.join(".nv/ComputeCache"), cuda_cache]);
}

#[test]
fn unavailable_landlock_runs_unconfined_unless_required() {
    let req = SandboxRequest {
        enabled: true,
        required: false,
        writable: vec![],
        append_files: vec![],
    };
    let never = |_| -> Result<PreparedSandbox, SandboxError> { panic!("prepared without an ABI") };
    let p = decide(&req, Err(SandboxError::Disabled), never).unwrap();
    assert!(p.fd.is_none());
    assert!(!p.report.enforced);
    assert_eq!(p.report.abi, None);
    assert!(p
        .report
        .reason
        .as_deref()
        .unwrap()
        .contains("Landlock is disabled"));

    let required = SandboxRequest {
        required: true,
        ..req.clone()
    };
    let err = decide(&required, Err(SandboxError::Disabled), never).unwrap_err();
    assert_eq!(err, SandboxError::Disabled);
    assert!(err.to_string().contains("Landlock is disabled"), "{err}");

    // A failed preparation is treated the same way.
    let failing = |_| {
        Err(SandboxError::RuleSet {
            what: "path /x".into(),
            detail: "gone".into(),
        })
    };
    let p = decide(&req, Ok(7), failing).unwrap();
    assert!(!p.report.enforced);
    assert_eq!(p.report.abi, Some(7));
    let err = decide(&required, Ok(7), failing).unwrap_err();
    assert_eq!(err.to_string(), "Landlock path /x: gone");

    // Disabled by the caller: never prepared; contradictory when required.
    let off = SandboxRequest {
        enabled: false,
        ..req.clone()
    };
    let p = decide(&off, Ok(7), never).unwrap();
    assert_eq!(p.report.reason.as_deref(), Some("disabled by the caller"));
    let off_required = SandboxRequest {
        enabled: false,
        required: true,
        writable: vec![],
        append_files: vec![],
    };
    assert_eq!(
        decide(&off_required, Ok(7), never).unwrap_err(),
        SandboxError::RequiredButDisabled
    );
}

#[test]
fn the_private_tmp_is_private_and_removed() {
    let tmp = PrivateTmp::create().unwrap();
    let path = tmp.path().to_path_buf();
    std::fs::write(path.join("x"), "y").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    drop(tmp);
    assert!(!path.exists());
}

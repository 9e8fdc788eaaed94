//! A Landlock sandbox around the upstream child (the environment probe and the run).
//!
//! The child may read and execute anything (`/` read-only: the interpreter, site-packages,
//! the bundle, the input, `/proc/driver/nvidia`, the driver libraries), but it may write
//! only to the run's own directories (output, logs, a private temp dir passed as
//! `TMPDIR`), `/dev/shm` (torch's shared memory), the CUDA kernel caches, and the
//! device nodes it needs (`/dev/null`, `/dev/nvidia*`, `/dev/dri`). With Landlock ABI 4
//! or later it may neither bind nor connect a TCP socket: the model needs no network.
//!
//! How it is applied: the rule set is built and filled **in the parent** (opening paths,
//! allocating), and the child only calls `prctl(PR_SET_NO_NEW_PRIVS)` and
//! `landlock_restrict_self` on the inherited rule-set descriptor between fork and exec
//! (nothing that allocates runs after the fork of a multi-threaded server). The
//! restriction survives exec and is inherited by every descendant (data-loader workers,
//! compilers). The same hook sets `PR_SET_PDEATHSIG = SIGKILL`, so the child dies with
//! the server (Linux sends it when the *thread* that forked exits; tokio's worker threads
//! live as long as the runtime, and a dropped run kills the group anyway).
//!
//! Where Landlock is missing (old kernel, disabled at boot) the child runs unconfined and
//! the [`SandboxReport`] says why, unless the caller asked for the sandbox to be required.
//!
//! [`build_policy`] is pure (paths in, rules out); [`discover_inputs`] looks at the
//! machine; [`prepare`] turns a policy into a rule-set descriptor.

use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, ABI,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::python::ChildEnv;

/// What the sandbox did for one child, for the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SandboxReport {
    /// The Landlock restriction was applied to the child.
    pub enforced: bool,
    /// The kernel's Landlock ABI version, when Landlock is available.
    pub abi: Option<u32>,
    /// Why the sandbox is not (fully) applied, when it is not.
    pub reason: Option<String>,
    /// The paths the child may write below.
    pub writable: Vec<String>,
    /// TCP bind and connect are denied (Landlock ABI >= 4).
    pub network_denied: bool,
    /// Every rule, readable: `<path>: <rights>` and the network rule.
    pub rules: Vec<String>,
}

impl SandboxReport {
    /// A report for a child that ran (or will run) without the sandbox.
    pub fn not_enforced(abi: Option<u32>, reason: impl Into<String>) -> SandboxReport {
        SandboxReport {
            enforced: false,
            abi,
            reason: Some(reason.into()),
            writable: Vec::new(),
            network_denied: false,
            rules: Vec::new(),
        }
    }
}

/// The paths a policy is built from. Every path is expected to exist (see
/// [`discover_inputs`], which drops missing ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxInputs {
    /// The run's own directories: output, logs, the private temp dir, extra ones.
    pub writable: Vec<PathBuf>,
    /// CUDA kernel caches (`~/.nv/ComputeCache`, `$CUDA_CACHE_PATH`).
    pub caches: Vec<PathBuf>,
    /// `/dev/shm`, when present.
    pub shm: Option<PathBuf>,
    /// Device nodes (or directories of them) the child opens for writing and ioctls:
    /// `/dev/null`, `/dev/nvidia*`, `/dev/dri`.
    pub devices: Vec<PathBuf>,
    /// Files the bundle's own logging config appends to (`training.log`): write only.
    pub append_files: Vec<PathBuf>,
}

/// Why a path is in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// `/`: read and execute.
    ReadOnlyRoot,
    /// A run directory, cache or `/dev/shm`: everything but device-node creation.
    Writable,
    /// A device node: open for reading and writing, ioctl.
    Device,
    /// One existing file the bundle's logging config appends to: write only.
    AppendFile,
}

/// One `path_beneath` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub path: PathBuf,
    pub kind: RuleKind,
    pub access: BitFlags<AccessFs>,
}

/// The complete Landlock policy for one child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// The ABI the policy is built for (the kernel's).
    pub abi: u32,
    /// The file-system rights the rule set handles (denied unless a rule grants them).
    pub handled_fs: BitFlags<AccessFs>,
    pub rules: Vec<PathRule>,
    /// Handle TCP bind and connect with no port allowed (ABI >= 4).
    pub deny_tcp: bool,
}

/// The file-system rights handled at `abi`: read, execute and every write right the ABI
/// knows up to `IoctlDev` (ABI 5). Not `ResolveUnix` (ABI 9): connecting to UNIX sockets
/// (e.g. the NVIDIA persistence daemon's) stays allowed.
pub fn handled_fs(abi: u32) -> BitFlags<AccessFs> {
    if abi == 0 {
        return BitFlags::EMPTY;
    }
    let mut fs = AccessFs::from_all(ABI::from(abi.min(i32::MAX as u32) as i32));
    fs.remove(AccessFs::ResolveUnix);
    fs
}

/// Build the policy: `/` read-only; the inputs' writable directories, caches and
/// `/dev/shm` writable (no device-node creation); the device nodes open for read,
/// write and ioctl; TCP denied from ABI 4. Pure: no file is looked at.
pub fn build_policy(inputs: &SandboxInputs, abi: u32) -> SandboxPolicy {
    let handled = handled_fs(abi);
    let read = handled & (AccessFs::Execute | AccessFs::ReadFile | AccessFs::ReadDir);
    let mut write = handled;
    write.remove(AccessFs::MakeChar | AccessFs::MakeBlock);
    let device = handled
        & (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate | AccessFs::IoctlDev);

    let mut rules = vec![PathRule {
        path: PathBuf::from("/"),
        kind: RuleKind::ReadOnlyRoot,
        access: read,
    }];
    let writable = inputs
        .writable
        .iter()
        .chain(&inputs.caches)
        .chain(inputs.shm.iter());
    for path in writable {
        push_unique(&mut rules, path, RuleKind::Writable, write);
    }
    for path in &inputs.devices {
        push_unique(&mut rules, path, RuleKind::Device, device);
    }
    for path in &inputs.append_files {
        push_unique(
            &mut rules,
            path,
            RuleKind::AppendFile,
            handled & AccessFs::WriteFile,
        );
    }
    SandboxPolicy {
        abi,
        handled_fs: handled,
        rules,
        deny_tcp: abi >= 4,
    }
}

fn push_unique(rules: &mut Vec<PathRule>, path: &Path, kind: RuleKind, access: BitFlags<AccessFs>) {
    if !rules.iter().any(|r| r.path == path) {
        rules.push(PathRule {
            path: path.to_path_buf(),
            kind,
            access,
        });
    }
}

impl SandboxPolicy {
    /// The report this policy makes once enforced.
    pub fn report(&self) -> SandboxReport {
        let mut rules: Vec<String> = self
            .rules
            .iter()
            .map(|r| format!("{}: {}", r.path.display(), rights(r.access)))
            .collect();
        rules.push(if self.deny_tcp {
            "tcp: bind and connect denied".to_string()
        } else {
            format!("tcp: not restricted (Landlock ABI {} < 4)", self.abi)
        });
        SandboxReport {
            enforced: true,
            abi: Some(self.abi),
            reason: None,
            writable: self
                .rules
                .iter()
                .filter(|r| r.kind != RuleKind::ReadOnlyRoot)
                .map(|r| r.path.display().to_string())
                .collect(),
            network_denied: self.deny_tcp,
            rules,
        }
    }
}

/// The rights' names, in a fixed order, as Landlock's documentation writes them.
pub fn rights(access: BitFlags<AccessFs>) -> String {
    const NAMES: [(AccessFs, &str); 17] = [
        (AccessFs::Execute, "execute"),
        (AccessFs::ReadFile, "read_file"),
        (AccessFs::ReadDir, "read_dir"),
        (AccessFs::WriteFile, "write_file"),
        (AccessFs::RemoveDir, "remove_dir"),
        (AccessFs::RemoveFile, "remove_file"),
        (AccessFs::MakeChar, "make_char"),
        (AccessFs::MakeDir, "make_dir"),
        (AccessFs::MakeReg, "make_reg"),
        (AccessFs::MakeSock, "make_sock"),
        (AccessFs::MakeFifo, "make_fifo"),
        (AccessFs::MakeBlock, "make_block"),
        (AccessFs::MakeSym, "make_sym"),
        (AccessFs::Refer, "refer"),
        (AccessFs::Truncate, "truncate"),
        (AccessFs::IoctlDev, "ioctl_dev"),
        (AccessFs::ResolveUnix, "resolve_unix"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(a, _)| access.contains(*a))
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The policy's inputs on this machine: `writable` (missing ones dropped), the CUDA
/// caches named by the child's `HOME` and `CUDA_CACHE_PATH` that exist, `/dev/shm`,
/// `/dev/null`, every `/dev/nvidia*` and `/dev/dri`.
pub fn discover_inputs(writable: &[PathBuf], env: &ChildEnv) -> SandboxInputs {
    discover_inputs_in(writable, env, Path::new("/dev"))
}

fn discover_inputs_in(writable: &[PathBuf], env: &ChildEnv, dev: &Path) -> SandboxInputs {
    let var = |k: &str| {
        env.vars
            .get(std::ffi::OsStr::new(k))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut caches = Vec::new();
    if let Some(home) = var("HOME") {
        caches.push(home.join(".nv/ComputeCache"));
    }
    caches.extend(var("CUDA_CACHE_PATH"));
    let mut devices = vec![dev.join("null")];
    let mut nvidia: Vec<PathBuf> = std::fs::read_dir(dev)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("nvidia"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    nvidia.sort();
    devices.extend(nvidia);
    devices.push(dev.join("dri"));
    let exists = |p: &PathBuf| p.is_absolute() && p.exists();
    SandboxInputs {
        writable: writable.iter().filter(|p| exists(p)).cloned().collect(),
        caches: caches.into_iter().filter(exists).collect(),
        shm: Some(dev.join("shm")).filter(exists),
        devices: devices.into_iter().filter(exists).collect(),
        append_files: Vec::new(),
    }
}

/// Why the sandbox cannot be applied: Landlock is missing from the kernel, or the rule
/// set could not be built, or a required sandbox was switched off. The messages are the
/// reasons evidence and refusals quote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// The kernel has no Landlock (`ENOSYS`).
    #[error("Landlock is not built into this kernel (ENOSYS)")]
    NotBuiltIn,
    /// The kernel has Landlock but it is not enabled (`EOPNOTSUPP`).
    #[error("Landlock is disabled on this kernel (EOPNOTSUPP; enable it with lsm=...,landlock)")]
    Disabled,
    /// Any other failure asking for the ABI version (the OS error's text).
    #[error("Landlock is unavailable: {0}")]
    Unavailable(String),
    /// An ABI version that does not fit a `u32`.
    #[error("unexpected Landlock ABI {0}")]
    UnexpectedAbi(i64),
    /// Not Linux.
    #[error("Landlock exists only on Linux")]
    NotLinux,
    /// Building the rule set failed at `what` (a right, a path, a rule).
    #[error("Landlock {what}: {detail}")]
    RuleSet { what: String, detail: String },
    /// The rule set came back without a descriptor.
    #[error("Landlock rule set was not created")]
    NotCreated,
    /// The caller both disabled and required the sandbox.
    #[error("the sandbox is required but disabled (sandbox = false)")]
    RequiredButDisabled,
}

/// The kernel's Landlock ABI version, or why there is none.
pub fn landlock_abi() -> Result<u32, SandboxError> {
    #[cfg(target_os = "linux")]
    {
        const LANDLOCK_CREATE_RULESET_VERSION: libc::c_ulong = 1;
        // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the call
        // only returns the ABI version; it reads and writes no memory.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        if v > 0 {
            return u32::try_from(v).map_err(|_| SandboxError::UnexpectedAbi(v));
        }
        let e = std::io::Error::last_os_error();
        Err(match e.raw_os_error() {
            Some(libc::ENOSYS) => SandboxError::NotBuiltIn,
            Some(libc::EOPNOTSUPP) => SandboxError::Disabled,
            _ => SandboxError::Unavailable(e.to_string()),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(SandboxError::NotLinux)
    }
}

/// A filled rule set, ready to restrict a child, and the report that goes with it.
#[derive(Debug)]
pub struct PreparedSandbox {
    /// The rule-set descriptor (close-on-exec); `None` when nothing is enforced.
    pub(crate) fd: Option<std::os::fd::OwnedFd>,
    pub report: SandboxReport,
}

impl PreparedSandbox {
    /// No restriction, with the reason.
    pub fn unconfined(report: SandboxReport) -> PreparedSandbox {
        PreparedSandbox { fd: None, report }
    }
}

/// Create and fill the rule set for `policy` (in this process; nothing is restricted
/// here). Any right the kernel would not enforce is an error: the policy is built for
/// the kernel's own ABI, so the report never claims more than is enforced.
pub fn prepare(policy: &SandboxPolicy) -> Result<PreparedSandbox, SandboxError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| SandboxError::RuleSet {
        what: what.to_string(),
        detail: e.to_string(),
    };
    let mut ruleset = Ruleset::default();
    ruleset = ruleset.set_compatibility(CompatLevel::HardRequirement);
    let mut ruleset = ruleset
        .handle_access(policy.handled_fs)
        .map_err(|e| fail("file-system rights", &e))?;
    if policy.deny_tcp {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(|e| fail("network rights", &e))?;
    }
    let mut created = ruleset.create().map_err(|e| fail("rule set", &e))?;
    for rule in &policy.rules {
        let fd = PathFd::new(&rule.path)
            .map_err(|e| fail(&format!("path {}", rule.path.display()), &e))?;
        created = created
            .add_rule(PathBeneath::new(fd, rule.access))
            .map_err(|e| fail(&format!("rule for {}", rule.path.display()), &e))?;
    }
    let fd: Option<std::os::fd::OwnedFd> = created.into();
    let Some(fd) = fd else {
        return Err(SandboxError::NotCreated);
    };
    Ok(PreparedSandbox {
        fd: Some(fd),
        report: policy.report(),
    })
}

/// What to do about the sandbox for one child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRequest {
    /// Try to apply it at all.
    pub enabled: bool,
    /// A sandbox that cannot be applied stops the start instead of running unconfined.
    pub required: bool,
    /// The directories the child may write (missing ones are skipped).
    pub writable: Vec<PathBuf>,
    /// Existing files it may append to (see [`super::bundle_logs`]); others skipped.
    pub append_files: Vec<PathBuf>,
}

/// The sandbox for one child: `Ok` with a restriction, or `Ok` unconfined (with the
/// reason) when it is disabled or unavailable and not required; `Err(reason)` when it
/// is required and cannot be applied.
pub fn sandbox_for(req: &SandboxRequest, env: &ChildEnv) -> Result<PreparedSandbox, SandboxError> {
    decide(req, landlock_abi(), |abi| {
        let mut inputs = discover_inputs(&req.writable, env);
        inputs.append_files = req
            .append_files
            .iter()
            .filter(|p| p.is_absolute() && p.is_file())
            .cloned()
            .collect();
        prepare(&build_policy(&inputs, abi))
    })
}

/// [`sandbox_for`]'s decision with the ABI and the preparation passed in.
pub(crate) fn decide(
    req: &SandboxRequest,
    abi: Result<u32, SandboxError>,
    prepare: impl FnOnce(u32) -> Result<PreparedSandbox, SandboxError>,
) -> Result<PreparedSandbox, SandboxError> {
    if !req.enabled {
        if req.required {
            return Err(SandboxError::RequiredButDisabled);
        }
        return Ok(PreparedSandbox::unconfined(SandboxReport::not_enforced(
            abi.ok(),
            "disabled by the caller",
        )));
    }
    let outcome = abi.clone().and_then(prepare);
    match outcome {
        Ok(prepared) => Ok(prepared),
        Err(reason) if req.required => Err(reason),
        Err(reason) => Ok(PreparedSandbox::unconfined(SandboxReport::not_enforced(
            abi.ok(),
            format!("{reason}; the child runs without the sandbox"),
        ))),
    }
}

/// Install the child-side hardening on `cmd`: `PR_SET_PDEATHSIG = SIGKILL` (and an exit
/// if the server is already gone), then, when `sandbox` holds a rule set,
/// `PR_SET_NO_NEW_PRIVS` and `landlock_restrict_self`. The hook only makes system calls
/// (async-signal-safe); `sandbox` must outlive the spawn.
pub fn harden(cmd: &mut tokio::process::Command, sandbox: &PreparedSandbox) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let ruleset = sandbox.fd.as_ref().map(|fd| fd.as_raw_fd());
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let hook = move || -> std::io::Result<()> {
            // SAFETY: between fork and exec; only raw system calls, no allocation, no
            // locks. Errors come back as errno values (io::Error's Os variant).
            unsafe {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    // The server died before the signal was armed.
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                if let Some(fd) = ruleset {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        };
        // SAFETY: the hook is async-signal-safe (see above) and captures only integers.
        unsafe {
            cmd.pre_exec(hook);
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (cmd, sandbox);
    }
}

/// `env` with `TMPDIR` set to `dir` (recorded as set by us).
pub(crate) fn with_tmpdir(env: &ChildEnv, dir: &Path) -> ChildEnv {
    let mut env = env.clone();
    env.vars
        .insert("TMPDIR".into(), dir.as_os_str().to_os_string());
    env.set_by_us
        .insert("TMPDIR".into(), dir.display().to_string());
    env
}

/// A private, per-run temporary directory (mode 0700), removed with its contents when
/// dropped. The child gets it as `TMPDIR` and may write there.
#[derive(Debug)]
pub struct PrivateTmp {
    path: PathBuf,
}

impl PrivateTmp {
    /// Create `<system temp>/ctmr-skill-<pid>-<uuid>`.
    pub fn create() -> std::io::Result<PrivateTmp> {
        let path = std::env::temp_dir().join(format!(
            "ctmr-skill-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&path)?;
        Ok(PrivateTmp { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
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
        let never =
            |_| -> Result<PreparedSandbox, SandboxError> { panic!("prepared without an ABI") };
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
}

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
    pub(crate) fn not_enforced(abi: Option<u32>, reason: impl Into<String>) -> SandboxReport {
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
pub(crate) struct SandboxInputs {
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
pub(crate) enum RuleKind {
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
pub(crate) struct PathRule {
    pub path: PathBuf,
    pub kind: RuleKind,
    pub access: BitFlags<AccessFs>,
}

/// The complete Landlock policy for one child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SandboxPolicy {
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
pub(crate) fn handled_fs(abi: u32) -> BitFlags<AccessFs> {
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
pub(crate) fn build_policy(inputs: &SandboxInputs, abi: u32) -> SandboxPolicy {
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
    pub(crate) fn report(&self) -> SandboxReport {
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
pub(crate) fn rights(access: BitFlags<AccessFs>) -> String {
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
pub(crate) fn discover_inputs(writable: &[PathBuf], env: &ChildEnv) -> SandboxInputs {
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
pub(crate) struct PreparedSandbox {
    /// The rule-set descriptor (close-on-exec); `None` when nothing is enforced.
    pub(crate) fd: Option<std::os::fd::OwnedFd>,
    pub report: SandboxReport,
}

impl PreparedSandbox {
    /// No restriction, with the reason.
    pub(crate) fn unconfined(report: SandboxReport) -> PreparedSandbox {
        PreparedSandbox { fd: None, report }
    }
}

/// Create and fill the rule set for `policy` (in this process; nothing is restricted
/// here). Any right the kernel would not enforce is an error: the policy is built for
/// the kernel's own ABI, so the report never claims more than is enforced.
pub(crate) fn prepare(policy: &SandboxPolicy) -> Result<PreparedSandbox, SandboxError> {
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
pub(crate) fn sandbox_for(
    req: &SandboxRequest,
    env: &ChildEnv,
) -> Result<PreparedSandbox, SandboxError> {
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
pub(crate) fn harden(cmd: &mut tokio::process::Command, sandbox: &PreparedSandbox) {
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
pub(crate) struct PrivateTmp {
    path: PathBuf,
}

impl PrivateTmp {
    /// Create `<system temp>/ctmr-skill-<pid>-<uuid>`.
    pub(crate) fn create() -> std::io::Result<PrivateTmp> {
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

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests;

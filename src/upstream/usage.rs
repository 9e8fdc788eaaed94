//! What the upstream's processes cost: CPU seconds and peak memory, from the kernel.
//!
//! One-shot runs are measured as this server's reaped children (`getrusage`
//! `RUSAGE_CHILDREN`, the difference across the run: the child and everything it
//! waited for); a warm worker by its own `/proc/<pid>` counters across the request
//! (its threads included). GPU figures come from NVML, in [`super::gpu`].

/// CPU seconds (user + system) and peak RSS in KiB of this process's reaped children.
pub(crate) fn children_usage() -> (f64, u64) {
    // SAFETY: getrusage fills the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        seconds(usage.ru_utime) + seconds(usage.ru_stime),
        u64::try_from(usage.ru_maxrss).unwrap_or(0),
    )
}

/// CPU seconds (user + system, all threads) of a live process.
pub(crate) fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 is index 0; utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks > 0.0).then(|| (utime + stime) / ticks)
}

/// Peak resident memory of a live process so far (`VmHWM`), in KiB.
pub(crate) fn process_peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident memory of a live process now (`VmRSS`), in KiB.
pub(crate) fn process_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_counters() {
        let pid = std::process::id();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(process_cpu_seconds(pid).is_some_and(|s| s >= 0.0));
        assert!(process_peak_rss_kib(pid).is_some_and(|k| k > 0));
        let before = children_usage();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        let after = children_usage();
        assert!(after.0 > before.0, "a reaped child's CPU time is counted");
        assert!(after.1 > 0);
    }
}

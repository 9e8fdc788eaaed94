//! The upstream process group a run started, as the runs index records it, and the
//! one place the job table may signal anything.
//!
//! Why so narrow: a record that says "this run's child is pid N" is a lever to kill
//! process N. Only the operator's runs index is believed (never a record in a pack,
//! which anyone who can write into an allowed directory can forge), and even then a
//! group is killed only while its leader is the very process that was recorded: same
//! pid, same start time (so a reused pid is left alone), and still the leader of its
//! own process group, as the upstream child is started.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An upstream child process: its pid (also its process group id) and its start
/// time, which tells it apart from a later process that reused the pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChildProcess {
    pub pid: u32,
    /// Clock ticks after boot (`/proc/<pid>/stat`, field 22).
    pub start_ticks: u64,
}

/// `/proc/<pid>/stat` after the command name: field 3 (state) onwards.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

impl ChildProcess {
    /// The process as it is now, if it is alive.
    pub fn of(pid: u32) -> Option<ChildProcess> {
        let start_ticks = stat_fields(pid)?.get(19)?.parse().ok()?;
        Some(ChildProcess { pid, start_ticks })
    }

    /// Still the same process (the pid was not reused).
    pub fn alive(self) -> bool {
        ChildProcess::of(self.pid) == Some(self)
    }

    /// Still the same process, and the leader of its own process group (field 5).
    fn leads_its_group(self) -> bool {
        self.alive()
            && stat_fields(self.pid)
                .and_then(|f| f.get(2)?.parse::<u32>().ok())
                .is_some_and(|pgrp| pgrp == self.pid)
    }

    /// Kill its whole process group; true when it was alive and led its group.
    pub(crate) fn kill_group(self) -> bool {
        if !self.leads_its_group() {
            return false;
        }
        let Ok(pgid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        if pgid <= 1 {
            return false;
        }
        // SAFETY: a signal to a process group whose leader is the recorded child.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn only_the_recorded_leader_of_its_own_group_is_killed() {
        // Not a group leader (it shares the test's group): left alone.
        let mut member = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let recorded = ChildProcess::of(member.id()).unwrap();
        assert!(!recorded.kill_group());
        assert!(member.try_wait().unwrap().is_none());
        member.kill().unwrap();
        let _ = member.wait();
        // A leader with another start time (a reused pid): left alone.
        let mut leader = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap();
        let stranger = ChildProcess {
            pid: leader.id(),
            start_ticks: 1,
        };
        assert!(!stranger.kill_group());
        assert!(leader.try_wait().unwrap().is_none());
        // The recorded leader itself: killed.
        assert!(ChildProcess::of(leader.id()).unwrap().kill_group());
        assert!(!leader.wait().unwrap().success());
    }
}

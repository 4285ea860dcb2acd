//! Real-time priority and locked memory for the agent's loop and its guard,
//! as corosync runs: heartbeats sent and read, leases renewed and the
//! guard's deadline kept on time while the machine is busy, and never a
//! page fault to disk on the way. The programs they start do not inherit
//! the priority (`SCHED_RESET_ON_FORK`).

/// The real-time priority (of 1–99) the agent's loop and guard run at:
/// above ordinary programs, below the kernel's own real-time threads.
pub const PRIORITY: i32 = 50;

/// Raises the calling thread to `SCHED_RR` at [`PRIORITY`] (threads and
/// processes it creates start as ordinary ones) and locks the process's
/// memory as it is touched. Returns what the system refused, as warnings:
/// the agent runs on without it.
pub fn enter() -> Vec<String> {
    let mut refused = Vec::new();
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) } != 0 {
        let e = std::io::Error::last_os_error();
        refused.push(format!(
            "cannot lock this process's memory ({e}): under memory pressure a page fault may delay heartbeats"
        ));
    }
    let param = libc::sched_param { sched_priority: PRIORITY };
    // SAFETY: sched_setscheduler reads the parameter we own; 0 is this thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) } != 0 {
        let e = std::io::Error::last_os_error();
        refused.push(format!(
            "cannot run at real-time priority ({e}): heartbeats and the guard's deadline may be late on a busy \
             machine (run as root or with CAP_SYS_NICE, or set cluster.realtime = false to silence this)"
        ));
    }
    refused
}

/// [`enter`], each refusal logged as a warning of `who` ("baton", "baton guard").
pub fn enter_or_warn(who: &str) {
    for refused in enter() {
        tracing::warn!("{who}: warning: {refused}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> i32 {
        // SAFETY: sched_getscheduler takes a thread id; 0 is this thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn the_thread_runs_round_robin_its_children_do_not_and_memory_is_locked() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root (CAP_SYS_NICE and CAP_IPC_LOCK)");
        std::thread::spawn(|| {
            assert_eq!(enter(), Vec::<String>::new());
            assert_eq!(policy() & !libc::SCHED_RESET_ON_FORK, libc::SCHED_RR);
            let child = std::thread::spawn(policy).join().unwrap();
            assert_eq!(child, libc::SCHED_OTHER, "a thread it creates is an ordinary one");
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let locked = status.lines().find_map(|l| l.strip_prefix("VmLck:")).unwrap();
            let kb: u64 = locked.trim().trim_end_matches("kB").trim().parse().unwrap();
            assert!(kb > 0, "pages touched since are locked: {locked}");
            // SAFETY: munlockall takes nothing; undo for the rest of the tests.
            unsafe { libc::munlockall() };
        })
        .join()
        .unwrap();
    }
}

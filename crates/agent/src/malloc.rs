//! How the C allocator keeps the agent's and the guard's heap small.
//!
//! glibc's defaults suit programs that allocate and free large blocks all
//! the time: a freed large block raises the size from which blocks are
//! mapped on their own (up to 32 MiB) and the amount of free heap kept
//! rather than returned, and every thread may get an arena of its own. A
//! daemon that reads one 1 MiB page of its Raft store at start (redb does,
//! opening the file) then keeps that high-water mark resident for good —
//! with `cluster.realtime` locked as well. Fixed thresholds keep large
//! blocks in their own mappings, given back when freed, and one arena
//! serves the few threads these processes have (measured in
//! docs/footprint.md: 3.7 → 1.7 MiB of anonymous memory in the agent).

/// Blocks from this size up are mapped on their own and unmapped when
/// freed; free heap above this much at its top is given back. Both are
/// glibc's starting values, kept instead of raised as large blocks come
/// and go.
const THRESHOLD: libc::c_int = 128 * 1024;

/// Sets the allocator's thresholds and one arena for all threads. Call it
/// first thing, before any thread starts. Where the C library is not glibc
/// it does nothing.
pub fn keep_small() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes two integers; called before any other thread
    // exists, it changes only the allocator's tuning.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_block_freed_is_given_back_at_once() {
        // In a child process: the test harness's threads share this one's heap.
        // SAFETY: fork in a test; the child only allocates, reads its own
        // status and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            keep_small();
            let resident = || -> u64 {
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let line = status.lines().find_map(|l| l.strip_prefix("RssAnon:")).unwrap_or("0");
                line.trim().trim_end_matches("kB").trim().parse().unwrap_or(0)
            };
            let before = resident();
            // Twice: the second would come from the heap under glibc's
            // sliding threshold, and stay resident after it is freed.
            for _ in 0..2 {
                let block = vec![1u8; 1 << 20];
                std::hint::black_box(&block);
            }
            let after = resident();
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if after < before + 512 { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "a freed 1 MiB block left more than 512 KiB resident"
        );
    }
}

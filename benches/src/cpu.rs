//! Thread CPU time and alternating runs, for benches that print a ratio
//! against a baseline on a busy machine.
//!
//! On a shared machine a run is often preempted and wall time then counts
//! other processes' work; the CPU time of the measuring thread does not.
//! [`fastest`](crate::cpu::fastest) runs two workloads alternately and keeps each one's fastest
//! run, the one least disturbed by the rest of the machine.

use std::time::Duration;

/// CPU time used by this thread so far. On a busy machine a run is often
/// preempted, and wall time then counts other processes' work; CPU time
/// does not.
#[cfg(target_os = "linux")]
pub fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable `timespec` that outlives the call,
    // and `clock_gettime` writes only into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// Wall time where thread CPU time is not available.
#[cfg(not(target_os = "linux"))]
pub fn cpu_time() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// Runs `a` and `b` alternately `runs` times and returns each one's
/// fastest run in CPU time: both do a fixed amount of work, so the minimum
/// is the run least disturbed by the rest of the machine.
pub fn fastest(runs: usize, a: impl FnMut(), b: impl FnMut()) -> (Duration, Duration) {
    let ((ta, _), (tb, _)) = fastest_and_median(runs, a, b);
    (ta, tb)
}

/// Like [`fastest`], returning each one's (fastest, median) run.
pub fn fastest_and_median(
    runs: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> ((Duration, Duration), (Duration, Duration)) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let t = cpu_time();
        a();
        ta.push(cpu_time() - t);
        let t = cpu_time();
        b();
        tb.push(cpu_time() - t);
    }
    (min_and_median(&mut ta), min_and_median(&mut tb))
}

/// The least and the median of `v` (not empty).
fn min_and_median(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort_unstable();
    let at = |i: usize| v.get(i).copied().unwrap_or_default();
    (at(0), at(v.len() / 2))
}

/// Like [`fastest`] for any number of workloads (boxed closures, say): each
/// round runs every one of `fs` once, in order, and each one's fastest run
/// in CPU time is returned in the same order.
pub fn fastest_each(runs: usize, fs: &mut [impl FnMut()]) -> Vec<Duration> {
    let mut best = vec![Duration::MAX; fs.len()];
    for _ in 0..runs {
        for (f, best) in fs.iter_mut().zip(&mut best) {
            let t = cpu_time();
            f();
            *best = (*best).min(cpu_time() - t);
        }
    }
    best
}

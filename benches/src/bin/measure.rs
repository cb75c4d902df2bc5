//! `measure [--stdout FILE] -- COMMAND [ARGS...]`: runs a command once and
//! prints its wall time and peak resident memory as one JSON line, for
//! `cargo xtask bench`.
//!
//! The time is taken around spawning and reaping the child, so this
//! process's own start-up is not counted; the peak RSS is the child's
//! `ru_maxrss` from `wait4`, so other processes are not counted either.
//! The child's standard output goes to `/dev/null` (or `--stdout FILE`);
//! its standard error is passed through. Exits with failure if the child
//! does.

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut stdout = None;
    loop {
        match args.next().as_deref() {
            Some("--stdout") => stdout = Some(args.next().context("--stdout needs a file")?),
            Some("--") => break,
            _ => bail!("usage: measure [--stdout FILE] -- COMMAND [ARGS...]"),
        }
    }
    let program = args.next().context("no command given")?;
    let mut cmd = Command::new(&program);
    cmd.args(args);
    cmd.stdout(match &stdout {
        Some(f) => Stdio::from(std::fs::File::create(f).with_context(|| f.clone())?),
        None => Stdio::null(),
    });
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("could not start {program}"))?;
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped (we never wait on
    // `child` through std); `status` and `usage` are valid and writable for
    // the duration of the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if rc != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    // Linux reports ru_maxrss in KiB.
    let max_rss_kib = usage.ru_maxrss;
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let (user, sys) = (cpu(usage.ru_utime), cpu(usage.ru_stime));
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    println!(
        "{{\"wall_secs\":{wall},\"user_secs\":{user},\"sys_secs\":{sys},\"max_rss_kib\":{max_rss_kib},\"ok\":{ok}}}"
    );
    if !ok {
        bail!("{program} failed (wait status {status})");
    }
    Ok(())
}

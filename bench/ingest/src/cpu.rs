//! CPU time used, so the comparison also holds on a machine shared with other work: wall-clock rates
//! move with the neighbours, CPU time per record much less.

use std::time::Duration;

use anyhow::Context;
use nix::sys::resource::{UsageWho, getrusage};

/// User + system time of this process (the load generator) so far.
pub fn own() -> anyhow::Result<Duration> {
    usage(UsageWho::RUSAGE_SELF)
}

/// User + system time of the children waited for so far (the perf test, once it exited).
pub fn waited_children() -> anyhow::Result<Duration> {
    usage(UsageWho::RUSAGE_CHILDREN)
}

fn usage(who: UsageWho) -> anyhow::Result<Duration> {
    let u = getrusage(who).context("getrusage")?;
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(Duration::from_secs_f64(
        micros(u.user_time()) + micros(u.system_time()),
    ))
}

/// User + system time of a running process, from /proc (in USER_HZ ticks, 100 per second on Linux).
pub fn of_process(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).context("utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

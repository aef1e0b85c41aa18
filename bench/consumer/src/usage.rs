//! CPU time and peak resident set of this process, librdkafka's threads included (getrusage).

use std::time::Duration;

use anyhow::Context;
use nix::sys::resource::{UsageWho, getrusage};

#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User + system time.
    pub cpu: Duration,
    /// The kernel's maximum resident set, in KiB.
    pub max_rss_kib: i64,
}

pub fn own() -> anyhow::Result<Usage> {
    let u = getrusage(UsageWho::RUSAGE_SELF).context("getrusage")?;
    let seconds = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    Ok(Usage {
        cpu: seconds(u.user_time()) + seconds(u.system_time()),
        max_rss_kib: u.max_rss(),
    })
}

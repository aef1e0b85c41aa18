//! The glibc allocator settings the consumer runs with, applied by re-executing the process.

use std::os::unix::process::CommandExt;

use crate::run::FETCH_RESPONSE_BYTES;

/// glibc settings for a process whose records are allocated on the poll thread and freed on landing
/// threads. By default glibc spreads them over up to eight arenas per core, and after the first large free
/// it serves even multi-MiB buffers (encoded files) from the arenas, which it cannot give back: RSS crept
/// up with every record landed (253 MiB after 2M records). Two arenas and a fixed mmap threshold (big
/// buffers are mapped and unmapped) held a 1.5M-record backlog at 134 MiB, for some system time. The
/// threshold is just above librdkafka's largest buffers, for a fetch response
/// ([`crate::run::FETCH_RESPONSE_BYTES`]) and a decompressed batch
/// ([`crate::run::DECOMPRESSION_BUFFER_BYTES`]), so that those are reused; and up to 4 MiB of freed
/// memory at the top of an arena is kept: at 1 MiB and glibc's default trim, every ~1.7 MB batch of the bench was mapped,
/// faulted in page by page and unmapped again (a 1M-record backlog: 100k-300k page faults against 55k-85k,
/// ~14% more wall time for JSON lines, ~12% for Parquet). Keeping 8 MiB was no faster and peaked at 228-251
/// MiB on a topic that compresses 39x (4 MiB: 206-219, the 1 MiB threshold: 197-202).
pub fn malloc_env() -> [(&'static str, String); 3] {
    [
        ("MALLOC_ARENA_MAX", "2".to_owned()),
        ("MALLOC_MMAP_THRESHOLD_", FETCH_RESPONSE_BYTES.to_string()),
        ("MALLOC_TRIM_THRESHOLD_", (4usize << 20).to_string()),
    ]
}

/// glibc reads these only at start-up and `mallopt` would need unsafe code, so the process re-executes
/// itself (same pid, same arguments) with whichever of [`malloc_env`] the environment did not set. Call
/// it first in `main`, before any thread starts; it returns only when the settings are in place (or the
/// re-execution failed, which it reports on stderr).
pub fn with_malloc_settings() {
    let missing: Vec<_> = malloc_env()
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let error = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .envs(missing.iter().map(|(name, value)| (name, value)))
        .exec();
    eprintln!(
        "could not re-execute {} with glibc malloc settings ({error}); continuing without",
        exe.display()
    );
}

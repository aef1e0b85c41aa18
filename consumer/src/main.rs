use std::io::IsTerminal;
use std::os::unix::process::CommandExt;

use clap::Parser;
use streamlake_consumer::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    with_two_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = Config::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(streamlake_consumer::run::run(config))?;
    Ok(())
}

/// Records are allocated on the poll thread and freed on landing threads; glibc then spreads them over up
/// to eight arenas per core and RSS drifts far above what is held (mallopt would need unsafe code, and
/// mimalloc kept even more). Two arenas keep it near the budget, so the process re-executes itself (same
/// pid, same arguments) with MALLOC_ARENA_MAX=2 unless the environment already chose a value.
fn with_two_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let error = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env("MALLOC_ARENA_MAX", "2")
        .exec();
    eprintln!(
        "could not re-execute {} with MALLOC_ARENA_MAX=2 ({error}); continuing without",
        exe.display()
    );
}

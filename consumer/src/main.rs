use std::io::IsTerminal;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use streamlake_consumer::config::Config;
use streamlake_consumer::malloc::with_malloc_settings;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    with_malloc_settings();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = Config::parse();
    if let Err(contradiction) = config.check() {
        Config::command()
            .error(ErrorKind::ArgumentConflict, contradiction)
            .exit();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(streamlake_consumer::run::run(config))?;
    Ok(())
}

//! `proximity-appliance`: parse arguments, set up logging, load the config, run until stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use proximity_appliance::shutdown;
use tracing_subscriber::EnvFilter;

/// The config file when `--config` is not given: where the template puts it, so the container's
/// init (`/sbin/init`, a link to this binary, started with no arguments) finds it.
const DEFAULT_CONFIG: &str = "/etc/proximity.toml";

/// The Proximity network appliance: DHCP for the app LAN of a Proxmox host.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The TOML config file (see config/proximity.example.toml).
    #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Check the config, print every problem with its field path, and exit (1 if invalid).
    #[arg(long)]
    validate: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.config) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read config {}: {e}", args.config.display());
            return ExitCode::FAILURE;
        }
    };
    let config = match proximity_config::from_toml_str(&text) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("error: {}: {errors}", args.config.display());
            return ExitCode::FAILURE;
        }
    };
    if args.validate {
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }

    init_tracing();
    match start(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    // An unset or empty RUST_LOG means the default, so the "listening" lines are never lost.
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new("info"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn start(config: proximity_config::Config) -> anyhow::Result<()> {
    // On one core (a container with cores=1, or pinned) the current-thread runtime: the
    // multi-thread one's work-stealing machinery buys nothing there and cost the proxy about a
    // fifth of its throughput (wrk through the proxy pinned to one core: 33.9k -> 42.5k req/s).
    // DNS over UDP has threads of its own either way.
    let one_core = std::thread::available_parallelism().map_or(true, |n| n.get() == 1);
    let mut builder = if one_core {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime =
        builder.enable_all().thread_name("proximity").build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let stop = shutdown::Stop::install().context("cannot install signal handlers")?;
        proximity_appliance::run(config, stop).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_no_arguments_the_config_is_the_templates() -> Result<(), clap::Error> {
        // As the container's /sbin/init is started: no arguments at all.
        let args = Args::try_parse_from(["/sbin/init"])?;
        assert_eq!(args.config, PathBuf::from("/etc/proximity.toml"));
        assert!(!args.validate);
        let args = Args::try_parse_from(["proximity-appliance", "--config", "/srv/p.toml"])?;
        assert_eq!(args.config, PathBuf::from("/srv/p.toml"));
        Ok(())
    }
}

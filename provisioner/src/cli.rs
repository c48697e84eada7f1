//! The command line (clap derive): connection flags shared by every command, the commands, and
//! the exit codes documented in `--help`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Exit codes, documented in `--help` (see also the crate header).
pub const EXIT_CODES: &str = "Exit codes:
  0  success (also: nothing to do)
  1  failure
  2  usage error (bad flags or arguments)
  3  refused: the VMID holds a container that is not ours, or the node has pending network changes
  4  timed out waiting for Proxmox, the container or the appliance (raise --timeout)
  5  Proxmox refused the API token (401) or a privilege is missing (403)";

#[derive(Debug, Parser)]
#[command(
    name = "proximity",
    version,
    about = "Deploys the Proximity network appliance on a Proxmox VE node (container VMID 100) and manages its apps",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The node's API, e.g. https://pve.example:8006
    #[arg(long, env = "PROXMOX_URL", global = true)]
    pub url: Option<String>,
    /// API token: user@realm!tokenid=secret
    #[arg(long, env = "PROXMOX_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// The node's name (as in the GUI's tree).
    #[arg(long, env = "PROXMOX_NODE", global = true)]
    pub node: Option<String>,
    /// The appliance container's VMID.
    #[arg(long, default_value_t = 100, global = true)]
    pub vmid: u32,
    /// Storage of the container's volumes (root and state).
    #[arg(long, default_value = "local-lvm", global = true)]
    pub storage: String,
    /// Storage the template is uploaded to (content type vztmpl).
    #[arg(long, default_value = "local", global = true)]
    pub template_storage: String,
    /// The app LAN bridge (eth1). A pve-iface name (vmbrN) is made through the API; other names
    /// (the default) on the host itself, which needs root on the node.
    #[arg(long, default_value = "proximity-lan", global = true)]
    pub bridge: String,
    /// The bridge of the WAN side (eth0, DHCP).
    #[arg(long, default_value = "vmbr0", global = true)]
    pub wan_bridge: String,
    /// PEM CA file the node's certificate chains to.
    #[arg(long, env = "PROXMOX_CA_FILE", global = true, conflicts_with = "fingerprint")]
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the node's certificate (AA:BB:... as `pvenode cert info` prints it).
    #[arg(long, env = "PROXMOX_FINGERPRINT", global = true)]
    pub fingerprint: Option<String>,
    /// The appliance binary put into the template (default: proximity-appliance next to this program).
    #[arg(long, global = true)]
    pub appliance: Option<PathBuf>,
    /// Deadline of each wait (tasks, start, WAN address, health), e.g. 5m, 90s.
    #[arg(long, default_value = "5m", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
    /// No progress lines.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy or upgrade the appliance; a second run with nothing changed changes nothing.
    Up,
    /// Show the container, its template, whether it matches this build, the WAN address and health.
    Status(JsonFlag),
    /// Remove what Proximity made: container, staging containers, templates, bridge, local state.
    Down,
    /// The appliance's apps.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// The appliance's DHCP leases.
    Leases(JsonFlag),
    /// Template image commands (no Proxmox connection needed).
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// Register an app: NAME.prox.local goes to the backend.
    Add(AppAdd),
    /// List the apps.
    List(JsonFlag),
    /// Remove an app.
    Rm { name: String },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("backend").required(true).args(["ip", "hostname", "mac"])))]
pub struct AppAdd {
    pub name: String,
    /// A fixed LAN address.
    #[arg(long)]
    pub ip: Option<String>,
    /// The DHCP host name of the backend (follows its lease).
    #[arg(long)]
    pub hostname: Option<String>,
    /// The backend's MAC address (follows its lease).
    #[arg(long)]
    pub mac: Option<String>,
    /// The backend's HTTP port.
    #[arg(long, default_value_t = 80)]
    pub port: u16,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the template; prints its file name, size and sha256.
    Build {
        /// Directory the template is written to (default: the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `5m`, `90s`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 90s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?} is not a duration like 90s, 5m or 1h")),
    };
    if secs == 0 {
        return Err("the timeout must be more than zero".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_commands_and_defaults() -> Result<(), clap::Error> {
        let cli =
            Cli::try_parse_from(["proximity", "apps", "add", "web", "--ip", "10.20.0.5", "--port", "8080"])?;
        assert_eq!(cli.global.vmid, 100);
        assert_eq!(cli.global.bridge, "proximity-lan");
        assert_eq!(cli.global.timeout, Duration::from_secs(300));
        match cli.command {
            Command::Apps(AppsCommand::Add(a)) => {
                assert_eq!((a.ip.as_deref(), a.port), (Some("10.20.0.5"), 8080))
            }
            other => panic!("parsed {other:?}"),
        }
        // Exactly one backend.
        assert!(Cli::try_parse_from(["proximity", "apps", "add", "web"]).is_err());
        assert!(
            Cli::try_parse_from([
                "proximity",
                "apps",
                "add",
                "web",
                "--ip",
                "10.20.0.5",
                "--mac",
                "02:00:00:00:00:01"
            ])
            .is_err()
        );
        // Either trust, not both.
        assert!(Cli::try_parse_from(["proximity", "--ca-file", "x", "--fingerprint", "y", "up"]).is_err());
        Ok(())
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("m").is_err());
    }
}

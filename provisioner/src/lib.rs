//! The `proximity` provisioner: deploys the Proximity appliance on a Proxmox VE node as container
//! VMID 100 through the Proxmox API, idempotently, and drives the appliance's admin API.
//!
//! # Layout
//! - [`cli`]: the command line and the documented exit codes.
//! - [`pve`]: the Proxmox API client (token, errors that say what to do, tasks, upload body).
//! - [`net`]: HTTPS exchanges, TLS trust (CA file or pinned fingerprint), fingerprints.
//! - [`bridge`]: the app LAN bridge, through the API (`vmbrN`) or on the host (rtnetlink +
//!   `/etc/network/interfaces.d`).
//! - [`deploy`]: `up` (template, container reconcile and upgrade, health), `down`, `status`.
//! - [`appliance`]: the config baked into the template, the admin API client with the CA proof,
//!   the DNS probe.
//! - [`state`]: the local 0600 state file (admin token, pinned CA, WAN address).
//! - [`commands`]: `apps`, `leases`, `image build`.
//!
//! # Exit codes
//! 0 success; 1 failure; 2 usage error; 3 refused (VMID not ours, pending network changes);
//! 4 timed out; 5 Proxmox refused the token or a privilege (see [`errors`]).

pub mod appliance;
pub mod bridge;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod errors;
pub mod net;
pub mod progress;
pub mod pve;
pub mod state;

use anyhow::Result;

use cli::{AppsCommand, Cli, Command, ImageCommand};
use deploy::context::Ctx;

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let global = &cli.global;
    match &cli.command {
        Command::Up => deploy::up::up(&Ctx::from_flags(global)?).await,
        Command::Down => deploy::down::down(&Ctx::from_flags(global)?).await,
        Command::Status(flag) => deploy::status::status(&Ctx::from_flags(global)?, flag.json).await,
        Command::Apps(AppsCommand::Add(add)) => commands::apps_add(global, add).await,
        Command::Apps(AppsCommand::List(flag)) => commands::apps_list(global, flag.json).await,
        Command::Apps(AppsCommand::Rm { name }) => commands::apps_rm(global, name).await,
        Command::Leases(flag) => commands::leases(global, flag.json).await,
        Command::Image(ImageCommand::Build { out }) => commands::image_build(global, out.as_deref()).await,
    }
}

//! `pve-sim`: the Proxmox VE API **test double** of the Proximity lab. It serves the part of the
//! Proxmox VE API that the `proximity` provisioner uses, validated against the official schema,
//! and carries the work out for real on this machine (bridges with `ip`, containers with LXC).
//! It is not Proxmox VE and never pretends to be one outside tests; see
//! `proximity_tests::pve::sim`.
//!
//! When ready it prints `fingerprint AA:BB:...` (SHA-256 of its certificate) on stdout.
//! SIGTERM or SIGINT stops it, and `lxc-stop -k` stops the containers it started.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use proximity_tests::pve::schema::Schema;
use proximity_tests::pve::sim::server::{self, Certificate, RequestLog};
use proximity_tests::pve::sim::{Listener, Options, Sim, auth::Token};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// How long running tasks may take to finish after the stop.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// pve-sim: a TEST DOUBLE of the Proxmox VE API for the Proximity lab. Not Proxmox VE: use it
/// only in tests.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Address to listen on (HTTPS).
    #[arg(long, default_value = "127.0.0.1:8006")]
    listen: SocketAddr,
    /// Directory for everything the sim keeps (storages, configs, LXC's files).
    #[arg(long)]
    data: PathBuf,
    /// The node's name.
    #[arg(long, default_value = "pve")]
    node: String,
    /// The one API token accepted: user@realm!tokenid=secret.
    #[arg(long)]
    token: Token,
    /// Where to write the certificate (node certificate, then its CA) as PEM.
    #[arg(long)]
    cert_out: PathBuf,
    /// Where to append one JSON line per request ({"method","path","status"}).
    #[arg(long)]
    request_log: PathBuf,
    /// The Proxmox API schema (default: the one vendored with the tests).
    #[arg(long)]
    schema: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pve-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let schema = match &args.schema {
        Some(path) => Schema::load(path),
        None => Schema::official(),
    }
    .context("cannot load the API schema")?;
    let socket = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    std::fs::create_dir_all(&args.data).with_context(|| format!("cannot create {}", args.data.display()))?;
    let certificate = Certificate::load_or_generate(&args.data, &args.node, args.listen)?;
    std::fs::write(&args.cert_out, &certificate.pem)
        .with_context(|| format!("cannot write {}", args.cert_out.display()))?;
    let fingerprint = certificate.fingerprint();
    let log = RequestLog::open(&args.request_log)?;
    let options = Options { node: args.node, token: args.token, data: args.data };
    let sim = Sim::new(options, schema).context("cannot set up the sim's data directory")?;
    if let Some(upid) = sim.boot() {
        tracing::info!(%upid, "starting the containers marked onboot");
    }
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let stop = shutdown.clone();
    let signals = tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        stop.cancel();
    });
    tracing::info!(listen = %args.listen, "pve-sim (Proxmox API test double) listening");
    println!("fingerprint {fingerprint}");
    let served = server::serve(Listener { socket, certificate, log }, sim.clone(), shutdown.clone()).await;
    shutdown.cancel();
    signals.abort();
    sim.shutdown();
    if tokio::time::timeout(DRAIN_LIMIT, sim.tasks.wait()).await.is_err() {
        tracing::warn!("tasks still running after {DRAIN_LIMIT:?}; leaving them");
    }
    sim.shutdown();
    served.context("the server failed")
}

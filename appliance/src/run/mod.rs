//! Start-up and the life of the daemon: open the store, build the names, make the LAN interface
//! ready, start every service (each binds its sockets first, so a port in use fails the start
//! with its address) and the WAN task, serve until stopped, then close the store.
//!
//! - `services`: starting DNS, DHCP, the proxy, the admin API and NAT from the config.
//! - `network`: the LAN interface at start and when it is replaced, the WAN task, and what
//!   follows the WAN address (NAT takes its receiver from `Shared::wan`).
//! - `bind`: binding listeners, errors naming the address.

mod bind;
mod network;
mod services;

use std::sync::Arc;

use anyhow::Context;
use proximity_config::Config;
use tokio::task::JoinSet;
use tracing::{error, info};

use crate::api::ServiceStates;
use crate::apps;
use crate::dhcp;
use crate::names::{Directory, NameTable, Names};
use crate::nat::Forwards;
use crate::net::WanWatch;
use crate::proxy;
use crate::shutdown::Stop;
use crate::state::Store;
use crate::tls;

/// What the services share.
pub(crate) struct Shared {
    pub config: Config,
    pub store: Store,
    pub names: Arc<Names>,
    pub directory: Arc<Directory>,
    pub routes: Arc<proxy::Routes>,
    /// The port forwards (config and admin API) NAT puts in force.
    pub forwards: Arc<Forwards>,
    pub ca: Option<Arc<tls::Ca>>,
    pub states: Arc<ServiceStates>,
    /// The WAN state, published by the WAN task. NAT takes `wan.address()`: the WAN address
    /// alone, which changes only when the address does.
    pub wan: WanWatch,
    pub stop: Stop,
}

/// The running services, each task returning its name and how it ended.
pub(crate) type Services = JoinSet<(&'static str, std::io::Result<()>)>;

/// Runs the appliance until `stop` fires or a service fails for good.
pub async fn run(config: Config, stop: Stop) -> anyhow::Result<()> {
    let dir = config.state.dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .context("store opening task failed")?
        .with_context(|| format!("cannot open the state store in {}", config.state.dir.display()))?;
    let leases = store.leases().context("cannot read leases from the store")?;
    let stored_apps = store.apps().context("cannot read apps from the store")?;
    let stored_reservations = store.reservations().context("cannot read reservations from the store")?;
    let stored_forwards = store.forwards().context("cannot read port forwards from the store")?;
    info!(version = env!("CARGO_PKG_VERSION"), leases = leases.len(), apps = stored_apps.len(), forwards = stored_forwards.len(), state = %config.state.dir.display(), "starting");
    let forwards = Arc::new(Forwards::new(config.nat.forwards.clone(), stored_forwards));

    // Names start from what the store holds, so DNS answers for known clients and apps at once.
    // The SOA serial starts at the start time, so it keeps growing across restarts.
    let now = dhcp::server::unix_now();
    let names = Arc::new(Names::new(NameTable::empty(u32::try_from(now).unwrap_or(u32::MAX))));
    let mut directory = Directory::new(
        names.clone(),
        config.dhcp.reservations.clone(),
        &leases,
        stored_apps,
        stored_reservations,
    );
    // The proxy's routes follow the names, published just before them.
    let routes = Arc::new(proxy::Routes::new(proxy::RouteTable::default()));
    directory.subscribe(apps::publish_routes(routes.clone(), config.dns.domain.clone()));
    directory.refresh(now);

    // The local CA signs the proxy's and the admin API's certificates; created at first start.
    let ca = if config.proxy.enabled || (config.admin.enabled && config.admin.tls) {
        let (dir, domain) = (config.state.dir.clone(), config.dns.domain.clone());
        let ca = tokio::task::spawn_blocking(move || tls::Ca::load_or_create(&dir, &domain))
            .await
            .context("ca loading task failed")?
            .context("cannot set up the local certificate authority")?;
        Some(Arc::new(ca))
    } else {
        None
    };

    let shared = Shared {
        config,
        store: store.clone(),
        names,
        directory: Arc::new(directory),
        routes,
        forwards,
        ca,
        states: Arc::new(ServiceStates::default()),
        wan: WanWatch::new(),
        stop: stop.clone(),
    };
    let lan = network::prepare_lan(&shared.config).await?;
    network::prime_wan(&shared).await;
    let mut services = Services::new();
    let rebinds = services::start(&shared, leases, &mut services).await?;
    network::follow_lan(&shared, lan.index, rebinds, &mut services);
    network::start_wan(&shared, &mut services);

    let mut failed = None;
    while let Some(done) = services.join_next().await {
        match done {
            Ok((name, Ok(()))) => shared.states.set(name, "stopped"),
            Ok((name, Err(e))) => {
                shared.states.set(name, "failed");
                error!(service = name, error = %e, "service failed; stopping");
                failed.get_or_insert(anyhow::Error::new(e).context(format!("{name} service failed")));
                stop.request(false);
            }
            Err(e) => {
                error!(error = %e, "service task panicked; stopping");
                failed.get_or_insert(anyhow::anyhow!("a service task panicked"));
                stop.request(false);
            }
        }
    }
    store.close();
    info!("stopped");
    failed.map_or(Ok(()), Err)
}

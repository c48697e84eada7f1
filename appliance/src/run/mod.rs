//! Start-up and the life of the daemon: open the store, bind every socket, serve until stopped.

use std::sync::Arc;

use anyhow::Context;
use proximity_config::Config;
use tokio::task::JoinSet;
use tracing::{error, info};

use crate::apps;
use crate::dhcp;
use crate::dns;
use crate::names::{Directory, NameTable, Names};
use crate::proxy;
use crate::shutdown::Stop;
use crate::state::Store;
use crate::tls;

/// Runs the appliance until `stop` fires or a service fails for good.
pub async fn run(config: Config, stop: Stop) -> anyhow::Result<()> {
    let dir = config.state.dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .context("store opening task failed")?
        .with_context(|| format!("cannot open the state store in {}", config.state.dir.display()))?;
    let leases = store.leases().context("cannot read leases from the store")?;
    let apps = store.apps().context("cannot read apps from the store")?;
    info!(version = env!("CARGO_PKG_VERSION"), leases = leases.len(), apps = apps.len(), state = %config.state.dir.display(), "starting");

    // Names start from what the store holds, so DNS answers for known clients and apps at once.
    // The SOA serial starts at the start time, so it keeps growing across restarts.
    let now = dhcp::server::unix_now();
    let names = Arc::new(Names::new(NameTable::empty(u32::try_from(now).unwrap_or(u32::MAX))));
    let mut directory = Directory::new(names.clone(), config.dhcp.reservations.clone(), &leases, apps);
    // The proxy's routes follow the names, published just before them.
    let routes = Arc::new(proxy::Routes::new(proxy::RouteTable::default()));
    directory.subscribe(apps::publish_routes(routes.clone(), config.dns.domain.clone()));
    directory.refresh(now);
    let directory = Arc::new(directory);

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

    let mut services: JoinSet<(&'static str, std::io::Result<()>)> = JoinSet::new();
    if config.dns.enabled {
        let (udp, tcp) = bind_dns(&config.dns.listen)?;
        let handler = dns::Handler::new(&config, names.clone(), Arc::new(dns::Metrics::default()))
            .context("cannot set up the dns server")?;
        let stop = stop.clone();
        services.spawn(async move { ("dns", dns::serve(udp, tcp, Arc::new(handler), stop).await) });
    }
    if config.dhcp.enabled {
        let socket = dhcp::socket::bind(&config.lan.interface, dhcp::SERVER_PORT)
            .context("cannot open the dhcp socket")?;
        info!(addr = %socket.local_addr()?, interface = %config.lan.interface, range = %config.dhcp.range, "listening for dhcp");
        let feed = dhcp::NameFeed::new(directory.clone());
        let server =
            dhcp::server(&config, leases, store.clone(), Arc::new(dhcp::Metrics::default()), feed, &stop);
        let stop = stop.clone();
        services.spawn(async move { ("dhcp", server.serve(socket, stop).await) });
    }

    if config.proxy.enabled {
        let proxy_config = &config.proxy;
        let http = bind_tcp("proxy/http", &proxy_config.http_listen)?;
        let https = bind_tcp("proxy/https", &proxy_config.https_listen)?;
        let tls = match &ca {
            Some(ca) if !https.is_empty() => {
                let policy = Arc::new(apps::RoutedNames(routes.clone()));
                let certs = Arc::new(tls::Certificates::new(ca.clone(), policy));
                Some(tls::proxy_server_config(certs).context("cannot set up tls for the proxy")?)
            }
            _ => None,
        };
        let limits = proxy::Limits {
            max_connections: usize::try_from(proxy_config.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: proxy_config.header_read_timeout,
            idle_timeout: proxy_config.idle_timeout,
            connect_timeout: proxy_config.connect_timeout,
            response_timeout: proxy_config.response_timeout,
            max_header_bytes: usize::try_from(proxy_config.max_header_bytes).unwrap_or(usize::MAX),
            ..proxy::Limits::default()
        };
        let (routes, metrics, stop) = (routes.clone(), Arc::new(proxy::Metrics::default()), stop.clone());
        services.spawn(async move {
            ("proxy", proxy::serve(http, https, tls, routes, metrics, limits, stop).await)
        });
    }

    let mut failed = None;
    while let Some(done) = services.join_next().await {
        match done {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => {
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

/// Binds a TCP listener on every address of `what`; a failure names the address.
fn bind_tcp(what: &str, listen: &[std::net::SocketAddr]) -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    listen
        .iter()
        .map(|&addr| {
            let listener =
                dns::socket::bind_tcp(addr).with_context(|| format!("cannot bind {what} on {addr}"))?;
            info!(addr = %listener.local_addr()?, "listening for {what}");
            Ok(listener)
        })
        .collect()
}

/// Binds UDP and TCP on every DNS listen address; a failure names the address.
fn bind_dns(
    listen: &[std::net::SocketAddr],
) -> anyhow::Result<(Vec<tokio::net::UdpSocket>, Vec<tokio::net::TcpListener>)> {
    let (mut udp, mut tcp) = (Vec::new(), Vec::new());
    for &addr in listen {
        let socket = dns::socket::bind_udp(addr).with_context(|| format!("cannot bind dns/udp on {addr}"))?;
        info!(addr = %socket.local_addr()?, "listening for dns/udp");
        udp.push(socket);
        let listener =
            dns::socket::bind_tcp(addr).with_context(|| format!("cannot bind dns/tcp on {addr}"))?;
        info!(addr = %listener.local_addr()?, "listening for dns/tcp");
        tcp.push(listener);
    }
    Ok((udp, tcp))
}

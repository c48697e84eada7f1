//! Starting each service the config enables: DNS, DHCP, the proxy, the admin API and NAT. Each
//! one's sockets are bound before anything is spawned, the metrics are shared with the admin
//! API's `/metrics`, and each service's state is kept for `/v1/health`. DNS's upstreams, the
//! admin certificate and NAT follow the WAN (see `network`).

use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tracing::info;

use super::{Services, Shared, bind, network};
use crate::api::{self, LeaseAdmin};
use crate::apps;
use crate::dhcp;
use crate::dns;
use crate::nat;
use crate::proxy;
use crate::state::{Lease, StoreError};
use crate::tls;

/// How often the names are rebuilt for leases that ended, when no DHCP server does it.
const LEASE_END_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// Sockets for replaced LAN interfaces not yet taken by the DHCP server; replacements come
/// one per user edit, so a few is plenty.
const REBINDS_QUEUED: usize = 4;

/// Starts every enabled service into `services`; with DHCP, returns where a socket for a
/// replaced LAN interface goes.
pub(super) async fn start(
    shared: &Shared,
    leases: Vec<Lease>,
    services: &mut Services,
) -> anyhow::Result<Option<mpsc::Sender<dhcp::socket::Rebind>>> {
    let config = &shared.config;
    for (name, enabled) in [
        ("dns", config.dns.enabled),
        ("dhcp", config.dhcp.enabled),
        ("proxy", config.proxy.enabled),
        ("admin", config.admin.enabled),
        (nat::service::SERVICE, config.nat.enabled),
    ] {
        if !enabled {
            shared.states.set(name, "disabled");
        }
    }
    let dns_metrics = Arc::new(dns::Metrics::default());
    let dhcp_metrics = Arc::new(dhcp::Metrics::default());
    let proxy_metrics = Arc::new(proxy::Metrics::default());

    if config.dns.enabled {
        let (udp, tcp) = bind::dns(&config.dns.listen)?;
        let handler = dns::Handler::new(config, shared.names.clone(), dns_metrics.clone())
            .context("cannot set up the dns server")?;
        if config.dns.upstreams.is_empty() {
            network::follow_wan_dns(handler.forwarder().clone(), shared, services);
        }
        let stop = shared.stop.clone();
        spawn(shared, services, "dns", dns::serve(udp, tcp, Arc::new(handler), stop));
    }

    let mut lease_admin: Option<Arc<dyn LeaseAdmin>> = None;
    let mut rebinds = None;
    if config.dhcp.enabled {
        let socket = dhcp::socket::bind(&config.lan.interface, dhcp::SERVER_PORT)
            .context("cannot open the dhcp socket")?;
        info!(addr = %socket.local_addr()?, interface = %config.lan.interface, range = %config.dhcp.range, "listening for dhcp");
        let feed = dhcp::NameFeed::new(shared.directory.clone());
        let server =
            dhcp::server(config, leases, shared.store.clone(), dhcp_metrics.clone(), feed, &shared.stop);
        // The config's reservations and those made through the admin API.
        server.set_reservations(&shared.directory.reservations());
        shared.directory.set_lease_source(server.lease_source());
        lease_admin = Some(Arc::new(server.clone()));
        let (rebind, rebound) = mpsc::channel(REBINDS_QUEUED);
        rebinds = Some(rebind);
        spawn(shared, services, "dhcp", server.serve_rebinding(socket, rebound, shared.stop.clone()));
    }

    if !config.dhcp.enabled {
        // Without the DHCP server's sweep, leases loaded from the store still end on time.
        // A task of the service set, so the stop waits for it like for the others.
        let (directory, stop) = (shared.directory.clone(), shared.stop.clone());
        services.spawn(async move {
            let mut tick = tokio::time::interval(LEASE_END_CHECK);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => directory.refresh(dhcp::server::unix_now()),
                }
            }
            ("names", Ok(()))
        });
    }

    if config.proxy.enabled {
        let proxy_config = &config.proxy;
        let http = bind::tcp("proxy/http", &proxy_config.http_listen)?;
        let https = bind::tcp("proxy/https", &proxy_config.https_listen)?;
        let tls = match &shared.ca {
            Some(ca) if !https.is_empty() => {
                let policy = Arc::new(apps::RoutedNames(shared.routes.clone()));
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
        let serving = proxy::serve(
            http,
            https,
            tls,
            shared.routes.clone(),
            proxy_metrics.clone(),
            limits,
            shared.stop.clone(),
        );
        spawn(shared, services, "proxy", serving);
    }

    if config.admin.enabled {
        let listeners = bind::tcp("admin", &config.admin.listen)?;
        let admin = config.admin.clone();
        let token = tokio::task::spawn_blocking(move || api::Token::for_admin(&admin))
            .await
            .context("token task failed")?
            .context("cannot set up the admin api token")?;
        let tls = match (&shared.ca, config.admin.tls) {
            (Some(ca), true) => {
                let (tls, certificate) =
                    admin_tls(ca, shared).context("cannot set up tls for the admin api")?;
                network::follow_wan_in_admin_certificate(certificate, shared, services);
                Some(tls)
            }
            _ => None,
        };
        let mut state = api::ApiState::new(
            config,
            shared.store.clone(),
            shared.directory.clone(),
            token,
            shared.states.clone(),
        );
        state.leases = lease_admin;
        state.forwards = shared.forwards.clone();
        state.ca_pem = shared.ca.as_ref().map(|ca| ca.certificate_pem().to_owned());
        state.dns_metrics = Some(dns_metrics);
        state.dhcp_metrics = Some(dhcp_metrics);
        state.proxy_metrics = Some(proxy_metrics);
        let serving = api::serve(listeners, tls, Arc::new(state), shared.stop.clone());
        spawn(shared, services, "admin", serving);
    }

    if config.nat.enabled {
        // Its state is its own to set: `running` once the ruleset is in force, `failed` (and
        // retrying) while it cannot be; a failure never stops the services above.
        shared.states.set(nat::service::SERVICE, "starting");
        let nat = nat::Nat {
            config: config.clone(),
            forwards: shared.forwards.clone(),
            wan_address: shared.wan.address(),
            states: shared.states.clone(),
        };
        let serving = nat::serve(nat, shared.stop.clone());
        services.spawn(async move { (nat::service::SERVICE, serving.await) });
    } else {
        nat::service::remove_table().await;
    }
    Ok(rebinds)
}

pub(super) fn spawn(
    shared: &Shared,
    services: &mut Services,
    name: &'static str,
    serving: impl Future<Output = std::io::Result<()>> + Send + 'static,
) {
    shared.states.set(name, "running");
    services.spawn(async move { (name, serving.await) });
}

/// The admin API's certificate: `ns.<domain>` (the appliance's name in its zone) and every
/// address the appliance has now, the gateway and loopback included, since clients reach the
/// API by address (`https://10.20.0.1:9090`, the WAN address from the user's workstation). It is
/// issued again when the WAN address changes.
fn admin_tls(
    ca: &Arc<tls::Ca>,
    shared: &Shared,
) -> Result<(Arc<rustls::ServerConfig>, Arc<tls::AdminCertificate>), tls::TlsError> {
    let config = &shared.config;
    let names = vec![format!("{}.{}", proximity_config::types::NS_LABEL, config.dns.domain)];
    let ips = network::admin_addresses(config, shared.wan.current().ip());
    info!(names = ?names, addresses = ?ips, "admin api certificate");
    let certificate = Arc::new(tls::AdminCertificate::new(ca.clone(), names, &ips)?);
    Ok((tls::admin_server_config_following(certificate.clone())?, certificate))
}

/// The admin API's view of the DHCP server: its lease records, and revoking one.
impl LeaseAdmin for dhcp::server::Server {
    fn leases(&self) -> Vec<Lease> {
        dhcp::server::Server::leases(self)
    }

    fn release(&self, ip: Ipv4Addr) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + '_>> {
        Box::pin(self.revoke(ip))
    }

    fn set_reservations(&self, reservations: &[proximity_config::Reservation]) {
        dhcp::server::Server::set_reservations(self, reservations);
    }
}

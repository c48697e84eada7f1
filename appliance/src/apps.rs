//! Apps at run time: how a published name table becomes the proxy's route table (every app whose
//! backend has an address, at `<name>.<domain>`), and which names get a TLS certificate (those
//! with a route: the proxy's [`NamePolicy`]).
//!
//! The route table is derived in the same step that publishes the names (a [`Directory`]
//! subscriber, called before the names go live), so by the time DNS answers an app's name the
//! proxy already routes it.
//!
//! [`Directory`]: crate::names::Directory

use std::net::SocketAddr;
use std::sync::Arc;

use proximity_config::api::App;

use crate::names::{NameTable, Subscriber};
use crate::proxy::{HealthCheck, Route, RouteTable, Routes};
use crate::tls::NamePolicy;

/// The route of `app` whose backend is at `backend` now (`None`: no lease yet, no backend).
pub fn route(app: &App, backend: Option<std::net::Ipv4Addr>) -> Route {
    Route {
        app: app.name.clone(),
        backends: backend.map(|ip| SocketAddr::from((ip, app.port))).into_iter().collect(),
        health_check: app.health_check.as_ref().map(|check| HealthCheck {
            path: check.path.clone(),
            interval: check.interval,
            ..HealthCheck::new(check.path.clone())
        }),
    }
}

/// The route table of `table`'s apps under `domain`. An app waiting for its backend's lease is
/// routed with no backend: the proxy answers 503 (the app is known but not up) until the lease
/// comes, rather than the 404 of an unknown name.
pub fn route_table(table: &NameTable, domain: &str) -> RouteTable {
    RouteTable::new(table.apps().map(|entry| (entry.app.host(domain), route(&entry.app, entry.backend))))
}

/// The directory subscriber that keeps `routes` in step with the names.
pub fn publish_routes(routes: Arc<Routes>, domain: String) -> Subscriber {
    Box::new(move |table: &NameTable| routes.publish(route_table(table, &domain)))
}

/// Certificates only for names the proxy routes: a name that stops being an app stops getting
/// one at the next handshake.
#[derive(Debug)]
pub struct RoutedNames(pub Arc<Routes>);

impl NamePolicy for RoutedNames {
    fn allows(&self, name: &str) -> bool {
        self.0.load().route(name).is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use proximity_config::MacAddr;
    use proximity_config::api::{Backend, HealthCheck as AppCheck};

    use super::*;

    fn app(name: &str, backend: Backend) -> App {
        App { name: name.into(), backend, port: 8080, health_check: None }
    }

    #[test]
    fn apps_with_a_backend_address_are_routed_by_their_full_name() {
        let mut web = app("web", Backend::Ip(Ipv4Addr::new(10, 20, 0, 5)));
        web.health_check = Some(AppCheck { path: "/healthz".into(), interval: Duration::from_secs(3) });
        let waiting = app("db", Backend::Mac(MacAddr([2, 0, 0, 0, 0, 9])));
        let table = NameTable::empty(1).build(&[], &[], &[web, waiting], 0);
        let routes = route_table(&table, "prox.local");
        assert_eq!(routes.len(), 2);
        let route = routes.route("WEB.prox.local:443").unwrap();
        assert_eq!(route.backends, [SocketAddr::from(([10, 20, 0, 5], 8080))]);
        let check = route.health_check.as_ref().unwrap();
        assert_eq!((check.path.as_str(), check.interval), ("/healthz", Duration::from_secs(3)));
        assert!(
            routes.route("db.prox.local").unwrap().backends.is_empty(),
            "routed to nothing until its lease"
        );
    }

    #[test]
    fn only_routed_names_get_certificates() {
        let routes = Arc::new(Routes::new(RouteTable::default()));
        let policy = RoutedNames(routes.clone());
        assert!(!policy.allows("web.prox.local"));
        let table =
            NameTable::empty(1).build(&[], &[], &[app("web", Backend::Ip(Ipv4Addr::new(10, 20, 0, 5)))], 0);
        publish_routes(routes, "prox.local".into())(&table);
        assert!(policy.allows("web.prox.local"));
        assert!(!policy.allows("other.prox.local"));
    }
}

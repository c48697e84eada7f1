//! The load test: 100 apps registered and removed through the API while load generators
//! (curl, keep-alive HTTP/1.1 and HTTP/2 over TLS) request an app that stays registered: not one
//! request may fail. Also prints each new app's registration-to-first-success latency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use proximity_tests::http::Backend;
use proximity_tests::{GATEWAY, Host, Lab};

use crate::web::{
    BACKEND_PORT, LAB_BACKEND, LIVE_DEADLINE, admin, app_by_ip, await_status, fqdn, get, start,
};

const APPS: usize = 100;
/// Requests per curl run: one connection (kept alive, or one HTTP/2 connection) for all of them.
const REQUESTS_PER_RUN: usize = 25;

/// What one load generator saw.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    failed: Vec<String>,
}

/// Requests `scheme://stay.prox.local/echo` in batches until `stop`, counting every answer.
fn generate(host: &Host, scheme: &str, cacert: &std::path::Path, stop: &AtomicBool) -> Result<Tally> {
    let name = fqdn("stay");
    let (port, url) = (if scheme == "https" { 443 } else { 80 }, format!("{scheme}://{name}/echo"));
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let mut cmd = host.command("curl");
        cmd.args(["-q", "-sS", "--noproxy", "*", "--max-time", "30", "-w", "%{http_code}\\n"])
            .arg("--resolve")
            .arg(format!("{name}:{port}:{GATEWAY}"))
            .arg("--cacert")
            .arg(cacert);
        if scheme == "https" {
            cmd.arg("--http2");
        }
        for _ in 0..REQUESTS_PER_RUN {
            cmd.args(["-o", "/dev/null", &url]);
        }
        let out = cmd.output().context("cannot run curl")?;
        let codes: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        for code in &codes {
            if code == "200" {
                tally.ok += 1;
            } else {
                tally.failed.push(format!("{scheme}: status {code}"));
            }
        }
        if !out.status.success() || codes.len() != REQUESTS_PER_RUN {
            tally.failed.push(format!(
                "{scheme}: curl {} after {} answers: {}",
                out.status,
                codes.len(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(tally)
}

#[test]
fn registering_and_removing_100_apps_under_load_fails_no_request() -> Result<()> {
    let lab = Lab::builder().clients(3).build()?;
    let config = start(&lab, |_| {})?;
    let api = admin(&lab, &config)?;
    let (user, loader, server) = (lab.client(0), lab.client(1), lab.client(2));
    loader.dhclient().obtain()?;
    let backend_ip = server.dhclient().obtain()?.ip;
    let _backend = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    api.create_app(&app_by_ip("stay", backend_ip))?;
    await_status(&get(loader, GATEWAY, "http", "stay", "/echo", api.cacert())?, 200, LIVE_DEADLINE)?;

    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (tallies, latencies) = std::thread::scope(|s| -> Result<_> {
        let generators: Vec<_> = ["http", "https"]
            .into_iter()
            .map(|scheme| {
                let stop = &stop;
                let cacert = api.cacert();
                s.spawn(move || generate(loader, scheme, cacert, stop))
            })
            .collect();
        let churn = || -> Result<Vec<(Duration, Duration)>> {
            let mut latencies = Vec::with_capacity(APPS);
            for i in 0..APPS {
                let label = format!("app-{i:03}");
                let posted = Instant::now();
                api.create_app(&app_by_ip(&label, backend_ip))?;
                let answered = posted.elapsed();
                let request = get(user, GATEWAY, "http", &label, "/echo", api.cacert())?;
                await_status(&request, 200, LIVE_DEADLINE)?;
                latencies.push((answered, posted.elapsed()));
            }
            for i in 0..APPS {
                api.delete_app(&format!("app-{i:03}"))?;
            }
            Ok(latencies)
        };
        let latencies = churn();
        stop.store(true, Ordering::Relaxed);
        let tallies: Vec<Result<Tally>> = generators
            .into_iter()
            .map(|g| g.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a load generator panicked"))))
            .collect();
        Ok((tallies, latencies?))
    })?;
    let elapsed = started.elapsed();

    let mut answers = 0;
    let mut failed = Vec::new();
    for tally in tallies {
        let tally = tally?;
        answers += tally.ok;
        failed.extend(tally.failed);
    }
    let mut to_first: Vec<Duration> = latencies.iter().map(|(_, first)| *first).collect();
    to_first.sort();
    let mut posts: Vec<Duration> = latencies.iter().map(|(post, _)| *post).collect();
    posts.sort();
    let mut after_post: Vec<Duration> = latencies.iter().map(|(post, first)| *first - *post).collect();
    after_post.sort();
    println!(
        "{APPS} apps registered and removed in {elapsed:.2?} under load: {answers} requests answered 200, \
         {} failed ({:.0} req/s)",
        failed.len(),
        answers as f64 / elapsed.as_secs_f64()
    );
    println!(
        "POST /v1/apps (curl, TLS handshake included): median {:?}, max {:?}; registration to first 200 \
         (POST + curl by name): min {:?}, median {:?}, max {:?}",
        posts[posts.len() / 2],
        posts[posts.len() - 1],
        to_first[0],
        to_first[to_first.len() / 2],
        to_first[to_first.len() - 1]
    );
    println!(
        "from the POST's answer to the first 200 (dig + curl from another client): min {:?}, median {:?}, max {:?}",
        after_post[0],
        after_post[after_post.len() / 2],
        after_post[after_post.len() - 1]
    );
    assert!(
        failed.is_empty(),
        "{} requests failed while apps came and went:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(answers >= 2 * REQUESTS_PER_RUN, "the load generators barely ran: {answers} answers");
    let names = api.call("GET", "/v1/apps", None)?.json()?;
    assert_eq!(names.as_array().map(Vec::len), Some(1), "only `stay` remains: {names}");
    Ok(())
}

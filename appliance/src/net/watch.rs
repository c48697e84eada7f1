//! Following an interface over netlink, for the LAN and WAN followers: a monitor connection,
//! opened again when it fails or its notifications end, and a look at the interface at once,
//! on every notification and every `resync` period (the kernel drops notifications when our
//! socket's buffer is full, so a missed one stays unnoticed at most that long). Each follower
//! says what a look does: `while let Some(netlink) = watch.next(&stop).await { ... }`.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::netlink::{Events, Netlink};

/// How a follower paces itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Wait before opening netlink again after it failed or its notifications ended.
    pub reopen: Duration,
    /// Look again after this long without a notification.
    pub resync: Duration,
}

/// When to look at an interface next; see the module header.
#[derive(Debug)]
pub(crate) struct Watch<'a> {
    /// `lan` or `wan`, and the interface: they only name what is followed in the logs.
    role: &'static str,
    interface: &'a str,
    pace: Pace,
    open: Option<Open>,
}

#[derive(Debug)]
struct Open {
    netlink: Netlink,
    events: Events,
    resync: Interval,
}

impl<'a> Watch<'a> {
    pub(crate) fn new(role: &'static str, interface: &'a str, pace: Pace) -> Self {
        Watch { role, interface, pace, open: None }
    }

    /// Waits until it is time to look (at once after netlink was opened, then on a change or
    /// the resync period) and gives the connection to look with; `None` once `stop` fires.
    pub(crate) async fn next(&mut self, stop: &CancellationToken) -> Option<&Netlink> {
        let (role, interface) = (self.role, self.interface);
        loop {
            let Some(open) = &mut self.open else {
                match Netlink::monitor() {
                    Ok((netlink, events)) => {
                        let mut resync =
                            tokio::time::interval_at(Instant::now() + self.pace.resync, self.pace.resync);
                        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
                        self.open = Some(Open { netlink, events, resync });
                        break;
                    }
                    Err(e) => {
                        warn!(role, interface, error = %e, "cannot follow the interface; trying again");
                        if sleep_or_stop(self.pace.reopen, stop).await {
                            return None;
                        }
                        continue;
                    }
                }
            };
            let ended = tokio::select! {
                () = stop.cancelled() => return None,
                more = open.events.changed() => !more,
                _ = open.resync.tick() => false,
            };
            if !ended {
                open.events.drain();
                break;
            }
            warn!(role, interface, "netlink notifications ended; opening netlink again");
            self.open = None;
            if sleep_or_stop(self.pace.reopen, stop).await {
                return None;
            }
        }
        self.open.as_ref().map(|open| &open.netlink)
    }
}

/// Sleeps `delay` unless `stop` comes first; `true` when stopped.
pub(crate) async fn sleep_or_stop(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

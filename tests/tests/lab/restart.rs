//! Leases are durable: after the appliance is stopped (SIGTERM) or killed (SIGKILL) and started
//! again on the same state, new clients get addresses no one holds, and every old client keeps
//! its address (udhcpc renew, dhclient INIT-REBOOT).

use std::net::Ipv4Addr;

use anyhow::Result;
use proximity_tests::Lab;

use crate::support::assert_distinct;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Sigterm,
    Sigkill,
}

fn leases_survive(ending: Ending) -> Result<()> {
    let lab = Lab::builder().clients(5).build()?;
    let config = lab.config();
    let appliance = lab.start_appliance(&config)?;

    let first = lab.client(0).udhcpc().spawn()?;
    let second = lab.client(1).udhcpc().hostname("keeper").spawn()?;
    let third = lab.client(2).dhclient();
    // The dhclient lease is acknowledged last, right before the stop: the hardest one to keep.
    let before = [first.lease()?.ip, second.lease()?.ip, third.obtain()?.ip];
    assert_distinct(&before);

    match ending {
        Ending::Sigterm => {
            let status = lab.appliance().stop()?;
            assert!(status.success(), "SIGTERM should stop the appliance cleanly, got {status}");
        }
        Ending::Sigkill => lab.appliance().kill9()?,
    }
    appliance.start_again()?;

    // Newcomers first: had the appliance forgotten a lease, it would hand that address out again
    // now, before the old clients' renewals could teach it back.
    let newcomers = [lab.client(3).udhcpc().obtain()?.ip, lab.client(4).dhclient().obtain()?.ip];
    let all: Vec<Ipv4Addr> = before.iter().chain(&newcomers).copied().collect();
    assert_distinct(&all);

    let renewed = first.renew()?;
    assert_eq!((renewed.event.as_str(), renewed.ip), ("renew", before[0]), "udhcpc renew after restart");
    let renewed = second.renew()?;
    assert_eq!((renewed.event.as_str(), renewed.ip), ("renew", before[1]), "udhcpc renew after restart");
    third.stop()?;
    let rebooted = third.obtain()?;
    assert_eq!(
        (rebooted.event.as_str(), rebooted.ip),
        ("REBOOT", before[2]),
        "dhclient INIT-REBOOT after restart"
    );
    Ok(())
}

#[test]
fn leases_survive_a_graceful_restart() -> Result<()> {
    leases_survive(Ending::Sigterm)
}

#[test]
fn leases_survive_kill_9() -> Result<()> {
    leases_survive(Ending::Sigkill)
}

//! Starting the appliance: a config it cannot run with (its LAN interface does not exist) is a
//! fatal start error that exits non-zero and says why on stderr.

use anyhow::Result;
use proximity_tests::Lab;

#[test]
fn a_missing_lan_interface_is_a_fatal_start_error() -> Result<()> {
    let lab = Lab::builder().clients(0).build()?;
    let mut config = lab.config();
    config.lan.interface = format!("nx{}", lab.tag());
    let started = lab.start_appliance(&config);
    assert!(started.is_err(), "the appliance started on an interface that does not exist");
    let status = lab.appliance().exit_status();
    assert!(status.is_some_and(|s| !s.success()), "it should have exited non-zero, status {status:?}");
    let log = lab.appliance().log();
    assert!(log.contains(&config.lan.interface), "stderr should name the interface:\n{log}");
    Ok(())
}

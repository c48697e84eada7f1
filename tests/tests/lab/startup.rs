//! Starting the appliance: what it cannot run with (a LAN interface that does not exist, a
//! corrupt store) is a fatal start error that exits non-zero and says why on stderr.

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

#[test]
fn a_corrupt_store_is_a_clear_start_error_and_is_left_untouched() -> Result<()> {
    let lab = Lab::builder().clients(0).build()?;
    let config = lab.config();
    std::fs::create_dir_all(&config.state.dir)?;
    let store = std::path::Path::new(&config.state.dir).join("proximity.redb");
    let garbage: Vec<u8> = (0..64 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&store, &garbage)?;
    assert!(lab.start_appliance(&config).is_err(), "the appliance started on a corrupt store");
    let status = lab.appliance().exit_status();
    assert!(status.is_some_and(|s| !s.success()), "it should have exited non-zero, status {status:?}");
    let log = lab.appliance().log();
    assert!(log.contains(&store.display().to_string()), "stderr should name the store file:\n{log}");
    assert_eq!(std::fs::read(&store)?, garbage, "the corrupt store was modified");
    Ok(())
}

//! `proximity-appliance --validate`: a bad config is refused with every problem listed by field
//! path and exit code 1; the shipped example passes with 0. No lab needed.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use proximity_config::raw::{RawConfig, RawReservation};
use proximity_tests::appliance;

fn validate(config: &Path) -> Result<Output> {
    let bin = appliance::binary()?;
    Command::new(&bin)
        .arg("--config")
        .arg(config)
        .arg("--validate")
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn a_bad_config_lists_every_problem_and_exits_1() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = RawConfig::default();
    config.dhcp.range = "10.20.1.5-10.20.1.9".into();
    config.dhcp.lease_time = "5s".into();
    config.dhcp.reservations = vec![
        RawReservation { mac: "nope".into(), ip: "10.20.0.10".into(), name: None },
        RawReservation { mac: "52:54:00:00:00:02".into(), ip: "10.20.0.150".into(), name: None },
    ];
    config.dns.domain = "bad..domain".into();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config.to_toml()?)?;

    let out = validate(&path)?;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "exit code for an invalid config; output:\n{said}");
    for field in
        ["dhcp.range", "dhcp.lease_time", "dhcp.reservations[0].mac", "dhcp.reservations[1].ip", "dns.domain"]
    {
        assert!(said.contains(&format!("{field}: ")), "{field} not reported; output:\n{said}");
    }
    Ok(())
}

#[test]
fn an_unknown_key_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "[dhcp]\nrange_typo = \"10.20.0.100-10.20.0.200\"\n")?;
    let out = validate(&path)?;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "exit code for an unknown key; output:\n{said}");
    assert!(said.contains("range_typo"), "the unknown key is not named; output:\n{said}");
    Ok(())
}

#[test]
fn the_example_config_is_valid() -> Result<()> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/proximity.example.toml");
    let out = validate(&example)?;
    assert!(out.status.success(), "the example config is refused:\n{}", text(&out));
    Ok(())
}

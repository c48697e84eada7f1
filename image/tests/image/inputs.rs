//! Bad inputs are refused with an error that says what is wrong, before anything is written.

use std::path::PathBuf;

use proximity_image::ImageError;

use crate::{TestResult, inputs};

/// Builds `inputs` into a fresh directory and returns the error; the directory stays empty.
fn refused(inputs: &proximity_image::Inputs) -> Result<ImageError, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let err = proximity_image::build(inputs, dir.path()).err().ok_or("the build succeeded")?;
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0, "something was written");
    Ok(err)
}

#[test]
fn a_missing_appliance_is_refused() -> TestResult {
    let mut bad = inputs();
    bad.appliance = PathBuf::from("/nonexistent/proximity-appliance");
    let err = refused(&bad)?;
    assert!(matches!(err, ImageError::ApplianceUnreadable { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/proximity-appliance"), "{err}");
    Ok(())
}

#[test]
fn a_script_is_no_appliance() -> TestResult {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("appliance.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho hi\n{}", "#".repeat(100)))?;
    let mut bad = inputs();
    bad.appliance = script;
    let err = refused(&bad)?;
    assert!(matches!(err, ImageError::NotAnExecutable { .. }), "{err}");
    assert!(err.to_string().contains("not an x86_64 ELF executable"), "{err}");
    Ok(())
}

#[test]
fn an_invalid_config_lists_its_problems() -> TestResult {
    let mut bad = inputs();
    bad.config = "[dhcp]\nlease_time = \"0s\"\n[admin]\nlisten = [\"nonsense\"]\n".into();
    let err = refused(&bad)?;
    let text = err.to_string();
    assert!(matches!(err, ImageError::Config(_)), "{text}");
    assert!(text.contains("admin.listen") && text.contains("dhcp.lease_time"), "{text}");
    bad.config = "[nonsense]\n".into();
    let err = refused(&bad)?;
    assert!(err.to_string().contains("nonsense"), "{err}");
    Ok(())
}

#[test]
fn the_state_must_be_on_the_mount_point() -> TestResult {
    let mut bad = inputs();
    bad.config = "[state]\ndir = \"/srv/state\"\n".into();
    let err = refused(&bad)?;
    assert!(matches!(err, ImageError::StateDir { .. }), "{err}");
    assert!(err.to_string().contains("/var/lib/proximity"), "{err}");
    Ok(())
}

#[test]
fn a_version_with_a_separator_is_refused() -> TestResult {
    let mut bad = inputs();
    bad.version = "1_2".into();
    assert!(matches!(refused(&bad)?, ImageError::Version(_)));
    Ok(())
}

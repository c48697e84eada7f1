//! The size of a template built from the release static appliance, printed for the README
//! (`cargo test -p proximity-image --test image size -- --nocapture`). Not asserted: a size is
//! a measurement, not a behaviour. Without that build, the test says how to make it.

use std::path::PathBuf;

use crate::{TestResult, inputs, read_template};

/// Where `RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p proximity-appliance
/// --target x86_64-unknown-linux-gnu` puts the binary.
fn release_static() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/x86_64-unknown-linux-gnu/release/proximity-appliance")
}

#[test]
fn size_of_the_release_template() -> TestResult {
    let binary = release_static();
    if !binary.is_file() {
        println!(
            "no release static appliance at {}; build it with RUSTFLAGS='-C target-feature=+crt-static' \
             cargo build --release -p proximity-appliance --target x86_64-unknown-linux-gnu",
            binary.display()
        );
        return Ok(());
    }
    let exe = proximity_image::elf::check(&binary)?;
    let dir = tempfile::tempdir()?;
    let mut inputs = inputs();
    inputs.appliance = binary.clone();
    let template = proximity_image::build(&inputs, dir.path())?;
    let entries = read_template(&template.path)?;
    let unpacked: usize = entries.iter().map(|(_, e)| e.data.len()).sum();
    println!(
        "template {}: {} bytes ({:.2} MB) compressed, {} bytes unpacked, appliance {} bytes, {}",
        template.file_name,
        template.size,
        template.size as f64 / 1e6,
        unpacked,
        std::fs::metadata(&binary)?.len(),
        if exe.interp.is_none() { "static" } else { "dynamic" }
    );
    Ok(())
}

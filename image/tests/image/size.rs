//! The size of templates built from the static appliance of the `template` and `release`
//! profiles, printed for the README (`cargo test -p proximity-image --test image size --
//! --nocapture`). Not asserted: a size is a measurement, not a behaviour. A profile not built
//! is named with the command that builds it.

use std::path::PathBuf;

use crate::{TestResult, inputs, read_template};

/// The profiles measured: `template` (no debug info, what a deployment carries) and `release`.
const PROFILES: [&str; 2] = ["template", "release"];

/// Where `RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile <profile> -p
/// proximity-appliance --target x86_64-unknown-linux-gnu` puts the binary.
fn static_build(profile: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/x86_64-unknown-linux-gnu")
        .join(profile)
        .join("proximity-appliance")
}

#[test]
fn size_of_the_template() -> TestResult {
    for profile in PROFILES {
        let binary = static_build(profile);
        if !binary.is_file() {
            println!(
                "{profile}: no static appliance at {}; build it with RUSTFLAGS='-C target-feature=+crt-static' \
                 cargo build --profile {profile} -p proximity-appliance --target x86_64-unknown-linux-gnu",
                binary.display()
            );
            continue;
        }
        let exe = proximity_image::elf::check(&binary)?;
        let dir = tempfile::tempdir()?;
        let mut inputs = inputs();
        inputs.appliance = binary.clone();
        let template = proximity_image::build(&inputs, dir.path())?;
        let entries = read_template(&template.path)?;
        let unpacked: usize = entries.iter().map(|(_, e)| e.data.len()).sum();
        println!(
            "{profile}: {} is {} bytes ({:.2} MB) compressed, {} bytes unpacked; appliance {} bytes, {}",
            template.file_name,
            template.size,
            template.size as f64 / 1e6,
            unpacked,
            std::fs::metadata(&binary)?.len(),
            if exe.interp.is_none() { "static" } else { "dynamic" }
        );
    }
    Ok(())
}

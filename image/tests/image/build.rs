//! Reproducibility and naming: same inputs, same bytes; other inputs, another name.

use ring::digest;

use crate::{TestResult, inputs};

fn sha256_hex(bytes: &[u8]) -> String {
    digest::digest(&digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_same_inputs_give_the_same_bytes_and_name() -> TestResult {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let first = proximity_image::build(&inputs(), a.path())?;
    let second = proximity_image::build(&inputs(), b.path())?;
    let (one, two) = (std::fs::read(&first.path)?, std::fs::read(&second.path)?);
    assert!(one == two, "two builds differ");
    assert_eq!(first.file_name, second.file_name);
    assert_eq!(first.sha256, sha256_hex(&one), "the sha256 is the file's");
    assert_eq!(first.size, one.len() as u64);
    assert_eq!(first.path, a.path().join(&first.file_name));
    assert_eq!(first.file_name, format!("proximity-appliance_0.1.0-{}_amd64.tar.zst", &first.sha256[..12]));
    // Only the template is left in the directory: the temporary file was renamed.
    let names: Vec<_> =
        std::fs::read_dir(a.path())?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    assert_eq!(names, [std::ffi::OsString::from(&first.file_name)]);
    // Built again into the same place: replaced by the same file.
    let again = proximity_image::build(&inputs(), a.path())?;
    assert_eq!(again, first);
    Ok(())
}

#[test]
fn another_config_or_version_gives_another_name() -> TestResult {
    let dir = tempfile::tempdir()?;
    let base = proximity_image::build(&inputs(), dir.path())?;
    let mut other = inputs();
    other.config.push_str("\n# another deployment\n");
    let changed = proximity_image::build(&other, dir.path())?;
    assert_ne!(changed.sha256, base.sha256);
    assert_ne!(changed.file_name, base.file_name);
    let mut newer = inputs();
    newer.version = "0.2.0".into();
    let newer = proximity_image::build(&newer, dir.path())?;
    assert!(newer.file_name.starts_with("proximity-appliance_0.2.0-"), "{}", newer.file_name);
    // The version names the file; the bytes are the binary's and the config's.
    assert_eq!(newer.sha256, base.sha256);
    Ok(())
}

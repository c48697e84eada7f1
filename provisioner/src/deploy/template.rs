//! The template step: the appliance config from the token, the template built (decision 1) into
//! the cache, and uploaded to the template storage only when that volid is not there yet.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use proximity_image::{Inputs, Template};
use serde::Deserialize;

use super::context::Ctx;
use crate::appliance::config::appliance_config;
use crate::net::fingerprint::hex;
use crate::pve::client::encode;
use crate::pve::multipart::Multipart;
use crate::state::State;

/// The appliance binary's file name, looked for next to this program.
pub const APPLIANCE_BIN: &str = "proximity-appliance";
/// File names of our templates start with this.
pub const TEMPLATE_PREFIX: &str = "proximity-appliance_";

/// The appliance binary: `--appliance`, else next to the running program.
pub fn appliance_path(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("locating this program")?;
    let path = exe
        .parent()
        .map(|d| d.join(APPLIANCE_BIN))
        .ok_or_else(|| anyhow!("this program has no directory"))?;
    if !path.exists() {
        anyhow::bail!("no appliance binary at {}: pass --appliance PATH", path.display());
    }
    Ok(path)
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/proximity/templates`.
pub fn cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME").filter(|v| !v.is_empty()).ok_or_else(|| anyhow!("HOME is not set"))?,
        )
        .join(".cache"),
    };
    Ok(base.join("proximity").join("templates"))
}

/// The appliance's version, for the template name: ours (the workspace shares one version).
pub fn appliance_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Builds the template for `state`'s token into `out`.
pub async fn build(appliance: &Path, state: &State, out: &Path) -> Result<Template> {
    build_with(appliance, Some(&state.token_sha256()), out).await
}

/// Builds the template with the admin token hash `token_sha256` (if any) into `out`, or finds
/// it there: the same inputs give the same bytes (decision 1), so a template built from them
/// before, still intact, is reused (the build reads and compresses the whole binary: seconds for
/// a debug build).
pub async fn build_with(appliance: &Path, token_sha256: Option<&str>, out: &Path) -> Result<Template> {
    let inputs = Inputs {
        appliance: appliance.to_owned(),
        config: appliance_config(token_sha256)?,
        version: appliance_version(),
    };
    let out = out.to_owned();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    tokio::task::spawn_blocking(move || -> Result<Template> {
        let key = inputs_key(&inputs)?;
        let record = out.join(format!(".{key}.json"));
        if let Some(template) = cached(&record) {
            return Ok(template);
        }
        let template = proximity_image::build(&inputs, &out).context("building the template")?;
        let text = serde_json::to_string(&Cached {
            file_name: template.file_name.clone(),
            sha256: template.sha256.clone(),
            size: template.size,
        })?;
        std::fs::write(&record, text).with_context(|| format!("writing {}", record.display()))?;
        Ok(template)
    })
    .await
    .context("the template build stopped")?
}

/// What the cache remembers of a build, next to the template.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Cached {
    file_name: String,
    sha256: String,
    size: u64,
}

/// SHA-256 over everything a build depends on.
fn inputs_key(inputs: &Inputs) -> Result<String> {
    let binary = std::fs::read(&inputs.appliance)
        .with_context(|| format!("reading {}", inputs.appliance.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [inputs.version.as_bytes(), b"\0", inputs.config.as_bytes(), b"\0", &binary] {
        ctx.update(part);
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// The template a cache record names, if the file is there with the recorded size and digest.
fn cached(record: &Path) -> Option<Template> {
    let cached: Cached = serde_json::from_str(&std::fs::read_to_string(record).ok()?).ok()?;
    let path = record.parent()?.join(&cached.file_name);
    let bytes = std::fs::read(&path).ok()?;
    let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    (bytes.len() as u64 == cached.size && sha256 == cached.sha256).then_some(Template {
        path,
        file_name: cached.file_name,
        sha256,
        size: cached.size,
    })
}

#[derive(Debug, Deserialize)]
pub struct Volume {
    pub volid: String,
}

/// The volids on the template storage (content vztmpl).
pub async fn list(ctx: &Ctx) -> Result<Vec<String>> {
    let path = ctx.node_path(&format!("/storage/{}/content", encode(&ctx.template_storage)));
    let volumes: Vec<Volume> = ctx.pve.get(&path, &[("content", "vztmpl".to_owned())]).await?;
    Ok(volumes.into_iter().map(|v| v.volid).collect())
}

/// The volid a template gets on `storage`.
pub fn volid(storage: &str, template: &Template) -> String {
    format!("{storage}:vztmpl/{}", template.file_name)
}

/// Uploads `template` if absent; `true` when uploaded.
pub async fn ensure_uploaded(ctx: &Ctx, template: &Template) -> Result<bool> {
    let volid = volid(&ctx.template_storage, template);
    if list(ctx).await?.contains(&volid) {
        return Ok(false);
    }
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("random boundary: {e}"))?;
    let multipart = Multipart::new(
        &format!("proximity-{}", hex(&nonce)),
        &[("content", "vztmpl"), ("checksum-algorithm", "sha256"), ("checksum", &template.sha256)],
        "filename",
        &template.file_name,
    );
    let body = multipart
        .stream(&template.path)
        .await
        .with_context(|| format!("opening {}", template.path.display()))?;
    let path = ctx.node_path(&format!("/storage/{}/upload", encode(&ctx.template_storage)));
    let data = ctx
        .pve
        .post_body(&path, &multipart.content_type(), body, multipart.len(template.size), ctx.timeout)
        .await
        .with_context(|| format!("uploading {}", template.file_name))?;
    ctx.pve.wait_data(&ctx.node, &data, ctx.timeout).await.with_context(|| format!("storing {volid}"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_template_is_reused_only_while_intact() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let bytes = b"template bytes".to_vec();
        let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
        let file_name = "proximity-appliance_0.1.0-abcdefabcdef_amd64.tar.zst".to_owned();
        std::fs::write(dir.path().join(&file_name), &bytes)?;
        let record = dir.path().join(".key.json");
        std::fs::write(
            &record,
            serde_json::to_string(&Cached {
                file_name: file_name.clone(),
                sha256: sha256.clone(),
                size: 14,
            })?,
        )?;
        let hit = cached(&record).map(|t| (t.file_name, t.sha256, t.size));
        assert_eq!(hit, Some((file_name.clone(), sha256, 14)));
        std::fs::write(dir.path().join(&file_name), b"template bytez")?;
        assert!(cached(&record).is_none());
        std::fs::remove_file(dir.path().join(&file_name))?;
        assert!(cached(&record).is_none());
        Ok(())
    }

    #[test]
    fn the_key_follows_every_input() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let bin = dir.path().join("proximity-appliance");
        std::fs::write(&bin, b"\x7fELF one")?;
        let inputs = Inputs { appliance: bin.clone(), config: "a = 1\n".into(), version: "0.1.0".into() };
        let base = inputs_key(&inputs)?;
        assert_eq!(base, inputs_key(&inputs)?);
        assert_ne!(base, inputs_key(&Inputs { config: "a = 2\n".into(), ..inputs.clone() })?);
        assert_ne!(base, inputs_key(&Inputs { version: "0.1.1".into(), ..inputs.clone() })?);
        std::fs::write(&bin, b"\x7fELF two")?;
        assert_ne!(base, inputs_key(&inputs)?);
        Ok(())
    }
}

//! `hoist inspect docker://…`: an image in a registry, as `skopeo inspect`
//! shows it (`--raw`: the manifest bytes; `--config`: the config).

use super::remote::{manifest_ref, parse_docker, print_json, registry_error, RemoteOpts};
use super::Error;
use hoist_oci::{Config, Descriptor, Digester, Document, Platform};
use hoist_registry_client::blocking::RegistryClient;
use std::io::{Read, Write};
use std::process::ExitCode;

/// Largest image config read.
const MAX_CONFIG: u64 = 16 << 20;

/// The remote-only flags of `hoist inspect`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Flags {
    /// Print the manifest (or index) exactly as the registry sends it.
    #[arg(long, conflicts_with = "config")]
    raw: bool,
    /// Print the image's config (with --raw: its exact bytes).
    #[arg(long)]
    config: bool,
    /// Do not list the repository's tags.
    #[arg(long)]
    no_tags: bool,
    #[command(flatten)]
    remote: RemoteOpts,
}

/// Inspects each `docker://` reference.
pub fn run(images: &[String], flags: &Flags) -> Result<ExitCode, Error> {
    for image in images {
        inspect(image, flags)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_raw(bytes: &[u8]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Msg(format!("stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// A small blob (a config), read whole and verified.
fn small_blob(c: &RegistryClient, repo: &str, d: &Descriptor) -> Result<Vec<u8>, Error> {
    if d.size > MAX_CONFIG {
        return Err(Error::Msg(format!(
            "config {} is {} bytes, over the {MAX_CONFIG}-byte limit",
            d.digest, d.size
        )));
    }
    let mut bytes = Vec::new();
    c.open_blob(repo, &d.digest, 0)
        .map_err(registry_error)?
        .take(d.size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Msg(format!("config {} from {}: {e}", d.digest, c.registry())))?;
    let mut h = Digester::new(d.digest.algorithm());
    h.update(&bytes);
    let actual = h.finish();
    if bytes.len() as u64 != d.size || actual != d.digest {
        return Err(Error::Msg(format!(
            "config {} from {}: got {} bytes hashing to {actual}; expected {} bytes",
            d.digest,
            c.registry(),
            bytes.len(),
            d.size
        )));
    }
    Ok(bytes)
}

fn inspect(image: &str, flags: &Flags) -> Result<(), Error> {
    let r = parse_docker(image, false)?;
    let c = flags.remote.client(r.domain())?;
    let repo = r.path();
    let top = c
        .get_manifest(repo, &manifest_ref(&r))
        .map_err(registry_error)?;
    if flags.raw && !flags.config {
        return write_raw(&top.bytes);
    }
    let doc = Document::parse(&top.bytes, Some(&top.media_type))
        .map_err(|e| Error::Msg(format!("{r}: {e}")))?;
    // An index: the manifest for this machine, as skopeo picks it.
    let doc = match doc {
        Document::Index(idx) => {
            let host = Platform::host();
            let d = idx
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| host.matches(p)))
                .ok_or_else(|| Error::Msg(format!("{r}: the index has no manifest for {host}")))?;
            let m = c
                .get_manifest(repo, &d.digest.to_string())
                .map_err(registry_error)?;
            Document::parse(&m.bytes, Some(&m.media_type))
                .map_err(|e| Error::Msg(format!("{r}: {e}")))?
        }
        d => d,
    };
    let Document::Manifest(m) = doc else {
        return Err(Error::Msg(format!(
            "{r}: an index inside an index is not inspected"
        )));
    };
    let config_bytes = small_blob(&c, repo, &m.config)?;
    if flags.config {
        return if flags.raw {
            write_raw(&config_bytes)
        } else {
            let v: serde_json::Value = serde_json::from_slice(&config_bytes)
                .map_err(|e| Error::Msg(format!("config {}: {e}", m.config.digest)))?;
            print_json(&v)
        };
    }
    let config = Config::parse(&config_bytes)
        .map_err(|e| Error::Msg(format!("config {}: {e}", m.config.digest)))?;
    let full: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap_or_default();
    let inner = full.get("config").cloned().unwrap_or_default();
    let tags = if flags.no_tags {
        Vec::new()
    } else {
        c.list_tags(repo, None).map_err(registry_error)?
    };
    print_json(&serde_json::json!({
        "Name": r.name(),
        "Digest": top.digest.to_string(),
        "RepoTags": tags,
        "Created": config.created,
        "DockerVersion": full.get("docker_version").cloned().unwrap_or_else(|| "".into()),
        "Labels": inner.get("Labels").cloned().unwrap_or_default(),
        "Architecture": config.architecture,
        "Os": config.os,
        "Layers": m.layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        "LayersData": m.layers.iter().map(|l| serde_json::json!({
            "MIMEType": l.media_type, "Digest": l.digest.to_string(), "Size": l.size,
            "Annotations": if l.annotations.is_empty() { serde_json::Value::Null } else { serde_json::json!(l.annotations) },
        })).collect::<Vec<_>>(),
        "Env": inner.get("Env").cloned().unwrap_or_default(),
    }))
}

//! `hoist info`: the store and the client, as `docker info` shows the daemon's.

use super::{Context, Error};
use crate::output::{human_size, Formatter};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `hoist info`.
#[derive(clap::Args)]
pub struct Args {
    /// Format output: json or a Go template (`{{.Images}}`).
    #[arg(short, long, default_value = "")]
    format: String,
}

/// Docker's client configuration directory: `$DOCKER_CONFIG`, else `~/.docker`.
fn docker_config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))
}

/// Docker's client `config.json`, when there is a readable one.
pub fn docker_config() -> Option<serde_json::Value> {
    let path = docker_config_dir()?.join("config.json");
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The registries `docker login` (or `hoist login`) left credentials for in
/// `config.json`, Docker Hub's legacy key shown as `docker.io`; and the
/// credential store, if one is set.
fn logged_in() -> (Vec<String>, String) {
    let Some(v) = docker_config() else {
        return (Vec::new(), String::new());
    };
    let mut hosts = std::collections::BTreeSet::new();
    for key in ["auths", "credHelpers"] {
        if let Some(m) = v.get(key).and_then(|m| m.as_object()) {
            for k in m.keys() {
                let host = k
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .split('/')
                    .next()
                    .unwrap_or(k);
                let host = match host {
                    "index.docker.io" | "registry-1.docker.io" => "docker.io",
                    h => h,
                };
                hosts.insert(host.to_owned());
            }
        }
    }
    let store = v
        .get("credsStore")
        .and_then(|s| s.as_str())
        .unwrap_or_default()
        .to_owned();
    (hosts.into_iter().collect(), store)
}

/// Runs `hoist info`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    let store = ctx.store()?;
    let usage = store.usage()?;
    let tags = store.index().tags()?.len();
    let (registries, creds_store) = logged_in();
    let size = usage.images_summary.size + usage.unreferenced_summary.size;
    let reclaimable = usage.images_summary.reclaimable + usage.unreferenced_summary.size;
    let v = serde_json::json!({
        "ClientInfo": {
            "Version": env!("CARGO_PKG_VERSION"),
            "Os": std::env::consts::OS,
            "Arch": super::version::go_arch(),
        },
        "Images": usage.images_summary.total,
        "Tags": tags,
        "Layers": usage.layers_summary.total,
        "Size": size,
        "Reclaimable": reclaimable,
        "HoistRootDir": store.root().display().to_string(),
        "LoggedIn": registries,
        "CredentialStore": creds_store,
    });
    if !args.format.is_empty() {
        Formatter::new(&args.format, "")?.print(&serde_json::Value::Null, &[v])?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(
        " OS/Arch:    {}/{}",
        std::env::consts::OS,
        super::version::go_arch()
    );
    println!();
    println!("Store:");
    println!(" Images: {}", usage.images_summary.total);
    println!("  Tags: {tags}");
    println!(" Layers: {}", usage.layers_summary.total);
    println!(" Size: {}", human_size(size));
    println!("  Reclaimable: {}", human_size(reclaimable));
    println!(" Hoist Root Dir: {}", store.root().display());
    let list = if registries.is_empty() {
        "none".to_owned()
    } else {
        registries.join(", ")
    };
    println!(" Logged in to: {list}");
    if !creds_store.is_empty() {
        println!(" Credential Store: {creds_store}");
    }
    Ok(ExitCode::SUCCESS)
}

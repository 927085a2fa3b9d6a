//! `hoist inspect`: an image as `docker image inspect` shows it (Docker's
//! fields in Docker's order, 4-space indentation), then hoist's own `Manifest`
//! and `Layers`; or a Go template per image with `-f`.

use super::{Context, Error};
use crate::output::{self, Formatter};
use crate::resolve::{self, familiar};
use hoist_store::{ImageRecord, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::process::ExitCode;

/// Arguments of `hoist inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// Format output: json (the default) or a Go template (`{{.Config.Cmd}}`).
    #[arg(short, long, default_value = "")]
    format: String,
    /// Images, by reference or ID.
    #[arg(required = true)]
    images: Vec<String>,
    #[command(flatten)]
    remote: super::inspect_remote::Flags,
}

/// Docker's `container.Config` as its daemon prints it: every field present,
/// empty strings and `false` rather than missing, `null` for absent lists and
/// maps, and Docker's `omitempty` fields left out when empty.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ContainerConfig {
    hostname: String,
    domainname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    #[serde(skip_serializing_if = "empty")]
    exposed_ports: Value,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    env: Value,
    cmd: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<HealthConfig>,
    #[serde(skip_serializing_if = "is_false")]
    args_escaped: bool,
    image: String,
    volumes: Value,
    working_dir: String,
    entrypoint: Value,
    #[serde(skip_serializing_if = "is_false")]
    network_disabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    mac_address: String,
    on_build: Value,
    labels: Value,
    #[serde(skip_serializing_if = "String::is_empty")]
    stop_signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "empty")]
    shell: Value,
}

/// Docker's `container.HealthConfig`, its fields in Docker's order (durations in nanoseconds).
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct HealthConfig {
    #[serde(skip_serializing_if = "empty")]
    test: Value,
    #[serde(skip_serializing_if = "is_zero")]
    interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    start_period: i64,
    #[serde(skip_serializing_if = "is_zero")]
    retries: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

/// The parts of an image config `docker image inspect` reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ImageJson {
    comment: String,
    created: Option<String>,
    container: String,
    container_config: Option<ContainerConfig>,
    docker_version: String,
    author: String,
    config: Option<ContainerConfig>,
    architecture: String,
    variant: Option<String>,
    os: String,
    #[serde(rename = "os.version")]
    os_version: String,
    rootfs: RootFsJson,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RootFsJson {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

/// `docker image inspect`'s object, in its field order (API 1.41, Docker 20.10:
/// `Container`, `ContainerConfig` and `DockerVersion` are still there).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    container: String,
    container_config: ContainerConfig,
    docker_version: String,
    author: String,
    config: Option<ContainerConfig>,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    os_version: String,
    size: u64,
    virtual_size: u64,
    graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    metadata: Metadata,
    /// hoist's own: the manifest the image came with.
    manifest: Value,
    /// hoist's own: each layer's blob and names.
    layers: Vec<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GraphDriver {
    data: Option<Value>,
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    layers: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    last_tag_time: String,
}

/// The Go structs of `docker image inspect` (types.ImageInspect and the
/// structs in it), for the field order of a template's `json`.
const STRUCTS: crate::template::StructOrders = &[
    &[
        "Id",
        "RepoTags",
        "RepoDigests",
        "Parent",
        "Comment",
        "Created",
        "Container",
        "ContainerConfig",
        "DockerVersion",
        "Author",
        "Config",
        "Architecture",
        "Variant",
        "Os",
        "OsVersion",
        "Size",
        "VirtualSize",
        "GraphDriver",
        "RootFS",
        "Metadata",
        "Manifest",
        "Layers",
    ],
    &[
        "Hostname",
        "Domainname",
        "User",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "ExposedPorts",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "Env",
        "Cmd",
        "Healthcheck",
        "ArgsEscaped",
        "Image",
        "Volumes",
        "WorkingDir",
        "Entrypoint",
        "NetworkDisabled",
        "MacAddress",
        "OnBuild",
        "Labels",
        "StopSignal",
        "StopTimeout",
        "Shell",
    ],
    &["Test", "Interval", "Timeout", "StartPeriod", "Retries"],
    &["Data", "Name"],
    &["Type", "Layers", "BaseLayer"],
    &["LastTagTime"],
];

/// The Go types of inspect's fields that the JSON may hold as null or leave
/// out (omitempty): a template prints their zero values as Docker's does,
/// running on the Go structs (`{{.Config.Entrypoint}}` is `[]`).
const ZEROS: crate::template::Zeros = {
    use crate::template::Zero::*;
    &[
        ("Env", List),
        ("Cmd", List),
        ("Entrypoint", List),
        ("OnBuild", List),
        ("Shell", List),
        ("Test", List),
        ("RepoTags", List),
        ("RepoDigests", List),
        ("Layers", List),
        ("Volumes", Map),
        ("Labels", Map),
        ("ExposedPorts", Map),
        ("Data", Map),
        ("StopSignal", Str),
        ("MacAddress", Str),
        ("Variant", Str),
        ("OsVersion", Str),
        ("BaseLayer", Str),
        ("ArgsEscaped", Bool),
        ("NetworkDisabled", Bool),
        ("Interval", Int),
        ("Timeout", Int),
        ("StartPeriod", Int),
        ("Retries", Int),
        ("Healthcheck", Ptr),
        ("Config", Ptr),
        ("StopTimeout", Ptr),
    ]
};

/// Go's zero `time.Time`, which Docker shows for an image never tagged by `docker tag`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn inspect_image(store: &Store, img: &ImageRecord) -> Result<Inspect, Error> {
    let raw = store.read_blob(&img.id, hoist_transport::MAX_JSON)?;
    let c: ImageJson = serde_json::from_slice(&raw)
        .map_err(|e| Error::Msg(format!("image config {}: {e}", img.id)))?;
    let created = output::parse_time(c.created.as_deref())
        .map_or_else(|| ZERO_TIME.to_owned(), |t| output::rfc3339_nano(&t));
    let size = crate::cmd::images::image_size(store, img)?;
    Ok(Inspect {
        id: img.id.to_string(),
        repo_tags: img.tags.iter().map(|t| familiar(t)).collect(),
        // Docker records repository digests on pull and push only.
        repo_digests: img.repo_digests.iter().map(|d| familiar(d)).collect(),
        parent: String::new(),
        comment: c.comment,
        created,
        container: c.container,
        container_config: c.container_config.unwrap_or_default(),
        docker_version: c.docker_version,
        author: c.author,
        config: c.config,
        architecture: c.architecture,
        variant: c.variant,
        os: c.os,
        os_version: c.os_version,
        size,
        virtual_size: size,
        graph_driver: GraphDriver {
            data: None,
            name: "hoist".into(),
        },
        root_fs: RootFs {
            kind: c.rootfs.kind,
            layers: c.rootfs.diff_ids,
        },
        metadata: Metadata {
            last_tag_time: ZERO_TIME.into(),
        },
        manifest: serde_json::json!({
            "Digest": img.manifest.to_string(),
            "MediaType": img.manifest_media_type,
        }),
        layers: img
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "ChainID": l.layer.chain_id.to_string(),
                    "DiffID": l.layer.diff_id.to_string(),
                    "Digest": l.blob.to_string(),
                    "MediaType": l.media_type,
                    "Size": l.blob_size,
                    "UncompressedSize": l.layer.size,
                })
            })
            .collect(),
    })
}

/// JSON as `docker image inspect` prints it: 4-space indentation, no HTML escaping.
fn docker_json(v: &impl Serialize) -> Result<String, Error> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)
        .map_err(|e| Error::Msg(e.to_string()))?;
    String::from_utf8(buf).map_err(|e| Error::Msg(e.to_string()))
}

/// Runs `hoist inspect`.
pub fn run(ctx: &Context, args: Args) -> Result<ExitCode, Error> {
    if args.images.iter().any(|i| i.starts_with("docker://")) {
        return super::inspect_remote::run(&args.images, &args.remote);
    }
    let store = ctx.store_read()?;
    let template = match args.format.as_str() {
        "" | "json" => None,
        f => Some(
            Formatter::new(f, "")?
                .with_structs(STRUCTS)
                .with_zeros(ZEROS),
        ),
    };
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.images {
        let r = match resolve::image(&store, name) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
                continue;
            }
        };
        out.push(inspect_image(&store, &r.image)?);
    }
    match template {
        None => {
            let text = if out.is_empty() {
                "[]".to_owned()
            } else {
                docker_json(&out)?
            };
            println!("{text}");
        }
        Some(t) => {
            let values = out
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Msg(e.to_string()))?;
            t.print(&Value::Null, &values)?;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_as_docker_prints_it() {
        let c: ContainerConfig =
            serde_json::from_str(r#"{"Cmd":["sh"],"Env":["A=1"],"ExposedPorts":{}}"#)
                .expect("config");
        let v = serde_json::to_value(&c).expect("value");
        assert_eq!(v["Hostname"], "");
        assert_eq!(v["Entrypoint"], Value::Null);
        assert_eq!(v["Cmd"], serde_json::json!(["sh"]));
        assert!(v.get("ExposedPorts").is_none(), "omitempty as in Docker");
        assert!(v.get("ArgsEscaped").is_none());
    }

    #[test]
    fn json_is_indented_by_4_without_html_escapes() {
        let s = docker_json(&serde_json::json!({"Cmd": "a && b <c>"})).expect("json");
        assert_eq!(s, "{\n    \"Cmd\": \"a && b <c>\"\n}");
    }
}

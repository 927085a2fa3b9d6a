//! The command line as a Docker user meets it, through the built binary on a
//! throw-away store: output cut short by a closed pipe, `images` filters and
//! order, Go templates, Docker's tables and JSON, `version`, `info`,
//! `system prune` and `load`'s hints. No peer tool is needed.

#[path = "common/imagegen.rs"]
mod imagegen;

use hoist_testkit::TempStore;
use imagegen::{docker_members, layer_tar, write_tar, Image, Layer};
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;

fn store() -> TempStore {
    TempStore::with_bin(env!("CARGO_BIN_EXE_hoist"))
}

/// An image of one layer holding `file`, created at `created`, with `labels`.
fn image(tag: Option<&str>, file: &str, created: &str, labels: Value) -> Image {
    let layer = Layer::plain(layer_tar(&[(file, file.as_bytes())]));
    let mut img = Image::new(tag, vec![layer]);
    img.config = serde_json::to_vec(&serde_json::json!({
        "architecture": imagegen::host_arch(),
        "os": "linux",
        "created": created,
        "config": {"Cmd": ["sh", "-c", "echo"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [img.layers[0].diff_id]},
        "history": [{"created": created, "created_by": format!("ADD {file} /")}],
    }))
    .expect("config json");
    img
}

/// Loads `images` (one archive each, in this order) into `st`.
fn load(st: &TempStore, images: &[Image]) {
    let dir = hoist_testkit::scratch_dir();
    for (i, img) in images.iter().enumerate() {
        let p: PathBuf = dir.path().join(format!("{i}.tar"));
        write_tar(&p, &docker_members(std::slice::from_ref(img)));
        st.hoist_ok(["load", "-q", "-i", p.to_str().expect("utf-8 path")]);
    }
}

// ------------------------------------------------------------------ broken pipe

#[test]
fn output_into_a_closed_pipe_ends_quietly_as_docker_does() {
    let st = store();
    let many: Vec<Image> = (0..40)
        .map(|i| {
            image(
                Some(&format!("many/img{i}:v{i}")),
                &format!("f{i}"),
                "2024-01-01T00:00:00Z",
                Value::Null,
            )
        })
        .collect();
    load(&st, &many);
    for args in [
        vec!["images"],
        vec!["inspect", "many/img1:v1", "many/img2:v2"],
        vec!["history", "--format", "json", "many/img1:v1"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = st
            .command()
            .args(&args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .expect("run hoist");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.signal() == Some(libc_sigpipe()) || out.status.code() == Some(0),
            "hoist {args:?} into a closed pipe: {:?}, stderr {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "hoist {args:?} printed {stderr:?}");
    }
}

/// SIGPIPE's number on Linux (every architecture hoist builds for).
fn libc_sigpipe() -> i32 {
    13
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `repo:tag` of each row of `hoist images --format json ARGS…`, in order.
fn listed(st: &TempStore, args: &[&str]) -> Vec<String> {
    let mut all = vec!["images", "--format", "json"];
    all.extend_from_slice(args);
    json_lines(&st.hoist_ok(all))
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["Repository"].as_str().unwrap_or("?"),
                r["Tag"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

// ------------------------------------------------------------------ filters and order

/// Three images loaded in the opposite order of their creation, and one dangling.
fn three_by_age(st: &TempStore) {
    load(
        st,
        &[
            image(
                Some("peerbench/app:new"),
                "c",
                "2024-03-01T00:00:00Z",
                serde_json::json!({"tier": "web"}),
            ),
            image(
                Some("peer:mid"),
                "b",
                "2024-02-01T00:00:00Z",
                serde_json::json!({"tier": "db"}),
            ),
            image(
                Some("old:1"),
                "a",
                "2024-01-01T00:00:00Z",
                serde_json::json!({"tier": "web", "x": "y"}),
            ),
            image(None, "d", "2023-12-01T00:00:00Z", Value::Null),
        ],
    );
}

#[test]
fn images_are_listed_newest_created_first_not_in_load_order() {
    let st = store();
    three_by_age(&st);
    assert_eq!(
        listed(&st, &[]),
        ["peerbench/app:new", "peer:mid", "old:1", "<none>:<none>"]
    );
}

#[test]
fn since_and_before_compare_creation_times() {
    let st = store();
    three_by_age(&st);
    assert_eq!(
        listed(&st, &["--filter", "since=old:1"]),
        ["peerbench/app:new", "peer:mid"]
    );
    assert_eq!(
        listed(&st, &["--filter", "before=peer:mid"]),
        ["old:1", "<none>:<none>"]
    );
    assert_eq!(
        listed(
            &st,
            &[
                "--filter",
                "since=old:1",
                "--filter",
                "before=peerbench/app:new"
            ]
        ),
        ["peer:mid"]
    );
}

#[test]
fn reference_stars_do_not_cross_slashes_and_patterns_are_alternatives() {
    let st = store();
    three_by_age(&st);
    assert_eq!(listed(&st, &["--filter", "reference=peer*"]), ["peer:mid"]);
    assert_eq!(
        listed(&st, &["--filter", "reference=peer*/*"]),
        ["peerbench/app:new"]
    );
    assert_eq!(
        listed(&st, &["--filter", "reference=*:new"]),
        Vec::<String>::new()
    );
    assert_eq!(
        listed(&st, &["--filter", "reference=*/*:new"]),
        ["peerbench/app:new"]
    );
    assert_eq!(
        listed(
            &st,
            &["--filter", "reference=old", "--filter", "reference=peer"]
        ),
        ["peer:mid", "old:1"]
    );
}

#[test]
fn dangling_and_label_filters() {
    let st = store();
    three_by_age(&st);
    assert_eq!(
        listed(&st, &["--filter", "dangling=true"]),
        ["<none>:<none>"]
    );
    assert_eq!(listed(&st, &["--filter", "dangling=false"]).len(), 3);
    assert_eq!(
        listed(&st, &["--filter", "label=tier=web"]),
        ["peerbench/app:new", "old:1"]
    );
    assert_eq!(
        listed(&st, &["--filter", "label=tier=web", "--filter", "label=x"]),
        ["old:1"]
    );
    let err = st.hoist_err(["images", "--filter", "colour=red"]);
    assert!(err.contains("Invalid filter 'colour'"), "{err}");
}

// ------------------------------------------------------------------ templates, tables, JSON

#[test]
fn go_templates_on_images_history_and_inspect() {
    let st = store();
    three_by_age(&st);
    let out = st.hoist_ok([
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        "dangling=false",
    ]);
    assert_eq!(out, "peerbench/app:new\npeer:mid\nold:1\n");
    let out = st.hoist_ok([
        "images",
        "--format",
        r"table {{.Repository}}\t{{.Tag}}",
        "old:1",
    ]);
    assert_eq!(out, "REPOSITORY   TAG\nold          1\n");
    let out = st.hoist_ok([
        "inspect",
        "-f",
        "{{.Config.Cmd}} {{.Config.Entrypoint}} {{.Os}}",
        "old:1",
    ]);
    assert_eq!(out, "[sh -c echo] [] linux\n");
    let out = st.hoist_ok(["inspect", "--format", "{{json .Config.Labels}}", "old:1"]);
    assert_eq!(out, "{\"tier\":\"web\",\"x\":\"y\"}\n");
    let out = st.hoist_ok([
        "history",
        "--format",
        "{{.CreatedBy}}|{{.CreatedAt}}",
        "old:1",
    ]);
    assert_eq!(out, "ADD a /|2024-01-01T00:00:00Z\n");
    let err = st.hoist_err(["images", "--format", "{{.Repository"]);
    assert!(err.contains("template parsing error"), "{err}");
}

#[test]
fn images_json_has_dockers_fields_and_values() {
    let st = store();
    three_by_age(&st);
    let rows = json_lines(&st.hoist_ok(["images", "--format", "json", "old:1"]));
    assert_eq!(rows.len(), 1);
    let r = rows[0].as_object().expect("object");
    let keys: Vec<&str> = r.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "Containers",
            "CreatedAt",
            "CreatedSince",
            "Digest",
            "ID",
            "Repository",
            "SharedSize",
            "Size",
            "Tag",
            "UniqueSize",
            "VirtualSize"
        ]
    );
    assert_eq!(r["CreatedAt"], "2024-01-01 00:00:00 +0000 UTC");
    assert_eq!(r["Digest"], "<none>");
    assert_eq!(r["Containers"], "N/A");
    assert!(r["CreatedSince"].as_str().expect("since").ends_with(" ago"));
    assert_eq!(r["ID"].as_str().expect("id").len(), 12);
}

#[test]
fn default_tables_are_padded_as_dockers_tabwriter() {
    let st = store();
    three_by_age(&st);
    let out = st.hoist_ok(["images", "old:1"]);
    let lines: Vec<&str> = out.lines().collect();
    // TAG is 3 wide, its cells 1: Docker's tabwriter gives every column at least 10.
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{out}"
    );
    assert!(lines[1].starts_with("old          1         "), "{out}");
}

#[test]
fn inspect_has_dockers_fields_in_dockers_order_with_4_space_indent() {
    let st = store();
    three_by_age(&st);
    let out = st.hoist_ok(["inspect", "old:1"]);
    assert!(
        out.starts_with("[\n    {\n        \"Id\": \"sha256:"),
        "{out}"
    );
    let v: Value = serde_json::from_str(&out).expect("json");
    let keys: Vec<String> = {
        // Field order as printed (serde_json's map sorts, so read it from the text).
        out.lines()
            .filter(|l| l.starts_with("        \"") && !l.starts_with("         "))
            .map(|l| l.trim().split('"').nth(1).unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        keys,
        [
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
            "Os",
            "Size",
            "VirtualSize",
            "GraphDriver",
            "RootFS",
            "Metadata",
            "Manifest",
            "Layers"
        ]
    );
    let i = &v[0];
    assert_eq!(i["RepoTags"], serde_json::json!(["old:1"]));
    assert_eq!(i["RepoDigests"], serde_json::json!([]));
    assert_eq!(i["Created"], "2024-01-01T00:00:00Z");
    assert_eq!(i["Config"]["Hostname"], "");
    assert_eq!(i["Config"]["User"], "");
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["sh", "-c", "echo"]));
    assert_eq!(i["Config"]["Entrypoint"], Value::Null);
    assert_eq!(i["RootFS"]["Type"], "layers");
    assert_eq!(i["Metadata"]["LastTagTime"], "0001-01-01T00:00:00Z");

    let missing = st
        .command()
        .args(["inspect", "no/such:image"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&missing.stdout), "[]\n");
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "Error: No such image: no/such:image\n"
    );
}

// ------------------------------------------------------------------ version, info, system prune, load hints

#[test]
fn version_prints_the_client_as_docker_does_and_formats() {
    let st = store();
    let out = st.hoist_ok(["version"]);
    assert!(out.starts_with("Client:\n Version:           "), "{out}");
    assert!(out.contains(" OS/Arch:           linux/"), "{out}");
    let v: Value =
        serde_json::from_str(&st.hoist_ok(["version", "--format", "json"])).expect("json");
    assert_eq!(v["Client"]["Version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(st.hoist_ok(["version", "-f", "{{.Client.Os}}"]), "linux\n");
}

#[test]
fn info_counts_the_store_and_lists_registries_logged_in() {
    let st = store();
    three_by_age(&st);
    let cfg = hoist_testkit::scratch_dir();
    std::fs::write(
        cfg.path().join("config.json"),
        r#"{"auths": {"https://index.docker.io/v1/": {}, "localhost:5000": {"auth": "eDp5"}}}"#,
    )
    .expect("config.json");
    let out = st
        .command()
        .env("DOCKER_CONFIG", cfg.path())
        .args(["info", "--format", "json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["Images"], 4);
    assert_eq!(v["Tags"], 3);
    assert_eq!(v["Layers"], 4);
    assert_eq!(
        v["LoggedIn"],
        serde_json::json!(["docker.io", "localhost:5000"])
    );
    assert_eq!(v["HoistRootDir"], st.path().display().to_string());
    let text = st
        .command()
        .env("DOCKER_CONFIG", cfg.path())
        .arg("info")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(" Images: 4\n"), "{text}");
    assert!(
        text.contains(" Logged in to: docker.io, localhost:5000\n"),
        "{text}"
    );
}

#[test]
fn system_prune_asks_as_docker_does_and_removes_dangling_images_with_force() {
    let st = store();
    three_by_age(&st);
    // No answer (stdin is empty): nothing is removed.
    let out = st.hoist_ok(["system", "prune"]);
    assert!(
        out.starts_with("WARNING! This will remove:\n  - all dangling images\n"),
        "{out}"
    );
    assert!(
        out.contains("Are you sure you want to continue? [y/N] "),
        "{out}"
    );
    assert_eq!(listed(&st, &[]).len(), 4);
    let out = st.hoist_ok(["system", "prune", "-f"]);
    assert!(out.contains("Deleted Images:\ndeleted: sha256:"), "{out}");
    assert!(out.contains("\n\nTotal reclaimed space: "), "{out}");
    assert_eq!(listed(&st, &[]), ["peerbench/app:new", "peer:mid", "old:1"]);
}

#[test]
fn load_of_an_empty_file_or_a_rootfs_tarball_points_to_import() {
    let st = store();
    let dir = hoist_testkit::scratch_dir();
    let empty = dir.path().join("empty.tar");
    std::fs::write(&empty, b"").expect("write");
    let err = st.hoist_err(["load", "-i", empty.to_str().expect("utf-8")]);
    assert!(
        err.contains("the input is empty") && err.contains("hoist import"),
        "{err}"
    );
    let rootfs = dir.path().join("rootfs.tar");
    std::fs::write(
        &rootfs,
        layer_tar(&[("bin/sh", b"#!"), ("etc/passwd", b"root")]),
    )
    .expect("write");
    let err = st.hoist_err(["load", "-i", rootfs.to_str().expect("utf-8")]);
    assert!(err.contains("use `hoist import FILE"), "{err}");
}

#[test]
fn system_df_takes_templates_and_tables_as_docker() {
    let st = store();
    three_by_age(&st);
    assert_eq!(
        st.hoist_ok(["system", "df", "--format", "{{.Type}}: {{.TotalCount}}"]),
        "Images: 4\nLayers: 4\nUnreferenced blobs: 0\n"
    );
    let out = st.hoist_ok(["system", "df"]);
    assert!(
        out.starts_with("TYPE                 TOTAL     ACTIVE    SIZE"),
        "{out}"
    );
    let out = st.hoist_ok(["system", "df", "--format", r"table {{.Type}}\t{{.Active}}"]);
    assert!(
        out.starts_with("TYPE                 ACTIVE\nImages               3\n"),
        "{out}"
    );
}

#[test]
fn images_takes_its_default_format_from_docker_config_images_format() {
    let st = store();
    three_by_age(&st);
    let cfg = hoist_testkit::scratch_dir();
    std::fs::write(
        cfg.path().join("config.json"),
        r#"{"imagesFormat": "{{.Repository}}={{.Tag}}"}"#,
    )
    .expect("config.json");
    let run = |args: &[&str]| {
        let out = st
            .command()
            .env("DOCKER_CONFIG", cfg.path())
            .args(args)
            .output()
            .expect("run");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run(&["images", "old:1"]), "old=1\n");
    // An explicit --format and -q win, as in Docker.
    assert_eq!(run(&["images", "--format", "{{.Tag}}", "old:1"]), "1\n");
    assert_eq!(run(&["images", "-q", "old:1"]).trim().len(), 12);
}

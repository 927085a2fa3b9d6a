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

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

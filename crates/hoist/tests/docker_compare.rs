//! The same images in the suite's dockerd and in hoist (`docker save` →
//! `hoist load`), then `images`, `history` and `inspect` through both
//! command lines, compared field by field. Values that differ by nature are
//! listed below with the reason; everything else must be equal.
//!
//! The suite's peer is Debian's docker.io 20.10 (Engine API 1.41). Where the
//! API version decides a field it is said beside the field: `inspect` still
//! has `Container`, `ContainerConfig` and `DockerVersion` at 1.41 (gone from
//! API 1.45), and `images` has no `Containers` count unless asked (`N/A`).
//!
//! Run: `bash scripts/test.sh --exec cargo test -p hoist --test docker_compare`.

use hoist_testkit::*;
use serde_json::Value;
use std::collections::BTreeSet;

/// `images --format '{{json .}}'` fields whose values differ by nature.
const IMAGES_DIFFER: &[(&str, &str)] = &[];

/// Sizes are Docker's content size (files' bytes) on both sides, equal
/// against overlay2, which measures what `lstat` says as hoist does. vfs
/// counts the tar headers' sizes instead (no symlink targets), so against
/// vfs the sizes are left to `sizes_are_dockers_content_size`.
fn with_sizes<'a>(differ: &[(&'a str, &'a str)], fields: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut out = differ.to_vec();
    if std::env::var("HOIST_TEST_DOCKER_DRIVER").as_deref() != Ok("overlay2") {
        out.extend(
            fields
                .iter()
                .map(|f| (*f, "vfs counts tar headers, not lstat sizes")),
        );
    }
    out
}

/// `history --format '{{json .}}'` fields whose values differ by nature.
const HISTORY_DIFFER: &[(&str, &str)] = &[
    // The daemon that built the image keeps the builder's intermediate images,
    // so it names each step's image; a store that loaded the image (hoist, or a
    // daemon after `docker load`) has only the top one and says <missing>.
    (
        "ID",
        "the building daemon keeps intermediate images (checked for the top row)",
    ),
];

/// `image inspect` fields whose values differ by nature.
const INSPECT_DIFFER: &[(&str, &str)] = &[
    // The daemon has the fixture under its own tag too; hoist only the one saved.
    (
        "RepoTags",
        "the daemon also has the fixture's own tag (hoist's must be among Docker's)",
    ),
    // The parent image exists only in the daemon that built the image.
    ("Parent", "the building daemon's intermediate image"),
    // Storage details of each side: overlay2/vfs paths against hoist's store.
    ("GraphDriver", "each side's own storage"),
    // When `docker tag` last ran in the daemon; hoist keeps Docker's zero time of a loaded image.
    ("Metadata", "the daemon's own tagging time"),
];

fn hoist_store() -> TempStore {
    TempStore::with_bin(hoist_bin!())
}

/// The fixtures under fresh names in both: Docker's tag, and hoist loading Docker's save of it.
struct Both {
    docker: Docker,
    hoist: TempStore,
    images: Vec<String>,
}

impl Drop for Both {
    fn drop(&mut self) {
        for i in &self.images {
            self.docker.rmi(i);
        }
    }
}

/// A Dockerfile that sets every field of the image config Docker users meet,
/// on the base fixture, with no RUN (so it builds offline in a moment).
const CONFIG_DOCKERFILE: &str = r#"FROM hoist-test/base:latest
LABEL b="two words" a=1
ENV X=1 Y="y y"
EXPOSE 80/tcp 53/udp
VOLUME /data /cache
WORKDIR /work
USER 1000:1000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD ["/bin/true"]
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo && echo <ok>"]
"#;

/// The fixtures, and an image built here with every config field set, under
/// fresh names in both.
fn both() -> Both {
    let docker = docker();
    let mut images: Vec<String> = [BASE_IMAGE, APP_IMAGE]
        .iter()
        .map(|i| docker.tag_unique(i))
        .collect();
    let ctx = scratch_dir();
    std::fs::write(ctx.path().join("Dockerfile"), CONFIG_DOCKERFILE).expect("Dockerfile");
    let configured = format!(
        "{}-config:latest",
        images[0].split(':').next().expect("name")
    );
    let out = docker
        .command()
        .env("DOCKER_BUILDKIT", "0")
        // --no-cache: tests build in parallel and remove their images (and the
        // intermediate ones with them) when done; a shared cache would vanish under another build.
        .args([
            "build",
            "-q",
            "--no-cache",
            "--network",
            "none",
            "-t",
            &configured,
        ])
        .arg(ctx.path())
        .output()
        .expect("docker build");
    assert_success("docker build of the config image", &out);
    images.push(configured);
    let dir = scratch_dir();
    let archive = dir.path().join("both.tar");
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    docker.save_many(&refs, &archive);
    let hoist = hoist_store();
    hoist.hoist_ok(["load", "-q", "-i", archive.to_str().expect("utf-8 path")]);
    Both {
        docker,
        hoist,
        images,
    }
}

impl Both {
    /// `docker ARGS…` with the time zone of hoist's output (UTC), stdout.
    fn docker_out(&self, args: &[&str]) -> String {
        let out = self
            .docker
            .command()
            .env("TZ", "UTC")
            .args(args)
            .output()
            .expect("run docker");
        assert_success(&format!("docker {args:?}"), &out)
    }

    fn hoist_out(&self, args: &[&str]) -> String {
        self.hoist.hoist_ok(args)
    }
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Compares two JSON objects key by key: the same keys, and equal values
/// except the `differ` ones.
fn compare(what: &str, docker: &Value, hoist: &Value, differ: &[(&str, &str)]) {
    let d = docker
        .as_object()
        .unwrap_or_else(|| panic!("{what}: docker gave {docker}"));
    let h = hoist
        .as_object()
        .unwrap_or_else(|| panic!("{what}: hoist gave {hoist}"));
    let dk: BTreeSet<&String> = d.keys().collect();
    let hk: BTreeSet<&String> = h.keys().collect();
    let missing: Vec<_> = dk.difference(&hk).collect();
    assert!(
        missing.is_empty(),
        "{what}: hoist lacks Docker's fields {missing:?}"
    );
    for (k, dv) in d {
        if differ.iter().any(|(f, _)| f == k) {
            continue;
        }
        if k == "CreatedSince" && same_age(dv, &h[k]) {
            continue;
        }
        assert_eq!(
            &h[k], dv,
            "{what}: field {k} differs (docker {dv}, hoist {})",
            h[k]
        );
    }
}

/// "4 seconds ago" and "5 seconds ago": the same age read a second apart (the
/// fixtures are seconds old when the suite starts).
fn same_age(a: &Value, b: &Value) -> bool {
    let parse = |v: &Value| -> Option<(i64, String)> {
        let s = v.as_str()?;
        let (n, rest) = s.split_once(' ')?;
        Some((
            n.parse().ok()?,
            rest.trim_end_matches("s ago")
                .trim_end_matches(" ago")
                .to_owned(),
        ))
    };
    match (parse(a), parse(b)) {
        (Some((x, u)), Some((y, w))) => u == w && (x - y).abs() <= 1,
        _ => false,
    }
}

#[test]
fn images_json_is_dockers_field_by_field() {
    let b = both();
    for img in &b.images {
        let repo = img.split(':').next().expect("repository");
        let args = ["images", "--format", "{{json .}}", repo];
        let mut d = json_lines(&b.docker_out(&args));
        let mut h = json_lines(&b.hoist_out(&args));
        if d[0]["CreatedSince"] != h[0]["CreatedSince"] {
            // A minute may have turned between the two commands; ask again.
            d = json_lines(&b.docker_out(&args));
            h = json_lines(&b.hoist_out(&args));
        }
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(h.len(), 1, "{h:?}");
        compare(
            &format!("images {repo}"),
            &d[0],
            &h[0],
            &with_sizes(IMAGES_DIFFER, &["Size", "VirtualSize"]),
        );
        let extra: Vec<_> = h[0]
            .as_object()
            .expect("object")
            .keys()
            .filter(|k| d[0].get(k.as_str()).is_none())
            .collect();
        assert!(
            extra.is_empty(),
            "hoist's images has fields Docker has not: {extra:?}"
        );
    }
}

#[test]
fn images_tables_are_dockers_text() {
    let b = both();
    let repo = b.images[1].split(':').next().expect("repository");
    for format in [
        r"table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedAt}}",
        "{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}}",
        r"table {{.ID}}\t{{.Repository}}",
    ] {
        let args = ["images", "--format", format, repo];
        assert_eq!(
            b.hoist_out(&args),
            b.docker_out(&args),
            "images --format {format:?}"
        );
    }
    // --digests: neither side has a repository digest for an image that was
    // built or loaded, not pulled (hoist's are recorded by pull and push).
    let args = [
        "images",
        "--digests",
        "--format",
        r"table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}",
        repo,
    ];
    assert_eq!(b.hoist_out(&args), b.docker_out(&args), "images --digests");
    let args = ["images", "--no-trunc", "-q", repo];
    assert_eq!(
        b.hoist_out(&args),
        b.docker_out(&args),
        "images -q --no-trunc"
    );
}

#[test]
fn history_is_dockers_field_by_field() {
    let b = both();
    for img in &b.images {
        for extra in [&[][..], &["--no-trunc"][..], &["--human=false"][..]] {
            let mut args = vec!["history", "--format", "{{json .}}"];
            args.extend_from_slice(extra);
            args.push(img);
            let d = json_lines(&b.docker_out(&args));
            let h = json_lines(&b.hoist_out(&args));
            assert_eq!(d.len(), h.len(), "history {img} {extra:?}: rows");
            for (i, (dr, hr)) in d.iter().zip(&h).enumerate() {
                compare(
                    &format!("history {img} {extra:?} row {i}"),
                    dr,
                    hr,
                    &with_sizes(HISTORY_DIFFER, &["Size"]),
                );
            }
            assert_eq!(
                d[0]["ID"], h[0]["ID"],
                "history {img}: the top row is the image"
            );
        }
        let args = [
            "history",
            "--format",
            r"table {{.CreatedBy}}\t{{.Comment}}",
            img,
        ];
        assert_eq!(
            b.hoist_out(&args),
            b.docker_out(&args),
            "history table of {img}"
        );
    }
}

#[test]
fn inspect_is_dockers_field_by_field_in_dockers_order() {
    let b = both();
    for img in &b.images {
        let d_text = b.docker_out(&["image", "inspect", img]);
        let h_text = b.hoist_out(&["inspect", img]);
        let d: Value = serde_json::from_str(&d_text).expect("docker json");
        let h: Value = serde_json::from_str(&h_text).expect("hoist json");
        compare(
            &format!("inspect {img}"),
            &d[0],
            &h[0],
            &with_sizes(INSPECT_DIFFER, &["Size", "VirtualSize"]),
        );
        let tags = d[0]["RepoTags"].as_array().expect("tags");
        for t in h[0]["RepoTags"].as_array().expect("tags") {
            assert!(
                tags.contains(t),
                "inspect {img}: hoist's tag {t} is not Docker's"
            );
        }
        // Docker's field order and 4-space indentation: the top-level keys in
        // the order printed, hoist's own fields (Manifest, Layers) after.
        let keys = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("        \"") && !l.starts_with("         "))
                .map(|l| l.trim().split('"').nth(1).unwrap_or("").to_owned())
                .collect()
        };
        let dk = keys(&d_text);
        let hk = keys(&h_text);
        assert_eq!(&hk[..dk.len()], &dk[..], "inspect {img}: field order");
        assert_eq!(
            &hk[dk.len()..],
            ["Manifest", "Layers"],
            "inspect {img}: hoist's own fields"
        );
        // The nested Config, key for key in Docker's order.
        let config = |text: &str| -> String {
            let start = text.find("        \"Config\": {").expect("Config");
            let end = text[start..].find("\n        },").expect("end of Config");
            text[start..start + end].to_owned()
        };
        assert_eq!(
            config(&h_text),
            config(&d_text),
            "inspect {img}: Config as printed"
        );
    }
}

#[test]
fn inspect_templates_print_as_docker() {
    let b = both();
    for img in &b.images {
        for t in [
            "{{.Config.Cmd}}",
            "{{.Config.Entrypoint}}",
            "{{.Config.Env}}",
            "{{.Config.Labels}}",
            "{{.Config.ExposedPorts}} {{.Config.Volumes}} {{.Config.OnBuild}}",
            "{{.Config.StopSignal}} {{json .Config.Healthcheck}}",
            r#"{{index .Config.Labels "b"}} {{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"#,
            "{{json .Config}}",
            "{{json .ContainerConfig.Cmd}}",
            "{{.Config.WorkingDir}}|{{.Config.User}}",
            "{{.Os}}/{{.Architecture}}",
            "{{len .RootFS.Layers}} {{index .RootFS.Layers 0}}",
            "{{.Created}} {{.Comment}} {{.Author}} {{.DockerVersion}}",
            "{{json .RootFS}}",
            "{{range .RootFS.Layers}}{{println .}}{{end}}",
            r#"{{join .Config.Cmd " "}}"#,
            "{{upper .Os}} {{title .Os}} {{truncate .Id 12}}",
        ] {
            let args = ["image", "inspect", "-f", t, img];
            let hargs = ["inspect", "-f", t, img];
            assert_eq!(
                b.hoist_out(&hargs),
                b.docker_out(&args),
                "inspect -f {t:?} {img}"
            );
        }
    }
}

#[test]
fn errors_are_in_dockers_words() {
    let b = both();
    let d = b
        .docker
        .command()
        .args(["image", "inspect", "hoist-test/no-such:image"])
        .output()
        .expect("run docker");
    let h = b
        .hoist
        .command()
        .args(["inspect", "hoist-test/no-such:image"])
        .output()
        .expect("run hoist");
    assert_eq!(h.status.code(), d.status.code());
    assert_eq!(
        String::from_utf8_lossy(&h.stdout),
        String::from_utf8_lossy(&d.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&h.stderr),
        String::from_utf8_lossy(&d.stderr)
    );
}

/// `images`, `history` and `inspect` show Docker's content size (files'
/// bytes and symlinks' target lengths, as overlay2 counts), not tar bytes:
/// equal to the daemon's against overlay2, within the tar headers' slack
/// against vfs.
#[test]
fn sizes_are_dockers_content_size() {
    let b = both();
    let overlay2 = std::env::var("HOIST_TEST_DOCKER_DRIVER").as_deref() == Ok("overlay2");
    for img in &b.images {
        let h: Value = serde_json::from_str(&b.hoist_out(&["inspect", img])).expect("json");
        let d = b.docker.inspect(img);
        let (hs, ds) = (
            h[0]["Size"].as_u64().expect("hoist size"),
            d["Size"].as_u64().expect("docker size"),
        );
        let layers = h[0]["Layers"].as_array().expect("layers").len() as u64;
        if overlay2 {
            assert_eq!(hs, ds, "{img}: content size");
        } else {
            assert!(
                hs >= ds && hs - ds < 4096 * layers.max(1),
                "{img}: {hs} against vfs's {ds}"
            );
        }
        let args = ["history", "--human=false", "--format", "{{.Size}}", img];
        let hist: u64 = b
            .hoist_out(&args)
            .lines()
            .map(|l| l.parse::<u64>().expect("bytes"))
            .sum();
        assert_eq!(hist, hs, "{img}: history's sizes add up to the image's");
        if overlay2 {
            assert_eq!(
                b.hoist_out(&args),
                b.docker_out(&args),
                "{img}: history sizes"
            );
        }
    }
}

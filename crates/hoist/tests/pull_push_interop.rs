//! `hoist pull`, `hoist push` and `hoist copy docker://…` against the real
//! peers: the CNCF distribution registry (`docker-registry`: plain,
//! htpasswd, token) and `hoist serve`; a real dockerd pulls and runs what
//! hoist pushed, skopeo reads it; hoist pulls what `docker push` and
//! `skopeo copy` pushed, and what it pulled runs after `hoist save | docker load`.

#[path = "common/ocilayout.rs"]
mod ocilayout;

use hoist_testkit::serve::HoistServe;
use hoist_testkit::*;
use std::path::Path;
use std::process::{Command, Stdio};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new(require_tool("skopeo"))
        .arg("--insecure-policy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo")
}

/// APP_IMAGE pushed by dockerd to `addr` under a fresh name; returns the
/// name and Docker's image ID. The local tag is removed again.
fn pushed_by_docker(addr: &str, repo: &str) -> (String, String) {
    let d = docker();
    let name = format!("{addr}/{repo}/{}:v1", unique_name("app"));
    d.tag(APP_IMAGE, &name);
    d.run_ok(["push", &name]);
    let id = d.image_id(&name);
    d.rmi(&name);
    (name, id)
}

/// The image `name` of `store` goes to dockerd through `hoist save | docker
/// load`, gets Docker's image ID `id` and runs.
fn runs_after_save_and_load(store: &TempStore, name: &str, id: &str, scratch: &Path) {
    let d = docker();
    let tar = scratch.join(format!("{}.tar", unique_name("saved")));
    store.hoist_ok(["save", "-o", p(&tar), name]);
    let loaded = d.load(&tar);
    assert!(loaded.contains(name), "docker load said: {loaded}");
    assert_eq!(d.image_id(name), id, "image ID changed through hoist pull");
    d.assert_runs_app(name);
    d.rmi(name);
}

/// Docker's reference as `docker pull` prints it last: `docker.io/…` or `host:port/…`.
fn last_line(out: &str) -> &str {
    out.lines().last().unwrap_or_default()
}

/// dockerd pushes, hoist pulls (Docker's lines), the image runs in Docker;
/// hoist pushes it under a new name, dockerd pulls and runs it, skopeo
/// copies it out; a second pull is up to date and fetches nothing.
fn round_trip(addr: &str) {
    let scratch = scratch_dir();
    let (name, id) = pushed_by_docker(addr, "docker");
    let store = TempStore::with_bin(hoist_bin!());

    let out = store.hoist_ok(["pull", &name]);
    for want in [
        ": Pulling from docker/",
        ": Pulling fs layer",
        ": Download complete",
        ": Pull complete",
        "Digest: sha256:",
        &format!("Status: Downloaded newer image for {name}"),
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    assert_eq!(last_line(&out), name);
    let again = store.hoist_ok(["pull", &name]);
    assert!(
        again.contains(": Already exists") && !again.contains("Pull complete"),
        "{again}"
    );
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );
    assert_eq!(store.hoist_ok(["pull", "-q", &name]).trim(), name);
    runs_after_save_and_load(&store, &name, &id, scratch.path());

    let pushed = format!("{addr}/hoist/{}:v2", unique_name("app"));
    store.hoist_ok(["tag", &name, &pushed]);
    let out = store.hoist_ok(["push", &pushed]);
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}]",
            pushed.trim_end_matches(":v2")
        )),
        "{out}"
    );
    assert!(out.contains(": Preparing"), "{out}");
    // The layers are in the repository it was pulled from: mounted, not sent.
    assert!(out.contains(": Mounted from docker/"), "{out}");
    assert!(!out.contains(": Pushed"), "{out}");
    let last = last_line(&out);
    assert!(
        last.starts_with("v2: digest: sha256:") && last.contains(" size: "),
        "{out}"
    );
    // The same manifest digest as the source registry had: nothing was rewritten.
    let digest_line = out
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("digest in the last line");
    let src_digest = store
        .hoist_ok(["digest", &format!("docker://{name}")])
        .trim()
        .to_owned();
    assert_eq!(digest_line, src_digest);

    let d = docker();
    d.run_ok(["pull", &pushed]);
    assert_eq!(
        d.image_id(&pushed),
        id,
        "image ID changed through hoist push"
    );
    d.assert_runs_app(&pushed);
    d.rmi(&pushed);

    let oci = scratch.path().join("skopeo-oci");
    let out = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{pushed}"),
        &format!("oci:{}:v2", p(&oci)),
    ]);
    assert_success("skopeo copy of what hoist pushed", &out);
    assert!(oci.join("index.json").is_file());
}

#[test]
fn pull_and_push_round_trip_through_docker_registry() {
    let reg = Registry::start();
    round_trip(reg.addr());
}

#[test]
fn pull_and_push_round_trip_through_hoist_serve() {
    let scratch = scratch_dir();
    let s = HoistServe::start(&scratch.path().join("registry"), &[]);
    round_trip(&s.addr);
}

#[test]
fn hoist_pulls_what_skopeo_pushed_and_it_runs() {
    let reg = Registry::start();
    let scratch = scratch_dir();
    let d = docker();
    let [hflag, host] = d.skopeo_host_args("src");
    let name = format!("{}/skopeo/{}:v1", reg.addr(), unique_name("app"));
    let out = skopeo(&[
        "copy",
        &hflag,
        &host,
        "--dest-tls-verify=false",
        &format!("docker-daemon:{APP_IMAGE}"),
        &format!("docker://{name}"),
    ]);
    assert_success("skopeo copy into docker-registry", &out);
    let store = TempStore::with_bin(hoist_bin!());
    store.hoist_ok(["pull", "-q", &name]);
    runs_after_save_and_load(&store, &name, &d.image_id(APP_IMAGE), scratch.path());
}

#[test]
fn copy_docker_to_docker_and_push_with_htpasswd_credentials() {
    let plain = Registry::start();
    let auth = Registry::start_with_htpasswd("alice", "alice-pw");
    let scratch = scratch_dir();
    let (name, id) = pushed_by_docker(plain.addr(), "plain");
    let store = TempStore::with_bin(hoist_bin!());
    let target = format!("docker://{}/alice/app:v1", auth.addr());

    let e = store.hoist_err(["copy", "-q", &format!("docker://{name}"), &target]);
    assert!(
        e.contains("401") || e.to_lowercase().contains("unauthorized"),
        "{e}"
    );
    let e = store.hoist_err([
        "copy",
        "-q",
        "--dest-creds",
        "alice:wrong",
        &format!("docker://{name}"),
        &target,
    ]);
    assert!(
        e.contains("401") || e.to_lowercase().contains("unauthorized"),
        "{e}"
    );
    store.hoist_ok([
        "copy",
        "-q",
        "--dest-creds",
        "alice:alice-pw",
        &format!("docker://{name}"),
        &target,
    ]);
    // Out again into an OCI layout with the source's credentials (the
    // manifest keeps Docker's media type: bytes are not rewritten), and
    // from there into the store, where the image runs.
    let oci = scratch.path().join("oci");
    store.hoist_ok([
        "copy",
        "-q",
        "--src-creds",
        "alice:alice-pw",
        "--src-tls-verify=false",
        &target,
        &format!("oci:{}:v1", p(&oci)),
    ]);
    let back = format!("{}/back/app:v1", plain.addr());
    store.hoist_ok([
        "copy",
        "-q",
        &format!("oci:{}:v1", p(&oci)),
        &format!("store:{back}"),
    ]);
    runs_after_save_and_load(&store, &back, &id, scratch.path());

    // pull and push take --creds as skopeo does; the pulled image runs.
    let pulled = format!("{}/alice/app:v1", auth.addr());
    store.hoist_ok(["pull", "-q", "--creds", "alice:alice-pw", &pulled]);
    runs_after_save_and_load(&store, &pulled, &id, scratch.path());
    let again = format!("{}/alice/again:v3", auth.addr());
    store.hoist_ok(["tag", &pulled, &again]);
    store.hoist_err(["push", "-q", &again]);
    store.hoist_ok(["push", "-q", "--creds", "alice:alice-pw", &again]);
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:alice-pw",
        &format!("docker://{again}"),
    ]);
    assert_success("skopeo inspect of what hoist pushed", &out);
}

#[test]
fn push_and_pull_through_docker_registry_with_token_auth() {
    let scratch = scratch_dir();
    let dir = scratch.path();
    let htpasswd = dir.join("htpasswd");
    let out = Command::new(require_tool("htpasswd"))
        .args(["-Bbc", p(&htpasswd), "alice", "alice-pw"])
        .output()
        .expect("run htpasswd");
    assert_success("htpasswd", &out);
    let (key, crt) = issuer_key(dir);
    // A hoist serve issues the tokens; docker-registry validates them.
    let issuer = HoistServe::start_with(&dir.join("issuer.log"), |cmd, addr| {
        cmd.arg("--root")
            .arg(dir.join("issuer-root"))
            .args(["--token-realm", &format!("http://{addr}/token")])
            .args(["--token-service", "hoist-test"])
            .args(["--token-issuer", "hoist-test-issuer"])
            .arg("--token-rootcertbundle")
            .arg(&crt)
            .arg("--token-key")
            .arg(&key)
            .arg("--htpasswd")
            .arg(&htpasswd);
    });
    let reg = Registry::start_with_auth_config(&format!(
        "  token:\n    realm: http://{}/token\n    service: hoist-test\n    issuer: hoist-test-issuer\n    rootcertbundle: {}\n",
        issuer.addr,
        crt.display()
    ));
    let plain = Registry::start();
    let (name, id) = pushed_by_docker(plain.addr(), "plain");
    let store = TempStore::with_bin(hoist_bin!());
    store.hoist_ok(["pull", "-q", &name]);
    let target = format!("{}/alice/app:v1", reg.addr());
    store.hoist_ok(["tag", &name, &target]);
    store.hoist_err(["push", "-q", "--creds", "alice:wrong", &target]);
    store.hoist_ok(["push", "-q", "--creds", "alice:alice-pw", &target]);
    store.hoist_ok(["rmi", &target, &name]);
    store.hoist_ok(["pull", "-q", "--creds", "alice:alice-pw", &target]);
    runs_after_save_and_load(&store, &target, &id, dir);
}

/// `GET path` on `addr` (plain HTTP/1.1): the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read response");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// Bytes of response bodies `hoist serve` has sent so far (its /metrics).
fn bytes_sent(addr: &str) -> u64 {
    http_get(addr, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("hoist_registry_http_response_body_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("hoist serve counts the bytes it sends")
}

/// Where the partial blobs in `store`'s ingest would resume: the offsets
/// their `.state` files record.
fn resume_points(store: &Path) -> Vec<u64> {
    let Ok(rd) = std::fs::read_dir(store.join("ingest")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".state"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?)))
        .collect()
}

/// A tar holding one file of `size` incompressible bytes.
fn big_layer(dir: &Path, size: usize) -> std::path::PathBuf {
    let root = dir.join("bigroot");
    std::fs::create_dir_all(&root).expect("mkdir");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(root.join("big.bin"), &data).expect("write big file");
    let tar = dir.join("big.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .expect("run tar");
    assert_success("tar", &out);
    tar
}

#[test]
fn a_pull_killed_at_random_moments_leaves_fsck_clean_and_resumes() {
    let scratch = scratch_dir();
    let serve = HoistServe::start(&scratch.path().join("registry"), &[]);
    let name = format!("{}/big/{}:v1", serve.addr, unique_name("img"));
    let size = 192 << 20;
    let tar = big_layer(scratch.path(), size);
    let src = TempStore::with_bin(hoist_bin!());
    src.hoist_ok(["import", p(&tar), &name]);
    src.hoist_ok(["push", "-q", &name]);

    let store = TempStore::with_bin(hoist_bin!());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(1);
    eprintln!("kill moments seeded with {seed}");
    let mut x = seed | 1;
    for round in 0..5 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let after = std::time::Duration::from_millis(50 + u64::from(x % 600));
        let mut child = store
            .command()
            .args(["pull", "-q", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hoist pull");
        std::thread::sleep(after);
        // SIGKILL: no handler runs, whatever the pull was doing.
        let _ = child.kill();
        let status = child.wait().expect("wait for hoist pull");
        let out = store.hoist_ok(["fsck"]);
        assert!(
            out.contains("clean"),
            "round {round}, killed after {after:?} ({status}): {out}"
        );
    }

    let resume_at = resume_points(store.path()).into_iter().max().unwrap_or(0);
    let finished = !store.hoist_ok(["images", "-q", &name]).trim().is_empty();
    assert!(
        finished || resume_at > 0,
        "five killed pulls left nothing to resume from"
    );
    let before = bytes_sent(&serve.addr);
    assert_eq!(store.hoist_ok(["pull", "-q", &name]).trim(), name);
    let fetched = bytes_sent(&serve.addr) - before;
    // The layer as the registry holds it (push gzipped the imported tar).
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_str(&assert_success("skopeo inspect --raw", &raw)).expect("manifest");
    let layer = manifest["layers"][0]["size"].as_u64().expect("layer size");
    eprintln!("resumed at {resume_at}: fetched {fetched} of {layer} bytes");
    // The layer is fetched from where the killed pulls checkpointed it
    // (manifest and config are a few hundred bytes more).
    assert!(
        fetched <= layer - resume_at + 64 * 1024,
        "fetched {fetched} bytes of a {layer}-byte layer resumable at {resume_at}"
    );
    assert!(store.hoist_ok(["fsck"]).contains("clean"));
    assert!(
        resume_points(store.path()).is_empty(),
        "no partial blob is left"
    );
    assert_eq!(
        store.hoist_ok(["images", "-q", &name]).trim(),
        src.hoist_ok(["images", "-q", &name]).trim(),
        "the pulled image is the pushed one"
    );
}

#[test]
fn a_loaded_image_is_pushed_gzipped_and_docker_runs_it() {
    let reg = Registry::start();
    let scratch = scratch_dir();
    let d = docker();
    let tar = scratch.path().join("app.tar");
    d.save(APP_IMAGE, &tar);
    let id = d.image_id(APP_IMAGE);
    let store = TempStore::with_bin(hoist_bin!());
    store.hoist_ok(["load", "-i", p(&tar)]);
    let name = format!("{}/loaded/{}:v1", reg.addr(), unique_name("app"));
    store.hoist_ok(["tag", APP_IMAGE, &name]);
    let out = store.hoist_ok(["push", &name]);
    assert!(out.contains(": Pushed"), "{out}");

    // The layers were stored as docker save wrote them (plain tar): they went out gzipped.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_str(&assert_success("skopeo inspect --raw", &raw)).expect("manifest");
    let layers = manifest["layers"].as_array().expect("layers");
    assert!(!layers.is_empty());
    for l in layers {
        let mt = l["mediaType"].as_str().unwrap_or_default();
        assert!(mt.ends_with("gzip"), "layer not gzipped: {mt}");
    }

    d.run_ok(["pull", &name]);
    assert_eq!(d.image_id(&name), id, "image ID changed through hoist push");
    d.assert_runs_app(&name);
    d.rmi(&name);
}

#[test]
fn pull_takes_one_platform_or_all_of_an_index_and_push_gives_the_index_back() {
    let reg = Registry::start();
    let scratch = scratch_dir();
    let src = scratch.path().join("src");
    let built = ocilayout::write_layout(
        &src,
        "v1",
        &["linux/amd64", "linux/arm64"],
        200_000,
        serde_json::json!([{ "created_by": "test" }]),
    );
    let name = format!("{}/multi/{}:v1", reg.addr(), unique_name("idx"));
    let store = TempStore::with_bin(hoist_bin!());
    store.hoist_ok([
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:v1", p(&src)),
        &format!("docker://{name}"),
    ]);

    // One platform: its image, named by the index's digest as Docker prints it.
    let arm = built
        .images
        .iter()
        .find(|i| i.platform == "linux/arm64")
        .expect("arm64 image");
    let one = TempStore::with_bin(hoist_bin!());
    let out = one.hoist_ok(["pull", "--platform", "linux/arm64", &name]);
    assert!(out.contains(&format!("Digest: {}", built.top)), "{out}");
    for (d, _) in &arm.layers {
        let short = &d.trim_start_matches("sha256:")[..12];
        assert!(out.contains(&format!("{short}: Pull complete")), "{out}");
    }
    let e = one.hoist_err(["pull", "--platform", "linux/s390x", &name]);
    assert!(e.contains("no image for linux/s390x"), "{e}");

    // Every platform: the index comes along, and push gives it back byte for byte.
    let all = TempStore::with_bin(hoist_bin!());
    all.hoist_ok(["pull", "-q", "--all-platforms", &name]);
    let again = format!("{}/again/{}:v2", reg.addr(), unique_name("idx"));
    all.hoist_ok(["tag", &name, &again]);
    let out = all.hoist_ok(["push", &again]);
    assert!(
        last_line(&out).starts_with(&format!("v2: digest: {} size: ", built.top)),
        "{out}"
    );
}

#[test]
fn two_pulls_of_one_image_at_once_both_finish() {
    let scratch = scratch_dir();
    let serve = HoistServe::start(&scratch.path().join("registry"), &[]);
    let name = format!("{}/big/{}:v1", serve.addr, unique_name("img"));
    let tar = big_layer(scratch.path(), 96 << 20);
    let src = TempStore::with_bin(hoist_bin!());
    src.hoist_ok(["import", p(&tar), &name]);
    src.hoist_ok(["push", "-q", &name]);

    let store = TempStore::with_bin(hoist_bin!());
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            store
                .command()
                .args(["pull", "-q", &name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start hoist pull")
        })
        .collect();
    for child in pulls {
        let out = child.wait_with_output().expect("wait for hoist pull");
        assert_eq!(assert_success("hoist pull", &out).trim(), name);
    }
    assert!(store.hoist_ok(["fsck"]).contains("clean"));
    assert!(
        resume_points(store.path()).is_empty(),
        "a partial blob is left"
    );
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_layer_with_wrong_bytes_is_refused_and_nothing_is_kept_to_resume() {
    let reg = Registry::start();
    let (name, id) = pushed_by_docker(reg.addr(), "tampered");
    // The biggest blob the registry stores is a layer: change one byte.
    let data = files(&reg.root().join("docker/registry/v2/blobs"))
        .into_iter()
        .max_by_key(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .expect("a blob in the registry");
    let good = std::fs::read(&data).expect("read blob");
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&data, &bad).expect("tamper");
    let hex = data
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .expect("blob directory named by its digest")
        .to_owned();

    let store = TempStore::with_bin(hoist_bin!());
    let e = store.hoist_err(["pull", &name]);
    assert!(e.contains(&hex), "the error names the blob: {e}");
    assert!(
        resume_points(store.path()).is_empty(),
        "wrong bytes are kept to resume from"
    );
    assert!(store.hoist_ok(["fsck"]).contains("clean"));
    assert_eq!(store.hoist_ok(["images", "-q"]).trim(), "");

    std::fs::write(&data, &good).expect("restore");
    store.hoist_ok(["pull", "-q", &name]);
    let scratch = scratch_dir();
    runs_after_save_and_load(&store, &name, &id, scratch.path());
}

//! The web page of `hoist serve` in a real browser: skopeo pushes a
//! multi-platform index and a single image, and headless Chromium loads `/`,
//! a repository page and the tag pages, whose DOM must show the repositories,
//! tags, platforms, layer digests and sizes, and history lines, with a
//! hostile history entry shown as text rather than run.

#[path = "common/ocilayout.rs"]
mod ocilayout;

use hoist_testkit::browser::dump_dom;
use hoist_testkit::serve::HoistServe;
use hoist_testkit::{assert_success, scratch_dir, tool};
use std::path::Path;

const XSS: &str = "<script>document.body.setAttribute('data-xss','ran')</script>";

fn push(layout: &Path, tag: &str, dest: &str) {
    let out = tool("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(dest)
        .output()
        .unwrap();
    assert_success(&format!("skopeo copy to {dest}"), &out);
}

fn assert_has(dom: &str, what: &str) {
    assert!(
        dom.contains(what),
        "the page does not show {what:?}:\n{dom}"
    );
}

#[test]
fn chromium_shows_repositories_tags_platforms_layers_and_history() {
    let scratch = scratch_dir();
    let s = HoistServe::start(&scratch.path().join("root"), &[]);
    let history = serde_json::json!([
        { "created": "2024-01-02T03:04:05Z", "created_by": "/bin/sh -c #(nop) ADD file:base in /" },
        { "created": "2024-01-02T03:04:06Z", "created_by": "RUN make install" },
        { "created": "2024-01-02T03:04:07Z", "created_by": XSS, "empty_layer": true }
    ]);
    let multi = ocilayout::write_layout(
        &scratch.path().join("multi"),
        "v1",
        &["linux/amd64", "linux/arm64", "linux/arm/v7"],
        3000,
        history.clone(),
    );
    push(
        &scratch.path().join("multi"),
        "v1",
        &format!("docker://{}/web/multi:v1", s.addr),
    );
    let single = ocilayout::write_layout(
        &scratch.path().join("single"),
        "latest",
        &["linux/amd64"],
        70_000,
        history,
    );
    for tag in ["latest", "1.0"] {
        push(
            &scratch.path().join("single"),
            "latest",
            &format!("docker://{}/web/team/single:{tag}", s.addr),
        );
    }
    let url = |p: &str| format!("http://{}{p}", s.addr);

    // `/` lists both repositories, linking their pages.
    let root = dump_dom(&url("/"));
    assert_has(&root, "href=\"/ui/r/web/multi\"");
    assert_has(&root, ">web/team/single</a>");
    assert_has(&root, "2 repositories");

    // A repository page lists its tags, linking their pages.
    let repo = dump_dom(&url("/ui/r/web/team/single"));
    assert_has(&repo, "href=\"/ui/r/web/team/single/_tags/1.0\"");
    assert_has(&repo, ">latest</a>");

    // The index's tag page: digest, media type, every platform with its
    // manifest, and each image's layers, sizes and history.
    let tag = dump_dom(&url("/ui/r/web/multi/_tags/v1"));
    assert_has(&tag, &multi.top);
    assert_has(&tag, "application/vnd.oci.image.index.v1+json");
    for img in &multi.images {
        assert_has(
            &tag,
            &format!("<td class=\"platform\">{}</td>", img.platform),
        );
        assert_has(
            &tag,
            &format!("href=\"/ui/r/web/multi/_manifests/{}\"", img.manifest),
        );
        assert_has(&tag, &img.config);
        let mut total = 0;
        for (d, size) in &img.layers {
            assert_has(&tag, d);
            assert_has(&tag, &format!("<td class=\"num\">{size}</td>"));
            total += size;
        }
        assert_has(&tag, &format!("Total size: {total} bytes"));
    }
    assert_has(&tag, "/bin/sh -c #(nop) ADD file:base in /");
    assert_has(&tag, "RUN make install");
    assert_has(&tag, "2024-01-02T03:04:05Z");
    // The hostile history entry is text on the page, never a script.
    assert_has(
        &tag,
        "&lt;script&gt;document.body.setAttribute('data-xss','ran')&lt;/script&gt;",
    );
    assert!(
        !tag.contains("<script"),
        "a script element reached the DOM:\n{tag}"
    );
    assert!(
        !tag.contains("data-xss=\"ran\""),
        "the hostile history ran:\n{tag}"
    );

    // A child manifest's own page, reached from the platform link.
    let arm = &multi.images[2];
    let child = dump_dom(&url(&format!(
        "/ui/r/web/multi/_manifests/{}",
        arm.manifest
    )));
    assert_has(&child, "application/vnd.oci.image.manifest.v1+json");
    assert_has(&child, "Platform linux/arm/v7");
    assert_has(&child, &arm.layers[1].0);

    // The single image's tag page: its layers, human sizes and total.
    let img = &single.images[0];
    let page = dump_dom(&url("/ui/r/web/team/single/_tags/1.0"));
    assert_has(&page, &single.top);
    assert_has(&page, "application/vnd.oci.image.manifest.v1+json");
    let total: u64 = img.layers.iter().map(|l| l.1).sum();
    for (d, size) in &img.layers {
        assert_has(&page, d);
        assert_has(&page, &hoist_oci::units::human_size(*size));
    }
    assert_has(&page, &format!("Total size: {total} bytes"));
    assert_has(&page, "RUN make install");
    assert!(s.stop(), "hoist serve did not stop cleanly");
}

//! The OCI distribution-spec conformance suite (v1.1.1, built offline by
//! `scripts/conformance/build.sh`) against `hoist serve` on a fresh root with
//! deletes on: pull, push, content discovery and content management. No spec
//! may fail, and none may be skipped but those these settings skip by design
//! ([`DESIGNED_SKIPS`]).
//!
//! `scripts/test.sh` builds the suite and exports its path as
//! `HOIST_TEST_CONFORMANCE`; the report goes to `HOIST_TEST_CONFORMANCE_REPORT`
//! when set (the script prints the counts from there), else to a scratch
//! directory.

use hoist_testkit::scratch_dir;
use hoist_testkit::serve::HoistServe;
use std::path::PathBuf;
use std::process::Command;

/// The prefix of every real spec's testcase name; the junit file also holds
/// a pseudo-testcase (`html custom reporter`) that always passes.
const SPEC_PREFIX: &str = "OCI Distribution Conformance Tests";

/// The specs these settings skip by design (suffixes of their names after
/// [`SPEC_PREFIX`]), each for its reason; any other skip fails the test.
const DESIGNED_SKIPS: &[(&str, &str)] = &[
    (
        "Pull Setup Get tag name from environment",
        "OCI_TAG_NAME is for registries the suite cannot push to",
    ),
    (
        "Content Discovery Setup Populate registry with test tags (no push)",
        "the same, for content discovery",
    ),
    (
        "Push Cross-Repository Blob Mount Cross-mounting of nonexistent blob should yield session id",
        "runs only when the mount before it answered 202, and hoist mounted the blob (201)",
    ),
    (
        "Push Cross-Repository Blob Mount Cross-mounting without from, and automatic content \
         discovery disabled should return a 202",
        "hoist serve mounts without `from` when auth is off (OCI_AUTOMATIC_CROSSMOUNT=1)",
    ),
];

/// One spec's outcome, as the junit report has it.
#[derive(Debug, PartialEq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// The specs of a ginkgo junit report: (name, outcome, message).
fn parse_junit(xml: &str) -> Vec<(String, Outcome, String)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<testcase ") {
        rest = &rest[i..];
        let end = rest.find("</testcase>").map_or(rest.len(), |e| e + 11);
        let (case, after) = rest.split_at(end);
        rest = after;
        let name = attr(case, "name").unwrap_or_default();
        if !name.starts_with(SPEC_PREFIX) {
            continue;
        }
        let status = attr(case, "status").unwrap_or_default();
        let outcome = if case.contains("<failure") || case.contains("<error") {
            Outcome::Failed
        } else if case.contains("<skipped") || status == "skipped" || status == "pending" {
            Outcome::Skipped
        } else if status == "passed" || status.is_empty() {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        let message = ["<failure", "<error", "<skipped"]
            .iter()
            .find_map(|tag| case.find(tag).and_then(|j| attr(&case[j..], "message")))
            .unwrap_or_default();
        out.push((unescape(&name), outcome, unescape(&message)));
    }
    out
}

/// The value of `key="…"` in the first tag of `s`.
fn attr(s: &str, key: &str) -> Option<String> {
    let tag_end = s.find('>').unwrap_or(s.len());
    let tag = &s[..tag_end];
    let pat = format!(" {key}=\"");
    let i = tag.find(&pat)? + pat.len();
    let j = tag[i..].find('"')?;
    Some(tag[i..i + j].to_owned())
}

fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#xA;", " ")
        .replace("&amp;", "&")
}

#[test]
fn oci_conformance_suite_passes() {
    let suite = PathBuf::from(std::env::var_os("HOIST_TEST_CONFORMANCE").expect(
        "HOIST_TEST_CONFORMANCE is not set: run bash scripts/test.sh, which builds the OCI \
         conformance suite (scripts/conformance/build.sh) and exports its path",
    ));
    assert!(suite.is_file(), "{} is not built", suite.display());
    let scratch = scratch_dir();
    let report = match std::env::var_os("HOIST_TEST_CONFORMANCE_REPORT") {
        Some(d) => PathBuf::from(d),
        None => scratch.path().join("report"),
    };
    std::fs::create_dir_all(&report).unwrap();
    let root = scratch.path().join("registry");
    let serve = HoistServe::start(&root, &[]);
    let out = Command::new(&suite)
        .arg("-ginkgo.no-color")
        .current_dir(&report)
        .env("OCI_ROOT_URL", format!("http://{}", serve.addr))
        .env("OCI_NAMESPACE", "myorg/myrepo")
        .env("OCI_CROSSMOUNT_NAMESPACE", "myorg/other")
        .env("OCI_TEST_PULL", "1")
        .env("OCI_TEST_PUSH", "1")
        .env("OCI_TEST_CONTENT_DISCOVERY", "1")
        .env("OCI_TEST_CONTENT_MANAGEMENT", "1")
        // `hoist serve` without auth mounts a blob from anywhere when the
        // client names no `from` (distribution's behaviour too).
        .env("OCI_AUTOMATIC_CROSSMOUNT", "1")
        .env("OCI_HIDE_SKIPPED_WORKFLOWS", "0")
        .env("OCI_DEBUG", "0")
        .env("OCI_REPORT_DIR", &report)
        .output()
        .expect("run the conformance suite");
    let junit = std::fs::read_to_string(report.join("junit.xml")).unwrap_or_else(|e| {
        panic!(
            "the suite wrote no junit.xml ({e}); it said:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let specs = parse_junit(&junit);
    let count = |o: Outcome| specs.iter().filter(|s| s.1 == o).count();
    let (passed, failed, skipped) = (
        count(Outcome::Passed),
        count(Outcome::Failed),
        count(Outcome::Skipped),
    );
    let summary = format!(
        "OCI conformance v1.1.1 against hoist serve: {} specs, {passed} passed, {failed} failed, \
         {skipped} skipped\n",
        specs.len()
    );
    let mut details = String::new();
    for (name, outcome, message) in &specs {
        if *outcome != Outcome::Passed {
            details.push_str(&format!("  {outcome:?}: {name}: {message}\n"));
        }
    }
    let _ = std::fs::write(report.join("summary.txt"), format!("{summary}{details}"));
    eprint!("{summary}{details}");
    assert!(
        specs.len() >= 79,
        "the report holds {} specs, expected 79: {summary}",
        specs.len()
    );
    assert_eq!(failed, 0, "{summary}{details}\nserve log:\n{}", serve.log());
    let unexplained: Vec<&str> = specs
        .iter()
        .filter(|(name, outcome, _)| {
            *outcome == Outcome::Skipped
                && !DESIGNED_SKIPS.iter().any(|(suffix, _)| {
                    name.strip_prefix(SPEC_PREFIX).map(str::trim) == Some(suffix)
                })
        })
        .map(|(name, _, _)| name.as_str())
        .collect();
    assert!(
        unexplained.is_empty(),
        "skipped, though these settings should run them: {unexplained:#?}\n{summary}{details}"
    );
    assert!(
        out.status.success(),
        "the suite exited {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn junit_parsing_counts_specs_only() {
    let xml = r#"<testsuites><testsuite>
<testcase name="[It] html custom reporter" status="passed"></testcase>
<testcase name="OCI Distribution Conformance Tests Pull a" classname="x" status="passed" time="0.1"></testcase>
<testcase name="OCI Distribution Conformance Tests Pull b" status="failed"><failure message="Expected &#34;404&#34;" type="failed">x</failure></testcase>
<testcase name="OCI Distribution Conformance Tests Push c" status="skipped"><skipped message="skipped - push"></skipped></testcase>
</testsuite></testsuites>"#;
    let specs = parse_junit(xml);
    assert_eq!(specs.len(), 3);
    assert_eq!(specs[0].1, Outcome::Passed);
    assert_eq!(specs[1].1, Outcome::Failed);
    assert_eq!(specs[1].2, "Expected \"404\"");
    assert_eq!(specs[2].1, Outcome::Skipped);
}

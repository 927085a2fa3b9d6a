//! Crash safety (issue 2, section 7): `hoist load` killed with SIGKILL at
//! random moments leaves a store that `hoist fsck` finds clean and that a
//! second load completes; loads of overlapping images at once both succeed;
//! `hoist rmi` racing a load of an image that shares its layers leaves both
//! done and the store clean.
//!
//! The random moments come from a seed printed by each test; set
//! `HOIST_CRASH_SEED` to replay one.

#[path = "common/imagegen.rs"]
mod imagegen;

use imagegen::*;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The kill loop stops starting new rounds after this long…
const KILL_BUDGET: Duration = Duration::from_secs(30);
/// …once it has done at least this many rounds; and never does more than
const MIN_ROUNDS: usize = 8;
/// this many.
const MAX_ROUNDS: usize = 25;

const TAG_A: &str = "hoist-test/crash-a:1";
const TAG_B: &str = "hoist-test/crash-b:1";
const TAG_C: &str = "hoist-test/crash-c:1";

/// Three images sharing a base layer (B and C share two), plain and gzip
/// layers of 12-16 MiB: ~75 MiB of archive, ~100 MiB once inflated, which a
/// debug build loads in a few tenths of a second.
struct Corpus {
    a: Image,
    b: Image,
    c: Image,
}

fn corpus() -> Corpus {
    const MIB: usize = 1 << 20;
    let base = Layer::random(100, 12 * MIB, false);
    let b1 = Layer::random(201, 16 * MIB, true);
    Corpus {
        a: Image::new(
            Some(TAG_A),
            vec![
                base.clone(),
                Layer::random(101, 16 * MIB, false),
                Layer::random(102, 12 * MIB, true),
            ],
        ),
        b: Image::new(
            Some(TAG_B),
            vec![
                base.clone(),
                b1.clone(),
                Layer::random(202, 12 * MIB, false),
            ],
        ),
        c: Image::new(
            Some(TAG_C),
            vec![base, b1, Layer::random(301, 16 * MIB, false)],
        ),
    }
}

fn rng(test: &str) -> rand::rngs::StdRng {
    let seed = std::env::var("HOIST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: HOIST_CRASH_SEED={seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// The (repository:tag → image ID) pairs `hoist images --format json --no-trunc` lists.
fn listed(fx: &Fixture) -> BTreeSet<(String, String)> {
    fx.hoist_ok(&["images", "--format", "json", "--no-trunc"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("images json line");
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (format!("{}:{}", s("Repository"), s("Tag")), s("ID"))
        })
        .collect()
}

/// Asserts `hoist images` lists exactly `images`, each under its tag and ID.
fn assert_images(fx: &Fixture, images: &[&Image], when: &str) {
    let want: BTreeSet<(String, String)> = images
        .iter()
        .map(|i| (i.tag.clone().unwrap(), i.id()))
        .collect();
    assert_eq!(listed(fx), want, "hoist images {when}");
}

/// A `hoist load` killed with SIGKILL `after` it started. `None` when the
/// kill landed while hoist was running; the time it took when it was done
/// before that.
fn load_and_kill(fx: &Fixture, archive: &Path, via: Via, after: Duration) -> Option<Duration> {
    let start = Instant::now();
    let (mut child, feeder) = spawn_load(fx.command(), archive, via);
    let mut finished = None;
    while start.elapsed() < after {
        if child.try_wait().expect("poll hoist load").is_some() {
            finished = Some(start.elapsed());
            break;
        }
        std::thread::sleep(
            after
                .saturating_sub(start.elapsed())
                .min(Duration::from_millis(2)),
        );
    }
    if finished.is_none() {
        // SIGKILL; the child is not reaped yet, so the pid is still ours.
        child.kill().expect("kill hoist load");
    }
    let out = child.wait_with_output().expect("wait for hoist load");
    if let Some(f) = feeder {
        f.join().expect("stdin feeder");
    }
    if out.status.signal() == Some(libc::SIGKILL) {
        return None;
    }
    hoist_testkit::assert_success("hoist load that outran its kill", &out);
    Some(finished.unwrap_or_else(|| start.elapsed()))
}

/// How long a load of `archive` takes here, into a fresh store.
fn time_load(archive: &Path, via: Via, all: &[&Image]) -> Duration {
    let fx = Fixture::new();
    let t = Instant::now();
    fx.load_ok(archive, via);
    let took = t.elapsed();
    assert_images(&fx, all, "after a load to time it");
    fx.fsck_clean("after an uninterrupted load");
    took
}

#[test]
fn load_killed_at_random_moments_leaves_a_clean_store() {
    let mut rng = rng("load_killed_at_random_moments_leaves_a_clean_store");
    let c = corpus();
    let all = [&c.a, &c.b, &c.c];
    let work = Fixture::new();
    let docker = work.archive(
        "crash-docker.tar",
        &docker_members(&[c.a.clone(), c.b.clone(), c.c.clone()]),
    );
    let oci = work.archive(
        "crash-oci.tar",
        &oci_members(&[c.a.clone(), c.b.clone(), c.c.clone()]),
    );
    let only_a = work.archive("crash-a.tar", &docker_members(std::slice::from_ref(&c.a)));
    let mut archives: Vec<(&PathBuf, Via, Duration)> = [
        (&docker, Via::File),
        (&docker, Via::Stdin),
        (&oci, Via::File),
        (&oci, Via::Stdin),
    ]
    .into_iter()
    .map(|(a, via)| (a, via, time_load(a, via, &all)))
    .collect();
    for (a, via, t) in &archives {
        eprintln!("a full load of {} via {via:?} takes {t:?}", a.display());
    }

    let start = Instant::now();
    let (mut kills, mut interrupted) = (0, 0);
    for round in 0..MAX_ROUNDS {
        if round >= MIN_ROUNDS && start.elapsed() > KILL_BUDGET {
            break;
        }
        let fx = Fixture::new();
        // Sometimes the store already has image A, so the killed load reuses its layers.
        if rng.random_bool(0.3) {
            fx.load_ok(&only_a, Via::File);
        }
        // One or two killed loads in a row on the same store.
        for k in 0..rng.random_range(1..=2) {
            let pick = rng.random_range(0..archives.len());
            let (archive, via, full) = archives[pick];
            let after = full.mul_f64(rng.random_range(0.0..1.0));
            let name = archive.file_name().unwrap().to_string_lossy();
            let when =
                format!("round {round}, kill {k}: {name} via {via:?} killed after {after:?}");
            kills += 1;
            match load_and_kill(&fx, archive, via, after) {
                None => interrupted += 1,
                // Loads run faster than timed (a quieter machine, layers
                // already there): aim the next kills within the shorter time.
                Some(took) => archives[pick].2 = full.min(took),
            }
            fx.fsck_clean(&when);
            let complete: BTreeSet<_> = all
                .iter()
                .map(|i| (i.tag.clone().unwrap(), i.id()))
                .collect();
            let seen = listed(&fx);
            assert!(
                seen.is_subset(&complete),
                "{when}: hoist images lists what no complete load made: {seen:?}"
            );
        }
        let (archive, via, _) = archives[rng.random_range(0..archives.len())];
        fx.load_ok(archive, via);
        let when = format!("round {round}, after the load that completed");
        assert_images(&fx, &all, &when);
        fx.fsck_clean(&when);
    }
    eprintln!(
        "{kills} kills, {interrupted} in the middle of a load, in {:?}",
        start.elapsed()
    );
    assert!(
        interrupted * 2 >= kills,
        "only {interrupted} of {kills} kills landed before the load was done: the loop does not test much"
    );
}

/// Runs two `hoist load`s at once into `fx`; both must succeed.
fn load_both_at_once(fx: &Fixture, first: (&Path, Via), second: (&Path, Via)) {
    let (c1, f1) = spawn_load(fx.command(), first.0, first.1);
    let (c2, f2) = spawn_load(fx.command(), second.0, second.1);
    let o1 = c1.wait_with_output().expect("wait");
    let o2 = c2.wait_with_output().expect("wait");
    for f in [f1, f2].into_iter().flatten() {
        f.join().expect("stdin feeder");
    }
    hoist_testkit::assert_success(&format!("hoist load of {}", first.0.display()), &o1);
    hoist_testkit::assert_success(&format!("hoist load of {}", second.0.display()), &o2);
}

#[test]
fn concurrent_loads_of_overlapping_images_both_succeed() {
    let c = corpus();
    let work = Fixture::new();
    // A alone; B and C: all three share the base layer, B and C share two.
    let a = work.archive("a.tar", &docker_members(std::slice::from_ref(&c.a)));
    let bc = work.archive("bc.tar", &oci_members(&[c.b.clone(), c.c.clone()]));
    let abc = work.archive(
        "abc.tar",
        &docker_members(&[c.a.clone(), c.b.clone(), c.c.clone()]),
    );
    let rounds: [[(&Path, Via); 2]; 4] = [
        [(&a, Via::File), (&bc, Via::File)],
        [(&bc, Via::Stdin), (&a, Via::File)],
        [(&a, Via::Stdin), (&bc, Via::Stdin)],
        // The same images twice at once: every blob and row written by both.
        [(&abc, Via::File), (&abc, Via::Stdin)],
    ];
    for (i, [first, second]) in rounds.into_iter().enumerate() {
        let fx = Fixture::new();
        load_both_at_once(&fx, first, second);
        let when = format!("after concurrent loads, round {i}");
        assert_images(&fx, &[&c.a, &c.b, &c.c], &when);
        fx.fsck_clean(&when);
        assert!(fx.ingest().is_empty(), "{when}: ingest/ is not empty");
    }
}

#[test]
fn rmi_racing_a_load_of_shared_layers_both_succeed() {
    let mut rng = rng("rmi_racing_a_load_of_shared_layers_both_succeed");
    let c = corpus();
    let work = Fixture::new();
    let a = work.archive("a.tar", &docker_members(std::slice::from_ref(&c.a)));
    let b = work.archive("b.tar", &docker_members(std::slice::from_ref(&c.b)));
    let full = time_load(&b, Via::File, &[&c.b]);
    // The rmi starts before, with, or at some point during the load.
    let offsets = [-0.2, 0.0, 0.1, 0.3, 0.6, 0.9];
    for (i, off) in offsets.into_iter().enumerate() {
        let fx = Fixture::new();
        fx.load_ok(&a, Via::File);
        let via = if rng.random_bool(0.5) {
            Via::File
        } else {
            Via::Stdin
        };
        let delay = full.mul_f64(f64::abs(off));
        let rmi = |fx: &Fixture| {
            fx.command()
                .args(["rmi", TAG_A])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn hoist rmi")
        };
        let (rmi_out, load_out) = if off < 0.0 {
            let r = rmi(&fx);
            std::thread::sleep(delay);
            let l = run_load(fx.command(), &b, via);
            (r.wait_with_output().expect("wait for hoist rmi"), l)
        } else {
            let (child, feeder) = spawn_load(fx.command(), &b, via);
            std::thread::sleep(delay);
            let r = rmi(&fx);
            let l = child.wait_with_output().expect("wait for hoist load");
            if let Some(f) = feeder {
                f.join().expect("stdin feeder");
            }
            (r.wait_with_output().expect("wait for hoist rmi"), l)
        };
        let when =
            format!("round {i}: rmi {off:+} of the load's time after it started, load via {via:?}");
        hoist_testkit::assert_success(&format!("hoist load ({when})"), &load_out);
        let stdout = hoist_testkit::assert_success(&format!("hoist rmi ({when})"), &rmi_out);
        assert!(
            stdout.contains(&format!("Untagged: {TAG_A}"))
                && stdout.contains(&format!("Deleted: {}", c.a.id())),
            "{when}: hoist rmi printed:\n{stdout}"
        );
        assert_images(&fx, &[&c.b], &when);
        fx.fsck_clean(&when);
        // B's layers are all there and whole: it saves and loads again elsewhere.
        let saved = fx.work.join("b-again.tar");
        fx.hoist_ok(&["save", "-o", saved.to_str().unwrap(), TAG_B]);
        let other = Fixture::new();
        other.load_ok(&saved, Via::File);
        assert_images(
            &other,
            &[&c.b],
            &format!("{when}, saved and loaded elsewhere"),
        );
    }
}

//! Docker's per-layer output of `pull` and `push`, on stdout as Docker
//! prints it: on a terminal one line per layer, redrawn in place
//! (`Downloading [==>   ] 1.2MB/3.4MB`); otherwise one line per change of a
//! layer's status and no progress bars, as Docker prints when piped.
//!
//! The copy engine names a layer by its diffID when the destination checks
//! diffIDs and by its digest otherwise; Docker names it by its digest when
//! pulling and by its diffID when pushing. [`Announcing`] reads each image's
//! manifest and config as the engine asks for them, announces the layers
//! (`Pulling fs layer` / `Preparing`) and teaches the display both names.

use crate::progress::docker_progress;
use hoist_oci::{media_type, Config, Descriptor, Digest, Document};
use hoist_transport::{BlobBody, ImageSource, Progress, RawManifest, TransportError, MAX_JSON};
use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which of Docker's two vocabularies to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// `Pulling fs layer`, `Downloading`, `Download complete`, `Pull complete`.
    Pull,
    /// `Preparing`, `Pushing`, `Pushed`, `Layer already exists`.
    Push,
}

/// Shortest time between two redraws of one layer's bar.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

struct Layer {
    /// Its line on a terminal (0 = first layer line).
    line: usize,
    status: &'static str,
    total: u64,
    done: u64,
    drawn: Option<Instant>,
    /// Finished one way or the other.
    settled: bool,
    /// The repository it was mounted from.
    from: Option<String>,
}

impl Layer {
    fn new(line: usize, status: &'static str, settled: bool) -> Self {
        Layer {
            line,
            status,
            total: 0,
            done: 0,
            drawn: None,
            settled,
            from: None,
        }
    }

    /// What the line says after the id: the status, its repository or bar.
    fn label(&self) -> String {
        match (self.status, &self.from) {
            ("Mounted from", Some(f)) => format!("Mounted from {f}"),
            ("Downloading" | "Pushing", _) => {
                format!("{} {}", self.status, docker_progress(self.done, self.total))
            }
            (s, _) => s.to_owned(),
        }
    }
}

struct State {
    /// Where the lines go: stdout, or a buffer in tests.
    out: Box<dyn Write + Send>,
    /// Display ids in the order their lines were printed.
    order: Vec<String>,
    layers: HashMap<String, Layer>,
    /// Any short id the engine or the source uses → the display id.
    alias: HashMap<String, String>,
}

/// Draws Docker's layer lines; see the module docs.
pub struct DockerProgress {
    verb: Verb,
    quiet: bool,
    tty: bool,
    state: Mutex<State>,
}

/// The 12 hex digits Docker shows for a digest.
fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

impl DockerProgress {
    /// Layer lines for `verb`, redrawn in place when stdout is a terminal;
    /// none at all when `quiet`.
    pub fn new(verb: Verb, quiet: bool) -> Self {
        Self::to(
            verb,
            quiet,
            std::io::stdout().is_terminal(),
            Box::new(std::io::stdout()),
        )
    }

    fn to(verb: Verb, quiet: bool, tty: bool, out: Box<dyn Write + Send>) -> Self {
        DockerProgress {
            verb,
            quiet,
            tty,
            state: Mutex::new(State {
                out,
                order: Vec::new(),
                layers: HashMap::new(),
                alias: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Announces an image's layers: `(digest, diffID)` in manifest order;
    /// `present` tells those the destination already has.
    pub fn announce(&self, layers: &[(Digest, Option<Digest>)], present: &dyn Fn(&Digest) -> bool) {
        if self.quiet {
            return;
        }
        let mut st = self.lock();
        let mut order: Vec<&(Digest, Option<Digest>)> = layers.iter().collect();
        // Docker lists a push top layer first.
        if self.verb == Verb::Push {
            order.reverse();
        }
        for (digest, diff_id) in order {
            let id = match (self.verb, diff_id) {
                (Verb::Push, Some(d)) => short(d),
                _ => short(digest),
            };
            st.alias.insert(short(digest), id.clone());
            if let Some(d) = diff_id {
                st.alias.insert(short(d), id.clone());
            }
            if st.layers.contains_key(&id) {
                continue;
            }
            let have = present(digest);
            let status = match (self.verb, have) {
                (Verb::Pull, true) => "Already exists",
                (Verb::Pull, false) => "Pulling fs layer",
                (Verb::Push, _) => "Preparing",
            };
            let line = st.order.len();
            st.order.push(id.clone());
            st.layers.insert(
                id.clone(),
                Layer::new(line, status, have && self.verb == Verb::Pull),
            );
            println_flush(&mut st.out, &format!("{id}: {status}"));
        }
    }

    /// Bytes of blob `d` arrived before the engine saw it (a large blob
    /// fetched whole); its download completes when all are in.
    pub fn fetched(&self, d: &Descriptor, n: u64) {
        let id = short(&d.digest);
        self.update(&id, |l| {
            l.total = d.size;
            l.done = (l.done + n).min(d.size);
            if l.done == d.size {
                Some(vec!["Verifying Checksum", "Download complete"])
            } else {
                l.status = "Downloading";
                None
            }
        });
    }

    /// Blob `d` was mounted from another repository of the registry.
    pub fn mounted(&self, d: &Descriptor, from: &str) {
        let id = short(&d.digest);
        // Configs move silently, as Docker shows them.
        if !self.lock().alias.contains_key(&id) {
            return;
        }
        self.update(&id, |l| {
            (!l.settled).then(|| {
                l.from = Some(from.to_owned());
                vec!["Mounted from"]
            })
        })
    }

    /// Ends a pull: every downloaded layer is committed (`Pull complete`).
    pub fn complete(&self) {
        if self.verb != Verb::Pull {
            return;
        }
        let ids: Vec<String> = self.lock().order.clone();
        for id in ids {
            self.update(&id, |l| {
                (l.status != "Already exists" && l.status != "Pull complete")
                    .then(|| vec!["Pull complete"])
            });
        }
    }

    /// Applies `f` to the layer `id` names (alias or display id), creating
    /// a line for a layer nobody announced; `f` returns statuses to pass
    /// through (each printed when not on a terminal, the last one kept).
    fn update(&self, id: &str, f: impl FnOnce(&mut Layer) -> Option<Vec<&'static str>>) {
        if self.quiet {
            return;
        }
        let mut st = self.lock();
        let id = st.alias.get(id).cloned().unwrap_or_else(|| id.to_owned());
        if !st.layers.contains_key(&id) {
            let line = st.order.len();
            st.order.push(id.clone());
            st.layers.insert(id.clone(), Layer::new(line, "", false));
            if self.tty {
                println_flush(&mut st.out, &format!("{id}: "));
            }
        }
        let lines = st.order.len();
        let State { out: w, layers, .. } = &mut *st;
        let Some(l) = layers.get_mut(&id) else {
            return;
        };
        let before = l.status;
        let statuses = f(l);
        let mut out = Vec::new();
        if let Some(s) = statuses {
            for status in s {
                l.status = status;
                out.push(format!("{id}: {}", l.label()));
            }
            l.settled = true;
        }
        if self.tty {
            let now = Instant::now();
            let changed = l.status != before || !out.is_empty();
            let due = l
                .drawn
                .is_none_or(|t| now.duration_since(t) >= REDRAW_EVERY);
            if changed || due {
                l.drawn = Some(now);
                redraw(w, lines - l.line, &format!("{id}: {}", l.label()));
            }
        } else {
            // Without a terminal Docker drops progress bars: only changes of status show.
            if out.is_empty()
                && l.status != before
                && !matches!(l.status, "Downloading" | "Pushing")
            {
                out.push(format!("{id}: {}", l.status));
            }
            for line in out {
                println_flush(w, &line);
            }
        }
    }
}

/// Rewrites the line `up` lines above the cursor and comes back.
fn redraw(out: &mut dyn Write, up: usize, text: &str) {
    let _ = write!(out, "\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B");
    let _ = out.flush();
}

fn println_flush(out: &mut dyn Write, text: &str) {
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

impl Progress for DockerProgress {
    fn start(&self, id: &str, total: u64) {
        let status = match self.verb {
            Verb::Pull => "Downloading",
            Verb::Push => "Pushing",
        };
        self.update(id, |l| {
            if !l.settled {
                l.total = total;
                l.status = status;
            }
            None
        });
    }

    fn advance(&self, id: &str, n: u64) {
        self.update(id, |l| {
            if !l.settled {
                l.done = (l.done + n).min(l.total);
            }
            None
        });
    }

    fn finish(&self, id: &str, skipped: bool) {
        let verb = self.verb;
        self.update(id, |l| {
            if l.settled {
                return None;
            }
            Some(match (verb, skipped) {
                (Verb::Pull, true) => vec!["Already exists"],
                (Verb::Pull, false) => vec!["Verifying Checksum", "Download complete"],
                (Verb::Push, true) => vec!["Layer already exists"],
                (Verb::Push, false) => vec!["Pushed"],
            })
        });
    }
}

/// A source that announces each image's layers to a [`DockerProgress`]
/// as the engine reads its manifest; configs it read are handed out again
/// from memory.
pub struct Announcing<'a> {
    inner: &'a dyn ImageSource,
    progress: &'a DockerProgress,
    present: &'a (dyn Fn(&Digest) -> bool + Sync),
    configs: Mutex<HashMap<Digest, Vec<u8>>>,
}

impl<'a> Announcing<'a> {
    /// Wraps `inner`; `present` tells the blobs the destination has.
    pub fn new(
        inner: &'a dyn ImageSource,
        progress: &'a DockerProgress,
        present: &'a (dyn Fn(&Digest) -> bool + Sync),
    ) -> Self {
        Announcing {
            inner,
            progress,
            present,
            configs: Mutex::new(HashMap::new()),
        }
    }

    /// Announces the layers of `m` when it is an image manifest.
    fn seen(&self, m: &RawManifest) -> Result<(), TransportError> {
        let Ok(Document::Manifest(man)) = Document::parse(&m.bytes, Some(&m.media_type)) else {
            return Ok(());
        };
        let mut diff_ids: Vec<Option<Digest>> = vec![None; man.layers.len()];
        if media_type::is_config(&man.config.media_type) {
            let bytes = self.config(&man.config)?;
            if let Ok(c) = Config::parse(&bytes) {
                if c.rootfs.diff_ids.len() == man.layers.len() {
                    diff_ids = c.rootfs.diff_ids.into_iter().map(Some).collect();
                }
            }
        }
        let layers: Vec<(Digest, Option<Digest>)> = man
            .layers
            .iter()
            .map(|l| l.digest.clone())
            .zip(diff_ids)
            .collect();
        self.progress.announce(&layers, self.present);
        Ok(())
    }

    /// The config's bytes (unverified here: the destination checks them).
    fn config(&self, d: &Descriptor) -> Result<Vec<u8>, TransportError> {
        if let Some(b) = self
            .configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&d.digest)
        {
            return Ok(b.clone());
        }
        let mut bytes = Vec::new();
        self.inner
            .blob(d, 0)?
            .into_reader()?
            .take(MAX_JSON + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| TransportError::io(format!("config {}", d.digest), e))?;
        self.configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(d.digest.clone(), bytes.clone());
        Ok(bytes)
    }
}

impl ImageSource for Announcing<'_> {
    fn top(&self) -> Result<RawManifest, TransportError> {
        let m = self.inner.top()?;
        self.seen(&m)?;
        Ok(m)
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        let m = self.inner.manifest(d)?;
        self.seen(&m)?;
        Ok(m)
    }

    fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError> {
        let cached = self
            .configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&d.digest)
            .cloned();
        match cached {
            Some(b) if offset == 0 => Ok(BlobBody::bytes(b)),
            _ => self.inner.blob(d, offset),
        }
    }

    fn blame(&self, d: &Descriptor, e: TransportError) -> TransportError {
        self.inner.blame(d, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn digest(b: u8) -> Digest {
        Digest::sha256(&[b])
    }

    #[test]
    fn a_piped_pull_prints_one_line_per_change_with_blob_digests() {
        let buf = Buf::default();
        let p = DockerProgress::to(Verb::Pull, false, false, Box::new(buf.clone()));
        let (a, a_diff, b) = (digest(1), digest(2), digest(3));
        p.announce(
            &[(a.clone(), Some(a_diff.clone())), (b.clone(), None)],
            &|d| *d == b,
        );
        // The engine names a layer going into the store by its diffID.
        p.start(&short(&a_diff), 2_000_000);
        p.advance(&short(&a_diff), 1_000_000);
        p.advance(&short(&a_diff), 1_000_000);
        p.finish(&short(&a_diff), false);
        p.finish(&short(&b), true);
        p.complete();
        let (a, b) = (short(&a), short(&b));
        assert_eq!(
            buf.text(),
            format!(
                "{a}: Pulling fs layer\n{b}: Already exists\n{a}: Verifying Checksum\n\
                 {a}: Download complete\n{a}: Pull complete\n"
            )
        );
    }

    #[test]
    fn a_push_names_layers_by_diff_id_top_first() {
        let buf = Buf::default();
        let p = DockerProgress::to(Verb::Push, false, false, Box::new(buf.clone()));
        let (a, a_diff, b, b_diff) = (digest(1), digest(2), digest(3), digest(4));
        p.announce(
            &[
                (a.clone(), Some(a_diff.clone())),
                (b.clone(), Some(b_diff.clone())),
            ],
            &|_| false,
        );
        // A registry destination gets no diffIDs: the engine names blobs by digest.
        p.finish(&short(&a), true);
        p.start(&short(&b), 10);
        p.advance(&short(&b), 10);
        p.finish(&short(&b), false);
        let (a, b) = (short(&a_diff), short(&b_diff));
        assert_eq!(
            buf.text(),
            format!("{b}: Preparing\n{a}: Preparing\n{a}: Layer already exists\n{b}: Pushed\n")
        );
    }

    #[test]
    fn a_blob_fetched_whole_completes_once() {
        let buf = Buf::default();
        let p = DockerProgress::to(Verb::Pull, false, false, Box::new(buf.clone()));
        let a = digest(1);
        p.announce(&[(a.clone(), None)], &|_| false);
        let d = Descriptor::new(media_type::OCI_LAYER_GZIP, a.clone(), 100);
        p.fetched(&d, 60);
        p.fetched(&d, 40);
        // The engine then moves the fetched file and reports it too.
        p.start(&short(&a), 100);
        p.advance(&short(&a), 100);
        p.finish(&short(&a), false);
        let a = short(&a);
        assert_eq!(
            buf.text(),
            format!("{a}: Pulling fs layer\n{a}: Verifying Checksum\n{a}: Download complete\n")
        );
    }

    #[test]
    fn a_terminal_gets_bars_redrawn_in_place() {
        let buf = Buf::default();
        let p = DockerProgress::to(Verb::Pull, false, true, Box::new(buf.clone()));
        let (a, b) = (digest(1), digest(2));
        p.announce(&[(a.clone(), None), (b.clone(), None)], &|_| false);
        p.start(&short(&a), 3_400_000);
        // Redraws are at most every REDRAW_EVERY apart.
        std::thread::sleep(REDRAW_EVERY);
        p.advance(&short(&a), 1_200_000);
        let text = buf.text();
        // Layer a is two lines up from the cursor (below layer b's line).
        assert!(
            text.contains(&format!("\x1b[2A\r\x1b[2K{}: Downloading [", short(&a))),
            "{text:?}"
        );
        assert!(text.contains("]    1.2MB/3.4MB\r"), "{text:?}");
    }

    #[test]
    fn a_mounted_layer_names_its_repository_and_a_config_shows_nothing() {
        let buf = Buf::default();
        let p = DockerProgress::to(Verb::Push, false, false, Box::new(buf.clone()));
        let (a, a_diff) = (digest(1), digest(2));
        p.announce(&[(a.clone(), Some(a_diff.clone()))], &|_| false);
        let layer = Descriptor::new(media_type::OCI_LAYER_GZIP, a.clone(), 10);
        p.mounted(&layer, "library/base");
        p.finish(&short(&a), true);
        let config = Descriptor::new(media_type::OCI_CONFIG, digest(9), 10);
        p.mounted(&config, "library/base");
        let a = short(&a_diff);
        assert_eq!(
            buf.text(),
            format!("{a}: Preparing\n{a}: Mounted from library/base\n")
        );
    }

    #[test]
    fn quiet_prints_nothing() {
        let buf = Buf::default();
        let p = DockerProgress::to(Verb::Pull, true, false, Box::new(buf.clone()));
        p.announce(&[(digest(1), None)], &|_| false);
        p.finish(&short(&digest(1)), false);
        p.complete();
        assert_eq!(buf.text(), "");
    }
}

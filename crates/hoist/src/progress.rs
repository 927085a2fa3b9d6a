//! Docker-style `Loading layer` bars on a terminal; nothing when stderr is not one.

use hoist_transport::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

/// Bars per layer, drawn on stderr.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    verb: &'static str,
}

impl Bars {
    /// Bars that draw only when stderr is a terminal.
    pub fn new(verb: &'static str) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        Some(Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            verb,
        })
    }
}

impl Progress for Bars {
    fn start(&self, id: &str, total: u64) {
        let pb = self.multi.add(ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template("{prefix}: {msg} [{bar:50}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_prefix(id.to_owned());
        pb.set_message(self.verb);
        if let Ok(mut m) = self.bars.lock() {
            m.insert(id.to_owned(), pb);
        }
    }

    fn advance(&self, id: &str, n: u64) {
        if let Some(pb) = self.bars.lock().ok().and_then(|m| m.get(id).cloned()) {
            pb.inc(n);
        }
    }

    fn finish(&self, id: &str, skipped: bool) {
        let pb = self.bars.lock().ok().and_then(|mut m| m.remove(id));
        match pb {
            Some(pb) => pb.finish(),
            None if skipped => {
                let _ = self.multi.println(format!("{id}: Layer already exists"));
            }
            None => {}
        }
    }
}

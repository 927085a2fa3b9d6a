//! Docker-style `Loading layer` bars on a terminal; nothing when stderr is not one.

use crate::output::human_size_precision;
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

/// Docker's jsonmessage progress: a 50-wide bar whose head is always `>`,
/// then `%8v/%v` of units.HumanSize (decimal units, 4 digits).
pub(crate) fn docker_progress(current: u64, total: u64) -> String {
    let filled = if total == 0 {
        0
    } else {
        ((current as f64 / total as f64 * 100.0) as usize / 2).min(50)
    };
    format!(
        "[{}>{}] {:>8}/{}",
        "=".repeat(filled),
        " ".repeat(50 - filled),
        human_size_precision(current, 4),
        human_size_precision(total, 4)
    )
}

impl Progress for Bars {
    fn start(&self, id: &str, total: u64) {
        let pb = self.multi.add(ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template("{prefix}: {msg} {docker_progress}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key(
                    "docker_progress",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&docker_progress(s.pos(), s.len().unwrap_or(0)));
                    },
                ),
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

#[cfg(test)]
mod tests {
    use super::docker_progress;

    #[test]
    fn bars_read_like_dockers() {
        assert_eq!(
            docker_progress(3_011_000, 3_011_000),
            format!("[{}>]  3.011MB/3.011MB", "=".repeat(50))
        );
        assert_eq!(
            docker_progress(500, 1000),
            format!("[{}>{}]     500B/1kB", "=".repeat(25), " ".repeat(25))
        );
    }
}

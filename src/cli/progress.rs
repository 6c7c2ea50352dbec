//! Progress of a long command on stderr: a live bar on a terminal
//! (indicatif), plain lines at most once a second otherwise, so that logs and
//! scripts read it too.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub(super) struct Progress {
    /// What is counted, e.g. "rebuild" with unit "notifications".
    label: &'static str,
    unit: &'static str,
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

impl Progress {
    pub(super) fn new(label: &'static str, unit: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let template = format!("{label}: {{bar:40}} {{pos}}/{{len}} {unit} ({{percent}}%, {{per_sec}}, eta {{eta}})");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            label,
            unit,
            bar,
            last_line: None,
        }
    }

    /// `done` of `total` so far.
    pub(super) fn update(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(done));
            bar.set_position(done);
            return;
        }
        let due = self
            .last_line
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(1));
        if due || done >= total {
            self.last_line = Some(Instant::now());
            let percent = (done * 100).checked_div(total).unwrap_or(100);
            eprintln!("{}: {done}/{total} {} ({percent}%)", self.label, self.unit);
        }
    }

    /// `done` so far, of a total not known in advance.
    pub(super) fn count(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(done);
            bar.set_position(done);
            return;
        }
        if self
            .last_line
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(1))
        {
            self.last_line = Some(Instant::now());
            eprintln!("{}: {done} {}", self.label, self.unit);
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

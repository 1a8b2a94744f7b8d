//! The runner's progress display on stderr: one line per step, redrawn in place with a
//! spinner, the current phase and its percentage on a terminal; on anything else (a log file,
//! CI) a line when a step starts and one when it ends.

use std::io::{IsTerminal, Write};
use std::time::Instant;

const SPIN: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// The display.
#[derive(Debug)]
pub struct Progress {
    tty: bool,
    total: usize,
    index: usize,
    label: String,
    started: Instant,
    tick: usize,
    run_start: Instant,
}

impl Progress {
    /// A display for `total` steps.
    pub fn new(total: usize) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            total,
            index: 0,
            label: String::new(),
            started: Instant::now(),
            tick: 0,
            run_start: Instant::now(),
        }
    }

    fn prefix(&self) -> String {
        format!("[{:>2}/{}] {:<14}", self.index, self.total, self.label)
    }

    /// Starts the next step.
    pub fn start(&mut self, label: &str) {
        self.index += 1;
        self.label = label.to_owned();
        self.started = Instant::now();
        if !self.tty {
            eprintln!("{} started", self.prefix());
        } else {
            self.update("starting", None);
        }
    }

    /// Shows the current phase (and how far it is) of the running step.
    pub fn update(&mut self, phase: &str, percent: Option<f64>) {
        if !self.tty {
            return;
        }
        self.tick = (self.tick + 1) % SPIN.len();
        let pct = percent.map_or(String::new(), |p| format!(" {p:>3.0}%"));
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r\x1b[2K{} {} {phase}{pct}  ({:.0} s, total {})",
            self.prefix(),
            SPIN[self.tick],
            self.started.elapsed().as_secs_f64(),
            clock(self.run_start.elapsed().as_secs())
        );
        let _ = e.flush();
    }

    /// Ends the running step with a one-line outcome.
    pub fn finish(&mut self, ok: bool, summary: &str) {
        let mark = if ok { '✓' } else { '✗' };
        let line = format!(
            "{} {mark} {summary}  ({:.0} s)",
            self.prefix(),
            self.started.elapsed().as_secs_f64()
        );
        if self.tty {
            eprintln!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// `m:ss`.
pub fn clock(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_minutes_and_seconds() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(75), "1:15");
        assert_eq!(clock(1200), "20:00");
    }

    #[test]
    fn steps_count_up() {
        let mut p = Progress::new(3);
        p.start("dr-100k");
        p.update("full-rate", Some(40.0));
        p.finish(true, "done");
        assert_eq!(p.index, 1);
        assert!(p.prefix().starts_with("[ 1/3] dr-100k"));
    }
}

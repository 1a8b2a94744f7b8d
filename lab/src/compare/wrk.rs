//! The load generator: `wrk` in the client namespace, with a Lua `done` hook that prints the
//! figures wrk keeps (requests, bytes, error classes, latency percentiles) on one line.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Marker of the line the Lua hook prints.
const MARK: &str = "RVSCMP";

/// The Lua script given to wrk (`-s`): only `done`, so wrk's per-request path is unchanged.
pub const SCRIPT: &str = r#"-- rvs-compare: wrk's own figures on one line, read by the lab.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RVSCMP %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.1f\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"#;

/// wrk's error classes: socket errors (connect, read, write, timeout) and responses that were
/// not 2xx/3xx (`status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// Failed connects.
    pub connect: u64,
    /// Read errors (including connections reset or closed mid-response).
    pub read: u64,
    /// Write errors.
    pub write: u64,
    /// Non-2xx/3xx responses.
    pub status: u64,
    /// Requests that got no answer within wrk's timeout.
    pub timeout: u64,
}

impl Errors {
    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout
    }
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkResult {
    /// Completed requests.
    pub requests: u64,
    /// Bytes read (headers and bodies).
    pub bytes: u64,
    /// Measured duration in seconds.
    pub duration_s: f64,
    /// Error counts.
    pub errors: Errors,
    /// Latency percentiles and extremes, milliseconds (request written → response read; the
    /// TCP handshake of a new connection is not included).
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest latency.
    pub max_ms: f64,
    /// Mean latency.
    pub mean_ms: f64,
}

impl WrkResult {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.requests as f64 / self.duration_s
        } else {
            0.0
        }
    }

    /// Megabytes (10^6 bytes) read per second.
    pub fn transfer_mb_s(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.bytes as f64 / self.duration_s / 1e6
        } else {
            0.0
        }
    }
}

/// Finds the hook's line in wrk's output and reads it.
pub fn parse(output: &str) -> Option<WrkResult> {
    let line = output.lines().find_map(|l| l.trim().strip_prefix(MARK))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .map(str::parse::<f64>)
        .collect::<Result<_, _>>()
        .ok()?;
    if v.len() != 14 {
        return None;
    }
    let n = |i: usize| v[i] as u64;
    let ms = |i: usize| v[i] / 1000.0;
    Some(WrkResult {
        requests: n(0),
        bytes: n(1),
        duration_s: v[2] / 1e6,
        errors: Errors {
            connect: n(3),
            read: n(4),
            write: n(5),
            status: n(6),
            timeout: n(7),
        },
        p50_ms: ms(8),
        p90_ms: ms(9),
        p99_ms: ms(10),
        p999_ms: ms(11),
        max_ms: ms(12),
        mean_ms: ms(13),
    })
}

/// Kills the child if it is still running when dropped (an error or panic mid-run).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs a prepared wrk command (stdout and stderr are captured here) to completion, for at most
/// `limit`; stops it early when `stop` is set. Returns the result, or why there is none (with
/// wrk's output).
pub fn run(mut cmd: Command, limit: Duration, stop: &AtomicBool) -> Result<WrkResult, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().map_err(|e| format!("cannot run wrk: {e}"))?;
    let mut child = Reaper(child);
    let start = Instant::now();
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for wrk: {e}")),
        }
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if start.elapsed() > limit {
            return Err(format!("wrk did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.0.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    match parse(&out) {
        Some(r) if status.success() => Ok(r),
        _ => Err(format!(
            "wrk exited {status} without a result\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hook_line() {
        let out = "Running 5s test @ http://10.201.0.100/\n  1 threads and 32 connections\n\
                   RVSCMP 50000 9000000 5000000 0 3 0 2 1 410 900 2500 4000 8100 520.5\n";
        let r = parse(out).expect("parsed");
        assert_eq!(r.requests, 50_000);
        assert_eq!(r.errors.total(), 6);
        assert_eq!(r.errors.read, 3);
        assert_eq!(r.errors.status, 2);
        assert!((r.rps() - 10_000.0).abs() < 1e-6);
        assert!((r.transfer_mb_s() - 1.8).abs() < 1e-9);
        assert!((r.p50_ms - 0.41).abs() < 1e-9);
        assert!((r.p99_ms - 2.5).abs() < 1e-9);
        assert!((r.mean_ms - 0.5205).abs() < 1e-9);
    }

    #[test]
    fn refuses_output_without_a_complete_line() {
        assert!(parse("unable to connect to 10.201.0.100:80 Connection refused\n").is_none());
        assert!(parse("RVSCMP 1 2 3\n").is_none());
        assert!(parse("RVSCMP 1 2 3 4 5 6 7 8 9 10 11 12 13 x\n").is_none());
    }
}

//! Namespaces, commands inside them, and cleanup.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A lab step that failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command exited non-zero.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A command could not be started.
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why.
        source: std::io::Error,
    },
    /// Something did not become ready in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// The host lacks something the lab needs.
    #[error("{0}")]
    Host(String),
}

/// Fails unless running as root (namespaces, veth and DPDK need it).
pub fn check_root() -> Result<(), LabError> {
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_default();
    if uid == "0" {
        Ok(())
    } else {
        Err(LabError::Host(
            "the lab needs root (network namespaces, veth, DPDK): run it with sudo or as root"
                .into(),
        ))
    }
}

/// Fails naming the first missing tool.
pub fn require_tools(tools: &[&str]) -> Result<(), LabError> {
    for t in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false);
        if !found {
            return Err(LabError::Host(format!(
                "`{t}` is not installed (scripts/setup.sh installs everything the lab needs)"
            )));
        }
    }
    Ok(())
}

fn render(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command to completion; non-zero exit is an error carrying its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let out = cmd.output().map_err(|source| LabError::Spawn {
        cmd: render(cmd),
        source,
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            cmd: render(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Owns namespaces, processes and a scratch directory; removes them all on drop.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
    dir: PathBuf,
}

impl Lab {
    /// A new lab whose namespaces are named `{prefix}-…`. Leftovers of an earlier lab with the
    /// same prefix (an interrupted run) are removed first.
    pub fn new(prefix: &str) -> Result<Lab, LabError> {
        check_root()?;
        require_tools(&["ip", "ethtool"])?;
        Self::remove_stale(prefix);
        let dir = std::env::temp_dir().join(format!("{prefix}-lab"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| LabError::Host(format!("{}: {e}", dir.display())))?;
        Ok(Lab {
            prefix: prefix.to_owned(),
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        })
    }

    /// The profile's `control` section for this lab: its own shared-memory file (so labs can
    /// run side by side) and REST address `listen`.
    pub fn control_section(&self, listen: &str) -> String {
        format!(
            "control:\n  shm: /dev/shm/rvs-{}\n  listen: \"{listen}\"\n",
            self.prefix
        )
    }

    /// The lab's shared-memory file (see [`Lab::control_section`]).
    pub fn shm_path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/rvs-{}", self.prefix))
    }

    /// Deletes every namespace named `{prefix}-…`.
    pub fn remove_stale(prefix: &str) {
        if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
            let list = String::from_utf8_lossy(&out.stdout).into_owned();
            for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
                if name.starts_with(&format!("{prefix}-")) {
                    let _ = Command::new("ip").args(["netns", "del", name]).status();
                }
            }
        }
    }

    /// The lab's scratch directory (profiles, web roots, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The namespace name for `role`.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Creates namespace `{prefix}-{role}` with `lo` up; returns its name.
    pub fn add_ns(&mut self, role: &str) -> Result<String, LabError> {
        let name = self.ns(role);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        self.namespaces.push(name.clone());
        self.ip(&name, &["link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// `ip -n NS ARGS…`.
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<Output, LabError> {
        run(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    /// A command inside `ns`.
    pub fn command(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Runs `program args…` inside `ns` to completion.
    pub fn exec(&self, ns: &str, program: &str, args: &[&str]) -> Result<Output, LabError> {
        run(self.command(ns, program).args(args))
    }

    /// Sets a sysctl inside `ns`.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), LabError> {
        self.exec(ns, "sysctl", &["-qw", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// Starts a long-running process inside `ns`, its stdout and stderr going to
    /// `{dir}/{name}.log`; it is killed when the lab is dropped.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<PathBuf, LabError> {
        let log = self.dir.join(format!("{name}.log"));
        let f = fs::File::create(&log)
            .map_err(|e| LabError::Host(format!("{}: {e}", log.display())))?;
        let f2 = f
            .try_clone()
            .map_err(|e| LabError::Host(format!("{}: {e}", log.display())))?;
        cmd.stdin(Stdio::null()).stdout(f).stderr(f2);
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            cmd: render(&cmd),
            source,
        })?;
        self.children.push((name.to_owned(), child));
        Ok(log)
    }

    /// Sends SIGINT to the process started as `name` and waits up to `timeout` for it to exit;
    /// returns its exit code and its log.
    pub fn interrupt(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<(Option<i32>, String), LabError> {
        let Some(i) = self.children.iter().position(|(n, _)| n == name) else {
            return Err(LabError::Host(format!("no process named {name}")));
        };
        let (_, mut child) = self.children.remove(i);
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let start = Instant::now();
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break st;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Timeout(
                    timeout,
                    format!("{name} to exit after SIGINT"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        Ok((status.code(), log))
    }

    /// Whether the process `name` is still running.
    pub fn is_running(&mut self, name: &str) -> bool {
        self.children
            .iter_mut()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }

    /// Writes `text` to file `name` in the lab directory; returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> Result<PathBuf, LabError> {
        let path = self.dir.join(name);
        fs::write(&path, text).map_err(|e| LabError::Host(format!("{}: {e}", path.display())))?;
        Ok(path)
    }

    /// Starts `BINARY --profile PROFILE` (rvs-dataplane) in namespace `ns` as process `name`,
    /// logging at info level; returns its log file.
    pub fn start_dataplane(
        &mut self,
        ns: &str,
        name: &str,
        binary: &Path,
        profile: &Path,
    ) -> Result<PathBuf, LabError> {
        let mut cmd = self.command(ns, &binary.to_string_lossy());
        cmd.arg("--profile").arg(profile).env("RVS_LOG", "info");
        self.spawn(name, cmd)
    }

    /// Waits until the dataplane logging to `log` says it runs, then until `probe` (e.g. a ping
    /// to the director) succeeds. Errors carry the dataplane's log.
    pub fn wait_dataplane(
        &self,
        log: &Path,
        probe_what: &str,
        mut probe: impl FnMut() -> bool,
    ) -> Result<(), LabError> {
        let read = || fs::read_to_string(log).unwrap_or_default();
        let with_log =
            |e: LabError| LabError::Host(format!("{e}\n--- dataplane log ---\n{}", read()));
        self.wait_for("the dataplane to run", Duration::from_secs(30), || {
            read().contains("dataplane running")
        })
        .map_err(with_log)?;
        self.wait_for(probe_what, Duration::from_secs(10), &mut probe)
            .map_err(with_log)
    }

    /// Polls `f` every 50 ms until it returns true or `timeout` passes.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> bool,
    ) -> Result<(), LabError> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if f() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(LabError::Timeout(timeout, what.to_owned()))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
        }
        let start = Instant::now();
        for (_, c) in &mut self.children {
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(self.shm_path());
    }
}

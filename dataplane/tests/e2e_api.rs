//! The control process against a running dataplane, without a network lab: the dataplane's
//! port is `net_null` (no traffic), `rvs-control` listens on a loopback port of its own, and
//! the API is driven over HTTP — by schemathesis (from PyPI, installed by `scripts/setup.sh`)
//! against the OpenAPI document, and by `rvsadm`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A dataplane and a control process on one profile.
#[derive(Debug)]
pub struct Rig {
    dir: PathBuf,
    children: Vec<Child>,
    /// The API base URL.
    pub api: String,
}

fn bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_rvs-dataplane")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` (or `cargo test --workspace`) first",
        p.display()
    );
    p
}

impl Rig {
    /// Boots `rvs-dataplane` and `rvs-control` with `services` (YAML list items, may be
    /// empty) on API port `port`.
    pub fn up(name: &str, port: u16, services: &str) -> Rig {
        let dir = std::env::temp_dir().join(format!("rvs-api-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let shm = format!("/dev/shm/rvs-api-{}-{name}", std::process::id());
        let profile = format!(
            "dataplane: {{ eal: [\"-m\", \"64\", \"--log-level=*:warning\", \"--file-prefix\", \"rvsapi{name}\"], main_lcore: 0, workers: [1], flows_per_worker: 4096 }}\n\
             ports:\n  - {{ name: dp0, device: net_null0, addresses: [\"10.0.0.1/8\", \"192.168.0.1/16\", \"172.16.0.1/16\", \"20.0.0.1/8\"] }}\n\
             fwmarks:\n  - {{ mark: 1, protocol: tcp, destination: \"172.16.100.6/32\", ports: [80, 443] }}\n  - {{ mark: 8, protocol: tcp, destination: \"172.16.100.100/32\", ports: [80, 23] }}\n\
             control: {{ shm: {shm}, listen: \"127.0.0.1:{port}\" }}\n\
             services:{}\n",
            if services.is_empty() { " []" } else { services }
        );
        let path = dir.join("rvs.yaml");
        std::fs::write(&path, profile).unwrap();
        let logdir = dir.clone();
        let log = move |n: &str| std::fs::File::create(logdir.join(n)).unwrap();
        let dp = Command::new(bin("rvs-dataplane"))
            .arg("--profile")
            .arg(&path)
            .env("RVS_LOG", "info")
            .stdout(log("dataplane.log"))
            .stderr(log("dataplane.err"))
            .spawn()
            .unwrap();
        let mut rig = Rig {
            dir,
            children: vec![dp],
            api: format!("http://127.0.0.1:{port}"),
        };
        rig.wait("the dataplane", |r| {
            r.read("dataplane.err").contains("dataplane running")
        });
        let cp = Command::new(bin("rvs-control"))
            .arg("--profile")
            .arg(&path)
            .arg("--no-health")
            .env("RVS_LOG", "info")
            .stdout(log("control.log"))
            .stderr(log("control.err"))
            .spawn()
            .unwrap();
        rig.children.push(cp);
        rig.wait("rvs-control to attach", |r| {
            r.curl(&["/healthz"]).0.contains("\"status\":\"ok\"")
        });
        rig
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    fn wait(&mut self, what: &str, f: impl Fn(&Rig) -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if f(self) {
                return;
            }
            for c in &mut self.children {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "a process exited ({st}) while waiting for {what}\n--- dataplane ---\n{}\n--- control ---\n{}",
                        self.read("dataplane.err"),
                        self.read("control.err")
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}\n--- dataplane ---\n{}\n--- control ---\n{}",
            self.read("dataplane.err"),
            self.read("control.err")
        );
    }

    /// `GET /api/v1/config`, the body (asserting a 200).
    pub fn config(&self) -> String {
        let (body, code) = self.curl(&["/api/v1/config"]);
        assert_eq!(code, 200, "GET /api/v1/config: {body}");
        body
    }

    /// `curl -s` on the API; returns (body, HTTP status).
    pub fn curl(&self, args: &[&str]) -> (String, u16) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-w", "\n%{http_code}", "--max-time", "10"]);
        let (path, rest) = args.split_first().unwrap();
        cmd.args(rest).arg(format!("{}{path}", self.api));
        let o = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (body.to_string(), code.trim().parse().unwrap_or(0))
    }

    /// Runs `rvsadm ARGS` against this rig with `stdin`.
    pub fn rvsadm(&self, args: &[&str], stdin: &str) -> Output {
        self.run(Tool::Rvsadm, args, stdin)
    }

    /// Runs `rvsadm`, `rvsadm-save` or `rvsadm-restore` with `ARGS` against this rig, `stdin`
    /// on its standard input.
    pub fn run(&self, tool: Tool, args: &[&str], stdin: &str) -> Output {
        let mut c = Command::new(bin(tool.name()))
            .args(args)
            .env("RVS_API", &self.api)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }
}

/// The rvsadm programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `rvsadm` (ipvsadm).
    Rvsadm,
    /// `rvsadm-save` (ipvsadm-save).
    Save,
    /// `rvsadm-restore` (ipvsadm-restore).
    Restore,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Rvsadm => "rvsadm",
            Tool::Save => "rvsadm-save",
            Tool::Restore => "rvsadm-restore",
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn schemathesis_finds_no_server_error_in_the_api() {
    let st = Path::new("/opt/rvs-venv/bin/st");
    assert!(
        st.exists(),
        "schemathesis is missing: run scripts/setup.sh (it installs it into /opt/rvs-venv)"
    );
    let rig = Rig::up(
        "st",
        19281,
        "\n  - { vip: 10.0.0.100, port: 80, protocol: tcp, scheduler: rr, servers: [{ address: 10.0.0.11 }] }",
    );
    let out = Command::new(st)
        .args(["run", &format!("{}/api/v1/openapi.json", rig.api)])
        .args(["--checks", "not_a_server_error", "--max-examples", "25"])
        .args(["--seed", "20261121", "--no-color"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("26 generated") || text.contains("passed"),
        "{text}"
    );
    // The dataplane survived every configuration schemathesis pushed and still answers.
    let (body, code) = rig.curl(&["/healthz"]);
    assert_eq!(code, 200, "{body}");
}

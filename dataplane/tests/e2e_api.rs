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
    // Schemathesis keeps a cache in its working directory: the rig's scratch directory.
    let out = Command::new(st)
        .current_dir(&rig.dir)
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

// ---------------------------------------------------------------------------------------------
// rvsadm against a running dataplane: the seed documents' ipvsadm sessions, save/restore, and
// refusals.

/// Expected text written like `cat -A`: every line ends in `$`, so the blanks ipvsadm's
/// `%-10u` leaves at the end of a line are visible in the test.
fn marked(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l
                .strip_suffix('$')
                .unwrap_or_else(|| panic!("expected line does not end in `$`: {l:?}"));
            format!("{l}\n")
        })
        .collect()
}

/// `print_title` of a plain listing, after `list_all`'s version line.
const TITLE: &str = "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port Scheduler Flags$
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn$
";

/// `print_title` with `--stats`: `"%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"`.
const STATS_TITLE: &str = "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes$
  -> RemoteAddress:Port$
";

/// `print_title` with `--rate`.
const RATE_TITLE: &str = "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS$
  -> RemoteAddress:Port$
";

/// `list_conn` with no connection: `"pro expire %-11s %-18s %-18s %s\n"`.
const CONN_TITLE: &str = "IPVS connection entries$
pro expire state       source             virtual            destination$
";

/// Asserts that `actual` is `expected`, line by line (lines shown with their blanks).
fn same_lines(what: &str, actual: &str, expected: &str) {
    let a: Vec<&str> = actual.split('\n').collect();
    let e: Vec<&str> = expected.split('\n').collect();
    for (i, (x, y)) in a.iter().zip(&e).enumerate() {
        assert_eq!(
            x,
            y,
            "`{what}`: line {} differs\n--- actual ---\n{actual}--- expected ---\n{expected}",
            i + 1
        );
    }
    assert_eq!(
        a.len(),
        e.len(),
        "`{what}`: {} lines instead of {}\n--- actual ---\n{actual}--- expected ---\n{expected}",
        a.len(),
        e.len()
    );
}

/// Asserts that `actual` has the layout of a sample output printed in a seed document. The
/// documents lost the blanks at the ends of lines (and one replaced spaces by non-breaking
/// ones, restored here), so lines are compared without trailing blanks.
fn like_seed(what: &str, actual: &str, sample: &str) {
    let trim = |t: &str| -> String {
        t.lines()
            .map(|l| format!("{}\n", l.replace('\u{a0}', " ").trim_end()))
            .collect()
    };
    same_lines(
        &format!("{what} (seed layout)"),
        &trim(actual),
        &trim(sample),
    );
}

/// Asserts that `actual` holds the `-S` rules of `expected`, each service followed by its
/// own rules. ipvsadm prints them sorted like `-L`; rvsadm prints them in configuration
/// order, so that `-R` rebuilds the same server lists (rr and the hashing schedulers depend
/// on their order): so services and their servers are compared in either order.
fn same_rules(what: &str, actual: &str, expected: &str) {
    let blocks = |t: &str| -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::new();
        for l in t.lines() {
            if l.starts_with("-A ") || out.is_empty() {
                out.push(vec![l.to_owned()]);
            } else {
                out.last_mut().unwrap().push(l.to_owned());
            }
        }
        for b in &mut out {
            b[1..].sort();
        }
        out.sort();
        out
    };
    assert_eq!(
        blocks(actual),
        blocks(expected),
        "`{what}`\n--- actual ---\n{actual}--- expected ---\n{expected}"
    );
    assert!(
        actual.is_empty() || actual.ends_with('\n'),
        "`{what}`: {actual:?}"
    );
}

fn show(o: &Output) -> String {
    format!(
        "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An operator typing the seed documents' commands at the director, `ipvsadm` replaced by
/// `rvsadm` (and `ipvsadm-save`/`-restore` by `rvsadm-save`/`-restore`).
struct Operator<'a> {
    rig: &'a Rig,
    /// Shell variables of the script being run (`$VIP`, `$RIP1`, `$1`, …).
    vars: Vec<(&'static str, &'static str)>,
    /// Commands run so far.
    commands: usize,
}

impl<'a> Operator<'a> {
    fn new(rig: &'a Rig) -> Self {
        Operator {
            rig,
            vars: Vec::new(),
            commands: 0,
        }
    }

    /// The command line with the script's variables expanded, as the tool and its words.
    fn words(&self, line: &str) -> (Tool, Vec<String>) {
        let mut line = line.to_owned();
        // Longest names first, so `$RIP1` is not taken for `$R…`.
        let mut vars = self.vars.clone();
        vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        for (k, v) in vars {
            line = line.replace(k, v);
        }
        assert!(!line.contains('$'), "unexpanded variable in `{line}`");
        // As the shell: a word that begins with `#` begins a comment.
        let mut words = line
            .split_whitespace()
            .take_while(|w| !w.starts_with('#'))
            .map(str::to_owned);
        let program = words.next().expect("an empty command line");
        let tool = match program.rsplit('/').next().unwrap() {
            "ipvsadm" => Tool::Rvsadm,
            "ipvsadm-save" => Tool::Save,
            "ipvsadm-restore" => Tool::Restore,
            other => panic!("`{line}` is not an ipvsadm command ({other})"),
        };
        (tool, words.collect())
    }

    fn output(&mut self, line: &str, stdin: &str) -> Output {
        let (tool, args) = self.words(line);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.commands += 1;
        self.rig.run(tool, &args, stdin)
    }

    /// Runs a seed command with `stdin`; it must exit 0. Returns its stdout.
    fn run_with(&mut self, line: &str, stdin: &str) -> String {
        let o = self.output(line, stdin);
        assert!(o.status.success(), "`{line}` failed: {}", show(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs a seed command; it must exit 0. Returns its stdout.
    fn run(&mut self, line: &str) -> String {
        self.run_with(line, "")
    }

    /// Runs a listing command whose output must be `expected` (`$`-marked) line by line.
    fn list(&mut self, line: &str, expected: &str) -> String {
        let out = self.run(line);
        same_lines(line, &out, &marked(expected));
        out
    }
}

#[test]
fn every_seed_command_works_through_rvsadm() {
    let rig = Rig::up("seeds", 19282, "");
    let mut op = Operator::new(&rig);

    // Not ipvsadm commands, so not run: `yum install ipvsadm`, `iptables …`, `ifconfig`,
    // `route`, `sysctl`, `echo … > /proc/…`, `curl`, `touch`; and `service ipvsadm
    // save|start|restart`, which are the distribution's init script (it runs
    // `ipvsadm-save -n > /etc/sysconfig/ipvsadm` or `ipvsadm-restore < …`), not ipvsadm. The
    // firewall marks the seeds set with iptables (1: 172.16.100.6:80,443; 8:
    // 172.16.100.100:80,23) are the rig profile's `fwmarks`. The seeds' labs are separate
    // directors; the table is cleared (`ipvsadm -C`) where a new lab begins.

    // An empty table, and the version (seed 003: `ipvsadm -v`).
    op.list("ipvsadm -L -n", TITLE);
    let v = op.run("ipvsadm -v");
    let mut lines = v.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with("rvsadm ") && first.contains(env!("CARGO_PKG_VERSION")),
        "`rvsadm -v` must start with rvsadm's version line: {v}"
    );
    let ipvsadm = lines.next().unwrap_or_default();
    assert!(
        ipvsadm.starts_with("ipvsadm v1.")
            && ipvsadm.ends_with("(compiled with popt and IPVS v1.2.1)"),
        "the second line of `rvsadm -v` is ipvsadm's: {v}"
    );

    // ---- Seed 000, LVS-NAT with port mapping and weights.
    op.run("ipvsadm -A -t 192.168.161.184:80 -s wrr");
    op.run("ipvsadm -a -t 192.168.161.184:80 -r 192.168.153.137:80 -m -w 5");
    op.run("ipvsadm -a -t 192.168.161.184:80 -r 192.168.153.138:80 -m -w 4");
    op.run("ipvsadm -a -t 192.168.161.184:80 -r 192.168.153.137:800 -m -w 3");
    op.run("ipvsadm -a -t 192.168.161.184:80 -r 192.168.153.138:800 -m -w 2");
    op.run("ipvsadm -a -t 192.168.161.184:80 -r 192.168.153.137:8080 -m");
    op.run("ipvsadm -a -t 192.168.161.184:80 -r 192.168.153.138:8080 -m");
    // ipvsadm sorts servers by address, then port.
    let nat000 = "TCP  192.168.161.184:80 wrr$
  -> 192.168.153.137:80           Masq    5      0          0         $
  -> 192.168.153.137:800          Masq    3      0          0         $
  -> 192.168.153.137:8080         Masq    1      0          0         $
  -> 192.168.153.138:80           Masq    4      0          0         $
  -> 192.168.153.138:800          Masq    2      0          0         $
  -> 192.168.153.138:8080         Masq    1      0          0         $
";
    op.list("ipvsadm -L -n", &format!("{TITLE}{nat000}"));
    // `-l` is `-L`; `-Ln` and `-ln` bundle.
    op.list("ipvsadm -l -n", &format!("{TITLE}{nat000}"));
    op.list("ipvsadm -Ln", &format!("{TITLE}{nat000}"));
    // Without -n, ports are service names (getservbyport: 80 http, 8080 http-alt, 800 none).
    op.list(
        "ipvsadm -L",
        &format!(
            "{TITLE}TCP  192.168.161.184:http wrr$
  -> 192.168.153.137:http         Masq    5      0          0         $
  -> 192.168.153.137:800          Masq    3      0          0         $
  -> 192.168.153.137:http-alt     Masq    1      0          0         $
  -> 192.168.153.138:http         Masq    4      0          0         $
  -> 192.168.153.138:800          Masq    2      0          0         $
  -> 192.168.153.138:http-alt     Masq    1      0          0         $
"
        ),
    );
    // `--stats` and `--rate`: "%-33s" / "  -> %-28s" then "%9llu" columns (no traffic: 0).
    let zeros = "TCP  192.168.161.184:80                  0        0        0        0        0$
  -> 192.168.153.137:80                  0        0        0        0        0$
  -> 192.168.153.137:800                 0        0        0        0        0$
  -> 192.168.153.137:8080                0        0        0        0        0$
  -> 192.168.153.138:80                  0        0        0        0        0$
  -> 192.168.153.138:800                 0        0        0        0        0$
  -> 192.168.153.138:8080                0        0        0        0        0$
";
    op.list("ipvsadm -L -n --stats", &format!("{STATS_TITLE}{zeros}"));
    op.list("ipvsadm -L -n --rate", &format!("{RATE_TITLE}{zeros}"));
    op.list(
        "ipvsadm -L -n --stats --exact",
        &format!("{STATS_TITLE}{zeros}"),
    );
    // One service: print_title and the entry, no version line.
    op.list(
        "ipvsadm -L -n -t 192.168.161.184:80",
        &format!("{}{nat000}", TITLE.split_once('\n').unwrap().1),
    );

    // ---- Seed 000, LVS-DR: the same VIP in another lab, so the NAT service goes first.
    op.run("ipvsadm -D -t 192.168.161.184:80");
    op.list("ipvsadm -L -n", TITLE);
    op.run("ipvsadm -A -t 192.168.161.184:80 -s wrr");
    op.run("ipvsadm -a -t 192.168.161.184:80 -r 10.203.0.12:80 -g -w 3");
    op.run("ipvsadm -a -t 192.168.161.184:80 -r 10.203.0.13:80 -g -w 2");
    let out = op.list(
        "ipvsadm -ln",
        &format!(
            "{TITLE}TCP  192.168.161.184:80 wrr$
  -> 10.203.0.12:80               Route   3      0          0         $
  -> 10.203.0.13:80               Route   2      0          0         $
"
        ),
    );
    // The seed's sample (its ActiveConn 90 and 60 came from traffic; here there is none).
    like_seed(
        "ipvsadm -ln",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.161.184:80 wrr
  -> 10.203.0.12:80               Route   3      0          0         
  -> 10.203.0.13:80               Route   2      0          0
",
    );

    // ---- Seed 000, LVS-TUN.
    op.run("ipvsadm -C");
    op.run("ipvsadm -A -t 20.0.0.2:80 -s rr");
    op.run("ipvsadm -a -t 20.0.0.2:80 -r 10.0.0.2 -i");
    op.run("ipvsadm -a -t 20.0.0.2:80 -r 10.0.0.6 -i");
    // TUN servers take the service port.
    op.list(
        "ipvsadm -L -n",
        &format!(
            "{TITLE}TCP  20.0.0.2:80 rr$
  -> 10.0.0.2:80                  Tunnel  1      0          0         $
  -> 10.0.0.6:80                  Tunnel  1      0          0         $
"
        ),
    );

    // ---- Seed 001, LVS-DR.
    op.run("ipvsadm -C");
    op.run("ipvsadm -A -t 192.168.150.100:80 -s rr #配置");
    // The seed writes `-w 1#配置负载到node01`: with no blank before `#` the shell passes
    // `1#配置负载到node01` as the weight, which ipvsadm refuses; so does rvsadm, and then the
    // line as meant.
    let o = op.output(
        "ipvsadm -a -t 192.168.150.100:80 -r 192.168.150.12 -g -w 1#配置负载到node01",
        "",
    );
    assert!(!o.status.success(), "{}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "illegal weight specified\n",
        "{}",
        show(&o)
    );
    op.run("ipvsadm -a -t 192.168.150.100:80 -r 192.168.150.12 -g -w 1 #配置负载到node01");
    op.run("ipvsadm -a -t 192.168.150.100:80 -r 192.168.150.13 -g -w 1");
    op.list(
        "ipvsadm -L -n",
        &format!(
            "{TITLE}TCP  192.168.150.100:80 rr$
  -> 192.168.150.12:80            Route   1      0          0         $
  -> 192.168.150.13:80            Route   1      0          0         $
"
        ),
    );
    // No traffic, so no connection entries: the header lines only.
    op.list("ipvsadm -lnc", CONN_TITLE);
    op.list("ipvsadm -L -n -c", CONN_TITLE);

    // ---- Seed 002, section 三/(3): LVS-NAT.
    op.run("ipvsadm -C");
    op.run("ipvsadm -A -t 192.168.0.200:80 -s rr");
    op.run("ipvsadm -a -t 192.168.0.200:80 -r 172.16.100.10 -m");
    op.run("ipvsadm -a -t 192.168.0.200:80 -r 172.16.100.11 -m");
    let nat_rr = "TCP  192.168.0.200:80 rr$
  -> 172.16.100.10:80             Masq    1      0          0         $
  -> 172.16.100.11:80             Masq    1      0          0         $
";
    let out = op.list("ipvsadm -L -n", &format!("{TITLE}{nat_rr}"));
    like_seed(
        "ipvsadm -L -n",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.0.200:80 rr
  -> 172.16.100.10:80             Masq    1      0          0         
  -> 172.16.100.11:80             Masq    1      0          0   
",
    );
    // (5): -E changes the scheduler, -e the weights.
    op.run("ipvsadm -E -t 192.168.0.200:80 -s wrr");
    op.run("ipvsadm -e -t 192.168.0.200:80 -r 172.16.100.10 -m -w 3");
    op.run("ipvsadm -e -t 192.168.0.200:80 -r 172.16.100.11 -m -w 1");
    let nat_wrr = "TCP  192.168.0.200:80 wrr$
  -> 172.16.100.10:80             Masq    3      0          0         $
  -> 172.16.100.11:80             Masq    1      0          0         $
";
    let out = op.list("ipvsadm -L -n", &format!("{TITLE}{nat_wrr}"));
    // The seed's InActConn 2 came from its curl tests.
    like_seed(
        "ipvsadm -L -n",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.0.200:80 wrr
  -> 172.16.100.10:80             Masq    3      0          0         
  -> 172.16.100.11:80             Masq    1      0          0  
",
    );
    // (6): `ipvsadm -S > /etc/sysconfig/ipvsadm.s1`, clear, `ipvsadm -R < …`.
    let s1 = op.run("ipvsadm -S");
    same_lines(
        "ipvsadm -S",
        &s1,
        "-A -t 192.168.0.200:http -s wrr
-a -t 192.168.0.200:http -r 172.16.100.10:http -m -w 3
-a -t 192.168.0.200:http -r 172.16.100.11:http -m -w 1
",
    );
    op.run("ipvsadm -C");
    let out = op.list("ipvsadm -L -n", TITLE);
    like_seed(
        "ipvsadm -L -n",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
",
    );
    op.run_with("ipvsadm -R", &s1);
    let out = op.list("ipvsadm -L -n", &format!("{TITLE}{nat_wrr}"));
    like_seed(
        "ipvsadm -L -n",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.0.200:80 wrr
  -> 172.16.100.10:80             Masq    3      0          0         
  -> 172.16.100.11:80             Masq    1      0          0
",
    );

    // ---- Seed 002, 六: the LVS-NAT init script (start, then stop), 七: the install script.
    op.vars = vec![
        ("$VIP", "192.168.0.200"),
        ("$RIP1", "172.16.100.10"),
        ("$RIP2", "172.16.100.11"),
    ];
    op.run("/sbin/ipvsadm -C");
    op.run("/sbin/ipvsadm -A -t $VIP:80 -s rr");
    op.run("/sbin/ipvsadm -a -t $VIP:80 -r $RIP1 -m");
    op.run("/sbin/ipvsadm -a -t $VIP:80 -r $RIP2 -m");
    op.list("ipvsadm -L -n", &format!("{TITLE}{nat_rr}"));
    op.run("/sbin/ipvsadm -C");
    op.list("ipvsadm -L -n", TITLE);
    op.run("ipvsadm -C");
    op.run("/sbin/ipvsadm -A -t $VIP:80 -s rr");
    op.run("/sbin/ipvsadm -a -t $VIP:80 -r $RIP1 -m");
    op.run("/sbin/ipvsadm -a -t $VIP:80 -r $RIP2 -m");
    op.list("ipvsadm -L -n", &format!("{TITLE}{nat_rr}"));

    // ---- Seed 002, LVS-DR on the director (the NAT service stays: ipvsadm sorts services
    // by address, so the DR one added later comes first).
    op.run("ipvsadm -A -t 172.16.100.100:80 -s wlc");
    op.run("ipvsadm -a -t 172.16.100.100:80 -r 172.16.100.10 -g -w 2");
    op.run("ipvsadm -a -t 172.16.100.100:80 -r 172.16.100.11 -g -w 1");
    op.list(
        "ipvsadm -L -n",
        &format!(
            "{TITLE}TCP  172.16.100.100:80 wlc$
  -> 172.16.100.10:80             Route   2      0          0         $
  -> 172.16.100.11:80             Route   1      0          0         $
{nat_rr}"
        ),
    );
    // The VS/DR init script: start, status, stop, start.
    op.vars = vec![
        ("$VIP", "172.16.100.100"),
        ("$RIP1", "172.16.100.10"),
        ("$RIP2", "172.16.100.11"),
    ];
    let dr_start = [
        "/sbin/ipvsadm -C",
        "/sbin/ipvsadm -A -t $VIP:80 -s wlc",
        "/sbin/ipvsadm -a -t $VIP:80 -r $RIP1 -g -w 1",
        "/sbin/ipvsadm -a -t $VIP:80 -r $RIP2 -g -w 2",
    ];
    for line in dr_start {
        op.run(line);
    }
    let dr_wlc = "TCP  172.16.100.100:80 wlc$
  -> 172.16.100.10:80             Route   1      0          0         $
  -> 172.16.100.11:80             Route   2      0          0         $
";
    let seed_dr_wlc = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  172.16.100.100:80 wlc
  -> 172.16.100.10:80             Route   1      0          0         
  -> 172.16.100.11:80             Route   2      0          0   
";
    let out = op.list("ipvsadm -L -n", &format!("{TITLE}{dr_wlc}"));
    like_seed("ipvsadm -L -n", &out, seed_dr_wlc);
    op.run("/sbin/ipvsadm -C");
    op.list("ipvsadm -L -n", TITLE);
    for line in dr_start {
        op.run(line);
    }
    op.list("ipvsadm -L -n", &format!("{TITLE}{dr_wlc}"));

    // The health-check script: `initstatus` greps `ipvsadm -L -n` for each "$I:$RPORT", a
    // failed server is removed by `delrs` and put back by `addrs` with its weight from RW.
    op.vars = vec![
        ("$VIP", "172.16.100.100"),
        ("$CPORT", "80"),
        ("$RPORT", "80"),
        ("$TYPE", "g"),
        ("$1", "172.16.100.10"),
        ("$2", "2"),
    ];
    for rs in ["172.16.100.10:80", "172.16.100.11:80"] {
        assert!(op.run("ipvsadm -L -n").contains(rs), "initstatus: {rs}");
    }
    op.run("ipvsadm -d -t $VIP:$CPORT -r $1:$RPORT");
    let out = op.list(
        "ipvsadm -L -n",
        &format!(
            "{TITLE}TCP  172.16.100.100:80 wlc$
  -> 172.16.100.11:80             Route   2      0          0         $
"
        ),
    );
    assert!(!out.contains("172.16.100.10:80"));
    op.run("ipvsadm -a -t $VIP:$CPORT -r $1:$RPORT -$TYPE -w $2");
    op.list(
        "ipvsadm -L -n",
        &format!(
            "{TITLE}TCP  172.16.100.100:80 wlc$
  -> 172.16.100.10:80             Route   2      0          0         $
  -> 172.16.100.11:80             Route   2      0          0         $
"
        ),
    );
    // Back to the script's weight (`ipvsadm -a|e … -r server-address [-g|i|m] [-w weight]`).
    op.run("ipvsadm -e -t $VIP:$CPORT -r $1 -g -w 1");
    op.vars.clear();

    // ---- Seed 002, LVS持久连接 (persistence): templates and the table.
    let out = op.list("ipvsadm -L -c", CONN_TITLE);
    like_seed(
        "ipvsadm -L -c",
        &out,
        "IPVS connection entries
pro expire state       source             virtual            destination
",
    );
    let out = op.list("ipvsadm -L -n", &format!("{TITLE}{dr_wlc}"));
    like_seed("ipvsadm -L -n", &out, seed_dr_wlc);
    // PNMPP: firewall mark 1 (80 and 443 of 172.16.100.6), persistent.
    op.run("/sbin/ipvsadm -A -f 1 -s rr -p 3600");
    op.run("/sbin/ipvsadm -a -f 1 -r 172.16.100.10 -g -w 2");
    op.run("/sbin/ipvsadm -a -f 1 -r 172.16.100.11 -g -w 1");
    // Firewall-mark services come after address services; their servers have port 0.
    let fwm1 = "FWM  1 rr persistent 3600$
  -> 172.16.100.10:0              Route   2      0          0         $
  -> 172.16.100.11:0              Route   1      0          0         $
";
    op.list("ipvsadm -L -n", &format!("{TITLE}{dr_wlc}{fwm1}"));
    op.list(
        "ipvsadm -L",
        &format!(
            "{TITLE}TCP  172.16.100.100:http wlc$
  -> 172.16.100.10:http           Route   1      0          0         $
  -> 172.16.100.11:http           Route   2      0          0         $
{fwm1}"
        ),
    );
    op.run("ipvsadm -D -f 1");
    op.list("ipvsadm -L -n", &format!("{TITLE}{dr_wlc}"));
    // 1、rr (the seed shows the table after the scheduler was changed to rr).
    op.run("ipvsadm -E -t 172.16.100.100:80 -s rr");
    let out = op.list(
        "ipvsadm -L -n",
        &format!(
            "{TITLE}TCP  172.16.100.100:80 rr$
  -> 172.16.100.10:80             Route   1      0          0         $
  -> 172.16.100.11:80             Route   2      0          0         $
"
        ),
    );
    like_seed(
        "ipvsadm -L -n",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  172.16.100.100:80 rr
  -> 172.16.100.10:80             Route   1      0          0         
  -> 172.16.100.11:80             Route   2      0          0 
",
    );
    // 2、PPC: persistent web service.
    op.run("ipvsadm -E -t 172.16.100.100:80 -s rr -p 600");
    let out = op.list(
        "ipvsadm -L -n",
        &format!(
            "{TITLE}TCP  172.16.100.100:80 rr persistent 600$
  -> 172.16.100.10:80             Route   1      0          0         $
  -> 172.16.100.11:80             Route   2      0          0         $
"
        ),
    );
    like_seed(
        "ipvsadm -L -n",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  172.16.100.100:80 rr persistent 600
  -> 172.16.100.10:80             Route   1      0          0         
  -> 172.16.100.11:80             Route   2      0          0  
",
    );
    // "%-33s %-9s %-11s %-10s %-10s" and "  -> %-28s %-9u %-11u %-10u %-10u" (the seed's
    // PersistConn 1 and InActConn 16 came from its browser; here there is no traffic).
    let out = op.list(
        "ipvsadm -L --persistent-conn",
        "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn $
  -> RemoteAddress:Port$
TCP  172.16.100.100:http rr persistent 600$
  -> 172.16.100.10:http           1         0           0          0         $
  -> 172.16.100.11:http           2         0           0          0         $
",
    );
    like_seed(
        "ipvsadm -L --persistent-conn",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  172.16.100.100:http rr persistent 600
  -> 172.16.100.10:http           1         0           0          0         
  -> 172.16.100.11:http           2         0           0          0         
",
    );
    op.list("ipvsadm -L -c", CONN_TITLE);
    // 3、telnet, then persistent.
    op.run("ipvsadm -C");
    op.run("ipvsadm -A -t 172.16.100.100:23 -s rr");
    op.run("ipvsadm -a -t 172.16.100.100:23 -r 172.16.100.10 -g -w 2");
    op.run("ipvsadm -a -t 172.16.100.100:23 -r 172.16.100.11 -g -w 1");
    let telnet = "  -> 172.16.100.10:23             Route   2      0          0         $
  -> 172.16.100.11:23             Route   1      0          0         $
";
    op.list(
        "ipvsadm -L -n",
        &format!("{TITLE}TCP  172.16.100.100:23 rr$\n{telnet}"),
    );
    op.run("ipvsadm -E -t 172.16.100.100:23 -s rr -p 3600");
    let out = op.list(
        "ipvsadm -L -n",
        &format!("{TITLE}TCP  172.16.100.100:23 rr persistent 3600$\n{telnet}"),
    );
    like_seed(
        "ipvsadm -L -n",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  172.16.100.100:23 rr persistent 3600
  -> 172.16.100.10:23             Route   2      0          0         
  -> 172.16.100.11:23             Route   1      0          0  
",
    );
    // 4、PCC: port 0 (every port), which must be persistent.
    op.run("ipvsadm -C");
    op.run("ipvsadm -A -t 172.16.100.100:0 -s rr -p 600");
    op.run("ipvsadm -a -t 172.16.100.100:0 -r 172.16.100.10 -g -w 2");
    op.run("ipvsadm -a -t 172.16.100.100:0 -r 172.16.100.11 -g -w 1");
    op.list("ipvsadm -L -c", CONN_TITLE);
    let pcc = "TCP  172.16.100.100:0 rr persistent 600$
  -> 172.16.100.10:0              Route   2      0          0         $
  -> 172.16.100.11:0              Route   1      0          0         $
";
    op.list("ipvsadm -L -n", &format!("{TITLE}{pcc}"));
    op.list("ipvsadm -L", &format!("{TITLE}{pcc}"));
    // 5、firewall mark 8 (80 and 23 of 172.16.100.100), `-A -f 8 -s rr [-p 600]`: both.
    op.run("ipvsadm -C");
    op.list("ipvsadm -L -n", TITLE);
    op.run("ipvsadm -A -f 8 -s rr");
    op.run("ipvsadm -a -f 8 -r 172.16.100.10 -g -w 2");
    op.run("ipvsadm -a -f 8 -r 172.16.100.11 -g -w 1");
    let fwm8_servers = "  -> 172.16.100.10:0              Route   2      0          0         $
  -> 172.16.100.11:0              Route   1      0          0         $
";
    op.list(
        "ipvsadm -L -n",
        &format!("{TITLE}FWM  8 rr$\n{fwm8_servers}"),
    );
    op.run("ipvsadm -D -f 8");
    op.run("ipvsadm -A -f 8 -s rr -p 600");
    op.run("ipvsadm -a -f 8 -r 172.16.100.10 -g -w 2");
    op.run("ipvsadm -a -f 8 -r 172.16.100.11 -g -w 1");
    let fwm8 = format!("FWM  8 rr persistent 600$\n{fwm8_servers}");
    op.list("ipvsadm -L -n", &format!("{TITLE}{fwm8}"));

    // ---- Seed 002, 三: the remaining forms of the usage summary.
    // `-A|E -t|u|f service-address [-s scheduler] [-p [timeout]] [-M netmask]`: -p alone is
    // ipvsadm's 360 s.
    op.run("ipvsadm -A -u 172.16.100.100:53 -s wlc");
    op.run("ipvsadm -E -u 172.16.100.100:53 -s wrr -p -M 255.255.255.0");
    op.run("ipvsadm -a -u 172.16.100.100:53 -r 172.16.100.10 -m -w 1");
    op.run("ipvsadm -a -u 172.16.100.100:53 -r 172.16.100.11 -i -w 1");
    op.run("ipvsadm -d -u 172.16.100.100:53 -r 172.16.100.11");
    // UDP (protocol 17) after TCP, firewall marks last.
    let udp = "UDP  172.16.100.100:53 wrr persistent 360 mask 255.255.255.0$
  -> 172.16.100.10:53             Masq    1      0          0         $
";
    op.list("ipvsadm -L -n", &format!("{TITLE}{udp}{fwm8}"));
    op.list(
        "ipvsadm -L",
        &format!(
            "{TITLE}UDP  172.16.100.100:domain wrr persistent 360 mask 255.255.255.0$
  -> 172.16.100.10:domain         Masq    1      0          0         $
{fwm8}"
        ),
    );
    let zeros = "UDP  172.16.100.100:53                   0        0        0        0        0$
  -> 172.16.100.10:53                    0        0        0        0        0$
FWM  8                                   0        0        0        0        0$
  -> 172.16.100.10:0                     0        0        0        0        0$
  -> 172.16.100.11:0                     0        0        0        0        0$
";
    // `ipvsadm -Z [-t|u|f service-address]`.
    op.run("ipvsadm -Z");
    op.run("ipvsadm -Z -f 8");
    op.run("ipvsadm -Z -u 172.16.100.100:53");
    op.list("ipvsadm -L -n --stats", &format!("{STATS_TITLE}{zeros}"));
    op.list("ipvsadm -L -n --rate", &format!("{RATE_TITLE}{zeros}"));
    op.list(
        "ipvsadm -L -n --rate --exact",
        &format!("{RATE_TITLE}{zeros}"),
    );
    // `ipvsadm -S [-n]`.
    let saved = op.run("ipvsadm -S -n");
    same_rules(
        "ipvsadm -S -n",
        &saved,
        "-A -u 172.16.100.100:53 -s wrr -p 360 -M 255.255.255.0
-a -u 172.16.100.100:53 -r 172.16.100.10:53 -m -w 1
-A -f 8 -s rr -p 600
-a -f 8 -r 172.16.100.10:0 -g -w 2
-a -f 8 -r 172.16.100.11:0 -g -w 1
",
    );
    // `ipvsadm -Lcn` (the persistence templates).
    op.list("ipvsadm -Lcn", CONN_TITLE);
    op.run("ipvsadm -D -u 172.16.100.100:53");
    op.list("ipvsadm -L -n", &format!("{TITLE}{fwm8}"));

    // ---- Seed 003: LVS-DR, the saved file, the connections.
    op.run("ipvsadm -C");
    op.run("ipvsadm -A -t 10.10.10.213:80 -s rr");
    op.run("ipvsadm -a -t 10.10.10.213:80 -r 10.10.10.216:80 -g -w 1");
    op.run("ipvsadm -a -t 10.10.10.213:80 -r 10.10.10.217:80 -g -w 1");
    // `cat /etc/sysconfig/ipvsadm` after `service ipvsadm save` (which saves with -n).
    let file = "-A -t 10.10.10.213:80 -s rr
-a -t 10.10.10.213:80 -r 10.10.10.216:80 -g -w 1
-a -t 10.10.10.213:80 -r 10.10.10.217:80 -g -w 1
";
    same_lines("ipvsadm -S -n", &op.run("ipvsadm -S -n"), file);
    same_lines("ipvsadm-save -n", &op.run("ipvsadm-save -n"), file);
    let dr003 = "TCP  10.10.10.213:80 rr$
  -> 10.10.10.216:80              Route   1      0          0         $
  -> 10.10.10.217:80              Route   1      0          0         $
";
    op.list("ipvsadm -L -n", &format!("{TITLE}{dr003}"));
    // "或者是直接编辑文件添加": the file as written in the seed, loaded back.
    op.run("ipvsadm -C");
    op.run_with("ipvsadm -R", file);
    op.list("ipvsadm -L -n", &format!("{TITLE}{dr003}"));
    op.run_with("ipvsadm-restore", file);
    op.list("ipvsadm -L -n", &format!("{TITLE}{dr003}"));
    op.list("ipvsadm -lnc", CONN_TITLE);

    // ---- Seed 004: command examples, `--save`, `ipvsadm-save`, LVS-DR then LVS-NAT.
    op.run("ipvsadm -C");
    op.run("ipvsadm -A -t 192.168.1.2:80 -s wrr");
    op.run("ipvsadm -a -t 192.168.1.2:80 -r 192.168.2.10:80 -m -w 1");
    let example = "-A -t 192.168.1.2:http -s wrr
-a -t 192.168.1.2:http -r 192.168.2.10:http -m -w 1
";
    same_lines("ipvsadm --save", &op.run("ipvsadm --save"), example);
    same_lines("ipvsadm-save", &op.run("ipvsadm-save"), example);
    op.run("ipvsadm -C");
    op.run("ipvsadm -A -t 192.168.246.160:80 -s rr");
    op.run("ipvsadm -a -t 192.168.246.160:80 -r 192.168.246.161 -g");
    op.run("ipvsadm -a -t 192.168.246.160:80 -r 192.168.246.162 -g");
    let dr004_rules = "-A -t 192.168.246.160:http -s rr
-a -t 192.168.246.160:http -r 192.168.246.161:http -g -w 1
-a -t 192.168.246.160:http -r 192.168.246.162:http -g -w 1
";
    same_lines("ipvsadm -S", &op.run("ipvsadm -S"), dr004_rules);
    let dr004 = "TCP  192.168.246.160:80 rr$
  -> 192.168.246.161:80           Route   1      0          0         $
  -> 192.168.246.162:80           Route   1      0          0         $
";
    let out = op.list("ipvsadm -ln", &format!("{TITLE}{dr004}"));
    like_seed(
        "ipvsadm -ln",
        &out,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.246.160:80 rr
  -> 192.168.246.161:80           Route   1      0          0         
  -> 192.168.246.162:80           Route   1      0          0         
",
    );
    op.list("ipvsadm -L -n", &format!("{TITLE}{dr004}"));
    let dr004_zeros =
        "TCP  192.168.246.160:80                  0        0        0        0        0$
  -> 192.168.246.161:80                  0        0        0        0        0$
  -> 192.168.246.162:80                  0        0        0        0        0$
";
    op.list(
        "ipvsadm -L -n --stats",
        &format!("{STATS_TITLE}{dr004_zeros}"),
    );
    op.list(
        "ipvsadm -L -n --rate",
        &format!("{RATE_TITLE}{dr004_zeros}"),
    );
    // LVS-NAT, on the same director as the doc goes on (no -C in between).
    same_lines("ipvsadm -S", &op.run("ipvsadm -S"), dr004_rules);
    op.run("ipvsadm -A -t 192.168.50.128:80 -s rr");
    op.run("ipvsadm -a -t 192.168.50.128:80 -r 192.168.246.161 -m");
    op.run("ipvsadm -a -t 192.168.50.128:80 -r 192.168.246.162 -m");
    same_rules(
        "ipvsadm -S",
        &op.run("ipvsadm -S"),
        "-A -t 192.168.50.128:http -s rr
-a -t 192.168.50.128:http -r 192.168.246.161:http -m -w 1
-a -t 192.168.50.128:http -r 192.168.246.162:http -m -w 1
-A -t 192.168.246.160:http -s rr
-a -t 192.168.246.160:http -r 192.168.246.161:http -g -w 1
-a -t 192.168.246.160:http -r 192.168.246.162:http -g -w 1
",
    );
    let nat004 = "TCP  192.168.50.128:80 rr$
  -> 192.168.246.161:80           Masq    1      0          0         $
  -> 192.168.246.162:80           Masq    1      0          0         $
";
    // 192.168.50.128 sorts before 192.168.246.160, so the seed's lines come first (its
    // ActiveConn 1 and InActConn 3 came from its elinks tests).
    let out = op.list("ipvsadm -Ln", &format!("{TITLE}{nat004}{dr004}"));
    let first6: String = out.lines().take(6).map(|l| format!("{l}\n")).collect();
    like_seed(
        "ipvsadm -Ln",
        &first6,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.50.128:80 rr
  -> 192.168.246.161:80           Masq    1      0          0         
  -> 192.168.246.162:80           Masq    1      0          0         
",
    );
    let nat004_zeros =
        "TCP  192.168.50.128:80                   0        0        0        0        0$
  -> 192.168.246.161:80                  0        0        0        0        0$
  -> 192.168.246.162:80                  0        0        0        0        0$
";
    op.list(
        "ipvsadm -L -n --stats",
        &format!("{STATS_TITLE}{nat004_zeros}{dr004_zeros}"),
    );
    op.list(
        "ipvsadm -L -n --rate",
        &format!("{RATE_TITLE}{nat004_zeros}{dr004_zeros}"),
    );

    // ---- Beyond the seeds' lines: timeouts, and -E/-e/-d/-D/-C on this table.
    op.list(
        "ipvsadm -L --timeout",
        "Timeout (tcp tcpfin udp): 900 120 300$\n",
    );
    op.run("ipvsadm --set 3600 60 600");
    op.list(
        "ipvsadm -L --timeout",
        "Timeout (tcp tcpfin udp): 3600 60 600$\n",
    );
    // A 0 keeps the current value.
    op.run("ipvsadm --set 0 30 0");
    op.list(
        "ipvsadm -L --timeout",
        "Timeout (tcp tcpfin udp): 3600 30 600$\n",
    );
    op.run("ipvsadm -E -t 192.168.50.128:80 -s sh -b sh-port -p 120 -M 255.255.0.0");
    op.run("ipvsadm -e -t 192.168.50.128:80 -r 192.168.246.162 -m -w 7 -x 100 -y 10");
    op.run("ipvsadm -d -t 192.168.246.160:80 -r 192.168.246.161");
    op.list(
        "ipvsadm -L -n",
        &format!(
            "{TITLE}TCP  192.168.50.128:80 sh (sh-port) persistent 120 mask 255.255.0.0$
  -> 192.168.246.161:80           Masq    1      0          0         $
  -> 192.168.246.162:80           Masq    7      0          0         $
TCP  192.168.246.160:80 rr$
  -> 192.168.246.162:80           Route   1      0          0         $
"
        ),
    );
    // "%-33s %-10s %-10s %-10s %-10s" and "  -> %-28s %-10u %-10u %-10u %-10u".
    op.list(
        "ipvsadm -L -n --thresholds",
        "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn $
  -> RemoteAddress:Port$
TCP  192.168.50.128:80 sh (sh-port) persistent 120 mask 255.255.0.0$
  -> 192.168.246.161:80           0          0          0          0         $
  -> 192.168.246.162:80           100        10         0          0         $
TCP  192.168.246.160:80 rr$
  -> 192.168.246.162:80           0          0          0          0         $
",
    );
    // -E without -p drops persistence, as ipvsadm's edit sends the whole service.
    op.run("ipvsadm -E -t 192.168.50.128:80 -s lc");
    op.run("ipvsadm -D -t 192.168.246.160:80");
    op.list(
        "ipvsadm -L -n",
        &format!(
            "{TITLE}TCP  192.168.50.128:80 lc$
  -> 192.168.246.161:80           Masq    1      0          0         $
  -> 192.168.246.162:80           Masq    7      0          0         $
"
        ),
    );
    op.run("ipvsadm -C");
    op.list("ipvsadm -L -n", TITLE);
    op.list("ipvsadm -L -n --stats", STATS_TITLE);
    op.list("ipvsadm -L -n -c", CONN_TITLE);
    same_lines("ipvsadm -S -n", &op.run("ipvsadm -S -n"), "");

    eprintln!(
        "every_seed_command_works_through_rvsadm: {} commands run",
        op.commands
    );
}

/// Runs `rvsadm ARGS` (words split on blanks); it must exit 0. Returns its stdout.
fn rvsadm_ok(rig: &Rig, tool: Tool, line: &str, stdin: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    let o = rig.run(tool, &args, stdin);
    assert!(
        o.status.success(),
        "`{} {line}` failed: {}",
        tool.name(),
        show(&o)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The table as every listing shows it, and the configuration.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    list: String,
    thresholds: String,
    laddrs: String,
    config: String,
}

fn snapshot(rig: &Rig) -> Snapshot {
    Snapshot {
        list: rvsadm_ok(rig, Tool::Rvsadm, "-L -n", ""),
        thresholds: rvsadm_ok(rig, Tool::Rvsadm, "-L -n --thresholds", ""),
        laddrs: rvsadm_ok(rig, Tool::Rvsadm, "-G", ""),
        config: rig.config(),
    }
}

fn same_snapshot(what: &str, now: &Snapshot, before: &Snapshot) {
    same_lines(&format!("{what}: -L -n"), &now.list, &before.list);
    same_lines(
        &format!("{what}: -L -n --thresholds"),
        &now.thresholds,
        &before.thresholds,
    );
    same_lines(&format!("{what}: -G"), &now.laddrs, &before.laddrs);
    assert_eq!(
        now.config, before.config,
        "{what}: GET /api/v1/config changed"
    );
}

#[test]
fn save_output_restores_to_the_same_table() {
    let rig = Rig::up("save", 19283, "");
    let setup = "\
-A -t 10.0.0.100:80 -s wrr
-a -t 10.0.0.100:80 -r 10.0.0.11 -g -w 3
-a -t 10.0.0.100:80 -r 10.0.0.12 -i -w 2
-a -t 10.0.0.100:80 -r 10.0.0.13 -g -w 1 -x 100 -y 50
-A -u 10.0.0.100:53 -s sh -b sh-fallback,sh-port
-a -u 10.0.0.100:53 -r 10.0.0.21:5353 -m -w 2
-a -u 10.0.0.100:53 -r 10.0.0.22 -m -w 0
-A -f 1 -s rr -p 1800 -M 255.255.255.0
-a -f 1 -r 172.16.100.10 -g -w 2
-a -f 1 -r 172.16.100.11 -g
-A -t 172.16.100.100:0 -s lc -p
-a -t 172.16.100.100:0 -r 172.16.100.20 -g -w 4
-A -t 10.0.0.101:8080 -s rr
-a -t 10.0.0.101:8080 -r 10.0.0.31:80 -m -w 1 -x 1000 -y 800
-a -t 10.0.0.101:8080 -r 10.0.0.32:8081 -m -w 5
-A -t 10.0.0.102:443 -s wlc
-P -t 10.0.0.102:443 -z 10.0.1.10
-P -t 10.0.0.102:443 -z 10.0.1.11
-a -t 10.0.0.102:443 -r 10.0.0.41:8443 -b -w 5 -x 200 -y 100
-a -t 10.0.0.102:443 -r 10.0.0.42 -b
";
    for line in setup.lines() {
        rvsadm_ok(&rig, Tool::Rvsadm, line, "");
    }
    let before = snapshot(&rig);
    // What was configured is what is listed (ports given to DR/TUN servers are the service's,
    // a server without a port takes the service's, FullNAT servers map ports).
    assert!(
        before
            .list
            .contains("\nFWM  1 rr persistent 1800 mask 255.255.255.0\n")
            && before
                .list
                .contains("\nTCP  172.16.100.100:0 lc persistent 360\n")
            && before
                .list
                .contains("\nUDP  10.0.0.100:53 sh (sh-fallback,sh-port)\n")
            && before.list.contains(
                "\n  -> 10.0.0.41:8443               FullNat 5      0          0         \n"
            )
            && before.list.contains(
                "\n  -> 10.0.0.42:443                FullNat 1      0          0         \n"
            ),
        "{}",
        before.list
    );
    let saved = rvsadm_ok(&rig, Tool::Rvsadm, "-S -n", "");
    // ipvsadm's rule format ("-A %s -s %s", " -p %u", " -M %s", " -b %s"; "-a %s -r %s %s -w
    // %d"), DPVS's `-b` for FullNAT servers and `-P … -z LIP` for local addresses, and the
    // thresholds.
    same_rules(
        "-S -n",
        &saved,
        "-A -t 10.0.0.100:80 -s wrr
-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 3
-a -t 10.0.0.100:80 -r 10.0.0.12:80 -i -w 2
-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 1 -x 100 -y 50
-A -u 10.0.0.100:53 -s sh -b sh-fallback,sh-port
-a -u 10.0.0.100:53 -r 10.0.0.21:5353 -m -w 2
-a -u 10.0.0.100:53 -r 10.0.0.22:53 -m -w 0
-A -f 1 -s rr -p 1800 -M 255.255.255.0
-a -f 1 -r 172.16.100.10:0 -g -w 2
-a -f 1 -r 172.16.100.11:0 -g -w 1
-A -t 172.16.100.100:0 -s lc -p 360
-a -t 172.16.100.100:0 -r 172.16.100.20:0 -g -w 4
-A -t 10.0.0.101:8080 -s rr
-a -t 10.0.0.101:8080 -r 10.0.0.31:80 -m -w 1 -x 1000 -y 800
-a -t 10.0.0.101:8080 -r 10.0.0.32:8081 -m -w 5
-A -t 10.0.0.102:443 -s wlc
-P -t 10.0.0.102:443 -z 10.0.1.10
-P -t 10.0.0.102:443 -z 10.0.1.11
-a -t 10.0.0.102:443 -r 10.0.0.41:8443 -b -w 5 -x 200 -y 100
-a -t 10.0.0.102:443 -r 10.0.0.42:443 -b -w 1
",
    );

    // -C, then -R with the saved rules: the same table, the same configuration.
    rvsadm_ok(&rig, Tool::Rvsadm, "-C", "");
    same_lines(
        "-L -n after -C",
        &rvsadm_ok(&rig, Tool::Rvsadm, "-L -n", ""),
        &marked(TITLE),
    );
    assert_ne!(rig.config(), before.config);
    rvsadm_ok(&rig, Tool::Rvsadm, "-R", &saved);
    same_snapshot("-C; -R < saved", &snapshot(&rig), &before);

    // `rvsadm-save -n | rvsadm-restore`: the same rules; the restore replaces whatever the
    // table holds by then.
    let saved2 = rvsadm_ok(&rig, Tool::Save, "-n", "");
    same_lines("rvsadm-save -n", &saved2, &saved);
    rvsadm_ok(&rig, Tool::Rvsadm, "-D -t 10.0.0.100:80", "");
    rvsadm_ok(
        &rig,
        Tool::Rvsadm,
        "-e -t 10.0.0.101:8080 -r 10.0.0.32:8081 -m -w 9",
        "",
    );
    rvsadm_ok(&rig, Tool::Rvsadm, "-A -t 10.0.0.200:80 -s rr", "");
    rvsadm_ok(
        &rig,
        Tool::Rvsadm,
        "-a -t 10.0.0.200:80 -r 10.0.0.201 -m",
        "",
    );
    assert_ne!(rvsadm_ok(&rig, Tool::Rvsadm, "-L -n", ""), before.list);
    rvsadm_ok(&rig, Tool::Restore, "", &saved2);
    same_snapshot("rvsadm-save -n | rvsadm-restore", &snapshot(&rig), &before);

    // The named form (`-S` without -n: http, domain, mdns, https, http-alt) restores too.
    let named = rvsadm_ok(&rig, Tool::Rvsadm, "-S", "");
    assert!(
        named.contains("-A -t 10.0.0.102:https -s wlc\n")
            && named.contains("-a -u 10.0.0.100:domain -r 10.0.0.21:mdns -m -w 2\n")
            && named.contains("-A -t 10.0.0.101:http-alt -s rr\n"),
        "{named}"
    );
    rvsadm_ok(&rig, Tool::Rvsadm, "-C", "");
    rvsadm_ok(&rig, Tool::Rvsadm, "-R", &named);
    same_snapshot("-C; -R < `-S`", &snapshot(&rig), &before);
    same_lines("rvsadm-save", &rvsadm_ok(&rig, Tool::Save, "", ""), &named);
}

/// Failed expectations, gathered so that one run reports every one of them.
#[derive(Debug, Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} problem(s):\n\n{}",
            self.0.len(),
            self.0.join("\n\n")
        );
    }
}

/// A refused command: non-zero exit, `message` as the one line on stderr, nothing on
/// stdout, and the table and configuration as `before`.
fn refused(
    p: &mut Problems,
    rig: &Rig,
    tool: Tool,
    line: &str,
    stdin: &str,
    message: &str,
    before: &Snapshot,
) {
    let args: Vec<&str> = line.split_whitespace().collect();
    let o = rig.run(tool, &args, stdin);
    let what = format!("{} {line}", tool.name());
    let stderr = String::from_utf8_lossy(&o.stderr);
    p.check(!o.status.success(), || {
        format!("`{what}` succeeded: {}", show(&o))
    });
    p.check(stderr == format!("{message}\n"), || {
        format!(
            "`{what}`: stderr must be the one line {message:?}, is {stderr:?} ({})",
            o.status
        )
    });
    p.check(o.stdout.is_empty(), || format!("`{what}`: {}", show(&o)));
    same_snapshot(&format!("after `{what}`"), &snapshot(rig), before);
}

/// A JSON error answer: its `error` and its `field`.
fn error_body(what: &str, body: &str) -> (String, Option<String>) {
    let v: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what}: the error is not JSON ({e}): {body}"));
    let error = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no `error` string: {body}"))
        .to_owned();
    assert!(!error.contains('\n'), "{what}: {body}");
    (error, v["field"].as_str().map(str::to_owned))
}

#[test]
fn bad_input_is_refused_with_one_line_and_nothing_changes() {
    let rig = Rig::up("bad", 19284, "");
    for line in [
        "-A -t 10.0.0.100:80 -s wrr -p 600",
        "-a -t 10.0.0.100:80 -r 10.0.0.11 -g -w 3",
        "-a -t 10.0.0.100:80 -r 10.0.0.12 -m -w 2",
        "-A -f 8 -s rr",
        "-a -f 8 -r 172.16.100.10 -g",
        "-A -t 10.0.0.102:443 -s wlc",
        "-P -t 10.0.0.102:443 -z 10.0.1.10",
        "-a -t 10.0.0.102:443 -r 10.0.0.41:8443 -b",
        "--set 1000 100 200",
    ] {
        rvsadm_ok(&rig, Tool::Rvsadm, line, "");
    }
    let before = snapshot(&rig);
    let timeouts = rvsadm_ok(&rig, Tool::Rvsadm, "-L --timeout", "");
    let mut p = Problems::default();

    // rvsadm: ipvsadm's messages (libipvs `ipvs_strerror`, popt, `fail()`), DPVS's for
    // local addresses.
    let r = Tool::Rvsadm;
    for (line, message) in [
        (
            "-A -t 10.0.0.150:80 -s fastest",
            "Scheduler or persistence engine not found",
        ),
        ("-A -t 10.0.0.100:80 -s rr", "Service already exists"),
        ("-a -t 10.0.0.199:80 -r 10.0.0.11 -g", "Service not defined"),
        (
            "-a -t 10.0.0.100:80 -r 10.0.0.11 -g -w 5",
            "Destination already exists",
        ),
        ("-A -t 10.0.0.150:80 --fastest", "--fastest: unknown option"),
        (
            "-a -t 10.0.0.100:80 -r 10.0.0.13 -w 70000",
            "illegal weight specified",
        ),
        (
            "-e -t 10.0.0.100:80 -r 10.0.0.99 -g -w 1",
            "No such destination",
        ),
        ("-d -f 8 -r 172.16.100.99", "No such destination"),
        ("-E -t 10.0.0.199:80 -s rr", "No such service"),
        ("-D -f 9", "No such service"),
        (
            "-P -t 10.0.0.102:443 -z 10.0.1.10",
            "Local address already exists",
        ),
    ] {
        refused(&mut p, &rig, r, line, "", message, &before);
    }
    // A restore is all or nothing: a bad third line, in the parser or against the table
    // the first two make, leaves them unapplied; rvsadm-restore (which clears the table
    // first) does not even clear it.
    let third_bad = "-A -t 10.0.0.160:80 -s rr
-a -t 10.0.0.160:80 -r 10.0.0.61 -m
-a -t 10.0.0.160:80 -r 10.0.0.62 -m -w 70000
";
    let third_refused = "-A -t 10.0.0.160:80 -s rr
-a -t 10.0.0.160:80 -r 10.0.0.61 -m
-A -t 10.0.0.160:80 -s wrr
";
    for (tool, line, input, message) in [
        (r, "-R", third_bad, "line 3: illegal weight specified"),
        (
            Tool::Restore,
            "",
            third_bad,
            "line 3: illegal weight specified",
        ),
        (r, "-R", third_refused, "line 3: Service already exists"),
        (
            Tool::Restore,
            "",
            third_refused,
            "line 3: Service already exists",
        ),
    ] {
        refused(&mut p, &rig, tool, line, input, message, &before);
    }
    assert_eq!(rvsadm_ok(&rig, Tool::Rvsadm, "-L --timeout", ""), timeouts);

    // The REST API directly.
    let post = |path: &str, body: &str| -> (String, u16) {
        rig.curl(&[
            path,
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ])
    };
    // Malformed JSON: a 400 whose error says what is wrong with the body. No field is at
    // fault, so `field` is absent or names one (not a placeholder).
    for body in [
        r#"{"vip": "10.0.0.170", "port": 80,"#,
        r#"{"vip": "10.0.0.170", "port": 80, "protocol": "tcp",}"#,
        "not json",
    ] {
        let (text, code) = post("/api/v1/services", body);
        assert_eq!(code, 400, "malformed JSON {body:?}: {text}");
        let (error, field) = error_body("malformed JSON", &text);
        p.check(
            error.starts_with("invalid JSON") && error.contains("line 1 column"),
            || format!("POST /api/v1/services with malformed JSON {body:?}: {text}"),
        );
        p.check(
            field
                .as_deref()
                .is_none_or(|f| f.starts_with(|c: char| c.is_ascii_alphabetic())),
            || {
                format!(
                    "POST /api/v1/services with malformed JSON {body:?}: `field` must name a \
                     field or be absent: {text}"
                )
            },
        );
    }
    // An unknown scheduler: a 4xx naming `scheduler`.
    let (text, code) = post(
        "/api/v1/services",
        r#"{"vip": "10.0.0.171", "port": 80, "protocol": "tcp", "scheduler": "fastest"}"#,
    );
    assert!(
        (400..500).contains(&code),
        "unknown scheduler: {code} {text}"
    );
    let (error, field) = error_body("unknown scheduler", &text);
    p.check(
        (field.as_deref() == Some("scheduler") || error.contains("scheduler"))
            && error.contains("fastest"),
        || format!("unknown scheduler: {text}"),
    );
    // A duplicate service: 409.
    let (text, code) = post(
        "/api/v1/services",
        r#"{"vip": "10.0.0.100", "port": 80, "protocol": "tcp", "scheduler": "rr"}"#,
    );
    assert_eq!(code, 409, "duplicate service: {text}");
    let (error, _) = error_body("duplicate service", &text);
    p.check(error.contains("10.0.0.100:80"), || {
        format!("duplicate service: {text}")
    });
    // A server for a missing service: 404.
    let (text, code) = post(
        "/api/v1/services/tcp:10.0.0.199:80/servers",
        r#"{"address": "10.0.0.11", "port": 80}"#,
    );
    assert_eq!(code, 404, "server for a missing service: {text}");
    let (error, _) = error_body("server for a missing service", &text);
    p.check(error.contains("10.0.0.199:80"), || {
        format!("server for a missing service: {text}")
    });
    // A whole configuration with one good new service and one bad one: a 4xx naming the bad
    // field, and the good one is not applied either.
    let mut config: serde_json::Value = serde_json::from_str(&before.config).unwrap();
    let services = config["services"].as_array_mut().unwrap();
    let n = services.len();
    services.push(serde_json::json!({
        "vip": "10.0.0.180", "port": 80, "protocol": "tcp", "scheduler": "rr",
        "servers": [{ "address": "10.0.0.81" }]
    }));
    services.push(serde_json::json!({
        "vip": "10.0.0.181", "port": 80, "protocol": "tcp", "scheduler": "rr",
        "servers": [{ "address": "10.0.0.82", "weight": 70000 }]
    }));
    let (text, code) = rig.curl(&[
        "/api/v1/config",
        "-X",
        "PUT",
        "-H",
        "content-type: application/json",
        "-d",
        &config.to_string(),
    ]);
    assert!(
        (400..500).contains(&code),
        "PUT /api/v1/config: {code} {text}"
    );
    let (_, field) = error_body("PUT /api/v1/config", &text);
    let want = format!("services[{}].servers[0].weight", n + 1);
    p.check(field.as_deref() == Some(want.as_str()), || {
        format!("PUT /api/v1/config: the field at fault is {want}: {text}")
    });

    // After all of them: byte for byte the configuration from before.
    same_snapshot("after the refused REST requests", &snapshot(&rig), &before);
    p.assert_none();
}

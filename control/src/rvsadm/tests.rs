//! `run` end to end over an in-memory transport (and once over real HTTP): which requests
//! each command makes, what it prints, and how it fails.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;

use super::client::{Reply, Transport};
use super::*;
use crate::api::{ConnPage, ConnView, Rates, ServerView, ServiceView, Stats, StatsView};
use rvs_config::{Forward, Scheduler};

/// Canned answers by `METHOD path`; records every request with its body.
#[derive(Debug, Default)]
struct Fake {
    answers: HashMap<String, Reply>,
    calls: Vec<(String, Option<String>)>,
    down: bool,
}

impl Fake {
    fn on(mut self, req: &str, status: u16, body: impl Into<String>) -> Fake {
        self.answers.insert(
            req.to_owned(),
            Reply {
                status,
                body: body.into(),
            },
        );
        self
    }

    fn json<T: serde::Serialize>(self, req: &str, status: u16, v: &T) -> Fake {
        let body = serde_json::to_string(v).unwrap();
        self.on(req, status, body)
    }

    fn requests(&self) -> Vec<&str> {
        self.calls.iter().map(|(r, _)| r.as_str()).collect()
    }

    fn body(&self, req: &str) -> serde_json::Value {
        let (_, b) = self.calls.iter().find(|(r, _)| r == req).expect(req);
        serde_json::from_str(b.as_deref().expect("a body")).unwrap()
    }
}

impl Transport for Fake {
    fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> Result<Reply, String> {
        if self.down {
            return Err("io: Connection refused (os error 111)".to_owned());
        }
        let req = format!("{method} {path}");
        self.calls.push((req.clone(), body.map(str::to_owned)));
        Ok(self.answers.get(&req).cloned().unwrap_or(Reply {
            status: 404,
            body: r#"{"error":"not found"}"#.to_owned(),
        }))
    }
}

/// Exit status, stdout, stderr.
fn go(fake: &mut Fake, line: &str, stdin: &str) -> (i32, String, String) {
    let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let env = Env {
        services_file: "/nonexistent/services".into(),
        hosts_file: "/nonexistent/hosts".into(),
        ..Env::default()
    };
    let code = run_with_transport(
        args,
        &mut stdin.as_bytes(),
        &mut o,
        &mut e,
        &env,
        fake,
        "http://api",
    );
    (
        code,
        String::from_utf8(o).unwrap(),
        String::from_utf8(e).unwrap(),
    )
}

fn profile_json(text: &str) -> Profile {
    let mut p = restore::tests::empty_profile();
    restore::restore(&mut p, text, &Names::default(), false).unwrap();
    p
}

#[test]
fn add_service_posts_the_service_and_maps_409() {
    let mut f = Fake::default().on("POST /api/v1/services", 201, "{}");
    assert_eq!(
        go(
            &mut f,
            "-A -t 10.0.0.100:80 -s rr -p 600 -M 255.255.255.0",
            ""
        ),
        (0, String::new(), String::new())
    );
    assert_eq!(
        f.body("POST /api/v1/services"),
        serde_json::json!({
            "vip": "10.0.0.100", "port": 80, "protocol": "tcp", "scheduler": "rr",
            "persistence": {"timeout": 600, "netmask": "255.255.255.0"}, "servers": []
        })
    );
    let mut f = Fake::default().on(
        "POST /api/v1/services",
        409,
        r#"{"error":"service tcp:10.0.0.100:80 exists"}"#,
    );
    assert_eq!(
        go(&mut f, "-A -t 10.0.0.100", "").2,
        "Zero port specified for non-persistent service\n"
    );
    let (code, _, err) = go(&mut f, "-A -t 10.0.0.100:80 -s rr", "");
    assert_eq!((code, err.as_str()), (1, "Service already exists\n"));
    // Any other refusal is the API's message, one line.
    let mut f = Fake::default().on(
        "POST /api/v1/services",
        422,
        r#"{"error":"vip 10.0.0.100 is not on any port","field":"services[0].vip"}"#,
    );
    let (code, _, err) = go(&mut f, "-A -f 8", "");
    assert_eq!(
        (code, err.as_str()),
        (1, "services[0].vip: vip 10.0.0.100 is not on any port\n")
    );
    assert_eq!(f.body("POST /api/v1/services")["fwmark"], 8);
}

#[test]
fn edit_service_replaces_scheduler_and_persistence_and_keeps_servers() {
    let p = profile_json(
        "-A -t 10.0.0.100:80 -s rr -p 600\n-a -t 10.0.0.100:80 -r 10.0.0.11 -w 2\n-P -t 10.0.0.100:80 -z 10.0.1.1",
    );
    let mut f = Fake::default()
        .json(
            "GET /api/v1/services/tcp:10.0.0.100:80",
            200,
            &p.services[0],
        )
        .on("PUT /api/v1/services/tcp:10.0.0.100:80", 200, "{}");
    assert_eq!(go(&mut f, "-E -t 10.0.0.100:80 -s wrr", "").0, 0);
    let put = f.body("PUT /api/v1/services/tcp:10.0.0.100:80");
    assert_eq!(put["scheduler"], "wrr");
    assert!(
        put.get("persistence").is_none(),
        "-E without -p drops persistence: {put}"
    );
    assert_eq!(put["servers"][0]["weight"], 2);
    assert_eq!(put["local_addresses"][0], "10.0.1.1");
    let mut f = Fake::default();
    assert_eq!(
        go(&mut f, "-E -t 10.0.0.1:80", ""),
        (1, String::new(), "No such service\n".to_owned())
    );
}

#[test]
fn server_commands_use_the_server_resource_and_ipvsadm_messages() {
    let p = profile_json("-A -t 10.0.0.100:80");
    let mut f = Fake::default()
        .on("POST /api/v1/services/tcp:10.0.0.100:80/servers", 201, "{}")
        .on(
            "PUT /api/v1/services/tcp:10.0.0.100:80/servers/10.0.0.12:8080",
            200,
            "{}",
        )
        .on(
            "DELETE /api/v1/services/tcp:10.0.0.100:80/servers/10.0.0.11:80",
            204,
            "",
        )
        .json(
            "GET /api/v1/services/tcp:10.0.0.100:80",
            200,
            &p.services[0],
        );
    assert_eq!(
        go(&mut f, "-a -t 10.0.0.100:80 -r 10.0.0.11 -g -w 3", "").0,
        0
    );
    assert_eq!(
        f.body("POST /api/v1/services/tcp:10.0.0.100:80/servers"),
        serde_json::json!({"address": "10.0.0.11", "port": 80, "weight": 3, "forward": "dr", "upper": 0, "lower": 0})
    );
    assert_eq!(
        go(&mut f, "-e -t 10.0.0.100:80 -r 10.0.0.12:8080 -b -w 0", "").0,
        0
    );
    assert_eq!(
        f.body("PUT /api/v1/services/tcp:10.0.0.100:80/servers/10.0.0.12:8080")["forward"],
        "fnat"
    );
    assert_eq!(go(&mut f, "-d -t 10.0.0.100:80 -r 10.0.0.11", "").0, 0);
    // 404 on an existing service: the server is missing.
    assert_eq!(
        go(&mut f, "-e -t 10.0.0.100:80 -r 10.0.0.99", "").2,
        "No such destination\n"
    );
    assert_eq!(
        go(&mut f, "-d -t 10.0.0.100:80 -r 10.0.0.99", "").2,
        "No such destination\n"
    );
    // 404 and no service.
    assert_eq!(
        go(&mut f, "-a -t 10.0.0.1:80 -r 10.0.0.11", "").2,
        "Service not defined\n"
    );
    assert_eq!(
        go(&mut f, "-e -t 10.0.0.1:80 -r 10.0.0.11", "").2,
        "Service not defined\n"
    );
    let mut f = Fake::default().on(
        "POST /api/v1/services/tcp:10.0.0.100:80/servers",
        409,
        r#"{"error":"exists"}"#,
    );
    assert_eq!(
        go(&mut f, "-a -t 10.0.0.100:80 -r 10.0.0.11", ""),
        (1, String::new(), "Destination already exists\n".to_owned())
    );
}

fn stats_view() -> StatsView {
    let server = |a: &str, w: u32, act: u64, inact: u64| ServerView {
        address: a.parse().unwrap(),
        port: 80,
        forward: Forward::Dr,
        weight: w,
        config_weight: w,
        upper: 0,
        lower: 0,
        active: act,
        inactive: inact,
        persistent: 0,
        stats: Stats::default(),
        rates: Rates::default(),
        sorry: false,
    };
    StatsView {
        services: vec![ServiceView {
            id: "tcp:192.168.161.184:80".parse().unwrap(),
            scheduler: Scheduler::Wrr,
            flags: vec![],
            persistence_timeout: None,
            persistence_netmask: None,
            local_addresses: vec![],
            stats: Stats::default(),
            rates: Rates::default(),
            servers: vec![
                server("10.203.0.12", 3, 90, 0),
                server("10.203.0.13", 2, 60, 0),
            ],
        }],
        total: Stats::default(),
        total_rates: Rates::default(),
        workers: vec![],
        generation: 3,
    }
}

#[test]
fn list_prints_the_seed_dr_table() {
    let mut f = Fake::default().json("GET /api/v1/stats", 200, &stats_view());
    let (code, out, err) = go(&mut f, "-ln", "");
    assert_eq!((code, err.as_str()), (0, ""));
    // Seed 000, `ipvsadm -ln` of the DR example.
    assert_eq!(
        out,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  192.168.161.184:80 wrr\n\
         \x20 -> 10.203.0.12:80               Route   3      90         0         \n\
         \x20 -> 10.203.0.13:80               Route   2      60         0         \n"
    );
    // One service; a missing one.
    let (code, out, _) = go(&mut f, "-L -n -t 192.168.161.184:80", "");
    assert_eq!(code, 0);
    assert!(out.starts_with("Prot LocalAddress:Port Scheduler Flags\n"));
    assert_eq!(
        go(&mut f, "-L -n -t 192.168.161.184:81", ""),
        (1, String::new(), "No such service\n".to_owned())
    );
    // No arguments at all is the listing.
    assert_eq!(go(&mut f, "", "").1.lines().count(), 6);
    assert_eq!(
        go(&mut f, "-L --daemon", ""),
        (0, String::new(), String::new())
    );
}

#[test]
fn connections_follow_every_page() {
    let conn = |port: u16| ConnView {
        protocol: "tcp".into(),
        expires: 61,
        state: "ESTABLISHED".into(),
        client: format!("10.0.0.1:{port}").parse().unwrap(),
        virtual_addr: "10.0.0.100:80".parse().unwrap(),
        destination: "10.0.0.11:80".parse().unwrap(),
        local: None,
        template: false,
        worker: 0,
    };
    let mut f = Fake::default()
        .json(
            "GET /api/v1/connections?offset=0&limit=1000&templates=true",
            200,
            &ConnPage {
                items: vec![conn(1000), conn(1001)],
                next_offset: Some(2),
            },
        )
        .json(
            "GET /api/v1/connections?offset=2&limit=1000&templates=true",
            200,
            &ConnPage {
                items: vec![conn(1002)],
                next_offset: None,
            },
        );
    let (code, out, _) = go(&mut f, "-L -n -c", "");
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 5);
    assert!(
        out.ends_with(
            "TCP 01:01  ESTABLISHED 10.0.0.1:1002      10.0.0.100:80      10.0.0.11:80\n"
        ),
        "{out}"
    );
}

#[test]
fn timeouts_zero_and_set() {
    let t = Timeouts::default();
    let mut f = Fake::default()
        .json("GET /api/v1/timeouts", 200, &t)
        .on("PUT /api/v1/timeouts", 200, "{}")
        .on("POST /api/v1/stats/zero", 204, "")
        .on("POST /api/v1/stats/zero?service=udp:10.0.0.100:53", 204, "");
    assert_eq!(
        go(&mut f, "-L --timeout", "").1,
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    assert_eq!(go(&mut f, "--set 0 60 0", "").0, 0);
    assert_eq!(
        f.body("PUT /api/v1/timeouts"),
        serde_json::json!({"tcp": 900, "tcp_fin": 60, "udp": 300})
    );
    assert_eq!(go(&mut f, "-Z", "").0, 0);
    assert_eq!(go(&mut f, "-Z -u 10.0.0.100:53", "").0, 0);
    assert_eq!(
        go(&mut f, "-Z -t 10.0.0.100:53", ""),
        (1, String::new(), "No such service\n".to_owned())
    );
}

#[test]
fn save_and_restore_go_through_the_whole_configuration() {
    let p = profile_json("-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 10.0.0.11 -g -w 1");
    let mut f =
        Fake::default()
            .json("GET /api/v1/config", 200, &p)
            .on("PUT /api/v1/config", 200, "{}");
    let (code, saved, _) = go(&mut f, "-S -n", "");
    assert_eq!(
        (code, saved.as_str()),
        (
            0,
            "-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 1\n"
        )
    );

    // -R applies every line to the fetched configuration and PUTs it once.
    let rules =
        "# saved\n-A -t 10.0.0.100:443 -s wlc -p\n-a -t 10.0.0.100:443 -r 10.0.0.12 -g -w 2\n";
    assert_eq!(go(&mut f, "-R", rules), (0, String::new(), String::new()));
    assert_eq!(
        f.requests(),
        [
            "GET /api/v1/config",
            "GET /api/v1/config",
            "PUT /api/v1/config"
        ]
    );
    let put: Profile = serde_json::from_value(f.body("PUT /api/v1/config")).unwrap();
    assert_eq!(put.services.len(), 2);
    assert_eq!(put.services[1].servers[0].weight, 2);

    // A bad line: nothing is installed.
    let mut f = Fake::default().json("GET /api/v1/config", 200, &p);
    let (code, _, err) = go(
        &mut f,
        "-R",
        "-A -t 10.0.0.100:443\n-a -t 10.0.0.100:443 -r 10.0.0.12 -w 70000\n",
    );
    assert_eq!(
        (code, err.as_str()),
        (2, "line 2: illegal weight specified\n")
    );
    let (code, _, err) = go(&mut f, "-R", "-A -t 10.0.0.100:80 -s rr\n");
    assert_eq!(
        (code, err.as_str()),
        (1, "line 1: Service already exists\n")
    );
    assert!(!f.requests().contains(&"PUT /api/v1/config"));

    // rvsadm-restore clears first (ipvsadm-restore runs `ipvsadm -C` before `-R`).
    let mut f =
        Fake::default()
            .json("GET /api/v1/config", 200, &p)
            .on("PUT /api/v1/config", 200, "{}");
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let code = restore_with_transport(
        &mut saved.as_bytes(),
        &mut o,
        &mut e,
        &Env::default(),
        &mut f,
        "http://api",
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&e));
    let put: Profile = serde_json::from_value(f.body("PUT /api/v1/config")).unwrap();
    assert_eq!(
        put.services, p.services,
        "clear + restore of its own -S is the same table"
    );
}

#[test]
fn local_addresses_dpvs_style() {
    let p = profile_json("-A -t 10.0.0.100:80\n-P -t 10.0.0.100:80 -z 10.0.1.10");
    let mut f = Fake::default()
        .on(
            "POST /api/v1/services/tcp:10.0.0.100:80/local-addresses",
            201,
            "{}",
        )
        .on(
            "DELETE /api/v1/services/tcp:10.0.0.100:80/local-addresses/10.0.1.10",
            204,
            "",
        )
        .json("GET /api/v1/services", 200, &p.services)
        .json(
            "GET /api/v1/services/tcp:10.0.0.100:80",
            200,
            &p.services[0],
        );
    assert_eq!(
        go(&mut f, "--add-laddr -t 10.0.0.100:80 -z 10.0.1.11", "").0,
        0
    );
    assert_eq!(
        f.body("POST /api/v1/services/tcp:10.0.0.100:80/local-addresses"),
        serde_json::json!({"address": "10.0.1.11"})
    );
    assert_eq!(go(&mut f, "-Q -t 10.0.0.100:80 -z 10.0.1.10", "").0, 0);
    assert_eq!(
        go(&mut f, "-Q -t 10.0.0.100:80 -z 10.0.1.99", "").2,
        "No such local address\n"
    );
    assert_eq!(
        go(&mut f, "-P -t 10.0.0.1:80 -z 10.0.1.99", "").2,
        "No such service\n"
    );
    let all = go(&mut f, "-G", "").1;
    assert_eq!(all, go(&mut f, "-G -t 10.0.0.100:80", "").1);
    assert!(all.contains("\n10.0.0.100:80        1        \n"), "{all}");
}

#[test]
fn failures_print_one_line_and_exit_like_ipvsadm() {
    let mut f = Fake::default();
    assert_eq!(
        go(&mut f, "-A -t 10.0.0.1:80 --bogus", ""),
        (2, String::new(), "--bogus: unknown option\n".to_owned())
    );
    assert_eq!(
        go(&mut f, "-n", ""),
        (
            2,
            String::new(),
            "Try `rvsadm -h' or 'rvsadm --help' for more information.\n".to_owned()
        )
    );
    assert!(f.calls.is_empty(), "nothing is sent for a bad command line");
    // A leading program name and --api/--token anywhere are accepted.
    let mut f = Fake::default().json("GET /api/v1/timeouts", 200, &Timeouts::default());
    assert_eq!(
        go(&mut f, "rvsadm -L --api http://x --timeout --token=t", "").0,
        0
    );
    assert_eq!(
        go(&mut f, "-L --token", "").2,
        "--token: missing argument\n"
    );
    // The API down.
    let mut f = Fake {
        down: true,
        ..Fake::default()
    };
    let (code, _, err) = go(&mut f, "-L -n", "");
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "Can't initialize ipvs: io: Connection refused (os error 111) (is rvs-control listening on http://api?)\n"
    );
    // -h and -v need no API.
    assert!(
        go(&mut f, "-h", "")
            .1
            .contains("Usage:\n  rvsadm -A|E virtual-service")
    );
    let v = go(&mut f, "--version", "").1;
    assert!(
        v.starts_with("rvsadm ")
            && v.ends_with("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"),
        "{v}"
    );
}

#[test]
fn save_wrapper_takes_only_n() {
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let code = run_save(
        vec!["-x".into()],
        &mut "".as_bytes(),
        &mut o,
        &mut e,
        &Env::default(),
    );
    assert_eq!(code, 1);
    assert!(
        String::from_utf8(e)
            .unwrap()
            .starts_with("rvsadm-save: Script to save the IPVS table to stdout.")
    );
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let code = run_restore(
        vec!["-n".into()],
        &mut "".as_bytes(),
        &mut o,
        &mut e,
        &Env::default(),
    );
    assert_eq!(code, 1);
}

/// The real HTTP transport: URL, token header, and the answer read back.
#[test]
fn http_transport_sends_the_bearer_token() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"tcp":1,"tcp_fin":2,"udp":3}"#;
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8(req).unwrap()
    });
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let env = Env {
        api: Some("http://127.0.0.1:1".into()),
        token: Some("from-env".into()),
        ..Env::default()
    };
    let args = [
        "--api",
        &format!("http://{addr}/"),
        "--token",
        "s3cret",
        "-L",
        "--timeout",
    ];
    let code = run(
        args.iter().map(|s| s.to_string()).collect(),
        &mut "".as_bytes(),
        &mut o,
        &mut e,
        &env,
    );
    let req = server.join().unwrap();
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&e));
    assert_eq!(
        String::from_utf8(o).unwrap(),
        "Timeout (tcp tcpfin udp): 1 2 3\n"
    );
    assert!(
        req.starts_with("GET /api/v1/timeouts HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(
        req.to_ascii_lowercase()
            .contains("authorization: bearer s3cret\r\n"),
        "{req}"
    );
}

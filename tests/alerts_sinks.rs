//! Forwarding and alerts (issue 11, acceptance 4 and 5), against real
//! sinks: an HTTP listener in this test (a TcpListener thread speaking
//! HTTP/1.1) and Debian's rsyslogd, started here as the current user with
//! its own configuration, listening on 127.0.0.1 over UDP and TCP and
//! writing each message's MSG to a file per transport.
//!
//! One scripted run on one server (the setups are shared to keep the suite
//! lean): alice registers, bob is refused twice (the refusals alert), bob
//! clones and pulls (fetches, and his first fetch of the model alerts); the
//! HTTP sink goes down, alice registers again and the push lands, `hook
//! check` counts the queue, the sink comes back and `hook flush` drains it
//! in order; then a payload tampered on the server makes bob's pull fail,
//! his signed report lands in the server log and its alert reaches both
//! sinks; a report the hook refuses leaves the pull's error as it was.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::hook_server::Server;

/// An HTTP/1.1 endpoint that records the body of every POST to /hook and
/// answers 204.
struct Webhook {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Webhook {
    /// Listen on `port` (0: any free port), appending bodies to `got`.
    fn start(port: u16, got: Arc<Mutex<Vec<String>>>) -> Webhook {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the webhook");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = stream {
                    if let Some(body) = serve(s) {
                        got.lock().expect("lock").push(body);
                    }
                }
            }
        });
        Webhook {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Stop listening: the port is closed when this returns.
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            t.join().expect("the webhook thread");
        }
    }
}

/// One request: the body of a POST /hook with a JSON content type.
fn serve(stream: TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0usize;
    let mut json = false;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => json = value.trim() == "application/json",
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let mut out = stream;
    out.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .ok()?;
    assert!(
        request_line.starts_with("POST /hook HTTP/1.1") && json,
        "unexpected request: {request_line:?} (json: {json})"
    );
    String::from_utf8(body).ok()
}

/// rsyslogd from Debian, run by this test, writing what arrives over UDP
/// and over TCP to one file each.
struct Rsyslog {
    child: Child,
    udp: u16,
    tcp: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Rsyslog {
    fn start(env: &TestEnv) -> Rsyslog {
        let program = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| require_program("rsyslogd", "rsyslog"));
        let dir = env.path("rsyslog");
        std::fs::create_dir_all(&dir).expect("rsyslog dir");
        let (udp, tcp) = (free_port(), free_port());
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
template(name="msgonly" type="string" string="%msg%\n")
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="msgonly" asyncWriting="off" flushOnTXEnd="on") }}
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="msgonly" asyncWriting="off" flushOnTXEnd="on") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
"#
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).expect("write rsyslog.conf");
        let child = Command::new(program)
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", tcp)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {tcp}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog {
            child,
            udp,
            tcp,
            dir,
        }
    }

    /// The lines rsyslogd wrote for `transport` (udp or tcp), once there
    /// are `n` of them.
    fn lines(&self, transport: &str, n: usize) -> Vec<String> {
        let path = self.dir.join(format!("{transport}.log"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines: Vec<String> = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON lines received so far.
fn received(got: &Arc<Mutex<Vec<String>>>) -> Vec<Value> {
    got.lock()
        .expect("lock")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A line wanted: what it is, and a test of it.
type Wanted<'a> = (&'a str, &'a dyn Fn(&Value) -> bool);

/// Whether `lines` holds, in this order, lines matching each of `wanted`.
#[track_caller]
fn assert_in_order(lines: &[Value], wanted: &[Wanted<'_>]) {
    let mut at = 0;
    for (what, matches) in wanted {
        match lines[at..].iter().position(matches) {
            Some(i) => at += i + 1,
            None => panic!(
                "no line for {what} after line {at}:\n{}",
                lines
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }
}

/// The sink line schema of docs/json/v1.schema.json.
fn sink_line_validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json/v1.schema.json");
    let mut root: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("JSON");
    root["$ref"] = Value::String("#/$defs/sink_line".into());
    jsonschema::validator_for(&root).expect("the schema compiles")
}

/// Replace the first part of `payload_ref`'s tree on the server with the
/// same bytes but one, behind the hook's back (plumbing in the bare repo).
fn tamper_payload(s: &Server, payload_ref: &str) {
    let listing = s.git_ok(&s.bare, &["ls-tree", payload_ref]);
    let first = listing
        .lines()
        .find(|l| l.contains(" blob "))
        .expect("a blob in the payload tree");
    let (meta, name) = first.split_once('\t').expect("ls-tree line");
    let blob = meta.split_whitespace().nth(2).expect("blob id");
    let mut bytes = s.git_show_bytes(&s.bare, blob);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let cmd = s.git_command(&s.bare, &["hash-object", "-w", "--stdin"]);
    let forged = s.run_with_input(cmd, &bytes).success().stdout();
    let tree: String = listing
        .lines()
        .map(|l| {
            if l == first {
                format!("100644 blob {}\t{name}\n", forged.trim())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let cmd = s.git_command(&s.bare, &["mktree"]);
    let tree_id = s.run_with_input(cmd, tree.as_bytes()).success().stdout();
    s.git_ok(&s.bare, &["update-ref", payload_ref, tree_id.trim()]);
}

#[test]
fn sinks_get_every_decision_fetch_report_and_alert_and_a_queue_drains_after_an_outage() {
    let s = Server::new();
    let syslog = Rsyslog::start(&s);
    let got = Arc::new(Mutex::new(Vec::new()));
    let webhook = Webhook::start(0, got.clone());
    let port = webhook.port;
    let http = webhook.url();
    for sink in [
        http.clone(),
        format!("syslog+udp://127.0.0.1:{}", syslog.udp),
        format!("syslog+tcp://127.0.0.1:{}", syslog.tcp),
    ] {
        s.git_ok(&s.bare, &["config", "--add", "mvault.sink", &sink]);
    }
    s.git_ok(&s.bare, &["config", "mvault.alertRefusals", "2/10m"]);
    // Fetches are logged as on a server: upload-pack reads the server
    // user's global config, which runs mvault in place of pack-objects.
    let server_config = s.path("server-gitconfig");
    let hook = format!("{} hook pack-objects", env!("CARGO_BIN_EXE_mvault"));
    let mut set = s.command("git");
    set.args(["config", "--file"])
        .arg(&server_config)
        .args(["uploadpack.packObjectsHook", &hook]);
    s.run(set).success();
    let as_bob = |cmd: &mut Command| {
        cmd.env("MVAULT_USER", "bob")
            .env("GIT_CONFIG_GLOBAL", &server_config);
    };

    // alice registers; bob is refused twice; bob clones and pulls.
    let model = s.model(1);
    s.add(&s.work, &s.alice, Some("alice"), &model, "1.0.0", &[])
        .success();
    let bobs = s.path("bob-clone");
    let mut clone = s.git_command(
        s.root(),
        &[
            "clone",
            "-q",
            "--no-local",
            path_str(&s.bare),
            path_str(&bobs),
        ],
    );
    as_bob(&mut clone);
    s.run(clone).success();
    for _ in 0..2 {
        let mut push = s.git_command(&bobs, &["push", "origin", "main:refs/heads/evil"]);
        as_bob(&mut push);
        s.run(push)
            .failure()
            .mentions(&["refs/heads/evil", "unknown ref namespace"]);
    }
    let pull = |reference: &str, out: &str, pusher: &str| {
        let out = s.path(out);
        let mut cmd = s.mvault_command(&bobs, &s.bob, &["pull", reference, "-o", path_str(&out)]);
        as_bob(&mut cmd);
        cmd.env("MVAULT_USER", pusher);
        s.run(cmd)
    };
    pull("nlp/bert@1.0.0", "out-1.0.0", "bob").success();

    // The admin grants bob a role: a policy change that grants read.
    s.mvault_as(
        &s.work,
        &s.admin,
        Some("admin"),
        &[
            "policy", "grant", "bob", "--role", "approver", "--models", "nlp/*",
        ],
    )
    .success();

    let is = |kind: &'static str| move |l: &Value| l["kind"] == kind;
    let lines = received(&got);
    assert_in_order(
        &lines,
        &[
            ("alice's accepted registration", &|l| {
                is("decision")(l) && l["decision"] == "accept" && l["pusher"] == "alice"
            }),
            ("bob's first refusal", &|l| {
                l["decision"] == "refuse"
                    && l["pusher"] == "bob"
                    && l["refusal"]["rule"] == "unknown ref namespace"
            }),
            ("bob's second refusal", &|l| {
                l["decision"] == "refuse" && l["pusher"] == "bob"
            }),
            ("the refusals alert", &|l| {
                is("alert")(l)
                    && l["rule"] == "refusals"
                    && l["subject"] == "bob"
                    && l["count"] == 2
                    && l["window"] == 600
            }),
            ("bob's fetch of the payload", &|l| {
                is("fetch")(l)
                    && l["user"] == "bob"
                    && l["versions"][0]["model"] == "nlp/bert"
                    && l["versions"][0]["version"] == "1.0.0"
            }),
            ("bob's first fetch of nlp/bert", &|l| {
                is("alert")(l) && l["rule"] == "first-fetch" && l["subject"] == "bob nlp/bert"
            }),
            ("the policy change granting bob approver", &|l| {
                l["decision"] == "accept"
                    && l["pusher"] == "admin"
                    && l["grants"][0]["user"] == "bob"
                    && l["grants"][0]["role"] == "approver"
            }),
            ("the grant alert", &|l| {
                is("alert")(l) && l["rule"] == "grant" && l["subject"] == "bob approver nlp/*"
            }),
        ],
    );
    let validator = sink_line_validator();
    for l in &lines {
        let errors: Vec<String> = validator.iter_errors(l).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{l} does not match $defs/sink_line: {errors:?}"
        );
        assert_eq!(l["repo"], path_str(&s.bare));
    }

    // The webhook goes down: the push still lands, its lines wait.
    webhook.stop();
    let started = Instant::now();
    // Other weights than 1.0.0's: bob's clone holds none of its parts.
    s.add(&s.work, &s.alice, Some("alice"), &s.model(2), "1.1.0", &[])
        .success();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a push with a sink down took {:?}",
        started.elapsed()
    );
    assert!(!s
        .git_ok(&s.bare, &["tag", "-l", "nlp/bert@v1.1.0"])
        .trim()
        .is_empty());
    let check = s.mvault(s.root(), &s.admin, &["hook", "check", path_str(&s.bare)]);
    assert!(
        check
            .stdout()
            .lines()
            .any(|l| l.starts_with("warn") && l.contains(&format!("queued for {http}"))),
        "hook check does not count the queue:\n{}",
        check.output()
    );
    let before = lines.len();
    assert_eq!(
        received(&got).len(),
        before,
        "nothing arrives while it is down"
    );

    // It comes back on the same port: hook flush drains the queue in order.
    let webhook = Webhook::start(port, got.clone());
    s.mvault(s.root(), &s.admin, &["hook", "flush", path_str(&s.bare)])
        .success()
        .mentions(&["0 still queued"]);
    let lines = received(&got);
    assert_in_order(
        &lines[before..],
        &[("the registration made while it was down", &|l| {
            l["decision"] == "accept"
                && l["updates"].as_array().is_some_and(|u| {
                    u.iter()
                        .any(|u| u["refname"] == "refs/tags/nlp/bert@v1.1.0")
                })
        })],
    );
    let check = s.mvault(s.root(), &s.admin, &["hook", "check", path_str(&s.bare)]);
    assert!(!check.stdout().contains("queued for"), "{}", check.output());

    // A payload tampered on the server: bob's pull fails, his report lands.
    tamper_payload(&s, "refs/mvault/data/nlp/bert/1.1.0");
    let mut sync = s.mvault_command(&bobs, &s.bob, &["sync"]);
    as_bob(&mut sync);
    s.run(sync).success();
    let failed = pull("nlp/bert@1.1.0", "out-1.1.0", "bob")
        .mvault_error()
        .mentions(&[
            "payload tree check failed",
            "integrity report sent: refs/mvault/reports/bob/",
        ]);
    assert_eq!(failed.status.code(), Some(4), "{}", failed.output());
    let report_ref = failed
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("mvault: integrity report sent: "))
        .expect("the report's ref")
        .to_owned();
    assert_eq!(
        s.git_ok(
            &s.bare,
            &[
                "for-each-ref",
                "--format=%(refname)",
                "refs/mvault/reports/"
            ]
        )
        .trim(),
        report_ref
    );
    let server_log = s
        .mvault(
            &s.bare,
            &s.admin,
            &[
                "log",
                "--server",
                "--action",
                "integrity-violation",
                "--json",
            ],
        )
        .success()
        .stdout();
    let entry: Value = serde_json::from_str(server_log.trim()).expect("one JSON line");
    assert_eq!(entry["user"], "bob");
    assert_eq!(entry["ref"], report_ref.as_str());
    assert_eq!(entry["report"]["check"], "digest");
    assert_eq!(entry["report"]["version"], "1.1.0");
    let lines = received(&got);
    assert_in_order(
        &lines,
        &[
            ("the report", &|l| {
                is("integrity-violation")(l) && l["user"] == "bob"
            }),
            ("the report's alert", &|l| {
                is("alert")(l) && l["rule"] == "integrity-report" && l["subject"] == "bob"
            }),
        ],
    );
    // The clone keeps its own note.
    s.mvault(&bobs, &s.bob, &["log", "--action", "integrity-violation"])
        .success()
        .mentions(&["integrity-violation", "nlp/bert@1.1.0", "report sent"]);

    // A report the hook refuses (pushed as alice, signed by bob): the pull
    // fails as before, and says the report was not sent and why.
    let again = pull("nlp/bert", "out-latest", "alice")
        .mvault_error()
        .mentions(&[
            "payload tree check failed",
            "integrity report not sent",
            "report signer: alice pushed a report signed by bob",
        ]);
    assert_eq!(again.status.code(), Some(4), "{}", again.output());
    let error_line = |r: &Run| {
        r.stderr()
            .lines()
            .find(|l| l.contains("payload tree check failed"))
            .map(str::to_owned)
    };
    assert_eq!(error_line(&again), error_line(&failed));

    // A report ref is written once, and travels alone.
    let mut rewrite = s.git_command(&bobs, &["push", "origin", &format!("+main:{report_ref}")]);
    as_bob(&mut rewrite);
    s.run(rewrite)
        .failure()
        .mentions(&[report_ref.as_str(), "report rewritten"]);
    let mut mixed = s.git_command(
        &bobs,
        &[
            "push",
            "origin",
            &format!("{report_ref}:refs/mvault/reports/bob/0123456789abcdef"),
            "main:refs/heads/evil",
        ],
    );
    as_bob(&mut mixed);
    s.git_ok(
        &bobs,
        &[
            "fetch",
            "-q",
            "origin",
            &format!("{report_ref}:{report_ref}"),
        ],
    );
    s.run(mixed)
        .failure()
        .mentions(&["refs/heads/evil", "report mixed with other updates"]);

    // A sink mvault cannot deliver to is a FAIL of hook check.
    s.git_ok(
        &s.bare,
        &[
            "config",
            "--add",
            "mvault.sink",
            "https://siem.example/mvault",
        ],
    );
    s.mvault(s.root(), &s.admin, &["hook", "check", path_str(&s.bare)])
        .failure()
        .mentions(&["FAIL mvault.sink \"https://siem.example/mvault\": https is not supported"]);

    // Every line went to syslog over UDP and over TCP too, the same lines
    // in the same order as to the webhook.
    let webhook_lines: Vec<String> = got.lock().expect("lock").clone();
    for transport in ["udp", "tcp"] {
        let logged = syslog.lines(transport, webhook_lines.len());
        assert_eq!(
            logged, webhook_lines,
            "rsyslogd over {transport} got other lines than the webhook"
        );
    }
    webhook.stop();
}

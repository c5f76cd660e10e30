//! Forwarding the server log: every line the log gains (decisions,
//! fetches, integrity reports, alerts) goes, as one JSON line, to each sink
//! configured with `mvault.sink` in the bare repository's config: an HTTP
//! webhook, syslog (RFC 5424 over a local socket, UDP or TCP), or a
//! command fed the line on stdin.
//!
//! Delivery never holds a push up for long: each attempt has a short
//! timeout, and a line that could not be delivered waits in a spool file
//! beside the log (`mvault-sink-queue.jsonl`), to be retried on the next
//! event and by `mvault hook flush`. Delivery is at least once (a line may
//! arrive twice when a sink took it but its answer was lost) and in log
//! order per sink: a sink's queued lines are retried oldest first, and a
//! newer line never overtakes them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// git config key naming a sink (multi-valued).
pub const SINK_CONFIG: &str = "mvault.sink";
/// The spool of lines not delivered yet, in the repository's directory.
pub const QUEUE_FILE: &str = "mvault-sink-queue.jsonl";
/// How long one attempt to connect, write or read may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long one event may spend delivering (its own lines and queued ones).
pub const EVENT_BUDGET: Duration = Duration::from_secs(3);
/// syslog facility: local0.
const FACILITY: u8 = 16;

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// `http://HOST[:PORT]/PATH`: each line POSTed as `application/json`;
    /// any 2xx answer is delivery.
    Http {
        url: String,
        host: String,
        port: u16,
        path: String,
    },
    /// `syslog:///PATH`: a local datagram socket (`/dev/log`).
    SyslogLocal { url: String, path: PathBuf },
    /// `syslog+udp://HOST:PORT`: one datagram per line.
    SyslogUdp { url: String, addr: String },
    /// `syslog+tcp://HOST:PORT`: RFC 6587 octet-counted frames.
    SyslogTcp { url: String, addr: String },
    /// `exec:/PATH`: run the program, the line on its stdin; exit 0 is delivery.
    Exec { url: String, program: PathBuf },
}

/// Why a sink's URL is not one mvault can deliver to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SINK_CONFIG} {url:?}: {reason}")]
pub struct SinkError {
    pub url: String,
    pub reason: String,
}

impl Sink {
    /// Parse a sink's URL.
    pub fn parse(url: &str) -> Result<Sink, SinkError> {
        let url = url.trim();
        let err = |reason: &str| SinkError {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("http://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if authority.is_empty() || authority.contains('@') {
                return Err(err(
                    "an http sink is http://HOST[:PORT]/PATH (no user info)",
                ));
            }
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| err("the port is not a number from 1 to 65535"))?,
                ),
                _ => (authority, 80),
            };
            if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err(err("the path holds spaces or control characters"));
            }
            return Ok(Sink::Http {
                url: url.to_owned(),
                host: host.to_owned(),
                port,
                path: path.to_owned(),
            });
        }
        if url.starts_with("https://") {
            return Err(err(
                "https is not supported: post to a local relay over http (see docs/alerts.md), or use syslog or exec",
            ));
        }
        if let Some(path) = url.strip_prefix("syslog://") {
            if !path.starts_with('/') {
                return Err(err("a local syslog sink is syslog:///PATH (for example syslog:///dev/log); for a network one use syslog+udp:// or syslog+tcp://"));
            }
            return Ok(Sink::SyslogLocal {
                url: url.to_owned(),
                path: PathBuf::from(path),
            });
        }
        for (scheme, tcp) in [("syslog+udp://", false), ("syslog+tcp://", true)] {
            if let Some(addr) = url.strip_prefix(scheme) {
                let addr = addr.trim_end_matches('/');
                if addr
                    .rsplit_once(':')
                    .is_none_or(|(_, p)| p.parse::<u16>().is_err())
                {
                    return Err(err("a network syslog sink names HOST:PORT"));
                }
                let (url, addr) = (url.to_owned(), addr.to_owned());
                return Ok(if tcp {
                    Sink::SyslogTcp { url, addr }
                } else {
                    Sink::SyslogUdp { url, addr }
                });
            }
        }
        if let Some(program) = url.strip_prefix("exec:") {
            if !program.starts_with('/') {
                return Err(err(
                    "an exec sink names its program by absolute path: exec:/PATH",
                ));
            }
            return Ok(Sink::Exec {
                url: url.to_owned(),
                program: PathBuf::from(program),
            });
        }
        Err(err(
            "not a sink: use http://…, syslog:///PATH, syslog+udp://HOST:PORT, syslog+tcp://HOST:PORT or exec:/PATH",
        ))
    }

    /// The URL as configured.
    pub fn url(&self) -> &str {
        match self {
            Sink::Http { url, .. }
            | Sink::SyslogLocal { url, .. }
            | Sink::SyslogUdp { url, .. }
            | Sink::SyslogTcp { url, .. }
            | Sink::Exec { url, .. } => url,
        }
    }

    /// Deliver one line (compact JSON, no newline); `Err` says why not.
    pub fn deliver(&self, line: &str) -> Result<(), String> {
        match self {
            Sink::Http {
                host, port, path, ..
            } => post(host, *port, path, line),
            Sink::SyslogLocal { path, .. } => {
                let msg = syslog_message(line);
                let sock =
                    std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
                sock.set_write_timeout(Some(ATTEMPT_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                sock.send_to(msg.as_bytes(), path)
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Sink::SyslogUdp { addr, .. } => {
                let to = resolve(addr)?;
                let bind: SocketAddr = if to.is_ipv4() {
                    "0.0.0.0:0".parse().expect("an address")
                } else {
                    "[::]:0".parse().expect("an address")
                };
                let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
                sock.send_to(syslog_message(line).as_bytes(), to)
                    .map(|_| ())
                    .map_err(|e| format!("{addr}: {e}"))
            }
            Sink::SyslogTcp { addr, .. } => {
                let mut stream = connect(&resolve(addr)?)?;
                let msg = syslog_message(line);
                // RFC 6587 octet counting: the frame's length, a space, the message.
                let frame = format!("{} {msg}", msg.len());
                stream
                    .write_all(frame.as_bytes())
                    .and_then(|_| stream.flush())
                    .map_err(|e| format!("{addr}: {e}"))
            }
            Sink::Exec { program, .. } => run_program(program, line),
        }
    }
}

/// The sinks configured for a repository, each parsed.
pub fn configured(values: &[String]) -> Vec<Result<Sink, SinkError>> {
    values
        .iter()
        .filter(|v| !v.trim().is_empty())
        .map(|v| Sink::parse(v))
        .collect()
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))
}

fn connect(to: &SocketAddr) -> Result<TcpStream, String> {
    let stream =
        TcpStream::connect_timeout(to, ATTEMPT_TIMEOUT).map_err(|e| format!("{to}: {e}"))?;
    stream
        .set_write_timeout(Some(ATTEMPT_TIMEOUT))
        .and_then(|_| stream.set_read_timeout(Some(ATTEMPT_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// A minimal HTTP/1.1 POST: one request per connection, the status line
/// read back; 2xx is delivery.
fn post(host: &str, port: u16, path: &str, body: &str) -> Result<(), String> {
    let mut stream = connect(&resolve(&format!("{host}:{port}"))?)?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: mvault/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("http://{host}:{port}{path}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("http://{host}:{port}{path}: {e}")),
        }
    }
    let status_line = String::from_utf8_lossy(&head);
    let status_line = status_line.lines().next().unwrap_or("");
    let code = status_line.split_whitespace().nth(1).unwrap_or("");
    if status_line.starts_with("HTTP/1.") && code.starts_with('2') && code.len() == 3 {
        Ok(())
    } else {
        Err(format!(
            "http://{host}:{port}{path} answered {:?}",
            crate::model::text::escape(status_line)
        ))
    }
}

/// Run `program` with `line` and a newline on stdin, within the timeout.
fn run_program(program: &Path, line: &str) -> Result<(), String> {
    let mut child = std::process::Command::new(program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading is judged by its status.
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
    }
    let deadline = Instant::now() + ATTEMPT_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{} exited with {status}", program.display())),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {} ms",
                    program.display(),
                    ATTEMPT_TIMEOUT.as_millis()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// An RFC 5424 message carrying `line`: facility local0, a severity by the
/// line's kind, APP-NAME `mvault`, MSGID the kind, no structured data.
fn syslog_message(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let kind = v["kind"].as_str().unwrap_or("event");
    // warning: alerts, integrity reports; notice: refusals; info: the rest.
    let severity: u8 = match (kind, v["decision"].as_str()) {
        ("alert" | "integrity-violation", _) => 4,
        (_, Some("refuse")) => 5,
        _ => 6,
    };
    let now = crate::vault::rfc3339(time::OffsetDateTime::now_utc());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "-".into());
    let msgid: String = kind
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    format!(
        "<{}>1 {now} {host} mvault {} {msgid} - {line}",
        FACILITY * 8 + severity,
        std::process::id()
    )
}

/// One spooled line: the sink it waits for, and the line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Queued {
    sink: String,
    line: String,
}

/// How many lines wait for each sink, in the spool.
pub fn queued(git_dir: &Path) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for q in read_queue(&git_dir.join(QUEUE_FILE)).0 {
        match counts.iter_mut().find(|(s, _)| *s == q.sink) {
            Some((_, n)) => *n += 1,
            None => counts.push((q.sink, 1)),
        }
    }
    counts
}

fn read_queue(path: &Path) -> (Vec<Queued>, u64) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    (lines, bytes.len() as u64)
}

/// What a drain did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Drained {
    /// Lines delivered.
    pub delivered: usize,
    /// Lines still queued.
    pub queued: usize,
    /// The first failure of each sink that failed in this drain.
    pub failures: Vec<SinkFailure>,
}

/// Why a sink did not take a line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkFailure {
    pub sink: String,
    pub error: String,
}

/// Queue `lines` for every sink, then deliver what is queued, within
/// `budget` when one is given. Nothing here fails the caller: a line that
/// cannot even be queued is lost, and said so in the result.
pub fn forward(
    git_dir: &Path,
    sinks: &[Sink],
    lines: &[String],
    budget: Option<Duration>,
) -> Drained {
    if sinks.is_empty() {
        return Drained::default();
    }
    let queue = git_dir.join(QUEUE_FILE);
    let mut failures = Vec::new();
    if !lines.is_empty() {
        let appended =
            FileLock::acquire(&lock_path(&queue), Duration::from_secs(2)).and_then(|_g| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&queue)?;
                let mut text = String::new();
                for line in lines {
                    for s in sinks {
                        let q = Queued {
                            sink: s.url().to_owned(),
                            line: line.clone(),
                        };
                        text.push_str(&serde_json::to_string(&q).map_err(std::io::Error::other)?);
                        text.push('\n');
                    }
                }
                f.write_all(text.as_bytes())
            });
        if let Err(e) = appended {
            failures.push(SinkFailure {
                sink: QUEUE_FILE.to_owned(),
                error: format!("cannot queue: {e}"),
            });
        }
    }
    let mut d = drain(git_dir, sinks, budget);
    d.failures.extend(failures);
    d
}

/// Deliver what is queued, oldest first per sink; a sink that fails is
/// not tried again in this drain, so its lines keep their order.
pub fn drain(git_dir: &Path, sinks: &[Sink], budget: Option<Duration>) -> Drained {
    let queue = git_dir.join(QUEUE_FILE);
    // One drain at a time; a busy drainer delivers what this one would.
    let Ok(_drain) = FileLock::acquire(&git_dir.join("mvault-sink-drain.lock"), Duration::ZERO)
    else {
        return Drained {
            queued: queued(git_dir).iter().map(|(_, n)| n).sum(),
            ..Default::default()
        };
    };
    let (snapshot, len) = {
        let _g = FileLock::acquire(&lock_path(&queue), Duration::from_secs(2));
        read_queue(&queue)
    };
    let deadline = budget.map(|b| Instant::now() + b);
    let mut down: Vec<SinkFailure> = Vec::new();
    let mut keep = Vec::new();
    let mut delivered = 0;
    for q in snapshot {
        let Some(sink) = sinks.iter().find(|s| s.url() == q.sink) else {
            // Queued for a sink no longer configured: kept, and counted by hook check.
            keep.push(q);
            continue;
        };
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        if late || down.iter().any(|f| f.sink == q.sink) {
            keep.push(q);
            continue;
        }
        match sink.deliver(&q.line) {
            Ok(()) => delivered += 1,
            Err(error) => {
                down.push(SinkFailure {
                    sink: q.sink.clone(),
                    error,
                });
                keep.push(q);
            }
        }
    }
    // Rewrite the spool: what is still owed, then what was queued meanwhile.
    let rewritten = FileLock::acquire(&lock_path(&queue), Duration::from_secs(2)).and_then(|_g| {
        let all = std::fs::read(&queue).unwrap_or_default();
        let tail = all.get(len as usize..).unwrap_or_default();
        let mut text = String::new();
        for q in &keep {
            text.push_str(&serde_json::to_string(q).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        let tmp = queue.with_extension("jsonl.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(tail)?;
        f.sync_data()?;
        std::fs::rename(&tmp, &queue)
    });
    if let Err(e) = rewritten {
        down.push(SinkFailure {
            sink: QUEUE_FILE.to_owned(),
            error: format!("cannot rewrite the spool: {e}"),
        });
    }
    Drained {
        delivered,
        queued: queued(git_dir).iter().map(|(_, n)| n).sum(),
        failures: down,
    }
}

fn lock_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// A lock file held while the value lives; one left by a killed process
/// is taken over after a minute.
pub(crate) struct FileLock {
    path: PathBuf,
    _file: std::fs::File,
}

impl FileLock {
    /// Take the lock at `path`, waiting up to `wait`.
    pub(crate) fn acquire(path: &Path, wait: Duration) -> std::io::Result<FileLock> {
        let deadline = Instant::now() + wait;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(f) => {
                    return Ok(FileLock {
                        path: path.to_owned(),
                        _file: f,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(60));
                    if stale {
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_urls_parse_or_say_what_is_wrong() {
        assert_eq!(
            Sink::parse("http://127.0.0.1:8080/hook"),
            Ok(Sink::Http {
                url: "http://127.0.0.1:8080/hook".into(),
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/hook".into()
            })
        );
        assert!(matches!(
            Sink::parse("http://example.org"),
            Ok(Sink::Http { port: 80, .. })
        ));
        assert!(matches!(
            Sink::parse("syslog:///dev/log"),
            Ok(Sink::SyslogLocal { .. })
        ));
        assert!(matches!(
            Sink::parse("syslog+tcp://127.0.0.1:514"),
            Ok(Sink::SyslogTcp { .. })
        ));
        assert!(matches!(
            Sink::parse("syslog+udp://127.0.0.1:514"),
            Ok(Sink::SyslogUdp { .. })
        ));
        assert!(matches!(
            Sink::parse("exec:/bin/true"),
            Ok(Sink::Exec { .. })
        ));
        for bad in [
            "https://siem.example/x",
            "syslog://host:514",
            "syslog+udp://host",
            "exec:relative",
            "ftp://x",
            "http://user:pw@host/",
        ] {
            let e = Sink::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(SINK_CONFIG), "{e}");
        }
    }

    #[test]
    fn a_syslog_message_is_rfc5424_with_the_line_as_msg() {
        let line = r#"{"kind":"alert","rule":"refusals"}"#;
        let m = syslog_message(line);
        assert!(m.starts_with("<132>1 "), "{m}");
        assert!(m.ends_with(&format!(" mvault {} alert - {line}", std::process::id())));
    }

    #[test]
    fn a_local_syslog_socket_gets_one_datagram_per_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.sock");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        let sink = Sink::parse(&format!("syslog://{}", path.display())).expect("sink");
        sink.deliver(r#"{"kind":"fetch"}"#).expect("delivered");
        let mut buf = [0u8; 1024];
        let n = listener.recv(&mut buf).expect("a datagram");
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with("<134>1 "), "{got}");
        assert!(got.ends_with(r#" fetch - {"kind":"fetch"}"#), "{got}");
        drop(listener);
        assert!(sink.deliver("{}").is_err(), "no one listens any more");
    }

    #[test]
    fn a_failed_line_waits_in_order_and_drains_when_the_sink_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let flag = dir.path().join("up");
        let script = dir.path().join("sink.sh");
        let out = dir.path().join("got");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n[ -e '{}' ] || exit 1\ncat >> '{}'\n",
                flag.display(),
                out.display()
            ),
        )
        .expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let sinks = vec![Sink::parse(&format!("exec:{}", script.display())).expect("sink")];
        let d = forward(dir.path(), &sinks, &["{\"n\":1}".into()], None);
        assert_eq!((d.delivered, d.queued), (0, 1));
        let d = forward(dir.path(), &sinks, &["{\"n\":2}".into()], None);
        assert_eq!((d.delivered, d.queued), (0, 2));
        assert_eq!(queued(dir.path()), vec![(sinks[0].url().to_owned(), 2)]);
        std::fs::write(&flag, "").expect("up");
        let d = forward(dir.path(), &sinks, &["{\"n\":3}".into()], None);
        assert_eq!((d.delivered, d.queued), (3, 0));
        assert_eq!(
            std::fs::read_to_string(&out).expect("read"),
            "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
        );
        assert!(queued(dir.path()).is_empty());
    }
}

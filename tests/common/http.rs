//! A real smart-HTTP server for the server tests: Debian's nginx on a free
//! port of 127.0.0.1 with basic authentication (an `htpasswd` file made by
//! apache2-utils' `htpasswd`), handing the requests to stock `git
//! http-backend` through fcgiwrap. The user nginx authenticated reaches
//! git, and so the hook and the fetch log, as `REMOTE_USER`, the client's
//! address as `REMOTE_ADDR`; `GIT_HTTP_EXPORT_ALL` serves every repository
//! under the project root. Clients are stock git with
//! `http://USER:PASSWORD@127.0.0.1:PORT/git/REPO`.
//!
//! nginx rather than Apache: CI runs the tests as root, and Apache will not
//! run its CGI children as root (its `User` must be another user, who could
//! not write the test's repositories), while fcgiwrap runs git as the user
//! that starts it, the tests' user, as the sshd fixture does. The
//! environment git gets is exactly the FastCGI parameters of the
//! configuration (fcgiwrap starts with an empty one), among them
//! `GIT_CONFIG_GLOBAL`: the server's global git config, where fetch logging
//! is set.
//!
//! Missing programs fail the test with the package to install; when the
//! test fails, the servers' logs are printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sshd::{free_port, output_line};
use super::{path_str, require_program, write_file, TestEnv, NOW};

/// A server process, stopped by its own process id when dropped: TERM
/// first (nginx's master then stops its workers), KILL if it lingers.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx and fcgiwrap on 127.0.0.1, stopped when dropped.
pub struct HttpServer {
    // Dropped in this order: nginx, then fcgiwrap.
    _nginx: Daemon,
    _fcgiwrap: Daemon,
    pub port: u16,
    dir: PathBuf,
    users: Vec<(String, String)>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- http server logs ({}) ---\n{}",
                self.dir.display(),
                self.log()
            );
        }
    }
}

/// `program` on PATH or in /usr/sbin (not on every user's PATH).
fn require_daemon(program: &str, package: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(program);
    if sbin.is_file() {
        return sbin;
    }
    require_program(program, package)
}

impl HttpServer {
    /// Serves the repositories under `project_root` to `users` (each with
    /// the password `password_of(user)`); git on the server reads
    /// `git_config_global` as its global config.
    pub fn start(
        env: &TestEnv,
        project_root: &Path,
        users: &[&str],
        git_config_global: &Path,
    ) -> HttpServer {
        let nginx = require_daemon("nginx", "nginx");
        let fcgiwrap = require_daemon("fcgiwrap", "fcgiwrap");
        let htpasswd = require_program("htpasswd", "apache2-utils");
        let git = require_program("git", "git");
        let http_backend = PathBuf::from(output_line(Command::new(&git).arg("--exec-path")))
            .join("git-http-backend");
        assert!(
            http_backend.is_file(),
            "{} is missing; install git (apt-get install git)",
            http_backend.display()
        );

        let dir = env.path("http");
        for sub in ["logs", "tmp", "home"] {
            fs::create_dir_all(dir.join(sub)).expect("create http dirs");
        }
        let users: Vec<(String, String)> = users
            .iter()
            .map(|u| ((*u).to_owned(), password_of(u)))
            .collect();
        let passwords = dir.join("htpasswd");
        for (i, (user, password)) in users.iter().enumerate() {
            let mut cmd = env.command(&htpasswd);
            cmd.arg("-b");
            if i == 0 {
                cmd.arg("-c");
            }
            cmd.arg(&passwords).arg(user).arg(password);
            env.run(cmd).success();
        }

        // fcgiwrap: git http-backend only, as the tests' user, on a socket
        // in the test's directory; an empty environment of its own.
        let socket = dir.join("fcgiwrap.sock");
        let fcgi_log = fs::File::create(dir.join("logs/fcgiwrap.log")).expect("create log");
        let mut fcgi = Daemon(
            Command::new(&fcgiwrap)
                .arg("-s")
                .arg(format!("unix:{}", path_str(&socket)))
                .args(["-c", "1", "-p"])
                .arg(&http_backend)
                .env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fcgi_log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", fcgiwrap.display())),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if let Some(status) = fcgi.0.try_wait().expect("poll fcgiwrap") {
                panic!(
                    "fcgiwrap exited with {status}:\n{}",
                    fs::read_to_string(dir.join("logs/fcgiwrap.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "fcgiwrap made no socket within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }

        let root = output_line(Command::new("id").arg("-u")) == "0";
        let path = std::env::var("PATH").expect("PATH is set");
        let tmp = env.path("server-tmp");
        fs::create_dir_all(&tmp).expect("create server TMPDIR");
        let mut last = String::new();
        // The port is free when picked; another process may take it before
        // nginx binds, so try a few.
        for _ in 0..5 {
            let port = free_port();
            let config = nginx_config(&NginxConfig {
                dir: &dir,
                port,
                // As root, nginx's workers would be nobody, who cannot reach
                // the test's files; as another user it keeps that user.
                user: root.then_some("root"),
                passwords: &passwords,
                socket: &socket,
                http_backend: &http_backend,
                project_root,
                git_env: &[
                    ("PATH", &path),
                    ("HOME", path_str(&dir.join("home"))),
                    ("TMPDIR", path_str(&tmp)),
                    ("GIT_CONFIG_GLOBAL", path_str(git_config_global)),
                    ("GIT_CONFIG_NOSYSTEM", "1"),
                    ("MVAULT_NOW", &NOW.to_string()),
                    ("LC_ALL", "C"),
                ],
            });
            let config_file = dir.join("nginx.conf");
            write_file(&config_file, config.as_bytes());
            let error_log = dir.join("logs/error.log");
            let mut check = Command::new(&nginx);
            check
                .arg("-t")
                .arg("-q")
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(&error_log)
                .arg("-c")
                .arg(&config_file);
            let checked = check.output().expect("run nginx -t");
            assert!(
                checked.status.success(),
                "nginx -t rejects the test's configuration:\n{}\n{config}",
                String::from_utf8_lossy(&checked.stderr)
            );
            let stderr = fs::File::create(dir.join("logs/nginx.stderr")).expect("create log");
            let mut child = Daemon(
                Command::new(&nginx)
                    .arg("-p")
                    .arg(&dir)
                    .arg("-e")
                    .arg(&error_log)
                    .arg("-c")
                    .arg(&config_file)
                    .args(["-g", "daemon off;"])
                    .env_clear()
                    .env("PATH", &path)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", nginx.display())),
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && logs(&dir).contains("start worker process")
                {
                    return HttpServer {
                        _nginx: child,
                        _fcgiwrap: fcgi,
                        port,
                        dir,
                        users,
                    };
                }
                if let Some(status) = child.0.try_wait().expect("poll nginx") {
                    last = format!("nginx exited with {status}:\n{}", logs(&dir));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx did not start listening within 20 s:\n{}",
                    logs(&dir)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            if !last.contains("Address already in use") {
                break;
            }
        }
        panic!("nginx did not start: {last}");
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT/git/REPO`.
    pub fn url(&self, user: &str, repo: &str) -> String {
        let password = self
            .users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| password_of(user));
        format!(
            "http://{user}:{password}@127.0.0.1:{}/git/{repo}",
            self.port
        )
    }

    /// The same URL with a wrong password.
    pub fn url_with_wrong_password(&self, user: &str, repo: &str) -> String {
        format!("http://{user}:wrong@127.0.0.1:{}/git/{repo}", self.port)
    }

    /// nginx's error and access logs and fcgiwrap's (git's stderr).
    pub fn log(&self) -> String {
        logs(&self.dir)
    }

    /// nginx's access log: one line per request, with the user.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("logs/access.log")).unwrap_or_default()
    }
}

/// The logs under `dir/logs`, each headed by its path.
fn logs(dir: &Path) -> String {
    let mut text = String::new();
    for name in ["error.log", "access.log", "nginx.stderr", "fcgiwrap.log"] {
        let path = dir.join("logs").join(name);
        text.push_str(&format!("== {}\n", path.display()));
        text.push_str(&fs::read_to_string(&path).unwrap_or_default());
    }
    text
}

/// The password the fixture gives `user`.
pub fn password_of(user: &str) -> String {
    format!("{user}-secret")
}

struct NginxConfig<'a> {
    dir: &'a Path,
    port: u16,
    user: Option<&'a str>,
    passwords: &'a Path,
    socket: &'a Path,
    http_backend: &'a Path,
    project_root: &'a Path,
    git_env: &'a [(&'a str, &'a str)],
}

/// An nginx.conf serving `/git/…` through git http-backend, after basic
/// authentication, on 127.0.0.1 only; every path nginx writes is in `dir`.
fn nginx_config(c: &NginxConfig<'_>) -> String {
    let q = |s: &str| {
        assert!(
            !s.contains('"') && !s.contains('\\') && !s.contains('$') && !s.contains(';'),
            "unexpected character in {s:?}"
        );
        format!("\"{s}\"")
    };
    let dir = |rel: &str| q(path_str(&c.dir.join(rel)));
    let user = c.user.map(|u| format!("user {u};\n")).unwrap_or_default();
    let git_env: String = c
        .git_env
        .iter()
        .map(|(k, v)| format!("      fastcgi_param {k} {};\n", q(v)))
        .collect();
    format!(
        "{user}worker_processes 1;
pid {pid};
error_log {error_log} info;
events {{ worker_connections 64; }}
http {{
  access_log {access_log} combined;
  client_body_temp_path {body};
  fastcgi_temp_path {fastcgi};
  proxy_temp_path {proxy};
  uwsgi_temp_path {uwsgi};
  scgi_temp_path {scgi};
  server {{
    listen 127.0.0.1:{port};
    location ~ ^/git(/.*)$ {{
      auth_basic \"mvault\";
      auth_basic_user_file {passwords};
      client_max_body_size 0;
      fastcgi_buffering off;
      fastcgi_request_buffering off;
      fastcgi_read_timeout 600s;
      fastcgi_pass unix:{socket};
      fastcgi_param SCRIPT_FILENAME {backend};
      fastcgi_param GIT_PROJECT_ROOT {root};
      fastcgi_param GIT_HTTP_EXPORT_ALL \"\";
      fastcgi_param PATH_INFO $1;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param CONTENT_TYPE $content_type;
      fastcgi_param CONTENT_LENGTH $content_length;
      fastcgi_param REMOTE_USER $remote_user;
      fastcgi_param REMOTE_ADDR $remote_addr;
{git_env}    }}
  }}
}}
",
        pid = dir("nginx.pid"),
        error_log = dir("logs/error.log"),
        access_log = dir("logs/access.log"),
        body = dir("tmp/body"),
        fastcgi = dir("tmp/fastcgi"),
        proxy = dir("tmp/proxy"),
        uwsgi = dir("tmp/uwsgi"),
        scgi = dir("tmp/scgi"),
        port = c.port,
        passwords = q(path_str(c.passwords)),
        socket = path_str(c.socket),
        backend = q(path_str(c.http_backend)),
        root = q(path_str(c.project_root)),
    )
}

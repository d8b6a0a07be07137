//! Starting the example binaries and reading what they print.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::support::{get, request, scrape, Exposition, HttpResponse};

/// Bound on every wait for the example (start-up, a log line, exit).
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// The path of an example binary, next to this test binary's `deps` folder.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the example binary {} is missing: run `cargo build --example {name}` \
         (a plain `cargo test` builds it too), then run the tests again",
        binary.display()
    );
    binary
}

/// A running example process, killed and reaped on drop.
pub(crate) struct Process {
    pub(crate) child: Child,
    stdout: watch::Receiver<Vec<String>>,
    stderr: Arc<Mutex<String>>,
    stderr_closed: Option<oneshot::Receiver<()>>,
}

impl Process {
    /// Starts the `ctms_server` example with `env` (and none of the caller's
    /// `CTMS_*` variables).
    pub(crate) fn spawn(env: &[(&str, &str)]) -> Self {
        Self::spawn_example("ctms_server", env)
    }

    /// Starts the example `name` with `env` added to the environment (and
    /// none of the caller's `CTMS_*` variables).
    pub(crate) fn spawn_example(name: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(example_binary(name));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CTMS_") {
                command.env_remove(name);
            }
        }
        command
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the example binary starts");
        let stdout_pipe = child.stdout.take().expect("stdout is piped");
        let stderr_pipe = child.stderr.take().expect("stderr is piped");

        // Every stdout line is kept; the sender is dropped when stdout closes.
        let (lines_tx, lines_rx) = watch::channel(Vec::new());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout_pipe).lines() {
                let Ok(line) = line else { break };
                lines_tx.send_modify(|lines| lines.push(line));
            }
        });

        let stderr = Arc::new(Mutex::new(String::new()));
        let (closed_tx, closed_rx) = oneshot::channel();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut pipe = stderr_pipe;
            let mut buffer = [0_u8; 4096];
            while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
            let _ = closed_tx.send(());
        });

        Self {
            child,
            stdout: lines_rx,
            stderr,
            stderr_closed: Some(closed_rx),
        }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every stdout line printed so far.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.stdout.borrow().clone()
    }

    /// Waits (with a deadline) until stdout holds at least `count` lines that
    /// satisfy `matches`, and returns all the matching lines.
    pub(crate) async fn wait_for_lines(
        &self,
        count: usize,
        matches: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let matching = |lines: &Vec<String>| {
            lines
                .iter()
                .filter(|line| matches(line))
                .cloned()
                .collect::<Vec<_>>()
        };
        let mut rx = self.stdout.clone();
        let waited = tokio::time::timeout(
            DEADLINE,
            rx.wait_for(|lines| matching(lines).len() >= count),
        )
        .await;
        match waited {
            Ok(Ok(lines)) => matching(&lines),
            Ok(Err(_)) => panic!(
                "stdout closed before {count} matching lines; stdout:\n{}\nstderr:\n{}",
                self.stdout_lines().join("\n"),
                self.stderr()
            ),
            Err(_) => panic!(
                "fewer than {count} matching stdout lines within {DEADLINE:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout_lines().join("\n"),
                self.stderr()
            ),
        }
    }

    /// The address announced as `{prefix}listening on http://ADDR`, in either log
    /// format (`prefix` is `""` for the public listener, `"metrics "` for the
    /// private one).
    async fn announced(&self, prefix: &str) -> SocketAddr {
        let needle = format!("{prefix}listening on http://");
        let own = |line: &str| {
            line.match_indices(&needle)
                .any(|(at, _)| at == 0 || !line[..at].ends_with("metrics "))
        };
        let line = self.wait_for_lines(1, own).await.remove(0);
        let (at, _) = line
            .match_indices(&needle)
            .find(|(at, _)| *at == 0 || !line[..*at].ends_with("metrics "))
            .expect("the line was matched on this needle");
        line[at + needle.len()..]
            .split(['"', ' '])
            .next()
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address after {needle:?} in {line:?}"))
    }

    /// The addresses of the `N` listeners an example announces as
    /// `listening on http://ADDR`, in the order it announced them.
    pub(crate) async fn listening<const N: usize>(&self) -> [SocketAddr; N] {
        let lines = self
            .wait_for_lines(N, |line| line.starts_with("listening on http://"))
            .await;
        std::array::from_fn(|index| {
            let line = &lines[index];
            line.trim_start_matches("listening on http://")
                .parse()
                .unwrap_or_else(|err| panic!("{line:?}: {err}"))
        })
    }

    /// Waits (with a deadline) until the process has exited.
    pub(crate) async fn wait_for_exit(&mut self) -> ExitStatus {
        let closed = self.stderr_closed.take().expect("waited for exit once");
        let mut stdout = self.stdout.clone();
        let both_closed = async move {
            let _ = closed.await;
            while stdout.changed().await.is_ok() {}
        };
        if tokio::time::timeout(DEADLINE, both_closed).await.is_err() {
            panic!(
                "the example did not exit within {DEADLINE:?}; stderr:\n{}",
                self.stderr()
            );
        }
        self.child.wait().expect("the example can be reaped")
    }

    /// Sends SIGTERM and waits for a clean exit.
    #[cfg(unix)]
    pub(crate) async fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill(1) runs");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = self.wait_for_exit().await;
        assert!(status.success(), "exit status after SIGTERM: {status:?}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example listening on loopback.
pub(crate) struct Server {
    pub(crate) process: Process,
    /// The public listener.
    pub(crate) addr: SocketAddr,
    /// The private metrics listener, when `CTMS_METRICS_ADDR` was given.
    pub(crate) metrics_addr: Option<SocketAddr>,
}

impl Server {
    /// The example on a free port with the given `CTMS_CLIENTS`.
    pub(crate) async fn start(clients: &str) -> Self {
        Self::start_with(&[("CTMS_ADDR", "127.0.0.1:0"), ("CTMS_CLIENTS", clients)]).await
    }

    /// The example started with exactly `env`, once it announced its listeners.
    pub(crate) async fn start_with(env: &[(&str, &str)]) -> Self {
        let process = Process::spawn(env);
        let addr = process.announced("").await;
        let metrics_addr = if env.iter().any(|(name, _)| *name == "CTMS_METRICS_ADDR") {
            Some(process.announced("metrics ").await)
        } else {
            None
        };
        Self {
            process,
            addr,
            metrics_addr,
        }
    }

    /// `/metrics`, from the private listener when there is one.
    pub(crate) async fn scrape(&self) -> Exposition {
        scrape(self.metrics_addr.unwrap_or(self.addr), "/metrics").await
    }

    pub(crate) async fn get(&self, path: &str) -> HttpResponse {
        get(self.addr, path).await
    }

    /// A request authenticated with `auth` (an `Authorization` value).
    pub(crate) async fn api(
        &self,
        method: &str,
        path: &str,
        auth: &str,
        body: Option<&str>,
    ) -> HttpResponse {
        let headers = [
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ];
        request(self.addr, method, path, &headers, body).await
    }

    pub(crate) async fn create_contact(&self, auth: &str, email: &str) -> String {
        let body = format!(r#"{{"email": {{"primary_email": "{email}"}}}}"#);
        let response = self.api("POST", "/ctms", auth, Some(&body)).await;
        assert_eq!(response.status, 201, "POST /ctms: {}", response.body);
        let json = response.json();
        let email_id = json["email_id"].as_str().expect("email_id is a string");
        let uuid = uuid::Uuid::parse_str(email_id).expect("email_id is a UUID");
        assert_eq!(
            uuid.get_version_num(),
            4,
            "email_id {email_id} is a UUID v4"
        );
        email_id.to_owned()
    }
}

//! Against a real Prometheus server: three example instances scraped every
//! second, the shipped rules loaded, and every answer read back through the
//! Prometheus HTTP API. Also `promtool` on the shipped rules and on a live
//! exposition.
//!
//! These tests need Debian's `prometheus` package (the `prometheus` and
//! `promtool` binaries; `bash .ci/run` installs it). `PROMETHEUS` and
//! `PROMTOOL` may name the binaries instead of `PATH`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::example::Server;
use crate::support::{get, request, HttpResponse};

/// Bound on every wait for Prometheus to see something.
pub(crate) const SETTLE: Duration = Duration::from_secs(60);
/// Pause between two polls of the Prometheus API (a poll, not a wait for a
/// scrape: every wait is bounded by `SETTLE` and ends as soon as the value is
/// there).
pub(crate) const POLL: Duration = Duration::from_millis(200);
const CLIENTS: &str = "alpha:alpha_secret,beta:beta_secret";
const MISSING_CONTACT: &str = "/ctms/00000000-0000-4000-8000-000000000000";
/// Series of Prometheus's own scrapes, which grow on their own; left out of
/// the exact comparisons.
pub(crate) const NOT_SCRAPES: &str = r#"path_template!="/metrics""#;
/// The shipped rule files, each unit-tested by the `.test.yml` of the same
/// stem.
const RULE_FILES: [&str; 2] = ["rules.yml", "slo.yml"];

pub(crate) fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `name` (of Debian's `prometheus` package) from the environment variable
/// `var`, else from `PATH`, or a failure that says how to install it.
pub(crate) fn tool(var: &str, name: &str) -> PathBuf {
    tool_of_package(var, name, "prometheus")
}

/// `name` from the environment variable `var`, else from `PATH`, or a
/// failure that says to install Debian's `package`.
pub(crate) fn tool_of_package(var: &str, name: &str, package: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed, and this test needs a real one: install Debian's \
             `{package}` package (`apt-get install {package}`; `bash .ci/run` does it) \
             or set {var} to the binary's path"
        )
    })
}

fn run(mut command: Command) -> Output {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{shown} did not run: {err}"));
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A directory under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "tower-prometheus-{what}-{}-{unique}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("the temporary directory is created");
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port: bound, read, released. Prometheus has no "port 0,
/// tell me which" mode, so this is the one place a port is picked ahead.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a loopback port is free")
        .port()
}

/// `GET path` on `addr`, or `None` when nothing answers there (yet).
pub(crate) async fn try_get(addr: SocketAddr, path: &str) -> Option<HttpResponse> {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    crate::support::send_raw(addr, &raw).await.ok()
}

/// Polls `probe` every `POLL` until it returns `Some`, at most `SETTLE`;
/// on timeout, fails with `what` and what `context` tells then (logs, what
/// was seen).
pub(crate) async fn poll_until<T, F, Fut>(
    what: &str,
    context: impl Fn() -> String,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited {SETTLE:?} for {what}; {}",
            context()
        );
        tokio::time::sleep(POLL).await;
    }
}

pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A Prometheus server on loopback, with its own configuration and storage,
/// killed and cleaned up on drop (also when a test fails).
pub(crate) struct Prometheus {
    child: Child,
    pub(crate) addr: SocketAddr,
    dir: TempDir,
}

impl Prometheus {
    /// Scrapes `targets` every second as job `ctms`, with the shipped rules
    /// (`rules.yml` and `slo.yml`).
    async fn start(targets: &[SocketAddr]) -> Self {
        Self::start_with(targets, &[]).await
    }

    /// [`start`](Self::start), with `--enable-feature=` each of `features`.
    async fn start_with(targets: &[SocketAddr], features: &[&str]) -> Self {
        let dir = TempDir::new("prometheus");
        let rule_files: String = RULE_FILES
            .iter()
            .map(|file| {
                let path = repo_path(&format!("contrib/prometheus/{file}"));
                format!("  - '{}'\n", path.display())
            })
            .collect();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{rule_files}\
             scrape_configs:\n  - job_name: ctms\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let mut args = vec![format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        )];
        args.extend(
            features
                .iter()
                .map(|feature| format!("--enable-feature={feature}")),
        );
        Self::launch(dir, &config, &args).await
    }

    /// Starts Prometheus with `config` written into `dir` (which it keeps
    /// until dropped), listening on a free loopback port, with `args` added
    /// (among them the storage path, which differs in agent mode); returns
    /// once it answers `/-/ready`.
    pub(crate) async fn launch(dir: TempDir, config: &str, args: &[String]) -> Self {
        let binary = tool("PROMETHEUS", "prometheus");
        let config_path = dir.0.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("the configuration is written");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.0.join("prometheus.log")).expect("log file");
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("{} does not start: {err}", binary.display()));
        let prometheus = Self { child, addr, dir };
        prometheus
            .wait_for("Prometheus to be ready", || async {
                let ready = prometheus.try_get("/-/ready").await;
                ready.filter(|response| response.status == 200).map(|_| ())
            })
            .await;
        prometheus
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("prometheus.log")).unwrap_or_default()
    }

    async fn try_get(&self, path: &str) -> Option<HttpResponse> {
        try_get(self.addr, path).await
    }

    /// `path` of the HTTP API, which must answer `"status": "success"`.
    pub(crate) async fn api(&self, path: &str) -> Value {
        let response = get(self.addr, path).await;
        let json = response.json();
        assert_eq!(
            json["status"], "success",
            "GET {path} answered {}: {}",
            response.status, response.body
        );
        json["data"].clone()
    }

    /// An instant query; its result vector as `(labels, value)` pairs.
    pub(crate) async fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let data = self
            .api(&format!("/api/v1/query?query={}", percent_encode(promql)))
            .await;
        assert_eq!(data["resultType"], "vector", "{promql}: {data}");
        data["result"]
            .as_array()
            .expect("result is an array")
            .iter()
            .map(|sample| {
                let labels = sample["metric"]
                    .as_object()
                    .expect("metric is an object")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let value = sample["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("the value is a number in a string");
                (labels, value)
            })
            .collect()
    }

    /// What the counters of a range selector (`metric{...}[window]`)
    /// counted within the window, read from their raw samples the way
    /// `increase()` reads them before it extrapolates: a drop is a reset,
    /// after which the counter counts again from zero. Every series must
    /// have started inside the window.
    async fn counted_across_resets(&self, selector: &str) -> f64 {
        let data = self
            .api(&format!("/api/v1/query?query={}", percent_encode(selector)))
            .await;
        assert_eq!(data["resultType"], "matrix", "{selector}: {data}");
        let mut counted = 0.0;
        for series in data["result"].as_array().expect("result is an array") {
            let values: Vec<f64> = series["values"]
                .as_array()
                .expect("values is an array")
                .iter()
                .map(|point| {
                    point[1]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .expect("the value is a number in a string")
                })
                .collect();
            let mut previous = 0.0;
            for value in values {
                counted += if value >= previous {
                    value - previous
                } else {
                    value
                };
                previous = value;
            }
        }
        counted
    }

    /// An instant query aggregated by `labels`, as a map from those labels'
    /// values to the sample value, leaving out zeros.
    pub(crate) async fn nonzero_by(
        &self,
        promql: &str,
        labels: &[&str],
    ) -> BTreeMap<Vec<String>, f64> {
        self.query(promql)
            .await
            .into_iter()
            .filter(|(_, value)| *value != 0.0)
            .map(|(series, value)| {
                let key = labels
                    .iter()
                    .map(|label| series.get(*label).cloned().unwrap_or_default())
                    .collect();
                (key, value)
            })
            .collect()
    }

    /// Polls `probe` until it returns `Some`, at most `SETTLE`.
    pub(crate) async fn wait_for<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        poll_until(what, || format!("Prometheus log:\n{}", self.log()), probe).await
    }

    /// Polls `fetch` until it returns exactly `expected`, at most `SETTLE`.
    async fn settle<F, Fut>(&self, what: &str, expected: &BTreeMap<Vec<String>, f64>, mut fetch: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = BTreeMap<Vec<String>, f64>>,
    {
        let deadline = Instant::now() + SETTLE;
        loop {
            let seen = fetch().await;
            if &seen == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not settle within {SETTLE:?}\n  expected {expected:?}\n  seen     {seen:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `promql` (aggregated by `labels`) until its non-zero samples are
    /// exactly `expected`, at most `SETTLE`.
    pub(crate) async fn wait_for_exact(
        &self,
        promql: &str,
        labels: &[&str],
        expected: &BTreeMap<Vec<String>, f64>,
    ) {
        self.settle(promql, expected, || self.nonzero_by(promql, labels))
            .await;
    }

    /// Waits until the recording rule
    /// `path_template_status_code_family:ctms_requests:rate5m` has a rate
    /// above zero for every path template and status family in `sent`, and
    /// fails if it has one for any other (besides `/metrics`).
    pub(crate) async fn wait_for_family_rates(&self, sent: &Sent) {
        let mut families = BTreeSet::new();
        for key in sent.by_template_status.keys() {
            families.insert(vec![key[0].clone(), format!("{}xx", &key[1][..1])]);
        }
        let rates = self
            .wait_for("the request rate rule", || async {
                let rates = self
                    .nonzero_by(
                        "path_template_status_code_family:ctms_requests:rate5m",
                        &["path_template", "status_code_family"],
                    )
                    .await;
                families
                    .iter()
                    .all(|key| rates.get(key).is_some_and(|rate| *rate > 0.0))
                    .then_some(rates)
            })
            .await;
        assert!(
            rates
                .keys()
                .all(|key| key[0] == "/metrics" || families.contains(key)),
            "rates for series that got no traffic: {rates:?}"
        );
    }

    /// Waits until `up` is exactly `expected` per scraped instance, zeros
    /// included.
    pub(crate) async fn wait_for_up(&self, expected: &BTreeMap<Vec<String>, f64>) {
        let up = || async {
            self.query(r#"up{job="ctms"}"#)
                .await
                .into_iter()
                .map(|(labels, value)| (vec![labels["instance"].clone()], value))
                .collect()
        };
        self.settle("up", expected, up).await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn basic(client: &str) -> String {
    let secret = format!("{client}_secret");
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{client}:{secret}"));
    format!("Basic {encoded}")
}

/// What was sent, as the three sums Prometheus should report.
#[derive(Default, Debug)]
pub(crate) struct Sent {
    /// `(path_template, status_code)` → requests.
    pub(crate) by_template_status: BTreeMap<Vec<String>, f64>,
    /// `client_id` → API requests.
    pub(crate) by_client: BTreeMap<Vec<String>, f64>,
    /// `(method, path_template, status_code)` of series that grew, per
    /// instance.
    pub(crate) grown: BTreeMap<SocketAddr, BTreeSet<Vec<String>>>,
    /// Requests whose path matched no template, over every instance.
    pub(crate) unmatched: f64,
}

impl Sent {
    pub(crate) async fn send(
        &mut self,
        server: &Server,
        method: &str,
        path: &str,
        template: Option<&str>,
        client: Option<&str>,
        expected_status: u16,
    ) {
        let auth = client.map(basic);
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|auth| ("Authorization", auth))
            .into_iter()
            .collect();
        let response = request(server.addr, method, path, &headers, None).await;
        assert_eq!(
            response.status, expected_status,
            "{method} {path}: {}",
            response.body
        );
        let Some(template) = template else {
            self.unmatched += 1.0;
            return;
        };
        let status = expected_status.to_string();
        *self
            .by_template_status
            .entry(vec![template.to_owned(), status.clone()])
            .or_default() += 1.0;
        if let Some(client) = client {
            *self.by_client.entry(vec![client.to_owned()]).or_default() += 1.0;
        }
        self.grown
            .entry(
                server
                    .metrics_addr
                    .expect("instances have a metrics listener"),
            )
            .or_default()
            .insert(vec![method.to_owned(), template.to_owned(), status]);
    }

    /// A mix of requests whose size grows with `weight`: 2xx, 4xx (401, 404),
    /// 5xx, unmatched paths, two clients.
    pub(crate) async fn mix(&mut self, server: &Server, weight: usize) {
        for _ in 0..weight * 3 {
            self.send(
                server,
                "GET",
                "/__lbheartbeat__",
                Some("/__lbheartbeat__"),
                None,
                200,
            )
            .await;
        }
        for _ in 0..weight {
            self.send(
                server,
                "GET",
                "/__version__",
                Some("/__version__"),
                None,
                200,
            )
            .await;
            self.send(
                server,
                "GET",
                MISSING_CONTACT,
                Some("/ctms/{email_id}"),
                Some("alpha"),
                404,
            )
            .await;
            self.send(
                server,
                "GET",
                "/__crash__",
                Some("/__crash__"),
                Some("alpha"),
                500,
            )
            .await;
            self.send(server, "GET", "/no/such/page", None, None, 404)
                .await;
        }
        for _ in 0..weight * 2 {
            self.send(
                server,
                "GET",
                MISSING_CONTACT,
                Some("/ctms/{email_id}"),
                Some("beta"),
                404,
            )
            .await;
        }
        self.send(
            server,
            "GET",
            MISSING_CONTACT,
            Some("/ctms/{email_id}"),
            None,
            401,
        )
        .await;
    }

    pub(crate) fn total(&self) -> f64 {
        self.by_template_status.values().sum()
    }
}

pub(crate) async fn start_instance(metrics_addr: &str) -> Server {
    Server::start_with(&[
        ("CTMS_ADDR", "127.0.0.1:0"),
        ("CTMS_METRICS_ADDR", metrics_addr),
        ("CTMS_CLIENTS", CLIENTS),
    ])
    .await
}

/// Every PromQL expression of the shipped dashboards, with its file and
/// panel title, `$__rate_interval` replaced by a window Prometheus accepts.
fn dashboard_expressions() -> Vec<(String, String)> {
    fn collect(value: &Value, file: &str, title: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    let expr = expr.replace("$__rate_interval", "1m");
                    out.push((format!("{file}: {title}"), expr));
                }
                for child in map.values() {
                    collect(child, file, title, out);
                }
            }
            Value::Array(items) => items
                .iter()
                .for_each(|item| collect(item, file, title, out)),
            _ => {}
        }
    }
    let dir = repo_path("contrib/grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
        .collect();
    for expected in ["ctms-alerts.json", "ctms-slo.json", "ctms-telemetry.json"] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} not found: {names:?}"
        );
    }
    let mut out = Vec::new();
    for (path, file) in files.iter().zip(&names) {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()));
        collect(&json, file, "", &mut out);
    }
    out
}

/// The metric (or recording rule) names an expression reads: identifiers that
/// are not functions, keywords, label names or label values.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 14] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "atan2",
    ];
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut index = 0;
    let mut depth_braces = 0;
    let mut skip_label_list = false;
    while index < chars.len() {
        let c = chars[index];
        match c {
            '"' | '\'' | '`' => {
                // A string: skip to its closing quote.
                index += 1;
                while index < chars.len() && chars[index] != c {
                    index += if chars[index] == '\\' { 2 } else { 1 };
                }
                index += 1;
            }
            '{' => {
                depth_braces += 1;
                index += 1;
            }
            '}' => {
                depth_braces -= 1;
                index += 1;
            }
            '[' => {
                // A range or subquery window.
                while index < chars.len() && chars[index] != ']' {
                    index += 1;
                }
                index += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = index;
                while index < chars.len()
                    && (chars[index].is_ascii_alphanumeric() || matches!(chars[index], '_' | ':'))
                {
                    index += 1;
                }
                let word: String = chars[start..index].iter().collect();
                let next = chars[index..].iter().find(|c| !c.is_whitespace());
                if AGGREGATIONS.contains(&word.as_str()) {
                    // `sum by (a) (x)`: an operator, not a metric.
                } else if KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                    // `by (a, b)` and friends: the list holds label names.
                    skip_label_list = matches!(
                        word.as_str(),
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    );
                } else if depth_braces == 0 && next != Some(&'(') {
                    names.insert(word);
                }
            }
            '(' if skip_label_list => {
                while index < chars.len() && chars[index] != ')' {
                    index += 1;
                }
                index += 1;
                skip_label_list = false;
            }
            _ => index += 1,
        }
    }
    names
}

/// Sends `count` `GET /__lbheartbeat__`, each with a `traceparent` of its own
/// trace id; returns the trace ids.
async fn heartbeats_with_traces(server: &Server, count: usize) -> Vec<String> {
    let mut traces = Vec::new();
    for _ in 0..count {
        let trace = uuid::Uuid::new_v4().simple().to_string();
        let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
        let response = request(
            server.addr,
            "GET",
            "/__lbheartbeat__",
            &[("traceparent", &traceparent)],
            None,
        )
        .await;
        assert_eq!(response.status, 200);
        traces.push(trace);
    }
    traces
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_with_exemplar_storage_stores_the_trace_ids_sent() {
    let server = start_instance("127.0.0.1:0").await;
    let target = server.metrics_addr.expect("a metrics listener");
    let prometheus = Prometheus::start_with(&[target], &["exemplar-storage"]).await;
    prometheus
        .wait_for_up(&BTreeMap::from([(vec![target.to_string()], 1.0)]))
        .await;
    let sent = heartbeats_with_traces(&server, 5).await;
    // The exemplar kept is the latest of each series: the last trace sent.
    let last = sent.last().expect("traces were sent").clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs();
    let query = |metric: &str| {
        format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            percent_encode(&format!("{metric}{{path_template=\"/__lbheartbeat__\"}}")),
            now - 600,
            now + 600
        )
    };
    for metric in [
        "ctms_requests_total",
        "ctms_requests_duration_seconds_bucket",
    ] {
        let path = query(metric);
        let stored = prometheus
            .wait_for(&format!("the exemplar of {metric}"), || async {
                let data = prometheus.api(&path).await;
                let traces: Vec<String> = data
                    .as_array()?
                    .iter()
                    .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                    .filter_map(|exemplar| {
                        exemplar["labels"]["trace_id"].as_str().map(str::to_owned)
                    })
                    .collect();
                traces.contains(&last).then_some(traces)
            })
            .await;
        assert!(
            stored.iter().all(|trace| sent.contains(trace)),
            "{metric}: stored {stored:?}, sent {sent:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_with_native_histograms_ingests_them_and_answers_quantiles() {
    let server = Server::start_with(&[
        ("CTMS_ADDR", "127.0.0.1:0"),
        ("CTMS_METRICS_ADDR", "127.0.0.1:0"),
        ("CTMS_NATIVE_HISTOGRAMS", "true"),
    ])
    .await;
    let target = server.metrics_addr.expect("a metrics listener");
    let prometheus = Prometheus::start_with(&[target], &["native-histograms"]).await;
    prometheus
        .wait_for_up(&BTreeMap::from([(vec![target.to_string()], 1.0)]))
        .await;
    let sent = heartbeats_with_traces(&server, 12).await.len() as f64;
    let series = r#"ctms_requests_duration_seconds{method="GET",path_template="/__lbheartbeat__",status_code_family="2xx"}"#;
    // The native histogram holds every request, exactly. (Prometheus 2.42
    // keeps only the native view of a histogram that has one; from 2.45,
    // `scrape_classic_histograms` keeps the classic buckets sent beside it.)
    let expected = BTreeMap::from([(vec![], sent)]);
    prometheus
        .wait_for_exact(&format!("histogram_count({series})"), &[], &expected)
        .await;
    let median = prometheus
        .query(&format!("histogram_quantile(0.5, {series})"))
        .await;
    assert_eq!(median.len(), 1, "{median:?}");
    let seconds = median[0].1;
    assert!(
        seconds > 0.0 && seconds < 1.0,
        "median heartbeat of {seconds} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sums_three_instances_exactly_and_survives_a_restart() {
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(start_instance("127.0.0.1:0").await);
    }
    let targets: Vec<SocketAddr> = instances
        .iter()
        .map(|server| server.metrics_addr.expect("a metrics listener"))
        .collect();
    let prometheus = Prometheus::start(&targets).await;
    let all_up: BTreeMap<Vec<String>, f64> =
        targets.iter().map(|t| (vec![t.to_string()], 1.0)).collect();
    // Traffic starts once every target has been scraped at zero, so each
    // series' first sample is 0 and `increase()` sees all of it.
    prometheus.wait_for_up(&all_up).await;

    let mut sent = Sent::default();
    for (weight, server) in instances.iter().enumerate() {
        sent.mix(server, weight + 1).await;
    }
    // The restarted instance gets the most traffic, so losing it would show.
    for _ in 0..20 {
        sent.send(
            &instances[1],
            "GET",
            "/__version__",
            Some("/__version__"),
            None,
            200,
        )
        .await;
    }

    let per_template =
        format!("sum by (path_template, status_code) (ctms_requests_total{{{NOT_SCRAPES}}})");
    let template_status = ["path_template", "status_code"];
    prometheus
        .wait_for_exact(&per_template, &template_status, &sent.by_template_status)
        .await;
    prometheus
        .wait_for_exact(
            "sum by (client_id) (ctms_api_requests_total)",
            &["client_id"],
            &sent.by_client,
        )
        .await;
    let histogram_count =
        format!("sum by (path_template) (ctms_requests_duration_seconds_count{{{NOT_SCRAPES}}})");
    let mut per_template_only = BTreeMap::new();
    for (key, count) in &sent.by_template_status {
        *per_template_only.entry(vec![key[0].clone()]).or_insert(0.0) += count;
    }
    prometheus
        .wait_for_exact(&histogram_count, &["path_template"], &per_template_only)
        .await;
    let unmatched = BTreeMap::from([(Vec::new(), sent.unmatched)]);
    assert!(sent.unmatched > 0.0);
    prometheus
        .wait_for_exact("sum(ctms_requests_unmatched_total)", &[], &unmatched)
        .await;

    // The recording rules aggregate across the instances.
    prometheus.wait_for_family_rates(&sent).await;
    let ratio = |template: &'static str| {
        let prometheus = &prometheus;
        async move {
            let promql = format!(
                r#"path_template:ctms_requests_5xx:ratio_rate5m{{path_template="{template}"}}"#
            );
            prometheus
                .query(&promql)
                .await
                .first()
                .map(|(_, value)| *value)
        }
    };
    let crash = prometheus
        .wait_for("the 5xx ratio of /__crash__", || async {
            ratio("/__crash__").await
        })
        .await;
    assert_eq!(crash, 1.0, "every /__crash__ request was a 500");
    assert_eq!(ratio("/__lbheartbeat__").await, Some(0.0));
    // The SLO rules: every /__crash__ request fails, so that route burns its
    // availability budget 1000 times too fast over every window, and its
    // fast-burn page fires at once (these alerts have no `for:`). Quick
    // routes spend none of their latency budget; probes are no SLO route.
    let slo_ratio = |rule: &'static str, template: &'static str| {
        let prometheus = &prometheus;
        async move {
            let promql = format!(r#"path_template:{rule}{{path_template="{template}"}}"#);
            prometheus
                .query(&promql)
                .await
                .first()
                .map(|(_, value)| *value)
        }
    };
    let crash_errors = prometheus
        .wait_for("the SLO error ratio of /__crash__", || async {
            slo_ratio("ctms_requests_errors:ratio_rate5m", "/__crash__").await
        })
        .await;
    assert_eq!(crash_errors, 1.0);
    let version_slow = prometheus
        .wait_for("the SLO slow ratio of /__version__", || async {
            slo_ratio("ctms_requests_slow:ratio_rate1h", "/__version__").await
        })
        .await;
    assert_eq!(version_slow, 0.0, "/__version__ answers within 0.5 s");
    assert_eq!(
        slo_ratio("ctms_requests_errors:ratio_rate5m", "/__lbheartbeat__").await,
        None
    );
    prometheus
        .wait_for("CTMSRouteErrorBudgetFastBurn for /__crash__", || async {
            let alerts = prometheus.api("/api/v1/alerts").await;
            alerts["alerts"]
                .as_array()?
                .iter()
                .any(|alert| {
                    alert["labels"]["alertname"] == "CTMSRouteErrorBudgetFastBurn"
                        && alert["labels"]["path_template"] == "/__crash__"
                        && alert["labels"]["severity"] == "page"
                        && alert["state"] == "firing"
                })
                .then_some(())
        })
        .await;
    let p99 = prometheus
        .wait_for("the p99 rule", || async {
            let promql =
                r#"path_template:ctms_requests_duration_seconds:p99_rate5m{path_template="/__lbheartbeat__"}"#;
            prometheus.query(promql).await.first().map(|(_, value)| *value)
        })
        .await;
    assert!(
        p99 > 0.0 && p99 <= 0.01,
        "heartbeats take under 10 ms, so p99 is in the first bucket: {p99}"
    );
    let clients = prometheus
        .wait_for("the per-client rate rule", || async {
            let rates = prometheus
                .nonzero_by("client_id:ctms_api_requests:rate5m", &["client_id"])
                .await;
            (rates.len() == sent.by_client.len()).then_some(rates)
        })
        .await;
    assert_eq!(
        clients.keys().collect::<Vec<_>>(),
        sent.by_client.keys().collect::<Vec<_>>()
    );

    // Every target is up and scraped without error.
    prometheus.wait_for_up(&all_up).await;
    let targets_api = prometheus.api("/api/v1/targets?state=active").await;
    let active = targets_api["activeTargets"]
        .as_array()
        .expect("activeTargets");
    assert_eq!(active.len(), 3, "{targets_api}");
    for target in active {
        assert_eq!(target["health"], "up", "{target}");
        assert_eq!(target["lastError"], "", "{target}");
    }

    // Every dashboard expression is valid PromQL and reads only metrics and
    // rules that exist.
    let rules = prometheus.api("/api/v1/rules").await;
    // The metric names Prometheus has ingested.
    let names = prometheus.api("/api/v1/label/__name__/values").await;
    let mut known: BTreeSet<String> = names
        .as_array()
        .expect("metric names")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    for name in ["up", "ctms_requests_total", "ctms_requests_unmatched_total"] {
        assert!(known.contains(name), "{name} not ingested: {known:?}");
    }
    known.retain(|name| name == "up" || name.starts_with("ctms_"));
    for group in rules["groups"].as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            assert_eq!(rule["health"], "ok", "rule is unhealthy: {rule}");
            if rule["type"] == "recording" {
                known.insert(rule["name"].as_str().expect("rule name").to_owned());
            }
        }
    }
    let expressions = dashboard_expressions();
    assert!(expressions.len() >= 8, "too few panels: {expressions:?}");
    for (panel, expr) in &expressions {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let response = get(prometheus.addr, &path).await;
        assert_eq!(
            response.json()["status"],
            "success",
            "{panel}: Prometheus rejects {expr:?}: {}",
            response.body
        );
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{panel}: {expr:?} reads no metric");
        for name in names {
            assert!(
                known.contains(&name),
                "{panel}: {expr:?} reads unknown {name:?}"
            );
        }
    }

    // One instance restarts: its counters start again from zero.
    let restarted = targets[1];
    let before_restart = sent.total();
    let lost: f64 = {
        let probe = format!(r#"sum(ctms_requests_total{{instance="{restarted}",{NOT_SCRAPES}}})"#);
        prometheus
            .query(&probe)
            .await
            .first()
            .map_or(0.0, |(_, v)| *v)
    };
    assert!(
        lost >= 20.0,
        "the restarted instance served {lost} requests"
    );
    let mut old = instances.remove(1);
    old.process.terminate().await;
    let mut one_down = all_up.clone();
    one_down.insert(vec![restarted.to_string()], 0.0);
    prometheus.wait_for_up(&one_down).await;
    let new = start_instance(&restarted.to_string()).await;
    prometheus.wait_for_up(&all_up).await;
    for _ in 0..5 {
        sent.send(&new, "GET", "/__version__", Some("/__version__"), None, 200)
            .await;
    }
    sent.send(
        &new,
        "GET",
        "/__crash__",
        Some("/__crash__"),
        Some("beta"),
        500,
    )
    .await;
    let after_restart = sent.total() - before_restart;

    // A plain sum now misses what the old process counted ...
    let naive = format!("sum(ctms_requests_total{{{NOT_SCRAPES}}})");
    let naive_expected = BTreeMap::from([(vec![], sent.total() - lost)]);
    prometheus
        .wait_for_exact(&naive, &[], &naive_expected)
        .await;
    // ... while the samples, counted across the reset, hold every request
    // exactly once ...
    let total = sent.total();
    let window = format!("ctms_requests_total{{{NOT_SCRAPES}}}[10m]");
    let exact = prometheus.counted_across_resets(&window).await;
    assert_eq!(
        exact, total,
        "the samples counted {exact} across the restart, sent {total} \
         ({before_restart} before, {after_restart} after; {lost} on the restarted instance)"
    );
    // ... and increase() over the restart counts every request. It then
    // extrapolates past each series' first and last samples, only ever up,
    // by as much as a scrape interval at each end: a lot for a series
    // scraped only a few times, as here, so it is bounded from below only.
    let increase = format!("sum(increase({window}))");
    let counted = prometheus
        .query(&increase)
        .await
        .first()
        .map_or(0.0, |(_, v)| *v);
    assert!(
        counted >= total - 1e-9,
        "increase() over the restart gave {counted}, sent {total}"
    );
    // Each series of the restarted instance that had counted something reset once.
    let resets = format!(
        r#"count(resets(ctms_requests_total{{instance="{restarted}",{NOT_SCRAPES}}}[10m]) > 0)"#
    );
    let reset_series = sent.grown[&restarted].len();
    let seen = prometheus
        .query(&resets)
        .await
        .first()
        .map_or(0.0, |(_, v)| *v);
    assert_eq!(seen, reset_series as f64, "{resets}");
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let promtool = tool("PROMTOOL", "promtool");
    for file in RULE_FILES {
        let mut check = Command::new(&promtool);
        check
            .args(["check", "rules"])
            .arg(repo_path(&format!("contrib/prometheus/{file}")));
        let checked = run(check);
        let report = String::from_utf8_lossy(&checked.stdout);
        assert!(report.contains("SUCCESS"), "{file}: {report}");
        assert!(!report.contains("WARNING"), "{file}: {report}");
        let tests = file.replace(".yml", ".test.yml");
        let mut test = Command::new(&promtool);
        test.args(["test", "rules"])
            .arg(repo_path(&format!("contrib/prometheus/{tests}")));
        let tested = run(test);
        assert!(
            String::from_utf8_lossy(&tested.stdout).contains("SUCCESS"),
            "{tests}: {}",
            String::from_utf8_lossy(&tested.stdout)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_no_problem_in_a_live_exposition() {
    let server = start_instance("127.0.0.1:0").await;
    assert_eq!(server.get("/__lbheartbeat__").await.status, 200);
    let exposition = get(server.metrics_addr.expect("metrics listener"), "/metrics").await;
    assert_eq!(exposition.status, 200);
    assert!(exposition
        .body
        .contains("ctms_requests_duration_seconds_bucket"));
    assert_promtool_accepts(&exposition.body);
}

/// Fails unless `promtool check metrics` finds no problem at all in `text`
/// (a text 0.0.4 exposition: promtool reads no other format).
pub(crate) fn assert_promtool_accepts(text: &str) {
    let mut child = Command::new(tool("PROMTOOL", "promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("the exposition is written to promtool");
    let output = child.wait_with_output().expect("promtool finishes");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics: {report}\n{text}"
    );
    assert_eq!(report.trim(), "", "promtool reports problems in\n{text}");
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = metric_names(
        r#"sum by (path_template, le) (rate(ctms_requests_duration_seconds_bucket{path_template!="/metrics", job=~"a|b"}[5m])) / on (path_template) group_left ignoring(x) path_template:ctms_requests_5xx:ratio_rate5m > bool 0.5 or absent(up{job="ctms"} == 1)"#,
    );
    let expected: BTreeSet<String> = [
        "ctms_requests_duration_seconds_bucket",
        "path_template:ctms_requests_5xx:ratio_rate5m",
        "up",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(names, expected);
}

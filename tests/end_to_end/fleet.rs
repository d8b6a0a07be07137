//! A fleet of example instances, as it is monitored in production.
//!
//! - Alerting: a real Prometheus scrapes two instances, runs every shipped
//!   rule file (their `for:` durations shortened) and sends its alerts to a
//!   real Alertmanager, whose webhook receiver is a server run by the test:
//!   what reaches it is what an on-call engineer would be told.
//! - A central store: a Prometheus in agent mode scrapes three instances
//!   and forwards every sample by `remote_write` to a central Prometheus,
//!   which scrapes nothing itself and runs the shipped rules.
//!
//! These tests need Debian's `prometheus` and `prometheus-alertmanager`
//! packages (`bash .ci/run` installs them). `PROMETHEUS` and `ALERTMANAGER`
//! may name the binaries instead of `PATH`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::example::Server;
use crate::prometheus::{
    free_port, poll_until, repo_path, start_instance, tool_of_package, try_get, Prometheus, Sent,
    TempDir, NOT_SCRAPES, POLL,
};
use crate::support::{get, request};

/// The `for:` every alert is given in the copies of the rule files: long
/// enough that an alert is pending for one evaluation before it fires,
/// short enough that each phase takes seconds.
const SHORT_FOR: &str = "1s";
/// How long the fleet is watched, healthy, for any alert.
const HEALTHY: Duration = Duration::from_secs(5);
/// The fast-burn alert of the SLO rules, checked when a rule file defines it.
const FAST_BURN: &str = "CTMSErrorBudgetFastBurn";

/// One alert as a webhook notification carried it.
#[derive(Clone, Debug)]
struct Delivered {
    alertname: String,
    /// `firing` or `resolved`.
    status: String,
    labels: BTreeMap<String, String>,
}

impl std::fmt::Display for Delivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "alertname" | "job" | "severity"))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        write!(f, "{} {}", self.alertname, self.status)?;
        if !labels.is_empty() {
            write!(f, " {{{}}}", labels.join(", "))?;
        }
        Ok(())
    }
}

/// An HTTP server on loopback that keeps the JSON body of every request
/// sent to it: Alertmanager's webhook receiver.
struct Webhook {
    addr: SocketAddr,
    notifications: Arc<Mutex<Vec<Value>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Webhook {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port is free");
        let addr = listener.local_addr().expect("the listener has an address");
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&notifications);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let log = Arc::clone(&log);
                    async move {
                        let body = request.into_body().collect().await?.to_bytes();
                        let json = serde_json::from_slice(&body).unwrap_or_else(|err| {
                            Value::String(format!(
                                "not JSON ({err}): {}",
                                String::from_utf8_lossy(&body)
                            ))
                        });
                        log.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(json);
                        Ok::<_, hyper::Error>(Response::new(Empty::<Bytes>::new()))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            notifications,
            server,
        }
    }

    /// How many notifications have arrived.
    fn count(&self) -> usize {
        self.notifications
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every alert of the notifications from the `from`th on, in order.
    fn delivered_since(&self, from: usize) -> Vec<Delivered> {
        let notifications = self
            .notifications
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut delivered = Vec::new();
        for notification in notifications.iter().skip(from) {
            let alerts = notification["alerts"]
                .as_array()
                .unwrap_or_else(|| panic!("a notification without alerts: {notification}"));
            for alert in alerts {
                let labels: BTreeMap<String, String> = alert["labels"]
                    .as_object()
                    .unwrap_or_else(|| panic!("an alert without labels: {alert}"))
                    .iter()
                    .map(|(name, value)| {
                        (name.clone(), value.as_str().unwrap_or_default().to_owned())
                    })
                    .collect();
                delivered.push(Delivered {
                    alertname: labels.get("alertname").cloned().unwrap_or_default(),
                    status: alert["status"].as_str().unwrap_or_default().to_owned(),
                    labels,
                });
            }
        }
        delivered
    }

    fn summary_since(&self, from: usize) -> String {
        let delivered = self.delivered_since(from);
        if delivered.is_empty() {
            return "nothing".to_owned();
        }
        delivered
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A real Alertmanager on loopback, without clustering, whose only receiver
/// is `webhook`; killed and cleaned up on drop.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Alertmanager {
    async fn start(webhook: SocketAddr) -> Self {
        let binary = tool_of_package(
            "ALERTMANAGER",
            "prometheus-alertmanager",
            "prometheus-alertmanager",
        );
        let dir = TempDir::new("alertmanager");
        // Every alert its own group (`...`), so each notification carries
        // one alert; short timers so a change is told within seconds.
        let config = format!(
            "global:\n  resolve_timeout: 10s\n\
             route:\n  receiver: webhook\n  group_by: ['...']\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: webhook\n    webhook_configs:\n      \
             - url: 'http://{webhook}/alerts'\n        send_resolved: true\n"
        );
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("the configuration is written");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log file");
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("{} does not start: {err}", binary.display()));
        let alertmanager = Self { child, addr, dir };
        poll_until(
            "Alertmanager to be ready",
            || format!("Alertmanager log:\n{}", alertmanager.log()),
            || async {
                let ready = try_get(alertmanager.addr, "/-/ready").await;
                ready.filter(|response| response.status == 200).map(|_| ())
            },
        )
        .await;
        alertmanager
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies every rule file of `contrib/prometheus` (not the `*.test.yml`
/// unit tests) into `dir`, with each `for:` replaced by [`SHORT_FOR`] and
/// nothing else changed; returns the names of the alerts they define.
fn copy_rules_with_short_for(dir: &Path) -> BTreeSet<String> {
    let source = repo_path("contrib/prometheus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&source)
        .unwrap_or_else(|err| panic!("{}: {err}", source.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            name.ends_with(".yml") && !name.ends_with(".test.yml")
        })
        .collect();
    files.sort();
    assert!(
        files.iter().any(|path| path.ends_with("rules.yml")),
        "no rules.yml among {files:?}"
    );
    let mut alerts = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        let mut shortened = 0;
        alerts.extend(alert_names(&text));
        let copy: Vec<String> = text
            .lines()
            .map(|line| {
                let trimmed = line.trim_start();
                if trimmed.starts_with("for:") {
                    shortened += 1;
                    let indent = &line[..line.len() - trimmed.len()];
                    format!("{indent}for: {SHORT_FOR}")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        let name = file.file_name().expect("a file name");
        if name == "rules.yml" {
            assert!(shortened >= 5, "only {shortened} `for:` in rules.yml");
        }
        std::fs::write(dir.join(name), copy.join("\n") + "\n").expect("the rules are written");
    }
    alerts
}

/// Every rule Prometheus has loaded, as `(type, name, health)`.
async fn loaded_rules(prometheus: &Prometheus) -> Vec<(String, String, String)> {
    let rules = prometheus.api("/api/v1/rules").await;
    let mut loaded = Vec::new();
    for group in rules["groups"].as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let field = |name: &str| rule[name].as_str().unwrap_or_default().to_owned();
            loaded.push((field("type"), field("name"), field("health")));
        }
    }
    loaded
}

/// Waits until every rule of `prometheus` has been evaluated without error
/// (a rule not yet evaluated has health `unknown`); returns them.
async fn wait_for_healthy_rules(prometheus: &Prometheus) -> Vec<(String, String, String)> {
    prometheus
        .wait_for("every rule to be evaluated without error", || async {
            let rules = loaded_rules(prometheus).await;
            let unhealthy: Vec<_> = rules
                .iter()
                .filter(|(_, _, health)| health != "ok")
                .collect();
            assert!(
                unhealthy.iter().all(|(_, _, health)| health != "err"),
                "rules in error: {unhealthy:?}"
            );
            (!rules.is_empty() && unhealthy.is_empty()).then_some(rules)
        })
        .await
}

/// The alerts Prometheus holds (pending or firing), as `(name, state)`.
async fn active_alerts(prometheus: &Prometheus) -> Vec<(String, String)> {
    let data = prometheus.api("/api/v1/alerts").await;
    data["alerts"]
        .as_array()
        .expect("alerts is an array")
        .iter()
        .map(|alert| {
            (
                alert["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                alert["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Prometheus, Alertmanager and the webhook, for waits that tell all three
/// logs when they time out.
struct Alerting {
    prometheus: Prometheus,
    alertmanager: Alertmanager,
    webhook: Webhook,
}

impl Alerting {
    /// Waits until the webhook has received, from its `from`th notification
    /// on, an alert named `alertname` with `status` whose labels include
    /// `labels`.
    async fn wait_for_delivery(
        &self,
        from: usize,
        alertname: &str,
        status: &str,
        labels: &[(&str, &str)],
    ) -> Delivered {
        let what = format!("{alertname} {status} {labels:?} at the webhook");
        poll_until(
            &what,
            || {
                format!(
                    "the webhook received: {}\nAlertmanager log:\n{}\nPrometheus log:\n{}",
                    self.webhook.summary_since(0),
                    self.alertmanager.log(),
                    self.prometheus.log()
                )
            },
            || async {
                self.webhook
                    .delivered_since(from)
                    .into_iter()
                    .find(|alert| {
                        alert.alertname == alertname
                            && alert.status == status
                            && labels.iter().all(|(name, value)| {
                                alert.labels.get(*name).map(String::as_str) == Some(*value)
                            })
                    })
            },
        )
        .await
    }
}

/// The alert names `text` (a rule file) defines.
fn alert_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_an_alertmanager_webhook_firing_and_resolved() {
    let webhook = Webhook::start().await;
    let alertmanager = Alertmanager::start(webhook.addr).await;
    let mut instances = Vec::new();
    for _ in 0..2 {
        instances.push(start_instance("127.0.0.1:0").await);
    }
    let targets: Vec<SocketAddr> = instances
        .iter()
        .map(|server| server.metrics_addr.expect("a metrics listener"))
        .collect();

    // The rule files are loaded once every target has been scraped: until
    // the first scrapes `up` is absent, which `CTMSAllTargetsMissing`
    // rightly reports, and with a `for:` of a second it would fire at
    // every start.
    let dir = TempDir::new("prometheus-alerting");
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&rules_dir).expect("the rules directory is created");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{}/*.yml'\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n\
         scrape_configs:\n  - job_name: ctms\n    static_configs:\n      - targets: [{}]\n",
        rules_dir.display(),
        alertmanager.addr,
        targets
            .iter()
            .map(|target| format!("'{target}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let args = [
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        "--web.enable-lifecycle".to_owned(),
    ];
    let prometheus = Prometheus::launch(dir, &config, &args).await;
    let fleet = Alerting {
        prometheus,
        alertmanager,
        webhook,
    };
    let Alerting {
        prometheus,
        webhook,
        alertmanager,
    } = &fleet;
    let all_up: BTreeMap<Vec<String>, f64> =
        targets.iter().map(|t| (vec![t.to_string()], 1.0)).collect();
    prometheus.wait_for_up(&all_up).await;

    // Real traffic, sent once the series were scraped at zero, so that the
    // real traffic rate is above zero (at zero, `CTMSTrafficDropped` fires).
    let mut sent = Sent::default();
    for server in &instances {
        for _ in 0..10 {
            sent.send(
                server,
                "GET",
                "/__version__",
                Some("/__version__"),
                None,
                200,
            )
            .await;
        }
    }
    prometheus
        .wait_for_exact(
            r#"sum(ctms_requests_total{path_template="/__version__"})"#,
            &[],
            &BTreeMap::from([(vec![], sent.total())]),
        )
        .await;

    let alerts = copy_rules_with_short_for(&rules_dir);
    let reload = request(prometheus.addr, "POST", "/-/reload", &[], None).await;
    assert_eq!(reload.status, 200, "reload: {}", reload.body);
    let rules = wait_for_healthy_rules(prometheus).await;
    let loaded_alerts: BTreeSet<String> = rules
        .iter()
        .filter(|(kind, _, _)| kind == "alerting")
        .map(|(_, name, _)| name.clone())
        .collect();
    assert_eq!(loaded_alerts, alerts, "the alerts of the rule files");
    let fast_burn = loaded_alerts.contains(FAST_BURN);
    let real_traffic = prometheus
        .wait_for("a real traffic rate above zero", || async {
            let rate = prometheus
                .query("ctms:requests_excluding_probes:rate5m")
                .await;
            rate.first()
                .map(|(_, value)| *value)
                .filter(|rate| *rate > 0.0)
        })
        .await;
    let wanted = alertmanager.addr.to_string();
    prometheus
        .wait_for("Prometheus to know the Alertmanager", || async {
            let data = prometheus.api("/api/v1/alertmanagers").await;
            data["activeAlertmanagers"]
                .as_array()?
                .iter()
                .any(|am| am["url"].as_str().is_some_and(|url| url.contains(&wanted)))
                .then_some(())
        })
        .await;

    // Healthy: the rules evaluate every second, nothing is pending or
    // firing, and the webhook hears nothing.
    let healthy_until = Instant::now() + HEALTHY;
    while Instant::now() < healthy_until {
        let active = active_alerts(prometheus).await;
        assert!(
            active.is_empty(),
            "alerts while the fleet is healthy (real traffic {real_traffic} req/s): {active:?}"
        );
        assert_eq!(
            webhook.count(),
            0,
            "the webhook was told while the fleet is healthy: {}",
            webhook.summary_since(0)
        );
        tokio::time::sleep(POLL).await;
    }
    eprintln!(
        "webhook, healthy for {HEALTHY:?} (real traffic {real_traffic:.3} req/s): {}",
        webhook.summary_since(0)
    );

    // An error burst on one route: every request to it fails.
    let burst_from = webhook.count();
    for _ in 0..30 {
        sent.send(
            &instances[1],
            "GET",
            "/__crash__",
            Some("/__crash__"),
            Some("alpha"),
            500,
        )
        .await;
    }
    fleet
        .wait_for_delivery(
            burst_from,
            "CTMSHigh5xxRatio",
            "firing",
            &[("path_template", "/__crash__"), ("severity", "page")],
        )
        .await;
    if fast_burn {
        fleet
            .wait_for_delivery(burst_from, FAST_BURN, "firing", &[])
            .await;
    }
    let burst_phase = webhook.delivered_since(burst_from);
    eprintln!(
        "webhook, after the error burst: {}",
        webhook.summary_since(burst_from)
    );

    // One instance is killed: its target is down.
    let down_from = webhook.count();
    let killed = targets[1].to_string();
    let mut victim = instances.remove(1);
    victim.process.child.kill().expect("the instance is killed");
    victim.process.child.wait().expect("the instance is reaped");
    fleet
        .wait_for_delivery(
            down_from,
            "CTMSTargetDown",
            "firing",
            &[("instance", &killed), ("job", "ctms")],
        )
        .await;
    let down_phase = webhook.delivered_since(down_from);
    eprintln!(
        "webhook, after one instance was killed: {}",
        webhook.summary_since(down_from)
    );

    // It restarts on the same address: the alert is resolved.
    let back_from = webhook.count();
    instances.push(start_instance(&killed).await);
    fleet
        .wait_for_delivery(
            back_from,
            "CTMSTargetDown",
            "resolved",
            &[("instance", &killed)],
        )
        .await;
    let back_phase = webhook.delivered_since(back_from);
    eprintln!(
        "webhook, after it restarted: {}",
        webhook.summary_since(back_from)
    );

    // Of the shipped alerts, each phase told only what it caused (the
    // alerts of other rule files, such as an error budget's slow burn, may
    // also follow from the burst).
    let shipped_text = std::fs::read_to_string(repo_path("contrib/prometheus/rules.yml"))
        .expect("the shipped rules are read");
    let shipped = alert_names(&shipped_text);
    let told = |phase: &[Delivered], expected: &dyn Fn(&Delivered) -> bool, what: &str| {
        for alert in phase {
            assert!(
                !shipped.contains(&alert.alertname) || expected(alert),
                "told {what}: {alert}"
            );
        }
    };
    told(
        &burst_phase,
        &|alert| alert.alertname == "CTMSHigh5xxRatio" && alert.status == "firing",
        "after the error burst",
    );
    let about_killed = |status: &'static str| {
        let killed = killed.clone();
        move |alert: &Delivered| {
            alert.alertname == "CTMSTargetDown"
                && alert.status == status
                && alert.labels["instance"] == killed
        }
    };
    told(
        &down_phase,
        &about_killed("firing"),
        "after an instance was killed",
    );
    told(
        &back_phase,
        &about_killed("resolved"),
        "after the instance restarted",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_forwards_three_instances_to_a_central_store_that_runs_the_rules() {
    // The central store: scrapes nothing, receives remote writes, runs the
    // shipped rules as shipped.
    let dir = TempDir::new("prometheus-central");
    let config = format!(
        "global:\n  evaluation_interval: 1s\nrule_files:\n  - '{}'\n",
        repo_path("contrib/prometheus/rules.yml").display()
    );
    let args = [
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        "--web.enable-remote-write-receiver".to_owned(),
    ];
    let central = Prometheus::launch(dir, &config, &args).await;

    let mut instances: Vec<Server> = Vec::new();
    for _ in 0..3 {
        instances.push(start_instance("127.0.0.1:0").await);
    }
    let targets: Vec<SocketAddr> = instances
        .iter()
        .map(|server| server.metrics_addr.expect("a metrics listener"))
        .collect();

    // The agent: scrapes the instances, keeps nothing queryable, forwards
    // every sample.
    let dir = TempDir::new("prometheus-agent");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: ctms\n    static_configs:\n      - targets: [{}]\n\
         remote_write:\n  - url: 'http://{}/api/v1/write'\n    queue_config:\n      \
         batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
        targets
            .iter()
            .map(|target| format!("'{target}'"))
            .collect::<Vec<_>>()
            .join(", "),
        central.addr
    );
    let args = [
        "--enable-feature=agent".to_owned(),
        format!("--storage.agent.path={}", dir.path().join("wal").display()),
    ];
    let agent = Prometheus::launch(dir, &config, &args).await;
    let refused = get(agent.addr, "/api/v1/query?query=up").await;
    assert_ne!(
        refused.status, 200,
        "an agent answers no query: {}",
        refused.body
    );

    // `up` reaches the central store through the agent, one series per
    // instance. Traffic starts once every instance was scraped at zero.
    let all_up: BTreeMap<Vec<String>, f64> =
        targets.iter().map(|t| (vec![t.to_string()], 1.0)).collect();
    central.wait_for_up(&all_up).await;

    let mut sent = Sent::default();
    let mut per_instance = BTreeMap::new();
    for (weight, server) in instances.iter().enumerate() {
        let before = sent.total();
        sent.mix(server, weight + 1).await;
        let target = server.metrics_addr.expect("a metrics listener");
        per_instance.insert(vec![target.to_string()], sent.total() - before);
    }

    // The raw counters, summed over the instances, hold exactly what was
    // sent ...
    let per_template =
        format!("sum by (path_template, status_code) (ctms_requests_total{{{NOT_SCRAPES}}})");
    central
        .wait_for_exact(
            &per_template,
            &["path_template", "status_code"],
            &sent.by_template_status,
        )
        .await;
    central
        .wait_for_exact(
            "sum by (client_id) (ctms_api_requests_total)",
            &["client_id"],
            &sent.by_client,
        )
        .await;
    assert!(sent.unmatched > 0.0);
    central
        .wait_for_exact(
            "sum(ctms_requests_unmatched_total)",
            &[],
            &BTreeMap::from([(vec![], sent.unmatched)]),
        )
        .await;
    // ... each under the instance it was sent to.
    central
        .wait_for_exact(
            &format!("sum by (instance) (ctms_requests_total{{{NOT_SCRAPES}}})"),
            &["instance"],
            &per_instance,
        )
        .await;

    // The shipped rules run on the central store: every rule evaluates,
    // every recording rule records, and the request rates are there for
    // exactly the routes and status families sent.
    let rules = wait_for_healthy_rules(&central).await;
    central.wait_for_family_rates(&sent).await;
    for (_, name, _) in rules.iter().filter(|(kind, _, _)| kind == "recording") {
        central
            .wait_for(&format!("the recording rule {name}"), || async {
                let recorded = central.query(name).await;
                (!recorded.is_empty()).then_some(())
            })
            .await;
    }
    let rates = central
        .nonzero_by(
            "path_template_status_code_family:ctms_requests:rate5m",
            &["instance"],
        )
        .await;
    assert!(
        rates.keys().all(|key| key == &[String::new()]),
        "the recording rule keeps no instance label: {rates:?}"
    );
}

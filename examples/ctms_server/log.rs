//! One log line per request, in MozLog JSON (as CTMS ran it) or in plain text.
//!
//! MozLog is the JSON envelope Mozilla's log pipeline expects: `Timestamp` in
//! nanoseconds since the epoch, `Type`, `Logger`, `Hostname`, `EnvVersion` "2.0",
//! a syslog `Severity`, `Pid`, and the event's own data under `Fields`.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Map, Value};
use tower_prometheus::ClientId;

/// Syslog severities used by MozLog.
const SEVERITY_ERROR: u8 = 3;
const SEVERITY_INFO: u8 = 6;

/// Where and how log lines are written; cheap to clone.
#[derive(Clone)]
pub(crate) struct Logger(Arc<Inner>);

struct Inner {
    mozlog: bool,
    hostname: String,
    pid: u32,
}

impl Logger {
    /// A logger writing MozLog JSON lines (`mozlog`) or plain lines to stdout.
    pub(crate) fn new(mozlog: bool) -> Self {
        Self(Arc::new(Inner {
            mozlog,
            hostname: hostname(),
            pid: std::process::id(),
        }))
    }

    /// Announces a bound listener. The text `listening on http://ADDR` is part of
    /// the example's interface (scripts wait for it), in both formats.
    pub(crate) fn listening(&self, which: &str, addr: std::net::SocketAddr) -> std::io::Result<()> {
        let prefix = if which == "public" { "" } else { "metrics " };
        let msg = format!("{prefix}listening on http://{addr}");
        let mut fields = Map::new();
        fields.insert("msg".into(), json!(msg));
        fields.insert("listener".into(), json!(which));
        fields.insert("addr".into(), json!(addr.to_string()));
        self.write("ctms.startup", SEVERITY_INFO, &fields, &msg)
    }

    /// Logs the most series the metrics layer can expose, as
    /// `series_bound=N`: the figure to set a scrape's `sample_limit` from.
    pub(crate) fn series_bound(&self, series: u64) -> std::io::Result<()> {
        let msg = format!("series_bound={series}");
        let mut fields = Map::new();
        fields.insert("msg".into(), json!(msg));
        fields.insert("series_bound".into(), json!(series));
        self.write("ctms.startup", SEVERITY_INFO, &fields, &msg)
    }

    fn write(
        &self,
        kind: &str,
        severity: u8,
        fields: &Map<String, Value>,
        plain: &str,
    ) -> std::io::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = if self.0.mozlog {
            json!({
                "Timestamp": u64::try_from(now.as_nanos()).unwrap_or(u64::MAX),
                "Type": kind,
                "Logger": "ctms",
                "Hostname": self.0.hostname,
                "EnvVersion": "2.0",
                "Severity": severity,
                "Pid": self.0.pid,
                "Fields": fields,
            })
            .to_string()
        } else {
            let level = if severity <= SEVERITY_ERROR {
                "ERROR"
            } else {
                "INFO"
            };
            format!("{} {level} {plain}", rfc3339(now))
        };
        // One `write_all` of a whole line under the stdout lock keeps lines whole
        // when requests finish on several threads at once.
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(format!("{line}\n").as_bytes())?;
        stdout.flush()
    }
}

/// Middleware logging one line per answered request, with the route template
/// axum matched (the same template the metrics layer records), the client id the
/// authentication put in the response, and whether it was a Prometheus scrape.
pub(crate) async fn log_request(
    State(logger): State<Logger>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    // CTMS marked Prometheus's own scrapes trivial so log queries can drop them.
    let trivial = path == "/metrics"
        && request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|agent| agent.to_str().ok())
            .is_some_and(|agent| agent.starts_with("Prometheus/"));
    let response = next.run(request).await;
    let entry = Entry {
        method: method.as_str(),
        path: &path,
        template: template.as_deref(),
        status: response.status().as_u16(),
        duration: started.elapsed(),
        client_id: response
            .extensions()
            .get::<ClientId>()
            .map(ClientId::as_str),
        trivial,
    };
    if let Err(err) = logger.request(&entry) {
        // Logging must not fail the request; say so once per failure on stderr.
        eprintln!("ctms_server: cannot write a log line: {err}");
    }
    response
}

struct Entry<'a> {
    method: &'a str,
    path: &'a str,
    template: Option<&'a str>,
    status: u16,
    duration: Duration,
    client_id: Option<&'a str>,
    trivial: bool,
}

impl Logger {
    fn request(&self, entry: &Entry<'_>) -> std::io::Result<()> {
        let mut fields = Map::new();
        fields.insert("method".into(), json!(entry.method));
        fields.insert("path".into(), json!(entry.path));
        if let Some(template) = entry.template {
            fields.insert("path_template".into(), json!(template));
        }
        fields.insert("status_code".into(), json!(entry.status));
        fields.insert("duration_s".into(), json!(entry.duration.as_secs_f64()));
        if let Some(client_id) = entry.client_id {
            fields.insert("client_id".into(), json!(client_id));
        }
        if entry.trivial {
            fields.insert("trivial".into(), json!(true));
        }
        let mut plain = format!(
            "{} {} {} {:.3}ms",
            entry.method,
            entry.path,
            entry.status,
            entry.duration.as_secs_f64() * 1e3
        );
        if let Some(template) = entry.template {
            plain.push_str(&format!(" template={template}"));
        }
        if let Some(client_id) = entry.client_id {
            plain.push_str(&format!(" client_id={client_id:?}"));
        }
        if entry.trivial {
            plain.push_str(" trivial");
        }
        let severity = if entry.status >= 500 {
            SEVERITY_ERROR
        } else {
            SEVERITY_INFO
        };
        self.write("request.summary", severity, &fields, &plain)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `since_epoch` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), for the plain format.
fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

//! The example's settings, read from `CTMS_*` environment variables (the
//! crate docs of `main.rs` list them), each refused with a message that
//! names it.

use std::net::SocketAddr;
use std::time::Duration;

const DEFAULT_ADDR: &str = "127.0.0.1:8000";
const DEFAULT_CLIENTS: &str = "test_client:test_secret";
const DEFAULT_MAX_IN_FLIGHT: &str = "512";
const DEFAULT_HEADER_READ_TIMEOUT: &str = "10";

/// Everything the environment sets.
pub(crate) struct Settings {
    pub(crate) addr: String,
    /// `Some` when `/metrics` has a listener of its own.
    pub(crate) metrics_addr: Option<String>,
    /// `(client_id, secret)` pairs.
    pub(crate) clients: Vec<(String, String)>,
    pub(crate) max_in_flight: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) use_mozlog: bool,
    pub(crate) log_requests: bool,
    pub(crate) record_metrics: bool,
    /// Native histograms for the duration histogram (protobuf scrapes).
    pub(crate) native_histograms: bool,
}

impl Settings {
    pub(crate) fn from_env() -> Result<Self, String> {
        let metrics_addr = match std::env::var("CTMS_METRICS_ADDR") {
            Ok(value) => Some(value),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err("CTMS_METRICS_ADDR is not valid UTF-8".to_owned())
            }
        };
        let max_in_flight = env_or_default("CTMS_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)?;
        let max_in_flight = match max_in_flight.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "CTMS_MAX_IN_FLIGHT must be a positive integer, not {max_in_flight:?}"
                ))
            }
        };
        Ok(Self {
            addr: env_or_default("CTMS_ADDR", DEFAULT_ADDR)?,
            metrics_addr,
            clients: parse_clients(&env_or_default("CTMS_CLIENTS", DEFAULT_CLIENTS)?)?,
            max_in_flight,
            header_read_timeout: env_seconds(
                "CTMS_HEADER_READ_TIMEOUT",
                DEFAULT_HEADER_READ_TIMEOUT,
            )?,
            use_mozlog: env_flag("CTMS_USE_MOZLOG", true)?,
            log_requests: env_flag("CTMS_LOG_REQUESTS", true)?,
            record_metrics: env_flag("CTMS_RECORD_METRICS", true)?,
            native_histograms: env_flag("CTMS_NATIVE_HISTOGRAMS", false)?,
        })
    }
}

/// Binds `addr`, naming the variable it came from in any error.
pub(crate) async fn bind(
    name: &str,
    addr: &str,
) -> Result<(tokio::net::TcpListener, SocketAddr), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen on {name}={addr:?}: {err}"))?;
    let bound = listener
        .local_addr()
        .map_err(|err| format!("cannot read the address bound for {name}: {err}"))?;
    Ok((listener, bound))
}

fn parse_clients(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut clients: Vec<(String, String)> = Vec::new();
    for (index, entry) in spec.split(',').enumerate() {
        let bad = |why: &str| format!("CTMS_CLIENTS entry #{}: {why}", index + 1);
        let (id, secret) = entry
            .split_once(':')
            .ok_or_else(|| bad("expected client_id:secret"))?;
        if id.is_empty() {
            return Err(bad("the client id is empty"));
        }
        if secret.is_empty() {
            return Err(bad("the secret is empty"));
        }
        if clients.iter().any(|(known, _)| known == id) {
            return Err(bad(&format!("client {id:?} is listed twice")));
        }
        clients.push((id.to_owned(), secret.to_owned()));
    }
    Ok(clients)
}

fn env_or_default(name: &str, default: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => Ok(default.to_owned()),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// A positive duration in seconds (`0.5`, `10`).
fn env_seconds(name: &str, default: &str) -> Result<Duration, String> {
    let value = env_or_default(name, default)?;
    match value.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 86_400.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!(
            "{name} must be a number of seconds between 0 and 86400, not {value:?}"
        )),
    }
}

fn env_flag(name: &str, default: bool) -> Result<bool, String> {
    match env_or_default(name, if default { "true" } else { "false" })?
        .to_ascii_lowercase()
        .as_str()
    {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(format!("{name} must be true or false, not {other:?}")),
    }
}

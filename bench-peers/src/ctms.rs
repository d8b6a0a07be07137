//! The CTMS metric families and label values.

use http::{Method, StatusCode};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

const NAMESPACE: &str = "ctms";
const BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// Method label values; [`method_index`] points into this table.
pub(crate) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER",
];

const FAMILIES: [&str; 9] = [
    "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
];

/// The three CTMS metric families, registered in one registry.
#[derive(Clone, Debug)]
pub struct Families {
    /// `ctms_requests_duration_seconds{method, path_template, status_code_family}`
    pub duration: HistogramVec,
    /// `ctms_requests_total{method, path_template, status_code, status_code_family}`
    pub requests: IntCounterVec,
    /// `ctms_api_requests_total{client_id, method, path_template, status_code_family}`
    pub api: IntCounterVec,
}

impl Families {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let duration = HistogramVec::new(
            HistogramOpts::new("requests_duration_seconds", "Request duration in seconds.")
                .namespace(NAMESPACE)
                .buckets(BUCKETS.to_vec()),
            &["method", "path_template", "status_code_family"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "Requests served.").namespace(NAMESPACE),
            &[
                "method",
                "path_template",
                "status_code",
                "status_code_family",
            ],
        )?;
        let api = IntCounterVec::new(
            Opts::new("api_requests_total", "Requests served per API client.").namespace(NAMESPACE),
            &["client_id", "method", "path_template", "status_code_family"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(api.clone()))?;
        Ok(Self {
            duration,
            requests,
            api,
        })
    }
}

/// The index of `method`'s label value in [`METHODS`].
pub(crate) fn method_index(method: &Method) -> u8 {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::CONNECT => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::PATCH => 8,
        _ => 9,
    }
}

/// The first digit of `status`, 1 to 9.
pub(crate) fn family_index(status: StatusCode) -> u8 {
    (status.as_u16() / 100) as u8
}

/// `2xx` for 200 to 299, and so on.
pub(crate) fn family_label(status: StatusCode) -> &'static str {
    FAMILIES[usize::from(family_index(status)) - 1]
}

//! The CTMS naming: metric names, label names and help strings of the
//! families the layer records. The label values live in `labels.rs`.

use prometheus::proto::MetricType;

/// Label names, fixed by the CTMS format.
pub(crate) const METHOD: &str = "method";
pub(crate) const PATH_TEMPLATE: &str = "path_template";
pub(crate) const STATUS_CODE: &str = "status_code";
pub(crate) const STATUS_CODE_FAMILY: &str = "status_code_family";
pub(crate) const CLIENT_ID: &str = "client_id";

/// Every label name the layer's families use, and `le`, which the encoder
/// adds to histogram buckets: a registry's constant label must be none of
/// these.
pub(crate) const RESERVED_LABELS: &[&str] = &[
    METHOD,
    PATH_TEMPLATE,
    STATUS_CODE,
    STATUS_CODE_FAMILY,
    CLIENT_ID,
    "le",
];

/// The metric families a layer registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// `<namespace>_requests_duration_seconds`
    Duration,
    /// `<namespace>_requests_total`
    Total,
    /// `<namespace>_api_requests_total`
    Api,
    /// `<namespace>_requests_unmatched_total`
    Unmatched,
}

impl Family {
    pub(crate) const ALL: [Self; 4] = [Self::Duration, Self::Total, Self::Api, Self::Unmatched];

    /// The name after `<namespace>_`.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Self::Duration => "requests_duration_seconds",
            Self::Total => "requests_total",
            Self::Api => "api_requests_total",
            Self::Unmatched => "requests_unmatched_total",
        }
    }

    pub(crate) fn help(self) -> &'static str {
        match self {
            Self::Duration => "Histogram of requests processing time by path (in seconds)",
            Self::Total => {
                "Total count of requests by method, path, status code, and status code family."
            }
            Self::Api => {
                "Total count of API requests by method, path, client ID, and status code family"
            }
            Self::Unmatched => "Total count of requests whose path matched no route template.",
        }
    }

    pub(crate) fn metric_type(self) -> MetricType {
        match self {
            Self::Duration => MetricType::HISTOGRAM,
            Self::Total | Self::Api | Self::Unmatched => MetricType::COUNTER,
        }
    }

    /// Label names, in name order (the order a scrape lists them in).
    pub(crate) fn labels(self) -> &'static [&'static str] {
        match self {
            Self::Duration => &[METHOD, PATH_TEMPLATE, STATUS_CODE_FAMILY],
            Self::Total => &[METHOD, PATH_TEMPLATE, STATUS_CODE, STATUS_CODE_FAMILY],
            Self::Api => &[CLIENT_ID, METHOD, PATH_TEMPLATE, STATUS_CODE_FAMILY],
            Self::Unmatched => &[],
        }
    }

    /// Other names this family's samples, or its family name in the
    /// OpenMetrics format, use: another metric registered under one of
    /// them would put two families' samples under one name.
    pub(crate) fn derived_names(self, name: &str) -> Vec<String> {
        match self {
            Self::Duration => ["_bucket", "_count", "_sum"]
                .iter()
                .map(|suffix| format!("{name}{suffix}"))
                .collect(),
            Self::Total | Self::Api | Self::Unmatched => name
                .strip_suffix("_total")
                .map(|family| vec![family.to_owned()])
                .unwrap_or_default(),
        }
    }
}

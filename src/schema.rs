//! The CTMS naming, whole: metric names, label names, help strings and the
//! label values of each index kind of `labels.rs`. A second naming profile
//! is a second set of these tables.

use prometheus::proto::MetricType;

use crate::{
    grpc::GrpcCode,
    labels::{MethodLabel, Status, StatusFamily},
};

/// `method` values, by [`MethodLabel`] index.
const METHOD_VALUES: [&str; MethodLabel::COUNT] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER",
];

/// `status_code_family` values, by [`StatusFamily`] index.
const FAMILY_VALUES: [&str; StatusFamily::COUNT] = [
    "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
];

/// The `client_id` value of ids past the caps, or that cannot be label
/// values.
pub(crate) const OTHER_CLIENT_ID: &str = "__other__";

/// `grpc_code` values, by gRPC code: the canonical upper-case names.
const GRPC_CODE_VALUES: [&str; GrpcCode::COUNT] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The `grpc_code` value of a gRPC code.
pub(crate) fn grpc_code_value(code: GrpcCode) -> &'static str {
    GRPC_CODE_VALUES[code.index()]
}

/// The `method` value of a method label.
pub(crate) fn method_value(method: MethodLabel) -> &'static str {
    METHOD_VALUES[method.index()]
}

/// The `status_code_family` value of a family.
pub(crate) fn family_value(family: StatusFamily) -> &'static str {
    FAMILY_VALUES[family.index()]
}

/// The `status_code` value of a status.
pub(crate) fn status_code_value(status: Status) -> String {
    status.code().to_string()
}

/// Label names, fixed by the CTMS format.
pub(crate) const METHOD: &str = "method";
pub(crate) const PATH_TEMPLATE: &str = "path_template";
pub(crate) const STATUS_CODE: &str = "status_code";
pub(crate) const STATUS_CODE_FAMILY: &str = "status_code_family";
pub(crate) const CLIENT_ID: &str = "client_id";
pub(crate) const GRPC_CODE: &str = "grpc_code";
pub(crate) const GRPC_METHOD: &str = "grpc_method";
pub(crate) const GRPC_SERVICE: &str = "grpc_service";

/// Every label name the layer's families use, and `le`, which the encoder
/// adds to histogram buckets: a registry's constant label must be none of
/// these.
pub(crate) const RESERVED_LABELS: &[&str] = &[
    METHOD,
    PATH_TEMPLATE,
    STATUS_CODE,
    STATUS_CODE_FAMILY,
    CLIENT_ID,
    GRPC_CODE,
    GRPC_METHOD,
    GRPC_SERVICE,
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
    Clients,
    /// `<namespace>_requests_unmatched_total`
    Unmatched,
    /// `<namespace>_grpc_requests_total`
    Grpc,
    /// `<namespace>_requests_in_flight`
    InFlight,
    /// `<namespace>_response_body_bytes_total`
    ResponseBytes,
    /// `<namespace>_request_body_bytes_total`
    RequestBytes,
}

impl Family {
    /// The families every layer registers.
    pub(crate) const ALWAYS: [Self; 4] =
        [Self::Duration, Self::Total, Self::Clients, Self::Unmatched];

    /// The name after `<namespace>_`.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Self::Duration => "requests_duration_seconds",
            Self::Total => "requests_total",
            Self::Clients => "api_requests_total",
            Self::Unmatched => "requests_unmatched_total",
            Self::Grpc => "grpc_requests_total",
            Self::InFlight => "requests_in_flight",
            Self::ResponseBytes => "response_body_bytes_total",
            Self::RequestBytes => "request_body_bytes_total",
        }
    }

    pub(crate) fn help(self) -> &'static str {
        match self {
            Self::Duration => "Histogram of requests processing time by path (in seconds)",
            Self::Total => {
                "Total count of requests by method, path, status code, and status code family."
            }
            Self::Clients => {
                "Total count of API requests by method, path, client ID, and status code family"
            }
            Self::Unmatched => "Total count of requests whose path matched no route template.",
            Self::Grpc => "Total count of gRPC calls by gRPC status code, service and method.",
            Self::InFlight => "Requests received and not yet answered, by method and path.",
            Self::ResponseBytes => {
                "Total bytes of response bodies sent, by method and path (as carried by the body's frames)."
            }
            Self::RequestBytes => {
                "Total bytes of request bodies read, by method and path (as carried by the body's frames)."
            }
        }
    }

    pub(crate) fn metric_type(self) -> MetricType {
        match self {
            Self::Duration => MetricType::HISTOGRAM,
            Self::Total
            | Self::Clients
            | Self::Unmatched
            | Self::Grpc
            | Self::ResponseBytes
            | Self::RequestBytes => MetricType::COUNTER,
            Self::InFlight => MetricType::GAUGE,
        }
    }

    /// Label names, in name order (the order a scrape lists them in).
    pub(crate) fn labels(self) -> &'static [&'static str] {
        match self {
            Self::Duration => &[METHOD, PATH_TEMPLATE, STATUS_CODE_FAMILY],
            Self::Total => &[METHOD, PATH_TEMPLATE, STATUS_CODE, STATUS_CODE_FAMILY],
            Self::Clients => &[CLIENT_ID, METHOD, PATH_TEMPLATE, STATUS_CODE_FAMILY],
            Self::Unmatched => &[],
            Self::Grpc => &[GRPC_CODE, GRPC_METHOD, GRPC_SERVICE],
            Self::InFlight | Self::ResponseBytes | Self::RequestBytes => &[METHOD, PATH_TEMPLATE],
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
            Self::Total
            | Self::Clients
            | Self::Unmatched
            | Self::Grpc
            | Self::ResponseBytes
            | Self::RequestBytes => name
                .strip_suffix("_total")
                .map(|family| vec![family.to_owned()])
                .unwrap_or_default(),
            Self::InFlight => Vec::new(),
        }
    }
}

/// How the layer names its metrics and labels.
///
/// The choice changes names only (and, for the duration histogram, its
/// status label): pre-initialisation, bounds and exactness are the same in
/// both. See the crate docs' table of the two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// The CTMS names (the default): `<namespace>_requests_duration_seconds`
    /// with `method`, `path_template` and `status_code_family`, and so on.
    #[default]
    Ctms,
    /// The OpenTelemetry HTTP server semantic conventions, as Prometheus
    /// names them: `http_server_request_duration_seconds` with
    /// `http_request_method`, `http_route`, `http_response_status_code` and
    /// `error_type`, the buckets the convention advises, and
    /// `http_server_active_requests`; the namespace is not used.
    OpenTelemetry,
}

/// The label names of one profile.
pub(crate) struct Names {
    pub(crate) method: &'static str,
    pub(crate) route: &'static str,
    pub(crate) status_code: &'static str,
    pub(crate) status_family: &'static str,
    pub(crate) client_id: &'static str,
    pub(crate) error_type: &'static str,
    pub(crate) grpc_code: &'static str,
    pub(crate) grpc_method: &'static str,
    pub(crate) grpc_service: &'static str,
}

const CTMS_NAMES: Names = Names {
    method: METHOD,
    route: PATH_TEMPLATE,
    status_code: STATUS_CODE,
    status_family: STATUS_CODE_FAMILY,
    client_id: CLIENT_ID,
    error_type: "error_type",
    grpc_code: GRPC_CODE,
    grpc_method: GRPC_METHOD,
    grpc_service: GRPC_SERVICE,
};

const OTEL_NAMES: Names = Names {
    method: "http_request_method",
    route: "http_route",
    status_code: "http_response_status_code",
    status_family: "http_response_status_class",
    client_id: "client_id",
    error_type: "error_type",
    grpc_code: "rpc_grpc_status_code",
    grpc_method: "rpc_method",
    grpc_service: "rpc_service",
};

/// Label names of the OpenTelemetry profile that a registry's constant
/// label must not take either.
pub(crate) const OTEL_RESERVED_LABELS: &[&str] = &[
    "http_request_method",
    "http_route",
    "http_response_status_code",
    "http_response_status_class",
    "error_type",
    "rpc_grpc_status_code",
    "rpc_method",
    "rpc_service",
];

impl Profile {
    pub(crate) fn names(self) -> &'static Names {
        match self {
            Self::Ctms => &CTMS_NAMES,
            Self::OpenTelemetry => &OTEL_NAMES,
        }
    }

    /// Whether the duration histogram is split by status code (the
    /// OpenTelemetry convention) rather than by status family (CTMS).
    pub(crate) fn durations_per_code(self) -> bool {
        self == Self::OpenTelemetry
    }

    /// The families every layer of this profile registers.
    pub(crate) fn always(self) -> &'static [Family] {
        match self {
            Self::Ctms => &Family::ALWAYS,
            // The request count per status code is the histogram's count.
            Self::OpenTelemetry => &[Family::Duration, Family::Clients, Family::Unmatched],
        }
    }

    /// The full name of `family`.
    pub(crate) fn family_name(self, family: Family, namespace: &str) -> String {
        match self {
            Self::Ctms => format!("{namespace}_{}", family.suffix()),
            Self::OpenTelemetry => match family {
                Family::Duration => "http_server_request_duration_seconds",
                Family::Total => "http_server_requests_total",
                Family::Clients => "http_server_client_requests_total",
                Family::Unmatched => "http_server_unmatched_requests_total",
                Family::Grpc => "rpc_server_requests_total",
                Family::InFlight => "http_server_active_requests",
                Family::ResponseBytes => "http_server_response_body_bytes_total",
                Family::RequestBytes => "http_server_request_body_bytes_total",
            }
            .to_owned(),
        }
    }

    /// Label names of `family`, in name order.
    pub(crate) fn labels(self, family: Family) -> &'static [&'static str] {
        match self {
            Self::Ctms => family.labels(),
            Self::OpenTelemetry => match family {
                Family::Duration => &[
                    "error_type",
                    "http_request_method",
                    "http_response_status_code",
                    "http_route",
                ],
                Family::Total => &[
                    "http_request_method",
                    "http_response_status_code",
                    "http_route",
                ],
                Family::Clients => &[
                    "client_id",
                    "http_request_method",
                    "http_response_status_class",
                    "http_route",
                ],
                Family::Unmatched => &[],
                Family::Grpc => &["rpc_grpc_status_code", "rpc_method", "rpc_service"],
                Family::InFlight | Family::ResponseBytes | Family::RequestBytes => {
                    &["http_request_method", "http_route"]
                }
            },
        }
    }

    pub(crate) fn help(self, family: Family) -> &'static str {
        match (self, family) {
            (Self::OpenTelemetry, Family::Duration) => "Duration of HTTP server requests.",
            (Self::OpenTelemetry, Family::InFlight) => "Number of active HTTP server requests.",
            _ => family.help(),
        }
    }

    /// The method label value.
    pub(crate) fn method_value(self, method: MethodLabel) -> &'static str {
        match (self, method_value(method)) {
            (Self::OpenTelemetry, "OTHER") => "_OTHER",
            (_, value) => value,
        }
    }

    /// The method labels in the order of their values.
    pub(crate) fn methods_in_value_order(self) -> [MethodLabel; MethodLabel::COUNT] {
        let mut order = MethodLabel::ALL;
        order.sort_unstable_by_key(|&method| self.method_value(method));
        order
    }

    /// The gRPC status label value: the canonical name (CTMS), or the
    /// number, as the OpenTelemetry RPC conventions give it.
    pub(crate) fn grpc_code_value(self, code: GrpcCode) -> &'static str {
        const NUMBERS: [&str; GrpcCode::COUNT] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        match self {
            Self::Ctms => grpc_code_value(code),
            Self::OpenTelemetry => NUMBERS[code.index()],
        }
    }

    /// The default bucket bounds.
    pub(crate) fn default_buckets(self) -> &'static [f64] {
        match self {
            Self::Ctms => crate::limits::DEFAULT_BUCKETS,
            Self::OpenTelemetry => crate::limits::OTEL_BUCKETS,
        }
    }
}

/// Whether `namespace` can prefix a metric name: ASCII letters, digits and
/// underscores, not starting with a digit, at most
/// [`MAX_NAMESPACE_LEN`](crate::limits::MAX_NAMESPACE_LEN) bytes.
pub(crate) fn is_valid_namespace(namespace: &str) -> bool {
    let mut chars = namespace.chars();
    namespace.len() <= crate::limits::MAX_NAMESPACE_LEN
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use http::Method;

    use super::*;

    #[test]
    fn every_status_code_has_its_code_and_family_as_values() {
        for code in 100..=999u16 {
            let status = Status::new(code).unwrap();
            assert_eq!(status_code_value(status), code.to_string());
            assert_eq!(family_value(status.family()), format!("{}xx", code / 100));
        }
    }

    #[test]
    fn methods_are_recorded_as_their_names_or_other() {
        for (method, value) in [
            (Method::GET, "GET"),
            (Method::HEAD, "HEAD"),
            (Method::POST, "POST"),
            (Method::PUT, "PUT"),
            (Method::DELETE, "DELETE"),
            (Method::CONNECT, "CONNECT"),
            (Method::OPTIONS, "OPTIONS"),
            (Method::TRACE, "TRACE"),
            (Method::PATCH, "PATCH"),
            (Method::from_bytes(b"BREW").unwrap(), "OTHER"),
        ] {
            assert_eq!(method_value(MethodLabel::of(&method)), value);
        }
        for profile in [Profile::Ctms, Profile::OpenTelemetry] {
            let ordered: Vec<&str> = profile
                .methods_in_value_order()
                .map(|method| profile.method_value(method))
                .to_vec();
            let mut sorted = ordered.clone();
            sorted.sort_unstable();
            assert_eq!(ordered, sorted);
        }
    }
}

//! gRPC: which requests are gRPC calls, their status codes, and the HTTP
//! status each is recorded as in the CTMS families.
//!
//! A gRPC server answers HTTP 200 and carries the call's status in the
//! `grpc-status` header of a response that has no body ("trailers-only"),
//! or in the trailers after the last message.

use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// The `grpc-status` header and trailer.
const GRPC_STATUS: &str = "grpc-status";

/// A gRPC status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct GrpcCode(u8);

impl GrpcCode {
    /// Number of codes, `OK` (0) to `UNAUTHENTICATED` (16).
    pub(crate) const COUNT: usize = 17;

    pub(crate) const CANCELLED: Self = Self(1);
    pub(crate) const UNKNOWN: Self = Self(2);

    /// Every code, `OK` first.
    pub(crate) fn all() -> impl Iterator<Item = Self> {
        (0..Self::COUNT as u8).map(Self)
    }

    /// Its dense index, below [`COUNT`](Self::COUNT).
    #[inline]
    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The code a `grpc-status` value stands for; `UNKNOWN` for a value that
    /// is not a known code.
    pub(crate) fn parse(value: &HeaderValue) -> Self {
        match std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|text| text.trim().parse::<u8>().ok())
        {
            Some(code) if usize::from(code) < Self::COUNT => Self(code),
            _ => Self::UNKNOWN,
        }
    }

    /// The code in `headers` (response headers or trailers), if any.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers.get(GRPC_STATUS).map(Self::parse)
    }

    /// The code for a response without `grpc-status`, from its HTTP status,
    /// as gRPC's HTTP-to-gRPC status mapping says.
    pub(crate) fn from_http(status: StatusCode) -> Self {
        Self(match status.as_u16() {
            400 => 13,             // INTERNAL
            401 => 16,             // UNAUTHENTICATED
            403 => 7,              // PERMISSION_DENIED
            404 => 12,             // UNIMPLEMENTED
            429 | 502..=504 => 14, // UNAVAILABLE
            _ => 2,                // UNKNOWN
        })
    }

    /// The HTTP status the call is recorded as in the CTMS families: the
    /// mapping of Google's API design guide and grpc-gateway.
    pub(crate) fn http_status(self) -> u16 {
        const HTTP: [u16; GrpcCode::COUNT] = [
            200, // OK
            499, // CANCELLED
            500, // UNKNOWN
            400, // INVALID_ARGUMENT
            504, // DEADLINE_EXCEEDED
            404, // NOT_FOUND
            409, // ALREADY_EXISTS
            403, // PERMISSION_DENIED
            429, // RESOURCE_EXHAUSTED
            400, // FAILED_PRECONDITION
            409, // ABORTED
            400, // OUT_OF_RANGE
            501, // UNIMPLEMENTED
            500, // INTERNAL
            503, // UNAVAILABLE
            500, // DATA_LOSS
            401, // UNAUTHENTICATED
        ];
        HTTP[self.index()]
    }
}

/// Whether a request is a gRPC call: a `POST` (the only method gRPC uses)
/// whose `content-type` is `application/grpc`, alone or followed by `+` (a
/// codec) or `;`. grpc-web (`application/grpc-web…`) is not: its status
/// travels inside the body.
#[inline]
pub(crate) fn is_grpc_request(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::POST && has_grpc_content_type(headers)
}

/// Whether a response answers as gRPC: its `content-type` is gRPC's, or
/// it carries a `grpc-status`. A request that claims to be a gRPC call
/// and gets any other answer (a REST handler's, a proxy's error page) is
/// recorded by its HTTP status: a client's `content-type` alone must not
/// turn a success into a gRPC failure.
pub(crate) fn is_grpc_response(headers: &HeaderMap) -> bool {
    has_grpc_content_type(headers) || headers.contains_key(GRPC_STATUS)
}

fn has_grpc_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return false;
    };
    let bytes = value.as_bytes();
    let prefix = b"application/grpc";
    bytes.len() >= prefix.len()
        && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(bytes.get(prefix.len()), None | Some(b'+' | b';'))
}

/// The two segments of a template `/service/method`, as written: both
/// non-empty, parameters included (`/demo.v1.Catalog/{method}`).
fn segments(template: &str) -> Option<(&str, &str)> {
    let (service, method) = template.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The `grpc_service` and `grpc_method` values of the gRPC calls recorded
/// under a template (or under the value unmatched paths are recorded as).
///
/// Taken from the template, never from the request, so that they are as
/// bounded as the templates: the two segments of `/service/method` as
/// written, a parameter's text included (`{method}`); for any other
/// template, the template itself and an empty method. No two templates
/// give the same pair: a pair from two segments has a method, any other
/// has none and its whole text as the service.
pub(crate) fn labels(template: &str) -> (&str, &str) {
    segments(template).unwrap_or((template, ""))
}

/// Whether a template is a gRPC route, whose `grpc_requests_total` series
/// exist at zero from the start: `/package.Service/Method` written out
/// (no parameter, a `.` in the service), or, when `forced` (marked
/// [`Route::grpc`](crate::Route::grpc)), any `/service/method`, a
/// parameter for the method included.
pub(crate) fn is_grpc_route(template: &str, forced: bool) -> bool {
    let Some((service, method)) = segments(template) else {
        return false;
    };
    let literal = |part: &str| !part.contains(['{', '}']);
    forced || (service.contains('.') && literal(service) && literal(method))
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_http_statuses_of_the_design_guide() {
        let table: [(u8, u16); 17] = [
            (0, 200),
            (1, 499),
            (2, 500),
            (3, 400),
            (4, 504),
            (5, 404),
            (6, 409),
            (7, 403),
            (8, 429),
            (9, 400),
            (10, 409),
            (11, 400),
            (12, 501),
            (13, 500),
            (14, 503),
            (15, 500),
            (16, 401),
        ];
        for (code, http) in table {
            assert_eq!(GrpcCode(code).http_status(), http, "code {code}");
        }
        assert_eq!(GrpcCode::all().count(), GrpcCode::COUNT);
    }

    #[test]
    fn a_status_value_that_is_not_a_code_is_unknown() {
        for (value, code) in [
            ("0", 0),
            ("5", 5),
            (" 16 ", 16),
            ("17", 2),
            ("-1", 2),
            ("NOT_FOUND", 2),
            ("", 2),
        ] {
            let parsed = GrpcCode::parse(&HeaderValue::from_static(value));
            assert_eq!(parsed, GrpcCode(code), "{value:?}");
        }
    }

    #[test]
    fn http_errors_without_a_grpc_status_follow_the_grpc_mapping() {
        for (http, code) in [
            (400, 13),
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 14),
            (503, 14),
            (500, 2),
            (200, 2),
        ] {
            let status = StatusCode::from_u16(http).unwrap();
            assert_eq!(GrpcCode::from_http(status), GrpcCode(code), "{http}");
        }
    }

    #[test]
    fn grpc_requests_are_told_by_their_content_type() {
        for (value, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc;charset=utf-8", true),
            ("Application/GRPC", true),
            ("application/grpc-web", false),
            ("application/grpc-web+proto", false),
            ("application/grpc-web-text", false),
            ("application/grpcx", false),
            ("application/json", false),
            ("", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_grpc_request(&Method::POST, &headers), grpc, "{value:?}");
            assert!(!is_grpc_request(&Method::GET, &headers), "{value:?}");
        }
        assert!(!is_grpc_request(&Method::POST, &HeaderMap::new()));
    }

    #[test]
    fn grpc_labels_come_from_the_template() {
        for (template, service, method) in [
            (
                "/grpc.health.v1.Health/Check",
                "grpc.health.v1.Health",
                "Check",
            ),
            ("/demo.v1.Catalog/{method}", "demo.v1.Catalog", "{method}"),
            ("/demo.v1.Catalog/{*rest}", "demo.v1.Catalog", "{*rest}"),
            ("/Greeter/SayHello", "Greeter", "SayHello"),
            ("/{service}/{method}", "{service}", "{method}"),
            ("/{*path}", "/{*path}", ""),
            ("/api", "/api", ""),
            ("/", "/", ""),
            ("/a/b/c", "/a/b/c", ""),
            ("/a.b/", "/a.b/", ""),
            ("__unmatched__", "__unmatched__", ""),
        ] {
            assert_eq!(labels(template), (service, method), "{template}");
        }
    }

    #[test]
    fn grpc_routes_are_method_paths() {
        for (template, auto, forced) in [
            ("/grpc.health.v1.Health/Check", true, true),
            ("/Greeter/SayHello", false, true),
            ("/demo.v1.Catalog/{method}", false, true),
            ("/{service}/{method}", false, true),
            ("/v1.0/{id}", false, true),
            ("/a.b", false, false),
            ("/a.b/c/d", false, false),
            ("/a.b/", false, false),
            ("//x", false, false),
            ("/{*path}", false, false),
        ] {
            assert_eq!(is_grpc_route(template, false), auto, "{template}");
            assert_eq!(is_grpc_route(template, true), forced, "{template}");
        }
    }
}

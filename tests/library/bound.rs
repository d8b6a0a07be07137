//! The series bound: what `series_bound` promises against what a hostile
//! flood makes a layer expose, family by family, and the budget that
//! refuses a configuration whose worst case is over it.

use std::convert::Infallible;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use prometheus::Registry;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_prometheus::{
    BuildError, ClientIds, MetricsExporter, Profile, RequestMetricsLayer, Route,
};

use crate::support::{parse, Exposition};

static CLIENT: http::HeaderName = http::HeaderName::from_static("x-client");
static STATUS: http::HeaderName = http::HeaderName::from_static("x-status");
static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// Every method label: the nine standard ones and one that is `OTHER`.
fn methods() -> Vec<Method> {
    let mut methods = vec![
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    methods.push(Method::from_bytes(b"PROPFIND").unwrap());
    methods
}

/// A service that answers the status a request asks for, as a gRPC
/// server does when the request is a gRPC call.
async fn answer(request: Request<String>) -> Result<Response<String>, Infallible> {
    let mut response = Response::new(String::new());
    let headers = request.headers();
    if let Some(code) = headers.get(&GRPC_STATUS) {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        response
            .headers_mut()
            .insert(GRPC_STATUS.clone(), code.clone());
        return Ok(response);
    }
    let code: u16 = headers[&STATUS].to_str().unwrap().parse().unwrap();
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    Ok(response)
}

/// Sends every (path, method, status code) there is, with more client ids
/// than the cap, and a gRPC call of every code on every path.
async fn flood<S>(service: S, paths: &[&str])
where
    S: Service<Request<String>, Error = Infallible> + Clone,
{
    let clients = ["c0", "c1", "c2", "c3", "c4", "c5"];
    let mut sent = 0usize;
    for path in paths {
        for method in methods() {
            for code in 100..=999u16 {
                let request = Request::builder()
                    .method(method.clone())
                    .uri(*path)
                    .header(&STATUS, code)
                    .header(&CLIENT, clients[sent % clients.len()])
                    .body(String::new())
                    .unwrap();
                service.clone().oneshot(request).await.unwrap();
                sent += 1;
            }
        }
        for code in 0..17 {
            let request = Request::post(*path)
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header(&GRPC_STATUS, code)
                .body(String::new())
                .unwrap();
            service.clone().oneshot(request).await.unwrap();
        }
    }
}

/// The sample lines of `family` in `exposition` (a histogram's buckets,
/// sum and count included).
fn exposed(exposition: &Exposition, family: &str) -> u64 {
    exposition
        .samples
        .iter()
        .filter(|sample| {
            sample.name == family
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| sample.name.strip_suffix(suffix) == Some(family))
        })
        .count() as u64
}

/// Floods a layer and checks every family exposes exactly its bound.
async fn bound_is_reached_exactly(builder: tower_prometheus::Builder, paths: &[&str]) {
    let registry = Registry::new();
    let layer = builder.build(&registry).unwrap();
    let bound = layer.series_bound();
    let service = layer.layer(service_fn(answer));
    flood(service, paths).await;
    let exposition = parse(&MetricsExporter::new(registry).render().unwrap());
    let mut total = 0;
    for (family, most) in bound.families() {
        assert_eq!(exposed(&exposition, family), most, "{family}: {bound}");
        total += most;
    }
    assert_eq!(exposition.samples.len() as u64, total, "{bound}");
    assert_eq!(bound.series(), total);
}

#[tokio::test]
async fn a_hostile_flood_reaches_the_ctms_bound_and_never_passes_it() {
    let builder = RequestMetricsLayer::builder()
        .route(Route::new("/a/{x}"))
        .route(Route::new("/b"))
        .record_unmatched_as("__unmatched__")
        .buckets([0.1, 1.0])
        .client_ids(ClientIds::from_request(|headers| headers.get(&CLIENT)?.to_str().ok()).max(3))
        .in_flight(true)
        .response_bytes(true);
    // Three route ids: two templates and the unmatched value.
    bound_is_reached_exactly(builder, &["/a/1", "/b", "/elsewhere/attacker-chosen"]).await;
}

#[tokio::test]
async fn a_hostile_flood_reaches_the_opentelemetry_bound_and_never_passes_it() {
    let builder = RequestMetricsLayer::builder()
        .profile(Profile::OpenTelemetry)
        .route(Route::new("/a/{x}"))
        .buckets([0.5])
        .client_ids(ClientIds::from_request(|headers| headers.get(&CLIENT)?.to_str().ok()).max(2));
    bound_is_reached_exactly(builder, &["/a/1"]).await;
}

#[test]
fn the_bound_follows_the_formula_of_the_crate_docs() {
    let bound = |builder: tower_prometheus::Builder| {
        builder
            .build(&Registry::new())
            .unwrap()
            .series_bound()
            .series()
    };
    // R templates, B buckets, C the client cap: R × 10 × 900 status codes,
    // R × 10 × 9 histograms of B + 3 lines, R × 10 × 9 × (C + 1) client
    // series, one unmatched count, 17 × R gRPC codes.
    let formula = |r: u64, b: u64, c: u64| {
        r * 10 * 900 + r * 10 * 9 * (b + 3) + r * 10 * 9 * (c + 1) + 1 + 17 * r
    };
    let routes = |n: usize| (0..n).map(|i| Route::new(format!("/r{i}")));
    assert_eq!(
        bound(RequestMetricsLayer::builder().routes(routes(12))),
        formula(12, 7, 100)
    );
    assert_eq!(
        bound(
            RequestMetricsLayer::builder()
                .routes(routes(3))
                .record_unmatched_as("__unmatched__")
                .buckets([1.0])
                .client_ids(ClientIds::new().max(0))
        ),
        formula(4, 1, 0)
    );
    // Each opt-in family adds one series per route id and method.
    assert_eq!(
        bound(
            RequestMetricsLayer::builder()
                .routes(routes(2))
                .in_flight(true)
                .response_bytes(true)
                .request_bytes()
                .no_request_bytes()
        ),
        formula(2, 7, 100) + 2 * 2 * 10
    );
}

#[test]
fn a_configuration_over_the_series_budget_is_refused_with_both_figures() {
    let builder = || {
        RequestMetricsLayer::builder()
            .route(Route::new("/ctms/{email_id}"))
            .client_ids(ClientIds::new().max(10))
    };
    let bound = builder()
        .build(&Registry::new())
        .unwrap()
        .series_bound()
        .series();
    let registry = Registry::new();
    let error = builder()
        .max_series(bound - 1)
        .build(&registry)
        .unwrap_err();
    assert!(
        matches!(
            error,
            BuildError::OutOfRange { setting: "series bound", value, max, .. }
                if value == bound as i64 && max == bound as i64 - 1
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("series bound is {bound}")) && message.contains("max_series"),
        "{message}"
    );
    // Nothing was registered, and the budget of the bound itself passes.
    assert!(registry.gather().is_empty());
    builder().max_series(bound).build(&registry).unwrap();
}

#[test]
fn the_bound_reads_as_its_total_and_each_family() {
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/a"))
        .buckets([1.0])
        .client_ids(ClientIds::new().max(1))
        .build(&Registry::new())
        .unwrap();
    assert_eq!(
        layer.series_bound().to_string(),
        "at most 9558 series (ctms_requests_duration_seconds: 360, \
         ctms_requests_total: 9000, ctms_api_requests_total: 180, \
         ctms_requests_unmatched_total: 1, ctms_grpc_requests_total: 17)"
    );
}

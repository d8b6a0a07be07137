//! The OpenTelemetry naming profile: the HTTP server conventions' names,
//! a duration histogram per status code with `error_type` on 5xx, the
//! advised buckets, and the same pre-initialisation and exactness as CTMS.

use std::convert::Infallible;

use http::{Method, Request, Response, StatusCode};
use prometheus::Registry;
use tower::{service_fn, Layer, ServiceExt};
use tower_prometheus::{
    ClientId, ClientIds, Format, MetricsExporter, Profile, RequestMetricsLayer, Route, TraceId,
};

use crate::support::{scrape_registry, Exposition};

fn otel_layer(registry: &Registry) -> RequestMetricsLayer {
    RequestMetricsLayer::builder()
        .profile(Profile::OpenTelemetry)
        .route(
            Route::new("/items/{id}")
                .methods([Method::GET])
                .statuses([200, 404])
                .with_client_series(),
        )
        .client_ids(ClientIds::new().known(["alice"]))
        .in_flight(true)
        .exemplars_from_request(TraceId::from_traceparent)
        .build(registry)
        .unwrap()
}

/// Sends a traced `method /items/1` that the inner service answers with
/// `status`, naming `client` if any.
async fn send_item(layer: &RequestMetricsLayer, method: &str, status: u16, client: Option<&str>) {
    let client = client.map(|id| ClientId::new(id.to_owned()));
    let service = layer.layer(service_fn(move |_: Request<()>| {
        let client = client.clone();
        async move {
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(client) = client {
                response.extensions_mut().insert(client);
            }
            Ok::<_, Infallible>(response)
        }
    }));
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri("/items/1")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap();
    service.oneshot(request).await.unwrap();
}

fn count(exposition: &Exposition, method: &str, code: &str) -> Option<f64> {
    let mut labels = vec![
        ("http_request_method", method),
        ("http_response_status_code", code),
        ("http_route", "/items/{id}"),
    ];
    if code.starts_with('5') {
        labels.push(("error_type", code));
    }
    exposition.value("http_server_request_duration_seconds_count", &labels)
}

#[tokio::test]
async fn series_are_named_as_the_convention_says_and_exist_at_zero() {
    let registry = Registry::new();
    let _layer = otel_layer(&registry);
    let exposition = scrape_registry(&registry);
    assert_eq!(count(&exposition, "GET", "200"), Some(0.0));
    assert_eq!(count(&exposition, "GET", "404"), Some(0.0));
    assert_eq!(
        exposition.value(
            "http_server_active_requests",
            &[
                ("http_request_method", "GET"),
                ("http_route", "/items/{id}")
            ]
        ),
        Some(0.0)
    );
    assert_eq!(
        exposition.value("http_server_unmatched_requests_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        exposition.value(
            "http_server_client_requests_total",
            &[
                ("client_id", "alice"),
                ("http_request_method", "GET"),
                ("http_response_status_class", "2xx"),
                ("http_route", "/items/{id}"),
            ]
        ),
        Some(0.0)
    );
    // The advised buckets, then +Inf.
    let bounds: Vec<String> = exposition
        .series("http_server_request_duration_seconds_bucket")
        .iter()
        .filter(|sample| sample.labels["http_response_status_code"] == "200")
        .map(|sample| sample.labels["le"].clone())
        .collect();
    assert_eq!(
        bounds.len(),
        tower_prometheus::limits::OTEL_BUCKETS.len() + 1,
        "{bounds:?}"
    );
    // Nothing under the CTMS names.
    let text = MetricsExporter::new(registry).render().unwrap();
    assert!(!text.contains("ctms_"), "{text}");
}

#[tokio::test]
async fn durations_are_split_by_status_code_with_error_type_on_5xx() {
    let registry = Registry::new();
    let layer = otel_layer(&registry);
    send_item(&layer, "GET", 200, Some("alice")).await;
    send_item(&layer, "GET", 200, None).await;
    send_item(&layer, "GET", 404, None).await;
    send_item(&layer, "GET", 503, None).await;
    send_item(&layer, "BREW", 200, None).await;
    let exposition = scrape_registry(&registry);
    assert_eq!(count(&exposition, "GET", "200"), Some(2.0));
    assert_eq!(count(&exposition, "GET", "404"), Some(1.0));
    assert_eq!(count(&exposition, "GET", "503"), Some(1.0));
    // Methods outside the known set are `_OTHER`.
    assert_eq!(count(&exposition, "_OTHER", "200"), Some(1.0));
    // Only 5xx carry error_type.
    for sample in exposition.series("http_server_request_duration_seconds_count") {
        let code = &sample.labels["http_response_status_code"];
        assert_eq!(
            sample.labels.get("error_type"),
            code.starts_with('5').then_some(code),
            "{sample:?}"
        );
    }
    // Each histogram's +Inf bucket equals its count: per code, not per family.
    let inf = exposition.value(
        "http_server_request_duration_seconds_bucket",
        &[
            ("http_request_method", "GET"),
            ("http_response_status_code", "404"),
            ("http_route", "/items/{id}"),
            ("le", "+Inf"),
        ],
    );
    assert_eq!(inf, Some(1.0));
    assert_eq!(
        exposition.value(
            "http_server_client_requests_total",
            &[
                ("client_id", "alice"),
                ("http_request_method", "GET"),
                ("http_response_status_class", "2xx"),
                ("http_route", "/items/{id}"),
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn exemplars_sit_on_the_status_codes_own_histogram() {
    let registry = Registry::new();
    // One bucket of an hour: the exemplar's bucket is known however slow
    // the machine.
    let layer = RequestMetricsLayer::builder()
        .profile(Profile::OpenTelemetry)
        .route(Route::new("/items/{id}"))
        .buckets([3600.0])
        .exemplars_from_request(TraceId::from_traceparent)
        .build(&registry)
        .unwrap();
    send_item(&layer, "GET", 404, None).await;
    let text = String::from_utf8(
        MetricsExporter::new(registry)
            .render_as(Format::OpenMetrics)
            .unwrap(),
    )
    .unwrap();
    let with_exemplar: Vec<&str> = text.lines().filter(|line| line.contains(" # {")).collect();
    assert_eq!(with_exemplar.len(), 1, "{text}");
    assert!(
        with_exemplar[0].starts_with(
            r#"http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="404",http_route="/items/{id}",le="3600.0"}"#
        ),
        "{}",
        with_exemplar[0]
    );
}

#[cfg(feature = "protobuf")]
#[tokio::test]
async fn each_status_codes_histogram_keeps_its_own_sum_and_native_buckets() {
    use crate::support::proto::MetricFamily;

    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .profile(Profile::OpenTelemetry)
        .route(Route::new("/slow"))
        .native_histograms(true)
        .build(&registry)
        .unwrap();
    // Each request takes at least 2 ms, so every sum has a floor.
    for status in [200, 200, 404] {
        let service = layer.layer(service_fn(move |_: Request<()>| async move {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(response)
        }));
        let request = Request::get("/slow").body(()).unwrap();
        service.oneshot(request).await.unwrap();
    }
    let bytes = MetricsExporter::new(registry)
        .render_as(Format::Protobuf)
        .unwrap();
    let mut rest = &bytes[..];
    let mut families: Vec<MetricFamily> = Vec::new();
    while !rest.is_empty() {
        families.push(prost::Message::decode_length_delimited(&mut rest).unwrap());
    }
    let durations = families
        .iter()
        .find(|f| f.name.as_deref() == Some("http_server_request_duration_seconds"))
        .unwrap();
    for (code, requests) in [("200", 2_u64), ("404", 1)] {
        let histogram = durations
            .metric
            .iter()
            .find(|metric| {
                metric.label.iter().any(|l| {
                    l.name.as_deref() == Some("http_response_status_code")
                        && l.value.as_deref() == Some(code)
                })
            })
            .and_then(|metric| metric.histogram.as_ref())
            .unwrap_or_else(|| panic!("no histogram for {code}"));
        assert_eq!(histogram.sample_count, Some(requests), "{code}");
        let sum = histogram.sample_sum.unwrap();
        assert!(
            sum >= 0.002 * requests as f64 && sum < 60.0,
            "{code}: sum {sum}"
        );
        // The native buckets hold this code's requests, none of the other's.
        let mut bucket = 0_i64;
        let mut in_buckets = histogram.zero_count.unwrap_or(0);
        for delta in &histogram.positive_delta {
            bucket += delta;
            in_buckets += u64::try_from(bucket).unwrap();
        }
        assert_eq!(in_buckets, requests, "{code}: {histogram:?}");
        assert_eq!(
            histogram.zero_count,
            Some(0),
            "2 ms is past the zero bucket"
        );
    }
}

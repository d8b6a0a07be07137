//! The workloads whose instructions `scripts/instructions.py` counts under
//! callgrind: `instructions CASE N` serves N requests (or N scrapes) of one
//! case and exits. Counting two runs with different N and dividing the
//! difference by the difference in N gives the instructions per request,
//! with start-up and set-up cancelled out; callgrind counts the same way
//! whatever else the machine does, so the figures can gate CI.
//!
//! Not a criterion benchmark: `cargo bench` builds it, `scripts/instructions.py`
//! runs it.

use std::{
    convert::Infallible,
    future::Future,
    hint::black_box,
    pin::pin,
    process::ExitCode,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use http::{Method, Request};
use prometheus::Registry;
use tower::{Layer, Service};
use tower_prometheus::{ClientId, ClientIds, Format, MetricsExporter, RequestMetricsLayer, Route};

#[path = "workload/mod.rs"]
mod workload;

use workload::{
    builder, Bare, NoWake, CLIENT_HEADER, MATCHED, SHORT_PARAMETER, TEMPLATES, UNMATCHED,
};

fn layer(registry: &Registry) -> RequestMetricsLayer {
    builder().build(registry).expect("valid configuration")
}

/// Serves `n` requests like `template` through `service`. The script counts
/// the instructions of `run_*` functions only.
#[inline(never)]
fn run_requests<S>(mut service: S, template: &Request<()>, n: u64)
where
    S: Service<Request<()>, Error = Infallible>,
{
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..n {
        let mut request = Request::new(());
        *request.method_mut() = template.method().clone();
        *request.uri_mut() = template.uri().clone();
        *request.headers_mut() = template.headers().clone();
        let _ = service.poll_ready(&mut cx);
        let mut future = pin!(service.call(request));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => drop(black_box(response)),
            _ => unreachable!("the inner service answers at once"),
        }
    }
}

/// A registry with about `series` pre-initialised series of the layer.
fn scrape_registry(series: usize) -> Registry {
    const STATUSES: [u16; 5] = [200, 201, 400, 404, 500];
    const METHODS: [Method; 5] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    // Per route: 5 methods × (5 codes + 3 histograms + 3 families × 2 clients).
    let routes = series / 70 + 1;
    let registry = Registry::new();
    RequestMetricsLayer::builder()
        .routes((0..routes).map(|route| {
            Route::new(format!("/api/v1/resource{route}/{{id}}"))
                .methods(METHODS)
                .statuses(STATUSES)
                .with_client_series()
        }))
        .client_ids(ClientIds::new().known(["client_a", "client_b"]))
        .build(&registry)
        .expect("valid configuration");
    registry
}

/// The same series as [`scrape_registry`] in the prometheus crate's own
/// vectors, for its `gather()` + `TextEncoder`.
fn prometheus_registry(series: usize) -> Registry {
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
    const STATUSES: [u16; 5] = [200, 201, 400, 404, 500];
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let routes = series / 70 + 1;
    let registry = Registry::new();
    let duration = HistogramVec::new(
        HistogramOpts::new("ctms_requests_duration_seconds", "Duration.")
            .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]),
        &["method", "path_template", "status_code_family"],
    )
    .expect("valid histogram");
    let total = IntCounterVec::new(
        Opts::new("ctms_requests_total", "Requests."),
        &[
            "method",
            "path_template",
            "status_code",
            "status_code_family",
        ],
    )
    .expect("valid counter");
    let api = IntCounterVec::new(
        Opts::new("ctms_api_requests_total", "API requests."),
        &["client_id", "method", "path_template", "status_code_family"],
    )
    .expect("valid counter");
    for route in 0..routes {
        let template = format!("/api/v1/resource{route}/{{id}}");
        for method in METHODS {
            for status in STATUSES {
                let family = format!("{}xx", status / 100);
                total.with_label_values(&[method, &template, &status.to_string(), &family]);
            }
            for family in ["2xx", "4xx", "5xx"] {
                duration.with_label_values(&[method, &template, family]);
                for client in ["client_a", "client_b"] {
                    api.with_label_values(&[client, method, &template, family]);
                }
            }
        }
    }
    registry.register(Box::new(duration)).expect("registered");
    registry.register(Box::new(total)).expect("registered");
    registry.register(Box::new(api)).expect("registered");
    registry
}

/// `gather()` + `TextEncoder` on `registry`, `n` times.
#[inline(never)]
fn run_prometheus_scrapes(registry: &Registry, n: u64) {
    use prometheus::{Encoder, TextEncoder};
    for _ in 0..n {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buffer)
            .expect("encodes");
        black_box(buffer);
    }
}

/// Renders `exporter` `n` times.
#[inline(never)]
fn run_scrapes(exporter: &MetricsExporter, format: Format, n: u64) {
    for _ in 0..n {
        black_box(exporter.render_as(format).expect("renders"));
    }
}

/// The parts of a request's cost that are not this crate's: one matchit
/// lookup among the same templates, two reads of the clock, and the
/// client id header looked up in a map that lacks it.
#[inline(never)]
fn run_parts(case: &str, n: u64) {
    let mut router = matchit::Router::new();
    for (id, template) in TEMPLATES.iter().enumerate() {
        router.insert(*template, id).expect("valid template");
    }
    let headers = http::HeaderMap::new();
    #[cfg(feature = "quanta")]
    let clock = quanta::Clock::new();
    for _ in 0..n {
        match case {
            "part_matchit_lookup" => {
                black_box(router.at(black_box(MATCHED)).map(|m| *m.value).ok());
            }
            "part_matchit_lookup_short" => {
                black_box(router.at(black_box(SHORT_PARAMETER)).map(|m| *m.value).ok());
            }
            "part_two_clock_reads" => {
                // As the layer reads it: raw, scaled once.
                #[cfg(feature = "quanta")]
                black_box(clock.delta_as_nanos(black_box(clock.raw()), clock.raw()));
                #[cfg(not(feature = "quanta"))]
                black_box(std::time::Instant::now().elapsed());
            }
            _ => {
                black_box(black_box(&headers).get(&CLIENT_HEADER));
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` runs every bench target with `--bench`: nothing to do.
    if args.iter().any(|arg| arg == "--bench") || args.is_empty() {
        return ExitCode::SUCCESS;
    }
    let (Some(case), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<u64>())) else {
        eprintln!("usage: instructions CASE N");
        return ExitCode::FAILURE;
    };
    let registry = Registry::new();
    let layer = layer(&registry);
    let with_header = {
        let mut request = Request::get(MATCHED).body(()).expect("valid request");
        request
            .headers_mut()
            .insert(CLIENT_HEADER.clone(), "test_client".parse().expect("valid"));
        request
    };
    let matched = Request::get(MATCHED).body(()).expect("valid request");
    let with_traceparent = {
        let mut request = Request::get(MATCHED).body(()).expect("valid request");
        request.headers_mut().insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        request
    };
    let short = Request::get(SHORT_PARAMETER)
        .body(())
        .expect("valid request");
    let unmatched = Request::get(UNMATCHED).body(()).expect("valid request");
    let in_response = Some(ClientId::from_static("test_client"));
    // Each layered case warms up with one request, so that its series exist.
    match case.as_str() {
        "bare" => run_requests(Bare { client: None }, &matched, n),
        "bare_client_header" => run_requests(Bare { client: None }, &with_header, n),
        "bare_client_response" => run_requests(
            Bare {
                client: in_response,
            },
            &matched,
            n,
        ),
        "bare_unmatched" => run_requests(Bare { client: None }, &unmatched, n),
        "bare_short" => run_requests(Bare { client: None }, &short, n),
        "bare_traceparent" => run_requests(Bare { client: None }, &with_traceparent, n),
        "matched" => run_requests(layer.layer(Bare { client: None }), &matched, n + 1),
        "matched_client_header" => {
            run_requests(layer.layer(Bare { client: None }), &with_header, n + 1)
        }
        "matched_client_response" => run_requests(
            layer.layer(Bare {
                client: in_response,
            }),
            &matched,
            n + 1,
        ),
        "unmatched" => run_requests(layer.layer(Bare { client: None }), &unmatched, n + 1),
        "matched_short" => run_requests(layer.layer(Bare { client: None }), &short, n + 1),
        // The exposition options: an exemplar from `traceparent` on every
        // request, and native histograms.
        "matched_exemplar" => {
            let layer = builder()
                .exemplars_from_request(tower_prometheus::TraceId::from_traceparent)
                .build(&Registry::new())
                .expect("valid configuration");
            run_requests(layer.layer(Bare { client: None }), &with_traceparent, n + 1)
        }
        "matched_otel" => {
            let layer = builder()
                .profile(tower_prometheus::Profile::OpenTelemetry)
                .build(&Registry::new())
                .expect("valid configuration");
            run_requests(layer.layer(Bare { client: None }), &matched, n + 1)
        }
        "matched_native" => {
            let layer = builder()
                .native_histograms(true)
                .build(&Registry::new())
                .expect("valid configuration");
            run_requests(layer.layer(Bare { client: None }), &matched, n + 1)
        }
        // The options that watch the response body.
        "matched_body_end" => {
            let layer = builder()
                .recording_point(tower_prometheus::RecordingPoint::BodyEnd)
                .build(&Registry::new())
                .expect("valid configuration");
            run_requests(layer.layer(Bare { client: None }), &matched, n + 1)
        }
        "matched_in_flight_bytes" => {
            let layer = builder()
                .in_flight(true)
                .response_bytes(true)
                .build(&Registry::new())
                .expect("valid configuration");
            run_requests(layer.layer(Bare { client: None }), &matched, n + 1)
        }
        "scrape_1k" | "scrape_10k" => {
            let series = if case == "scrape_1k" { 1_000 } else { 10_000 };
            run_scrapes(
                &MetricsExporter::new(scrape_registry(series)),
                Format::Text,
                n,
            );
        }
        "scrape_10k_openmetrics" => run_scrapes(
            &MetricsExporter::new(scrape_registry(10_000)),
            Format::OpenMetrics,
            n,
        ),
        #[cfg(feature = "protobuf")]
        "scrape_10k_protobuf" => run_scrapes(
            &MetricsExporter::new(scrape_registry(10_000)),
            Format::Protobuf,
            n,
        ),
        "scrape_10k_prometheus" => run_prometheus_scrapes(&prometheus_registry(10_000), n),
        "part_matchit_lookup"
        | "part_matchit_lookup_short"
        | "part_two_clock_reads"
        | "part_absent_header_lookup" => {
            run_parts(case, n);
        }
        other => {
            eprintln!("unknown case {other:?}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

//! The layer and the exporter over real HTTP on 127.0.0.1, in a plain hyper
//! server and in axum, with the exposition parsed back.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use http::{Method, Request, Response, StatusCode};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use prometheus::Registry;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_prometheus::{ClientId, ClientIds, MetricsExporter, RequestMetricsLayer, Route};

use crate::support::{get, request, scrape, send_raw, Exposition};

const TOTAL: &str = "ctms_requests_total";
const API: &str = "ctms_api_requests_total";
const COUNT: &str = "ctms_requests_duration_seconds_count";
const BUCKET: &str = "ctms_requests_duration_seconds_bucket";

/// Serves `service` with hyper on a fresh loopback port, one task per
/// connection, for as long as the test runtime lives.
async fn serve_with_hyper<S, B>(service: S) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A small app: `/metrics` is the exporter, everything else goes through
/// the layer to a handler that answers by path.
async fn app(registry: &Registry, layer: RequestMetricsLayer, wait: Arc<Wait>) -> SocketAddr {
    let exporter = MetricsExporter::new(registry.clone());
    let handler = layer.layer(service_fn(move |request: Request<Incoming>| {
        let wait = wait.clone();
        async move {
            let path = request.uri().path().to_owned();
            let mut response = Response::new(String::new());
            if path.starts_with("/wait") {
                wait.started.notify_one();
                wait.release.notified().await;
            }
            if let Some(id) = path.strip_prefix("/items/") {
                *response.status_mut() = if id == "missing" {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::OK
                };
            }
            if let Some(client) = request.headers().get("x-verified-client") {
                let client = client.to_str().unwrap().to_owned();
                response.extensions_mut().insert(ClientId::new(client));
            }
            Ok::<_, Infallible>(response)
        }
    }));
    serve_with_hyper(service_fn(move |request: Request<Incoming>| {
        let exporter = exporter.clone();
        let handler = handler.clone();
        async move {
            if request.uri().path() == "/metrics" {
                let response = exporter.oneshot(request).await;
                response.map(|response| response.map(Either::Left))
            } else {
                let response = handler.oneshot(request).await;
                response.map(|response| response.map(Either::Right))
            }
        }
    }))
    .await
}

/// Holds `/wait` requests: `started` when one is in the handler, which
/// then waits for `release`.
#[derive(Default)]
struct Wait {
    started: Notify,
    release: Notify,
}

/// A layer with the templates `/items/{id}` (with client series, the
/// client `known` pre-initialised) and `/wait`.
fn items_and_wait_layer(registry: &Registry) -> RequestMetricsLayer {
    RequestMetricsLayer::builder()
        .route(
            Route::new("/items/{id}")
                .methods([Method::GET])
                .statuses([200, 404])
                .with_client_series(),
        )
        .route(Route::new("/wait"))
        .client_ids(ClientIds::new().known(["known"]))
        .build(registry)
        .unwrap()
}

fn total_labels<'a>(method: &'a str, template: &'a str, code: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("method", method),
        ("path_template", template),
        ("status_code", code),
        ("status_code_family", family_of(code)),
    ]
}

fn family_of(code: &str) -> &'static str {
    match code.as_bytes()[0] {
        b'1' => "1xx",
        b'2' => "2xx",
        b'3' => "3xx",
        b'4' => "4xx",
        _ => "5xx",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_hyper_are_counted_exactly_per_series() {
    let registry = Registry::new();
    let addr = app(&registry, items_and_wait_layer(&registry), Arc::default()).await;

    let before = scrape(addr, "/metrics").await;
    assert_eq!(
        before.value(TOTAL, &total_labels("GET", "/items/{id}", "404")),
        Some(0.0)
    );
    assert_eq!(
        before.value(
            API,
            &[
                ("client_id", "known"),
                ("method", "GET"),
                ("path_template", "/items/{id}"),
                ("status_code_family", "2xx")
            ]
        ),
        Some(0.0)
    );

    for _ in 0..3 {
        assert_eq!(get(addr, "/items/1").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(addr, "/items/missing").await.status, 404);
    }
    let verified = request(
        addr,
        "GET",
        "/items/7",
        &[("x-verified-client", "known")],
        None,
    )
    .await;
    assert_eq!(verified.status, 200);
    request(addr, "POST", "/items/7", &[], Some("x")).await;
    // Not a template: answered, not recorded.
    get(addr, "/other").await;

    let after = scrape(addr, "/metrics").await;
    assert_eq!(
        after.value(TOTAL, &total_labels("GET", "/items/{id}", "200")),
        Some(4.0)
    );
    assert_eq!(
        after.value(TOTAL, &total_labels("GET", "/items/{id}", "404")),
        Some(2.0)
    );
    assert_eq!(
        after.value(TOTAL, &total_labels("POST", "/items/{id}", "200")),
        Some(1.0)
    );
    assert_eq!(after.sum(TOTAL, &[]), 7.0);
    let histogram = [
        ("method", "GET"),
        ("path_template", "/items/{id}"),
        ("status_code_family", "2xx"),
    ];
    assert_eq!(after.value(COUNT, &histogram), Some(4.0));
    let inf: Vec<_> = histogram.iter().copied().chain([("le", "+Inf")]).collect();
    assert_eq!(after.value(BUCKET, &inf), Some(4.0));
    let api = [
        ("client_id", "known"),
        ("method", "GET"),
        ("path_template", "/items/{id}"),
        ("status_code_family", "2xx"),
    ];
    assert_eq!(after.value(API, &api), Some(1.0));
    assert_eq!(after.sum(API, &[]), 1.0);
    assert_no_raw_paths(
        &after,
        &["/items/1", "/items/missing", "/items/7", "/other"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_histogram_count_equals_its_inf_bucket_and_its_requests() {
    let registry = Registry::new();
    let addr = app(&registry, items_and_wait_layer(&registry), Arc::default()).await;
    for i in 0..20 {
        get(addr, &format!("/items/{i}")).await;
    }
    let exposition = scrape(addr, "/metrics").await;
    for count in exposition.series(COUNT) {
        let mut labels: Vec<(&str, &str)> = count
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        labels.push(("le", "+Inf"));
        assert_eq!(
            exposition.value(BUCKET, &labels),
            Some(count.value),
            "{count:?}"
        );
        let requests = exposition.sum(
            TOTAL,
            &[
                ("method", &count.labels["method"]),
                ("path_template", &count.labels["path_template"]),
                ("status_code_family", &count.labels["status_code_family"]),
            ],
        );
        assert_eq!(requests, count.value, "{count:?}");
    }
    assert_eq!(exposition.sum(COUNT, &[]), 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_answers_get_and_head_with_a_versioned_type_and_405_otherwise() {
    let registry = Registry::new();
    let addr = app(&registry, items_and_wait_layer(&registry), Arc::default()).await;

    let response = get(addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let head = request(addr, "HEAD", "/metrics", &[], None).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), response.header("content-type"));

    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let response = request(addr, method, "/metrics", &[], Some("")).await;
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"));
    }
}

#[cfg(feature = "gzip")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_that_accepts_gzip_gets_the_same_exposition_gzipped() {
    use std::io::Read;

    let registry = Registry::new();
    let addr = app(&registry, items_and_wait_layer(&registry), Arc::default()).await;
    assert_eq!(get(addr, "/items/1").await.status, 200);

    let plain = get(addr, "/metrics").await;
    assert_eq!(plain.header("content-encoding"), None);
    let accept = [("Accept-Encoding", "gzip")];
    let gzipped = request(addr, "GET", "/metrics", &accept, None).await;
    assert_eq!(gzipped.status, 200);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gzipped.header("vary"), Some("accept, accept-encoding"));
    assert!(
        gzipped.raw_body.len() < plain.raw_body.len(),
        "{} bytes gzipped, {} plain",
        gzipped.raw_body.len(),
        plain.raw_body.len()
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gzipped.raw_body[..])
        .read_to_string(&mut text)
        .expect("the body is gzip");
    assert_eq!(text, plain.body);
    let exposition = crate::support::parse(&text);
    assert_eq!(
        exposition.sum("ctms_requests_total", &[("path_template", "/items/{id}")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_at_once_are_counted_exactly() {
    let registry = Registry::new();
    let addr = app(&registry, items_and_wait_layer(&registry), Arc::default()).await;
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            tokio::spawn(async move {
                for i in 0..40 {
                    let path = if (task + i) % 4 == 0 {
                        "/items/missing".to_owned()
                    } else {
                        format!("/items/{i}")
                    };
                    let client = format!("client-{}", task % 3);
                    let response =
                        request(addr, "GET", &path, &[("x-verified-client", &client)], None).await;
                    assert!(matches!(response.status, 200 | 404));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let exposition = scrape(addr, "/metrics").await;
    let missing = (0..16)
        .flat_map(|task| (0..40).map(move |i| (task + i) % 4 == 0))
        .filter(|m| *m)
        .count() as f64;
    assert_eq!(
        exposition.value(TOTAL, &total_labels("GET", "/items/{id}", "404")),
        Some(missing)
    );
    assert_eq!(
        exposition.value(TOTAL, &total_labels("GET", "/items/{id}", "200")),
        Some(640.0 - missing)
    );
    assert_eq!(exposition.sum(COUNT, &[]), 640.0);
    for client in 0..3 {
        let id = format!("client-{client}");
        let tasks = (0..16).filter(|t| t % 3 == client).count() as f64;
        assert_eq!(
            exposition.sum(API, &[("client_id", &id)]),
            tasks * 40.0,
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_before_the_response_is_counted_as_499_once() {
    let registry = Registry::new();
    let wait = Arc::new(Wait::default());
    let addr = app(&registry, items_and_wait_layer(&registry), wait.clone()).await;

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    wait.started.notified().await;
    assert_eq!(
        scrape(addr, "/metrics")
            .await
            .sum(TOTAL, &[("path_template", "/wait")]),
        0.0
    );
    // Hang up while the handler waits; the server notices and drops the
    // response future at its own pace, so poll the scrape, bounded.
    drop(stream);
    let labels = total_labels("GET", "/wait", "499");
    let exposition = scrape_until(addr, |e| e.value(TOTAL, &labels).is_some()).await;
    assert_eq!(exposition.value(TOTAL, &labels), Some(1.0));
    assert_eq!(exposition.sum(TOTAL, &[("path_template", "/wait")]), 1.0);
    // Releasing the handler now changes nothing: it was dropped.
    wait.release.notify_waiters();
    let again = scrape(addr, "/metrics").await;
    assert_eq!(again.sum(TOTAL, &[("path_template", "/wait")]), 1.0);
}

/// Scrapes until `done` holds, for at most ten seconds.
async fn scrape_until(addr: SocketAddr, done: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exposition = scrape(addr, "/metrics").await;
        if done(&exposition) {
            return exposition;
        }
        assert!(Instant::now() < deadline, "condition not met within 10 s");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_methods_paths_and_client_ids_stay_within_the_bound() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/items/{id}"))
        .client_ids(ClientIds::new().max(5).max_len(16))
        .build(&registry)
        .unwrap();
    let addr = app(&registry, layer, Arc::default()).await;
    for i in 0..60 {
        let method = format!("X{i}");
        let path = format!("/items/{}", "z".repeat(i + 1));
        let client = format!("attacker-{i}");
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nx-verified-client: {client}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        send_raw(addr, &raw).await.unwrap();
        get(addr, &format!("/random/{i}")).await;
    }
    let exposition = scrape(addr, "/metrics").await;
    assert_eq!(exposition.series(TOTAL).len(), 1);
    assert_eq!(
        exposition.value(TOTAL, &total_labels("OTHER", "/items/{id}", "200")),
        Some(60.0)
    );
    // Five ids got slots; everyone else shares one overflow value.
    let api = exposition.series(API);
    assert_eq!(api.len(), 6, "{api:?}");
    let overflow = [
        ("client_id", "__other__"),
        ("method", "OTHER"),
        ("path_template", "/items/{id}"),
        ("status_code_family", "2xx"),
    ];
    assert_eq!(exposition.value(API, &overflow), Some(55.0));
    assert_no_raw_paths(&exposition, &["zz", "/random", "X1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_with_quotes_backslashes_and_newlines_round_trip() {
    let registry = Registry::new();
    let addr = app(&registry, items_and_wait_layer(&registry), Arc::default()).await;
    // Header values cannot carry a newline, so that id comes from the app.
    let odd = [
        "we\"ird",
        "back\\slash",
        "both\\\"end\\",
        "spaces and = signs,{}",
    ];
    for id in odd {
        request(addr, "GET", "/items/1", &[("x-verified-client", id)], None).await;
    }
    let exposition = scrape(addr, "/metrics").await;
    for id in odd {
        assert_eq!(exposition.sum(API, &[("client_id", id)]), 1.0, "{id:?}");
    }
}

#[tokio::test]
async fn control_characters_in_a_client_id_make_it_the_overflow_value() {
    // A known id cannot have them: it is refused at build.
    let error = RequestMetricsLayer::builder()
        .route(Route::new("/"))
        .client_ids(ClientIds::new().known(["line\nbreak"]))
        .build(&Registry::new())
        .unwrap_err();
    assert!(matches!(
        error,
        tower_prometheus::BuildError::InvalidClientId { .. }
    ));

    // One that arrives with a response is recorded as `__other__`, as is
    // the empty id: tools that normalise line endings would corrupt the
    // exposition otherwise.
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(
            Route::new("/")
                .methods([Method::GET])
                .statuses([200])
                .with_client_series(),
        )
        .build(&registry)
        .unwrap();
    let service = layer.layer(service_fn(|request: Request<String>| async move {
        let mut response = Response::new(String::new());
        let id = match request.uri().query() {
            Some("lf") => "line\nbreak",
            Some("cr") => "carriage\rreturn",
            Some("nul") => "nul\0",
            _ => "",
        };
        response.extensions_mut().insert(ClientId::new(id));
        Ok::<_, Infallible>(response)
    }));
    for query in ["lf", "cr", "nul", "empty"] {
        let request = Request::get(format!("/?{query}"))
            .body(String::new())
            .unwrap();
        service.clone().oneshot(request).await.unwrap();
    }
    let text = MetricsExporter::new(registry).render().unwrap();
    assert!(
        !text.contains("break") && !text.contains("carriage"),
        "{text}"
    );
    let exposition = crate::support::parse(&text);
    assert_eq!(
        exposition.sum(API, &[("client_id", "__other__")]),
        4.0,
        "{text}"
    );
    assert_eq!(exposition.series(API).len(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_mounts_as_an_axum_route_service() {
    let registry = Registry::new();
    let layer = items_and_wait_layer(&registry);
    let router = axum::Router::new()
        .route("/items/{id}", axum::routing::get(|| async { "item" }))
        .route_service("/metrics", MetricsExporter::new(registry.clone()))
        .layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    assert_eq!(get(addr, "/items/abc").await.status, 200);
    assert_eq!(
        request(addr, "DELETE", "/items/abc", &[], None)
            .await
            .status,
        405
    );
    assert_eq!(get(addr, "/nowhere").await.status, 404);
    let response = get(addr, "/metrics").await;
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let exposition = crate::support::parse(&response.body);
    assert_eq!(
        exposition.value(TOTAL, &total_labels("GET", "/items/{id}", "200")),
        Some(1.0)
    );
    assert_eq!(
        exposition.value(TOTAL, &total_labels("DELETE", "/items/{id}", "405")),
        Some(1.0)
    );
    assert_eq!(exposition.sum(TOTAL, &[]), 2.0);
}

fn assert_no_raw_paths(exposition: &Exposition, raw: &[&str]) {
    for sample in &exposition.samples {
        for value in sample.labels.values() {
            for raw in raw {
                assert!(
                    !value.contains(raw),
                    "raw value {raw:?} leaked into {sample:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sent_events_stream_is_timed_to_its_end() {
    use axum::response::sse::{Event, Sse};
    use tokio_stream::wrappers::ReceiverStream;
    use tower_prometheus::RecordingPoint;

    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/events").methods([Method::GET]).statuses([200]))
        .recording_point(RecordingPoint::BodyEnd)
        .in_flight(true)
        .build(&registry)
        .unwrap();
    let router = axum::Router::new()
        .route(
            "/events",
            axum::routing::get(|| async {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tokio::spawn(async move {
                    for i in 0..3 {
                        // The stream's pace: the duration under test.
                        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                        let event = Ok::<_, Infallible>(Event::default().data(i.to_string()));
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                });
                Sse::new(ReceiverStream::new(rx))
            }),
        )
        .route_service("/metrics", MetricsExporter::new(registry.clone()));
    // The whole Router wrapped, served by `axum::serve`, as the crate docs
    // show: `axum::serve` takes axum's own body type.
    let app = tower::ServiceBuilder::new()
        .map_response(axum::response::IntoResponse::into_response)
        .layer(layer)
        .service(router);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
        )
        .await
    });

    let started = std::time::Instant::now();
    let response = get(addr, "/events").await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(response.status, 200);
    assert!(response.body.contains("data: 2"), "{}", response.body);

    let exposition = scrape_until(addr, |e| {
        e.sum(
            "ctms_requests_duration_seconds_count",
            &[("path_template", "/events")],
        ) >= 1.0
    })
    .await;
    let labels = [("path_template", "/events")];
    assert_eq!(exposition.sum("ctms_requests_total", &labels), 1.0);
    let duration = exposition.sum("ctms_requests_duration_seconds_sum", &labels);
    assert!(
        (0.45..=took).contains(&duration),
        "the stream took {took} s to read, recorded as {duration} s"
    );
    assert_eq!(
        exposition.value(
            "ctms_requests_in_flight",
            &[("method", "GET"), ("path_template", "/events")]
        ),
        Some(0.0)
    );
}

/// A gRPC server stream that the server ends with an error status in its
/// trailers, served by hand over HTTP/2 and called by tonic's own client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_stream_ended_by_the_server_with_an_error_is_recorded_with_it() {
    use bytes::{BufMut, BytesMut};
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use prost::Message;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest, HealthCheckResponse};

    const WATCH: &str = "/grpc.health.v1.Health/Watch";
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new(WATCH).methods([Method::POST]).statuses([200]))
        .build(&registry)
        .unwrap();
    // One message, then `grpc-status: 13` (INTERNAL) in the trailers.
    let service = layer.layer(service_fn(|_: Request<Incoming>| async {
        let message = HealthCheckResponse { status: 1 }.encode_to_vec();
        let mut framed = BytesMut::with_capacity(5 + message.len());
        framed.put_u8(0);
        framed.put_u32(message.len() as u32);
        framed.put_slice(&message);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("13"));
        trailers.insert("grpc-message", http::HeaderValue::from_static("boom"));
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(framed.freeze())),
            Ok(Frame::trailers(trailers)),
        ];
        let mut response = Response::new(StreamBody::new(tokio_stream::iter(frames)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        Ok::<_, Infallible>(response)
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut stream = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "ctms.Contacts".into(),
        })
        .await
        .expect("the stream starts")
        .into_inner();
    let first = stream.message().await.expect("a message").expect("one");
    assert_eq!(first.status, 1);
    let error = stream
        .message()
        .await
        .expect_err("the server ends it with an error");
    assert_eq!(error.code(), tonic::Code::Internal);

    let text = MetricsExporter::new(registry).render().unwrap();
    let exposition = crate::support::parse(&text);
    let grpc = |code: &str| {
        exposition.sum(
            "ctms_grpc_requests_total",
            &[("grpc_method", "Watch"), ("grpc_code", code)],
        )
    };
    assert_eq!(grpc("INTERNAL"), 1.0, "{text}");
    assert_eq!(grpc("OK"), 0.0);
    assert_eq!(
        exposition.sum(
            "ctms_requests_total",
            &[("path_template", WATCH), ("status_code", "500")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_bytes_over_http_are_the_bytes_carried() {
    use http_body_util::BodyExt;

    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/echo").methods([Method::POST]).statuses([200]))
        .response_bytes(true)
        .request_bytes()
        .build(&registry)
        .unwrap();
    let echo = layer.layer(service_fn(
        |request: Request<tower_prometheus::RequestBody<Incoming>>| async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            // Answers twice what it read.
            let answer = format!("{0}{0}", String::from_utf8_lossy(&body));
            Ok::<_, Infallible>(Response::new(answer))
        },
    ));
    let exporter = MetricsExporter::new(registry.clone());
    let addr = serve_with_hyper(service_fn(move |request: Request<Incoming>| {
        let exporter = exporter.clone();
        let echo = echo.clone();
        async move {
            if request.uri().path() == "/metrics" {
                let response = exporter.oneshot(request).await;
                response.map(|response| response.map(Either::Left))
            } else {
                let response = echo.oneshot(request).await;
                response.map(|response| response.map(Either::Right))
            }
        }
    }))
    .await;
    for body in ["hello", "a body of 20 bytes..", ""] {
        let response = request(addr, "POST", "/echo", &[], Some(body)).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body.len(), 2 * body.len());
    }
    let exposition = scrape(addr, "/metrics").await;
    let labels = [("method", "POST"), ("path_template", "/echo")];
    assert_eq!(
        exposition.value("ctms_request_body_bytes_total", &labels),
        Some(25.0)
    );
    assert_eq!(
        exposition.value("ctms_response_body_bytes_total", &labels),
        Some(50.0)
    );
}

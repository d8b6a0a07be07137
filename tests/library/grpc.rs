//! gRPC calls over real HTTP/2 on 127.0.0.1, made by tonic's client to a
//! server that answers each method with a chosen status, the way tonic
//! does; grpc-web calls over HTTP/1.1. The exposition is scraped over HTTP
//! and parsed back.

use std::{convert::Infallible, net::SocketAddr};

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header::CONTENT_TYPE, HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::{Either, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use prometheus::Registry;
use prost::Message;
use tokio::net::TcpListener;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::{service_fn, Layer, ServiceExt};
use tower_prometheus::{MetricsExporter, RequestMetricsLayer, Route};

use crate::support::{request, scrape, Exposition};

const CATALOG: &str = "/demo.v1.Catalog/{method}";
const CATCH_ALL: &str = "/{*path}";
const GRPC: &str = "ctms_grpc_requests_total";
const TOTAL: &str = "ctms_requests_total";

type Frames = StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// The answer of the gRPC server to a method: its `grpc-status` in the
/// response headers (an immediate error, "trailers-only", as tonic sends a
/// handler's `Err`), or a message, or nothing, then the status in the
/// trailers.
fn grpc_answer(method: &str) -> Response<Frames> {
    let (head, message, trailer) = match method {
        "GetItem" => (Some("5"), false, None),
        "Cancel" => (Some("7"), false, None),
        "PutItem" => (None, false, Some("3")),
        _ => (None, true, Some("0")),
    };
    let mut frames = Vec::new();
    if message {
        let message = HealthCheckResponse { status: 1 }.encode_to_vec();
        let mut framed = BytesMut::with_capacity(5 + message.len());
        framed.put_u8(0);
        framed.put_u32(u32::try_from(message.len()).unwrap());
        framed.put_slice(&message);
        frames.push(Ok(Frame::data(framed.freeze())));
    }
    if let Some(code) = trailer {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static(code));
        frames.push(Ok(Frame::trailers(trailers)));
    }
    let mut response = Response::new(StreamBody::new(tokio_stream::iter(frames)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    if let Some(code) = head {
        headers.insert("grpc-status", HeaderValue::from_static(code));
        headers.insert("grpc-message", HeaderValue::from_static("refused"));
    }
    response
}

/// A grpc-web answer: HTTP 200 and `NOT_FOUND` in the trailer frame at the
/// end of the body (flag `0x80`), base64-encoded for `grpc-web-text`.
fn grpc_web_answer(content_type: &HeaderValue) -> Response<Frames> {
    let trailer = b"grpc-status:5\r\ngrpc-message:no such item\r\n";
    let mut framed = BytesMut::new();
    framed.put_u8(0x80);
    framed.put_u32(u32::try_from(trailer.len()).unwrap());
    framed.put_slice(trailer);
    let body = if content_type
        .as_bytes()
        .starts_with(b"application/grpc-web-text")
    {
        Bytes::from(base64::engine::general_purpose::STANDARD.encode(&framed))
    } else {
        framed.freeze()
    };
    let frames = vec![Ok(Frame::data(body))];
    let mut response = Response::new(StreamBody::new(tokio_stream::iter(frames)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, content_type.clone());
    response
}

/// Serves HTTP/1.1 and HTTP/2 on a fresh loopback port: `/metrics` is the
/// exporter, every other path goes through the layer to a server that
/// answers gRPC and grpc-web calls by method name.
async fn serve(registry: &Registry, layer: &RequestMetricsLayer) -> SocketAddr {
    let exporter = MetricsExporter::new(registry.clone());
    let calls = layer.layer(service_fn(|request: Request<Incoming>| async move {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let web = request
            .headers()
            .get(CONTENT_TYPE)
            .filter(|value| value.as_bytes().starts_with(b"application/grpc-web"));
        Ok::<_, Infallible>(match web {
            Some(content_type) => grpc_web_answer(content_type),
            None => grpc_answer(method),
        })
    }));
    let app = service_fn(move |request: Request<Incoming>| {
        let exporter = exporter.clone();
        let calls = calls.clone();
        async move {
            if request.uri().path() == "/metrics" {
                let response = exporter.oneshot(request).await;
                response.map(|response| response.map(Either::Left))
            } else {
                let response = calls.oneshot(request).await;
                response.map(|response| response.map(Either::Right))
            }
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(app.clone());
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
    addr
}

/// Calls `path` with tonic's client; the code it answered.
async fn call(channel: &tonic::transport::Channel, path: &'static str) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let request = tonic::Request::new(HealthCheckRequest {
        service: "demo".into(),
    });
    let path = http::uri::PathAndQuery::from_static(path);
    match grpc.unary(request, path, codec).await {
        Ok(response) => {
            assert_eq!(response.into_inner().status, 1);
            tonic::Code::Ok
        }
        Err(status) => status.code(),
    }
}

/// The `ctms_requests_total` of POSTs to `template` answered `status`, 0
/// if there is no such series.
fn post_total(exposition: &Exposition, template: &str, status: &str) -> f64 {
    exposition.sum(
        TOTAL,
        &[
            ("method", "POST"),
            ("path_template", template),
            ("status_code", status),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_errors_on_a_parameterised_template_are_recorded_with_their_status() {
    let registry = Registry::new();
    // Neither template is a gRPC route: no gRPC series before the calls.
    let layer = RequestMetricsLayer::builder()
        .route(Route::new(CATALOG).methods([Method::POST]).statuses([200]))
        .route(Route::new(CATCH_ALL))
        .build(&registry)
        .unwrap();
    let addr = serve(&registry, &layer).await;
    let before = scrape(addr, "/metrics").await;
    assert!(before.series(GRPC).is_empty(), "{:?}", before.series(GRPC));

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for (path, code) in [
        ("/demo.v1.Catalog/GetItem", tonic::Code::NotFound),
        ("/demo.v1.Catalog/GetItem", tonic::Code::NotFound),
        ("/demo.v1.Catalog/PutItem", tonic::Code::InvalidArgument),
        ("/demo.v1.Catalog/ListItems", tonic::Code::Ok),
        ("/demo.v1.Orders/Cancel", tonic::Code::PermissionDenied),
    ] {
        assert_eq!(call(&channel, path).await, code, "{path}");
    }

    let exposition = scrape(addr, "/metrics").await;
    // The CTMS families: the codes' HTTP equivalents, not HTTP's 200.
    assert_eq!(post_total(&exposition, CATALOG, "404"), 2.0);
    assert_eq!(post_total(&exposition, CATALOG, "400"), 1.0);
    assert_eq!(
        post_total(&exposition, CATALOG, "200"),
        1.0,
        "ListItems only"
    );
    assert_eq!(
        exposition.sum(TOTAL, &[("path_template", CATALOG)]),
        4.0,
        "no other status"
    );
    assert_eq!(post_total(&exposition, CATCH_ALL, "403"), 1.0);
    assert_eq!(
        exposition.sum(
            "ctms_requests_duration_seconds_count",
            &[("path_template", CATALOG), ("status_code_family", "4xx")]
        ),
        3.0
    );

    // The gRPC family: one series per code for each template, the method
    // label the template's own text, whatever methods were called.
    let grpc = |service: &str, method: &str, code: &str| {
        exposition.value(
            GRPC,
            &[
                ("grpc_code", code),
                ("grpc_method", method),
                ("grpc_service", service),
            ],
        )
    };
    let catalog = |code| grpc("demo.v1.Catalog", "{method}", code);
    assert_eq!(catalog("NOT_FOUND"), Some(2.0));
    assert_eq!(catalog("INVALID_ARGUMENT"), Some(1.0));
    assert_eq!(catalog("OK"), Some(1.0));
    assert_eq!(catalog("UNAVAILABLE"), Some(0.0));
    assert_eq!(grpc(CATCH_ALL, "", "PERMISSION_DENIED"), Some(1.0));
    assert_eq!(grpc(CATCH_ALL, "", "OK"), Some(0.0));
    assert_eq!(exposition.series(GRPC).len(), 2 * 17);
    assert_eq!(exposition.sum(GRPC, &[]), 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_calls_are_recorded_by_their_http_status() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new(CATALOG).grpc())
        .build(&registry)
        .unwrap();
    let addr = serve(&registry, &layer).await;
    let content_types = [
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/grpc-web-text",
    ];
    for content_type in content_types {
        let headers = [("content-type", content_type), ("x-grpc-web", "1")];
        let response = request(addr, "POST", "/demo.v1.Catalog/GetItem", &headers, None).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some(content_type));
        assert!(!response.raw_body.is_empty(), "the status is in the body");
    }

    let exposition = scrape(addr, "/metrics").await;
    // Recorded at the response head with HTTP's 200, as any HTTP request:
    // the NOT_FOUND inside the body is not read.
    assert_eq!(post_total(&exposition, CATALOG, "200"), 3.0);
    assert_eq!(post_total(&exposition, CATALOG, "404"), 0.0);
    assert_eq!(exposition.sum(GRPC, &[]), 0.0, "not counted as gRPC calls");
    assert_eq!(exposition.series(GRPC).len(), 17, "the route's zeros");
}

//! Exemplars and native histograms through the public API: recorded by the
//! layer, shown in OpenMetrics and protobuf, absent from text 0.0.4.

use std::convert::Infallible;

#[cfg(feature = "protobuf")]
use crate::support::proto::{Histogram, MetricFamily};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use prometheus::Registry;
use tower::{service_fn, Layer, ServiceExt};
use tower_prometheus::{BuildError, Format, MetricsExporter, RequestMetricsLayer, Route, TraceId};

const TRACE_A: &str = "0af7651916cd43dd8448eb211c80319c";
const TRACE_B: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn traceparent(trace: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("00-{trace}-b7ad6b7169203331-01")).unwrap()
}

async fn send_traced(layer: &RequestMetricsLayer, path: &str, trace: Option<&str>, status: u16) {
    let service = layer.layer(service_fn(move |_: Request<()>| async move {
        let mut response = Response::new(String::new());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        Ok::<_, Infallible>(response)
    }));
    let mut request = Request::get(path).body(()).unwrap();
    if let Some(trace) = trace {
        request
            .headers_mut()
            .insert("traceparent", traceparent(trace));
    }
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), status);
}

#[cfg(feature = "protobuf")]
fn decode(bytes: &[u8]) -> Vec<MetricFamily> {
    let mut rest = bytes;
    let mut families = Vec::new();
    while !rest.is_empty() {
        families.push(prost::Message::decode_length_delimited(&mut rest).unwrap());
    }
    families
}

#[cfg(feature = "protobuf")]
/// The duration histogram of `template` with status family `family`.
fn histogram(families: &[MetricFamily], template: &str, family: &str) -> Histogram {
    families
        .iter()
        .filter(|f| f.name.as_deref() == Some("ctms_requests_duration_seconds"))
        .flat_map(|f| &f.metric)
        .find(|metric| {
            let label = |name: &str| {
                metric
                    .label
                    .iter()
                    .find(|l| l.name.as_deref() == Some(name))
                    .and_then(|l| l.value.clone())
            };
            label("path_template").as_deref() == Some(template)
                && label("status_code_family").as_deref() == Some(family)
        })
        .and_then(|metric| metric.histogram.clone())
        .unwrap_or_else(|| panic!("no histogram for {template} {family}"))
}

fn openmetrics(registry: &Registry) -> String {
    let bytes = MetricsExporter::new(registry.clone())
        .render_as(Format::OpenMetrics)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// A layer whose first bucket holds any request however slow the machine
/// (an hour), so that which bucket an exemplar lands in is known.
fn traced_layer(registry: &Registry) -> RequestMetricsLayer {
    RequestMetricsLayer::builder()
        .route(Route::new("/items/{id}"))
        .buckets([3600.0, 7200.0])
        .exemplars_from_request(TraceId::from_traceparent)
        .build(registry)
        .unwrap()
}

#[tokio::test]
async fn the_latest_trace_is_the_exemplar_of_its_bucket_and_its_counter() {
    let registry = Registry::new();
    let layer = traced_layer(&registry);
    send_traced(&layer, "/items/1", Some(TRACE_A), 200).await;
    send_traced(&layer, "/items/2", Some(TRACE_B), 200).await;
    send_traced(&layer, "/items/3", None, 200).await;
    send_traced(&layer, "/items/4", Some(TRACE_A), 404).await;
    let text = openmetrics(&registry);

    let line = |prefix: &str| -> &str {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix}:\n{text}"))
    };
    // A request without a trace leaves the last exemplar in place.
    let ok =
        line(r#"ctms_requests_total{method="GET",path_template="/items/{id}",status_code="200""#);
    assert!(
        ok.contains(&format!(r#" # {{trace_id="{TRACE_B}"}} 1.0 "#)),
        "{ok}"
    );
    let not_found =
        line(r#"ctms_requests_total{method="GET",path_template="/items/{id}",status_code="404""#);
    assert!(not_found.contains(TRACE_A), "{not_found}");
    let fast = line(
        r#"ctms_requests_duration_seconds_bucket{method="GET",path_template="/items/{id}",status_code_family="2xx",le="3600.0"}"#,
    );
    assert!(
        fast.starts_with(&format!(
            "{} 3.0 # {{trace_id=\"{TRACE_B}\"}} ",
            fast.split(' ').next().unwrap()
        )),
        "{fast}"
    );
    // The slower bucket holds no request of its own, so no exemplar.
    let slow = line(
        r#"ctms_requests_duration_seconds_bucket{method="GET",path_template="/items/{id}",status_code_family="2xx",le="7200.0"}"#,
    );
    assert!(!slow.contains('#'), "{slow}");
}

#[tokio::test]
async fn a_request_slower_than_every_bound_has_its_exemplar_on_the_inf_bucket() {
    let registry = Registry::new();
    // Every request takes more than a nanosecond: all land in `+Inf`.
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/items/{id}"))
        .buckets([1e-9])
        .exemplars_from_request(TraceId::from_traceparent)
        .build(&registry)
        .unwrap();
    send_traced(&layer, "/items/1", Some(TRACE_A), 200).await;
    let text = openmetrics(&registry);
    let inf = text
        .lines()
        .find(|line| line.contains(r#"status_code_family="2xx",le="+Inf"}"#))
        .unwrap_or_else(|| panic!("no +Inf bucket:\n{text}"));
    assert!(
        inf.contains(&format!(r#"}} 1.0 # {{trace_id="{TRACE_A}"}} "#)),
        "{inf}"
    );
    let first = text
        .lines()
        .find(|line| line.contains(r#"status_code_family="2xx",le="1e-9"}"#))
        .unwrap_or_else(|| panic!("no first bucket:\n{text}"));
    assert!(!first.contains('#'), "{first}");
}

#[cfg(feature = "protobuf")]
#[tokio::test]
async fn exemplars_are_in_protobuf_too_and_never_in_text() {
    let registry = Registry::new();
    let layer = traced_layer(&registry);
    send_traced(&layer, "/items/1", Some(TRACE_A), 200).await;
    let exporter = MetricsExporter::new(registry);
    let families = decode(&exporter.render_as(Format::Protobuf).unwrap());
    let bucket = &histogram(&families, "/items/{id}", "2xx").bucket[0];
    let exemplar = bucket
        .exemplar
        .as_ref()
        .expect("an exemplar on the first bucket");
    assert_eq!(exemplar.label[0].name.as_deref(), Some("trace_id"));
    assert_eq!(exemplar.label[0].value.as_deref(), Some(TRACE_A));
    let seconds = exemplar.value.unwrap();
    assert!((0.0..3600.0).contains(&seconds), "{seconds}");
    let text = exporter.render().unwrap();
    assert!(!text.contains(TRACE_A), "{text}");
}

#[tokio::test]
async fn without_the_hook_there_are_no_exemplars_even_with_traceparent() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/items/{id}"))
        .build(&registry)
        .unwrap();
    send_traced(&layer, "/items/1", Some(TRACE_A), 200).await;
    let text = openmetrics(&registry);
    assert!(!text.contains(" # {"), "{text}");
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn a_panicking_exemplar_reader_is_recorded_as_500() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/items/{id}"))
        .exemplars_from_request(|_: &HeaderMap| panic!("reader bug"))
        .build(&registry)
        .unwrap();
    let service = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    let outcome = tokio::spawn(service.oneshot(Request::get("/items/1").body(()).unwrap())).await;
    assert!(outcome.is_err(), "the reader's panic propagates");
    let text = MetricsExporter::new(registry).render().unwrap();
    assert!(
        text.contains(r#"ctms_requests_total{method="GET",path_template="/items/{id}",status_code="500",status_code_family="5xx"} 1"#),
        "{text}"
    );
}

#[cfg(feature = "protobuf")]
#[tokio::test]
async fn native_histograms_count_every_request_next_to_the_classic_buckets() {
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/items/{id}"))
        .native_histograms(true)
        .build(&registry)
        .unwrap();
    for _ in 0..5 {
        send_traced(&layer, "/items/1", None, 200).await;
    }
    // A slower request lands in a later native bucket.
    let slow = layer.layer(service_fn(|_: Request<()>| async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        Ok::<_, Infallible>(Response::new(String::new()))
    }));
    slow.oneshot(Request::get("/items/1").body(()).unwrap())
        .await
        .unwrap();
    let families = decode(
        &MetricsExporter::new(registry)
            .render_as(Format::Protobuf)
            .unwrap(),
    );
    let histogram = histogram(&families, "/items/{id}", "2xx");
    assert_eq!(histogram.sample_count, Some(6));
    assert_eq!(histogram.schema, Some(3));
    assert_eq!(histogram.zero_threshold, Some(2f64.powi(-20)));
    // Absolute counts from the deltas, and the keys from the spans.
    let mut counts = Vec::new();
    let mut running = 0;
    for delta in &histogram.positive_delta {
        running += delta;
        counts.push(running);
    }
    let in_buckets: i64 = counts.iter().sum();
    assert_eq!(in_buckets as u64 + histogram.zero_count.unwrap(), 6);
    let mut keys = Vec::new();
    let mut next = 0;
    for span in &histogram.positive_span {
        next += span.offset.unwrap();
        for _ in 0..span.length.unwrap() {
            keys.push(next);
            next += 1;
        }
    }
    assert_eq!(keys.len(), counts.len());
    // The slow request's bucket holds 200 ms: 2^(key/8) ≥ 0.2.
    let top = *keys.last().unwrap();
    assert!(2f64.powf(f64::from(top) / 8.0) >= 0.2, "top key {top}");
    assert_eq!(*counts.last().unwrap(), 1);
    // The classic buckets are all there too.
    assert_eq!(histogram.bucket.len(), 7);
}

#[test]
fn a_native_schema_out_of_range_is_a_build_error() {
    for schema in [-1, tower_prometheus::limits::MAX_NATIVE_SCHEMA + 1, i8::MAX] {
        let error = RequestMetricsLayer::builder()
            .route(Route::new("/"))
            .native_histograms(true)
            .native_histogram_schema(schema)
            .build(&Registry::new())
            .unwrap_err();
        assert!(
            matches!(error, BuildError::OutOfRange { setting: "native_histogram_schema", value, .. } if value == i64::from(schema)),
            "{error:?}"
        );
        assert!(error.to_string().contains(&format!(
            "native_histogram_schema is {schema}, out of range: give 0 to 5"
        )));
    }
}

/// The native histogram's buckets as `(count, zero bucket + buckets)`, and
/// its classic cumulative counts.
#[cfg(feature = "protobuf")]
fn views(histogram: &Histogram) -> (u64, u64, Vec<u64>) {
    let mut bucket = 0_i64;
    let mut in_buckets = histogram.zero_count.unwrap_or(0);
    for delta in &histogram.positive_delta {
        bucket += delta;
        in_buckets += u64::try_from(bucket).unwrap();
    }
    let classic = histogram
        .bucket
        .iter()
        .map(|b| b.cumulative_count.unwrap())
        .collect();
    (histogram.sample_count.unwrap(), in_buckets, classic)
}

#[cfg(feature = "protobuf")]
#[test]
fn every_histogram_of_every_scrape_adds_up_while_requests_are_recorded() {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(Route::new("/a"))
        .route(Route::new("/b/{id}"))
        .native_histograms(true)
        .build(&registry)
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let recording: Vec<_> = ["/a", "/b/1"]
        .into_iter()
        .map(|path| {
            let (layer, done) = (layer.clone(), done.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let mut sent = 0_u64;
                while !done.load(Ordering::Relaxed) {
                    runtime.block_on(send_traced(&layer, path, None, 200));
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let exporter = MetricsExporter::new(registry);
    let mut checked = 0;
    // A record adds to the classic buckets, then to the native ones: a
    // scrape falls between the two about once in ten thousand histograms.
    for _ in 0..20_000 {
        let families = decode(&exporter.render_as(Format::Protobuf).unwrap());
        let histograms = families
            .iter()
            .filter(|f| f.name.as_deref() == Some("ctms_requests_duration_seconds"))
            .flat_map(|f| &f.metric)
            .filter_map(|metric| metric.histogram.as_ref());
        for histogram in histograms {
            let (count, in_buckets, classic) = views(histogram);
            assert_eq!(
                count, in_buckets,
                "a native count that is not its zero bucket plus its buckets: {histogram:?}"
            );
            assert!(
                classic.windows(2).all(|pair| pair[0] <= pair[1])
                    && classic.last().map_or(true, |&last| last <= count),
                "classic buckets that do not rise to the count: {histogram:?}"
            );
            checked += 1;
        }
    }
    done.store(true, Ordering::Relaxed);
    let sent: u64 = recording.into_iter().map(|t| t.join().unwrap()).sum();
    // At rest, one scrape counts every request in both views.
    let families = decode(&exporter.render_as(Format::Protobuf).unwrap());
    let total: u64 = ["/a", "/b/{id}"]
        .into_iter()
        .map(|template| {
            let (count, in_buckets, _) = views(&histogram(&families, template, "2xx"));
            assert_eq!(count, in_buckets);
            count
        })
        .sum();
    assert_eq!(total, sent);
    assert!(checked > 0);
}

//! The scrape endpoint of the example over HTTP: the format chosen from
//! `Accept`, each format read back by a parser written by others (Python's
//! `prometheus_client` for OpenMetrics, `prost` for protobuf), gzip for
//! all three, and a crowd of scrapes at once.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::support::proto::MetricFamily;

use crate::example::Server;
use crate::support::{request, HttpResponse};

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const NATIVE_ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn scrape_with(addr: SocketAddr, headers: &[(&str, &str)]) -> HttpResponse {
    let response = request(addr, "GET", "/metrics", headers, None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response
}

fn decode(mut bytes: &[u8]) -> Vec<MetricFamily> {
    let mut families = Vec::new();
    while !bytes.is_empty() {
        families.push(
            prost::Message::decode_length_delimited(&mut bytes)
                .expect("a length-delimited MetricFamily"),
        );
    }
    families
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut plain)
        .expect("valid gzip");
    plain
}

/// The example after one traced request to `/__version__`.
async fn traced_server(env: &[(&str, &str)]) -> Server {
    let mut all = vec![("CTMS_ADDR", "127.0.0.1:0")];
    all.extend_from_slice(env);
    let server = Server::start_with(&all).await;
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let response = request(
        server.addr,
        "GET",
        "/__version__",
        &[("traceparent", &traceparent)],
        None,
    )
    .await;
    assert_eq!(response.status, 200);
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_format_follows_accept_and_q_values() {
    let server = traced_server(&[]).await;
    let cases = [
        (None, TEXT),
        (Some("application/json"), TEXT),
        (Some(PROMETHEUS_ACCEPT), OPENMETRICS),
        (Some(NATIVE_ACCEPT), PROTOBUF),
        (
            Some("application/openmetrics-text;q=0.2,text/plain;version=0.0.4;q=0.9"),
            TEXT,
        ),
        (
            Some("text/plain;q=0.1,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.3,application/openmetrics-text;q=0.2"),
            PROTOBUF,
        ),
    ];
    for (accept, expected) in cases {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let response = scrape_with(server.addr, &headers).await;
        assert_eq!(
            response.header("content-type"),
            Some(expected),
            "{accept:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_is_gzipped_when_accepted_with_its_own_content_type() {
    let server = traced_server(&[]).await;
    for accept in [TEXT, PROMETHEUS_ACCEPT, NATIVE_ACCEPT] {
        let plain = scrape_with(server.addr, &[("Accept", accept)]).await;
        let zipped = scrape_with(
            server.addr,
            &[("Accept", accept), ("Accept-Encoding", "gzip")],
        )
        .await;
        assert_eq!(zipped.header("content-encoding"), Some("gzip"), "{accept}");
        assert_eq!(
            zipped.header("content-type"),
            plain.header("content-type"),
            "{accept}"
        );
        let unzipped = gunzip(&zipped.raw_body);
        if accept == NATIVE_ACCEPT {
            // The scrape itself counts between the two answers: compare the
            // families, not the bytes.
            let names = |families: Vec<MetricFamily>| -> Vec<Option<String>> {
                families.into_iter().map(|family| family.name).collect()
            };
            assert_eq!(names(decode(&unzipped)), names(decode(&plain.raw_body)));
        } else {
            let text = String::from_utf8(unzipped).expect("UTF-8");
            assert!(
                text.contains("ctms_requests_duration_seconds_bucket{"),
                "{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_passes_a_strict_independent_parser_with_its_exemplars() {
    let server = traced_server(&[]).await;
    let response = scrape_with(server.addr, &[("Accept", PROMETHEUS_ACCEPT)]).await;
    assert!(response.body.ends_with("# EOF\n"));
    // prometheus_client's parser refuses anything OpenMetrics does not
    // allow; the script prints what it found, one line per exemplar.
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(sys.stdin.read()))
print("families", len(families))
for family in families:
    print("family", family.name, family.type)
    for sample in family.samples:
        if sample.exemplar:
            print("exemplar", sample.name, sample.labels.get("path_template"), sample.exemplar.labels["trace_id"], sample.exemplar.value)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (`bash .ci/run` installs it and prometheus_client)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(response.body.as_bytes())
        .expect("the exposition is written");
    let output = child.wait_with_output().expect("python3 finishes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the OpenMetrics parser refused the exposition: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        response.body
    );
    for family in [
        "family ctms_requests_duration_seconds histogram",
        "family ctms_requests counter",
        "family ctms_api_requests counter",
        "family ctms_requests_unmatched counter",
    ] {
        assert!(
            stdout.lines().any(|line| line == family),
            "{family}:\n{stdout}"
        );
    }
    let exemplars: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("exemplar "))
        .collect();
    assert_eq!(exemplars.len(), 2, "{stdout}");
    assert!(exemplars.iter().any(|line| line.starts_with(&format!(
        "exemplar ctms_requests_total /__version__ {TRACE} 1.0"
    ))));
    assert!(exemplars.iter().any(|line| line.starts_with(&format!(
        "exemplar ctms_requests_duration_seconds_bucket /__version__ {TRACE} "
    ))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_carries_classic_and_native_buckets_and_the_exemplar_when_asked() {
    let server = traced_server(&[("CTMS_NATIVE_HISTOGRAMS", "true")]).await;
    let families = decode(
        &scrape_with(server.addr, &[("Accept", NATIVE_ACCEPT)])
            .await
            .raw_body,
    );
    let duration = families
        .iter()
        .find(|family| family.name.as_deref() == Some("ctms_requests_duration_seconds"))
        .expect("the duration family");
    let version = duration
        .metric
        .iter()
        .find(|metric| {
            metric.label.iter().any(|label| {
                label.name.as_deref() == Some("path_template")
                    && label.value.as_deref() == Some("/__version__")
            })
        })
        .and_then(|metric| metric.histogram.as_ref())
        .expect("the /__version__ histogram");
    assert_eq!(version.sample_count, Some(1));
    // Classic buckets and the native ones in the same message.
    assert_eq!(version.bucket.len(), 7);
    assert_eq!(version.schema, Some(3));
    let native: i64 = version
        .positive_delta
        .iter()
        .scan(0, |count, delta| {
            *count += delta;
            Some(*count)
        })
        .sum();
    assert_eq!(native as u64 + version.zero_count.unwrap_or(0), 1);
    let exemplar = version.exemplars.first().expect("the native exemplar");
    assert_eq!(exemplar.label[0].value.as_deref(), Some(TRACE));

    // Without the setting, the same scrape carries no native histogram.
    let plain = traced_server(&[]).await;
    let families = decode(
        &scrape_with(plain.addr, &[("Accept", NATIVE_ACCEPT)])
            .await
            .raw_body,
    );
    let schemas: Vec<_> = families
        .iter()
        .flat_map(|family| &family.metric)
        .filter_map(|metric| metric.histogram.as_ref()?.schema)
        .collect();
    assert!(schemas.is_empty(), "{schemas:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_scrapes_is_answered_200_or_503_and_none_hangs() {
    let server = traced_server(&[]).await;
    let scrapes: Vec<_> = (0..64)
        .map(|index| {
            let addr = server.addr;
            tokio::spawn(async move {
                // A mix of formats, all sharing renders.
                let accept = [TEXT, PROMETHEUS_ACCEPT, NATIVE_ACCEPT][index % 3];
                request(addr, "GET", "/metrics", &[("Accept", accept)], None).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for scrape in scrapes {
        // `request` gives up after 30 s: a hung scrape fails the test.
        let response = scrape.await.expect("the scrape task");
        if response.status == 503 {
            assert_eq!(response.header("retry-after"), Some("1"));
        }
        statuses.push(response.status);
    }
    assert!(
        statuses
            .iter()
            .all(|status| *status == 200 || *status == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}

//! The `grpc_health` example, called by tonic's own health client over
//! loopback: gRPC failures are never recorded as 2xx, streams are in flight
//! while open and counted once, with their real duration, when they end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tonic::Code;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use crate::example::{Process, DEADLINE};
use crate::support::{scrape, Exposition};

const CHECK: &str = "/grpc.health.v1.Health/Check";
const WATCH: &str = "/grpc.health.v1.Health/Watch";

struct Example {
    _process: Process,
    grpc: SocketAddr,
    metrics: SocketAddr,
}

async fn start() -> Example {
    let process = Process::spawn_example(
        "grpc_health",
        &[
            ("GRPC_ADDR", "127.0.0.1:0"),
            ("METRICS_ADDR", "127.0.0.1:0"),
        ],
    );
    let [grpc, metrics] = process.listening().await;
    Example {
        grpc,
        metrics,
        _process: process,
    }
}

impl Example {
    async fn client(&self) -> HealthClient<tonic::transport::Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc))
            .expect("a valid address")
            .connect()
            .await
            .expect("connects to the example");
        HealthClient::new(channel)
    }

    async fn scrape(&self) -> Exposition {
        scrape(self.metrics, "/metrics").await
    }

    /// Scrapes until `done` holds, within the deadline.
    async fn scrape_until(&self, what: &str, done: impl Fn(&Exposition) -> bool) -> Exposition {
        let start = Instant::now();
        loop {
            let exposition = self.scrape().await;
            if done(&exposition) {
                return exposition;
            }
            assert!(start.elapsed() < DEADLINE, "{what}: never seen");
            tokio::task::yield_now().await;
        }
    }
}

fn grpc(exposition: &Exposition, method: &str, code: &str) -> f64 {
    exposition.sum(
        "ctms_grpc_requests_total",
        &[
            ("grpc_service", "grpc.health.v1.Health"),
            ("grpc_method", method),
            ("grpc_code", code),
        ],
    )
}

fn total(exposition: &Exposition, template: &str, status: &str) -> f64 {
    exposition.sum(
        "ctms_requests_total",
        &[("path_template", template), ("status_code", status)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_codes_are_recorded_not_http_200() {
    let example = start().await;
    let before = example.scrape().await;
    // Every code of both methods exists at zero.
    assert_eq!(
        before.series("ctms_grpc_requests_total").len(),
        2 * 17,
        "{:?}",
        before.series("ctms_grpc_requests_total")
    );
    assert_eq!(grpc(&before, "Check", "NOT_FOUND"), 0.0);

    let mut client = example.client().await;
    let serving = client
        .check(HealthCheckRequest {
            service: "ctms.Contacts".into(),
        })
        .await
        .expect("ctms.Contacts is served");
    assert_eq!(serving.into_inner().status, 1, "SERVING");
    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("an unknown service is NOT_FOUND");
    assert_eq!(unknown.code(), Code::NotFound);

    let after = example
        .scrape_until("two Check calls", |e| {
            grpc(e, "Check", "OK") + grpc(e, "Check", "NOT_FOUND") >= 2.0
        })
        .await;
    assert_eq!(grpc(&after, "Check", "OK"), 1.0);
    assert_eq!(grpc(&after, "Check", "NOT_FOUND"), 1.0);
    assert_eq!(total(&after, CHECK, "200"), 1.0);
    assert_eq!(
        total(&after, CHECK, "404"),
        1.0,
        "NOT_FOUND is recorded as 404"
    );
    assert_eq!(
        after.sum(
            "ctms_requests_total",
            &[("path_template", CHECK), ("status_code_family", "2xx")]
        ),
        1.0,
        "the failed call is not 2xx"
    );
    let count = after.sum(
        "ctms_requests_duration_seconds_count",
        &[("path_template", CHECK)],
    );
    assert_eq!(count, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_is_in_flight_while_open_and_counted_once_as_cancelled() {
    let example = start().await;
    let mut client = example.client().await;
    let opened = Instant::now();
    let mut stream = client
        .watch(HealthCheckRequest {
            service: "ctms.Contacts".into(),
        })
        .await
        .expect("the watch starts")
        .into_inner();
    let first = stream
        .message()
        .await
        .expect("a first status")
        .expect("open");
    assert_eq!(first.status, 1, "SERVING");

    let open = example
        .scrape_until("the watch in flight", |e| {
            e.value(
                "ctms_requests_in_flight",
                &[("method", "POST"), ("path_template", WATCH)],
            ) == Some(1.0)
        })
        .await;
    assert_eq!(
        open.sum("ctms_grpc_requests_total", &[("grpc_method", "Watch")]),
        0.0,
        "an open stream is not counted yet"
    );
    assert_eq!(total(&open, WATCH, "499") + total(&open, WATCH, "200"), 0.0);

    // The stream's life under test: a second and a half, then the client
    // cancels it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(stream);
    let held = opened.elapsed().as_secs_f64();

    let after = example
        .scrape_until("the cancelled watch", |e| {
            grpc(e, "Watch", "CANCELLED") >= 1.0
        })
        .await;
    assert_eq!(grpc(&after, "Watch", "CANCELLED"), 1.0);
    assert_eq!(
        after.sum("ctms_grpc_requests_total", &[("grpc_method", "Watch")]),
        1.0,
        "counted once"
    );
    assert_eq!(total(&after, WATCH, "499"), 1.0);
    let in_flight = after.value(
        "ctms_requests_in_flight",
        &[("method", "POST"), ("path_template", WATCH)],
    );
    assert_eq!(in_flight, Some(0.0));
    let duration = after.sum(
        "ctms_requests_duration_seconds_sum",
        &[("path_template", WATCH)],
    );
    assert!(
        (1.5..=held + 1.0).contains(&duration),
        "the watch lasted {duration} s, held {held} s"
    );
}

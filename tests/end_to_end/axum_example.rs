//! `examples/axum.rs` over loopback: templates from axum's `MatchedPath`
//! with the nesting prefix, the bearer-token check's 401s and client, both
//! naming profiles, and `promtool` on what each exposes.

use std::net::SocketAddr;

use crate::example::Process;
use crate::prometheus::assert_promtool_accepts;
use crate::support::{request, scrape, Exposition};

struct Example {
    _process: Process,
    app: SocketAddr,
    metrics: SocketAddr,
}

async fn start(profile: Option<&str>) -> Example {
    let mut env = vec![("ADDR", "127.0.0.1:0"), ("METRICS_ADDR", "127.0.0.1:0")];
    if let Some(profile) = profile {
        env.push(("METRICS_PROFILE", profile));
    }
    let process = Process::spawn_example("axum", &env);
    let [app, metrics] = process.listening().await;
    Example {
        app,
        metrics,
        _process: process,
    }
}

impl Example {
    async fn get(&self, path: &str, token: Option<&str>) -> u16 {
        let auth = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|auth| ("Authorization", auth))
            .into_iter()
            .collect();
        request(self.app, "GET", path, &headers, None).await.status
    }

    /// Two users fetched by alice, one request without a token, one with a
    /// token nobody has, one path no route has.
    async fn traffic(&self) {
        assert_eq!(self.get("/api/v1/users/42", Some("t-alice")).await, 200);
        assert_eq!(self.get("/api/v1/users/7", Some("t-alice")).await, 200);
        assert_eq!(self.get("/api/v1/users/42", None).await, 401);
        assert_eq!(self.get("/api/v1/users/42", Some("t-mallory")).await, 401);
        assert_eq!(self.get("/nothing/here", Some("t-alice")).await, 404);
    }

    async fn exposition(&self) -> (Exposition, String) {
        let text = request(self.metrics, "GET", "/metrics", &[], None)
            .await
            .body;
        (scrape(self.metrics, "/metrics").await, text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctms_names_with_the_full_nested_template_the_401s_and_the_client() {
    let example = start(None).await;
    example.traffic().await;
    let (exposition, text) = example.exposition().await;
    let total = |code: &str| {
        let family = format!("{}xx", &code[..1]);
        exposition.value(
            "ctms_requests_total",
            &[
                ("method", "GET"),
                ("path_template", "/api/v1/users/{id}"),
                ("status_code", code),
                ("status_code_family", &family),
            ],
        )
    };
    assert_eq!(total("200"), Some(2.0));
    assert_eq!(total("401"), Some(2.0));
    assert_eq!(
        exposition.value(
            "ctms_api_requests_total",
            &[
                ("client_id", "alice"),
                ("method", "GET"),
                ("path_template", "/api/v1/users/{id}"),
                ("status_code_family", "2xx"),
            ]
        ),
        Some(2.0)
    );
    // The path no route has is counted, and is no label value.
    assert_eq!(
        exposition.value("ctms_requests_unmatched_total", &[]),
        Some(1.0)
    );
    assert!(
        !text.contains("/nothing/here") && !text.contains("/users/42"),
        "{text}"
    );
    assert_promtool_accepts(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_profile_otel_switches_to_the_opentelemetry_names() {
    let example = start(Some("otel")).await;
    example.traffic().await;
    let (exposition, text) = example.exposition().await;
    let count = |code: &str| {
        exposition.value(
            "http_server_request_duration_seconds_count",
            &[
                ("http_request_method", "GET"),
                ("http_response_status_code", code),
                ("http_route", "/api/v1/users/{id}"),
            ],
        )
    };
    assert_eq!(count("200"), Some(2.0));
    assert_eq!(count("401"), Some(2.0));
    assert_eq!(
        exposition.value(
            "http_server_client_requests_total",
            &[
                ("client_id", "alice"),
                ("http_request_method", "GET"),
                ("http_response_status_class", "2xx"),
                ("http_route", "/api/v1/users/{id}"),
            ]
        ),
        Some(2.0)
    );
    assert_eq!(
        exposition.value("http_server_unmatched_requests_total", &[]),
        Some(1.0)
    );
    assert!(!text.contains("ctms_"), "{text}");
    assert_promtool_accepts(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_profile_is_refused_with_a_message() {
    let mut process = Process::spawn_example(
        "axum",
        &[
            ("ADDR", "127.0.0.1:0"),
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("METRICS_PROFILE", "statsd"),
        ],
    );
    let status = process.wait_for_exit().await;
    assert!(!status.success());
    assert!(
        process
            .stderr()
            .contains("METRICS_PROFILE must be ctms or otel, not \"statsd\""),
        "{}",
        process.stderr()
    );
}

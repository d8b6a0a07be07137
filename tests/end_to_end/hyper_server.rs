//! The `hyper_server` example over loopback: a `ServiceBuilder` stack in the
//! recommended order records what the timeout and the panic catcher answer.

use crate::example::Process;
use crate::support::{get, scrape};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layers_inside_the_metrics_layer_are_recorded_with_their_answers() {
    let process = Process::spawn_example(
        "hyper_server",
        &[("ADDR", "127.0.0.1:0"), ("METRICS_ADDR", "127.0.0.1:0")],
    );
    let [app, metrics] = process.listening().await;

    let hello = get(app, "/hello/world").await;
    assert_eq!((hello.status, hello.body.as_str()), (200, "hello, world\n"));
    assert_eq!(get(app, "/panic").await.status, 500);
    // The duration under test: the handler outlasts the one-second timeout.
    assert_eq!(get(app, "/slow").await.status, 408);
    assert_eq!(get(app, "/nowhere").await.status, 404);

    let exposition = scrape(metrics, "/metrics").await;
    let total = |template: &str, code: &str| {
        exposition.sum(
            "ctms_requests_total",
            &[("path_template", template), ("status_code", code)],
        )
    };
    assert_eq!(total("/hello/{name}", "200"), 1.0);
    assert_eq!(total("/panic", "500"), 1.0, "the catcher's answer");
    assert_eq!(total("/slow", "408"), 1.0, "the timeout's answer, not 499");
    assert_eq!(total("/slow", "499"), 0.0);
    assert_eq!(
        exposition.value("ctms_requests_unmatched_total", &[]),
        Some(1.0)
    );
}

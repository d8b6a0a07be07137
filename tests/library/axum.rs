//! The `axum` feature: templates from axum's `MatchedPath`, nested routers
//! included, services nested with `nest_service`, and a whole wrapped
//! `Router` served by `axum::serve`.

use std::convert::Infallible;

use axum::{
    http::{Request, StatusCode},
    routing::get,
    Router,
};
use prometheus::Registry;
use tower::{service_fn, Layer, ServiceExt};
use tower_prometheus::{limits::MAX_MATCHED_TEMPLATES, BuildError, RequestMetricsLayer, Route};

use crate::support::{get as http_get, parse, scrape_registry, Exposition};

/// The `ctms_requests_total` value of GETs of `template` answered `code`.
fn get_total(exposition: &Exposition, template: &str, code: &str) -> Option<f64> {
    let family = format!("{}xx", &code[..1]);
    exposition.value(
        "ctms_requests_total",
        &[
            ("method", "GET"),
            ("path_template", template),
            ("status_code", code),
            ("status_code_family", &family),
        ],
    )
}

/// Sends `GET path` through `app` and returns the status it answers.
async fn get_status(app: &Router, path: &str) -> StatusCode {
    app.clone()
        .oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
}

fn users() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/users/me", get(|| async { "me" }))
}

#[tokio::test]
async fn pair_records_axum_templates_and_its_exporter_serves_them() {
    let (metrics, exporter) = RequestMetricsLayer::pair();
    let app = Router::new()
        .nest("/api/v1", users())
        .layer(metrics)
        .route_service("/metrics", exporter);
    assert_eq!(get_status(&app, "/api/v1/users/42").await, StatusCode::OK);
    assert_eq!(get_status(&app, "/nowhere").await, StatusCode::NOT_FOUND);
    let response = app
        .oneshot(
            Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let exposition = parse(std::str::from_utf8(&body).unwrap());
    assert_eq!(
        get_total(&exposition, "/api/v1/users/{id}", "200"),
        Some(1.0)
    );
    // The fallback's 404 has no template: counted as unmatched only, and
    // the scrape itself, added after the layer, is not recorded.
    assert_eq!(
        exposition.value("ctms_requests_unmatched_total", &[]),
        Some(1.0)
    );
    assert_eq!(exposition.series("ctms_requests_total").len(), 1);
}

#[tokio::test]
async fn nested_routes_are_recorded_under_their_full_template_without_registering_them() {
    let registry = Registry::new();
    let metrics = RequestMetricsLayer::builder()
        .templates_from_matched_path(true)
        .build(&registry)
        .unwrap();
    let app = Router::new().nest("/api/v1", users()).layer(metrics);
    assert_eq!(get_status(&app, "/api/v1/users/42").await, StatusCode::OK);
    assert_eq!(get_status(&app, "/api/v1/users/7").await, StatusCode::OK);
    assert_eq!(get_status(&app, "/api/v1/users/me").await, StatusCode::OK);
    let exposition = scrape_registry(&registry);
    assert_eq!(
        get_total(&exposition, "/api/v1/users/{id}", "200"),
        Some(2.0)
    );
    assert_eq!(get_total(&exposition, "/api/v1/users/me", "200"), Some(1.0));
    // No raw path ever becomes a label value.
    assert!(exposition
        .series("ctms_requests_total")
        .iter()
        .all(|sample| { !sample.labels.values().any(|value| value.contains("42")) }));
}

#[tokio::test]
async fn a_layer_on_the_inner_router_sees_the_full_template_too() {
    let registry = Registry::new();
    let metrics = RequestMetricsLayer::builder()
        .templates_from_matched_path(true)
        .build(&registry)
        .unwrap();
    let app = Router::new().nest("/api/v1", users().route_layer(metrics));
    assert_eq!(get_status(&app, "/api/v1/users/42").await, StatusCode::OK);
    let exposition = scrape_registry(&registry);
    assert_eq!(
        get_total(&exposition, "/api/v1/users/{id}", "200"),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_registered_template_is_the_same_series_and_stays_pre_initialised() {
    let registry = Registry::new();
    let metrics = RequestMetricsLayer::builder()
        .route(
            Route::new("/api/v1/users/{id}")
                .methods([axum::http::Method::GET])
                .statuses([200, 404]),
        )
        .templates_from_matched_path(true)
        .build(&registry)
        .unwrap();
    let before = scrape_registry(&registry);
    assert_eq!(get_total(&before, "/api/v1/users/{id}", "404"), Some(0.0));
    let app = Router::new().nest("/api/v1", users()).layer(metrics);
    get_status(&app, "/api/v1/users/42").await;
    let after = scrape_registry(&registry);
    assert_eq!(get_total(&after, "/api/v1/users/{id}", "200"), Some(1.0));
    assert_eq!(
        after.series("ctms_requests_total").len(),
        2,
        "one series per code, no duplicate"
    );
}

#[tokio::test]
async fn a_path_no_route_matches_is_counted_as_unmatched() {
    let registry = Registry::new();
    let metrics = RequestMetricsLayer::builder()
        .templates_from_matched_path(true)
        .build(&registry)
        .unwrap();
    // The fallback carries no `MatchedPath`.
    let app = Router::new().nest("/api/v1", users()).layer(metrics);
    assert_eq!(
        get_status(&app, "/nothing/here").await,
        StatusCode::NOT_FOUND
    );
    let exposition = scrape_registry(&registry);
    assert_eq!(
        exposition.value("ctms_requests_unmatched_total", &[]),
        Some(1.0)
    );
    assert!(exposition.series("ctms_requests_total").is_empty());
}

#[tokio::test]
async fn past_the_cap_a_template_is_recorded_as_its_path_would_be() {
    let registry = Registry::new();
    let metrics = RequestMetricsLayer::builder()
        .route(Route::new("/registered"))
        .templates_from_matched_path(true)
        .max_matched_templates(1)
        .build(&registry)
        .unwrap();
    let app = Router::new()
        .route("/registered", get(|| async { "ok" }))
        .nest("/api/v1", users())
        .layer(metrics);
    get_status(&app, "/api/v1/users/1").await;
    get_status(&app, "/api/v1/users/me").await;
    get_status(&app, "/registered").await;
    let exposition = scrape_registry(&registry);
    assert_eq!(
        get_total(&exposition, "/api/v1/users/{id}", "200"),
        Some(1.0)
    );
    assert_eq!(get_total(&exposition, "/api/v1/users/me", "200"), None);
    assert_eq!(
        exposition.value("ctms_requests_unmatched_total", &[]),
        Some(1.0)
    );
    // Registered templates do not count against the cap.
    assert_eq!(get_total(&exposition, "/registered", "200"), Some(1.0));
}

#[test]
fn the_cap_has_a_limit_and_no_route_needs_matched_paths() {
    let error = RequestMetricsLayer::builder()
        .templates_from_matched_path(true)
        .max_matched_templates(MAX_MATCHED_TEMPLATES + 1)
        .build(&Registry::new())
        .unwrap_err();
    assert!(
        matches!(error, BuildError::OutOfRange { setting: "max_matched_templates", value, .. } if value == MAX_MATCHED_TEMPLATES as i64 + 1),
        "{error:?}"
    );
    RequestMetricsLayer::builder()
        .templates_from_matched_path(true)
        .max_matched_templates(MAX_MATCHED_TEMPLATES)
        .build(&Registry::new())
        .unwrap();
    let error = RequestMetricsLayer::builder()
        .build(&Registry::new())
        .unwrap_err();
    assert!(matches!(error, BuildError::NoRoutes), "{error:?}");
}

#[tokio::test]
async fn a_whole_wrapped_router_is_served_by_axum_serve() {
    let registry = Registry::new();
    let metrics = RequestMetricsLayer::builder()
        .route(Route::new("/users/{id}"))
        .build(&registry)
        .unwrap();
    let app = Router::new().route("/users/{id}", get(|| async { "user" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, metrics.layer(app).into_make_service())
            .await
            .unwrap();
    });
    let response = http_get(addr, "/users/42").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "user");
    let exposition = scrape_registry(&registry);
    assert_eq!(get_total(&exposition, "/users/{id}", "200"), Some(1.0));
    server.abort();
}

/// A service like tower-http's `ServeDir`, to nest with `nest_service`: it
/// sees the path below the mount, answers the files it has (and the
/// mount point itself, as an index), 404 for any other.
async fn files(request: axum::extract::Request) -> Result<axum::response::Response, Infallible> {
    let (status, body) = match request.uri().path() {
        "/" => (StatusCode::OK, "index"),
        "/app.js" | "/css/site.css" => (StatusCode::OK, "file"),
        _ => (StatusCode::NOT_FOUND, "no such file"),
    };
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    Ok(response)
}

/// An app with a route, a nested service at `/static` and axum's default
/// fallback.
fn app_with_files() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .nest_service("/static", service_fn(files))
}

#[derive(Clone, Copy, Debug)]
enum Placement {
    RouterLayer,
    WholeRouter,
}

#[tokio::test]
async fn a_nested_service_is_recorded_under_its_mount_wherever_the_layer_is() {
    for placement in [Placement::RouterLayer, Placement::WholeRouter] {
        let registry = Registry::new();
        let metrics = RequestMetricsLayer::builder()
            .templates_from_matched_path(true)
            .route(Route::new("/users/{id}"))
            .route(Route::nested_service("/static"))
            .build(&registry)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = match placement {
            Placement::RouterLayer => {
                let app = app_with_files().layer(metrics);
                tokio::spawn(async move { axum::serve(listener, app).await.unwrap() })
            }
            Placement::WholeRouter => {
                let app = metrics.layer(app_with_files()).into_make_service();
                tokio::spawn(async move { axum::serve(listener, app).await.unwrap() })
            }
        };
        for (path, status, body) in [
            ("/static/app.js", 200, "file"),
            ("/static/css/site.css", 200, "file"),
            ("/static/missing.js", 404, "no such file"),
            ("/static", 200, "index"),
            ("/static/", 200, "index"),
            ("/users/1", 200, "user"),
            ("/nothing", 404, ""),
        ] {
            let response = http_get(addr, path).await;
            assert_eq!(response.status, status, "{placement:?} {path}");
            assert_eq!(response.body, body, "{placement:?} {path}");
        }
        server.abort();

        let exposition = scrape_registry(&registry);
        let mount = "/static/{*path}";
        assert_eq!(
            get_total(&exposition, mount, "200"),
            Some(4.0),
            "{placement:?}"
        );
        assert_eq!(
            get_total(&exposition, mount, "404"),
            Some(1.0),
            "{placement:?}"
        );
        assert_eq!(get_total(&exposition, "/users/{id}", "200"), Some(1.0));
        // Only the fallback's 404 is unmatched.
        assert_eq!(
            exposition.value("ctms_requests_unmatched_total", &[]),
            Some(1.0),
            "{placement:?}"
        );
        let templates: std::collections::BTreeSet<&str> = exposition
            .series("ctms_requests_total")
            .iter()
            .map(|sample| sample.labels["path_template"].as_str())
            .collect();
        assert_eq!(
            templates,
            [mount, "/users/{id}"].into_iter().collect(),
            "{placement:?}"
        );
    }
}

#[tokio::test]
async fn without_its_route_a_nested_service_is_unmatched_and_told_from_404s_by_its_status() {
    let registry = Registry::new();
    let metrics = RequestMetricsLayer::builder()
        .templates_from_matched_path(true)
        .record_unmatched_as("__unmatched__")
        .build(&registry)
        .unwrap();
    let app = app_with_files().layer(metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    assert_eq!(http_get(addr, "/static/app.js").await.status, 200);
    assert_eq!(http_get(addr, "/nothing").await.status, 404);
    server.abort();

    let exposition = scrape_registry(&registry);
    // axum gives the request below the mount no `MatchedPath`: it is
    // unmatched, like the fallback's; the status code tells the file
    // served from the 404.
    assert_eq!(
        exposition.value("ctms_requests_unmatched_total", &[]),
        Some(2.0)
    );
    assert_eq!(get_total(&exposition, "__unmatched__", "200"), Some(1.0));
    assert_eq!(get_total(&exposition, "__unmatched__", "404"), Some(1.0));
}

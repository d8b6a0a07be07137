//! The builder through `build`: what a valid configuration registers and
//! pre-initialises at zero, and every invalid one refused with the error
//! that names it, leaving the registry as it was.

use http::Method;
use prometheus::{IntCounter, Registry};
use tower_prometheus::{
    limits::{
        MAX_BUCKETS, MAX_CLIENT_IDS, MAX_CLIENT_ID_LEN, MAX_NAMESPACE_LEN, MAX_ROUTES, MAX_SHARDS,
    },
    BuildError, Builder, ClientId, ClientIds, RequestMetricsLayer, Route, TemplateError,
};

use crate::support::{count_series, render, sample};

fn build(builder: Builder) -> Result<RequestMetricsLayer, BuildError> {
    builder.build(&Registry::new())
}

/// A builder with one route, which every valid configuration needs.
fn one_route() -> Builder {
    RequestMetricsLayer::builder().route(Route::new("/"))
}

#[test]
fn registered_routes_start_at_zero() {
    let registry = Registry::new();
    RequestMetricsLayer::builder()
        .route(
            Route::new("/ctms/{email_id}")
                .methods([Method::GET, Method::PATCH])
                .statuses([200, 404])
                .with_client_series(),
        )
        .route(Route::new("/").methods([Method::GET]).statuses([307]))
        .client_ids(ClientIds::new().known(["c1", "c2", "c1"]))
        .build(&registry)
        .unwrap();
    let text = render(&registry);

    assert_eq!(count_series(&text, "ctms_requests_total"), 2 * 2 + 1);
    for method in ["GET", "PATCH"] {
        for code in ["200", "404"] {
            let family = &code[..1];
            let series = format!(
                r#"ctms_requests_total{{method="{method}",path_template="/ctms/{{email_id}}",status_code="{code}",status_code_family="{family}xx"}}"#
            );
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
            for client in ["c1", "c2"] {
                let series = format!(
                    r#"ctms_api_requests_total{{client_id="{client}",method="{method}",path_template="/ctms/{{email_id}}",status_code_family="{family}xx"}}"#
                );
                assert_eq!(sample(&text, &series), Some(0.0), "{series}");
            }
        }
    }
    // Two methods × two families × two clients; "/" is not an API route.
    assert_eq!(count_series(&text, "ctms_api_requests_total"), 8);
    // Histograms: one per method × family.
    assert_eq!(
        count_series(&text, "ctms_requests_duration_seconds_count"),
        2 * 2 + 1
    );
    assert_eq!(
        sample(
            &text,
            r#"ctms_requests_duration_seconds_bucket{method="GET",path_template="/",status_code_family="3xx",le="+Inf"}"#
        ),
        Some(0.0)
    );
    assert!(text.contains("# HELP ctms_requests_duration_seconds Histogram of requests processing time by path (in seconds)\n"));
    assert!(text.contains("# HELP ctms_requests_total Total count of requests by method, path, status code, and status code family.\n"));
    assert!(text.contains("# HELP ctms_api_requests_total Total count of API requests by method, path, client ID, and status code family\n"));
    assert!(text.contains("# TYPE ctms_requests_duration_seconds histogram\n"));
}

#[test]
fn the_default_buckets_are_the_ctms_ones() {
    let registry = Registry::new();
    RequestMetricsLayer::builder()
        .route(Route::new("/").methods([Method::GET]).statuses([200]))
        .build(&registry)
        .unwrap();
    let text = render(&registry);
    let les: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ctms_requests_duration_seconds_bucket"))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(les, ["0.01", "0.05", "0.1", "0.5", "1", "5", "10", "+Inf"]);
}

#[test]
fn another_namespace_prefixes_every_name() {
    let registry = Registry::new();
    RequestMetricsLayer::builder()
        .namespace("shop")
        .route(Route::new("/").methods([Method::GET]).statuses([200]))
        .build(&registry)
        .unwrap();
    let text = render(&registry);
    assert_eq!(count_series(&text, "shop_requests_total"), 1);
    assert_eq!(
        count_series(&text, "shop_requests_duration_seconds_count"),
        1
    );
    assert!(!text.contains("ctms_"));
}

#[test]
fn invalid_namespaces_are_refused() {
    for namespace in ["", "1ctms", "my-app", "a:b", "ctms ", "é"] {
        let error = build(one_route().namespace(namespace)).unwrap_err();
        assert!(
            matches!(&error, BuildError::InvalidNamespace { namespace: n } if n == namespace),
            "{namespace:?}: {error:?}"
        );
    }
    for namespace in ["ctms", "_x", "a1_b2"] {
        build(one_route().namespace(namespace)).unwrap();
    }
    let longest = "n".repeat(MAX_NAMESPACE_LEN);
    build(one_route().namespace(longest.as_str())).unwrap();
    for namespace in ["n".repeat(MAX_NAMESPACE_LEN + 1), "n".repeat(1 << 20)] {
        let error = build(one_route().namespace(namespace.as_str())).unwrap_err();
        assert!(matches!(error, BuildError::InvalidNamespace { .. }));
        let message = error.to_string();
        assert!(message.len() < 400, "{} bytes of message", message.len());
        assert!(message.contains("at most 128"), "{message}");
    }
}

#[test]
fn invalid_buckets_are_refused() {
    let many: Vec<f64> = (1..=MAX_BUCKETS + 1).map(|i| i as f64).collect();
    let bad: &[(&[f64], &str)] = &[
        (&[], "no finite bound"),
        (&[f64::INFINITY], "no finite bound"),
        (&[0.1, 0.1], "strictly increasing"),
        (&[1.0, 0.5], "strictly increasing"),
        (&[f64::NAN], "NaN"),
        (&[0.1, f64::NAN, 1.0], "NaN"),
        (&[0.1, f64::NEG_INFINITY], "+Inf"),
        (&[f64::NEG_INFINITY, 0.1], "+Inf"),
        (&[0.1, f64::INFINITY, 1.0], "+Inf"),
        (&[0.1, f64::INFINITY, f64::INFINITY], "+Inf"),
        (&[-1.0, 0.5], "positive"),
        (&[0.0, 0.5], "positive"),
        (&[-0.0, 0.5], "positive"),
        (&[1e-12], "a nanosecond apart"),
        (&[1.0e-9, 1.2e-9], "a nanosecond apart"),
        (&many, "too many"),
    ];
    for &(buckets, reason) in bad {
        let error = build(one_route().buckets(buckets.iter().copied())).unwrap_err();
        assert!(
            matches!(&error, BuildError::InvalidBuckets { reason: r, .. } if r.contains(reason)),
            "{buckets:?}: {error:?}"
        );
    }
    build(one_route().buckets([0.5, 1.0, f64::INFINITY])).unwrap();
    build(one_route().buckets([1e-9, 2e-9, 1e9])).unwrap();
    build(one_route().buckets(many[..MAX_BUCKETS].iter().copied())).unwrap();
}

#[test]
fn status_codes_outside_100_to_999_are_refused() {
    let error = build(
        RequestMetricsLayer::builder()
            .route(Route::new("/").methods([Method::GET]).statuses([200, 1000])),
    )
    .unwrap_err();
    assert!(
        matches!(error, BuildError::InvalidStatusCode { code: 1000, ref template } if template == "/")
    );
}

#[test]
fn known_client_ids_must_fit_the_caps() {
    let error =
        build(one_route().client_ids(ClientIds::new().max_len(3).known(["abcd"]))).unwrap_err();
    assert!(
        matches!(error, BuildError::ClientIdTooLong { ref client_id, max_len: 3 } if client_id == "abcd")
    );

    let error =
        build(one_route().client_ids(ClientIds::new().max(2).known(["a", "b", "c"]))).unwrap_err();
    assert!(matches!(
        error,
        BuildError::OutOfRange {
            setting: "known client ids",
            value: 3,
            min: 0,
            max: 2
        }
    ));

    // Duplicates count once.
    build(one_route().client_ids(ClientIds::new().max(2).known(["a", "b", "a"]))).unwrap();
    // The overflow value takes no slot.
    build(one_route().client_ids(ClientIds::new().max(2).known(["a", "__other__", "b"]))).unwrap();
}

#[test]
fn template_errors_surface_from_build() {
    let error = build(
        RequestMetricsLayer::builder()
            .route(Route::new("/a/{x}"))
            .route(Route::new("/a/{y}")),
    )
    .unwrap_err();
    assert!(
        matches!(error, BuildError::TemplateConflict { .. }),
        "{error:?}"
    );
}

#[test]
fn a_clash_with_a_registered_metric_names_it_and_registers_nothing() {
    let registry = Registry::new();
    let mine = IntCounter::new("ctms_api_requests_total", "someone else's").unwrap();
    registry.register(Box::new(mine.clone())).unwrap();

    let error = RequestMetricsLayer::builder()
        .route(Route::new("/").methods([Method::GET]).statuses([200]))
        .build(&registry)
        .unwrap_err();
    assert!(
        matches!(&error, BuildError::AlreadyRegistered { metric, .. } if metric == "ctms_api_requests_total"),
        "{error:?}"
    );
    // The two families registered before the clash were rolled back.
    let text = render(&registry);
    assert_eq!(count_series(&text, "ctms_requests_total"), 0);
    assert_eq!(
        count_series(&text, "ctms_requests_duration_seconds_count"),
        0
    );

    // The user's metric is untouched.
    mine.inc();
    assert_eq!(
        sample(&render(&registry), "ctms_api_requests_total"),
        Some(1.0)
    );
}

#[test]
fn building_twice_on_one_registry_is_refused() {
    let registry = Registry::new();
    one_route().build(&registry).unwrap();
    let error = one_route().build(&registry).unwrap_err();
    assert!(
        matches!(&error, BuildError::AlreadyRegistered { metric, .. } if metric == "ctms_requests_duration_seconds"),
        "{error:?}"
    );
}

#[test]
fn a_builder_with_no_route_is_refused() {
    let error = build(RequestMetricsLayer::builder()).unwrap_err();
    assert!(matches!(error, BuildError::NoRoutes), "{error:?}");
    assert!(error.to_string().contains(".route("), "{error}");
    let error = build(RequestMetricsLayer::builder().record_unmatched_as("other")).unwrap_err();
    assert!(matches!(error, BuildError::NoRoutes), "{error:?}");
}

#[test]
fn more_routes_than_the_limit_are_refused() {
    let routes = vec![Route::new("/"); MAX_ROUTES + 1];
    let error = build(RequestMetricsLayer::builder().routes(routes)).unwrap_err();
    assert!(
        matches!(error, BuildError::OutOfRange { setting: "routes", value, max, .. } if value == MAX_ROUTES as i64 + 1 && max == MAX_ROUTES as i64),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("routes is 1048577, out of range: give 1 to 1048576"),
        "{error}"
    );
    // Exactly the limit passes that check: the same template that many
    // times is refused as registered twice, not as too many routes.
    let routes = vec![Route::new("/"); MAX_ROUTES];
    let error = build(RequestMetricsLayer::builder().routes(routes)).unwrap_err();
    assert!(
        matches!(error, BuildError::TemplateConflict { .. }),
        "{error:?}"
    );
}

#[test]
fn caps_past_their_limits_are_refused_before_any_allocation() {
    // usize::MAX used to panic with "capacity overflow", 1 << 40 to
    // abort allocating terabytes, 100 million to take gigabytes.
    for max in [usize::MAX, 1 << 40, 100_000_000, MAX_CLIENT_IDS + 1] {
        let error = build(one_route().client_ids(ClientIds::new().max(max))).unwrap_err();
        assert!(
            matches!(error, BuildError::OutOfRange { setting: "client ids' max", value, max: limit, .. } if value == i64::try_from(max).unwrap_or(i64::MAX) && limit == MAX_CLIENT_IDS as i64),
            "{max}: {error:?}"
        );
        assert!(error.to_string().contains("10000"), "{error}");
    }
    build(one_route().client_ids(ClientIds::new().max(MAX_CLIENT_IDS))).unwrap();
    for max in [usize::MAX, MAX_CLIENT_ID_LEN + 1] {
        let error = build(one_route().client_ids(ClientIds::new().max_len(max))).unwrap_err();
        assert!(
            matches!(error, BuildError::OutOfRange { setting: "client ids' max_len", value, .. } if value == i64::try_from(max).unwrap_or(i64::MAX)),
            "{max}: {error:?}"
        );
    }
    build(one_route().client_ids(ClientIds::new().max_len(MAX_CLIENT_ID_LEN))).unwrap();
}

#[test]
fn shard_counts_out_of_range_are_refused() {
    for shards in [0, MAX_SHARDS + 1, usize::MAX] {
        let error = build(one_route().shards(shards)).unwrap_err();
        assert!(
            matches!(error, BuildError::OutOfRange { setting: "shards", value, min: 1, max } if value == i64::try_from(shards).unwrap_or(i64::MAX) && max == MAX_SHARDS as i64),
            "{shards}: {error:?}"
        );
    }
    for shards in [1, 3, MAX_SHARDS] {
        build(one_route().shards(shards)).unwrap();
    }
}

#[test]
fn known_client_ids_that_cannot_be_label_values_are_refused() {
    for id in ["", "a\nb", "nul\0", "cr\r"] {
        let error = build(one_route().client_ids(ClientIds::new().known([id]))).unwrap_err();
        assert!(
            matches!(&error, BuildError::InvalidClientId { client_id } if client_id == id),
            "{id:?}: {error:?}"
        );
    }
}

#[test]
fn listing_the_overflow_value_pre_initialises_its_series_once() {
    let registry = Registry::new();
    RequestMetricsLayer::builder()
        .route(
            Route::new("/")
                .methods([Method::GET])
                .statuses([200])
                .with_client_series(),
        )
        .client_ids(ClientIds::new().known(["a", "__other__"]).max(1))
        .build(&registry)
        .unwrap();
    let text = render(&registry);
    let other = r#"ctms_api_requests_total{client_id="__other__",method="GET",path_template="/",status_code_family="2xx"}"#;
    assert_eq!(sample(&text, other), Some(0.0));
    assert_eq!(count_series(&text, "ctms_api_requests_total"), 2, "{text}");
}

#[test]
fn an_unmatched_value_that_is_also_a_template_is_refused() {
    let error = build(
        RequestMetricsLayer::builder()
            .route(Route::new("/x"))
            .record_unmatched_as("/x"),
    )
    .unwrap_err();
    assert!(
        matches!(&error, BuildError::UnmatchedValueIsATemplate { value } if value == "/x"),
        "{error:?}"
    );
    for value in ["", "a\nb", "\0"] {
        let error = build(one_route().record_unmatched_as(value)).unwrap_err();
        assert!(
            matches!(&error, BuildError::InvalidUnmatchedValue { value: v } if v == value),
            "{value:?}: {error:?}"
        );
    }
}

fn registry_with_constant_labels(labels: &[(&str, &str)]) -> Registry {
    let labels = labels
        .iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    Registry::new_custom(Some("app".to_owned()), Some(labels)).unwrap()
}

#[test]
fn a_registry_constant_label_named_like_ours_is_refused() {
    for name in [
        "method",
        "path_template",
        "status_code",
        "status_code_family",
        "client_id",
        "le",
    ] {
        let registry = registry_with_constant_labels(&[("env", "prod"), (name, "x")]);
        let error = one_route().build(&registry).unwrap_err();
        assert!(
            matches!(&error, BuildError::ConstantLabelClash { label } if label == name),
            "{name}: {error:?}"
        );
        // Nothing was left behind: not even the probe.
        assert_eq!(render(&registry), "", "{name}");
    }
}

#[test]
fn a_prefix_and_other_constant_labels_are_carried_on_every_series() {
    let registry = registry_with_constant_labels(&[("env", "prod")]);
    RequestMetricsLayer::builder()
        .route(Route::new("/").methods([Method::GET]).statuses([200]))
        .build(&registry)
        .unwrap();
    let text = render(&registry);
    let series = r#"app_ctms_requests_total{method="GET",path_template="/",status_code="200",status_code_family="2xx",env="prod"}"#;
    assert_eq!(sample(&text, series), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, r#"app_ctms_requests_unmatched_total{env="prod"}"#),
        Some(0.0)
    );
    assert!(!text.contains("probe"), "{text}");
}

#[test]
fn a_metric_under_a_name_our_samples_use_is_refused() {
    for (name, ours) in [
        (
            "ctms_requests_duration_seconds_count",
            "ctms_requests_duration_seconds",
        ),
        (
            "ctms_requests_duration_seconds_sum",
            "ctms_requests_duration_seconds",
        ),
        (
            "ctms_requests_duration_seconds_bucket",
            "ctms_requests_duration_seconds",
        ),
        ("ctms_requests", "ctms_requests_total"),
        ("ctms_api_requests", "ctms_api_requests_total"),
        ("ctms_requests_unmatched", "ctms_requests_unmatched_total"),
    ] {
        let registry = Registry::new();
        let theirs = IntCounter::new(name, "someone else's").unwrap();
        registry.register(Box::new(theirs)).unwrap();
        let error = one_route().build(&registry).unwrap_err();
        assert!(
            matches!(&error, BuildError::NameClash { metric, with } if metric == ours && with == name),
            "{name}: {error:?}"
        );
        // Rolled back: only their metric is left, and another namespace builds.
        assert_eq!(render(&registry).matches("# TYPE").count(), 1, "{name}");
        one_route().namespace("other").build(&registry).unwrap();
    }
}

#[test]
fn the_names_our_samples_use_stay_reserved_after_build() {
    let registry = Registry::new();
    one_route().build(&registry).unwrap();
    for name in ["ctms_requests_duration_seconds_count", "ctms_requests"] {
        let theirs = IntCounter::new(name, "someone else's").unwrap();
        assert!(registry.register(Box::new(theirs)).is_err(), "{name}");
    }
}

#[test]
fn only_known_clients_start_at_zero_on_api_routes() {
    use tower::{service_fn, Layer, ServiceExt};
    let registry = Registry::new();
    let layer = RequestMetricsLayer::builder()
        .route(
            Route::new("/")
                .methods([Method::GET])
                .statuses([200, 404])
                .with_client_series(),
        )
        .client_ids(ClientIds::new().known(["known"]))
        .build(&registry)
        .unwrap();
    // `?client,status`: answers `status` with `client` as its id.
    let service = layer.layer(service_fn(|request: http::Request<()>| async move {
        let (client, status) = request.uri().query().unwrap().split_once(',').unwrap();
        let mut response = http::Response::new(String::new());
        *response.status_mut() = http::StatusCode::from_u16(status.parse().unwrap()).unwrap();
        response.extensions_mut().insert(ClientId::new(client));
        Ok::<_, std::convert::Infallible>(response)
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for query in ["seen,200", "other,404", "known,200"] {
        let request = http::Request::get(format!("/?{query}")).body(()).unwrap();
        runtime.block_on(service.clone().oneshot(request)).unwrap();
    }
    let text = render(&registry);
    let api = |client: &str, family: &str| {
        sample(
            &text,
            &format!(
                r#"ctms_api_requests_total{{client_id="{client}",method="GET",path_template="/",status_code_family="{family}"}}"#
            ),
        )
    };
    assert_eq!(api("known", "2xx"), Some(1.0));
    assert_eq!(api("known", "4xx"), Some(0.0));
    assert_eq!(api("seen", "2xx"), Some(1.0));
    assert_eq!(api("other", "4xx"), Some(1.0));
    assert_eq!(
        api("seen", "4xx"),
        None,
        "a client seen at runtime is not pre-initialised"
    );
    assert_eq!(api("other", "2xx"), None);
    assert_eq!(count_series(&text, "ctms_api_requests_total"), 4, "{text}");
}

#[test]
fn a_known_client_id_of_exactly_the_length_cap_is_accepted() {
    build(one_route().client_ids(ClientIds::new().max_len(4).known(["abcd"]))).unwrap();
}

#[test]
fn a_route_marked_grpc_must_be_a_method_path() {
    let registry = Registry::new();
    RequestMetricsLayer::builder()
        .route(Route::new("/Greeter/SayHello").grpc())
        .route(Route::new("/demo.v1.Catalog/{method}").grpc())
        .route(Route::new("/other.v1.Service/{method}"))
        .route(Route::new("/not/grpc"))
        .build(&registry)
        .unwrap();
    let text = render(&registry);
    assert_eq!(
        count_series(&text, "ctms_grpc_requests_total"),
        2 * 17,
        "{text}"
    );
    assert!(text.contains(r#"grpc_method="SayHello",grpc_service="Greeter""#));
    assert!(text.contains(r#"grpc_method="{method}",grpc_service="demo.v1.Catalog""#));
    for template in ["/Greeter", "/a/b/c", "/{*rest}", "/a.b/"] {
        let error =
            build(RequestMetricsLayer::builder().route(Route::new(template).grpc())).unwrap_err();
        assert!(
            matches!(&error, BuildError::InvalidTemplate { template: t, reason: TemplateError::NotGrpc } if t == template),
            "{template}: {error:?}"
        );
    }
}

#[test]
fn a_layer_without_grpc_routes_shows_no_grpc_family() {
    let registry = Registry::new();
    one_route().build(&registry).unwrap();
    assert!(!render(&registry).contains("grpc"));
}

#[test]
fn the_unmatched_counter_starts_at_zero() {
    let registry = Registry::new();
    one_route().build(&registry).unwrap();
    let text = render(&registry);
    assert_eq!(sample(&text, "ctms_requests_unmatched_total"), Some(0.0));
    assert!(text.contains("# TYPE ctms_requests_unmatched_total counter\n"));
}

/// Each switch turned on then off leaves the layer as if it had never been
/// turned on: the same families, the same series after the same requests.
#[tokio::test]
async fn every_switch_turned_off_is_as_if_never_turned_on() {
    use std::convert::Infallible;

    use http::{Request, Response};
    use tower::{service_fn, Layer, ServiceExt};
    use tower_prometheus::{Format, MetricsExporter, TraceId};

    async fn exposition(builder: Builder) -> String {
        let registry = Registry::new();
        let layer = builder
            .route(Route::new("/items/{id}"))
            .build(&registry)
            .unwrap();
        let service = layer.layer(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
        for path in ["/items/1", "/nowhere"] {
            let request = Request::get(path)
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .body(String::new())
                .unwrap();
            service.clone().oneshot(request).await.unwrap();
        }
        let bytes = MetricsExporter::new(registry)
            .render_as(Format::OpenMetrics)
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }
    // The durations (sums, exemplar values and times) differ from run to
    // run; the series and the counts do not.
    fn comparable(text: &str) -> String {
        text.lines()
            .filter(|line| !line.contains("_sum"))
            .map(|line| match line.split_once(" # ") {
                Some((sample, _)) => format!("{sample} # an exemplar"),
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    let plain = exposition(RequestMetricsLayer::builder()).await;
    let switched = [
        (
            "in_flight",
            RequestMetricsLayer::builder()
                .in_flight(true)
                .in_flight(false),
        ),
        (
            "response_bytes",
            RequestMetricsLayer::builder()
                .response_bytes(true)
                .response_bytes(false),
        ),
        (
            "native_histograms",
            RequestMetricsLayer::builder()
                .native_histograms(true)
                .native_histograms(false),
        ),
        (
            "exemplars",
            RequestMetricsLayer::builder()
                .exemplars_from_request(TraceId::from_traceparent)
                .no_exemplars(),
        ),
        (
            "record_unmatched_as",
            RequestMetricsLayer::builder()
                .record_unmatched_as("__unmatched__")
                .no_record_unmatched(),
        ),
        (
            "request_bytes",
            RequestMetricsLayer::builder()
                .request_bytes()
                .no_request_bytes(),
        ),
    ];
    for (switch, builder) in switched {
        assert_eq!(
            comparable(&exposition(builder).await),
            comparable(&plain),
            "{switch} turned off"
        );
    }
    // And each is seen when on, so the comparison can fail.
    let on = exposition(
        RequestMetricsLayer::builder()
            .in_flight(true)
            .exemplars_from_request(TraceId::from_traceparent)
            .record_unmatched_as("__unmatched__"),
    )
    .await;
    for seen in ["ctms_requests_in_flight", "trace_id", "__unmatched__"] {
        assert!(on.contains(seen) && !plain.contains(seen), "{seen}");
    }
}

#[test]
fn debug_output_shows_a_reader_is_set_without_printing_it() {
    let ids = ClientIds::from_request(|headers| headers.get("x-client")?.to_str().ok())
        .known(["a"])
        .max(5);
    let shown = format!("{ids:?}");
    assert!(
        shown.contains("Some(..)") && shown.contains("max: 5"),
        "{shown}"
    );
    assert!(format!("{:?}", ClientIds::new()).contains("read: None"));
}

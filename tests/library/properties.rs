//! Properties over random configurations and traffic: building never
//! panics, the layer matches paths exactly as a plain matchit router does,
//! and an exposition never holds one series twice.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::panic::{catch_unwind, AssertUnwindSafe};

use http::{Method, Request, Response, StatusCode};
use prometheus::Registry;
use proptest::prelude::*;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_prometheus::{ClientId, ClientIds, MetricsExporter, RequestMetricsLayer, Route};

use crate::support::parse;

/// A template segment: literals, parameters, catch-alls, escaped braces,
/// old syntax, constraints, and characters no path can hold.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-c]{1,3}",
        3 => "[a-d]".prop_map(|name| format!("{{{name}}}")),
        1 => "[a-d]".prop_map(|name| format!("{{*{name}}}")),
        1 => Just("{{x}}".to_owned()),
        1 => "[a-c]".prop_map(|name| format!(":{name}")),
        1 => Just("{id:[0-9]+}".to_owned()),
        1 => prop_oneof![Just("a b"), Just("a\nb"), Just("\0"), Just("?"), Just("{"), Just("}")]
            .prop_map(str::to_owned),
        1 => Just(String::new()),
    ]
}

fn template() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => prop::collection::vec(segment(), 0..4).prop_map(|segments| format!("/{}", segments.join("/"))),
        // Past the parameter limit now and then.
        1 => (20_usize..30).prop_map(|count| (0..count).map(|i| format!("/{{p{i}}}")).collect()),
        1 => "[a-c/]{0,4}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof!["[a-c]{0,3}", Just("{x}".to_owned()), Just("x".to_owned())],
        0..5,
    )
    .prop_map(|segments| format!("/{}", segments.join("/")))
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::DELETE),
        "[A-Z]{1,6}".prop_map(|raw| Method::from_bytes(raw.as_bytes()).unwrap()),
    ]
}

fn client_id() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        2 => "[a-c]{1,2}".prop_map(Some),
        1 => prop_oneof![Just("__other__"), Just(""), Just("a\rb"), Just("x\0"), Just("toolongid")]
            .prop_map(|id| Some(id.to_owned())),
    ]
}

/// One request of the random traffic.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    method: Method,
    status: u16,
    header_client: Option<String>,
    response_client: Option<String>,
}

fn hit() -> impl Strategy<Value = Hit> {
    (path(), method(), 100_u16..=999, client_id(), client_id()).prop_map(
        |(path, method, status, header_client, response_client)| Hit {
            path,
            method,
            status,
            header_client,
            response_client,
        },
    )
}

/// The route a plain matchit router with the same templates picks.
fn plain_router(templates: &[String]) -> matchit::Router<String> {
    let mut router = matchit::Router::new();
    for template in templates {
        router
            .insert(template.as_str(), template.clone())
            .expect("matchit takes what the layer took");
    }
    router
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn building_never_panics_and_matches_as_matchit_does(
        templates in prop::collection::vec(template(), 1..6),
        unmatched in prop::option::of(prop_oneof![Just("__unmatched__".to_owned()), "/[a-c]{1,2}"]),
        max_clients in 0_usize..4,
        hits in prop::collection::vec(hit(), 1..40),
    ) {
        let registry = Registry::new();
        let mut builder = RequestMetricsLayer::builder()
            .routes(templates.iter().map(|t| Route::new(t.as_str()).methods([Method::GET]).statuses([200]).with_client_series()))
            .client_ids(ClientIds::from_request(|headers| headers.get("x-client")?.to_str().ok()).known(["a", "__other__"]).max(max_clients.max(1)).max_len(4));
        if let Some(value) = &unmatched {
            builder = builder.record_unmatched_as(value.as_str());
        }
        let built = catch_unwind(AssertUnwindSafe(|| builder.build(&registry)));
        let Ok(built) = built else {
            panic!("build panicked on {templates:?}");
        };
        let Ok(layer) = built else {
            // A refused configuration registers nothing.
            prop_assert_eq!(registry.gather().len(), 0);
            return Ok(());
        };
        let router = plain_router(&templates);

        let service = layer.layer(service_fn(|request: Request<()>| async move {
            let status: u16 = request.headers()["x-status"].to_str().unwrap().parse().unwrap();
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(id) = request.headers().get("x-auth") {
                let id = id.to_str().unwrap().replace("CR", "\r").replace("NUL", "\0");
                response.extensions_mut().insert(ClientId::new(id));
            }
            Ok::<_, Infallible>(response)
        }));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut expected_unmatched = 0;
        for hit in &hits {
            let registry_before = parse(&MetricsExporter::new(registry.clone()).render().unwrap());
            let mut request = Request::builder()
                .method(hit.method.clone())
                .uri(hit.path.as_str())
                .header("x-status", hit.status.to_string());
            if let Some(id) = &hit.header_client {
                if let Ok(value) = http::HeaderValue::from_str(id) {
                    request = request.header("x-client", value);
                }
            }
            if let Some(id) = &hit.response_client {
                let encoded = id.replace('\r', "CR").replace('\0', "NUL");
                request = request.header("x-auth", encoded);
            }
            let Ok(request) = request.body(()) else { continue };
            runtime.block_on(service.clone().oneshot(request)).unwrap();
            let after = parse(&MetricsExporter::new(registry.clone()).render().unwrap());
            let expected = router.at(&hit.path).ok().map(|m| m.value.clone());
            if expected.is_none() {
                expected_unmatched += 1;
            }
            let recorded = expected.clone().or_else(|| unmatched.clone());
            // The one series that grew is the template matchit picked.
            let grown: Vec<String> = after
                .series("ctms_requests_total")
                .into_iter()
                .filter(|sample| {
                    registry_before.value("ctms_requests_total", &sample.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>()).unwrap_or(0.0) < sample.value
                })
                .map(|sample| sample.labels["path_template"].clone())
                .collect();
            prop_assert_eq!(grown, recorded.into_iter().collect::<Vec<_>>(), "{:?}", hit);
        }

        let text = MetricsExporter::new(registry).render().unwrap();
        let exposition = parse(&text);
        prop_assert_eq!(exposition.value("ctms_requests_unmatched_total", &[]), Some(f64::from(expected_unmatched)));
        let mut seen = BTreeSet::new();
        for sample in &exposition.samples {
            prop_assert!(seen.insert((sample.name.clone(), sample.labels.clone())), "duplicate series {:?}", sample);
        }
    }
}

#[test]
fn the_service_is_usable_after_a_refused_build() {
    // A failed build leaves the registry as it was, ready for a valid one.
    let registry = Registry::new();
    assert!(RequestMetricsLayer::builder()
        .route(Route::new("/a b"))
        .build(&registry)
        .is_err());
    let mut service = RequestMetricsLayer::builder()
        .route(Route::new("/a"))
        .build(&registry)
        .unwrap()
        .layer(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    drop(service.call(Request::get("/a").body(()).unwrap()));
    let exposition = parse(&MetricsExporter::new(registry).render().unwrap());
    assert_eq!(exposition.sum("ctms_requests_total", &[]), 1.0);
}

//! Black-box tests of the `ctms_server` example: the binary is started on a free
//! port and every behaviour is checked through HTTP and the parsed `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;

use crate::example::{Process, Server};
use crate::support::{get, request, send_raw, Exposition};

const DEFAULT_CLIENTS: &str = "test_client:test_secret";
const REQUESTS: &str = "ctms_requests_total";
const DURATION: &str = "ctms_requests_duration_seconds";
const API_REQUESTS: &str = "ctms_api_requests_total";
const CONTACT: &str = "/ctms/{email_id}";
const TEMPLATES: [&str; 9] = [
    "/",
    "/docs",
    "/__version__",
    "/__heartbeat__",
    "/__lbheartbeat__",
    "/metrics",
    "/__crash__",
    "/ctms",
    CONTACT,
];

fn basic(client_id: &str, secret: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
    format!("Basic {encoded}")
}

fn family(status: u16) -> String {
    format!("{}xx", status / 100)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|&(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// `times` requests answered `status` on `template`, authenticated as `client`
/// if it is `Some`.
#[derive(Clone, Copy, Debug)]
struct Hit<'a> {
    client: Option<&'a str>,
    method: &'a str,
    template: &'a str,
    status: u16,
    times: u32,
}

fn hit<'a>(method: &'a str, template: &'a str, status: u16, times: u32) -> Hit<'a> {
    Hit {
        client: None,
        method,
        template,
        status,
        times,
    }
}

fn api_hit<'a>(
    client: &'a str,
    method: &'a str,
    template: &'a str,
    status: u16,
    times: u32,
) -> Hit<'a> {
    Hit {
        client: Some(client),
        ..hit(method, template, status, times)
    }
}

/// The non-zero samples of `name` accepted by `keep`, by label set without `le`.
fn nonzero(
    exposition: &Exposition,
    name: &str,
    keep: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<BTreeMap<String, String>, f64> {
    let mut found = BTreeMap::new();
    for sample in exposition.series(name) {
        if sample.value != 0.0 && keep(&sample.labels) {
            let mut labels = sample.labels.clone();
            labels.remove("le");
            let previous = found.insert(labels, sample.value);
            assert!(previous.is_none(), "duplicate series {sample:?}");
        }
    }
    found
}

/// Asserts that the three families hold exactly `hits`: every listed series has
/// its count and no other series is non-zero.
fn assert_exact(exposition: &Exposition, hits: &[Hit<'_>]) {
    let mut requests = BTreeMap::new();
    let mut durations = BTreeMap::new();
    let mut api = BTreeMap::new();
    for hit in hits.iter().filter(|hit| hit.times > 0) {
        let code = hit.status.to_string();
        let family = family(hit.status);
        let times = f64::from(hit.times);
        let base = [
            ("method", hit.method),
            ("path_template", hit.template),
            ("status_code_family", family.as_str()),
        ];
        let mut with_code = base.to_vec();
        with_code.push(("status_code", &code));
        *requests.entry(labels(&with_code)).or_insert(0.0) += times;
        *durations.entry(labels(&base)).or_insert(0.0) += times;
        if let Some(client) = hit.client {
            let mut with_client = base.to_vec();
            with_client.push(("client_id", client));
            *api.entry(labels(&with_client)).or_insert(0.0) += times;
        }
    }
    let inf =
        |labels: &BTreeMap<String, String>| labels.get("le").map(String::as_str) == Some("+Inf");
    assert_eq!(
        nonzero(exposition, REQUESTS, |_| true),
        requests,
        "{REQUESTS}"
    );
    assert_eq!(
        nonzero(exposition, &format!("{DURATION}_count"), |_| true),
        durations,
        "{DURATION}_count"
    );
    assert_eq!(
        nonzero(exposition, &format!("{DURATION}_bucket"), inf),
        durations,
        "{DURATION}_bucket{{le=\"+Inf\"}}"
    );
    assert_eq!(
        nonzero(exposition, API_REQUESTS, |_| true),
        api,
        "{API_REQUESTS}"
    );
    assert_histograms_consistent(exposition);
}

/// Buckets never decrease, the `+Inf` bucket equals `_count`, `_sum` is finite
/// and not negative.
fn assert_histograms_consistent(exposition: &Exposition) {
    let mut buckets: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in exposition.series(&format!("{DURATION}_bucket")) {
        let mut labels = sample.labels.clone();
        let le = labels.remove("le").expect("bucket has an le label");
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().expect("numeric le")
        };
        buckets
            .entry(labels)
            .or_default()
            .push((bound, sample.value));
    }
    assert!(!buckets.is_empty(), "no histogram buckets at all");
    for (labels, mut series) in buckets {
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            series.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "buckets decrease for {labels:?}: {series:?}"
        );
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let count = exposition.value(&format!("{DURATION}_count"), &pairs);
        assert_eq!(
            series.last().map(|last| (last.0, Some(last.1))),
            Some((f64::INFINITY, count)),
            "{labels:?}"
        );
        let sum = exposition
            .value(&format!("{DURATION}_sum"), &pairs)
            .expect("_sum exists");
        assert!(sum.is_finite() && sum >= 0.0, "_sum {sum} for {labels:?}");
    }
}

fn requests_total(
    exposition: &Exposition,
    method: &str,
    template: &str,
    status: u16,
) -> Option<f64> {
    let code = status.to_string();
    let family = family(status);
    exposition.value(
        REQUESTS,
        &[
            ("method", method),
            ("path_template", template),
            ("status_code", &code),
            ("status_code_family", &family),
        ],
    )
}

fn api_requests(
    exposition: &Exposition,
    client: &str,
    method: &str,
    template: &str,
    family: &str,
) -> Option<f64> {
    exposition.value(
        API_REQUESTS,
        &[
            ("client_id", client),
            ("method", method),
            ("path_template", template),
            ("status_code_family", family),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_answer_as_specified_and_are_counted() {
    let server = Server::start(DEFAULT_CLIENTS).await;
    let root = server.get("/").await;
    assert_eq!(root.status, 307);
    assert_eq!(root.header("location"), Some("./docs"));
    let docs = server.get("/docs").await;
    assert_eq!(docs.status, 200);
    assert!(docs
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/html"));
    assert!(docs.body.contains("<html"), "{}", docs.body);
    let version = server.get("/__version__").await;
    assert_eq!(version.status, 200);
    let version = version.json();
    for field in ["version", "source", "commit"] {
        assert!(version[field].is_string(), "{field} in {version}");
    }
    let heartbeat = server.get("/__heartbeat__").await;
    assert_eq!(heartbeat.status, 200);
    assert!(heartbeat.json().is_object());
    assert_eq!(server.get("/__lbheartbeat__").await.status, 200);
    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/plain"));

    let exposition = server.scrape().await;
    assert_exact(
        &exposition,
        &[
            hit("GET", "/", 307, 1),
            hit("GET", "/docs", 200, 1),
            hit("GET", "/__version__", 200, 1),
            hit("GET", "/__heartbeat__", 200, 1),
            hit("GET", "/__lbheartbeat__", 200, 1),
            hit("GET", "/metrics", 200, 1),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_routes_answer_as_specified_and_are_counted_per_client() {
    let server = Server::start(DEFAULT_CLIENTS).await;
    let auth = basic("test_client", "test_secret");
    let wrong = basic("test_client", "wrong_secret");

    for credentials in [None, Some(wrong.as_str())] {
        let headers: Vec<(&str, &str)> = credentials
            .map(|c| ("Authorization", c))
            .into_iter()
            .collect();
        let body = r#"{"email": {"primary_email": "a@example.com"}}"#;
        let denied = request(server.addr, "POST", "/ctms", &headers, Some(body)).await;
        assert_eq!(denied.status, 401, "{}", denied.body);
        let challenge = denied.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Basic"),
            "WWW-Authenticate: {challenge:?}"
        );
    }

    let email_id = server.create_contact(&auth, "ada@example.com").await;
    let bad_bodies = [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"email": {}}"#,
        r#"{"email": "ada@example.com"}"#,
        r#"{"email": {"primary_email": 5}}"#,
        r#"{"email": {"primary_email": ""}}"#,
    ];
    for body in bad_bodies {
        let response = server.api("POST", "/ctms", &auth, Some(body)).await;
        assert_eq!(
            response.status, 422,
            "POST /ctms with {body:?}: {}",
            response.body
        );
    }
    let text_plain = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "text/plain"),
    ];
    let response = request(server.addr, "POST", "/ctms", &text_plain, Some("{")).await;
    assert_eq!(response.status, 422, "{}", response.body);

    let found = server
        .api("GET", "/ctms?primary_email=ada@example.com", &auth, None)
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    let found = found.json();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["email"]["email_id"], email_id.as_str());
    let by_id = server
        .api("GET", &format!("/ctms?email_id={email_id}"), &auth, None)
        .await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.json()[0]["email"]["primary_email"], "ada@example.com");
    let nobody = server
        .api("GET", "/ctms?primary_email=nobody@example.com", &auth, None)
        .await;
    assert_eq!((nobody.status, nobody.json()), (200, serde_json::json!([])));
    assert_eq!(server.api("GET", "/ctms", &auth, None).await.status, 400);

    let contact_path = format!("/ctms/{email_id}");
    let unknown_path = format!("/ctms/{}", uuid::Uuid::new_v4());
    let contact = server.api("GET", &contact_path, &auth, None).await;
    assert_eq!(contact.status, 200);
    assert_eq!(contact.json()["email"]["primary_email"], "ada@example.com");
    assert_eq!(
        server.api("GET", &unknown_path, &auth, None).await.status,
        404
    );
    assert_eq!(
        server
            .api("GET", "/ctms/not-a-uuid", &auth, None)
            .await
            .status,
        422
    );
    assert_eq!(get(server.addr, "/ctms/not-a-uuid").await.status, 401);
    assert_eq!(get(server.addr, &unknown_path).await.status, 401);

    let patch = r#"{"email": {"first_name": "Ada"}}"#;
    let patched = server.api("PATCH", &contact_path, &auth, Some(patch)).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let patched = patched.json();
    assert_eq!(patched["email"]["first_name"], "Ada");
    assert_eq!(patched["email"]["primary_email"], "ada@example.com");
    assert_eq!(
        server
            .api("PATCH", &contact_path, &auth, Some("nope"))
            .await
            .status,
        422
    );
    assert_eq!(
        server
            .api("PATCH", &unknown_path, &auth, Some(patch))
            .await
            .status,
        404
    );

    let put = r#"{"email": {"primary_email": "lovelace@example.com"}}"#;
    let replaced = server.api("PUT", &contact_path, &auth, Some(put)).await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let replaced = replaced.json();
    assert_eq!(replaced["email"]["primary_email"], "lovelace@example.com");
    assert!(replaced["email"]["first_name"].is_null(), "{replaced}");
    assert_eq!(
        server
            .api("PUT", &contact_path, &auth, Some(r#"{"email": {}}"#))
            .await
            .status,
        422
    );
    assert_eq!(
        server
            .api("PUT", &unknown_path, &auth, Some(put))
            .await
            .status,
        404
    );

    assert_eq!(
        server.api("GET", "/__crash__", &auth, None).await.status,
        500
    );
    assert_eq!(server.get("/__crash__").await.status, 401);

    let exposition = server.scrape().await;
    let client = "test_client";
    assert_exact(
        &exposition,
        &[
            hit("POST", "/ctms", 401, 2),
            api_hit(client, "POST", "/ctms", 201, 1),
            api_hit(client, "POST", "/ctms", 422, 9),
            api_hit(client, "GET", "/ctms", 200, 3),
            api_hit(client, "GET", "/ctms", 400, 1),
            api_hit(client, "GET", CONTACT, 200, 1),
            api_hit(client, "GET", CONTACT, 404, 1),
            api_hit(client, "GET", CONTACT, 422, 1),
            hit("GET", CONTACT, 401, 2),
            api_hit(client, "PATCH", CONTACT, 200, 1),
            api_hit(client, "PATCH", CONTACT, 422, 1),
            api_hit(client, "PATCH", CONTACT, 404, 1),
            api_hit(client, "PUT", CONTACT, 200, 1),
            api_hit(client, "PUT", CONTACT, 422, 1),
            api_hit(client, "PUT", CONTACT, 404, 1),
            api_hit(client, "GET", "/__crash__", 500, 1),
            hit("GET", "/__crash__", 401, 1),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_are_preinitialised_at_zero_before_any_request() {
    let server = Server::start("test_client:test_secret,other_client:other_secret").await;
    let exposition = server.scrape().await;

    assert_eq!(
        exposition.types.get(REQUESTS).map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        exposition.types.get(DURATION).map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        exposition.types.get(API_REQUESTS).map(String::as_str),
        Some("counter")
    );
    for family in [REQUESTS, DURATION, API_REQUESTS] {
        assert!(
            exposition
                .help
                .get(family)
                .is_some_and(|help| !help.is_empty()),
            "no HELP for {family}"
        );
    }

    let routes: [(&str, &str, &[u16], bool); 12] = [
        ("GET", "/", &[307], false),
        ("GET", "/docs", &[200], false),
        ("GET", "/__version__", &[200], false),
        ("GET", "/__heartbeat__", &[200], false),
        ("GET", "/__lbheartbeat__", &[200], false),
        ("GET", "/metrics", &[200], false),
        ("GET", "/__crash__", &[401, 500], true),
        ("GET", "/ctms", &[200, 400, 401, 422], true),
        ("POST", "/ctms", &[201, 401, 422], true),
        ("GET", CONTACT, &[200, 401, 404, 422], true),
        ("PATCH", CONTACT, &[200, 401, 404, 422], true),
        ("PUT", CONTACT, &[200, 401, 404, 422], true),
    ];
    for (method, template, statuses, is_api) in routes {
        for &status in statuses {
            assert_eq!(
                requests_total(&exposition, method, template, status),
                Some(0.0),
                "{REQUESTS} {method} {template} {status}"
            );
            let family = family(status);
            let base = [
                ("method", method),
                ("path_template", template),
                ("status_code_family", family.as_str()),
            ];
            assert_eq!(
                exposition.value(&format!("{DURATION}_count"), &base),
                Some(0.0),
                "{base:?}"
            );
            let mut inf = base.to_vec();
            inf.push(("le", "+Inf"));
            assert_eq!(
                exposition.value(&format!("{DURATION}_bucket"), &inf),
                Some(0.0),
                "{base:?}"
            );
            for client in ["test_client", "other_client"] {
                let value = api_requests(&exposition, client, method, template, &family);
                assert_eq!(
                    value,
                    is_api.then_some(0.0),
                    "{API_REQUESTS} {client} {base:?}"
                );
            }
        }
    }
    assert!(exposition.series(REQUESTS).iter().all(|s| s.value == 0.0));
    assert!(exposition
        .series(API_REQUESTS)
        .iter()
        .all(|s| s.value == 0.0));
    assert_exact(&exposition, &[]);

    let second = server.scrape().await;
    assert_exact(&second, &[hit("GET", "/metrics", 200, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_mix_of_requests_gives_exact_counts_in_all_three_families() {
    let server = Server::start("test_client:test_secret,second_client:second_secret").await;
    let first = basic("test_client", "test_secret");
    let second = basic("second_client", "second_secret");
    let email_id = server.create_contact(&first, "mix@example.com").await;
    let contact_path = format!("/ctms/{email_id}");

    for _ in 0..3 {
        assert_eq!(server.get("/").await.status, 307);
    }
    for _ in 0..2 {
        assert_eq!(server.get("/__lbheartbeat__").await.status, 200);
    }
    let mid_scrape = server.scrape().await;
    assert_exact(
        &mid_scrape,
        &[
            api_hit("test_client", "POST", "/ctms", 201, 1),
            hit("GET", "/", 307, 3),
            hit("GET", "/__lbheartbeat__", 200, 2),
        ],
    );
    for _ in 0..4 {
        assert_eq!(
            server.api("GET", &contact_path, &first, None).await.status,
            200
        );
    }
    for _ in 0..5 {
        assert_eq!(
            server.api("GET", &contact_path, &second, None).await.status,
            200
        );
    }
    let patch = Some(r#"{"email": {"last_name": "Mix"}}"#);
    assert_eq!(
        server
            .api("PATCH", &contact_path, &second, patch)
            .await
            .status,
        200
    );
    assert_eq!(
        server.api("POST", "/ctms", &second, Some("{")).await.status,
        422
    );
    let unknown_path = format!("/ctms/{}", uuid::Uuid::new_v4());
    assert_eq!(
        server
            .api(
                "PUT",
                &unknown_path,
                &first,
                Some(r#"{"email": {"primary_email": "x@example.com"}}"#)
            )
            .await
            .status,
        404
    );
    for _ in 0..2 {
        assert_eq!(server.get(&contact_path).await.status, 401);
    }
    let delete = request(server.addr, "DELETE", &contact_path, &[], None).await;
    assert_eq!(
        delete.status, 401,
        "authentication comes before the method check"
    );
    let delete = server.api("DELETE", &contact_path, &first, None).await;
    assert_eq!(delete.status, 405);
    server.scrape().await;

    let exposition = server.scrape().await;
    assert_exact(
        &exposition,
        &[
            api_hit("test_client", "POST", "/ctms", 201, 1),
            hit("GET", "/", 307, 3),
            hit("GET", "/__lbheartbeat__", 200, 2),
            hit("GET", "/metrics", 200, 2),
            api_hit("test_client", "GET", CONTACT, 200, 4),
            api_hit("second_client", "GET", CONTACT, 200, 5),
            api_hit("second_client", "PATCH", CONTACT, 200, 1),
            api_hit("second_client", "POST", "/ctms", 422, 1),
            api_hit("test_client", "PUT", CONTACT, 404, 1),
            hit("GET", CONTACT, 401, 2),
            hit("DELETE", CONTACT, 401, 1),
            api_hit("test_client", "DELETE", CONTACT, 405, 1),
        ],
    );
    assert_eq!(requests_total(&exposition, "GET", CONTACT, 200), Some(9.0));
    let base = [("method", "GET"), ("path_template", CONTACT)];
    let mut four_xx = base.to_vec();
    four_xx.push(("status_code_family", "4xx"));
    assert_eq!(
        exposition.value(&format!("{DURATION}_count"), &four_xx),
        Some(2.0)
    );
    assert_eq!(
        api_requests(&exposition, "test_client", "GET", CONTACT, "4xx"),
        Some(0.0)
    );
    assert_eq!(
        exposition.sum(API_REQUESTS, &[("client_id", "second_client")]),
        7.0
    );
    assert_eq!(exposition.sum(API_REQUESTS, &[]), 14.0);
    assert_eq!(exposition.sum(REQUESTS, &[]), 24.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_paths_ids_and_methods_never_become_label_values() {
    let server = Server::start(DEFAULT_CLIENTS).await;
    let auth = basic("test_client", "test_secret");
    let email = "raw.identity@example.com";
    let email_id = server.create_contact(&auth, email).await;
    let contact_path = format!("/ctms/{email_id}");
    assert_eq!(
        server.api("GET", &contact_path, &auth, None).await.status,
        200
    );
    let search = format!("/ctms?primary_email={email}");
    assert_eq!(server.api("GET", &search, &auth, None).await.status, 200);

    let long_path = format!("/{}", "a".repeat(8000));
    let unmatched = [
        "/nope".to_owned(),
        "/ctms/a/b".to_owned(),
        format!("{contact_path}/extra"),
        "/../etc/passwd".to_owned(),
        "/%2e%2e/etc/passwd".to_owned(),
        "/ctms/".to_owned(),
        "/docs/".to_owned(),
        "/DOCS".to_owned(),
        long_path,
    ];
    for path in &unmatched {
        let response = server.get(path).await;
        assert_eq!(response.status, 404, "GET {}", &path[..path.len().min(60)]);
        let response = server.api("GET", path, &auth, None).await;
        assert_eq!(
            response.status,
            404,
            "authenticated GET {}",
            &path[..path.len().min(60)]
        );
    }
    let with_auth = format!("Authorization: {auth}\r\n");
    for (method, path, extra, status) in [
        ("FOO", "/ctms", "", 401),
        ("FOO", "/ctms", with_auth.as_str(), 405),
        ("BREW", "/__lbheartbeat__", "", 405),
        ("FOO", "/nope", with_auth.as_str(), 404),
    ] {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra}Connection: close\r\n\r\n",
            server.addr
        );
        let response = send_raw(server.addr, &raw).await.expect("raw request");
        assert_eq!(response.status, status, "{method} {path}");
    }

    let text = server.get("/metrics").await.body;
    for raw in [
        email_id.as_str(),
        email,
        "raw.identity",
        "nope",
        "passwd",
        "extra",
        "aaaa",
        "FOO",
        "BREW",
        "DOCS",
        "%2e",
    ] {
        assert!(!text.contains(raw), "{raw:?} leaked into the exposition");
    }
    let exposition = crate::support::parse(&text);
    let known: BTreeSet<&str> = TEMPLATES.into_iter().collect();
    for sample in &exposition.samples {
        if let Some(template) = sample.labels.get("path_template") {
            assert!(
                known.contains(template.as_str()),
                "unexpected path_template in {sample:?}"
            );
        }
        if let Some(method) = sample.labels.get("method") {
            let allowed = ["GET", "POST", "PUT", "PATCH", "OTHER"];
            assert!(
                allowed.contains(&method.as_str()),
                "unexpected method in {sample:?}"
            );
        }
        if let Some(client) = sample.labels.get("client_id") {
            assert_eq!(client, "test_client", "unexpected client_id in {sample:?}");
        }
    }
    assert_exact(
        &exposition,
        &[
            api_hit("test_client", "POST", "/ctms", 201, 1),
            api_hit("test_client", "GET", CONTACT, 200, 1),
            api_hit("test_client", "GET", "/ctms", 200, 1),
            hit("OTHER", "/ctms", 401, 1),
            api_hit("test_client", "OTHER", "/ctms", 405, 1),
            hit("OTHER", "/__lbheartbeat__", 405, 1),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_announced_series_bound_holds_under_a_hostile_flood() {
    let server = Server::start("a:1,b:2,c:3").await;
    let line = server
        .process
        .wait_for_lines(1, |line| line.contains("series_bound="))
        .await
        .remove(0);
    let digits = line
        .split("series_bound=")
        .nth(1)
        .expect("a figure follows");
    let bound: usize = digits
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"));
    // The example's configuration: 9 templates, 7 buckets, at most 100
    // client ids (R × 10 × 900 + R × 90 × (B + 3) + R × 90 × (C + 1) + 1
    // unmatched count + 17 × R gRPC codes).
    assert_eq!(bound, 9 * 9000 + 9 * 90 * 10 + 9 * 90 * 101 + 1 + 17 * 9);

    let credentials = [
        basic("a", "1"),
        basic("b", "2"),
        basic("c", "3"),
        basic("a", "wrong"),
        basic("mallory", "x"),
    ];
    let paths = [
        "/",
        "/docs",
        "/__version__",
        "/__heartbeat__",
        "/__lbheartbeat__",
        "/__crash__",
        "/ctms",
        "/ctms/00000000-0000-4000-8000-000000000000",
        "/ctms/not-a-uuid",
        "/nope",
        "/ctms/a/b",
    ];
    for method in [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "FOO",
    ] {
        for path in paths {
            for auth in &credentials {
                let raw = format!(
                    "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\n\
                     Content-Length: 2\r\nConnection: close\r\n\r\n{{}}",
                    server.addr
                );
                send_raw(server.addr, &raw).await.expect("raw request");
            }
        }
    }
    let exposition = server.scrape().await;
    let exposed = exposition
        .samples
        .iter()
        .filter(|sample| sample.name.starts_with("ctms_"))
        .count();
    assert!(
        exposed > 0 && exposed <= bound,
        "{exposed} series against a bound of {bound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_client_ids_authenticate_and_round_trip_through_the_exposition() {
    // Printable oddities only: an id with control characters cannot be a
    // label value of its own (see `control_characters_in_a_client_id_...`).
    let odd_ids = ["we\"ird\\client", "tab\\t", "sp ace={}#ü\\n\"", "\"\\"];
    let clients = format!(
        "{}:s0,{}:s1,{}:s2:with:colons,{}:s3,test_client:test_secret",
        odd_ids[0], odd_ids[1], odd_ids[2], odd_ids[3]
    );
    let secrets = ["s0", "s1", "s2:with:colons", "s3"];
    let server = Server::start(&clients).await;

    let before = server.scrape().await;
    for id in odd_ids {
        assert_eq!(
            api_requests(&before, id, "GET", CONTACT, "2xx"),
            Some(0.0),
            "pre-initialised {id:?}"
        );
    }

    let owner = basic("test_client", "test_secret");
    let email_id = server.create_contact(&owner, "odd@example.com").await;
    let contact_path = format!("/ctms/{email_id}");
    let mut hits = vec![
        hit("GET", "/metrics", 200, 1),
        api_hit("test_client", "POST", "/ctms", 201, 1),
    ];
    for (times, (id, secret)) in (1..).zip(odd_ids.iter().zip(secrets)) {
        let auth = basic(id, secret);
        for _ in 0..times {
            let response = server.api("GET", &contact_path, &auth, None).await;
            assert_eq!(response.status, 200, "client {id:?}: {}", response.body);
        }
        let wrong = basic(id, "not-the-secret");
        assert_eq!(
            server.api("GET", &contact_path, &wrong, None).await.status,
            401
        );
        hits.push(api_hit(id, "GET", CONTACT, 200, times));
    }
    hits.push(hit("GET", CONTACT, 401, 4));

    let text = server.get("/metrics").await.body;
    assert!(
        text.contains(r#"client_id="we\"ird\\client""#),
        "escaped quote and backslash"
    );
    assert!(
        text.contains(r#"client_id="sp ace={}#ü\\n\"""#),
        "escaped backslash and quote"
    );
    let exposition = crate::support::parse(&text);
    let seen: BTreeSet<&str> = exposition
        .series(API_REQUESTS)
        .iter()
        .filter_map(|sample| sample.labels.get("client_id").map(String::as_str))
        .collect();
    let mut expected: BTreeSet<&str> = odd_ids.into_iter().collect();
    expected.insert("test_client");
    assert_eq!(seen, expected);
    for (times, id) in (1..).zip(odd_ids) {
        assert_eq!(
            api_requests(&exposition, id, "GET", CONTACT, "2xx"),
            Some(f64::from(times)),
            "{id:?}"
        );
    }
    assert_exact(&exposition, &hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_answer_401_and_never_reach_the_client_id_label() {
    let server = Server::start("test_client:test_secret,other_client:other_secret").await;
    let owner = basic("test_client", "test_secret");
    let email_id = server.create_contact(&owner, "guarded@example.com").await;
    let contact_path = format!("/ctms/{email_id}");
    let engine = base64::engine::general_purpose::STANDARD;

    let attempts = [
        basic("test_client", "wrong"),
        basic("test_client", ""),
        basic("test_client", "test_secret "),
        basic("test_client ", "test_secret"),
        basic("other_client", "test_secret"),
        basic("intruder", "test_secret"),
        basic("evil\"label", "x"),
        format!("Basic {}", engine.encode("test_client")),
        format!("Basic {}", engine.encode("test_clienttest_secret")),
        "Basic !!!not-base64!!!".to_owned(),
        "Basic".to_owned(),
        format!("Bearer {}", engine.encode("test_client:test_secret")),
        "test_client:test_secret".to_owned(),
    ];
    for auth in &attempts {
        let response = server.api("GET", &contact_path, auth, None).await;
        assert_eq!(response.status, 401, "Authorization: {auth:?}");
        let challenge = response.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Basic"),
            "WWW-Authenticate: {challenge:?}"
        );
        let response = server
            .api("PATCH", "/ctms/not-a-uuid", auth, Some("{"))
            .await;
        assert_eq!(
            response.status, 401,
            "auth is checked before the body and the id"
        );
    }
    let missing = get(server.addr, "/ctms").await;
    assert_eq!(
        missing.status, 401,
        "auth is checked before the identifiers"
    );

    let text = server.get("/metrics").await.body;
    for raw in ["intruder", "evil", "test_client "] {
        assert!(!text.contains(raw), "{raw:?} leaked into the exposition");
    }
    let exposition = crate::support::parse(&text);
    assert_exact(
        &exposition,
        &[
            api_hit("test_client", "POST", "/ctms", 201, 1),
            hit("GET", CONTACT, 401, 13),
            hit("PATCH", CONTACT, 401, 13),
            hit("GET", "/ctms", 401, 1),
        ],
    );
    assert_eq!(
        exposition.sum(API_REQUESTS, &[("client_id", "other_client")]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_counted_exactly() {
    const TASKS: u32 = 8;
    const PER_TASK: u32 = 50;
    let server = Server::start("test_client:test_secret,other_client:other_secret").await;
    let owner = basic("test_client", "test_secret");
    let email_id = server.create_contact(&owner, "busy@example.com").await;
    let contact_path = Arc::new(format!("/ctms/{email_id}"));

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let addr = server.addr;
        let contact_path = Arc::clone(&contact_path);
        let auth = if task % 2 == 0 {
            basic("test_client", "test_secret")
        } else {
            basic("other_client", "other_secret")
        };
        tasks.push(tokio::spawn(async move {
            for round in 0..PER_TASK {
                let response = if round % 2 == 0 {
                    get(addr, "/__lbheartbeat__").await
                } else {
                    request(
                        addr,
                        "GET",
                        &contact_path,
                        &[("Authorization", auth.as_str())],
                        None,
                    )
                    .await
                };
                assert_eq!(response.status, 200, "task {task} round {round}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("request task succeeded");
    }

    let per_kind = TASKS * PER_TASK / 2;
    let per_client = per_kind / 2;
    let exposition = server.scrape().await;
    assert_exact(
        &exposition,
        &[
            api_hit("test_client", "POST", "/ctms", 201, 1),
            hit("GET", "/__lbheartbeat__", 200, per_kind),
            api_hit("test_client", "GET", CONTACT, 200, per_client),
            api_hit("other_client", "GET", CONTACT, 200, per_client),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_exits_non_zero_with_a_message() {
    let cases = [
        ("CTMS_CLIENTS", "no_colon_here"),
        ("CTMS_CLIENTS", ":secret_without_id"),
        ("CTMS_CLIENTS", "test_client:test_secret,:other"),
        ("CTMS_CLIENTS", "test_client:test_secret,"),
        ("CTMS_CLIENTS", ""),
        ("CTMS_ADDR", "not an address"),
        ("CTMS_METRICS_ADDR", "not an address"),
        ("CTMS_MAX_IN_FLIGHT", "0"),
        ("CTMS_MAX_IN_FLIGHT", "many"),
        ("CTMS_USE_MOZLOG", "maybe"),
        ("CTMS_RECORD_METRICS", "sometimes"),
        ("CTMS_LOG_REQUESTS", "2"),
    ];
    for (name, value) in cases {
        let mut env = vec![("CTMS_ADDR", "127.0.0.1:0")];
        env.retain(|(key, _)| *key != name);
        env.push((name, value));
        let mut process = Process::spawn(&env);
        let status = process.wait_for_exit().await;
        let stderr = process.stderr();
        let stdout = process.stdout_lines();
        assert!(!status.success(), "{name}={value:?} was accepted");
        assert!(
            !stderr.trim().is_empty(),
            "{name}={value:?}: no message on stderr"
        );
        assert!(
            !stderr.contains("panicked"),
            "{name}={value:?} panicked: {stderr}"
        );
        assert_eq!(
            stdout,
            Vec::<String>::new(),
            "{name}={value:?} printed to stdout"
        );
        if name == "CTMS_CLIENTS" {
            assert!(
                stderr.contains("CTMS_CLIENTS"),
                "{name}={value:?}: {stderr}"
            );
            assert!(
                !stderr.contains("test_secret"),
                "the message shows a secret: {stderr}"
            );
        }
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start(DEFAULT_CLIENTS).await;
    assert_eq!(server.get("/__lbheartbeat__").await.status, 200);
    server.process.terminate().await;
}

//! The example server as operators run it: MozLog request logs, the private
//! metrics listener, and scrapes that do not queue behind slow requests.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::example::{Process, Server, DEADLINE};
use crate::support::{get, request, scrape};

const CLIENTS: &str = "test_client:test_secret";
const MISSING_CONTACT: &str = "/ctms/00000000-0000-4000-8000-000000000000";

fn basic() -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode("test_client:test_secret");
    format!("Basic {encoded}")
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos()
}

/// The request log lines (`Type` `request.summary`) among stdout's JSON lines.
async fn request_logs(process: &Process, count: usize) -> Vec<Value> {
    let is_request = |line: &str| line.contains(r#""Type":"request.summary""#);
    process
        .wait_for_lines(count, is_request)
        .await
        .iter()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("log line is not JSON ({err}): {line}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_as_one_mozlog_line() {
    let server = Server::start(CLIENTS).await;
    let before = unix_nanos();
    let auth = basic();
    let scraper = [("User-Agent", "Prometheus/2.42.0")];
    let browser = [("User-Agent", "curl/8.0")];
    assert_eq!(server.get("/__lbheartbeat__").await.status, 200);
    let missing = server.api("GET", MISSING_CONTACT, &auth, None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(server.get("/no/such/page").await.status, 404);
    let scrape = request(server.addr, "GET", "/metrics", &scraper, None).await;
    assert_eq!(scrape.status, 200);
    let by_hand = request(server.addr, "GET", "/metrics", &browser, None).await;
    assert_eq!(by_hand.status, 200);
    assert_eq!(
        server.api("GET", "/__crash__", &auth, None).await.status,
        500
    );
    let after = unix_nanos();

    // Each line is written before its response leaves, so the order is the
    // order the requests were sent in.
    let logs = request_logs(&server.process, 6).await;
    assert_eq!(logs.len(), 6, "one line per request: {logs:#?}");
    let pid = server.process.child.id();
    for log in &logs {
        let timestamp = log["Timestamp"].as_u64().expect("Timestamp is an integer");
        assert!(
            (before..=after).contains(&u128::from(timestamp)),
            "Timestamp {timestamp} is not in ns between {before} and {after}"
        );
        assert_eq!(log["Logger"], "ctms");
        assert_eq!(log["EnvVersion"], "2.0");
        assert_eq!(log["Pid"], pid);
        let hostname = log["Hostname"].as_str().expect("Hostname is a string");
        assert!(!hostname.is_empty());
        let duration = log["Fields"]["duration_s"].as_f64().expect("duration_s");
        assert!((0.0..30.0).contains(&duration), "duration_s {duration}");
    }

    let fields = |index: usize| &logs[index]["Fields"];
    let expected = [
        (
            "GET",
            "/__lbheartbeat__",
            Some("/__lbheartbeat__"),
            200,
            None,
        ),
        (
            "GET",
            MISSING_CONTACT,
            Some("/ctms/{email_id}"),
            404,
            Some("test_client"),
        ),
        ("GET", "/no/such/page", None, 404, None),
        ("GET", "/metrics", Some("/metrics"), 200, None),
        ("GET", "/metrics", Some("/metrics"), 200, None),
        (
            "GET",
            "/__crash__",
            Some("/__crash__"),
            500,
            Some("test_client"),
        ),
    ];
    for (index, (method, path, template, status, client)) in expected.into_iter().enumerate() {
        let fields = fields(index);
        assert_eq!(fields["method"], method, "line {index}: {fields}");
        assert_eq!(fields["path"], path, "line {index}: {fields}");
        assert_eq!(fields["path_template"].as_str(), template, "line {index}");
        assert_eq!(fields["status_code"], status, "line {index}: {fields}");
        assert_eq!(fields["client_id"].as_str(), client, "line {index}");
        let severity = if status >= 500 { 3 } else { 6 };
        assert_eq!(logs[index]["Severity"], severity, "line {index}");
    }
    assert_eq!(fields(3)["trivial"], true, "a Prometheus scrape is trivial");
    for index in [0, 1, 2, 4, 5] {
        assert_eq!(
            fields(index).get("trivial"),
            None,
            "line {index} is not trivial"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_lines_replace_mozlog_when_it_is_switched_off() {
    let server = Server::start_with(&[
        ("CTMS_ADDR", "127.0.0.1:0"),
        ("CTMS_CLIENTS", CLIENTS),
        ("CTMS_USE_MOZLOG", "false"),
    ])
    .await;
    let missing = server.api("GET", MISSING_CONTACT, &basic(), None).await;
    assert_eq!(missing.status, 404);
    let lines = server
        .process
        .wait_for_lines(1, |line| line.contains(MISSING_CONTACT))
        .await;
    let line = &lines[0];
    assert!(!line.starts_with('{'), "not JSON: {line}");
    for part in [
        "INFO",
        "GET",
        MISSING_CONTACT,
        "404",
        "template=/ctms/{email_id}",
        r#"client_id="test_client""#,
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    let startup = &server.process.stdout_lines()[0];
    assert!(
        startup.ends_with(&format!("INFO listening on http://{}", server.addr)),
        "{startup:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_private_listener_alone_serves_metrics() {
    let server = Server::start_with(&[
        ("CTMS_ADDR", "127.0.0.1:0"),
        ("CTMS_METRICS_ADDR", "127.0.0.1:0"),
        ("CTMS_CLIENTS", CLIENTS),
    ])
    .await;
    let private = server
        .metrics_addr
        .expect("the metrics listener is announced");
    assert_ne!(private, server.addr);

    let public_metrics = get(server.addr, "/metrics").await;
    assert_eq!(public_metrics.status, 404, "{}", public_metrics.body);
    assert!(!public_metrics.body.contains("ctms_requests_total"));
    assert_eq!(get(private, "/anything/else").await.status, 404);
    assert_eq!(server.get("/__lbheartbeat__").await.status, 200);

    let exposition = scrape(private, "/metrics").await;
    let count = |template: &str, status: &str| {
        exposition.value(
            "ctms_requests_total",
            &[
                ("method", "GET"),
                ("path_template", template),
                ("status_code", status),
                ("status_code_family", &format!("{}xx", &status[..1])),
            ],
        )
    };
    assert_eq!(count("/__lbheartbeat__", "200"), Some(1.0));
    // The probe of the public /metrics is on record: someone looked for it.
    assert_eq!(count("/metrics", "404"), Some(1.0));
    // Unmatched paths (the private listener's 404) are not recorded.
    assert_eq!(
        exposition.sum("ctms_requests_total", &[("status_code", "404")]),
        1.0
    );
}

/// A request whose body never finishes arriving: it holds one in-flight slot
/// of the public listener until `finish` sends the rest of the body.
struct SlowRequest {
    stream: TcpStream,
    body_left: usize,
}

impl SlowRequest {
    /// Sends the head of an authenticated `POST /ctms` asking for
    /// `100 Continue`, and returns once the server sends it. hyper sends it
    /// when the handler starts reading the body, so by then the request holds
    /// a slot (the limit is taken before the handler runs).
    async fn start(addr: SocketAddr) -> Self {
        let body_len = r#"{"email": {"primary_email": "slow@example.com"}}"#.len();
        let head = format!(
            "POST /ctms HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Authorization: {}\r\nContent-Type: application/json\r\n\
             Expect: 100-continue\r\nContent-Length: {body_len}\r\n\r\n",
            basic()
        );
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(head.as_bytes()).await.expect("head sent");
        let mut interim = Vec::new();
        let wait = async {
            while !interim.ends_with(b"\r\n\r\n") {
                interim.push(stream.read_u8().await.expect("interim response"));
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("100 Continue within the deadline");
        let interim = String::from_utf8_lossy(&interim);
        assert!(interim.starts_with("HTTP/1.1 100"), "{interim:?}");
        Self {
            stream,
            body_left: body_len,
        }
    }

    /// Sends the body and returns the final status.
    async fn finish(mut self) -> u16 {
        let body = r#"{"email": {"primary_email": "slow@example.com"}}"#;
        assert_eq!(body.len(), self.body_left);
        self.stream
            .write_all(body.as_bytes())
            .await
            .expect("body sent");
        let mut response = String::new();
        tokio::time::timeout(DEADLINE, self.stream.read_to_string(&mut response))
            .await
            .expect("answered within the deadline")
            .expect("response read");
        response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad response {response:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_on_the_private_listener_do_not_queue_behind_slow_requests() {
    const SLOTS: usize = 4;
    let slots = SLOTS.to_string();
    let server = Server::start_with(&[
        ("CTMS_ADDR", "127.0.0.1:0"),
        ("CTMS_METRICS_ADDR", "127.0.0.1:0"),
        ("CTMS_CLIENTS", CLIENTS),
        ("CTMS_MAX_IN_FLIGHT", &slots),
    ])
    .await;
    let private = server
        .metrics_addr
        .expect("the metrics listener is announced");

    let mut slow = Vec::new();
    for _ in 0..SLOTS {
        slow.push(SlowRequest::start(server.addr).await);
    }
    // Every slot is taken: a public request now waits for one.
    let queued = tokio::spawn(get(server.addr, "/__lbheartbeat__"));

    let scraped = tokio::time::timeout(Duration::from_secs(1), scrape(private, "/metrics"))
        .await
        .expect("the private /metrics answers within a second while saturated");
    let in_flight = scraped.value(
        "ctms_requests_total",
        &[
            ("method", "POST"),
            ("path_template", "/ctms"),
            ("status_code", "201"),
            ("status_code_family", "2xx"),
        ],
    );
    assert_eq!(
        in_flight,
        Some(0.0),
        "the slow requests are still in flight"
    );
    assert!(
        !queued.is_finished(),
        "the public request was answered: the listener was not saturated"
    );

    // Freeing one slot lets the queued request through.
    let first = slow.pop().expect("one slow request");
    assert_eq!(first.finish().await, 201);
    let queued = tokio::time::timeout(DEADLINE, queued)
        .await
        .expect("the queued request is answered once a slot frees")
        .expect("the request task did not panic");
    assert_eq!(queued.status, 200);
    for request in slow {
        assert_eq!(request.finish().await, 201);
    }
    let after = server.scrape().await;
    assert_eq!(
        after.value(
            "ctms_requests_total",
            &[
                ("method", "POST"),
                ("path_template", "/ctms"),
                ("status_code", "201"),
                ("status_code_family", "2xx"),
            ],
        ),
        Some(SLOTS as f64)
    );
}

/// Sends `head` one byte at a time, every `gap`, until the server closes the
/// connection or `head` runs out; returns how long the server kept it open.
async fn drip(addr: SocketAddr, head: &[u8], gap: Duration) -> Duration {
    let start = std::time::Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let (mut reader, mut writer) = stream.split();
    let mut closed = Box::pin(async move {
        let mut buffer = [0_u8; 1024];
        // Whatever the server sends (a 408, say) until it closes.
        while let Ok(1..) = reader.read(&mut buffer).await {}
    });
    let mut ticks = tokio::time::interval(gap);
    for &byte in head {
        tokio::select! {
            () = &mut closed => return start.elapsed(),
            _ = ticks.tick() => {
                if writer.write_all(&[byte]).await.is_err() {
                    return start.elapsed();
                }
            }
        }
    }
    panic!(
        "the server read {} header bytes over {:?} and kept the connection",
        head.len(),
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_its_headers_slowly_is_disconnected() {
    let server = Server::start_with(&[
        ("CTMS_ADDR", "127.0.0.1:0"),
        ("CTMS_CLIENTS", CLIENTS),
        ("CTMS_HEADER_READ_TIMEOUT", "0.5"),
    ])
    .await;
    // A head that never ends: 20 s of bytes at one every 50 ms.
    let head: Vec<u8> = b"GET / HTTP/1.1\r\n"
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'a', 400))
        .collect();
    let open = drip(server.addr, &head, Duration::from_millis(50)).await;
    assert!(
        open >= Duration::from_millis(400) && open < Duration::from_secs(5),
        "the connection stayed open {open:?} with a 0.5 s header timeout"
    );
    // A prompt client is served as usual.
    assert_eq!(get(server.addr, "/__lbheartbeat__").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_timeout_must_be_a_positive_number_of_seconds() {
    for value in ["0", "-1", "soon", ""] {
        let mut process = Process::spawn(&[
            ("CTMS_ADDR", "127.0.0.1:0"),
            ("CTMS_HEADER_READ_TIMEOUT", value),
        ]);
        assert!(!process.wait_for_exit().await.success(), "{value:?}");
        let stderr = process.stderr();
        assert!(
            stderr.contains("CTMS_HEADER_READ_TIMEOUT must be a number of seconds"),
            "{value:?}: {stderr}"
        );
    }
}

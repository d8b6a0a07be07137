//! Helpers shared by the integration tests: a strict parser of the Prometheus
//! text format, a minimal HTTP/1.1 client over raw TCP, and for tests that
//! drive a layer in-process, a registry read back as text, bodies given
//! frame by frame and a waker for polling by hand.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::Body;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_prometheus::MetricsExporter;

mod frames;
#[allow(unused_imports)] // Not every test binary uses both.
pub(crate) use frames::{noop_waker, FramesBody};

/// The protobuf exposition's messages, from the crate's own declarations.
#[cfg(feature = "protobuf")]
#[path = "../../src/proto.rs"]
#[allow(unreachable_pub)]
pub(crate) mod proto;

/// How long one raw exchange may take before it counts as hung.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(30);

/// One sample line of an exposition.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// A parsed exposition in the text format 0.0.4.
#[derive(Clone, Debug, Default)]
pub(crate) struct Exposition {
    pub(crate) samples: Vec<Sample>,
    /// Metric family name to its (unescaped) help text.
    pub(crate) help: HashMap<String, String>,
    /// Metric family name to its type (`counter`, `histogram`, ...).
    pub(crate) types: HashMap<String, String>,
}

impl Exposition {
    /// The value of the sample named `name` whose label set is exactly `labels`
    /// (in any order).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|&(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|sample| sample.name == name && sample.labels == wanted)
            .map(|sample| sample.value)
    }

    /// All samples named `name`.
    pub(crate) fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .collect()
    }

    /// The sum of the samples named `name` whose labels include all of `labels`.
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|&(key, value)| sample.labels.get(key).map(String::as_str) == Some(value))
            })
            .map(|sample| sample.value)
            .sum()
    }
}

/// Parses the Prometheus text format 0.0.4.
///
/// # Panics
///
/// On malformed input, with a message quoting the offending line.
pub(crate) fn parse(text: &str) -> Exposition {
    let mut exposition = Exposition::default();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if let Err(why) = parse_comment(comment, &mut exposition) {
                malformed(index + 1, line, &why);
            }
            continue;
        }
        let sample = match parse_sample(trimmed) {
            Ok(sample) => sample,
            Err(why) => malformed(index + 1, line, &why),
        };
        exposition.samples.push(sample);
    }
    exposition
}

fn malformed(number: usize, line: &str, why: &str) -> ! {
    panic!("malformed exposition line {number}: {why}\n  {line:?}")
}

fn parse_comment(comment: &str, exposition: &mut Exposition) -> Result<(), String> {
    let comment = comment.trim_start_matches([' ', '\t']);
    let (keyword, rest) = comment.split_once([' ', '\t']).unwrap_or((comment, ""));
    if keyword != "HELP" && keyword != "TYPE" {
        return Ok(());
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let (name, tail) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?} in # {keyword}"));
    }
    if keyword == "HELP" {
        let help = unescape(tail, false)?;
        if exposition.help.insert(name.to_owned(), help).is_some() {
            return Err(format!("second # HELP for {name}"));
        }
    } else {
        let kind = tail.trim();
        if !matches!(
            kind,
            "counter" | "gauge" | "histogram" | "summary" | "untyped"
        ) {
            return Err(format!("unknown metric type {kind:?}"));
        }
        if exposition
            .types
            .insert(name.to_owned(), kind.to_owned())
            .is_some()
        {
            return Err(format!("second # TYPE for {name}"));
        }
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    if !rest.starts_with([' ', '\t']) {
        return Err("expected whitespace before the value".to_owned());
    }
    let value = fields.next().ok_or("missing value")?;
    let value = parse_value(value)?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("invalid timestamp {timestamp:?}"))?;
    }
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected trailing text {extra:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `name="value",...}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("unterminated label set")?;
        let name = &rest[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("invalid label name {name:?}"));
        }
        rest = rest[name_end..].trim_start_matches([' ', '\t']);
        rest = rest
            .strip_prefix("=\"")
            .ok_or_else(|| format!("expected =\" after label {name}"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let close = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {name}")),
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => {
                        return Err(format!(
                            "invalid escape {:?} in label {name}",
                            other.map(|(_, c)| c)
                        ))
                    }
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        rest = rest[close + 1..].trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after label {name}"));
        }
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E')) =>
        {
            Err(format!("invalid value {text:?}"))
        }
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("invalid value {text:?}")),
    }
}

/// Unescapes a HELP text (`\\`, `\n`) or a label value (also `\"`).
fn unescape(text: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            other => return Err(format!("invalid escape {other:?}")),
        }
    }
    Ok(out)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A complete HTTP response.
#[derive(Clone, Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
    /// The body as received, for bodies that are not text.
    pub(crate) raw_body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// If the body is not JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {:?}", self.body))
    }
}

/// Sends `raw` (a complete HTTP/1.1 request, which should ask for
/// `Connection: close`) over a fresh connection and reads the response to EOF.
///
/// # Errors
///
/// I/O errors, a malformed response (`InvalidData`), or no complete answer
/// within 30 seconds (`TimedOut`).
pub(crate) async fn send_raw(addr: SocketAddr, raw: &str) -> io::Result<HttpResponse> {
    let head_request = raw.starts_with("HEAD ");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(raw.as_bytes()).await?;
        stream.flush().await?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await?;
        Ok::<_, io::Error>(bytes)
    };
    let bytes = tokio::time::timeout(EXCHANGE_DEADLINE, exchange)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no complete response from {addr} within {EXCHANGE_DEADLINE:?}"),
            )
        })??;
    parse_response(&bytes, head_request)
}

/// Parses a whole response as read to EOF, skipping interim 1xx responses.
fn parse_response(mut bytes: &[u8], head_request: bool) -> io::Result<HttpResponse> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    loop {
        let head_end = find(bytes, b"\r\n\r\n")
            .ok_or_else(|| invalid(format!("no complete response head in {:?}", lossy(bytes))))?;
        let head = std::str::from_utf8(&bytes[..head_end])
            .map_err(|_| invalid("response head is not UTF-8".to_owned()))?;
        let rest = &bytes[head_end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let status = parts
            .next()
            .and_then(|code| code.parse::<u16>().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
        let headers = lines
            .map(|line| {
                line.split_once(':')
                    .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
                    .ok_or_else(|| invalid(format!("bad header line {line:?}")))
            })
            .collect::<io::Result<Vec<_>>>()?;
        if (100..200).contains(&status) && status != 101 {
            bytes = rest;
            continue;
        }
        let mut response = HttpResponse {
            status,
            headers,
            body: String::new(),
            raw_body: Vec::new(),
        };
        let no_body = head_request || status == 204 || status == 304;
        let body = if no_body {
            Vec::new()
        } else if response
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            decode_chunked(rest).map_err(invalid)?
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
            if rest.len() < length {
                return Err(invalid(format!(
                    "body truncated: {} of {length} bytes",
                    rest.len()
                )));
            }
            rest[..length].to_vec()
        } else {
            rest.to_vec()
        };
        response.body = String::from_utf8_lossy(&body).into_owned();
        response.raw_body = body;
        return Ok(response);
    }
}

fn decode_chunked(mut bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(bytes, b"\r\n").ok_or("unterminated chunk size line")?;
        let line = std::str::from_utf8(&bytes[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if bytes.len() < size + 2 || &bytes[size..size + 2] != b"\r\n" {
            return Err(format!("truncated chunk of {size} bytes"));
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Sends `method path` with `Host`, `Connection: close`, `Content-Length`, the
/// extra `headers` and the `body`, and returns the response.
///
/// # Panics
///
/// On any I/O or protocol error, naming the request.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let body = body.unwrap_or_default();
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    send_raw(addr, &raw)
        .await
        .unwrap_or_else(|err| panic!("{method} {path} on {addr} failed: {err}"))
}

/// `GET path` without extra headers.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(addr, "GET", path, &[], None).await
}

/// Fetches `path` (a metrics endpoint) and parses the exposition.
///
/// # Panics
///
/// If the answer is not a 200 or does not parse.
pub(crate) async fn scrape(addr: SocketAddr, path: &str) -> Exposition {
    let response = get(addr, path).await;
    assert_eq!(
        response.status, 200,
        "scrape of {path} answered {}: {}",
        response.status, response.body
    );
    parse(&response.body)
}

/// The registry in the text format as the prometheus crate's
/// `TextEncoder` writes it, for exact sample lines (see [`sample`]).
pub(crate) fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .unwrap();
    String::from_utf8(buffer).unwrap()
}

/// The registry as [`MetricsExporter`] renders it in the text format,
/// parsed: a scrape without a server.
pub(crate) fn scrape_registry(registry: &Registry) -> Exposition {
    parse(&MetricsExporter::new(registry.clone()).render().unwrap())
}

/// The value of the sample written exactly as `series` (name and labels in
/// the encoder's order) in `text`, or `None` if the text lacks it.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
}

/// Number of samples in `text` whose name (before any `{`) is `name`.
pub(crate) fn count_series(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .count()
}

/// The `ctms_requests_total` sample of `method`, `template` and `code` in
/// `text` (see [`sample`]).
pub(crate) fn total(text: &str, method: &str, template: &str, code: u16) -> Option<f64> {
    sample(
        text,
        &format!(
            r#"ctms_requests_total{{method="{method}",path_template="{template}",status_code="{code}",status_code_family="{}xx"}}"#,
            code / 100
        ),
    )
}

/// Polls `body` to its end (or its error), returning the frames it gave.
///
/// # Panics
///
/// If the body is not ready when polled.
pub(crate) fn drain<B: Body + Unpin>(body: &mut B) -> usize {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut frames = 0;
    loop {
        match Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(_))) => frames += 1,
            Poll::Ready(Some(Err(_)) | None) => return frames,
            Poll::Pending => panic!("test bodies are always ready"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HISTOGRAM: &str = "\
# HELP ctms_requests_duration_seconds Histogram of request duration in seconds.
# TYPE ctms_requests_duration_seconds histogram
ctms_requests_duration_seconds_bucket{method=\"GET\",path_template=\"/\",status_code_family=\"3xx\",le=\"0.01\"} 2
ctms_requests_duration_seconds_bucket{method=\"GET\",path_template=\"/\",status_code_family=\"3xx\",le=\"+Inf\"} 3
ctms_requests_duration_seconds_sum{method=\"GET\",path_template=\"/\",status_code_family=\"3xx\"} 0.012500000000000001
ctms_requests_duration_seconds_count{method=\"GET\",path_template=\"/\",status_code_family=\"3xx\"} 3
";

    #[test]
    fn help_and_type_lines_are_collected_per_family() {
        let exposition = parse(
            "# HELP a_total Lines with \\\\ and \\n inside.\n# TYPE a_total counter\n\
             # just a comment\n\na_total 1\n",
        );
        assert_eq!(exposition.help["a_total"], "Lines with \\ and \n inside.");
        assert_eq!(exposition.types["a_total"], "counter");
        assert_eq!(exposition.samples.len(), 1);
        assert_eq!(exposition.value("a_total", &[]), Some(1.0));
    }

    #[test]
    fn escaped_label_values_round_trip() {
        let original = "we\"ird\\client\nwith, commas = {braces} ü";
        let escaped = original
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let text = format!("x_total{{client_id=\"{escaped}\",b=\"\"}} 7\n");
        let exposition = parse(&text);
        assert_eq!(exposition.samples[0].labels["client_id"], original);
        assert_eq!(
            exposition.value("x_total", &[("b", ""), ("client_id", original)]),
            Some(7.0)
        );
    }

    #[test]
    fn histogram_lines_parse_with_their_le_label() {
        let exposition = parse(HISTOGRAM);
        let family = "ctms_requests_duration_seconds";
        assert_eq!(exposition.types[family], "histogram");
        let labels = [
            ("method", "GET"),
            ("path_template", "/"),
            ("status_code_family", "3xx"),
        ];
        let mut inf = labels.to_vec();
        inf.push(("le", "+Inf"));
        assert_eq!(
            exposition.value(&format!("{family}_bucket"), &inf),
            Some(3.0)
        );
        assert_eq!(
            exposition.value(&format!("{family}_count"), &labels),
            Some(3.0)
        );
        assert_eq!(exposition.series(&format!("{family}_bucket")).len(), 2);
        assert_eq!(exposition.sum(&format!("{family}_bucket"), &labels), 5.0);
        let total = exposition.value(&format!("{family}_sum"), &labels).unwrap();
        assert!((total - 0.0125).abs() < 1e-12);
    }

    #[test]
    fn value_needs_the_exact_label_set_in_any_order_and_sum_a_subset() {
        let exposition = parse("r_total{a=\"1\",b=\"2\"} 3\nr_total{b=\"2\",a=\"9\",} 4\n");
        assert_eq!(
            exposition.value("r_total", &[("b", "2"), ("a", "1")]),
            Some(3.0)
        );
        assert_eq!(exposition.value("r_total", &[("a", "1")]), None);
        assert_eq!(
            exposition.value("r_total", &[("a", "9"), ("b", "2")]),
            Some(4.0)
        );
        assert_eq!(exposition.sum("r_total", &[("b", "2")]), 7.0);
        assert_eq!(exposition.sum("r_total", &[("b", "3")]), 0.0);
    }

    #[test]
    fn special_values_and_timestamps_are_accepted() {
        let exposition = parse("a +Inf\nb -Inf 1700000000000\nc NaN\nd 1.5e3\ne -0\n");
        assert_eq!(exposition.value("a", &[]), Some(f64::INFINITY));
        assert_eq!(exposition.value("b", &[]), Some(f64::NEG_INFINITY));
        assert!(exposition.value("c", &[]).unwrap().is_nan());
        assert_eq!(exposition.value("d", &[]), Some(1500.0));
        assert_eq!(exposition.value("e", &[]), Some(0.0));
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for bad in [
            "x{a=\"1\" 1",
            "x{a=\"1\"} ",
            "x{a=\"\\t\"} 1",
            "x{a=1} 1",
            "x{a=\"1\",a=\"2\"} 1",
            "x 1 2 3",
            "x one",
            "1x 1",
            "x{a=\"1\"}1",
            "# TYPE x fancy",
        ] {
            let result = std::panic::catch_unwind(|| parse(bad));
            assert!(result.is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn malformed_input_panics_quoting_the_line() {
        let result = std::panic::catch_unwind(|| parse("ok 1\nbroken{ 1\n"));
        let payload = result.expect_err("malformed input was accepted");
        let message = payload
            .downcast_ref::<String>()
            .expect("panic message is a String");
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("broken{ 1"), "{message}");
    }

    #[test]
    fn responses_with_length_chunked_and_interim_heads_are_decoded() {
        let plain = parse_response(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX-A: b\r\n\r\nhello",
            false,
        )
        .unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (200, "hello"));
        assert_eq!(plain.header("x-a"), Some("b"));
        assert_eq!(plain.header("X-Missing"), None);

        let chunked = parse_response(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n\
              Transfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((chunked.status, chunked.body.as_str()), (201, "Wikipedia"));

        let head = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n", true).unwrap();
        assert_eq!((head.status, head.body.as_str()), (200, ""));

        let to_eof = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\ngone", false).unwrap();
        assert_eq!((to_eof.status, to_eof.body.as_str()), (404, "gone"));

        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort", false).is_err()
        );
        assert!(parse_response(b"garbage\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n", false).is_err());
    }
}

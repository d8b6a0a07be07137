//! tower-prometheus against the strongest baseline (`FlatTableLayer`) and
//! the physical floor (`FloorLayer`) in interleaved wall-clock rounds: each
//! round times the bare service, the layer, the baseline and the floor
//! back to back, in an order that rotates from round
//! to round, so that the drift of a noisy machine hits all three alike, and
//! times each at two stack offsets 16 bytes apart, since where the request
//! loop's frame falls modulo 32 bytes moves a layer's cost. A round's figure
//! is the ratio of the two overheads over the bare service, each the mean of
//! the two offsets; the report gives the median and the quartiles over the
//! rounds, and the median ratio at each offset.
//!
//! `cargo bench --bench interleaved` (or `-- ROUNDS`). With
//! `count IMPL CASE N` it serves N requests and exits instead, for
//! callgrind (`scripts/instructions.py --peers` runs it that way).

use std::{
    convert::Infallible,
    future::Future,
    hint::black_box,
    pin::pin,
    process::ExitCode,
    sync::Arc,
    task::{Context, Poll, Waker},
    thread,
    time::{Duration, Instant},
};

use bench_peers::workload::{Bare, NoWake, MATCHED, TEMPLATES, UNMATCHED};
use bench_peers::{FlatTableLayer, FloorLayer};
use http::{HeaderName, Method, Request};
use prometheus::Registry;
use tower::{Layer, Service};
use tower_prometheus::{ClientIds, RequestMetricsLayer, Route};

static CLIENT_HEADER: HeaderName = HeaderName::from_static("x-client-id");

/// Requests per timing.
const REQUESTS: u64 = 50_000;

fn ours(registry: &Registry) -> RequestMetricsLayer {
    RequestMetricsLayer::builder()
        .routes(TEMPLATES.iter().map(|template| {
            Route::new(*template)
                .methods([Method::GET, Method::POST])
                .statuses([200, 404])
                .with_client_series()
        }))
        .client_ids(ClientIds::from_request(|headers| headers.get(&CLIENT_HEADER)?.to_str().ok()).known(["test_client"]))
        .build(registry)
        .expect("valid configuration")
}

fn flat(registry: &Registry) -> FlatTableLayer {
    FlatTableLayer::new(registry, TEMPLATES, CLIENT_HEADER.clone()).expect("valid templates")
}

fn floor() -> FloorLayer {
    FloorLayer::new(&TEMPLATES).expect("valid templates")
}

fn request(path: &str, client: bool) -> Request<()> {
    let mut builder = Request::get(path);
    if client {
        builder = builder.header(&CLIENT_HEADER, "test_client");
    }
    builder.body(()).expect("valid request")
}

/// Serves `n` copies of `template`; the script counts this function only.
#[inline(never)]
fn run_requests<S>(service: &mut S, template: &Request<()>, n: u64)
where
    S: Service<Request<()>, Error = Infallible>,
{
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..n {
        let mut request = Request::new(());
        *request.method_mut() = template.method().clone();
        *request.uri_mut() = template.uri().clone();
        *request.headers_mut() = template.headers().clone();
        let _ = service.poll_ready(&mut cx);
        let mut future = pin!(service.call(request));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => drop(black_box(response)),
            _ => unreachable!("the inner service answers at once"),
        }
    }
}

fn time<S>(service: &mut S, template: &Request<()>) -> Duration
where
    S: Service<Request<()>, Error = Infallible>,
{
    let start = Instant::now();
    run_requests(service, template, REQUESTS);
    start.elapsed()
}

/// [`time`] with the request loop's frame `PAD` bytes further down the
/// stack. How fast a layer runs can depend on where its frame falls
/// modulo 32 bytes (see BENCHMARKS.md), and a process lands on one offset
/// by chance, so each timing is taken at two offsets 16 bytes apart.
#[inline(never)]
fn time_at<const PAD: usize, S>(service: &mut S, template: &Request<()>) -> Duration
where
    S: Service<Request<()>, Error = Infallible>,
{
    let pad = black_box([0u8; PAD]);
    let elapsed = time(service, template);
    black_box(pad);
    elapsed
}

/// Times `service` at both stack offsets: the two timings.
fn time_both<S>(service: &mut S, template: &Request<()>) -> [Duration; 2]
where
    S: Service<Request<()>, Error = Infallible>,
{
    [
        time_at::<0, S>(service, template),
        time_at::<16, S>(service, template),
    ]
}

/// The median and the quartiles of `values`.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.25), at(0.75))
}

fn count(implementation: &str, case: &str, n: u64) -> ExitCode {
    let (path, client) = match case {
        "matched_client" => (MATCHED, true),
        "matched_no_client" => (MATCHED, false),
        "unmatched" => (UNMATCHED, false),
        _ => return ExitCode::FAILURE,
    };
    let template = request(path, client);
    let registry = Registry::new();
    // One request first, so that the series exist.
    match implementation {
        "bare" => run_requests(&mut Bare, &template, n + 1),
        "tower_prometheus" => run_requests(&mut ours(&registry).layer(Bare), &template, n + 1),
        "flat_table" => run_requests(&mut flat(&registry).layer(Bare), &template, n + 1),
        "floor" => run_requests(&mut floor().layer(Bare), &template, n + 1),
        _ => return ExitCode::FAILURE,
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("count") {
        let n = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(0);
        return count(&args[1], &args[2], n);
    }
    let rounds: usize = args.iter().find_map(|arg| arg.parse().ok()).unwrap_or(30);

    let registry = Registry::new();
    let ours = ours(&Registry::new());
    let flat = flat(&registry);
    let floor = floor();
    println!(
        "{rounds} interleaved rounds of {REQUESTS} requests each, at two stack offsets; \
         overhead = case - bare, same round and offset"
    );
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>22} {:>12} {:>12} {:>22}",
        "case",
        "bare ns",
        "ours ns",
        "flat ns",
        "floor ns",
        "ours/flat overhead",
        "at +0",
        "at +16",
        "ours/floor overhead"
    );
    for (case, path, client) in [
        ("matched_client", MATCHED, true),
        ("matched_no_client", MATCHED, false),
        ("unmatched", UNMATCHED, false),
    ] {
        let template = request(path, client);
        let mut bare = Bare;
        let mut layered = ours.layer(Bare);
        let mut baseline = flat.layer(Bare);
        let mut least = floor.layer(Bare);
        // Warm up: caches, branch predictors, the series.
        time_both(&mut bare, &template);
        time_both(&mut layered, &template);
        time_both(&mut baseline, &template);
        time_both(&mut least, &template);
        let mut ratios = [Vec::new(), Vec::new(), Vec::new()];
        let mut over_floor = Vec::new();
        let mut per_request = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for round in 0..rounds {
            let mut timed = [[Duration::ZERO; 2]; 4];
            for step in 0..4 {
                let which = (round + step) % 4;
                timed[which] = match which {
                    0 => time_both(&mut bare, &template),
                    1 => time_both(&mut layered, &template),
                    2 => time_both(&mut baseline, &template),
                    _ => time_both(&mut least, &template),
                };
            }
            let ns = timed.map(|both| both.map(|t| t.as_nanos() as f64 / REQUESTS as f64));
            let overhead_ratio = |at: usize| (ns[1][at] - ns[0][at]) / (ns[2][at] - ns[0][at]);
            // The figure of the round: both offsets weighed alike.
            let mean = ns.map(|both| (both[0] + both[1]) / 2.0);
            for (list, value) in per_request.iter_mut().zip(mean) {
                list.push(value);
            }
            ratios[0].push((mean[1] - mean[0]) / (mean[2] - mean[0]));
            over_floor.push((mean[1] - mean[0]) / (mean[3] - mean[0]));
            ratios[1].push(overhead_ratio(0));
            ratios[2].push(overhead_ratio(1));
        }
        let medians = per_request.map(|values| spread(values).0);
        let [(median, low, high), (at_0, _, _), (at_16, _, _)] = ratios.map(spread);
        let (floor_median, floor_low, floor_high) = spread(over_floor);
        println!(
            "{case:<20} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.2} ({low:.2}–{high:.2}) {at_0:>12.2} {at_16:>12.2} {:>10.2} ({floor_low:.2}–{floor_high:.2})",
            medians[0], medians[1], medians[2], medians[3], median, floor_median
        );
    }

    // Two threads on one route against one, interleaved the same way, and
    // the same with a client id on every request.
    let threads_time = |threads: usize, layered: bool, client: bool| {
        let services: Vec<_> = (0..threads).map(|_| ours.layer(Bare)).collect::<Vec<_>>();
        let start = Instant::now();
        thread::scope(|scope| {
            for mut service in services {
                scope.spawn(move || {
                    let template = request(MATCHED, client);
                    if layered {
                        run_requests(&mut service, &template, REQUESTS);
                    } else {
                        run_requests(&mut Bare, &template, REQUESTS);
                    }
                });
            }
        });
        start.elapsed().as_secs_f64() / threads as f64
    };
    for (layered, client) in [(false, false), (true, false), (true, true)] {
        let mut speedups = Vec::new();
        for round in 0..rounds {
            let (one, two) = if round % 2 == 0 {
                let one = threads_time(1, layered, client);
                (one, threads_time(2, layered, client))
            } else {
                let two = threads_time(2, layered, client);
                (threads_time(1, layered, client), two)
            };
            speedups.push(one / two);
        }
        let (median, low, high) = spread(speedups);
        let name = match (layered, client) {
            (false, _) => "bare",
            (true, false) => "tower_prometheus",
            (true, true) => "tower_prometheus with a client id",
        };
        println!("two threads vs one, {name}: {median:.2}× ({low:.2}–{high:.2})");
    }
    ExitCode::SUCCESS
}

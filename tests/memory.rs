//! Memory follows the traffic, not the configuration, and hostile traffic
//! cannot grow it or the series count past the documented bounds.
//!
//! Live heap bytes are counted by a global allocator; the tests of this
//! binary run one at a time, each on a thread of its own, so each sees
//! only its own allocations.

#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition

use std::{
    alloc::{GlobalAlloc, Layout, System},
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicIsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    task::{Context, Poll, Wake, Waker},
};

use http::{Method, Request, Response, StatusCode};
use prometheus::Registry;
use tower::{Layer, Service};
use tower_prometheus::{ClientId, ClientIds, MetricsExporter, RequestMetricsLayer, Route};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a plain atomic, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Held by every test, so that the live byte count is one test's.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `test` alone, so that the live byte count is its own.
fn alone(test: fn()) {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    test();
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn templates(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("/route{i}/{{id}}")).collect()
}

#[test]
fn an_idle_layer_with_many_routes_and_shards_is_small() {
    alone(|| {
        let templates = templates(10_000);
        let routes: Vec<Route> = templates.iter().map(Route::new).collect();
        let registry = Registry::new();
        let before = live();
        let layer = RequestMetricsLayer::builder()
            .routes(routes)
            .shards(64)
            .build(&registry)
            .unwrap();
        let idle = live() - before;
        // Used to be about 949 MB. Most of it now is matchit's tree, which a
        // router of any kind holds; the crate docs state that the layer's own
        // part is at most 128 bytes per route, whatever the shards.
        let before = live();
        let mut router = matchit::Router::new();
        for (id, template) in templates.iter().enumerate() {
            router.insert(template.as_str(), id).unwrap();
        }
        let matchit = live() - before;
        let ours = idle - matchit;
        assert!(
            ours <= 10_000 * 128,
            "{ours} bytes of our own for an idle layer (matchit: {matchit})"
        );
        assert!(idle < 100 << 20, "{idle} bytes for an idle layer");
        drop(router);
        let before = live() - idle;

        // An idle scrape lists nothing but the unmatched counter, and holds
        // nothing once done.
        let exporter = MetricsExporter::new(registry);
        let idle = live() - before;
        let text = exporter.render().unwrap();
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            1,
            "{text}"
        );
        drop(text);
        assert_eq!(live() - before, idle, "the scrape kept memory");

        // One request: that route's group directory, one group's shard
        // pointers, one shard's cells; the crate docs' figures.
        let mut service = layer.layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
        let mut request = |path: &str| {
            let future = service.call(Request::get(path).body(()).unwrap());
            poll_ready_now(future).unwrap();
        };
        request("/route1/a"); // takes the thread's shard lease
        let start = live();
        request("/route2/a");
        let first = live() - start;
        assert!(first <= 4 * 1024, "{first} bytes for a first request");
        request("/route2/b");
        assert_eq!(live() - start, first, "a second request allocates nothing");
    });
}

#[test]
fn memory_grows_with_the_groups_touched() {
    alone(|| {
        let templates = templates(100);
        let registry = Registry::new();
        let layer = RequestMetricsLayer::builder()
            .routes(templates.iter().map(Route::new))
            .shards(8)
            .build(&registry)
            .unwrap();
        let mut service = layer.layer(tower::service_fn(|request: Request<()>| async move {
            let mut response = Response::new(String::new());
            *response.status_mut() =
                StatusCode::from_u16(request.uri().query().unwrap_or("200").parse().unwrap())
                    .unwrap();
            Ok::<_, Infallible>(response)
        }));
        let mut request = |path: &str| {
            poll_ready_now(service.call(Request::get(path).body(()).unwrap())).unwrap();
        };
        request("/route0/x");
        let start = live();
        // Ten more groups on ten more routes.
        for route in 1..=10 {
            request(&format!("/route{route}/x"));
        }
        let routes_and_groups = live() - start;
        let per_route = routes_and_groups / 10;
        // The crate docs' table, with S = 8 shards and B = 7 buckets.
        let (shards, buckets) = (8, 7);
        let cells = 1_000 + 8 * (buckets + 1);
        let group = 16 * shards + 64;
        assert!(
            per_route <= 1_600 + group + cells,
            "{per_route} bytes per touched route"
        );
        // More groups on the same routes: no route directory this time.
        let start = live();
        for route in 1..=10 {
            request(&format!("/route{route}/x?404"));
        }
        let per_group = (live() - start) / 10;
        assert!(per_group < per_route, "{per_group} ≥ {per_route}");
        assert!(
            per_group <= group + cells,
            "{per_group} bytes per touched group"
        );
    });
}

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

fn poll_ready_now<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the inner service answers at once"),
    }
}

/// xorshift64*: reproducible hostile traffic without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// How the inner service ends a request.
#[derive(Clone, Copy, Debug)]
enum Ending {
    Respond(u16),
    Error,
    PanicInCall,
    PanicInPoll,
    /// The response future is dropped before it is ready.
    Drop,
}

/// What one request carries to the inner service.
#[derive(Clone, Debug)]
struct Plan {
    ending: Ending,
    response_client: Option<String>,
}

struct Inner;

impl Service<Request<()>> for Inner {
    type Response = Response<String>;
    type Error = &'static str;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, &'static str>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let plan = request.extensions().get::<Plan>().unwrap().clone();
        match plan.ending {
            Ending::PanicInCall => panic!("flood: panic in call"),
            Ending::PanicInPoll => Box::pin(async { panic!("flood: panic in poll") }),
            Ending::Error => Box::pin(async { Err("flood: error") }),
            Ending::Drop => Box::pin(std::future::pending()),
            Ending::Respond(code) => Box::pin(async move {
                let mut response = Response::new(String::new());
                *response.status_mut() = StatusCode::from_u16(code).unwrap();
                if let Some(id) = plan.response_client {
                    response.extensions_mut().insert(ClientId::new(id));
                }
                Ok(response)
            }),
        }
    }
}

/// What the flood expects to find in the exposition.
#[derive(Default)]
struct Expected {
    recorded: u64,
    unmatched: u64,
    with_client: u64,
    by_status: BTreeMap<u16, u64>,
}

const TEMPLATES: [&str; 4] = [
    "/",
    "/items/{id}",
    "/items/{id}/parts/{part}",
    "/files/{*path}",
];
const CLIENT_IDS: [&str; 12] = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "__other__",
    "",
    "cr\rlf",
    "far-too-long-to-be-an-id",
];

fn flood(
    service: &mut impl Service<Request<()>, Error = &'static str>,
    rng: &mut Rng,
    requests: u64,
    expected: &mut Expected,
) {
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    let paths = [
        "/",
        "/items/1",
        "/items/2/parts/x",
        "/files/a/b/c",
        "/nope",
        "/items",
        "/items/1/2",
        "/%2e%2e/etc/passwd",
        "/items/1/parts",
        "/ITEMS/1",
        "//",
        "/files",
    ];
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "BREW", "X-RANDOM", "get",
    ];
    for _ in 0..requests {
        let path = rng.pick(&paths);
        let matched = matches!(path, "/" | "/items/1" | "/items/2/parts/x" | "/files/a/b/c");
        let ending = match rng.below(100) {
            0..=84 => Ending::Respond(100 + rng.below(900) as u16),
            85..=89 => Ending::Error,
            90 => Ending::PanicInCall,
            91 => Ending::PanicInPoll,
            _ => Ending::Drop,
        };
        let header_client = (rng.below(3) == 0).then(|| rng.pick(&CLIENT_IDS));
        let response_client = (rng.below(3) == 0).then(|| rng.pick(&CLIENT_IDS).to_owned());
        let mut request = Request::builder()
            .method(Method::from_bytes(rng.pick(&methods).as_bytes()).unwrap())
            .uri(path);
        if let Some(id) = header_client.filter(|id| http::HeaderValue::from_str(id).is_ok()) {
            request = request.header("x-client", id);
        }
        let header_sent = header_client.is_some_and(|id| http::HeaderValue::from_str(id).is_ok());
        let plan = Plan {
            ending,
            response_client: response_client.clone(),
        };
        let request = request.extension(plan).body(()).unwrap();

        let status = match ending {
            Ending::Respond(code) => code,
            Ending::Error | Ending::PanicInCall | Ending::PanicInPoll => 500,
            Ending::Drop => 499,
        };
        let client = match ending {
            Ending::Respond(_) => response_client.is_some() || header_sent,
            _ => header_sent,
        };
        if matched {
            expected.recorded += 1;
            *expected.by_status.entry(status).or_default() += 1;
            expected.with_client += u64::from(client);
        } else {
            expected.unmatched += 1;
        }

        let _ = service.poll_ready(&mut cx);
        let Ok(future) = catch_unwind(AssertUnwindSafe(|| service.call(request))) else {
            continue;
        };
        let mut future = Box::pin(future);
        match ending {
            Ending::Drop => {
                assert!(future.as_mut().poll(&mut cx).is_pending());
                drop(future);
            }
            _ => {
                let _ = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
            }
        }
    }
}

#[test]
fn a_flood_of_hostile_requests_stays_exact_and_within_the_bounds() {
    alone(|| {
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {})); // the flood's panics are expected
        let max_clients = 5;
        let registry = Registry::new();
        let layer = RequestMetricsLayer::builder()
            .routes(TEMPLATES.map(Route::new))
            .client_ids(
                ClientIds::from_request(|headers| headers.get("x-client")?.to_str().ok())
                    .max(max_clients)
                    .max_len(16),
            )
            .build(&registry)
            .unwrap();
        let mut service = layer.layer(Inner);
        let mut rng = Rng(0x5eed_cafe_f00d_beef);
        let mut expected = Expected::default();

        flood(&mut service, &mut rng, 100_000, &mut expected);
        let warm = live();
        flood(&mut service, &mut rng, 200_000, &mut expected);
        let grown = live() - warm;
        std::panic::set_hook(previous_hook);
        // Every group had its cells by the end of the first 100,000; the next
        // 200,000 requests may only fill in the odd new one.
        assert!(
            grown < 256 * 1024,
            "{grown} bytes more after 200,000 requests"
        );

        let text = MetricsExporter::new(registry).render().unwrap();
        let mut series: BTreeMap<&str, u64> = BTreeMap::new();
        let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
        let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            assert!(
                seen.insert(line.rsplit_once(' ').unwrap().0),
                "duplicate: {line}"
            );
            let (name_labels, value) = line.rsplit_once(' ').unwrap();
            let name = name_labels.split('{').next().unwrap();
            let value: f64 = value.parse().unwrap();
            *series.entry(name).or_default() += 1;
            *sums.entry(name).or_default() += value;
            if name == "ctms_requests_total" {
                let code = name_labels.split("status_code=\"").nth(1).unwrap()[..3]
                    .parse()
                    .unwrap();
                *by_status.entry(code).or_default() += value as u64;
            }
        }
        // Exact totals.
        assert_eq!(sums["ctms_requests_total"], expected.recorded as f64);
        assert_eq!(
            sums["ctms_requests_duration_seconds_count"],
            expected.recorded as f64
        );
        assert_eq!(sums["ctms_api_requests_total"], expected.with_client as f64);
        assert_eq!(
            sums["ctms_requests_unmatched_total"],
            expected.unmatched as f64
        );
        assert_eq!(by_status, expected.by_status);
        // The series bound of the crate docs, with R = 4 templates and C = 5.
        let routes = TEMPLATES.len() as u64;
        assert!(series["ctms_requests_total"] <= routes * 10 * 900);
        assert!(series["ctms_requests_duration_seconds_count"] <= routes * 10 * 9);
        assert!(series["ctms_api_requests_total"] <= routes * 10 * 9 * (max_clients as u64 + 1));
        assert_eq!(series["ctms_requests_unmatched_total"], 1);
        // No raw path, no invalid id, no unknown method became a label value.
        for leaked in [
            "/items/1\"",
            "etc/passwd",
            "cr\r",
            "far-too-long",
            "BREW",
            "X-RANDOM",
        ] {
            assert!(!text.contains(leaked), "{leaked:?} leaked");
        }
    });
}

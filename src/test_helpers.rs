//! Helpers for the unit tests: a registry rendered to text and read back,
//! and a waker for polling by hand.

use std::{
    sync::Arc,
    task::{Wake, Waker},
};

use prometheus::{Encoder, Registry, TextEncoder};

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// A waker that does nothing, for futures polled by hand.
pub(crate) fn noop_waker() -> Waker {
    Waker::from(Arc::new(NoWake))
}

/// The registry in the text format, as a scrape would see it.
pub(crate) fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .unwrap();
    String::from_utf8(buffer).unwrap()
}

/// The value of the sample written exactly as `series` (name and labels in
/// the encoder's order), or `None` if the scrape lacks it.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
}

/// Number of samples whose name (before any `{`) is `name`.
pub(crate) fn count_series(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .count()
}

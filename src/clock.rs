//! The clock requests are timed with.
//!
//! Two clock reads per request are the largest part of what the layer
//! costs, so with the `quanta` feature (on by default) they go to
//! `quanta`'s TSC clock: a few nanoseconds a read where the CPU has an
//! invariant TSC, and the OS's monotonic clock where it has not.
//! Without the feature, `std::time::Instant`.

#[cfg(feature = "quanta")]
pub(crate) use quanta::Instant;
#[cfg(not(feature = "quanta"))]
pub(crate) use std::time::Instant;

/// Calibrates the clock, so that the first request does not pay for it.
pub(crate) fn warm_up() {
    let _ = Instant::now();
}

/// Nanoseconds since `start`, saturating (and zero should the clock seem to
/// run backwards).
#[inline]
pub(crate) fn elapsed_ns(start: Instant) -> u64 {
    let elapsed = Instant::now().saturating_duration_since(start);
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_follows_the_system_clock() {
        let start = Instant::now();
        let wall = std::time::Instant::now();
        // Spin until the OS clock has moved a millisecond.
        while wall.elapsed() < std::time::Duration::from_millis(1) {}
        let ours = elapsed_ns(start);
        let theirs = u64::try_from(wall.elapsed().as_nanos()).unwrap();
        assert!(ours >= 900_000, "{ours} ns measured for at least 1 ms");
        assert!(
            ours <= theirs + 1_000_000,
            "{ours} ns measured for {theirs} ns"
        );
    }
}

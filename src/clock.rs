//! The clock requests are timed with.
//!
//! Two clock reads per request are among the largest parts of what the
//! layer costs, so with the `quanta` feature (on by default) they go to
//! `quanta`'s TSC clock: a few nanoseconds a read where the CPU has an
//! invariant TSC, and the OS's monotonic clock where it has not. Without
//! the feature, `std::time::Instant`.
//!
//! The layer keeps its own [`Clock`] and reads it raw: `quanta::Instant::now`
//! would look up a thread-local override and a global clock, and scale the
//! reading to nanoseconds, on every read; here the start is kept unscaled
//! and only the difference is scaled, once, when the request is recorded.

/// A reading of the [`Clock`], meaningful only to the clock that took it.
#[cfg(feature = "quanta")]
pub(crate) type Stamp = u64;
/// A reading of the [`Clock`], meaningful only to the clock that took it.
#[cfg(not(feature = "quanta"))]
pub(crate) type Stamp = std::time::Instant;

/// The clock of one layer.
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    #[cfg(feature = "quanta")]
    inner: quanta::Clock,
}

impl Clock {
    /// The clock; with `quanta`, calibrated once per process, at the first
    /// layer built, so that no request pays for it.
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(feature = "quanta")]
            inner: quanta::Clock::new(),
        }
    }

    /// Now.
    #[inline]
    pub(crate) fn now(&self) -> Stamp {
        #[cfg(feature = "quanta")]
        {
            self.inner.raw()
        }
        #[cfg(not(feature = "quanta"))]
        {
            std::time::Instant::now()
        }
    }

    /// Nanoseconds since `start`, saturating (and zero should the clock seem
    /// to run backwards).
    #[inline]
    pub(crate) fn elapsed_ns(&self, start: Stamp) -> u64 {
        #[cfg(feature = "quanta")]
        {
            self.inner.delta_as_nanos(start, self.inner.raw())
        }
        #[cfg(not(feature = "quanta"))]
        {
            let elapsed = std::time::Instant::now().saturating_duration_since(start);
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_follows_the_system_clock() {
        let clock = Clock::new();
        let start = clock.now();
        let wall = std::time::Instant::now();
        // Spin until the OS clock has moved a millisecond.
        while wall.elapsed() < std::time::Duration::from_millis(1) {}
        let ours = clock.elapsed_ns(start);
        let theirs = u64::try_from(wall.elapsed().as_nanos()).unwrap();
        assert!(ours >= 900_000, "{ours} ns measured for at least 1 ms");
        assert!(
            ours <= theirs + 1_000_000,
            "{ours} ns measured for {theirs} ns"
        );
    }

    #[test]
    fn a_start_later_than_now_is_zero_elapsed() {
        // Another core's clock slightly ahead must not wrap around to
        // centuries.
        let clock = Clock::new();
        #[cfg(feature = "quanta")]
        let ahead = clock.now() + 1_000_000_000_000;
        #[cfg(not(feature = "quanta"))]
        let ahead = clock.now() + std::time::Duration::from_secs(3600);
        assert_eq!(clock.elapsed_ns(ahead), 0);
    }
}

//! The exporter's own metrics: scrapes by format and outcome, and the time
//! a render takes.

use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

use super::ExporterError;
use super::Format;
use crate::schema::is_valid_namespace;

/// How a scrape was answered.
#[derive(Clone, Copy, Debug)]
pub(super) enum Outcome {
    /// 200, with the exposition.
    Ok,
    /// 503: too many scrapes were already waiting.
    Busy,
    /// 500: the exposition could not be encoded.
    Error,
}

impl Outcome {
    const ALL: [Self; 3] = [Self::Ok, Self::Busy, Self::Error];

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Busy => "busy",
            Self::Error => "error",
        }
    }
}

/// The exporter's counters, registered in the registry it exports.
#[derive(Clone, Debug)]
pub(super) struct Stats {
    scrapes: IntCounterVec,
    render_seconds: Histogram,
}

impl Stats {
    /// Registers `<namespace>_exporter_scrapes_total{format, outcome}` and
    /// `<namespace>_exporter_render_seconds` in `registry`, every series at
    /// zero.
    pub(super) fn register(registry: &Registry, namespace: &str) -> Result<Self, ExporterError> {
        if !is_valid_namespace(namespace) {
            return Err(ExporterError::InvalidNamespace {
                namespace: namespace.to_owned(),
            });
        }
        let scrapes_name = format!("{namespace}_exporter_scrapes_total");
        let scrapes = IntCounterVec::new(
            Opts::new(
                scrapes_name.clone(),
                "Scrapes answered by the metrics exporter, by format and outcome \
                 (ok: 200, busy: 503 with Retry-After, error: 500).",
            ),
            &["format", "outcome"],
        )
        .map_err(|source| ExporterError::AlreadyRegistered {
            metric: scrapes_name.clone(),
            source,
        })?;
        for format in Format::ALL {
            for outcome in Outcome::ALL {
                scrapes.with_label_values(&[format.name(), outcome.label()]);
            }
        }
        let render_name = format!("{namespace}_exporter_render_seconds");
        let render_seconds = Histogram::with_opts(
            HistogramOpts::new(
                render_name.clone(),
                "Time to gather the registry and encode it, per render (concurrent \
                 scrapes share one).",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
        )
        .map_err(|source| ExporterError::AlreadyRegistered {
            metric: render_name.clone(),
            source,
        })?;
        registry
            .register(Box::new(scrapes.clone()))
            .map_err(|source| ExporterError::AlreadyRegistered {
                metric: scrapes_name.clone(),
                source,
            })?;
        if let Err(source) = registry.register(Box::new(render_seconds.clone())) {
            // Nothing stays registered on failure.
            let _ = registry.unregister(Box::new(scrapes));
            return Err(ExporterError::AlreadyRegistered {
                metric: render_name,
                source,
            });
        }
        Ok(Self {
            scrapes,
            render_seconds,
        })
    }

    pub(super) fn answered(&self, format: Format, outcome: Outcome) {
        self.scrapes
            .with_label_values(&[format.name(), outcome.label()])
            .inc();
    }

    pub(super) fn rendered(&self, started: Instant) {
        self.render_seconds.observe(started.elapsed().as_secs_f64());
    }
}

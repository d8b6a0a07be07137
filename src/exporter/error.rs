//! The error returned when the exporter cannot register its own metrics.

use std::{error::Error, fmt};

/// Why [`MetricsExporter::self_metrics`](crate::MetricsExporter::self_metrics)
/// could not register the exporter's own metrics. Nothing is registered
/// then.
#[non_exhaustive]
#[derive(Debug)]
pub enum ExporterError {
    /// The namespace is not a valid metric name prefix.
    InvalidNamespace {
        /// The namespace as given.
        namespace: String,
    },
    /// A metric with one of the exporter's names is already registered (the
    /// exporter's metrics turned on twice, say).
    AlreadyRegistered {
        /// The full metric name, namespace included.
        metric: String,
        /// What the registry said.
        source: prometheus::Error,
    },
}

impl fmt::Display for ExporterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidNamespace { namespace } => write!(
                f,
                "invalid namespace {namespace:?} for the exporter's metrics: use letters, \
                 digits and underscores, not starting with a digit (for example \"ctms\")"
            ),
            Self::AlreadyRegistered { metric, .. } => write!(
                f,
                "metric {metric:?} is already registered in this registry; turn the \
                 exporter's metrics on once, or give them another namespace"
            ),
        }
    }
}

impl Error for ExporterError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::AlreadyRegistered { source, .. } => Some(source),
            Self::InvalidNamespace { .. } => None,
        }
    }
}

//! Where every layer starts: the builder, or, with axum, the one-line pair
//! of a layer and its exporter.

use crate::{Builder, RequestMetricsLayer};

impl RequestMetricsLayer {
    /// A builder with the CTMS defaults: namespace `ctms`, the default
    /// buckets, no routes, unmatched paths not recorded.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The one-line start for an axum app: a layer that takes every
    /// template from axum's `MatchedPath`, with every other option at its
    /// default, registered in a registry of its own, and the exporter that
    /// serves that registry.
    ///
    /// Add the layer with `Router::layer` (so that axum has routed each
    /// request before the layer sees it) and mount the exporter where
    /// Prometheus scrapes:
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_prometheus::RequestMetricsLayer;
    ///
    /// let (metrics, exporter) = RequestMetricsLayer::pair();
    /// let app: Router = Router::new()
    ///     .route("/users/{id}", get(|| async { "user" }))
    ///     .layer(metrics)
    ///     .route_service("/metrics", exporter);
    /// ```
    ///
    /// For routes, client ids or anything else, use the
    /// [`builder`](Self::builder) with
    /// [`templates_from_matched_path(true)`](Builder::templates_from_matched_path).
    #[cfg(feature = "axum")]
    pub fn pair() -> (Self, crate::MetricsExporter) {
        let registry = prometheus::Registry::new();
        // The defaults on an empty registry: nothing can clash or be out
        // of range, so this build cannot fail.
        let layer = Self::builder()
            .templates_from_matched_path(true)
            .build(&registry)
            .expect("a bug in tower-prometheus: the defaults failed to build");
        (layer, crate::MetricsExporter::new(registry))
    }
}

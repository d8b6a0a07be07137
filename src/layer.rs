//! The layer: what wraps services, built once and cloned freely.

use std::{marker::PhantomData, sync::Arc};

use tower_layer::Layer;

use crate::{
    bound::SeriesBound, recorder::Recorder, request_body::PassRequestBody, RequestMetrics,
};

/// A [`Layer`] that wraps services in [`RequestMetrics`].
///
/// Build it once with [`RequestMetricsLayer::builder`] (or, with axum,
/// [`RequestMetricsLayer::pair`]) and clone it freely:
/// clones share the same metrics. See the [crate docs](crate) for an example.
///
/// `M` says how request bodies reach the inner service: as they came
/// ([`PassRequestBody`], the default), or wrapped to count their bytes
/// ([`CountRequestBody`](crate::CountRequestBody), from
/// [`Builder::request_bytes`](crate::Builder::request_bytes)).
#[derive(Clone, Debug)]
pub struct RequestMetricsLayer<M = PassRequestBody> {
    recorder: Arc<Recorder>,
    mode: PhantomData<M>,
}

impl<M> RequestMetricsLayer<M> {
    pub(crate) fn new(recorder: Arc<Recorder>) -> Self {
        Self {
            recorder,
            mode: PhantomData,
        }
    }

    /// The most series this layer can expose, whatever the traffic: the
    /// formula of the [crate docs](crate#hostile-traffic-and-cardinality)
    /// for its configuration (routes, the unmatched value, templates it may
    /// learn, buckets, the client id cap, profile and options).
    ///
    /// ```
    /// use tower_prometheus::{ClientIds, RequestMetricsLayer, Route};
    ///
    /// let layer = RequestMetricsLayer::builder()
    ///     .route(Route::new("/ctms/{email_id}"))
    ///     .client_ids(ClientIds::new().max(10))
    ///     .build(&prometheus::Registry::new())?;
    /// let bound = layer.series_bound();
    /// // One route, 10 methods: 9,000 status codes, 90 histograms of 10
    /// // lines, 90 × 11 client series, the unmatched count, 17 gRPC codes.
    /// assert_eq!(bound.series(), 9_000 + 900 + 990 + 1 + 17);
    /// println!("series_bound={}", bound.series());
    /// # Ok::<(), tower_prometheus::BuildError>(())
    /// ```
    pub fn series_bound(&self) -> SeriesBound {
        SeriesBound::of(&self.recorder)
    }

    #[cfg(test)]
    #[cfg(not(loom))]
    pub(crate) fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }
}

impl<S, M> Layer<S> for RequestMetricsLayer<M> {
    type Service = RequestMetrics<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics::new(inner, self.recorder.clone())
    }
}

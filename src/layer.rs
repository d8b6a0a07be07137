//! The layer: what wraps services, built once and cloned freely.

use std::{marker::PhantomData, sync::Arc};

use tower_layer::Layer;

use crate::{recorder::Recorder, request_body::PassRequestBody, RequestMetrics};

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

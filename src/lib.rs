//! Tower middleware that records Prometheus request metrics.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client_id;
mod error;
mod exporter;
mod future;
mod labels;
mod layer;
mod recorder;
mod routes;
mod service;

#[cfg(test)]
mod test_helpers;

pub use client_id::ClientId;
pub use error::BuildError;
pub use exporter::{MetricsExporter, TEXT_CONTENT_TYPE};
pub use future::ResponseFuture;
pub use layer::{
    Builder, RequestMetricsLayer, DEFAULT_BUCKETS, DEFAULT_MAX_CLIENT_IDS,
    DEFAULT_MAX_CLIENT_ID_LEN, DEFAULT_NAMESPACE,
};
pub use routes::Route;
pub use service::RequestMetrics;

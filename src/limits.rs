//! The defaults a layer starts from, and the limits its configuration is
//! checked against.
//!
//! A setting past its limit makes [`Builder::build`](crate::Builder::build)
//! fail with [`BuildError::OutOfRange`](crate::BuildError::OutOfRange),
//! which carries the limit; nothing here needs to be named to use the
//! crate. Every limit is far above what a real service uses: each keeps
//! one layer's memory and its series bounded whatever the configuration
//! was built from.
//!
//! This module imports nothing from the crate, so that every other one may
//! import from it.

/// The default namespace, the prefix of every metric name.
pub const DEFAULT_NAMESPACE: &str = "ctms";

/// The longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 128;

/// The default histogram bucket upper bounds of the CTMS profile, in
/// seconds (`+Inf` is always added).
pub const DEFAULT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// The bucket bounds the OpenTelemetry HTTP semantic conventions advise for
/// `http.server.request.duration`, in seconds: the default of the
/// OpenTelemetry profile.
pub const OTEL_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The most finite histogram bucket bounds.
pub const MAX_BUCKETS: usize = 64;

/// The default cap on distinct client ids per layer.
pub const DEFAULT_MAX_CLIENT_IDS: usize = 100;

/// The largest cap on distinct client ids.
pub const MAX_CLIENT_IDS: usize = 10_000;

/// The default cap on a client id's length, in bytes.
pub const DEFAULT_MAX_CLIENT_ID_LEN: usize = 128;

/// The largest cap on a client id's length, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 1024;

/// The default cap on templates learned from axum's `MatchedPath`.
pub const DEFAULT_MAX_MATCHED_TEMPLATES: usize = 1_000;

/// The largest cap on templates learned from axum's `MatchedPath`.
pub const MAX_MATCHED_TEMPLATES: usize = 10_000;

/// The most routes one layer takes: a million, far beyond any real router;
/// an idle route costs about 128 bytes plus matchit's tree.
pub const MAX_ROUTES: usize = 1 << 20;

/// The longest route template, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 1024;

/// The most parameters one template may have (catch-alls aside): matchit
/// holds no more.
pub const MAX_TEMPLATE_PARAMS: usize = 25;

/// The most shards a layer can have.
pub const MAX_SHARDS: usize = 1024;

/// The default native histogram schema: 8 buckets per doubling, a factor
/// of about 1.09 between bounds, so a quantile is known to within about
/// 4.5 %.
pub const DEFAULT_NATIVE_SCHEMA: i8 = 3;

/// The finest native histogram schema: 32 buckets per doubling, 1,152
/// buckets (9 KB) per series and shard at most.
pub const MAX_NATIVE_SCHEMA: i8 = 5;

/// The default number of scrapes that may wait for a running render before
/// more are turned away; see
/// [`MetricsExporter::max_waiting_scrapes`](crate::MetricsExporter::max_waiting_scrapes).
pub const DEFAULT_MAX_WAITING_SCRAPES: usize = 16;

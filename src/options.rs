//! A layer's configuration, held once: the builder fills it, the recorder
//! keeps it whole after validation.
//!
//! Every field's `Default` is the setting's default (`None` standing for a
//! default that depends on another setting or on the machine), so adding
//! an option takes three edits: the field, its setter, and the code that
//! reads it.

use http::HeaderMap;

use crate::{
    client_ids::{ClientIds, Reader},
    limits::{DEFAULT_MAX_MATCHED_TEMPLATES, DEFAULT_NAMESPACE, DEFAULT_NATIVE_SCHEMA},
    Profile, Route, TraceId,
};

/// Reads the trace id of a request's exemplar from its headers.
pub(crate) type TraceReader = Reader<dyn Fn(&HeaderMap) -> Option<TraceId> + Send + Sync>;

/// Where a request ends, for the duration histogram and the moment it is
/// counted; see [`Builder::recording_point`](crate::Builder::recording_point).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordingPoint {
    /// When the response head is ready (the default, as CTMS does): the
    /// duration is the time to the first byte of the answer, and a streamed
    /// body is not waited for.
    #[default]
    ResponseHead,
    /// When the response body ends: its last frame or its trailers, or the
    /// body dropped early (the client went away: 499) or failing (500). The
    /// duration covers the whole stream.
    BodyEnd,
}

#[derive(Debug, Default)]
pub(crate) struct Options {
    // What requests are recorded under.
    pub(crate) routes: Vec<Route>,
    pub(crate) unmatched: Option<String>,
    pub(crate) matched_templates: bool,
    pub(crate) max_matched_templates: Option<usize>,
    // How the metrics are named.
    pub(crate) namespace: Option<String>,
    pub(crate) profile: Profile,
    pub(crate) buckets: Option<Vec<f64>>,
    // Who made a request.
    pub(crate) client_ids: ClientIds,
    // The request's life.
    pub(crate) recording_point: RecordingPoint,
    pub(crate) in_flight: bool,
    pub(crate) response_bytes: bool,
    /// Set at build time from the builder's body mode.
    pub(crate) request_bytes: bool,
    // What the exposition shows besides the counts.
    pub(crate) exemplars: Option<TraceReader>,
    pub(crate) native_histograms: bool,
    pub(crate) native_schema: Option<i8>,
    // Tuning.
    pub(crate) shards: Option<usize>,
    /// The most series the configuration may allow, checked at build.
    pub(crate) max_series: Option<u64>,
}

impl Options {
    pub(crate) fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    pub(crate) fn max_matched_templates(&self) -> usize {
        self.max_matched_templates
            .unwrap_or(DEFAULT_MAX_MATCHED_TEMPLATES)
    }

    /// The native histograms' schema, when they are kept.
    pub(crate) fn native_schema(&self) -> Option<i8> {
        self.native_histograms
            .then(|| self.native_schema.unwrap_or(DEFAULT_NATIVE_SCHEMA))
    }

    pub(crate) fn at_body_end(&self) -> bool {
        self.recording_point == RecordingPoint::BodyEnd
    }
}

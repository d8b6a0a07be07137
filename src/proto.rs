//! The Prometheus protobuf exposition's messages (`io.prometheus.client`),
//! which the `MetricsExporter` sends in `Format::Protobuf`.
//!
//! Declared from Prometheus's `client_model`
//! (`io/prometheus/client/metrics.proto`) with `prost`'s derive, so that no
//! build needs `protoc`; field numbers and types are the `.proto`'s. The
//! fields this crate never writes (float counts, negative buckets, created
//! timestamps) are left out: a decoder skips what it does not declare.
//!
//! An exposition is a stream of length-delimited `MetricFamily` messages.
//! The tests decode scrapes with this same file (`tests/support`), so that
//! what is sent and what is checked cannot drift apart.

/// `io.prometheus.client.LabelPair`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPair {
    #[prost(string, optional, tag = "1")]
    /// The label name.
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    /// The label value.
    pub value: Option<String>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    /// Nanoseconds within the second.
    pub nanos: i32,
}

/// `io.prometheus.client.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    /// The exemplar's labels: here, `trace_id`.
    pub label: Vec<LabelPair>,
    #[prost(double, optional, tag = "2")]
    /// The observed value.
    pub value: Option<f64>,
    #[prost(message, optional, tag = "3")]
    /// When it was observed.
    pub timestamp: Option<Timestamp>,
}

/// `io.prometheus.client.Gauge`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    #[prost(double, optional, tag = "1")]
    /// The value.
    pub value: Option<f64>,
}

/// `io.prometheus.client.Counter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    #[prost(double, optional, tag = "1")]
    /// The value.
    pub value: Option<f64>,
    #[prost(message, optional, tag = "2")]
    /// The latest exemplar, if any.
    pub exemplar: Option<Exemplar>,
}

/// `io.prometheus.client.Quantile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantile {
    #[prost(double, optional, tag = "1")]
    /// The quantile, in [0, 1].
    pub quantile: Option<f64>,
    #[prost(double, optional, tag = "2")]
    /// Its value.
    pub value: Option<f64>,
}

/// `io.prometheus.client.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(uint64, optional, tag = "1")]
    /// Observations.
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    /// Their sum.
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    /// The quantiles.
    pub quantile: Vec<Quantile>,
}

/// `io.prometheus.client.Untyped`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Untyped {
    #[prost(double, optional, tag = "1")]
    /// The value.
    pub value: Option<f64>,
}

/// `io.prometheus.client.Bucket`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    #[prost(uint64, optional, tag = "1")]
    /// Observations at or below the bound.
    pub cumulative_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    /// The bound, inclusive.
    pub upper_bound: Option<f64>,
    #[prost(message, optional, tag = "3")]
    /// The latest exemplar in this bucket, if any.
    pub exemplar: Option<Exemplar>,
}

/// `io.prometheus.client.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    #[prost(sint32, optional, tag = "1")]
    /// Gap from the previous span's end (or, for the first, the first bucket's index).
    pub offset: Option<i32>,
    #[prost(uint32, optional, tag = "2")]
    /// Consecutive buckets in the span.
    pub length: Option<u32>,
}

/// `io.prometheus.client.Histogram`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(uint64, optional, tag = "1")]
    /// Observations.
    pub sample_count: Option<u64>,
    #[prost(double, optional, tag = "2")]
    /// Their sum.
    pub sample_sum: Option<f64>,
    #[prost(message, repeated, tag = "3")]
    /// The classic buckets, by increasing bound; `+Inf` is implied by the count.
    pub bucket: Vec<Bucket>,
    #[prost(sint32, optional, tag = "5")]
    /// Native histograms: the resolution; bucket bounds grow by `2^(2^-schema)`.
    pub schema: Option<i32>,
    #[prost(double, optional, tag = "6")]
    /// Native histograms: the zero bucket's width.
    pub zero_threshold: Option<f64>,
    #[prost(uint64, optional, tag = "7")]
    /// Native histograms: observations in the zero bucket.
    pub zero_count: Option<u64>,
    #[prost(message, repeated, tag = "12")]
    /// Native histograms: runs of populated buckets.
    pub positive_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, packed = "false", tag = "13")]
    /// Native histograms: each bucket's count minus the previous one's.
    pub positive_delta: Vec<i64>,
    #[prost(message, repeated, tag = "16")]
    /// Native histograms: their exemplars.
    pub exemplars: Vec<Exemplar>,
}

/// `io.prometheus.client.Metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    /// The series' labels.
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    /// A gauge's value.
    pub gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    /// A counter's value.
    pub counter: Option<Counter>,
    #[prost(message, optional, tag = "4")]
    /// A summary's values.
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "5")]
    /// An untyped value.
    pub untyped: Option<Untyped>,
    #[prost(message, optional, tag = "7")]
    /// A histogram's values.
    pub histogram: Option<Histogram>,
    #[prost(int64, optional, tag = "6")]
    /// An explicit timestamp, in milliseconds.
    pub timestamp_ms: Option<i64>,
}

/// `io.prometheus.client.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// A counter.
    Counter = 0,
    /// A gauge.
    Gauge = 1,
    /// A summary.
    Summary = 2,
    /// A untyped.
    Untyped = 3,
    /// A histogram.
    Histogram = 4,
}

/// `io.prometheus.client.MetricFamily`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    #[prost(string, optional, tag = "1")]
    /// The family's name.
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    /// Its help text.
    pub help: Option<String>,
    #[prost(enumeration = "MetricType", optional, tag = "3")]
    /// Its [`MetricType`].
    pub r#type: Option<i32>,
    #[prost(message, repeated, tag = "4")]
    /// Its series.
    pub metric: Vec<Metric>,
}

//! The exposition formats, and which one a scraper's `Accept` asks for.

use http::{header, HeaderMap};

/// An exposition format the [`MetricsExporter`](crate::MetricsExporter)
/// can answer in.
///
/// A scrape gets the format its `Accept` header ranks highest (q-values
/// included) among those below, and text 0.0.4 when it names none of them
/// or has no `Accept` at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// The Prometheus text format 0.0.4: what every scraper reads. No
    /// exemplars, no native histograms.
    Text,
    /// OpenMetrics 1.0.0 text: exemplars on the duration buckets and the
    /// request counters, when the layer records them.
    OpenMetrics,
    /// The Prometheus protobuf format (length-delimited `MetricFamily`
    /// messages): exemplars, and native histograms when the layer keeps
    /// them. Needs the `protobuf` feature.
    #[cfg(feature = "protobuf")]
    Protobuf,
}

/// `Content-Type` of the text format 0.0.4.
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics 1.0.0 text.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus protobuf format.
#[cfg(feature = "protobuf")]
const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => TEXT_CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            #[cfg(feature = "protobuf")]
            Self::Protobuf => PROTOBUF_CONTENT_TYPE,
        }
    }

    /// A short name, for logs and the exporter's own metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::OpenMetrics => "openmetrics",
            #[cfg(feature = "protobuf")]
            Self::Protobuf => "protobuf",
        }
    }

    /// The formats, in a fixed order.
    pub(crate) const ALL: &'static [Self] = &[
        Self::Text,
        Self::OpenMetrics,
        #[cfg(feature = "protobuf")]
        Self::Protobuf,
    ];

    /// Position in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Text => 0,
            Self::OpenMetrics => 1,
            #[cfg(feature = "protobuf")]
            Self::Protobuf => 2,
        }
    }

    /// The format the `Accept` headers in `headers` rank highest: the
    /// highest q-value wins, the earlier entry among equals; text 0.0.4
    /// when none names a format served here.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let mut best: Option<(f32, Self)> = None;
        let entries = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','));
        for entry in entries {
            let Some((format, q)) = media_range(entry) else {
                continue;
            };
            if q > 0.0 && best.map_or(true, |(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
        best.map_or(Self::Text, |(_, format)| format)
    }
}

/// The format one entry of `Accept` names, with its q-value.
fn media_range(entry: &str) -> Option<(Format, f32)> {
    let mut parts = entry.split(';');
    let media = parts.next()?.trim();
    let mut q = 1.0_f32;
    let mut version = None;
    let mut proto = None;
    let mut encoding = None;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            // An unparsable q-value makes the entry unacceptable.
            "q" => q = value.parse().ok().filter(|q: &f32| q.is_finite())?,
            "version" => version = Some(value),
            "proto" => proto = Some(value),
            "encoding" => encoding = Some(value),
            _ => {}
        }
    }
    let format = if media.eq_ignore_ascii_case("application/openmetrics-text") {
        // OpenMetrics 1.0.0; the pre-release 0.0.1 is not served.
        matches!(version, None | Some("1.0.0")).then_some(Format::OpenMetrics)?
    } else if media.eq_ignore_ascii_case("text/plain") {
        matches!(version, None | Some("0.0.4")).then_some(Format::Text)?
    } else if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        protobuf(proto, encoding)?
    } else if media == "*/*" || media.eq_ignore_ascii_case("text/*") {
        Format::Text
    } else {
        return None;
    };
    Some((format, q))
}

/// The protobuf format, if this build serves it and the parameters ask for
/// the delimited `MetricFamily` stream it is.
fn protobuf(proto: Option<&str>, encoding: Option<&str>) -> Option<Format> {
    let wanted = proto == Some("io.prometheus.client.MetricFamily")
        && matches!(encoding, None | Some("delimited"));
    #[cfg(feature = "protobuf")]
    {
        wanted.then_some(Format::Protobuf)
    }
    #[cfg(not(feature = "protobuf"))]
    {
        let _ = wanted;
        None
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn negotiate(accept: &str) -> Format {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        Format::negotiate(&headers)
    }

    #[test]
    fn no_accept_gets_text() {
        assert_eq!(Format::negotiate(&HeaderMap::new()), Format::Text);
    }

    #[test]
    fn unknown_or_unparsable_accept_gets_text() {
        assert_eq!(negotiate("application/json"), Format::Text);
        assert_eq!(negotiate(";;;,,=q"), Format::Text);
        assert_eq!(
            negotiate("application/openmetrics-text; version=9.9.9"),
            Format::Text
        );
    }

    #[test]
    fn what_prometheus_sends_by_default_gets_openmetrics() {
        // Prometheus 2.x's scrape Accept header.
        let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(accept), Format::OpenMetrics);
    }

    #[test]
    fn q_values_decide_not_the_order() {
        assert_eq!(
            negotiate(
                "application/openmetrics-text;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.5"
            ),
            Format::Text
        );
        assert_eq!(
            negotiate("text/plain;q=0.2, application/openmetrics-text"),
            Format::OpenMetrics
        );
    }

    #[test]
    fn among_equal_q_values_the_first_wins() {
        assert_eq!(
            negotiate("text/plain, application/openmetrics-text"),
            Format::Text
        );
        assert_eq!(
            negotiate("application/openmetrics-text, text/plain"),
            Format::OpenMetrics
        );
    }

    #[test]
    fn q_zero_refuses_a_format() {
        assert_eq!(
            negotiate("application/openmetrics-text;q=0, text/plain;q=0.1"),
            Format::Text
        );
        assert_eq!(negotiate("application/openmetrics-text;q=0"), Format::Text);
    }

    #[cfg(feature = "protobuf")]
    #[test]
    fn what_prometheus_sends_for_native_histograms_gets_protobuf() {
        let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(accept), Format::Protobuf);
    }

    #[cfg(feature = "protobuf")]
    #[test]
    fn protobuf_needs_the_metric_family_message() {
        assert_eq!(negotiate("application/vnd.google.protobuf"), Format::Text);
        assert_eq!(
            negotiate("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"),
            Format::Text
        );
    }

    #[cfg(not(feature = "protobuf"))]
    #[test]
    fn without_the_feature_protobuf_is_not_offered() {
        let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,text/plain;q=0.5";
        assert_eq!(negotiate(accept), Format::Text);
    }
}

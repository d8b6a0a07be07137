//! One render: the registry gathered once, and its encodings, each made
//! once, by the first scrape that asks for it.

use std::sync::OnceLock;

use bytes::Bytes;
use prometheus::{proto::MetricFamily, Registry};

use super::{openmetrics, text, Format};
use crate::extras::{self, Extras};

const FORMATS: usize = Format::ALL.len();

/// A gathered registry, shared by every scrape that waited for it, in
/// whatever format each asked for.
#[derive(Debug)]
pub(super) struct Rendered {
    families: Vec<MetricFamily>,
    extras: Extras,
    /// By [`Format::index`]: the encoding, or why it failed.
    encoded: [OnceLock<Result<Bytes, String>>; FORMATS],
    /// By [`Format::index`]: the gzip encoding of the encoding.
    #[cfg_attr(not(feature = "gzip"), allow(dead_code))]
    gzip: [OnceLock<Bytes>; FORMATS],
}

impl Rendered {
    /// Gathers `registry`, with the layer's extras.
    pub(super) fn gather(registry: &Registry) -> Self {
        let (families, extras) = extras::capture(|| registry.gather());
        Self {
            families,
            extras,
            encoded: Default::default(),
            gzip: Default::default(),
        }
    }

    /// The exposition in `format`.
    pub(super) fn encoded(&self, format: Format) -> &Result<Bytes, String> {
        self.encoded[format.index()]
            .get_or_init(|| encode(&self.families, &self.extras, format).map(Bytes::from))
    }

    /// The exposition in `format`, gzip-encoded; `None` if it cannot be.
    #[cfg(feature = "gzip")]
    pub(super) fn gzipped(&self, format: Format) -> Option<Bytes> {
        let plain = self.encoded(format).as_ref().ok()?;
        let encoded = self.gzip[format.index()].get_or_init(|| {
            // Writing to a `Vec` does not fail; were it to, an empty
            // encoding marks it, and the plain exposition is still a valid
            // answer.
            super::gzip::gzip(plain)
                .map(Bytes::from)
                .unwrap_or_default()
        });
        (!encoded.is_empty()).then(|| encoded.clone())
    }
}

/// `families` and their extras in `format`.
pub(super) fn encode(
    families: &[MetricFamily],
    extras: &Extras,
    format: Format,
) -> Result<Vec<u8>, String> {
    match format {
        Format::Text => {
            let mut text = String::with_capacity(4096);
            text::encode(families, &mut text);
            Ok(text.into_bytes())
        }
        Format::OpenMetrics => {
            let mut text = String::with_capacity(4096);
            openmetrics::encode(families, extras, &mut text);
            Ok(text.into_bytes())
        }
        #[cfg(feature = "protobuf")]
        Format::Protobuf => Ok(super::protobuf::encode(families, extras)),
    }
}

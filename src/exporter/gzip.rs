//! gzip for the scrape endpoint: whether the scraper accepts it, and the
//! encoding itself.

use std::io::Write;

use flate2::{write::GzEncoder, Compression};
use http::{header, HeaderMap};

/// The compression level. An exposition is highly repetitive (the same
/// label names and templates on every line), so the fastest level already
/// shrinks it about tenfold; higher levels cost several times the CPU for a
/// few percent more.
const LEVEL: u32 = 1;

/// Whether `Accept-Encoding` allows gzip: `gzip` (or `x-gzip`) listed with a
/// non-zero quality, or `*` with a non-zero quality and gzip not refused.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut wildcard = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let allowed = parts.all(|param| {
                let param = param.trim();
                let Some(q) = param
                    .strip_prefix("q=")
                    .or_else(|| param.strip_prefix("Q="))
                else {
                    return true;
                };
                q.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
            });
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                // An explicit entry decides, whatever `*` says.
                return allowed;
            }
            if coding == "*" {
                wildcard = allowed;
            }
        }
    }
    wildcard
}

/// `text` gzip-encoded.
pub(crate) fn gzip(text: &[u8]) -> std::io::Result<Vec<u8>> {
    // Text expositions compress about tenfold; start near that size.
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(text.len() / 8 + 64),
        Compression::new(LEVEL),
    );
    encoder.write_all(text)?;
    encoder.finish()
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;
    use http::HeaderValue;

    use super::*;

    fn accepts(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_chosen_only_when_the_client_accepts_it() {
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["identity, gzip;q=0.5"]));
        assert!(accepts(&["GZIP"]));
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["br", "gzip"]), "several header lines are read");
        assert!(accepts(&["*"]));
        assert!(accepts(&["deflate;q=1.0, *;q=0.1"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip; q=0.000"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["*, gzip;q=0"]), "an explicit refusal beats *");
        assert!(!accepts(&["gzip;q=nonsense"]));
    }

    #[test]
    fn gzip_round_trips() {
        let text = "ctms_requests_total{method=\"GET\"} 1\n".repeat(1000);
        let encoded = gzip(text.as_bytes()).unwrap();
        assert!(encoded.len() * 10 < text.len(), "{} bytes", encoded.len());
        let mut decoded = String::new();
        GzDecoder::new(&encoded[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, text);
    }
}

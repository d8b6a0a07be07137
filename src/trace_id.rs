//! The trace id an exemplar points to.

use std::fmt;

use http::{header::HeaderName, HeaderMap};

/// The W3C header, named once: looking a header up by a `&str` parses the
/// name on every call.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A trace id: 16 bytes, not all zero, as the W3C Trace Context defines it
/// and as OpenTelemetry uses it.
///
/// The layer keeps it inline (no allocation) on the request's record and
/// shows it in exemplars as 32 lower-case hex digits under the label
/// `trace_id`. See
/// [`Builder::exemplars_from_request`](crate::Builder::exemplars_from_request).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// The trace id of these bytes; `None` if they are all zero, which the
    /// W3C Trace Context reserves for "no trace".
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(bytes))
    }

    /// The trace id written as 32 lower-case hex digits; `None` for
    /// anything else, and for all zeros.
    pub fn from_hex(hex: &str) -> Option<Self> {
        Self::from_hex_bytes(hex.as_bytes().try_into().ok()?)
    }

    fn from_hex_bytes(hex: &[u8; 32]) -> Option<Self> {
        let mut bytes = [0; 16];
        // Digits decode through a table, and a non-digit (`0x10` there)
        // poisons the `or` of them all: one test at the end, no branch per
        // digit.
        let mut poison = 0;
        for (index, byte) in bytes.iter_mut().enumerate() {
            let high = NIBBLES[usize::from(hex[2 * index])];
            let low = NIBBLES[usize::from(hex[2 * index + 1])];
            poison |= high | low;
            *byte = high << 4 | low;
        }
        if poison & NOT_HEX != 0 {
            return None;
        }
        Self::from_bytes(bytes)
    }

    /// The trace id of the request's W3C `traceparent` header
    /// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`); `None`
    /// when the header is missing, repeated or malformed, as the
    /// specification says to treat it.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use tower_prometheus::TraceId;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert(
    ///     "traceparent",
    ///     HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    /// );
    /// let trace = TraceId::from_traceparent(&headers).unwrap();
    /// assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    pub fn from_traceparent(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(&TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        // Bytes, not `to_str`: every byte used is checked to be a hex digit
        // or a dash, which no other byte passes.
        let bytes = value.as_bytes();
        // version "-" trace id "-" parent id "-" flags, then, in versions
        // after 00 only, "-" and more.
        if bytes.len() < 55 || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let version = &bytes[..2];
        if !is_lower_hex(version) || version == b"ff" {
            return None;
        }
        if version == b"00" && bytes.len() != 55 || bytes.len() > 55 && bytes[55] != b'-' {
            return None;
        }
        let parent = &bytes[36..52];
        if !is_lower_hex(parent) || parent == b"0000000000000000" || !is_lower_hex(&bytes[53..55]) {
            return None;
        }
        Self::from_hex_bytes(bytes[3..35].try_into().ok()?)
    }

    /// The 16 bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }
}

/// The bit [`NIBBLES`] sets for a byte that is not a lower-case hex digit.
const NOT_HEX: u8 = 0x10;

/// Each byte's value as a lower-case hex digit, or [`NOT_HEX`].
static NIBBLES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        table[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};

fn is_lower_hex(text: &[u8]) -> bool {
    text.iter()
        .fold(0, |poison, &digit| poison | NIBBLES[usize::from(digit)])
        & NOT_HEX
        == 0
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use http::HeaderValue;

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn parse(traceparent: &str) -> Option<TraceId> {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_str(traceparent).unwrap());
        TraceId::from_traceparent(&headers)
    }

    #[test]
    fn a_valid_traceparent_gives_its_trace_id() {
        let trace = parse(&format!("00-{TRACE}-00f067aa0ba902b7-01")).unwrap();
        assert_eq!(trace.to_string(), TRACE);
        assert_eq!(TraceId::from_hex(TRACE), Some(trace));
    }

    #[test]
    fn a_later_version_may_carry_more_fields() {
        assert!(parse(&format!("01-{TRACE}-00f067aa0ba902b7-01-extra")).is_some());
        assert!(parse(&format!("00-{TRACE}-00f067aa0ba902b7-01-extra")).is_none());
    }

    #[test]
    fn malformed_traceparents_give_none() {
        for bad in [
            String::new(),
            format!("ff-{TRACE}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", TRACE.to_uppercase()),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{TRACE}-0000000000000000-01"),
            format!("00-{TRACE}-00f067aa0ba902b7-0g"),
            format!("00-{TRACE}-00f067aa0ba902b7"),
            format!("00_{TRACE}-00f067aa0ba902b7-01"),
            format!("00-{TRACE}x-00f067aa0ba902b-01"),
            format!("0é-{TRACE}-00f067aa0ba902b7-01"),
        ] {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&bad) {
                headers.insert("traceparent", value);
            }
            assert_eq!(TraceId::from_traceparent(&headers), None, "{bad:?}");
        }
    }

    #[test]
    fn bytes_beyond_ascii_are_refused() {
        let mut raw = format!("00-{TRACE}-00f067aa0ba902b7-01").into_bytes();
        raw[10] = 0xe9;
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_bytes(&raw).unwrap());
        assert_eq!(TraceId::from_traceparent(&headers), None);
    }

    #[test]
    fn two_traceparent_headers_give_none() {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("00-{TRACE}-00f067aa0ba902b7-01")).unwrap();
        headers.append("traceparent", value.clone());
        headers.append("traceparent", value);
        assert_eq!(TraceId::from_traceparent(&headers), None);
    }

    #[test]
    fn all_zero_bytes_are_no_trace() {
        assert_eq!(TraceId::from_bytes([0; 16]), None);
        assert_eq!(TraceId::from_bytes([7; 16]).unwrap().to_bytes(), [7; 16]);
    }
}

//! The label dimensions as small dense indexes: what the hot path computes
//! from a request, and what the cells are addressed by. Each is a type of
//! its own, made only from a value in range, so an index of one kind
//! cannot be passed for another and never needs a fallback. The strings
//! they stand for are in `schema.rs`.

use http::{Method, StatusCode};

use crate::bits::BitSet;

/// The `method` label: the nine standard methods, and one value for any
/// other, so that random methods cannot create series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum MethodLabel {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    Other,
}

impl MethodLabel {
    /// Number of distinct `method` label values.
    pub(crate) const COUNT: usize = 10;

    pub(crate) const ALL: [Self; Self::COUNT] = [
        Self::Get,
        Self::Head,
        Self::Post,
        Self::Put,
        Self::Delete,
        Self::Connect,
        Self::Options,
        Self::Trace,
        Self::Patch,
        Self::Other,
    ];

    /// The label of a request method.
    #[inline]
    pub(crate) fn of(method: &Method) -> Self {
        // Comparing against the constants compares an enum tag, not the string.
        if method == Method::GET {
            Self::Get
        } else if method == Method::HEAD {
            Self::Head
        } else if method == Method::POST {
            Self::Post
        } else if method == Method::PUT {
            Self::Put
        } else if method == Method::DELETE {
            Self::Delete
        } else if method == Method::CONNECT {
            Self::Connect
        } else if method == Method::OPTIONS {
            Self::Options
        } else if method == Method::TRACE {
            Self::Trace
        } else if method == Method::PATCH {
            Self::Patch
        } else {
            Self::Other
        }
    }

    /// Its dense index, below [`COUNT`](Self::COUNT).
    #[inline]
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A status code family, `1xx` to `9xx` (`http::StatusCode` guarantees
/// codes in `100..=999`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StatusFamily(u8);

impl StatusFamily {
    /// Number of families.
    pub(crate) const COUNT: usize = 9;

    /// Every family, `1xx` first.
    pub(crate) fn all() -> impl Iterator<Item = Self> {
        (0..Self::COUNT as u8).map(Self)
    }

    /// Its dense index, below [`COUNT`](Self::COUNT).
    #[inline]
    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The code's first digit, `1` to `9`.
    pub(crate) fn digit(self) -> u16 {
        u16::from(self.0) + 1
    }
}

/// Status codes per family.
pub(crate) const CODES_PER_FAMILY: usize = 100;

/// A set of status codes within one family, by their last two digits.
pub(crate) type CodeSet = BitSet<2>;

/// A status code split into the indexes the cells are addressed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    family: StatusFamily,
    /// The last two digits.
    in_family: u8,
}

impl Status {
    /// Splits a code; `None` outside `100..=999`.
    pub(crate) fn new(code: u16) -> Option<Self> {
        if !(100..=999).contains(&code) {
            return None;
        }
        Some(Self {
            family: StatusFamily((code / 100 - 1) as u8),
            in_family: (code % 100) as u8,
        })
    }

    /// Splits a status of the `http` crate, which guarantees `100..=999`
    /// (so no check is needed; were it ever out of range, the family index
    /// would be clamped to `9xx`, never out of bounds).
    #[inline]
    pub(crate) fn of(status: StatusCode) -> Self {
        let code = status.as_u16();
        Self {
            family: StatusFamily((code / 100).clamp(1, 9) as u8 - 1),
            in_family: (code % 100) as u8,
        }
    }

    /// The code of `family` whose last two digits are `in_family`.
    pub(crate) fn in_family(family: StatusFamily, in_family: usize) -> Self {
        Self {
            family,
            in_family: (in_family % CODES_PER_FAMILY) as u8,
        }
    }

    #[inline]
    pub(crate) fn family(self) -> StatusFamily {
        self.family
    }

    /// The last two digits, below [`CODES_PER_FAMILY`].
    #[inline]
    pub(crate) fn index_in_family(self) -> usize {
        usize::from(self.in_family)
    }

    /// The three-digit code.
    pub(crate) fn code(self) -> u16 {
        self.family.digit() * 100 + u16::from(self.in_family)
    }

    /// What an inner error or a panic is recorded as.
    pub(crate) const INTERNAL_SERVER_ERROR: Self = Self {
        family: StatusFamily(4),
        in_family: 0,
    };

    /// What a request whose response future was dropped before it was ready
    /// is recorded as (nginx's "client closed request").
    pub(crate) const CLIENT_CLOSED_REQUEST: Self = Self {
        family: StatusFamily(3),
        in_family: 99,
    };
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn every_status_code_splits_and_joins_back() {
        for code in 100..=999u16 {
            let status = Status::new(code).unwrap();
            assert_eq!(status.code(), code);
            assert_eq!(status.family().digit(), code / 100, "family of {code}");
            assert_eq!(
                Status::in_family(status.family(), status.index_in_family()),
                status
            );
        }
    }

    #[test]
    fn every_http_status_splits_as_its_code_does() {
        for code in 100..=999u16 {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(Status::of(status), Status::new(code).unwrap(), "{code}");
        }
    }

    #[test]
    fn codes_outside_100_to_999_are_rejected() {
        for code in [0, 1, 99, 1000, u16::MAX] {
            assert_eq!(Status::new(code), None, "{code}");
        }
    }

    #[test]
    fn special_statuses_are_500_and_499() {
        assert_eq!(Status::INTERNAL_SERVER_ERROR.code(), 500);
        assert_eq!(Status::CLIENT_CLOSED_REQUEST.code(), 499);
        assert_eq!(Status::of(StatusCode::NOT_FOUND), Status::new(404).unwrap());
    }

    #[test]
    fn families_are_indexed_in_order() {
        let digits: Vec<u16> = StatusFamily::all().map(StatusFamily::digit).collect();
        assert_eq!(digits, (1..=9).collect::<Vec<_>>());
        let indexes: Vec<usize> = StatusFamily::all().map(StatusFamily::index).collect();
        assert_eq!(indexes, (0..StatusFamily::COUNT).collect::<Vec<_>>());
    }

    #[test]
    fn standard_methods_have_their_own_label() {
        let table = [
            (Method::GET, MethodLabel::Get),
            (Method::HEAD, MethodLabel::Head),
            (Method::POST, MethodLabel::Post),
            (Method::PUT, MethodLabel::Put),
            (Method::DELETE, MethodLabel::Delete),
            (Method::CONNECT, MethodLabel::Connect),
            (Method::OPTIONS, MethodLabel::Options),
            (Method::TRACE, MethodLabel::Trace),
            (Method::PATCH, MethodLabel::Patch),
        ];
        for (method, label) in table {
            assert_eq!(MethodLabel::of(&method), label);
        }
        let indexes: Vec<usize> = MethodLabel::ALL.iter().map(|m| m.index()).collect();
        assert_eq!(indexes, (0..MethodLabel::COUNT).collect::<Vec<_>>());
    }

    #[test]
    fn other_methods_share_one_label() {
        for raw in ["FOO", "get", "PROPFIND", "X-RANDOM-123"] {
            let method = Method::from_bytes(raw.as_bytes()).unwrap();
            assert_eq!(MethodLabel::of(&method), MethodLabel::Other, "{raw}");
        }
    }
}

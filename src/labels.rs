//! Label values as static strings, addressed by small dense indexes.
//!
//! Everything the hot path needs to know about a label value is an index
//! into one of these tables; the strings themselves are only read at scrape
//! time.

use http::Method;

/// The label value recorded for any method outside the standard nine, so
/// that random methods cannot create series.
pub(crate) const OTHER_METHOD: &str = "OTHER";

/// Number of distinct `method` label values: the nine standard methods plus
/// [`OTHER_METHOD`].
pub(crate) const METHOD_COUNT: usize = 10;

const METHODS: [&str; METHOD_COUNT] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    OTHER_METHOD,
];

/// Method indexes in the order of their label values, the order a scrape
/// lists series in.
pub(crate) fn methods_in_label_order() -> [usize; METHOD_COUNT] {
    let mut order: [usize; METHOD_COUNT] = std::array::from_fn(|index| index);
    order.sort_unstable_by_key(|&index| METHODS[index]);
    order
}

/// Number of status code families (`1xx` to `9xx`); `http::StatusCode`
/// guarantees codes in `100..=999`.
pub(crate) const FAMILY_COUNT: usize = 9;

/// Status codes per family.
pub(crate) const CODES_PER_FAMILY: usize = 100;

const FAMILIES: [&str; FAMILY_COUNT] = [
    "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
];

/// Dense index of a request method.
pub(crate) fn method_index(method: &Method) -> usize {
    // Comparing against the constants compares an enum tag, not the string.
    if method == Method::GET {
        0
    } else if method == Method::HEAD {
        1
    } else if method == Method::POST {
        2
    } else if method == Method::PUT {
        3
    } else if method == Method::DELETE {
        4
    } else if method == Method::CONNECT {
        5
    } else if method == Method::OPTIONS {
        6
    } else if method == Method::TRACE {
        7
    } else if method == Method::PATCH {
        8
    } else {
        9
    }
}

/// The `method` label value of a method index.
pub(crate) fn method_label(index: usize) -> &'static str {
    METHODS.get(index).copied().unwrap_or(OTHER_METHOD)
}

/// A status code split into the indexes the cells are addressed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    /// `0` for `1xx` up to `8` for `9xx`.
    pub(crate) family: usize,
    /// The last two digits.
    pub(crate) code_in_family: usize,
}

impl Status {
    /// Splits a code; `None` outside `100..=999`.
    pub(crate) fn new(code: u16) -> Option<Self> {
        if !(100..=999).contains(&code) {
            return None;
        }
        let code = usize::from(code);
        Some(Self {
            family: code / 100 - 1,
            code_in_family: code % 100,
        })
    }

    /// Splits a status that the `http` crate already guarantees to be in range.
    pub(crate) fn of(status: http::StatusCode) -> Self {
        Self::new(status.as_u16()).unwrap_or(Self::INTERNAL_SERVER_ERROR)
    }

    /// What an inner error or a panic is recorded as.
    pub(crate) const INTERNAL_SERVER_ERROR: Self = Self {
        family: 4,
        code_in_family: 0,
    };

    /// What a request whose response future was dropped before it was ready
    /// is recorded as (nginx's "client closed request").
    pub(crate) const CLIENT_CLOSED_REQUEST: Self = Self {
        family: 3,
        code_in_family: 99,
    };
}

/// A set of status codes within one family, by their last two digits: a
/// scrape reads only the codes in use rather than all hundred.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CodeSet(pub(crate) [u64; CODE_WORDS]);

/// Words of a [`CodeSet`].
pub(crate) const CODE_WORDS: usize = CODES_PER_FAMILY.div_ceil(64);

impl CodeSet {
    /// The word and bit of `code`.
    #[inline]
    pub(crate) fn position(code: usize) -> (usize, u64) {
        (code / 64, 1 << (code % 64))
    }

    pub(crate) fn insert(&mut self, code: usize) {
        let (word, bit) = Self::position(code);
        if let Some(word) = self.0.get_mut(word) {
            *word |= bit;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|&word| word == 0)
    }

    pub(crate) fn union(mut self, other: Self) -> Self {
        for (word, other) in self.0.iter_mut().zip(other.0) {
            *word |= other;
        }
        self
    }

    /// The codes in the set, in ascending order.
    pub(crate) fn iter(self) -> impl Iterator<Item = usize> {
        (0..CODES_PER_FAMILY).filter(move |&code| {
            let (word, bit) = Self::position(code);
            self.0[word] & bit != 0
        })
    }
}

/// The `status_code_family` label value of a family index.
pub(crate) fn family_label(family: usize) -> &'static str {
    FAMILIES.get(family).copied().unwrap_or("5xx")
}

/// The `status_code` label value of a family index and the code's last two
/// digits.
pub(crate) fn status_code_label(family: usize, code_in_family: usize) -> String {
    ((family + 1) * 100 + code_in_family).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_code_maps_to_its_code_and_family() {
        for code in 100..=999u16 {
            let status = Status::new(code).unwrap();
            assert_eq!(
                status_code_label(status.family, status.code_in_family),
                code.to_string()
            );
            assert_eq!(
                family_label(status.family),
                format!("{}xx", code / 100),
                "family of {code}"
            );
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
        let s = Status::INTERNAL_SERVER_ERROR;
        assert_eq!(status_code_label(s.family, s.code_in_family), "500");
        let s = Status::CLIENT_CLOSED_REQUEST;
        assert_eq!(status_code_label(s.family, s.code_in_family), "499");
        assert_eq!(
            Status::of(http::StatusCode::NOT_FOUND),
            Status::new(404).unwrap()
        );
    }

    #[test]
    fn a_code_set_lists_its_codes_in_order() {
        let mut set = CodeSet::default();
        assert!(set.is_empty());
        for code in [99, 0, 63, 64, 5, 63] {
            set.insert(code);
        }
        assert!(!set.is_empty());
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 5, 63, 64, 99]);
        let mut other = CodeSet::default();
        other.insert(1);
        assert_eq!(
            set.union(other).iter().collect::<Vec<_>>(),
            [0, 1, 5, 63, 64, 99]
        );
    }

    #[test]
    fn standard_methods_are_recorded_as_themselves() {
        let table = [
            (Method::GET, "GET"),
            (Method::HEAD, "HEAD"),
            (Method::POST, "POST"),
            (Method::PUT, "PUT"),
            (Method::DELETE, "DELETE"),
            (Method::CONNECT, "CONNECT"),
            (Method::OPTIONS, "OPTIONS"),
            (Method::TRACE, "TRACE"),
            (Method::PATCH, "PATCH"),
        ];
        for (method, label) in table {
            assert_eq!(method_label(method_index(&method)), label);
        }
    }

    #[test]
    fn other_methods_share_one_overflow_value() {
        for raw in ["FOO", "get", "PROPFIND", "X-RANDOM-123"] {
            let method = Method::from_bytes(raw.as_bytes()).unwrap();
            assert_eq!(method_label(method_index(&method)), OTHER_METHOD, "{raw}");
        }
    }
}

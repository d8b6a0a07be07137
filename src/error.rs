//! The error returned when a layer cannot be built.

use std::{error::Error, fmt};

use crate::limits::{MAX_BUCKETS, MAX_NAMESPACE_LEN};

/// Why [`Builder::build`](crate::Builder::build) refused the configuration.
///
/// Every variant names the culprit and its message says what to write
/// instead. Building never panics; once built, the layer never fails a
/// request.
#[non_exhaustive]
#[derive(Debug)]
pub enum BuildError {
    /// The namespace is not a valid metric name prefix: ASCII letters,
    /// digits and underscores, not starting with a digit, at most
    /// [`MAX_NAMESPACE_LEN`] bytes.
    InvalidNamespace {
        /// The namespace as given.
        namespace: String,
    },
    /// A route template cannot be registered; `reason` says why.
    InvalidTemplate {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        reason: TemplateError,
    },
    /// A route template conflicts with one registered before it (or is the
    /// same template registered twice).
    TemplateConflict {
        /// The template that could not be registered.
        template: String,
        /// The registered template it conflicts with.
        with: String,
    },
    /// No route was registered and templates are not taken from axum, so
    /// nothing would ever be recorded.
    NoRoutes,
    /// The value given to
    /// [`record_unmatched_as`](crate::Builder::record_unmatched_as) is empty,
    /// too long or holds control characters.
    InvalidUnmatchedValue {
        /// The value as given.
        value: String,
    },
    /// The value given to
    /// [`record_unmatched_as`](crate::Builder::record_unmatched_as) is also
    /// a route template: two series would share one label set.
    UnmatchedValueIsATemplate {
        /// The value as given.
        value: String,
    },
    /// A route lists a status code outside `100..=999`.
    InvalidStatusCode {
        /// The template of the route.
        template: String,
        /// The code as given.
        code: u16,
    },
    /// The histogram buckets are empty, too many, negative, not finite,
    /// not strictly increasing, or closer than a nanosecond.
    InvalidBuckets {
        /// The buckets as given.
        buckets: Vec<f64>,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A known client id is empty or holds control characters.
    InvalidClientId {
        /// The client id as given.
        client_id: String,
    },
    /// A known client id is longer than the configured maximum.
    ClientIdTooLong {
        /// The client id as given.
        client_id: String,
        /// The maximum length in bytes.
        max_len: usize,
    },
    /// A number in the configuration is outside the range its setting
    /// allows (the limits are in [`limits`](crate::limits)).
    OutOfRange {
        /// The setting, as the builder names it (`"shards"`,
        /// `"native_histogram_schema"`, `"routes"`, `"known client ids"`,
        /// `"client ids' max"`, `"client ids' max_len"`,
        /// `"max_matched_templates"`, or `"series bound"` for a
        /// configuration whose worst case is over
        /// [`max_series`](crate::Builder::max_series)).
        setting: &'static str,
        /// The value as given (for a list, how many items it holds).
        value: i64,
        /// The smallest value allowed.
        min: i64,
        /// The largest value allowed.
        max: i64,
    },
    /// The registry has a constant label (from `Registry::new_custom`) with
    /// the name of one of the layer's labels: every sample would carry it
    /// twice, and Prometheus would refuse every scrape.
    ConstantLabelClash {
        /// The label name.
        label: String,
    },
    /// Another metric is registered under a name the samples of one of the
    /// layer's families use (a histogram's `_count`, `_sum` or `_bucket`,
    /// or a counter's name without `_total`): the two would be mixed in
    /// every scrape.
    NameClash {
        /// The layer's metric.
        metric: String,
        /// The name already registered.
        with: String,
    },
    /// A metric with the same name is already registered in the registry.
    AlreadyRegistered {
        /// The full metric name, namespace included.
        metric: String,
        /// What the registry said.
        source: prometheus::Error,
    },
}

/// Why a route template was refused; carried by
/// [`BuildError::InvalidTemplate`].
#[non_exhaustive]
#[derive(Debug)]
pub enum TemplateError {
    /// It uses the `:param` or `*rest` syntax of older routers.
    LegacySyntax {
        /// The same template in `{param}` / `{*rest}` syntax.
        suggestion: String,
    },
    /// It does not start with `/`, so no path could match it.
    NoLeadingSlash,
    /// It is longer than [`MAX_TEMPLATE_LEN`](crate::limits::MAX_TEMPLATE_LEN)
    /// bytes.
    TooLong {
        /// The maximum length in bytes.
        max: usize,
    },
    /// It has more parameters than the router can hold
    /// ([`MAX_TEMPLATE_PARAMS`](crate::limits::MAX_TEMPLATE_PARAMS)).
    TooManyParameters {
        /// How many parameters it has (catch-alls aside).
        count: usize,
        /// The most the router takes.
        max: usize,
    },
    /// It uses one parameter name twice.
    DuplicateParameter {
        /// The name used twice.
        parameter: String,
    },
    /// A parameter looks like it carries a constraint (`{id:[0-9]+}`);
    /// templates have no constraints, a parameter matches any segment.
    ParameterConstraint {
        /// The parameter as written between the braces.
        parameter: String,
        /// The template with the constraint removed.
        suggestion: String,
    },
    /// It holds a character no request path can contain (a control
    /// character, a space, `?`, `#`, …), so nothing would ever be recorded
    /// under it.
    Unmatchable {
        /// The first such character.
        character: char,
    },
    /// It is marked [`grpc`](crate::Route::grpc) but is not of the shape
    /// `/Service/Method` (the method may be a parameter).
    NotGrpc,
    /// The router rejected it for another reason.
    Router(matchit::InsertError),
}

impl BuildError {
    pub(crate) fn template(template: &str, reason: TemplateError) -> Self {
        Self::InvalidTemplate {
            template: template.to_owned(),
            reason,
        }
    }

    pub(crate) fn out_of_range<T: TryInto<i64>>(
        setting: &'static str,
        value: T,
        min: T,
        max: T,
    ) -> Self {
        let wide = |n: T| n.try_into().unwrap_or(i64::MAX);
        Self::OutOfRange {
            setting,
            value: wide(value),
            min: wide(min),
            max: wide(max),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidNamespace { namespace } => write!(
                f,
                "invalid namespace {}: use at most {MAX_NAMESPACE_LEN} letters, digits and \
                 underscores, not starting with a digit (for example \"ctms\")",
                Preview(namespace)
            ),
            Self::InvalidBuckets { buckets, reason } => {
                let shown: Vec<f64> = buckets.iter().copied().take(16).collect();
                let more = if buckets.len() > 16 { " …" } else { "" };
                write!(
                    f,
                    "invalid histogram buckets {shown:?}{more}: {reason}; give 1 to \
                     {MAX_BUCKETS} upper bounds in seconds, positive, finite, strictly \
                     increasing and at least a nanosecond apart (+Inf is always added)"
                )
            }
            Self::InvalidClientId { client_id } => write!(
                f,
                "known client id {} is empty or holds control characters; list \
                 printable ids only",
                Preview(client_id)
            ),
            Self::ClientIdTooLong { client_id, max_len } => write!(
                f,
                "client id {} is {} bytes long, over the maximum of {max_len}; \
                 raise `ClientIds::max_len` or shorten the id",
                Preview(client_id),
                client_id.len()
            ),
            Self::OutOfRange {
                setting,
                value,
                min,
                max,
            } => {
                write!(f, "{setting} is {value}, out of range: give {min} to {max}")?;
                match out_of_range_hint(setting, *value) {
                    Some(hint) => write!(f, "; {hint}"),
                    None => Ok(()),
                }
            }
            Self::InvalidTemplate { .. }
            | Self::TemplateConflict { .. }
            | Self::NoRoutes
            | Self::InvalidUnmatchedValue { .. }
            | Self::UnmatchedValueIsATemplate { .. }
            | Self::InvalidStatusCode { .. } => self.fmt_routes(f),
            Self::ConstantLabelClash { .. }
            | Self::NameClash { .. }
            | Self::AlreadyRegistered { .. } => self.fmt_registry(f),
        }
    }
}

impl BuildError {
    /// The messages about routes.
    fn fmt_routes(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidTemplate { template, reason } => {
                write!(f, "route template {} ", Preview(template))?;
                reason.explain(template, f)
            }
            Self::TemplateConflict { template, with } if template == with => write!(
                f,
                "route template {template:?} is registered twice; register it once \
                 and list all its methods and status codes on that route"
            ),
            Self::TemplateConflict { template, with } => write!(
                f,
                "route template {template:?} conflicts with {with:?}, registered before it; \
                 make one of them more specific or remove one"
            ),
            Self::NoRoutes => write!(
                f,
                "no route registered, so nothing would be recorded; add one with \
                 `.route(Route::new(\"/path\"))`"
            ),
            Self::InvalidUnmatchedValue { value } => write!(
                f,
                "invalid value {} for unmatched paths: give a non-empty label value of \
                 printable characters (for example \"__unmatched__\")",
                Preview(value)
            ),
            Self::UnmatchedValueIsATemplate { value } => write!(
                f,
                "unmatched paths would be recorded as {value:?}, which is also a route \
                 template: the two would share series; choose a value no route uses \
                 (for example \"__unmatched__\")"
            ),
            Self::InvalidStatusCode { template, code } => write!(
                f,
                "route {template:?} lists status code {code}; status codes are 100 to 999"
            ),
            _ => Ok(()),
        }
    }

    /// The messages about what the registry already holds.
    fn fmt_registry(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConstantLabelClash { label } => write!(
                f,
                "the registry has a constant label {label:?}, which is also a label of \
                 the layer's metrics: every sample would carry it twice and Prometheus \
                 would refuse every scrape; rename the constant label"
            ),
            Self::NameClash { metric, with } => write!(
                f,
                "{with:?} is already registered in this registry, and {metric:?} writes \
                 samples under that name; use another namespace or rename the other metric"
            ),
            Self::AlreadyRegistered { metric, .. } => write!(
                f,
                "metric {metric:?} is already registered in this registry; use a fresh \
                 registry, another namespace, or build the layer once and clone it"
            ),
            _ => Ok(()),
        }
    }
}

/// What to do about a setting out of range, where more than the range can
/// be said.
fn out_of_range_hint(setting: &str, value: i64) -> Option<String> {
    Some(match setting {
        "known client ids" => format!("raise `ClientIds::max` to at least {value}"),
        "routes" => "a router this large is a template list gone wrong (one route per id \
                     instead of a template?)"
            .to_owned(),
        "max_matched_templates" => {
            "axum's routes are finite, so a few hundred is plenty".to_owned()
        }
        "series bound" => "lower the client id cap, the templates that may be learned or the \
                           buckets, or raise `max_series`; `RequestMetricsLayer::series_bound` \
                           says what each family adds"
            .to_owned(),
        "native_histogram_schema" => {
            "0 is a factor of 2 between bucket bounds, each step finer halves it".to_owned()
        }
        _ => return None,
    })
}

impl TemplateError {
    /// The rest of [`BuildError::InvalidTemplate`]'s message, after the
    /// template itself.
    fn explain(&self, template: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LegacySyntax { suggestion } => write!(
                f,
                "uses the old `:param`/`*rest` syntax; write {suggestion:?} instead"
            ),
            Self::NoLeadingSlash => {
                write!(f, "does not start with `/`; write \"/{template}\"")
            }
            Self::TooLong { max } => write!(
                f,
                "is {} bytes long, over the maximum of {max}; use a parameter or a \
                 catch-all (`{{*rest}}`) for the long part",
                template.len()
            ),
            Self::TooManyParameters { count, max } => write!(
                f,
                "has {count} parameters, over the router's maximum of {max}; end it with \
                 a catch-all (`{{*rest}}`) instead"
            ),
            Self::DuplicateParameter { parameter } => write!(
                f,
                "uses the parameter name {parameter:?} twice; give each parameter its own name"
            ),
            Self::ParameterConstraint {
                parameter,
                suggestion,
            } => write!(
                f,
                "has a constraint in parameter {{{parameter}}}, but templates take none \
                 (a parameter matches any segment); write {suggestion:?} instead"
            ),
            Self::Unmatchable { character } => write!(
                f,
                "contains {character:?}, which no request path can contain; remove it, or \
                 write it percent-encoded as clients send it (a space is %20)"
            ),
            Self::NotGrpc => write!(
                f,
                "is marked as gRPC, but gRPC paths are `/package.Service/Method`: write \
                 one method's path, or `/package.Service/{{method}}` for all of a \
                 service's methods"
            ),
            Self::Router(source) => write!(f, "is invalid: {source}"),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LegacySyntax { .. } => "old `:param`/`*rest` syntax",
            Self::NoLeadingSlash => "no leading `/`",
            Self::TooLong { .. } => "too long",
            Self::TooManyParameters { .. } => "too many parameters",
            Self::DuplicateParameter { .. } => "a parameter name used twice",
            Self::ParameterConstraint { .. } => "a parameter with a constraint",
            Self::Unmatchable { .. } => "a character no path can contain",
            Self::NotGrpc => "not a gRPC method path",
            Self::Router(source) => return source.fmt(f),
        })
    }
}

/// A string for a message: quoted, and cut short if long, so that a
/// megabyte of input does not make a megabyte of message.
struct Preview<'a>(&'a str);

impl fmt::Display for Preview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        match self.0.char_indices().nth(SHOWN) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::InvalidTemplate { reason, .. } => Some(reason),
            Self::AlreadyRegistered { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error for TemplateError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Router(source) => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_culprit_and_the_fix() {
        let table: Vec<(BuildError, &[&str])> = vec![
            (
                BuildError::InvalidNamespace {
                    namespace: "my-app".into(),
                },
                &["\"my-app\"", "underscores"],
            ),
            (
                BuildError::template(
                    "/ctms/:id",
                    TemplateError::LegacySyntax {
                        suggestion: "/ctms/{id}".into(),
                    },
                ),
                &["\"/ctms/:id\"", "write \"/ctms/{id}\""],
            ),
            (
                BuildError::TemplateConflict {
                    template: "/a/{x}".into(),
                    with: "/a/{y}".into(),
                },
                &["\"/a/{x}\"", "conflicts with \"/a/{y}\""],
            ),
            (
                BuildError::TemplateConflict {
                    template: "/a".into(),
                    with: "/a".into(),
                },
                &["\"/a\" is registered twice"],
            ),
            (
                BuildError::template("ctms", TemplateError::NoLeadingSlash),
                &["write \"/ctms\""],
            ),
            (
                BuildError::InvalidStatusCode {
                    template: "/".into(),
                    code: 42,
                },
                &["status code 42", "100 to 999"],
            ),
            (
                BuildError::ClientIdTooLong {
                    client_id: "abcd".into(),
                    max_len: 3,
                },
                &["\"abcd\" is 4 bytes", "maximum of 3", "ClientIds::max_len"],
            ),
            (
                BuildError::out_of_range("known client ids", 5, 0, 2),
                &[
                    "known client ids is 5, out of range: give 0 to 2",
                    "`ClientIds::max` to at least 5",
                ],
            ),
            (
                BuildError::out_of_range("shards", 0, 1, 1024),
                &["shards is 0, out of range: give 1 to 1024"],
            ),
            (
                BuildError::template("/a", TemplateError::NotGrpc),
                &[
                    "route template \"/a\" is marked as gRPC",
                    "/package.Service/{method}",
                ],
            ),
            (
                BuildError::AlreadyRegistered {
                    metric: "ctms_requests_total".into(),
                    source: prometheus::Error::AlreadyReg,
                },
                &["\"ctms_requests_total\" is already registered"],
            ),
        ];
        for (error, parts) in table {
            let message = error.to_string();
            for part in parts {
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
        }
    }

    #[test]
    fn a_long_bucket_list_is_shown_cut_short() {
        let message = |count: usize| {
            BuildError::InvalidBuckets {
                buckets: (1..=count).map(|i| i as f64).collect(),
                reason: "too many bounds",
            }
            .to_string()
        };
        assert!(message(16).contains("16.0]:"), "{}", message(16));
        assert!(!message(16).contains('…'));
        let long = message(17);
        assert!(
            long.contains("16.0] …:") && !long.contains("17.0"),
            "{long}"
        );
        assert!(message(3).contains("[1.0, 2.0, 3.0]: too many bounds"));
    }

    #[test]
    fn sources_are_kept() {
        let error = BuildError::AlreadyRegistered {
            metric: "x".into(),
            source: prometheus::Error::AlreadyReg,
        };
        assert!(error.source().is_some());
        let error = BuildError::InvalidNamespace {
            namespace: String::new(),
        };
        assert!(error.source().is_none());
        let error = crate::routes::Routes::new(["/a/{x"], None).unwrap_err();
        assert!(matches!(
            error,
            BuildError::InvalidTemplate {
                reason: TemplateError::Router(_),
                ..
            }
        ));
        let reason = error.source().unwrap();
        assert!(reason.source().is_some(), "matchit's error is kept");
    }
}

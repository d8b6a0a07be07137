//! The error returned when a layer cannot be built.

use std::{error::Error, fmt};

use crate::layer::{MAX_BUCKETS, MAX_NAMESPACE_LEN};

/// Why [`Builder::build`](crate::Builder::build) refused the configuration.
///
/// Every variant names the culprit and its message says what to write
/// instead. Building never panics; once built, the layer never fails a
/// request.
#[non_exhaustive]
#[derive(Debug)]
pub enum BuildError {
    /// The namespace is not a valid metric name prefix.
    InvalidNamespace {
        /// The namespace as given.
        namespace: String,
    },
    /// A route template uses the `:param` or `*rest` syntax of older routers.
    LegacyTemplateSyntax {
        /// The template as given.
        template: String,
        /// The same template in `{param}` / `{*rest}` syntax.
        suggestion: String,
    },
    /// A route template does not start with `/`, so no path could match it.
    TemplateWithoutLeadingSlash {
        /// The template as given.
        template: String,
    },
    /// A route template conflicts with one registered before it (or is the
    /// same template registered twice).
    TemplateConflict {
        /// The template that could not be registered.
        template: String,
        /// The registered template it conflicts with.
        with: String,
    },
    /// The router rejected a route template for another reason.
    InvalidTemplate {
        /// The template as given.
        template: String,
        /// The router's reason.
        source: matchit::InsertError,
    },
    /// A route template is longer than [`MAX_TEMPLATE_LEN`](crate::MAX_TEMPLATE_LEN) bytes.
    TemplateTooLong {
        /// The template as given.
        template: String,
        /// The maximum length in bytes.
        max: usize,
    },
    /// A route template has more parameters than the router can hold
    /// ([`MAX_TEMPLATE_PARAMS`](crate::MAX_TEMPLATE_PARAMS)).
    TooManyParameters {
        /// The template as given.
        template: String,
        /// How many parameters it has (catch-alls aside).
        count: usize,
        /// The most the router takes.
        max: usize,
    },
    /// A route template uses one parameter name twice.
    DuplicateParameter {
        /// The template as given.
        template: String,
        /// The name used twice.
        parameter: String,
    },
    /// A route template's parameter looks like it carries a constraint
    /// (`{id:[0-9]+}`); templates have no constraints, a parameter matches
    /// any segment.
    ParameterConstraint {
        /// The template as given.
        template: String,
        /// The parameter as written between the braces.
        parameter: String,
        /// The template with the constraint removed.
        suggestion: String,
    },
    /// A route template holds a character no request path can contain
    /// (a control character, a space, `?`, `#`, …), so nothing would ever
    /// be recorded under it.
    UnmatchableTemplate {
        /// The template as given.
        template: String,
        /// The first such character.
        character: char,
    },
    /// No route was registered, so nothing would ever be recorded.
    NoRoutes,
    /// `max_matched_templates` (feature `axum`) is over
    /// [`MAX_CLIENT_IDS_LIMIT`](crate::MAX_CLIENT_IDS_LIMIT).
    MaxMatchedTemplatesTooLarge {
        /// The cap as given.
        max: usize,
        /// The largest cap allowed.
        limit: usize,
    },
    /// More routes than [`MAX_ROUTES`](crate::MAX_ROUTES).
    TooManyRoutes {
        /// How many were given.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// A route marked [`grpc`](crate::Route::grpc) is not of the shape
    /// `/Service/Method` (the method may be a parameter).
    NotAGrpcTemplate {
        /// The template as given.
        template: String,
    },
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
    /// A known client id is longer than the configured maximum.
    ClientIdTooLong {
        /// The client id as given.
        client_id: String,
        /// The maximum length in bytes.
        max_len: usize,
    },
    /// A known client id is empty, holds control characters, or is the
    /// overflow value `__other__`.
    InvalidClientId {
        /// The client id as given.
        client_id: String,
    },
    /// [`max_client_ids`](crate::Builder::max_client_ids) is over
    /// [`MAX_CLIENT_IDS_LIMIT`](crate::MAX_CLIENT_IDS_LIMIT).
    MaxClientIdsTooLarge {
        /// The cap as given.
        max: usize,
        /// The largest cap allowed.
        limit: usize,
    },
    /// [`max_client_id_len`](crate::Builder::max_client_id_len) is over
    /// [`MAX_CLIENT_ID_LEN_LIMIT`](crate::MAX_CLIENT_ID_LEN_LIMIT).
    MaxClientIdLenTooLarge {
        /// The cap as given.
        max: usize,
        /// The largest cap allowed.
        limit: usize,
    },
    /// The shard count is 0 or over [`MAX_SHARDS`](crate::MAX_SHARDS).
    InvalidShards {
        /// The count as given.
        shards: usize,
        /// The largest count allowed.
        max: usize,
    },
    /// The native histogram schema is outside `0..=`[`MAX_NATIVE_SCHEMA`](crate::MAX_NATIVE_SCHEMA).
    InvalidNativeSchema {
        /// The schema as given.
        schema: i8,
        /// The finest schema allowed.
        max: i8,
    },
    /// More known client ids than the configured maximum number of ids.
    TooManyClientIds {
        /// How many distinct client ids were given.
        count: usize,
        /// The maximum number of distinct client ids.
        max: usize,
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

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidNamespace { namespace } => write!(
                f,
                "invalid namespace {}: use at most {MAX_NAMESPACE_LEN} letters, digits and \
                 underscores, not starting with a digit (for example \"ctms\")",
                Preview(namespace)
            ),
            Self::LegacyTemplateSyntax {
                template,
                suggestion,
            } => write!(
                f,
                "route template {template:?} uses the old `:param`/`*rest` syntax; \
                 write {suggestion:?} instead"
            ),
            Self::TemplateWithoutLeadingSlash { template } => write!(
                f,
                "route template {template:?} does not start with `/`; write \"/{template}\""
            ),
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
            Self::InvalidTemplate { template, source } => {
                write!(f, "invalid route template {template:?}: {source}")
            }
            Self::TemplateTooLong { template, max } => write!(
                f,
                "route template {} is {} bytes long, over the maximum of {max}; \
                 use a parameter or a catch-all (`{{*rest}}`) for the long part",
                Preview(template),
                template.len()
            ),
            Self::TooManyParameters {
                template,
                count,
                max,
            } => write!(
                f,
                "route template {template:?} has {count} parameters, over the router's \
                 maximum of {max}; end it with a catch-all (`{{*rest}}`) instead"
            ),
            Self::DuplicateParameter {
                template,
                parameter,
            } => write!(
                f,
                "route template {template:?} uses the parameter name {parameter:?} twice; \
                 give each parameter its own name"
            ),
            Self::ParameterConstraint {
                template,
                parameter,
                suggestion,
            } => write!(
                f,
                "route template {template:?} has a constraint in parameter {{{parameter}}}, \
                 but templates take none (a parameter matches any segment); \
                 write {suggestion:?} instead"
            ),
            Self::UnmatchableTemplate {
                template,
                character,
            } => write!(
                f,
                "route template {} contains {character:?}, which no request path can \
                 contain; remove it, or write it percent-encoded as clients send it \
                 (a space is %20)",
                Preview(template)
            ),
            Self::MaxMatchedTemplatesTooLarge { max, limit } => write!(
                f,
                "max_matched_templates({max}) is over the limit of {limit}; axum's routes \
                 are finite, so a few hundred is plenty"
            ),
            Self::TooManyRoutes { count, max } => write!(
                f,
                "{count} routes registered, over the limit of {max}; a router this large \
                 is a template list gone wrong (one route per id instead of a template?)"
            ),
            Self::NoRoutes => write!(
                f,
                "no route registered, so nothing would be recorded; add one with \
                 `.route(Route::new(\"/path\"))`"
            ),
            Self::NotAGrpcTemplate { template } => write!(
                f,
                "route {template:?} is marked as gRPC, but gRPC paths are \
                 `/package.Service/Method`: write one method's path, or \
                 `/package.Service/{{method}}` for all of a service's methods"
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
            Self::ClientIdTooLong { client_id, max_len } => write!(
                f,
                "client id {} is {} bytes long, over the maximum of {max_len}; \
                 raise `max_client_id_len` or shorten the id",
                Preview(client_id),
                client_id.len()
            ),
            Self::InvalidClientId { client_id } => write!(
                f,
                "known client id {} is empty, holds control characters or is the \
                 overflow value \"__other__\"; list printable ids only",
                Preview(client_id)
            ),
            Self::MaxClientIdsTooLarge { max, limit } => write!(
                f,
                "max_client_ids({max}) is over the limit of {limit}: each id is a label \
                 value on every API series; lower it"
            ),
            Self::MaxClientIdLenTooLarge { max, limit } => write!(
                f,
                "max_client_id_len({max}) is over the limit of {limit} bytes; lower it"
            ),
            Self::InvalidShards { shards, max } => {
                write!(f, "shards({shards}) is out of range: give 1 to {max}")
            }
            Self::InvalidNativeSchema { schema, max } => write!(
                f,
                "native_histograms({schema}) is out of range: give a schema from 0 (a factor \
                 of 2 between bucket bounds) to {max} (the finest kept)"
            ),
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
            Self::TooManyClientIds { count, max } => write!(
                f,
                "{count} known client ids given, over the maximum of {max}; \
                 raise `max_client_ids` to at least {count}"
            ),
            Self::AlreadyRegistered { metric, .. } => write!(
                f,
                "metric {metric:?} is already registered in this registry; use a fresh \
                 registry, another namespace, or build the layer once and clone it"
            ),
        }
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
            Self::InvalidTemplate { source, .. } => Some(source),
            Self::AlreadyRegistered { source, .. } => Some(source),
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
                BuildError::LegacyTemplateSyntax {
                    template: "/ctms/:id".into(),
                    suggestion: "/ctms/{id}".into(),
                },
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
                BuildError::TemplateWithoutLeadingSlash {
                    template: "ctms".into(),
                },
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
                &["\"abcd\" is 4 bytes", "maximum of 3", "max_client_id_len"],
            ),
            (
                BuildError::TooManyClientIds { count: 5, max: 2 },
                &["5 known client ids", "max_client_ids` to at least 5"],
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
        assert!(matches!(error, BuildError::InvalidTemplate { .. }));
        assert!(error.source().is_some());
    }
}

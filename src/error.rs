//! The error returned when a layer cannot be built.

use std::{error::Error, fmt};

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
    /// A route lists a status code outside `100..=999`.
    InvalidStatusCode {
        /// The template of the route.
        template: String,
        /// The code as given.
        code: u16,
    },
    /// The histogram buckets are empty, not finite or not strictly increasing.
    InvalidBuckets {
        /// The buckets as given.
        buckets: Vec<f64>,
    },
    /// A known client id is longer than the configured maximum.
    ClientIdTooLong {
        /// The client id as given.
        client_id: String,
        /// The maximum length in bytes.
        max_len: usize,
    },
    /// More known client ids than the configured maximum number of ids.
    TooManyClientIds {
        /// How many distinct client ids were given.
        count: usize,
        /// The maximum number of distinct client ids.
        max: usize,
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
                "invalid namespace {namespace:?}: use letters, digits and underscores, \
                 not starting with a digit (for example \"ctms\")"
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
            Self::InvalidStatusCode { template, code } => write!(
                f,
                "route {template:?} lists status code {code}; status codes are 100 to 999"
            ),
            Self::InvalidBuckets { buckets } => write!(
                f,
                "invalid histogram buckets {buckets:?}: give at least one finite upper \
                 bound, in seconds, strictly increasing (+Inf is always added)"
            ),
            Self::ClientIdTooLong { client_id, max_len } => write!(
                f,
                "client id {client_id:?} is {} bytes long, over the maximum of {max_len}; \
                 raise `max_client_id_len` or shorten the id",
                client_id.len()
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
    }
}

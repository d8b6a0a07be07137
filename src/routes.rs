//! Route templates: what a request path is recorded as.

use http::Method;
use matchit::{InsertError, MatchError, Router};

use crate::{bits::BitSet, BuildError};

/// A route template the layer records requests under, with the series to
/// create for it before the first request.
///
/// The template uses [`matchit`]'s syntax (`{param}`, `{*rest}`, `{{` and
/// `}}` for literal braces); see the [crate docs](crate#route-templates).
///
/// The methods and status codes listed here only decide which series exist
/// at zero from the start: a request with any other method or status on this
/// route is still recorded, its series created on first use. A gRPC call is
/// recorded with its gRPC status whatever the template; see
/// [`grpc`](Self::grpc).
///
/// ```
/// use http::Method;
/// use tower_prometheus::Route;
///
/// let route = Route::new("/ctms/{email_id}")
///     .methods([Method::GET, Method::PATCH, Method::PUT])
///     .statuses([200, 401, 404, 422])
///     .with_client_series();
/// ```
#[derive(Clone, Debug)]
pub struct Route {
    pub(crate) template: String,
    pub(crate) methods: Vec<Method>,
    pub(crate) statuses: Vec<u16>,
    pub(crate) api: bool,
    pub(crate) grpc: bool,
    /// Paths recorded under this route besides those its template matches:
    /// the mount point of a [`nested_service`](Self::nested_service).
    pub(crate) aliases: Vec<String>,
}

impl Route {
    /// A route for `template`, with no series pre-initialised yet.
    pub fn new(template: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            methods: Vec::new(),
            statuses: Vec::new(),
            api: false,
            grpc: false,
            aliases: Vec::new(),
        }
    }

    /// A route for a service mounted with axum's
    /// `Router::nest_service(prefix, service)` (a `ServeDir`, another
    /// app): every path axum sends to the service, recorded under one
    /// template, `{prefix}/{*path}`.
    ///
    /// axum sets no `MatchedPath` for the requests below such a mount, so
    /// that [`templates_from_matched_path`](crate::Builder::templates_from_matched_path)
    /// has no template for them, and they would count as unmatched beside
    /// the fallback's 404s. This route gives them one, wherever the layer
    /// is: a request without `MatchedPath` is resolved against the
    /// registered routes. Like axum, it also takes the mount point itself,
    /// `prefix` and `prefix/` (only `prefix/` when `prefix` ends with `/`),
    /// which are recorded under the same template.
    ///
    /// ```
    /// use tower_prometheus::Route;
    ///
    /// let route = Route::nested_service("/static");
    /// assert_eq!(route.template(), "/static/{*path}");
    /// ```
    ///
    /// With axum (feature `axum`):
    ///
    /// ```
    /// # #[cfg(feature = "axum")]
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// use axum::{routing::get, Router};
    /// use tower_prometheus::{RequestMetricsLayer, Route};
    ///
    /// # let files = tower::service_fn(|_: axum::extract::Request| async {
    /// #     Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::empty()))
    /// # });
    /// let registry = prometheus::Registry::new();
    /// let metrics = RequestMetricsLayer::builder()
    ///     .templates_from_matched_path()
    ///     .route(Route::nested_service("/static"))
    ///     .build(&registry)?;
    /// let app: Router = Router::new()
    ///     .route("/users/{id}", get(|| async { "user" }))
    ///     .nest_service("/static", files)
    ///     .layer(metrics);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "axum"))]
    /// # fn main() {}
    /// ```
    pub fn nested_service(prefix: impl AsRef<str>) -> Self {
        let prefix = prefix.as_ref();
        // `/static/` is mounted as `/static/{*rest}` and `/static/` only;
        // `/static` as those and `/static` too (axum's `nest_service`).
        let base = prefix.strip_suffix('/').unwrap_or(prefix);
        let mut aliases = Vec::with_capacity(2);
        if !base.is_empty() && base.len() == prefix.len() {
            aliases.push(base.to_owned());
        }
        aliases.push(format!("{base}/"));
        Self {
            aliases,
            ..Self::new(format!("{base}/{{*path}}"))
        }
    }

    /// Adds methods this route answers; their series start at zero.
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods.extend(methods);
        self
    }

    /// Adds status codes this route answers; for every listed method, their
    /// series start at zero.
    ///
    /// A code outside `100..=999` makes [`build`](crate::Builder::build)
    /// fail with [`BuildError::InvalidStatusCode`].
    #[must_use]
    pub fn statuses(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.statuses.extend(codes);
        self
    }

    /// Pre-creates this route's `api_requests_total` series: at zero from
    /// the start for every [known client](crate::Builder::clients), listed
    /// method and status family of the route.
    ///
    /// Only the pre-creation depends on it: a request with a client id is
    /// counted in `api_requests_total` on any route, called this or not.
    #[must_use]
    pub fn with_client_series(mut self) -> Self {
        self.api = true;
        self
    }

    /// The former name of [`with_client_series`](Self::with_client_series),
    /// which says more than it does: it marks no route as "API", it only
    /// pre-creates series.
    #[deprecated(
        since = "0.1.0",
        note = "use `with_client_series`, which does the same"
    )]
    #[must_use]
    pub fn api(self) -> Self {
        self.with_client_series()
    }

    /// Marks this route as a gRPC route, `/Service/Method`: its
    /// `grpc_requests_total` series start at zero for every code. For a
    /// service without a package (`/Greeter/SayHello`), or a template whose
    /// method is a parameter (`/demo.v1.Catalog/{method}`, which counts all
    /// of the service's methods under `grpc_method="{method}"`); templates
    /// of the shape `/package.Service/Method` are gRPC routes without it.
    ///
    /// Only the pre-creation depends on it: a gRPC call is recorded with
    /// its gRPC status on any route, marked or not, with labels taken from
    /// the template (see the [crate docs](crate#grpc)).
    ///
    /// A template that is not two non-empty segments is a
    /// [`BuildError::NotAGrpcTemplate`].
    ///
    /// ```
    /// use tower_prometheus::{RequestMetricsLayer, Route};
    ///
    /// let registry = prometheus::Registry::new();
    /// RequestMetricsLayer::builder()
    ///     .route(Route::new("/demo.v1.Catalog/{method}").grpc())
    ///     .build(&registry)?;
    /// # Ok::<(), tower_prometheus::BuildError>(())
    /// ```
    #[must_use]
    pub fn grpc(mut self) -> Self {
        self.grpc = true;
        self
    }

    /// The template as given.
    pub fn template(&self) -> &str {
        &self.template
    }
}

/// Dense index of a route, made only by [`Routes`]: templates in the order
/// they were registered, then the value unmatched paths are recorded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RouteId(usize);

impl RouteId {
    fn new(index: usize) -> Self {
        Self(index)
    }

    /// Its dense index, below [`Routes::len`].
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// The most routes one layer takes: a million, far beyond any real router;
/// an idle route costs about 128 bytes of ours plus matchit's tree.
pub const MAX_ROUTES: usize = 1 << 20;

/// The bytes a path may have after its leading `/`.
type ByteSet = BitSet<4>;

/// The route table: matchit stores a dense id, a side table the template.
#[derive(Debug)]
pub(crate) struct Routes {
    router: Router<RouteId>,
    templates: Vec<Box<str>>,
    /// The id unmatched paths are recorded under, if they are recorded.
    unmatched: Option<RouteId>,
    /// The bytes a path can have right after its leading `/` and still
    /// match a template; `None` when a template starts with a parameter, so
    /// that any byte can.
    first_bytes: Option<ByteSet>,
    /// Paths recorded under a route besides its template's (the mount
    /// point of a nested service), for [`take_matched_templates`](Self::take_matched_templates).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    aliases: Vec<(Box<str>, RouteId)>,
    /// Templates taken from requests (axum's `MatchedPath`), when the layer
    /// takes them.
    #[cfg(feature = "axum")]
    matched: Option<MatchedTemplates>,
}

/// Templates a request names itself (axum's `MatchedPath`): a registered
/// one is found by its text; any other is learned, up to a cap, and gets
/// an id after the registered ones.
#[cfg(feature = "axum")]
#[derive(Debug)]
struct MatchedTemplates {
    registered: std::collections::HashMap<Box<str>, RouteId>,
    /// The same bounded, lock-free table client ids use: a template claims
    /// a slot once, and past the cap gets the overflow slot, which is not
    /// recorded under a template of its own.
    learned: crate::client_id::ClientTable,
    /// The id of the first learned slot.
    first: usize,
}

impl Routes {
    /// Builds the table; `unmatched` is the `path_template` value unmatched
    /// paths are recorded as, or `None` to leave them out.
    pub(crate) fn new<'a>(
        templates: impl IntoIterator<Item = &'a str>,
        unmatched: Option<&str>,
    ) -> Result<Self, BuildError> {
        let mut router = Router::new();
        let mut names: Vec<Box<str>> = Vec::new();
        let mut first_bytes = Some(ByteSet::default());
        for template in templates {
            check_syntax(template)?;
            match template.as_bytes().get(1) {
                // `/` matches the path `/` only, which is always looked up.
                None => {}
                // A parameter (or an escaped brace): any byte may follow.
                Some(b'{') => first_bytes = None,
                Some(&byte) => {
                    if let Some(set) = &mut first_bytes {
                        set.insert(usize::from(byte));
                    }
                }
            }
            router
                .insert(template, RouteId::new(names.len()))
                .map_err(|error| insert_error(template, error))?;
            names.push(template.into());
        }
        let unmatched = match unmatched {
            Some(value) => {
                check_unmatched_value(value, &names)?;
                names.push(value.into());
                Some(RouteId::new(names.len() - 1))
            }
            None => None,
        };
        Ok(Self {
            router,
            templates: names,
            unmatched,
            first_bytes,
            aliases: Vec::new(),
            #[cfg(feature = "axum")]
            matched: None,
        })
    }

    /// Records the path `alias` under the registered route `id` too (the
    /// mount point of a nested service); a conflict names the route's
    /// template. Before [`take_matched_templates`](Self::take_matched_templates).
    pub(crate) fn add_alias(&mut self, alias: &str, id: RouteId) -> Result<(), BuildError> {
        let template = self.template(id).to_owned();
        // An alias is a prefix of its template: the first-byte filter
        // already lets it through.
        self.router
            .insert(alias, id)
            .map_err(|error| insert_error(&template, error))?;
        self.aliases.push((alias.into(), id));
        Ok(())
    }

    /// Takes templates from requests too, learning at most `max` beyond the
    /// registered ones.
    #[cfg(feature = "axum")]
    pub(crate) fn take_matched_templates(&mut self, max: usize) {
        let registered_count = self.templates.len() - usize::from(self.unmatched.is_some());
        let registered = self.templates[..registered_count]
            .iter()
            .enumerate()
            .map(|(index, template)| (template.clone(), RouteId::new(index)))
            .chain(self.aliases.iter().cloned())
            .collect();
        self.matched = Some(MatchedTemplates {
            registered,
            learned: crate::client_id::ClientTable::new(max, MAX_TEMPLATE_LEN),
            first: self.templates.len(),
        });
    }

    /// The route of a template a request names (axum's `MatchedPath`):
    /// the registered one of that text, else one learned for it; `None`
    /// when the layer does not take templates from requests or has learned
    /// as many as it may.
    #[cfg(feature = "axum")]
    #[inline]
    pub(crate) fn resolve_template(&self, template: &str) -> Option<RouteId> {
        let matched = self.matched.as_ref()?;
        if let Some(&id) = matched.registered.get(template) {
            return Some(id);
        }
        let slot = matched.learned.slot(template);
        (slot != matched.learned.overflow()).then(|| RouteId::new(matched.first + slot.index()))
    }

    /// Whether any template has been learned from requests.
    pub(crate) fn learned_any(&self) -> bool {
        #[cfg(feature = "axum")]
        {
            self.matched
                .as_ref()
                .is_some_and(|matched| matched.learned.claimed() > 0)
        }
        #[cfg(not(feature = "axum"))]
        {
            false
        }
    }

    /// Whether `path` can match a template at all, by its byte after the
    /// leading `/`: most paths that match nothing (scanners, typos) are
    /// turned away here, for the price of a bit test instead of a tree walk.
    #[inline]
    fn may_match(&self, path: &str) -> bool {
        match (&self.first_bytes, path.as_bytes().get(1)) {
            (Some(set), Some(&byte)) => set.contains(usize::from(byte)),
            _ => true,
        }
    }

    /// The route whose template `path` matches, if any.
    #[inline]
    pub(crate) fn lookup(&self, path: &str) -> Option<RouteId> {
        if !self.may_match(path) {
            return None;
        }
        match self.router.at(path) {
            Ok(matched) => Some(*matched.value),
            // The only way a lookup can fail; listed so that a new variant in
            // a future matchit is a compile error here rather than a silent
            // change of what gets recorded.
            Err(MatchError::NotFound) => None,
        }
    }

    /// The route unmatched paths are recorded under, if they are recorded.
    #[inline]
    pub(crate) fn unmatched(&self) -> Option<RouteId> {
        self.unmatched
    }

    /// The route a request path is recorded under, if any.
    #[cfg(test)]
    #[cfg(not(loom))]
    pub(crate) fn resolve(&self, path: &str) -> Option<RouteId> {
        self.lookup(path).or(self.unmatched)
    }

    /// The `path_template` label value of a route.
    pub(crate) fn template(&self, id: RouteId) -> &str {
        if let Some(template) = self.templates.get(id.index()) {
            return template;
        }
        #[cfg(feature = "axum")]
        if let Some(matched) = &self.matched {
            let slot = matched.learned.slot_at(id.index() - matched.first);
            if let Some(template) = slot.and_then(|slot| matched.learned.name(slot)) {
                return template;
            }
        }
        ""
    }

    /// Every route id: the templates in the order they were registered, the
    /// unmatched value's, then the templates learned from requests so far.
    pub(crate) fn ids(&self) -> impl Iterator<Item = RouteId> + '_ {
        let registered = (0..self.templates.len()).map(RouteId::new);
        #[cfg(feature = "axum")]
        let learned = self.matched.iter().flat_map(|matched| {
            let learned = &matched.learned;
            // Not the overflow slot, which no template gets, nor a slot
            // being claimed whose template is not published yet.
            learned
                .slots_in_use()
                .filter(|&slot| slot != learned.overflow() && learned.name(slot).is_some())
                .map(|slot| RouteId::new(matched.first + slot.index()))
        });
        #[cfg(not(feature = "axum"))]
        let learned = std::iter::empty();
        registered.chain(learned)
    }

    /// Number of route ids there can be: the registered ones, the unmatched
    /// one, and room for the templates that may be learned.
    pub(crate) fn len(&self) -> usize {
        #[cfg(feature = "axum")]
        if let Some(matched) = &self.matched {
            return matched.first + matched.learned.slots();
        }
        self.templates.len()
    }
}

/// The most parameters matchit can hold in one template (catch-alls aside):
/// it panics past this.
pub const MAX_TEMPLATE_PARAMS: usize = 25;

/// The longest template, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 1024;

/// Rejects what matchit would take as literal text but the user almost
/// certainly meant as a parameter, what it would panic on, and templates no
/// request path can match.
fn check_syntax(template: &str) -> Result<(), BuildError> {
    if template.len() > MAX_TEMPLATE_LEN {
        return Err(BuildError::TemplateTooLong {
            template: template.to_owned(),
            max: MAX_TEMPLATE_LEN,
        });
    }
    if !template.starts_with('/') {
        return Err(BuildError::TemplateWithoutLeadingSlash {
            template: template.to_owned(),
        });
    }
    let legacy = template
        .split('/')
        .any(|segment| segment.len() > 1 && (segment.starts_with(':') || segment.starts_with('*')));
    if legacy {
        let suggestion: Vec<String> = template
            .split('/')
            .map(|segment| match segment.as_bytes().first() {
                Some(b':') if segment.len() > 1 => format!("{{{}}}", &segment[1..]),
                Some(b'*') if segment.len() > 1 => format!("{{*{}}}", &segment[1..]),
                _ => segment.to_owned(),
            })
            .collect();
        return Err(BuildError::LegacyTemplateSyntax {
            template: template.to_owned(),
            suggestion: suggestion.join("/"),
        });
    }
    let Some(parts) = Part::split(template) else {
        // Unbalanced braces: matchit names the problem.
        return Ok(());
    };
    check_params(template, &parts)?;
    check_literals(template, &parts)
}

/// A piece of a template: literal text (braces unescaped) or a parameter.
#[derive(Debug, PartialEq)]
enum Part<'a> {
    Literal(String),
    Param { name: &'a str, catch_all: bool },
}

impl<'a> Part<'a> {
    /// The parts of `template`, or `None` if its braces do not balance.
    fn split(template: &'a str) -> Option<Vec<Self>> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if c == '{' {
                let end = rest.find('}')?;
                let name = &rest[1..end];
                if !literal.is_empty() {
                    parts.push(Self::Literal(std::mem::take(&mut literal)));
                }
                parts.push(match name.strip_prefix('*') {
                    Some(name) => Self::Param {
                        name,
                        catch_all: true,
                    },
                    None => Self::Param {
                        name,
                        catch_all: false,
                    },
                });
                rest = &rest[end + 1..];
            } else if c == '}' {
                return None;
            } else {
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !literal.is_empty() {
            parts.push(Self::Literal(literal));
        }
        Some(parts)
    }
}

/// Parameter names: unique, no constraints, not too many.
fn check_params(template: &str, parts: &[Part<'_>]) -> Result<(), BuildError> {
    let mut names: Vec<&str> = Vec::new();
    for part in parts {
        let Part::Param { name, .. } = part else {
            continue;
        };
        if let Some(cut) = name.find(|c: char| ":[]()+?|^$\\,<>".contains(c)) {
            let plain = &name[..cut];
            let suggestion = template.replacen(&format!("{{{name}}}"), &format!("{{{plain}}}"), 1);
            let suggestion =
                suggestion.replacen(&format!("{{*{name}}}"), &format!("{{*{plain}}}"), 1);
            return Err(BuildError::ParameterConstraint {
                template: template.to_owned(),
                parameter: (*name).to_owned(),
                suggestion,
            });
        }
        if names.contains(name) {
            return Err(BuildError::DuplicateParameter {
                template: template.to_owned(),
                parameter: (*name).to_owned(),
            });
        }
        names.push(name);
    }
    let params = parts
        .iter()
        .filter(|part| {
            matches!(
                part,
                Part::Param {
                    catch_all: false,
                    ..
                }
            )
        })
        .count();
    if params > MAX_TEMPLATE_PARAMS {
        return Err(BuildError::TooManyParameters {
            template: template.to_owned(),
            count: params,
            max: MAX_TEMPLATE_PARAMS,
        });
    }
    Ok(())
}

/// Every literal character must be one a request path can hold: the path
/// of an `http::Uri` never has control characters, spaces, `?` or `#`.
fn check_literals(template: &str, parts: &[Part<'_>]) -> Result<(), BuildError> {
    for part in parts {
        let Part::Literal(text) = part else { continue };
        for c in text.chars() {
            let mut buffer = [0; 4];
            let probe = format!("/{}", c.encode_utf8(&mut buffer));
            let fits = http::uri::PathAndQuery::try_from(probe.as_str())
                .is_ok_and(|path| path.path() == probe && path.query().is_none());
            if !fits {
                return Err(BuildError::UnmatchableTemplate {
                    template: template.to_owned(),
                    character: c,
                });
            }
        }
    }
    Ok(())
}

/// The value unmatched paths are recorded under must be a usable label
/// value that no template has, or two series would share one label set.
fn check_unmatched_value(value: &str, templates: &[Box<str>]) -> Result<(), BuildError> {
    let usable = !value.is_empty()
        && value.len() <= MAX_TEMPLATE_LEN
        && !value.chars().any(char::is_control);
    if !usable {
        return Err(BuildError::InvalidUnmatchedValue {
            value: value.to_owned(),
        });
    }
    if templates.iter().any(|template| &**template == value) {
        return Err(BuildError::UnmatchedValueIsATemplate {
            value: value.to_owned(),
        });
    }
    Ok(())
}

fn insert_error(template: &str, error: InsertError) -> BuildError {
    match error {
        InsertError::Conflict { with } => BuildError::TemplateConflict {
            template: template.to_owned(),
            with,
        },
        source => BuildError::InvalidTemplate {
            template: template.to_owned(),
            source,
        },
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use http::Method;

    use super::*;

    const TEMPLATES: &[&str] = &[
        "/",
        "/docs",
        "/__version__",
        "/ctms",
        "/ctms/{email_id}",
        "/files/{*path}",
        "/v{version}/items",
        "/literal/{{braces}}",
    ];

    #[test]
    fn the_first_byte_filter_turns_away_only_paths_no_template_matches() {
        let routes =
            Routes::new(["/", "/docs", "/ctms/{id}", "/__version__"], Some("OTHER")).unwrap();
        assert!(routes.first_bytes.is_some());
        let other = routes.unmatched;
        for (path, expected) in [
            ("/", Some("/")),
            ("/docs", Some("/docs")),
            ("/ctms/1", Some("/ctms/{id}")),
            ("/__version__", Some("/__version__")),
            ("/nothing", Some("OTHER")),
            ("/Docs", Some("OTHER")),
            ("/\u{e9}t\u{e9}", Some("OTHER")),
            ("/dogs", Some("OTHER")),
            ("", Some("OTHER")),
            ("*", Some("OTHER")),
        ] {
            let resolved = routes.resolve(path);
            assert_eq!(resolved.map(|id| routes.template(id)), expected, "{path:?}");
            if expected == Some("OTHER") {
                assert_eq!(resolved, other);
            }
        }
        // A template that starts with a parameter can match any first byte.
        let open = Routes::new(["/docs", "/{tenant}/items"], None).unwrap();
        assert!(open.first_bytes.is_none());
        assert_eq!(
            open.resolve("/zz/items").map(|id| open.template(id)),
            Some("/{tenant}/items")
        );
    }

    #[test]
    fn paths_resolve_to_their_template() {
        let routes = Routes::new(TEMPLATES.iter().copied(), None).unwrap();
        let table = [
            ("/", Some("/")),
            ("/docs", Some("/docs")),
            ("/__version__", Some("/__version__")),
            ("/ctms", Some("/ctms")),
            (
                "/ctms/0f6a7b4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
                Some("/ctms/{email_id}"),
            ),
            ("/ctms/not-a-uuid", Some("/ctms/{email_id}")),
            ("/files/a/b/c.txt", Some("/files/{*path}")),
            ("/v2/items", Some("/v{version}/items")),
            ("/literal/{braces}", Some("/literal/{{braces}}")),
            ("/ctms/", None),
            ("/ctms/a/b", None),
            ("/docs/", None),
            ("/DOCS", None),
            ("/nope", None),
            ("", None),
            ("/%2e%2e/etc/passwd", None),
        ];
        for (path, expected) in table {
            let got = routes.resolve(path).map(|id| routes.template(id));
            assert_eq!(got, expected, "path {path:?}");
        }
    }

    #[test]
    fn unmatched_paths_resolve_to_the_chosen_value_when_recorded() {
        let routes = Routes::new(["/a"], Some("unmatched")).unwrap();
        assert_eq!(routes.len(), 2);
        let id = routes.resolve("/zzz").unwrap();
        assert_eq!(routes.template(id), "unmatched");
        assert_eq!(routes.template(routes.resolve("/a").unwrap()), "/a");
    }

    #[test]
    fn legacy_syntax_is_rejected_with_the_new_spelling() {
        let table = [
            ("/ctms/:email_id", "/ctms/{email_id}"),
            ("/files/*path", "/files/{*path}"),
            ("/a/:x/b/:y", "/a/{x}/b/{y}"),
            // A lone `:` or `*` is literal text, even next to old syntax.
            ("/:/x/:id", "/:/x/{id}"),
            ("/*/files/*rest", "/*/files/{*rest}"),
        ];
        for (template, want) in table {
            match Routes::new([template], None) {
                Err(BuildError::LegacyTemplateSyntax { suggestion, .. }) => {
                    assert_eq!(suggestion, want, "{template}");
                }
                other => panic!("{template}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn conflicting_templates_name_the_earlier_one() {
        match Routes::new(["/ctms/{email_id}", "/ctms/{id}"], None) {
            Err(BuildError::TemplateConflict { template, with }) => {
                assert_eq!(template, "/ctms/{id}");
                assert_eq!(with, "/ctms/{email_id}");
            }
            other => panic!("unexpected {other:?}"),
        }
        match Routes::new(["/a", "/a"], None) {
            Err(BuildError::TemplateConflict { template, with }) => {
                assert_eq!((template.as_str(), with.as_str()), ("/a", "/a"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Routes for `routes`, with their aliases, as the builder makes them.
    fn with_aliases(routes: &[Route]) -> Result<Routes, BuildError> {
        let mut table = Routes::new(routes.iter().map(|route| route.template.as_str()), None)?;
        for (index, route) in routes.iter().enumerate() {
            for alias in &route.aliases {
                table.add_alias(alias, RouteId::new(index))?;
            }
        }
        Ok(table)
    }

    #[test]
    fn a_nested_service_is_its_mount_point_and_everything_below() {
        for (prefix, template, aliases) in [
            ("/static", "/static/{*path}", &["/static", "/static/"][..]),
            ("/static/", "/static/{*path}", &["/static/"]),
            ("/", "/{*path}", &["/"]),
            (
                "/t/{tenant}/files",
                "/t/{tenant}/files/{*path}",
                &["/t/{tenant}/files", "/t/{tenant}/files/"],
            ),
        ] {
            let route = Route::nested_service(prefix);
            assert_eq!(route.template(), template, "{prefix}");
            assert_eq!(route.aliases, aliases, "{prefix}");
        }
        let routes = with_aliases(&[
            Route::nested_service("/static"),
            Route::new("/staticky"),
            Route::nested_service("/t/{tenant}/files/"),
        ])
        .unwrap();
        for (path, expected) in [
            ("/static", Some("/static/{*path}")),
            ("/static/", Some("/static/{*path}")),
            ("/static/app.js", Some("/static/{*path}")),
            ("/static/css/site.css", Some("/static/{*path}")),
            ("/staticky", Some("/staticky")),
            ("/statics", None),
            ("/t/a/files/x", Some("/t/{tenant}/files/{*path}")),
            ("/t/a/files/", Some("/t/{tenant}/files/{*path}")),
            // As axum: a prefix written with its `/` does not take the
            // path without it.
            ("/t/a/files", None),
        ] {
            let resolved = routes.resolve(path);
            assert_eq!(resolved.map(|id| routes.template(id)), expected, "{path}");
        }
    }

    #[test]
    fn a_nested_service_conflicts_with_a_route_at_its_mount_point() {
        match with_aliases(&[Route::new("/static"), Route::nested_service("/static")]) {
            Err(BuildError::TemplateConflict { template, with }) => {
                assert_eq!(
                    (template.as_str(), with.as_str()),
                    ("/static/{*path}", "/static")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_templates_are_rejected() {
        assert!(matches!(
            Routes::new(["ctms"], None),
            Err(BuildError::TemplateWithoutLeadingSlash { .. })
        ));
        assert!(matches!(
            Routes::new(["/a/{*rest}/b"], None),
            Err(BuildError::InvalidTemplate { .. })
        ));
        assert!(matches!(
            Routes::new(["/a/{x"], None),
            Err(BuildError::InvalidTemplate { .. })
        ));
    }

    fn params(count: usize) -> String {
        (0..count).map(|i| format!("/{{p{i}}}")).collect()
    }

    #[test]
    fn a_template_with_more_parameters_than_matchit_holds_is_refused() {
        // matchit 0.9 panics on the 26th parameter.
        Routes::new([params(MAX_TEMPLATE_PARAMS).as_str()], None).unwrap();
        let too_many = params(MAX_TEMPLATE_PARAMS + 1);
        match Routes::new([too_many.as_str()], None) {
            Err(BuildError::TooManyParameters { count, max, .. }) => {
                assert_eq!((count, max), (26, 25));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A catch-all is not one of them.
        let with_rest = format!("{}/{{*rest}}", params(MAX_TEMPLATE_PARAMS));
        Routes::new([with_rest.as_str()], None).unwrap();
        assert!(matches!(
            Routes::new([params(100).as_str()], None),
            Err(BuildError::TooManyParameters { count: 100, .. })
        ));
    }

    #[test]
    fn a_parameter_name_used_twice_is_refused() {
        for template in ["/{a}/{a}", "/{a}/x/{*a}", "/x{id}/{id}"] {
            match Routes::new([template], None) {
                Err(BuildError::DuplicateParameter { parameter, .. }) => {
                    assert!(parameter == "a" || parameter == "id", "{template}");
                }
                other => panic!("{template}: unexpected {other:?}"),
            }
        }
        Routes::new(["/{a}/{b}/{{a}}"], None).unwrap();
    }

    #[test]
    fn constraints_in_parameters_are_refused_with_the_plain_spelling() {
        let table = [
            ("/users/{id:[0-9]+}", "id:[0-9]+", "/users/{id}"),
            ("/users/{id:int}/x", "id:int", "/users/{id}/x"),
            ("/files/{*path:.*}", "path:.*", "/files/{*path}"),
            ("/a/{id[0-9]}", "id[0-9]", "/a/{id}"),
        ];
        for (template, parameter, suggestion) in table {
            match Routes::new([template], None) {
                Err(BuildError::ParameterConstraint {
                    parameter: p,
                    suggestion: s,
                    ..
                }) => {
                    assert_eq!(
                        (p.as_str(), s.as_str()),
                        (parameter, suggestion),
                        "{template}"
                    );
                }
                other => panic!("{template}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn templates_no_request_path_can_match_are_refused() {
        for (template, character) in [
            ("/a\nb", '\n'),
            ("/a\0", '\0'),
            ("/a\rb", '\r'),
            ("/\x7f", '\x7f'),
            ("/a b", ' '),
            ("/a?b", '?'),
            ("/a#b", '#'),
            ("/{id}\t", '\t'),
        ] {
            match Routes::new([template], None) {
                Err(BuildError::UnmatchableTemplate { character: c, .. }) => {
                    assert_eq!(c, character, "{template:?}");
                }
                other => panic!("{template:?}: unexpected {other:?}"),
            }
        }
        // What a request path can hold is accepted.
        for template in [
            "/%20",
            "/caf\u{e9}",
            "/a:b",
            "/a;b=c",
            "/~user",
            "/literal/{{braces}}",
        ] {
            Routes::new([template], None).unwrap();
        }
    }

    #[test]
    fn every_accepted_literal_character_can_arrive_in_a_request_path() {
        for byte in 0_u8..=127 {
            let c = char::from(byte);
            if c == '{' || c == '}' {
                continue;
            }
            let template = format!("/x{c}");
            if Routes::new([template.as_str()], None).is_ok() {
                let uri: http::Uri = template
                    .parse()
                    .unwrap_or_else(|e| panic!("{template:?}: {e}"));
                assert_eq!(uri.path(), template, "{c:?}");
            }
        }
    }

    #[test]
    fn a_template_over_the_length_limit_is_refused() {
        let longest = format!("/{}", "a".repeat(MAX_TEMPLATE_LEN - 1));
        Routes::new([longest.as_str()], None).unwrap();
        for len in [MAX_TEMPLATE_LEN + 1, 1 << 20] {
            let template = format!("/{}", "a".repeat(len - 1));
            let error = Routes::new([template.as_str()], None).unwrap_err();
            assert!(matches!(
                error,
                BuildError::TemplateTooLong {
                    max: MAX_TEMPLATE_LEN,
                    ..
                }
            ));
            assert!(error.to_string().len() < 400);
        }
    }

    #[test]
    #[allow(deprecated)]
    fn api_is_the_former_name_of_with_client_series() {
        assert!(Route::new("/a").api().api);
        assert!(Route::new("/a").with_client_series().api);
        assert!(!Route::new("/a").api);
    }

    #[test]
    fn a_route_keeps_its_template_as_given() {
        let route = Route::new("/ctms/{email_id}")
            .methods([Method::GET])
            .with_client_series();
        assert_eq!(route.template(), "/ctms/{email_id}");
        assert_eq!(Route::new("").template(), "");
    }

    #[test]
    fn one_character_segments_are_literal_text_not_old_syntax() {
        let routes = Routes::new(["/a/:", "/b/*"], None).unwrap();
        assert_eq!(
            routes.lookup("/a/:").map(|id| routes.template(id)),
            Some("/a/:")
        );
        assert_eq!(
            routes.lookup("/b/*").map(|id| routes.template(id)),
            Some("/b/*")
        );
        assert_eq!(routes.lookup("/a/x"), None);
    }
}

//! Route templates: what a request path is recorded as.

use matchit::{InsertError, MatchError, Router};

use crate::{bits::BitSet, limits::MAX_TEMPLATE_LEN, template, BuildError, TemplateError};

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
            template::check(template).map_err(|reason| BuildError::template(template, reason))?;
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
        source => BuildError::template(template, TemplateError::Router(source)),
    }
}

#[cfg(test)]
#[cfg(not(loom))]
mod tests {
    use http::Method;

    use super::*;
    use crate::{limits::MAX_TEMPLATE_PARAMS, Route};

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
                Err(BuildError::InvalidTemplate {
                    reason: TemplateError::LegacySyntax { suggestion },
                    ..
                }) => {
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
            Err(BuildError::InvalidTemplate {
                reason: TemplateError::NoLeadingSlash,
                ..
            })
        ));
        assert!(matches!(
            Routes::new(["/a/{*rest}/b"], None),
            Err(BuildError::InvalidTemplate {
                reason: TemplateError::Router(_),
                ..
            })
        ));
        assert!(matches!(
            Routes::new(["/a/{x"], None),
            Err(BuildError::InvalidTemplate {
                reason: TemplateError::Router(_),
                ..
            })
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
            Err(BuildError::InvalidTemplate {
                reason: TemplateError::TooManyParameters { count, max },
                ..
            }) => {
                assert_eq!((count, max), (26, 25));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A catch-all is not one of them.
        let with_rest = format!("{}/{{*rest}}", params(MAX_TEMPLATE_PARAMS));
        Routes::new([with_rest.as_str()], None).unwrap();
        assert!(matches!(
            Routes::new([params(100).as_str()], None),
            Err(BuildError::InvalidTemplate {
                reason: TemplateError::TooManyParameters { count: 100, .. },
                ..
            })
        ));
    }

    #[test]
    fn a_parameter_name_used_twice_is_refused() {
        for template in ["/{a}/{a}", "/{a}/x/{*a}", "/x{id}/{id}"] {
            match Routes::new([template], None) {
                Err(BuildError::InvalidTemplate {
                    reason: TemplateError::DuplicateParameter { parameter },
                    ..
                }) => {
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
                Err(BuildError::InvalidTemplate {
                    reason:
                        TemplateError::ParameterConstraint {
                            parameter: p,
                            suggestion: s,
                        },
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
                Err(BuildError::InvalidTemplate {
                    reason: TemplateError::Unmatchable { character: c },
                    ..
                }) => {
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
                BuildError::InvalidTemplate {
                    reason: TemplateError::TooLong {
                        max: MAX_TEMPLATE_LEN
                    },
                    ..
                }
            ));
            assert!(error.to_string().len() < 400);
        }
    }

    #[test]
    fn with_client_series_marks_the_route() {
        assert!(Route::new("/a").with_client_series().client_series);
        assert!(!Route::new("/a").client_series);
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

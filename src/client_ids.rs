//! Which client ids a layer records, and how many: the one value that
//! configures `api_requests_total`'s `client_id` label.

use std::fmt;

use http::HeaderMap;

use crate::{
    client_id::ClientTable,
    limits::{
        DEFAULT_MAX_CLIENT_IDS, DEFAULT_MAX_CLIENT_ID_LEN, MAX_CLIENT_IDS, MAX_CLIENT_ID_LEN,
    },
    schema::OTHER_CLIENT_ID,
    BuildError,
};

/// Reads a client id from request headers.
pub(crate) type ClientIdReader =
    Reader<dyn for<'a> Fn(&'a HeaderMap) -> Option<&'a str> + Send + Sync>;

/// Where a layer finds each request's client id, the ids known in advance,
/// and the caps that keep `client_id` bounded; given to
/// [`Builder::client_ids`](crate::Builder::client_ids).
///
/// A request is counted in `<namespace>_api_requests_total` when it has a
/// client id: a [`ClientId`](crate::ClientId) put in its response
/// extensions (always looked for, and first), or what the reader of
/// [`from_request`](Self::from_request) finds in its headers. Past either
/// cap, an id is recorded as `__other__`, never truncated.
///
/// ```
/// use http::HeaderName;
/// use tower_prometheus::{ClientIds, RequestMetricsLayer, Route};
///
/// static CLIENT_ID: HeaderName = HeaderName::from_static("x-client-id");
///
/// let layer = RequestMetricsLayer::builder()
///     .route(Route::new("/ctms/{email_id}").with_client_series())
///     .client_ids(
///         ClientIds::from_request(|headers| headers.get(&CLIENT_ID)?.to_str().ok())
///             .known(["test_client"])
///             .max(500),
///     )
///     .build(&prometheus::Registry::new())?;
/// # Ok::<(), tower_prometheus::BuildError>(())
/// ```
#[must_use]
#[derive(Debug)]
pub struct ClientIds {
    read: Option<ClientIdReader>,
    known: Vec<String>,
    max: usize,
    max_len: usize,
}

impl Default for ClientIds {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientIds {
    /// Client ids from [`ClientId`](crate::ClientId) response extensions
    /// only (the default), at most 100 ids of at most 128 bytes.
    pub fn new() -> Self {
        Self {
            read: None,
            known: Vec::new(),
            max: DEFAULT_MAX_CLIENT_IDS,
            max_len: DEFAULT_MAX_CLIENT_ID_LEN,
        }
    }

    /// Client ids read from the request headers too, for apps whose front
    /// proxy has already authenticated the caller and says who it is in a
    /// header. A [`ClientId`](crate::ClientId) in the response extensions
    /// takes precedence.
    ///
    /// Only read headers the proxy sets itself: whatever this returns
    /// becomes a label value (within the caps). Look the header up by a
    /// [`HeaderName`](http::HeaderName) constant rather than a `&str`,
    /// which is parsed again on every request. `read` runs on every
    /// recorded request; a panic in it is recorded as 500.
    pub fn from_request<F>(read: F) -> Self
    where
        F: for<'a> Fn(&'a HeaderMap) -> Option<&'a str> + Send + Sync + 'static,
    {
        Self {
            read: Some(Reader(Box::new(read))),
            ..Self::new()
        }
    }

    /// Adds ids known in advance: they get their slots at build time, and
    /// on every route [`with_client_series`](crate::Route::with_client_series)
    /// their `api_requests_total` series start at zero. Listing `__other__`
    /// pre-initialises the overflow series instead.
    ///
    /// An empty id or one with control characters makes the build fail with
    /// [`BuildError::InvalidClientId`].
    pub fn known<I>(mut self, ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.known.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Caps the number of distinct ids, known ones included (default 100,
    /// at most 10,000). Ids seen past the cap are recorded as `__other__`.
    /// Nothing proportional to the cap is allocated: the table grows with
    /// the ids seen.
    pub fn max(mut self, max: usize) -> Self {
        self.max = max;
        self
    }

    /// Caps an id's length in bytes (default 128, at most 1,024). Longer
    /// ids are recorded as `__other__`, never truncated: a truncated id
    /// could pass for another client.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The reader of [`from_request`](Self::from_request), if any.
    #[inline]
    pub(crate) fn reader(&self) -> Option<&ClientIdReader> {
        self.read.as_ref()
    }

    /// Checks the caps and the known ids, and returns the table with the
    /// known ids in its first slots.
    pub(crate) fn table(&self) -> Result<KnownClients, BuildError> {
        if self.max > MAX_CLIENT_IDS {
            return Err(BuildError::out_of_range(
                "client ids' max",
                self.max,
                0,
                MAX_CLIENT_IDS,
            ));
        }
        if self.max_len > MAX_CLIENT_ID_LEN {
            return Err(BuildError::out_of_range(
                "client ids' max_len",
                self.max_len,
                0,
                MAX_CLIENT_ID_LEN,
            ));
        }
        let table = ClientTable::new(self.max, self.max_len);
        let mut ids: Vec<&str> = Vec::new();
        let mut overflow_listed = false;
        for id in &self.known {
            if id == OTHER_CLIENT_ID {
                // The overflow series itself: pre-initialised, no slot.
                overflow_listed = true;
            } else if id.len() > self.max_len {
                return Err(BuildError::ClientIdTooLong {
                    client_id: id.clone(),
                    max_len: self.max_len,
                });
            } else if !table.is_recordable(id) {
                return Err(BuildError::InvalidClientId {
                    client_id: id.clone(),
                });
            } else if !ids.contains(&id.as_str()) {
                ids.push(id);
            }
        }
        if ids.len() > self.max {
            return Err(BuildError::out_of_range(
                "known client ids",
                ids.len(),
                0,
                self.max,
            ));
        }
        for id in &ids {
            table.slot(id);
        }
        Ok(KnownClients {
            table,
            count: ids.len(),
            overflow_listed,
        })
    }
}

/// The client table as the builder leaves it.
pub(crate) struct KnownClients {
    pub(crate) table: ClientTable,
    /// Known ids hold slots `0..count`.
    pub(crate) count: usize,
    pub(crate) overflow_listed: bool,
}

/// A function of the user's, shown as `..` in `Debug` output.
pub(crate) struct Reader<F: ?Sized>(pub(crate) Box<F>);

impl<F: ?Sized> fmt::Debug for Reader<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

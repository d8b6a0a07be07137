//! The key of a per-client counter, looked up by a borrowed client id so
//! that a hit allocates nothing.

use std::{
    borrow::Borrow,
    hash::{Hash, Hasher},
};

/// Route index, method index, status family and client id, owned.
#[derive(Debug)]
pub(crate) struct ApiKey {
    pub(crate) route: usize,
    pub(crate) method: u8,
    pub(crate) family: u8,
    pub(crate) client_id: Box<str>,
}

/// The same key, borrowed from a request.
pub(crate) struct ApiKeyRef<'a> {
    pub(crate) route: usize,
    pub(crate) method: u8,
    pub(crate) family: u8,
    pub(crate) client_id: &'a str,
}

/// What the map hashes and compares, so that an [`ApiKeyRef`] finds an
/// [`ApiKey`] without building one.
pub(crate) trait ApiKeyParts {
    fn parts(&self) -> (usize, u8, u8, &str);
}

impl ApiKeyParts for ApiKey {
    fn parts(&self) -> (usize, u8, u8, &str) {
        (self.route, self.method, self.family, &self.client_id)
    }
}

impl ApiKeyParts for ApiKeyRef<'_> {
    fn parts(&self) -> (usize, u8, u8, &str) {
        (self.route, self.method, self.family, self.client_id)
    }
}

impl<'a> Borrow<dyn ApiKeyParts + 'a> for ApiKey {
    fn borrow(&self) -> &(dyn ApiKeyParts + 'a) {
        self
    }
}

impl Hash for dyn ApiKeyParts + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn ApiKeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn ApiKeyParts + '_ {}

// Must hash and compare exactly as the borrowed form does.
impl Hash for ApiKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for ApiKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for ApiKey {}

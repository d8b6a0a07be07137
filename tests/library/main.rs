//! The library's own black-box tests, through the public API: the builder
//! and what it refuses, a request's record driven in-process through tower,
//! real HTTP on 127.0.0.1 where a server is involved, the exposition parsed
//! back series by series, and properties over random configurations and
//! traffic. Nothing needs to be installed: `cargo test --test library`.

#[cfg(feature = "axum")]
mod axum;
mod bound;
mod builder;
mod exposition;
mod grpc;
mod http_loopback;
mod lifecycle;
mod profile;
mod properties;
mod request_body;
mod response_body;
#[path = "../support/mod.rs"]
mod support;
mod threads;

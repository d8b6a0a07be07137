//! The library's own black-box tests, through the public API: real HTTP on
//! 127.0.0.1 where a server is involved, the exposition parsed back series
//! by series, and properties over random configurations and traffic.
//! Nothing needs to be installed: `cargo test --test library`.

#[cfg(feature = "axum")]
mod axum;
mod exposition;
mod grpc;
mod http_loopback;
mod profile;
mod properties;
#[path = "../support/mod.rs"]
mod support;
mod threads;

//! End to end: the example server over real HTTP, a real Prometheus server
//! scraping it (Debian's `prometheus` package, which `.ci/test` installs;
//! `PROMETHEUS` and `PROMTOOL` can point at other binaries), and a fleet of
//! instances monitored through a real Alertmanager (Debian's
//! `prometheus-alertmanager`; `ALERTMANAGER` can point at another binary)
//! and through a Prometheus agent feeding a central store.

#[cfg(feature = "axum")]
mod axum_example;
mod ctms_server;
mod example;
mod example_ops;
#[cfg(all(feature = "protobuf", feature = "gzip"))]
mod exposition;
mod fleet;
mod grpc_health;
mod hyper_server;
mod prometheus;
#[path = "../support/mod.rs"]
mod support;

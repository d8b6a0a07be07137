//! Black-box tests through the public API, over real HTTP on 127.0.0.1,
//! with the exposition parsed back series by series.

mod ctms_server;
mod example;
mod example_ops;
mod http_loopback;
mod prometheus;
mod properties;
mod support;

//! The fixture the single-file examples share, so that each of them shows
//! only its wiring of the metrics layer: addresses from environment
//! variables, listeners bound and announced, and `main`'s exit code.
//!
//! This is not an example of its own (Cargo builds `examples/*.rs` and
//! `examples/*/main.rs`, and this directory has no `main.rs`): each example
//! includes it with `#[path = "common/mod.rs"] mod common;`. An app has its
//! own way of doing all this; copied as it is, this file needs only
//!
//! ```toml
//! [dependencies]
//! tokio = { version = "1", features = ["net"] }
//! ```

use std::env::VarError;
use std::process::ExitCode;

use tokio::net::TcpListener;

/// The environment variable `name`, or `default` when it is unset; an error
/// that names it when it is not valid UTF-8.
pub(crate) fn env(name: &str, default: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(value) => Ok(value),
        Err(VarError::NotPresent) => Ok(default.to_owned()),
        Err(VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// Binds one listener per `(variable, default address)`, on the address the
/// environment variable gives or else on the default (port `0` picks a free
/// port), then announces each on standard output as
/// `listening on http://ADDR`, in the order given. Every listener is bound
/// before any is announced, so whoever waits for the lines can use them all.
pub(crate) async fn listen<const N: usize>(
    variables: [(&str, &str); N],
) -> Result<[TcpListener; N], String> {
    let mut addresses = Vec::with_capacity(N);
    for (name, default) in variables {
        addresses.push((name, env(name, default)?));
    }
    let mut listeners = Vec::with_capacity(N);
    for (name, addr) in addresses {
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|err| format!("cannot listen on {name}={addr:?}: {err}"))?;
        listeners.push(listener);
    }
    for listener in &listeners {
        let bound = listener
            .local_addr()
            .map_err(|err| format!("cannot read a bound address: {err}"))?;
        println!("listening on http://{bound}");
    }
    Ok(listeners
        .try_into()
        .expect("one listener per variable, N in all"))
}

/// `main`'s exit code for what the example's `run` returned: on an error,
/// failure, with the message on standard error after the example's name.
pub(crate) fn exit_code(example: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{example}: {message}");
            ExitCode::FAILURE
        }
    }
}

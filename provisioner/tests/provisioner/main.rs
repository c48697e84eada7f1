//! The provisioner's integration tests, one binary: its HTTP clients against in-process TLS
//! servers, and the host bridge in a network namespace of its own (needs root, as CI runs).

mod cli;
mod client;
mod host_bridge;
mod server;

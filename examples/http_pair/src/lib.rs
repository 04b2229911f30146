//! The HTTP homeserver shim of the `http-pair` demo: [`matrix_peek::Driver`] in a real stack,
//! with axum on tokio serving the client, federation and test APIs, reqwest between servers,
//! and [`matrix_peek_sqlite::SqliteStore`] for storage.
//!
//! Used by the demo binary (`src/main.rs`: `cargo run -p http-pair`) and by the end-to-end test
//! (`tests/http_pair.rs`: `cargo test -p http-pair`), which runs it as two server processes.
//! Start with [`shim`]: its docs list the routes and what the shim is not (**no signatures, no
//! real auth**: a loopback demo, never to be exposed).

pub mod admin;
pub mod api;
pub mod client;
pub mod federation;
pub mod metrics;
pub mod rooms;
pub mod shim;
pub mod transport;

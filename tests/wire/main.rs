//! The `wire` module: MSC and peer bodies, `ver` and paths, the error table and the
//! classification of remote replies, and every parser fed arbitrary input.

mod bodies;
mod endpoints;
mod errors;
mod fuzz;
mod paths;
mod support;

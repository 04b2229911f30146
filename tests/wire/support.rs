//! What the wire tests take from `tests/support/`, and requests as a server receives them.

#[path = "../support/prop.rs"]
pub mod prop;

use matrix_peek::wire::{FederationPeekRequest, WireError};
use ruma_common::api::IncomingRequestExt;
use ruma_common::exports::http;

/// The request `built` as a server's handler sees it: the same method, URI and headers, and
/// the body as bytes.
pub fn request<B: AsRef<[u8]>>(built: &http::Request<B>) -> http::Request<&[u8]> {
    let mut incoming = http::Request::new(built.body().as_ref());
    *incoming.method_mut() = built.method().clone();
    *incoming.uri_mut() = built.uri().clone();
    *incoming.headers_mut() = built.headers().clone();
    incoming
}

/// A federation peek `PUT` of `!r:example.org` as `p1` with `query`, as a resident's ruma
/// parses it.
pub fn put_with_query(query: &str) -> Result<FederationPeekRequest, WireError> {
    let uri = format!("/_matrix/federation/v1/peek/!r:example.org/p1?{query}");
    let incoming = http::Request::builder().method("PUT").uri(uri).body(&b"{}"[..]).unwrap();
    FederationPeekRequest::try_from_http_request(incoming, &["!r:example.org", "p1"])
        .map_err(WireError::from)
}

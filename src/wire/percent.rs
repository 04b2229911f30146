//! Percent-coding of path segments and query components, shared by the path builders and the
//! query parser (the `percent-encoding` crate does the work).

/// The bytes a path segment or query value escapes: everything but RFC 3986's unreserved set.
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Appends `s` with every byte outside `A-Za-z0-9-._~` percent-encoded.
pub(crate) fn percent_encode_into(s: &str, out: &mut String) {
    out.extend(percent_encoding::utf8_percent_encode(s, COMPONENT));
}

/// Percent-decodes `s`; an invalid escape is kept literally. `None` if the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|cow| cow.into_owned())
}

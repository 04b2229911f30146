//! Unit tests beside the code; scenarios live in `tests/local_*.rs`.

//! With the `tracing` feature, `handle_*` calls open spans, outputs are `debug` events and
//! failovers are `warn` events.
#![cfg(feature = "tracing")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use matrix_peek::ClientPeekReply;

use crate::support::host::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Set in the child process that runs the test alone.
const ALONE: &str = "MATRIX_PEEK_TRACING_TEST_ALONE";

#[test]
fn handle_calls_open_spans_and_failovers_warn() {
    // tracing caches each callsite's interest globally; other tests of this binary hitting the
    // same callsites on other threads while `with_default` installs the subscriber can leave
    // some cached as "never" (seen under load). Run the check alone in a child process.
    if std::env::var_os(ALONE).is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["tracing::handle_calls_open_spans_and_failovers_warn", "--exact"])
            .args(["--test-threads=1", "--nocapture"])
            .env(ALONE, "1")
            .status()
            .unwrap();
        assert!(status.success(), "the tracing check failed in its own process (output above)");
        return;
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut host = Host::new();
        let via = [remote_server(), other_server()];
        let (reply, out) = host.peek(T0, remote_peek(alice(), phone(), &via));
        assert!(matches!(reply, ClientPeekReply::Pending(_)));
        let put = only_send(&out, Kind::Peek);
        host.peeking.handle_response(T0, put.id, established());
        host.drain();
        host.peeking.handle_server_unreachable(at(10), &put.server);
        host.drain();
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("client_peek"), "a span for the client peek:\n{text}");
    assert!(text.contains(&format!("room={}", remote_room())), "spans name the room:\n{text}");
    assert!(text.contains("machine=\"outbound\""), "outbound outputs are logged:\n{text}");
    assert!(text.contains("WARN") && text.contains("failing over"), "a failover warns:\n{text}");
}

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

#[test]
fn handle_calls_open_spans_and_failovers_warn() {
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

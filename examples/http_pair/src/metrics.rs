//! `GET /metrics`: the driver's and the machines' stats in the Prometheus (OpenMetrics) text
//! format, encoded by `prometheus-client`.
//!
//! The stats are read once per scrape (`Driver::read(|p| p.stats())` and `Driver::stats()`)
//! and handed to a [`Collector`] that encodes them: no metric objects are kept in sync by
//! hand, so a scrape always shows what the machines hold at that moment. Breakdowns by reason,
//! request kind, outcome and state are labels on one family; the field names of the stats
//! structs become the label values, so a reason added to the library shows up here unchanged.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use matrix_peek::{DriverStats, PeekingStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::shim::App;

/// The OpenMetrics content type `prometheus-client` encodes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let peeking = app.driver.read(|p| p.stats()).await;
    let driver = app.driver.stats();
    match render(peeking, driver) {
        Ok(text) => {
            let mut response = (StatusCode::OK, text).into_response();
            response.headers_mut().insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The text of one scrape.
pub fn render(peeking: PeekingStats, driver: DriverStats) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("matrix_peek");
    registry.register_collector(Box::new(Scrape { peeking, driver }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One scrape's worth of stats.
#[derive(Debug)]
struct Scrape {
    peeking: PeekingStats,
    driver: DriverStats,
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (p, d) = (&self.peeking, &self.driver);
        let (local, inbound, outbound) = (&p.local, &p.inbound, &p.outbound);

        counter(
            &mut e,
            "local_peeks_started",
            "Local peeks granted by a first /peek.",
            local.started,
        )?;
        counter(
            &mut e,
            "local_peeks_renewed",
            "Local leases renewed by a repeated /peek.",
            local.renewed,
        )?;
        by_label(
            &mut e,
            Kind::Counter,
            "local_refusals",
            "Local /peek and /unpeek refusals.",
            "reason",
            &local.refused,
        )?;
        by_label(
            &mut e,
            Kind::Counter,
            "local_endings",
            "Local peeks ended.",
            "reason",
            &local.ended,
        )?;
        gauge(&mut e, "local_live_peeks", "Live local peeks.", local.live_peeks)?;
        gauge(
            &mut e,
            "local_devices",
            "Devices with a live peek or a retained entry.",
            local.devices,
        )?;
        gauge(
            &mut e,
            "local_demanded_rooms",
            "Rooms some live device peeks.",
            local.demanded_rooms,
        )?;
        gauge(
            &mut e,
            "local_retained_entries",
            "Ended entries kept for /sync.",
            local.retained_entries,
        )?;

        counter(
            &mut e,
            "inbound_peeks_granted",
            "Inbound peeks granted (new peek ids).",
            inbound.granted,
        )?;
        counter(
            &mut e,
            "inbound_peeks_refreshed",
            "Inbound re-PUTs of a live peek id.",
            inbound.refreshed,
        )?;
        counter(&mut e, "inbound_peeks_renewed", "Inbound /renew calls granted.", inbound.renewed)?;
        by_label(
            &mut e,
            Kind::Counter,
            "inbound_refusals",
            "Inbound requests refused.",
            "reason",
            &inbound.refused,
        )?;
        by_label(
            &mut e,
            Kind::Counter,
            "inbound_endings",
            "Inbound peeks ended.",
            "reason",
            &inbound.ended,
        )?;
        gauge(&mut e, "inbound_live_peeks", "Live inbound peeks.", inbound.live_peeks)?;
        gauge(&mut e, "inbound_rooms", "Rooms with a live inbound peek.", inbound.rooms)?;
        gauge(&mut e, "inbound_servers", "Servers with a live inbound peek.", inbound.servers)?;

        let requests =
            [("put", &outbound.puts), ("renew", &outbound.renewals), ("delete", &outbound.deletes)];
        let mut family = e.encode_descriptor(
            "outbound_requests",
            "Federation requests sent, and how their answers went.",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (kind, counts) in requests {
            for (outcome, value) in fields(counts) {
                let labels = [("kind", kind), ("outcome", outcome.as_str())];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut e,
            "outbound_probes",
            "Early renewals of active rooms gone silent.",
            outbound.probes,
        )?;
        counter(&mut e, "outbound_failovers", "Moves to another resident.", outbound.failovers)?;
        counter(
            &mut e,
            "outbound_lapses",
            "Peeks lapsed on our side after failed renewals.",
            outbound.lapses,
        )?;
        counter(
            &mut e,
            "outbound_established",
            "Established notifications.",
            outbound.established,
        )?;
        counter(&mut e, "outbound_lost", "Lost notifications.", outbound.lost)?;
        counter(
            &mut e,
            "outbound_unavailable",
            "Unavailable notifications.",
            outbound.unavailable,
        )?;
        counter(
            &mut e,
            "outbound_deletes_abandoned",
            "Retired peeks given up undeleted.",
            outbound.deletes_abandoned,
        )?;
        by_label(
            &mut e,
            Kind::Gauge,
            "outbound_rooms",
            "Outbound rooms in each state.",
            "state",
            &outbound.rooms,
        )?;
        gauge(
            &mut e,
            "outbound_retired_peeks",
            "Retired peeks still being deleted.",
            outbound.retired_peeks,
        )?;
        gauge(&mut e, "outbound_in_flight", "Federation requests in flight.", outbound.in_flight)?;

        by_label(
            &mut e,
            Kind::Counter,
            "client_peeks",
            "Client peeks of remote rooms, by how they went.",
            "outcome",
            &p.client_peeks,
        )?;
        gauge(
            &mut e,
            "pending_client_peeks",
            "Client peeks waiting on federation.",
            p.pending_client_peeks,
        )?;
        gauge(&mut e, "remote_rooms", "Rooms peeked over federation.", p.remote_rooms)?;

        counter(&mut e, "driver_batches", "Store batches saved.", d.batches)?;
        counter(
            &mut e,
            "driver_batched_calls",
            "Calls answered in those batches.",
            d.batched_calls,
        )?;
        counter(&mut e, "driver_save_failures", "Store saves that failed.", d.save_failures)?;
        counter(&mut e, "driver_rebuilds", "Rebuilds from the store.", d.rebuilds)?;
        counter(
            &mut e,
            "driver_dropped_notifications",
            "Notifications dropped (slow consumer).",
            d.dropped_notifications,
        )?;
        counter(
            &mut e,
            "driver_client_peek_timeouts",
            "Client peeks that hit client_peek_timeout.",
            d.client_peek_timeouts,
        )?;
        counter(
            &mut e,
            "driver_client_peeks_withdrawn",
            "Client peeks withdrawn by a dropped caller.",
            d.client_peeks_withdrawn,
        )?;
        counter(
            &mut e,
            "driver_transport_timeouts",
            "Transport calls that hit request_timeout.",
            d.transport_timeouts,
        )?;
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One family with a sample per field of `stats` (a struct of `u64`s), labelled
/// `label="field_name"`.
fn by_label(
    e: &mut DescriptorEncoder,
    kind: Kind,
    name: &str,
    help: &str,
    label: &str,
    stats: &impl Serialize,
) -> std::fmt::Result {
    let metric_type = match kind {
        Kind::Counter => ConstCounter::new(0u64).metric_type(),
        Kind::Gauge => ConstGauge::new(0i64).metric_type(),
    };
    let mut family = e.encode_descriptor(name, help, None, metric_type)?;
    for (field, value) in fields(stats) {
        let labels = [(label, field.as_str())];
        let sample = family.encode_family(&labels)?;
        match kind {
            Kind::Counter => ConstCounter::new(value).encode(sample)?,
            Kind::Gauge => {
                ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(sample)?
            }
        }
    }
    Ok(())
}

/// The `u64` fields of a stats struct, by name, sorted by name.
fn fields(stats: &impl Serialize) -> Vec<(String, u64)> {
    match serde_json::to_value(stats) {
        Ok(serde_json::Value::Object(map)) => {
            map.into_iter().filter_map(|(k, v)| Some((k, v.as_u64()?))).collect()
        }
        _ => Vec::new(),
    }
}

//! Configuration from a file: every config struct deserialises with per-field defaults, and
//! durations are written the way operators write them.

use std::time::Duration;

use matrix_peek::{DriverConfig, OutboundRenewStyle, PeekingConfig};

#[test]
fn an_empty_file_is_the_default_configuration() {
    assert_eq!(toml::from_str::<DriverConfig>("").unwrap(), DriverConfig::default());
    assert_eq!(toml::from_str::<PeekingConfig>("").unwrap(), PeekingConfig::default());
}

#[test]
fn a_partial_file_overrides_only_what_it_names() {
    let text = r#"
        max_in_flight = 8
        request_timeout = "10s"
        client_peek_timeout = "1m 30s"

        [peeking]
        max_pending_client_peeks = 50

        [peeking.local]
        lease = "30m"

        [peeking.inbound]
        max_peeks_per_server = 7

        [peeking.outbound]
        linger = "500ms"
        renew_style = "re_put"
        supported_versions = ["10", "11"]
    "#;
    let config: DriverConfig = toml::from_str(text).unwrap();
    let default = DriverConfig::default();
    assert_eq!(config.max_in_flight, 8);
    assert_eq!(config.request_timeout, Duration::from_secs(10));
    assert_eq!(config.client_peek_timeout, Duration::from_secs(90));
    assert_eq!(config.notification_capacity, default.notification_capacity);
    assert_eq!(config.peeking.max_pending_client_peeks, 50);
    assert_eq!(config.peeking.max_via, default.peeking.max_via);
    assert_eq!(config.peeking.local.lease, Duration::from_secs(1800));
    assert_eq!(config.peeking.local.ended_retention, default.peeking.local.ended_retention);
    assert_eq!(config.peeking.inbound.max_peeks_per_server, 7);
    assert_eq!(config.peeking.outbound.linger, Duration::from_millis(500));
    assert_eq!(config.peeking.outbound.renew_style, OutboundRenewStyle::RePut);
    assert_eq!(config.peeking.outbound.supported_versions.len(), 2);
    assert_eq!(config.peeking.outbound.failover_after, default.peeking.outbound.failover_after);
}

#[test]
fn a_configuration_round_trips_through_its_file_form() {
    let mut config = DriverConfig::default();
    config.peeking.outbound.linger = Duration::from_millis(1_250);
    config.peeking.local.device_idle_after = Some(Duration::from_secs(600));
    let text = toml::to_string(&config).unwrap();
    assert_eq!(toml::from_str::<DriverConfig>(&text).unwrap(), config, "{text}");
}

#[test]
fn a_bad_duration_is_an_error_naming_the_field() {
    let err = toml::from_str::<DriverConfig>("request_timeout = \"soon\"").unwrap_err();
    assert!(err.to_string().contains("request_timeout"), "{err}");
    let err = toml::from_str::<DriverConfig>("request_timeout = -5").unwrap_err();
    assert!(err.to_string().contains("request_timeout"), "{err}");
}

#[test]
fn a_bare_integer_duration_is_milliseconds_as_matrix_writes_them() {
    let config: DriverConfig = toml::from_str("request_timeout = 1500").unwrap();
    assert_eq!(config.request_timeout, Duration::from_millis(1500));
}

#[test]
fn every_coordinator_duration_reads_the_operator_forms_and_serdes_own_struct_form() {
    let text = r#"
        max_pending_wait = "5m"
        resync_interval = 60000
        replay_window = { secs = 7200, nanos = 0 }
    "#;
    let config: PeekingConfig = toml::from_str(text).unwrap();
    assert_eq!(config.max_pending_wait, Duration::from_secs(300));
    assert_eq!(config.resync_interval, Duration::from_secs(60));
    assert_eq!(config.replay_window, Duration::from_secs(7200));
}

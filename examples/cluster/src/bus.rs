//! The log between the workers: two NATS JetStream streams, one durable pull consumer per
//! worker, acknowledged only after the message's effects are stored and its own messages
//! published (at-least-once; the library's `Seq` rules make redeliveries harmless).
//!
//! | stream | subjects | carries | consumer |
//! |---|---|---|---|
//! | `{prefix}_TO_FED` | `{prefix}.fed.{shard}` | [`ToFederation`](matrix_peek::ToFederation), to the shard of its room | `fed-{shard}`, filtered on its subject |
//! | `{prefix}_TO_SYNC` | `{prefix}.sync` | [`ToSync`](matrix_peek::ToSync), from every shard | `sync` |
//!
//! Both streams are work queues on file storage: a message is kept until its consumer acks
//! it, across restarts of the workers and of nats-server. Consumers take one message at a
//! time (`max_ack_pending = 1`), so a room's messages are applied in the order they were
//! published, and a message not acked within [`ACK_WAIT`] (its worker crashed) is delivered
//! again before anything after it.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long a consumer may hold a message before it is delivered again.
pub const ACK_WAIT: Duration = Duration::from_secs(2);

/// A connection to the log.
#[derive(Clone)]
pub struct Bus {
    js: jetstream::Context,
    prefix: String,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("prefix", &self.prefix).finish()
    }
}

impl Bus {
    /// Connects (retrying while nats-server is not up yet) and creates both streams if needed.
    pub async fn connect(url: &str, prefix: &str) -> Result<Bus, String> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|e| format!("connect to NATS at {url}: {e}"))?;
        let bus = Bus { js: jetstream::new(client), prefix: prefix.to_owned() };
        for (name, subject) in [
            (bus.stream_to_fed(), format!("{prefix}.fed.*")),
            (bus.stream_to_sync(), bus.subject_sync()),
        ] {
            retry(&format!("create stream {name}"), || {
                bus.js.get_or_create_stream(stream::Config {
                    name: name.clone(),
                    subjects: vec![subject.clone()],
                    retention: stream::RetentionPolicy::WorkQueue,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
            })
            .await;
        }
        Ok(bus)
    }

    fn stream_to_fed(&self) -> String {
        format!("{}_TO_FED", self.prefix)
    }

    fn stream_to_sync(&self) -> String {
        format!("{}_TO_SYNC", self.prefix)
    }

    /// The subject of a shard's messages.
    pub fn subject_fed(&self, shard: u32) -> String {
        format!("{}.fed.{shard}", self.prefix)
    }

    /// The subject of the sync worker's messages.
    pub fn subject_sync(&self) -> String {
        format!("{}.sync", self.prefix)
    }

    /// Publishes `message` and waits for JetStream to store it, retrying (through an outage)
    /// until it does.
    pub async fn publish<M: Serialize>(&self, subject: String, message: &M) {
        let payload: Vec<u8> = serde_json::to_vec(message).expect("messages serialise");
        retry(&format!("publish to {subject}"), || async {
            let ack = self.js.publish(subject.clone(), payload.clone().into()).await?;
            ack.await.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .await;
    }

    /// Runs `handle` for every message of `subject` on `stream`'s durable consumer `durable`,
    /// acking each after `handle` returns (it stores and publishes what the message caused).
    /// Resumes where the consumer left off; survives nats-server restarts.
    pub async fn consume<M, F, Fut>(&self, to_sync: bool, durable: &str, subject: String, handle: F)
    where
        M: DeserializeOwned,
        F: Fn(M) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let stream_name = if to_sync { self.stream_to_sync() } else { self.stream_to_fed() };
        loop {
            let consumer = retry(&format!("open consumer {durable}"), || async {
                let stream = self.js.get_stream(&stream_name).await?;
                stream
                    .get_or_create_consumer(
                        durable,
                        consumer::pull::Config {
                            durable_name: Some(durable.to_owned()),
                            filter_subject: subject.clone(),
                            ack_policy: consumer::AckPolicy::Explicit,
                            ack_wait: ACK_WAIT,
                            max_ack_pending: 1,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
            .await;
            let mut messages = match consumer.messages().await {
                Ok(messages) => messages,
                Err(e) => {
                    eprintln!("bus: messages of {durable}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            while let Some(next) = messages.next().await {
                let message = match next {
                    Ok(message) => message,
                    Err(e) => {
                        eprintln!("bus: {durable}: {e}; reopening");
                        break;
                    }
                };
                match serde_json::from_slice::<M>(&message.payload) {
                    Ok(decoded) => handle(decoded).await,
                    Err(e) => eprintln!("bus: {durable}: undecodable message dropped: {e}"),
                }
                // Acked after the effects are stored: a crash before this redelivers it.
                if let Err(e) = message.ack().await {
                    eprintln!("bus: {durable}: ack failed ({e}); it will be redelivered");
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Retries `op` with a short backoff until it succeeds, saying what it waits for.
async fn retry<T, E, F, Fut>(what: &str, op: F) -> T
where
    E: std::fmt::Display,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(50);
    let mut warned = false;
    loop {
        match op().await {
            Ok(value) => return value,
            Err(e) => {
                if !warned {
                    eprintln!("bus: {what}: {e}; retrying until it works");
                    warned = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

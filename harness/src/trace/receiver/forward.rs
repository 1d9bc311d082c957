//! `--otlp-forward URL`: every export request the receiver takes is posted
//! on to another OTLP/HTTP endpoint, as protobuf, from a queue of its own.
//!
//! The receiver answers the service before forwarding is even tried, and
//! the queue is bounded: when the backend is slower than the services, the
//! overflow is dropped (and said once) rather than held in memory. A
//! failure is logged once with its reason, then counted; the count is said
//! when the receiver shuts down. Forwarding never fails a run.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// Requests waiting to be forwarded, at most.
const QUEUE: usize = 1024;
/// How long one forward may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A forward URL that is not an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OTLP forward URL `{url}`: {problem}")]
pub struct ForwardUrlError {
    pub url: String,
    pub problem: String,
}

enum Job {
    Send(Bytes),
    /// Answered once everything queued before it was tried.
    Flush(oneshot::Sender<()>),
}

/// The queue to the forwarding task.
#[derive(Debug)]
pub(super) struct Forwarder {
    tx: mpsc::Sender<Job>,
    target: String,
    overflowed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Send(b) => write!(f, "Send({} bytes)", b.len()),
            Job::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Forwarder {
    /// Starts the forwarding task for `base` (`http://host:4318`; requests
    /// go to `base/v1/traces`).
    pub(super) fn start(base: &str) -> Result<Forwarder, ForwardUrlError> {
        let invalid = |problem: &str| ForwardUrlError {
            url: base.to_owned(),
            problem: problem.to_owned(),
        };
        let parsed = reqwest::Url::parse(base).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("expected an http:// or https:// URL"));
        }
        let target = format!("{}/v1/traces", base.trim_end_matches('/'));
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| invalid(&format!("failed to build its client: {e}")))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(client, target.clone(), rx));
        Ok(Forwarder {
            tx,
            target,
            overflowed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Queues `body` (an `ExportTraceServiceRequest` in protobuf); never waits.
    pub(super) fn send(&self, body: Bytes) {
        if self.tx.try_send(Job::Send(body)).is_err()
            && !self
                .overflowed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "OTLP forwarding to {} falls behind: its queue of {QUEUE} requests is full, newer spans are not forwarded",
                self.target
            );
        }
    }

    /// Waits (up to the forward timeout and a little) until what was queued
    /// has been tried.
    pub(super) async fn drain(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(TIMEOUT + Duration::from_secs(1), flushed).await;
        }
    }
}

async fn run(client: reqwest::Client, target: String, mut rx: mpsc::Receiver<Job>) {
    let (mut sent, mut failed) = (0u64, 0u64);
    while let Some(job) = rx.recv().await {
        let body = match job {
            Job::Send(body) => body,
            Job::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let outcome = client
            .post(&target)
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await;
        let problem = match outcome {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                Some(format!("it answered {status}: {}", text.trim()))
            }
            Err(e) => Some(crate::env::error_chain(&e)),
        };
        match problem {
            None => sent += 1,
            Some(why) => {
                if failed == 0 {
                    tracing::warn!(
                        "failed to forward spans to {target}: {why} (further failures are counted, not logged)"
                    );
                }
                failed += 1;
            }
        }
    }
    if failed > 0 {
        tracing::warn!(
            "forwarding spans to {target}: {failed} of {} requests failed",
            sent + failed
        );
    }
}

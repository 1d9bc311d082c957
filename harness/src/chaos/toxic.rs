//! Toxics: what a [`Proxy`](super::Proxy) does to the data crossing it.
//!
//! The model is Toxiproxy's: a toxic has a *kind* with its attributes, a
//! *stream* (the direction it acts on), a *name* (unique per proxy, default
//! `<kind>_<stream>`) and a *toxicity*, the probability that it applies to a
//! given connection (rolled once per connection and toxic).
//!
//! ```
//! use std::time::Duration;
//! use tekup_harness::chaos::Toxic;
//!
//! let slow = Toxic::latency(Duration::from_millis(500), Duration::from_millis(50))
//!     .upstream()
//!     .toxicity(0.5);
//! assert_eq!(slow.name(), "latency_upstream");
//! ```

use std::fmt;
use std::time::Duration;

/// Which way data flows through a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// From the client (the component that connects) to the upstream.
    Upstream,
    /// From the upstream back to the client. Toxiproxy's default, and ours.
    Downstream,
}

impl Stream {
    /// `upstream` or `downstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a toxic does, with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToxicKind {
    /// Delays each chunk by `latency` ± a uniformly drawn `jitter`, counted
    /// from when the chunk reached the proxy (pipelined data is not delayed
    /// twice). Changes apply to data that has not left yet.
    Latency { latency: Duration, jitter: Duration },
    /// Limits throughput to `kb_per_second` kilobytes (1,000 bytes) per
    /// second, sending at most a tenth of a second's worth at a time.
    Bandwidth { kb_per_second: u64 },
    /// Delays passing on the end of the stream (the peer's FIN) by `delay`.
    SlowClose { delay: Duration },
    /// Stops the data: it is held (not dropped) while the toxic is on, and
    /// the connection is closed `timeout` after the toxic began acting on
    /// it. `Duration::ZERO` never closes: data flows again once the toxic is
    /// removed.
    Timeout { timeout: Duration },
    /// On the first data after it applies, waits `timeout` and then resets
    /// the connection (`SO_LINGER` 0: both peers get an RST, so reads fail
    /// with `ECONNRESET`). The data is held meanwhile; removing the toxic in
    /// time lets it through.
    ResetPeer { timeout: Duration },
    /// Cuts each chunk into pieces of `average_size` ± `size_variation`
    /// bytes with `delay` between them.
    Slicer {
        average_size: usize,
        size_variation: usize,
        delay: Duration,
    },
    /// Lets `bytes` bytes through on each connection, then closes it.
    LimitData { bytes: u64 },
}

impl ToxicKind {
    /// Toxiproxy's name of the kind: `latency`, `bandwidth`, `slow_close`,
    /// `timeout`, `reset_peer`, `slicer`, `limit_data`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
        }
    }
}

/// A toxic to add to a proxy: build it with one of the constructors, then
/// say where it acts and how often.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    name: Option<String>,
    kind: ToxicKind,
    stream: Stream,
    toxicity: f64,
}

impl Toxic {
    /// A toxic of `kind`, downstream, on every connection.
    pub fn new(kind: ToxicKind) -> Self {
        Self {
            name: None,
            kind,
            stream: Stream::Downstream,
            toxicity: 1.0,
        }
    }

    /// Delays data by `latency` ± `jitter`.
    pub fn latency(latency: Duration, jitter: Duration) -> Self {
        Self::new(ToxicKind::Latency { latency, jitter })
    }

    /// Limits throughput to `kb_per_second` KB/s.
    pub fn bandwidth(kb_per_second: u64) -> Self {
        Self::new(ToxicKind::Bandwidth { kb_per_second })
    }

    /// Delays the close of the stream by `delay`.
    pub fn slow_close(delay: Duration) -> Self {
        Self::new(ToxicKind::SlowClose { delay })
    }

    /// Stops data and closes after `timeout` (zero: never closes).
    pub fn timeout(timeout: Duration) -> Self {
        Self::new(ToxicKind::Timeout { timeout })
    }

    /// Resets the connection `timeout` after the first data.
    pub fn reset_peer(timeout: Duration) -> Self {
        Self::new(ToxicKind::ResetPeer { timeout })
    }

    /// Slices data into pieces of `average_size` ± `size_variation` bytes,
    /// `delay` apart.
    pub fn slicer(average_size: usize, size_variation: usize, delay: Duration) -> Self {
        Self::new(ToxicKind::Slicer {
            average_size,
            size_variation,
            delay,
        })
    }

    /// Closes each connection after `bytes` bytes.
    pub fn limit_data(bytes: u64) -> Self {
        Self::new(ToxicKind::LimitData { bytes })
    }

    /// Names it (default `<kind>_<stream>`, e.g. `latency_downstream`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Acts on data from the client to the upstream.
    pub fn upstream(self) -> Self {
        self.on(Stream::Upstream)
    }

    /// Acts on data from the upstream to the client (the default).
    pub fn downstream(self) -> Self {
        self.on(Stream::Downstream)
    }

    /// Acts on `stream`.
    pub fn on(mut self, stream: Stream) -> Self {
        self.stream = stream;
        self
    }

    /// The probability (0 to 1) that it applies to a connection (default 1).
    pub fn toxicity(mut self, toxicity: f64) -> Self {
        self.toxicity = toxicity;
        self
    }

    /// Its name.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}_{}", self.kind.type_name(), self.stream))
    }

    /// What it does.
    pub fn kind(&self) -> &ToxicKind {
        &self.kind
    }

    /// Which way it acts.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// The probability that it applies to a connection.
    pub fn probability(&self) -> f64 {
        self.toxicity
    }

    /// Why it cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if let Some(name) = &self.name {
            if name.trim().is_empty() {
                return Some("its name is empty".into());
            }
        }
        if !(0.0..=1.0).contains(&self.toxicity) {
            return Some(format!(
                "toxicity {} is not a probability between 0 and 1",
                self.toxicity
            ));
        }
        match self.kind {
            ToxicKind::Bandwidth { kb_per_second: 0 } => {
                Some("a bandwidth of 0 KB/s passes nothing; use a `timeout` toxic to stop data".into())
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                ..
            } if average_size == 0 || size_variation >= average_size => Some(format!(
                "a slicer needs 0 <= size_variation < average_size (got average_size {average_size}, size_variation {size_variation})"
            )),
            _ => None,
        }
    }
}

impl fmt::Display for Toxic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}",
            self.name(),
            self.stream,
            self.kind.type_name()
        )?;
        match &self.kind {
            ToxicKind::Latency { latency, jitter } => write!(f, " {latency:?} ± {jitter:?}")?,
            ToxicKind::Bandwidth { kb_per_second } => write!(f, " {kb_per_second} KB/s")?,
            ToxicKind::SlowClose { delay } => write!(f, " {delay:?}")?,
            ToxicKind::Timeout { timeout } | ToxicKind::ResetPeer { timeout } => {
                write!(f, " after {timeout:?}")?;
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => write!(
                f,
                " {average_size} ± {size_variation} bytes every {delay:?}"
            )?,
            ToxicKind::LimitData { bytes } => write!(f, " {bytes} bytes")?,
        }
        if self.toxicity < 1.0 {
            write!(f, ", toxicity {}", self.toxicity)?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_kind_and_stream() {
        assert_eq!(Toxic::bandwidth(10).name(), "bandwidth_downstream");
        assert_eq!(
            Toxic::reset_peer(Duration::ZERO).upstream().name(),
            "reset_peer_upstream"
        );
        assert_eq!(Toxic::limit_data(1).named("cap").name(), "cap");
    }

    #[test]
    fn bad_attributes_are_named() {
        let slicer = Toxic::slicer(10, 10, Duration::ZERO).problem();
        assert!(slicer.is_some_and(|p| p.contains("size_variation < average_size")));
        let toxicity = Toxic::bandwidth(5).toxicity(1.5).problem();
        assert!(toxicity.is_some_and(|p| p.contains("toxicity 1.5")));
        assert!(Toxic::bandwidth(0).problem().is_some());
        assert!(Toxic::latency(Duration::ZERO, Duration::ZERO)
            .problem()
            .is_none());
    }

    #[test]
    fn display_says_what_it_does() {
        let t = Toxic::latency(Duration::from_millis(500), Duration::ZERO)
            .upstream()
            .toxicity(0.5);
        assert_eq!(
            t.to_string(),
            "latency_upstream (upstream, latency 500ms ± 0ns, toxicity 0.5)"
        );
    }
}

//! The writer of one direction of a connection: it passes each chunk
//! through the toxics of its stream and writes what comes out.
//!
//! A chunk is worked through as a list of pieces, each at a stage (the
//! index of the toxic it is to pass next). Slicer and bandwidth split a
//! piece and put the rest back at their own stage. Waits (latency, pacing,
//! held data) race the toxic chain: a toxic removed while it holds data
//! lets it go on at once; an updated one is waited on with its new values;
//! one removed between pieces is skipped from the next piece on. Toxics
//! added meanwhile act from the next chunk.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::WriteHalf;
use tokio::sync::{mpsc, watch};

use super::conn::{Item, Outcome};
use super::proxy::{Active, Chain, Shared};
use super::toxic::{Stream, ToxicKind};

/// Part of a chunk on its way through the toxics.
struct Piece {
    /// Index of the toxic it passes next.
    stage: usize,
    bytes: Bytes,
    /// A slicer already cut from this chunk: wait its delay first.
    resumed: bool,
}

impl Piece {
    fn next(self) -> Self {
        Self {
            stage: self.stage + 1,
            bytes: self.bytes,
            resumed: false,
        }
    }
}

/// How long a toxic holds a piece, judged from its current values.
enum Hold {
    Until(Instant),
    Forever,
    /// The toxic changed into another kind: it no longer holds this piece.
    NotMine,
}

/// How a hold ended.
enum Held {
    /// The time ran out; the toxic (with its latest values) acts.
    Elapsed(Active),
    /// The toxic was removed or changed kind: the piece goes on.
    Released,
}

/// Why a wait ended.
enum Waited {
    Elapsed,
    Gone,
    Changed(Active),
}

/// The sending side of one direction and the per-connection state of its
/// toxics.
pub(super) struct Writer<'a> {
    shared: &'a Shared,
    stream: Stream,
    chain: watch::Receiver<Chain>,
    opened: Instant,
    /// Toxicity rolls: toxic id -> (toxicity rolled for, applies).
    rolls: HashMap<u64, (f64, bool)>,
    /// limit_data: bytes let through per toxic id.
    sent: HashMap<u64, u64>,
    /// bandwidth: when the paced link is free again, per toxic id.
    free_at: HashMap<u64, Instant>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(shared: &'a Shared, stream: Stream, opened: Instant) -> Self {
        Self {
            shared,
            stream,
            chain: shared.chain.subscribe(),
            opened,
            rolls: HashMap::new(),
            sent: HashMap::new(),
            free_at: HashMap::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Item>,
        mut to: WriteHalf<'_>,
    ) -> Outcome {
        loop {
            let item = loop {
                let deadline = self.close_deadline();
                tokio::select! {
                    item = rx.recv() => break item,
                    () = sleep_until(deadline) => return Outcome::Close,
                    changed = self.chain.changed() => if changed.is_err() {
                        return Outcome::Close;
                    },
                }
            };
            match item {
                Some(Item::Data { at, bytes }) => {
                    if let Some(end) = self.deliver(at, bytes, &mut to).await {
                        return end;
                    }
                }
                Some(Item::Eof) => {
                    self.slow_close().await;
                    let _ = to.shutdown().await;
                    return Outcome::Eof;
                }
                Some(Item::Broken) | None => return Outcome::Close,
            }
        }
    }

    /// The toxics of this direction that apply to this connection, in order.
    fn current(&mut self) -> Vec<Active> {
        let chain = self.chain.borrow_and_update().clone();
        chain.iter().filter(|a| self.mine(a)).cloned().collect()
    }

    /// `id` as in force now, if it still acts on this connection.
    fn lookup(&mut self, id: u64) -> Option<Active> {
        let found = self.chain.borrow().iter().find(|a| a.id == id).cloned();
        found.filter(|a| self.mine(a))
    }

    fn mine(&mut self, active: &Active) -> bool {
        if active.toxic.stream() != self.stream {
            return false;
        }
        let p = active.toxic.probability();
        if p >= 1.0 {
            return true;
        }
        if p <= 0.0 {
            return false;
        }
        let roll = self.rolls.entry(active.id).or_insert((f64::NAN, false));
        if roll.0 != p {
            *roll = (p, rand::random::<f64>() < p);
        }
        roll.1
    }

    /// When a `timeout` toxic closes this connection, if one does.
    fn close_deadline(&mut self) -> Option<Instant> {
        let opened = self.opened;
        self.current()
            .iter()
            .filter_map(|a| match a.toxic.kind() {
                ToxicKind::Timeout { timeout } if !timeout.is_zero() => {
                    Some(a.since.max(opened) + *timeout)
                }
                _ => None,
            })
            .min()
    }

    /// Passes one chunk through the toxics; `Some` ends the connection.
    async fn deliver(
        &mut self,
        at: Instant,
        bytes: Bytes,
        to: &mut WriteHalf<'_>,
    ) -> Option<Outcome> {
        let stages: Vec<u64> = self.current().iter().map(|a| a.id).collect();
        if stages.is_empty() {
            // No toxic on this stream: straight through.
            if to.write_all(&bytes).await.is_err() {
                return Some(Outcome::Close);
            }
            self.count(bytes.len());
            return None;
        }
        let mut work = VecDeque::from([Piece {
            stage: 0,
            bytes,
            resumed: false,
        }]);
        let mut close = false;
        while let Some(mut piece) = work.pop_front() {
            let Some(&id) = stages.get(piece.stage) else {
                if to.write_all(&piece.bytes).await.is_err() {
                    return Some(Outcome::Close);
                }
                self.count(piece.bytes.len());
                continue;
            };
            let Some(active) = self.lookup(id) else {
                work.push_front(piece.next());
                continue;
            };
            let entered = Instant::now();
            let stage = piece.stage;
            match active.toxic.kind().clone() {
                ToxicKind::Latency { .. } => {
                    self.hold(active, |a| match *a.toxic.kind() {
                        ToxicKind::Latency { latency, jitter } => {
                            Hold::Until(at + sample(latency, jitter))
                        }
                        _ => Hold::NotMine,
                    })
                    .await;
                    work.push_front(piece.next());
                }
                ToxicKind::Timeout { .. } => {
                    let opened = self.opened;
                    let held = self
                        .hold(active, |a| match *a.toxic.kind() {
                            ToxicKind::Timeout { timeout } if timeout.is_zero() => Hold::Forever,
                            ToxicKind::Timeout { timeout } => {
                                Hold::Until(a.since.max(opened) + timeout)
                            }
                            _ => Hold::NotMine,
                        })
                        .await;
                    if let Held::Elapsed(_) = held {
                        return Some(Outcome::Close);
                    }
                    work.push_front(piece.next());
                }
                ToxicKind::ResetPeer { .. } => {
                    let held = self
                        .hold(active, |a| match *a.toxic.kind() {
                            ToxicKind::ResetPeer { timeout } => Hold::Until(entered + timeout),
                            _ => Hold::NotMine,
                        })
                        .await;
                    if let Held::Elapsed(_) = held {
                        return Some(Outcome::Reset);
                    }
                    work.push_front(piece.next());
                }
                ToxicKind::Bandwidth { .. } => {
                    let free = self.free_at.get(&id).copied().unwrap_or(entered);
                    let start = free.max(entered);
                    let len = piece.bytes.len();
                    let due = move |a: &Active| match *a.toxic.kind() {
                        ToxicKind::Bandwidth { kb_per_second } => {
                            let take = quantum(kb_per_second, len);
                            Some((take, start + pace(take, kb_per_second)))
                        }
                        _ => None,
                    };
                    match self
                        .hold(active, |a| {
                            due(a).map_or(Hold::NotMine, |(_, d)| Hold::Until(d))
                        })
                        .await
                    {
                        Held::Elapsed(a) => {
                            let (take, done) = due(&a).unwrap_or((len, start));
                            self.free_at.insert(id, done);
                            let now = piece.bytes.split_to(take);
                            if !piece.bytes.is_empty() {
                                work.push_front(piece);
                            }
                            work.push_front(Piece {
                                stage: stage + 1,
                                bytes: now,
                                resumed: false,
                            });
                        }
                        Held::Released => work.push_front(piece.next()),
                    }
                }
                ToxicKind::Slicer { .. } => {
                    let active = if piece.resumed {
                        let held = self
                            .hold(active, |a| match *a.toxic.kind() {
                                ToxicKind::Slicer { delay, .. } => Hold::Until(entered + delay),
                                _ => Hold::NotMine,
                            })
                            .await;
                        match held {
                            Held::Elapsed(active) => active,
                            Held::Released => {
                                work.push_front(piece.next());
                                continue;
                            }
                        }
                    } else {
                        active
                    };
                    let ToxicKind::Slicer {
                        average_size,
                        size_variation,
                        ..
                    } = *active.toxic.kind()
                    else {
                        work.push_front(piece.next());
                        continue;
                    };
                    let cut = slice_len(average_size, size_variation, piece.bytes.len());
                    let now = piece.bytes.split_to(cut);
                    if !piece.bytes.is_empty() {
                        piece.resumed = true;
                        work.push_front(piece);
                    }
                    work.push_front(Piece {
                        stage: stage + 1,
                        bytes: now,
                        resumed: false,
                    });
                }
                ToxicKind::LimitData { bytes: limit } => {
                    let sent = self.sent.entry(id).or_insert(0);
                    let remaining = limit.saturating_sub(*sent);
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(piece.bytes.len());
                    piece.bytes.truncate(take);
                    *sent += take as u64;
                    if *sent >= limit {
                        close = true;
                    }
                    if take > 0 {
                        work.push_front(piece.next());
                    }
                }
                ToxicKind::SlowClose { .. } => work.push_front(piece.next()),
            }
        }
        close.then_some(Outcome::Close)
    }

    /// Waits as long as the toxic says, following its updates.
    async fn hold(&mut self, first: Active, mut until: impl FnMut(&Active) -> Hold) -> Held {
        let mut current = first;
        loop {
            let deadline = match until(&current) {
                Hold::Until(deadline) if deadline <= Instant::now() => {
                    return Held::Elapsed(current)
                }
                Hold::Until(deadline) => Some(deadline),
                Hold::Forever => None,
                Hold::NotMine => return Held::Released,
            };
            match self.wait(current.id, deadline).await {
                Waited::Elapsed => return Held::Elapsed(current),
                Waited::Gone => return Held::Released,
                Waited::Changed(active) => current = active,
            }
        }
    }

    /// Waits for `deadline` (none: forever) or a change of the chain.
    async fn wait(&mut self, id: u64, deadline: Option<Instant>) -> Waited {
        tokio::select! {
            () = sleep_until(deadline) => Waited::Elapsed,
            changed = self.chain.changed() => {
                if changed.is_err() {
                    return Waited::Gone;
                }
                let found = self.chain.borrow_and_update().iter().find(|a| a.id == id).cloned();
                match found.filter(|a| self.mine(a)) {
                    Some(active) => Waited::Changed(active),
                    None => Waited::Gone,
                }
            }
        }
    }

    /// Delays the end of the stream as the `slow_close` toxics say.
    async fn slow_close(&mut self) {
        let entered = Instant::now();
        for active in self.current() {
            if let ToxicKind::SlowClose { .. } = active.toxic.kind() {
                self.hold(active, |a| match *a.toxic.kind() {
                    ToxicKind::SlowClose { delay } => Hold::Until(entered + delay),
                    _ => Hold::NotMine,
                })
                .await;
            }
        }
    }

    fn count(&self, bytes: usize) {
        let counter = match self.stream {
            Stream::Upstream => &self.shared.counters.upstream,
            Stream::Downstream => &self.shared.counters.downstream,
        };
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// `latency` ± up to `jitter`, drawn uniformly.
fn sample(latency: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let j = jitter.as_secs_f64();
    let offset = rand::thread_rng().gen_range(-j..=j);
    Duration::from_secs_f64((latency.as_secs_f64() + offset).max(0.0))
}

/// Bytes a bandwidth toxic sends at once: a tenth of a second's worth.
fn quantum(kb_per_second: u64, len: usize) -> usize {
    let tenth = usize::try_from(kb_per_second.saturating_mul(100)).unwrap_or(usize::MAX);
    tenth.clamp(1, len.max(1))
}

/// How long `bytes` take at `kb_per_second`.
fn pace(bytes: usize, kb_per_second: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / (kb_per_second.max(1) as f64 * 1000.0))
}

/// A slice of about `average` ± `variation` bytes, within `1..=len`.
fn slice_len(average: usize, variation: usize, len: usize) -> usize {
    let size = if variation == 0 {
        average
    } else {
        rand::thread_rng().gen_range(average.saturating_sub(variation)..=average + variation)
    };
    size.clamp(1, len.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_and_slices_follow_the_attributes() {
        assert_eq!(quantum(10, 5000), 1000);
        assert_eq!(quantum(10, 300), 300);
        assert_eq!(pace(1000, 10), Duration::from_millis(100));
        for _ in 0..100 {
            let n = slice_len(100, 20, 1000);
            assert!((80..=120).contains(&n), "{n}");
        }
        assert_eq!(slice_len(100, 0, 30), 30);
        let d = sample(Duration::from_millis(100), Duration::from_millis(10));
        assert!(d >= Duration::from_millis(90) && d <= Duration::from_millis(110));
    }
}

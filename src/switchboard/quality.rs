//! Live voice quality of one stream the media bridge receives: packet loss from RTP sequence
//! gaps and interarrival jitter (RFC 3550, section 6.4.1), over the last few seconds. The
//! wallboard shows it per agent for both legs of a call (the caller's stream is what the agent
//! hears, the agent's stream what the caller hears).
//!
//! Sans-IO: the bridge feeds every packet with its arrival time; nothing here reads a clock,
//! allocates or logs, so it runs on the forwarding path.
//! ```text
//! meter.on_packet(arrived, first_seq, last_seq, rtp_time);   // each packet the bridge receives
//! meter.snapshot(now) -> Option<StreamQuality>               // once a second, for the wallboard
//! ```
//!
//! A stream that pauses longer than [`IDLE_RESET`] starts afresh: on a shift-long connection
//! the agent sends nothing between calls, and that pause is neither loss nor jitter.

use std::time::{Duration, Instant};

use crate::metrics::StreamQuality;

/// Loss is counted over this many one-second buckets (the current one included).
const BUCKETS: usize = 5;
const BUCKET: Duration = Duration::from_secs(1);
/// A stream silent this long is idle: `snapshot` says nothing, the next packet starts afresh.
pub const IDLE_RESET: Duration = Duration::from_secs(2);
/// A sequence number further than this from the highest seen is a new sender (a restarted
/// stream), not a gap of lost packets.
const MAX_SEQ_JUMP: u64 = 3000;

/// Packets expected (by sequence number) and received in one second.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    start: Option<Instant>,
    expected: u64,
    received: u64,
    /// Lost on the wire, rebuilt from a later packet's redundancy (RFC 2198 RED).
    repaired: u64,
}

/// Loss and jitter of one incoming RTP stream.
#[derive(Debug, Clone)]
pub struct StreamMeter {
    /// RTP clock rate: 48 kHz for Opus.
    clock_hz: u32,
    /// Arrival times are counted from here, in RTP units, for the jitter formula.
    origin: Option<Instant>,
    last_arrival: Option<Instant>,
    /// Highest extended sequence number seen since the stream (re)started.
    highest_seq: Option<u64>,
    /// Relative transit time of the previous packet, in RTP units.
    last_transit: Option<i64>,
    /// RFC 3550 interarrival jitter estimate, in RTP units.
    jitter: f64,
    /// A ring of one-second buckets; `current` is being filled.
    buckets: [Bucket; BUCKETS],
    current: usize,
}

impl StreamMeter {
    pub fn new(clock_hz: u32) -> StreamMeter {
        StreamMeter {
            clock_hz,
            origin: None,
            last_arrival: None,
            highest_seq: None,
            last_transit: None,
            jitter: 0.0,
            buckets: [Bucket::default(); BUCKETS],
            current: 0,
        }
    }

    fn reset(&mut self) {
        *self = StreamMeter::new(self.clock_hz);
    }

    /// One received packet (or a frame made of packets `first_seq..=last_seq`, extended
    /// sequence numbers), its RTP timestamp and when it arrived.
    pub fn on_packet(&mut self, arrived: Instant, first_seq: u64, last_seq: u64, rtp_time: u64) {
        if self
            .last_arrival
            .is_some_and(|last| arrived.saturating_duration_since(last) > IDLE_RESET)
        {
            self.reset();
        }
        if let Some(highest) = self.highest_seq
            && last_seq.abs_diff(highest) > MAX_SEQ_JUMP
        {
            self.reset();
        }
        self.last_arrival = Some(arrived);
        let origin = *self.origin.get_or_insert(arrived);
        self.rotate(arrived);
        let packets = last_seq.saturating_sub(first_seq) + 1;
        let bucket = &mut self.buckets[self.current];
        bucket.received += packets;
        match self.highest_seq {
            None => {
                bucket.expected += packets;
                self.highest_seq = Some(last_seq);
            }
            Some(highest) if last_seq > highest => {
                bucket.expected += last_seq - highest;
                self.highest_seq = Some(last_seq);
            }
            // Late or duplicate: it fills a gap that was counted as expected already.
            Some(_) => {}
        }

        // RFC 3550 6.4.1: D = (Rj - Ri) - (Sj - Si), J += (|D| - J) / 16, in RTP units.
        let arrival_units = arrived.saturating_duration_since(origin).as_micros() as i64
            * i64::from(self.clock_hz)
            / 1_000_000;
        let transit = arrival_units.wrapping_sub(rtp_time as i64);
        if let Some(last) = self.last_transit {
            let d = transit.wrapping_sub(last).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// A frame that was lost on the wire and rebuilt from the redundancy of a later packet:
    /// still lost for the network figure, but not missed by the listener.
    pub fn on_repaired(&mut self, arrived: Instant) {
        if self.highest_seq.is_none() {
            return;
        }
        self.rotate(arrived);
        self.buckets[self.current].repaired += 1;
    }

    /// Moves to a fresh bucket when the current one is a second old (and skips the seconds in
    /// which nothing arrived).
    fn rotate(&mut self, now: Instant) {
        let Some(start) = self.buckets[self.current].start else {
            self.buckets[self.current].start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < BUCKET {
            return;
        }
        let steps = (elapsed.as_secs() as usize).min(BUCKETS);
        for _ in 0..steps {
            self.current = (self.current + 1) % BUCKETS;
            self.buckets[self.current] = Bucket::default();
        }
        self.buckets[self.current].start = Some(now);
    }

    /// Loss and jitter over the last [`BUCKETS`] seconds; `None` while the stream is idle
    /// (nothing for [`IDLE_RESET`]) or has not started.
    pub fn snapshot(&self, now: Instant) -> Option<StreamQuality> {
        let last = self.last_arrival?;
        if now.saturating_duration_since(last) > IDLE_RESET {
            return None;
        }
        let window = BUCKET * BUCKETS as u32;
        let (expected, received, repaired) = self
            .buckets
            .iter()
            .filter(|b| {
                b.start
                    .is_some_and(|s| now.saturating_duration_since(s) < window)
            })
            .fold((0u64, 0u64, 0u64), |(e, r, f), b| {
                (e + b.expected, r + b.received, f + b.repaired)
            });
        if expected == 0 {
            return None;
        }
        let lost = expected.saturating_sub(received);
        // A tenth of a percent and of a millisecond is as fine as anyone reads them.
        let tenths = |x: f64| (x * 10.0).round() / 10.0;
        Some(StreamQuality {
            loss_pct: tenths(100.0 * lost as f64 / expected as f64),
            repaired_pct: tenths(100.0 * repaired.min(lost) as f64 / expected as f64),
            jitter_ms: tenths(1000.0 * self.jitter / f64::from(self.clock_hz)),
            packets: received,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_MS: u64 = 20;
    const FRAME_TS: u64 = 960;

    /// Feeds `frames` 20 ms packets starting at `t0`; `lose(i)` drops packet i, `delay_us(i)`
    /// delays its arrival.
    fn feed(
        meter: &mut StreamMeter,
        t0: Instant,
        seq0: u64,
        frames: u64,
        lose: impl Fn(u64) -> bool,
        delay_us: impl Fn(u64) -> u64,
    ) -> Instant {
        let mut last = t0;
        for i in 0..frames {
            if lose(i) {
                continue;
            }
            let at = t0 + Duration::from_millis(i * FRAME_MS) + Duration::from_micros(delay_us(i));
            meter.on_packet(at, seq0 + i, seq0 + i, i * FRAME_TS);
            last = at;
        }
        last
    }

    #[test]
    fn a_clean_stream_has_no_loss_and_no_jitter() {
        let t0 = Instant::now();
        let mut meter = StreamMeter::new(48_000);
        let end = feed(&mut meter, t0, 100, 500, |_| false, |_| 0);
        let q = meter.snapshot(end).unwrap();
        assert_eq!(q.loss_pct, 0.0);
        assert!(q.jitter_ms < 0.1, "{q:?}");
        // The window holds the last five seconds: about 250 packets.
        assert!((200..=260).contains(&q.packets), "{q:?}");
    }

    #[test]
    fn every_fifth_packet_lost_is_twenty_percent() {
        let t0 = Instant::now();
        let mut meter = StreamMeter::new(48_000);
        let end = feed(&mut meter, t0, 7, 500, |i| i % 5 == 2, |_| 0);
        let q = meter.snapshot(end).unwrap();
        assert!((q.loss_pct - 20.0).abs() < 1.0, "{q:?}");
    }

    #[test]
    fn loss_is_only_the_last_few_seconds() {
        let t0 = Instant::now();
        let mut meter = StreamMeter::new(48_000);
        // Heavy loss for 4 s, then 6 s clean: the window has forgotten it.
        let end = feed(&mut meter, t0, 0, 500, |i| i < 200 && i % 2 == 0, |_| 0);
        let q = meter.snapshot(end).unwrap();
        assert_eq!(q.loss_pct, 0.0, "{q:?}");
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let t0 = Instant::now();
        let mut meter = StreamMeter::new(48_000);
        // Arrivals alternate 0 and 10 ms late: |D| = 10 ms every packet, so J tends to 10 ms.
        let end = feed(
            &mut meter,
            t0,
            0,
            500,
            |_| false,
            |i| if i % 2 == 1 { 10_000 } else { 0 },
        );
        let q = meter.snapshot(end).unwrap();
        assert!((q.jitter_ms - 10.0).abs() < 0.5, "{q:?}");
        assert_eq!(q.loss_pct, 0.0);
    }

    #[test]
    fn a_pause_between_calls_is_not_loss() {
        let t0 = Instant::now();
        let mut meter = StreamMeter::new(48_000);
        let end = feed(&mut meter, t0, 0, 100, |_| false, |_| 0);
        assert!(meter.snapshot(end + IDLE_RESET * 2).is_none(), "idle");
        // The next call: the sender's sequence numbers went on, its clock jumped 30 s.
        let t1 = end + Duration::from_secs(30);
        let mut last = t1;
        for i in 0..100u64 {
            last = t1 + Duration::from_millis(i * FRAME_MS);
            meter.on_packet(last, 150 + i, 150 + i, 5_000_000 + i * FRAME_TS);
        }
        let q = meter.snapshot(last).unwrap();
        assert_eq!(q.loss_pct, 0.0, "{q:?}");
        assert!(q.jitter_ms < 0.1, "{q:?}");
    }

    #[test]
    fn late_packets_are_not_lost() {
        let t0 = Instant::now();
        let mut meter = StreamMeter::new(48_000);
        let mut at = t0;
        // Pairs swapped: 1 0 3 2 5 4 ...
        for i in 0..200u64 {
            let seq = i ^ 1;
            at = t0 + Duration::from_millis(i * FRAME_MS);
            meter.on_packet(at, seq, seq, seq * FRAME_TS);
        }
        let q = meter.snapshot(at).unwrap();
        assert_eq!(q.loss_pct, 0.0, "{q:?}");
    }
}

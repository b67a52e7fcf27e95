//! Adaptive jitter buffer for the Opus packets of one RTP stream (48 kHz RTP clock), sans-IO:
//! time is always a parameter, never read here.
//!
//! Run loop (the codec thread; [`super::receive::AudioReceiver`] wraps exactly this):
//! ```text
//! on packet arrival:  jb.push(now, seq, rtp_ts, payload)
//! every frame period: match jb.adjustment(now) {           // hooks for delay adjustment
//!                         Shrink => maybe skip a silent frame, then jb.mark_dropped(),
//!                         Grow   => maybe play a frame of our own, jb.mark_inserted(), no pop,
//!                         Keep   => {} }
//!                     match jb.pop(now) { Packet(p) => decode(p), Fec(next) => decode_fec(next),
//!                                         Conceal => plc(), Silence => zeros }
//! ```
//!
//! How it works. The playout cursor is an RTP timestamp that advances one frame per `pop`.
//! For each arrival we note its transit `r = arrival - ts/48 kHz`; the smallest transit of the
//! last four seconds is the path's base delay, and `j = r - base` is the packet's jitter. The
//! target delay is the 95th percentile of `j` over the last two seconds plus a small guard,
//! raised to the largest recent peak while peaks recur, plus one frame while packets are
//! being lost (so the next packet is there to rebuild a lost one from its FEC), and clamped
//! to the configured range.
//! The current delay is how long a packet that arrived with the base transit waits before it
//! is played: `now - (cursor/48 kHz + base)`. It rises by itself when the buffer runs dry
//! (the cursor holds while nothing is there, so a late packet is still played: a jitter spike
//! raises the delay at once), and it is brought back to the target by dropping or inserting
//! whole frames: for free inside gaps where no packet exists (DTX, long losses), and
//! elsewhere through the `adjustment` hooks, which the decoding side serves where the audio
//! is silent. Sender clock drift (±100 ppm is 6 ms a minute) shows up as a slowly moving base
//! and is corrected the same way.
//!
//! Packets must carry one frame of the configured duration (the negotiated `ptime`).

use std::time::Instant;

/// Samples per millisecond of the 48 kHz RTP clock.
const TS_PER_MS: f64 = 48.0;
/// Largest payload accepted: one Ethernet MTU, more than RTP over UDP ever carries (libopus
/// itself caps a 20 ms frame at 1275 bytes).
pub const MAX_PAYLOAD: usize = 1500;
/// A sequence number this far from the stream is not loss or reordering: either a stray
/// packet, or (when the next one follows it) a new stream.
const MAX_SEQ_JUMP: i64 = 1000;
/// A new packet whose timestamp is this far behind the cursor means the sender restarted its
/// timestamps; the buffer re-anchors instead of calling everything late.
const MAX_TS_BACKWARD_MS: f64 = 1000.0;
/// Gap frames are free to drop or insert only once concealment has faded (or in DTX).
const QUIET_RUN_FRAMES: u32 = 3;
/// After the far end was told stopped, packets arriving within this long are the old
/// stream's, in flight when the news came (the signaling and media paths race); the next
/// stream (the caller back from hold, the next call) starts later.
const STRAGGLER_WINDOW_MS: f64 = 150.0;
/// Length of the window over which the jitter percentile is taken.
const JITTER_WINDOW_MS: f64 = 2000.0;
/// Capacity of the jitter sample window (2 s of 10 ms packets).
const JITTER_SAMPLES: usize = 256;
/// Until this many jitter samples are in the window the target stays at the initial delay.
const MIN_ESTIMATE_SAMPLES: usize = 25;
/// Base-transit window: one minimum per second for this many seconds (short enough that
/// a drifting sender clock moves the base with it).
const BASE_BUCKETS: usize = 4;
/// Peaks closer together than this are one event; two events within `PEAK_MEMORY_MS` hold
/// the target up at the peak.
const PEAK_MERGE_MS: f64 = 500.0;
const PEAK_MEMORY_MS: f64 = 10_000.0;
const PEAK_SLOTS: usize = 8;
/// FEC headroom is kept this long after the last loss.
const LOSS_MEMORY_MS: f64 = 10_000.0;

/// Frame period of the stream (20 ms unless chosen otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameDuration {
    Ms10,
    #[default]
    Ms20,
}

impl FrameDuration {
    pub fn ms(self) -> u32 {
        match self {
            FrameDuration::Ms10 => 10,
            FrameDuration::Ms20 => 20,
        }
    }

    /// The period of `ms` milliseconds, if it is one Opus frames here can have (10 or 20).
    pub fn from_ms(ms: u32) -> Option<FrameDuration> {
        match ms {
            10 => Some(FrameDuration::Ms10),
            20 => Some(FrameDuration::Ms20),
            _ => None,
        }
    }

    /// Samples per frame at 48 kHz (also the RTP timestamp step).
    pub fn samples(self) -> usize {
        self.ms() as usize * 48
    }
}

/// Settings of a [`JitterBuffer`].
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// Frame period: how much audio each packet and each `pop` carries.
    pub frame: FrameDuration,
    /// The target delay never goes below this.
    pub min_delay_ms: u32,
    /// The target delay never goes above this, and the buffer stops waiting for a late
    /// packet once the delay reaches it.
    pub max_delay_ms: u32,
    /// Target delay before any jitter has been measured.
    pub initial_delay_ms: u32,
    /// With no packet for this long the stream counts as stopped: `pop` gives `Silence` and
    /// the next packet starts playout afresh.
    pub silence_after_ms: u32,
    /// Ask for in-band FEC (`PlayoutFrame::Fec`) when the next packet is there.
    pub use_fec: bool,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            frame: FrameDuration::Ms20,
            // Below one frame on purpose: a packet that arrives 15 ms before its playout
            // tick is safe on a quiet path, and the two directions of a call then add up to
            // at most three frames of buffering, never four (the measured one-way latency
            // on loopback is in BENCHMARKS.md). Real jitter raises the target above this.
            min_delay_ms: 15,
            max_delay_ms: 400,
            initial_delay_ms: 30,
            silence_after_ms: 1000,
            use_fec: true,
        }
    }
}

/// A configuration the buffer cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JitterError {
    #[error("min delay {min_ms} ms is above max delay {max_ms} ms")]
    DelayRange { min_ms: u32, max_ms: u32 },
    #[error("max delay {0} ms is above the 2000 ms the buffer can hold")]
    MaxDelayTooLarge(u32),
}

/// What the decoder should do for this frame period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayoutFrame<'a> {
    /// Decode this packet.
    Packet(&'a [u8]),
    /// The wanted packet is lost but the one after it is here: decode with FEC from it
    /// (`decode(next, fec = true)`), then decode `next` normally on the next period.
    Fec(&'a [u8]),
    /// Nothing to decode: run packet-loss concealment.
    Conceal,
    /// Not playing (before the first packet, or the stream stopped): output silence.
    Silence,
}

/// What happened to a pushed packet. Not an error: late and duplicate packets are normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Buffered,
    /// Already buffered or already played.
    Duplicate,
    /// Arrived after its playout time; dropped.
    Late,
    /// Empty or larger than [`MAX_PAYLOAD`]; dropped.
    Invalid,
    /// Sequence number far from the stream's; dropped, but if the next packet follows it
    /// in sequence the buffer restarts on that new stream (RFC 3550 "probation").
    OutOfRange,
}

/// The delay correction the buffer would like, for the decoding side to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjustment {
    Keep,
    /// Delay is above target: skip a frame (pop twice in one period), preferably a silent one.
    Shrink,
    /// Delay is below target: play a frame of your own without popping, preferably in silence.
    Grow,
}

/// Counters and delays, for logs, the UI and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// How long a packet arriving with the base transit waits before playout, at the last pop.
    pub current_delay_ms: f64,
    pub target_delay_ms: f64,
    /// Interarrival jitter as RFC 3550 (6.4.1) defines it for receiver reports: the change in
    /// transit from one arrival to the next, smoothed with a gain of 1/16.
    pub interarrival_jitter_ms: f64,
    pub packets_received: u64,
    /// Arrived after their playout time (also counted in `lost`), or just after the far end
    /// was told stopped ([`JitterBuffer::stop`]: still in flight then; not lost).
    pub late: u64,
    /// Missing when their turn came (lost in the network, or late).
    pub lost: u64,
    pub duplicates: u64,
    /// Invalid payloads (empty or oversized) and out-of-range sequence numbers.
    pub invalid: u64,
    /// `Conceal` frames handed out (including those while waiting for a late packet).
    pub concealed_frames: u64,
    /// `Fec` frames handed out.
    pub fec_frames: u64,
    /// Frames dropped to shrink the delay (skipped gap frames included).
    pub frames_dropped: u64,
    /// Frames inserted to grow the delay (held gap frames included).
    pub frames_inserted: u64,
    /// Pops that found the buffer empty mid-stream and waited (concealing) for the packet.
    pub underrun_frames: u64,
    /// Times the stream was re-anchored (sequence or timestamp discontinuity, or after it
    /// had stopped).
    pub resyncs: u64,
    /// Missing frames filled from a later packet's redundancy (RFC 2198 RED) before their turn.
    pub red_recovered: u64,
}

/// One buffered packet. Slots are reused; `data` keeps its capacity.
#[derive(Debug, Clone, Default)]
struct Slot {
    /// Extended sequence number, `None` when free.
    seq: Option<i64>,
    /// Extended RTP timestamp.
    ts: i64,
    /// The payload; capacity for [`MAX_PAYLOAD`] is reserved on first use and kept.
    data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No packet yet (or after `reset`).
    Idle,
    /// First packet is here; waiting until the delay reaches the target.
    Buffering,
    Playing,
    /// No packet for `silence_after_ms`: silence until the next packet re-anchors.
    Stopped,
}

/// Minimum transit per second over the last [`BASE_BUCKETS`] seconds.
#[derive(Debug, Clone)]
struct BaseTransit {
    /// Smallest transit seen in each bucket's second.
    min_ms: [f64; BASE_BUCKETS],
    /// Which second (since the epoch) each bucket holds; older ones are ignored.
    second: [i64; BASE_BUCKETS],
    /// Minimum over the live buckets, updated on each arrival.
    base_ms: f64,
}

impl BaseTransit {
    fn new() -> Self {
        BaseTransit {
            min_ms: [f64::INFINITY; BASE_BUCKETS],
            second: [i64::MIN; BASE_BUCKETS],
            base_ms: 0.0,
        }
    }

    fn add(&mut self, now_ms: f64, transit_ms: f64) {
        let sec = (now_ms / 1000.0).floor() as i64;
        let idx = sec.rem_euclid(BASE_BUCKETS as i64) as usize;
        if self.second[idx] != sec {
            self.second[idx] = sec;
            self.min_ms[idx] = transit_ms;
        } else {
            self.min_ms[idx] = self.min_ms[idx].min(transit_ms);
        }
        let oldest = sec - BASE_BUCKETS as i64 + 1;
        self.base_ms = self
            .second
            .iter()
            .zip(&self.min_ms)
            .filter(|(s, _)| **s >= oldest)
            .map(|(_, m)| *m)
            .fold(f64::INFINITY, f64::min);
    }
}

/// Recent jitter samples and the peak detector.
#[derive(Debug, Clone)]
struct JitterEstimator {
    /// (arrival ms, jitter ms), a ring of the last [`JITTER_WINDOW_MS`].
    samples: [(f64, f64); JITTER_SAMPLES],
    /// Oldest sample's index and the number of samples in the ring.
    start: usize,
    len: usize,
    /// Copy of the samples for the percentile selection (no allocation per packet).
    scratch: [f64; JITTER_SAMPLES],
    /// (time ms, magnitude ms) of recent peak events, a ring.
    peaks: [(f64, f64); PEAK_SLOTS],
    /// Where the next peak event goes.
    peak_next: usize,
}

impl JitterEstimator {
    fn new() -> Self {
        JitterEstimator {
            samples: [(f64::NEG_INFINITY, 0.0); JITTER_SAMPLES],
            start: 0,
            len: 0,
            scratch: [0.0; JITTER_SAMPLES],
            peaks: [(f64::NEG_INFINITY, 0.0); PEAK_SLOTS],
            peak_next: 0,
        }
    }

    fn add(&mut self, now_ms: f64, jitter_ms: f64) {
        if self.len == JITTER_SAMPLES {
            self.start = (self.start + 1) % JITTER_SAMPLES;
            self.len -= 1;
        }
        self.samples[(self.start + self.len) % JITTER_SAMPLES] = (now_ms, jitter_ms);
        self.len += 1;
        while self.len > 0 && self.samples[self.start].0 < now_ms - JITTER_WINDOW_MS {
            self.start = (self.start + 1) % JITTER_SAMPLES;
            self.len -= 1;
        }
    }

    /// The `q` quantile of the jitter window (0 when empty).
    fn quantile(&mut self, q: f64) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        for i in 0..self.len {
            self.scratch[i] = self.samples[(self.start + i) % JITTER_SAMPLES].1;
        }
        let s = &mut self.scratch[..self.len];
        let k = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
        let (_, v, _) = s.select_nth_unstable_by(k, f64::total_cmp);
        *v
    }

    fn note_peak(&mut self, now_ms: f64, magnitude_ms: f64) {
        let last = (self.peak_next + PEAK_SLOTS - 1) % PEAK_SLOTS;
        if now_ms - self.peaks[last].0 < PEAK_MERGE_MS {
            let p = &mut self.peaks[last];
            p.1 = p.1.max(magnitude_ms);
        } else {
            self.peaks[self.peak_next] = (now_ms, magnitude_ms);
            self.peak_next = (self.peak_next + 1) % PEAK_SLOTS;
        }
    }

    /// The largest recent peak if peaks recur (two or more events in the memory window).
    fn recurring_peak(&self, now_ms: f64) -> Option<f64> {
        let recent = self.peaks.iter().filter(|p| now_ms - p.0 <= PEAK_MEMORY_MS);
        let (count, max) = recent.fold((0, 0.0f64), |(c, m), p| (c + 1, m.max(p.1)));
        (count >= 2).then_some(max)
    }
}

/// The adaptive jitter buffer. See the module documentation.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// RTP timestamp step of one frame.
    frame_ts: i64,
    /// Frame period in ms (delays are kept in ms).
    frame_ms: f64,
    /// Packet slots indexed by `seq & mask`; the capacity covers twice the max delay.
    slots: Vec<Slot>,
    /// Slot count minus one (a power of two, so indexing is a mask).
    mask: i64,
    /// Where playout stands: waiting for a first packet, filling, playing, or stopped.
    phase: Phase,
    /// Instant that `now` values are measured from (the first call).
    epoch: Option<Instant>,
    /// Highest extended sequence number and timestamp seen: the references for unwrapping.
    highest_seq: i64,
    highest_ts: i64,
    /// Timestamp of the next frame to play.
    cursor: i64,
    /// Sequence number of the next packet to play.
    next_seq: i64,
    /// Bit i set: sequence `next_seq - 1 - i` was played (tells duplicates from late packets).
    played: u128,
    /// When the last packet arrived (to notice that the stream stopped).
    last_arrival_ms: f64,
    /// When the driver said the far end stopped ([`Self::stop`]): packets arriving within
    /// [`STRAGGLER_WINDOW_MS`] after are the old stream's, still in flight.
    stopped_at_ms: Option<f64>,
    /// That packet's transit (arrival minus RTP time), for the interarrival jitter; None
    /// at the start of a stream.
    last_transit_ms: Option<f64>,
    /// The path's base transit (minimum over the last seconds).
    base: BaseTransit,
    /// Recent jitter samples and peaks, for the target.
    jitter: JitterEstimator,
    /// The delay the buffer aims for, ms.
    target_ms: f64,
    /// Consecutive frames handed out without a packet.
    missing_run: u32,
    /// The latest `now` seen, ms since `epoch`.
    now_ms: f64,
    /// When a packet was last lost, ms since `epoch`.
    last_loss_ms: f64,
    /// Sequence number of the last out-of-range packet: the next one in sequence with it
    /// starts a new stream.
    probation: Option<u16>,
    /// Counters handed out by `stats`.
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Result<Self, JitterError> {
        if cfg.min_delay_ms > cfg.max_delay_ms {
            return Err(JitterError::DelayRange {
                min_ms: cfg.min_delay_ms,
                max_ms: cfg.max_delay_ms,
            });
        }
        if cfg.max_delay_ms > 2000 {
            return Err(JitterError::MaxDelayTooLarge(cfg.max_delay_ms));
        }
        let frame_ts = cfg.frame.samples() as i64;
        let frame_ms = cfg.frame.ms() as f64;
        // Twice the max delay in frames, plus room for reordering, as a power of two.
        let frames = (2 * cfg.max_delay_ms / cfg.frame.ms()) as usize + 32;
        let capacity = frames.next_power_of_two();
        let target_ms =
            (cfg.initial_delay_ms as f64).clamp(cfg.min_delay_ms as f64, cfg.max_delay_ms as f64);
        Ok(JitterBuffer {
            frame_ts,
            frame_ms,
            slots: vec![Slot::default(); capacity],
            mask: capacity as i64 - 1,
            phase: Phase::Idle,
            epoch: None,
            highest_seq: 0,
            highest_ts: 0,
            cursor: 0,
            next_seq: 0,
            played: 0,
            last_arrival_ms: 0.0,
            stopped_at_ms: None,
            last_transit_ms: None,
            base: BaseTransit::new(),
            jitter: JitterEstimator::new(),
            target_ms,
            missing_run: 0,
            now_ms: 0.0,
            last_loss_ms: f64::NEG_INFINITY,
            probation: None,
            stats: JitterStats {
                target_delay_ms: target_ms,
                ..JitterStats::default()
            },
            cfg,
        })
    }

    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Forgets the stream (an SSRC change, or a new call on a connection that outlives
    /// calls): buffered packets, the path's transit and jitter estimates and the loss memory
    /// start afresh, so the gap between two calls is neither loss nor jitter. Statistics
    /// are kept.
    pub fn reset(&mut self) {
        self.clear_slots();
        self.phase = Phase::Idle;
        self.base = BaseTransit::new();
        self.jitter = JitterEstimator::new();
        self.last_loss_ms = f64::NEG_INFINITY;
        self.target_ms = (self.cfg.initial_delay_ms as f64)
            .clamp(self.cfg.min_delay_ms as f64, self.cfg.max_delay_ms as f64);
        self.stats.target_delay_ms = self.target_ms;
        self.stats.interarrival_jitter_ms = 0.0;
        self.missing_run = 0;
        self.stopped_at_ms = None;
    }

    /// The far end stopped sending (the call ended, or the caller was put on hold), as the
    /// driver was told: forgets the stream as [`Self::reset`] does, so nothing is concealed
    /// for the second it would take to notice, and drops what was still in flight (arriving
    /// within 150 ms), which would otherwise start a stream of its own.
    pub fn stop(&mut self, now: Instant) {
        let now_ms = self.ms(now);
        self.reset();
        self.stopped_at_ms = Some(now_ms);
    }

    /// Changes the frame period (the sender changed its packet time, or the stream now comes
    /// from a source that packs another): the stream starts afresh as after [`Self::reset`];
    /// statistics are kept and the switch counts as a resync.
    pub fn set_frame(&mut self, frame: FrameDuration) {
        if frame == self.cfg.frame {
            return;
        }
        let cfg = JitterConfig {
            frame,
            ..self.cfg.clone()
        };
        // Only the period changes: the delay range was accepted when this buffer was made.
        let Ok(mut fresh) = JitterBuffer::new(cfg) else {
            return;
        };
        fresh.epoch = self.epoch;
        fresh.stats = JitterStats {
            target_delay_ms: fresh.target_ms,
            resyncs: self.stats.resyncs + 1,
            ..self.stats
        };
        *self = fresh;
    }

    /// Whether playout has started and not stopped.
    pub fn is_playing(&self) -> bool {
        self.phase == Phase::Playing
    }

    fn ms(&mut self, now: Instant) -> f64 {
        let epoch = *self.epoch.get_or_insert(now);
        self.now_ms = now.saturating_duration_since(epoch).as_secs_f64() * 1000.0;
        self.now_ms
    }

    /// Counts packets that missed their turn; recent loss buys FEC headroom in the target.
    fn count_lost(&mut self, n: u64) {
        if n > 0 {
            self.stats.lost += n;
            self.last_loss_ms = self.now_ms;
        }
    }

    fn clear_slots(&mut self) {
        for s in &mut self.slots {
            s.seq = None;
        }
    }

    fn slot_index(&self, seq: i64) -> usize {
        (seq & self.mask) as usize
    }

    fn capacity(&self) -> i64 {
        self.mask + 1
    }

    /// Takes in one arrived packet.
    pub fn push(&mut self, now: Instant, seq: u16, rtp_ts: u32, payload: &[u8]) -> Pushed {
        let now_ms = self.ms(now);
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            self.stats.invalid += 1;
            return Pushed::Invalid;
        }
        self.stats.packets_received += 1;
        if self.phase == Phase::Idle {
            if self
                .stopped_at_ms
                .is_some_and(|at| now_ms - at < STRAGGLER_WINDOW_MS)
            {
                // Still in flight when the far end was told stopped: not the next stream.
                self.stats.late += 1;
                return Pushed::Late;
            }
            self.stopped_at_ms = None;
            self.anchor(now_ms, seq as i64, rtp_ts as i64, payload);
            return Pushed::Buffered;
        }
        let ext_seq = extend_seq(self.highest_seq, seq);
        let ext_ts = extend_ts(self.highest_ts, rtp_ts);
        let newer = ext_seq > self.highest_seq;
        let ts_behind_ms = (self.cursor - ext_ts) as f64 / TS_PER_MS;
        if (ext_seq - self.highest_seq).abs() > MAX_SEQ_JUMP {
            let confirmed = self.probation == Some(seq.wrapping_sub(1));
            self.probation = Some(seq);
            if !confirmed {
                self.stats.invalid += 1;
                return Pushed::OutOfRange;
            }
            // Two in a row: a new stream (the sender restarted its sequence numbers).
            self.probation = None;
            self.stats.resyncs += 1;
            self.anchor(now_ms, ext_seq, ext_ts, payload);
            return Pushed::Buffered;
        }
        let paused = match self.phase {
            // `pop` stops a stream only when nothing is buffered.
            Phase::Stopped => true,
            Phase::Playing => {
                now_ms - self.last_arrival_ms > self.cfg.max_delay_ms as f64
                    && self.head().is_none()
            }
            Phase::Idle | Phase::Buffering => false,
        };
        if paused && newer {
            // The stream stopped, or paused for longer than the buffer can ever wait, and
            // nothing is buffered: a new talkspurt, the caller back from hold, or a new far
            // end (the next call on a shift-long connection). What is missing could not be
            // played anyway, and a bridge's sequence numbers go on without a gap, so its RTP
            // time only says that time passed: not a loss, however long the pause. Start
            // again from here.
            self.stats.resyncs += 1;
            self.anchor(now_ms, ext_seq, ext_ts, payload);
            return Pushed::Buffered;
        }
        if (newer && ts_behind_ms > MAX_TS_BACKWARD_MS)
            || ext_seq - self.next_seq >= self.capacity()
        {
            // A sender that restarted its timestamps, or a flood beyond what the buffer holds.
            self.stats.resyncs += 1;
            self.stats.lost += self.buffered_gap(ext_seq);
            self.anchor(now_ms, ext_seq, ext_ts, payload);
            return Pushed::Buffered;
        }

        // Jitter measurement uses every packet that is not a duplicate, late ones included.
        let idx = self.slot_index(ext_seq);
        if self.phase == Phase::Buffering
            && ext_seq < self.next_seq
            && self.next_seq - ext_seq < self.capacity() / 2
            && self.slots[idx].seq.is_none()
        {
            // Reordered before playout even started: it becomes the first packet.
            self.measure(now_ms, ext_ts, false);
            self.next_seq = ext_seq;
            self.cursor = self.cursor.min(ext_ts);
            self.store(idx, ext_seq, ext_ts, payload);
            return Pushed::Buffered;
        }
        if ext_seq < self.next_seq {
            let back = self.next_seq - 1 - ext_seq;
            if back < 128 && self.played & (1u128 << back) != 0 {
                self.stats.duplicates += 1;
                return Pushed::Duplicate;
            }
            self.measure(now_ms, ext_ts, false);
            self.stats.late += 1;
            return Pushed::Late;
        }
        if self.slots[idx].seq == Some(ext_seq) {
            self.stats.duplicates += 1;
            return Pushed::Duplicate;
        }
        self.measure(now_ms, ext_ts, newer);
        if ext_ts + self.frame_ts <= self.cursor {
            // Its time has passed (the cursor moved on while waiting): late.
            self.stats.late += 1;
            self.count_lost(1);
            self.pass_seq(ext_seq);
            return Pushed::Late;
        }
        self.store(idx, ext_seq, ext_ts, payload);
        self.highest_seq = self.highest_seq.max(ext_seq);
        Pushed::Buffered
    }

    /// A frame carried again in a later packet (RFC 2198 redundancy): fills its slot if that is
    /// still empty and its turn has not come; ignored otherwise. It arrives late by design, so
    /// it takes no part in the jitter estimate or the packet counts; a hole it fills counts as
    /// recent loss for the headroom (the next loss is likely rebuilt the same way).
    pub fn push_redundant(
        &mut self,
        now: Instant,
        seq: u16,
        rtp_ts: u32,
        payload: &[u8],
    ) -> Pushed {
        let now_ms = self.ms(now);
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            return Pushed::Invalid;
        }
        if !matches!(self.phase, Phase::Buffering | Phase::Playing) {
            return Pushed::Late;
        }
        let ext_seq = extend_seq(self.highest_seq, seq);
        let ext_ts = extend_ts(self.highest_ts, rtp_ts);
        if ext_seq < self.next_seq
            || ext_seq > self.highest_seq
            || ext_ts + self.frame_ts <= self.cursor
        {
            return Pushed::Late;
        }
        let idx = self.slot_index(ext_seq);
        if self.slots[idx].seq == Some(ext_seq) {
            return Pushed::Duplicate;
        }
        self.store(idx, ext_seq, ext_ts, payload);
        self.stats.red_recovered += 1;
        self.last_loss_ms = now_ms;
        Pushed::Buffered
    }

    /// Missing packets between `next_seq` and `seq` that are not buffered (for loss counts
    /// when a resync throws the buffer away).
    fn buffered_gap(&self, seq: i64) -> u64 {
        if seq <= self.next_seq || self.phase == Phase::Idle {
            return 0;
        }
        let span = (seq - self.next_seq).min(self.capacity());
        let present = self.slots.iter().filter(|s| s.seq.is_some()).count() as i64;
        (span - present).max(0) as u64
    }

    /// Starts playout afresh with this packet as the first.
    fn anchor(&mut self, now_ms: f64, seq: i64, ts: i64, payload: &[u8]) {
        self.clear_slots();
        self.highest_seq = seq;
        self.highest_ts = ts;
        self.cursor = ts;
        self.next_seq = seq;
        self.played = 0;
        self.missing_run = 0;
        self.base = BaseTransit::new();
        // The RTP clock may have jumped: transit is measured afresh.
        self.last_transit_ms = None;
        self.phase = Phase::Buffering;
        self.measure(now_ms, ts, true);
        let idx = self.slot_index(seq);
        self.store(idx, seq, ts, payload);
    }

    fn store(&mut self, idx: usize, seq: i64, ts: i64, payload: &[u8]) {
        let slot = &mut self.slots[idx];
        if slot.data.capacity() < MAX_PAYLOAD {
            slot.data.reserve_exact(MAX_PAYLOAD - slot.data.len());
        }
        slot.seq = Some(seq);
        slot.ts = ts;
        slot.data.clear();
        slot.data.extend_from_slice(payload);
    }

    /// Records an arrival for the transit and jitter estimates and updates the target.
    fn measure(&mut self, now_ms: f64, ts: i64, newer: bool) {
        self.last_arrival_ms = now_ms;
        if newer {
            self.highest_ts = self.highest_ts.max(ts);
        }
        let transit = now_ms - ts as f64 / TS_PER_MS;
        if let Some(last) = self.last_transit_ms {
            let j = &mut self.stats.interarrival_jitter_ms;
            *j += ((transit - last).abs() - *j) / 16.0;
        }
        self.last_transit_ms = Some(transit);
        self.base.add(now_ms, transit);
        let j = (transit - self.base.base_ms).max(0.0);
        let before = self.target_ms;
        self.jitter.add(now_ms, j);
        if j > before {
            // This packet would have missed its turn: a peak.
            self.jitter.note_peak(now_ms, j);
        }
        let guard = self.frame_ms / 4.0;
        let mut target = self.jitter.quantile(0.95) + guard;
        if self.jitter.len < MIN_ESTIMATE_SAMPLES {
            // Too few samples to trust yet: keep at least the initial delay.
            target = target.max(self.cfg.initial_delay_ms as f64);
        }
        if let Some(peak) = self.jitter.recurring_peak(now_ms) {
            target = target.max(peak + guard);
        }
        if self.keeps_fec_headroom(now_ms) {
            // While packets are being lost, wait one frame more so that the packet after a
            // lost one is usually here in time to rebuild it from its FEC.
            target += self.frame_ms;
        }
        self.target_ms = target.clamp(self.cfg.min_delay_ms as f64, self.cfg.max_delay_ms as f64);
        self.stats.target_delay_ms = self.target_ms;
    }

    /// Packets were lost lately (and FEC is on): the target holds a frame of headroom for
    /// FEC, the shrink margin is wider, and a missing packet counts as lost, not late.
    fn keeps_fec_headroom(&self, now_ms: f64) -> bool {
        self.cfg.use_fec && now_ms - self.last_loss_ms < LOSS_MEMORY_MS
    }

    /// Marks sequence numbers up to `seq` as passed (not played).
    fn pass_seq(&mut self, seq: i64) {
        if seq >= self.next_seq {
            let n = seq + 1 - self.next_seq;
            self.played = if n >= 128 { 0 } else { self.played << n };
            self.next_seq = seq + 1;
        }
        self.highest_seq = self.highest_seq.max(seq);
    }

    /// Marks `seq` as played and everything before it as passed.
    fn play_seq(&mut self, seq: i64) {
        self.pass_seq(seq);
        self.played |= 1;
    }

    fn delay_ms(&self, now_ms: f64) -> f64 {
        now_ms - (self.cursor as f64 / TS_PER_MS + self.base.base_ms)
    }

    /// The lowest buffered packet at or after `next_seq`: (slot index, seq, ts).
    fn head(&self) -> Option<(usize, i64, i64)> {
        let end = self.highest_seq.min(self.next_seq + self.capacity() - 1);
        (self.next_seq..=end).find_map(|seq| {
            let idx = self.slot_index(seq);
            (self.slots[idx].seq == Some(seq)).then(|| (idx, seq, self.slots[idx].ts))
        })
    }

    /// How far above the target the delay must be before a frame is dropped: one frame (so
    /// that the delay is still at or above the target afterwards) plus a small margin, so
    /// that timer noise at the playout clock does not make the buffer drop and insert in
    /// turn. With a larger hysteresis the delay can settle a whole frame above the target.
    /// While packets are being lost the margin is half a frame: a hold for a missing
    /// packet raises the delay by one frame, and dropping it again right away would turn
    /// every loss into an insert-then-drop (two audible time jumps) instead of one.
    fn shrink_threshold_ms(&self) -> f64 {
        if self.keeps_fec_headroom(self.now_ms) {
            self.frame_ms * 1.5
        } else {
            self.frame_ms * 1.125
        }
    }

    /// The delay correction wanted at `now`, before this period's `pop`.
    pub fn adjustment(&self, now: Instant) -> Adjustment {
        let Some(epoch) = self.epoch else {
            return Adjustment::Keep;
        };
        if self.phase != Phase::Playing {
            return Adjustment::Keep;
        }
        let now_ms = now.saturating_duration_since(epoch).as_secs_f64() * 1000.0;
        if matches!(self.head(), Some((_, seq, ts))
            if seq == self.next_seq && ts >= self.cursor + self.frame_ts)
        {
            // A DTX gap comes first: `pop` skips or holds gap frames itself, for free;
            // dropping a packet on top of that would overshoot.
            return Adjustment::Keep;
        }
        let excess = self.delay_ms(now_ms) - self.target_ms;
        // Dropping needs a frame beyond the next one to be here already.
        let buffered = self.highest_ts + self.frame_ts - self.cursor;
        if excess > self.shrink_threshold_ms() && buffered >= 2 * self.frame_ts {
            Adjustment::Shrink
        } else if excess < 0.0 {
            Adjustment::Grow
        } else {
            Adjustment::Keep
        }
    }

    /// The caller discarded the frame it just popped to shrink the delay (for the stats;
    /// the cursor already moved).
    pub fn mark_dropped(&mut self) {
        self.stats.frames_dropped += 1;
    }

    /// The caller played a frame of its own instead of popping, to grow the delay.
    pub fn mark_inserted(&mut self) {
        self.stats.frames_inserted += 1;
    }

    /// What to play for the next frame period. Call once per period (twice to drop a frame).
    pub fn pop(&mut self, now: Instant) -> PlayoutFrame<'_> {
        let now_ms = self.ms(now);
        match self.phase {
            Phase::Idle | Phase::Stopped => return PlayoutFrame::Silence,
            Phase::Buffering => {
                self.stats.current_delay_ms = self.delay_ms(now_ms);
                if self.stats.current_delay_ms < self.target_ms {
                    return PlayoutFrame::Silence;
                }
                self.phase = Phase::Playing;
            }
            Phase::Playing => {
                if now_ms - self.last_arrival_ms > self.cfg.silence_after_ms as f64
                    && self.head().is_none()
                {
                    self.phase = Phase::Stopped;
                    self.missing_run = 0;
                    return PlayoutFrame::Silence;
                }
            }
        }
        let mut delay = self.delay_ms(now_ms);
        self.stats.current_delay_ms = delay;

        let Some((idx, seq, ts)) = self.head() else {
            // Empty: wait for the packet (conceal, cursor held) unless that would take the
            // delay past the maximum; then give the frame up. While packets are being lost
            // and the delay already has the loss headroom, a missing packet is most likely
            // lost, not late: give it up too, so a loss costs a concealed frame, not a
            // concealed frame plus a one-frame jump in delay.
            let probably_lost = self.keeps_fec_headroom(now_ms) && delay >= self.target_ms;
            if delay < self.cfg.max_delay_ms as f64 && !probably_lost {
                self.stats.underrun_frames += 1;
            } else {
                self.cursor += self.frame_ts;
            }
            return self.conceal();
        };
        if ts < self.cursor + self.frame_ts {
            // Its turn (or overdue within this frame): play it, aligning the cursor to it.
            self.count_lost((seq - self.next_seq) as u64);
            self.play_seq(seq);
            self.cursor = ts + self.frame_ts;
            self.missing_run = 0;
            return PlayoutFrame::Packet(&self.slots[idx].data);
        }

        // A gap before the head: lost packets (sequence gap) or no packets at all (DTX).
        let mut missing = seq - self.next_seq;
        let gap_frames = (ts - self.cursor) / self.frame_ts;
        if missing == 0 || self.missing_run >= QUIET_RUN_FRAMES {
            let excess = delay - self.target_ms;
            if excess > self.shrink_threshold_ms() {
                // Skip gap frames (no audio there) down to the target, stopping at the head.
                let skip = ((excess / self.frame_ms).floor() as i64).min(gap_frames);
                if skip > 0 {
                    self.cursor += skip * self.frame_ts;
                    self.stats.frames_dropped += skip as u64;
                    let passed = skip.min(missing);
                    if passed > 0 {
                        self.count_lost(passed as u64);
                        self.pass_seq(self.next_seq + passed - 1);
                        missing -= passed;
                    }
                    delay -= skip as f64 * self.frame_ms;
                    self.stats.current_delay_ms = delay;
                    if skip == gap_frames {
                        return self.pop_at_cursor();
                    }
                }
            } else if excess < 0.0 {
                // Hold in the gap: insert one frame of concealment.
                self.stats.frames_inserted += 1;
                return self.conceal();
            }
        }
        self.cursor += self.frame_ts;
        if missing > 0 {
            // The frame at the cursor belongs to the first missing packet.
            self.count_lost(1);
            self.pass_seq(self.next_seq);
            // The head directly follows this frame: its in-band FEC describes this frame.
            if self.cfg.use_fec && ts == self.cursor {
                self.missing_run += 1;
                self.stats.fec_frames += 1;
                return PlayoutFrame::Fec(&self.slots[idx].data);
            }
        }
        self.conceal()
    }

    /// After skipping a gap right up to the head: play the head.
    fn pop_at_cursor(&mut self) -> PlayoutFrame<'_> {
        match self.head() {
            Some((idx, seq, ts)) if ts < self.cursor + self.frame_ts => {
                self.count_lost((seq - self.next_seq) as u64);
                self.play_seq(seq);
                self.cursor = ts + self.frame_ts;
                self.missing_run = 0;
                PlayoutFrame::Packet(&self.slots[idx].data)
            }
            _ => {
                self.cursor += self.frame_ts;
                self.conceal()
            }
        }
    }

    fn conceal(&mut self) -> PlayoutFrame<'_> {
        self.missing_run = self.missing_run.saturating_add(1);
        self.stats.concealed_frames += 1;
        PlayoutFrame::Conceal
    }
}

/// Unwraps a 16-bit sequence number to the value nearest `reference`.
fn extend_seq(reference: i64, seq: u16) -> i64 {
    reference + (seq.wrapping_sub(reference as u16) as i16) as i64
}

/// Unwraps a 32-bit RTP timestamp to the value nearest `reference`.
fn extend_ts(reference: i64, ts: u32) -> i64 {
    reference + (ts.wrapping_sub(reference as u32) as i32) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FRAME_US: u64 = 20_000;

    /// What one frame period produced in the simulation.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Out {
        Packet(u32),
        Fec(u32),
        Conceal,
        Silence,
        Inserted,
    }

    fn index_of(payload: &[u8]) -> u32 {
        u32::from_le_bytes(payload[..4].try_into().unwrap())
    }

    /// A sender, a network and a receiver on a virtual clock (microseconds).
    struct Sim {
        jb: JitterBuffer,
        t0: Instant,
        seq0: u16,
        ts0: u32,
        /// Sender clock error: +100 means the sender's clock runs 100 ppm fast.
        ppm: f64,
        /// (arrival µs, packet index) still in flight.
        in_flight: Vec<(u64, u32)>,
        next_index: u32,
        /// Serve Shrink/Grow as a decoder would in silence.
        auto_adjust: bool,
        /// Pop phase relative to the sender's frame grid.
        pop_offset_us: u64,
        pops: u64,
        /// (virtual ms, current delay, target delay) at each pop.
        delays: Vec<(f64, f64, f64)>,
        /// Extra delay of a second copy of packet i (duplicates), if any.
        dup: fn(u32) -> Option<u64>,
        /// DTX: from packet index `.0` on, sending and timestamps are `.1` frames later.
        dtx: Option<(u32, u32)>,
        /// RFC 2198: each packet also carries this many frames before it.
        red_depth: u32,
    }

    impl Sim {
        fn new(cfg: JitterConfig) -> Sim {
            Sim {
                jb: JitterBuffer::new(cfg).unwrap(),
                t0: Instant::now(),
                seq0: 1000,
                ts0: 123_456,
                ppm: 0.0,
                in_flight: Vec::new(),
                next_index: 0,
                auto_adjust: true,
                pop_offset_us: 7_000,
                pops: 0,
                delays: Vec::new(),
                dup: |_| None,
                dtx: None,
                red_depth: 0,
            }
        }

        fn at(&self, us: u64) -> Instant {
            self.t0 + Duration::from_micros(us)
        }

        /// Frame number (on the sender's clock) of packet `index`.
        fn frame_of(&self, index: u32) -> u32 {
            match self.dtx {
                Some((from, frames)) if index >= from => index + frames,
                _ => index,
            }
        }

        fn send_time_us(&self, index: u32) -> u64 {
            (self.frame_of(index) as f64 * FRAME_US as f64 / (1.0 + self.ppm * 1e-6)) as u64
        }

        /// Sends every packet due by `until_us`, each delayed by `net(index, send_us)`
        /// (None = lost).
        fn send_until(&mut self, until_us: u64, net: &mut dyn FnMut(u32, u64) -> Option<u64>) {
            loop {
                let send = self.send_time_us(self.next_index);
                if send > until_us {
                    break;
                }
                if let Some(d) = net(self.next_index, send) {
                    self.in_flight.push((send + d, self.next_index));
                    if let Some(extra) = (self.dup)(self.next_index) {
                        self.in_flight.push((send + d + extra, self.next_index));
                    }
                }
                self.next_index += 1;
            }
        }

        fn deliver(&mut self, until_us: u64) {
            self.in_flight.sort_by_key(|&(t, i)| (t, i));
            let due = self.in_flight.partition_point(|&(t, _)| t <= until_us);
            let arrived: Vec<_> = self.in_flight.drain(..due).collect();
            for (t, i) in arrived {
                self.push_index(t, i);
                for back in 1..=self.red_depth.min(i) {
                    let j = i - back;
                    let seq = self.seq0.wrapping_add(j as u16);
                    let ts = self.ts0.wrapping_add(self.frame_of(j).wrapping_mul(960));
                    let mut payload = j.to_le_bytes().to_vec();
                    payload.extend_from_slice(&[0xAB; 40]);
                    self.jb.push_redundant(self.at(t), seq, ts, &payload);
                }
            }
        }

        fn push_index(&mut self, t_us: u64, i: u32) -> Pushed {
            let seq = self.seq0.wrapping_add(i as u16);
            let ts = self.ts0.wrapping_add(self.frame_of(i).wrapping_mul(960));
            let mut payload = i.to_le_bytes().to_vec();
            payload.extend_from_slice(&[0xAB; 40]);
            let now = self.at(t_us);
            self.jb.push(now, seq, ts, &payload)
        }

        fn pop_one(&mut self, now: Instant) -> Out {
            match self.jb.pop(now) {
                PlayoutFrame::Packet(p) => Out::Packet(index_of(p)),
                PlayoutFrame::Fec(p) => Out::Fec(index_of(p)),
                PlayoutFrame::Conceal => Out::Conceal,
                PlayoutFrame::Silence => Out::Silence,
            }
        }

        /// One frame period on the receiver's clock.
        fn tick(&mut self) -> Out {
            let t = self.pops * FRAME_US + self.pop_offset_us;
            self.deliver(t);
            let now = self.at(t);
            self.pops += 1;
            let out = match (self.auto_adjust, self.jb.adjustment(now)) {
                (true, Adjustment::Grow) => {
                    self.jb.mark_inserted();
                    Out::Inserted
                }
                (true, Adjustment::Shrink) => {
                    let _ = self.pop_one(now);
                    self.jb.mark_dropped();
                    self.pop_one(now)
                }
                _ => self.pop_one(now),
            };
            let s = self.jb.stats();
            self.delays
                .push((t as f64 / 1000.0, s.current_delay_ms, s.target_delay_ms));
            out
        }

        /// Runs `seconds` of virtual time with the given network.
        fn run(&mut self, seconds: f64, net: &mut dyn FnMut(u32, u64) -> Option<u64>) -> Vec<Out> {
            let frames = (seconds * 1e6 / FRAME_US as f64) as u64;
            let mut outs = Vec::with_capacity(frames as usize);
            for _ in 0..frames {
                let t = self.pops * FRAME_US + self.pop_offset_us;
                self.send_until(t, net);
                outs.push(self.tick());
            }
            outs
        }
    }

    fn played(outs: &[Out]) -> Vec<u32> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Packet(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    fn assert_increasing(v: &[u32]) {
        for w in v.windows(2) {
            assert!(w[0] < w[1], "out of order: {} then {}", w[0], w[1]);
        }
    }

    /// Deterministic pseudo-random numbers.
    struct Lcg(u64);
    impl Lcg {
        fn unit(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn redundant_copies_fill_the_holes_of_lost_packets() {
        let run = |red_depth| {
            let mut sim = Sim::new(JitterConfig::default());
            sim.red_depth = red_depth;
            let mut rng = Lcg(11);
            // 20 % random loss, 5-25 ms of network delay.
            let outs = sim.run(30.0, &mut |_, _| {
                (rng.unit() >= 0.2).then(|| 5_000 + (rng.unit() * 20_000.0) as u64)
            });
            assert_increasing(&played(&outs));
            (sim.jb.stats(), outs)
        };
        let (plain, _) = run(0);
        let (red, outs) = run(2);
        let frames = outs.len() as u64;
        // Without redundancy about a fifth is lost; with two copies per packet almost nothing
        // is (a frame is gone only when its packet and the next two are), and the copies do
        // not count as received packets or as duplicates.
        assert!(plain.lost > frames / 7, "{plain:?}");
        assert!(red.lost <= frames / 50, "{red:?}");
        assert!(red.red_recovered >= frames / 7, "{red:?}");
        assert_eq!(red.duplicates, 0, "{red:?}");
        assert!(red.packets_received < frames, "{red:?}");
        // Waiting for the copies costs at most about a frame of extra delay.
        assert!(
            red.target_delay_ms <= plain.target_delay_ms + 25.0,
            "{red:?} {plain:?}"
        );
    }

    #[test]
    fn interarrival_jitter_is_measured_as_receiver_reports_do() {
        // A steady path: no jitter.
        let mut sim = Sim::new(JitterConfig::default());
        sim.run(10.0, &mut |_, _| Some(30_000));
        let steady = sim.jb.stats().interarrival_jitter_ms;
        assert!(steady < 0.1, "{steady}");
        // Delay drawn evenly from 5-25 ms: consecutive transits differ by 20/3 ms on average.
        let mut sim = Sim::new(JitterConfig::default());
        let mut rng = Lcg(7);
        sim.run(30.0, &mut |_, _| {
            Some(5_000 + (rng.unit() * 20_000.0) as u64)
        });
        let jittery = sim.jb.stats().interarrival_jitter_ms;
        assert!((5.0..8.5).contains(&jittery), "{jittery}");
        // A new stream (the next call) starts from nothing.
        sim.jb.reset();
        assert_eq!(sim.jb.stats().interarrival_jitter_ms, 0.0);
    }

    #[test]
    fn a_new_call_on_the_same_connection_is_not_loss() {
        // One connection, two calls (or one call and a hold): the second stream's timestamps
        // continue 0.6-6 s later (the time between, longer than the buffer conceals before it
        // stops, and longer than it holds) with no sequence gap to tell loss from silence.
        // Whether the driver says nothing, forgets the stream when the next call starts
        // (`reset`), or says the far end stopped (`stop`, with one packet still in flight),
        // the gap is not loss.
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Told {
            Nothing,
            Reset,
            Stop,
        }
        for told in [Told::Nothing, Told::Reset, Told::Stop] {
            for gap_frames in [30u32, 75, 150, 300] {
                let t0 = Instant::now();
                let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
                let payload = [1u8; 40];
                let (mut t_ms, mut seq, mut ts) = (0u64, 0u16, 0u32);
                let run = |jb: &mut JitterBuffer, t_ms: &mut u64, seq: &mut u16, ts: &mut u32| {
                    for _ in 0..200 {
                        let now = t0 + Duration::from_millis(*t_ms);
                        jb.push(now, *seq, *ts, &payload);
                        let _ = jb.pop(now + Duration::from_millis(5));
                        *t_ms += 20;
                        *seq = seq.wrapping_add(1);
                        *ts = ts.wrapping_add(960);
                    }
                };
                run(&mut jb, &mut t_ms, &mut seq, &mut ts);
                assert_eq!(jb.stats().lost, 0, "{:?}", jb.stats());
                let first = jb.stats();
                if told == Told::Stop {
                    jb.stop(t0 + Duration::from_millis(t_ms));
                    // The stream's last packet, in flight when the news came.
                    jb.push(t0 + Duration::from_millis(t_ms + 10), seq, ts, &payload);
                }
                // Nothing for the gap, then the next stream.
                for i in 0..gap_frames as u64 {
                    let _ = jb.pop(t0 + Duration::from_millis(t_ms + 5 + 20 * i));
                }
                if told == Told::Stop {
                    // Told at once: nothing of the old stream is concealed.
                    let s = jb.stats();
                    assert_eq!(s.concealed_frames, first.concealed_frames, "{s:?}");
                }
                t_ms += 20 * gap_frames as u64;
                ts = ts.wrapping_add(gap_frames * 960);
                seq = seq.wrapping_add(gap_frames as u16);
                if told == Told::Reset {
                    jb.reset();
                    assert_eq!(jb.stats().target_delay_ms, 30.0);
                }
                run(&mut jb, &mut t_ms, &mut seq, &mut ts);
                let s = jb.stats();
                assert_eq!(s.lost, 0, "{told:?}, gap {gap_frames}: {s:?}");
                // No loss memory: the target is back at the floor.
                assert_eq!(s.target_delay_ms, 15.0, "{told:?}, gap {gap_frames}: {s:?}");
                assert!(told != Told::Nothing || s.resyncs == 1, "{s:?}");
            }
        }
    }

    #[test]
    fn rejects_bad_config_and_payloads() {
        let bad = JitterConfig {
            min_delay_ms: 100,
            max_delay_ms: 50,
            ..JitterConfig::default()
        };
        assert!(matches!(
            JitterBuffer::new(bad),
            Err(JitterError::DelayRange { .. })
        ));
        let bad = JitterConfig {
            max_delay_ms: 5000,
            ..JitterConfig::default()
        };
        assert!(JitterBuffer::new(bad).is_err());
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        let now = Instant::now();
        assert_eq!(jb.push(now, 1, 0, &[]), Pushed::Invalid);
        assert_eq!(jb.push(now, 1, 0, &[0; MAX_PAYLOAD + 1]), Pushed::Invalid);
        assert_eq!(jb.stats().invalid, 2);
        assert_eq!(jb.pop(now), PlayoutFrame::Silence);
    }

    #[test]
    fn silence_until_target_then_plays_in_order() {
        let mut sim = Sim::new(JitterConfig::default());
        let outs = sim.run(5.0, &mut |_, _| Some(30_000));
        // Silence before the first packet arrives and until the initial 30 ms is buffered.
        let first = outs.iter().position(|o| *o != Out::Silence).unwrap();
        assert_eq!(
            first, 3,
            "first audio 30 ms after the first arrival (at 30 ms)"
        );
        let p = played(&outs);
        assert_increasing(&p);
        assert_eq!(p[0], 0);
        let s = sim.jb.stats();
        assert_eq!((s.lost, s.late, s.underrun_frames), (0, 0, 0));
        // No jitter: the target falls to the minimum and the delay follows.
        assert_eq!(s.target_delay_ms, 15.0);
        // Within one frame (and the shrink margin) of the target.
        assert!(s.current_delay_ms <= 15.0 + 22.5 + 0.1, "{s:?}");
    }

    #[test]
    fn reordering_is_undone() {
        let mut sim = Sim::new(JitterConfig::default());
        // Every 5th packet 35 ms late: it arrives after the next one or two.
        let outs = sim.run(20.0, &mut |i, _| {
            Some(if i % 5 == 2 { 65_000 } else { 30_000 })
        });
        let p = played(&outs);
        assert_increasing(&p);
        let s = sim.jb.stats();
        assert_eq!(s.lost, 0, "{s:?}");
        assert_eq!(s.late, 0);
        // The delay settled where the late packets still make it.
        assert!(
            s.target_delay_ms >= 35.0 && s.target_delay_ms <= 60.0,
            "{s:?}"
        );
        let last_missing = p.windows(2).filter(|w| w[1] != w[0] + 1).count();
        assert!(last_missing <= 1, "gaps in playout: {last_missing}");
    }

    #[test]
    fn loss_uses_fec_then_concealment() {
        let mut sim = Sim::new(JitterConfig::default());
        let lost = [100u32, 200, 201, 202];
        let outs = sim.run(10.0, &mut |i, _| (!lost.contains(&i)).then_some(30_000));
        let pos = |o: Out| outs.iter().position(|x| *x == o).unwrap();
        // Single loss: FEC from the next packet, then that packet itself.
        let f = pos(Out::Fec(101));
        assert_eq!(outs[f - 1], Out::Packet(99));
        assert_eq!(outs[f + 1], Out::Packet(101));
        // Burst of three: conceal, conceal, FEC from the packet after the burst.
        let f = pos(Out::Fec(203));
        assert_eq!(
            &outs[f - 3..=f + 1],
            &[
                Out::Packet(199),
                Out::Conceal,
                Out::Conceal,
                Out::Fec(203),
                Out::Packet(203)
            ]
        );
        let s = sim.jb.stats();
        assert_eq!((s.lost, s.fec_frames, s.late), (4, 2, 0), "{s:?}");
        assert_increasing(&played(&outs));
    }

    #[test]
    fn fec_can_be_disabled() {
        let cfg = JitterConfig {
            use_fec: false,
            ..JitterConfig::default()
        };
        let mut sim = Sim::new(cfg);
        let outs = sim.run(5.0, &mut |i, _| (i != 100).then_some(30_000));
        assert!(!outs.iter().any(|o| matches!(o, Out::Fec(_))));
        assert_eq!(sim.jb.stats().concealed_frames, 1);
    }

    #[test]
    fn very_late_packet_is_counted_and_dropped() {
        let mut sim = Sim::new(JitterConfig::default());
        let outs = sim.run(10.0, &mut |i, _| {
            Some(if i == 150 { 600_000 } else { 30_000 })
        });
        let s = sim.jb.stats();
        assert_eq!((s.late, s.lost, s.fec_frames), (1, 1, 1), "{s:?}");
        assert!(!played(&outs).contains(&150));
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut sim = Sim::new(JitterConfig::default());
        // Every packet twice: the copy 3 ms later, or for every 10th packet 400 ms later
        // (long after it was played).
        sim.dup = |i| Some(if i % 10 == 0 { 400_000 } else { 3_000 });
        let outs = sim.run(10.0, &mut |_, _| Some(30_000));
        let p = played(&outs);
        assert_increasing(&p);
        let s = sim.jb.stats();
        // All copies that arrived by the end (the last ~20 late copies are still in flight).
        let arrived_copies = s.packets_received - p.len() as u64 - 2;
        assert!(
            s.duplicates >= arrived_copies - 2 && s.duplicates <= arrived_copies + 2,
            "{s:?}"
        );
        assert!(s.duplicates > 450, "{s:?}");
        assert_eq!(
            (s.late, s.lost),
            (0, 0),
            "copies after playout are duplicates: {s:?}"
        );
    }

    #[test]
    fn sequence_and_timestamp_wrap_around() {
        let mut sim = Sim::new(JitterConfig::default());
        sim.seq0 = 65_000;
        sim.ts0 = u32::MAX - 960 * 300 + 17;
        let mut rng = Lcg(5);
        // 60 s: the sequence wraps at packet 536, the timestamp at packet 300; jitter 0-40 ms
        // reorders packets on the way.
        let outs = sim.run(60.0, &mut |_, _| {
            Some(30_000 + (rng.unit() * 40_000.0) as u64)
        });
        let p = played(&outs);
        assert_increasing(&p);
        assert!(p.contains(&299) && p.contains(&301));
        assert!(p.contains(&535) && p.contains(&537));
        let s = sim.jb.stats();
        assert_eq!(s.resyncs, 0, "{s:?}");
        assert!(s.lost + s.frames_dropped < 30, "{s:?}");
    }

    #[test]
    fn jitter_spike_raises_delay_then_it_falls_back() {
        let mut sim = Sim::new(JitterConfig::default());
        let mut rng = Lcg(11);
        // Base 30 ms, 0-10 ms of jitter; at 10 s the network stalls 200 ms and then delivers
        // everything at once.
        let mut net = |_: u32, send: u64| {
            let j = (rng.unit() * 10_000.0) as u64;
            Some(if (10_000_000..10_200_000).contains(&send) {
                10_200_000 - send + 30_000 + j
            } else {
                30_000 + j
            })
        };
        sim.run(20.0, &mut net);
        let window = |a: f64, b: f64| -> Vec<(f64, f64, f64)> {
            sim.delays
                .iter()
                .copied()
                .filter(|d| d.0 >= a * 1000.0 && d.0 < b * 1000.0)
                .collect()
        };
        let before: f64 = window(8.0, 10.0).iter().map(|d| d.1).fold(0.0, f64::max);
        assert!(before < 45.0, "delay before the spike {before}");
        let during_max = window(10.0, 11.0).iter().map(|d| d.1).fold(0.0, f64::max);
        assert!(during_max >= 180.0, "delay did not rise: {during_max}");
        let target_max = window(10.0, 11.0).iter().map(|d| d.2).fold(0.0, f64::max);
        assert!(target_max >= 100.0, "target did not rise: {target_max}");
        // Within about two seconds of the spike the delay is back near where it was.
        let after = window(13.0, 20.0);
        assert!(
            after.iter().all(|d| d.1 < before + 25.0),
            "delay stayed high: {:?}",
            after.iter().map(|d| d.1).fold(0.0, f64::max)
        );
        let s = sim.jb.stats();
        // Nothing was thrown away as late: the buffer waited for the stalled packets.
        assert_eq!((s.late, s.lost), (0, 0), "{s:?}");
        assert!(s.underrun_frames <= 12, "{s:?}");
    }

    /// Ten minutes with the sender's clock off by `ppm`, 0-20 ms of jitter.
    fn check_drift(ppm: f64) {
        let mut sim = Sim::new(JitterConfig::default());
        sim.ppm = ppm;
        let mut rng = Lcg(ppm.to_bits());
        let mut net = |_: u32, _: u64| Some(30_000 + (rng.unit() * 20_000.0) as u64);
        // The first ten seconds settle the start-up delay.
        sim.run(10.0, &mut net);
        let start = sim.jb.stats();
        let outs = sim.run(600.0, &mut net);
        let end = sim.jb.stats();
        let s = JitterStats {
            frames_dropped: end.frames_dropped - start.frames_dropped,
            frames_inserted: end.frames_inserted - start.frames_inserted,
            underrun_frames: end.underrun_frames - start.underrun_frames,
            lost: end.lost - start.lost,
            ..end
        };

        let steady = &sim.delays[500..];
        let max = steady.iter().map(|d| d.1).fold(0.0, f64::max);
        let min = steady.iter().map(|d| d.1).fold(f64::MAX, f64::min);
        assert!(max < 80.0 && min > 0.0, "delay range {min}..{max}, {s:?}");
        // 600 s at 100 ppm is 60 ms = 3 frames to drop (fast sender) or insert (slow).
        let net = s.frames_dropped as i64 - s.frames_inserted as i64;
        let want = (ppm * 1e-6 * 600_000.0 / 20.0).round() as i64;
        assert!(
            (net - want).abs() <= 1,
            "net drops {net}, want {want}: {s:?}"
        );
        assert!(s.frames_dropped + s.frames_inserted <= 6, "hunting: {s:?}");
        assert_eq!((s.underrun_frames, s.lost), (0, 0), "{s:?}");
        let p = played(&outs);
        assert_increasing(&p);
        assert!(p.len() as f64 > 0.99 * outs.len() as f64);
    }

    #[test]
    fn sender_clock_100_ppm_fast() {
        check_drift(100.0);
    }

    #[test]
    fn sender_clock_100_ppm_slow() {
        check_drift(-100.0);
    }

    #[test]
    fn drift_without_adjustment_is_still_bounded() {
        // Nobody serves the hooks: a fast sender fills the buffer until the capacity limit
        // resyncs it; a slow one underruns. Neither grows without bound or panics.
        for ppm in [1000.0, -1000.0] {
            let mut sim = Sim::new(JitterConfig::default());
            sim.auto_adjust = false;
            sim.ppm = ppm;
            sim.run(120.0, &mut |_, _| Some(30_000));
            let max = sim.delays.iter().map(|d| d.1).fold(0.0, f64::max);
            assert!(max < 2000.0, "{ppm}: {max}");
        }
    }

    #[test]
    fn dtx_gap_is_not_loss() {
        let mut sim = Sim::new(JitterConfig::default());
        // From packet 100 on, the sender was quiet for 400 ms (DTX): sequence numbers go on
        // while timestamps (and sending) jump 20 frames.
        sim.dtx = Some((100, 20));
        let outs = sim.run(6.0, &mut |_, _| Some(30_000));
        let s = sim.jb.stats();
        assert_eq!((s.lost, s.fec_frames, s.late), (0, 0, 0), "{s:?}");
        let p = played(&outs);
        assert_increasing(&p);
        // After the start-up shrink (60 ms initial delay down to the 20 ms target) every
        // packet plays, the DTX gap included.
        let settled: Vec<u32> = p.iter().copied().filter(|&i| i >= 50).collect();
        assert_eq!(settled.windows(2).filter(|w| w[1] != w[0] + 1).count(), 0);
        // The gap plays as concealment (comfort noise), about as long as it was.
        let before = outs.iter().position(|o| *o == Out::Packet(99)).unwrap();
        let after = outs.iter().position(|o| *o == Out::Packet(100)).unwrap();
        let gap = &outs[before + 1..after];
        assert!(
            gap.iter()
                .all(|o| matches!(o, Out::Conceal | Out::Inserted))
        );
        assert!((18..=22).contains(&gap.len()), "{}", gap.len());
    }

    #[test]
    fn stream_stop_gives_silence_and_restart_reanchors() {
        let mut sim = Sim::new(JitterConfig::default());
        sim.run(3.0, &mut |_, _| Some(30_000));
        // Nothing for 3 s, then the stream resumes with a new sequence and time base.
        let outs = sim.run(3.0, &mut |_, _| None);
        assert!(outs[outs.len() - 50..].iter().all(|o| *o == Out::Silence));
        assert!(!sim.jb.is_playing());
        sim.seq0 = sim.seq0.wrapping_add(5000);
        sim.ts0 = sim.ts0.wrapping_add(77_777_777);
        let outs = sim.run(3.0, &mut |_, _| Some(30_000));
        assert!(sim.jb.is_playing());
        let p = played(&outs);
        assert!(p.len() > 130, "{}", p.len());
        assert_increasing(&p);
        assert!(sim.jb.stats().resyncs >= 1);
    }

    #[test]
    fn stray_packet_is_ignored_but_a_new_stream_is_followed() {
        let mut sim = Sim::new(JitterConfig::default());
        sim.run(2.0, &mut |_, _| Some(30_000));
        let t = sim.pops * FRAME_US;
        // One stray packet from far away: dropped, playout goes on untouched.
        let stray = sim
            .jb
            .push(sim.at(t), sim.seq0.wrapping_add(30_000), 5, &[1, 2, 3, 4]);
        assert_eq!(stray, Pushed::OutOfRange);
        let outs = sim.run(2.0, &mut |_, _| Some(30_000));
        assert!(outs.iter().all(|o| matches!(o, Out::Packet(_))));
        assert_eq!(sim.jb.stats().resyncs, 0);
        // The sender restarts its sequence numbers: after one packet of probation the new
        // stream plays.
        sim.seq0 = sim.seq0.wrapping_add(20_000);
        let outs = sim.run(2.0, &mut |_, _| Some(30_000));
        let s = sim.jb.stats();
        assert_eq!(s.resyncs, 1, "{s:?}");
        assert!(played(&outs).len() > 90);
        assert_increasing(&played(&outs));
    }

    #[test]
    fn ten_millisecond_frames() {
        let cfg = JitterConfig {
            frame: FrameDuration::Ms10,
            ..JitterConfig::default()
        };
        let mut jb = JitterBuffer::new(cfg).unwrap();
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        let mut played = Vec::new();
        // Packets every 10 ms (timestamp step 480), pairs swapped on the way; pops every 10 ms.
        for k in 0..1000u64 {
            let i = if k % 2 == 0 { k + 1 } else { k - 1 };
            let arrival = k * 10_000 + 25_000;
            jb.push(
                at(arrival),
                i as u16,
                (i * 480) as u32,
                &(i as u32).to_le_bytes(),
            );
            if let PlayoutFrame::Packet(p) = jb.pop(at(k * 10_000 + 28_000)) {
                played.push(index_of(p));
            }
        }
        assert_increasing(&played);
        assert!(played.len() > 980, "{}", played.len());
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.underrun_frames), (0, 0, 0), "{s:?}");
    }

    #[test]
    fn unwrap_helpers() {
        assert_eq!(extend_seq(65_535, 0), 65_536);
        assert_eq!(extend_seq(65_536, 65_535), 65_535);
        assert_eq!(extend_seq(10, 5), 5);
        assert_eq!(extend_ts(u32::MAX as i64, 100), u32::MAX as i64 + 101);
        assert_eq!(extend_ts(5, u32::MAX), -1);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Push { seq: u16, ts: u32, len: usize },
            Near { dseq: i16, dts: i32 },
            Pop,
            Wait(u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (any::<u16>(), any::<u32>(), 0usize..2000).prop_map(|(seq, ts, len)| Op::Push {
                    seq,
                    ts,
                    len
                }),
                (-40i16..40, -40_000i32..40_000).prop_map(|(dseq, dts)| Op::Near { dseq, dts }),
                Just(Op::Pop),
                Just(Op::Pop),
                (0u32..3_000_000).prop_map(Op::Wait),
            ]
        }

        proptest! {
            #[test]
            fn arbitrary_input_never_panics(ops in proptest::collection::vec(op(), 1..400)) {
                let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
                let t0 = Instant::now();
                let mut t = 0u64;
                let (mut seq, mut ts) = (0u16, 0u32);
                let mut played = std::collections::HashSet::new();
                for op in ops {
                    let now = t0 + Duration::from_micros(t);
                    match op {
                        Op::Push { seq: s, ts: x, len } => {
                            seq = s;
                            ts = x;
                            let mut p = vec![0u8; len];
                            if len >= 6 {
                                p[..2].copy_from_slice(&s.to_le_bytes());
                                p[2..6].copy_from_slice(&x.to_le_bytes());
                            }
                            jb.push(now, s, x, &p);
                        }
                        Op::Near { dseq, dts } => {
                            seq = seq.wrapping_add(dseq as u16);
                            ts = ts.wrapping_add(dts as u32);
                            let mut p = vec![0u8; 6];
                            p[..2].copy_from_slice(&seq.to_le_bytes());
                            p[2..6].copy_from_slice(&ts.to_le_bytes());
                            jb.push(now, seq, ts, &p);
                        }
                        Op::Pop => {
                            if let PlayoutFrame::Packet(p) = jb.pop(now) {
                                prop_assert!(!p.is_empty());
                                if p.len() >= 6 {
                                    let _ = played.insert(p[..6].to_vec());
                                }
                            }
                            t += 20_000;
                        }
                        Op::Wait(us) => t += us as u64,
                    }
                    let _ = jb.adjustment(now);
                    let s = jb.stats();
                    prop_assert!(s.current_delay_ms.is_finite() && s.target_delay_ms.is_finite());
                    prop_assert!(s.target_delay_ms >= 15.0 && s.target_delay_ms <= 400.0);
                }
            }
        }
    }
}

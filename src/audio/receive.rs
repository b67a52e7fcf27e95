//! The decoding side of one received Opus stream: a [`JitterBuffer`] in front of an Opus
//! decoder (48 kHz mono), giving one frame of PCM per frame period, sans-IO.
//!
//! Run loop (the codec thread, or a headless peer's media clock):
//! ```text
//! on packet:          rx.push_opus(now, rtp_ts, &payload);
//! every clock period: rx.pull(now, &mut frame);   // 960 samples for 20 ms, 480 for 10 ms
//! ```
//! The stream's frame period follows what arrives: Opus packets say their own duration, and
//! a stream of 10 ms packets switches the receiver to 10 ms frames (and back), starting the
//! jitter buffer afresh. The clock that pulls need not match it: a 10 ms clock plays half a
//! 20 ms frame per call, a 20 ms clock two 10 ms frames.
//!
//! Each frame is decoded normally, rebuilt from the next packet's in-band FEC when its own
//! packet was lost, or concealed (PLC) when neither is there; a payload the decoder rejects is
//! concealed too. This is also where the buffer's delay is corrected (its `adjustment` hooks):
//! above target, a frame that decodes to silence is skipped; below target, a concealment frame
//! is inserted right after a silent one. If no silent frame comes for `force_after_ms`, a
//! frame is dropped by crossfading it into the next one, or inserted as one frame of PLC (as
//! for a single lost packet), at most one per `forced_interval_ms`: never a hard cut, so never
//! a click.

use std::time::{Duration, Instant};

use super::jitter::{
    Adjustment, FrameDuration, JitterBuffer, JitterConfig, JitterError, JitterStats, PlayoutFrame,
    Pushed,
};
use super::tone::rms_dbfs;

/// The decoder's output rate; RTP for Opus always runs at 48 kHz.
pub const SAMPLE_RATE_HZ: u32 = 48_000;
/// The longest frame period a stream may have (20 ms).
const MAX_FRAME_LEN: usize = 960;

/// Settings of an [`AudioReceiver`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    /// The jitter buffer's settings (frame period, delay range, FEC).
    pub jitter: JitterConfig,
    /// Frames below this RMS level always count as silence (where delay is adjusted).
    pub silence_dbfs: f32,
    /// After wanting an adjustment this long without a silent frame, adjust anyway.
    pub force_after_ms: u32,
    /// While forcing, at most one adjustment per this interval.
    pub forced_interval_ms: u32,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            jitter: JitterConfig::default(),
            silence_dbfs: -45.0,
            force_after_ms: 3000,
            forced_interval_ms: 200,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error(transparent)]
    Jitter(#[from] JitterError),
    #[error("opus decoder: {0}")]
    Decoder(#[from] opus::Error),
}

/// What `pull_frame` put into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pulled {
    Decoded,
    /// Rebuilt from the next packet's in-band FEC.
    FecRecovered,
    /// Packet-loss concealment (also for a payload the decoder rejected).
    Concealed,
    /// Nothing is playing.
    Silence,
    /// A concealment frame inserted to grow the delay.
    Inserted,
    /// `out` was not one frame long; it was filled with zeros and nothing was consumed.
    WrongLength,
}

impl Pulled {
    /// The worse of two outcomes for one stretch of audio.
    fn worse(self, other: Pulled) -> Pulled {
        fn rank(p: Pulled) -> u8 {
            match p {
                Pulled::Silence => 0,
                Pulled::Decoded => 1,
                Pulled::FecRecovered => 2,
                Pulled::Inserted => 3,
                Pulled::Concealed => 4,
                Pulled::WrongLength => 5,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// Decoder-side counters on top of the jitter buffer's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReceiverStats {
    /// The jitter buffer's own counters and delays.
    pub jitter: JitterStats,
    /// Payloads the decoder rejected (played as concealment).
    pub decode_errors: u64,
    /// Times the stream's frame period changed (10 ms and 20 ms packets).
    pub frame_period_changes: u64,
    /// Silent frames skipped to shrink the delay.
    pub silent_drops: u64,
    /// Concealment frames inserted after a silent frame to grow the delay.
    pub silent_inserts: u64,
    /// Crossfaded drops when no silence came in time.
    pub forced_drops: u64,
    /// PLC insertions when no silence came in time.
    pub forced_inserts: u64,
}

/// Jitter buffer + Opus decoder for one stream. See the module documentation.
pub struct AudioReceiver {
    cfg: ReceiverConfig,
    /// Orders packets and decides what each frame period plays.
    jb: JitterBuffer,
    /// 48 kHz mono; its state carries across frames (PLC and FEC rely on it).
    decoder: opus::Decoder,
    /// Samples per frame (960 for 20 ms).
    frame_len: usize,
    /// Second frame for crossfaded drops (allocated once).
    scratch: Vec<f32>,
    /// The frame `pull` is handing out in parts (a clock period shorter than the frame):
    /// samples from `carry_pos` on are still to be played; `carry_kind` is how it was made.
    carry: Vec<f32>,
    carry_pos: usize,
    carry_kind: Pulled,
    /// Conversion buffer for `pull_frame_i16` (allocated once).
    pcm: Vec<f32>,
    /// Whether the last frame played was silent: an insertion may follow it unheard.
    last_silent: bool,
    /// Slowly rising minimum of frame levels (dBFS): background noise counts as silence.
    noise_floor_db: f32,
    /// The adjustment currently wanted and since when (for forcing).
    wanted: Adjustment,
    wanted_since: Option<Instant>,
    /// When the last forced adjustment happened (they are spaced out).
    last_forced: Option<Instant>,
    /// Decoder-side counters (the buffer's are merged in by `stats`).
    stats: ReceiverStats,
}

impl AudioReceiver {
    /// Noise floor rise per frame (2.5 dB/s at 20 ms).
    const FLOOR_RISE_DB: f32 = 0.05;
    /// Frames within this much of the noise floor are background.
    const FLOOR_MARGIN_DB: f32 = 4.0;
    /// Never call anything louder than this silence, however loud the "floor" (a steady tone
    /// or music is not background).
    const FLOOR_CAP_DBFS: f32 = -30.0;

    pub fn new(cfg: ReceiverConfig) -> Result<Self, ReceiveError> {
        let jb = JitterBuffer::new(cfg.jitter.clone())?;
        let decoder = opus::Decoder::new(SAMPLE_RATE_HZ, opus::Channels::Mono)?;
        let frame_len = cfg.jitter.frame.samples();
        Ok(AudioReceiver {
            jb,
            decoder,
            frame_len,
            scratch: vec![0.0; frame_len],
            carry: Vec::with_capacity(MAX_FRAME_LEN),
            carry_pos: 0,
            carry_kind: Pulled::Silence,
            pcm: vec![0.0; frame_len],
            last_silent: true,
            noise_floor_db: -60.0,
            wanted: Adjustment::Keep,
            wanted_since: None,
            last_forced: None,
            stats: ReceiverStats::default(),
            cfg,
        })
    }

    /// The default receiver: 20 ms frames, 20-400 ms delay, FEC on.
    pub fn new_20ms() -> Result<Self, opus::Error> {
        match Self::new(ReceiverConfig::default()) {
            Ok(rx) => Ok(rx),
            Err(ReceiveError::Decoder(e)) => Err(e),
            // Invariant: the default jitter configuration is valid (tested below).
            Err(ReceiveError::Jitter(e)) => unreachable!("default jitter config rejected: {e}"),
        }
    }

    /// Samples per frame (960 for 20 ms).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    pub fn stats(&self) -> ReceiverStats {
        ReceiverStats {
            jitter: self.jb.stats(),
            ..self.stats
        }
    }

    pub fn jitter_buffer(&self) -> &JitterBuffer {
        &self.jb
    }

    /// The far end stopped sending (see [`JitterBuffer::stop`]): forgets the stream now and
    /// drops what of it is still in flight.
    pub fn stop(&mut self, now: Instant) {
        self.jb.stop(now);
        self.forget_decoding();
    }

    /// Forgets the stream (new SSRC); the decoder state is reset too.
    pub fn reset(&mut self) {
        self.jb.reset();
        self.forget_decoding();
    }

    /// The decoder and the time-stretch state, which belong to the stream being forgotten.
    fn forget_decoding(&mut self) {
        // A failed reset leaves the old state, which the next packets overwrite anyway.
        let _ = self.decoder.reset_state();
        self.last_silent = true;
        self.wanted = Adjustment::Keep;
        self.wanted_since = None;
        self.carry.clear();
        self.carry_pos = 0;
    }

    /// Takes in one arrived RTP packet's Opus payload, with a sequence number of one step per
    /// frame. The frame period is the configured one; see [`Self::push_opus`] for a stream
    /// that sets its own.
    pub fn push_packet(&mut self, now: Instant, seq: u16, rtp_ts: u32, payload: &[u8]) -> Pushed {
        self.jb.push(now, seq, rtp_ts, payload)
    }

    /// Takes in one arrived Opus frame by its RTP time. The frame index is derived from the
    /// timestamp, not the RTP sequence number: a bridge that re-packetizes what it forwards
    /// has no gaps in its sequence numbers where the sender's packets were lost, while the
    /// timestamps keep them. A packet whose duration (10 or 20 ms, read from the Opus TOC)
    /// differs from the current frame period switches the receiver to it.
    pub fn push_opus(&mut self, now: Instant, rtp_ts: u32, payload: &[u8]) -> Pushed {
        self.follow_frame_period(payload);
        let index = self.frame_index(rtp_ts);
        self.jb.push(now, index, rtp_ts, payload)
    }

    /// A copy of an earlier frame (RFC 2198 RED redundancy), by its RTP time; it only fills a
    /// hole (see [`Self::push_redundant`]).
    pub fn push_opus_redundant(&mut self, now: Instant, rtp_ts: u32, payload: &[u8]) -> Pushed {
        let index = self.frame_index(rtp_ts);
        self.jb.push_redundant(now, index, rtp_ts, payload)
    }

    /// The jitter buffer's sequence number for the frame at `rtp_ts`.
    fn frame_index(&self, rtp_ts: u32) -> u16 {
        (rtp_ts / self.frame_len as u32) as u16
    }

    /// Switches the frame period to a packet's duration when it is another supported one.
    fn follow_frame_period(&mut self, payload: &[u8]) {
        let frame = match opus::packet::get_nb_samples(payload, SAMPLE_RATE_HZ) {
            Ok(480) => FrameDuration::Ms10,
            Ok(960) => FrameDuration::Ms20,
            // Other durations (and payloads Opus cannot read) are left to the decoder.
            _ => return,
        };
        if frame == self.cfg.jitter.frame {
            return;
        }
        self.cfg.jitter.frame = frame;
        self.jb.set_frame(frame);
        self.frame_len = frame.samples();
        self.scratch.resize(self.frame_len, 0.0);
        self.pcm.resize(self.frame_len, 0.0);
        self.last_silent = true;
        self.wanted = Adjustment::Keep;
        self.wanted_since = None;
        self.stats.frame_period_changes += 1;
    }

    /// Fills `out` with the next `out.len()` samples of 48 kHz mono PCM, whatever the
    /// stream's frame period: frames are pulled as needed and a part left over is played by
    /// the next call. Returns how the frames it played from were made (the worst of them:
    /// concealment over insertion over FEC over decoding over silence).
    pub fn pull(&mut self, now: Instant, out: &mut [f32]) -> Pulled {
        let mut filled = 0;
        let mut kind = None;
        while filled < out.len() {
            if self.carry_pos >= self.carry.len() {
                let mut frame = std::mem::take(&mut self.carry);
                frame.clear();
                frame.resize(self.frame_len, 0.0);
                let last = out.len() - filled <= self.frame_len;
                self.carry_kind = self.pull_one(now, &mut frame, last);
                self.carry = frame;
                self.carry_pos = 0;
            }
            let n = (out.len() - filled).min(self.carry.len() - self.carry_pos);
            out[filled..filled + n]
                .copy_from_slice(&self.carry[self.carry_pos..self.carry_pos + n]);
            filled += n;
            self.carry_pos += n;
            kind = Some(kind.map_or(self.carry_kind, |k: Pulled| k.worse(self.carry_kind)));
        }
        kind.unwrap_or(Pulled::Silence)
    }

    /// A frame that a later packet carried again (RFC 2198 RED); see
    /// [`JitterBuffer::push_redundant`](crate::audio::jitter::JitterBuffer::push_redundant).
    pub fn push_redundant(
        &mut self,
        now: Instant,
        seq: u16,
        rtp_ts: u32,
        payload: &[u8],
    ) -> Pushed {
        self.jb.push_redundant(now, seq, rtp_ts, payload)
    }

    /// Fills `out` (exactly one frame) with the next frame of 48 kHz mono PCM.
    pub fn pull_frame(&mut self, now: Instant, out: &mut [f32]) -> Pulled {
        self.pull_one(now, out, true)
    }

    /// One frame; the delay is corrected only where `may_adjust`. A clock that takes several
    /// frames at once adjusts on the last of them only: the earlier ones are played before
    /// it, so their delay looks one frame larger than it is, and correcting by that would
    /// starve the last one.
    fn pull_one(&mut self, now: Instant, out: &mut [f32], may_adjust: bool) -> Pulled {
        if out.len() != self.frame_len {
            out.fill(0.0);
            return Pulled::WrongLength;
        }
        let adj = if may_adjust {
            self.jb.adjustment(now)
        } else {
            Adjustment::Keep
        };
        if adj != self.wanted {
            self.wanted = adj;
            self.wanted_since = (adj != Adjustment::Keep).then_some(now);
        }
        let forced = self.may_force(now);

        if adj == Adjustment::Grow && (self.last_silent || forced) {
            self.conceal(out);
            self.jb.mark_inserted();
            if self.last_silent {
                self.stats.silent_inserts += 1;
            } else {
                self.stats.forced_inserts += 1;
                self.last_forced = Some(now);
            }
            self.after_frame(out);
            return Pulled::Inserted;
        }

        let mut kind = self.decode_next(now, out);
        if adj == Adjustment::Shrink {
            if self.is_silent(out) {
                self.jb.mark_dropped();
                self.stats.silent_drops += 1;
                kind = self.decode_next(now, out);
            } else if forced {
                let mut next = std::mem::take(&mut self.scratch);
                kind = self.decode_next(now, &mut next);
                crossfade(out, &next);
                self.scratch = next;
                self.jb.mark_dropped();
                self.stats.forced_drops += 1;
                self.last_forced = Some(now);
            }
        }
        self.after_frame(out);
        kind
    }

    /// Like [`Self::pull_frame`], for 16-bit output.
    pub fn pull_frame_i16(&mut self, now: Instant, out: &mut [i16]) -> Pulled {
        if out.len() != self.frame_len {
            out.fill(0);
            return Pulled::WrongLength;
        }
        let mut pcm = std::mem::take(&mut self.pcm);
        let kind = self.pull_frame(now, &mut pcm);
        for (o, s) in out.iter_mut().zip(&pcm) {
            *o = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        }
        self.pcm = pcm;
        kind
    }

    fn may_force(&self, now: Instant) -> bool {
        let force_after = Duration::from_millis(self.cfg.force_after_ms as u64);
        let interval = Duration::from_millis(self.cfg.forced_interval_ms as u64);
        self.wanted_since
            .is_some_and(|t| now.saturating_duration_since(t) >= force_after)
            && self
                .last_forced
                .is_none_or(|t| now.saturating_duration_since(t) >= interval)
    }

    /// Pops one frame from the jitter buffer and decodes it into `out`.
    fn decode_next(&mut self, now: Instant, out: &mut [f32]) -> Pulled {
        match self.jb.pop(now) {
            PlayoutFrame::Packet(p) => match self.decoder.decode_float(p, out, false) {
                Ok(n) if n >= out.len() => Pulled::Decoded,
                Ok(n) => {
                    // A shorter packet than the frame period: conceal the rest.
                    if self
                        .decoder
                        .decode_float(&[], &mut out[n..], false)
                        .is_err()
                    {
                        out[n..].fill(0.0);
                    }
                    Pulled::Decoded
                }
                Err(_) => {
                    self.stats.decode_errors += 1;
                    self.conceal(out);
                    Pulled::Concealed
                }
            },
            PlayoutFrame::Fec(next) => match self.decoder.decode_float(next, out, true) {
                Ok(_) => Pulled::FecRecovered,
                Err(_) => {
                    self.stats.decode_errors += 1;
                    self.conceal(out);
                    Pulled::Concealed
                }
            },
            PlayoutFrame::Conceal => {
                self.conceal(out);
                Pulled::Concealed
            }
            PlayoutFrame::Silence => {
                out.fill(0.0);
                Pulled::Silence
            }
        }
    }

    fn conceal(&mut self, out: &mut [f32]) {
        if self.decoder.decode_float(&[], out, false).is_err() {
            out.fill(0.0);
        }
    }

    fn is_silent(&self, frame: &[f32]) -> bool {
        let level = rms_dbfs(frame);
        let background = (self.noise_floor_db + Self::FLOOR_MARGIN_DB).min(Self::FLOOR_CAP_DBFS);
        level < self.cfg.silence_dbfs.max(background)
    }

    /// Bookkeeping after a frame was produced: silence flag and noise floor.
    fn after_frame(&mut self, out: &mut [f32]) {
        for s in out.iter_mut() {
            if !s.is_finite() {
                *s = 0.0;
            }
        }
        self.last_silent = self.is_silent(out);
        let level = rms_dbfs(out);
        self.noise_floor_db = if level < self.noise_floor_db {
            level
        } else {
            (self.noise_floor_db + Self::FLOOR_RISE_DB).min(0.0)
        };
    }
}

/// Replaces `out` by a raised-cosine crossfade from `out` (start) into `next` (end): the
/// result begins where the previous frame ended and ends where the frame after `next` begins.
fn crossfade(out: &mut [f32], next: &[f32]) {
    let n = out.len().min(next.len());
    for (i, (o, &x)) in out.iter_mut().zip(next).enumerate() {
        let w = 0.5 - 0.5 * (std::f32::consts::PI * (i as f32 + 0.5) / n as f32).cos();
        *o = *o * (1.0 - w) + x * w;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tone::test_signals::{Rng, sine, speech_like, wav_mono16};
    use super::*;

    const FRAME: usize = 960;

    fn encoder() -> opus::Encoder {
        let mut enc = opus::Encoder::new(
            SAMPLE_RATE_HZ,
            opus::Channels::Mono,
            opus::Application::Voip,
        )
        .unwrap();
        enc.set_inband_fec(true).unwrap();
        enc.set_packet_loss_perc(10).unwrap();
        enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
        enc
    }

    fn encode(signal: &[f32]) -> (Vec<Vec<u8>>, usize) {
        let mut enc = encoder();
        let lookahead = enc.get_lookahead().unwrap() as usize;
        let mut buf = [0u8; 1500];
        let packets = signal
            .chunks(FRAME)
            .map(|c| {
                let mut f = [0f32; FRAME];
                f[..c.len()].copy_from_slice(c);
                let n = enc.encode_float(&f, &mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect();
        (packets, lookahead)
    }

    /// Plays `packets` through a receiver: sent every 20 ms (clock off by `ppm`), 30 ms of
    /// transit plus 0-10 ms of jitter, `lost(i)` dropped; pulled every 20 ms.
    fn play(
        rx: &mut AudioReceiver,
        packets: &[Vec<u8>],
        ppm: f64,
        lost: &dyn Fn(usize) -> bool,
        extra_frames: usize,
    ) -> (Vec<f32>, Vec<Pulled>) {
        let t0 = Instant::now();
        let mut rng = Rng(42);
        let mut arrivals: Vec<(u64, usize)> = (0..packets.len())
            .filter(|&i| !lost(i))
            .map(|i| {
                let send = (i as f64 * 20_000.0 / (1.0 + ppm * 1e-6)) as u64;
                (send + 30_000 + (rng.unit() * 10_000.0) as u64, i)
            })
            .collect();
        arrivals.sort();
        let mut next = 0;
        let mut out = Vec::new();
        let mut kinds = Vec::new();
        let mut frame = [0f32; FRAME];
        for k in 0..packets.len() + extra_frames {
            let t = k as u64 * 20_000 + 7_000;
            while next < arrivals.len() && arrivals[next].0 <= t {
                let (at, i) = arrivals[next];
                let now = t0 + Duration::from_micros(at);
                rx.push_packet(now, i as u16, (i * FRAME) as u32, &packets[i]);
                next += 1;
            }
            kinds.push(rx.pull_frame(t0 + Duration::from_micros(t), &mut frame));
            out.extend_from_slice(&frame);
        }
        (out, kinds)
    }

    /// Normalised correlation of `a` and `b` (same length).
    fn correlation(a: &[f32], b: &[f32]) -> f64 {
        let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
        for (&x, &y) in a.iter().zip(b) {
            ab += x as f64 * y as f64;
            aa += x as f64 * x as f64;
            bb += y as f64 * y as f64;
        }
        ab / (aa * bb).sqrt().max(1e-12)
    }

    /// The output offset (whole frames of buffer delay plus the codec's look-ahead) at which
    /// `original[range]` best matches `out`.
    fn best_offset(
        original: &[f32],
        out: &[f32],
        range: std::ops::Range<usize>,
        la: usize,
    ) -> (usize, f64) {
        (0..25)
            .map(|m| {
                let off = m * FRAME + la;
                let end = (range.end + off).min(out.len());
                let n = end.saturating_sub(range.start + off);
                let c = correlation(
                    &original[range.start..range.start + n],
                    &out[range.start + off..end],
                );
                (off, c)
            })
            .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best })
    }

    /// 2 s of a 440 Hz tone, then the two spoken prompts from `sounds/` (espeak-ng speech,
    /// about 7.6 s). Real speech matters here: libopus codes FEC only for frames its voice
    /// detector calls active, so a lost frame of a bare tone or a synthetic buzz is concealed
    /// (PLC) even with FEC on.
    fn test_signal() -> Vec<f32> {
        let mut s = sine(440.0, 0.3, SAMPLE_RATE_HZ, 2 * 48_000);
        for wav in [
            &include_bytes!("../../sounds/queue-prompt.wav")[..],
            &include_bytes!("../../sounds/survey-prompt.wav")[..],
        ] {
            let (rate, samples) = wav_mono16(wav);
            assert_eq!(rate, SAMPLE_RATE_HZ);
            s.extend(samples);
        }
        s
    }

    /// Where the comparisons look: the speech, after the start-up delay has settled.
    const EVAL: std::ops::Range<usize> = 3 * 48_000..9 * 48_000;

    /// Independent 10 % loss (deterministic), sparing the first packets.
    fn ten_percent_loss(i: usize) -> bool {
        let mut rng = Rng(0x5EED ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for _ in 0..3 {
            rng.next_u64();
        }
        i > 10 && rng.unit() < 0.1
    }

    #[test]
    fn default_config_is_valid() {
        assert!(AudioReceiver::new_20ms().is_ok());
        assert_eq!(AudioReceiver::new_20ms().unwrap().frame_len(), 960);
    }

    #[test]
    fn fec_recovers_lost_packets_without_holes() {
        let signal = test_signal();
        let (packets, la) = encode(&signal);
        let mut rx = AudioReceiver::new(ReceiverConfig::default()).unwrap();
        let (out, kinds) = play(&mut rx, &packets, 0.0, &ten_percent_loss, 20);
        let lost = (0..packets.len()).filter(|&i| ten_percent_loss(i)).count() as u64;
        let s = rx.stats();

        assert_eq!(s.jitter.lost, lost);
        assert_eq!(s.decode_errors, 0);
        // Most losses are single ones, each rebuilt from the next packet's FEC.
        assert!(s.jitter.fec_frames as f64 >= 0.8 * lost as f64, "{s:?}");
        // Every FEC frame is reported as recovered, except one that a delay shrink dropped.
        let recovered = kinds.iter().filter(|k| **k == Pulled::FecRecovered).count() as u64;
        assert!(recovered <= s.jitter.fec_frames, "{recovered} > {s:?}");
        assert!(
            recovered + s.silent_drops + s.forced_drops >= s.jitter.fec_frames,
            "{recovered} {s:?}"
        );

        // Recognisably the same speech despite 10 % loss: correlation over the evaluated
        // stretch, each second aligned on its own (a clean run gives ~0.9).
        let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
        let mut worst_speech_db = f32::MAX;
        for sec in EVAL.step_by(48_000) {
            let (off, _) = best_offset(&signal, &out, sec..sec + 48_000, la);
            let orig = &signal[sec..sec + 48_000];
            let got = &out[sec + off..sec + off + 48_000];
            for (&x, &y) in orig.iter().zip(got) {
                ab += x as f64 * y as f64;
                aa += x as f64 * x as f64;
                bb += y as f64 * y as f64;
            }
            // No holes where there is speech: no frame far below the input's level.
            for (o, g) in orig.chunks(FRAME).zip(got.chunks(FRAME)) {
                if rms_dbfs(o) > -35.0 {
                    worst_speech_db = worst_speech_db.min(rms_dbfs(g) - rms_dbfs(o));
                }
            }
        }
        let c = ab / (aa * bb).sqrt();
        assert!(c > 0.75, "correlation {c:.3}");
        assert!(
            worst_speech_db > -12.0,
            "speech frame {worst_speech_db:.1} dB below the input"
        );
        // The tone has no FEC (not speech to libopus): concealment may dip, never to a hole.
        let tone_db = rms_dbfs(&signal[..48_000]);
        for f in out[10 * FRAME..80 * FRAME].chunks(FRAME) {
            assert!(
                rms_dbfs(f) > tone_db - 20.0,
                "hole in the tone: {:.1} dBFS",
                rms_dbfs(f)
            );
        }
    }

    #[test]
    fn fec_beats_concealment_on_lost_frames() {
        let signal = test_signal();
        let (packets, la) = encode(&signal);
        let run = |use_fec: bool, lossy: bool| {
            let cfg = ReceiverConfig {
                jitter: JitterConfig {
                    use_fec,
                    ..JitterConfig::default()
                },
                ..ReceiverConfig::default()
            };
            let mut rx = AudioReceiver::new(cfg).unwrap();
            let (out, _) = play(
                &mut rx,
                &packets,
                0.0,
                &|i| lossy && ten_percent_loss(i),
                20,
            );
            let mut corrs = Vec::new();
            let (mut sig, mut err) = (0.0f64, 0.0f64);
            for sec in EVAL.step_by(48_000) {
                let (off, _) = best_offset(&signal, &out, sec..sec + 48_000, la);
                for i in (sec / FRAME..sec / FRAME + 50).filter(|&i| ten_percent_loss(i)) {
                    let orig = &signal[i * FRAME..(i + 1) * FRAME];
                    if rms_dbfs(orig) < -35.0 {
                        continue;
                    }
                    let got = &out[i * FRAME + off..(i + 1) * FRAME + off];
                    corrs.push(correlation(orig, got));
                    for (x, y) in orig.iter().zip(got) {
                        sig += (*x as f64).powi(2);
                        err += (*x as f64 - *y as f64).powi(2);
                    }
                }
            }
            let mean = corrs.iter().sum::<f64>() / corrs.len() as f64;
            (mean, 10.0 * (sig / err).log10(), corrs.len())
        };
        // (mean per-frame correlation, SNR dB, frames): clean ~0.84, FEC ~0.67, PLC ~0.43.
        let (fec, plc, clean) = (run(true, true), run(false, true), run(true, false));
        assert!(fec.2 >= 20, "too few lost speech frames to judge: {fec:?}");
        assert!(
            fec.0 > plc.0 + 0.1,
            "FEC {fec:?} vs PLC {plc:?} on lost frames"
        );
        assert!(
            clean.0 > fec.0,
            "a clean run {clean:?} should beat FEC {fec:?}"
        );
    }

    #[test]
    fn garbage_payloads_become_concealment() {
        let mut rx = AudioReceiver::new_20ms().unwrap();
        let t0 = Instant::now();
        let mut rng = Rng(3);
        let mut frame = [0f32; FRAME];
        for i in 0..500u32 {
            let len = 1 + (rng.next_u64() % 300) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let now = t0 + Duration::from_millis(i as u64 * 20);
            rx.push_packet(now, i as u16, i * 960, &payload);
            let _ = rx.pull_frame(now, &mut frame);
            assert!(frame.iter().all(|s| s.is_finite()));
        }
        // Empty and oversized payloads are refused before the decoder.
        assert_eq!(rx.push_packet(t0, 9, 0, &[]), Pushed::Invalid);
        assert_eq!(rx.push_packet(t0, 9, 0, &[0; 5000]), Pushed::Invalid);
        assert!(rx.stats().decode_errors > 0);
    }

    #[test]
    fn wrong_length_and_silence_before_first_packet() {
        let mut rx = AudioReceiver::new_20ms().unwrap();
        let now = Instant::now();
        let mut short = [1f32; 100];
        assert_eq!(rx.pull_frame(now, &mut short), Pulled::WrongLength);
        assert!(short.iter().all(|&s| s == 0.0));
        let mut frame = [1f32; FRAME];
        assert_eq!(rx.pull_frame(now, &mut frame), Pulled::Silence);
        assert!(frame.iter().all(|&s| s == 0.0));
        let mut pcm = [1i16; FRAME];
        assert_eq!(rx.pull_frame_i16(now, &mut pcm), Pulled::Silence);
        assert!(pcm.iter().all(|&s| s == 0));
    }

    #[test]
    fn drift_is_absorbed_in_silence() {
        // Speech with pauses from a sender 1000 ppm fast: 60 ms too much in a minute.
        let signal = speech_like(SAMPLE_RATE_HZ, 60 * 48_000, 9, true);
        let (packets, _) = encode(&signal);
        let mut rx = AudioReceiver::new_20ms().unwrap();
        let (out, _) = play(&mut rx, &packets, 1000.0, &|_| false, 0);
        let s = rx.stats();
        assert!(s.silent_drops >= 3, "{s:?}");
        assert_eq!(s.forced_drops, 0, "{s:?}");
        assert!(s.jitter.current_delay_ms < 80.0, "{s:?}");
        assert!(out.iter().all(|v| v.is_finite()));
    }

    /// Largest sample-to-sample step, a crude click detector.
    fn max_step(x: &[f32]) -> f32 {
        x.windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn drift_without_silence_is_crossfaded_not_clicked() {
        // A continuous tone never pauses: after the grace period frames are crossfaded out
        // (fast sender) or concealment is inserted (slow sender) without clicks.
        let signal = sine(440.0, 0.4, SAMPLE_RATE_HZ, 80 * 48_000);
        let (packets, _) = encode(&signal);
        let clean_step = 0.4 * std::f32::consts::TAU * 440.0 / SAMPLE_RATE_HZ as f32;
        // 500 ppm for 80 s is 40 ms: at least one forced adjustment each way (the start-up
        // delay absorbs part of it).
        for ppm in [500.0, -500.0] {
            let mut rx = AudioReceiver::new_20ms().unwrap();
            let (out, _) = play(&mut rx, &packets, ppm, &|_| false, 0);
            let s = rx.stats();
            assert!(s.forced_drops + s.forced_inserts >= 1, "{ppm}: {s:?}");
            assert_eq!(s.jitter.underrun_frames, 0, "{ppm}: {s:?}");
            let steady = &out[2 * 48_000..out.len() - 48_000];
            let step = max_step(steady);
            assert!(
                step < 2.5 * clean_step,
                "{ppm}: step {step} vs {clean_step}"
            );
            // And no hole: every frame keeps the tone's level.
            for f in steady.chunks(FRAME) {
                // The tone is at -11 dBFS. A crossfaded drop dips ~2 dB at 440 Hz; an insert
                // is one frame of libopus PLC, which dips ~11 dB on a bare tone (speech fares
                // better, and speech has pauses where inserts are free).
                assert!(rms_dbfs(f) > -26.0, "{ppm}: hole {}", rms_dbfs(f));
            }
        }
    }

    /// Encodes `signal` in packets of `packet_len` samples (480 or 960) from RTP time
    /// `ts0`, sends each when its audio is complete with 30 ms of transit, and pulls it
    /// with a clock of `clock_len` samples. Returns what was played.
    fn play_packed(
        rx: &mut AudioReceiver,
        signal: &[f32],
        packet_len: usize,
        clock_len: usize,
        t0: Instant,
        ts0: u32,
    ) -> Vec<f32> {
        let mut enc = encoder();
        let mut buf = [0u8; 1500];
        let mut arrivals = Vec::new();
        for (i, chunk) in signal.chunks_exact(packet_len).enumerate() {
            let n = enc.encode_float(chunk, &mut buf).unwrap();
            let at_us = ((i + 1) * packet_len) as u64 * 1000 / 48 + 30_000;
            arrivals.push((at_us, ts0 + (i * packet_len) as u32, buf[..n].to_vec()));
        }
        let mut out = Vec::new();
        let mut frame = vec![0f32; clock_len];
        let mut next = 0;
        let clock_us = clock_len as u64 * 1000 / 48;
        for k in 0..(signal.len() / clock_len + 20) {
            let t = k as u64 * clock_us + 3_000;
            while next < arrivals.len() && arrivals[next].0 <= t {
                let (at, ts, p) = &arrivals[next];
                rx.push_opus(t0 + Duration::from_micros(*at), *ts, p);
                next += 1;
            }
            rx.pull(t0 + Duration::from_micros(t), &mut frame);
            out.extend_from_slice(&frame);
        }
        out
    }

    /// The best correlation of `original[range]` with `out` over delays of whole 10 ms
    /// steps plus the codec's look-ahead.
    fn best_match(original: &[f32], out: &[f32], range: std::ops::Range<usize>, la: usize) -> f64 {
        (0..30)
            .map(|m| {
                let off = m * 480 + la;
                let end = (range.end + off).min(out.len());
                let n = end.saturating_sub(range.start + off);
                correlation(
                    &original[range.start..range.start + n],
                    &out[range.start + off..range.start + off + n],
                )
            })
            .fold(f64::MIN, f64::max)
    }

    #[test]
    fn ten_and_twenty_ms_streams_play_on_either_clock() {
        let speech = speech_like(48_000, 48_000 * 2, 31, false);
        let la = encoder().get_lookahead().unwrap() as usize;
        let mut same_clock = [0.0; 2];
        for (packet_len, clock_len) in [(480, 480), (960, 960), (480, 960), (960, 480)] {
            let mut rx = AudioReceiver::new_20ms().unwrap();
            let out = play_packed(&mut rx, &speech, packet_len, clock_len, Instant::now(), 0);
            let c = best_match(&speech, &out, 4_800..speech.len() - 4_800, la);
            let st = rx.stats();
            let tag = format!("{packet_len}-sample packets, {clock_len}-sample clock");
            eprintln!("{tag}: correlation {c:.3}, {st:?}");
            // 32 kbit/s Opus on this synthetic speech keeps about 0.9 of the waveform; a
            // clock of the other length must lose nothing more.
            let k = usize::from(packet_len == 960);
            if packet_len == clock_len {
                same_clock[k] = c;
                assert!(c > 0.85, "{tag}: correlation {c:.3}");
            } else {
                assert!(
                    c > same_clock[k] - 0.005,
                    "{tag}: correlation {c:.3}, {:.3} on its own clock",
                    same_clock[k]
                );
            }
            assert_eq!(rx.frame_len(), packet_len, "{tag}");
            assert_eq!(st.jitter.lost, 0, "{tag}: {st:?}");
            assert_eq!(
                st.jitter.frames_dropped + st.jitter.frames_inserted,
                0,
                "{tag}"
            );
            assert_eq!(
                st.frame_period_changes,
                u64::from(packet_len == 480),
                "{tag}"
            );
        }
    }

    #[test]
    fn a_stream_that_changes_its_packet_time_keeps_playing() {
        // Ringback in 20 ms packets from the bridge, then the agent's voice in 10 ms packets
        // on the same stream (its RTP clock continues), then 20 ms again.
        let mut rx = AudioReceiver::new_20ms().unwrap();
        let t0 = Instant::now();
        let tone = sine(440.0, 0.3, 48_000, 48_000);
        let speech = speech_like(48_000, 48_000 * 2, 37, false);
        let la = encoder().get_lookahead().unwrap() as usize;
        play_packed(&mut rx, &tone, 960, 480, t0, 0);
        let voice = play_packed(
            &mut rx,
            &speech,
            480,
            480,
            t0 + Duration::from_millis(1_500),
            48_000 * 3 / 2,
        );
        assert!(rx.stats().frame_period_changes >= 1);
        assert_eq!(rx.frame_len(), 480);
        let c = best_match(&speech, &voice, 9_600..speech.len() - 9_600, la);
        assert!(c > 0.85, "voice after the switch: correlation {c:.3}");
        play_packed(
            &mut rx,
            &tone,
            960,
            480,
            t0 + Duration::from_millis(4_000),
            48_000 * 4,
        );
        assert_eq!(rx.frame_len(), 960);
        assert_eq!(rx.stats().frame_period_changes, 2);
    }
}

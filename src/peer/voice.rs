//! The headless peers' voice loop: a media clock (20 ms frames, or 10 ms when chosen for a
//! lower delay) that, on every tick, takes in what
//! arrived, plays out one frame per receive slot (jitter buffer, Opus FEC/PLC), mixes them
//! into what the peer "hears", and sends one frame of what it "says" (a WAV file, an echo of
//! what it heard, silence, or a real microphone), and, with a headset attached, plays what it
//! heard on the headset's speaker.
//!
//! Keys pressed (`queue_dtmf`) leave as RFC 4733 telephone events on the voice's own clock,
//! one step per 20 ms (`send_dtmf` after each tick); telephone events that arrive on `main` are
//! decoded into digits (`poll_digit`) instead of reaching the jitter buffer.
//!
//! Because one tick both sends frame n and plays out frame n, a recording is sample-aligned
//! with the playback: sample k of the recording was heard when sample k of the input was sent.
//! Run loop: `loop { tick.await; voice.tick(now, &mut packets) -> (heard, said) }`, with the
//! tick every [`Voice::frame_period`].
//!
//! With [`Voice::set_aligned_playout`] the playout runs on a clock of its own
//! ([`crate::audio::playout`]): the tick calls [`Voice::say`] (and [`Voice::play`] until the
//! clock moves), a timer at [`Voice::next_play`] calls [`Voice::play`], and a recording made
//! with [`Voice::play_and_record`] drops what the clock moved, so sample k of it is still what
//! was heard k samples after the recording began.
//!
//! The frame period only decides what this peer sends and how often its clock runs; what it
//! receives may come in 10 or 20 ms packets either way (each receiver follows its stream).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::audio::device::Headset;
use crate::audio::effort::{EncoderEffort, SPEECH_DBFS};
use crate::audio::jitter::FrameDuration;
use crate::audio::playout::PlayoutClock;
use crate::audio::process::MicProcessor;
use crate::audio::receive::AudioReceiver;
use crate::audio::red::{self, RedEncoder};
use crate::audio::rfc4733::{
    DtmfSender, ReceivedDigit, Rfc4733Error, Rfc4733Receiver, TelephonePacket,
};
use crate::audio::tone::rms_dbfs;
use crate::peer::impair::Impairment;
use crate::peer::rtc::{
    OPUS_PT, PeerMedia, RED_PT, RtcError, RxPacket, RxSlot, TELEPHONE_EVENT_PT,
};

/// Samples in one 20 ms frame at 48 kHz: the longest frame (buffers are this long; a 10 ms
/// voice uses the first half).
pub const FRAME: usize = 960;
/// Telephone events step every this many samples (20 ms), whatever the frame period.
const DTMF_STEP: usize = 960;

/// Opus bit rate of the voice we send. 64 kbit/s (G.711's rate, small for any headset
/// link) leaves room for in-band FEC at high loss; BENCHMARKS.md has PESQ by bit rate
/// (codec alone: 3.76 at 32 kbit/s, 4.19 at 48, 4.36 at 64 clean; 3.09 / 3.67 / 3.99 with
/// every tenth packet lost and rebuilt from FEC).
pub const VOICE_BITRATE: i32 = 64_000;
/// Opus encoder complexity (0-10), libopus's default and best. At 5 the encoder costs a
/// quarter less CPU but PESQ fell by 0.15-0.3 (BENCHMARKS.md): not worth it for the voice a
/// customer hears all call.
pub const VOICE_COMPLEXITY: i32 = 10;
/// Opus encoder complexity for frames with no speech in them (the agent listening, after a
/// hangover; [`crate::audio::effort`]): a third of the encoder's cost on room noise, while
/// speech keeps [`VOICE_COMPLEXITY`].
pub const QUIET_COMPLEXITY: i32 = 0;
/// Loss the encoder plans its in-band FEC for at least; more when the switchboard reports more
/// ([`Voice::on_reception_report`]).
pub const EXPECTED_LOSS_PCT: i32 = 10;

/// An Opus encoder with the voice's settings (48 kHz mono VOIP, [`VOICE_BITRATE`], in-band
/// FEC planned for [`EXPECTED_LOSS_PCT`]) at `complexity` (the peers use
/// [`VOICE_COMPLEXITY`] for speech; benchmarks compare others). The signal is declared as
/// voice, so the encoder's choice of mode does not hang on its speech/music analysis, which
/// runs only at complexity 7 and up: switching complexity between frames changes no mode.
pub fn voice_encoder(complexity: i32) -> Result<opus::Encoder, opus::Error> {
    let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)?;
    encoder.set_signal(opus::Signal::Voice)?;
    encoder.set_inband_fec(true)?;
    encoder.set_packet_loss_perc(EXPECTED_LOSS_PCT)?;
    encoder.set_bitrate(opus::Bitrate::Bits(VOICE_BITRATE))?;
    encoder.set_complexity(complexity)?;
    Ok(encoder)
}

/// What the peer says on each tick.
pub enum Mouth {
    Silence,
    /// Plays these samples once, then silence.
    Wav {
        samples: Vec<f32>,
        pos: usize,
    },
    /// Sends back what it heard on the previous tick (latency measurement).
    Echo,
    /// Sends what the attached headset's microphone picked up (silence without a headset).
    Device,
}

impl Mouth {
    pub fn wav(samples: Vec<f32>) -> Mouth {
        Mouth::Wav { samples, pos: 0 }
    }

    /// Fills `out` (one frame); `heard` and `mic` are as long.
    fn next(&mut self, heard: &[f32], mic: &[f32], out: &mut [f32]) {
        match self {
            Mouth::Silence => out.fill(0.0),
            Mouth::Echo => out.copy_from_slice(heard),
            Mouth::Device => out.copy_from_slice(mic),
            Mouth::Wav { samples, pos } => {
                out.fill(0.0);
                let end = (*pos + out.len()).min(samples.len());
                if *pos < end {
                    out[..end - *pos].copy_from_slice(&samples[*pos..end]);
                }
                *pos = end;
            }
        }
    }
}

/// Encoder, two receivers and the frame clock of one peer.
pub struct Voice {
    encoder: opus::Encoder,
    receivers: [AudioReceiver; 2],
    /// Samples per frame: 960 (20 ms) or 480 (10 ms).
    frame: usize,
    /// RTP time of the next frame we send.
    send_ts: u32,
    /// Samples sent since the telephone events last stepped (they step every 20 ms).
    dtmf_clock: usize,
    heard: [f32; FRAME],
    said: [f32; FRAME],
    encoded: Vec<u8>,
    pub mouth: Mouth,
    /// No voice leaves while muted: nothing is encoded or sent.
    pub muted: bool,
    /// First packet arrival on the main slot since `mark_call_start`.
    pub first_packet_at: Option<Instant>,
    impairment: Option<Impairment>,
    /// Real microphone and speaker, when the peer runs on a headset.
    headset: Option<Headset>,
    /// Noise suppression / AGC for the headset's microphone.
    mic_processor: Option<MicProcessor>,
    /// The last microphone frame (silence without a headset).
    mic: [f32; FRAME],
    /// Keys to send as telephone events, stepped once per frame.
    dtmf_out: DtmfSender,
    /// Telephone-event packets of the last tick, not yet sent (allocated once).
    dtmf_packets: Vec<TelephonePacket>,
    /// Telephone events received on `main`, decoded into keys.
    dtmf_in: Rfc4733Receiver,
    /// Wraps each frame with the two before it when the link speaks RED.
    red: RedEncoder,
    /// The loss the encoder plans its in-band FEC for now, percent.
    expected_loss_pct: i32,
    /// The switchboard's last reception report (percent of our voice lost), and whether our
    /// voice goes out as RED (then FEC plans for what RED leaves lost).
    reported_loss_pct: Option<f64>,
    sends_red: bool,
    /// Discontinuous transmission: silence is not sent (Opus marks it with a packet of at
    /// most 2 bytes, which is dropped here; the receiver plays comfort silence).
    dtx: bool,
    /// Voice packets handed out to be sent since the voice was made or the last
    /// [`Self::start_new_call`] (not counting those DTX held back).
    packets_out: u64,
    /// The receivers were reset when the last call ended (or nothing was received yet):
    /// what they hold is the next call's.
    receivers_forgot_last_call: bool,
    /// The encoder's complexity per frame: full for speech, low while only listening.
    effort: EncoderEffort,
    /// When to play out, with [`Self::set_aligned_playout`]; None: plays follow the tick.
    playout: Option<PlayoutClock>,
}

impl Voice {
    /// A voice that sends 20 ms frames.
    pub fn new(impairment: Option<Impairment>) -> Result<Voice, opus::Error> {
        Voice::with_frame(impairment, FrameDuration::Ms20)
    }

    /// A voice that sends frames of `frame` (10 ms halves the packetization delay for twice
    /// the packets).
    pub fn with_frame(
        impairment: Option<Impairment>,
        frame: FrameDuration,
    ) -> Result<Voice, opus::Error> {
        Ok(Voice {
            encoder: voice_encoder(VOICE_COMPLEXITY)?,
            receivers: [AudioReceiver::new_20ms()?, AudioReceiver::new_20ms()?],
            frame: frame.samples(),
            send_ts: 0,
            dtmf_clock: 0,
            heard: [0.0; FRAME],
            said: [0.0; FRAME],
            encoded: vec![0u8; 1500],
            mouth: Mouth::Silence,
            muted: false,
            first_packet_at: None,
            impairment,
            headset: None,
            mic_processor: None,
            mic: [0.0; FRAME],
            dtmf_out: DtmfSender::default(),
            dtmf_packets: Vec::with_capacity(4),
            dtmf_in: Rfc4733Receiver::default(),
            red: RedEncoder::default(),
            expected_loss_pct: EXPECTED_LOSS_PCT,
            reported_loss_pct: None,
            sends_red: false,
            dtx: false,
            packets_out: 0,
            receivers_forgot_last_call: true,
            effort: EncoderEffort::new(VOICE_COMPLEXITY, QUIET_COMPLEXITY),
            playout: None,
        })
    }

    /// From now on every tick reads one frame from the headset's microphone (through
    /// `processor`, if any), which `Mouth::Device` says, and plays what was heard on its speaker.
    pub fn attach_headset(&mut self, headset: Headset, processor: Option<MicProcessor>) {
        self.headset = Some(headset);
        self.mic_processor = processor;
    }

    pub fn headset(&self) -> Option<&Headset> {
        self.headset.as_ref()
    }

    /// For switching devices mid-call.
    pub fn headset_mut(&mut self) -> Option<&mut Headset> {
        self.headset.as_mut()
    }

    /// The far end's stream stops here: the call ended, or the caller was put on hold (the
    /// switchboard then sends us nothing). The receivers forget it at once, so nothing of it
    /// is concealed for the second it would take them to notice (heard as a fading tail,
    /// counted as concealment), and the time until it goes on (when the bridge's timestamps
    /// jump on) is not counted as loss. What arrives next starts afresh: the caller back from
    /// hold, or the next call, even before [`Self::start_new_call`] is told of it.
    pub fn far_end_stopped(&mut self, now: Instant) {
        for r in &mut self.receivers {
            r.stop(now);
        }
        self.receivers_forgot_last_call = true;
    }

    /// A new call starts on the shift-long connection: the count of packets sent starts
    /// again. The switchboard starts the caller's voice as it tells us of the call, so its
    /// first packets may be here already; they are kept. Only when the last call's end was
    /// not told ([`Self::far_end_stopped`]) do the receivers forget that call now.
    pub fn start_new_call(&mut self) {
        if !self.receivers_forgot_last_call {
            for r in &mut self.receivers {
                r.reset();
            }
        }
        self.receivers_forgot_last_call = false;
        self.red.reset();
        self.packets_out = 0;
    }

    /// Forgets what was said so far: the encoder's look-ahead and overlap would otherwise
    /// carry the last few milliseconds of the previous voice into the next packet. Used
    /// when who hears us changes (a supervisor switching listen / whisper / barge), so
    /// that nothing said before the switch reaches the new listeners.
    pub fn reset_encoder(&mut self) {
        if let Err(e) = self.encoder.reset_state() {
            tracing::warn!("Opus encoder reset failed: {e}");
        }
        // Nor may redundant copies of earlier frames.
        self.red.reset();
    }

    /// The switchboard's report of how much of our voice it lost (percent, before repair):
    /// the encoder's in-band FEC is sized for it ([`expected_loss_for`]).
    pub fn on_reception_report(&mut self, loss_pct: f64) {
        self.reported_loss_pct = Some(loss_pct);
        let pct = expected_loss_for(loss_pct / 100.0, self.sends_red);
        if pct == self.expected_loss_pct {
            return;
        }
        match self.encoder.set_packet_loss_perc(pct) {
            Ok(()) => {
                tracing::debug!("the switchboard lost {loss_pct:.1} %: FEC planned for {pct} %");
                self.expected_loss_pct = pct;
            }
            Err(e) => tracing::warn!("Opus expected loss not set: {e}"),
        }
    }

    /// The loss the encoder plans its in-band FEC for now, percent.
    pub fn expected_loss_pct(&self) -> i32 {
        self.expected_loss_pct
    }

    /// The switchboard's last reception report: percent of our voice it lost.
    pub fn reported_loss_pct(&self) -> Option<f64> {
        self.reported_loss_pct
    }

    /// Sends frames of `frame` from the next tick on (the RTP clock runs on; receivers
    /// follow the packets' duration). The caller's clock must then tick every
    /// [`Self::frame_period`].
    pub fn set_frame(&mut self, frame: FrameDuration) {
        self.frame = frame.samples();
        if self.playout.is_some() {
            self.playout = Some(PlayoutClock::new(self.frame_period()));
        }
    }

    /// Plays out on a clock of its own, moved to just when the far end's frames are due
    /// ([`PlayoutClock`]), instead of on the tick: up to a frame less delay for a peer whose
    /// output takes audio at any moment (a headset, a recording). The driver then calls
    /// [`Self::play`] at [`Self::next_play`] (on the tick while that is None) and
    /// [`Self::say`] on the tick. Off by default.
    pub fn set_aligned_playout(&mut self, on: bool) {
        self.playout = on.then(|| PlayoutClock::new(self.frame_period()));
    }

    pub fn aligned_playout(&self) -> bool {
        self.playout.is_some()
    }

    /// When to play next when that is not on the tick ([`Self::set_aligned_playout`]).
    pub fn next_play(&self) -> Option<Instant> {
        self.playout.as_ref().and_then(PlayoutClock::next_play)
    }

    /// Samples per frame (480 or 960).
    pub fn frame_len(&self) -> usize {
        self.frame
    }

    /// How often [`Self::tick`] is to run: one frame.
    pub fn frame_period(&self) -> Duration {
        frame_period(self.frame)
    }

    /// Takes every packet that has arrived into the jitter buffers.
    pub fn receive(&mut self, packets: &mut mpsc::Receiver<RxPacket>) {
        while let Ok(p) = packets.try_recv() {
            if p.payload_type == RED_PT {
                match red::parse(p.timestamp, &p.payload) {
                    Ok(blocks) => {
                        // The packet's own frame first, then the copies of earlier ones, which
                        // only fill holes.
                        let mut blocks = blocks.iter().rev().filter(|b| b.payload_type == OPUS_PT);
                        if let Some(primary) = blocks.next() {
                            self.push_opus(p.slot, p.arrived, primary.timestamp, primary.data);
                        }
                        for b in blocks {
                            self.receivers[p.slot as usize].push_opus_redundant(
                                p.arrived,
                                b.timestamp,
                                b.data,
                            );
                        }
                    }
                    Err(e) => tracing::debug!("RED packet ignored: {e}"),
                }
                continue;
            }
            if p.payload_type != OPUS_PT {
                if p.payload_type == TELEPHONE_EVENT_PT
                    && p.slot == RxSlot::Main
                    && let Err(e) = self
                        .dtmf_in
                        .handle_packet(p.arrived, p.timestamp, &p.payload)
                {
                    tracing::debug!("telephone event ignored: {e}");
                }
                continue;
            }
            self.push_opus(p.slot, p.arrived, p.timestamp, &p.payload);
        }
    }

    /// One Opus frame into its slot's jitter buffer (a copy that is already there, from a
    /// RED packet's redundancy, is a duplicate the buffer drops).
    fn push_opus(&mut self, slot: RxSlot, arrived: Instant, timestamp: u32, payload: &[u8]) {
        if slot == RxSlot::Main && self.first_packet_at.is_none() {
            self.first_packet_at = Some(arrived);
        }
        self.receivers[slot as usize].push_opus(arrived, timestamp, payload);
    }

    /// One tick: plays out and mixes one frame, produces one frame to say. Returns the frame
    /// to send (None while muted) and leaves `heard()` / `said()` for recording.
    pub fn tick(&mut self, now: Instant) -> Option<(u32, Bytes)> {
        self.play(now);
        self.say(now)
    }

    /// Plays out one frame: each receive slot's jitter buffer, mixed into `heard()`, and on
    /// the headset's speaker. Returns how many milliseconds the playout clock moved earlier
    /// ([`PlayoutClock::played`]; 0 without [`Self::set_aligned_playout`]): a recording of
    /// `heard()` drops that much from its end to stay true to time.
    pub fn play(&mut self, now: Instant) -> f64 {
        let n = self.frame;
        let mut main = [0f32; FRAME];
        let mut aux = [0f32; FRAME];
        self.receivers[0].pull(now, &mut main[..n]);
        self.receivers[1].pull(now, &mut aux[..n]);
        for ((h, m), a) in self.heard[..n].iter_mut().zip(&main).zip(&aux) {
            *h = soft_clip(m + a);
        }
        if let Some(headset) = &mut self.headset {
            // The speaker gets silence between calls, which keeps its stream steady.
            headset.write_speaker_frame(&self.heard[..n]);
        }
        let Some(playout) = &mut self.playout else {
            return 0.0;
        };
        let jb = self.receivers[0].jitter_buffer();
        let excess = jb.is_playing().then(|| {
            let stats = jb.stats();
            stats.current_delay_ms - stats.target_delay_ms
        });
        let quiet = rms_dbfs(&self.heard[..n]) < SPEECH_DBFS;
        playout.played(now, excess, quiet)
    }

    /// Produces one frame to say (the microphone, a file, an echo of `heard()`), encoded.
    /// Returns the frame to send (None while muted or held back by DTX).
    pub fn say(&mut self, now: Instant) -> Option<(u32, Bytes)> {
        let n = self.frame;
        if let Some(headset) = &mut self.headset {
            for event in headset.watch_devices(now) {
                tracing::warn!("{event}");
            }
            // Read every tick, in a call or not, so the microphone ring never backs up. A
            // paused headset (between calls) gives silence, which needs no processing.
            headset.read_mic_frame(&mut self.mic[..n]);
            if headset.is_running()
                && let Some(p) = &mut self.mic_processor
            {
                p.process(&mut self.mic[..n]);
            }
        }
        self.mouth
            .next(&self.heard[..n], &self.mic[..n], &mut self.said[..n]);
        let ts = self.send_ts;
        self.send_ts = self.send_ts.wrapping_add(n as u32);
        // Keys go out even while the microphone is muted, stepping every 20 ms (the usual
        // telephone-event packet time) at the start of a frame.
        if self.dtmf_clock == 0 {
            self.dtmf_out.on_frame(ts, &mut self.dtmf_packets);
        }
        self.dtmf_clock = (self.dtmf_clock + n) % DTMF_STEP;
        self.dtmf_in.handle_timeout(now);
        if self.muted {
            return None;
        }
        let (complexity, changed) = self.effort.for_frame(&self.said[..n]);
        if changed && let Err(e) = self.encoder.set_complexity(complexity) {
            tracing::warn!("Opus complexity {complexity} refused: {e}");
        }
        let n = match self
            .encoder
            .encode_float(&self.said[..n], &mut self.encoded)
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("Opus encode failed: {e}");
                return None;
            }
        };
        if self.dtx && n <= DTX_SILENCE_BYTES {
            // Silence under DTX: nothing goes out; the RTP clock has moved on, so the
            // receiver sees a gap in time, not a loss.
            return None;
        }
        self.packets_out += 1;
        Some((ts, Bytes::copy_from_slice(&self.encoded[..n])))
    }

    /// Turns discontinuous transmission on or off (off by default): in silence the encoder
    /// sends nothing but a packet every 400 ms to keep the comfort noise going.
    pub fn set_dtx(&mut self, on: bool) -> Result<(), opus::Error> {
        self.encoder.set_dtx(on)?;
        self.dtx = on;
        Ok(())
    }

    /// Voice packets sent in this call (DTX sends fewer).
    pub fn packets_out(&self) -> u64 {
        self.packets_out
    }

    /// Queues keys (`0`-`9`, `*`, `#`, `A`-`D`) to send as telephone events, one after another.
    pub fn queue_dtmf(&mut self, keys: &str) -> Result<(), Rfc4733Error> {
        self.dtmf_out.push_keys(keys)
    }

    /// No keys waiting or being sent.
    pub fn dtmf_idle(&self) -> bool {
        self.dtmf_out.is_idle()
    }

    /// Sends the telephone-event packets of the last tick (call after each tick).
    pub async fn send_dtmf(&mut self, media: &PeerMedia) -> Result<(), RtcError> {
        for packet in self.dtmf_packets.drain(..) {
            media.send_telephone_event(packet).await?;
        }
        Ok(())
    }

    /// The next key the far end pressed (received as telephone events on `main`).
    pub fn poll_digit(&mut self) -> Option<ReceivedDigit> {
        self.dtmf_in.poll_digit()
    }

    /// Samples per frame of what arrives on one slot (the far end's packet time).
    pub fn received_frame_len(&self, slot: RxSlot) -> usize {
        self.receivers[slot as usize].frame_len()
    }

    /// Receive statistics of one slot (jitter buffer and decoder counters, since the start).
    pub fn receiver_stats(&self, slot: RxSlot) -> crate::audio::receive::ReceiverStats {
        self.receivers[slot as usize].stats()
    }

    /// [`Self::play`], then, when `recording` is given, appends what was played to it after
    /// dropping from its end what the playout clock moved, so that sample k of the recording
    /// is still what was heard k samples after it began.
    pub fn play_and_record(&mut self, now: Instant, recording: Option<&mut Vec<f32>>) {
        let moved_ms = self.play(now);
        if let Some(recording) = recording {
            let drop = ((moved_ms * 48.0).round() as usize).min(recording.len());
            recording.truncate(recording.len() - drop);
            recording.extend_from_slice(self.heard());
        }
    }

    /// The time [`Self::next_play`] asks for, or (with plays on the tick) one so far away
    /// that a timer set to it never fires.
    pub fn play_deadline(&self) -> tokio::time::Instant {
        match self.next_play() {
            Some(at) => tokio::time::Instant::from_std(at),
            None => tokio::time::Instant::now() + Duration::from_secs(3600),
        }
    }

    /// What was heard on the last tick (one frame).
    pub fn heard(&self) -> &[f32] {
        &self.heard[..self.frame]
    }

    /// What was said on the last tick (one frame).
    pub fn said(&self) -> &[f32] {
        &self.said[..self.frame]
    }

    /// Sends a frame, through the impairment (test use only) if one is configured.
    pub async fn send(&mut self, media: &PeerMedia, ts: u32, frame: Bytes) -> Result<(), RtcError> {
        self.sends_red = media.sends_red();
        let (pt, payload) = if self.sends_red {
            (RED_PT, Bytes::from(self.red.wrap(ts, OPUS_PT, &frame)))
        } else {
            (OPUS_PT, frame)
        };
        match &mut self.impairment {
            None => {
                let seq = media.reserve_seq();
                media.send_voice_with_seq(seq, ts, pt, payload).await
            }
            Some(imp) => {
                if let Some(delay) = imp.decide() {
                    let seq = media.reserve_seq();
                    if delay.is_zero() {
                        media.send_voice_with_seq(seq, ts, pt, payload).await
                    } else {
                        // Sent later from a task: jitter reorders packets like a real network.
                        let media = media.clone_handle();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = media.send_voice_with_seq(seq, ts, pt, payload).await;
                        });
                        Ok(())
                    }
                } else {
                    // Lost: the sequence number is used up so the receiver sees a gap.
                    let _ = media.reserve_seq();
                    Ok(())
                }
            }
        }
    }
}

/// The expected loss to give Opus for a reported loss share (0 to 1): half again what is
/// left lost (loss comes in bursts), never below [`EXPECTED_LOSS_PCT`], at most 40 %. With
/// RED a frame is lost only when its packet and the next [`red::RED_DEPTH`] are, so FEC plans
/// for that: spending Opus bits on FEC that RED makes useless costs quality (PESQ at 10 %
/// loss fell from 4.1-4.25 to 3.7 when FEC followed the raw loss).
pub fn expected_loss_for(reported: f64, with_red: bool) -> i32 {
    let lost = reported.clamp(0.0, 1.0);
    let left = if with_red {
        lost.powi(red::RED_DEPTH as i32 + 1)
    } else {
        lost
    };
    let pct = (left * 150.0).round() as i32;
    pct.clamp(EXPECTED_LOSS_PCT, 40)
}

/// How long a frame of `samples` at 48 kHz lasts.
fn frame_period(samples: usize) -> Duration {
    Duration::from_micros(samples as u64 * 1000 / 48)
}

/// An Opus packet this short (TOC byte and at most one more) says "silence" under DTX.
const DTX_SILENCE_BYTES: usize = 2;

/// Gentle limiter for the sum of two voices: linear below 0.8, smooth above, never past 1.
fn soft_clip(x: f32) -> f32 {
    let a = x.abs();
    if a <= 0.8 {
        x
    } else {
        let over = a - 0.8;
        x.signum() * (0.8 + 0.2 * (over / 0.2).tanh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::playout::ALIGN_MARGIN_MS;

    /// The far end of a test call: Opus 20 ms frames, a 440 Hz tone or silence, numbered
    /// by frame (sequence number and RTP time) as the switchboard sends them.
    struct FarEnd {
        encoder: opus::Encoder,
        encoded: Vec<u8>,
    }

    impl FarEnd {
        fn new() -> FarEnd {
            FarEnd {
                encoder: voice_encoder(VOICE_COMPLEXITY).expect("encoder"),
                encoded: vec![0u8; 1500],
            }
        }

        fn packet(&mut self, frame: u64, tone: bool, arrived: Instant) -> RxPacket {
            let pcm: Vec<f32> = (0..FRAME)
                .map(|i| {
                    let t = (frame as usize * FRAME + i) as f32 / 48_000.0;
                    if tone {
                        0.3 * (t * 440.0 * std::f32::consts::TAU).sin()
                    } else {
                        0.0
                    }
                })
                .collect();
            let n = self
                .encoder
                .encode_float(&pcm, &mut self.encoded)
                .expect("encodes");
            RxPacket {
                slot: RxSlot::Main,
                seq: frame as u16,
                timestamp: (frame * FRAME as u64) as u32,
                payload_type: OPUS_PT,
                payload: Bytes::copy_from_slice(&self.encoded[..n]),
                arrived,
            }
        }
    }

    /// A far end whose 20 ms packets arrive 7 ms after each of our ticks, talking in bursts
    /// (a tone for 200 ms, a pause for 100 ms), through a `Voice` with aligned playout,
    /// driven event by event on a simulated clock.
    #[test]
    fn aligned_playout_plays_each_frame_just_after_it_is_due_and_records_true_to_time() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut voice = Voice::new(None).expect("voice");
        voice.set_aligned_playout(true);
        let mut far = FarEnd::new();
        let (tx, mut rx) = mpsc::channel(64);
        let mut recording = Vec::new();
        let (mut sent, mut ticks) = (0u64, 0u64);
        let mut first_play: Option<Instant> = None;
        let end = ms(6000);
        loop {
            let arrival = ms(7 + 20 * sent);
            let tick = ms(20 * ticks);
            let play = voice.next_play();
            let now = arrival.min(tick).min(play.unwrap_or(end));
            if now >= end {
                break;
            }
            if now == arrival {
                let talking = sent % 15 < 10;
                tx.try_send(far.packet(sent, talking, now)).expect("room");
                sent += 1;
            } else if Some(now) == play {
                voice.receive(&mut rx);
                voice.play_and_record(now, Some(&mut recording));
            } else {
                voice.receive(&mut rx);
                if voice.next_play().is_none() {
                    first_play.get_or_insert(now);
                    voice.play_and_record(now, Some(&mut recording));
                }
                let _ = voice.say(now);
                ticks += 1;
            }
        }
        let play = voice
            .next_play()
            .expect("the playout runs on its own clock");
        // Packets arrive at 7 ms past our ticks and wait the 15 ms target: due at 2 ms past;
        // played the margin later.
        let phase = (play.duration_since(t0).as_secs_f64() * 1000.0).rem_euclid(20.0);
        assert!(
            (phase - 4.0).abs() < 0.6,
            "played at {phase:.2} ms past the tick"
        );
        let stats = voice.receiver_stats(RxSlot::Main).jitter;
        let excess = stats.current_delay_ms - stats.target_delay_ms;
        assert!((0.0..=ALIGN_MARGIN_MS + 0.6).contains(&excess), "{stats:?}");
        // The recording holds what was heard, each sample at its time since the first play.
        let heard_for = play
            .duration_since(first_play.expect("played"))
            .as_secs_f64();
        let expected = (heard_for * 48_000.0).round() as usize;
        assert!(
            recording.len().abs_diff(expected) <= 48,
            "{} vs {expected}",
            recording.len()
        );
    }

    /// Two calls on one connection, driven frame by frame: 2 s of the first caller, 1.5 s
    /// of nothing, then the second caller, whose first packets (a tone) arrive before the
    /// agent is told the call connected, as they do from the switchboard.
    #[test]
    fn a_call_s_end_leaves_no_tail_and_the_next_call_keeps_its_first_packets() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut voice = Voice::new(None).expect("voice");
        let mut far = FarEnd::new();
        let (tx, mut rx) = mpsc::channel(64);
        let mut send = |frame: u64, tone: bool, at: Instant| {
            tx.try_send(far.packet(frame, tone, at)).expect("room");
        };
        let mut heard = Vec::new();
        let tick = |voice: &mut Voice,
                    rx: &mut mpsc::Receiver<RxPacket>,
                    heard: &mut Vec<f32>,
                    frame: u64| {
            voice.receive(rx);
            voice.play_and_record(ms(20 * frame + 10), Some(heard));
        };
        // The first call: 100 frames, then the agent is told it ended.
        for f in 0..100 {
            send(f, false, ms(20 * f + 5));
            tick(&mut voice, &mut rx, &mut heard, f);
        }
        voice.far_end_stopped(ms(20 * 100));
        let after_first = voice.receiver_stats(RxSlot::Main).jitter;
        // 75 frames of nothing: the bridge's clock runs on, so its timestamps jump.
        for f in 100..175 {
            tick(&mut voice, &mut rx, &mut heard, f);
        }
        let between = voice.receiver_stats(RxSlot::Main).jitter;
        assert_eq!(
            between.concealed_frames, after_first.concealed_frames,
            "{between:?}"
        );
        // The next caller's first three frames (a tone) arrive, then the agent hears of it.
        for f in 175..178 {
            send(f, true, ms(20 * f + 5));
        }
        voice.receive(&mut rx);
        voice.start_new_call();
        heard.clear();
        for f in 178..230 {
            send(f, false, ms(20 * f + 5));
            tick(&mut voice, &mut rx, &mut heard, f);
        }
        let s = voice.receiver_stats(RxSlot::Main).jitter;
        assert_eq!(s.lost, 0, "{s:?}");
        assert_eq!(s.concealed_frames, after_first.concealed_frames, "{s:?}");
        // The tone's 60 ms were played: they were kept, not forgotten as the last call's
        // (the encoder's overlap carries only its last few milliseconds into what follows).
        let loud = heard.iter().filter(|x| x.abs() > 0.1).count();
        assert!(loud > 1500, "{loud} samples of the tone heard");
    }

    #[test]
    fn expected_loss_follows_reports_within_bounds() {
        assert_eq!(expected_loss_for(0.0, false), EXPECTED_LOSS_PCT);
        assert_eq!(expected_loss_for(0.05, false), EXPECTED_LOSS_PCT);
        assert_eq!(expected_loss_for(0.1, false), 15);
        assert_eq!(expected_loss_for(0.2, false), 30);
        assert_eq!(expected_loss_for(0.9, false), 40);
        assert_eq!(expected_loss_for(f64::NAN, false), EXPECTED_LOSS_PCT);
        // RED leaves 0.8 % of 20 % lost, but 12.5 % of 50 %.
        assert_eq!(expected_loss_for(0.2, true), EXPECTED_LOSS_PCT);
        assert_eq!(expected_loss_for(0.5, true), 19);
    }
}

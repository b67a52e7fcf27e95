//! Microphone processing between the headset and the encoder: noise suppression (RNNoise, via
//! nnnoiseless) and a slow automatic gain control ending in a look-ahead limiter. Each part
//! can be switched on or off at any time; levels are exposed for the meters.
//!
//! Run loop (the voice clock, once per 10 or 20 ms frame of 48 kHz mono; nothing allocates
//! there):
//! ```text
//! headset.read_mic_frame(&mut frame);
//! processor.process(&mut frame);
//! ui.show(processor.levels());
//! ```
//!
//! The AGC only adapts while someone speaks (the frame is above a gate, and RNNoise, when on,
//! says it is voice): it rises slowly (3 dB/s) so it never pumps up breathing or room noise
//! between sentences, and falls fast (40 dB/s) when the agent gets loud. The limiter after it
//! (-1 dBFS ceiling, 1 ms look-ahead) means the result never clips, whatever the gain.

use nnnoiseless::DenoiseState;

use crate::audio::mixer::Limiter;
use crate::audio::tone::{LevelMeter, MIN_DBFS, rms_dbfs};

/// One 20 ms frame at 48 kHz (frames of 10 ms, 480 samples, work the same).
pub const FRAME: usize = 960;
const RATE_HZ: u32 = 48_000;

/// Levels for the UI, in dBFS / dB.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ProcessLevels {
    /// The microphone as it came in.
    pub input_dbfs: f32,
    /// What goes to the encoder.
    pub output_dbfs: f32,
    pub output_peak_dbfs: f32,
    /// The AGC's current gain (0 when it is off).
    pub agc_gain_db: f32,
    /// RNNoise's voice probability of the last frame (None when suppression is off).
    pub voice_probability: Option<f32>,
}

/// AGC settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgcSettings {
    /// Speech level to aim for (RMS of a speaking frame).
    pub target_dbfs: f32,
    pub max_gain_db: f32,
    pub min_gain_db: f32,
    /// Frames quieter than this are not speech and leave the gain alone.
    pub gate_dbfs: f32,
    pub rise_db_per_s: f32,
    pub fall_db_per_s: f32,
}

impl Default for AgcSettings {
    fn default() -> Self {
        AgcSettings {
            target_dbfs: -20.0,
            max_gain_db: 24.0,
            min_gain_db: -12.0,
            gate_dbfs: -55.0,
            rise_db_per_s: 3.0,
            fall_db_per_s: 40.0,
        }
    }
}

/// Noise suppression + AGC for one microphone.
pub struct MicProcessor {
    /// RNNoise state; None while suppression is off (a fresh state on re-enable, so stale
    /// history from long ago does not colour the first frames).
    denoise: Option<Box<DenoiseState<'static>>>,
    agc: Option<Agc>,
    agc_settings: AgcSettings,
    /// Scratch for RNNoise, which works in 16-bit scale on 480-sample halves.
    scaled_in: [f32; DenoiseState::FRAME_SIZE],
    scaled_out: [f32; DenoiseState::FRAME_SIZE],
    input_meter: LevelMeter,
    output_meter: LevelMeter,
    voice_probability: Option<f32>,
}

impl MicProcessor {
    pub fn new(noise_suppression: bool, agc: bool) -> MicProcessor {
        let mut p = MicProcessor {
            denoise: None,
            agc: None,
            agc_settings: AgcSettings::default(),
            scaled_in: [0.0; DenoiseState::FRAME_SIZE],
            scaled_out: [0.0; DenoiseState::FRAME_SIZE],
            input_meter: LevelMeter::default(),
            output_meter: LevelMeter::default(),
            voice_probability: None,
        };
        p.set_noise_suppression(noise_suppression);
        p.set_agc(agc);
        p
    }

    pub fn set_noise_suppression(&mut self, on: bool) {
        match (on, self.denoise.is_some()) {
            (true, false) => self.denoise = Some(DenoiseState::new()),
            (false, true) => {
                self.denoise = None;
                self.voice_probability = None;
            }
            _ => {}
        }
    }

    pub fn set_agc(&mut self, on: bool) {
        match (on, self.agc.is_some()) {
            (true, false) => self.agc = Some(Agc::new(self.agc_settings)),
            (false, true) => self.agc = None,
            _ => {}
        }
    }

    pub fn set_agc_settings(&mut self, settings: AgcSettings) {
        self.agc_settings = settings;
        if let Some(agc) = &mut self.agc {
            agc.settings = settings;
        }
    }

    pub fn noise_suppression(&self) -> bool {
        self.denoise.is_some()
    }

    pub fn agc(&self) -> bool {
        self.agc.is_some()
    }

    /// Processes one frame in place: a whole number of 10 ms blocks (480 or 960 samples;
    /// RNNoise works on 10 ms). A trailing part shorter than 10 ms is left as it came.
    pub fn process(&mut self, frame: &mut [f32]) {
        let frame_s = frame.len() as f32 / RATE_HZ as f32;
        self.input_meter.update(frame, frame_s);
        if let Some(state) = &mut self.denoise {
            let mut vad = 0f32;
            for half in frame.chunks_exact_mut(DenoiseState::FRAME_SIZE) {
                for (d, s) in self.scaled_in.iter_mut().zip(half.iter()) {
                    *d = s * 32768.0;
                }
                vad = vad.max(state.process_frame(&mut self.scaled_out, &self.scaled_in));
                for (d, s) in half.iter_mut().zip(self.scaled_out.iter()) {
                    *d = s / 32768.0;
                }
            }
            self.voice_probability = Some(vad);
        }
        if let Some(agc) = &mut self.agc {
            // Without RNNoise the gate alone decides what is speech.
            let voiced = self.voice_probability.is_none_or(|p| p > 0.5);
            agc.process(frame, voiced);
        }
        self.output_meter.update(frame, frame_s);
    }

    pub fn levels(&self) -> ProcessLevels {
        ProcessLevels {
            input_dbfs: self.input_meter.rms_dbfs(),
            output_dbfs: self.output_meter.rms_dbfs(),
            output_peak_dbfs: self.output_meter.peak_dbfs(),
            agc_gain_db: self.agc.as_ref().map_or(0.0, |a| a.gain_db),
            voice_probability: self.voice_probability,
        }
    }
}

/// Slow gain toward a target speech level, then a limiter.
struct Agc {
    settings: AgcSettings,
    /// Current gain, dB; starts at 0 so a loud agent is not blasted while it settles.
    gain_db: f32,
    limiter: Limiter,
}

impl Agc {
    fn new(settings: AgcSettings) -> Agc {
        Agc {
            settings,
            gain_db: 0.0,
            limiter: Limiter::new(RATE_HZ, -1.0),
        }
    }

    fn process(&mut self, frame: &mut [f32], voiced: bool) {
        let s = &self.settings;
        let frame_s = frame.len() as f32 / RATE_HZ as f32;
        let level = rms_dbfs(frame);
        let before = self.gain_db;
        if voiced && level > s.gate_dbfs && level > MIN_DBFS {
            let want = (s.target_dbfs - level).clamp(s.min_gain_db, s.max_gain_db);
            let step = if want > self.gain_db {
                (want - self.gain_db).min(s.rise_db_per_s * frame_s)
            } else {
                -(self.gain_db - want).min(s.fall_db_per_s * frame_s)
            };
            self.gain_db += step;
        }
        // Ramp across the frame so gain changes never click.
        let (g0, g1) = (db_to_gain(before), db_to_gain(self.gain_db));
        let n = frame.len() as f32;
        for (i, x) in frame.iter_mut().enumerate() {
            *x *= g0 + (g1 - g0) * (i as f32 + 1.0) / n;
        }
        self.limiter.process(frame);
    }
}

fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::test_signals::{Rng, sine, speech_like};

    fn run(p: &mut MicProcessor, input: &[f32]) -> Vec<f32> {
        run_in(p, input, FRAME)
    }

    /// Processes `input` in frames of `frame_len` samples.
    fn run_in(p: &mut MicProcessor, input: &[f32], frame_len: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(input.len());
        let mut frame = vec![0f32; frame_len];
        for chunk in input.chunks_exact(frame_len) {
            frame.copy_from_slice(chunk);
            p.process(&mut frame);
            out.extend_from_slice(&frame);
        }
        out
    }

    #[test]
    fn ten_ms_frames_are_processed_like_twenty_ms_ones() {
        // RNNoise runs on 10 ms either way: the same input gives the same output.
        let speech = speech_like(48_000, 48_000 * 2, 21, false);
        let noise = white_noise(speech.len(), 0.02, 23);
        let noisy: Vec<f32> = speech.iter().zip(&noise).map(|(s, n)| s + n).collect();
        let twenty = run_in(&mut MicProcessor::new(true, false), &noisy, FRAME);
        let ten = run_in(&mut MicProcessor::new(true, false), &noisy, FRAME / 2);
        assert_eq!(ten, twenty);
        // The AGC reaches the same gain at the same pace.
        let quiet: Vec<f32> = speech.iter().map(|s| s * 0.1).collect();
        let mut p20 = MicProcessor::new(false, true);
        let mut p10 = MicProcessor::new(false, true);
        run_in(&mut p20, &quiet, FRAME);
        run_in(&mut p10, &quiet, FRAME / 2);
        let (g20, g10) = (p20.levels().agc_gain_db, p10.levels().agc_gain_db);
        assert!(g20 > 1.0 && (g20 - g10).abs() < 1.0, "{g20} dB vs {g10} dB");
    }

    #[test]
    fn rnn_kernels_give_the_same_bits_with_and_without_avx2() {
        // The vendored nnnoiseless runs its network and pitch search compiled for AVX2 where
        // the CPU has it (vendor/README.md); both builds must denoise alike, to the bit.
        let speech = speech_like(48_000, 48_000 * 2, 31, false);
        let noise = white_noise(speech.len(), 0.02, 33);
        let noisy: Vec<f32> = speech.iter().zip(&noise).map(|(s, n)| s + n).collect();
        let fast = run(&mut MicProcessor::new(true, false), &noisy);
        nnnoiseless::set_portable_kernels(true);
        let portable = run(&mut MicProcessor::new(true, false), &noisy);
        nnnoiseless::set_portable_kernels(false);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_ne!(bits(&portable), bits(&noisy), "the noise was suppressed");
        assert_eq!(bits(&fast), bits(&portable));
        #[cfg(target_arch = "x86_64")]
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("this CPU has no AVX2: both runs used the portable kernels");
        }
    }

    fn white_noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed);
        (0..n).map(|_| amp * rng.signed() as f32).collect()
    }

    #[test]
    fn noise_suppression_reduces_steady_noise() {
        let noise = white_noise(48_000 * 3, 0.05, 7);
        let mut p = MicProcessor::new(true, false);
        let out = run(&mut p, &noise);
        // Skip the first second while RNNoise settles.
        let before = rms_dbfs(&noise[48_000..]);
        let after = rms_dbfs(&out[48_000..]);
        assert!(
            after < before - 10.0,
            "noise {before:.1} dBFS -> {after:.1} dBFS"
        );
    }

    #[test]
    fn noise_suppression_lets_speech_through() {
        let speech = speech_like(48_000, 48_000 * 3, 3, false);
        let noise = white_noise(speech.len(), 0.005, 9);
        let noisy: Vec<f32> = speech.iter().zip(&noise).map(|(s, n)| s + n).collect();
        let mut p = MicProcessor::new(true, false);
        let out = run(&mut p, &noisy);
        let before = rms_dbfs(&speech[48_000..]);
        let after = rms_dbfs(&out[48_000..]);
        assert!(
            after > before - 6.0,
            "speech {before:.1} dBFS -> {after:.1} dBFS"
        );
        assert!(p.levels().voice_probability.is_some());
    }

    #[test]
    fn off_means_untouched() {
        let speech = speech_like(48_000, 48_000, 5, true);
        let mut p = MicProcessor::new(false, false);
        assert_eq!(run(&mut p, &speech), speech[..speech.len() / FRAME * FRAME]);
    }

    #[test]
    fn agc_raises_a_quiet_talker_slowly() {
        // Speech peaking at -26 dBFS (RMS around -36 dBFS).
        let quiet: Vec<f32> = speech_like(48_000, 48_000 * 12, 11, true)
            .iter()
            .map(|s| s * 0.1)
            .collect();
        let mut p = MicProcessor::new(false, true);
        let out = run(&mut p, &quiet);
        let first = rms_dbfs(&out[..48_000]) - rms_dbfs(&quiet[..48_000]);
        let last = rms_dbfs(&out[48_000 * 10..]) - rms_dbfs(&quiet[48_000 * 10..]);
        assert!(
            first < 4.0,
            "the first second rose by {first:.1} dB: too fast"
        );
        assert!(last > 12.0, "after 10 s only {last:.1} dB louder");
        assert!(p.levels().agc_gain_db > 12.0);
    }

    #[test]
    fn agc_never_clips_even_when_the_talker_shouts_after_a_whisper() {
        let mut input: Vec<f32> = speech_like(48_000, 48_000 * 10, 13, false)
            .iter()
            .map(|s| s * 0.05)
            .collect();
        input.extend(sine(300.0, 0.99, 48_000, 48_000 * 2));
        let mut p = MicProcessor::new(false, true);
        let out = run(&mut p, &input);
        let peak = out.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!(peak <= 0.9, "peak {peak}");
        // And it comes back down toward the target.
        let tail = rms_dbfs(&out[out.len() - 24_000..]);
        assert!(tail < -10.0, "loud tail at {tail:.1} dBFS");
    }

    #[test]
    fn switching_mid_stream_is_allowed() {
        let speech = speech_like(48_000, 48_000, 17, false);
        let mut p = MicProcessor::new(false, false);
        let mut frame = [0f32; FRAME];
        for (i, chunk) in speech.chunks_exact(FRAME).enumerate() {
            p.set_noise_suppression(i % 10 < 5);
            p.set_agc(i % 7 < 3);
            frame.copy_from_slice(chunk);
            p.process(&mut frame);
            assert!(frame.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
        }
    }
}

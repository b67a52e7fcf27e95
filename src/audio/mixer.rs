//! Mixes several mono streams (the caller, a supervisor's whisper, local tones) into one frame,
//! each with its own gain, through a soft look-ahead limiter instead of hard clipping.
//!
//! Run loop (once per frame period, near the audio path; nothing here allocates after `new`):
//! ```text
//! mixer.set_gain_db(WHISPER, -6.0)?;                        // any time; ramps over one frame
//! mixer.mix(&[(CALLER, &caller), (WHISPER, &whisper), (TONES, &tones)], &mut out)?;
//! ```
//!
//! Gain changes ramp linearly across the next frame so they never click. The limiter looks
//! `lookahead` samples ahead (1 ms) so its gain is already down when a peak arrives, smooths
//! the gain with a box filter of the same length, and releases over ~100 ms; below its
//! threshold (-1 dBFS) it is exactly transparent. Its only cost is that look-ahead of latency.

use super::tone::amplitude_to_dbfs;

/// A call the mixer cannot carry out; nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixError {
    #[error("input {index} does not exist (the mixer has {count})")]
    NoSuchInput { index: usize, count: usize },
    #[error("buffer has {got} samples, the frame is {want}")]
    WrongLength { got: usize, want: usize },
    #[error("gain {0} is not a finite, non-negative number")]
    BadGain(f32),
}

/// What happened in one mixed frame, for meters and logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixReport {
    /// Peak of the sum before limiting, dBFS (above 0 means the limiter saved a clip).
    pub peak_before_dbfs: f32,
    /// Largest gain reduction applied in the frame, dB (0 when the limiter was idle).
    pub reduction_db: f32,
}

/// Gain of one input (or the master), ramped toward its target.
#[derive(Debug, Clone, Copy)]
struct Gain {
    /// Gain applied at the end of the last frame.
    current: f32,
    /// Gain the user asked for.
    target: f32,
    muted: bool,
}

impl Gain {
    fn unity() -> Self {
        Gain {
            current: 1.0,
            target: 1.0,
            muted: false,
        }
    }

    fn effective_target(&self) -> f32 {
        if self.muted { 0.0 } else { self.target }
    }
}

/// A released gain this close to 1 (0.005 dB) is taken as 1.
const RELEASED_FULLY: f32 = 0.999_5;

/// Look-ahead peak limiter. See the module documentation.
#[derive(Debug, Clone)]
pub struct Limiter {
    /// Ceiling, linear.
    threshold: f32,
    /// Release smoothing per sample (one-pole coefficient).
    release: f32,
    /// Ring of the last `lookahead` input samples (the delay line).
    delay: Vec<f32>,
    /// Ring of the last `lookahead` required gains (for the sliding minimum).
    required: Vec<f32>,
    /// Ring of the last `lookahead` released gains (for the box filter).
    released: Vec<f32>,
    /// Write position in all three rings.
    pos: usize,
    /// Last released gain.
    gain: f32,
    /// How many entries of `required` are below 1: while none is (no peak within the
    /// look-ahead, nearly always), the sliding minimum is 1 without a scan.
    required_below_one: usize,
    /// Running sum of `released` (the box filter), recomputed exactly once per turn of the
    /// ring so rounding cannot drift.
    released_sum: f32,
}

impl Limiter {
    pub fn new(sample_rate_hz: u32, threshold_dbfs: f32) -> Self {
        let rate = sample_rate_hz.max(8000) as f32;
        let lookahead = ((rate / 1000.0).round() as usize).max(2);
        let release_s = 0.1;
        Limiter {
            threshold: 10f32.powf(threshold_dbfs.min(0.0) / 20.0),
            release: 1.0 - (-1.0 / (release_s * rate)).exp(),
            delay: vec![0.0; lookahead],
            required: vec![1.0; lookahead],
            released: vec![1.0; lookahead],
            pos: 0,
            gain: 1.0,
            required_below_one: 0,
            released_sum: lookahead as f32,
        }
    }

    /// Samples by which the output lags the input.
    pub fn latency_samples(&self) -> usize {
        self.delay.len() - 1
    }

    /// Limits `buf` in place; returns the smallest gain applied.
    pub fn process(&mut self, buf: &mut [f32]) -> f32 {
        let n = self.delay.len();
        let mut min_gain = 1.0f32;
        for s in buf.iter_mut() {
            let x = if s.is_finite() { *s } else { 0.0 };
            let a = x.abs();
            let req = if a > self.threshold {
                self.threshold / a
            } else {
                1.0
            };
            self.delay[self.pos] = x;
            let replaced = std::mem::replace(&mut self.required[self.pos], req);
            self.required_below_one =
                self.required_below_one + usize::from(req < 1.0) - usize::from(replaced < 1.0);
            let hold = if self.required_below_one == 0 {
                1.0
            } else {
                self.required.iter().copied().fold(1.0f32, f32::min)
            };
            self.gain = if hold < self.gain {
                hold
            } else {
                self.gain + (hold - self.gain) * self.release
            };
            // The release creeps toward 1 by ever smaller steps that rounding would stop a
            // hair short of it (about 0.99986); from within 0.005 dB it is 1, so below the
            // threshold the limiter is exactly transparent again.
            if hold == 1.0 && self.gain > RELEASED_FULLY {
                self.gain = 1.0;
            }
            let replaced = std::mem::replace(&mut self.released[self.pos], self.gain);
            self.released_sum += self.gain - replaced;
            if self.pos == 0 {
                self.released_sum = self.released.iter().sum();
            }
            let smooth = self.released_sum / n as f32;
            // The oldest sample in the delay line is the one whose peak the last `n` gains
            // have all seen coming.
            let oldest = self.delay[(self.pos + 1) % n];
            self.pos = (self.pos + 1) % n;
            // Rounding can leave the box average a hair above the needed gain: clamp.
            *s = (oldest * smooth).clamp(-1.0, 1.0);
            min_gain = min_gain.min(smooth);
        }
        min_gain
    }
}

/// Mixes up to `input_count` streams of `frame_len` samples. See the module documentation.
#[derive(Debug, Clone)]
pub struct Mixer {
    /// Samples per frame; every buffer passed in must have exactly this many.
    frame_len: usize,
    /// Gain state per input, indexed by input number (fixed at construction).
    inputs: Vec<Gain>,
    /// Gain of the whole mix, before the limiter.
    master: Gain,
    /// The sum before limiting (allocated once).
    acc: Vec<f32>,
    /// Keeps the sum under the ceiling without hard clipping.
    limiter: Limiter,
}

impl Mixer {
    /// Limiter threshold.
    const CEILING_DBFS: f32 = -1.0;
    /// Highest gain accepted (+24 dB).
    const MAX_GAIN: f32 = 16.0;

    pub fn new(sample_rate_hz: u32, frame_len: usize, input_count: usize) -> Self {
        Mixer {
            frame_len,
            inputs: vec![Gain::unity(); input_count],
            master: Gain::unity(),
            acc: vec![0.0; frame_len],
            limiter: Limiter::new(sample_rate_hz, Self::CEILING_DBFS),
        }
    }

    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Samples by which the output lags the inputs (the limiter's look-ahead).
    pub fn latency_samples(&self) -> usize {
        self.limiter.latency_samples()
    }

    fn input(&mut self, index: usize) -> Result<&mut Gain, MixError> {
        let count = self.inputs.len();
        self.inputs
            .get_mut(index)
            .ok_or(MixError::NoSuchInput { index, count })
    }

    fn check_gain(gain: f32) -> Result<f32, MixError> {
        if gain.is_finite() && gain >= 0.0 {
            Ok(gain.min(Self::MAX_GAIN))
        } else {
            Err(MixError::BadGain(gain))
        }
    }

    /// Linear gain of one input (1.0 = unchanged, at most 16).
    pub fn set_gain(&mut self, index: usize, gain: f32) -> Result<(), MixError> {
        let gain = Self::check_gain(gain)?;
        self.input(index)?.target = gain;
        Ok(())
    }

    /// Gain of one input in dB.
    pub fn set_gain_db(&mut self, index: usize, gain_db: f32) -> Result<(), MixError> {
        if !gain_db.is_finite() {
            return Err(MixError::BadGain(gain_db));
        }
        self.set_gain(index, 10f32.powf(gain_db / 20.0))
    }

    pub fn gain(&self, index: usize) -> Option<f32> {
        self.inputs.get(index).map(|g| g.target)
    }

    /// Mutes or unmutes one input (ramped like a gain change; the gain is kept).
    pub fn set_muted(&mut self, index: usize, muted: bool) -> Result<(), MixError> {
        self.input(index)?.muted = muted;
        Ok(())
    }

    /// Gain applied to the whole mix before the limiter.
    pub fn set_master_gain_db(&mut self, gain_db: f32) -> Result<(), MixError> {
        if !gain_db.is_finite() {
            return Err(MixError::BadGain(gain_db));
        }
        self.master.target = Self::check_gain(10f32.powf(gain_db / 20.0))?;
        Ok(())
    }

    /// Mixes `sources` (input index, one frame each; absent inputs are silent) into `out`.
    pub fn mix(
        &mut self,
        sources: &[(usize, &[f32])],
        out: &mut [f32],
    ) -> Result<MixReport, MixError> {
        let want = self.frame_len;
        if out.len() != want {
            return Err(MixError::WrongLength {
                got: out.len(),
                want,
            });
        }
        for &(index, samples) in sources {
            if index >= self.inputs.len() {
                return Err(MixError::NoSuchInput {
                    index,
                    count: self.inputs.len(),
                });
            }
            if samples.len() != want {
                return Err(MixError::WrongLength {
                    got: samples.len(),
                    want,
                });
            }
        }

        self.acc.fill(0.0);
        let step = 1.0 / want.max(1) as f32;
        for &(index, samples) in sources {
            let g = self.inputs[index];
            let (from, to) = (g.current, g.effective_target());
            for (i, (a, &x)) in self.acc.iter_mut().zip(samples).enumerate() {
                let x = if x.is_finite() { x } else { 0.0 };
                *a += x * (from + (to - from) * (i + 1) as f32 * step);
            }
        }
        // Every input (heard this frame or not) has now reached its target.
        for g in &mut self.inputs {
            g.current = g.effective_target();
        }
        let (from, to) = (self.master.current, self.master.effective_target());
        let mut peak = 0.0f32;
        for (i, (o, &a)) in out.iter_mut().zip(&self.acc).enumerate() {
            *o = a * (from + (to - from) * (i + 1) as f32 * step);
            peak = peak.max(o.abs());
        }
        self.master.current = to;
        let min_gain = self.limiter.process(out);
        Ok(MixReport {
            peak_before_dbfs: amplitude_to_dbfs(peak),
            reduction_db: -amplitude_to_dbfs(min_gain).min(0.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tone::goertzel_power;
    use super::super::tone::test_signals::sine;
    use super::*;

    const RATE: u32 = 48_000;
    const N: usize = 960;

    /// Runs `frames` frames of constant-per-frame sources through the mixer.
    fn run(mixer: &mut Mixer, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        let mut frame = [0f32; N];
        for (fa, fb) in a.chunks(N).zip(b.chunks(N)) {
            mixer.mix(&[(0, fa), (1, fb)], &mut frame).unwrap();
            out.extend_from_slice(&frame);
        }
        out
    }

    #[test]
    fn sums_with_gains_and_is_transparent_below_the_ceiling() {
        let mut m = Mixer::new(RATE, N, 3);
        m.set_gain(1, 0.5).unwrap();
        // Let the gain ramp happen on silence first.
        let mut out = [0f32; N];
        m.mix(&[], &mut out).unwrap();
        let a = sine(300.0, 0.3, RATE, N * 10);
        let b = sine(1000.0, 0.4, RATE, N * 10);
        let got = run(&mut m, &a, &b);
        let lat = m.latency_samples();
        for i in 0..a.len() - lat {
            let want = a[i] + 0.5 * b[i];
            assert!((got[i + lat] - want).abs() < 1e-6, "sample {i}");
        }
    }

    #[test]
    fn gain_changes_ramp_without_steps() {
        let mut m = Mixer::new(RATE, N, 1);
        let dc = [0.5f32; N];
        let mut out = [0f32; N];
        let mut all = Vec::new();
        for k in 0..6 {
            if k == 3 {
                m.set_gain_db(0, -120.0).unwrap();
            }
            m.mix(&[(0, &dc)], &mut out).unwrap();
            all.extend_from_slice(&out);
        }
        let max_step = all[100..]
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0f32, f32::max);
        assert!(max_step <= 0.5 / N as f32 * 1.01, "step {max_step}");
        assert!(all.last().unwrap().abs() < 1e-5);
        // Mute and unmute ramp the same way.
        m.set_gain(0, 1.0).unwrap();
        m.set_muted(0, true).unwrap();
        m.mix(&[(0, &dc)], &mut out).unwrap();
        m.mix(&[(0, &dc)], &mut out).unwrap();
        assert!(out.iter().all(|&s| s.abs() < 1e-6));
        m.set_muted(0, false).unwrap();
        m.mix(&[(0, &dc)], &mut out).unwrap();
        assert!(out[N - 1] > 0.45 && out[100] < 0.1);
    }

    /// Share of the power that is not at 440 or 660 Hz (distortion), in dB.
    fn distortion_db(x: &[f32]) -> f64 {
        let total: f64 = x.iter().map(|&s| s as f64 * s as f64).sum::<f64>() / x.len() as f64;
        let tones = goertzel_power(x, RATE as f64, 440.0) + goertzel_power(x, RATE as f64, 660.0);
        10.0 * ((total - tones).max(1e-12) / total).log10()
    }

    #[test]
    fn limiter_never_clips_and_distorts_far_less_than_clipping() {
        let mut m = Mixer::new(RATE, N, 2);
        // Two loud voices: the sum peaks near 1.6.
        let a = sine(440.0, 0.8, RATE, RATE as usize * 2);
        let b = sine(660.0, 0.8, RATE, RATE as usize * 2);
        let got = run(&mut m, &a, &b);
        let ceiling = 10f32.powf(-1.0 / 20.0);
        let peak = got.iter().fold(0f32, |p, s| p.max(s.abs()));
        assert!(peak <= ceiling + 1e-4, "peak {peak}");
        // No flat tops: a hard clipper holds many samples in a row at the ceiling.
        let run_at_ceiling = got
            .windows(3)
            .filter(|w| w.iter().all(|s| s.abs() > ceiling - 1e-4))
            .count();
        assert!(run_at_ceiling < 5, "{run_at_ceiling} flat-topped runs");
        let steady = &got[RATE as usize..RATE as usize + 48_000];
        let clipped: Vec<f32> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x + y).clamp(-ceiling, ceiling))
            .collect();
        let limited = distortion_db(steady);
        let hard = distortion_db(&clipped[RATE as usize..RATE as usize + 48_000]);
        assert!(limited < -30.0, "limiter distortion {limited:.1} dB");
        assert!(
            limited < hard - 15.0,
            "limiter {limited:.1} dB vs clipping {hard:.1} dB"
        );
    }

    #[test]
    fn limiter_reports_and_recovers() {
        let mut m = Mixer::new(RATE, N, 1);
        let loud = sine(500.0, 1.8, RATE, N);
        let quiet = sine(500.0, 0.2, RATE, N);
        let mut out = [0f32; N];
        let r = m.mix(&[(0, &loud)], &mut out).unwrap();
        assert!(r.peak_before_dbfs > 5.0 && r.reduction_db > 5.0, "{r:?}");
        // After the release (~100 ms) quiet audio passes at full level again.
        for _ in 0..40 {
            m.mix(&[(0, &quiet)], &mut out).unwrap();
        }
        let r = m.mix(&[(0, &quiet)], &mut out).unwrap();
        assert!(r.reduction_db < 0.01, "{r:?}");
        let peak = out.iter().fold(0f32, |p, s| p.max(s.abs()));
        assert!((peak - 0.2).abs() < 0.002, "{peak}");
    }

    #[test]
    fn limiter_is_exactly_transparent_again_once_released() {
        let mut l = Limiter::new(RATE, -1.0);
        let mut loud = sine(500.0, 1.5, RATE, N);
        l.process(&mut loud);
        // One second later (ten releases), quiet audio comes out bit for bit, only delayed.
        let mut quiet = sine(300.0, 0.3, RATE, RATE as usize);
        l.process(&mut quiet);
        let input = sine(300.0, 0.3, RATE, N * 2);
        let mut out = input.clone();
        let lag = l.latency_samples();
        assert_eq!(l.process(&mut out), 1.0);
        assert_eq!(out[lag..], input[..input.len() - lag]);
    }

    #[test]
    fn bad_calls_are_errors_and_change_nothing() {
        let mut m = Mixer::new(RATE, N, 2);
        let f = [0.1f32; N];
        let mut out = [7f32; N];
        assert_eq!(
            m.mix(&[(2, &f)], &mut out),
            Err(MixError::NoSuchInput { index: 2, count: 2 })
        );
        assert_eq!(
            m.mix(&[(0, &f[..10])], &mut out),
            Err(MixError::WrongLength { got: 10, want: N })
        );
        assert!(m.mix(&[(0, &f)], &mut out[..5]).is_err());
        assert!(out.iter().all(|&s| s == 7.0));
        assert!(m.set_gain(0, f32::NAN).is_err());
        assert!(m.set_gain(0, -1.0).is_err());
        assert!(m.set_gain_db(5, 0.0).is_err());
        assert!(m.set_master_gain_db(f32::INFINITY).is_err());
        assert_eq!(m.gain(0), Some(1.0));
        // Non-finite samples are treated as silence.
        let nan = [f32::NAN; N];
        m.mix(&[(0, &nan), (1, &f)], &mut out).unwrap();
        assert!(out.iter().all(|s| s.is_finite()));
    }
}

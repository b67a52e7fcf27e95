//! How hard the Opus encoder works on each frame. At full complexity the encoder is about half
//! of what a call costs the phone's CPU, yet while the agent listens there is only room noise
//! to encode, which the lowest complexity does for a third of the cost (PESQ of speech with
//! pauses is the same either way; BENCHMARKS.md, issue 3). [`EncoderEffort`] looks at each frame before it is encoded and says which
//! complexity to use: full as soon as a frame is loud enough to be speech (so a word's first
//! frame already gets it), low again only after [`HANGOVER_MS`] of quiet (so the pauses
//! inside speech, and its fading ends, stay at full).
//!
//! Sans-IO: a frame in, a complexity out; the caller sets it on the encoder when it changes.

use crate::audio::tone::rms_dbfs;

/// A frame whose RMS level reaches this counts as speech. Headset microphones pick up room
/// noise well below it and speech well above (-35 to -15 dBFS); a noisy room above it simply
/// keeps the encoder at full complexity.
pub const SPEECH_DBFS: f32 = -45.0;
/// Quiet this long after the last speech-level frame before the effort drops.
pub const HANGOVER_MS: u32 = 300;

/// Chooses the encoder complexity frame by frame (48 kHz frames of any length).
#[derive(Debug, Clone)]
pub struct EncoderEffort {
    speech: i32,
    quiet: i32,
    /// Milliseconds since the last speech-level frame (saturating).
    quiet_ms: u32,
    current: i32,
}

impl EncoderEffort {
    /// Full effort `speech` for speech (and at the start), `quiet` for quiet after the
    /// hangover.
    pub fn new(speech: i32, quiet: i32) -> EncoderEffort {
        EncoderEffort {
            speech,
            quiet,
            quiet_ms: 0,
            current: speech,
        }
    }

    /// The complexity for `frame`, and whether it differs from the previous frame's.
    pub fn for_frame(&mut self, frame: &[f32]) -> (i32, bool) {
        if rms_dbfs(frame) >= SPEECH_DBFS {
            self.quiet_ms = 0;
        } else {
            self.quiet_ms = self.quiet_ms.saturating_add(frame.len() as u32 / 48);
        }
        let want = if self.quiet_ms > HANGOVER_MS {
            self.quiet
        } else {
            self.speech
        };
        let changed = want != self.current;
        self.current = want;
        (want, changed)
    }

    /// The complexity of the last frame.
    pub fn current(&self) -> i32 {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(level: f32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| level * (std::f32::consts::TAU * 300.0 * i as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn speech_gets_full_effort_at_once_and_quiet_only_after_the_hangover() {
        let mut effort = EncoderEffort::new(10, 0);
        let quiet = frame(0.001, 960);
        let speech = frame(0.1, 960);
        // Quiet from the start: full effort for the hangover (300 ms = 15 frames), then low.
        let mut got = Vec::new();
        for _ in 0..17 {
            got.push(effort.for_frame(&quiet));
        }
        assert!(got[..15].iter().all(|&g| g == (10, false)), "{got:?}");
        assert_eq!(got[15], (0, true));
        assert_eq!(got[16], (0, false));
        // The first loud frame is encoded at full effort.
        assert_eq!(effort.for_frame(&speech), (10, true));
        // A 200 ms pause between words keeps it.
        for _ in 0..10 {
            assert_eq!(effort.for_frame(&quiet), (10, false));
        }
        assert_eq!(effort.for_frame(&speech), (10, false));
        assert_eq!(effort.current(), 10);
    }

    #[test]
    fn ten_ms_frames_keep_the_same_hangover() {
        let mut effort = EncoderEffort::new(10, 2);
        effort.for_frame(&frame(0.1, 480));
        let quiet = frame(0.0, 480);
        let low_after = (1..100)
            .find(|_| effort.for_frame(&quiet).0 == 2)
            .expect("drops to low effort");
        assert_eq!(low_after, 31, "after 310 ms of 10 ms frames");
    }

    #[test]
    fn the_threshold_is_minus_45_dbfs() {
        // A sine's RMS is its amplitude / sqrt 2.
        let amplitude = 10f32.powf(SPEECH_DBFS / 20.0) * std::f32::consts::SQRT_2;
        assert_eq!(SPEECH_DBFS, -45.0);
        let just_below = amplitude * 0.95;
        let just_above = amplitude * 1.05;
        let mut effort = EncoderEffort::new(10, 0);
        for _ in 0..20 {
            effort.for_frame(&frame(just_below, 960));
        }
        assert_eq!(effort.current(), 0);
        assert_eq!(effort.for_frame(&frame(just_above, 960)), (10, true));
    }
}

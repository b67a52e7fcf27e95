//! The phone's audio endpoint: where the microphone frames come from and where the call and
//! the ring go. The engine's voice loop calls it once per frame (20 ms, or 10 ms when chosen), so an implementation
//! never blocks (a device implementation copies from / into lock-free rings filled by the
//! device callbacks).
//!
//! Two implementations here: [`NoDevice`] (silence in, output discarded) when devices cannot
//! open or none are wanted, and [`TestEndpoint`] (a scripted microphone and a recorded
//! speaker) for tests. The headset implementation over `audio::device` plugs in beside them.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use sapa_ui::DeviceRole;

#[cfg(test)]
use crate::peer::voice::FRAME;

/// Devices present now, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceLists {
    pub microphones: Vec<String>,
    pub speakers: Vec<String>,
}

/// One audio endpoint: a microphone, a speaker for the call, a ringer.
pub trait AudioEndpoint {
    /// What it is, for notices ("no audio device").
    fn describe(&self) -> String;
    /// Fills one frame (48 kHz mono, 480 or 960 samples) from the microphone. False when no
    /// frame was ready; the caller then sends silence.
    fn read_mic_frame(&mut self, frame: &mut [f32]) -> bool;
    /// Plays one frame of the call (480 or 960 samples).
    fn write_speaker_frame(&mut self, frame: &[f32]);
    /// Starts looping `samples` (48 kHz mono) on the ringer device.
    fn start_ring(&mut self, samples: &[f32]);
    fn stop_ring(&mut self);
    fn devices(&self) -> DeviceLists;
    /// Switches a role to a device (`None`: the system default). Err is a sentence for the
    /// agent; the previous device stays in use.
    fn select(&mut self, role: DeviceRole, name: Option<&str>) -> Result<(), String>;
    /// The headset is needed (a call rings or runs, a supervisor listens, a device test) or
    /// not: an implementation may pause its devices while not, so an idle shift costs no
    /// device wake-ups. Err is a sentence for the agent.
    fn set_in_use(&mut self, _in_use: bool) -> Result<(), String> {
        Ok(())
    }
    /// Whether the speaker takes audio at any moment into a buffer of its own (a real
    /// device), so that the voice may play each frame just when it is due rather than on
    /// its tick (`Voice::set_aligned_playout`).
    fn plays_in_real_time(&self) -> bool {
        false
    }
    /// Called once per frame: a device that stopped while in use (the audio server restarted)
    /// is opened again, and a stream the audio server moved elsewhere (a USB headset
    /// unplugged) is followed. Returns a sentence for the agent about each one.
    fn watch_devices(&mut self, _now: Instant) -> Vec<String> {
        Vec::new()
    }
}

/// No audio hardware: the microphone is silent, what would be played is dropped.
#[derive(Debug, Default)]
pub struct NoDevice;

impl AudioEndpoint for NoDevice {
    fn describe(&self) -> String {
        "no audio device".into()
    }

    fn read_mic_frame(&mut self, frame: &mut [f32]) -> bool {
        frame.fill(0.0);
        true
    }

    fn write_speaker_frame(&mut self, _frame: &[f32]) {}

    fn start_ring(&mut self, _samples: &[f32]) {}

    fn stop_ring(&mut self) {}

    fn devices(&self) -> DeviceLists {
        DeviceLists::default()
    }

    fn select(&mut self, _role: DeviceRole, name: Option<&str>) -> Result<(), String> {
        match name {
            None => Ok(()),
            Some(name) => Err(format!("{name} cannot be opened: no audio devices")),
        }
    }
}

/// What a [`TestEndpoint`] heard and did, shared with the test.
#[derive(Debug, Default)]
pub struct TestTap {
    /// Every frame written to the speaker, in order.
    pub speaker: Vec<f32>,
    /// Samples in the last frame written to the speaker (480 for 10 ms frames, 960 for 20).
    pub speaker_frame_len: usize,
    /// Whether the ring is on now.
    pub ringing: bool,
    /// How many times the ring started.
    pub rings: u32,
    /// Whether the engine says the headset is needed now, and how often it let it go.
    pub in_use: bool,
    pub released: u32,
}

/// A scripted microphone (loops `mic`) and a recorded speaker, for tests.
pub struct TestEndpoint {
    mic: Vec<f32>,
    pos: usize,
    tap: Arc<Mutex<TestTap>>,
}

impl TestEndpoint {
    pub fn new(mic: Vec<f32>) -> (TestEndpoint, Arc<Mutex<TestTap>>) {
        // Like a real device, it starts open.
        let tap = Arc::new(Mutex::new(TestTap {
            in_use: true,
            ..TestTap::default()
        }));
        (
            TestEndpoint {
                mic,
                pos: 0,
                tap: tap.clone(),
            },
            tap,
        )
    }

    fn with_tap(&self, f: impl FnOnce(&mut TestTap)) {
        // A test that panicked while holding the lock has failed already.
        if let Ok(mut tap) = self.tap.lock() {
            f(&mut tap);
        }
    }
}

impl AudioEndpoint for TestEndpoint {
    fn describe(&self) -> String {
        "test endpoint".into()
    }

    fn read_mic_frame(&mut self, frame: &mut [f32]) -> bool {
        if self.mic.is_empty() {
            frame.fill(0.0);
            return true;
        }
        for s in frame.iter_mut() {
            *s = self.mic[self.pos];
            self.pos = (self.pos + 1) % self.mic.len();
        }
        true
    }

    fn write_speaker_frame(&mut self, frame: &[f32]) {
        self.with_tap(|tap| {
            tap.speaker.extend_from_slice(frame);
            tap.speaker_frame_len = frame.len();
        });
    }

    fn start_ring(&mut self, _samples: &[f32]) {
        self.with_tap(|tap| {
            tap.ringing = true;
            tap.rings += 1;
        });
    }

    fn stop_ring(&mut self) {
        self.with_tap(|tap| tap.ringing = false);
    }

    fn devices(&self) -> DeviceLists {
        DeviceLists {
            microphones: vec!["Test microphone".into()],
            speakers: vec!["Test speaker".into()],
        }
    }

    fn select(&mut self, _role: DeviceRole, _name: Option<&str>) -> Result<(), String> {
        Ok(())
    }

    fn set_in_use(&mut self, in_use: bool) -> Result<(), String> {
        self.with_tap(|tap| {
            if tap.in_use && !in_use {
                tap.released += 1;
            }
            tap.in_use = in_use;
        });
        Ok(())
    }
}

/// Level of a frame in dB full scale (RMS); -100 for digital silence.
pub fn level_dbfs(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    let mean_square = frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32;
    if mean_square <= 1e-10 {
        -100.0
    } else {
        (10.0 * mean_square.log10()).max(-100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_dbfs(&[0.0; 960]), -100.0);
        let full: Vec<f32> = (0..960)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(level_dbfs(&full).abs() < 0.01);
    }

    #[test]
    fn test_endpoint_loops_its_microphone_and_records() {
        let (mut ep, tap) = TestEndpoint::new(vec![0.5; 100]);
        let mut frame = [0.0; FRAME];
        assert!(ep.read_mic_frame(&mut frame));
        assert!(frame.iter().all(|&s| s == 0.5));
        ep.write_speaker_frame(&frame);
        ep.start_ring(&[]);
        assert_eq!(tap.lock().unwrap().speaker.len(), FRAME);
        assert!(tap.lock().unwrap().ringing);
    }
}

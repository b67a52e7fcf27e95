//! The headset endpoint: the agent's real microphone, speaker and ringer (`audio::device`)
//! behind the engine's [`AudioEndpoint`]. Devices named in the config that are gone fall back
//! to the defaults with a notice; no device at all is an error the engine shows as a notice
//! while it runs with [`super::audio::NoDevice`]. Between calls the headset is paused and the
//! ringer runs only while it rings, so an idle phone wakes no device.

use std::time::Instant;

use sapa_ui::DeviceRole;

use super::audio::{AudioEndpoint, DeviceLists};
use super::config::PhoneConfig;
use crate::audio::device::{FRAME, Headset, Ringer, list_devices};

/// Real devices: the headset for the call, a separate ringer (often the desk speakers).
struct HeadsetEndpoint {
    headset: Headset,
    /// None when no ringer could be opened; the ring then plays in the headset.
    ringer: Option<Ringer>,
    ringing_in_headset: Option<(Vec<f32>, usize)>,
}

/// Opens the headset and ringer named in `config` (system defaults for `None`). Returns the
/// endpoint and notices for the agent (e.g. "remembered microphone is gone; using default").
pub fn open(config: &PhoneConfig) -> Result<(Box<dyn AudioEndpoint>, Vec<String>), String> {
    let (headset, notices) = Headset::open(config.microphone.as_deref(), config.speaker.as_deref())
        .map_err(|e| e.to_string())?;
    let mut notices: Vec<String> = notices.iter().map(ToString::to_string).collect();
    let ringer = match Ringer::open(config.ringer.as_deref()) {
        Ok((ringer, notice)) => {
            notices.extend(notice.map(|n| n.to_string()));
            Some(ringer)
        }
        Err(e) => {
            notices.push(format!(
                "no ringer device ({e}); the ring plays in the headset"
            ));
            None
        }
    };
    Ok((
        Box::new(HeadsetEndpoint {
            headset,
            ringer,
            ringing_in_headset: None,
        }),
        notices,
    ))
}

impl AudioEndpoint for HeadsetEndpoint {
    fn describe(&self) -> String {
        let s = self.headset.stats();
        format!("microphone {}, speaker {}", s.mic_device, s.speaker_device)
    }

    fn read_mic_frame(&mut self, frame: &mut [f32]) -> bool {
        self.headset.read_mic_frame(frame)
    }

    fn write_speaker_frame(&mut self, frame: &[f32]) {
        match &mut self.ringing_in_headset {
            Some((ring, pos)) if !ring.is_empty() => {
                let mut buf = [0f32; FRAME];
                let mixed = &mut buf[..frame.len().min(FRAME)];
                for (v, s) in mixed.iter_mut().zip(frame) {
                    *v = (s + 0.5 * ring[*pos % ring.len()]).clamp(-1.0, 1.0);
                    *pos += 1;
                }
                self.headset.write_speaker_frame(mixed);
            }
            _ => self.headset.write_speaker_frame(frame),
        }
    }

    fn start_ring(&mut self, samples: &[f32]) {
        match &mut self.ringer {
            Some(ringer) => ringer.play_loop(samples),
            None => self.ringing_in_headset = Some((samples.to_vec(), 0)),
        }
    }

    fn stop_ring(&mut self) {
        if let Some(ringer) = &mut self.ringer {
            ringer.stop();
        }
        self.ringing_in_headset = None;
    }

    fn devices(&self) -> DeviceLists {
        match list_devices() {
            Ok(list) => DeviceLists {
                microphones: list.inputs.into_iter().map(|d| d.name).collect(),
                speakers: list.outputs.into_iter().map(|d| d.name).collect(),
            },
            Err(_) => DeviceLists::default(),
        }
    }

    fn set_in_use(&mut self, in_use: bool) -> Result<(), String> {
        self.headset.set_running(in_use).map_err(|e| e.to_string())
    }

    fn plays_in_real_time(&self) -> bool {
        true
    }

    fn watch_devices(&mut self, now: Instant) -> Vec<String> {
        let mut events = self.headset.watch_devices(now);
        events.extend(self.ringer.as_mut().and_then(Ringer::watch_device));
        events.iter().map(ToString::to_string).collect()
    }

    fn select(&mut self, role: DeviceRole, name: Option<&str>) -> Result<(), String> {
        match role {
            DeviceRole::Microphone => self.headset.switch_microphone(name).map(|_| ()),
            DeviceRole::Speaker => self.headset.switch_speaker(name).map(|_| ()),
            DeviceRole::Ringer => Ringer::open(name).map(|(r, _)| self.ringer = Some(r)),
        }
        .map_err(|e| e.to_string())
    }
}

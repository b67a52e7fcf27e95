//! The headset endpoint: real microphone, speaker and ringer devices for the engine.
//!
//! Device access (`audio::device`: `Headset`, `Ringer`) is being written on the `devices`
//! branch; until it is merged, [`open`] says so and the engine runs with
//! [`super::audio::NoDevice`], showing the reason as a notice.

use super::audio::AudioEndpoint;
use super::config::PhoneConfig;

/// Opens the headset and ringer named in `config` (system defaults for `None`). Returns the
/// endpoint and notices for the agent (e.g. "remembered microphone is gone; using default").
pub fn open(_config: &PhoneConfig) -> Result<(Box<dyn AudioEndpoint>, Vec<String>), String> {
    Err("audio device support is not in this build yet".into())
}

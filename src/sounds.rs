//! The sounds callers and agents hear from the switchboard and the phone (ringback, hold music,
//! ringtone, prompts), embedded from `sounds/` at build time and pre-encoded to Opus frames
//! once, so the bridge only copies packets. `sounds/README.md` says how each file was made.

use std::collections::HashMap;
use std::sync::Arc;

use crate::wav;

/// Every sound the switchboard or phone plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sound {
    Ringback,
    HoldMusic,
    Ringtone,
    Busy,
    MonitorBeep,
    QueuePrompt,
    SurveyPrompt,
    MenuPrompt,
    /// "To be called back instead of waiting, press star": played once to a caller who has
    /// waited `callback_offer_after_secs`.
    CallbackPrompt,
}

impl Sound {
    pub const ALL: [Sound; 9] = [
        Sound::Ringback,
        Sound::HoldMusic,
        Sound::Ringtone,
        Sound::Busy,
        Sound::MonitorBeep,
        Sound::QueuePrompt,
        Sound::SurveyPrompt,
        Sound::MenuPrompt,
        Sound::CallbackPrompt,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            Sound::Ringback => "ringback.wav",
            Sound::HoldMusic => "hold-music.wav",
            Sound::Ringtone => "ringtone.wav",
            Sound::Busy => "busy.wav",
            Sound::MonitorBeep => "monitor-beep.wav",
            Sound::QueuePrompt => "queue-prompt.wav",
            Sound::SurveyPrompt => "survey-prompt.wav",
            Sound::MenuPrompt => "menu-prompt.wav",
            Sound::CallbackPrompt => "callback-prompt.wav",
        }
    }

    /// The sound a configuration names by its file name without `.wav` (`"menu-prompt"`).
    pub fn from_name(name: &str) -> Option<Sound> {
        let file = format!("{}.wav", name.strip_suffix(".wav").unwrap_or(name));
        Sound::ALL.into_iter().find(|s| s.file_name() == file)
    }

    fn bytes(self) -> &'static [u8] {
        match self {
            Sound::Ringback => include_bytes!("../sounds/ringback.wav"),
            Sound::HoldMusic => include_bytes!("../sounds/hold-music.wav"),
            Sound::Ringtone => include_bytes!("../sounds/ringtone.wav"),
            Sound::Busy => include_bytes!("../sounds/busy.wav"),
            Sound::MonitorBeep => include_bytes!("../sounds/monitor-beep.wav"),
            Sound::QueuePrompt => include_bytes!("../sounds/queue-prompt.wav"),
            Sound::SurveyPrompt => include_bytes!("../sounds/survey-prompt.wav"),
            Sound::MenuPrompt => include_bytes!("../sounds/menu-prompt.wav"),
            Sound::CallbackPrompt => include_bytes!("../sounds/callback-prompt.wav"),
        }
    }

    /// The sound as 48 kHz mono samples.
    pub fn samples(self) -> Vec<f32> {
        // The files are ours and checked by tests; a broken one plays as silence, not a crash.
        wav::decode_mono_48k(self.bytes(), self.file_name()).unwrap_or_default()
    }
}

/// A sound cut into 20 ms Opus frames.
#[derive(Debug)]
pub struct EncodedSound {
    pub frames: Vec<Arc<[u8]>>,
}

/// All sounds, encoded once at start.
#[derive(Debug)]
pub struct SoundBank {
    encoded: HashMap<Sound, Arc<EncodedSound>>,
}

impl SoundBank {
    pub fn load() -> Result<SoundBank, opus::Error> {
        let mut encoded = HashMap::new();
        for sound in Sound::ALL {
            let mut encoder =
                opus::Encoder::new(wav::RATE_HZ, opus::Channels::Mono, opus::Application::Audio)?;
            let samples = sound.samples();
            let mut frames = Vec::with_capacity(samples.len() / 960 + 1);
            let mut out = vec![0u8; 1500];
            for chunk in samples.chunks(960) {
                let mut frame = [0f32; 960];
                frame[..chunk.len()].copy_from_slice(chunk);
                let n = encoder.encode_float(&frame, &mut out)?;
                frames.push(Arc::from(&out[..n]));
            }
            encoded.insert(sound, Arc::new(EncodedSound { frames }));
        }
        Ok(SoundBank { encoded })
    }

    pub fn encoded(&self, sound: Sound) -> Arc<EncodedSound> {
        self.encoded
            .get(&sound)
            .cloned()
            .unwrap_or_else(|| Arc::new(EncodedSound { frames: Vec::new() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sound_decodes_and_is_not_silent() {
        for sound in Sound::ALL {
            let s = sound.samples();
            assert!(s.len() >= 4800, "{sound:?} is too short");
            let peak = s.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(peak > 0.05, "{sound:?} is silent");
        }
    }

    #[test]
    fn sounds_are_found_by_name() {
        assert_eq!(Sound::from_name("menu-prompt"), Some(Sound::MenuPrompt));
        assert_eq!(
            Sound::from_name("survey-prompt.wav"),
            Some(Sound::SurveyPrompt)
        );
        assert_eq!(Sound::from_name("nope"), None);
    }

    #[test]
    fn bank_encodes_frames() {
        let bank = SoundBank::load().unwrap();
        assert!(bank.encoded(Sound::Ringback).frames.len() > 50);
    }
}

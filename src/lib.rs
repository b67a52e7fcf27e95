//! Sapa: a call-center workstation. This crate holds the switchboard (signaling, ACD, media
//! bridge, store), the clients (headless peers, and the phone engine that drives the `ui`
//! crate's views), and the sans-IO cores they share.
//!
//! Rooms: `protocol` (messages), `acd` (routing state machine), `store` (SQL), `switchboard`
//! (async drivers around them), `audio` (jitter buffer, decoder, mixer, tones), `peer`
//! (WebRTC client and headless peers), `sounds` and `wav` (audio files). See
//! `docs/architecture.md` for how a call flows through them.

pub mod acd;
pub mod audio;
pub mod config;
pub mod ivr;
pub mod metrics;
pub mod peer;
pub mod phone;
pub mod protocol;
pub mod sounds;
pub mod store;
pub mod switchboard;
pub mod wav;

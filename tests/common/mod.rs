//! Shared helpers for the end-to-end tests: start a real switchboard (SQLite file, loopback
//! ports), add users, make tone WAVs, and measure which tone dominates a recording; play into
//! and record from the virtual headset's PulseAudio devices (scripts/virtual-headset.sh).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sapa::config::SwitchboardConfig;
use sapa::store::Role;
use sapa::switchboard::{self, Running};

pub const PASSWORD: &str = "correct horse battery staple";

/// A switchboard on loopback with a fresh SQLite database in `dir`.
pub async fn start_switchboard(dir: &Path, config: SwitchboardConfig) -> Running {
    let db = dir.join("sapa.db");
    switchboard::start(switchboard::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        media_listen: "127.0.0.1:0".parse().unwrap(),
        db_url: format!("sqlite:{}", db.display()),
        config,
    })
    .await
    .expect("switchboard starts")
}

pub async fn add_agents(running: &Running, names: &[&str]) {
    for name in names {
        running
            .store
            .add_user(name, Role::Agent, PASSWORD)
            .await
            .expect("user added");
    }
}

/// Writes `secs` of a sine at `freq_hz` (48 kHz mono) and returns its path.
pub fn tone_wav(dir: &Path, name: &str, freq_hz: f32, secs: f32) -> PathBuf {
    let path = dir.join(name);
    let n = (48_000.0 * secs) as usize;
    let samples: Vec<f32> = (0..n)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq_hz * i as f32 / 48_000.0).sin())
        .collect();
    sapa::wav::write_mono_48k(&path, &samples).unwrap();
    path
}

/// Goertzel power of one frequency in a block.
pub fn goertzel(block: &[f32], freq_hz: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * freq_hz / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in block {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / block.len() as f32
}

/// Share of 100 ms windows in which `want` clearly dominates `other` (10x the power) and the
/// signal is audible.
pub fn dominance(samples: &[f32], want: f32, other: f32) -> f64 {
    let windows: Vec<&[f32]> = samples.chunks_exact(4800).collect();
    if windows.is_empty() {
        return 0.0;
    }
    let good = windows
        .iter()
        .filter(|w| {
            let p_want = goertzel(w, want);
            let p_other = goertzel(w, other);
            p_want > 10.0 * p_other && p_want > 1e-3
        })
        .count();
    good as f64 / windows.len() as f64
}

pub fn read(path: &Path) -> Vec<f32> {
    sapa::wav::read_mono_48k(path).expect("recording exists")
}

/// Records a PulseAudio source as raw 48 kHz mono s16le until `stop`.
pub struct Recorder {
    child: Child,
    path: PathBuf,
}

impl Recorder {
    pub fn start(source: &str, path: PathBuf) -> Recorder {
        let child = Command::new("parecord")
            .args([
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=20",
                &format!("--device={source}"),
            ])
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .expect("parecord runs (apt-get install pulseaudio-utils)");
        Recorder { child, path }
    }

    pub fn stop(mut self) -> Vec<f32> {
        // SIGINT lets parecord flush what it has.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
            .collect()
    }
}

impl Drop for Recorder {
    /// A test that fails before `stop` leaves no parecord behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays a WAV into a PulseAudio sink.
pub fn play_into(sink: &str, wav: &Path) -> Child {
    Command::new("paplay")
        .arg(format!("--device={sink}"))
        .arg(wav)
        .stdin(Stdio::null())
        .spawn()
        .expect("paplay runs (apt-get install pulseaudio-utils)")
}

/// Seconds of 100 ms windows in which `want` clearly dominates `other`.
pub fn seconds_dominated(samples: &[f32], want: f32, other: f32) -> f64 {
    dominance(samples, want, other) * (samples.len() / 4800) as f64 / 10.0
}

/// A headless agent that answers `calls` calls, saying nothing, with no extras.
pub fn plain_agent(url: &str, user: &str, calls: u32) -> sapa::peer::agent::AgentOptions {
    sapa::peer::agent::AgentOptions::silent(url, user, PASSWORD, calls)
}

/// A headless caller from `from` that plays `play` and records into `dir/<from>.wav`.
pub fn plain_caller(
    url: &str,
    from: &str,
    play: &Path,
    dir: &Path,
) -> sapa::peer::caller::CallerOptions {
    sapa::peer::caller::CallerOptions {
        switchboard: url.to_owned(),
        from: from.to_owned(),
        name: None,
        queue: None,
        play: play.to_owned(),
        record: dir.join(format!("{from}.wav")),
        talk_secs: None,
        max_wait_secs: 30.0,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    }
}

//! Real audio devices: the agent's headset (microphone + speaker) and a separate ring device,
//! on cpal's PulseAudio host when a server is reachable (`PULSE_SERVER` or `XDG_RUNTIME_DIR`),
//! ALSA otherwise.
//!
//! Run loop (the 20 ms voice clock owns the headset; nothing here spawns a thread):
//! ```text
//! let (mut headset, notices) = Headset::open(saved.mic.as_deref(), saved.speaker.as_deref())?;
//! for n in notices { show(n) }                       // "microphone 'X' not found; using default 'Y'"
//! loop { tick.await;
//!        headset.read_mic_frame(&mut said);          // 960 samples, 48 kHz mono
//!        headset.write_speaker_frame(&heard); }
//! ```
//!
//! The cpal callbacks only copy samples between the device buffer and a lock-free SPSC ring
//! (rtrb), down-/up-mixing channels on the way; they never block, lock, allocate, free or log.
//! Under- and overruns are counted with atomics. Everything else (resampling with rubato to and
//! from 48 kHz, keeping the rings shallow, level meters) runs on the caller's side of the rings.
//! Devices are opened with a fixed 10 ms buffer where the device allows it: PulseAudio's default
//! pushes hundreds of milliseconds in bursts.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{BufferSize, FromSample, SampleFormat, SizedSample, StreamConfig, SupportedBufferSize};
use rubato::{FastFixedIn, PolynomialDegree, Resampler};
use serde::Serialize;

use crate::audio::tone::{LevelMeter, rms_dbfs};

/// The voice path's rate: everything outside this module is 48 kHz mono.
pub const RATE_HZ: u32 = 48_000;
/// One 20 ms frame at 48 kHz: the longest frame the voice clock reads or writes (10 ms
/// frames, 480 samples, work too).
pub const FRAME: usize = 960;

/// Device buffer asked for: 10 ms.
const DEVICE_BUFFER_MS: u32 = 10;
/// Ring capacity on both sides; what is above the targets below is dropped, so this only has
/// to absorb scheduling hiccups.
const RING_MS: u32 = 250;
/// The microphone ring is trimmed to `MIC_KEEP_MS` once it holds more than `MIC_MAX_MS`
/// (the voice clock ran slow or stalled): old audio is worth less than low delay.
const MIC_MAX_MS: u32 = 80;
const MIC_KEEP_MS: u32 = 30;
/// Before the first frame (and after an underrun) wait for one frame and this much more, so
/// 10 ms device callbacks against the voice clock do not starve every other tick.
const MIC_PRIME_EXTRA_MS: u32 = 10;
/// The speaker ring is kept between these: a frame written when more than two frames and
/// `SPEAKER_SLACK_MS` are queued is dropped; when less than `SPEAKER_LOW_MS` is queued (start,
/// or after an underrun) one frame of silence goes first.
const SPEAKER_SLACK_MS: u32 = 20;
const SPEAKER_LOW_MS: u32 = 1;
/// Audio a ring holds beyond what timing needs is delay for nothing. Over each second the
/// least level seen at the same point of the cycle (the microphone's right after a read, the
/// speaker's right before a write) is measured, and what is above these margins is cut
/// where the audio is quiet (see [`SurplusTrim`]).
const MIC_MARGIN_MS: f32 = 3.0;
const SPEAKER_MARGIN_MS: f32 = 5.0;
const SURPLUS_WINDOW_MS: f32 = 1000.0;
/// A frame below this level is quiet enough to cut next to.
const QUIET_DBFS: f32 = -45.0;
/// The speaker's resampler converts 10 ms at a time, so frames of 10 and 20 ms both fit.
const SPEAKER_CHUNK: usize = FRAME / 2;
/// How long to wait for a stream to be created before calling the device unusable.
const BUILD_TIMEOUT: Duration = Duration::from_secs(5);
/// A running device that has not called back for this long is taken for gone (unplugged, or
/// its audio server restarted) and opened again. Its callbacks come every 5-20 ms; a second
/// is far beyond any scheduling hiccup and short enough for a caller to wait through.
pub const STALL_AFTER: Duration = Duration::from_secs(1);

/// Errors of the device layer. Each prints as one line a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no audio {direction} device found ({hint})")]
    NoDevice { direction: Direction, hint: String },
    #[error("audio system unavailable: {0}")]
    Host(String),
    #[error("cannot open {direction} device '{name}': {reason}")]
    Open {
        direction: Direction,
        name: String,
        reason: String,
    },
    /// A running stream would not pause or resume.
    #[error("audio device '{name}' does not pause or resume: {reason}")]
    Stream { name: String, reason: String },
}

/// Which way audio flows through a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Input,
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// What a device is used for, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Microphone,
    Speaker,
    Ringer,
}

impl Role {
    fn direction(self) -> Direction {
        match self {
            Role::Microphone => Direction::Input,
            Role::Speaker | Role::Ringer => Direction::Output,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Microphone => "microphone",
            Role::Speaker => "speaker",
            Role::Ringer => "ring device",
        })
    }
}

/// A remembered device was not there and another was used. Shown to the agent, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceNotice {
    pub role: Role,
    /// The name that was asked for.
    pub wanted: String,
    /// The device used instead.
    pub used: String,
}

impl fmt::Display for DeviceNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} '{}' not found; using default '{}'",
            self.role, self.wanted, self.used
        )
    }
}

/// Something happened to a device of the running headset while in use
/// ([`Headset::watch_devices`]): it stopped calling back ([`STALL_AFTER`]) and the headset
/// tried to open it again, or the audio server moved its stream to another device. Shown to
/// the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DeviceEvent {
    /// Open again: `now` is the same device when it is back, else the system default.
    Reopened {
        role: Role,
        lost: String,
        now: String,
    },
    /// Nothing could be opened; the headset tries again after another [`STALL_AFTER`].
    Failed {
        role: Role,
        lost: String,
        reason: String,
    },
    /// The audio server moved the stream to another device, and it plays on there: its own
    /// device was removed (`from_gone`: PulseAudio moves the streams of an unplugged USB
    /// headset to the default), or someone moved it with a mixer.
    Moved {
        role: Role,
        from: String,
        to: String,
        from_gone: bool,
    },
}

impl DeviceEvent {
    /// What opening `lost` again came to: the device now in use, or why none is.
    fn new(role: Role, lost: String, reopened: Result<String, DeviceError>) -> DeviceEvent {
        match reopened {
            Ok(now) => DeviceEvent::Reopened { role, lost, now },
            Err(e) => DeviceEvent::Failed {
                role,
                lost,
                reason: e.to_string(),
            },
        }
    }
}

impl fmt::Display for DeviceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceEvent::Reopened { role, lost, now } if lost == now => {
                write!(f, "{role} '{lost}' stopped; it is open again")
            }
            DeviceEvent::Reopened { role, lost, now } => {
                write!(f, "{role} '{lost}' stopped; now using '{now}'")
            }
            DeviceEvent::Failed { role, lost, reason } => write!(
                f,
                "{role} '{lost}' stopped and no {role} could be opened ({reason}); trying again"
            ),
            DeviceEvent::Moved {
                role,
                from,
                to,
                from_gone: true,
            } => write!(f, "{role} '{from}' is gone; now using '{to}'"),
            DeviceEvent::Moved {
                role,
                from,
                to,
                from_gone: false,
            } => write!(f, "{role} moved from '{from}' to '{to}' outside Sapa"),
        }
    }
}

/// Tells a device that stopped calling back from one that is paused or merely slow: fed the
/// count of its callbacks (sans-IO), it answers true once per [`STALL_AFTER`] without one
/// while the device should run.
#[derive(Debug, Default)]
pub struct StallWatch {
    last_count: u64,
    /// Since when the count has stood still (None: paused, or not looked at yet).
    since: Option<Instant>,
}

impl StallWatch {
    pub fn stalled(&mut self, now: Instant, callbacks: u64, running: bool) -> bool {
        match self.since {
            _ if !running => {
                self.since = None;
                false
            }
            Some(since) if callbacks == self.last_count => {
                if now.saturating_duration_since(since) < STALL_AFTER {
                    return false;
                }
                self.since = Some(now);
                true
            }
            _ => {
                self.last_count = callbacks;
                self.since = Some(now);
                false
            }
        }
    }
}

/// One device as listed to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Stable name to pass back to `Headset::open` (PulseAudio: the sink/source name).
    pub name: String,
    /// Human description ("Built-in Audio Analog Stereo").
    pub description: String,
    pub is_default: bool,
}

/// The devices of the audio host in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceList {
    /// "PulseAudio" or "ALSA".
    pub host: String,
    pub inputs: Vec<DeviceInfo>,
    pub outputs: Vec<DeviceInfo>,
    pub default_input: Option<String>,
    pub default_output: Option<String>,
}

/// Lists input and output devices, defaults marked.
pub fn list_devices() -> Result<DeviceList, DeviceError> {
    let host = AudioHost::open()?;
    let default_input = host.host.default_input_device().map(|d| device_name(&d));
    let default_output = host.host.default_output_device().map(|d| device_name(&d));
    let describe = |devices: Vec<cpal::Device>, default: &Option<String>| -> Vec<DeviceInfo> {
        devices
            .iter()
            .map(|d| {
                let name = device_name(d);
                DeviceInfo {
                    is_default: default.as_deref() == Some(name.as_str()),
                    description: d.to_string(),
                    name,
                }
            })
            .collect()
    };
    Ok(DeviceList {
        host: host.host.id().name().to_owned(),
        inputs: describe(host.devices(Direction::Input), &default_input),
        outputs: describe(host.devices(Direction::Output), &default_output),
        default_input,
        default_output,
    })
}

/// Counters shared between the callbacks (which only increment them) and the owner, and the
/// owner's paused flag that the callbacks read.
#[derive(Debug, Default)]
struct Counters {
    /// The mic callback found its ring full and dropped samples.
    mic_overruns: AtomicU64,
    /// A mic frame was asked for and not enough audio had arrived.
    mic_underruns: AtomicU64,
    /// Mic samples thrown away to keep the delay small (the voice clock fell behind).
    mic_trimmed_samples: AtomicU64,
    /// The speaker callback ran out of samples mid-stream.
    speaker_underruns: AtomicU64,
    /// A speaker frame was dropped because the ring was already deep enough.
    speaker_overruns: AtomicU64,
    /// Speaker samples (device rate) left out of quiet frames to keep the delay small.
    speaker_trimmed_samples: AtomicU64,
    /// Xruns the backend reported.
    xruns: AtomicU64,
    /// Other stream errors (device unplugged, server gone).
    stream_errors: AtomicU64,
    /// Set while the owner has paused the streams ([`Headset::set_running`]; the one record
    /// of it, which the owner reads too). A device that cannot pause (some ALSA devices)
    /// keeps calling back between calls; what its callbacks then drop or lack is nobody's
    /// loss, so it is not counted.
    paused: AtomicBool,
    /// Callbacks so far, for [`StallWatch`]: a running device that stops calling back is gone.
    mic_callbacks: AtomicU64,
    speaker_callbacks: AtomicU64,
}

/// A snapshot for the UI and tests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadsetStats {
    pub mic_device: String,
    pub speaker_device: String,
    pub mic_rate_hz: u32,
    pub speaker_rate_hz: u32,
    pub mic_overruns: u64,
    pub mic_underruns: u64,
    pub mic_trimmed_samples: u64,
    pub speaker_underruns: u64,
    pub speaker_overruns: u64,
    /// Speaker samples (device rate) left out of quiet frames to keep the delay small.
    pub speaker_trimmed_samples: u64,
    pub xruns: u64,
    pub stream_errors: u64,
    /// Microphone audio waiting to be read, ms.
    pub mic_buffered_ms: f32,
    /// Speaker audio queued for the device, ms.
    pub speaker_buffered_ms: f32,
    pub mic_level_dbfs: f32,
    pub mic_peak_dbfs: f32,
    pub speaker_level_dbfs: f32,
    pub speaker_peak_dbfs: f32,
}

/// The agent's headset: one input and one output stream, each replaceable on its own.
pub struct Headset {
    mic: MicStream,
    speaker: SpeakerStream,
    counters: Arc<Counters>,
    mic_meter: LevelMeter,
    speaker_meter: LevelMeter,
    mic_watch: StallWatch,
    speaker_watch: StallWatch,
}

impl Headset {
    /// Opens the named microphone and speaker (PulseAudio source/sink names or descriptions
    /// as `list_devices` gives them), or the defaults. A name that is not there falls back to
    /// the default with a notice; no device at all is an error naming what is missing.
    pub fn open(
        mic: Option<&str>,
        speaker: Option<&str>,
    ) -> Result<(Headset, Vec<DeviceNotice>), DeviceError> {
        let host = AudioHost::open()?;
        let counters = Arc::new(Counters::default());
        let mut notices = Vec::new();
        let (mic_device, notice) = host.find(Role::Microphone, mic)?;
        notices.extend(notice);
        let (speaker_device, notice) = host.find(Role::Speaker, speaker)?;
        notices.extend(notice);
        let mic = MicStream::open(&mic_device, &counters)
            .map_err(|e| host.explain(Direction::Input, e))?;
        let speaker = SpeakerStream::open(&speaker_device, &counters)
            .map_err(|e| host.explain(Direction::Output, e))?;
        Ok((
            Headset {
                mic,
                speaker,
                counters,
                mic_meter: LevelMeter::default(),
                speaker_meter: LevelMeter::default(),
                mic_watch: StallWatch::default(),
                speaker_watch: StallWatch::default(),
            },
            notices,
        ))
    }

    /// Takes the next frame of the microphone at 48 kHz mono: `out.len()` samples, 480 (10 ms)
    /// or 960 (20 ms). Returns false (and silence) when not enough has arrived yet; drops the
    /// oldest audio when too much has.
    pub fn read_mic_frame(&mut self, out: &mut [f32]) -> bool {
        if !self.is_running() || out.len() > FRAME {
            out.fill(0.0);
            return false;
        }
        let ok = self.mic.fifo.read_frame(out, &self.counters);
        self.mic_meter
            .update(out, out.len() as f32 / RATE_HZ as f32);
        ok
    }

    /// Queues one frame (48 kHz mono, 10 or 20 ms) for the speaker, keeping about one to two
    /// frames queued.
    pub fn write_speaker_frame(&mut self, frame: &[f32]) {
        if !self.is_running() || frame.len() > FRAME {
            return;
        }
        self.speaker_meter
            .update(frame, frame.len() as f32 / RATE_HZ as f32);
        self.speaker.fifo.write_frame(frame, &self.counters);
    }

    /// Pauses (corks) or resumes both streams. Paused, the device callbacks stop and the
    /// PulseAudio connections go quiet, so an idle phone costs almost nothing; resuming takes
    /// one server round trip plus the microphone's first period. What the microphone held
    /// before the pause is dropped, so it adds no delay.
    pub fn set_running(&mut self, on: bool) -> Result<(), DeviceError> {
        if on == self.is_running() {
            return Ok(());
        }
        if on {
            self.mic.fifo.discard();
        }
        set_stream_running(&self.speaker.stream, &self.speaker.name, on)?;
        set_stream_running(&self.mic.stream, &self.mic.name, on)?;
        self.counters.paused.store(!on, Relaxed);
        Ok(())
    }

    /// False while paused ([`Headset::set_running`]): the streams are corked, the device
    /// callbacks do not run (or, on a device that cannot pause, count nothing), and frames
    /// are neither read nor written.
    pub fn is_running(&self) -> bool {
        !self.counters.paused.load(Relaxed)
    }

    /// Replaces the microphone stream only; the speaker (and the call) go on. A name that is
    /// not there falls back to the default with a notice.
    pub fn switch_microphone(
        &mut self,
        name: Option<&str>,
    ) -> Result<Option<DeviceNotice>, DeviceError> {
        // A fresh connection for the new stream: on the connection of the old one, PulseAudio
        // answered "Invalid argument" (seen with the virtual headset, cause not pinned down).
        let host = AudioHost::open()?;
        let (device, notice) = host.find(Role::Microphone, name)?;
        // The new stream is built before the old one goes, so a failure leaves the old one.
        let mic = MicStream::open(&device, &self.counters)
            .map_err(|e| host.explain(Direction::Input, e))?;
        if !self.is_running() {
            set_stream_running(&mic.stream, &mic.name, false)?;
        }
        self.mic = mic;
        Ok(notice)
    }

    /// Replaces the speaker stream only; the microphone (and the call) go on.
    pub fn switch_speaker(
        &mut self,
        name: Option<&str>,
    ) -> Result<Option<DeviceNotice>, DeviceError> {
        // A fresh connection for the new stream: on the connection of the old one, PulseAudio
        // answered "Invalid argument" (seen with the virtual headset, cause not pinned down).
        let host = AudioHost::open()?;
        let (device, notice) = host.find(Role::Speaker, name)?;
        let speaker = SpeakerStream::open(&device, &self.counters)
            .map_err(|e| host.explain(Direction::Output, e))?;
        if !self.is_running() {
            set_stream_running(&speaker.stream, &speaker.name, false)?;
        }
        self.speaker = speaker;
        Ok(notice)
    }

    /// Call once per frame. A device that stopped calling back while the headset runs
    /// (its audio server restarted) is opened again: the same one when it is back, else the
    /// default. A stream the audio server moved to another device (PulseAudio does so when a
    /// USB headset is unplugged) plays on there, and the headset now names that device. The
    /// other device and the call go on. Costs four atomic loads unless something happened;
    /// opening a device again, or asking whether a moved one is gone, blocks for the server's
    /// round trips.
    pub fn watch_devices(&mut self, now: Instant) -> Vec<DeviceEvent> {
        let running = self.is_running();
        let mut done = Vec::new();
        done.extend(follow_move(
            Role::Microphone,
            &mut self.mic.name,
            &self.mic.moved,
        ));
        done.extend(follow_move(
            Role::Speaker,
            &mut self.speaker.name,
            &self.speaker.moved,
        ));
        let mic_calls = self.counters.mic_callbacks.load(Relaxed);
        if self.mic_watch.stalled(now, mic_calls, running) {
            done.push(self.reopen(Role::Microphone));
        }
        let speaker_calls = self.counters.speaker_callbacks.load(Relaxed);
        if self.speaker_watch.stalled(now, speaker_calls, running) {
            done.push(self.reopen(Role::Speaker));
        }
        done
    }

    /// Opens the microphone or the speaker again, on the same device if it is there.
    fn reopen(&mut self, role: Role) -> DeviceEvent {
        let (lost, reopened) = if role == Role::Microphone {
            let lost = self.mic.name.clone();
            let reopened = self.switch_microphone(Some(&lost));
            (lost, reopened.map(|_| self.mic.name.clone()))
        } else {
            let lost = self.speaker.name.clone();
            let reopened = self.switch_speaker(Some(&lost));
            (lost, reopened.map(|_| self.speaker.name.clone()))
        };
        DeviceEvent::new(role, lost, reopened)
    }

    pub fn stats(&self) -> HeadsetStats {
        let c = &self.counters;
        HeadsetStats {
            mic_device: self.mic.name.clone(),
            speaker_device: self.speaker.name.clone(),
            mic_rate_hz: self.mic.fifo.rate_hz,
            speaker_rate_hz: self.speaker.fifo.rate_hz,
            mic_overruns: c.mic_overruns.load(Relaxed),
            mic_underruns: c.mic_underruns.load(Relaxed),
            mic_trimmed_samples: c.mic_trimmed_samples.load(Relaxed),
            speaker_underruns: c.speaker_underruns.load(Relaxed),
            speaker_overruns: c.speaker_overruns.load(Relaxed),
            speaker_trimmed_samples: c.speaker_trimmed_samples.load(Relaxed),
            xruns: c.xruns.load(Relaxed),
            stream_errors: c.stream_errors.load(Relaxed),
            mic_buffered_ms: self.mic.fifo.buffered_ms(),
            speaker_buffered_ms: self.speaker.fifo.buffered_ms(),
            mic_level_dbfs: self.mic_meter.rms_dbfs(),
            mic_peak_dbfs: self.mic_meter.peak_dbfs(),
            speaker_level_dbfs: self.speaker_meter.rms_dbfs(),
            speaker_peak_dbfs: self.speaker_meter.peak_dbfs(),
        }
    }
}

/// The ring device: plays a sound in a loop on its own output (often the PC speaker, so the
/// agent hears a call with the headset off).
pub struct Ringer {
    /// Dropping it stops the device. Paused (corked) while nothing rings.
    stream: cpal::Stream,
    playing: bool,
    name: String,
    rate_hz: u32,
    /// Commands to the callback: a new loop to play, or stop.
    commands: rtrb::Producer<RingCommand>,
    /// Loops the callback is done with, to be freed here (the callback never frees).
    returned: rtrb::Consumer<Box<[f32]>>,
    moved: Arc<MovedTo>,
}

enum RingCommand {
    Play(Box<[f32]>),
    Stop,
}

impl Ringer {
    /// Opens the named output device, or the default; a missing name falls back with a notice.
    pub fn open(name: Option<&str>) -> Result<(Ringer, Option<DeviceNotice>), DeviceError> {
        let host = AudioHost::open()?;
        let (device, notice) = host.find(Role::Ringer, name)?;
        let device_name = device_name(&device);
        let chosen = choose_config(&device, Direction::Output)
            .map_err(|e| DeviceError::Open {
                direction: Direction::Output,
                name: device_name.clone(),
                reason: e.to_string(),
            })
            .map_err(|e| host.explain(Direction::Output, e))?;
        let channels = chosen.config.channels as usize;
        let counters = Arc::new(Counters::default());
        let moved = Arc::new(MovedTo::default());
        let (stream, (commands, returned)) =
            build_output(&device, &device_name, chosen, &counters, &moved, || {
                let (commands, command_rx) = rtrb::RingBuffer::new(8);
                let (return_tx, returned) = rtrb::RingBuffer::new(16);
                let mut player = LoopPlayer {
                    commands: command_rx,
                    returns: return_tx,
                    current: None,
                    pos: 0,
                    parked: None,
                };
                (
                    move |out: &mut [f32]| player.fill(out, channels),
                    (commands, returned),
                )
            })
            .map_err(|e| host.explain(Direction::Output, e))?;
        // Nothing rings yet: no callbacks until the first ring.
        set_stream_running(&stream, &device_name, false)?;
        Ok((
            Ringer {
                stream,
                playing: false,
                name: device_name,
                rate_hz: chosen.config.sample_rate,
                commands,
                returned,
                moved,
            },
            notice,
        ))
    }

    /// The device the ring plays on (moves included, once [`Self::watch_device`] saw them).
    pub fn device_name(&self) -> &str {
        &self.name
    }

    /// The audio server moved the ring to another device (its own was removed, or someone
    /// moved it): from now on the ringer names that device, and the event says so. A move
    /// while nothing rings shows once the next ring starts. One atomic load otherwise.
    pub fn watch_device(&mut self) -> Option<DeviceEvent> {
        follow_move(Role::Ringer, &mut self.name, &self.moved)
    }

    /// Plays `samples_48k` (48 kHz mono) over and over until `stop`.
    pub fn play_loop(&mut self, samples_48k: &[f32]) {
        self.free_returned();
        if samples_48k.is_empty() {
            self.stop();
            return;
        }
        let samples = resample_once(samples_48k, RATE_HZ, self.rate_hz).into_boxed_slice();
        // The ring holds 8 commands and the callback drains it every 10 ms; a full ring means
        // the device is stalled, and the newest request is the one that matters, so retry once.
        if let Err(rtrb::PushError::Full(cmd)) = self.commands.push(RingCommand::Play(samples)) {
            std::thread::sleep(Duration::from_millis(20));
            let _ = self.commands.push(cmd);
        }
        self.set_playing(true);
    }

    /// Stops the ring and pauses the device until the next one.
    pub fn stop(&mut self) {
        let _ = self.commands.push(RingCommand::Stop);
        self.free_returned();
        // The Stop above is taken at the next callback, after the resume.
        self.set_playing(false);
    }

    /// Resumes or pauses the ring device; a device that refuses is logged and left as it is.
    fn set_playing(&mut self, on: bool) {
        if self.playing == on {
            return;
        }
        match set_stream_running(&self.stream, &self.name, on) {
            Ok(()) => self.playing = on,
            Err(e) => tracing::warn!("ringer: {e}"),
        }
    }

    fn free_returned(&mut self) {
        while self.returned.pop().is_ok() {}
    }
}

/// The ringer's callback state.
struct LoopPlayer {
    commands: rtrb::Consumer<RingCommand>,
    returns: rtrb::Producer<Box<[f32]>>,
    current: Option<Box<[f32]>>,
    pos: usize,
    /// A finished loop the return ring had no room for; handed back on a later callback.
    parked: Option<Box<[f32]>>,
}

impl LoopPlayer {
    fn fill(&mut self, out: &mut [f32], channels: usize) {
        if let Some(old) = self.parked.take() {
            self.give_back(old);
        }
        while let Ok(cmd) = self.commands.pop() {
            let next = match cmd {
                RingCommand::Play(samples) => Some(samples),
                RingCommand::Stop => None,
            };
            if let Some(old) = std::mem::replace(&mut self.current, next) {
                self.give_back(old);
            }
            self.pos = 0;
        }
        match &self.current {
            None => out.fill(0.0),
            Some(samples) => {
                for frame in out.chunks_exact_mut(channels) {
                    frame.fill(samples[self.pos]);
                    self.pos = (self.pos + 1) % samples.len();
                }
            }
        }
    }

    fn give_back(&mut self, samples: Box<[f32]>) {
        if let Err(rtrb::PushError::Full(samples)) = self.returns.push(samples) {
            // Only one can wait here; with a 16-slot return ring and an owner that drains it on
            // every command this does not fill up, and if it did the older one would be freed.
            self.parked = Some(samples);
        }
    }
}

/// The host in use and a hint for "no device" messages.
struct AudioHost {
    host: cpal::Host,
    /// Why this host, for errors: "PulseAudio at PULSE_SERVER=unix:/x" or "is PulseAudio
    /// running? PULSE_SERVER unset".
    hint: String,
}

impl AudioHost {
    fn open() -> Result<AudioHost, DeviceError> {
        let pulse_env = match std::env::var("PULSE_SERVER") {
            Ok(s) => format!("PULSE_SERVER={s}"),
            Err(_) => "PULSE_SERVER unset".to_owned(),
        };
        let mut pulse_failure = String::new();
        if cpal::available_hosts().contains(&cpal::HostId::PulseAudio) {
            match cpal::host_from_id(cpal::HostId::PulseAudio) {
                Ok(host) => {
                    return Ok(AudioHost {
                        host,
                        hint: format!("PulseAudio at {pulse_env}"),
                    });
                }
                Err(e) => pulse_failure = format!(": {e}"),
            }
        }
        let host = cpal::host_from_id(cpal::HostId::Alsa)
            .map_err(|e| DeviceError::Host(format!("neither PulseAudio nor ALSA: {e}")))?;
        Ok(AudioHost {
            host,
            hint: format!("is PulseAudio running? {pulse_env}{pulse_failure}; ALSA has none"),
        })
    }

    fn devices(&self, direction: Direction) -> Vec<cpal::Device> {
        let devices = match direction {
            Direction::Input => self.host.input_devices().map(|d| d.collect::<Vec<_>>()),
            Direction::Output => self.host.output_devices().map(|d| d.collect::<Vec<_>>()),
        };
        devices.unwrap_or_default()
    }

    fn default_device(&self, direction: Direction) -> Option<cpal::Device> {
        let default = match direction {
            Direction::Input => self.host.default_input_device(),
            Direction::Output => self.host.default_output_device(),
        };
        default.or_else(|| self.devices(direction).into_iter().next())
    }

    /// A device that failed to open on a host that lists none of its kind is "no device"
    /// (ALSA offers a "default" PCM even when nothing is behind it).
    fn explain(&self, direction: Direction, err: DeviceError) -> DeviceError {
        if self.devices(direction).is_empty() {
            DeviceError::NoDevice {
                direction,
                hint: format!("{}; {err}", self.hint),
            }
        } else {
            err
        }
    }

    /// The named device, or the default with a notice when the name is not there.
    fn find(
        &self,
        role: Role,
        wanted: Option<&str>,
    ) -> Result<(cpal::Device, Option<DeviceNotice>), DeviceError> {
        let direction = role.direction();
        if let Some(wanted) = wanted {
            let found = self
                .devices(direction)
                .into_iter()
                .find(|d| device_name(d) == wanted || d.to_string() == wanted);
            if let Some(device) = found {
                return Ok((device, None));
            }
        }
        let device = self
            .default_device(direction)
            .ok_or_else(|| DeviceError::NoDevice {
                direction,
                hint: self.hint.clone(),
            })?;
        let notice = wanted.map(|wanted| DeviceNotice {
            role,
            wanted: wanted.to_owned(),
            used: device_name(&device),
        });
        Ok((device, notice))
    }
}

/// A stream the audio server moved since the last look now plays on another device:
/// `name` becomes that device's, and the event says so.
fn follow_move(role: Role, name: &mut String, moved: &MovedTo) -> Option<DeviceEvent> {
    let to = moved.take().filter(|to| to != name)?;
    let from = std::mem::replace(name, to.clone());
    Some(DeviceEvent::Moved {
        role,
        from_gone: device_gone(role, &from),
        from,
        to,
    })
}

/// Whether the device named `name` is no longer there (false when that cannot be told).
fn device_gone(role: Role, name: &str) -> bool {
    AudioHost::open()
        .and_then(|host| host.find(role, Some(name)))
        .is_ok_and(|(_, notice)| notice.is_some())
}

/// The stable name of a device: its id within the host (PulseAudio sink/source name, ALSA PCM
/// name), or its description when it has no id.
fn device_name(device: &cpal::Device) -> String {
    device
        .id()
        .map(|id| id.id().to_owned())
        .unwrap_or_else(|_| device.to_string())
}

/// The microphone stream and the reading side of its ring.
struct MicStream {
    /// Dropping it stops the device.
    stream: cpal::Stream,
    /// The device it records from now (moves included).
    name: String,
    fifo: MicFifo,
    moved: Arc<MovedTo>,
}

impl MicStream {
    fn open(device: &cpal::Device, counters: &Arc<Counters>) -> Result<MicStream, DeviceError> {
        let name = device_name(device);
        let chosen = choose_config(device, Direction::Input).map_err(|e| DeviceError::Open {
            direction: Direction::Input,
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let rate_hz = chosen.config.sample_rate;
        let moved = Arc::new(MovedTo::default());
        let (stream, consumer) = build_input(
            device,
            &name,
            chosen,
            ms_to_samples(RING_MS, rate_hz),
            counters,
            &moved,
        )?;
        Ok(MicStream {
            stream,
            name,
            fifo: MicFifo::new(consumer, rate_hz),
            moved,
        })
    }
}

/// The speaker stream and the writing side of its ring.
struct SpeakerStream {
    /// Dropping it stops the device.
    stream: cpal::Stream,
    /// The device it plays on now (moves included).
    name: String,
    fifo: SpeakerFifo,
    moved: Arc<MovedTo>,
}

impl SpeakerStream {
    fn open(device: &cpal::Device, counters: &Arc<Counters>) -> Result<SpeakerStream, DeviceError> {
        let name = device_name(device);
        let chosen = choose_config(device, Direction::Output).map_err(|e| DeviceError::Open {
            direction: Direction::Output,
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let rate_hz = chosen.config.sample_rate;
        let channels = chosen.config.channels as usize;
        let moved = Arc::new(MovedTo::default());
        let (stream, producer) = build_output(device, &name, chosen, counters, &moved, || {
            let (producer, consumer) = rtrb::RingBuffer::new(ms_to_samples(RING_MS, rate_hz));
            let mut feed = SpeakerFeed::new(consumer, channels, counters.clone());
            (move |out: &mut [f32]| feed.fill(out), producer)
        })?;
        Ok(SpeakerStream {
            stream,
            name,
            fifo: SpeakerFifo::new(producer, rate_hz),
            moved,
        })
    }
}

/// The speaker callback's state: each sample of the ring goes to every channel; silence when
/// the ring runs dry.
struct SpeakerFeed {
    ring: rtrb::Consumer<f32>,
    channels: usize,
    counters: Arc<Counters>,
    /// Audio has flowed since the start or the last pause: only then is a dry ring an
    /// underrun (an idle start is not a glitch).
    started: bool,
}

impl SpeakerFeed {
    fn new(ring: rtrb::Consumer<f32>, channels: usize, counters: Arc<Counters>) -> SpeakerFeed {
        SpeakerFeed {
            ring,
            channels,
            counters,
            started: false,
        }
    }

    fn fill(&mut self, out: &mut [f32]) {
        self.counters.speaker_callbacks.fetch_add(1, Relaxed);
        let mut short = false;
        for frame in out.chunks_exact_mut(self.channels) {
            let s = match self.ring.pop() {
                Ok(s) => {
                    self.started = true;
                    s
                }
                Err(_) => {
                    short = true;
                    0.0
                }
            };
            frame.fill(s);
        }
        if self.counters.paused.load(Relaxed) {
            self.started = false;
        } else if short && self.started {
            self.counters.speaker_underruns.fetch_add(1, Relaxed);
        }
    }
}

/// Resumes (`on`) or pauses (corks) one device stream. A device that cannot pause (some
/// ALSA devices) simply keeps running between calls, as it would without pausing: nothing the
/// agent could act on, so it is logged, not reported (and its callbacks count nothing while
/// paused, see [`Counters::paused`]).
fn set_stream_running(stream: &cpal::Stream, name: &str, on: bool) -> Result<(), DeviceError> {
    let result = if on { stream.play() } else { stream.pause() };
    if let Err(e) = &result
        && !on
        && e.kind() == cpal::ErrorKind::UnsupportedOperation
    {
        tracing::debug!("audio device '{name}' cannot pause; it keeps running: {e}");
        return Ok(());
    }
    result.map_err(|e| DeviceError::Stream {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

/// The owner's side of the microphone ring: trims, primes, resamples to 48 kHz.
struct MicFifo {
    ring: rtrb::Consumer<f32>,
    rate_hz: u32,
    /// Device rate to 48 kHz; None when the device runs at 48 kHz.
    resampler: Option<Resample>,
    /// 48 kHz samples resampled but not yet handed out.
    pending: VecDeque<f32>,
    /// Whether frames are flowing; after an underrun, wait for a frame and
    /// `MIC_PRIME_EXTRA_MS` again.
    primed: bool,
    /// Scratch for one resampler chunk.
    chunk: Vec<f32>,
    /// Audio left after each read that was never needed, to be cut.
    surplus: SurplusTrim,
}

impl MicFifo {
    fn new(ring: rtrb::Consumer<f32>, rate_hz: u32) -> MicFifo {
        let resampler = (rate_hz != RATE_HZ)
            .then(|| Resample::new(rate_hz, RATE_HZ, ms_to_samples(10, rate_hz)));
        MicFifo {
            ring,
            rate_hz,
            resampler,
            pending: VecDeque::with_capacity(4 * FRAME),
            primed: false,
            chunk: Vec::new(),
            surplus: SurplusTrim::new(MIC_MARGIN_MS),
        }
    }

    fn buffered_ms(&self) -> f32 {
        self.ring.slots() as f32 * 1000.0 / self.rate_hz as f32
            + self.pending.len() as f32 * 1000.0 / RATE_HZ as f32
    }

    /// Drops everything captured so far and primes again.
    fn discard(&mut self) {
        let queued = self.ring.slots();
        if let Ok(chunk) = self.ring.read_chunk(queued) {
            chunk.commit_all();
        }
        self.pending.clear();
        self.primed = false;
        self.surplus.restart();
    }

    /// Drops the oldest `ms` of what is waiting (48 kHz samples first, then the ring).
    fn drop_oldest(&mut self, ms: f32, counters: &Counters) {
        let want = (ms * RATE_HZ as f32 / 1000.0) as usize;
        let from_pending = want.min(self.pending.len());
        self.pending.drain(..from_pending);
        let rest = ((want - from_pending) as u64 * self.rate_hz as u64 / RATE_HZ as u64) as usize;
        let from_ring = rest.min(self.ring.slots());
        if let Ok(chunk) = self.ring.read_chunk(from_ring) {
            chunk.commit_all();
        }
        counters
            .mic_trimmed_samples
            .fetch_add((from_pending + from_ring) as u64, Relaxed);
    }

    fn read_frame(&mut self, out: &mut [f32], counters: &Counters) -> bool {
        let frame = out.len();
        let frame_ms = (frame * 1000 / RATE_HZ as usize) as u32;
        // Too much waiting means the reader fell behind: drop the oldest, keep the delay small.
        let queued = self.ring.slots();
        if queued > ms_to_samples(MIC_MAX_MS, self.rate_hz) {
            let drop = queued - ms_to_samples(MIC_KEEP_MS, self.rate_hz);
            if let Ok(chunk) = self.ring.read_chunk(drop) {
                chunk.commit_all();
            }
            self.pending.clear();
            counters.mic_trimmed_samples.fetch_add(drop as u64, Relaxed);
        }
        let need_ms = if self.primed {
            frame_ms
        } else {
            frame_ms + MIC_PRIME_EXTRA_MS
        };
        if self.buffered_ms() + 0.01 < need_ms as f32 {
            if self.primed {
                counters.mic_underruns.fetch_add(1, Relaxed);
                self.primed = false;
            }
            out.fill(0.0);
            return false;
        }
        self.primed = true;
        while self.pending.len() < frame {
            match &mut self.resampler {
                None => {
                    let n = (frame - self.pending.len()).min(self.ring.slots());
                    if n == 0 {
                        break;
                    }
                    if let Ok(chunk) = self.ring.read_chunk(n) {
                        let (a, b) = chunk.as_slices();
                        self.pending.extend(a.iter().chain(b));
                        chunk.commit_all();
                    }
                }
                Some(r) => {
                    let n = r.chunk_in;
                    let Ok(chunk) = self.ring.read_chunk(n) else {
                        break;
                    };
                    let (a, b) = chunk.as_slices();
                    self.chunk.clear();
                    self.chunk.extend_from_slice(a);
                    self.chunk.extend_from_slice(b);
                    chunk.commit_all();
                    r.process(&self.chunk, &mut self.pending);
                }
            }
        }
        if self.pending.len() < frame {
            // Resampler rounding left us a few samples short: a rare, short gap.
            counters.mic_underruns.fetch_add(1, Relaxed);
            self.primed = false;
            out.fill(0.0);
            return false;
        }
        for (o, s) in out.iter_mut().zip(self.pending.drain(..frame)) {
            *o = s;
        }
        self.surplus.observe(
            self.buffered_ms(),
            frame_ms as f32,
            rms_dbfs(out) < QUIET_DBFS,
        );
        let cut = self.surplus.take_due();
        if cut > 0.0 {
            // Right after a quiet frame: the cut is not heard.
            self.drop_oldest(cut, counters);
        }
        true
    }
}

/// The owner's side of the speaker ring: resamples from 48 kHz, keeps the ring shallow.
struct SpeakerFifo {
    ring: rtrb::Producer<f32>,
    rate_hz: u32,
    /// 48 kHz to the device rate; None when the device runs at 48 kHz.
    resampler: Option<Resample>,
    /// Device-rate samples of the frame being written.
    converted: VecDeque<f32>,
    scratch: Vec<f32>,
    /// Audio queued before each write that the device never needed, to be cut.
    surplus: SurplusTrim,
}

impl SpeakerFifo {
    fn new(ring: rtrb::Producer<f32>, rate_hz: u32) -> SpeakerFifo {
        let resampler =
            (rate_hz != RATE_HZ).then(|| Resample::new(RATE_HZ, rate_hz, SPEAKER_CHUNK));
        SpeakerFifo {
            ring,
            rate_hz,
            resampler,
            converted: VecDeque::with_capacity(4 * FRAME),
            scratch: Vec::with_capacity(4 * FRAME),
            surplus: SurplusTrim::new(SPEAKER_MARGIN_MS),
        }
    }

    fn queued(&self) -> usize {
        self.ring.buffer().capacity() - self.ring.slots()
    }

    fn buffered_ms(&self) -> f32 {
        self.queued() as f32 * 1000.0 / self.rate_hz as f32
    }

    fn write_frame(&mut self, frame: &[f32], counters: &Counters) {
        let frame_ms = (frame.len() * 1000 / RATE_HZ as usize) as u32;
        self.converted.clear();
        match &mut self.resampler {
            None => self.converted.extend(frame.iter()),
            Some(r) => {
                for chunk in frame.chunks_exact(SPEAKER_CHUNK) {
                    r.process(chunk, &mut self.converted);
                }
            }
        }
        let queued = self.queued();
        if queued > ms_to_samples(2 * frame_ms + SPEAKER_SLACK_MS, self.rate_hz) {
            // The device drains slower than we write (clock drift or a stall): skip a frame
            // rather than let the delay grow.
            counters.speaker_overruns.fetch_add(1, Relaxed);
            return;
        }
        if queued < ms_to_samples(SPEAKER_LOW_MS, self.rate_hz) {
            // Starting, or the device ran dry: one frame of silence in front gives the
            // 10 ms callbacks room against the frame-sized writes.
            self.scratch.clear();
            self.scratch
                .resize(ms_to_samples(frame_ms, self.rate_hz), 0.0);
            let _ = self.ring.push_partial_slice(&self.scratch);
            self.surplus.restart();
        } else {
            self.surplus.observe(
                self.buffered_ms(),
                frame_ms as f32,
                rms_dbfs(frame) < QUIET_DBFS,
            );
            let cut = self.surplus.take_due();
            if cut > 0.0 {
                // A quiet frame: leaving part of it out is not heard.
                let n = ((cut * self.rate_hz as f32 / 1000.0) as usize).min(self.converted.len());
                self.converted.drain(..n);
                counters
                    .speaker_trimmed_samples
                    .fetch_add(n as u64, Relaxed);
            }
        }
        let (a, b) = self.converted.as_slices();
        let (_, rest_a) = self.ring.push_partial_slice(a);
        let (_, rest_b) = self.ring.push_partial_slice(b);
        if !rest_a.is_empty() || !rest_b.is_empty() {
            counters.speaker_overruns.fetch_add(1, Relaxed);
        }
    }
}

/// Finds the delay a ring holds for nothing. `observe` is called at the same point of every
/// cycle with the ring's level; over each window the least level seen is what the ring never
/// needed, and what is above the margin becomes due to be cut. `take_due` hands it out only
/// after a quiet frame (so the cut is not heard); a window with no quiet frame waits for one.
/// Clock drift or a slower device cycle raise the least level again, so it is cut again; an
/// underrun restarts the measurement.
#[derive(Debug, Clone)]
struct SurplusTrim {
    margin_ms: f32,
    /// Least level seen in this window, and how long the window has run.
    least_ms: f32,
    window_ms: f32,
    /// Surplus found by the last full window, not yet cut.
    due_ms: f32,
    /// Whether the frame just observed was quiet.
    quiet: bool,
}

impl SurplusTrim {
    fn new(margin_ms: f32) -> SurplusTrim {
        SurplusTrim {
            margin_ms,
            least_ms: f32::MAX,
            window_ms: 0.0,
            due_ms: 0.0,
            quiet: false,
        }
    }

    /// Forgets the window and anything due (the ring was emptied or refilled).
    fn restart(&mut self) {
        self.least_ms = f32::MAX;
        self.window_ms = 0.0;
        self.due_ms = 0.0;
    }

    fn observe(&mut self, level_ms: f32, elapsed_ms: f32, quiet: bool) {
        self.quiet = quiet;
        self.least_ms = self.least_ms.min(level_ms);
        self.window_ms += elapsed_ms;
        if self.window_ms >= SURPLUS_WINDOW_MS {
            // Less than a millisecond over is not worth a cut.
            let surplus = self.least_ms - self.margin_ms;
            self.due_ms = if surplus >= 1.0 { surplus } else { 0.0 };
            self.least_ms = f32::MAX;
            self.window_ms = 0.0;
        }
    }

    /// The milliseconds to cut now (0 unless some are due and the last frame was quiet). The
    /// next window measures the ring as it is after the cut.
    fn take_due(&mut self) -> f32 {
        if self.due_ms > 0.0 && self.quiet {
            let due = self.due_ms;
            self.restart();
            due
        } else {
            0.0
        }
    }
}

/// A fixed-input-chunk resampler with its buffers.
struct Resample {
    inner: FastFixedIn<f32>,
    chunk_in: usize,
    out: Vec<f32>,
}

impl Resample {
    fn new(from_hz: u32, to_hz: u32, chunk_in: usize) -> Resample {
        // Ratios between real device rates (8 kHz..384 kHz) are always valid for rubato.
        let inner = FastFixedIn::new(
            to_hz as f64 / from_hz as f64,
            1.0,
            PolynomialDegree::Cubic,
            chunk_in,
            1,
        )
        .expect("valid resampler ratio for device rates");
        let out = vec![0.0; inner.output_frames_max()];
        Resample {
            inner,
            chunk_in,
            out,
        }
    }

    /// Resamples exactly `chunk_in` samples and appends the result.
    fn process(&mut self, input: &[f32], into: &mut VecDeque<f32>) {
        debug_assert_eq!(input.len(), self.chunk_in);
        match self
            .inner
            .process_into_buffer(&[input], &mut [&mut self.out[..]], None)
        {
            Ok((_, produced)) => into.extend(&self.out[..produced]),
            // Only wrong buffer sizes fail, which `new` rules out; lose the chunk, not the call.
            Err(_) => into.extend(std::iter::repeat_n(0.0, self.chunk_in)),
        }
    }
}

/// Resamples a whole clip once (the ring tone), outside any callback.
fn resample_once(samples: &[f32], from_hz: u32, to_hz: u32) -> Vec<f32> {
    if from_hz == to_hz {
        return samples.to_vec();
    }
    let chunk = 1024;
    let mut r = Resample::new(from_hz, to_hz, chunk);
    let mut out = VecDeque::new();
    let mut block = vec![0.0; chunk];
    for piece in samples.chunks(chunk) {
        block.fill(0.0);
        block[..piece.len()].copy_from_slice(piece);
        r.process(&block, &mut out);
    }
    let want = (samples.len() as u64 * to_hz as u64 / from_hz as u64) as usize;
    let mut out: Vec<f32> = out.into();
    out.truncate(want.max(1));
    out
}

fn ms_to_samples(ms: u32, rate_hz: u32) -> usize {
    (rate_hz as usize * ms as usize) / 1000
}

/// A stream configuration and the sample format to open it with.
#[derive(Debug, Clone, Copy)]
struct Chosen {
    config: StreamConfig,
    format: SampleFormat,
}

/// Sample formats the callbacks convert (f32 preferred; PulseAudio always offers it).
const FORMATS: [SampleFormat; 3] = [SampleFormat::F32, SampleFormat::I16, SampleFormat::I32];

/// 48 kHz with the fewest channels and f32 if the device offers it, else the device's default
/// configuration; a fixed 10 ms buffer where the device's range allows it.
fn choose_config(device: &cpal::Device, direction: Direction) -> Result<Chosen, cpal::Error> {
    let ranges: Vec<_> = match direction {
        Direction::Input => device.supported_input_configs()?.collect(),
        Direction::Output => device.supported_output_configs()?.collect(),
    };
    let rank = |f: SampleFormat| FORMATS.iter().position(|x| *x == f);
    let best = ranges
        .iter()
        .filter(|r| r.contains_rate(RATE_HZ) && rank(r.sample_format()).is_some())
        .min_by_key(|r| (r.channels(), rank(r.sample_format())));
    let (supported, buffer_range) = match best {
        Some(range) => (range.with_sample_rate(RATE_HZ), *range.buffer_size()),
        None => {
            let default = match direction {
                Direction::Input => device.default_input_config()?,
                Direction::Output => device.default_output_config()?,
            };
            if rank(default.sample_format()).is_none() {
                return Err(cpal::Error::with_message(
                    cpal::ErrorKind::UnsupportedConfig,
                    format!("sample format {} is not supported", default.sample_format()),
                ));
            }
            (default, *default.buffer_size())
        }
    };
    let rate_hz = supported.sample_rate();
    let wanted = rate_hz * DEVICE_BUFFER_MS / 1000;
    let buffer_size = match buffer_range {
        SupportedBufferSize::Range { min, max } => BufferSize::Fixed(wanted.clamp(min, max)),
        SupportedBufferSize::Unknown => BufferSize::Fixed(wanted),
    };
    Ok(Chosen {
        config: StreamConfig {
            channels: supported.channels(),
            sample_rate: rate_hz,
            buffer_size,
        },
        format: supported.sample_format(),
    })
}

fn open_error(direction: Direction, name: &str, reason: String) -> DeviceError {
    DeviceError::Open {
        direction,
        name: name.to_owned(),
        reason,
    }
}

/// The error callback: count, never log (it may run on the audio thread). A stream the audio
/// server moved to another device (`DeviceChanged`, from the PulseAudio host's timing thread,
/// never the audio callback) is no error: where it went is noted in `moved` for the owner.
fn error_counter(
    counters: Arc<Counters>,
    moved: Arc<MovedTo>,
) -> impl FnMut(cpal::Error) + Send + 'static {
    move |e| match e.kind() {
        cpal::ErrorKind::Xrun => {
            counters.xruns.fetch_add(1, Relaxed);
        }
        cpal::ErrorKind::DeviceChanged => {
            if let Some(device) = e.message() {
                moved.note(device);
            }
        }
        _ => {
            counters.stream_errors.fetch_add(1, Relaxed);
        }
    }
}

/// Where the audio server moved a stream, from the stream's error callback to its owner.
/// PulseAudio moves a stream whose device is removed (a USB headset unplugged) to the default
/// and it plays on there; a mixer (pavucontrol) moves streams too. Between moves the owner's
/// look costs one atomic load.
#[derive(Debug, Default)]
struct MovedTo {
    pending: AtomicBool,
    device: Mutex<Option<String>>,
}

impl MovedTo {
    fn note(&self, device: &str) {
        let mut slot = self.device.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(device.to_owned());
        self.pending.store(true, Release);
    }

    /// The device the stream was last moved to, once per move.
    fn take(&self) -> Option<String> {
        if !self.pending.load(Relaxed) || !self.pending.swap(false, Acquire) {
            return None;
        }
        self.device.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Builds and starts an input stream that down-mixes to mono f32 into a fresh ring of
/// `ring_len` samples, and returns the stream and the ring's reading end. When the device
/// refuses the fixed buffer size, tries again with its default (each attempt gets its own
/// ring, as the callback that owned the first one is gone with the failed attempt).
fn build_input(
    device: &cpal::Device,
    name: &str,
    chosen: Chosen,
    ring_len: usize,
    counters: &Arc<Counters>,
    moved: &Arc<MovedTo>,
) -> Result<(cpal::Stream, rtrb::Consumer<f32>), DeviceError> {
    let mut errors: Vec<String> = Vec::new();
    for buffer_size in [chosen.config.buffer_size, BufferSize::Default] {
        let config = StreamConfig {
            buffer_size,
            ..chosen.config
        };
        let (producer, consumer) = rtrb::RingBuffer::new(ring_len);
        let c = counters.clone();
        let result = match chosen.format {
            SampleFormat::I16 => input_stream::<i16>(device, config, producer, c, moved),
            SampleFormat::I32 => input_stream::<i32>(device, config, producer, c, moved),
            _ => input_stream::<f32>(device, config, producer, c, moved),
        };
        match result.and_then(|s| s.play().map(|()| s)) {
            Ok(stream) => return Ok((stream, consumer)),
            Err(e) => errors.push(format!("{buffer_size:?}: {e}")),
        }
    }
    Err(open_error(Direction::Input, name, errors.join("; ")))
}

fn input_stream<T>(
    device: &cpal::Device,
    config: StreamConfig,
    mut ring: rtrb::Producer<f32>,
    counters: Arc<Counters>,
    moved: &Arc<MovedTo>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = config.channels as usize;
    let errors = error_counter(counters.clone(), moved.clone());
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _| capture(data, channels, &mut ring, &counters),
        errors,
        Some(BUILD_TIMEOUT),
    )
}

/// The microphone callback's work: down-mixes what the device captured to mono into the ring;
/// a full ring drops the newest samples and counts an overrun (unless paused).
fn capture<T>(data: &[T], channels: usize, ring: &mut rtrb::Producer<f32>, counters: &Counters)
where
    T: SizedSample,
    f32: FromSample<T>,
{
    counters.mic_callbacks.fetch_add(1, Relaxed);
    let scale = 1.0 / channels as f32;
    let mut full = false;
    for frame in data.chunks_exact(channels) {
        let mono = frame.iter().map(|&s| f32::from_sample_(s)).sum::<f32>() * scale;
        if ring.push(mono).is_err() {
            full = true;
        }
    }
    if full && !counters.paused.load(Relaxed) {
        counters.mic_overruns.fetch_add(1, Relaxed);
    }
}

/// Builds and starts an output stream. `make` is called once per attempt and gives the fill
/// callback (interleaved f32, any channel count) plus the owner's end of whatever it feeds
/// from; the owner's end of the attempt that worked is returned with the stream. When the
/// device refuses the fixed buffer size, tries again with its default.
fn build_output<F, R>(
    device: &cpal::Device,
    name: &str,
    chosen: Chosen,
    counters: &Arc<Counters>,
    moved: &Arc<MovedTo>,
    mut make: impl FnMut() -> (F, R),
) -> Result<(cpal::Stream, R), DeviceError>
where
    F: FnMut(&mut [f32]) + Send + 'static,
{
    let mut errors: Vec<String> = Vec::new();
    for buffer_size in [chosen.config.buffer_size, BufferSize::Default] {
        let config = StreamConfig {
            buffer_size,
            ..chosen.config
        };
        let (fill, owner) = make();
        let c = counters.clone();
        let result = match chosen.format {
            SampleFormat::I16 => output_stream::<i16, F>(device, config, fill, c, moved),
            SampleFormat::I32 => output_stream::<i32, F>(device, config, fill, c, moved),
            _ => output_stream::<f32, F>(device, config, fill, c, moved),
        };
        match result.and_then(|s| s.play().map(|()| s)) {
            Ok(stream) => return Ok((stream, owner)),
            Err(e) => errors.push(format!("{buffer_size:?}: {e}")),
        }
    }
    Err(open_error(Direction::Output, name, errors.join("; ")))
}

fn output_stream<T, F>(
    device: &cpal::Device,
    config: StreamConfig,
    mut fill: F,
    counters: Arc<Counters>,
    moved: &Arc<MovedTo>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
    F: FnMut(&mut [f32]) + Send + 'static,
{
    // Scratch for the f32 samples, allocated here and not in the callback; a callback bigger
    // than this is served in pieces.
    let mut scratch = vec![0f32; 16_384];
    let channels = config.channels as usize;
    let errors = error_counter(counters, moved.clone());
    device.build_output_stream::<T, _, _>(
        config,
        move |data: &mut [T], _| {
            let piece = (scratch.len() / channels).max(1) * channels;
            for out in data.chunks_mut(piece) {
                let buf = &mut scratch[..out.len()];
                fill(buf);
                for (o, s) in out.iter_mut().zip(buf.iter()) {
                    *o = T::from_sample_(*s);
                }
            }
        },
        errors,
        Some(BUILD_TIMEOUT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone::goertzel_power;

    fn sine(freq_hz: f32, rate_hz: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (std::f32::consts::TAU * freq_hz * i as f32 / rate_hz as f32).sin())
            .collect()
    }

    #[test]
    fn a_device_is_stalled_only_after_a_running_second_without_callbacks() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut watch = StallWatch::default();
        // Callbacks every 10 ms: never stalled, however long.
        for i in 0..300u64 {
            assert!(!watch.stalled(at(i * 10), i, true));
        }
        // They stop at 3 s: stalled once a second has passed, not before, then once a second.
        assert!(!watch.stalled(at(3_000), 300, true));
        assert!(!watch.stalled(at(3_990), 300, true));
        assert!(watch.stalled(at(4_000), 300, true));
        assert!(!watch.stalled(at(4_500), 300, true));
        assert!(watch.stalled(at(5_000), 300, true));
        // Paused: no callbacks is what a paused device does.
        assert!(!watch.stalled(at(5_000), 300, false));
        assert!(!watch.stalled(at(9_000), 300, false));
        // Resumed: a full second's grace from the resume, however long the pause was.
        assert!(!watch.stalled(at(9_010), 300, true));
        assert!(!watch.stalled(at(9_900), 300, true));
        assert!(!watch.stalled(at(9_950), 301, true));
        assert!(!watch.stalled(at(10_900), 301, true));
        assert!(watch.stalled(at(10_950), 301, true));
    }

    #[test]
    fn a_device_event_says_what_stopped_or_moved_and_what_plays_now() {
        let same = DeviceEvent::Reopened {
            role: Role::Microphone,
            lost: "usb-headset".into(),
            now: "usb-headset".into(),
        };
        assert_eq!(
            same.to_string(),
            "microphone 'usb-headset' stopped; it is open again"
        );
        let other = DeviceEvent::Reopened {
            role: Role::Speaker,
            lost: "usb-headset".into(),
            now: "built-in".into(),
        };
        assert_eq!(
            other.to_string(),
            "speaker 'usb-headset' stopped; now using 'built-in'"
        );
        let failed = DeviceEvent::Failed {
            role: Role::Microphone,
            lost: "usb-headset".into(),
            reason: "no audio input device found".into(),
        };
        assert!(failed.to_string().contains("trying again"), "{failed}");
        let moved_by_hand = DeviceEvent::Moved {
            role: Role::Speaker,
            from: "usb-headset".into(),
            to: "built-in".into(),
            from_gone: false,
        };
        assert_eq!(
            moved_by_hand.to_string(),
            "speaker moved from 'usb-headset' to 'built-in' outside Sapa"
        );
    }

    #[test]
    fn a_device_that_keeps_running_while_paused_counts_no_glitches_then() {
        let counters = Arc::new(Counters::default());
        // The microphone callback: a stereo device into a 4-sample ring.
        let (mut mic_ring, mut mic_taken) = rtrb::RingBuffer::new(4);
        let captured = [0.25f32, 0.75, 0.5, 0.5];
        capture(&captured, 2, &mut mic_ring, &counters);
        assert_eq!((mic_taken.pop(), mic_taken.pop()), (Ok(0.5), Ok(0.5)));
        // The speaker callback: one frame of audio, then nothing.
        let (mut speaker_ring, speaker_taken) = rtrb::RingBuffer::new(16);
        let mut feed = SpeakerFeed::new(speaker_taken, 2, counters.clone());
        let mut out = [1.0f32; 8];
        feed.fill(&mut out);
        assert_eq!(counters.speaker_underruns.load(Relaxed), 0, "an idle start");
        speaker_ring.push(0.5).unwrap();
        feed.fill(&mut out);
        assert_eq!(out, [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(counters.speaker_underruns.load(Relaxed), 1);

        // Paused between calls, but the device goes on calling back: its rings overflow and
        // run dry, and none of that counts.
        counters.paused.store(true, Relaxed);
        for _ in 0..10 {
            capture(&[0.1f32; 16], 2, &mut mic_ring, &counters);
            feed.fill(&mut out);
        }
        assert_eq!(counters.mic_overruns.load(Relaxed), 0);
        assert_eq!(counters.speaker_underruns.load(Relaxed), 1);

        // Resumed: the speaker waits for audio again before a dry ring counts; a full
        // microphone ring counts at once.
        counters.paused.store(false, Relaxed);
        feed.fill(&mut out);
        assert_eq!(counters.speaker_underruns.load(Relaxed), 1);
        speaker_ring.push(0.5).unwrap();
        feed.fill(&mut out);
        assert_eq!(counters.speaker_underruns.load(Relaxed), 2);
        capture(&[0.1f32; 16], 2, &mut mic_ring, &counters);
        assert_eq!(counters.mic_overruns.load(Relaxed), 1);
    }

    #[test]
    fn mic_fifo_waits_to_prime_then_hands_out_frames() {
        let counters = Counters::default();
        let (mut tx, rx) = rtrb::RingBuffer::new(48_000);
        let mut fifo = MicFifo::new(rx, 48_000);
        let mut out = [0f32; FRAME];
        let _ = tx.push_partial_slice(&sine(1000.0, 48_000, 960));
        assert!(!fifo.read_frame(&mut out, &counters), "20 ms is not primed");
        let _ = tx.push_partial_slice(&sine(1000.0, 48_000, 480));
        assert!(fifo.read_frame(&mut out, &counters));
        assert_eq!(counters.mic_underruns.load(Relaxed), 0);
        // 10 ms left: the next read is an underrun and re-primes.
        assert!(!fifo.read_frame(&mut out, &counters));
        assert_eq!(counters.mic_underruns.load(Relaxed), 1);
    }

    #[test]
    fn mic_fifo_drops_the_oldest_when_too_much_waits() {
        let counters = Counters::default();
        let (mut tx, rx) = rtrb::RingBuffer::new(48_000);
        let mut fifo = MicFifo::new(rx, 48_000);
        // 200 ms queued: old silence, then a tone in the last 30 ms.
        let mut samples = vec![0.0; 48 * 170];
        samples.extend(sine(1000.0, 48_000, 48 * 30));
        let _ = tx.push_partial_slice(&samples);
        let mut out = [0f32; FRAME];
        assert!(fifo.read_frame(&mut out, &counters));
        assert!(fifo.buffered_ms() <= 11.0, "{}", fifo.buffered_ms());
        assert!(
            goertzel_power(&out, 48_000.0, 1000.0) > 0.05,
            "the newest audio is kept"
        );
        assert!(counters.mic_trimmed_samples.load(Relaxed) > 0);
    }

    #[test]
    fn mic_fifo_resamples_44k1_to_48k() {
        let counters = Counters::default();
        let (mut tx, rx) = rtrb::RingBuffer::new(44_100);
        let mut fifo = MicFifo::new(rx, 44_100);
        let mut out = [0f32; FRAME];
        let input = sine(1000.0, 44_100, 441 * 4);
        let _ = tx.push_partial_slice(&input[..441 * 3]);
        let mut frames = 0;
        let mut pos = 441 * 3;
        for _ in 0..20 {
            if fifo.read_frame(&mut out, &counters) {
                frames += 1;
                let p1000 = goertzel_power(&out, 48_000.0, 1000.0);
                let p918 = goertzel_power(&out, 48_000.0, 918.75);
                assert!(p1000 > 0.1 && p1000 > 10.0 * p918, "{p1000} {p918}");
            }
            // The device delivers 20 ms per tick.
            let more = sine(1000.0, 44_100, pos + 882);
            let _ = tx.push_partial_slice(&more[pos..]);
            pos += 882;
        }
        assert!(frames >= 17, "{frames} frames");
    }

    #[test]
    fn speaker_fifo_primes_and_stays_shallow() {
        let counters = Counters::default();
        let (tx, mut rx) = rtrb::RingBuffer::new(48_000);
        let mut fifo = SpeakerFifo::new(tx, 48_000);
        let frame = [0.25f32; FRAME];
        fifo.write_frame(&frame, &counters);
        // One frame of silence first, then the frame.
        assert_eq!(fifo.queued(), 2 * FRAME);
        // The device stalls: writes stop adding once 60 ms is queued.
        for _ in 0..10 {
            fifo.write_frame(&frame, &counters);
        }
        assert!(fifo.buffered_ms() <= 80.0, "{}", fifo.buffered_ms());
        assert!(counters.speaker_overruns.load(Relaxed) > 0);
        assert_eq!(rx.pop(), Ok(0.0));
    }

    #[test]
    fn mic_fifo_cuts_delay_it_never_needs_in_a_quiet_moment() {
        let counters = Counters::default();
        let (mut tx, rx) = rtrb::RingBuffer::new(48_000);
        let mut fifo = MicFifo::new(rx, 48_000);
        let mut out = [0f32; 480];
        // The device has delivered 25 ms ahead of the clock and then keeps pace: 10 ms per
        // 10 ms read. Speech for two seconds, then quiet.
        let speech = sine(300.0, 48_000, 48_000 * 2);
        let quiet = vec![0.0; 48_000 * 2];
        let audio: Vec<f32> = speech.iter().chain(&quiet).copied().collect();
        let _ = tx.push_partial_slice(&audio[..48 * 25]);
        let mut pos = 48 * 25;
        let mut after_read = Vec::new();
        for _ in 0..350 {
            assert!(fifo.read_frame(&mut out, &counters));
            after_read.push(fifo.buffered_ms());
            let _ = tx.push_partial_slice(&audio[pos..pos + 480]);
            pos += 480;
        }
        // Nothing is cut while the talker talks, though the surplus is known after 1 s.
        assert!(
            after_read[..190].iter().all(|&ms| ms >= 14.0),
            "{after_read:?}"
        );
        // In the quiet it goes, down to the margin, once.
        let last = *after_read.last().unwrap();
        assert!(
            (2.5..=3.5).contains(&last),
            "{last} ms left after each read"
        );
        assert_eq!(counters.mic_underruns.load(Relaxed), 0);
        let cut = counters.mic_trimmed_samples.load(Relaxed);
        assert!((48 * 11..=48 * 13).contains(&cut), "{cut} samples cut");
    }

    #[test]
    fn speaker_fifo_cuts_delay_the_device_never_needed_from_a_quiet_frame() {
        let counters = Counters::default();
        let (tx, mut rx) = rtrb::RingBuffer::new(48_000);
        let mut fifo = SpeakerFifo::new(tx, 48_000);
        let loud = [0.25f32; 480];
        let quiet = [0f32; 480];
        let mut before_write = Vec::new();
        // The device takes 10 ms per 10 ms write, right after it; 0.5 s of voice, then quiet.
        for i in 0..200 {
            before_write.push(fifo.buffered_ms());
            fifo.write_frame(if i < 50 { &loud } else { &quiet }, &counters);
            for _ in 0..480 {
                let _ = rx.pop();
            }
        }
        // The start put one frame of silence in front: 10 ms the device never needed, cut
        // once a second had shown it and a quiet frame came.
        assert_eq!(before_write[10], 10.0);
        let cut = counters.speaker_trimmed_samples.load(Relaxed);
        assert_eq!(cut, 48 * 5, "cut down to the 5 ms margin");
        assert_eq!(*before_write.last().unwrap(), 5.0);
        assert_eq!(counters.speaker_underruns.load(Relaxed), 0);
    }

    #[test]
    fn speaker_fifo_resamples_to_the_device_rate() {
        let counters = Counters::default();
        let (tx, _rx) = rtrb::RingBuffer::new(48_000);
        let mut fifo = SpeakerFifo::new(tx, 16_000);
        let mut frame = [0f32; FRAME];
        frame.copy_from_slice(&sine(440.0, 48_000, FRAME));
        fifo.write_frame(&frame, &counters);
        // 20 ms silence + ~20 ms of tone, both at 16 kHz.
        assert!((630..=650).contains(&fifo.queued()), "{}", fifo.queued());
    }

    #[test]
    fn loop_player_loops_and_never_frees_in_the_callback() {
        let (mut cmd_tx, cmd_rx) = rtrb::RingBuffer::new(8);
        let (ret_tx, mut ret_rx) = rtrb::RingBuffer::new(16);
        let mut player = LoopPlayer {
            commands: cmd_rx,
            returns: ret_tx,
            current: None,
            pos: 0,
            parked: None,
        };
        let mut out = [1f32; 8];
        player.fill(&mut out, 2);
        assert_eq!(out, [0.0; 8]);
        let _ = cmd_tx.push(RingCommand::Play(vec![0.1, 0.2, 0.3].into_boxed_slice()));
        player.fill(&mut out, 2);
        assert_eq!(out, [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.1, 0.1]);
        let _ = cmd_tx.push(RingCommand::Stop);
        player.fill(&mut out, 2);
        assert_eq!(out, [0.0; 8]);
        assert_eq!(
            ret_rx.pop().map(|b| b.len()),
            Ok(3),
            "handed back, not freed"
        );
    }

    #[test]
    fn notices_read_as_a_sentence() {
        let n = DeviceNotice {
            role: Role::Microphone,
            wanted: "USB Headset".into(),
            used: "sapa_mouth".into(),
        };
        assert_eq!(
            n.to_string(),
            "microphone 'USB Headset' not found; using default 'sapa_mouth'"
        );
    }

    #[test]
    fn resample_once_keeps_length_and_pitch() {
        let out = resample_once(&sine(440.0, 48_000, 48_000), 48_000, 44_100);
        assert_eq!(out.len(), 44_100);
        let p = goertzel_power(&out[4410..8820], 44_100.0, 440.0);
        assert!(p > 0.1, "{p}");
    }
}

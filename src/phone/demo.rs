//! `sapa demo` (and `sapa` with no command): everything in one process, to try the phone
//! without setting anything up. An embedded switchboard on loopback (ports chosen by the
//! system, SQLite in a temporary directory), a demo agent, customers with past calls and
//! dispositions, simulated callers who speak (synthetic, speech-like audio) arriving every
//! few seconds, and the phone window logged in as the demo agent and available.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::config::PhoneConfig;
use super::engine::{AudioSetup, Credentials, EngineOptions};
use crate::config::SwitchboardConfig;
use crate::peer::caller;
use crate::store::{self, Direction, Role, Store};
use crate::switchboard::{self, Running};

/// The demo agent's login.
pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "sapa-demo";

/// At most this many simulated callers at once (waiting or talking).
const MAX_CALLERS: usize = 3;

/// What `sapa demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated callers arrive about this often (randomised ±40 %); `None`: no callers.
    pub caller_every: Option<Duration>,
    pub no_audio: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            caller_every: Some(Duration::from_secs(8)),
            no_audio: false,
        }
    }
}

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create the demo directory: {0}")]
    Dir(std::io::Error),
    #[error(transparent)]
    Switchboard(#[from] switchboard::SwitchboardError),
    #[error("cannot seed the demo data: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot write the callers' audio: {0}")]
    Wav(#[from] crate::wav::WavError),
    #[error(transparent)]
    Phone(#[from] super::PhoneError),
}

/// A customer of the demo: number, name (if known), and notes.
struct DemoCustomer {
    number: &'static str,
    name: Option<&'static str>,
    notes: Option<&'static str>,
}

const CUSTOMERS: &[DemoCustomer] = &[
    DemoCustomer {
        number: "+15550100",
        name: Some("Budi Santoso"),
        notes: Some("Prefers email follow-ups. Business plan since 2024."),
    },
    DemoCustomer {
        number: "+15550123",
        name: Some("Maria Lopez"),
        notes: None,
    },
    DemoCustomer {
        number: "+15550145",
        name: Some("Kwame Mensah"),
        notes: Some("Hard of hearing: speak slowly."),
    },
    DemoCustomer {
        number: "+15550178",
        name: Some("Aiko Tanaka"),
        notes: None,
    },
    DemoCustomer {
        number: "+15550192",
        name: Some("Olga Petrova"),
        notes: None,
    },
    DemoCustomer {
        number: "+15550211",
        name: Some("Rahul Mehta"),
        notes: None,
    },
    DemoCustomer {
        number: "+15550256",
        name: None,
        notes: None,
    },
];

/// Past calls: (customer index, days ago, agent, talk seconds, code, resolution, notes, csat).
type PastCallSeed = (
    usize,
    i64,
    &'static str,
    i64,
    &'static str,
    store::Resolution,
    &'static str,
    Option<i64>,
);

const PAST_CALLS: &[PastCallSeed] = &[
    (
        0,
        2,
        "kofi",
        312,
        "billing",
        store::Resolution::FollowUp,
        "Charged twice in October. Refund requested; call back when finance confirms.",
        Some(3),
    ),
    (
        0,
        9,
        "maria.g",
        184,
        "technical-issue",
        store::Resolution::Resolved,
        "Router reset fixed the dropouts.",
        Some(5),
    ),
    (
        0,
        31,
        "kofi",
        95,
        "general-inquiry",
        store::Resolution::Resolved,
        "Asked about opening hours.",
        None,
    ),
    (
        1,
        1,
        "maria.g",
        421,
        "complaint",
        store::Resolution::Escalated,
        "Unhappy with the installer's visit; escalated to team lead.",
        Some(2),
    ),
    (
        1,
        14,
        "demo",
        133,
        "sales",
        store::Resolution::Resolved,
        "Upgraded to the 500 Mbit plan.",
        Some(5),
    ),
    (
        2,
        4,
        "kofi",
        260,
        "technical-issue",
        store::Resolution::FollowUp,
        "Intermittent line noise; technician booked.",
        Some(4),
    ),
    (
        3,
        6,
        "maria.g",
        78,
        "billing",
        store::Resolution::Resolved,
        "Explained the pro-rated first invoice.",
        Some(5),
    ),
    (
        4,
        20,
        "kofi",
        502,
        "cancellation",
        store::Resolution::Escalated,
        "Wants to cancel; retention offer sent to supervisor.",
        None,
    ),
];

/// Runs the demo until the window is closed. `runtime` runs the switchboard and the callers;
/// the window runs on this (the main) thread.
pub fn run(runtime: &tokio::runtime::Runtime, options: DemoOptions) -> Result<(), DemoError> {
    let dir = std::env::temp_dir().join(format!("sapa-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(DemoError::Dir)?;
    let result = run_in(runtime, &dir, options);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    options: DemoOptions,
) -> Result<(), DemoError> {
    let running = runtime.block_on(start(dir))?;
    let url = running.ws_url();
    eprintln!(
        "sapa demo: switchboard {url} (media udp {}); the phone logs in as {DEMO_USER} / {DEMO_PASSWORD}",
        running.media_addr
    );
    let callers = options.caller_every.map(|every| {
        let url = url.clone();
        let dir = dir.to_path_buf();
        runtime.spawn(async move {
            if let Err(e) = callers(url, dir, every).await {
                tracing::warn!("the demo callers stopped: {e}");
            }
        })
    });

    let config_path = PhoneConfig::default_path();
    let config = config_path
        .as_deref()
        .and_then(|p| PhoneConfig::load(p).ok())
        .unwrap_or_default();
    let window = super::app::run_window(EngineOptions {
        config,
        config_path,
        remember_login: false,
        drafts_root: dir.join("drafts"),
        auto_login: Some(Credentials {
            url: url.clone(),
            user: DEMO_USER.into(),
            password: DEMO_PASSWORD.into(),
        }),
        go_available: true,
        audio: if options.no_audio {
            AudioSetup::None
        } else {
            AudioSetup::Devices
        },
        export_dir: None,
        notify_bus: super::notify::NotifyBus::Session,
    });
    if let Some(callers) = callers {
        callers.abort();
    }
    runtime.block_on(running.shutdown());
    window.map_err(|e| DemoError::Phone(super::PhoneError::Window(e.to_string())))
}

/// Starts the switchboard and seeds it.
pub async fn start(dir: &Path) -> Result<Running, DemoError> {
    let running = switchboard::start(switchboard::Options {
        listen: "127.0.0.1:0".parse().expect("a literal socket address"),
        media_listen: "127.0.0.1:0".parse().expect("a literal socket address"),
        db_url: format!("sqlite:{}", dir.join("demo.db").display()),
        config: SwitchboardConfig::default(),
    })
    .await?;
    seed(&running.store).await?;
    Ok(running)
}

/// The demo agent, customers, and past calls with dispositions.
pub async fn seed(store: &Store) -> Result<(), store::StoreError> {
    if store.user(DEMO_USER).await?.is_none() {
        store
            .add_user(DEMO_USER, Role::Agent, DEMO_PASSWORD)
            .await?;
    }
    for c in CUSTOMERS {
        store.upsert_customer(c.number, c.name).await?;
        if let Some(notes) = c.notes {
            store.set_customer_notes(c.number, notes).await?;
        }
    }
    let now = crate::peer::now_ms();
    let day = 24 * 3600 * 1000;
    for (i, (who, days_ago, agent, talk_secs, code, resolution, notes, csat)) in
        PAST_CALLS.iter().enumerate()
    {
        let c = &CUSTOMERS[*who];
        let id = format!("seed{i:02}");
        if store.call(&id).await?.is_some() {
            continue;
        }
        // During office hours (09:30 UTC onwards, 23 minutes apart), so dates read naturally.
        let arrived =
            now - now.rem_euclid(day) - days_ago * day + 570 * 60_000 + i as i64 * 23 * 60_000;
        let answered = arrived + 12_000 + i as i64 * 3_000;
        let ended = answered + talk_secs * 1000;
        store
            .call_arrived(&store::NewCall {
                id: id.clone(),
                direction: Direction::Inbound,
                queue: if *code == "billing" {
                    "billing"
                } else {
                    "support"
                }
                .into(),
                caller_number: c.number.into(),
                caller_name: c.name.map(str::to_owned),
                arrived_at: arrived,
            })
            .await?;
        store.call_answered(&id, agent, answered).await?;
        store.call_ended(&id, ended, "caller_hung_up").await?;
        store
            .save_disposition(&store::Disposition {
                call_id: id.clone(),
                agent: (*agent).into(),
                code: (*code).into(),
                resolution: *resolution,
                notes: (*notes).into(),
                follow_up_at: (*resolution == store::Resolution::FollowUp).then_some(now + day),
                submitted_at: ended + 40_000,
                request_id: format!("seed-{id}"),
            })
            .await?;
        if let Some(score) = csat {
            store.set_csat(&id, *score).await?;
        }
    }
    Ok(())
}

/// Simulated callers, one every `every` (±40 %), at most [`MAX_CALLERS`] at once.
async fn callers(url: String, dir: PathBuf, every: Duration) -> Result<(), DemoError> {
    let voices: Vec<PathBuf> = [(118.0, 1u64), (205.0, 2), (165.0, 3)]
        .iter()
        .map(|&(pitch, seed)| {
            let path = dir.join(format!("voice-{seed}.wav"));
            crate::wav::write_mono_48k(&path, &speech_like(seed, pitch, 45.0)).map(|_| path)
        })
        .collect::<Result<_, _>>()?;
    let active = Arc::new(AtomicUsize::new(0));
    let mut rng = Lcg(0x5a9a_0001 ^ crate::peer::now_ms() as u64);
    let mut n = 0u32;
    // The first caller comes soon, so the demo shows something at once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    loop {
        if active.load(Ordering::Relaxed) < MAX_CALLERS {
            n += 1;
            // The first caller has a history, so the first screen-pop shows one.
            let pick = if n == 1 {
                0
            } else {
                rng.below(CUSTOMERS.len() as u64 + 2) as usize
            };
            let (from, name) = match CUSTOMERS.get(pick) {
                Some(c) => (c.number.to_owned(), c.name.map(str::to_owned)),
                // Now and then someone new.
                None => (format!("+1555{:07}", 300_0000 + rng.below(99_999)), None),
            };
            let options = caller::CallerOptions {
                switchboard: url.clone(),
                from,
                name,
                queue: Some(
                    if rng.below(3) == 0 {
                        "billing"
                    } else {
                        "support"
                    }
                    .into(),
                ),
                play: voices[rng.below(voices.len() as u64) as usize].clone(),
                record: dir.join(format!("caller-{n}.wav")),
                talk_secs: Some(20.0 + rng.below(25) as f64),
                max_wait_secs: 90.0,
                impair: None,
                frame: Default::default(),
                to: None,
                dial_digits: None,
                survey: None,
                inband_dtmf: false,
            };
            let active = active.clone();
            active.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let record = options.record.clone();
                match caller::run(options).await {
                    Ok(report) => tracing::info!("demo caller done: {}", report.ended_by),
                    Err(e) => tracing::warn!("demo caller failed: {e}"),
                }
                let _ = std::fs::remove_file(record);
                active.fetch_sub(1, Ordering::Relaxed);
            });
        }
        let jitter = 0.6 + 0.8 * (rng.below(1000) as f64 / 1000.0);
        tokio::time::sleep(every.mul_f64(jitter)).await;
    }
}

/// A tiny deterministic generator; the demo needs variety, not security.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f32 {
        (self.next() % 10_000) as f32 / 10_000.0
    }
}

/// Speech-like audio (48 kHz mono): a glottal pulse train with moving pitch through two
/// vowel formants, in syllables of 120-300 ms, phrases of 4-10 syllables, pauses between.
/// Not words, but it sounds like someone talking and exercises the codec like speech.
pub fn speech_like(seed: u64, pitch_hz: f32, secs: f32) -> Vec<f32> {
    const RATE: f32 = 48_000.0;
    // (F1, F2) of a, e, i, o, u.
    const VOWELS: [(f32, f32); 5] = [
        (730.0, 1090.0),
        (530.0, 1840.0),
        (270.0, 2290.0),
        (570.0, 840.0),
        (300.0, 870.0),
    ];
    let total = (secs * RATE) as usize;
    let mut out = Vec::with_capacity(total);
    let mut rng = Lcg(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut phase = 0.0f32;
    let mut filters = [Resonator::default(), Resonator::default()];
    while out.len() < total {
        // A phrase, then a pause.
        let syllables = 4 + rng.below(7);
        for s in 0..syllables {
            let len = ((0.12 + 0.18 * rng.unit()) * RATE) as usize;
            let (f1, f2) = VOWELS[rng.below(VOWELS.len() as u64) as usize];
            filters[0].tune(f1, 90.0);
            filters[1].tune(f2, 120.0);
            // Intonation: pitch falls over the phrase, a little wobble per syllable.
            let base = pitch_hz * (1.15 - 0.3 * s as f32 / syllables as f32);
            let wobble = 1.0 + 0.06 * (rng.unit() - 0.5);
            for i in 0..len {
                let t = i as f32 / len as f32;
                let envelope = (std::f32::consts::PI * t).sin().powf(0.7);
                phase += base * wobble / RATE;
                // A sawtooth-like glottal pulse: rich in harmonics, like a voice.
                let source = if phase >= 1.0 {
                    phase -= 1.0;
                    1.0
                } else {
                    -0.02
                };
                let breath = 0.02 * (rng.unit() - 0.5);
                let v = filters[0].run(source + breath) * 0.6 + filters[1].run(source) * 0.4;
                out.push(v * envelope);
            }
            // A short gap between syllables (consonant-ish).
            let gap = ((0.02 + 0.05 * rng.unit()) * RATE) as usize;
            out.extend(std::iter::repeat_n(0.0, gap));
        }
        let pause = ((0.35 + 0.5 * rng.unit()) * RATE) as usize;
        out.extend(std::iter::repeat_n(0.0, pause));
    }
    out.truncate(total);
    // Like a headset microphone at a normal speaking level: peaks near -3 dBFS.
    let peak = out.iter().fold(0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        let gain = 0.7 / peak;
        out.iter_mut().for_each(|v| *v *= gain);
    }
    out
}

/// A two-pole resonator (one formant).
#[derive(Default)]
struct Resonator {
    a1: f32,
    a2: f32,
    gain: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn tune(&mut self, freq_hz: f32, bandwidth_hz: f32) {
        let r = (-std::f32::consts::PI * bandwidth_hz / 48_000.0).exp();
        let w = 2.0 * std::f32::consts::PI * freq_hz / 48_000.0;
        self.a1 = 2.0 * r * w.cos();
        self.a2 = -r * r;
        self.gain = 1.0 - r;
    }

    fn run(&mut self, x: f32) -> f32 {
        let y = self.gain * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_like_audio_is_audible_with_pauses() {
        let s = speech_like(1, 150.0, 5.0);
        assert_eq!(s.len(), 5 * 48_000);
        let frames: Vec<f32> = s.chunks(960).map(super::super::audio::level_dbfs).collect();
        let loud = frames.iter().filter(|&&l| l > -35.0).count();
        let silent = frames.iter().filter(|&&l| l < -60.0).count();
        assert!(loud > frames.len() / 3, "loud frames: {loud}");
        assert!(silent > 5, "silent frames: {silent}");
    }

    /// The demo's own caller loop against its own switchboard: the first simulated caller
    /// reaches an agent logged in as the demo user, with that customer's history.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_s_callers_ring_the_demo_agent_with_their_history() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(dir.path()).await.unwrap();
        let url = running.ws_url();
        let agent = tokio::spawn(crate::peer::agent::run(
            crate::peer::agent::AgentOptions {
                talk_secs: Some(1.0),
                ..crate::peer::agent::AgentOptions::silent(&url, DEMO_USER, DEMO_PASSWORD, 1)
            },
            |_| {},
        ));
        let callers = tokio::spawn(callers(
            url,
            dir.path().to_path_buf(),
            Duration::from_secs(60),
        ));
        let reports = tokio::time::timeout(Duration::from_secs(30), agent)
            .await
            .expect("a demo caller rang within 30 s")
            .unwrap()
            .unwrap();
        callers.abort();
        assert_eq!(reports.len(), 1);
        let call = &reports[0];
        assert_eq!(call.caller, CUSTOMERS[0].number);
        assert_eq!(call.history_len, 3, "the screen-pop shows the seeded calls");
        assert!(
            call.first_audio_ms.is_some(),
            "the caller's voice reached the agent"
        );
        running.shutdown().await;
    }

    #[tokio::test]
    async fn seeding_gives_customers_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite:{}", dir.path().join("d.db").display()))
            .await
            .unwrap();
        seed(&store).await.unwrap();
        seed(&store).await.unwrap();
        let history = store.caller_history("+15550100", 10).await.unwrap();
        assert_eq!(history.len(), 3);
        assert!(history[0].disposition.is_some());
        assert!(
            store
                .verify_login(DEMO_USER, DEMO_PASSWORD)
                .await
                .unwrap()
                .is_some()
        );
        store.close().await;
    }
}

//! The phone engine: everything the agent's desktop does that is not drawing. It runs on its
//! own thread with a tokio runtime; the window thread never waits on network, audio or disk.
//!
//! ```text
//! window thread (winit, egui)                engine thread (tokio)
//!   each frame: drain Update channel  <----  login, one peer connection per shift,
//!               read Levels (watch)   <----  20 ms voice loop, ring, pings, reconnect,
//!               phone_ui(view)                drafts on disk, config on disk
//!               send Intents          ---->  carried out in order
//! ```
//!
//! Run loop: `loop { wait for a login; open a Session; loop { run_session() -> Lost |
//! LoggedOut | Shutdown; on Lost reconnect with backoff } }`. Inside a session one
//! `select!` serves intents, server messages, the voice tick (one frame: 20 or 10 ms) and the
//! 2 s ping. The voice tick rests while nothing needs audio and makes up the ticks it skipped
//! before anything else happens, so its clock never falls behind ([`Engine::run_session`]).
//!
//! Requests are sent without waiting (`Signal::send` with our own `req`); replies come back
//! as events and are matched in [`Engine::on_server`], so a slow answer never stalls the
//! voice loop.
//!
//! Updates that describe what happened (call events, results) go through an unbounded
//! channel and are never dropped; audio levels, which only the latest matters of, go through
//! a `watch` and are merged.
//!
//! A supervisor's phone also turns the pushed `wallboard` into the Wallboard tab (converted
//! here, see [`super::supervisor`]), runs reports and saves them as CSV, and monitors calls:
//! what the switchboard routes to it (the caller on `main`, the agent on `aux`) is mixed and
//! played on the headset, and its microphone goes out only in whisper and barge.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sapa_ui::{
    ActiveCall, CalendarDate, CallOrigin, CallerInfo as UiCaller, ConnectionHealth, ConsultView,
    DeviceRole, Disposition, DispositionDraft, DraftStatus, Intent, LoginError, MonitorSession,
    NoticeLevel, OriginKind, PastCall, PendingCallback, QueueSummary, ReportGrouping, ReportTable,
    SettingsView, Tab, VoiceStats, WallboardView, WrapUpCall,
};
use tokio::sync::{mpsc, watch};

use super::audio::{AudioEndpoint, NoDevice, level_dbfs};
use super::clock;
use super::config::PhoneConfig;
use super::draft::{DraftCall, DraftStore, StoredDraft, SubmittedForm, request_id};
use super::notify::{CallNotification, DesktopNotifier, NotifyBus};
use super::supervisor;
use crate::audio::jitter::FrameDuration;
use crate::audio::process::MicProcessor;
use crate::peer::rtc::{LinkState, PeerMedia, RxPacket, RxSlot};
use crate::peer::voice::{FRAME, Mouth, Voice};
use crate::peer::{REQUEST_TIMEOUT, connect_media, now_ms, signal};
use crate::protocol::{
    AgentStateName, CallbackInfo, ClientConfig, ClientMessage, ConsultKind, ConsultPhase,
    ErrorCode, HistoryEntry, MonitorMode, OfferContext, PROTOCOL_VERSION, RequestedState,
    Resolution, Role, ServerMessage,
};
use crate::sounds::Sound;

/// How often the engine pings the switchboard (round-trip shown in the header).
const PING_EVERY: Duration = Duration::from_secs(2);
/// No pong for this long: the link is treated as lost and the phone reconnects.
const PING_DEAD_AFTER: Duration = Duration::from_secs(7);
/// Reconnect waits: 0.5 s, doubling, at most this long.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Samples in 10 ms at 48 kHz: the voice clock's unit of time here (its frames are one or
/// two of them).
const BLOCK: usize = 480;
/// Levels and voice statistics go to the window at most this often (200 ms, in 10 ms blocks).
const LEVEL_EVERY_BLOCKS: u32 = 20;
/// Voice statistics are computed over this many 10 ms blocks (5 s).
const STATS_WINDOW_BLOCKS: u32 = 500;
/// The test tone: 440 Hz for this many 10 ms blocks (1.5 s).
const TEST_TONE_BLOCKS: u32 = 150;
/// How long the headset stays open after the last thing that needed it (a call, a test):
/// long enough that answering the next call in a busy queue finds it running.
const AUDIO_RELEASE_AFTER: Duration = Duration::from_secs(2);

/// Where to log in.
#[derive(Clone)]
pub struct Credentials {
    pub url: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Which audio endpoint the engine opens on its thread.
pub enum AudioSetup {
    /// The headset and ringer named in the config; falls back to [`NoDevice`] with a notice.
    Devices,
    /// No audio at all (silence sent, nothing played).
    None,
    /// Made on the engine thread by the closure (tests plug in a `TestEndpoint`).
    Custom(Box<dyn FnOnce() -> Box<dyn AudioEndpoint> + Send>),
}

/// How the engine starts.
pub struct EngineOptions {
    pub config: PhoneConfig,
    /// Where setting changes are saved; `None` keeps them for this run only.
    pub config_path: Option<PathBuf>,
    /// Save the switchboard URL and user after a successful login (not in the demo).
    pub remember_login: bool,
    /// Drafts live in `<drafts_root>/<user>/`.
    pub drafts_root: PathBuf,
    /// Log in at once, without the login screen.
    pub auto_login: Option<Credentials>,
    /// Go available right after the first login (the demo); otherwise the agent starts
    /// not ready, as the switchboard puts every new login.
    pub go_available: bool,
    pub audio: AudioSetup,
    /// Where a supervisor's report is saved as CSV; `None`: the Downloads folder, else home.
    pub export_dir: Option<PathBuf>,
    /// Which D-Bus gets the desktop popup of an incoming call (the config can turn it off).
    pub notify_bus: NotifyBus,
}

/// What the engine tells the window. Applied in order by [`super::state::PhoneState`].
#[derive(Debug, Clone)]
pub enum Update {
    /// Prefill the login form.
    LoginForm {
        url: String,
        user: String,
    },
    LoggingIn,
    LoginFailed(LoginError),
    LoggedIn {
        user: String,
        role: Role,
        config: ClientConfig,
    },
    LoggedOut,
    Connection(ConnectionHealth),
    AgentState {
        state: AgentStateName,
        reason: Option<String>,
        since_ms: i64,
        call_id: Option<String>,
        deadline_ms: Option<i64>,
    },
    PendingNotReady(Option<String>),
    Offered {
        call_id: String,
        queue: String,
        caller: UiCaller,
        waited_ms: u64,
        ring_started_ms: u64,
        ring_deadline_ms: u64,
        /// Why the call comes to this agent (transfer, consult, escalation, callback).
        origin: Option<CallOrigin>,
    },
    OfferWithdrawn {
        call_id: String,
        reason: String,
    },
    Connected {
        call_id: String,
        at_ms: u64,
    },
    Ended {
        call_id: String,
        reason: String,
        at_ms: u64,
    },
    Muted(bool),
    /// A keypad key went to the far end as a telephone event.
    DtmfSent(char),
    Held {
        on: bool,
        at_ms: u64,
    },
    Monitored(bool),
    /// The consult or escalation this agent started on `call_id` is ringing or connected
    /// (`Some`), or is over (`None`).
    Consult {
        call_id: String,
        consult: Option<ConsultView>,
    },
    /// This agent's pending callbacks, as the switchboard listed them.
    Callbacks(Vec<PendingCallback>),
    /// Put this draft in the form (fresh for a new call, or from disk).
    Draft(DispositionDraft),
    DraftStatus(DraftStatus),
    /// Show the wrap-up form of a call whose disposition was never submitted (found on disk
    /// after a restart).
    RestoreWrapUp {
        call: WrapUpCall,
        draft: DispositionDraft,
    },
    DispositionSaved {
        call_id: String,
    },
    HistorySearching(String),
    /// The switchboard stored these notes about the customer at `number` (blank: cleared).
    CustomerNotes {
        number: String,
        notes: String,
    },
    HistoryResults {
        query: String,
        results: Vec<PastCall>,
    },
    /// A call handled in this shift, new or updated (by call id).
    TodayCall(PastCall),
    Queues(QueueSummary),
    /// Everyone logged in (this user included), as the switchboard last said.
    Colleagues(Vec<crate::protocol::Colleague>),
    Settings(SettingsView),
    Notice {
        level: NoticeLevel,
        text: String,
    },
    /// Supervisors: the latest wallboard (pushed every second), without `monitoring`.
    Wallboard(WallboardView),
    /// Supervisors: monitoring started, changed mode (`Some`) or ended (`None`).
    Monitoring(Option<MonitorSession>),
    /// Supervisors: a report was asked for.
    ReportRunning,
    Report(ReportTable),
    /// The report or its export failed; the sentence says why.
    ReportFailed(String),
}

/// The latest audio levels; merged, only the newest matters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub mic_dbfs: f32,
    pub speaker_dbfs: f32,
    pub voice: VoiceStats,
    /// The microphone test is running (Settings shows `mic_dbfs`).
    pub mic_test: bool,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            mic_dbfs: -100.0,
            speaker_dbfs: -100.0,
            voice: VoiceStats::default(),
            mic_test: false,
        }
    }
}

enum Command {
    Intent(Intent),
    Shutdown,
}

/// The window's side of the engine.
pub struct EngineHandle {
    commands: mpsc::UnboundedSender<Command>,
    updates: std::sync::mpsc::Receiver<Update>,
    levels: watch::Receiver<Levels>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineHandle {
    /// Hands an intent to the engine (never blocks).
    pub fn send(&self, intent: Intent) {
        // A closed channel means the engine thread ended; its last update said why.
        let _ = self.commands.send(Command::Intent(intent));
    }

    /// The next update, if one is waiting (never blocks).
    pub fn try_recv(&self) -> Option<Update> {
        self.updates.try_recv().ok()
    }

    /// Waits for the next update (tests; the window never waits).
    pub fn recv_timeout(&self, limit: Duration) -> Option<Update> {
        self.updates.recv_timeout(limit).ok()
    }

    pub fn levels(&self) -> Levels {
        *self.levels.borrow()
    }

    /// Stops the engine (logs out, closes the peer connection) and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the engine thread. `wake` is called after every update (the window passes
/// `ctx.request_repaint`), from the engine thread.
pub fn spawn(
    options: EngineOptions,
    wake: impl Fn() + Send + Sync + 'static,
) -> std::io::Result<EngineHandle> {
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (updates_tx, updates) = std::sync::mpsc::channel();
    let (levels_tx, levels) = watch::channel(Levels::default());
    let outbox = Outbox {
        updates: updates_tx,
        wake: Arc::new(wake),
    };
    let thread = std::thread::Builder::new()
        .name("sapa-phone-engine".into())
        .spawn(move || {
            // The engine future and the webrtc crate's tasks share this one thread
            // (`block_on`, so the audio endpoint need not be `Send`). A packet, a voice tick
            // or a send then costs no wake-up of another thread: with two I/O workers a call
            // cost 300 more wake-ups a second and 0.75 % more of a core (BENCHMARKS.md).
            // What the engine does between awaits is short (voice ticks, small file writes);
            // the slow device opening would stall the voice tick all the same.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .thread_name("sapa-phone-io")
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    outbox.notice(NoticeLevel::Error, format!("The phone cannot start: {e}"));
                    return;
                }
            };
            runtime.block_on(async move {
                let engine = Engine::new(options, outbox, levels_tx, commands_rx);
                engine.run().await;
            });
            runtime.shutdown_timeout(Duration::from_secs(2));
        })?;
    Ok(EngineHandle {
        commands,
        updates,
        levels,
        thread: Some(thread),
    })
}

/// Sends updates and wakes the window.
#[derive(Clone)]
struct Outbox {
    updates: std::sync::mpsc::Sender<Update>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Outbox {
    fn send(&self, update: Update) {
        let _ = self.updates.send(update);
        (self.wake)();
    }

    /// Queues an update without waking the window: for figures that may wait for the next
    /// frame (the header's state timer draws one every second while logged in), so an idle
    /// window is not repainted for them.
    fn send_quiet(&self, update: Update) {
        let _ = self.updates.send(update);
    }

    fn notice(&self, level: NoticeLevel, text: impl Into<String>) {
        self.send(Update::Notice {
            level,
            text: text.into(),
        });
    }
}

/// What a request we sent was, so its reply can be handled.
#[derive(Debug, Clone)]
enum Pending {
    /// Nothing to do on `ok`; an error is shown as a notice.
    Plain(&'static str),
    /// Not ready asked during a call: applies after wrap-up.
    NotReadyLater(String),
    CancelLater,
    Disposition {
        call_id: String,
        resubmit: bool,
    },
    History(String),
    /// Notes about a customer, shown once the switchboard has stored them.
    CustomerNotes {
        number: String,
        notes: String,
    },
    /// A `monitor` request: refused means the session did not start or change.
    Monitor,
    /// A `report` request, with what it was for (to name and label the result).
    Report {
        from: CalendarDate,
        to: CalendarDate,
        by: ReportGrouping,
    },
}

/// The last report a supervisor ran, ready to be saved.
struct ReportExport {
    file_name: String,
    csv: String,
}

/// The voice loop at rest ([`Engine::run_session`]): when it began, its tick period (one
/// frame), and how many of the ticks due since then have been run.
struct VoiceRest {
    since: Instant,
    period: Duration,
    ticks_run: u64,
}

impl VoiceRest {
    fn since(since: Instant, period: Duration) -> VoiceRest {
        VoiceRest {
            since,
            period,
            ticks_run: 0,
        }
    }

    /// How many ticks are due by `now` and not run yet; from here on they count as run.
    fn take_due(&mut self, now: Instant) -> u64 {
        let due = (now.saturating_duration_since(self.since).as_micros() / self.period.as_micros())
            as u64;
        let left = due.saturating_sub(self.ticks_run);
        self.ticks_run += left;
        left
    }

    /// When the first tick not yet run is due, on the frame clock the rest began on.
    fn next_tick_at(&self) -> Instant {
        let micros = (self.ticks_run + 1).saturating_mul(self.period.as_micros() as u64);
        self.since + Duration::from_micros(micros)
    }
}

/// How a session ended.
enum Exit {
    Lost(String),
    LoggedOut,
    /// Signed out because the same user logged in elsewhere.
    TakenOver,
    Shutdown,
}

/// A call the engine knows about, for drafts and the history list.
#[derive(Debug, Clone, Default)]
struct CallInfo {
    call_id: String,
    number: String,
    name: Option<String>,
    queue: String,
    answered_ms: Option<u64>,
    talk_ms: u64,
}

/// One login: the signaling connection, the shift's peer connection and its voice loop.
struct Session {
    signal: signal::Signal,
    events: mpsc::UnboundedReceiver<ServerMessage>,
    media: PeerMedia,
    packets: mpsc::Receiver<RxPacket>,
    voice: Voice,
    pending: HashMap<String, Pending>,
    next_req: u64,
    last_pong: Instant,
    send_failed: bool,
}

impl Session {
    async fn open(creds: &Credentials) -> Result<(Session, Role, ClientConfig), LoginError> {
        let url = signal::ws_url(&creds.url);
        let (signal, events) = signal::Signal::connect(&url).await.map_err(|e| match e {
            signal::SignalError::Unreachable { reason, .. } => LoginError::Unreachable(reason),
            other => LoginError::Unreachable(other.to_string()),
        })?;
        let answer = signal
            .request(
                ClientMessage::Login {
                    req: None,
                    protocol: PROTOCOL_VERSION,
                    user: creds.user.clone(),
                    password: creds.password.clone(),
                    lookup: false,
                },
                REQUEST_TIMEOUT,
            )
            .await
            .map_err(|e| match e {
                signal::SignalError::Refused {
                    code: ErrorCode::BadCredentials,
                    ..
                } => LoginError::BadCredentials,
                other => LoginError::Other(format!("Login failed: {other}")),
            })?;
        let ServerMessage::LoggedIn { role, config, .. } = answer else {
            return Err(LoginError::Other(format!(
                "Unexpected answer to login: {answer:?}"
            )));
        };
        let (media, packets) = connect_media(&signal, &url)
            .await
            .map_err(|e| LoginError::Other(format!("The voice connection failed: {e}")))?;
        let voice = Voice::new(None)
            .map_err(|e| LoginError::Other(format!("The voice codec failed: {e}")))?;
        Ok((
            Session {
                signal,
                events,
                media,
                packets,
                voice,
                pending: HashMap::new(),
                next_req: 1,
                last_pong: Instant::now(),
                send_failed: false,
            },
            role,
            config,
        ))
    }

    /// Sends a request without waiting; the reply is matched by `req` in `on_server`.
    fn request(&mut self, mut message: ClientMessage, what: Pending) {
        let req = format!("e{}", self.next_req);
        self.next_req += 1;
        signal::set_req(&mut message, req.clone());
        if self.signal.send(message).is_ok() {
            self.pending.insert(req, what);
        }
    }

    async fn close(self) {
        self.media.close().await;
    }
}

/// The engine's state; lives on the engine thread only.
struct Engine {
    options_drafts_root: PathBuf,
    remember_login: bool,
    go_available: bool,
    auto_login: Option<Credentials>,
    config: PhoneConfig,
    config_path: Option<PathBuf>,
    out: Outbox,
    levels: watch::Sender<Levels>,
    commands: mpsc::UnboundedReceiver<Command>,
    endpoint: Box<dyn AudioEndpoint>,
    /// The ringtone, decoded once.
    ringtone: Vec<f32>,
    ringing: bool,
    /// The desktop popup of an incoming call, delivered off this thread.
    notifier: DesktopNotifier,
    /// The offered call whose popup is up; it is closed when the ring stops.
    notified_call: Option<String>,
    /// The logged-in user (drafts and request ids are theirs).
    user: String,
    drafts: Option<DraftStore>,
    /// The switchboard's view of our state, as last told.
    state: AgentStateName,
    pending_not_ready: Option<String>,
    offered: Option<CallInfo>,
    active: Option<CallInfo>,
    /// The call in wrap-up (or restored from disk) whose disposition is not yet saved.
    wrap: Option<CallInfo>,
    /// The draft on screen, as last reported.
    draft: Option<DispositionDraft>,
    /// Drafts of other calls waiting to be shown once the current wrap-up is done.
    muted: bool,
    mic_test: bool,
    /// 10 ms blocks of test tone still to play.
    test_tone_left: u32,
    test_tone_phase: f32,
    /// Whether the headset is held open ([`AudioEndpoint::set_in_use`]), and since when
    /// nothing has needed it.
    audio_in_use: bool,
    audio_idle_since: Option<Instant>,
    /// Noise suppression and automatic gain on the microphone, as Settings says.
    mic_processor: MicProcessor,
    /// 10 ms blocks the voice clock has run (levels and statistics go out by it).
    blocks: u32,
    peak_mic_dbfs: f32,
    peak_speaker_dbfs: f32,
    stats_base: (u64, u64, u64),
    /// The logged-in user's role: only supervisors monitor and run reports.
    role: Role,
    /// The mode of this supervisor's monitoring session, while one runs.
    monitoring: Option<MonitorMode>,
    /// The report on screen, for Export CSV.
    last_report: Option<ReportExport>,
    export_dir: Option<PathBuf>,
}

impl Engine {
    fn new(
        options: EngineOptions,
        out: Outbox,
        levels: watch::Sender<Levels>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Engine {
        let endpoint: Box<dyn AudioEndpoint> = match options.audio {
            AudioSetup::None => Box::new(NoDevice),
            AudioSetup::Custom(make) => make(),
            AudioSetup::Devices => match super::devices::open(&options.config) {
                Ok((endpoint, notices)) => {
                    for text in notices {
                        out.notice(NoticeLevel::Warning, text);
                    }
                    endpoint
                }
                Err(e) => {
                    // Device errors may end in a full stop of their own.
                    let reason = e.to_string();
                    let reason = reason.trim_end_matches('.');
                    out.notice(
                        NoticeLevel::Warning,
                        format!("No sound: {reason}. Calls connect, but you will not hear them."),
                    );
                    Box::new(NoDevice)
                }
            },
        };
        let mic_processor =
            MicProcessor::new(options.config.noise_suppression, options.config.auto_gain);
        Engine {
            mic_processor,
            options_drafts_root: options.drafts_root,
            remember_login: options.remember_login,
            go_available: options.go_available,
            auto_login: options.auto_login,
            config: options.config,
            config_path: options.config_path,
            out,
            levels,
            commands,
            endpoint,
            ringtone: Sound::Ringtone.samples(),
            ringing: false,
            notifier: DesktopNotifier::spawn(options.notify_bus),
            notified_call: None,
            user: String::new(),
            drafts: None,
            state: AgentStateName::LoggedOut,
            pending_not_ready: None,
            offered: None,
            active: None,
            wrap: None,
            draft: None,
            muted: false,
            mic_test: false,
            test_tone_left: 0,
            audio_in_use: true,
            audio_idle_since: None,
            test_tone_phase: 0.0,
            blocks: 0,
            peak_mic_dbfs: -100.0,
            peak_speaker_dbfs: -100.0,
            stats_base: (0, 0, 0),
            role: Role::Agent,
            monitoring: None,
            last_report: None,
            export_dir: options.export_dir,
        }
    }

    async fn run(mut self) {
        self.out.send(Update::LoginForm {
            url: self.config.switchboard.clone(),
            user: self.config.user.clone(),
        });
        self.out.send(Update::Settings(self.settings_view()));
        let mut next_login = self.auto_login.take();
        loop {
            let creds = match next_login.take() {
                Some(creds) => creds,
                None => match self.wait_for_login().await {
                    Some(creds) => creds,
                    None => return,
                },
            };
            self.out.send(Update::LoggingIn);
            let (mut session, role, config) = match Session::open(&creds).await {
                Ok(opened) => opened,
                Err(e) => {
                    self.out.send(Update::LoginFailed(e));
                    continue;
                }
            };
            self.logged_in(&creds, role, config);
            let mut first = true;
            loop {
                self.after_connect(&mut session, first);
                first = false;
                let exit = self.run_session(&mut session).await;
                self.stop_ring();
                session.close().await;
                match exit {
                    Exit::Shutdown => return,
                    Exit::LoggedOut => {
                        self.logged_out();
                        break;
                    }
                    Exit::TakenOver => {
                        self.logged_out();
                        self.out.send(Update::LoginFailed(LoginError::Other(
                            "You logged in somewhere else, so this phone was signed out.".into(),
                        )));
                        break;
                    }
                    Exit::Lost(why) => {
                        tracing::warn!("lost the switchboard: {why}");
                        match self.reconnect(&creds).await {
                            Reconnect::Done(again) => session = *again,
                            Reconnect::LoggedOut => {
                                self.logged_out();
                                break;
                            }
                            Reconnect::Shutdown => return,
                        }
                    }
                }
            }
        }
    }

    /// Logged out: serve intents until a login (or shutdown, `None`).
    async fn wait_for_login(&mut self) -> Option<Credentials> {
        // No calls come while logged out: the devices rest.
        self.set_audio_in_use(false);
        loop {
            match self.commands.recv().await {
                None | Some(Command::Shutdown) => return None,
                Some(Command::Intent(Intent::LogIn {
                    url,
                    user,
                    password,
                })) => {
                    return Some(Credentials {
                        url,
                        user,
                        password: password.expose().to_owned(),
                    });
                }
                Some(Command::Intent(intent)) => self.offline_intent(intent),
            }
        }
    }

    fn logged_in(&mut self, creds: &Credentials, role: Role, config: ClientConfig) {
        self.user = creds.user.clone();
        self.role = role;
        self.drafts = Some(DraftStore::for_user(&self.options_drafts_root, &creds.user));
        if self.remember_login
            && (self.config.switchboard != creds.url || self.config.user != creds.user)
        {
            self.config.switchboard = creds.url.clone();
            self.config.user = creds.user.clone();
            self.save_config();
        }
        self.out.send(Update::LoggedIn {
            user: creds.user.clone(),
            role,
            config,
        });
    }

    fn logged_out(&mut self) {
        self.state = AgentStateName::LoggedOut;
        self.offered = None;
        self.active = None;
        self.wrap = None;
        self.draft = None;
        self.pending_not_ready = None;
        self.muted = false;
        self.role = Role::Agent;
        self.monitoring = None;
        self.last_report = None;
        self.out.send(Update::LoggedOut);
    }

    /// After every (re)connect: go available if asked, send submitted dispositions that were
    /// never acknowledged, and bring back an unfinished wrap-up form.
    fn after_connect(&mut self, session: &mut Session, first: bool) {
        if let Err(e) = session.voice.set_dtx(self.config.dtx) {
            tracing::warn!("Opus DTX not set: {e}");
        }
        session
            .voice
            .set_frame(FrameDuration::from_ms(self.config.frame_ms).unwrap_or_default());
        self.out
            .send(Update::Connection(ConnectionHealth::Connected {
                round_trip_ms: 0,
            }));
        session.last_pong = Instant::now();
        if first && self.go_available {
            session.request(
                ClientMessage::SetState {
                    req: None,
                    state: RequestedState::Available,
                    reason: None,
                },
                Pending::Plain("Going available"),
            );
        }
        request_callbacks(session);
        let Some(store) = &self.drafts else {
            return;
        };
        for stored in store.all() {
            if let Some(form) = &stored.submitted {
                session.request(
                    disposition_message(&stored.call_id, &stored.request_id, form),
                    Pending::Disposition {
                        call_id: stored.call_id.clone(),
                        resubmit: true,
                    },
                );
            }
        }
        self.restore_next_draft();
    }

    /// Shows the newest unsubmitted draft on disk as the wrap-up form, if nothing else is.
    fn restore_next_draft(&mut self) {
        if self.wrap.is_some() || self.active.is_some() || self.offered.is_some() {
            return;
        }
        let Some(store) = &self.drafts else {
            return;
        };
        let Some(stored) = store.all().into_iter().find(|d| d.submitted.is_none()) else {
            return;
        };
        let info = CallInfo {
            call_id: stored.call_id.clone(),
            number: stored.call.number.clone(),
            name: stored.call.name.clone(),
            queue: stored.call.queue.clone(),
            answered_ms: None,
            talk_ms: stored.call.talk_ms,
        };
        // The phone's state shows it with a notice that says so.
        self.out.send(Update::RestoreWrapUp {
            call: WrapUpCall {
                call_id: info.call_id.clone(),
                caller: ui_caller(&info.number, info.name.clone(), None, &[]),
                queue: info.queue.clone(),
                talk_ms: info.talk_ms,
                acw_deadline_ms: None,
            },
            draft: stored.draft.clone(),
        });
        self.draft = Some(stored.draft);
        self.wrap = Some(info);
    }

    /// Serves one session. The voice tick runs every frame (20 or 10 ms) while anything needs
    /// audio and rests once the headset is let go (most of a shift): an idle phone then wakes
    /// for messages and the ping only. The ticks it skipped are run later in one go
    /// ([`Self::catch_up_voice`]: before every message, with each ping, and when audio is
    /// needed again), so the RTP clock, the level windows and the receivers stay where
    /// ticking would have left them.
    async fn run_session(&mut self, session: &mut Session) -> Exit {
        let mut tick = tokio::time::interval(session.voice.frame_period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resting: Option<VoiceRest> = None;
        loop {
            tokio::select! {
                biased;
                command = self.commands.recv() => {
                    // Skipped ticks first: they ran before this intent, in the state before it.
                    self.catch_up_voice(session, resting.as_mut()).await;
                    match command {
                        None | Some(Command::Shutdown) => return Exit::Shutdown,
                        Some(Command::Intent(intent)) => {
                            if let Some(exit) = self.on_intent(session, intent) {
                                return exit;
                            }
                        }
                    }
                }
                event = session.events.recv() => {
                    self.catch_up_voice(session, resting.as_mut()).await;
                    match event {
                        None => return Exit::Lost("the switchboard closed the connection".into()),
                        Some(message) => {
                            if let Some(exit) = self.on_server(session, message) {
                                return exit;
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(session.voice.play_deadline()),
                    if resting.is_none() && session.voice.next_play().is_some() =>
                {
                    self.play_frame(session);
                }
                _ = tick.tick(), if resting.is_none() => {
                    self.voice_tick(session).await;
                    if !self.audio_in_use && !self.audio_needed() {
                        resting = Some(VoiceRest::since(
                            Instant::now(),
                            session.voice.frame_period(),
                        ));
                    }
                }
                _ = ping.tick() => {
                    // Keeps the catch-up before the next message short (at most a ping's worth).
                    self.catch_up_voice(session, resting.as_mut()).await;
                    if session.last_pong.elapsed() > PING_DEAD_AFTER {
                        return Exit::Lost("no answer to pings".into());
                    }
                    if session.media.link_state() == LinkState::Failed {
                        return Exit::Lost("the voice connection failed".into());
                    }
                    let t = now_ms().max(0) as u64;
                    session.request(ClientMessage::Ping { req: None, t }, Pending::Plain("Ping"));
                }
            }
            if let Some(rest) = &resting
                && self.audio_needed()
            {
                // Tick again on the same frame clock, from the first tick not run (at once if
                // it is already due).
                tick.reset_at(tokio::time::Instant::from_std(rest.next_tick_at()));
                resting = None;
            }
        }
    }

    /// Runs the voice ticks skipped since the voice loop began to rest, up to now.
    async fn catch_up_voice(&mut self, session: &mut Session, rest: Option<&mut VoiceRest>) {
        let Some(rest) = rest else {
            return;
        };
        for _ in 0..rest.take_due(Instant::now()) {
            self.voice_tick(session).await;
        }
    }

    /// The switchboard is gone: retry with backoff until it is back, the agent logs out, or
    /// the window closes. Drafts and settings keep working meanwhile.
    async fn reconnect(&mut self, creds: &Credentials) -> Reconnect {
        let since_ms = now_ms().max(0) as u64;
        self.offered = None;
        self.active = None;
        self.muted = false;
        // The switchboard ended any monitoring when this connection went away.
        if self.monitoring.take().is_some() {
            self.out.send(Update::Monitoring(None));
        }
        // What was on the call screen is over; a wrap-up form stays (its draft is on disk).
        let mut wait = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            self.out
                .send(Update::Connection(ConnectionHealth::Reconnecting {
                    attempt,
                    since_ms,
                }));
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    command = self.commands.recv() => match command {
                        None | Some(Command::Shutdown) => return Reconnect::Shutdown,
                        Some(Command::Intent(Intent::LogOut)) => return Reconnect::LoggedOut,
                        Some(Command::Intent(intent)) => self.offline_intent(intent),
                    }
                }
            }
            match Session::open(creds).await {
                Ok((session, _, _)) => {
                    self.out
                        .notice(NoticeLevel::Info, "Connection to the switchboard is back.");
                    return Reconnect::Done(Box::new(session));
                }
                Err(LoginError::BadCredentials) => {
                    self.out
                        .send(Update::LoginFailed(LoginError::BadCredentials));
                    return Reconnect::LoggedOut;
                }
                Err(e) => tracing::info!("reconnect attempt {attempt} failed: {e}"),
            }
            attempt += 1;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }

    /// Holds the headset open while something needs it (a ringing or connected call, a
    /// supervisor's monitoring, a device test) and lets it go after [`AUDIO_RELEASE_AFTER`]
    /// with nothing, so that answering never waits for a device and an idle shift costs none.
    fn hold_audio_while_needed(&mut self, now: Instant) {
        let wanted = if self.audio_needed() {
            self.audio_idle_since = None;
            true
        } else {
            let since = *self.audio_idle_since.get_or_insert(now);
            self.audio_in_use && now.duration_since(since) < AUDIO_RELEASE_AFTER
        };
        self.set_audio_in_use(wanted);
    }

    /// Whether anything needs the headset now: a ringing or connected call, a supervisor's
    /// monitoring, a device test.
    fn audio_needed(&self) -> bool {
        self.offered.is_some()
            || self.active.is_some()
            || self.monitoring.is_some()
            || self.mic_test
            || self.test_tone_left > 0
    }

    fn set_audio_in_use(&mut self, in_use: bool) {
        if in_use != self.audio_in_use {
            self.audio_in_use = in_use;
            if let Err(e) = self.endpoint.set_in_use(in_use) {
                self.out.notice(NoticeLevel::Warning, e);
            }
        }
    }

    /// One frame (20 or 10 ms): microphone to the switchboard, and (unless the playout runs
    /// on its own clock, [`Self::play_frame`]) the switchboard to the speaker.
    async fn voice_tick(&mut self, session: &mut Session) {
        self.hold_audio_while_needed(Instant::now());
        // A headset plays what it hears when it is due, not on the next tick; between
        // calls (headset paused) the plays follow the tick again.
        let aligned = self.audio_in_use && self.endpoint.plays_in_real_time();
        if aligned != session.voice.aligned_playout() {
            session.voice.set_aligned_playout(aligned);
        }
        for text in self.endpoint.watch_devices(Instant::now()) {
            self.out.notice(NoticeLevel::Warning, text);
        }
        if session.voice.next_play().is_none() {
            self.play_frame(session);
        }
        let n = session.voice.frame_len();
        let mut mic_buf = [0f32; FRAME];
        let mic = &mut mic_buf[..n];
        let coaching = matches!(
            self.monitoring,
            Some(MonitorMode::Whisper | MonitorMode::Barge)
        );
        if !self.endpoint.read_mic_frame(mic) {
            mic.fill(0.0);
        } else if self.active.is_some() || coaching || self.mic_test {
            // Only a microphone someone hears is cleaned (the mic test shows the result).
            self.mic_processor.process(mic);
        }
        // The voice loop says what its `Mouth` gives; a one-frame "WAV" refilled every tick
        // makes it say the microphone, without a second copy of the voice loop.
        match &mut session.voice.mouth {
            Mouth::Wav { samples, pos } if samples.len() == n => {
                samples.copy_from_slice(mic);
                *pos = 0;
            }
            mouth => *mouth = Mouth::wav(mic.to_vec()),
        }
        // Between calls nothing is encoded or sent (the link stays up by ICE keepalives):
        // this is most of a shift, and encoding silence would cost CPU for nothing. The RTP
        // clock still advances, so the first frame of a call carries the right time.
        // A supervisor speaks into a monitored call only in whisper and barge; in listen the
        // microphone stays home (the switchboard would not forward it either).
        session.voice.muted = self.muted || !(self.active.is_some() || coaching);
        if let Some((ts, frame)) = session.voice.say(Instant::now()) {
            match session.voice.send(&session.media, ts, frame).await {
                Ok(()) => session.send_failed = false,
                Err(e) if !session.send_failed => {
                    session.send_failed = true;
                    tracing::warn!("sending voice failed: {e}");
                }
                Err(_) => {}
            }
        }
        if let Err(e) = session.voice.send_dtmf(&session.media).await {
            tracing::warn!("sending a keypad digit failed: {e}");
        }

        self.peak_mic_dbfs =
            self.peak_mic_dbfs
                .max(if self.muted { -100.0 } else { level_dbfs(mic) });
        let before = self.blocks;
        self.blocks = self.blocks.wrapping_add((n / BLOCK) as u32);
        let crossed = |every: u32| before / every != self.blocks / every;
        if crossed(LEVEL_EVERY_BLOCKS) {
            let voice = if crossed(STATS_WINDOW_BLOCKS) {
                Some(self.voice_stats(session))
            } else {
                None
            };
            let levels = Levels {
                mic_dbfs: self.peak_mic_dbfs,
                speaker_dbfs: self.peak_speaker_dbfs,
                voice: voice.unwrap_or(self.levels.borrow().voice),
                mic_test: self.mic_test,
            };
            self.levels.send_replace(levels);
            if self.mic_test {
                // Only the mic test needs the window woken; call screens redraw at 4 Hz.
                (self.out.wake)();
            }
            self.peak_mic_dbfs = -100.0;
            self.peak_speaker_dbfs = -100.0;
        }
    }

    /// Plays one frame of what the switchboard sends (and the settings' test tone) on the
    /// speaker: on the voice tick, or at the playout's own time when it runs aligned.
    fn play_frame(&mut self, session: &mut Session) {
        session.voice.receive(&mut session.packets);
        // A headset's speaker ring trims what the playout moving earlier leaves in it.
        session.voice.play(Instant::now());
        let n = session.voice.frame_len();
        let mut out_buf = [0f32; FRAME];
        let out = &mut out_buf[..n];
        out.copy_from_slice(session.voice.heard());
        if self.test_tone_left > 0 {
            for s in out.iter_mut() {
                *s += 0.25 * self.test_tone_phase.sin();
                self.test_tone_phase += 2.0 * std::f32::consts::PI * 440.0 / 48_000.0;
            }
            self.test_tone_phase %= 2.0 * std::f32::consts::PI;
            self.test_tone_left = self.test_tone_left.saturating_sub((n / BLOCK) as u32);
            if self.test_tone_left == 0 {
                self.out.send(Update::Settings(self.settings_view()));
            }
        }
        self.endpoint.write_speaker_frame(out);
        self.peak_speaker_dbfs = self.peak_speaker_dbfs.max(level_dbfs(out));
    }

    /// Loss and concealment over the last window, from the main slot's counters.
    fn voice_stats(&mut self, session: &Session) -> VoiceStats {
        let stats = session.voice.receiver_stats(RxSlot::Main).jitter;
        let (received, lost, concealed) =
            (stats.packets_received, stats.lost, stats.concealed_frames);
        let (r0, l0, c0) = self.stats_base;
        self.stats_base = (received, lost, concealed);
        let d_received = received.saturating_sub(r0) as f32;
        let d_lost = lost.saturating_sub(l0) as f32;
        let d_concealed = concealed.saturating_sub(c0) as f32;
        let expected = d_received + d_lost;
        // The far end's frames may be 10 or 20 ms, whatever this phone sends.
        let frames_in_window = (STATS_WINDOW_BLOCKS as usize * BLOCK
            / session.voice.received_frame_len(RxSlot::Main).max(1))
            as f32;
        VoiceStats {
            loss_pct: if expected > 0.0 {
                100.0 * d_lost / expected
            } else {
                0.0
            },
            jitter_ms: stats.interarrival_jitter_ms as f32,
            concealment_pct: if d_received > 0.0 {
                100.0 * d_concealed / frames_in_window
            } else {
                0.0
            },
        }
    }

    fn start_ring(&mut self) {
        if !self.ringing {
            self.ringing = true;
            self.endpoint.start_ring(&self.ringtone);
        }
    }

    fn stop_ring(&mut self) {
        if self.ringing {
            self.ringing = false;
            self.endpoint.stop_ring();
        }
        if let Some(call_id) = self.notified_call.take() {
            self.notifier.close(&call_id);
        }
    }

    /// One message from the switchboard.
    fn on_server(&mut self, session: &mut Session, message: ServerMessage) -> Option<Exit> {
        let now = now_ms().max(0) as u64;
        match message {
            ServerMessage::AgentState {
                state,
                reason,
                since_ms,
                call_id,
                deadline_ms,
            } => {
                self.state = state;
                if matches!(state, AgentStateName::Available | AgentStateName::NotReady)
                    && self.pending_not_ready.take().is_some()
                {
                    self.out.send(Update::PendingNotReady(None));
                }
                if state != AgentStateName::Offered {
                    self.stop_ring();
                }
                self.out.send(Update::AgentState {
                    state,
                    reason,
                    since_ms,
                    call_id,
                    deadline_ms,
                });
            }
            ServerMessage::CallOffered {
                call_id,
                queue,
                caller,
                waited_ms,
                ring_timeout_ms,
                history,
                context,
            } => {
                let ui = ui_caller(
                    &caller.number,
                    caller.name.clone(),
                    caller.notes.clone(),
                    &history,
                );
                let origin = context.as_ref().map(call_origin);
                if self.config.desktop_notifications {
                    let popup = CallNotification::incoming(
                        &caller.number,
                        caller.name.as_deref(),
                        &queue,
                        &history,
                        history.len(),
                        ring_timeout_ms,
                    );
                    self.notifier.show(&call_id, popup);
                    self.notified_call = Some(call_id.clone());
                }
                self.offered = Some(CallInfo {
                    call_id: call_id.clone(),
                    number: caller.number,
                    name: caller.name,
                    queue: queue.clone(),
                    answered_ms: None,
                    talk_ms: 0,
                });
                self.start_ring();
                self.out.send(Update::Offered {
                    call_id,
                    queue,
                    caller: ui,
                    waited_ms,
                    ring_started_ms: now,
                    ring_deadline_ms: now + ring_timeout_ms,
                    origin,
                });
            }
            ServerMessage::OfferWithdrawn { call_id, reason } => {
                self.stop_ring();
                if self.offered.as_ref().is_some_and(|o| o.call_id == call_id) {
                    self.offered = None;
                }
                self.out.send(Update::OfferWithdrawn { call_id, reason });
            }
            ServerMessage::CallConnected { call_id, .. }
                if self.active.as_ref().is_some_and(|a| a.call_id == call_id) =>
            {
                // The same call goes on with someone else: a colleague who consulted us
                // completed the transfer, and the caller is on the line now.
                self.out.notice(
                    NoticeLevel::Info,
                    "The transfer is complete: you are talking to the caller now.",
                );
            }
            ServerMessage::CallConnected { call_id, .. } => {
                self.stop_ring();
                self.muted = false;
                session.voice.start_new_call();
                let mut info = match self.offered.take() {
                    Some(o) if o.call_id == call_id => o,
                    _ => CallInfo {
                        call_id: call_id.clone(),
                        ..CallInfo::default()
                    },
                };
                info.answered_ms = Some(now);
                // A draft may already exist (a reconnect, a restart); otherwise a fresh one.
                let draft = self
                    .drafts
                    .as_ref()
                    .and_then(|s| s.load(&call_id))
                    .map(|d| d.draft)
                    .unwrap_or_else(|| DispositionDraft::for_call(&call_id));
                self.active = Some(info);
                self.draft = Some(draft.clone());
                self.out.send(Update::Draft(draft));
                self.out.send(Update::Muted(false));
                self.out.send(Update::Connected {
                    call_id,
                    at_ms: now,
                });
            }
            ServerMessage::CallEnded { call_id, reason } => {
                self.stop_ring();
                self.muted = false;
                if let Some(mut info) = self.active.take().filter(|a| a.call_id == call_id) {
                    session.voice.far_end_stopped(Instant::now());
                    info.talk_ms = info.answered_ms.map_or(0, |a| now.saturating_sub(a));
                    self.out.send(Update::TodayCall(PastCall {
                        call_id: info.call_id.clone(),
                        started_ms: info.answered_ms.unwrap_or(now),
                        started_text: clock::local_text(info.answered_ms.unwrap_or(now) as i64),
                        caller_number: info.number.clone(),
                        caller_name: info.name.clone(),
                        agent_name: self.user.clone(),
                        queue: info.queue.clone(),
                        talk_ms: info.talk_ms,
                        ..PastCall::default()
                    }));
                    self.wrap = Some(info);
                    // Kept on disk from now on, even untouched: a crash in wrap-up brings
                    // the form back.
                    let draft = self
                        .draft
                        .clone()
                        .unwrap_or_else(|| DispositionDraft::for_call(&call_id));
                    self.store_draft(draft, None);
                } else if self.offered.as_ref().is_some_and(|o| o.call_id == call_id) {
                    self.offered = None;
                }
                self.out.send(Update::Ended {
                    call_id,
                    reason,
                    at_ms: now,
                });
            }
            ServerMessage::CallHeld { on, .. } => {
                if on {
                    session.voice.far_end_stopped(Instant::now());
                }
                self.out.send(Update::Held { on, at_ms: now });
            }
            ServerMessage::Monitored { active, .. } => {
                self.out.send(Update::Monitored(active));
            }
            ServerMessage::DispositionSaved { req, call_id, .. } => {
                if let Some(req) = req {
                    session.pending.remove(&req);
                }
                self.disposition_saved(&call_id);
                // A follow-up disposition may have promised a callback.
                request_callbacks(session);
            }
            ServerMessage::History {
                req,
                number,
                customer,
                entries,
            } => {
                let query = match req.and_then(|r| session.pending.remove(&r)) {
                    Some(Pending::History(query)) => query,
                    _ => number.clone(),
                };
                let name = customer.and_then(|c| c.name);
                let results = entries
                    .iter()
                    .map(|e| past_call(&number, name.clone(), e))
                    .collect();
                self.out.send(Update::HistoryResults { query, results });
            }
            ServerMessage::QueueStatus { queues, colleagues } => {
                if let Some(colleagues) = colleagues {
                    self.out.send(Update::Colleagues(colleagues));
                }
                self.out.send(Update::Queues(QueueSummary {
                    calls_waiting: queues.iter().map(|q| q.waiting).sum(),
                    longest_wait_ms: queues.iter().map(|q| q.longest_wait_ms).max().unwrap_or(0),
                }));
            }
            ServerMessage::Pong { req, t } => {
                if let Some(req) = req {
                    session.pending.remove(&req);
                }
                session.last_pong = Instant::now();
                let round_trip_ms = (now_ms().max(0) as u64).saturating_sub(t) as u32;
                // Only the number changes (a reconnect shows "Connected" at once, in
                // `after_connect`); it appears with the next second of the state timer.
                self.out
                    .send_quiet(Update::Connection(ConnectionHealth::Connected {
                        round_trip_ms,
                    }));
            }
            ServerMessage::Ok { req } => {
                match req.and_then(|r| session.pending.remove(&r)) {
                    // Applied after wrap-up by the switchboard; shown until then.
                    Some(Pending::NotReadyLater(reason))
                        if !matches!(
                            self.state,
                            AgentStateName::Available | AgentStateName::NotReady
                        ) =>
                    {
                        self.pending_not_ready = Some(reason.clone());
                        self.out.send(Update::PendingNotReady(Some(reason)));
                    }
                    Some(Pending::CancelLater) => {
                        self.pending_not_ready = None;
                        self.out.send(Update::PendingNotReady(None));
                    }
                    Some(Pending::CustomerNotes { number, notes }) => {
                        self.out.send(Update::CustomerNotes { number, notes });
                    }
                    _ => {}
                }
            }
            ServerMessage::Error { req, code, message } => {
                let what = req.and_then(|r| session.pending.remove(&r));
                match what {
                    Some(Pending::Disposition { call_id, resubmit }) => {
                        if resubmit || matches!(code, ErrorCode::UnknownCall) {
                            // Sent once more and refused for good: keep no zombie draft.
                            if let Some(store) = &self.drafts {
                                let _ = store.remove(&call_id);
                            }
                            self.out.notice(
                                NoticeLevel::Warning,
                                format!("A saved disposition could not be stored: {message}"),
                            );
                            if self.wrap.as_ref().is_some_and(|w| w.call_id == call_id) {
                                self.disposition_saved(&call_id);
                            }
                        } else {
                            self.out.send(Update::DraftStatus(DraftStatus::SaveFailed(
                                message.clone(),
                            )));
                            self.out.notice(
                                NoticeLevel::Error,
                                format!("The disposition was not saved: {message}"),
                            );
                        }
                    }
                    Some(Pending::History(query)) => {
                        self.out.send(Update::HistoryResults {
                            query,
                            results: Vec::new(),
                        });
                        self.out
                            .notice(NoticeLevel::Warning, format!("Search failed: {message}"));
                    }
                    Some(Pending::Plain(what)) => {
                        self.out
                            .notice(NoticeLevel::Warning, format!("{what}: {message}"));
                    }
                    Some(Pending::CustomerNotes { .. }) => {
                        self.out.notice(
                            NoticeLevel::Warning,
                            format!("The customer's notes were not saved: {message}"),
                        );
                    }
                    Some(Pending::Monitor) => {
                        self.out.notice(
                            NoticeLevel::Warning,
                            format!("Monitoring did not start: {message}"),
                        );
                    }
                    Some(Pending::Report { .. }) => {
                        self.out.send(Update::ReportFailed(format!(
                            "The report failed: {message}"
                        )));
                    }
                    Some(Pending::NotReadyLater(_) | Pending::CancelLater) => {
                        self.out.notice(
                            NoticeLevel::Warning,
                            format!("The state change was refused: {message}"),
                        );
                    }
                    None if code == ErrorCode::InvalidState
                        && message.contains("another connection") =>
                    {
                        return Some(Exit::TakenOver);
                    }
                    None => {
                        self.out
                            .notice(NoticeLevel::Warning, format!("Switchboard: {message}"));
                    }
                }
            }
            ServerMessage::Wallboard { board } => {
                let view =
                    supervisor::wallboard_view(&board, now, super::clock::local_offset_minutes());
                self.out.send(Update::Wallboard(view));
            }
            ServerMessage::MonitorStarted {
                req, agent, mode, ..
            } => {
                if let Some(req) = req {
                    session.pending.remove(&req);
                }
                if self.monitoring.is_none() {
                    // A new stream on the shift-long connection: the caller and the agent.
                    session.voice.start_new_call();
                }
                if self.monitoring != Some(mode) {
                    // Who hears the supervisor changed: nothing encoded for the old listeners
                    // (the encoder's look-ahead) may reach the new ones.
                    session.voice.reset_encoder();
                }
                self.monitoring = Some(mode);
                self.out.send(Update::Monitoring(Some(MonitorSession {
                    agent_id: agent,
                    mode: supervisor::ui_mode(mode),
                })));
            }
            ServerMessage::MonitorEnded { reason, .. } => {
                self.monitoring = None;
                session.voice.far_end_stopped(Instant::now());
                self.out.send(Update::Monitoring(None));
                if reason == "call_ended" {
                    self.out
                        .notice(NoticeLevel::Info, "The call you were monitoring has ended.");
                }
            }
            ServerMessage::Report { req, rows, csv } => {
                let Some(Pending::Report { from, to, by }) =
                    req.and_then(|r| session.pending.remove(&r))
                else {
                    return None;
                };
                self.last_report = Some(ReportExport {
                    file_name: supervisor::csv_file_name(from, to, by),
                    csv,
                });
                self.out
                    .send(Update::Report(supervisor::report_table(&rows, by)));
            }
            ServerMessage::Welcome { .. }
            | ServerMessage::LoggedIn { .. }
            | ServerMessage::MediaAnswer { .. }
            | ServerMessage::MediaConnected
            | ServerMessage::CallQueued { .. }
            | ServerMessage::InMenu { .. }
            | ServerMessage::SurveyStarted { .. }
            | ServerMessage::Registered { .. }
            | ServerMessage::IncomingCall { .. }
            | ServerMessage::CallbackScheduled { .. } => {}
            ServerMessage::Callbacks { req, entries } => {
                if let Some(req) = req {
                    session.pending.remove(&req);
                }
                let list = entries.iter().map(pending_callback).collect();
                self.out.send(Update::Callbacks(list));
            }
            ServerMessage::ReceptionReport { loss_pct } => {
                session.voice.on_reception_report(loss_pct);
            }
            ServerMessage::ConsultState {
                call_id,
                agent,
                kind,
                state,
                reason,
            } => {
                let phase = match state {
                    ConsultPhase::Ringing => Some(sapa_ui::ConsultPhase::Ringing),
                    ConsultPhase::Connected => Some(sapa_ui::ConsultPhase::Connected),
                    ConsultPhase::Ended => None,
                };
                if state == ConsultPhase::Ended {
                    let why = reason.unwrap_or_default().replace('_', " ");
                    self.out.notice(
                        NoticeLevel::Info,
                        format!("Back with the caller ({agent}: {why})"),
                    );
                }
                self.out.send(Update::Consult {
                    call_id,
                    consult: phase.map(|phase| ConsultView {
                        colleague: agent,
                        kind: match kind {
                            ConsultKind::Transfer => sapa_ui::ConsultKind::WarmTransfer,
                            ConsultKind::Conference => sapa_ui::ConsultKind::Escalation,
                        },
                        phase,
                    }),
                });
            }
        }
        None
    }

    fn disposition_saved(&mut self, call_id: &str) {
        if let Some(store) = &self.drafts
            && let Err(e) = store.remove(call_id)
        {
            tracing::warn!("cannot delete the sent draft: {e}");
        }
        if self.wrap.as_ref().is_some_and(|w| w.call_id == call_id) {
            self.wrap = None;
            self.draft = None;
        }
        self.out.send(Update::DispositionSaved {
            call_id: call_id.to_owned(),
        });
        self.restore_next_draft();
    }

    /// One intent while connected. Returns how the session ends, if it does.
    fn on_intent(&mut self, session: &mut Session, intent: Intent) -> Option<Exit> {
        match intent {
            Intent::LogIn { .. } => {}
            Intent::LogOut => return Some(Exit::LoggedOut),
            Intent::SetAvailable => session.request(
                ClientMessage::SetState {
                    req: None,
                    state: RequestedState::Available,
                    reason: None,
                },
                Pending::Plain("Going available"),
            ),
            Intent::SetNotReady { reason } => {
                let idle = matches!(
                    self.state,
                    AgentStateName::Available
                        | AgentStateName::NotReady
                        | AgentStateName::LoggedOut
                );
                let what = if idle {
                    Pending::Plain("Going not ready")
                } else {
                    Pending::NotReadyLater(reason.clone())
                };
                session.request(
                    ClientMessage::SetState {
                        req: None,
                        state: RequestedState::NotReady,
                        reason: Some(reason),
                    },
                    what,
                );
            }
            Intent::CancelPendingNotReady => session.request(
                ClientMessage::SetState {
                    req: None,
                    state: RequestedState::Available,
                    reason: None,
                },
                Pending::CancelLater,
            ),
            Intent::Answer => {
                if let Some(offer) = &self.offered {
                    let call_id = offer.call_id.clone();
                    // Silence the ring at once; the answer is confirmed by call_connected.
                    self.stop_ring();
                    session.request(
                        ClientMessage::Answer { req: None, call_id },
                        Pending::Plain("Answer"),
                    );
                }
            }
            Intent::Decline => {
                if let Some(offer) = &self.offered {
                    let call_id = offer.call_id.clone();
                    self.stop_ring();
                    session.request(
                        ClientMessage::Decline { req: None, call_id },
                        Pending::Plain("Decline"),
                    );
                }
            }
            Intent::HangUp => {
                if let Some(call) = &self.active {
                    let call_id = Some(call.call_id.clone());
                    session.request(
                        ClientMessage::Hangup { req: None, call_id },
                        Pending::Plain("Hang up"),
                    );
                }
            }
            Intent::SetMuted(muted) => {
                if muted != self.muted
                    && let Some(call) = &self.active
                {
                    // The switchboard adds mute time to the call record.
                    session.request(
                        ClientMessage::Mute {
                            req: None,
                            call_id: call.call_id.clone(),
                            on: muted,
                        },
                        Pending::Plain("Mute"),
                    );
                }
                self.muted = muted;
                self.out.send(Update::Muted(muted));
            }
            Intent::SendDtmf(key) => {
                if self.active.is_some() {
                    match session.voice.queue_dtmf(&key.to_string()) {
                        Ok(()) => self.out.send(Update::DtmfSent(key)),
                        Err(e) => self.out.notice(NoticeLevel::Warning, e.to_string()),
                    }
                }
            }
            Intent::SetHold(on) => {
                if let Some(call) = &self.active {
                    let call_id = call.call_id.clone();
                    session.request(
                        ClientMessage::Hold {
                            req: None,
                            call_id,
                            on,
                        },
                        Pending::Plain("Hold"),
                    );
                }
            }
            Intent::TransferToQueue(_) | Intent::TransferToAgent(_) => {
                if let Some(call) = &self.active {
                    let notes = self.notes_so_far(&call.call_id);
                    let (queue, agent) = match intent {
                        Intent::TransferToQueue(queue) => (Some(queue), None),
                        Intent::TransferToAgent(agent) => (None, Some(agent)),
                        _ => unreachable!("matched above"),
                    };
                    session.request(
                        ClientMessage::Transfer {
                            req: None,
                            call_id: call.call_id.clone(),
                            queue,
                            agent,
                            notes,
                        },
                        Pending::Plain("Transfer"),
                    );
                }
            }
            Intent::Consult(colleague) => {
                if let Some(call) = &self.active {
                    let call_id = call.call_id.clone();
                    let notes = self.notes_so_far(&call_id);
                    session.request(
                        ClientMessage::Consult {
                            req: None,
                            call_id,
                            agent: colleague,
                            notes,
                        },
                        Pending::Plain("Warm transfer"),
                    );
                }
            }
            Intent::Escalate(supervisor) => {
                if let Some(call) = &self.active {
                    let call_id = call.call_id.clone();
                    let notes = self.notes_so_far(&call_id);
                    session.request(
                        ClientMessage::Escalate {
                            req: None,
                            call_id,
                            supervisor,
                            notes,
                        },
                        Pending::Plain("Escalation"),
                    );
                }
            }
            Intent::CompleteTransfer => {
                if let Some(call) = &self.active {
                    let call_id = call.call_id.clone();
                    session.request(
                        ClientMessage::CompleteTransfer { req: None, call_id },
                        Pending::Plain("Completing the transfer"),
                    );
                }
            }
            Intent::CancelConsult => {
                if let Some(call) = &self.active {
                    let call_id = call.call_id.clone();
                    session.request(
                        ClientMessage::CancelConsult { req: None, call_id },
                        Pending::Plain("Going back to the caller"),
                    );
                }
            }
            Intent::RefreshCallbacks | Intent::SelectTab(Tab::History) => {
                request_callbacks(session);
            }
            Intent::DialCallback(callback_id) => {
                session.request(
                    ClientMessage::DialCallback {
                        req: None,
                        callback_id,
                    },
                    Pending::Plain("Call back"),
                );
                // The list shows it as being called.
                request_callbacks(session);
            }
            Intent::DialOut(number) => session.request(
                ClientMessage::DialOut {
                    req: None,
                    number,
                    queue: None,
                },
                Pending::Plain("Dial"),
            ),
            Intent::SubmitDisposition(disposition) => {
                if let Some((call_id, request_id, form)) = self.record_submission(&disposition) {
                    session.request(
                        disposition_message(&call_id, &request_id, &form),
                        Pending::Disposition {
                            call_id,
                            resubmit: false,
                        },
                    );
                }
            }
            Intent::SaveCustomerNotes { number, notes } => session.request(
                ClientMessage::CustomerNotes {
                    req: None,
                    number: number.clone(),
                    notes: notes.clone(),
                },
                Pending::CustomerNotes { number, notes },
            ),
            Intent::SearchHistory(query) => {
                let number: String = query
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != '-' && *c != '(' && *c != ')')
                    .collect();
                self.out.send(Update::HistorySearching(query.clone()));
                session.request(
                    ClientMessage::History {
                        req: None,
                        number,
                        limit: Some(50),
                    },
                    Pending::History(query),
                );
            }
            // Supervisors. The switchboard checks the role; an agent's request is refused.
            Intent::Monitor { agent, mode } => session.request(
                ClientMessage::Monitor {
                    req: None,
                    agent,
                    mode: supervisor::protocol_mode(mode),
                },
                Pending::Monitor,
            ),
            Intent::StopMonitor => session.request(
                ClientMessage::StopMonitor { req: None },
                Pending::Plain("Stop monitoring"),
            ),
            Intent::RunReport { from, to, by } => match supervisor::report_range_ms(from, to) {
                Ok((from_ms, to_ms)) => {
                    self.out.send(Update::ReportRunning);
                    session.request(
                        ClientMessage::Report {
                            req: None,
                            from_ms,
                            to_ms,
                            by: supervisor::report_by(by),
                        },
                        Pending::Report { from, to, by },
                    );
                }
                Err(why) => self.out.send(Update::ReportFailed(why)),
            },
            other => self.offline_intent(other),
        }
        None
    }

    /// Saves the report on screen as CSV in the export folder and says where.
    fn export_report(&mut self) {
        let Some(report) = &self.last_report else {
            self.out
                .send(Update::ReportFailed("Run a report first.".into()));
            return;
        };
        let Some(dir) = self.export_dir.clone().or_else(default_export_dir) else {
            self.out.send(Update::ReportFailed(
                "No folder to save the report in (no home directory).".into(),
            ));
            return;
        };
        let path = dir.join(&report.file_name);
        let written =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &report.csv));
        match written {
            Ok(()) => self.out.notice(
                NoticeLevel::Info,
                format!("Report saved as {}", path.display()),
            ),
            Err(e) => self.out.send(Update::ReportFailed(format!(
                "The report was not saved to {}: {e}",
                path.display()
            ))),
        }
    }

    /// Intents that need no switchboard: drafts, settings; the rest say why not.
    fn offline_intent(&mut self, intent: Intent) {
        match intent {
            Intent::DraftChanged(draft) => {
                self.draft = Some(draft.clone());
                if self.user.is_empty() {
                    return;
                }
                let submitted = self
                    .drafts
                    .as_ref()
                    .and_then(|s| s.load(&draft.call_id))
                    .and_then(|d| d.submitted);
                self.store_draft(draft, submitted);
            }
            Intent::SubmitDisposition(disposition) => {
                if self.record_submission(&disposition).is_some() {
                    self.out.send(Update::DraftStatus(DraftStatus::Saved));
                    self.out.notice(
                        NoticeLevel::Info,
                        "The disposition is saved on this computer and will be sent when the \
                         switchboard is back.",
                    );
                }
            }
            Intent::SelectDevice { role, name } => {
                match self.endpoint.select(role, name.as_deref()) {
                    Ok(()) => {}
                    Err(e) => self.out.notice(NoticeLevel::Warning, e),
                }
                // Remembered even when it cannot open now: it may be plugged in later.
                match role {
                    DeviceRole::Microphone => self.config.microphone = name,
                    DeviceRole::Speaker => self.config.speaker = name,
                    DeviceRole::Ringer => self.config.ringer = name,
                }
                self.save_config();
                self.out.send(Update::Settings(self.settings_view()));
            }
            Intent::PlayTestTone => {
                self.test_tone_left = if self.test_tone_left > 0 {
                    0
                } else {
                    TEST_TONE_BLOCKS
                };
                self.out.send(Update::Settings(self.settings_view()));
            }
            Intent::TestMicrophone => {
                self.mic_test = !self.mic_test;
                let mut levels = *self.levels.borrow();
                levels.mic_test = self.mic_test;
                self.levels.send_replace(levels);
                self.out.send(Update::Settings(self.settings_view()));
            }
            Intent::SetNoiseSuppression(on) => {
                self.config.noise_suppression = on;
                self.mic_processor.set_noise_suppression(on);
                self.save_config();
                self.out.send(Update::Settings(self.settings_view()));
            }
            Intent::SetAutoGain(on) => {
                self.config.auto_gain = on;
                self.mic_processor.set_agc(on);
                self.save_config();
                self.out.send(Update::Settings(self.settings_view()));
            }
            Intent::SetDesktopNotifications(on) => {
                self.config.desktop_notifications = on;
                self.save_config();
                self.out.send(Update::Settings(self.settings_view()));
            }
            Intent::SendDtmf(_) | Intent::RefreshCallbacks => {}
            Intent::ExportReportCsv => self.export_report(),
            Intent::LogIn { .. }
            | Intent::LogOut
            | Intent::SetAvailable
            | Intent::SetNotReady { .. }
            | Intent::CancelPendingNotReady
            | Intent::Answer
            | Intent::Decline
            | Intent::HangUp
            | Intent::SetHold(_)
            | Intent::SearchHistory(_)
            | Intent::SaveCustomerNotes { .. }
            | Intent::Monitor { .. }
            | Intent::StopMonitor
            | Intent::TransferToQueue(_)
            | Intent::TransferToAgent(_)
            | Intent::Consult(_)
            | Intent::Escalate(_)
            | Intent::CompleteTransfer
            | Intent::CancelConsult
            | Intent::DialCallback(_)
            | Intent::DialOut(_)
            | Intent::RunReport { .. } => {
                if !self.user.is_empty() {
                    self.out.notice(
                        NoticeLevel::Warning,
                        "Not connected to the switchboard; try again when the connection is back.",
                    );
                }
            }
            Intent::SetMuted(muted) => {
                self.muted = muted;
                self.out.send(Update::Muted(muted));
            }
            Intent::DismissNotice(_) | Intent::SelectTab(_) => {}
        }
    }

    /// The notes typed so far on this call, which travel with a transfer, consult or
    /// escalation; `None` when there are none.
    fn notes_so_far(&self, call_id: &str) -> Option<String> {
        self.draft
            .as_ref()
            .filter(|d| d.call_id == call_id)
            .map(|d| d.notes.trim().to_owned())
            .filter(|n| !n.is_empty())
    }

    /// Writes the draft to disk and tells the window how it went.
    fn store_draft(&mut self, draft: DispositionDraft, submitted: Option<SubmittedForm>) {
        let Some(store) = &self.drafts else {
            return;
        };
        let stored = StoredDraft {
            call_id: draft.call_id.clone(),
            request_id: request_id(&self.user, &draft.call_id),
            call: self.draft_call(&draft.call_id),
            draft,
            submitted,
            saved_at_ms: now_ms(),
        };
        let status = match store.save(&stored) {
            Ok(()) => DraftStatus::Saved,
            Err(e) => DraftStatus::SaveFailed(format!("Not saved on this computer: {e}")),
        };
        self.out.send(Update::DraftStatus(status));
    }

    /// Stores a submitted form (so it survives anything until acknowledged) and returns
    /// what to send.
    fn record_submission(
        &mut self,
        disposition: &Disposition,
    ) -> Option<(String, String, SubmittedForm)> {
        if self.user.is_empty() {
            return None;
        }
        let form = SubmittedForm {
            code: disposition.code.clone(),
            resolution: match disposition.resolution {
                sapa_ui::Resolution::Resolved => Resolution::Resolved,
                sapa_ui::Resolution::Escalated => Resolution::Escalated,
                sapa_ui::Resolution::FollowUp => Resolution::FollowUp,
            },
            notes: disposition.notes.clone(),
            follow_up_at_ms: disposition.follow_up.map(clock::local_to_epoch_ms),
        };
        let call_id = disposition.call_id.clone();
        let draft = self
            .draft
            .clone()
            .filter(|d| d.call_id == call_id)
            .unwrap_or_else(|| DispositionDraft::for_call(&call_id));
        self.store_draft(draft, Some(form.clone()));
        // The Today list shows the code as soon as it is submitted.
        Some((call_id.clone(), request_id(&self.user, &call_id), form))
    }

    fn draft_call(&self, call_id: &str) -> DraftCall {
        let known = [&self.active, &self.wrap]
            .into_iter()
            .flatten()
            .find(|c| c.call_id == call_id);
        match known {
            Some(c) => DraftCall {
                number: c.number.clone(),
                name: c.name.clone(),
                queue: c.queue.clone(),
                talk_ms: c.talk_ms,
            },
            None => self
                .drafts
                .as_ref()
                .and_then(|s| s.load(call_id))
                .map(|d| d.call)
                .unwrap_or_default(),
        }
    }

    fn settings_view(&self) -> SettingsView {
        let devices = self.endpoint.devices();
        SettingsView {
            microphones: devices.microphones,
            speakers: devices.speakers,
            microphone: self.config.microphone.clone(),
            speaker: self.config.speaker.clone(),
            ringer: self.config.ringer.clone(),
            noise_suppression: self.config.noise_suppression,
            auto_gain: self.config.auto_gain,
            desktop_notifications: self.config.desktop_notifications,
            test_tone_playing: self.test_tone_left > 0,
            mic_test_level_dbfs: None,
        }
    }

    fn save_config(&self) {
        let Some(path) = &self.config_path else {
            return;
        };
        if let Err(e) = self.config.save(path) {
            self.out
                .notice(NoticeLevel::Warning, format!("Settings not saved: {e}"));
        }
    }
}

enum Reconnect {
    /// Boxed: a session is large and this enum is moved around.
    Done(Box<Session>),
    LoggedOut,
    Shutdown,
}

fn disposition_message(call_id: &str, request_id: &str, form: &SubmittedForm) -> ClientMessage {
    ClientMessage::Disposition {
        req: None,
        call_id: call_id.to_owned(),
        request_id: request_id.to_owned(),
        code: form.code.clone(),
        resolution: form.resolution,
        notes: form.notes.clone(),
        follow_up_at_ms: form.follow_up_at_ms,
    }
}

/// The Downloads folder, else the home folder.
fn default_export_dir() -> Option<PathBuf> {
    let dirs = directories::UserDirs::new()?;
    Some(
        dirs.download_dir()
            .map_or_else(|| dirs.home_dir().to_path_buf(), |d| d.to_path_buf()),
    )
}

/// Asks for this agent's pending callbacks; the answer becomes [`Update::Callbacks`].
fn request_callbacks(session: &mut Session) {
    session.request(
        ClientMessage::Callbacks { req: None },
        Pending::Plain("Listing callbacks"),
    );
}

/// Why an offered call comes to this agent, as the screens show it.
fn call_origin(context: &OfferContext) -> CallOrigin {
    CallOrigin {
        kind: match context.kind.as_str() {
            "blind_transfer" => OriginKind::BlindTransfer,
            "consult" => OriginKind::Consult,
            "escalation" => OriginKind::Escalation,
            "callback" => OriginKind::Callback,
            "outbound" => OriginKind::Outbound,
            other => OriginKind::Other(other.to_owned()),
        },
        from: context.from.clone(),
        notes: context.notes.clone().unwrap_or_default(),
    }
}

/// One pending callback as the History tab lists it.
fn pending_callback(info: &CallbackInfo) -> PendingCallback {
    PendingCallback {
        callback_id: info.callback_id.clone(),
        number: info.number.clone(),
        name: info.name.clone(),
        queue: info.queue.clone(),
        due_ms: info.due_at_ms.max(0) as u64,
        due_text: clock::local_text(info.due_at_ms),
        notes: info.notes.clone(),
        dialing: info.status == "dialing",
    }
}

/// The screen-pop's caller: number, name, the customer's notes and the history that came
/// with the offer.
fn ui_caller(
    number: &str,
    name: Option<String>,
    notes: Option<String>,
    history: &[HistoryEntry],
) -> UiCaller {
    UiCaller {
        number: number.to_owned(),
        name: name.clone(),
        notes,
        history: history
            .iter()
            .map(|e| past_call(number, name.clone(), e))
            .collect(),
    }
}

/// One past call as the History tab and the screen-pop show it.
pub fn past_call(number: &str, name: Option<String>, e: &HistoryEntry) -> PastCall {
    let d = e.disposition.as_ref();
    PastCall {
        call_id: e.call_id.clone(),
        started_ms: e.at_ms.max(0) as u64,
        started_text: clock::local_text(e.at_ms),
        caller_number: number.to_owned(),
        caller_name: name,
        agent_name: e.agent.clone().unwrap_or_default(),
        queue: e.queue.clone(),
        talk_ms: e.talk_ms.unwrap_or(0).max(0) as u64,
        disposition_code: d.map(|d| d.code.clone()),
        resolution: d.map(|d| match d.resolution {
            Resolution::Resolved => sapa_ui::Resolution::Resolved,
            Resolution::Escalated => sapa_ui::Resolution::Escalated,
            Resolution::FollowUp => sapa_ui::Resolution::FollowUp,
        }),
        notes: d.map(|d| d.notes.clone()).unwrap_or_default(),
        csat: e.csat.and_then(|c| u8::try_from(c).ok()),
    }
}

/// For the in-call screen: the call as the window shows it, from what the engine knows.
pub fn active_call(
    call_id: &str,
    caller: UiCaller,
    queue: &str,
    origin: Option<CallOrigin>,
    at_ms: u64,
) -> ActiveCall {
    ActiveCall {
        call_id: call_id.to_owned(),
        caller,
        queue: queue.to_owned(),
        origin,
        answered_at_ms: at_ms,
        mic_level_dbfs: -100.0,
        speaker_level_dbfs: -100.0,
        ..ActiveCall::default()
    }
}

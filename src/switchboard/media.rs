//! The switchboard's media bridge: every peer connection on ONE UDP socket, driven by str0m in
//! ICE-lite mode, with Opus forwarded between connections without transcoding.
//!
//! Each client's peer connection has two audio m-lines: `main` (send and receive) and `aux`
//! (the switchboard sends only). What a peer hears on each slot is a [`Source`]: another peer's
//! microphone, a sound from `sounds/` (ringback, hold music), or silence. Bridging a call is a
//! change of two routes in a table, so an agent's connection, opened at login, carries every
//! call of the shift and answering never waits for ICE or DTLS. Supervisors and conferences use
//! `aux` for a second voice; the phone mixes the two.
//!
//! Run loop (one tokio task, `run`):
//! ```text
//! loop { select! { udp packet => route by source address (or rtc.accepts) -> rtc.handle_input,
//!                  command    => add/remove peer, set route,
//!                  timer      => Input::Timeout to due peers; 20 ms tick writes sound frames }
//!        drain rtc.poll_output(): Transmit -> socket, MediaData -> forward to listeners }
//! ```
//! Outgoing RTP time on each (peer, slot) stays continuous when its source changes: the
//! [`OutStream`] rebases every source's timestamps onto the stream's own clock.
//!
//! Loss: Opus is negotiated with RFC 2198 RED when the peer offers it (our peers and browsers
//! do). str0m restores frames lost on the way in from the copies in later packets before they
//! are forwarded, and sends every frame with copies of the two before it, so each leg of a
//! call survives loss on its own.
//!
//! DTMF: `telephone-event` (RFC 4733, 48 and 8 kHz) is negotiated next to Opus. Events a peer
//! sends on `main` are decoded by its [`Rfc4733Receiver`] (each key once) and reported as
//! [`MediaEvent::Digit`]; they are never forwarded as audio. [`MediaCommand::SendDigit`] sends a
//! key to a peer as telephone events on its `main` stream (the core forwards an agent's keys to
//! the caller this way). For callers that send tones instead, [`MediaCommand::DetectTones`]
//! decodes a peer's Opus and runs the in-band detector of `audio::tone` while the switchboard
//! listens for keys (menu, survey); a peer that has sent telephone events is not decoded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use str0m::change::SdpOffer;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt, TelephoneEvent};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::audio::rfc4733::{ReceivedDigit, Rfc4733Receiver};
use crate::audio::tone::DtmfDetector;
use crate::metrics::StreamQuality;
use crate::sounds::{EncodedSound, Sound, SoundBank};

use super::quality::StreamMeter;

/// Identifies one client's peer connection inside the media bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// The two audio streams the switchboard sends to every peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    Main = 0,
    Aux = 1,
}

/// What a peer hears on one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Silence,
    /// Another peer's microphone (its `main` m-line).
    Peer(PeerId),
    /// A sound from `sounds/`, looped.
    Sound(Sound),
    /// A sound from `sounds/` played once, then silence (menu and survey prompts).
    Prompt(Sound),
}

/// Orders for the media task.
#[derive(Debug)]
pub enum MediaCommand {
    /// Accept an SDP offer for a new (or replaced) peer; the answer comes back on `reply`.
    AddPeer {
        peer: PeerId,
        offer_sdp: String,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    RemovePeer {
        peer: PeerId,
    },
    Route {
        peer: PeerId,
        slot: Slot,
        source: Source,
    },
    /// Send one key to the peer as RFC 4733 telephone events on its `main` stream.
    SendDigit {
        peer: PeerId,
        key: char,
        duration_ms: u32,
    },
    /// Decode the peer's voice and listen for in-band DTMF tones (`on`), or stop.
    DetectTones {
        peer: PeerId,
        on: bool,
    },
    /// Report counters (for metrics and tests).
    Stats {
        reply: oneshot::Sender<MediaStats>,
    },
    /// Loss and jitter of what each of `peers` sends (its `main` m-line), in that order;
    /// `None` for a peer that is unknown or has sent nothing lately.
    Quality {
        peers: Vec<PeerId>,
        reply: oneshot::Sender<Vec<Option<StreamQuality>>>,
    },
}

/// What the media task tells the switchboard core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// ICE and DTLS are up: audio can flow to and from this peer.
    Connected { peer: PeerId },
    /// The connection is gone (ICE timed out, DTLS failed, or removed).
    Disconnected { peer: PeerId },
    /// The peer pressed a key: received as telephone events, or detected in its voice
    /// (`in_band`, only while [`MediaCommand::DetectTones`] is on).
    Digit {
        peer: PeerId,
        key: char,
        duration_ms: Option<u32>,
        in_band: bool,
    },
}

/// Counters of the media task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaStats {
    pub peers: usize,
    pub connected_peers: usize,
    pub packets_in: u64,
    pub packets_forwarded: u64,
    pub sound_frames_sent: u64,
    pub digits_received: u64,
    pub digits_sent: u64,
    pub unroutable_packets: u64,
    pub send_errors: u64,
}

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("SDP offer does not parse: {0}")]
    BadSdp(String),
    #[error("SDP offer was not accepted: {0}")]
    Rejected(String),
    #[error("the offer has no audio m-line")]
    NoAudio,
    #[error("media task has stopped")]
    Stopped,
    #[error("cannot use media socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Handle the rest of the switchboard uses to command the media task.
#[derive(Clone)]
pub struct MediaHandle {
    commands: mpsc::UnboundedSender<MediaCommand>,
}

impl MediaHandle {
    pub async fn add_peer(&self, peer: PeerId, offer_sdp: String) -> Result<String, MediaError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(MediaCommand::AddPeer {
                peer,
                offer_sdp,
                reply,
            })
            .map_err(|_| MediaError::Stopped)?;
        answer.await.map_err(|_| MediaError::Stopped)?
    }

    pub fn remove_peer(&self, peer: PeerId) {
        let _ = self.commands.send(MediaCommand::RemovePeer { peer });
    }

    pub fn route(&self, peer: PeerId, slot: Slot, source: Source) {
        let _ = self
            .commands
            .send(MediaCommand::Route { peer, slot, source });
    }

    pub fn send_digit(&self, peer: PeerId, key: char, duration_ms: u32) {
        let _ = self.commands.send(MediaCommand::SendDigit {
            peer,
            key,
            duration_ms,
        });
    }

    pub fn detect_tones(&self, peer: PeerId, on: bool) {
        let _ = self.commands.send(MediaCommand::DetectTones { peer, on });
    }

    /// Live loss and jitter of the streams `peers` send, in the same order.
    pub async fn quality(
        &self,
        peers: Vec<PeerId>,
    ) -> Result<Vec<Option<StreamQuality>>, MediaError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(MediaCommand::Quality { peers, reply })
            .map_err(|_| MediaError::Stopped)?;
        answer.await.map_err(|_| MediaError::Stopped)
    }

    pub async fn stats(&self) -> Result<MediaStats, MediaError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(MediaCommand::Stats { reply })
            .map_err(|_| MediaError::Stopped)?;
        answer.await.map_err(|_| MediaError::Stopped)
    }
}

/// Samples per 20 ms frame at 48 kHz: the step of sound playback.
const FRAME_SAMPLES: u64 = 960;
const FRAME: Duration = Duration::from_millis(20);

/// Keeps one outgoing stream's RTP clock continuous across changes of source.
#[derive(Debug, Default)]
struct OutStream {
    /// The source whose timestamps `offset` maps; a new source gets a new offset.
    source: Option<Source>,
    /// Added (wrapping) to the source's RTP time to get this stream's RTP time.
    offset: u64,
    /// Last RTP time written and when, to continue the clock after a switch.
    last: Option<(u64, Instant)>,
}

/// A change of source within this long after the last frame is a hand-over (ringback to the
/// agent's voice, the agent to hold music): the new source's first frame directly follows
/// the last one. Receivers number frames by RTP time (a bridge's sequence numbers hide
/// losses), so a gap in time there would count as a lost frame and make them keep extra
/// delay against more loss, though nothing was lost: the agent's first frame of a call
/// comes 20-60 ms after the ringback stops.
const HANDOVER: Duration = Duration::from_millis(200);

impl OutStream {
    /// Maps a source timestamp to this stream's clock.
    fn map(&mut self, source: Source, source_ts: u64, now: Instant) -> u64 {
        if self.source != Some(source) {
            let next = match self.last {
                Some((ts, at)) => {
                    let gap = now.saturating_duration_since(at);
                    // After a longer pause the clock moves on by the pause, in whole frames.
                    let frames = if gap <= HANDOVER {
                        1
                    } else {
                        (gap.as_micros() as u64 / FRAME.as_micros() as u64).max(1)
                    };
                    ts + frames * FRAME_SAMPLES
                }
                None => 0,
            };
            self.offset = next.wrapping_sub(source_ts);
            self.source = Some(source);
        }
        let ts = source_ts.wrapping_add(self.offset);
        self.last = Some((ts, now));
        ts
    }

    /// This stream's RTP time at `now`, continuing its clock (for a telephone event that
    /// starts now), without changing the mapping. A stream that has carried nothing yet
    /// starts its clock here, so that two keys sent on it never share a timestamp (a
    /// receiver takes the second for a copy of the first).
    fn now_ts(&mut self, now: Instant) -> u64 {
        let (ts, at) = *self.last.get_or_insert((0, now));
        let ts = ts + now.saturating_duration_since(at).as_micros() as u64 * 48 / 1000;
        // Media from a new source then comes after the event, not before it.
        self.last = Some((ts, now));
        ts
    }
}

/// Pause between two keys sent to one peer (RFC 4733 senders keep at least 50 ms).
const DIGIT_GAP: Duration = Duration::from_millis(60);

/// In-band DTMF detection on one peer's decoded voice.
struct ToneListener {
    decoder: opus::Decoder,
    detector: DtmfDetector,
    /// One decoded frame (allocated once).
    pcm: Vec<f32>,
}

/// Position in a looping sound, per (peer, slot).
#[derive(Debug)]
struct SoundCursor {
    sound: Sound,
    frames: Arc<EncodedSound>,
    index: u64,
    /// Play once (a prompt) instead of looping.
    once: bool,
}

struct MediaPeer {
    rtc: Rtc,
    /// The mid of each slot, learned from `MediaAdded` (main = send/receive, aux = send only).
    mids: [Option<Mid>; 2],
    out: [OutStream; 2],
    cursors: [Option<SoundCursor>; 2],
    connected: bool,
    /// When str0m next wants `Input::Timeout`, from the last drain.
    rtc_timeout: Option<Instant>,
    /// Telephone events this peer sends on `main`, decoded into keys.
    dtmf_in: Rfc4733Receiver,
    /// The peer has sent telephone events: its keys are never also detected in its voice.
    sends_rfc4733: bool,
    /// In-band detection, while the switchboard listens for keys from this peer.
    tones: Option<Box<ToneListener>>,
    /// Keys to send to this peer, and when the next may start.
    dtmf_out: VecDeque<(char, u32)>,
    next_digit_at: Option<Instant>,
    /// Loss and jitter of what this peer sends on `main`, for the wallboard.
    inbound: StreamMeter,
}

impl MediaPeer {
    fn new(rtc: Rtc) -> Self {
        MediaPeer {
            rtc,
            mids: [None, None],
            out: [OutStream::default(), OutStream::default()],
            cursors: [None, None],
            connected: false,
            rtc_timeout: None,
            dtmf_in: Rfc4733Receiver::default(),
            sends_rfc4733: false,
            tones: None,
            dtmf_out: VecDeque::new(),
            next_digit_at: None,
            inbound: StreamMeter::new(48_000),
        }
    }
}

/// Feeds the frames one drain of a peer produced to its meter. Frames that str0m rebuilt
/// from a RED packet's redundancy come out together with that packet's own frame, with the
/// same arrival time: of frames sharing an arrival, the newest is the packet, the others are
/// repairs (lost on the wire, not missed by the listener).
fn meter_arrivals(meter: &mut StreamMeter, arrivals: &[(Instant, u64, u64, u64)]) {
    for &(at, first, last, rtp_time) in arrivals {
        let newest_of_its_packet = arrivals.iter().filter(|a| a.0 == at).all(|a| a.2 <= last);
        if newest_of_its_packet {
            meter.on_packet(at, first, last, rtp_time);
        } else {
            meter.on_repaired(at);
        }
    }
}

/// Binds the media socket. Separate from `run` so callers learn the port (port 0 in tests).
pub async fn bind(addr: SocketAddr) -> Result<UdpSocket, MediaError> {
    Ok(UdpSocket::bind(addr).await?)
}

/// Starts the media task on `socket`. `candidate_addr` is the address put in SDP answers
/// (the socket's address unless it is unspecified).
pub fn spawn(
    socket: UdpSocket,
    candidate_addr: SocketAddr,
    sounds: Arc<SoundBank>,
) -> (
    MediaHandle,
    mpsc::UnboundedReceiver<MediaEvent>,
    tokio::task::JoinHandle<()>,
) {
    // Idempotent: installs the crypto provider chosen by str0m's feature flags.
    let _ = std::panic::catch_unwind(|| {
        str0m::crypto::from_feature_flags().install_process_default();
    });
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut bridge = Bridge {
            socket,
            candidate_addr,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            routes: HashMap::new(),
            listeners: HashMap::new(),
            sounds,
            events: events_tx,
            stats: MediaStats::default(),
        };
        bridge.run(command_rx).await;
    });
    (MediaHandle { commands }, events, task)
}

struct Bridge {
    socket: UdpSocket,
    candidate_addr: SocketAddr,
    peers: HashMap<PeerId, MediaPeer>,
    /// Remote address -> peer, learned from the first packet a peer's Rtc accepts, so routing
    /// a packet is one map lookup instead of a scan.
    by_addr: HashMap<SocketAddr, PeerId>,
    /// What each (peer, slot) hears. Kept apart from the peer connections: a route may be set
    /// before the connection exists (a caller answered before its offer arrived) or survive
    /// its replacement.
    routes: HashMap<PeerId, [Source; 2]>,
    /// Source peer -> the (peer, slot) pairs that hear it; the reverse of `routes`.
    listeners: HashMap<PeerId, Vec<(PeerId, Slot)>>,
    sounds: Arc<SoundBank>,
    events: mpsc::UnboundedSender<MediaEvent>,
    stats: MediaStats,
}

impl Bridge {
    async fn run(&mut self, mut commands: mpsc::UnboundedReceiver<MediaCommand>) {
        let mut buf = vec![0u8; 2000];
        let mut tick = tokio::time::interval(FRAME);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let deadline = self
                .next_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_millis(100));
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    match received {
                        Ok((n, source)) => self.handle_packet(&buf[..n], source),
                        Err(e) => tracing::warn!("media socket receive failed: {e}"),
                    }
                }
                command = commands.recv() => {
                    match command {
                        Some(command) => self.handle_command(command),
                        None => break,
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.handle_timeouts(Instant::now());
                }
                _ = tick.tick() => {
                    self.send_sound_frames(Instant::now());
                }
            }
        }
        for (_, mut peer) in self.peers.drain() {
            peer.rtc.disconnect();
        }
    }

    fn next_timeout(&mut self) -> Option<Instant> {
        // Each peer's deadline is cached by `drain`; polling here would have side effects.
        self.peers.values().filter_map(|p| p.rtc_timeout).min()
    }

    fn handle_command(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::AddPeer {
                peer,
                offer_sdp,
                reply,
            } => {
                let result = self.add_peer(peer, &offer_sdp);
                let _ = reply.send(result);
            }
            MediaCommand::RemovePeer { peer } => self.remove_peer(peer),
            MediaCommand::Route { peer, slot, source } => self.set_route(peer, slot, source),
            MediaCommand::SendDigit {
                peer,
                key,
                duration_ms,
            } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    // Bounded: a flood of keys from a misbehaving agent is cut, not queued.
                    if p.dtmf_out.len() < 32 {
                        p.dtmf_out.push_back((key, duration_ms));
                    }
                }
                self.send_digits(peer, Instant::now());
            }
            MediaCommand::DetectTones { peer, on } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.tones = match (on, p.tones.take()) {
                        (false, _) => None,
                        (true, Some(t)) => Some(t),
                        (true, None) => opus::Decoder::new(48_000, opus::Channels::Mono)
                            .map(|decoder| {
                                Box::new(ToneListener {
                                    decoder,
                                    detector: DtmfDetector::new(48_000),
                                    pcm: vec![0.0; 5760],
                                })
                            })
                            .map_err(|e| tracing::warn!("no in-band DTMF detection: {e}"))
                            .ok(),
                    };
                }
            }
            MediaCommand::Stats { reply } => {
                let mut stats = self.stats.clone();
                stats.peers = self.peers.len();
                stats.connected_peers = self.peers.values().filter(|p| p.connected).count();
                let _ = reply.send(stats);
            }
            MediaCommand::Quality { peers, reply } => {
                let now = Instant::now();
                let figures = peers
                    .iter()
                    .map(|id| self.peers.get(id).and_then(|p| p.inbound.snapshot(now)))
                    .collect();
                let _ = reply.send(figures);
            }
        }
    }

    fn add_peer(&mut self, id: PeerId, offer_sdp: &str) -> Result<String, MediaError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        if !offer_sdp.contains("m=audio") {
            return Err(MediaError::NoAudio);
        }
        let now = Instant::now();
        let mut config = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            // Opus with RFC 2198 redundancy (RED) where the peer offers it: str0m rebuilds
            // frames lost on the way in from the copies in later packets, and wraps what it
            // sends with copies of the two frames before.
            .enable_opus(true, true)
            .set_red_distances(&[1, 2])
            // The phone's jitter buffer reorders; the bridge forwards at once.
            .set_reordering_size_audio(0);
        // DTMF on the Opus clock (our peers, browsers) and at 8 kHz (browsers, SIP gateways).
        for (pt, rate) in [
            (101, Frequency::FORTY_EIGHT_KHZ),
            (126, Frequency::EIGHT_KHZ),
        ] {
            config.codec_config().add_config(
                Pt::new_with_value(pt),
                None,
                Codec::Tele,
                rate,
                None,
                FormatParams {
                    telephone_event_max: Some(15),
                    ..Default::default()
                },
            );
        }
        let mut rtc = config.build(now);
        let candidate = Candidate::host(self.candidate_addr, "udp")
            .map_err(|e| MediaError::Rejected(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| MediaError::Rejected(e.to_string()))?;
        // A replaced connection keeps its routes (they live in the route table).
        self.peers.remove(&id);
        self.by_addr.retain(|_, p| *p != id);
        let mut media_peer = MediaPeer::new(rtc);
        let routes = self
            .routes
            .get(&id)
            .copied()
            .unwrap_or([Source::Silence; 2]);
        for slot in [Slot::Main, Slot::Aux] {
            media_peer.cursors[slot as usize] = self.cursor_for(routes[slot as usize]);
        }
        self.peers.insert(id, media_peer);
        self.drain(id);
        Ok(answer.to_sdp_string())
    }

    fn remove_peer(&mut self, id: PeerId) {
        if let Some(mut peer) = self.peers.remove(&id) {
            peer.rtc.disconnect();
        }
        self.by_addr.retain(|_, p| *p != id);
        if let Some(routes) = self.routes.remove(&id) {
            for slot in [Slot::Main, Slot::Aux] {
                if let Source::Peer(src) = routes[slot as usize] {
                    self.unlisten(src, id, slot);
                }
            }
        }
        // Whoever heard this peer now hears silence.
        if let Some(list) = self.listeners.remove(&id) {
            for (listener, slot) in list {
                if let Some(r) = self.routes.get_mut(&listener) {
                    r[slot as usize] = Source::Silence;
                }
            }
        }
    }

    fn cursor_for(&self, source: Source) -> Option<SoundCursor> {
        match source {
            Source::Sound(sound) | Source::Prompt(sound) => Some(SoundCursor {
                sound,
                frames: self.sounds.encoded(sound),
                index: 0,
                once: matches!(source, Source::Prompt(_)),
            }),
            _ => None,
        }
    }

    fn unlisten(&mut self, source: PeerId, listener: PeerId, slot: Slot) {
        if let Some(list) = self.listeners.get_mut(&source) {
            list.retain(|&(p, s)| !(p == listener && s == slot));
        }
    }

    fn set_route(&mut self, id: PeerId, slot: Slot, source: Source) {
        let routes = self.routes.entry(id).or_insert([Source::Silence; 2]);
        let old = std::mem::replace(&mut routes[slot as usize], source);
        if old == source {
            return;
        }
        let cursor = self.cursor_for(source);
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.cursors[slot as usize] = cursor;
        }
        if let Source::Peer(src) = old {
            self.unlisten(src, id, slot);
        }
        if let Source::Peer(src) = source {
            self.listeners.entry(src).or_default().push((id, slot));
        }
    }

    fn handle_packet(&mut self, data: &[u8], source: SocketAddr) {
        let now = Instant::now();
        self.stats.packets_in += 1;
        let Ok(contents) = data.try_into() else {
            self.stats.unroutable_packets += 1;
            return;
        };
        let destination = self.socket.local_addr().unwrap_or(self.candidate_addr);
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let id = match self.by_addr.get(&source) {
            Some(id) => Some(*id),
            None => {
                let found = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(id, _)| *id);
                if let Some(id) = found {
                    self.by_addr.insert(source, id);
                }
                found
            }
        };
        let Some(id) = id else {
            self.stats.unroutable_packets += 1;
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let Err(e) = peer.rtc.handle_input(input) {
            tracing::debug!("peer {id:?} rejected a packet: {e}");
        }
        self.drain(id);
    }

    fn handle_timeouts(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.rtc_timeout.is_none_or(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(peer) = self.peers.get_mut(&id)
                && let Err(e) = peer.rtc.handle_input(Input::Timeout(now))
            {
                tracing::debug!("peer {id:?} timeout failed: {e}");
            }
            self.drain(id);
        }
    }

    /// Polls one peer until it asks for a timeout: sends its packets, forwards its audio.
    fn drain(&mut self, id: PeerId) {
        let mut forwards = Vec::new();
        // Voice frames received: (arrival, first seq, last seq, RTP time).
        let mut arrivals: Vec<(Instant, u64, u64, u64)> = Vec::new();
        let mut digits: Vec<(ReceivedDigit, bool)> = Vec::new();
        let mut gone = false;
        {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            loop {
                if !peer.rtc.is_alive() {
                    gone = true;
                    break;
                }
                match peer.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        peer.rtc_timeout = Some(t);
                        break;
                    }
                    Ok(Output::Transmit(t)) => {
                        if self.socket.try_send_to(&t.contents, t.destination).is_err() {
                            self.stats.send_errors += 1;
                        }
                    }
                    Ok(Output::Event(event)) => match event {
                        Event::Connected => {
                            peer.connected = true;
                            let _ = self.events.send(MediaEvent::Connected { peer: id });
                        }
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            peer.rtc.disconnect();
                        }
                        Event::MediaAdded(added) if added.kind == MediaKind::Audio => {
                            let slot = match added.direction {
                                Direction::SendOnly => Slot::Aux,
                                _ => Slot::Main,
                            };
                            peer.mids[slot as usize] = Some(added.mid);
                        }
                        Event::MediaData(data)
                            if Some(data.mid) == peer.mids[Slot::Main as usize] =>
                        {
                            let spec = data.params.spec();
                            if spec.codec == Codec::Tele {
                                peer.sends_rfc4733 = true;
                                peer.tones = None;
                                let mut rx_clock = spec.clock_rate.get();
                                if rx_clock == 0 {
                                    rx_clock = 48_000;
                                }
                                if peer.dtmf_in_clock() != rx_clock {
                                    peer.dtmf_in = Rfc4733Receiver::new(rx_clock);
                                }
                                if let Err(e) = peer.dtmf_in.handle_packet(
                                    data.network_time,
                                    data.time.numer() as u32,
                                    &data.data,
                                ) {
                                    tracing::debug!("peer {id:?}: telephone event ignored: {e}");
                                }
                                while let Some(d) = peer.dtmf_in.poll_digit() {
                                    digits.push((d, false));
                                }
                                continue;
                            }
                            if let Some(t) = &mut peer.tones {
                                if let Ok(n) = t.decoder.decode_float(&data.data, &mut t.pcm, false)
                                {
                                    t.detector.push(&t.pcm[..n]);
                                }
                                while let Some(key) = t.detector.poll_digit() {
                                    let d = ReceivedDigit {
                                        key,
                                        duration_ms: 0,
                                    };
                                    digits.push((d, true));
                                }
                            }
                            arrivals.push((
                                data.network_time,
                                **data.seq_range.start(),
                                **data.seq_range.end(),
                                data.time.numer(),
                            ));
                            forwards.push((data.time.numer(), data.network_time, data.data));
                        }
                        _ => {}
                    },
                    Err(e) => {
                        tracing::debug!("peer {id:?} failed: {e}");
                        peer.rtc.disconnect();
                    }
                }
            }
        }
        if gone {
            self.remove_peer(id);
            let _ = self.events.send(MediaEvent::Disconnected { peer: id });
            return;
        }
        if let Some(peer) = self.peers.get_mut(&id) {
            meter_arrivals(&mut peer.inbound, &arrivals);
        }
        for (d, in_band) in digits {
            self.report_digit(id, d, in_band);
        }
        if forwards.is_empty() {
            return;
        }
        let listeners = self.listeners.get(&id).cloned().unwrap_or_default();
        for (ts, wallclock, data) in forwards {
            for &(listener, slot) in &listeners {
                if self.write(listener, slot, Source::Peer(id), ts, wallclock, &data) {
                    self.stats.packets_forwarded += 1;
                }
            }
        }
        for (listener, _) in listeners {
            self.drain(listener);
        }
    }

    /// Writes one Opus frame to a peer's slot; false if the peer cannot take it yet.
    fn write(
        &mut self,
        id: PeerId,
        slot: Slot,
        source: Source,
        source_ts: u64,
        wallclock: Instant,
        data: &[u8],
    ) -> bool {
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        if !peer.connected {
            return false;
        }
        let Some(mid) = peer.mids[slot as usize] else {
            return false;
        };
        let ts = peer.out[slot as usize].map(source, source_ts, wallclock);
        let Some(writer) = peer.rtc.writer(mid) else {
            return false;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
        else {
            return false;
        };
        let time = MediaTime::new(ts, str0m::media::Frequency::FORTY_EIGHT_KHZ);
        writer.write(pt, wallclock, time, data.to_vec()).is_ok()
    }

    fn send_sound_frames(&mut self, now: Instant) {
        let mut writes = Vec::new();
        for (id, peer) in &mut self.peers {
            if !peer.connected {
                continue;
            }
            for slot in [Slot::Main, Slot::Aux] {
                if let Some(cursor) = &mut peer.cursors[slot as usize] {
                    if cursor.frames.frames.is_empty()
                        || (cursor.once && cursor.index >= cursor.frames.frames.len() as u64)
                    {
                        continue;
                    }
                    let i = (cursor.index % cursor.frames.frames.len() as u64) as usize;
                    let frame = cursor.frames.frames[i].clone();
                    let ts = cursor.index * FRAME_SAMPLES;
                    cursor.index += 1;
                    writes.push((*id, slot, Source::Sound(cursor.sound), ts, frame));
                }
            }
        }
        let mut touched = Vec::new();
        for (id, slot, source, ts, frame) in writes {
            if self.write(id, slot, source, ts, now, &frame) {
                self.stats.sound_frames_sent += 1;
            }
            touched.push(id);
        }
        touched.dedup();
        for id in touched {
            self.drain(id);
        }
        // Keys whose end packets were all lost, and keys waiting to be sent.
        let mut ended = Vec::new();
        let mut sending = Vec::new();
        for (id, peer) in &mut self.peers {
            peer.dtmf_in.handle_timeout(now);
            while let Some(d) = peer.dtmf_in.poll_digit() {
                ended.push((*id, d));
            }
            if !peer.dtmf_out.is_empty() {
                sending.push(*id);
            }
        }
        for (id, d) in ended {
            self.report_digit(id, d, false);
        }
        for id in sending {
            self.send_digits(id, now);
        }
    }

    fn report_digit(&mut self, peer: PeerId, digit: ReceivedDigit, in_band: bool) {
        self.stats.digits_received += 1;
        let _ = self.events.send(MediaEvent::Digit {
            peer,
            key: digit.key,
            duration_ms: (!in_band).then_some(digit.duration_ms),
            in_band,
        });
    }

    /// Starts the next queued key to `id` if the last one is over; str0m paces its packets.
    fn send_digits(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !peer.connected || peer.next_digit_at.is_some_and(|t| now < t) {
            return;
        }
        let Some((key, duration_ms)) = peer.dtmf_out.pop_front() else {
            return;
        };
        let Some(code) = crate::audio::rfc4733::event_code(key) else {
            return;
        };
        let Some(mid) = peer.mids[Slot::Main as usize] else {
            return;
        };
        let duration = Duration::from_millis(u64::from(duration_ms.clamp(40, 2_000)));
        let ts = peer.out[Slot::Main as usize].now_ts(now);
        let Some(writer) = peer.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
        else {
            return;
        };
        let event = TelephoneEvent {
            event: code,
            end: true,
            volume: 10,
            duration,
        };
        let time = MediaTime::new(ts, Frequency::FORTY_EIGHT_KHZ);
        match writer
            .telephone_event(event)
            .write(pt, now, time, Vec::<u8>::new())
        {
            Ok(()) => {
                self.stats.digits_sent += 1;
                peer.next_digit_at = Some(now + duration + DIGIT_GAP);
            }
            Err(e) => tracing::debug!("peer {id:?}: key {key} not sent: {e}"),
        }
        self.drain(id);
    }
}

impl MediaPeer {
    fn dtmf_in_clock(&self) -> u32 {
        self.dtmf_in.clock_hz()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_stream_is_continuous_across_source_switch() {
        let t0 = Instant::now();
        let mut out = OutStream::default();
        let a = Source::Peer(PeerId(1));
        let b = Source::Peer(PeerId(2));
        assert_eq!(out.map(a, 1_000_000, t0), 0);
        assert_eq!(out.map(a, 1_000_960, t0 + FRAME), 960);
        // Switch to a source with an unrelated clock 20 ms later: continues one frame on.
        let ts = out.map(b, 5, t0 + 2 * FRAME);
        assert_eq!(ts, 1920);
        assert_eq!(out.map(b, 965, t0 + 3 * FRAME), 2880);
    }

    #[test]
    fn a_hand_over_leaves_no_gap_in_time_and_a_pause_moves_the_clock_in_whole_frames() {
        let t0 = Instant::now();
        let mut out = OutStream::default();
        let ringback = Source::Sound(Sound::Ringback);
        let agent = Source::Peer(PeerId(7));
        assert_eq!(out.map(ringback, 0, t0), 0);
        // The agent's first frame comes 57 ms after the last ringback frame: next frame.
        let ts = out.map(agent, 123_456, t0 + Duration::from_millis(57));
        assert_eq!(ts, FRAME_SAMPLES);
        assert_eq!(
            out.map(agent, 123_456 + 960, t0 + Duration::from_millis(77)),
            1920
        );
        // Back to hold music after a 1.01 s pause: 50 frames on, on the frame grid.
        let ts = out.map(
            Source::Sound(Sound::HoldMusic),
            0,
            t0 + Duration::from_millis(77 + 1010),
        );
        assert_eq!(ts, 1920 + 50 * FRAME_SAMPLES);
    }

    #[test]
    fn keys_on_a_stream_that_carried_nothing_get_distinct_timestamps() {
        let t0 = Instant::now();
        let mut out = OutStream::default();
        let first = out.now_ts(t0);
        let second = out.now_ts(t0 + Duration::from_millis(160));
        assert_eq!(second - first, 160 * 48);
        // Media written later continues the same clock.
        assert!(out.map(Source::Peer(PeerId(1)), 5, t0 + Duration::from_millis(200)) > second);
    }

    #[test]
    fn out_stream_never_steps_back_on_quick_switch() {
        let t0 = Instant::now();
        let mut out = OutStream::default();
        out.map(Source::Sound(Sound::Ringback), 0, t0);
        let ts = out.map(Source::Peer(PeerId(3)), 77, t0);
        assert!(ts >= FRAME_SAMPLES);
    }
}

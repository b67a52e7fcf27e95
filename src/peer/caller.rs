//! `sapa caller`: a headless customer. Dials into a queue (or a queue-entry menu, where it
//! presses `--dial-digits` once media is up), hears ringback while waiting, and once answered
//! plays a WAV file and records what it hears, sample-aligned with the playback. If the agent
//! hangs up and the switchboard asks for a rating, it presses `--survey`. Keys leave as RFC 4733
//! telephone events, or as in-band tones with `--inband-dtmf`. Prints one JSON line when it
//! ends: call id, queued ms, answered, talk ms, the keys it heard from the agent.
//!
//! Two more ways to be a customer: ask to be called back after waiting a while
//! (`--callback-after`, [`run_with`]), and be a reachable number (`--listen-as`, [`listen`]):
//! register with the switchboard, wait until it rings, answer, then play and record the same
//! way. The latter stands in for the telephone network until a SIP trunk exists.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::audio::jitter::FrameDuration;
use crate::peer::impair::Impairment;
use crate::peer::voice::{Mouth, Voice};
use crate::peer::{PeerError, REQUEST_TIMEOUT, connect_media, signal};
use crate::protocol::{ClientMessage, PROTOCOL_VERSION, ServerMessage};
use crate::wav;

/// What `sapa caller` was asked to do.
#[derive(Debug, Clone)]
pub struct CallerOptions {
    pub switchboard: String,
    pub from: String,
    pub name: Option<String>,
    pub queue: Option<String>,
    pub play: PathBuf,
    pub record: PathBuf,
    /// Hang up after this long in the call; default: the length of `play`.
    pub talk_secs: Option<f64>,
    /// Give up (abandon) after waiting this long in queue.
    pub max_wait_secs: f64,
    pub impair: Option<Impairment>,
    /// Frame period of the voice this peer sends (20 ms, or 10 ms for a lower delay).
    pub frame: FrameDuration,
    /// The number dialed (the switchboard may answer it with a queue-entry menu).
    pub to: Option<String>,
    /// Keys to press when a queue-entry menu answers (once media is up).
    pub dial_digits: Option<String>,
    /// The key to press when asked to rate the call.
    pub survey: Option<char>,
    /// Send keys as in-band tones in the voice instead of telephone events.
    pub inband_dtmf: bool,
}

/// The JSON line `sapa caller` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallerReport {
    pub call_id: String,
    pub queued_ms: u64,
    pub answered: bool,
    pub talk_ms: u64,
    /// Who ended it: "caller", or the switchboard's reason (e.g. "agent_hung_up").
    pub ended_by: String,
    /// The agent heard last.
    pub agent: Option<String>,
    /// Every agent the caller was connected to, in order (a transfer adds one).
    pub agents: Vec<String>,
    /// The queue-entry menu that answered, if any.
    pub menu: Option<String>,
    /// The queue the call waited in (as the switchboard last said).
    pub queue: Option<String>,
    /// Keys the far end sent (telephone events received during the call).
    pub digits_heard: String,
    /// Whether the switchboard asked for a rating, and the key pressed.
    pub survey_asked: bool,
    pub survey_key: Option<char>,
    /// The loss the Opus encoder planned its FEC for at the end, percent (raised when the
    /// switchboard's reception reports say more is lost than RED repairs), and the last of
    /// those reports: percent of our voice the switchboard lost.
    pub fec_loss_pct: i32,
    pub reported_loss_pct: Option<f64>,
    /// Voice packets the caller sent (fewer with DTX).
    pub packets_sent: u64,
    /// Of what the caller heard (ringback, prompts, the agents): frames that never arrived
    /// (by RTP time), and frames its decoder concealed (lost ones not rebuilt from FEC or
    /// RED, and waits for late ones).
    pub heard_lost_frames: u64,
    pub heard_concealed_frames: u64,
}

/// More of what a headless caller may do.
#[derive(Debug, Clone, Default)]
pub struct CallerExtras {
    /// Ask to be called back after waiting this long (then hang up and report
    /// `callback_scheduled`).
    pub callback_after_secs: Option<f64>,
    /// Ask by pressing the callback key (`*`, RFC 4733, or in band with `inband_dtmf`), as a
    /// customer on a telephone does, instead of sending a `request_callback` message.
    pub callback_by_key: bool,
    /// Record what the caller hears while it waits (ringback, prompts), until an agent answers
    /// or the wait ends, into this WAV.
    pub record_waiting: Option<std::path::PathBuf>,
    /// Discontinuous transmission: send nothing while the caller is silent.
    pub dtx: bool,
}

/// Places the call and runs it to the end.
pub async fn run(options: CallerOptions) -> Result<CallerReport, PeerError> {
    run_with(options, CallerExtras::default()).await
}

/// [`run`], perhaps asking to be called back.
pub async fn run_with(
    options: CallerOptions,
    extras: CallerExtras,
) -> Result<CallerReport, PeerError> {
    let playback = wav::read_mono_48k(&options.play)?;
    let talk_for = match options.talk_secs {
        Some(s) => Duration::from_secs_f64(s.max(0.0)),
        None => Duration::from_secs_f64(playback.len() as f64 / wav::RATE_HZ as f64),
    };
    let url = signal::ws_url(&options.switchboard);
    let (signal, mut events) = signal::Signal::connect(&url).await?;
    let dialed = Instant::now();
    let queued = signal
        .request(
            ClientMessage::Dial {
                req: None,
                protocol: PROTOCOL_VERSION,
                from: options.from.clone(),
                name: options.name.clone(),
                queue: options.queue.clone(),
                to: options.to.clone(),
            },
            REQUEST_TIMEOUT,
        )
        .await?;
    let (call_id, menu, queue) = match queued {
        ServerMessage::CallQueued { call_id, queue, .. } => (call_id, None, Some(queue)),
        ServerMessage::InMenu { call_id, menu, .. } => (call_id, Some(menu), None),
        other => {
            return Err(PeerError::Protocol(format!(
                "expected call_queued or in_menu, got {other:?}"
            )));
        }
    };
    let (media, mut packets) = connect_media(&signal, &url).await?;
    let mut voice = Voice::with_frame(options.impair.clone(), options.frame)?;
    voice.set_dtx(extras.dtx)?;
    let mut keys = Keypad::new(options.inband_dtmf);
    if menu.is_some()
        && let Some(digits) = &options.dial_digits
    {
        keys.press(&mut voice, digits)?;
    }
    let mut report = CallerReport {
        call_id: call_id.clone(),
        queued_ms: 0,
        answered: false,
        talk_ms: 0,
        ended_by: "caller".into(),
        agent: None,
        agents: vec![],
        menu,
        queue,
        digits_heard: String::new(),
        survey_asked: false,
        survey_key: None,
        fec_loss_pct: 0,
        reported_loss_pct: None,
        packets_sent: 0,
        heard_lost_frames: 0,
        heard_concealed_frames: 0,
    };
    let ask_callback_at = extras
        .callback_after_secs
        .map(|s| dialed + Duration::from_secs_f64(s.max(0.0)));
    let mut asked = false;
    let mut waiting_audio: Vec<f32> = Vec::new();
    let save_waiting = |audio: &[f32]| match &extras.record_waiting {
        Some(path) => wav::write_mono_48k(path, audio),
        None => Ok(()),
    };

    // Waiting in queue: the voice loop runs (ringback plays) but nothing is recorded.
    let mut tick = tokio::time::interval(voice.frame_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let give_up = dialed + Duration::from_secs_f64(options.max_wait_secs);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                voice.receive(&mut packets);
                keys.before_tick(&mut voice);
                if let Some((ts, frame)) = voice.tick(Instant::now()) {
                    voice.send(&media, ts, frame).await?;
                }
                // Menu keys go out while waiting (the prompt plays before any agent).
                voice.send_dtmf(&media).await?;
                if extras.record_waiting.is_some() {
                    waiting_audio.extend_from_slice(voice.heard());
                }
                if !asked && ask_callback_at.is_some_and(|t| Instant::now() >= t) {
                    asked = true;
                    if extras.callback_by_key {
                        let key = crate::switchboard::core::CALLBACK_KEY.to_string();
                        keys.press(&mut voice, &key)?;
                    } else {
                        signal.send(ClientMessage::RequestCallback { req: None })?;
                    }
                }
                if Instant::now() >= give_up {
                    let _ = signal.send(ClientMessage::Hangup { req: None, call_id: None });
                    report.queued_ms = dialed.elapsed().as_millis() as u64;
                    report.ended_by = "caller_gave_up".into();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    media.close().await;
                    save_waiting(&waiting_audio)?;
                    return Ok(report);
                }
            }
            event = events.recv() => match event {
                Some(ServerMessage::CallConnected { peer, .. }) => {
                    report.answered = true;
                    report.agent = Some(peer.clone());
                    report.agents.push(peer);
                    report.queued_ms = dialed.elapsed().as_millis() as u64;
                    save_waiting(&waiting_audio)?;
                    break;
                }
                Some(ServerMessage::CallbackScheduled { .. }) => {
                    report.queued_ms = dialed.elapsed().as_millis() as u64;
                    report.ended_by = "callback_scheduled".into();
                    media.close().await;
                    save_waiting(&waiting_audio)?;
                    return Ok(report);
                }
                Some(ServerMessage::CallEnded { reason, .. }) => {
                    report.ended_by = reason;
                    report.queued_ms = dialed.elapsed().as_millis() as u64;
                    media.close().await;
                    save_waiting(&waiting_audio)?;
                    return Ok(report);
                }
                Some(ServerMessage::CallQueued { queue, .. }) => report.queue = Some(queue),
                Some(ServerMessage::ReceptionReport { loss_pct }) => {
                    voice.on_reception_report(loss_pct);
                }
                Some(_) => {}
                None => return Err(PeerError::Signal(signal::SignalError::Closed)),
            }
        }
    }

    talk(
        &signal,
        &mut events,
        &media,
        &mut packets,
        &mut voice,
        playback,
        talk_for,
        &options.record,
        &mut keys,
        options.survey,
        &mut report,
    )
    .await?;
    media.close().await;
    Ok(report)
}

/// The call, once connected: play and record, one frame per tick, until the talk time is up
/// (then hang up) or the other side ends it. Another `call_connected` (a transfer) changes
/// the agent heard, not the recording.
#[allow(clippy::too_many_arguments)]
async fn talk(
    signal: &signal::Signal,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<ServerMessage>,
    media: &crate::peer::rtc::PeerMedia,
    packets: &mut tokio::sync::mpsc::Receiver<crate::peer::rtc::RxPacket>,
    voice: &mut Voice,
    playback: Vec<f32>,
    talk: Duration,
    record: &std::path::Path,
    keys: &mut Keypad,
    survey: Option<char>,
    report: &mut CallerReport,
) -> Result<(), PeerError> {
    let call_id = report.call_id.clone();
    let mut tick = tokio::time::interval(voice.frame_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    voice.mouth = Mouth::wav(playback);
    // What the caller hears is played when it is due, not on the next tick of its clock.
    voice.set_aligned_playout(true);
    let started = Instant::now();
    let samples_to_talk = (talk.as_secs_f64() * 50.0).round() as usize * crate::peer::voice::FRAME;
    let mut recording: Vec<f32> = Vec::with_capacity(samples_to_talk);
    let mut hung_up_by_us = true;
    // Once the switchboard asks for a rating, the caller stays until it says the call ended.
    let mut in_survey = false;
    while in_survey || recording.len() < samples_to_talk {
        tokio::select! {
            _ = tick.tick() => {
                voice.receive(packets);
                if voice.next_play().is_none() {
                    voice.play_and_record(Instant::now(), (!in_survey).then_some(&mut recording));
                }
                keys.before_tick(voice);
                if let Some((ts, frame)) = voice.say(Instant::now()) {
                    voice.send(media, ts, frame).await?;
                }
                voice.send_dtmf(media).await?;
                while let Some(d) = voice.poll_digit() {
                    report.digits_heard.push(d.key);
                }
            }
            _ = tokio::time::sleep_until(voice.play_deadline()), if voice.next_play().is_some() => {
                voice.receive(packets);
                voice.play_and_record(Instant::now(), (!in_survey).then_some(&mut recording));
            }
            event = events.recv() => match event {
                Some(ServerMessage::CallConnected { peer, .. }) => {
                    report.agent = Some(peer.clone());
                    report.agents.push(peer);
                }
                Some(ServerMessage::CallEnded { reason, .. }) => {
                    report.ended_by = reason;
                    hung_up_by_us = false;
                    break;
                }
                Some(ServerMessage::SurveyStarted { .. }) => {
                    in_survey = true;
                    report.survey_asked = true;
                    report.talk_ms = started.elapsed().as_millis() as u64;
                    voice.mouth = Mouth::Silence;
                    if let Some(key) = survey {
                        keys.press(voice, &key.to_string())?;
                        report.survey_key = Some(key);
                    }
                }
                Some(ServerMessage::ReceptionReport { loss_pct }) => {
                    voice.on_reception_report(loss_pct);
                }
                Some(_) => {}
                None => {
                    hung_up_by_us = false;
                    report.ended_by = "switchboard_gone".into();
                    break;
                }
            }
        }
    }
    if !report.survey_asked {
        report.talk_ms = started.elapsed().as_millis() as u64;
    }
    report.fec_loss_pct = voice.expected_loss_pct();
    report.reported_loss_pct = voice.reported_loss_pct();
    report.packets_sent = voice.packets_out();
    let heard = voice.receiver_stats(crate::peer::rtc::RxSlot::Main);
    report.heard_lost_frames = heard.jitter.lost;
    report.heard_concealed_frames = heard.jitter.concealed_frames;
    tracing::info!(stats = ?heard, "what the caller heard, after the call");
    if hung_up_by_us {
        let _ = signal
            .request(
                ClientMessage::Hangup {
                    req: None,
                    call_id: Some(call_id),
                },
                REQUEST_TIMEOUT,
            )
            .await;
    }
    wav::write_mono_48k(record, &recording)?;
    Ok(())
}

/// Be a reachable customer: register `number`, wait (up to `max_wait_secs`) until the
/// switchboard rings, answer, then talk like [`run`]. The report's `queued_ms` is the time
/// until it rang.
pub async fn listen(options: CallerOptions, number: String) -> Result<CallerReport, PeerError> {
    let playback = wav::read_mono_48k(&options.play)?;
    let talk_for = match options.talk_secs {
        Some(s) => Duration::from_secs_f64(s.max(0.0)),
        None => Duration::from_secs_f64(playback.len() as f64 / wav::RATE_HZ as f64),
    };
    let url = signal::ws_url(&options.switchboard);
    let (signal, mut events) = signal::Signal::connect(&url).await?;
    let registered = Instant::now();
    let answer = signal
        .request(
            ClientMessage::Register {
                req: None,
                protocol: PROTOCOL_VERSION,
                number: number.clone(),
                name: options.name.clone(),
            },
            REQUEST_TIMEOUT,
        )
        .await?;
    if !matches!(answer, ServerMessage::Registered { .. }) {
        return Err(PeerError::Protocol(format!(
            "expected registered, got {answer:?}"
        )));
    }
    let (media, mut packets) = connect_media(&signal, &url).await?;
    let mut voice = Voice::with_frame(options.impair.clone(), options.frame)?;
    let mut keys = Keypad::new(options.inband_dtmf);
    let mut report = CallerReport {
        call_id: String::new(),
        queued_ms: 0,
        answered: false,
        talk_ms: 0,
        ended_by: "caller".into(),
        agent: None,
        agents: vec![],
        menu: None,
        queue: None,
        digits_heard: String::new(),
        survey_asked: false,
        survey_key: None,
        fec_loss_pct: 0,
        reported_loss_pct: None,
        packets_sent: 0,
        heard_lost_frames: 0,
        heard_concealed_frames: 0,
    };
    let mut tick = tokio::time::interval(voice.frame_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let give_up = registered + Duration::from_secs_f64(options.max_wait_secs);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                voice.receive(&mut packets);
                if let Some((ts, frame)) = voice.tick(Instant::now()) {
                    voice.send(&media, ts, frame).await?;
                }
                if Instant::now() >= give_up {
                    report.ended_by = "never_rung".into();
                    media.close().await;
                    return Ok(report);
                }
            }
            event = events.recv() => match event {
                Some(ServerMessage::IncomingCall { call_id, from }) => {
                    tracing::info!("{} rings: {from} calls", crate::protocol::redact_number(&number));
                    report.call_id = call_id.clone();
                    report.queued_ms = registered.elapsed().as_millis() as u64;
                    signal.send(ClientMessage::Answer { req: None, call_id })?;
                }
                Some(ServerMessage::CallConnected { peer, .. }) => {
                    report.answered = true;
                    report.agent = Some(peer.clone());
                    report.agents.push(peer);
                    break;
                }
                Some(ServerMessage::CallEnded { reason, .. }) => {
                    report.ended_by = reason;
                    media.close().await;
                    return Ok(report);
                }
                Some(ServerMessage::ReceptionReport { loss_pct }) => {
                    voice.on_reception_report(loss_pct);
                }
                Some(_) => {}
                None => return Err(PeerError::Signal(signal::SignalError::Closed)),
            }
        }
    }
    talk(
        &signal,
        &mut events,
        &media,
        &mut packets,
        &mut voice,
        playback,
        talk_for,
        &options.record,
        &mut keys,
        options.survey,
        &mut report,
    )
    .await?;
    media.close().await;
    Ok(report)
}

/// How the caller presses keys: telephone events through the voice loop, or DTMF tones mixed
/// into what it says (for switchboards, or tests, that must hear tones).
struct Keypad {
    inband: bool,
    /// Tone samples still to say, and where in them the next frame starts.
    tones: Vec<f32>,
    pos: usize,
}

impl Keypad {
    fn new(inband: bool) -> Keypad {
        Keypad {
            inband,
            tones: Vec::new(),
            pos: 0,
        }
    }

    fn press(&mut self, voice: &mut Voice, keys: &str) -> Result<(), PeerError> {
        if !self.inband {
            return voice
                .queue_dtmf(keys)
                .map_err(|e| PeerError::Protocol(e.to_string()));
        }
        use crate::audio::tone::{ToneGenerator, ToneSpec};
        for key in keys.chars() {
            let spec = ToneSpec::dtmf(key)
                .ok_or_else(|| PeerError::Protocol(format!("{key:?} is not a DTMF key")))?;
            // 100 ms of tone and 60 ms of pause, as a keypad sends them.
            let mut tone = vec![0f32; 4_800];
            ToneGenerator::new(spec, wav::RATE_HZ).fill(&mut tone);
            self.tones.extend_from_slice(&tone);
            self.tones.extend(std::iter::repeat_n(0.0, 2_880));
        }
        Ok(())
    }

    /// Puts the next frame of tones (if any are left) in the voice's mouth.
    fn before_tick(&mut self, voice: &mut Voice) {
        if self.pos >= self.tones.len() {
            if !self.tones.is_empty() {
                self.tones.clear();
                self.pos = 0;
                voice.mouth = Mouth::Silence;
            }
            return;
        }
        let end = (self.pos + voice.frame_len()).min(self.tones.len());
        voice.mouth = Mouth::wav(self.tones[self.pos..end].to_vec());
        self.pos = end;
    }
}

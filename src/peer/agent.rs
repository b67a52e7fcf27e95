//! `sapa agent`: a headless agent. Logs in, opens its one peer connection for the shift, goes
//! available, answers offered calls, talks (a WAV file, an echo of what it hears for latency
//! measurement, or a real headset: microphone in, speaker out), records, and submits the disposition after each call. Prints one JSON line
//! per call; exits after N calls.
//!
//! With [`CallControl`] (`run_with`) it also transfers, consults or escalates each call it
//! answers at a set time, and can stay not ready to take only what is rung to it personally
//! (a consult, an escalation): the headless stand-in for a supervisor who accepts escalations.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::audio::device::Headset;
use crate::audio::jitter::FrameDuration;
use crate::audio::process::MicProcessor;
use crate::peer::impair::Impairment;
use crate::peer::voice::{Mouth, Voice};
use crate::peer::{PeerError, REQUEST_TIMEOUT, connect_media, signal};
use crate::protocol::{
    ClientMessage, ConsultPhase, HistoryEntry, OfferContext, PROTOCOL_VERSION, RequestedState,
    Resolution, ServerMessage,
};
use crate::wav;

/// What the agent says during calls.
#[derive(Debug, Clone)]
pub enum AgentVoice {
    Silence,
    Wav(PathBuf),
    Echo,
    /// A real headset: says what its microphone picks up, plays what it hears.
    Devices(HeadsetChoice),
}

/// Which headset devices to use (None: the system default) and how to treat the microphone.
#[derive(Debug, Clone, Default)]
pub struct HeadsetChoice {
    pub input: Option<String>,
    pub output: Option<String>,
    pub noise_suppression: bool,
    pub agc: bool,
}

/// What `sapa agent` was asked to do.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub switchboard: String,
    pub user: String,
    pub password: String,
    pub voice: AgentVoice,
    /// Recording of each call; calls after the first get `-2`, `-3`, ... before the extension.
    pub record: Option<PathBuf>,
    pub calls: u32,
    /// Disposition code; default: the first configured code.
    pub disposition: Option<String>,
    pub notes: String,
    pub resolution: Resolution,
    /// Hang up after this long in a call (otherwise the caller hangs up).
    pub talk_secs: Option<f64>,
    /// Let offers ring out instead of answering (for ring-no-answer tests).
    pub no_answer: bool,
    /// Put each call on hold `start` seconds in, for `secs` seconds.
    pub hold: Option<HoldPlan>,
    /// Mute the microphone `start` seconds into each call, for `secs` seconds (reported to
    /// the switchboard, which stores the muted time).
    pub mute: Option<HoldPlan>,
    /// Keys to press (sent to the caller) one second into each call.
    pub send_digits: Option<String>,
    pub impair: Option<Impairment>,
    /// Frame period of the voice this peer sends (20 ms, or 10 ms for a lower delay).
    pub frame: FrameDuration,
    /// Discontinuous transmission: send nothing while the agent is silent (Opus DTX).
    pub dtx: bool,
}

impl AgentOptions {
    /// An agent who answers `calls` calls in silence, records nothing, and submits the
    /// first disposition code as resolved: the base that tests and demos change.
    pub fn silent(switchboard: &str, user: &str, password: &str, calls: u32) -> AgentOptions {
        AgentOptions {
            switchboard: switchboard.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            voice: AgentVoice::Silence,
            record: None,
            calls,
            disposition: None,
            notes: String::new(),
            resolution: Resolution::Resolved,
            talk_secs: None,
            no_answer: false,
            hold: None,
            mute: None,
            send_digits: None,
            impair: None,
            frame: FrameDuration::default(),
            dtx: false,
        }
    }
}

/// Call control for a headless agent, beyond answering and talking.
#[derive(Debug, Clone, Default)]
pub struct CallControl {
    /// What to do with each call it answered, and when.
    pub plan: Option<CallControlPlan>,
    /// Never go available: take only calls rung to this user personally (consults and
    /// escalations). For supervisors who accept escalations.
    pub stay_not_ready: bool,
    /// Follow-up time of a `follow_up` disposition, seconds after the call (default: a day).
    pub follow_up_in_secs: Option<f64>,
}

/// `after_secs` into each answered call, do `action`.
#[derive(Debug, Clone)]
pub struct CallControlPlan {
    pub after_secs: f64,
    pub action: CallControlAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallControlAction {
    /// Blind transfer to a queue.
    TransferToQueue(String),
    /// Blind transfer to an available agent.
    TransferToAgent(String),
    /// Warm transfer: consult `agent`; `consult_secs` after it answers, complete the transfer
    /// (`complete`) or go back to the caller.
    Consult {
        agent: String,
        complete: bool,
        consult_secs: f64,
    },
    /// Conference a supervisor in; leave the call to it `leave_after_secs` after it joined.
    Escalate {
        supervisor: String,
        leave_after_secs: f64,
    },
}

/// When to hold (or mute) during each call (headless testing of hold and mute).
#[derive(Debug, Clone, Copy)]
pub struct HoldPlan {
    pub start_secs: f64,
    pub secs: f64,
}

/// The JSON line printed per call.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AgentCallReport {
    pub call_id: String,
    pub caller: String,
    pub queue: String,
    /// Past calls of this caller that came with the offer (the screen-pop).
    pub history_len: usize,
    pub history: Vec<HistoryEntry>,
    /// From sending `answer` to the first audio packet of the caller.
    pub first_audio_ms: Option<f64>,
    pub talk_ms: u64,
    pub ended_by: String,
    pub disposition: Option<String>,
    /// Why the call came to this agent (a transfer with its notes, a consult, a callback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<OfferContext>,
    /// Who the agent talked to, in order (`call_connected` peers: the caller's number, a
    /// consulting colleague's name).
    pub peers: Vec<String>,
    /// Voice packets the agent sent in the call (fewer with DTX while silent).
    pub packets_sent: u64,
    /// The far end's frames the agent's jitter buffer counted lost in this call, and the
    /// frames it concealed (both 0 on a clean network).
    pub heard_lost_frames: u64,
    pub heard_concealed_frames: u64,
    /// The interarrival jitter of the far end's packets at the call's end (RFC 3550), ms.
    pub heard_jitter_ms: f64,
}

/// Runs the agent's shift until `calls` calls are done.
pub async fn run(
    options: AgentOptions,
    on_call: impl FnMut(&AgentCallReport),
) -> Result<Vec<AgentCallReport>, PeerError> {
    run_with(options, CallControl::default(), on_call).await
}

/// Where the planned call control of the current call stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ControlStep {
    /// Not yet started.
    Waiting,
    /// The consult or escalation rings; the colleague has not answered.
    Ringing,
    /// The colleague answered at this time.
    Joined(Instant),
    /// Done (sent the transfer, completed or cancelled, or the consult failed).
    Done,
}

/// [`run`] with transfers, consults and escalations.
pub async fn run_with(
    options: AgentOptions,
    control: CallControl,
    mut on_call: impl FnMut(&AgentCallReport),
) -> Result<Vec<AgentCallReport>, PeerError> {
    let url = signal::ws_url(&options.switchboard);
    let (signal, mut events) = signal::Signal::connect(&url).await?;
    let logged_in = signal
        .request(
            ClientMessage::Login {
                req: None,
                protocol: PROTOCOL_VERSION,
                user: options.user.clone(),
                password: options.password.clone(),
                lookup: false,
            },
            REQUEST_TIMEOUT,
        )
        .await?;
    let ServerMessage::LoggedIn { config, .. } = logged_in else {
        return Err(PeerError::Protocol(format!(
            "expected logged_in, got {logged_in:?}"
        )));
    };
    let code = options
        .disposition
        .clone()
        .or_else(|| config.disposition_codes.first().cloned())
        .unwrap_or_default();
    let (media, mut packets) = connect_media(&signal, &url).await?;
    // The switchboard bridges calls only to a connected phone; wait until it says so.
    wait_for(&mut events, Duration::from_secs(10), |m| {
        matches!(m, ServerMessage::MediaConnected)
    })
    .await?;
    // The headset opens before going available, so a missing device fails before any call
    // is offered, and its rings start filling only just before the voice clock reads them.
    let mut voice = Voice::with_frame(options.impair.clone(), options.frame)?;
    voice.set_dtx(options.dtx)?;
    if let AgentVoice::Devices(choice) = &options.voice {
        let (headset, notices) = open_headset(choice.clone()).await?;
        for notice in &notices {
            tracing::warn!("{notice}");
        }
        let processing = (choice.noise_suppression || choice.agc)
            .then(|| MicProcessor::new(choice.noise_suppression, choice.agc));
        voice.attach_headset(headset, processing);
        // Paused until a call is offered.
        hold_headset_while_needed(&mut voice, false);
    }
    // What the agent hears (on the headset or in the recording) is played when it is due,
    // not on the next tick of the voice clock.
    voice.set_aligned_playout(true);
    if !control.stay_not_ready {
        signal
            .request(
                ClientMessage::SetState {
                    req: None,
                    state: RequestedState::Available,
                    reason: None,
                },
                REQUEST_TIMEOUT,
            )
            .await?;
    }
    let playback = match &options.voice {
        AgentVoice::Wav(path) => Some(wav::read_mono_48k(path)?),
        _ => None,
    };
    let mut tick = tokio::time::interval(voice.frame_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);

    let mut reports = Vec::new();
    let mut current: Option<(AgentCallReport, Instant)> = None;
    let mut offered: Option<AgentCallReport> = None;
    // The receivers' lost and concealed counts when the last call ended: a call's own are
    // what they grew by since.
    let mut heard_before = (0u64, 0u64);
    let mut recording: Vec<f32> = Vec::new();
    // When `answer` left: answer -> first audio packet is measured from here.
    let mut answer_sent: Option<Instant> = None;
    let mut held = false;
    let mut step = ControlStep::Waiting;
    let mut muted = false;
    let mut digits_sent = false;
    let mut headset_needed = false;
    while (reports.len() as u32) < options.calls {
        tokio::select! {
            _ = tokio::time::sleep_until(voice.play_deadline()), if voice.next_play().is_some() => {
                voice.receive(&mut packets);
                voice.play_and_record(Instant::now(), current.is_some().then_some(&mut recording));
            }
            _ = tick.tick() => {
                voice.receive(&mut packets);
                if voice.next_play().is_none() {
                    voice.play_and_record(Instant::now(), current.is_some().then_some(&mut recording));
                }
                // The voice is muted by the plan and between calls, where, as in the phone,
                // nothing is encoded or sent; the RTP clock still advances, so a call's first
                // frame carries the right time.
                voice.muted = muted || current.is_none();
                if let Some((ts, frame)) = voice.say(Instant::now()) {
                    voice.send(&media, ts, frame).await?;
                }
                voice.send_dtmf(&media).await?;
                if let Some((report, started)) = &current {
                    if let Some(plan) = options.hold {
                        let t = started.elapsed().as_secs_f64();
                        let want = t >= plan.start_secs && t < plan.start_secs + plan.secs;
                        if want != held && report.ended_by.is_empty() {
                            held = want;
                            signal.send(ClientMessage::Hold {
                                req: None,
                                call_id: report.call_id.clone(),
                                on: want,
                            })?;
                        }
                    }
                    if let Some(plan) = &control.plan
                        && report.ended_by.is_empty()
                        // Never on a call rung to us as a consult or an escalation.
                        && !report.context.as_ref().is_some_and(|c| c.kind == "consult" || c.kind == "escalation")
                    {
                        let t = started.elapsed().as_secs_f64();
                        let call_id = report.call_id.clone();
                        let message = match (&plan.action, step) {
                            (_, ControlStep::Waiting) if t >= plan.after_secs => {
                                step = ControlStep::Done;
                                let notes = Some(options.notes.clone()).filter(|n| !n.is_empty());
                                Some(match &plan.action {
                                    CallControlAction::TransferToQueue(queue) => ClientMessage::Transfer {
                                        req: None, call_id, queue: Some(queue.clone()), agent: None, notes,
                                    },
                                    CallControlAction::TransferToAgent(agent) => ClientMessage::Transfer {
                                        req: None, call_id, queue: None, agent: Some(agent.clone()), notes,
                                    },
                                    CallControlAction::Consult { agent, .. } => {
                                        step = ControlStep::Ringing;
                                        ClientMessage::Consult { req: None, call_id, agent: agent.clone(), notes }
                                    }
                                    CallControlAction::Escalate { supervisor, .. } => {
                                        step = ControlStep::Ringing;
                                        ClientMessage::Escalate { req: None, call_id, supervisor: supervisor.clone(), notes }
                                    }
                                })
                            }
                            (CallControlAction::Consult { complete, consult_secs, .. }, ControlStep::Joined(at))
                                if at.elapsed().as_secs_f64() >= *consult_secs =>
                            {
                                step = ControlStep::Done;
                                Some(if *complete {
                                    ClientMessage::CompleteTransfer { req: None, call_id }
                                } else {
                                    ClientMessage::CancelConsult { req: None, call_id }
                                })
                            }
                            (CallControlAction::Escalate { leave_after_secs, .. }, ControlStep::Joined(at))
                                if at.elapsed().as_secs_f64() >= *leave_after_secs =>
                            {
                                step = ControlStep::Done;
                                Some(ClientMessage::CompleteTransfer { req: None, call_id })
                            }
                            _ => None,
                        };
                        if let Some(message) = message {
                            tracing::info!("call control: {}", message.type_name());
                            signal.send(message)?;
                        }
                    }
                    if let Some(plan) = options.mute {
                        let t = started.elapsed().as_secs_f64();
                        let want = t >= plan.start_secs && t < plan.start_secs + plan.secs;
                        if want != muted && report.ended_by.is_empty() {
                            muted = want;
                            signal.send(ClientMessage::Mute {
                                req: None,
                                call_id: report.call_id.clone(),
                                on: want,
                            })?;
                        }
                    }
                    if let Some(keys) = &options.send_digits
                        && !digits_sent
                        && started.elapsed() >= Duration::from_secs(1)
                    {
                        digits_sent = true;
                        voice
                            .queue_dtmf(keys)
                            .map_err(|e| PeerError::Protocol(e.to_string()))?;
                    }
                    if let Some(limit) = options.talk_secs
                        && started.elapsed().as_secs_f64() >= limit && report.ended_by.is_empty() {
                            let call_id = report.call_id.clone();
                            if let Some((r, _)) = &mut current {
                                r.ended_by = "agent".into();
                            }
                            signal.send(ClientMessage::Hangup { req: None, call_id: Some(call_id) })?;
                        }
                }
            }
            event = events.recv() => {
                let Some(event) = event else {
                    return Err(PeerError::Signal(signal::SignalError::Closed));
                };
                match event {
                    ServerMessage::CallOffered { call_id, queue, caller, history, context, .. } => {
                        offered = Some(AgentCallReport {
                            call_id: call_id.clone(),
                            caller: caller.number,
                            queue,
                            history_len: history.len(),
                            history,
                            context,
                            ..AgentCallReport::default()
                        });
                        if !options.no_answer {
                            voice.first_packet_at = None;
                            answer_sent = Some(Instant::now());
                            signal.send(ClientMessage::Answer { req: None, call_id })?;
                        }
                    }
                    ServerMessage::OfferWithdrawn { reason, .. } => {
                        offered = None;
                        if options.no_answer && reason == "ring_no_answer" {
                            // A ring-no-answer run counts each missed offer as its "call".
                            let r = AgentCallReport {
                                ended_by: reason,
                                ..AgentCallReport::default()
                            };
                            on_call(&r);
                            reports.push(r);
                        }
                    }
                    ServerMessage::ConsultState { state, .. } => {
                        step = match state {
                            ConsultPhase::Ringing => step,
                            ConsultPhase::Connected => ControlStep::Joined(Instant::now()),
                            ConsultPhase::Ended => ControlStep::Done,
                        };
                    }
                    ServerMessage::CallConnected { call_id, peer }
                        if current.as_ref().is_some_and(|(r, _)| r.call_id == call_id) =>
                    {
                        // The same call goes on with someone else (a consult became the call):
                        // keep recording, note who it is now.
                        if let Some((report, _)) = &mut current {
                            report.peers.push(peer);
                        }
                    }
                    ServerMessage::CallConnected { call_id, peer } => {
                        let connected = Instant::now();
                        let report = offered.take().filter(|r| r.call_id == call_id);
                        let mut report = report.unwrap_or(AgentCallReport {
                            call_id,
                            ..AgentCallReport::default()
                        });
                        report.peers.push(peer);
                        step = ControlStep::Waiting;
                        voice.mouth = match (&options.voice, &playback) {
                            (AgentVoice::Echo, _) => Mouth::Echo,
                            (AgentVoice::Devices(_), _) => Mouth::Device,
                            (AgentVoice::Wav(_), Some(samples)) => Mouth::wav(samples.clone()),
                            _ => Mouth::Silence,
                        };
                        recording.clear();
                        voice.start_new_call();
                        held = false;
                        muted = false;
                        digits_sent = false;
                        current = Some((report, connected));
                    }
                    ServerMessage::CallHeld { call_id, on: true }
                        if current.as_ref().is_some_and(|(r, _)| r.call_id == call_id) =>
                    {
                        // The switchboard sends us nothing while the caller is held.
                        voice.far_end_stopped(Instant::now());
                    }
                    ServerMessage::CallEnded { call_id, reason } => {
                        let consult_only = reason == "consult_ended";
                        let Some((mut report, started)) = current.take() else { continue };
                        if report.call_id != call_id {
                            current = Some((report, started));
                            continue;
                        }
                        voice.mouth = Mouth::Silence;
                        report.talk_ms = started.elapsed().as_millis() as u64;
                        report.packets_sent = voice.packets_out();
                        report.first_audio_ms = voice.first_packet_at.zip(answer_sent.take()).map(
                            |(t, sent)| t.saturating_duration_since(sent).as_secs_f64() * 1000.0,
                        );
                        if report.ended_by.is_empty() {
                            report.ended_by = reason;
                        }
                        let heard = voice.receiver_stats(crate::peer::rtc::RxSlot::Main);
                        tracing::info!(stats = ?heard, "what the agent heard, after the call");
                        report.heard_lost_frames = heard.jitter.lost.saturating_sub(heard_before.0);
                        report.heard_concealed_frames =
                            heard.jitter.concealed_frames.saturating_sub(heard_before.1);
                        report.heard_jitter_ms = heard.jitter.interarrival_jitter_ms;
                        heard_before = (heard.jitter.lost, heard.jitter.concealed_frames);
                        voice.far_end_stopped(Instant::now());
                        if let Some(headset) = voice.headset() {
                            tracing::info!(stats = ?headset.stats(), "headset after call");
                        }
                        if let Some(path) = &options.record {
                            wav::write_mono_48k(&numbered(path, reports.len() + 1), &recording)?;
                        }
                        // A consulted colleague only talked to the agent: nothing to wrap up.
                        if consult_only {
                            on_call(&report);
                            reports.push(report);
                            continue;
                        }
                        let follow_up_ms = control
                            .follow_up_in_secs
                            .map_or(24 * 3600 * 1000, |s| (s * 1000.0) as i64);
                        let saved = signal
                            .request(
                                ClientMessage::Disposition {
                                    req: None,
                                    call_id: report.call_id.clone(),
                                    request_id: format!("{}-{}", options.user, report.call_id),
                                    code: code.clone(),
                                    resolution: options.resolution,
                                    notes: options.notes.clone(),
                                    follow_up_at_ms: (options.resolution == Resolution::FollowUp)
                                        .then(|| crate::peer::now_ms() + follow_up_ms),
                                },
                                REQUEST_TIMEOUT,
                            )
                            .await?;
                        if matches!(saved, ServerMessage::DispositionSaved { .. }) {
                            report.disposition = Some(code.clone());
                        }
                        on_call(&report);
                        reports.push(report);
                    }
                    ServerMessage::ReceptionReport { loss_pct } => voice.on_reception_report(loss_pct),
                    _ => {}
                }
            }
        }
        // The headset runs while a call rings or is connected and is paused between calls,
        // as the phone's is, so an idle agent costs next to nothing. Tried once per change,
        // so a headset that cannot resume is reported once, not on every frame.
        let needed = offered.is_some() || current.is_some();
        if needed != headset_needed {
            headset_needed = needed;
            hold_headset_while_needed(&mut voice, needed);
        }
    }
    let _ = signal
        .request(
            ClientMessage::SetState {
                req: None,
                state: RequestedState::NotReady,
                reason: config.not_ready_reasons.first().cloned(),
            },
            REQUEST_TIMEOUT,
        )
        .await;
    media.close().await;
    Ok(reports)
}

/// Resumes the headset (if there is one) when `needed`, pauses it otherwise. Resuming takes
/// one server round trip; a failure is logged and the call goes on without the headset.
fn hold_headset_while_needed(voice: &mut Voice, needed: bool) {
    let Some(headset) = voice.headset_mut() else {
        return;
    };
    if headset.is_running() != needed
        && let Err(e) = headset.set_running(needed)
    {
        tracing::warn!(
            "the headset could not be {}: {e}",
            if needed { "resumed" } else { "paused" }
        );
    }
}

/// Opens the headset off the async threads (PulseAudio's handshake and stream set-up block).
async fn open_headset(
    choice: HeadsetChoice,
) -> Result<(Headset, Vec<crate::audio::device::DeviceNotice>), PeerError> {
    tokio::task::spawn_blocking(move || {
        Headset::open(choice.input.as_deref(), choice.output.as_deref())
    })
    .await
    .map_err(|e| PeerError::Protocol(format!("opening the headset: {e}")))?
    .map_err(PeerError::from)
}

/// Waits for the first event that matches, skipping others.
async fn wait_for(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<ServerMessage>,
    limit: Duration,
    want: impl Fn(&ServerMessage) -> bool,
) -> Result<ServerMessage, PeerError> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(m)) if want(&m) => return Ok(m),
            Ok(Some(_)) => continue,
            Ok(None) => return Err(PeerError::Signal(signal::SignalError::Closed)),
            Err(_) => return Err(PeerError::Signal(signal::SignalError::Timeout(limit))),
        }
    }
}

/// `out.wav` for the first call, `out-2.wav`, `out-3.wav` ... after.
pub fn numbered(path: &Path, n: usize) -> PathBuf {
    if n <= 1 {
        return path.to_path_buf();
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("call");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("wav");
    path.with_file_name(format!("{stem}-{n}.{ext}"))
}

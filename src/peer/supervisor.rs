//! `sapa supervisor`: a headless supervisor. Logs in, opens its one peer connection, waits
//! until the named agent is on a call, then monitors it (listen, whisper or barge), playing a
//! WAV file into the call when the mode lets anyone hear it, and records what it hears (the
//! caller and the agent, mixed). Several phases can follow each other in one session: a mode
//! change is one message, with no renegotiation and no gap.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::peer::voice::{Mouth, Voice};
use crate::peer::{PeerError, REQUEST_TIMEOUT, connect_media, signal};
use crate::protocol::{ClientMessage, ErrorCode, MonitorMode, PROTOCOL_VERSION, ServerMessage};
use crate::wav;

/// One stretch of a monitoring session.
#[derive(Debug, Clone)]
pub struct MonitorPhase {
    pub mode: MonitorMode,
    pub secs: f64,
    /// What the supervisor says during this phase (48 kHz mono); silence when None.
    pub voice: Option<Vec<f32>>,
}

/// What `sapa supervisor` was asked to do.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    pub switchboard: String,
    pub user: String,
    pub password: String,
    pub agent: String,
    pub phases: Vec<MonitorPhase>,
    pub record: Option<PathBuf>,
    /// How long to wait for the agent to be on a call.
    pub wait_secs: f64,
}

/// The JSON line `sapa supervisor` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SupervisorReport {
    pub session_id: String,
    pub agent: String,
    pub call_id: String,
    pub modes: Vec<MonitorMode>,
    pub monitored_ms: u64,
    pub ended_by: String,
}

pub async fn run(options: SupervisorOptions) -> Result<SupervisorReport, PeerError> {
    let url = signal::ws_url(&options.switchboard);
    let (signal, mut events) = signal::Signal::connect(&url).await?;
    signal
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
    let (media, mut packets) = connect_media(&signal, &url).await?;
    let mut voice = Voice::new(None)?;
    let Some(first) = options.phases.first() else {
        return Err(PeerError::Protocol("no monitoring phase given".into()));
    };

    // Wait for the agent's call: the switchboard refuses with invalid_state until then.
    let give_up = Instant::now() + Duration::from_secs_f64(options.wait_secs);
    let started = loop {
        let attempt = signal
            .request(
                ClientMessage::Monitor {
                    req: None,
                    agent: options.agent.clone(),
                    mode: first.mode,
                },
                REQUEST_TIMEOUT,
            )
            .await;
        match attempt {
            Ok(m @ ServerMessage::MonitorStarted { .. }) => break m,
            Ok(other) => {
                return Err(PeerError::Protocol(format!(
                    "expected monitor_started, got {other:?}"
                )));
            }
            Err(signal::SignalError::Refused {
                code: ErrorCode::InvalidState,
                ..
            }) if Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let ServerMessage::MonitorStarted {
        session_id,
        agent,
        call_id,
        ..
    } = started
    else {
        unreachable!("matched above");
    };
    let mut report = SupervisorReport {
        session_id,
        agent,
        call_id,
        modes: vec![first.mode],
        monitored_ms: 0,
        ended_by: "supervisor".into(),
    };
    let begun = Instant::now();
    let mut recording = Vec::new();
    let mut tick = tokio::time::interval(voice.frame_period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut ended = false;
    'phases: for (i, phase) in options.phases.iter().enumerate() {
        if i > 0 {
            // Say nothing while the mode changes, and start the new mode with a fresh
            // encoder: no tail of what was said for the old listeners reaches the new ones.
            voice.mouth = Mouth::Silence;
            signal
                .request(
                    ClientMessage::Monitor {
                        req: None,
                        agent: options.agent.clone(),
                        mode: phase.mode,
                    },
                    REQUEST_TIMEOUT,
                )
                .await?;
            report.modes.push(phase.mode);
            voice.reset_encoder();
        }
        voice.mouth = match &phase.voice {
            Some(samples) => Mouth::wav(samples.clone()),
            None => Mouth::Silence,
        };
        let frames = (phase.secs * 50.0).round() as usize;
        for _ in 0..frames {
            tokio::select! {
                _ = tick.tick() => {
                    voice.receive(&mut packets);
                    if let Some((ts, frame)) = voice.tick(Instant::now()) {
                        voice.send(&media, ts, frame).await?;
                    }
                    voice.send_dtmf(&media).await?;
                    recording.extend_from_slice(voice.heard());
                }
                event = events.recv() => match event {
                    Some(ServerMessage::MonitorEnded { reason, .. }) => {
                        report.ended_by = reason;
                        ended = true;
                        break 'phases;
                    }
                    Some(ServerMessage::ReceptionReport { loss_pct }) => {
                        voice.on_reception_report(loss_pct);
                    }
                    Some(_) => {}
                    None => return Err(PeerError::Signal(signal::SignalError::Closed)),
                }
            }
        }
    }
    report.monitored_ms = begun.elapsed().as_millis() as u64;
    if !ended {
        let _ = signal
            .request(ClientMessage::StopMonitor { req: None }, REQUEST_TIMEOUT)
            .await;
    }
    if let Some(path) = &options.record {
        wav::write_mono_48k(path, &recording)?;
    }
    media.close().await;
    Ok(report)
}

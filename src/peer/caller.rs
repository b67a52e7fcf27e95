//! `sapa caller`: a headless customer. Dials into a queue, hears ringback while waiting, and
//! once answered plays a WAV file and records what it hears, sample-aligned with the playback.
//! Prints one JSON line when it ends: call id, queued ms, answered, talk ms.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::peer::impair::Impairment;
use crate::peer::voice::{FRAME, Mouth, Voice};
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
    pub agent: Option<String>,
}

/// Places the call and runs it to the end.
pub async fn run(options: CallerOptions) -> Result<CallerReport, PeerError> {
    let playback = wav::read_mono_48k(&options.play)?;
    let talk = match options.talk_secs {
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
            },
            REQUEST_TIMEOUT,
        )
        .await?;
    let ServerMessage::CallQueued { call_id, .. } = queued else {
        return Err(PeerError::Protocol(format!(
            "expected call_queued, got {queued:?}"
        )));
    };
    let (media, mut packets) = connect_media(&signal, &url).await?;
    let mut voice = Voice::new(options.impair.clone())?;
    let mut report = CallerReport {
        call_id: call_id.clone(),
        queued_ms: 0,
        answered: false,
        talk_ms: 0,
        ended_by: "caller".into(),
        agent: None,
    };

    // Waiting in queue: the voice loop runs (ringback plays) but nothing is recorded.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let give_up = dialed + Duration::from_secs_f64(options.max_wait_secs);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                voice.receive(&mut packets);
                if let Some((ts, frame)) = voice.tick(Instant::now()) {
                    voice.send(&media, ts, frame).await?;
                }
                if Instant::now() >= give_up {
                    let _ = signal.send(ClientMessage::Hangup { req: None, call_id: None });
                    report.queued_ms = dialed.elapsed().as_millis() as u64;
                    report.ended_by = "caller_gave_up".into();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    media.close().await;
                    return Ok(report);
                }
            }
            event = events.recv() => match event {
                Some(ServerMessage::CallConnected { peer, .. }) => {
                    report.answered = true;
                    report.agent = Some(peer);
                    report.queued_ms = dialed.elapsed().as_millis() as u64;
                    break;
                }
                Some(ServerMessage::CallEnded { reason, .. }) => {
                    report.ended_by = reason;
                    report.queued_ms = dialed.elapsed().as_millis() as u64;
                    media.close().await;
                    return Ok(report);
                }
                Some(_) => {}
                None => return Err(PeerError::Signal(signal::SignalError::Closed)),
            }
        }
    }

    // In the call: play and record, one frame per tick.
    voice.mouth = Mouth::wav(playback);
    let started = Instant::now();
    let frames_to_talk = (talk.as_secs_f64() * 50.0).round() as usize;
    let mut recording: Vec<f32> = Vec::with_capacity(frames_to_talk * FRAME);
    let mut hung_up_by_us = true;
    while recording.len() < frames_to_talk * FRAME {
        tokio::select! {
            _ = tick.tick() => {
                voice.receive(&mut packets);
                if let Some((ts, frame)) = voice.tick(Instant::now()) {
                    voice.send(&media, ts, frame).await?;
                }
                recording.extend_from_slice(voice.heard());
            }
            event = events.recv() => match event {
                Some(ServerMessage::CallEnded { reason, .. }) => {
                    report.ended_by = reason;
                    hung_up_by_us = false;
                    break;
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
    report.talk_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        stats = ?voice.receiver_stats(crate::peer::rtc::RxSlot::Main),
        "what the caller heard, after the call"
    );
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
    wav::write_mono_48k(&options.record, &recording)?;
    media.close().await;
    Ok(report)
}

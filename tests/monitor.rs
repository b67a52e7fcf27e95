//! Silent monitoring through a real switchboard: listen, whisper and barge in one session
//! (mode switches without renegotiation), who hears whom, the audit rows, and the refusal of
//! an agent who asks to monitor.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sapa::config::SwitchboardConfig;
use sapa::peer::agent::{AgentOptions, AgentVoice};
use sapa::peer::caller::CallerOptions;
use sapa::peer::supervisor::{MonitorPhase, SupervisorOptions};
use sapa::peer::{agent, caller, supervisor};
use sapa::protocol::MonitorMode;
use sapa::store::Role;
use tokio_tungstenite::tungstenite::Message;

use common::*;

fn tone(freq: f32, secs: f32) -> Vec<f32> {
    (0..(48_000.0 * secs) as usize)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin())
        .collect()
}

/// Share of 100 ms windows in which `freq` is clearly present (not necessarily dominant).
fn presence(samples: &[f32], freq: f32) -> f64 {
    let windows: Vec<&[f32]> = samples.chunks_exact(4800).collect();
    let hits = windows.iter().filter(|w| goertzel(w, freq) > 1.0).count();
    hits as f64 / windows.len().max(1) as f64
}

/// Longest stretch (ms) in which `freq`, between its first and its last appearance, falls
/// 20 dB or more below its median level: a gap in the call. 20 ms windows.
fn longest_dropout_ms(samples: &[f32], freq: f32) -> u32 {
    let levels: Vec<f32> = samples
        .chunks_exact(960)
        .map(|w| goertzel(w, freq))
        .collect();
    let Some(first) = levels.iter().position(|&l| l > 1.0) else {
        return u32::MAX;
    };
    let last = levels.iter().rposition(|&l| l > 1.0).unwrap_or(first);
    let span = &levels[first..=last];
    let mut sorted = span.to_vec();
    sorted.sort_by(f32::total_cmp);
    let median = sorted[sorted.len() / 2];
    let (mut run, mut worst) = (0u32, 0u32);
    for &l in span {
        if l < median / 100.0 {
            run += 1;
            worst = worst.max(run);
        } else {
            run = 0;
        }
    }
    worst * 20
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listen_whisper_barge_reach_the_right_ears() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    sb.store
        .add_user("sri", Role::Supervisor, PASSWORD)
        .await
        .unwrap();
    let url = sb.ws_url();
    let agent_rec = dir.path().join("agent.wav");
    let caller_rec = dir.path().join("caller.wav");
    let agent_task = tokio::spawn(agent::run(
        AgentOptions {
            voice: AgentVoice::Wav(tone_wav(dir.path(), "a.wav", 1000.0, 16.0)),
            record: Some(agent_rec.clone()),
            ..AgentOptions::silent(&url, "ana", PASSWORD, 1)
        },
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let call = tokio::spawn(caller::run(CallerOptions {
        switchboard: url.clone(),
        from: "+15550777".into(),
        name: None,
        queue: None,
        play: tone_wav(dir.path(), "c.wav", 440.0, 13.0),
        record: caller_rec.clone(),
        talk_secs: None,
        max_wait_secs: 30.0,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    }));
    let sup_rec = dir.path().join("sup.wav");
    let report = supervisor::run(SupervisorOptions {
        switchboard: url.clone(),
        user: "sri".into(),
        password: PASSWORD.into(),
        agent: "ana".into(),
        phases: vec![
            MonitorPhase {
                mode: MonitorMode::Listen,
                secs: 3.0,
                voice: Some(tone(1570.0, 3.0)),
            },
            MonitorPhase {
                mode: MonitorMode::Whisper,
                secs: 3.0,
                voice: Some(tone(2430.0, 3.0)),
            },
            MonitorPhase {
                mode: MonitorMode::Barge,
                secs: 3.0,
                voice: Some(tone(2870.0, 3.0)),
            },
        ],
        record: Some(sup_rec.clone()),
        wait_secs: 20.0,
    })
    .await
    .expect("monitoring runs");
    assert_eq!(
        report.modes,
        vec![
            MonitorMode::Listen,
            MonitorMode::Whisper,
            MonitorMode::Barge
        ]
    );
    call.await.unwrap().unwrap();
    agent_task.await.unwrap().unwrap();

    let sup = read(&sup_rec);
    let agent_heard = read(&agent_rec);
    let caller_heard = read(&caller_rec);
    let p = |s: &[f32], f| presence(s, f);
    eprintln!(
        "supervisor: 440 {:.2} 1000 {:.2}; agent: 1570 {:.2} 2430 {:.2} 2870 {:.2}; caller: 1570 {:.2} 2430 {:.2} 2870 {:.2}",
        p(&sup, 440.0),
        p(&sup, 1000.0),
        p(&agent_heard, 1570.0),
        p(&agent_heard, 2430.0),
        p(&agent_heard, 2870.0),
        p(&caller_heard, 1570.0),
        p(&caller_heard, 2430.0),
        p(&caller_heard, 2870.0),
    );
    // The supervisor hears both sides the whole time.
    assert!(p(&sup, 440.0) > 0.8 && p(&sup, 1000.0) > 0.8);
    // Listen: nobody hears the supervisor.
    assert_eq!(p(&agent_heard, 1570.0), 0.0);
    assert_eq!(p(&caller_heard, 1570.0), 0.0);
    // Whisper: the agent only.
    assert!(p(&agent_heard, 2430.0) > 0.1);
    assert_eq!(p(&caller_heard, 2430.0), 0.0);
    // Barge: both.
    assert!(p(&agent_heard, 2870.0) > 0.1);
    assert!(p(&caller_heard, 2870.0) > 0.1);
    // The call itself never dropped out for the caller.
    assert!(dominance(&caller_heard, 1000.0, 440.0) > 0.8);
    // No gap in either direction while monitoring started, switched mode three times and
    // stopped (a renegotiation or a re-routed stream would show as hundreds of ms). One
    // 20-40 ms window is tolerated for a timer slip on a loaded test machine.
    let agent_gap = longest_dropout_ms(&agent_heard, 440.0);
    let caller_gap = longest_dropout_ms(&caller_heard, 1000.0);
    eprintln!("longest dropout: agent {agent_gap} ms, caller {caller_gap} ms");
    assert!(
        agent_gap <= 40,
        "the agent lost the caller for {agent_gap} ms"
    );
    assert!(
        caller_gap <= 40,
        "the caller lost the agent for {caller_gap} ms"
    );

    let events = sb.store.monitor_events(&report.session_id).await.unwrap();
    let kinds: Vec<String> = events.iter().map(|e| format!("{:?}", e.kind)).collect();
    assert_eq!(
        kinds,
        ["Started", "ModeChanged", "ModeChanged", "Ended"],
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e.supervisor == "sri" && e.agent == "ana")
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_may_not_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana", "bayu"]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(sb.ws_url()).await.unwrap();
    let login = format!(
        r#"{{"type":"login","req":"l","protocol":1,"user":"bayu","password":"{PASSWORD}"}}"#
    );
    ws.send(Message::Text(login.into())).await.unwrap();
    ws.send(Message::Text(
        r#"{"type":"monitor","req":"m","agent":"ana","mode":"listen"}"#.into(),
    ))
    .await
    .unwrap();
    let answer = loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!("closed")
        };
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        if v["req"] == "m" {
            break v;
        }
    };
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["code"], "forbidden");
    sb.shutdown().await;
}

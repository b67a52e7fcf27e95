//! Hold through a real switchboard: while held the caller hears hold music (not silence, not
//! the agent) and the agent hears nothing; after resume they hear each other again; the hold
//! time and the number of holds are stored on the call.

mod common;

use std::time::Duration;

use sapa::config::SwitchboardConfig;
use sapa::peer::agent::{AgentOptions, AgentVoice, HoldPlan};
use sapa::peer::caller::CallerOptions;
use sapa::peer::{agent, caller};
use sapa::protocol::Resolution;

use common::*;

fn rms(s: &[f32]) -> f32 {
    (s.iter().map(|v| v * v).sum::<f32>() / s.len().max(1) as f32).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_caller_hears_music_then_the_agent_again() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let agent_rec = dir.path().join("agent.wav");
    let caller_rec = dir.path().join("caller.wav");
    let agent_task = tokio::spawn(agent::run(
        AgentOptions {
            switchboard: url.clone(),
            user: "ana".into(),
            password: PASSWORD.into(),
            voice: AgentVoice::Wav(tone_wav(dir.path(), "a.wav", 1209.0, 12.0)),
            record: Some(agent_rec.clone()),
            calls: 1,
            disposition: None,
            notes: String::new(),
            resolution: Resolution::Resolved,
            talk_secs: None,
            no_answer: false,
            hold: Some(HoldPlan {
                start_secs: 2.0,
                secs: 3.0,
            }),
            mute: None,
            send_digits: None,
            impair: None,
            frame: Default::default(),
            dtx: false,
        },
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = caller::run(CallerOptions {
        switchboard: url.clone(),
        from: "+15550444".into(),
        name: None,
        queue: None,
        play: tone_wav(dir.path(), "c.wav", 440.0, 8.0),
        record: caller_rec.clone(),
        talk_secs: None,
        max_wait_secs: 30.0,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    })
    .await
    .unwrap();
    let agent_reports = agent_task.await.unwrap().unwrap();
    // Hold stops the caller's stream to the agent: not loss, and nothing left to conceal
    // (a second of it would read as poor voice on the phone after every hold).
    let r = &agent_reports[0];
    assert_eq!(r.heard_lost_frames, 0, "{r:?}");
    assert!(r.heard_concealed_frames <= 3, "{r:?}");
    let heard = read(&caller_rec);
    let agent_heard = read(&agent_rec);
    let secs =
        |s: &[f32], a: f32, b: f32| s[(a * 48_000.0) as usize..(b * 48_000.0) as usize].to_vec();

    let before = secs(&heard, 0.5, 1.8);
    let during = secs(&heard, 2.5, 4.5);
    let after = secs(&heard, 5.5, 7.5);
    assert!(dominance(&before, 1209.0, 440.0) > 0.8, "agent before hold");
    assert!(dominance(&after, 1209.0, 440.0) > 0.8, "agent after resume");
    // While held: music, not silence, and not the agent's tone.
    assert!(
        rms(&during) > 0.01,
        "hold music is audible (rms {})",
        rms(&during)
    );
    assert!(
        dominance(&during, 1209.0, 440.0) < 0.1,
        "the agent is not heard while holding"
    );
    // The agent hears nothing while the caller is held.
    let agent_during = secs(&agent_heard, 2.7, 4.5);
    assert!(
        rms(&agent_during) < 0.005,
        "agent hears silence on hold (rms {})",
        rms(&agent_during)
    );
    assert!(dominance(&secs(&agent_heard, 5.7, 7.5), 440.0, 1209.0) > 0.8);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let call = sb.store.call(&report.call_id).await.unwrap().unwrap();
    let hold_ms = call.hold_ms;
    assert!(
        (2500..=3500).contains(&hold_ms),
        "hold time stored: {hold_ms} ms"
    );
    assert_eq!(call.hold_count, 1, "one hold counted");
    assert_eq!(call.mute_ms, 0, "never muted");
    // The history entry carries the hold too.
    let history = sb.store.caller_history("+15550444", 1).await.unwrap();
    assert_eq!((history[0].hold_ms, history[0].hold_count), (hold_ms, 1));
    sb.shutdown().await;
}

//! End to end through a real switchboard: real WebRTC (webrtc-rs peers, str0m bridge), real
//! Opus, real SQLite. Callers and agents are the same code as `sapa caller` / `sapa agent`.

mod common;

use std::time::Duration;

use sapa::audio::jitter::FrameDuration;
use sapa::config::SwitchboardConfig;
use sapa::peer::agent::{AgentOptions, AgentVoice};
use sapa::peer::caller::CallerOptions;
use sapa::peer::{agent, caller};

use common::*;

fn agent_options(url: &str, user: &str, voice: AgentVoice, calls: u32) -> AgentOptions {
    AgentOptions {
        voice,
        ..plain_agent(url, user, calls)
    }
}

fn caller_options(
    url: &str,
    from: &str,
    play: &std::path::Path,
    record: &std::path::Path,
) -> CallerOptions {
    CallerOptions {
        switchboard: url.to_owned(),
        from: from.to_owned(),
        name: Some("Budi Santoso".into()),
        queue: None,
        play: play.to_owned(),
        record: record.to_owned(),
        talk_secs: None,
        max_wait_secs: 30.0,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn voices_cross_the_switchboard_and_the_disposition_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let caller_tone = tone_wav(dir.path(), "caller.wav", 440.0, 4.0);
    let agent_tone = tone_wav(dir.path(), "agent.wav", 1000.0, 6.0);
    let agent_rec = dir.path().join("agent-heard.wav");
    let caller_rec = dir.path().join("caller-heard.wav");

    let mut opts = agent_options(&url, "ana", AgentVoice::Wav(agent_tone), 1);
    opts.record = Some(agent_rec.clone());
    opts.disposition = Some("billing".into());
    opts.notes = "Refund of the double charge".into();
    let agent_task = tokio::spawn(agent::run(opts, |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let report = caller::run(caller_options(&url, "+15550100", &caller_tone, &caller_rec))
        .await
        .expect("call completes");
    assert!(report.answered, "{report:?}");
    assert_eq!(report.agent.as_deref(), Some("ana"));
    let agent_reports = tokio::time::timeout(Duration::from_secs(20), agent_task)
        .await
        .expect("agent finishes")
        .unwrap()
        .expect("agent ok");
    assert_eq!(agent_reports.len(), 1);
    assert_eq!(agent_reports[0].disposition.as_deref(), Some("billing"));

    let caller_heard = read(&caller_rec);
    let agent_heard = read(&agent_rec);
    let c = dominance(&caller_heard, 1000.0, 440.0);
    let a = dominance(&agent_heard, 440.0, 1000.0);
    eprintln!(
        "caller heard 1000 Hz in {c:.2}, agent heard 440 Hz in {a:.2} of windows; {:?}",
        sb.media_stats().await
    );
    assert!(
        c > 0.7,
        "caller heard the agent's 1000 Hz in only {c:.2} of windows"
    );
    assert!(
        a > 0.7,
        "agent heard the caller's 440 Hz in only {a:.2} of windows"
    );

    let history = sb.store.caller_history("+15550100", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    let d = history[0].disposition.as_ref().expect("disposition stored");
    assert_eq!(d.code, "billing");
    assert_eq!(d.notes, "Refund of the double charge");
    assert_eq!(history[0].agent.as_deref(), Some("ana"));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn longest_idle_agent_gets_the_call_and_the_third_caller_waits() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana", "bayu"]).await;
    let url = sb.ws_url();
    let tone = tone_wav(dir.path(), "t.wav", 440.0, 1.0);

    // ana becomes available first, so she is the longest idle.
    let ana = tokio::spawn(agent::run(
        agent_options(&url, "ana", AgentVoice::Silence, 2),
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bayu = tokio::spawn(agent::run(
        agent_options(&url, "bayu", AgentVoice::Silence, 1),
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut first = caller_options(&url, "+15550001", &tone, &dir.path().join("1.wav"));
    first.talk_secs = Some(2.0);
    let mut second = caller_options(&url, "+15550002", &tone, &dir.path().join("2.wav"));
    second.talk_secs = Some(5.0);
    let mut third = caller_options(&url, "+15550003", &tone, &dir.path().join("3.wav"));
    third.talk_secs = Some(1.0);
    let c1 = tokio::spawn(caller::run(first));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c2 = tokio::spawn(caller::run(second));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c3 = tokio::spawn(caller::run(third));

    let r1 = c1.await.unwrap().unwrap();
    let r2 = c2.await.unwrap().unwrap();
    let r3 = c3.await.unwrap().unwrap();
    assert_eq!(
        r1.agent.as_deref(),
        Some("ana"),
        "first caller goes to the longest-idle agent"
    );
    assert_eq!(r2.agent.as_deref(), Some("bayu"));
    // The third waits until ana is free again (after her call and her disposition).
    assert_eq!(r3.agent.as_deref(), Some("ana"));
    assert!(
        r3.queued_ms >= 1500,
        "third caller waited only {} ms",
        r3.queued_ms
    );
    assert!(r1.queued_ms < 1500 && r2.queued_ms < 1500);
    ana.await.unwrap().unwrap();
    bayu.await.unwrap().unwrap();

    let calls = sb.store.call(&r3.call_id).await.unwrap().expect("stored");
    assert_eq!(calls.agent.as_deref(), Some("ana"));
    assert!(calls.wait_ms.unwrap_or(0) >= 1500);
    sb.shutdown().await;
}

/// An agent's connection lasts the shift: the second call must start as clean as the first
/// (the time between them, while the bridge's clock ran on, is neither loss nor something to
/// conceal).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_s_next_call_on_the_same_connection_hears_no_loss() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let tone = tone_wav(dir.path(), "t.wav", 440.0, 2.0);
    let agent_task = tokio::spawn(agent::run(plain_agent(&url, "ana", 2), |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for from in ["+15550001", "+15550002"] {
        let report = caller::run(plain_caller(&url, from, &tone, dir.path()))
            .await
            .expect("call completes");
        assert_eq!(report.agent.as_deref(), Some("ana"), "{report:?}");
        // Between the calls the agent wraps up and is available again for a second or more.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let reports = tokio::time::timeout(Duration::from_secs(20), agent_task)
        .await
        .expect("agent finishes")
        .unwrap()
        .expect("agent ok");
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r.heard_lost_frames, 0, "{r:?}");
        assert!(r.heard_concealed_frames <= 3, "{r:?}");
        // Measured, and small on loopback.
        assert!(r.heard_jitter_ms > 0.0 && r.heard_jitter_ms < 30.0, "{r:?}");
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ring_no_answer_and_abandon_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let config = SwitchboardConfig {
        ring_no_answer_secs: 1,
        ..SwitchboardConfig::default()
    };
    let sb = start_switchboard(dir.path(), config).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let tone = tone_wav(dir.path(), "t.wav", 440.0, 1.0);

    let mut lazy = agent_options(&url, "ana", AgentVoice::Silence, 1);
    lazy.no_answer = true;
    let ana = tokio::spawn(agent::run(lazy, |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut opts = caller_options(&url, "+15550009", &tone, &dir.path().join("r.wav"));
    opts.max_wait_secs = 3.0;
    let report = caller::run(opts).await.unwrap();
    assert!(!report.answered);
    let missed = ana.await.unwrap().unwrap();
    assert_eq!(missed[0].ended_by, "ring_no_answer");

    // Give the core a moment to commit the hang-up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let call = sb
        .store
        .call(&report.call_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(call.end_reason.as_deref(), Some("abandoned"));
    assert!(call.answered_at.is_none());
    let offers = sb.store.offers(&report.call_id).await.unwrap();
    assert!(
        offers
            .iter()
            .any(|o| o.outcome.as_deref() == Some("ring_no_answer") && o.agent == "ana"),
        "{offers:?}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_dtx_a_silent_caller_sends_almost_nothing_and_its_voice_still_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let play = speak_then_listen_wav(dir.path());
    let mut sent = Vec::new();
    for dtx in [false, true] {
        let heard = dir.path().join(format!("agent-heard-{dtx}.wav"));
        let mut options = agent_options(&url, "ana", AgentVoice::Silence, 1);
        options.record = Some(heard.clone());
        let agent_task = tokio::spawn(agent::run(options, |_| {}));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let report = caller::run_with(
            caller_options(&url, "+15550177", &play, &dir.path().join("c.wav")),
            caller::CallerExtras {
                dtx,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(report.answered);
        agent_task.await.unwrap().unwrap();
        // The voice got through either way.
        let heard = read(&heard);
        let share = dominance(&heard[..48_000.min(heard.len())], 1000.0, 440.0);
        assert!(
            share > 0.6,
            "dtx {dtx}: the agent heard the tone in {share:.2}"
        );
        sent.push(report.packets_sent);
    }
    eprintln!(
        "voice packets sent: {} without DTX, {} with",
        sent[0], sent[1]
    );
    // 4 s at 50 packets/s without; with DTX about the first second only (and a packet per
    // 400 ms of silence).
    assert!(sent[0] >= 180, "{sent:?}");
    assert!(sent[1] < sent[0] * 6 / 10, "{sent:?}");
    sb.shutdown().await;
}

/// One second of a 1000 Hz tone, then three of silence.
fn speak_then_listen_wav(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("speak-then-listen.wav");
    let samples: Vec<f32> = (0..48_000 * 4)
        .map(|i| {
            if i < 48_000 {
                0.5 * (std::f32::consts::TAU * 1000.0 * i as f32 / 48_000.0).sin()
            } else {
                0.0
            }
        })
        .collect();
    sapa::wav::write_mono_48k(&path, &samples).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_dtx_a_silent_agent_sends_almost_nothing_and_its_voice_still_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let play = speak_then_listen_wav(dir.path());
    // The caller says nothing for four seconds, which is how long the call lasts.
    let quiet = dir.path().join("quiet.wav");
    sapa::wav::write_mono_48k(&quiet, &vec![0.0; 48_000 * 4]).unwrap();
    let mut sent = Vec::new();
    for dtx in [false, true] {
        let mut options = agent_options(&url, "ana", AgentVoice::Wav(play.clone()), 1);
        options.dtx = dtx;
        let agent_task = tokio::spawn(agent::run(options, |_| {}));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let heard = dir.path().join(format!("caller-heard-{dtx}.wav"));
        let report = caller::run(caller_options(&url, "+15550178", &quiet, &heard))
            .await
            .unwrap();
        assert!(report.answered);
        let reports = agent_task.await.unwrap().unwrap();
        // The agent's second of voice got through either way.
        let secs = seconds_dominated(&read(&heard), 1000.0, 440.0);
        assert!(
            secs >= 0.7,
            "dtx {dtx}: the caller heard the tone for {secs:.1} s"
        );
        sent.push(reports[0].packets_sent);
    }
    eprintln!(
        "agent's voice packets: {} without DTX, {} with",
        sent[0], sent[1]
    );
    assert!(sent[0] >= 180, "{sent:?}");
    assert!(sent[1] < sent[0] * 6 / 10, "{sent:?}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_ms_frames_carry_voice_both_ways_with_twenty_ms_peers() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let caller_tone = tone_wav(dir.path(), "caller.wav", 440.0, 4.0);
    let agent_tone = tone_wav(dir.path(), "agent.wav", 1000.0, 6.0);
    let ms = |f: FrameDuration| f.ms();
    let mut sent = Vec::new();
    // The agent at 10 ms with a caller at 20 ms, then the other way round: the bridge
    // forwards each side's packets as they are and each receiver follows what it gets.
    for (agent_frame, caller_frame) in [
        (FrameDuration::Ms10, FrameDuration::Ms20),
        (FrameDuration::Ms20, FrameDuration::Ms10),
    ] {
        let tag = format!(
            "agent {} ms, caller {} ms",
            ms(agent_frame),
            ms(caller_frame)
        );
        let agent_rec = dir.path().join(format!("agent-{}.wav", ms(agent_frame)));
        let caller_rec = dir.path().join(format!("caller-{}.wav", ms(caller_frame)));
        let mut opts = agent_options(&url, "ana", AgentVoice::Wav(agent_tone.clone()), 1);
        opts.record = Some(agent_rec.clone());
        opts.frame = agent_frame;
        let agent_task = tokio::spawn(agent::run(opts, |_| {}));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut copts = caller_options(&url, "+15550110", &caller_tone, &caller_rec);
        copts.frame = caller_frame;
        let report = caller::run(copts).await.expect("call completes");
        assert!(report.answered, "{tag}: {report:?}");
        tokio::time::timeout(Duration::from_secs(20), agent_task)
            .await
            .expect("agent finishes")
            .unwrap()
            .expect("agent ok");
        let c = dominance(&read(&caller_rec), 1000.0, 440.0);
        let a = dominance(&read(&agent_rec), 440.0, 1000.0);
        eprintln!("{tag}: caller heard the agent in {c:.2}, agent heard the caller in {a:.2}");
        assert!(c > 0.7, "{tag}: caller heard the agent in only {c:.2}");
        assert!(a > 0.7, "{tag}: agent heard the caller in only {a:.2}");
        sent.push(report.packets_sent);
    }
    // Four seconds of voice: 50 packets a second at 20 ms, 100 at 10 ms.
    eprintln!("caller packets: {} at 20 ms, {} at 10 ms", sent[0], sent[1]);
    assert!((180..=230).contains(&sent[0]), "{sent:?}");
    assert!((360..=460).contains(&sent[1]), "{sent:?}");
    sb.shutdown().await;
}

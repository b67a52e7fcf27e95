//! The phone engine logged in as a supervisor, against a real switchboard and a real call
//! (an agent's phone engine and a headless caller): the pushed wallboard reaches the
//! supervisor's view with the agent on the call; Listen plays the caller and the agent on the
//! supervisor's headset while the supervisor's microphone reaches nobody (it is not even
//! sent); Whisper (a mode switch, no re-setup) brings it to the agent only; Stop ends it. With
//! `announce_monitoring` the agent's view shows the monitoring while it lasts. Then today's
//! report by agent, exported as a CSV file.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use sapa::config::SwitchboardConfig;
use sapa::peer::caller;
use sapa::phone::audio::{TestEndpoint, TestTap};
use sapa::phone::config::PhoneConfig;
use sapa::phone::engine::{self, AudioSetup, Credentials, EngineHandle, EngineOptions, Update};
use sapa::phone::state::PhoneState;
use sapa::store::Role;
use sapa_ui::{AgentState, Intent, MonitorMode, ReportGrouping};

const WAIT: Duration = Duration::from_secs(20);
/// The caller's, the agent's and the supervisor's voices: no one a harmonic of another.
const CALLER_HZ: f32 = 1000.0;
const AGENT_HZ: f32 = 1570.0;
const SUPERVISOR_HZ: f32 = 2430.0;

fn tone(freq_hz: f32, secs: f32) -> Vec<f32> {
    (0..(48_000.0 * secs) as usize)
        .map(|i| 0.4 * (2.0 * std::f32::consts::PI * freq_hz * i as f32 / 48_000.0).sin())
        .collect()
}

fn start_engine(
    url: &str,
    user: &str,
    dir: &Path,
    mic_hz: f32,
    go_available: bool,
) -> (EngineHandle, Arc<Mutex<TestTap>>) {
    let (endpoint, tap) = TestEndpoint::new(tone(mic_hz, 1.0));
    let handle = engine::spawn(
        EngineOptions {
            config: PhoneConfig::default(),
            config_path: None,
            remember_login: false,
            drafts_root: dir.join("drafts"),
            auto_login: Some(Credentials {
                url: url.to_owned(),
                user: user.into(),
                password: PASSWORD.into(),
            }),
            go_available,
            audio: AudioSetup::Custom(Box::new(move || Box::new(endpoint))),
            export_dir: Some(dir.join("exports")),
            notify_bus: sapa::phone::notify::NotifyBus::Off,
        },
        || {},
    )
    .expect("engine thread starts");
    (handle, tap)
}

/// Applies every update to `state` until one matches (blocking this worker; the switchboard
/// and the peers run on the others).
async fn wait_for(
    handle: &EngineHandle,
    state: &mut PhoneState,
    what: &str,
    want: impl Fn(&Update) -> bool,
) {
    tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Some(update) = handle.recv_timeout(left) else {
                panic!("no {what} within {WAIT:?}");
            };
            if let Update::LoginFailed(e) = &update {
                panic!("login failed while waiting for {what}: {e}");
            }
            let found = want(&update);
            state.apply(update, sapa::peer::now_ms() as u64);
            if found {
                return;
            }
        }
    })
}

/// Share of 100 ms windows of `samples` in which `freq` is clearly present.
fn presence(samples: &[f32], freq: f32) -> f64 {
    let windows: Vec<&[f32]> = samples.chunks_exact(4800).collect();
    let hits = windows.iter().filter(|w| goertzel(w, freq) > 1.0).count();
    hits as f64 / windows.len().max(1) as f64
}

/// The speaker's samples from `from` to now, less half a second at each end (the phones'
/// clocks and the mode switch need not line up to the frame).
fn heard_since(tap: &Arc<Mutex<TestTap>>, from: usize) -> Vec<f32> {
    let speaker = &tap.lock().unwrap().speaker;
    let (start, end) = (from + 24_000, speaker.len().saturating_sub(24_000));
    speaker[start.min(end)..end].to_vec()
}

/// Packets the switchboard's media bridge received per second over `window`.
async fn packets_per_second_over(running: &sapa::switchboard::Running, window: Duration) -> f64 {
    let before = running.media_stats().await.expect("media stats").packets_in;
    let t0 = std::time::Instant::now();
    tokio::time::sleep(window).await;
    let after = running.media_stats().await.expect("media stats").packets_in;
    (after - before) as f64 / t0.elapsed().as_secs_f64()
}

fn speaker_len(tap: &Arc<Mutex<TestTap>>) -> usize {
    tap.lock().unwrap().speaker.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supervisor_phone_sees_the_wallboard_monitors_a_call_and_exports_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let config = SwitchboardConfig {
        announce_monitoring: true,
        ..SwitchboardConfig::default()
    };
    let running = start_switchboard(dir.path(), config).await;
    add_agents(&running, &["ana"]).await;
    running
        .store
        .add_user("sri", Role::Supervisor, PASSWORD)
        .await
        .unwrap();
    let url = running.ws_url();
    let (ana, ana_tap) = start_engine(&url, "ana", &dir.path().join("ana"), AGENT_HZ, true);
    let (sri, sri_tap) = start_engine(&url, "sri", &dir.path().join("sri"), SUPERVISOR_HZ, false);
    let mut ana_view = PhoneState::new();
    let mut sri_view = PhoneState::new();
    wait_for(&ana, &mut ana_view, "ana available", |u| {
        matches!(u, Update::AgentState { state, .. } if *state == sapa::protocol::AgentStateName::Available)
    })
    .await;

    let caller_record = dir.path().join("caller.wav");
    let caller_task = tokio::spawn(caller::run(caller::CallerOptions {
        switchboard: url.clone(),
        from: "+15550100".into(),
        name: None,
        queue: None,
        play: tone_wav(dir.path(), "caller.wav", CALLER_HZ, 20.0),
        record: caller_record.clone(),
        talk_secs: Some(12.0),
        max_wait_secs: 30.0,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    }));
    wait_for(&ana, &mut ana_view, "the offer", |u| {
        matches!(u, Update::Offered { .. })
    })
    .await;
    ana.send(Intent::Answer);
    wait_for(&ana, &mut ana_view, "connected", |u| {
        matches!(u, Update::Connected { .. })
    })
    .await;

    // The pushed wallboard shows ana on the call, in the supervisor's view.
    wait_for(&sri, &mut sri_view, "ana on a call on the wallboard", |u| {
        matches!(u, Update::Wallboard(board) if board.agents.iter().any(|a| {
            a.agent_id == "ana" && a.state == AgentState::OnCall && a.call.is_some()
        }))
    })
    .await;
    assert!(sri_view.view.is_supervisor());
    let board = sri_view.view.wallboard.as_ref().expect("a wallboard");
    let row = board.agents.iter().find(|a| a.agent_id == "ana").unwrap();
    assert_eq!(row.call.as_ref().unwrap().caller, "+15550100");
    assert!(board.queues.iter().any(|q| q.name == "support"));
    assert!(
        !ana_view.view.is_supervisor(),
        "the agent has no supervisor tabs"
    );

    // Listen.
    sri.send(Intent::Monitor {
        agent: "ana".into(),
        mode: MonitorMode::Listen,
    });
    wait_for(
        &sri,
        &mut sri_view,
        "listening",
        |u| matches!(u, Update::Monitoring(Some(s)) if s.mode == MonitorMode::Listen),
    )
    .await;
    let (sri_listen_at, ana_listen_at) = (speaker_len(&sri_tap), speaker_len(&ana_tap));
    wait_for(&ana, &mut ana_view, "the monitored badge", |u| {
        matches!(u, Update::Monitored(true))
    })
    .await;
    assert!(ana_view.view.agent.as_ref().unwrap().monitored);
    let listen_pps = packets_per_second_over(&running, Duration::from_secs(3)).await;
    let sri_listened = heard_since(&sri_tap, sri_listen_at);
    let ana_during_listen = heard_since(&ana_tap, ana_listen_at);

    // Whisper: the same session, another mode.
    sri.send(Intent::Monitor {
        agent: "ana".into(),
        mode: MonitorMode::Whisper,
    });
    wait_for(
        &sri,
        &mut sri_view,
        "whispering",
        |u| matches!(u, Update::Monitoring(Some(s)) if s.mode == MonitorMode::Whisper),
    )
    .await;
    let ana_whisper_at = speaker_len(&ana_tap);
    let whisper_pps = packets_per_second_over(&running, Duration::from_secs(3)).await;
    let ana_during_whisper = heard_since(&ana_tap, ana_whisper_at);
    let board = sri_view.view.wallboard.as_ref().unwrap();
    assert_eq!(
        board
            .monitoring
            .as_ref()
            .map(|s| (s.agent_id.as_str(), s.mode)),
        Some(("ana", MonitorMode::Whisper))
    );

    sri.send(Intent::StopMonitor);
    wait_for(&sri, &mut sri_view, "monitoring over", |u| {
        matches!(u, Update::Monitoring(None))
    })
    .await;
    assert_eq!(sri_view.view.wallboard.as_ref().unwrap().monitoring, None);
    wait_for(&ana, &mut ana_view, "the badge gone", |u| {
        matches!(u, Update::Monitored(false))
    })
    .await;
    assert!(!ana_view.view.agent.as_ref().unwrap().monitored);

    let report = caller_task.await.unwrap().expect("the caller ran");
    assert!(report.answered);
    let caller_heard = read(&caller_record);

    let p = presence;
    eprintln!(
        "supervisor heard: caller {:.2} agent {:.2} self {:.2}; agent in listen: supervisor {:.2}; \
         agent in whisper: supervisor {:.2} caller {:.2}; caller: supervisor {:.2}",
        p(&sri_listened, CALLER_HZ),
        p(&sri_listened, AGENT_HZ),
        p(&sri_listened, SUPERVISOR_HZ),
        p(&ana_during_listen, SUPERVISOR_HZ),
        p(&ana_during_whisper, SUPERVISOR_HZ),
        p(&ana_during_whisper, CALLER_HZ),
        p(&caller_heard, SUPERVISOR_HZ),
    );
    // The bridge receives the caller's and the agent's voices (50 packets/s each, plus the
    // peers' RTCP) while the supervisor listens; the supervisor's microphone adds its own 50
    // packets/s only once it whispers. Sent in listen too, the two rates would be equal.
    eprintln!("packets in per second: listen {listen_pps:.0}, whisper {whisper_pps:.0}");
    assert!(
        whisper_pps > listen_pps + 35.0,
        "the supervisor's voice starts with whisper: listen {listen_pps:.0}/s, whisper {whisper_pps:.0}/s"
    );
    // Listening, the supervisor's headset plays both sides of the call.
    assert!(
        p(&sri_listened, CALLER_HZ) > 0.8,
        "the caller on the headset"
    );
    assert!(p(&sri_listened, AGENT_HZ) > 0.8, "the agent on the headset");
    // ...and the supervisor's microphone reaches nobody.
    assert!(p(&ana_during_listen, SUPERVISOR_HZ) < 0.05);
    // Whispering, the agent hears the supervisor over the caller; the caller never does.
    assert!(p(&ana_during_whisper, SUPERVISOR_HZ) > 0.8);
    assert!(p(&ana_during_whisper, CALLER_HZ) > 0.8);
    assert!(p(&caller_heard, SUPERVISOR_HZ) < 0.02);

    // Today's report by agent has ana's call, and Export CSV saves it as a file.
    let today = sapa::phone::clock::local_date(sapa::peer::now_ms());
    sri.send(Intent::RunReport {
        from: today,
        to: today,
        by: ReportGrouping::Agent,
    });
    wait_for(&sri, &mut sri_view, "the report", |u| {
        matches!(u, Update::Report(_))
    })
    .await;
    let table = sri_view.view.reports.table.clone().expect("a table");
    assert_eq!(table.columns[0], "Agent");
    let row = table
        .rows
        .iter()
        .find(|r| r[0] == "ana")
        .expect("ana's row");
    assert_eq!(row[2], "1", "answered: {row:?}");
    sri.send(Intent::ExportReportCsv);
    wait_for(
        &sri,
        &mut sri_view,
        "the saved notice",
        |u| matches!(u, Update::Notice { text, .. } if text.starts_with("Report saved as")),
    )
    .await;
    let csv_path = dir
        .path()
        .join("sri")
        .join("exports")
        .join(format!("sapa-report-{today}-to-{today}-by-agent.csv"));
    let csv = std::fs::read_to_string(&csv_path).expect("the CSV file");
    assert!(csv.starts_with("key,offered,answered"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("ana,")), "{csv}");

    sri.shutdown();
    ana.shutdown();
    running.shutdown().await;
}

//! Transfers and escalation through a real switchboard, with real WebRTC and Opus: each party
//! plays its own tone (caller 440 Hz, ana 1870 Hz, bayu 2430 Hz, the supervisor sri 2870 Hz;
//! none of them is a note of the hold music, which has G6 = 1568 Hz in it)
//! and records what it hears, and Goertzel filters tell who heard whom when. Also checks that
//! every leg lands in the call record and in `sapa history`.

mod common;

use std::path::Path;
use std::time::Duration;

use sapa::config::SwitchboardConfig;
use sapa::peer::agent::{
    AgentCallReport, AgentOptions, AgentVoice, CallControl, CallControlAction, CallControlPlan,
};
use sapa::peer::caller::{CallerOptions, CallerReport};
use sapa::peer::{agent, caller};
use sapa::store::{Direction, NewCall, Role};

use common::*;

const CALLER_HZ: f32 = 440.0;
const ANA_HZ: f32 = 1870.0;
const BAYU_HZ: f32 = 2430.0;
const SRI_HZ: f32 = 2870.0;

fn agent_options(url: &str, user: &str, dir: &Path, hz: f32) -> AgentOptions {
    AgentOptions {
        voice: AgentVoice::Wav(tone_wav(dir, &format!("{user}.wav"), hz, 30.0)),
        record: Some(dir.join(format!("{user}-heard.wav"))),
        ..AgentOptions::silent(url, user, PASSWORD, 1)
    }
}

fn plan(action: CallControlAction) -> CallControl {
    CallControl {
        plan: Some(CallControlPlan {
            after_secs: 2.0,
            action,
        }),
        ..Default::default()
    }
}

fn caller_options(url: &str, dir: &Path, from: &str, secs: f32) -> CallerOptions {
    CallerOptions {
        switchboard: url.to_owned(),
        from: from.into(),
        name: Some("Budi".into()),
        queue: None,
        play: tone_wav(dir, "caller.wav", CALLER_HZ, secs),
        record: dir.join("caller-heard.wav"),
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

/// Share of 100 ms windows of `[from_s, to_s)` in which `freq` is clearly present.
fn heard(samples: &[f32], from_s: f32, to_s: f32, freq: f32) -> f64 {
    let a = ((from_s * 48_000.0) as usize).min(samples.len());
    let b = ((to_s * 48_000.0) as usize).min(samples.len());
    let windows: Vec<&[f32]> = samples[a..b].chunks_exact(4800).collect();
    let hits = windows.iter().filter(|w| goertzel(w, freq) > 1.0).count();
    hits as f64 / windows.len().max(1) as f64
}

/// One character per 100 ms window: which of the tones are present (for failure output).
fn timeline(samples: &[f32], tones: &[(char, f32)]) -> String {
    samples
        .chunks_exact(4800)
        .map(|w| {
            tones
                .iter()
                .find(|(_, f)| goertzel(w, *f) > 1.0)
                .map_or('.', |(c, _)| *c)
        })
        .collect()
}

fn rms(samples: &[f32], from_s: f32, to_s: f32) -> f32 {
    let a = ((from_s * 48_000.0) as usize).min(samples.len());
    let b = ((to_s * 48_000.0) as usize).min(samples.len());
    let s = &samples[a..b];
    (s.iter().map(|v| v * v).sum::<f32>() / s.len().max(1) as f32).sqrt()
}

/// Runs `agents` (name, voice Hz, call control) and one caller to the end.
async fn run_call(
    url: &str,
    dir: &Path,
    agents: Vec<(&str, f32, CallControl)>,
    caller_secs: f32,
) -> (CallerReport, Vec<(String, Vec<AgentCallReport>)>) {
    let mut tasks = Vec::new();
    for (name, hz, control) in agents {
        let options = agent_options(url, name, dir, hz);
        let name = name.to_owned();
        tasks.push((
            name,
            tokio::spawn(agent::run_with(options, control, |_| {})),
        ));
        // The first agent is the longest idle and takes the call.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let report = caller::run(caller_options(url, dir, "+15550600", caller_secs))
        .await
        .expect("the call runs");
    let mut reports = Vec::new();
    for (name, task) in tasks {
        let r = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .unwrap_or_else(|_| panic!("{name} finishes"))
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        reports.push((name, r));
    }
    (report, reports)
}

fn legs(legs: &[sapa::store::Leg]) -> Vec<(String, String, String, bool)> {
    legs.iter()
        .map(|l| {
            (
                l.party.clone(),
                l.role.clone(),
                l.why.clone(),
                l.ended_at.is_some(),
            )
        })
        .collect()
}

fn leg(party: &str, role: &str, why: &str) -> (String, String, String, bool) {
    (party.into(), role.into(), why.into(), true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn warm_transfer_complete_hands_the_caller_to_the_colleague() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana", "bayu"]).await;
    let url = sb.ws_url();
    let ana = plan(CallControlAction::Consult {
        agent: "bayu".into(),
        complete: true,
        consult_secs: 2.0,
    });
    let (report, agents) = run_call(
        &url,
        dir.path(),
        vec![
            ("ana", ANA_HZ, ana),
            ("bayu", BAYU_HZ, CallControl::default()),
        ],
        10.0,
    )
    .await;
    assert_eq!(report.agents, ["ana", "bayu"], "{report:?}");
    let (ana_r, bayu_r) = (&agents[0].1[0], &agents[1].1[0]);
    assert_eq!(ana_r.ended_by, "transferred");
    assert!(ana_r.disposition.is_some(), "ana wrapped up her leg");
    assert_eq!(bayu_r.call_id, report.call_id);
    assert_eq!(bayu_r.peers, ["ana", "+15550600"]);
    assert_eq!(bayu_r.ended_by, "caller_hung_up");

    let c = read(&dir.path().join("caller-heard.wav"));
    eprintln!("{}", timeline(&c, &[('a', ANA_HZ), ('b', BAYU_HZ)]));
    let p = |a, b, f| heard(&c, a, b, f);
    eprintln!(
        "caller: ana {:.2}/{:.2}/{:.2} bayu {:.2}/{:.2}/{:.2} rms during consult {:.3}",
        p(0.3, 1.8, ANA_HZ),
        p(2.5, 3.8, ANA_HZ),
        p(5.0, 9.5, ANA_HZ),
        p(0.3, 1.8, BAYU_HZ),
        p(2.5, 3.8, BAYU_HZ),
        p(5.0, 9.5, BAYU_HZ),
        rms(&c, 2.5, 3.8)
    );
    assert!(p(0.3, 1.8, ANA_HZ) > 0.8, "the caller hears ana first");
    // During the consult: hold music, neither agent.
    assert!(p(2.5, 3.8, ANA_HZ) < 0.2 && p(2.5, 3.8, BAYU_HZ) < 0.2);
    assert!(rms(&c, 2.5, 3.8) > 0.01, "hold music, not silence");
    // After the transfer: bayu, and no more ana.
    assert!(
        p(5.0, 9.5, BAYU_HZ) > 0.8,
        "the caller hears bayu after completion"
    );
    assert!(p(5.0, 9.5, ANA_HZ) < 0.1);
    // bayu heard ana in the consult, then the caller.
    let b = read(&dir.path().join("bayu-heard.wav"));
    assert!(
        heard(&b, 0.3, 1.5, ANA_HZ) > 0.7,
        "bayu hears ana in the consult"
    );
    assert!(heard(&b, 0.3, 1.5, CALLER_HZ) < 0.2, "but not the caller");
    assert!(heard(&b, 3.0, 5.0, CALLER_HZ) > 0.8, "then the caller");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = sb.store.legs(&report.call_id).await.unwrap();
    assert_eq!(
        legs(&stored),
        vec![
            leg("+15550600", "caller", "dialed"),
            leg("ana", "agent", "answered"),
            leg("bayu", "consult", "consult"),
            leg("bayu", "agent", "warm_transfer"),
        ],
        "{stored:?}"
    );
    let call = sb.store.call(&report.call_id).await.unwrap().unwrap();
    assert!(call.hold_ms >= 1500, "the consult counts as hold: {call:?}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn warm_transfer_cancel_brings_the_agent_back() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana", "bayu"]).await;
    let url = sb.ws_url();
    let ana = plan(CallControlAction::Consult {
        agent: "bayu".into(),
        complete: false,
        consult_secs: 2.0,
    });
    let (report, agents) = run_call(
        &url,
        dir.path(),
        vec![
            ("ana", ANA_HZ, ana),
            ("bayu", BAYU_HZ, CallControl::default()),
        ],
        10.0,
    )
    .await;
    assert_eq!(report.agents, ["ana"]);
    let (ana_r, bayu_r) = (&agents[0].1[0], &agents[1].1[0]);
    assert_eq!(ana_r.ended_by, "caller_hung_up");
    assert_eq!(bayu_r.ended_by, "consult_ended");
    assert_eq!(
        bayu_r.disposition, None,
        "a consulted colleague has no wrap-up"
    );
    assert_eq!(
        bayu_r.context.as_ref().map(|c| c.kind.as_str()),
        Some("consult")
    );

    let c = read(&dir.path().join("caller-heard.wav"));
    assert!(heard(&c, 0.3, 1.8, ANA_HZ) > 0.8);
    assert!(heard(&c, 2.5, 3.8, ANA_HZ) < 0.2 && heard(&c, 2.5, 3.8, BAYU_HZ) < 0.2);
    assert!(rms(&c, 2.5, 3.8) > 0.01, "hold music during the consult");
    assert!(heard(&c, 5.0, 9.5, ANA_HZ) > 0.8, "ana is back");
    assert!(
        heard(&c, 0.0, 9.5, BAYU_HZ) < 0.05,
        "the caller never hears bayu"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = sb.store.legs(&report.call_id).await.unwrap();
    assert_eq!(
        legs(&stored),
        vec![
            leg("+15550600", "caller", "dialed"),
            leg("ana", "agent", "answered"),
            leg("bayu", "consult", "consult"),
        ]
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blind_transfer_to_a_queue_carries_history_and_notes() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana", "bayu"]).await;
    // An earlier call of the same customer, for the screen-pop.
    sb.store
        .call_arrived(&NewCall {
            id: "c-earlier".into(),
            direction: Direction::Inbound,
            queue: "support".into(),
            caller_number: "+15550600".into(),
            caller_name: Some("Budi".into()),
            arrived_at: 1_700_000_000_000,
        })
        .await
        .unwrap();
    let url = sb.ws_url();
    let mut ana = agent_options(&url, "ana", dir.path(), ANA_HZ);
    ana.notes = "VIP: refund promised".into();
    let ana_task = tokio::spawn(agent::run_with(
        ana,
        plan(CallControlAction::TransferToQueue("billing".into())),
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let bayu_task = tokio::spawn(agent::run(
        agent_options(&url, "bayu", dir.path(), BAYU_HZ),
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let report = caller::run(caller_options(&url, dir.path(), "+15550600", 8.0))
        .await
        .unwrap();
    let ana_r = ana_task.await.unwrap().unwrap().remove(0);
    let bayu_r = bayu_task.await.unwrap().unwrap().remove(0);
    assert_eq!(report.agents, ["ana", "bayu"]);
    assert_eq!(ana_r.ended_by, "transferred");
    assert!(ana_r.disposition.is_some());
    assert_eq!(bayu_r.call_id, report.call_id);
    assert_eq!(bayu_r.queue, "billing");
    let context = bayu_r.context.clone().expect("the offer says why");
    assert_eq!(context.kind, "blind_transfer");
    assert_eq!(context.from.as_deref(), Some("ana"));
    assert_eq!(context.notes.as_deref(), Some("VIP: refund promised"));
    assert!(
        bayu_r.history.iter().any(|h| h.call_id == "c-earlier"),
        "the screen-pop has the caller's history"
    );

    let c = read(&dir.path().join("caller-heard.wav"));
    assert!(heard(&c, 0.3, 1.8, ANA_HZ) > 0.8);
    assert!(
        heard(&c, 3.5, 7.5, BAYU_HZ) > 0.8,
        "bayu after the transfer"
    );
    assert!(heard(&c, 3.5, 7.5, ANA_HZ) < 0.1);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = sb.store.legs(&report.call_id).await.unwrap();
    assert_eq!(
        legs(&stored),
        vec![
            leg("+15550600", "caller", "dialed"),
            leg("ana", "agent", "answered"),
            leg("bayu", "agent", "blind_transfer"),
        ]
    );
    assert_eq!(stored[2].notes.as_deref(), Some("VIP: refund promised"));

    // `sapa history` shows the legs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sapa"))
        .args([
            "history",
            "--switchboard",
            &url,
            "--user",
            "ana",
            "--password",
            PASSWORD,
            "--number",
            "+15550600",
        ])
        .output()
        .expect("sapa history runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let call = json["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call_id"] == report.call_id.as_str())
        .expect("the call is in the history")
        .clone();
    let whys: Vec<&str> = call["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["why"].as_str().unwrap())
        .collect();
    assert_eq!(whys, ["dialed", "answered", "blind_transfer"]);
    assert_eq!(call["legs"][2]["party"], "bayu");
    assert!(call["legs"][1]["ended_at_ms"].as_i64().is_some());
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn escalation_is_a_conference_and_the_supervisor_keeps_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    sb.store
        .add_user("sri", Role::Supervisor, PASSWORD)
        .await
        .unwrap();
    let url = sb.ws_url();
    let ana = plan(CallControlAction::Escalate {
        supervisor: "sri".into(),
        leave_after_secs: 2.5,
    });
    let sri = CallControl {
        stay_not_ready: true,
        ..Default::default()
    };
    let (report, agents) = run_call(
        &url,
        dir.path(),
        vec![("ana", ANA_HZ, ana), ("sri", SRI_HZ, sri)],
        11.0,
    )
    .await;
    assert_eq!(report.agents, ["ana", "sri"]);
    let (ana_r, sri_r) = (&agents[0].1[0], &agents[1].1[0]);
    assert_eq!(ana_r.ended_by, "escalated");
    assert_eq!(
        sri_r.ended_by, "caller_hung_up",
        "the supervisor kept the call"
    );
    assert_eq!(
        sri_r.context.as_ref().map(|c| c.kind.as_str()),
        Some("escalation")
    );

    let c = read(&dir.path().join("caller-heard.wav"));
    let p = |a, b, f| heard(&c, a, b, f);
    eprintln!(
        "caller: ana {:.2}/{:.2}/{:.2} sri {:.2}/{:.2}/{:.2}",
        p(0.3, 1.8, ANA_HZ),
        p(2.5, 4.0, ANA_HZ),
        p(6.0, 10.5, ANA_HZ),
        p(0.3, 1.8, SRI_HZ),
        p(2.5, 4.0, SRI_HZ),
        p(6.0, 10.5, SRI_HZ),
    );
    assert!(p(0.3, 1.8, ANA_HZ) > 0.8 && p(0.3, 1.8, SRI_HZ) < 0.1);
    // The conference: the caller hears both.
    assert!(p(2.5, 4.0, ANA_HZ) > 0.7, "ana in the conference");
    assert!(p(2.5, 4.0, SRI_HZ) > 0.7, "sri in the conference");
    // ana left; sri stays.
    assert!(p(6.0, 10.5, SRI_HZ) > 0.8, "the supervisor keeps the call");
    assert!(p(6.0, 10.5, ANA_HZ) < 0.1, "the agent is gone");
    // sri heard the caller and ana during the conference (her recording starts at joining).
    let s = read(&dir.path().join("sri-heard.wav"));
    assert!(heard(&s, 0.3, 2.0, CALLER_HZ) > 0.8 && heard(&s, 0.3, 2.0, ANA_HZ) > 0.7);
    assert!(heard(&s, 4.0, 7.0, CALLER_HZ) > 0.8 && heard(&s, 4.0, 7.0, ANA_HZ) < 0.1);
    // ana heard sri too.
    let a = read(&dir.path().join("ana-heard.wav"));
    assert!(
        heard(&a, 2.5, 4.0, SRI_HZ) > 0.7,
        "ana hears the supervisor"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = sb.store.legs(&report.call_id).await.unwrap();
    assert_eq!(
        legs(&stored),
        vec![
            leg("+15550600", "caller", "dialed"),
            leg("ana", "agent", "answered"),
            leg("sri", "supervisor", "escalation"),
        ]
    );
    // ana's leg ended when she left, before sri's.
    assert!(stored[1].ended_at < stored[2].ended_at);
    sb.shutdown().await;
}

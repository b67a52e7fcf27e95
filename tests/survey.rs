//! The post-call survey through a real switchboard: when the agent hangs up first, the caller
//! stays on the line, hears the prompt and presses a key (an RFC 4733 telephone event). A key
//! 1-5 is stored as the call's CSAT and shows in `sapa history`; an invalid key or none stores
//! nothing and the caller is released after the timeout. The agent's mute time is stored too.

mod common;

use std::time::{Duration, Instant};

use sapa::config::SwitchboardConfig;
use sapa::peer::agent::HoldPlan;
use sapa::peer::{agent, caller};

use common::*;

/// Support asks for a rating; a caller has two seconds after the prompt to give one.
fn config() -> SwitchboardConfig {
    let text = sapa::config::DEFAULT_CONFIG
        .replacen("survey = false", "survey = true", 1)
        .replace("survey_timeout_secs = 8", "survey_timeout_secs = 2");
    let config = SwitchboardConfig::parse(&text).expect("test config parses");
    assert!(config.queues[0].survey && !config.queues[1].survey);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_score_is_stored_and_shown_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), config()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let mut ana = plain_agent(&url, "ana", 1);
    ana.talk_secs = Some(3.0);
    ana.mute = Some(HoldPlan {
        start_secs: 1.0,
        secs: 1.0,
    });
    let ana = tokio::spawn(agent::run(ana, |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let play = tone_wav(dir.path(), "c.wav", 440.0, 8.0);
    let mut options = plain_caller(&url, "+15550888", &play, dir.path());
    options.survey = Some('4');
    let report = caller::run(options).await.unwrap();
    ana.await.unwrap().unwrap();
    assert!(
        report.survey_asked && report.survey_key == Some('4'),
        "{report:?}"
    );
    assert_eq!(report.ended_by, "agent_hung_up");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let call = sb.store.call(&report.call_id).await.unwrap().unwrap();
    assert_eq!(
        (call.csat, call.survey.as_deref()),
        (Some(4), Some("answered"))
    );
    assert_eq!(call.end_reason.as_deref(), Some("agent_hung_up"));
    assert!(
        (700..=1_400).contains(&call.mute_ms),
        "mute time stored: {} ms",
        call.mute_ms
    );
    // The talk time ends when the agent hung up, not when the survey did.
    assert!(call.talk_ms.is_some_and(|t| t < 4_000), "{call:?}");

    // `sapa history` shows the score.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sapa"))
        .args([
            "history",
            "--switchboard",
            &url,
            "--user",
            "ana",
            "--number",
            "+15550888",
        ])
        .env("SAPA_PASSWORD", PASSWORD)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = &json["calls"][0];
    assert_eq!(entry["call_id"], report.call_id.as_str());
    assert_eq!(entry["csat"], 4);
    assert!(
        entry["mute_ms"].as_i64().is_some_and(|m| m >= 700),
        "{entry}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_key_or_none_stores_nothing_and_releases_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), config()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let mut ana = plain_agent(&url, "ana", 2);
    ana.talk_secs = Some(1.5);
    let ana = tokio::spawn(agent::run(ana, |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let play = tone_wav(dir.path(), "c.wav", 440.0, 8.0);

    for (from, key, outcome) in [
        ("+15550901", Some('9'), "invalid"),
        ("+15550902", None, "no_answer"),
    ] {
        let mut options = plain_caller(&url, from, &play, dir.path());
        options.survey = key;
        let started = Instant::now();
        let report = caller::run(options).await.unwrap();
        let took = started.elapsed();
        assert!(report.survey_asked, "{report:?}");
        assert_eq!(report.ended_by, "agent_hung_up");
        // Released after the prompt (4 s) and the timeout (2 s), not before, not much after.
        let talk = Duration::from_millis(report.talk_ms);
        assert!(
            took >= talk + Duration::from_millis(5_500) && took < talk + Duration::from_secs(10),
            "released after {took:?} (talk {talk:?})"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let call = sb.store.call(&report.call_id).await.unwrap().unwrap();
        assert_eq!(
            (call.csat, call.survey.as_deref()),
            (None, Some(outcome)),
            "{from}"
        );
    }
    ana.await.unwrap().unwrap();
    sb.shutdown().await;
}

//! Queue-entry menu and DTMF through a real switchboard (real WebRTC, real Opus, real SQLite):
//! a caller who presses 2 (as RFC 4733 telephone events, or as in-band tones) reaches the agent
//! of the second queue; one who presses nothing reaches the default queue after the timeout;
//! an agent's keys reach the caller as telephone events.

mod common;

use std::time::Duration;

use sapa::config::SwitchboardConfig;
use sapa::peer::{agent, caller};

use common::*;

/// Two queues with one agent each (ana: support, bayu: billing) and a menu on a number:
/// 1 -> support, 2 -> billing, silence -> support after one second.
fn config() -> SwitchboardConfig {
    let text = sapa::config::DEFAULT_CONFIG
        .replace(
            "name = \"support\"\nservice_level_secs = 20\nsurvey = false",
            "name = \"support\"\nservice_level_secs = 20\nagents = [\"ana\"]",
        )
        .replace(
            "name = \"billing\"\nservice_level_secs = 20\nsurvey = false",
            "name = \"billing\"\nservice_level_secs = 20\nagents = [\"bayu\"]",
        )
        .replace(
            "options = { \"1\" = \"billing\", \"2\" = \"support\" }",
            "options = { \"1\" = \"support\", \"2\" = \"billing\" }",
        )
        .replace("timeout_secs = 5", "timeout_secs = 1");
    let config = SwitchboardConfig::parse(&text).expect("test config parses");
    assert_eq!(config.queues[1].agents, ["bayu"]);
    config
}

const MENU_NUMBER: &str = "+18005550100";

/// Runs one call into the menu with two agents on shift; returns the caller's report and
/// the call as stored.
async fn call_menu(
    digits: Option<&str>,
    inband: bool,
    agent_keys: Option<&str>,
) -> (caller::CallerReport, sapa::store::CallRecord) {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), config()).await;
    add_agents(&sb, &["ana", "bayu"]).await;
    let url = sb.ws_url();
    let mut ana = plain_agent(&url, "ana", 1);
    let mut bayu = plain_agent(&url, "bayu", 1);
    ana.send_digits = agent_keys.map(str::to_owned);
    bayu.send_digits = agent_keys.map(str::to_owned);
    let ana = tokio::spawn(agent::run(ana, |_| {}));
    let bayu = tokio::spawn(agent::run(bayu, |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let play = tone_wav(dir.path(), "c.wav", 440.0, 3.0);
    let mut options = plain_caller(&url, "+15550777", &play, dir.path());
    options.to = Some(MENU_NUMBER.into());
    options.dial_digits = digits.map(str::to_owned);
    options.inband_dtmf = inband;
    let report = caller::run(options).await.expect("the call runs");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let call = sb
        .store
        .call(&report.call_id)
        .await
        .unwrap()
        .expect("stored");
    // The agent who did not get the call is still waiting for one.
    ana.abort();
    bayu.abort();
    sb.shutdown().await;
    (report, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_two_lands_with_the_agent_of_the_second_queue() {
    let (report, call) = call_menu(Some("2"), false, None).await;
    assert_eq!(report.menu.as_deref(), Some("main"));
    assert!(report.answered, "{report:?}");
    assert_eq!(report.agent.as_deref(), Some("bayu"));
    assert_eq!(report.queue.as_deref(), Some("billing"));
    // Chosen during the 5.3 s prompt, not after the timeout.
    assert!(report.queued_ms < 5_000, "waited {} ms", report.queued_ms);
    assert_eq!(
        (
            call.queue.as_str(),
            call.menu.as_deref(),
            call.menu_choice.as_deref()
        ),
        ("billing", Some("main"), Some("2"))
    );
    assert_eq!(call.agent.as_deref(), Some("bayu"));
    assert!(
        call.first_response_ms.is_some_and(|ms| ms < 3_000),
        "{call:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_key_lands_in_the_default_queue_after_the_timeout() {
    let (report, call) = call_menu(None, false, None).await;
    assert_eq!(report.agent.as_deref(), Some("ana"), "{report:?}");
    // The prompt (5.3 s) plays, then the timeout (1 s) runs out.
    assert!(
        report.queued_ms >= 6_000,
        "waited only {} ms",
        report.queued_ms
    );
    assert_eq!(
        (call.queue.as_str(), call.menu_choice.as_deref()),
        ("support", Some("timeout"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_band_tones_work_too() {
    let (report, call) = call_menu(Some("2"), true, None).await;
    assert_eq!(report.agent.as_deref(), Some("bayu"), "{report:?}");
    assert_eq!(call.menu_choice.as_deref(), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agents_keys_reach_the_caller() {
    let (report, _) = call_menu(Some("1"), false, Some("5#9")).await;
    assert_eq!(report.agent.as_deref(), Some("ana"), "{report:?}");
    assert_eq!(report.digits_heard, "5#9");
}

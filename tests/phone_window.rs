//! The real `sapa phone` window under X (Xvfb in CI) against a real switchboard: it logs in
//! from the command line, goes available with F6 and answers with F9 pressed through the X
//! server (xdotool), and the call flows: the caller is answered by the phone's agent, the
//! call is stored with that agent, and voice packets are forwarded both ways.
//!
//! Needs `DISPLAY` and `xdotool`. Outside CI it is skipped with a message when they are
//! missing; in CI (`CI` set) it must run (`.ci/run` starts Xvfb on :97).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sapa::config::SwitchboardConfig;
use sapa::peer::caller;
use sapa::store::Store;

/// Kills the phone when the test ends, however it ends.
struct Phone(Child);

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn can_run() -> bool {
    let display = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty());
    let xdotool = Command::new("xdotool")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if display && xdotool {
        return true;
    }
    let why = match (display, xdotool) {
        (false, _) => "no DISPLAY",
        _ => "no xdotool",
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI must run the window test, but there is {why} (.ci/run starts Xvfb)");
    }
    eprintln!("skipping the phone window test: {why} (run under Xvfb, see .ci/run)");
    false
}

/// The phone's window id, once it is mapped.
fn window_id(limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let out = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "^Sapa$"])
            .output()
            .expect("xdotool runs");
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(id) = text.lines().next() {
            return id.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "the phone window did not appear");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Presses a key in the phone window (focus it, pointer over it, then a real key event).
fn press(window: &str, key: &str) {
    for args in [
        vec!["windowfocus", "--sync", window],
        vec!["mousemove", "--window", window, "400", "600"],
        vec!["key", key],
    ] {
        let status = Command::new("xdotool")
            .args(&args)
            .status()
            .expect("xdotool runs");
        assert!(status.success(), "xdotool {args:?} failed");
    }
}

/// The agent's latest state in the switchboard's log.
async fn state_now(store: &Store, agent: &str) -> Option<String> {
    let log = store
        .agent_state_log(agent, 0, i64::MAX)
        .await
        .expect("state log reads");
    log.last().map(|e| e.state.clone())
}

/// Waits until the agent's state log shows `state`.
async fn wait_for_state(store: &Store, agent: &str, state: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while state_now(store, agent).await.as_deref() != Some(state) {
        assert!(
            Instant::now() < deadline,
            "{agent} never reached {state}; last: {:?}",
            state_now(store, agent).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Presses `key` until the agent reaches `state`: the window may not show the screen the key
/// acts on yet (the switchboard logs a state a moment before the phone draws it). Each
/// press is given time to act, so a key that toggles is not pressed twice.
async fn press_until(store: &Store, window: &str, key: &str, state: &str) {
    for _ in 0..15 {
        press(window, key);
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            if state_now(store, "ana").await.as_deref() == Some(state) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!(
        "{key} never brought ana to {state}; last: {:?}",
        state_now(store, "ana").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_window_answers_with_f9_and_the_call_flows() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;

    let phone = Command::new(env!("CARGO_BIN_EXE_sapa"))
        .args(["phone", "--no-audio", "--switchboard", &running.ws_url()])
        .args(["--user", "ana"])
        .env("SAPA_PASSWORD", PASSWORD)
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .stdout(Stdio::null())
        .spawn()
        .expect("sapa phone starts");
    let _phone = Phone(phone);
    let window = window_id(Duration::from_secs(30));

    // Logged in from the command line: not ready, then F6 makes the agent available.
    wait_for_state(&running.store, "ana", "not_ready", Duration::from_secs(30)).await;
    press_until(&running.store, &window, "F6", "available").await;

    let play = tone_wav(dir.path(), "caller.wav", 1000.0, 3.0);
    let caller_task = tokio::spawn(caller::run(caller::CallerOptions {
        switchboard: running.ws_url(),
        from: "+15550100".into(),
        name: Some("Budi Santoso".into()),
        queue: None,
        play,
        record: dir.path().join("caller-heard.wav"),
        talk_secs: Some(3.0),
        max_wait_secs: 30.0,
        impair: None,
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    }));
    wait_for_state(&running.store, "ana", "offered", Duration::from_secs(20)).await;
    let before = running.media_stats().await.expect("media stats");
    press_until(&running.store, &window, "F9", "on_call").await;

    let report = caller_task.await.unwrap().expect("the caller ran");
    assert!(report.answered, "the phone answered: {report:?}");
    assert_eq!(report.agent.as_deref(), Some("ana"));
    // after_call_work is logged once the end of the call is stored.
    wait_for_state(
        &running.store,
        "ana",
        "after_call_work",
        Duration::from_secs(10),
    )
    .await;
    let call = running.store.call(&report.call_id).await.unwrap().unwrap();
    assert_eq!(call.agent.as_deref(), Some("ana"));
    assert!(call.talk_ms.unwrap_or(0) >= 2_500, "talked: {call:?}");
    // Three seconds of voice each way is ~300 packets; the bridge forwarded most of them.
    let after = running.media_stats().await.expect("media stats");
    let forwarded = after.packets_forwarded - before.packets_forwarded;
    assert!(
        forwarded > 200,
        "forwarded {forwarded} packets during the call"
    );

    drop(_phone);
    running.shutdown().await;
}

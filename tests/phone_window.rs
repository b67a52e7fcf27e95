//! The real `sapa phone` window under X (Xvfb in CI) against a real switchboard: it logs in
//! from the command line, goes available with F6 and answers with F9 pressed through the X
//! server (xdotool), and the call flows: the caller is answered by the phone's agent, the
//! call is stored with that agent, voice packets are forwarded both ways, and the audio went
//! through the phone's headset: the caller's tone (1570 Hz) comes out of the speaker device
//! (recorded from the virtual headset's `sapa_ear.monitor`), and a tone played into the
//! microphone device (2430 Hz into `sapa_mouth_in`) is in what the caller heard. In wrap-up,
//! text another program put on the X clipboard is pasted into the notes with Ctrl+V.
//!
//! Needs `DISPLAY` and `xdotool`, and for the audio part the virtual headset
//! (`scripts/virtual-headset.sh`, `PULSE_SERVER` set). Outside CI a missing display skips the
//! test and a missing headset skips the audio part (the phone then runs `--no-audio`), each
//! with a message; in CI (`CI` set) all of it must run (`.ci/run` starts both).

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

/// The caller's voice and the agent's: not harmonics of each other.
const CALLER_HZ: f32 = 1570.0;
const AGENT_HZ: f32 = 2430.0;
/// How long the caller talks once answered.
const TALK_SECS: f32 = 8.0;

/// Whether the virtual headset's devices are there to play into and record from.
fn headset_available() -> bool {
    let server = std::env::var_os("PULSE_SERVER").is_some_and(|s| !s.is_empty());
    let devices = server
        && Command::new("pactl")
            .args(["list", "short", "sinks"])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).contains("sapa_ear")
            });
    if devices {
        return true;
    }
    let why = if server {
        "PULSE_SERVER has no sapa_ear sink"
    } else {
        "PULSE_SERVER is not set"
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI must check the window's audio, but {why} (.ci/run starts the virtual headset)");
    }
    eprintln!(
        "phone window test: {why}; skipping the audio part \
         (eval \"$(bash scripts/virtual-headset.sh start)\" to run it)"
    );
    false
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
async fn the_window_answers_with_f9_and_audio_flows_through_the_headset() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;

    let headset = headset_available();
    let mut phone = Command::new(env!("CARGO_BIN_EXE_sapa"));
    phone
        .args(["phone", "--switchboard", &running.ws_url()])
        .args(["--user", "ana"])
        .env("SAPA_PASSWORD", PASSWORD)
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .stdout(Stdio::null());
    if headset {
        // The virtual headset by name, as an agent picks it in Settings; the ring goes to
        // its own device, so the speaker recording holds only the call.
        let config = dir.path().join("phone.toml");
        std::fs::write(
            &config,
            "microphone = \"sapa_mouth\"\nspeaker = \"sapa_ear\"\nringer = \"sapa_ring\"\n",
        )
        .unwrap();
        phone.arg("--config").arg(&config);
    } else {
        phone.arg("--no-audio");
    }
    let phone = phone.spawn().expect("sapa phone starts");
    let _phone = Phone(phone);
    let window = window_id(Duration::from_secs(30));

    // Logged in from the command line: not ready, then F6 makes the agent available.
    wait_for_state(&running.store, "ana", "not_ready", Duration::from_secs(30)).await;
    press_until(&running.store, &window, "F6", "available").await;

    // What the headset plays is recorded from before the call; the microphone hears the
    // agent's tone all along (longer than the call can take).
    let (ear, mut mouth) = if headset {
        let mouth_tone = tone_wav(dir.path(), "mouth.wav", AGENT_HZ, 40.0);
        (
            Some(Recorder::start(
                "sapa_ear.monitor",
                dir.path().join("ear.raw"),
            )),
            Some(play_into("sapa_mouth_in", &mouth_tone)),
        )
    } else {
        (None, None)
    };

    let play = tone_wav(dir.path(), "caller.wav", CALLER_HZ, TALK_SECS);
    let caller_heard = dir.path().join("caller-heard.wav");
    let caller_task = tokio::spawn(caller::run(caller::CallerOptions {
        switchboard: running.ws_url(),
        from: "+15550100".into(),
        name: Some("Budi Santoso".into()),
        queue: None,
        play,
        record: caller_heard.clone(),
        talk_secs: Some(TALK_SECS as f64),
        max_wait_secs: 30.0,
        impair: None,
        frame: Default::default(),
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
    assert!(call.talk_ms.unwrap_or(0) >= 6_000, "talked: {call:?}");
    // Eight seconds of voice each way is ~800 packets; the bridge forwarded most of them.
    let after = running.media_stats().await.expect("media stats");
    let forwarded = after.packets_forwarded - before.packets_forwarded;
    assert!(
        forwarded > 500,
        "forwarded {forwarded} packets during the call"
    );

    if let (Some(ear), Some(mouth)) = (ear, mouth.as_mut()) {
        let ear_heard = ear.stop();
        let _ = mouth.kill();
        let _ = mouth.wait();
        // Counted in 100 ms windows over the whole recording, so the devices' start-up and
        // any hiccup of a loaded machine cost only the windows they hit.
        let from_speaker = seconds_dominated(&ear_heard, CALLER_HZ, AGENT_HZ);
        let to_caller = seconds_dominated(&read(&caller_heard), AGENT_HZ, CALLER_HZ);
        eprintln!(
            "the phone's speaker played the caller for {from_speaker:.1} s of {:.1} s recorded; \
             the caller heard the phone's microphone for {to_caller:.1} s of {TALK_SECS} s",
            ear_heard.len() as f64 / 48_000.0
        );
        assert!(
            from_speaker >= 4.0,
            "the caller came out of the phone's speaker for only {from_speaker:.1} s"
        );
        assert!(
            to_caller >= 4.0,
            "the caller heard the phone's microphone for only {to_caller:.1} s"
        );
    }

    // In wrap-up the agent pastes into the notes what another program put on the system
    // clipboard (an order number from the CRM), and the draft on disk has it.
    let pasted = "Order 4471, copied from the CRM";
    let mut clipboard = arboard::Clipboard::new().expect("the X clipboard opens");
    clipboard
        .set_text(pasted)
        .expect("the test owns the clipboard");
    let draft = dir
        .path()
        .join("data/sapa/drafts/ana")
        .join(format!("{}.json", report.call_id));
    let draft_has_paste = || std::fs::read_to_string(&draft).is_ok_and(|d| d.contains(pasted));
    for _ in 0..10 {
        // The wrap-up's notes field (the window is 1280 x 820; docs/screenshots/wrap-up.png).
        paste_at(&window, 700, 330);
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline && !draft_has_paste() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if draft_has_paste() {
            break;
        }
    }
    assert!(
        draft_has_paste(),
        "the pasted text is not in the draft: {:?}",
        std::fs::read_to_string(&draft)
    );

    drop(_phone);
    running.shutdown().await;
}

/// Clicks at (x, y) in the phone window and presses Ctrl+V there.
fn paste_at(window: &str, x: u32, y: u32) {
    let (x, y) = (x.to_string(), y.to_string());
    for args in [
        vec!["windowfocus", "--sync", window],
        vec!["mousemove", "--window", window, &x, &y],
        vec!["click", "1"],
        vec!["key", "ctrl+v"],
    ] {
        let status = Command::new("xdotool")
            .args(&args)
            .status()
            .expect("xdotool runs");
        assert!(status.success(), "xdotool {args:?} failed");
    }
}

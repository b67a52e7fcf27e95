//! The phone engine without a window, against a real switchboard: a call answered through
//! intents with audio checked both ways (a tone into the test microphone reaches the caller,
//! the caller's tone reaches the test speaker), the disposition stored with the phone's
//! agent; the keypad's keys reach the caller as telephone events and mute time is stored;
//! drafts that survive a restart and are sent once; reconnecting after the switchboard goes
//! away; the voice loop resting between calls without its clock falling behind. All with a desktop-notification bus that is not there (as on CI), so each call
//! also shows that a missing notification daemon fails nothing.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sapa::config::SwitchboardConfig;
use sapa::peer::caller;
use sapa::phone::audio::{TestEndpoint, TestTap};
use sapa::phone::config::PhoneConfig;
use sapa::phone::draft::{DraftCall, DraftStore, StoredDraft, SubmittedForm, request_id};
use sapa::phone::engine::{self, AudioSetup, Credentials, EngineHandle, EngineOptions, Update};
use sapa::phone::notify::NotifyBus;
use sapa::protocol::{AgentStateName, Resolution};
use sapa::store::{self, Direction};
use sapa_ui::{ConnectionHealth, Disposition, DispositionDraft, Intent};

const WAIT: Duration = Duration::from_secs(20);
/// A D-Bus address with nothing behind it.
const NO_BUS: &str = "unix:path=/nonexistent/sapa-test-bus";

fn tone(freq_hz: f32, secs: f32) -> Vec<f32> {
    (0..(48_000.0 * secs) as usize)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq_hz * i as f32 / 48_000.0).sin())
        .collect()
}

fn start_engine(
    url: &str,
    drafts_root: &Path,
    mic: Vec<f32>,
) -> (EngineHandle, Arc<Mutex<TestTap>>) {
    start_engine_with(url, drafts_root, mic, PhoneConfig::default())
}

fn start_engine_with(
    url: &str,
    drafts_root: &Path,
    mic: Vec<f32>,
    config: PhoneConfig,
) -> (EngineHandle, Arc<Mutex<TestTap>>) {
    let (endpoint, tap) = TestEndpoint::new(mic);
    let handle = engine::spawn(
        EngineOptions {
            config,
            config_path: None,
            remember_login: false,
            drafts_root: drafts_root.to_path_buf(),
            auto_login: Some(Credentials {
                url: url.to_owned(),
                user: "ana".into(),
                password: PASSWORD.into(),
            }),
            go_available: true,
            audio: AudioSetup::Custom(Box::new(move || Box::new(endpoint))),
            export_dir: None,
            // A bus that is not there, as on CI: every call in these tests shows that a
            // missing notification daemon fails nothing.
            notify_bus: NotifyBus::Address(NO_BUS.into()),
        },
        || {},
    )
    .expect("engine thread starts");
    (handle, tap)
}

/// Waits for the first update that matches (blocking this worker; the switchboard and the
/// callers run on the others).
async fn wait_for(handle: &EngineHandle, what: &str, want: impl Fn(&Update) -> bool) -> Update {
    tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match handle.recv_timeout(left) {
                Some(update) if want(&update) => return update,
                Some(Update::LoginFailed(e)) => {
                    panic!("login failed while waiting for {what}: {e}")
                }
                Some(_) => continue,
                None => panic!("no {what} within {WAIT:?}"),
            }
        }
    })
}

fn is_state(update: &Update, want: AgentStateName) -> bool {
    matches!(update, Update::AgentState { state, .. } if *state == want)
}

/// The test microphone's 440 Hz reached the caller (`heard`, its recording) and the caller's
/// 1000 Hz came out of the test speaker (`played`, from the answer on).
fn assert_tones_crossed(heard: &[f32], played: &[f32]) {
    let share = dominance(heard, 440.0, 1000.0);
    assert!(
        share > 0.6,
        "the caller heard the phone's tone in {share:.2} of windows"
    );
    let share = dominance(played, 1000.0, 440.0);
    assert!(
        share > 0.6,
        "the phone played the caller in {share:.2} of windows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_phone_answers_and_voice_flows_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    let drafts = dir.path().join("drafts");
    let (handle, tap) = start_engine(&running.ws_url(), &drafts, tone(440.0, 1.0));
    wait_for(&handle, "available", |u| {
        is_state(u, AgentStateName::Available)
    })
    .await;
    // Nothing needs the headset while waiting for a call: the engine lets it go.
    released_within(&tap, 1, Duration::from_secs(4)).await;

    // What the team keeps about this customer reaches the screen-pop.
    running
        .store
        .upsert_customer("+15550100", Some("Budi Santoso"))
        .await
        .unwrap();
    running
        .store
        .set_customer_notes("+15550100", "Prefers email follow-ups")
        .await
        .unwrap();
    let play = tone_wav(dir.path(), "caller.wav", 1000.0, 4.0);
    let record = dir.path().join("caller-heard.wav");
    let caller_task = tokio::spawn(caller::run(caller::CallerOptions {
        switchboard: running.ws_url(),
        from: "+15550100".into(),
        name: Some("Budi Santoso".into()),
        queue: None,
        play,
        record: record.clone(),
        talk_secs: Some(4.0),
        max_wait_secs: 30.0,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    }));

    let offered = wait_for(&handle, "an offer", |u| matches!(u, Update::Offered { .. })).await;
    let Update::Offered {
        call_id, caller, ..
    } = offered
    else {
        unreachable!()
    };
    assert_eq!(caller.number, "+15550100");
    assert_eq!(caller.notes.as_deref(), Some("Prefers email follow-ups"));
    assert!(
        tap.lock().unwrap().ringing,
        "the ringer rings while offered"
    );
    // The offer takes the headset back before the answer, so answering waits for nothing.
    wait_until(Duration::from_secs(1), || tap.lock().unwrap().in_use).await;
    handle.send(Intent::Answer);
    wait_for(&handle, "connected", |u| {
        matches!(u, Update::Connected { .. })
    })
    .await;
    assert!(!tap.lock().unwrap().ringing, "the ring stops on answer");
    let speaker_at_answer = tap.lock().unwrap().speaker.len();

    // The agent updates what the team keeps about the customer: stored, and shown.
    handle.send(Intent::SaveCustomerNotes {
        number: "+15550100".into(),
        notes: "Prefers email follow-ups; refund promised by Friday".into(),
    });
    let saved = wait_for(&handle, "the notes saved", |u| {
        matches!(u, Update::CustomerNotes { .. })
    })
    .await;
    assert!(matches!(
        saved,
        Update::CustomerNotes { number, notes }
            if number == "+15550100" && notes == "Prefers email follow-ups; refund promised by Friday"
    ));
    let stored = running.store.customer("+15550100").await.unwrap().unwrap();
    assert_eq!(
        stored.notes.as_deref(),
        Some("Prefers email follow-ups; refund promised by Friday")
    );

    // A draft typed during the call is on disk at once.
    handle.send(Intent::DraftChanged(DispositionDraft {
        call_id: call_id.clone(),
        notes: "Asked about the refund".into(),
        ..DispositionDraft::default()
    }));
    wait_for(&handle, "ended", |u| matches!(u, Update::Ended { .. })).await;
    let store_dir = DraftStore::for_user(&drafts, "ana");
    let stored = store_dir.load(&call_id).expect("draft on disk");
    assert_eq!(stored.draft.notes, "Asked about the refund");
    assert_eq!(stored.call.number, "+15550100");

    let report = caller_task.await.unwrap().expect("caller ran");
    assert!(report.answered);
    assert_eq!(report.agent.as_deref(), Some("ana"));
    let speaker = tap.lock().unwrap().speaker[speaker_at_answer..].to_vec();
    assert_tones_crossed(&read(&record), &speaker);

    handle.send(Intent::SubmitDisposition(Disposition {
        call_id: call_id.clone(),
        code: "billing".into(),
        resolution: sapa_ui::Resolution::Resolved,
        notes: "Refund sent".into(),
        follow_up: None,
    }));
    wait_for(&handle, "disposition saved", |u| {
        matches!(u, Update::DispositionSaved { .. })
    })
    .await;
    let saved = running.store.disposition(&call_id).await.unwrap().unwrap();
    assert_eq!(saved.agent, "ana");
    assert_eq!(saved.code, "billing");
    assert_eq!(saved.request_id, request_id("ana", &call_id));
    assert!(
        store_dir.load(&call_id).is_none(),
        "an acknowledged draft is deleted"
    );
    let call = running.store.call(&call_id).await.unwrap().unwrap();
    assert_eq!(call.agent.as_deref(), Some("ana"));
    // After the call the headset is let go again.
    released_within(&tap, 2, Duration::from_secs(4)).await;

    handle.shutdown();
    running.shutdown().await;
}

/// Waits until `done` holds, polling every 20 ms; panics after `limit`.
async fn wait_until(limit: Duration, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the engine has let the headset go `times` times in all and holds it no more.
async fn released_within(tap: &Arc<Mutex<TestTap>>, times: u32, limit: Duration) {
    wait_until(limit, || {
        let tap = tap.lock().unwrap();
        !tap.in_use && tap.released >= times
    })
    .await;
}

/// Between calls the voice loop does not tick every frame: the test speaker (which records
/// every frame the loop writes) gets nothing for a second or more at a time. Its clock keeps
/// time all the same: the ticks it skipped run before the next message is handled, so the
/// speaker has had as much audio as time has passed, and a call starts on the right RTP time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_voice_loop_rests_between_calls_and_keeps_time() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    let (handle, tap) = start_engine(&running.ws_url(), &dir.path().join("d"), Vec::new());
    wait_for(&handle, "available", |u| {
        is_state(u, AgentStateName::Available)
    })
    .await;
    released_within(&tap, 1, Duration::from_secs(4)).await;
    let written = || tap.lock().unwrap().speaker.len();

    let mut longest_quiet = Duration::ZERO;
    let (mut last, mut since) = (written(), Instant::now());
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = written();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        longest_quiet = longest_quiet.max(since.elapsed());
    }
    assert!(
        longest_quiet >= Duration::from_secs(1),
        "the voice loop ticked on while idle (longest pause {longest_quiet:?})"
    );

    // Every message brings the loop up to date before it is handled: here the answer to a
    // request for the callback list.
    let up_to_date = || async {
        // An older list (the one asked for at login) may still be waiting.
        while handle.try_recv().is_some() {}
        handle.send(Intent::RefreshCallbacks);
        wait_for(&handle, "the callback list", |u| {
            matches!(u, Update::Callbacks(_))
        })
        .await;
        (written(), Instant::now())
    };
    let (before, t0) = up_to_date().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (after, t1) = up_to_date().await;
    let audio_s = (after - before) as f64 / 48_000.0;
    let wall_s = (t1 - t0).as_secs_f64();
    assert!(
        (audio_s - wall_s).abs() < 0.1,
        "{audio_s:.3} s of audio in {wall_s:.3} s of rest"
    );
    handle.shutdown();
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn noise_suppression_cleans_the_microphone_before_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    // The agent sits in a noisy room: the microphone hears only a fan's rumble, brown noise
    // (white noise through a leaky integrator) at about -35 dBFS.
    let mut seed = 12_345u32;
    let mut level = 0f32;
    let hiss: Vec<f32> = (0..48_000 * 3)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let white = (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
            level = 0.98 * level + 0.02 * white;
            level
        })
        .collect();
    let scale = 0.018 / rms(&hiss);
    let hiss: Vec<f32> = hiss.iter().map(|s| s * scale).collect();
    let hiss_rms = rms(&hiss);
    let (handle, _tap) = start_engine(&running.ws_url(), &dir.path().join("d"), hiss);
    wait_for(&handle, "available", |u| {
        is_state(u, AgentStateName::Available)
    })
    .await;
    let mut heard_rms = Vec::new();
    for suppress in [false, true] {
        handle.send(Intent::SetNoiseSuppression(suppress));
        let play = tone_wav(dir.path(), "caller.wav", 1000.0, 3.0);
        let mut options = plain_caller(&running.ws_url(), "+15550123", &play, dir.path());
        options.record = dir.path().join(format!("heard-{suppress}.wav"));
        let caller_task = tokio::spawn(caller::run(options.clone()));
        wait_for(&handle, "an offer", |u| matches!(u, Update::Offered { .. })).await;
        handle.send(Intent::Answer);
        let Update::Ended { call_id, .. } =
            wait_for(&handle, "ended", |u| matches!(u, Update::Ended { .. })).await
        else {
            unreachable!()
        };
        caller_task.await.unwrap().expect("caller ran");
        let heard = read(&options.record);
        // The last two seconds, after the codec and the suppressor have settled.
        heard_rms.push(rms(&heard[heard.len() - 96_000..]));
        handle.send(Intent::SubmitDisposition(Disposition {
            call_id,
            code: "billing".into(),
            resolution: sapa_ui::Resolution::Resolved,
            notes: String::new(),
            follow_up: None,
        }));
        wait_for(&handle, "available again", |u| {
            is_state(u, AgentStateName::Available)
        })
        .await;
    }
    eprintln!("hiss {hiss_rms:.4}; the caller heard {heard_rms:?} (suppression off, on)");
    assert!(
        heard_rms[0] > 0.5 * hiss_rms,
        "without suppression the hiss goes through: {heard_rms:?}"
    );
    assert!(
        heard_rms[1] < 0.2 * heard_rms[0],
        "suppression takes the hiss down by 14 dB or more: {heard_rms:?}"
    );
    handle.shutdown();
    running.shutdown().await;
}

fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

/// A call that happened in an earlier run, as the switchboard stored it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_keypad_reaches_the_caller_and_mute_time_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    let (handle, _tap) = start_engine(&running.ws_url(), &dir.path().join("d"), vec![]);
    wait_for(&handle, "available", |u| {
        is_state(u, AgentStateName::Available)
    })
    .await;
    // Long enough for both keys (each a tone of its own length plus the end packets) and
    // the second of mute even on a loaded 2-core test machine.
    let play = tone_wav(dir.path(), "caller.wav", 1000.0, 8.0);
    let mut options = plain_caller(&running.ws_url(), "+15550123", &play, dir.path());
    options.talk_secs = Some(8.0);
    let caller_task = tokio::spawn(caller::run(options));
    wait_for(&handle, "an offer", |u| matches!(u, Update::Offered { .. })).await;
    handle.send(Intent::Answer);
    let Update::Connected { call_id, .. } = wait_for(&handle, "connected", |u| {
        matches!(u, Update::Connected { .. })
    })
    .await
    else {
        unreachable!()
    };
    for key in ['7', '#'] {
        handle.send(Intent::SendDtmf(key));
        wait_for(
            &handle,
            "key sent",
            |u| matches!(u, Update::DtmfSent(k) if *k == key),
        )
        .await;
    }
    // Mute at once: the '#' is still waiting its turn and goes out while muted (keys are not
    // voice). The switchboard re-sends each key on the caller's stream, which here has
    // carried no audio yet (the phone's microphone is digital silence); the two keys must
    // still reach the caller as two keys, not one with a repeated timestamp.
    handle.send(Intent::SetMuted(true));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    handle.send(Intent::SetMuted(false));
    let report = caller_task.await.unwrap().expect("caller ran");
    assert_eq!(report.digits_heard, "7#", "{report:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let call = running.store.call(&call_id).await.unwrap().unwrap();
    assert!(
        (800..=1_600).contains(&call.mute_ms),
        "mute time stored: {} ms",
        call.mute_ms
    );
    handle.shutdown();
    running.shutdown().await;
}

async fn past_call(store: &store::Store, id: &str) {
    let now = sapa::peer::now_ms();
    store
        .call_arrived(&store::NewCall {
            id: id.into(),
            direction: Direction::Inbound,
            queue: "support".into(),
            caller_number: "+15550123".into(),
            caller_name: Some("Maria Lopez".into()),
            arrived_at: now - 120_000,
        })
        .await
        .unwrap();
    store.call_answered(id, "ana", now - 110_000).await.unwrap();
    store
        .call_ended(id, now - 50_000, "caller_hung_up")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drafts_survive_a_restart_and_submitted_ones_are_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    past_call(&running.store, "cpast1").await;
    past_call(&running.store, "cpast2").await;

    // What a phone that crashed left behind: one submitted but never acknowledged, one
    // still being written.
    let drafts = dir.path().join("drafts");
    let store_dir = DraftStore::for_user(&drafts, "ana");
    let call = DraftCall {
        number: "+15550123".into(),
        name: Some("Maria Lopez".into()),
        queue: "support".into(),
        talk_ms: 60_000,
    };
    store_dir
        .save(&StoredDraft {
            call_id: "cpast1".into(),
            request_id: request_id("ana", "cpast1"),
            call: call.clone(),
            draft: DispositionDraft::for_call("cpast1"),
            submitted: Some(SubmittedForm {
                code: "complaint".into(),
                resolution: Resolution::Escalated,
                notes: "Sent before the crash".into(),
                follow_up_at_ms: None,
            }),
            saved_at_ms: 1,
        })
        .unwrap();
    let unfinished = DispositionDraft {
        call_id: "cpast2".into(),
        code: Some("billing".into()),
        notes: "Half written".into(),
        ..DispositionDraft::default()
    };
    store_dir
        .save(&StoredDraft {
            call_id: "cpast2".into(),
            request_id: request_id("ana", "cpast2"),
            call,
            draft: unfinished.clone(),
            submitted: None,
            saved_at_ms: 2,
        })
        .unwrap();

    let (handle, _tap) = start_engine(&running.ws_url(), &drafts, Vec::new());
    let restored = wait_for(&handle, "the unfinished form", |u| {
        matches!(u, Update::RestoreWrapUp { .. })
    })
    .await;
    let Update::RestoreWrapUp { call, draft } = restored else {
        unreachable!()
    };
    assert_eq!(call.call_id, "cpast2");
    assert_eq!(call.caller.name.as_deref(), Some("Maria Lopez"));
    assert_eq!(draft, unfinished);
    wait_for(
        &handle,
        "the resent disposition",
        |u| matches!(u, Update::DispositionSaved { call_id } if call_id == "cpast1"),
    )
    .await;
    let saved = running.store.disposition("cpast1").await.unwrap().unwrap();
    assert_eq!(saved.notes, "Sent before the crash");
    assert_eq!(saved.agent, "ana");
    assert!(store_dir.load("cpast1").is_none());
    assert!(
        store_dir.load("cpast2").is_some(),
        "unsubmitted drafts stay"
    );

    // Finishing the restored form stores it (late submits are allowed) and deletes it.
    handle.send(Intent::SubmitDisposition(Disposition {
        call_id: "cpast2".into(),
        code: "billing".into(),
        resolution: sapa_ui::Resolution::Resolved,
        notes: "Half written, then finished".into(),
        follow_up: None,
    }));
    wait_for(
        &handle,
        "the finished disposition",
        |u| matches!(u, Update::DispositionSaved { call_id } if call_id == "cpast2"),
    )
    .await;
    assert!(store_dir.all().is_empty());
    handle.shutdown();

    // A second run sends nothing again: the first submit wins and there is one row.
    let saved_again = running.store.disposition("cpast1").await.unwrap().unwrap();
    assert_eq!(saved_again, saved);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_phone_reconnects_when_the_switchboard_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    let (http, media) = (running.http_addr, running.media_addr);
    let (handle, _tap) = start_engine(&running.ws_url(), &dir.path().join("drafts"), Vec::new());
    wait_for(&handle, "available", |u| {
        is_state(u, AgentStateName::Available)
    })
    .await;
    running.shutdown().await;
    wait_for(&handle, "reconnecting", |u| {
        matches!(u, Update::Connection(ConnectionHealth::Reconnecting { .. }))
    })
    .await;

    // The same addresses and database come back.
    let again = sapa::switchboard::start(sapa::switchboard::Options {
        listen: http,
        media_listen: media,
        db_url: format!("sqlite:{}", dir.path().join("sapa.db").display()),
        config: SwitchboardConfig::default(),
    })
    .await
    .expect("switchboard restarts on the same ports");
    wait_for(&handle, "connected again", |u| {
        matches!(u, Update::Connection(ConnectionHealth::Connected { .. }))
    })
    .await;
    // Logged in again: the switchboard puts a fresh login in not ready.
    wait_for(&handle, "not ready after the new login", |u| {
        is_state(u, AgentStateName::NotReady)
    })
    .await;
    handle.shutdown();
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_phone_on_10_ms_frames_talks_with_a_20_ms_caller() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    let config = PhoneConfig {
        frame_ms: 10,
        ..PhoneConfig::default()
    };
    let (handle, tap) = start_engine_with(
        &running.ws_url(),
        &dir.path().join("drafts"),
        tone(440.0, 1.0),
        config,
    );
    wait_for(&handle, "available", |u| {
        is_state(u, AgentStateName::Available)
    })
    .await;
    let play = tone_wav(dir.path(), "caller.wav", 1000.0, 4.0);
    let caller_task = tokio::spawn(caller::run(caller::CallerOptions {
        talk_secs: Some(4.0),
        ..plain_caller(&running.ws_url(), "+15550101", &play, dir.path())
    }));
    let record = dir.path().join("+15550101.wav");
    wait_for(&handle, "an offer", |u| matches!(u, Update::Offered { .. })).await;
    handle.send(Intent::Answer);
    wait_for(&handle, "connected", |u| {
        matches!(u, Update::Connected { .. })
    })
    .await;
    let speaker_at_answer = tap.lock().unwrap().speaker.len();
    wait_for(&handle, "ended", |u| matches!(u, Update::Ended { .. })).await;
    assert!(caller_task.await.unwrap().expect("caller ran").answered);
    // The phone's clock ran in 10 ms frames: each speaker write is 480 samples.
    assert_eq!(tap.lock().unwrap().speaker_frame_len, 480);
    let speaker = tap.lock().unwrap().speaker[speaker_at_answer..].to_vec();
    assert_tones_crossed(&read(&record), &speaker);
    handle.shutdown();
    running.shutdown().await;
}

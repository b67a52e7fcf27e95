//! Callbacks through a real switchboard with real WebRTC: a follow-up disposition promises a
//! callback that is offered at its time to the agent who promised it (not to a colleague who
//! has been idle longer), and answering it rings the customer's `--listen-as` endpoint, which
//! hears the agent. A waiting caller who asks to be called back keeps its place. Agents list
//! their callbacks and dial one early; `dial_out` refuses numbers nobody registered.

mod common;

use std::path::Path;
use std::time::Duration;

use sapa::config::SwitchboardConfig;
use sapa::peer::agent::{AgentOptions, AgentVoice, CallControl};
use sapa::peer::caller::{CallerExtras, CallerOptions};
use sapa::peer::{REQUEST_TIMEOUT, agent, caller, signal};
use sapa::protocol::{ClientMessage, ErrorCode, PROTOCOL_VERSION, Resolution, ServerMessage};
use sapa::store::CallbackStatus;

use common::*;

const CUSTOMER_HZ: f32 = 440.0;
const ANA_HZ: f32 = 1870.0;

fn agent_options(url: &str, user: &str, dir: &Path, calls: u32) -> AgentOptions {
    AgentOptions {
        switchboard: url.to_owned(),
        user: user.into(),
        password: PASSWORD.into(),
        voice: AgentVoice::Wav(tone_wav(dir, &format!("{user}.wav"), ANA_HZ, 30.0)),
        record: None,
        calls,
        disposition: None,
        notes: "call back about the refund".into(),
        resolution: Resolution::Resolved,
        talk_secs: None,
        no_answer: false,
        hold: None,
        impair: None,
        frame: Default::default(),
        dtx: false,
        mute: None,
        send_digits: None,
    }
}

fn customer(url: &str, dir: &Path, number: &str, secs: f32, record: &str) -> CallerOptions {
    CallerOptions {
        switchboard: url.to_owned(),
        from: number.into(),
        name: Some("Budi".into()),
        queue: None,
        play: tone_wav(dir, &format!("{record}.play.wav"), CUSTOMER_HZ, secs),
        record: dir.join(record),
        talk_secs: None,
        max_wait_secs: 40.0,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_up_callback_rings_the_customer_for_the_agent_who_promised_it() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana", "bayu"]).await;
    let url = sb.ws_url();
    let number = "+15550900";
    // The customer's phone: registered, waiting to be rung.
    let endpoint = tokio::spawn(caller::listen(
        customer(&url, dir.path(), number, 4.0, "endpoint-heard.wav"),
        number.into(),
    ));
    // ana promises a callback in 3 s; her second "call" is that callback.
    let mut ana = agent_options(&url, "ana", dir.path(), 2);
    ana.resolution = Resolution::FollowUp;
    let ana_task = tokio::spawn(agent::run_with(
        ana,
        CallControl {
            follow_up_in_secs: Some(3.0),
            ..Default::default()
        },
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    // bayu is available all along: idle longer than ana once her first call is over.
    let bayu_task = tokio::spawn(agent::run(
        agent_options(&url, "bayu", dir.path(), 1),
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let first = caller::run(customer(&url, dir.path(), number, 2.5, "first-heard.wav"))
        .await
        .unwrap();
    assert_eq!(first.agent.as_deref(), Some("ana"));

    let reports = tokio::time::timeout(Duration::from_secs(30), ana_task)
        .await
        .expect("ana takes the callback")
        .unwrap()
        .unwrap();
    let callback = &reports[1];
    let context = callback
        .context
        .clone()
        .expect("the offer says it is a callback");
    assert_eq!(context.kind, "callback");
    assert_eq!(context.from.as_deref(), Some("ana"));
    assert_eq!(context.notes.as_deref(), Some("call back about the refund"));
    assert!(
        callback.history.iter().any(|h| h.call_id == first.call_id),
        "the history is on screen"
    );
    assert_eq!(callback.caller, number);
    assert!(
        !bayu_task.is_finished(),
        "bayu was never offered the callback"
    );
    bayu_task.abort();

    let rung = endpoint.await.unwrap().unwrap();
    assert!(rung.answered, "{rung:?}");
    assert_eq!(rung.agent.as_deref(), Some("ana"));
    assert_eq!(rung.call_id, callback.call_id);
    let heard_by_customer = read(&dir.path().join("endpoint-heard.wav"));
    let share = heard(&heard_by_customer, 0.5, 3.5, ANA_HZ);
    assert!(share > 0.8, "the customer hears ana ({share:.2})");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = sb
        .store
        .callback(&format!("cb-{}-ana", first.call_id))
        .await
        .unwrap()
        .expect("the disposition promised a callback");
    assert_eq!(stored.status, CallbackStatus::Done);
    assert_eq!(
        stored.dialed_call_id.as_deref(),
        Some(callback.call_id.as_str())
    );
    let legs = sb.store.legs(&callback.call_id).await.unwrap();
    let summary: Vec<(&str, &str, &str)> = legs
        .iter()
        .map(|l| (l.party.as_str(), l.role.as_str(), l.why.as_str()))
        .collect();
    assert_eq!(
        summary,
        [("ana", "agent", "callback"), (number, "caller", "callback")]
    );
    let call = sb.store.call(&callback.call_id).await.unwrap().unwrap();
    assert_eq!(call.direction, sapa::store::Direction::Outbound);
    assert_eq!(call.agent.as_deref(), Some("ana"));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_callers_ask_to_be_called_back_by_key_or_message_and_keep_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = SwitchboardConfig {
        callback_offer_after_secs: 1,
        ..SwitchboardConfig::default()
    };
    let sb = start_switchboard(dir.path(), config).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    // Two customers: one presses * on the keypad, one's client sends request_callback.
    let (by_key, by_message) = ("+15550901", "+15550903");
    let endpoint = |number: &'static str| {
        tokio::spawn(caller::listen(
            customer(&url, dir.path(), number, 4.0, &format!("{number}-rung.wav")),
            number.into(),
        ))
    };
    let (key_endpoint, message_endpoint) = (endpoint(by_key), endpoint(by_message));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Nobody answers: each asks for a callback after 1.5 s and hangs up.
    let mut kept = Vec::new();
    // The one with the keypad waits until it has heard the prompt that offers it.
    let waiting_wav = dir.path().join("waiting.wav");
    for (number, callback_by_key, after) in [(by_key, true, 3.5), (by_message, false, 1.5)] {
        let report = caller::run_with(
            customer(&url, dir.path(), number, 3.0, &format!("{number}-kept.wav")),
            CallerExtras {
                callback_after_secs: Some(after),
                callback_by_key,
                record_waiting: callback_by_key.then(|| waiting_wav.clone()),
                dtx: false,
            },
        )
        .await
        .unwrap();
        assert_eq!(report.ended_by, "callback_scheduled", "{number}");
        kept.push(report);
    }
    // Waiting 1 s (plus up to 1 s until the switchboard's next look) starts the prompt
    // "press star to be called back"; ringback (440 + 480 Hz, 2 s on from when the media is
    // up, then 4 s off) is silent by then, so the sound before the key press is the prompt.
    let waiting = read(&waiting_wav);
    let end_s = waiting.len() as f32 / 48_000.0;
    assert!(end_s > 2.5, "recorded {end_s} s of waiting");
    let tail = &waiting[waiting.len() - 28_800..];
    let tail_rms = (tail.iter().map(|x| x * x).sum::<f32>() / tail.len() as f32).sqrt();
    assert!(
        tail_rms > 0.01,
        "the callback prompt plays before the key (rms {tail_rms})"
    );
    assert!(heard(&waiting, 0.6, 1.4, 440.0) > 0.2, "ringback first");
    // A later caller waits behind them.
    let later = tokio::spawn(caller::run(customer(
        &url,
        dir.path(),
        "+15550902",
        2.0,
        "later-heard.wav",
    )));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reports = agent::run(agent_options(&url, "ana", dir.path(), 3), |_| {})
        .await
        .unwrap();
    let served: Vec<&str> = reports.iter().map(|r| r.call_id.as_str()).collect();
    let later = later.await.unwrap().unwrap();
    assert_eq!(
        served,
        [
            kept[0].call_id.as_str(),
            kept[1].call_id.as_str(),
            later.call_id.as_str()
        ],
        "the kept places are served first, in order"
    );
    for report in &reports[..2] {
        assert_eq!(
            report.context.as_ref().map(|c| c.kind.as_str()),
            Some("callback")
        );
    }
    for (endpoint, kept, number) in [
        (key_endpoint, &kept[0], by_key),
        (message_endpoint, &kept[1], by_message),
    ] {
        let rung = endpoint.await.unwrap().unwrap();
        assert_eq!(rung.call_id, kept.call_id);
        assert!(rung.answered);
        let heard_by_customer = read(&dir.path().join(format!("{number}-rung.wav")));
        assert!(
            heard(&heard_by_customer, 0.5, 3.5, ANA_HZ) > 0.8,
            "{number}"
        );
        let legs = sb.store.legs(&kept.call_id).await.unwrap();
        let whys: Vec<(&str, &str)> = legs
            .iter()
            .map(|l| (l.party.as_str(), l.why.as_str()))
            .collect();
        assert_eq!(
            whys,
            [
                (number, "dialed"),
                ("ana", "callback"),
                (number, "callback")
            ]
        );
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_list_callbacks_dial_one_early_and_cannot_dial_unknown_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["cat"]).await;
    let url = sb.ws_url();
    let number = "+15550903";
    // A callback cat promised for tomorrow.
    sb.store
        .call_arrived(&sapa::store::NewCall {
            id: "c-old".into(),
            direction: sapa::store::Direction::Inbound,
            queue: "support".into(),
            caller_number: number.into(),
            caller_name: None,
            arrived_at: sapa::peer::now_ms() - 60_000,
        })
        .await
        .unwrap();
    let promised = sb
        .store
        .add_callback(
            "c-old",
            "cat",
            number,
            None,
            "support",
            "send the form",
            sapa::peer::now_ms() + 86_400_000,
            sapa::peer::now_ms(),
        )
        .await
        .unwrap();
    let endpoint = tokio::spawn(caller::listen(
        customer(&url, dir.path(), number, 2.0, "endpoint-heard.wav"),
        number.into(),
    ));

    let (cat, _events) = signal::Signal::connect(&url).await.unwrap();
    cat.request(
        ClientMessage::Login {
            req: None,
            protocol: PROTOCOL_VERSION,
            user: "cat".into(),
            password: PASSWORD.into(),
            lookup: false,
        },
        REQUEST_TIMEOUT,
    )
    .await
    .unwrap();
    let refused = cat
        .request(
            ClientMessage::DialOut {
                req: None,
                number: "+19999999".into(),
                queue: None,
            },
            REQUEST_TIMEOUT,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(signal::SignalError::Refused {
                code: ErrorCode::Unreachable,
                ..
            })
        ),
        "{refused:?}"
    );
    let ServerMessage::Callbacks { entries, .. } = cat
        .request(ClientMessage::Callbacks { req: None }, REQUEST_TIMEOUT)
        .await
        .unwrap()
    else {
        panic!("a callbacks answer");
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].callback_id, promised.id);
    assert_eq!(entries[0].notes, "send the form");
    // Wait until the endpoint is registered, then dial the callback early.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cat.request(
        ClientMessage::DialCallback {
            req: None,
            callback_id: promised.id.clone(),
        },
        REQUEST_TIMEOUT,
    )
    .await
    .expect("dialed");
    let rung = tokio::time::timeout(Duration::from_secs(20), endpoint)
        .await
        .expect("the endpoint is rung")
        .unwrap()
        .unwrap();
    assert!(rung.answered);
    assert_eq!(rung.agent.as_deref(), Some("cat"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = sb.store.callback(&promised.id).await.unwrap().unwrap();
    assert_eq!(done.status, CallbackStatus::Done);
    assert_eq!(done.dialed_call_id.as_deref(), Some(rung.call_id.as_str()));
    sb.shutdown().await;
}

//! Bad input at the signaling port: every malformed or forbidden message gets an `error` with
//! a stable code, the connection stays usable, and a call in progress is untouched.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sapa::config::SwitchboardConfig;
use sapa::peer::agent::{AgentOptions, AgentVoice};
use sapa::peer::caller::CallerOptions;
use sapa::peer::{agent, caller};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use common::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] != "welcome" && v["type"] != "queue_status" {
                return v;
            }
        }
    }
}

async fn expect_error(ws: &mut Ws, frame: Message, code: &str) {
    ws.send(frame).await.unwrap();
    let v = next_json(ws).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], code, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_messages_get_stable_errors_and_calls_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();

    // A real call runs while the garbage arrives.
    let agent_tone = tone_wav(dir.path(), "a.wav", 1000.0, 6.0);
    let caller_tone = tone_wav(dir.path(), "c.wav", 440.0, 4.0);
    let opts = AgentOptions {
        voice: AgentVoice::Wav(agent_tone),
        ..AgentOptions::silent(&url, "ana", PASSWORD, 1)
    };
    let agent_task = tokio::spawn(agent::run(opts, |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let caller_rec = dir.path().join("heard.wav");
    let call = tokio::spawn(caller::run(CallerOptions {
        switchboard: url.clone(),
        from: "+15550123".into(),
        name: None,
        queue: None,
        play: caller_tone,
        record: caller_rec.clone(),
        talk_secs: None,
        max_wait_secs: 30.0,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    }));
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    expect_error(
        &mut ws,
        Message::Text("{this is not json".into()),
        "bad_json",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"launch_rocket"}"#.into()),
        "unknown_type",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"answer"}"#.into()),
        "bad_json",
    )
    .await;
    let huge = format!(
        r#"{{"type":"ping","t":1,"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    expect_error(&mut ws, Message::Text(huge.into()), "too_large").await;
    expect_error(
        &mut ws,
        Message::Binary(vec![1, 2, 3].into()),
        "binary_not_supported",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"set_state","state":"available"}"#.into()),
        "unauthenticated",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"login","protocol":1,"user":"ana","password":"wrong"}"#.into()),
        "bad_credentials",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"login","protocol":99,"user":"ana","password":"x"}"#.into()),
        "unsupported_version",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"dial","protocol":1,"from":"+1555","queue":"nope"}"#.into()),
        "unknown_queue",
    )
    .await;
    // A second connection: a caller may not answer calls, and a bad SDP is refused.
    let (mut caller_ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    caller_ws
        .send(Message::Text(
            r#"{"type":"dial","protocol":1,"from":"+15550999","req":"d"}"#.into(),
        ))
        .await
        .unwrap();
    let queued = next_json(&mut caller_ws).await;
    assert_eq!(queued["type"], "call_queued", "{queued}");
    expect_error(
        &mut caller_ws,
        Message::Text(r#"{"type":"answer","call_id":"x"}"#.into()),
        "forbidden",
    )
    .await;
    expect_error(
        &mut caller_ws,
        Message::Text(r#"{"type":"media_offer","sdp":"this is no sdp"}"#.into()),
        "bad_sdp",
    )
    .await;
    // The connection still works after all that.
    ws.send(Message::Text(r#"{"type":"ping","t":42,"req":"p"}"#.into()))
        .await
        .unwrap();
    let pong = next_json(&mut ws).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(pong["t"], 42);
    assert_eq!(pong["req"], "p");
    drop(caller_ws);

    let report = call.await.unwrap().expect("the call was not disturbed");
    assert!(report.answered);
    agent_task.await.unwrap().unwrap();
    let heard = read(&caller_rec);
    let share = dominance(&heard, 1000.0, 440.0);
    assert!(share > 0.7, "the call's audio suffered: {share:.2}");
    sb.shutdown().await;
}

/// An administrator disables an agent who left: the right password is refused with a message
/// that says why (a wrong one learns nothing more), and the agent logs in again once enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_is_refused_with_a_reason_and_enabled_again() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    sb.store.set_user_disabled("ana", true).await.unwrap();

    let refused = agent::run(plain_agent(&url, "ana", 1), |_| {})
        .await
        .expect_err("a disabled account cannot log in")
        .to_string();
    assert!(
        refused.contains("the account ana is disabled"),
        "refusal: {refused}"
    );
    let mut wrong = plain_agent(&url, "ana", 1);
    wrong.password = "not the password".into();
    let refused = agent::run(wrong, |_| {}).await.unwrap_err().to_string();
    assert!(
        refused.contains("wrong user or password"),
        "refusal: {refused}"
    );

    // Enabled again, ana logs in and takes a call.
    sb.store.set_user_disabled("ana", false).await.unwrap();
    let agent_task = tokio::spawn(agent::run(plain_agent(&url, "ana", 1), |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a_call_reaches(&url, dir.path(), agent_task).await;
}

/// Places one call and waits for `agent_task` (an agent logged in for one call) to take it.
async fn a_call_reaches(
    url: &str,
    dir: &std::path::Path,
    agent_task: tokio::task::JoinHandle<Result<Vec<agent::AgentCallReport>, sapa::peer::PeerError>>,
) {
    let tone = tone_wav(dir, "c.wav", 440.0, 1.0);
    caller::run(plain_caller(url, "+15550123", &tone, dir))
        .await
        .unwrap();
    let reports = tokio::time::timeout(Duration::from_secs(20), agent_task)
        .await
        .expect("the agent took the call within 20 s")
        .expect("the agent task")
        .expect("the agent stayed logged in");
    assert_eq!(reports.len(), 1);
}

/// `sapa history` and `sapa report` log in as a lookup session: the user's phone stays logged
/// in and takes its next call, and the lookup session can read but not act as the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_session_leaves_the_user_s_phone_logged_in() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let agent_task = tokio::spawn(agent::run(plain_agent(&url, "ana", 1), |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let password = serde_json::to_string(PASSWORD).unwrap();
    ws.send(Message::Text(
        format!(r#"{{"type":"login","protocol":1,"user":"ana","password":{password},"lookup":true,"req":"l"}}"#).into(),
    ))
    .await
    .unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(answer["type"], "ok", "{answer}");
    ws.send(Message::Text(
        r#"{"type":"history","number":"+15550123","req":"h"}"#.into(),
    ))
    .await
    .unwrap();
    let history = next_json(&mut ws).await;
    assert_eq!(history["type"], "history", "{history}");
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"set_state","state":"not_ready","reason":"x"}"#.into()),
        "forbidden",
    )
    .await;
    expect_error(
        &mut ws,
        Message::Text(r#"{"type":"dial","protocol":1,"from":"+15550999"}"#.into()),
        "forbidden",
    )
    .await;

    // The phone was not signed out: it takes the next call.
    a_call_reaches(&url, dir.path(), agent_task).await;
}

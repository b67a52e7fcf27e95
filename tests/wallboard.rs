//! Wallboard and reports through a real switchboard: after a scripted answered call and an
//! abandoned one, `/v1/wallboard` and the pushed `wallboard` show the hand-computed figures, and
//! a supervisor's `report` has the agent's row (JSON and CSV).

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sapa::config::SwitchboardConfig;
use sapa::peer::agent::AgentOptions;
use sapa::peer::caller::CallerOptions;
use sapa::peer::{agent, caller};
use sapa::store::Role;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use common::*;

async fn http_get_json(addr: std::net::SocketAddr, path: &str) -> Value {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    let json = body.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wallboard_and_report_match_a_scripted_day() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    sb.store
        .add_user("sri", Role::Supervisor, PASSWORD)
        .await
        .unwrap();
    let url = sb.ws_url();
    let tone = tone_wav(dir.path(), "t.wav", 440.0, 1.0);

    // An abandoned call first: nobody is logged in yet; the caller gives up after 1 s.
    let gave_up = caller::run(CallerOptions {
        switchboard: url.clone(),
        from: "+15550301".into(),
        name: None,
        queue: Some("support".into()),
        play: tone.clone(),
        record: dir.path().join("x.wav"),
        talk_secs: None,
        max_wait_secs: 1.0,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    })
    .await
    .unwrap();
    assert!(!gave_up.answered);

    // Then an answered call of about 1 s.
    let ana = tokio::spawn(agent::run(
        AgentOptions {
            disposition: Some("billing".into()),
            ..AgentOptions::silent(&url, "ana", PASSWORD, 1)
        },
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answered = caller::run(CallerOptions {
        switchboard: url.clone(),
        from: "+15550302".into(),
        name: None,
        queue: Some("support".into()),
        play: tone,
        record: dir.path().join("y.wav"),
        talk_secs: None,
        max_wait_secs: 20.0,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    })
    .await
    .unwrap();
    assert!(answered.answered);
    ana.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Hand-computed: offered 2, handled 1, abandoned 1 (after ~1 s, under the 20 s threshold,
    // so a short abandon: excluded from service level), SL = 1/1 = 100 %, abandon rate 50 %.
    let board = http_get_json(sb.http_addr, "/v1/wallboard").await;
    let support = board["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "support")
        .unwrap()
        .clone();
    assert_eq!(support["offered"], 2, "{support}");
    assert_eq!(support["handled_today"], 1);
    assert_eq!(support["abandoned"], 1);
    assert_eq!(support["service_level_pct"].as_f64(), Some(100.0));
    assert_eq!(support["abandon_pct"].as_f64(), Some(50.0));
    assert!(support["asa_ms"].as_u64().unwrap() < 2_000);

    // A supervisor gets the board pushed, and a report.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let login = format!(r#"{{"type":"login","protocol":1,"user":"sri","password":"{PASSWORD}"}}"#);
    ws.send(Message::Text(login.into())).await.unwrap();
    let now_ms = sapa::peer::now_ms();
    let report = format!(
        r#"{{"type":"report","req":"r","from_ms":{},"to_ms":{},"by":"agent"}}"#,
        now_ms - 3_600_000,
        now_ms + 1
    );
    ws.send(Message::Text(report.into())).await.unwrap();
    let (mut got_board, mut got_report) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(got_board && got_report) {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("pushes arrive");
        let Some(Ok(Message::Text(t))) = frame else {
            panic!("closed")
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "wallboard" {
            got_board = true;
            assert!(v["board"]["queues"].is_array());
        }
        if v["type"] == "report" {
            got_report = true;
            let rows = v["rows"].as_array().unwrap();
            let row = rows.iter().find(|r| r["key"] == "ana").expect("ana's row");
            assert_eq!(row["answered"], 1);
            assert_eq!(row["dispositions"]["billing"], 1);
            assert!(v["csv"].as_str().unwrap().lines().count() >= 2);
        }
    }
    sb.shutdown().await;
}

/// The agent rows of `/v1/wallboard` by name.
async fn agent_rows(addr: std::net::SocketAddr) -> Vec<Value> {
    let board = http_get_json(addr, "/v1/wallboard").await;
    board["agents"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn voice_quality_shows_loss_on_the_lossy_callers_leg_only() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana", "budi"]).await;
    let url = sb.ws_url();
    let agents: Vec<_> = ["ana", "budi"]
        .into_iter()
        .map(|name| {
            tokio::spawn(agent::run(
                AgentOptions {
                    disposition: Some("billing".into()),
                    ..AgentOptions::silent(&url, name, PASSWORD, 1)
                },
                |_| {},
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tone = tone_wav(dir.path(), "t.wav", 440.0, 8.0);
    // One caller loses a fifth of its packets on the way to the switchboard; one is clean.
    let callers: Vec<_> = [("+15550401", Some("loss=20,seed=5")), ("+15550402", None)]
        .into_iter()
        .map(|(from, impair)| {
            tokio::spawn(caller::run(CallerOptions {
                switchboard: url.clone(),
                from: from.into(),
                name: None,
                queue: Some("support".into()),
                play: tone.clone(),
                record: dir.path().join(format!("{from}.wav")),
                talk_secs: Some(9.0),
                max_wait_secs: 20.0,
                impair: impair.map(|spec| sapa::peer::impair::Impairment::parse(spec).unwrap()),
                frame: Default::default(),
                to: None,
                dial_digits: None,
                survey: None,
                inband_dtmf: false,
            }))
        })
        .collect();

    // Wait until both calls have a few seconds of measured audio on both legs.
    let measured = |row: &Value, leg: &str| row["voice_quality"][leg]["packets"].as_u64();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = agent_rows(sb.http_addr).await;
        let ready = rows.len() == 2
            && rows.iter().all(|r| {
                measured(r, "caller_to_agent").is_some_and(|n| n >= 150)
                    && measured(r, "agent_to_caller").is_some_and(|n| n >= 150)
            });
        if ready {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no voice quality on the wallboard: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let by_caller = |number: &str| {
        rows.iter()
            .find(|r| r["caller"] == number)
            .unwrap_or_else(|| panic!("a row with {number}: {rows:?}"))
            .clone()
    };
    let lossy = by_caller("+15550401");
    let clean = by_caller("+15550402");
    eprintln!(
        "lossy: {}\nclean: {}",
        lossy["voice_quality"], clean["voice_quality"]
    );
    let loss = |row: &Value, leg: &str| row["voice_quality"][leg]["loss_pct"].as_f64().unwrap();
    let lossy_in = loss(&lossy, "caller_to_agent");
    assert!(
        (10.0..=30.0).contains(&lossy_in),
        "about 20 % lost from the lossy caller, got {lossy_in}"
    );
    // The caller's phone sends RED: the switchboard rebuilds most of what the network lost
    // from the copies in later packets (with two copies about 99 % at 20 % loss), and the
    // rating counts only what the agent misses.
    let repaired = lossy["voice_quality"]["caller_to_agent"]["repaired_pct"]
        .as_f64()
        .unwrap();
    assert!(
        repaired >= 0.9 * lossy_in - 1.0 && repaired <= lossy_in,
        "repaired {repaired} of {lossy_in} % lost"
    );
    assert_ne!(lossy["voice_quality"]["rating"], "poor");
    // The agents' streams and the clean caller's lose nothing on loopback.
    assert!(loss(&lossy, "agent_to_caller") < 1.0);
    assert!(loss(&clean, "caller_to_agent") < 1.0);
    assert!(loss(&clean, "agent_to_caller") < 1.0);
    let jitter = clean["voice_quality"]["caller_to_agent"]["jitter_ms"]
        .as_f64()
        .unwrap();
    assert!((0.0..30.0).contains(&jitter), "jitter {jitter}");

    let mut reports = Vec::new();
    for task in callers {
        let report = task.await.unwrap().unwrap();
        assert!(report.answered);
        reports.push(report);
    }
    // The switchboard's reception reports told each caller what it lost; the lossy one
    // sends RED, which leaves too little lost to spend Opus bits on more FEC.
    let reported = |i: usize| reports[i].reported_loss_pct.expect("a reception report");
    eprintln!(
        "reported {} % (lossy) and {} % (clean); FEC planned for {} % and {} %",
        reported(0),
        reported(1),
        reports[0].fec_loss_pct,
        reports[1].fec_loss_pct
    );
    assert!((10.0..=30.0).contains(&reported(0)), "{:?}", reports[0]);
    assert!(reported(1) < 1.0, "{:?}", reports[1]);
    for report in &reports {
        assert_eq!(report.fec_loss_pct, sapa::peer::voice::EXPECTED_LOSS_PCT);
    }
    for task in agents {
        task.await.unwrap().unwrap();
    }
    sb.shutdown().await;
}

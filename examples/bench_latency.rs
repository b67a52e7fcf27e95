//! Benchmark: mouth-to-ear latency through a real switchboard on loopback, and answer -> first
//! audio packet at the agent. A caller plays a click train; an agent (`--echo` behaviour) sends
//! back what it hears; the caller's recording is sample-aligned with its playback, so each
//! click's echo delay is the round trip, and one-way = round trip / 2.
//!
//! Run: `cargo run --release --example bench_latency -- [ROUNDS]` (prints a JSON summary).

use std::time::Duration;

use sapa::config::SwitchboardConfig;
use sapa::peer::agent::{self, AgentOptions, AgentVoice};
use sapa::peer::caller::{self, CallerOptions};
use sapa::store::Role;

const CLICK_EVERY: usize = 24_000; // 500 ms

fn click_train(secs: f32) -> Vec<f32> {
    let n = (48_000.0 * secs) as usize;
    let mut s = vec![0.0f32; n];
    let mut at = 12_000;
    while at + 480 < n {
        // A 5 ms 2 kHz burst: survives Opus, easy to find.
        for i in 0..240 {
            s[at + i] = 0.8 * (2.0 * std::f32::consts::PI * 2000.0 * i as f32 / 48_000.0).sin();
        }
        at += CLICK_EVERY;
    }
    s
}

/// Delay (samples) from each click in `sent` to the first loud sample after it in `heard`.
fn echo_delays(heard: &[f32]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 12_000;
    while at + CLICK_EVERY <= heard.len() {
        let window = &heard[at..at + CLICK_EVERY - 2_000];
        if let Some(i) = window.iter().position(|v| v.abs() > 0.2) {
            out.push(i);
        }
        at += CLICK_EVERY;
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    // RUST_LOG=info shows each side's jitter-buffer statistics after every call.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let dir = tempfile::tempdir().unwrap();
    let sb = sapa::switchboard::start(sapa::switchboard::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        media_listen: "127.0.0.1:0".parse().unwrap(),
        db_url: format!("sqlite:{}", dir.path().join("b.db").display()),
        config: SwitchboardConfig::default(),
    })
    .await
    .unwrap();
    sb.store.add_user("echo", Role::Agent, "pw").await.unwrap();
    let url = sb.ws_url();
    let play = dir.path().join("clicks.wav");
    sapa::wav::write_mono_48k(&play, &click_train(10.0)).unwrap();
    let agent_task = tokio::spawn(agent::run(
        AgentOptions {
            voice: AgentVoice::Echo,
            ..AgentOptions::silent(&url, "echo", "pw", rounds as u32)
        },
        |_| {},
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut one_way_ms = Vec::new();
    for round in 0..rounds {
        let rec = dir.path().join(format!("heard-{round}.wav"));
        caller::run(CallerOptions {
            switchboard: url.clone(),
            from: format!("+1555000{round:03}"),
            name: None,
            queue: None,
            play: play.clone(),
            record: rec.clone(),
            talk_secs: None,
            max_wait_secs: 30.0,
            impair: None,
            frame: Default::default(),
            to: None,
            dial_digits: None,
            survey: None,
            inband_dtmf: false,
        })
        .await
        .unwrap();
        let heard = sapa::wav::read_mono_48k(&rec).unwrap();
        let call: Vec<f64> = echo_delays(&heard)
            .into_iter()
            .map(|d| d as f64 / 48.0 / 2.0)
            .collect();
        eprintln!("call {round}: one-way ms {call:?}");
        one_way_ms.extend(call);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let reports = agent_task.await.unwrap().unwrap();
    let mut first_audio: Vec<f64> = reports.iter().filter_map(|r| r.first_audio_ms).collect();
    let clicks = one_way_ms.len();
    let summary = serde_json::json!({
        "clicks_measured": clicks,
        "one_way_ms_median": median(&mut one_way_ms),
        "one_way_ms_min": one_way_ms.first(),
        "one_way_ms_max": one_way_ms.last(),
        "one_way_ms_p90": one_way_ms.get(one_way_ms.len() * 9 / 10),
        "clicks_at_or_under_40_ms": one_way_ms.iter().filter(|&&v| v <= 40.0).count(),
        "answer_to_first_audio_ms_median": median(&mut first_audio),
        "answer_to_first_audio_ms_all": first_audio,
        "media": format!("{:?}", sb.media_stats().await),
    });
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    sb.shutdown().await;
}

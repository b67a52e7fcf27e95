//! Benchmark: many supervisors on one wallboard feed. Starts `sapa switchboard` as its own
//! process, keeps CALLS headless calls going (agents answering callers, Opus both ways) so the
//! board changes every second, then measures two steady windows of SECS seconds each:
//!
//! 1. the calls alone (the wallboard is not computed: nobody is subscribed);
//! 2. the same calls with SUPERVISORS WebSockets logged in as supervisors, each receiving the
//!    `wallboard` push.
//!
//! For window 2 it reports the updates each supervisor received per second (median, min),
//! the delivery lag (arrival at the supervisor − the board's `now_ms`, same machine clock:
//! median, p90, max) and its spread between the first and the last supervisor to get the same
//! board; for both windows the switchboard's CPU (from `/proc/PID/stat`) and RSS.
//!
//! Run: `cargo run --example bench_wallboard -- SAPA_BINARY [SUPERVISORS] [CALLS] [SECS]`
//! (defaults 50, 10, 20).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sapa::peer::agent::{self, AgentOptions, AgentVoice};
use sapa::peer::caller::{self, CallerOptions};
use sapa::protocol::ServerMessage;
use tokio_tungstenite::tungstenite::Message;

/// A loopback port nobody listens on now (other benchmarks may run on this machine).
fn free_port() -> u16 {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("a free TCP port");
    let port = tcp.local_addr().expect("bound").port();
    // The media port is UDP: check that one too.
    std::net::UdpSocket::bind(("127.0.0.1", port)).map_or_else(|_| free_port(), |_| port)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the switchboard runs");
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU of `pid` in percent of one core over `window`.
async fn cpu_over(pid: u32, window: Duration) -> f64 {
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    tokio::time::sleep(window).await;
    let (c1, wall) = (cpu_ticks(pid), t0.elapsed().as_secs_f64());
    // USER_HZ is 100 on Linux.
    (c1 - c0) as f64 / 100.0 / wall * 100.0
}

fn add_user(binary: &str, db: &str, name: &str, role: &str) {
    let ok = Command::new(binary)
        .args([
            "user",
            "add",
            "--db",
            db,
            "--name",
            name,
            "--role",
            role,
            "--password",
            "pw",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("sapa user add runs")
        .success();
    assert!(ok, "user {name} added");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// What one supervisor's connection saw: (arrival wall ms, board now_ms) per wallboard.
type Arrivals = Arc<Mutex<Vec<(i64, i64)>>>;

async fn supervisor(http: String, name: String, arrivals: Arrivals) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/v1/ws"))
        .await
        .expect("the switchboard accepts");
    let login = format!(r#"{{"type":"login","protocol":1,"user":"{name}","password":"pw"}}"#);
    ws.send(Message::Text(login.into()))
        .await
        .expect("login sent");
    while let Some(Ok(frame)) = ws.next().await {
        let Message::Text(text) = frame else {
            continue;
        };
        let arrived_ms = sapa::peer::now_ms();
        if let Ok(ServerMessage::Wallboard { board }) = serde_json::from_str(&text) {
            arrivals
                .lock()
                .expect("not poisoned")
                .push((arrived_ms, board.now_ms));
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/debug/sapa".into());
    let supervisors: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50);
    let calls: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let secs: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(20);
    let window = Duration::from_secs(secs);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = format!("sqlite:{}", dir.path().join("b.db").display());
    for i in 0..calls {
        add_user(&binary, &db, &format!("a{i}"), "agent");
    }
    for i in 0..supervisors {
        add_user(&binary, &db, &format!("s{i}"), "supervisor");
    }
    let http = format!("127.0.0.1:{}", free_port());
    let media = format!("127.0.0.1:{}", free_port());
    let mut switchboard = Command::new(&binary)
        .args([
            "switchboard",
            "--listen",
            &http,
            "--media-listen",
            &media,
            "--db",
            &db,
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("the switchboard starts");
    let pid = switchboard.id();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The calls last through both windows and the settling in between.
    let talk_secs = 2.0 * secs as f64 + 15.0;
    let play = dir.path().join("t.wav");
    let tone: Vec<f32> = (0..48_000 * (talk_secs as usize + 5))
        .map(|i| 0.3 * (i as f32 * 0.05).sin())
        .collect();
    sapa::wav::write_mono_48k(&play, &tone).expect("the tone is written");
    let mut peers = Vec::new();
    for i in 0..calls {
        peers.push(tokio::spawn(agent::run(
            AgentOptions {
                voice: AgentVoice::Wav(play.clone()),
                disposition: Some("billing".into()),
                ..AgentOptions::silent(&http, &format!("a{i}"), "pw", 1)
            },
            |_| {},
        )));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut callers = Vec::new();
    for i in 0..calls {
        callers.push(tokio::spawn(caller::run(CallerOptions {
            switchboard: http.clone(),
            from: format!("+1555{i:06}"),
            name: None,
            queue: None,
            play: play.clone(),
            record: dir.path().join(format!("r{i}.wav")),
            talk_secs: Some(talk_secs),
            max_wait_secs: 60.0,
            impair: None,
            frame: Default::default(),
            to: None,
            dial_digits: None,
            survey: None,
            inband_dtmf: false,
        })));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Window 1: the calls alone.
    let calls_only_cpu = cpu_over(pid, window).await;
    let calls_only_rss = rss_kb(pid);

    // Window 2: the same calls and the supervisors.
    let arrivals: Vec<Arrivals> = (0..supervisors).map(|_| Arrivals::default()).collect();
    for (i, seen) in arrivals.iter().enumerate() {
        tokio::spawn(supervisor(http.clone(), format!("s{i}"), seen.clone()));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start_ms = sapa::peer::now_ms();
    let with_supervisors_cpu = cpu_over(pid, window).await;
    let end_ms = sapa::peer::now_ms();
    let with_supervisors_rss = rss_kb(pid);

    let window_s = (end_ms - start_ms) as f64 / 1000.0;
    let mut rates = Vec::new();
    let mut lags = Vec::new();
    // Board time -> (earliest, latest) arrival lag over the supervisors who got it.
    let mut per_board: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for seen in &arrivals {
        let seen = seen.lock().expect("not poisoned");
        let in_window: Vec<_> = seen
            .iter()
            .filter(|(arrived, _)| (start_ms..end_ms).contains(arrived))
            .collect();
        rates.push(in_window.len() as f64 / window_s);
        for &&(arrived, now_ms) in &in_window {
            let lag = arrived - now_ms;
            lags.push(lag as f64);
            let entry = per_board.entry(now_ms).or_insert((lag, lag));
            entry.0 = entry.0.min(lag);
            entry.1 = entry.1.max(lag);
        }
    }
    rates.sort_by(f64::total_cmp);
    lags.sort_by(f64::total_cmp);
    let mut spreads: Vec<f64> = per_board.values().map(|(a, b)| (b - a) as f64).collect();
    spreads.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "supervisors": supervisors,
            "calls": calls,
            "window_s": window_s,
            "updates_per_supervisor_per_s_median": percentile(&rates, 0.5),
            "updates_per_supervisor_per_s_min": rates.first(),
            "delivery_lag_ms_median": percentile(&lags, 0.5),
            "delivery_lag_ms_p90": percentile(&lags, 0.9),
            "delivery_lag_ms_max": lags.last(),
            "lag_spread_first_to_last_supervisor_ms_median": percentile(&spreads, 0.5),
            "lag_spread_first_to_last_supervisor_ms_max": spreads.last(),
            "boards_in_window": per_board.len(),
            "switchboard_cpu_pct_calls_only": calls_only_cpu,
            "switchboard_cpu_pct_with_supervisors": with_supervisors_cpu,
            "switchboard_rss_kb_calls_only": calls_only_rss,
            "switchboard_rss_kb_with_supervisors": with_supervisors_rss,
        })
    );
    let _ = switchboard.kill();
    let _ = switchboard.wait();
    for task in callers {
        task.abort();
    }
    for task in peers {
        task.abort();
    }
}

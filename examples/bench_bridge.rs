//! Benchmark: switchboard CPU per bridged call. Starts `sapa switchboard` as its own process,
//! runs N simultaneous calls (headless agents answering headless callers, both sending Opus
//! every 20 ms) from this process, and reads the switchboard's CPU time from /proc over a
//! steady window. Optionally adds one listening supervisor per call (monitoring cost).
//!
//! Run: `cargo run --release --example bench_bridge -- SAPA_BINARY CALLS SECS [--monitor]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sapa::peer::agent::{self, AgentOptions, AgentVoice};
use sapa::peer::caller::{self, CallerOptions};
use sapa::peer::supervisor::{self, MonitorPhase, SupervisorOptions};
use sapa::protocol::MonitorMode;

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/release/sapa".into());
    let calls: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let secs: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20);
    let monitor = args.iter().any(|a| a == "--monitor");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("b.db").display());
    for i in 0..calls {
        let ok = Command::new(&binary)
            .args([
                "user",
                "add",
                "--db",
                &db,
                "--name",
                &format!("a{i}"),
                "--role",
                "agent",
                "--password",
                "pw",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        if monitor {
            Command::new(&binary)
                .args([
                    "user",
                    "add",
                    "--db",
                    &db,
                    "--name",
                    &format!("s{i}"),
                    "--role",
                    "supervisor",
                    "--password",
                    "pw",
                ])
                .stdout(Stdio::null())
                .status()
                .unwrap();
        }
    }
    let mut sb = Command::new(&binary)
        .args([
            "switchboard",
            "--listen",
            "127.0.0.1:17070",
            "--media-listen",
            "127.0.0.1:17071",
            "--db",
            &db,
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let url = "127.0.0.1:17070".to_string();
    let play = dir.path().join("t.wav");
    let tone: Vec<f32> = (0..48_000 * (secs as usize + 20))
        .map(|i| 0.3 * (i as f32 * 0.05).sin())
        .collect();
    sapa::wav::write_mono_48k(&play, &tone).unwrap();
    let mut tasks = Vec::new();
    for i in 0..calls {
        tasks.push(tokio::spawn(agent::run(
            AgentOptions {
                voice: AgentVoice::Wav(play.clone()),
                ..AgentOptions::silent(&url, &format!("a{i}"), "pw", 1)
            },
            |_| {},
        )));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut callers = Vec::new();
    for i in 0..calls {
        callers.push(tokio::spawn(caller::run(CallerOptions {
            switchboard: url.clone(),
            from: format!("+1555{i:06}"),
            name: None,
            queue: None,
            play: play.clone(),
            record: dir.path().join(format!("r{i}.wav")),
            talk_secs: Some(secs as f64 + 8.0),
            max_wait_secs: 60.0,
            impair: None,
            frame: Default::default(),
            to: None,
            dial_digits: None,
            survey: None,
            inband_dtmf: false,
        })));
    }
    if monitor {
        for i in 0..calls {
            tokio::spawn(supervisor::run(SupervisorOptions {
                switchboard: url.clone(),
                user: format!("s{i}"),
                password: "pw".into(),
                agent: format!("a{i}"),
                phases: vec![MonitorPhase {
                    mode: MonitorMode::Listen,
                    secs: secs as f64 + 6.0,
                    voice: None,
                }],
                record: None,
                wait_secs: 30.0,
            }));
        }
    }
    // Let every call connect, then measure a steady window.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pid = sb.id();
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let c1 = cpu_ticks(pid);
    let wall = t0.elapsed().as_secs_f64();
    let hz = 100.0; // USER_HZ on Linux
    let cpu_pct = (c1 - c0) as f64 / hz / wall * 100.0;
    let rss = rss_kb(pid);
    println!(
        "{}",
        serde_json::json!({
            "calls": calls,
            "monitored": monitor,
            "window_s": wall,
            "switchboard_cpu_pct_of_one_core": cpu_pct,
            "cpu_pct_per_call": cpu_pct / calls as f64,
            "switchboard_rss_kb": rss,
        })
    );
    for c in callers {
        let _ = c.await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = sb.kill();
    let _ = sb.wait();
}

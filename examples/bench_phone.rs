//! Benchmark: the agent's desktop (`sapa phone`, the real window) for Issue 4's goals. It seeds
//! a SQLite database with HISTORY calls of one number (each with a disposition and notes),
//! starts a switchboard on it in this process, runs `sapa phone` as its own process under X
//! (`DISPLAY`, else its own Xvfb) with `SAPA_BENCH_LOG` (one line per painted frame, see
//! `src/phone/app.rs`), logs it in and makes it available with F6 through xdotool, then:
//!
//! 1. idle, available: the phone's CPU (`/proc/PID/stat`), repaints per second and RSS over
//!    SECS seconds;
//! 2. POPS screen-pops: a caller from that number dials and gives up after 2 s; latency =
//!    when the screen-pop frame was shown (frame start + that frame's CPU time, which the
//!    window measures to the end of showing it) − when the
//!    switchboard decided the offer (the `offers` row's `started_at`, written before the
//!    history is read and `call_offered` is sent);
//! 3. in a call answered with F9 (the caller sends a tone, the phone sends its microphone):
//!    CPU, repaints per second and RSS over SECS seconds.
//!
//! With `PULSE_SERVER` set (the virtual headset, `scripts/virtual-headset.sh`) the phone uses
//! its devices (`sapa_mouth`, `sapa_ear`, `sapa_ring`); otherwise `--no-audio`.
//! `SAPA_BENCH_MICROPHONE` names another microphone, such as the paced one of
//! `bench/paced_mic.py` (a sound card's 10 ms periods instead of the virtual microphone's
//! 2.5-3.3 ms pieces).
//!
//! Run: `cargo run --example bench_phone -- SAPA_BINARY [HISTORY] [POPS] [SECS]`
//! (defaults target/debug/sapa, 10000, 10, 20). Needs Xvfb (or a display) and xdotool.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sapa::config::SwitchboardConfig;
use sapa::peer::caller::{self, CallerOptions};
use sapa::store::{Role, Store};
use sapa::switchboard::{self, Running};

const PASSWORD: &str = "bench password";
const NUMBER: &str = "+15550100";

/// Child processes are killed when the benchmark ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the phone runs");
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
}

/// CPU ticks of each thread of `pid`, summed by thread name.
fn thread_ticks(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        *by_name.entry(name.trim().to_owned()).or_insert(0) += ticks;
    }
    by_name
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

/// RssAnon / RssFile / RssShmem of `pid` in MB: what the process allocated versus mapped
/// libraries.
fn rss_parts(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    format!(
        "anon {:.1} MB, file {:.1} MB, shmem {:.1} MB",
        field("RssAnon:"),
        field("RssFile:"),
        field("RssShmem:")
    )
}

fn epoch_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// One line of the phone's frame log.
struct Frame {
    start_us: i64,
    prev_cpu_us: i64,
    pop: Option<String>,
}

fn frames(log: &Path) -> Vec<Frame> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            if parts.next()? != "frame" {
                return None;
            }
            let start_us = parts.next()?.parse().ok()?;
            let prev_cpu_us = parts.next()?.parse().ok()?;
            let pop = match parts.next() {
                Some("pop") => parts.next().map(str::to_owned),
                _ => None,
            };
            Some(Frame {
                start_us,
                prev_cpu_us,
                pop,
            })
        })
        .collect()
}

/// CPU (% of one core), repaints per second and RSS (MB) of the phone over `window`. With
/// the benchmark's own Xvfb (`xserver`), also prints what showing the frames cost the X server.
async fn measure(pid: u32, xserver: Option<u32>, log: &Path, window: Duration) -> (f64, f64, f64) {
    let x0 = xserver.map(cpu_ticks);
    let (t0, c0, us0) = (Instant::now(), cpu_ticks(pid), epoch_us());
    let threads0 = thread_ticks(pid);
    tokio::time::sleep(window).await;
    let (c1, wall, us1) = (cpu_ticks(pid), t0.elapsed().as_secs_f64(), epoch_us());
    let mut threads: Vec<(String, f64)> = thread_ticks(pid)
        .into_iter()
        .map(|(name, t)| {
            let before = threads0.get(&name).copied().unwrap_or(0);
            (name, t.saturating_sub(before) as f64 / wall)
        })
        .filter(|(_, pct)| *pct > 0.0)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = threads
        .iter()
        .take(8)
        .map(|(name, pct)| format!("{name} {pct:.1} %"))
        .collect();
    eprintln!("  by thread: {}", top.join(", "));
    if let (Some(x), Some(x0)) = (xserver, x0) {
        let pct = cpu_ticks(x).saturating_sub(x0) as f64 / wall;
        eprintln!("  X server (Xvfb): {pct:.2} %");
    }
    let painted = frames(log)
        .iter()
        .filter(|f| (us0..us1).contains(&f.start_us))
        .count();
    // USER_HZ is 100 on Linux.
    let cpu_pct = (c1 - c0) as f64 / 100.0 / wall * 100.0;
    (cpu_pct, painted as f64 / wall, rss_kb(pid) as f64 / 1024.0)
}

/// HISTORY answered calls of NUMBER, one an hour back from now, each with a disposition.
async fn seed(db_path: &Path, history: usize) {
    use sqlx::sqlite::SqlitePoolOptions;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite:{}", db_path.display()))
        .await
        .expect("the seeded database opens");
    let mut tx = pool.begin().await.expect("a transaction");
    let now_ms = sapa::peer::now_ms();
    let codes = ["billing", "general-inquiry", "technical", "complaint"];
    let resolutions = ["resolved", "escalated", "resolved"];
    for i in 0..history {
        let id = format!("seed-{i:06}");
        let at = now_ms - (history - i) as i64 * 3_600_000;
        let agent = format!("agent{}", i % 7);
        sqlx::query(
            "INSERT INTO calls (id, direction, queue, caller_number, caller_name, agent, \
             arrived_at, answered_at, ended_at, end_reason, wait_ms, talk_ms, csat) \
             VALUES (?, 'inbound', 'support', ?, 'Budi Santoso', ?, ?, ?, ?, 'caller_hung_up', \
             4000, 180000, ?)",
        )
        .bind(&id)
        .bind(NUMBER)
        .bind(&agent)
        .bind(at)
        .bind(at + 4_000)
        .bind(at + 184_000)
        .bind((i % 5 + 1) as i64)
        .execute(&mut *tx)
        .await
        .expect("a call row");
        sqlx::query(
            "INSERT INTO dispositions (request_id, call_id, agent, code, resolution, notes, \
             submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(format!("req-{id}"))
        .bind(&id)
        .bind(&agent)
        .bind(codes[i % codes.len()])
        .bind(resolutions[i % resolutions.len()])
        .bind(format!(
            "Call {i}: customer asked about the invoice and the router; explained the charges \
             and booked a technician visit for the following week."
        ))
        .bind(at + 200_000)
        .execute(&mut *tx)
        .await
        .expect("a disposition row");
    }
    tx.commit().await.expect("seeded");
    pool.close().await;
}

fn xdotool(args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .args(args)
        .output()
        .expect("xdotool runs (apt-get install xdotool)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn window_id() -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = xdotool(&["search", "--onlyvisible", "--name", "^Sapa$"]);
        if let Some(id) = found.lines().next() {
            return id.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "the phone window did not appear");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn press(window: &str, key: &str) {
    xdotool(&["windowfocus", "--sync", window]);
    xdotool(&["mousemove", "--window", window, "400", "600"]);
    xdotool(&["key", key]);
}

async fn state_now(store: &Store) -> Option<String> {
    let log = store
        .agent_state_log("ana", 0, i64::MAX)
        .await
        .expect("state log reads");
    log.last().map(|e| e.state.clone())
}

async fn wait_for_state(store: &Store, state: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while state_now(store).await.as_deref() != Some(state) {
        assert!(
            Instant::now() < deadline,
            "ana never reached {state}; last: {:?}",
            state_now(store).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn press_until(store: &Store, window: &str, key: &str, state: &str) {
    for _ in 0..15 {
        press(window, key);
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            if state_now(store).await.as_deref() == Some(state) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("{key} never brought ana to {state}");
}

fn tone_wav(dir: &Path, freq_hz: f32, secs: f32) -> PathBuf {
    let path = dir.join(format!("tone-{freq_hz}.wav"));
    let samples: Vec<f32> = (0..(48_000.0 * secs) as usize)
        .map(|i| 0.5 * (std::f32::consts::TAU * freq_hz * i as f32 / 48_000.0).sin())
        .collect();
    sapa::wav::write_mono_48k(&path, &samples).expect("tone written");
    path
}

fn caller_options(
    running: &Running,
    dir: &Path,
    talk_secs: f64,
    max_wait_secs: f64,
) -> CallerOptions {
    CallerOptions {
        switchboard: running.ws_url(),
        from: NUMBER.into(),
        name: Some("Budi Santoso".into()),
        queue: None,
        play: tone_wav(dir, 1570.0, talk_secs as f32 + 1.0),
        record: dir.join("caller-heard.wav"),
        talk_secs: Some(talk_secs),
        max_wait_secs,
        impair: None,
        frame: Default::default(),
        to: None,
        dial_digits: None,
        survey: None,
        inband_dtmf: false,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/debug/sapa".into());
    let history: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let pops: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let secs: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(20);
    let window = Duration::from_secs(secs);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let db_path = dir.path().join("bench.db");
    let db_url = format!("sqlite:{}", db_path.display());
    {
        let store = Store::open(&db_url).await.expect("the store opens");
        store
            .add_user("ana", Role::Agent, PASSWORD)
            .await
            .expect("ana added");
        store
            .upsert_customer(NUMBER, Some("Budi Santoso"))
            .await
            .expect("customer added");
        store.close().await;
    }
    let seeding = Instant::now();
    seed(&db_path, history).await;
    eprintln!(
        "seeded {history} calls of {NUMBER} in {:?}",
        seeding.elapsed()
    );

    let running = switchboard::start(switchboard::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        media_listen: "127.0.0.1:0".parse().unwrap(),
        db_url,
        config: SwitchboardConfig::default(),
    })
    .await
    .expect("the switchboard starts");

    // A display: the one we are given, else our own Xvfb.
    let mut _xvfb = None;
    let mut xserver = None;
    let display = match std::env::var("DISPLAY") {
        Ok(d) if !d.is_empty() => d,
        _ => {
            let display = ":87".to_owned();
            let child = Command::new("Xvfb")
                .args([display.as_str(), "-screen", "0", "1280x900x24"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb starts (apt-get install xvfb)");
            xserver = Some(child.id());
            _xvfb = Some(Killed(child));
            std::thread::sleep(Duration::from_secs(1));
            // SAFETY: set before any other thread reads the environment of this process
            // (xdotool children inherit it).
            unsafe { std::env::set_var("DISPLAY", &display) };
            display
        }
    };

    let log = dir.path().join("frames.log");
    let headset = std::env::var_os("PULSE_SERVER").is_some();
    let mut phone = Command::new(&binary);
    phone
        .args(["phone", "--switchboard", &running.ws_url(), "--user", "ana"])
        .env("SAPA_PASSWORD", PASSWORD)
        .env("SAPA_BENCH_LOG", &log)
        .env("DISPLAY", &display)
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if headset {
        let config = dir.path().join("phone.toml");
        let microphone =
            std::env::var("SAPA_BENCH_MICROPHONE").unwrap_or_else(|_| "sapa_mouth".into());
        std::fs::write(
            &config,
            format!(
                "microphone = \"{microphone}\"\nspeaker = \"sapa_ear\"\nringer = \"sapa_ring\"\n"
            ),
        )
        .expect("phone config written");
        phone.arg("--config").arg(&config);
    } else {
        phone.arg("--no-audio");
    }
    let phone = Killed(phone.spawn().expect("sapa phone starts"));
    let pid = phone.0.id();
    let window_x = window_id();
    wait_for_state(&running.store, "not_ready", Duration::from_secs(60)).await;
    press_until(&running.store, &window_x, "F6", "available").await;
    // Move the pointer off the window and let the window settle (no hover redraws).
    xdotool(&["mousemove", "1270", "890"]);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (idle_cpu, idle_fps, idle_rss) = measure(pid, xserver, &log, window).await;
    let idle_parts = rss_parts(pid);
    eprintln!(
        "idle: {idle_cpu:.2} % CPU, {idle_fps:.2} frames/s, RSS {idle_rss:.1} MB ({idle_parts})"
    );

    let mut latencies_ms = Vec::new();
    let mut paint_ms = Vec::new();
    for n in 0..pops {
        let popped_before = frames(&log).iter().filter(|f| f.pop.is_some()).count();
        let call = tokio::spawn(caller::run(caller_options(&running, dir.path(), 1.0, 2.0)));
        wait_for_state(&running.store, "offered", Duration::from_secs(20)).await;
        // The frame after the screen-pop carries the screen-pop frame's CPU time.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (call_id, painted_us, cpu_us) = loop {
            let all = frames(&log);
            let popped: Vec<usize> = (0..all.len()).filter(|&i| all[i].pop.is_some()).collect();
            if popped.len() > popped_before {
                let i = popped[popped_before];
                if let Some(next) = all.get(i + 1) {
                    let f = &all[i];
                    break (
                        f.pop.clone().expect("a pop frame"),
                        f.start_us + next.prev_cpu_us.max(0),
                        next.prev_cpu_us,
                    );
                }
            }
            assert!(Instant::now() < deadline, "no screen-pop painted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let offers = running.store.offers(&call_id).await.expect("offers read");
        let offered_ms = offers.first().expect("the offer is stored").started_at;
        let latency_ms = (painted_us - offered_ms * 1000) as f64 / 1000.0;
        eprintln!(
            "screen-pop {n}: {latency_ms:.1} ms after the offer (the frame's CPU {:.1} ms)",
            cpu_us as f64 / 1000.0
        );
        latencies_ms.push(latency_ms);
        paint_ms.push(cpu_us as f64 / 1000.0);
        let _ = call.await;
        wait_for_state(&running.store, "available", Duration::from_secs(20)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    latencies_ms.sort_by(f64::total_cmp);
    paint_ms.sort_by(f64::total_cmp);

    let talk = secs as f64 + 8.0;
    let call = tokio::spawn(caller::run(caller_options(
        &running,
        dir.path(),
        talk,
        30.0,
    )));
    wait_for_state(&running.store, "offered", Duration::from_secs(20)).await;
    press_until(&running.store, &window_x, "F9", "on_call").await;
    xdotool(&["mousemove", "1270", "890"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (call_cpu, call_fps, call_rss) = measure(pid, xserver, &log, window).await;
    let call_parts = rss_parts(pid);
    eprintln!(
        "in call: {call_cpu:.2} % CPU, {call_fps:.2} frames/s, RSS {call_rss:.1} MB ({call_parts})"
    );
    let _ = call.await;

    println!(
        "phone ({}; {}), {history} calls in the caller's history",
        binary,
        if headset {
            "virtual headset"
        } else {
            "--no-audio"
        }
    );
    println!(
        "idle (available), {secs} s: CPU {idle_cpu:.2} % of a core, {idle_fps:.2} repaints/s, \
         RSS {idle_rss:.1} MB ({idle_parts})"
    );
    println!(
        "in call, {secs} s: CPU {call_cpu:.2} % of a core, {call_fps:.2} repaints/s, \
         RSS {call_rss:.1} MB ({call_parts})"
    );
    println!(
        "screen-pop, {} offers: median {:.1} ms, p90 {:.1} ms, max {:.1} ms after the offer \
         (painting the screen-pop frame: median {:.1} ms)",
        latencies_ms.len(),
        percentile(&latencies_ms, 0.5),
        percentile(&latencies_ms, 0.9),
        latencies_ms.last().copied().unwrap_or(f64::NAN),
        percentile(&paint_ms, 0.5),
    );
    drop(phone);
    running.shutdown().await;
}

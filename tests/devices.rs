//! Real audio devices on the virtual headset (scripts/virtual-headset.sh: a private PulseAudio
//! with null sinks). Sound goes in with `paplay` and is taken out with `parecord`, so these
//! tests check the device path with tools that are not ours.
//!
//! Without PulseAudio they start it through the script; if that fails they print
//! "skipped: no PulseAudio" and pass, except under CI (env `CI` set), where they must run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sapa::audio::device::{DeviceEvent, FRAME, Headset, Ringer, Role};
use sapa::config::SwitchboardConfig;
use sapa::peer::agent::{AgentOptions, AgentVoice, HeadsetChoice};
use sapa::peer::caller::CallerOptions;
use sapa::peer::{agent, caller};

use common::*;

/// The virtual devices are shared: one test at a time plays into and records from them.
static DEVICES: Mutex<()> = Mutex::new(());

/// Makes sure the virtual headset is up and `PULSE_SERVER` points at it. False: skip.
fn virtual_headset() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        if has_sapa_devices() {
            return true;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/virtual-headset.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output();
        let server = out.ok().filter(|o| o.status.success()).and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("export PULSE_SERVER=").map(str::to_owned))
        });
        match server {
            Some(server) => {
                // SAFETY: every test in this binary calls `virtual_headset()` (directly or via
                // `lock_devices`) before it starts threads or reads the environment, and the
                // OnceLock makes the others wait here until this write is done.
                unsafe { std::env::set_var("PULSE_SERVER", server) };
                has_sapa_devices()
            }
            None if std::env::var_os("CI").is_some() => {
                panic!("CI: the virtual headset must start (scripts/virtual-headset.sh start)")
            }
            None => false,
        }
    })
}

fn has_sapa_devices() -> bool {
    std::env::var_os("PULSE_SERVER").is_some()
        && Command::new("pactl")
            .args(["list", "short", "sinks"])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).contains("sapa_ear")
            })
}

fn lock_devices() -> Option<std::sync::MutexGuard<'static, ()>> {
    let guard = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    if virtual_headset() {
        Some(guard)
    } else {
        eprintln!("skipped: no PulseAudio");
        None
    }
}

/// Agent "ana" on the virtual headset (`sapa_mouth`, `sapa_ear`), answering `calls` calls.
fn headset_agent(url: &str, calls: u32) -> AgentOptions {
    AgentOptions {
        voice: AgentVoice::Devices(HeadsetChoice {
            input: Some("sapa_mouth".into()),
            output: Some("sapa_ear".into()),
            ..HeadsetChoice::default()
        }),
        ..plain_agent(url, "ana", calls)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
// The guard is held on purpose for the whole call: it keeps the other device tests (plain
// threads, not tasks) off the shared virtual devices.
#[allow(clippy::await_holding_lock)]
async fn a_call_on_the_headset_carries_both_directions() {
    let Some(_devices) = lock_devices() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let caller_tone = tone_wav(dir.path(), "caller.wav", 440.0, 4.0);
    let mouth_tone = tone_wav(dir.path(), "mouth.wav", 1000.0, 9.0);
    let caller_rec = dir.path().join("caller-heard.wav");
    let agent_rec = dir.path().join("agent-heard.wav");

    let options = AgentOptions {
        record: Some(agent_rec.clone()),
        ..headset_agent(&url, 1)
    };
    let agent_task = tokio::spawn(agent::run(options, |_| {}));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let ear = Recorder::start("sapa_ear.monitor", dir.path().join("ear.raw"));
    let mut mouth = play_into("sapa_mouth_in", &mouth_tone);
    let report = caller::run(CallerOptions {
        record: caller_rec.clone(),
        ..plain_caller(&url, "+15550123", &caller_tone, dir.path())
    })
    .await
    .expect("call completes");
    assert!(report.answered, "{report:?}");
    let agent_reports = tokio::time::timeout(Duration::from_secs(20), agent_task)
        .await
        .expect("agent finishes")
        .unwrap()
        .expect("agent ok");
    assert_eq!(agent_reports.len(), 1);
    let ear_heard = ear.stop();
    let _ = mouth.kill();
    let _ = mouth.wait();

    // What was said into the microphone reached the caller.
    let caller_heard = read(&caller_rec);
    let c = dominance(&caller_heard, 1000.0, 440.0);
    // What the caller said came out of the headset (the call lasts ~4 s of the recording).
    let e = seconds_dominated(&ear_heard, 440.0, 1000.0);
    // And --record still records what the agent heard.
    let a = dominance(&read(&agent_rec), 440.0, 1000.0);
    eprintln!(
        "caller heard the mic's 1000 Hz in {c:.2} of windows; the headset played 440 Hz for \
         {e:.1} s of {:.1} s; agent recording {a:.2}",
        ear_heard.len() as f64 / 48_000.0
    );
    assert!(
        c > 0.7,
        "caller heard the microphone in only {c:.2} of windows"
    );
    assert!(e > 3.0, "the headset played the caller for only {e:.1} s");
    assert!(
        a > 0.7,
        "agent recording has the caller in only {a:.2} of windows"
    );
    sb.shutdown().await;
}

/// Whether each of this process's PulseAudio streams (microphones and speakers) is corked
/// (paused), as the server reports it.
fn our_streams_corked() -> Vec<bool> {
    let pid = format!("application.process.id = \"{}\"", std::process::id());
    let mut corked = Vec::new();
    for kind in ["source-outputs", "sink-inputs"] {
        let out = Command::new("pactl")
            .args(["list", kind])
            .env("LC_ALL", "C")
            .output()
            .expect("pactl runs");
        for block in String::from_utf8_lossy(&out.stdout).split("\n\n") {
            if block.contains(&pid) {
                corked.push(block.contains("Corked: yes"));
            }
        }
    }
    corked
}

/// Polls [`our_streams_corked`] until `want` holds or `limit` passes; returns the last state.
async fn wait_for_streams(limit: Duration, want: impl Fn(&[bool]) -> bool) -> Vec<bool> {
    let deadline = Instant::now() + limit;
    loop {
        let corked = tokio::task::spawn_blocking(our_streams_corked)
            .await
            .unwrap();
        if want(&corked) || Instant::now() > deadline {
            return corked;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A headless agent on a headset keeps it paused while no call rings or is connected, as the
/// phone does: the server reports its two device streams corked before the first call,
/// running in the call and corked again after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(clippy::await_holding_lock)]
async fn an_agent_on_the_headset_pauses_it_between_calls() {
    let Some(_devices) = lock_devices() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sb = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&sb, &["ana"]).await;
    let url = sb.ws_url();
    let agent_task = tokio::spawn(agent::run(headset_agent(&url, 2), |_| {}));
    let all_corked = |c: &[bool]| c.len() == 2 && c.iter().all(|&c| c);
    let before = wait_for_streams(Duration::from_secs(10), all_corked).await;
    assert!(all_corked(&before), "paused before any call: {before:?}");

    let caller_tone = tone_wav(dir.path(), "caller.wav", 440.0, 3.0);
    let caller = tokio::spawn(caller::run(plain_caller(
        &url,
        "+15550124",
        &caller_tone,
        dir.path(),
    )));
    let running = |c: &[bool]| c.len() == 2 && c.iter().all(|&c| !c);
    let during = wait_for_streams(Duration::from_secs(5), running).await;
    let report = caller.await.unwrap().expect("call completes");
    assert!(report.answered, "{report:?}");
    let after = wait_for_streams(Duration::from_secs(3), all_corked).await;
    agent_task.abort();
    eprintln!("streams corked before {before:?}, in the call {during:?}, after {after:?}");
    assert!(running(&during), "running in the call: {during:?}");
    assert!(all_corked(&after), "paused again after the call: {after:?}");
    sb.shutdown().await;
}

#[test]
fn switching_the_speaker_mid_stream_keeps_the_microphone_and_missing_names_fall_back() {
    let Some(_devices) = lock_devices() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut headset, notices) =
        Headset::open(Some("no-such-microphone"), Some("sapa_ear")).expect("headset opens");
    assert_eq!(notices.len(), 1);
    assert_eq!(
        notices[0].to_string(),
        "microphone 'no-such-microphone' not found; using default 'sapa_mouth'"
    );

    let ring = Recorder::start("sapa_ring.monitor", dir.path().join("ring.raw"));
    let mouth_tone = tone_wav(dir.path(), "mouth.wav", 1000.0, 3.0);
    let mut mouth = play_into("sapa_mouth_in", &mouth_tone);
    let tone: Vec<f32> = (0..48_000 * 3)
        .map(|i| 0.5 * (std::f32::consts::TAU * 440.0 * i as f32 / 48_000.0).sin())
        .collect();
    let mut mic = [0f32; FRAME];
    let mut heard_mic = Vec::new();
    let mut mic_ok = 0;
    let start = Instant::now();
    for (n, chunk) in tone.chunks_exact(FRAME).enumerate() {
        if n == 50 {
            // One second in: the agent moves the call to another output.
            assert_eq!(headset.switch_speaker(Some("sapa_ring")).unwrap(), None);
        }
        let frame: &[f32; FRAME] = chunk.try_into().unwrap();
        headset.write_speaker_frame(frame);
        if headset.read_mic_frame(&mut mic) {
            mic_ok += 1;
            heard_mic.extend_from_slice(&mic);
        }
        // A 20 ms clock, as the voice loop has.
        let next = start + Duration::from_millis(20 * (n as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let stats = headset.stats();
    drop(headset);
    let ring_heard = ring.stop();
    let _ = mouth.kill();
    let _ = mouth.wait();
    eprintln!("{stats:?}; mic frames {mic_ok}/150");
    assert_eq!(stats.speaker_device, "sapa_ring");
    assert_eq!(stats.mic_device, "sapa_mouth");
    let on_ring = seconds_dominated(&ring_heard, 440.0, 1000.0);
    assert!(
        (1.5..=2.3).contains(&on_ring),
        "after the switch the ring device played 440 Hz for {on_ring:.1} s (expected ~2 s)"
    );
    assert!(
        mic_ok >= 130,
        "microphone frames lost around the switch: {mic_ok}/150"
    );
    assert!(
        seconds_dominated(&heard_mic, 1000.0, 440.0) > 2.0,
        "the microphone heard what was played into it"
    );
    assert!(stats.speaker_buffered_ms <= 60.0, "{stats:?}");
    assert!(stats.mic_buffered_ms <= 80.0, "{stats:?}");
}

#[test]
fn the_ringer_loops_on_its_own_device_until_stopped() {
    let Some(_devices) = lock_devices() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut ringer, notice) = Ringer::open(Some("sapa_ring")).expect("ringer opens");
    assert_eq!(notice, None);
    let rec = Recorder::start("sapa_ring.monitor", dir.path().join("ring.raw"));
    std::thread::sleep(Duration::from_millis(300));
    // 100 ms of 440 Hz: looped, it rings continuously.
    let burst: Vec<f32> = (0..4800)
        .map(|i| 0.5 * (std::f32::consts::TAU * 440.0 * i as f32 / 48_000.0).sin())
        .collect();
    ringer.play_loop(&burst);
    std::thread::sleep(Duration::from_millis(1500));
    ringer.stop();
    std::thread::sleep(Duration::from_millis(700));
    let heard = rec.stop();
    drop(ringer);
    let rang = seconds_dominated(&heard, 440.0, 1000.0);
    let total = heard.len() as f64 / 48_000.0;
    eprintln!("rang for {rang:.1} s of {total:.1} s");
    assert!(
        (1.2..=1.8).contains(&rang),
        "rang for {rang:.1} s, expected ~1.5 s"
    );
}

#[test]
fn a_paused_headset_goes_quiet_and_resumes_at_once() {
    let Some(_devices) = lock_devices() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut headset, _) =
        Headset::open(Some("sapa_mouth"), Some("sapa_ear")).expect("headset opens");
    let ear = Recorder::start("sapa_ear.monitor", dir.path().join("ear.raw"));
    let mouth_tone = tone_wav(dir.path(), "mouth.wav", 1000.0, 4.0);
    let mut mouth = play_into("sapa_mouth_in", &mouth_tone);
    std::thread::sleep(Duration::from_millis(300));
    let tone: Vec<f32> = (0..48_000 * 3)
        .map(|i| 0.5 * (std::f32::consts::TAU * 440.0 * i as f32 / 48_000.0).sin())
        .collect();
    let mut mic = [0f32; FRAME];
    // Microphone frames per phase: running, paused, running again.
    let mut mic_ok = [0u32; 3];
    let mut first_mic_after_resume = None;
    let mut resume_took = Duration::ZERO;
    let start = Instant::now();
    for (n, chunk) in tone.chunks_exact(FRAME).enumerate() {
        let phase = n / 50;
        if n == 50 {
            headset.set_running(false).expect("pauses");
            assert!(!headset.is_running());
        }
        if n == 100 {
            let t = Instant::now();
            headset.set_running(true).expect("resumes");
            resume_took = t.elapsed();
        }
        let frame: &[f32; FRAME] = chunk.try_into().unwrap();
        headset.write_speaker_frame(frame);
        if headset.read_mic_frame(&mut mic) {
            mic_ok[phase] += 1;
            if phase == 2 && first_mic_after_resume.is_none() {
                first_mic_after_resume = Some(n - 100);
            }
        }
        let next = start + Duration::from_millis(20 * (n as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let stats = headset.stats();
    drop(headset);
    std::thread::sleep(Duration::from_millis(200));
    let ear_heard = ear.stop();
    let _ = mouth.kill();
    let _ = mouth.wait();
    let played = seconds_dominated(&ear_heard, 440.0, 1000.0);
    eprintln!(
        "mic frames {mic_ok:?}, first after resume at frame {first_mic_after_resume:?}, resume \
         took {resume_took:?}, the ear played 440 Hz for {played:.1} s; {stats:?}"
    );
    assert_eq!(mic_ok[1], 0, "no microphone frames while paused");
    assert!(mic_ok[0] >= 40 && mic_ok[2] >= 40, "{mic_ok:?}");
    assert!(
        first_mic_after_resume.is_some_and(|f| f <= 5),
        "the microphone is back within 100 ms: {first_mic_after_resume:?}"
    );
    assert!(resume_took < Duration::from_millis(200), "{resume_took:?}");
    // 2 of the 3 seconds were played: the paused second is silence, not a delayed second.
    assert!(
        (1.5..=2.5).contains(&played),
        "the ear played 440 Hz for {played:.1} s (expected ~2 s)"
    );
    assert_eq!(stats.speaker_overruns, 0, "{stats:?}");
}

/// Installs a handler that does nothing for SIGUSR1 (which nothing else here uses), without
/// SA_RESTART, so that the calls it interrupts fail with EINTR as they would for most
/// handlers.
fn catch_sigusr1() {
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: a handler that touches nothing, for a signal no other code in this binary uses.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
}

/// Sends SIGUSR1 to every thread of this process; returns to how many it went.
fn sigusr1_every_thread() -> u32 {
    let mut sent = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        // SAFETY: tgkill with our own pid and one of our thread ids.
        if unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) } == 0 {
            sent += 1;
        }
    }
    sent
}

/// A signal caught by a handler interrupts whatever system call the thread it lands on is
/// waiting in (`epoll_wait` fails with EINTR). Debuggers and tracers attaching to the phone
/// do the same. The PulseAudio client's thread must shrug it off: before, it took EINTR for
/// a dead connection and quit, and the headset went silent for the rest of the call.
#[test]
fn signals_landing_on_the_audio_threads_do_not_stop_the_headset() {
    let Some(_devices) = lock_devices() else {
        return;
    };
    catch_sigusr1();
    let dir = tempfile::tempdir().unwrap();
    let (mut headset, _) =
        Headset::open(Some("sapa_mouth"), Some("sapa_ear")).expect("headset opens");
    let mouth_tone = tone_wav(dir.path(), "mouth.wav", 1000.0, 4.0);
    let mut mouth = play_into("sapa_mouth_in", &mouth_tone);
    std::thread::sleep(Duration::from_millis(300));
    let silence = [0f32; FRAME];
    let mut mic = [0f32; FRAME];
    // Microphone frames before the signals and after them (one second each).
    let mut mic_ok = [0u32; 2];
    let mut signalled = 0;
    let start = Instant::now();
    for n in 0..100u64 {
        let phase = (n / 50) as usize;
        if (50..60).contains(&n) {
            // Every thread of this process, the audio client's among them, ten times.
            signalled += sigusr1_every_thread();
        }
        headset.write_speaker_frame(&silence);
        if headset.read_mic_frame(&mut mic) {
            mic_ok[phase] += 1;
        }
        let next = start + Duration::from_millis(20 * (n + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let stats = headset.stats();
    drop(headset);
    let _ = mouth.kill();
    let _ = mouth.wait();
    eprintln!("signals sent {signalled}; mic frames before / after {mic_ok:?}; {stats:?}");
    assert!(signalled >= 20, "the signals were sent: {signalled}");
    assert!(
        mic_ok[0] >= 40,
        "the microphone ran before the signals: {mic_ok:?}"
    );
    assert!(
        mic_ok[1] >= 40,
        "the microphone kept running through the signals: {mic_ok:?}"
    );
    assert_eq!(stats.stream_errors, 0, "{stats:?}");
}

/// Where PulseAudio is missing the headset runs on cpal's ALSA host, whose stream threads
/// wait in `poll()`. A caught signal interrupts that wait with EINTR, which cpal took for a
/// stream error: the agent was told their microphone and speaker failed. Runs the ALSA
/// host's "default" device (the ALSA pulse plugin routes it to the virtual headset) both ways
/// with 10 ms periods and signals every thread; the streams must go on without an error.
#[test]
fn signals_landing_on_the_alsa_threads_are_no_stream_errors() {
    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let Some(_devices) = lock_devices() else {
        return;
    };
    catch_sigusr1();
    let host = cpal::host_from_id(cpal::HostId::Alsa).expect("cpal has its ALSA host");
    let config = cpal::StreamConfig {
        channels: 1,
        sample_rate: 48_000,
        buffer_size: cpal::BufferSize::Fixed(480),
    };
    let mic_periods = Arc::new(AtomicU64::new(0));
    let speaker_periods = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let on_error = |errors: &Arc<Mutex<Vec<String>>>| {
        let errors = errors.clone();
        move |e: cpal::Error| errors.lock().unwrap().push(e.to_string())
    };
    let mic = host
        .default_input_device()
        .expect("ALSA's default capture device (the pulse plugin: libasound2-plugins)");
    let counted = mic_periods.clone();
    let mic = mic
        .build_input_stream::<f32, _, _>(
            config,
            move |_: &[f32], _| {
                counted.fetch_add(1, Relaxed);
            },
            on_error(&errors),
            Some(Duration::from_secs(2)),
        )
        .expect("ALSA capture opens");
    let speaker = host
        .default_output_device()
        .expect("ALSA's default playback device");
    let counted = speaker_periods.clone();
    let speaker = speaker
        .build_output_stream::<f32, _, _>(
            config,
            move |out: &mut [f32], _| {
                out.fill(0.0);
                counted.fetch_add(1, Relaxed);
            },
            on_error(&errors),
            Some(Duration::from_secs(2)),
        )
        .expect("ALSA playback opens");
    mic.play().expect("capture starts");
    speaker.play().expect("playback starts");
    std::thread::sleep(Duration::from_millis(500));
    let mut signalled = 0;
    for _ in 0..10 {
        signalled += sigusr1_every_thread();
        std::thread::sleep(Duration::from_millis(20));
    }
    let after_signals = [mic_periods.load(Relaxed), speaker_periods.load(Relaxed)];
    std::thread::sleep(Duration::from_millis(500));
    let at_end = [mic_periods.load(Relaxed), speaker_periods.load(Relaxed)];
    drop((mic, speaker));
    let errors = errors.lock().unwrap().clone();
    eprintln!(
        "signals sent {signalled}; periods (mic, speaker) after the signals {after_signals:?}, \
         0.5 s later {at_end:?}; errors {errors:?}"
    );
    assert!(signalled >= 20, "the signals were sent: {signalled}");
    assert!(errors.is_empty(), "stream errors: {errors:?}");
    for (what, (before, after)) in ["mic", "speaker"]
        .iter()
        .zip(after_signals.iter().zip(&at_end))
    {
        assert!(
            after - before >= 20,
            "the {what} went on after the signals: {before} -> {after} periods in 0.5 s"
        );
    }
}

/// The audio server dies under the call and comes back (a PulseAudio or PipeWire restart, a
/// crash): every stream of the headset is gone with its connection. Within about a second of
/// the server's return the headset notices that its devices stopped calling back, opens them
/// again on the new server and says so, and the microphone delivers again.
/// Runs `frames` 20 ms frames in real time through the headset (silence out, microphone in,
/// `watch_devices` each frame), with `mishap` before frame 50; the schedule restarts from
/// its return (no catching up). Returns how many microphone frames came in the 50 frames
/// before the mishap and in the last 50, and the device events.
fn run_headset(
    headset: &mut Headset,
    frames: u64,
    mishap: impl FnOnce(),
) -> ([u32; 2], Vec<DeviceEvent>) {
    let silence = [0f32; FRAME];
    let mut mic = [0f32; FRAME];
    let mut mic_ok = [0u32; 2];
    let mut events = Vec::new();
    let mut mishap = Some(mishap);
    let mut start = Instant::now();
    for n in 0..frames {
        if n == 50
            && let Some(mishap) = mishap.take()
        {
            mishap();
            start = Instant::now() - Duration::from_millis(20 * n);
        }
        headset.write_speaker_frame(&silence);
        let got = headset.read_mic_frame(&mut mic);
        if got && n < 50 {
            mic_ok[0] += 1;
        } else if got && n >= frames - 50 {
            mic_ok[1] += 1;
        }
        events.extend(headset.watch_devices(Instant::now()));
        let next = start + Duration::from_millis(20 * (n + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    (mic_ok, events)
}

#[test]
fn a_headset_opens_its_devices_again_after_the_audio_server_restarts() {
    let Some(_devices) = lock_devices() else {
        return;
    };
    let server = std::env::var("PULSE_SERVER").expect("set by lock_devices");
    let Some(dir) = server
        .strip_prefix("unix:")
        .and_then(|socket| Path::new(socket).parent())
        .filter(|dir| dir.join("pid").exists())
    else {
        eprintln!("skipped: the virtual headset at {server} was not started by the script");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/virtual-headset.sh");
    let headset_script = |what: &str| {
        let ok = Command::new("bash")
            .arg(&script)
            .arg(what)
            .env("SAPA_HEADSET_DIR", dir)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "virtual-headset.sh {what}");
    };
    let (mut headset, _) =
        Headset::open(Some("sapa_mouth"), Some("sapa_ear")).expect("headset opens");
    let (mic_ok, recoveries) = run_headset(&mut headset, 250, || {
        headset_script("stop");
        headset_script("start");
    });
    let stats = headset.stats();
    drop(headset);
    eprintln!("recoveries {recoveries:?}; mic frames before / at the end {mic_ok:?}; {stats:?}");
    assert!(mic_ok[0] >= 40, "the microphone ran: {mic_ok:?}");
    for (role, name) in [
        (Role::Microphone, "sapa_mouth"),
        (Role::Speaker, "sapa_ear"),
    ] {
        let reopened = DeviceEvent::Reopened {
            role,
            lost: name.into(),
            now: name.into(),
        };
        assert!(
            recoveries.contains(&reopened),
            "the {role} is open again: {recoveries:?}"
        );
    }
    assert!(
        mic_ok[1] >= 40,
        "the microphone delivers again in the last second: {mic_ok:?}"
    );
}

/// Runs `pactl` on the virtual headset's server; returns what it printed (a module's index).
fn pactl(args: &[&str]) -> String {
    let out = Command::new("pactl")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("pactl runs");
    assert!(out.status.success(), "pactl {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_headset_unplugged_mid_stream_goes_on_on_the_default_and_says_so() {
    let Some(_devices) = lock_devices() else {
        return;
    };
    // A "USB headset" that can be unplugged: a sink of its own (its monitor is the microphone).
    let module = pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=sapa_usb",
        "sink_properties=device.description=USB-headset",
    ]);
    let (mut headset, notices) =
        Headset::open(Some("sapa_usb.monitor"), Some("sapa_usb")).expect("headset opens");
    assert!(notices.is_empty(), "both devices found: {notices:?}");
    let (mic_ok, events) = run_headset(&mut headset, 200, || {
        pactl(&["unload-module", &module]);
    });
    let stats = headset.stats();
    drop(headset);
    eprintln!("events {events:?}; mic frames before / at the end {mic_ok:?}; {stats:?}");
    // The two streams are moved and told on their own threads: in either order.
    let mut events = events;
    events.sort_by_key(|e| match e {
        DeviceEvent::Moved {
            role: Role::Microphone,
            ..
        } => 0,
        _ => 1,
    });
    assert_eq!(
        events,
        [
            DeviceEvent::Moved {
                role: Role::Microphone,
                from: "sapa_usb.monitor".into(),
                to: "sapa_mouth".into(),
                from_gone: true,
            },
            DeviceEvent::Moved {
                role: Role::Speaker,
                from: "sapa_usb".into(),
                to: "sapa_ear".into(),
                from_gone: true,
            },
        ],
        "each device's move is told once, naming the default it went to"
    );
    assert_eq!(
        events[0].to_string(),
        "microphone 'sapa_usb.monitor' is gone; now using 'sapa_mouth'"
    );
    assert_eq!(
        (stats.mic_device.as_str(), stats.speaker_device.as_str()),
        ("sapa_mouth", "sapa_ear")
    );
    assert_eq!(stats.stream_errors, 0, "a move is not an error");
    assert!(mic_ok[0] >= 40, "the microphone ran: {mic_ok:?}");
    assert!(
        mic_ok[1] >= 40,
        "the microphone goes on on the default: {mic_ok:?}"
    );
}

#[test]
fn a_ringer_whose_device_is_unplugged_names_the_device_it_rings_on_now() {
    let Some(_devices) = lock_devices() else {
        return;
    };
    let module = pactl(&["load-module", "module-null-sink", "sink_name=sapa_usb_ring"]);
    let (mut ringer, notice) = Ringer::open(Some("sapa_usb_ring")).expect("ringer opens");
    assert_eq!(notice, None);
    ringer.play_loop(&[0.1f32; 4800]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ringer.watch_device(), None, "nothing moved yet");
    let unplugged = Instant::now();
    pactl(&["unload-module", &module]);
    let deadline = Instant::now() + Duration::from_secs(3);
    let event = loop {
        if let Some(event) = ringer.watch_device() {
            break Some(event);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let told_after = unplugged.elapsed();
    ringer.stop();
    // The audio client tells of the move as the server does, not at the stream's next timing
    // poll (once a second).
    assert!(
        told_after < Duration::from_millis(500),
        "the move was told {told_after:?} after the unplug"
    );
    assert_eq!(
        event,
        Some(DeviceEvent::Moved {
            role: Role::Ringer,
            from: "sapa_usb_ring".into(),
            to: "sapa_ear".into(),
            from_gone: true,
        })
    );
    assert_eq!(ringer.device_name(), "sapa_ear");
    assert_eq!(ringer.watch_device(), None, "told once");
}

#[test]
fn no_audio_device_is_a_clear_error() {
    // Run in a child process with an environment that has no sound at all: PULSE_SERVER at a
    // missing socket and an empty ALSA configuration (so not even ALSA's "null" device).
    if std::env::var_os("SAPA_NO_DEVICE_CHILD").is_some() {
        let err = match Headset::open(None, None) {
            Ok(_) => panic!("a headset opened with no audio device"),
            Err(e) => e.to_string(),
        };
        println!("error: {err}");
        // Either wording names what is missing: no input device, or the default one failing.
        assert!(
            err.contains("no audio input device found") || err.contains("cannot open input device"),
            "{err}"
        );
        // The ringer must not panic either; when it fails, the error names the output side.
        if let Err(e) = sapa::audio::device::Ringer::open(Some("pc-speaker")) {
            let err = e.to_string();
            assert!(err.contains("output device"), "{err}");
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("asound.conf");
    std::fs::write(&empty, "").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "no_audio_device_is_a_clear_error",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SAPA_NO_DEVICE_CHILD", "1")
        .env("PULSE_SERVER", "unix:/nonexistent/native")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("PULSE_RUNTIME_PATH")
        .env("ALSA_CONFIG_PATH", &empty)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("error: no audio input device found")
            || stdout.contains("error: cannot open input device"),
        "{stdout}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_user_without_a_pulseaudio_cookie_still_gets_the_pulseaudio_host() {
    // PipeWire's pulse server never writes a cookie, and a fresh account has none: the client
    // must still be let in (it sends 256 zero bytes, as libpulse does), not fall back to ALSA.
    let Some(_devices) = lock_devices() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sapa"))
        .arg("devices")
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("audio host: PulseAudio"),
        "no cookie in HOME:\n{stdout}"
    );
    assert!(stdout.contains("sapa_ear"), "{stdout}");
}

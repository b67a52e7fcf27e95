//! The desktop popup of an incoming call over real D-Bus: a private `dbus-daemon` with a small
//! `org.freedesktop.Notifications` service on it (the interface a desktop's notification
//! daemon serves), and the real phone engine taking a real call from a real switchboard. The
//! popup names the caller, counts their earlier calls, and is closed when the call is
//! answered. A bus without the service is reported and the call goes on.
//!
//! Needs `dbus-daemon`. Outside CI it is skipped with a message when missing; in CI (`CI`
//! set) it must run (`.ci/run` installs it).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use sapa::config::SwitchboardConfig;
use sapa::peer::caller;
use sapa::phone::config::PhoneConfig;
use sapa::phone::engine::{self, AudioSetup, Credentials, EngineHandle, EngineOptions, Update};
use sapa::phone::notify::{CallNotification, DesktopNotifier, NotifierStatus, NotifyBus};
use sapa::protocol::AgentStateName;
use sapa_ui::Intent;
use tokio::sync::mpsc;
use zbus::zvariant::OwnedValue;

const WAIT: Duration = Duration::from_secs(20);

/// A private session bus; killed when the test ends.
struct Bus {
    child: Child,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dbus-daemon` listening in `dir`, or says why not (None: skip).
fn start_bus(dir: &Path) -> Option<Bus> {
    let spawned = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
        .arg(format!("--address=unix:path={}", dir.join("bus").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("CI must run the notification tests, but dbus-daemon does not start: {e}");
            }
            eprintln!("skipping: no dbus-daemon ({e}); apt-get install dbus-daemon");
            return None;
        }
    };
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("dbus-daemon prints its address");
    let address = line.trim().to_owned();
    assert!(address.starts_with("unix:"), "dbus-daemon said {address:?}");
    Some(Bus { child, address })
}

/// What the test service was asked.
#[derive(Debug)]
enum Asked {
    Notify {
        app_name: String,
        replaces_id: u32,
        summary: String,
        body: String,
        urgency: Option<u8>,
        expire_timeout: i32,
    },
    Close(u32),
}

/// The notification service: records each call and hands out ids from 7 up.
struct Service {
    asked: mpsc::UnboundedSender<Asked>,
    next_id: u32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Service {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        app_name: String,
        replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        expire_timeout: i32,
    ) -> u32 {
        let urgency = hints.get("urgency").and_then(|v| u8::try_from(v).ok());
        let id = if replaces_id != 0 {
            replaces_id
        } else {
            self.next_id += 1;
            self.next_id
        };
        let _ = self.asked.send(Asked::Notify {
            app_name,
            replaces_id,
            summary,
            body,
            urgency,
            expire_timeout,
        });
        id
    }

    fn close_notification(&mut self, id: u32) {
        let _ = self.asked.send(Asked::Close(id));
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        ("sapa-test".into(), "sapa".into(), "1".into(), "1.2".into())
    }
}

/// Serves the notification service on the bus; keep the connection alive while testing.
async fn serve(address: &str) -> (zbus::Connection, mpsc::UnboundedReceiver<Asked>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let connection = zbus::connection::Builder::address(address)
        .unwrap()
        .name("org.freedesktop.Notifications")
        .unwrap()
        .serve_at(
            "/org/freedesktop/Notifications",
            Service {
                asked: tx,
                next_id: 6,
            },
        )
        .unwrap()
        .build()
        .await
        .expect("the test service is on the bus");
    (connection, rx)
}

async fn next_asked(rx: &mut mpsc::UnboundedReceiver<Asked>) -> Asked {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the service was asked within the limit")
        .expect("the service runs")
}

fn start_engine(url: &str, dir: &Path, notify_bus: NotifyBus) -> EngineHandle {
    engine::spawn(
        EngineOptions {
            config: PhoneConfig::default(),
            config_path: None,
            remember_login: false,
            drafts_root: dir.join("drafts"),
            auto_login: Some(Credentials {
                url: url.to_owned(),
                user: "ana".into(),
                password: PASSWORD.into(),
            }),
            go_available: true,
            audio: AudioSetup::None,
            export_dir: None,
            notify_bus,
        },
        || {},
    )
    .expect("engine thread starts")
}

async fn wait_for(handle: &EngineHandle, what: &str, want: impl Fn(&Update) -> bool) -> Update {
    tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match handle.recv_timeout(left) {
                Some(update) if want(&update) => return update,
                Some(_) => continue,
                None => panic!("no {what} within {WAIT:?}"),
            }
        }
    })
}

fn place_call(
    url: String,
    dir: &Path,
) -> tokio::task::JoinHandle<Result<caller::CallerReport, sapa::peer::PeerError>> {
    let play = tone_wav(dir, "caller.wav", 1570.0, 1.0);
    let record = dir.join("caller-heard.wav");
    tokio::spawn(async move {
        caller::run(caller::CallerOptions {
            switchboard: url,
            from: "+15550100".into(),
            name: Some("Budi Santoso".into()),
            queue: None,
            play,
            record,
            talk_secs: Some(1.0),
            max_wait_secs: 30.0,
            impair: None,
            frame: Default::default(),
            to: None,
            dial_digits: None,
            survey: None,
            inband_dtmf: false,
        })
        .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offer_pops_up_with_the_caller_and_closes_on_answer() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bus) = start_bus(dir.path()) else {
        return;
    };
    let (_service, mut asked) = serve(&bus.address).await;
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    let handle = start_engine(
        &running.ws_url(),
        dir.path(),
        NotifyBus::Address(bus.address.clone()),
    );
    wait_for(&handle, "available", |u| {
        matches!(
            u,
            Update::AgentState {
                state: AgentStateName::Available,
                ..
            }
        )
    })
    .await;

    let call = place_call(running.ws_url(), dir.path());
    wait_for(&handle, "an offer", |u| matches!(u, Update::Offered { .. })).await;
    match next_asked(&mut asked).await {
        Asked::Notify {
            app_name,
            replaces_id,
            summary,
            body,
            urgency,
            expire_timeout,
        } => {
            assert_eq!(app_name, "Sapa");
            assert_eq!(replaces_id, 0);
            assert_eq!(summary, "Incoming call: Budi Santoso");
            assert_eq!(
                body,
                "+15550100 · queue support\nFirst call from this number"
            );
            assert_eq!(urgency, Some(2), "critical: stays up while ringing");
            let ring_ms = SwitchboardConfig::default().ring_no_answer_secs as i32 * 1000;
            assert_eq!(expire_timeout, ring_ms);
        }
        other => panic!("expected a popup, got {other:?}"),
    }
    handle.send(Intent::Answer);
    // Answering closes the popup the service handed out.
    match next_asked(&mut asked).await {
        Asked::Close(id) => assert_eq!(id, 7),
        other => panic!("expected the popup closed, got {other:?}"),
    }
    let report = call.await.unwrap().expect("the caller ran");
    assert!(report.answered, "{report:?}");
    handle.shutdown();
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bus_without_the_service_is_reported_and_the_call_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bus) = start_bus(dir.path()) else {
        return;
    };
    // The notifier alone: the bus answers "no such service", quickly and without blocking.
    let notifier = DesktopNotifier::spawn(NotifyBus::Address(bus.address.clone()));
    let mut status = notifier.status();
    notifier.show(
        "c1",
        CallNotification::incoming("+15550100", None, "support", &[], 0, 15_000),
    );
    let why = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| matches!(s, NotifierStatus::Unavailable(_))),
    )
    .await
    .expect("reported within the limit")
    .expect("the notifier runs")
    .clone();
    eprintln!("{why:?}");
    assert!(
        matches!(&why, NotifierStatus::Unavailable(text) if text.contains("org.freedesktop.Notifications")),
        "{why:?}"
    );

    // The phone on the same bus takes a call as usual.
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    let handle = start_engine(
        &running.ws_url(),
        dir.path(),
        NotifyBus::Address(bus.address.clone()),
    );
    wait_for(&handle, "available", |u| {
        matches!(
            u,
            Update::AgentState {
                state: AgentStateName::Available,
                ..
            }
        )
    })
    .await;
    let call = place_call(running.ws_url(), dir.path());
    wait_for(&handle, "an offer", |u| matches!(u, Update::Offered { .. })).await;
    handle.send(Intent::Answer);
    wait_for(&handle, "connected", |u| {
        matches!(u, Update::Connected { .. })
    })
    .await;
    let report = call.await.unwrap().expect("the caller ran");
    assert!(report.answered, "{report:?}");
    handle.shutdown();
    running.shutdown().await;
}

//! The phone engine's call control against a real switchboard, driven by intents as the window
//! sends them: a warm transfer (the phone asks a headless colleague first, the colleague
//! answers, the phone completes the transfer and the caller ends up talking to the colleague)
//! and an escalation (a headless supervisor who stays not ready joins a three-way call and keeps
//! it when the phone leaves). The phone's view (a `PhoneState` fed with every update) shows the
//! consult banner while it lasts; the notes typed on the phone travel with the call; the legs
//! land in the call record. A follow-up promised in the wrap-up form shows in the phone's
//! callback list (asked for at login, after each saved disposition, and on Refresh).

mod common;

use std::cell::Cell;
use std::path::Path;
use std::time::Duration;

use common::*;
use sapa::config::SwitchboardConfig;
use sapa::peer::agent::{self, AgentCallReport, CallControl};
use sapa::peer::caller::{self, CallerReport};
use sapa::phone::audio::TestEndpoint;
use sapa::phone::config::PhoneConfig;
use sapa::phone::engine::{self, AudioSetup, Credentials, EngineHandle, EngineOptions, Update};
use sapa::phone::notify::NotifyBus;
use sapa::phone::state::PhoneState;
use sapa::protocol::AgentStateName;
use sapa::store::Role;
use sapa_ui::{CallView, ConsultKind, ConsultPhase, DispositionDraft, Intent};

const WAIT: Duration = Duration::from_secs(20);
const NOTES: &str = "Wants the November refund";

fn start_phone(url: &str, user: &str, dir: &Path) -> EngineHandle {
    let (endpoint, _tap) = TestEndpoint::new(vec![0.0; 4_800]);
    engine::spawn(
        EngineOptions {
            config: PhoneConfig::default(),
            config_path: None,
            remember_login: false,
            drafts_root: dir.join("drafts"),
            auto_login: Some(Credentials {
                url: url.to_owned(),
                user: user.into(),
                password: PASSWORD.into(),
            }),
            go_available: true,
            audio: AudioSetup::Custom(Box::new(move || Box::new(endpoint))),
            export_dir: None,
            notify_bus: NotifyBus::Off,
        },
        || {},
    )
    .expect("engine thread starts")
}

/// Applies every update to `state` until one matches (blocking this worker; the switchboard
/// and the peers run on the others).
async fn wait_for(
    handle: &EngineHandle,
    state: &mut PhoneState,
    what: &str,
    want: impl Fn(&Update) -> bool,
) {
    tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Some(update) = handle.recv_timeout(left) else {
                panic!("no {what} within {WAIT:?}");
            };
            if let Update::LoginFailed(e) = &update {
                panic!("login failed while waiting for {what}: {e}");
            }
            let found = want(&update);
            state.apply(update, sapa::peer::now_ms() as u64);
            if found {
                return;
            }
        }
    })
}

/// The colleague `name` is in the phone's directory in a state it can be rung in.
fn colleague_is_free(update: &Update, name: &str) -> bool {
    matches!(update, Update::Colleagues(all) if all.iter().any(|c| {
        c.name == name && matches!(c.state, AgentStateName::Available | AgentStateName::NotReady)
    }))
}

/// The phone logs in as ana and answers a caller; ana types notes. Returns the caller's task.
async fn phone_answers_a_caller(
    url: &str,
    dir: &Path,
    phone: &EngineHandle,
    view: &mut PhoneState,
) -> tokio::task::JoinHandle<Result<CallerReport, sapa::peer::PeerError>> {
    let play = tone_wav(dir, "caller.wav", 440.0, 12.0);
    let mut options = plain_caller(url, "+15550600", &play, dir);
    options.talk_secs = Some(8.0);
    let caller_task = tokio::spawn(caller::run(options));
    wait_for(phone, view, "the offer", |u| {
        matches!(u, Update::Offered { .. })
    })
    .await;
    phone.send(Intent::Answer);
    wait_for(phone, view, "connected", |u| {
        matches!(u, Update::Connected { .. })
    })
    .await;
    let CallView::InCall(call) = &view.view.call else {
        panic!("in call after answering: {:?}", view.view.call);
    };
    phone.send(Intent::DraftChanged(DispositionDraft {
        call_id: call.call_id.clone(),
        notes: NOTES.into(),
        ..DispositionDraft::default()
    }));
    caller_task
}

fn consult_phase(view: &PhoneState) -> Option<(String, ConsultKind, ConsultPhase)> {
    match &view.view.call {
        CallView::InCall(call) => call
            .consult
            .as_ref()
            .map(|c| (c.colleague.clone(), c.kind, c.phase)),
        _ => None,
    }
}

async fn finished<T, E: std::fmt::Display>(
    who: &str,
    task: tokio::task::JoinHandle<Result<T, E>>,
) -> T {
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap_or_else(|_| panic!("{who} finishes"))
        .unwrap()
        .unwrap_or_else(|e| panic!("{who}: {e}"))
}

fn legs(stored: &[sapa::store::Leg]) -> Vec<(String, String, String)> {
    stored
        .iter()
        .map(|l| (l.party.clone(), l.role.clone(), l.why.clone()))
        .collect()
}

fn leg(party: &str, role: &str, why: &str) -> (String, String, String) {
    (party.into(), role.into(), why.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_phone_asks_a_colleague_first_then_hands_the_caller_over() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana", "bayu"]).await;
    let url = running.ws_url();
    let phone = start_phone(&url, "ana", dir.path());
    let mut view = PhoneState::new();
    wait_for(&phone, &mut view, "ana available", |u| {
        matches!(
            u,
            Update::AgentState {
                state: AgentStateName::Available,
                ..
            }
        )
    })
    .await;
    // bayu logs in after ana, so ana has been idle longer and gets the caller.
    let bayu = tokio::spawn(agent::run_with(
        plain_agent(&url, "bayu", 1),
        CallControl::default(),
        |_| {},
    ));
    wait_for(&phone, &mut view, "bayu in the directory", |u| {
        colleague_is_free(u, "bayu")
    })
    .await;
    let caller_task = phone_answers_a_caller(&url, dir.path(), &phone, &mut view).await;

    phone.send(Intent::Consult("bayu".into()));
    wait_for(&phone, &mut view, "bayu on the line", |u| {
        matches!(u, Update::Consult { consult: Some(c), .. } if c.phase == ConsultPhase::Connected)
    })
    .await;
    assert_eq!(
        consult_phase(&view),
        Some((
            "bayu".into(),
            ConsultKind::WarmTransfer,
            ConsultPhase::Connected
        ))
    );
    phone.send(Intent::CompleteTransfer);
    wait_for(
        &phone,
        &mut view,
        "ana's leg ended",
        |u| matches!(u, Update::Ended { reason, .. } if reason == "transferred"),
    )
    .await;
    assert!(
        matches!(view.view.call, CallView::WrapUp(_)),
        "ana wraps up her part: {:?}",
        view.view.call
    );

    let report = finished("the caller", caller_task).await;
    assert_eq!(report.agents, ["ana", "bayu"], "{report:?}");
    let bayu_calls: Vec<AgentCallReport> = finished("bayu", bayu).await;
    let bayu_call = &bayu_calls[0];
    assert_eq!(bayu_call.call_id, report.call_id);
    assert_eq!(bayu_call.peers, ["ana", "+15550600"]);
    assert_eq!(bayu_call.ended_by, "caller_hung_up");
    let context = bayu_call.context.as_ref().expect("why the call came");
    assert_eq!(context.kind, "consult");
    assert_eq!(context.from.as_deref(), Some("ana"));
    assert_eq!(
        context.notes.as_deref(),
        Some(NOTES),
        "the notes went along"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = running.store.legs(&report.call_id).await.unwrap();
    assert_eq!(
        legs(&stored),
        vec![
            leg("+15550600", "caller", "dialed"),
            leg("ana", "agent", "answered"),
            leg("bayu", "consult", "consult"),
            leg("bayu", "agent", "warm_transfer"),
        ],
        "{stored:?}"
    );
    phone.shutdown();
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_phone_escalates_to_a_supervisor_who_keeps_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    running
        .store
        .add_user("sri", Role::Supervisor, PASSWORD)
        .await
        .unwrap();
    let url = running.ws_url();
    let phone = start_phone(&url, "ana", dir.path());
    let mut view = PhoneState::new();
    wait_for(&phone, &mut view, "ana available", |u| {
        matches!(
            u,
            Update::AgentState {
                state: AgentStateName::Available,
                ..
            }
        )
    })
    .await;
    // sri stays not ready: queue calls pass her by, escalations ring her.
    let sri = tokio::spawn(agent::run_with(
        plain_agent(&url, "sri", 1),
        CallControl {
            stay_not_ready: true,
            ..CallControl::default()
        },
        |_| {},
    ));
    wait_for(&phone, &mut view, "sri in the directory", |u| {
        colleague_is_free(u, "sri")
    })
    .await;
    assert!(
        view.view
            .directory
            .supervisors
            .iter()
            .any(|s| s.agent_id == "sri"),
        "the Escalate menu lists sri"
    );
    let caller_task = phone_answers_a_caller(&url, dir.path(), &phone, &mut view).await;

    phone.send(Intent::Escalate("sri".into()));
    wait_for(&phone, &mut view, "sri in the call", |u| {
        matches!(u, Update::Consult { consult: Some(c), .. } if c.phase == ConsultPhase::Connected)
    })
    .await;
    assert_eq!(
        consult_phase(&view),
        Some((
            "sri".into(),
            ConsultKind::Escalation,
            ConsultPhase::Connected
        ))
    );
    phone.send(Intent::CompleteTransfer);
    wait_for(
        &phone,
        &mut view,
        "ana left the call",
        |u| matches!(u, Update::Ended { reason, .. } if reason == "escalated"),
    )
    .await;

    let report = finished("the caller", caller_task).await;
    assert_eq!(report.agents, ["ana", "sri"], "{report:?}");
    let sri_calls: Vec<AgentCallReport> = finished("sri", sri).await;
    let sri_call = &sri_calls[0];
    assert_eq!(
        sri_call.ended_by, "caller_hung_up",
        "the supervisor kept the call"
    );
    let context = sri_call.context.as_ref().expect("why the call came");
    assert_eq!(context.kind, "escalation");
    assert_eq!(
        context.notes.as_deref(),
        Some(NOTES),
        "the notes went along"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = running.store.legs(&report.call_id).await.unwrap();
    assert_eq!(
        legs(&stored),
        vec![
            leg("+15550600", "caller", "dialed"),
            leg("ana", "agent", "answered"),
            leg("sri", "supervisor", "escalation"),
        ],
        "{stored:?}"
    );
    phone.shutdown();
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_up_promised_on_the_phone_is_listed_among_its_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_switchboard(dir.path(), SwitchboardConfig::default()).await;
    add_agents(&running, &["ana"]).await;
    let url = running.ws_url();
    let phone = start_phone(&url, "ana", dir.path());
    let mut view = PhoneState::new();
    // Asked for right after login: none yet.
    let (listed, available) = (Cell::new(false), Cell::new(false));
    wait_for(&phone, &mut view, "ana available, no callbacks", |u| {
        match u {
            Update::Callbacks(list) => listed.set(list.is_empty()),
            Update::AgentState {
                state: AgentStateName::Available,
                ..
            } => available.set(true),
            _ => {}
        }
        listed.get() && available.get()
    })
    .await;
    let caller_task = phone_answers_a_caller(&url, dir.path(), &phone, &mut view).await;
    let call_id = match &view.view.call {
        CallView::InCall(call) => call.call_id.clone(),
        other => panic!("in call: {other:?}"),
    };
    phone.send(Intent::HangUp);
    wait_for(&phone, &mut view, "ended", |u| {
        matches!(u, Update::Ended { .. })
    })
    .await;
    finished("the caller", caller_task).await;

    phone.send(Intent::SubmitDisposition(sapa_ui::Disposition {
        call_id: call_id.clone(),
        code: "billing".into(),
        resolution: sapa_ui::Resolution::FollowUp,
        notes: NOTES.into(),
        follow_up: Some(sapa_ui::time_text::parse_date_time("2099-01-05 09:30").unwrap()),
    }));
    // Saving the disposition asks for the list again; the promise is on it.
    wait_for(
        &phone,
        &mut view,
        "the callback listed",
        |u| matches!(u, Update::Callbacks(list) if !list.is_empty()),
    )
    .await;
    let callbacks = &view.view.history.callbacks;
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    assert_eq!(callbacks[0].number, "+15550600");
    assert_eq!(callbacks[0].notes, NOTES);
    assert_eq!(callbacks[0].due_text, "2099-01-05 09:30");
    assert!(!callbacks[0].dialing);

    // Refresh asks again and gets the same list.
    phone.send(Intent::RefreshCallbacks);
    wait_for(
        &phone,
        &mut view,
        "the list again",
        |u| matches!(u, Update::Callbacks(list) if list.len() == 1),
    )
    .await;
    phone.shutdown();
    running.shutdown().await;
}

//! The supervisor's wallboard: queue and agent rows, monitoring an agent's call; agents do not
//! get the supervisor tabs.

mod common;

use common::*;
use egui::accesskit::Role as AccessRole;
use egui_kittest::kittest::Queryable as _;
use sapa_ui::*;

#[test]
fn wallboard_shows_queues_and_agents_and_listen_monitors() {
    let mut harness = app_harness(supervisor_view());
    harness
        .get_by_role_and_label(AccessRole::Button, "Wallboard")
        .click();
    harness.run();
    assert_eq!(harness.state().view.tab, Tab::Wallboard);
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::SelectTab(Tab::Wallboard)]
    );

    // Queue rows.
    harness.get_by_label("Billing");
    harness.get_by_label("Technical support");
    harness.get_by_label("128");
    harness.get_by_label("72 %");
    // Agent rows, with the call and its voice quality.
    harness.get_by_label("Jon Ander");
    harness.get_by_label("Sam Okafor");
    harness.get_by_label("Carlos Vidal");
    harness.get_by_label("Poor");
    // Only agents on a call can be monitored.
    assert!(harness.query_by_label("Listen to Sam Okafor").is_none());

    let listen_at = harness.get_by_label("Listen to Lea Weber").rect();
    harness.get_by_label("Listen to Lea Weber").click();
    harness.run();
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::Monitor {
            agent: "a-lea".into(),
            mode: MonitorMode::Listen,
        }]
    );

    // Once the engine reports the session, it can be stopped from the row.
    harness
        .state_mut()
        .view
        .wallboard
        .as_mut()
        .unwrap()
        .monitoring = Some(MonitorSession {
        agent_id: "a-lea".into(),
        mode: MonitorMode::Listen,
    });
    harness.run();
    harness.get_by_label("Listen: Lea Weber");
    // The session's line takes the place of the hint: the row's buttons stay where they were
    // (a second click must not land on another agent's Whisper or Barge).
    assert_eq!(
        harness.get_by_label("Listen to Lea Weber").rect(),
        listen_at
    );
    harness.get_by_label("Stop monitoring Lea Weber").click();
    harness.run();
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::StopMonitor]
    );
}

#[test]
fn agents_have_no_supervisor_tabs() {
    let harness = app_harness(logged_in_view(Role::Agent));
    harness.get_by_role_and_label(AccessRole::Button, "History");
    assert!(harness.query_by_label("Wallboard").is_none());
    assert!(harness.query_by_label("Reports").is_none());

    // Even a view left on a supervisor tab falls back to the call tab.
    let mut view = logged_in_view(Role::Agent);
    view.tab = Tab::Wallboard;
    let harness = app_harness(view);
    assert_eq!(harness.state().view.tab, Tab::Call);
}

#[test]
fn reports_validate_dates_then_run_and_export() {
    let mut view = supervisor_view();
    view.tab = Tab::Reports;
    let mut harness = app_harness(view);
    assert!(is_disabled(&harness, "Run report"));
    assert!(is_disabled(&harness, "Export CSV"));
    type_into(&mut harness, "From", "2026-11-01");
    type_into(&mut harness, "To", "2026-11-31");
    harness.get_by_label("There is no such date.");
    assert!(is_disabled(&harness, "Run report"));
    replace_text(&mut harness, "To", "2026-11-30");
    assert!(harness.query_by_label("There is no such date.").is_none());
    click(&mut harness, "By queue");
    click(&mut harness, "Run report");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::RunReport {
            from: CalendarDate {
                year: 2026,
                month: 11,
                day: 1
            },
            to: CalendarDate {
                year: 2026,
                month: 11,
                day: 30
            },
            by: ReportGrouping::Queue,
        }]
    );

    harness.state_mut().view.reports.table = Some(ReportTable {
        columns: vec!["Queue".into(), "Handled".into(), "AHT".into()],
        rows: vec![vec!["Billing".into(), "2211".into(), "5:12".into()]],
    });
    harness.run();
    harness.get_by_label("2211");
    click(&mut harness, "Export CSV");
    assert_eq!(
        harness.state_mut().take_intents(),
        vec![Intent::ExportReportCsv]
    );
}

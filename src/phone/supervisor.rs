//! The supervisor's side of the phone, as pure conversions: the switchboard's wallboard and
//! report rows into the views' models, a report's date range into epoch milliseconds, and the
//! name of an exported CSV file. No I/O; the engine calls these on its thread, so the window
//! only copies the result.
//!
//! ```ignore
//! ServerMessage::Wallboard { board } => Update::Wallboard(wallboard_view(&board, now_ms, offset)),
//! Intent::RunReport { from, to, by } => report_range_ms(from, to) -> ClientMessage::Report,
//! ServerMessage::Report { rows, csv } => Update::Report(report_table(&rows, by)),
//! ```

use sapa_ui::{
    AgentCall, AgentRow, AgentState, CalendarDate, IntervalStats, MonitorMode as UiMode,
    QueueStats, ReportGrouping, ReportTable, VoiceStats, WallboardView,
};

use super::clock;
use crate::metrics::{ReportBy, ReportRow, StreamQuality, Wallboard};
use crate::protocol::MonitorMode;

/// The service level a queue should reach, drawn as the target line (the switchboard's
/// configuration has no target, so the common 80 % is shown).
pub const SERVICE_LEVEL_TARGET_PCT: f32 = 80.0;
const MINUTES_PER_DAY: i64 = 24 * 60;

/// The wallboard as the views draw it. Times are put on the phone's clock from the durations
/// the switchboard computed (`received_ms - in_state_ms`), so a switchboard whose clock is off
/// by a few seconds does not make timers jump. `offset_minutes` moves the UTC day's intervals
/// to local time of day. `monitoring` is left `None`: the engine's monitoring state is not
/// the switchboard's board.
pub fn wallboard_view(board: &Wallboard, received_ms: u64, offset_minutes: i32) -> WallboardView {
    let since = |duration_ms: i64| received_ms.saturating_sub(duration_ms.max(0) as u64);
    WallboardView {
        queues: board
            .queues
            .iter()
            .map(|q| QueueStats {
                queue_id: q.queue.clone(),
                name: q.queue.clone(),
                waiting: q.waiting,
                longest_wait_ms: q.longest_wait_ms,
                service_level_pct: q.service_level_pct.map(|p| p as f32),
                asa_ms: q.asa_ms,
                aht_ms: q.aht_ms,
                abandon_pct: q.abandon_pct.map(|p| p as f32),
                handled_today: q.handled_today,
            })
            .collect(),
        agents: board
            .agents
            .iter()
            .map(|a| {
                let state = agent_state(&a.state, a.reason.as_deref());
                // Only a connected call can be monitored, so only that one is shown as a call.
                let call = match (&state, a.call_duration_ms) {
                    (AgentState::OnCall, Some(duration_ms)) => Some(AgentCall {
                        caller: a.caller.clone().unwrap_or_default(),
                        started_ms: since(duration_ms),
                        caller_to_agent: a
                            .voice_quality
                            .and_then(|v| v.caller_to_agent)
                            .map(voice_stats),
                        agent_to_caller: a
                            .voice_quality
                            .and_then(|v| v.agent_to_caller)
                            .map(voice_stats),
                    }),
                    _ => None,
                };
                AgentRow {
                    agent_id: a.name.clone(),
                    name: a.name.clone(),
                    state,
                    state_since_ms: since(a.in_state_ms),
                    call,
                }
            })
            .collect(),
        intervals: board
            .intervals
            .iter()
            .map(|i| IntervalStats {
                start_minute: (i64::from(i.start_minute) + i64::from(offset_minutes))
                    .rem_euclid(MINUTES_PER_DAY) as u16,
                offered: i.offered,
                answered: i.answered,
                abandoned: i.abandoned,
                service_level_pct: i.service_level_pct.map(|p| p as f32),
            })
            .collect(),
        service_level_target_pct: SERVICE_LEVEL_TARGET_PCT,
        monitoring: None,
    }
}

fn voice_stats(q: StreamQuality) -> VoiceStats {
    VoiceStats {
        loss_pct: q.loss_pct as f32,
        jitter_ms: q.jitter_ms as f32,
        // The switchboard forwards without decoding: nothing is concealed there.
        concealment_pct: 0.0,
    }
}

/// An agent's state as the wallboard spells it (`protocol::AgentStateName` in snake case).
fn agent_state(state: &str, reason: Option<&str>) -> AgentState {
    match state {
        "available" => AgentState::Available,
        "not_ready" => AgentState::NotReady {
            reason: reason.unwrap_or_default().to_owned(),
        },
        "offered" => AgentState::Ringing,
        "on_call" => AgentState::OnCall,
        "after_call_work" => AgentState::WrapUp,
        _ => AgentState::Unknown,
    }
}

pub fn protocol_mode(mode: UiMode) -> MonitorMode {
    match mode {
        UiMode::Listen => MonitorMode::Listen,
        UiMode::Whisper => MonitorMode::Whisper,
        UiMode::Barge => MonitorMode::Barge,
    }
}

pub fn ui_mode(mode: MonitorMode) -> UiMode {
    match mode {
        MonitorMode::Listen => UiMode::Listen,
        MonitorMode::Whisper => UiMode::Whisper,
        MonitorMode::Barge => UiMode::Barge,
    }
}

pub fn report_by(by: ReportGrouping) -> ReportBy {
    match by {
        ReportGrouping::Agent => ReportBy::Agent,
        ReportGrouping::Queue => ReportBy::Queue,
    }
}

/// From local midnight of `from` to local midnight after `to` (both days included), or a
/// sentence saying what is wrong.
pub fn report_range_ms(from: CalendarDate, to: CalendarDate) -> Result<(i64, i64), String> {
    let start = clock::local_midnight_ms(from).ok_or_else(|| format!("{from} is not a date."))?;
    let end = clock::next_day(to)
        .and_then(clock::local_midnight_ms)
        .ok_or_else(|| format!("{to} is not a date."))?;
    if end <= start {
        return Err("The start date is after the end date.".into());
    }
    Ok((start, end))
}

/// `sapa-report-2026-11-01-to-2026-11-30-by-agent.csv`.
pub fn csv_file_name(from: CalendarDate, to: CalendarDate, by: ReportGrouping) -> String {
    let by = match by {
        ReportGrouping::Agent => "agent",
        ReportGrouping::Queue => "queue",
    };
    format!("sapa-report-{from}-to-{to}-by-{by}.csv")
}

/// The report as the Reports tab shows it: one row per agent or queue, durations as `m:ss`,
/// shares in percent, breakdowns as `code 3, other 1`.
pub fn report_table(rows: &[ReportRow], by: ReportGrouping) -> ReportTable {
    let first = match by {
        ReportGrouping::Agent => "Agent",
        ReportGrouping::Queue => "Queue",
    };
    let columns = [
        first,
        "Offered",
        "Answered",
        "Abandoned",
        "Avg handle",
        "Avg wrap-up",
        "Avg wait",
        "FCR",
        "CSAT",
        "Dispositions",
        "Resolutions",
        "First response",
        "Resolution time",
        "Follow-ups on time",
    ];
    let duration =
        |ms: Option<u64>| ms.map_or_else(|| "—".to_owned(), sapa_ui::time_text::duration_text);
    let breakdown = |counts: &std::collections::BTreeMap<String, u32>| {
        if counts.is_empty() {
            return "—".to_owned();
        }
        counts
            .iter()
            .map(|(key, n)| format!("{key} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    ReportTable {
        columns: columns.map(str::to_owned).to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.key.clone(),
                    r.offered.to_string(),
                    r.answered.to_string(),
                    r.abandoned.to_string(),
                    duration(r.avg_handle_ms),
                    duration(r.avg_after_call_work_ms),
                    duration(r.avg_wait_ms),
                    r.fcr_pct
                        .map_or_else(|| "—".to_owned(), |p| format!("{p:.0} % of {}", r.fcr_base)),
                    r.csat_avg
                        .map_or_else(|| "—".to_owned(), |c| format!("{c:.1} ({})", r.csat_count)),
                    breakdown(&r.dispositions),
                    breakdown(&r.resolutions),
                    duration(r.avg_first_response_ms),
                    duration(r.avg_resolution_ms),
                    r.follow_up_on_time_pct.map_or_else(
                        || "—".to_owned(),
                        |p| format!("{p:.0} % of {}", r.follow_ups),
                    ),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{AgentBoard, Interval, QueueBoard, VoiceQuality};

    fn board() -> Wallboard {
        Wallboard {
            now_ms: 1_000_000,
            day_start_ms: 0,
            queues: vec![QueueBoard {
                queue: "support".into(),
                service_level_secs: 20,
                waiting: 2,
                longest_wait_ms: 42_000,
                offered: 10,
                handled_today: 8,
                abandoned: 2,
                service_level_pct: Some(75.0),
                asa_ms: Some(12_000),
                aht_ms: Some(200_000),
                abandon_pct: Some(20.0),
            }],
            agents: vec![
                AgentBoard {
                    name: "ana".into(),
                    state: "on_call".into(),
                    since_ms: 900_000,
                    in_state_ms: 100_000,
                    call_id: Some("c1".into()),
                    caller: Some("+15550100".into()),
                    call_duration_ms: Some(90_000),
                    voice_quality: VoiceQuality::of(
                        Some(StreamQuality {
                            repaired_pct: 0.0,
                            loss_pct: 19.5,
                            jitter_ms: 4.0,
                            packets: 200,
                        }),
                        None,
                    ),
                    reason: None,
                },
                AgentBoard {
                    name: "budi".into(),
                    state: "not_ready".into(),
                    reason: Some("lunch".into()),
                    since_ms: 0,
                    in_state_ms: 600_000,
                    ..AgentBoard::default()
                },
            ],
            intervals: vec![Interval {
                start_ms: 0,
                start_minute: 15,
                offered: 3,
                answered: 2,
                abandoned: 1,
                service_level_pct: Some(50.0),
                cumulative_service_level_pct: Some(50.0),
            }],
        }
    }

    #[test]
    fn the_board_becomes_the_view_on_the_phones_clock() {
        // The phone's clock is 5 s ahead of the switchboard's: timers still read right.
        let view = wallboard_view(&board(), 1_005_000, 60);
        let q = &view.queues[0];
        assert_eq!(
            (q.name.as_str(), q.waiting, q.handled_today),
            ("support", 2, 8)
        );
        assert_eq!(q.service_level_pct, Some(75.0));
        let ana = &view.agents[0];
        assert_eq!(ana.state, AgentState::OnCall);
        assert_eq!(ana.state_since_ms, 905_000);
        let call = ana.call.as_ref().expect("on a call");
        assert_eq!(call.started_ms, 915_000);
        assert_eq!(call.caller, "+15550100");
        assert_eq!(call.caller_to_agent.unwrap().loss_pct, 19.5);
        assert_eq!(call.agent_to_caller, None);
        assert_eq!(call.quality(), Some(sapa_ui::VoiceQuality::Poor));
        let budi = &view.agents[1];
        assert_eq!(
            budi.state,
            AgentState::NotReady {
                reason: "lunch".into()
            }
        );
        assert!(budi.call.is_none());
        // 00:15 UTC is 01:15 an hour east.
        assert_eq!(view.intervals[0].start_minute, 75);
        assert_eq!(
            wallboard_view(&board(), 0, -60).intervals[0].start_minute,
            1395
        );
    }

    #[test]
    fn report_rows_become_a_table() {
        let mut row = ReportRow {
            key: "ana".into(),
            offered: 4,
            answered: 4,
            avg_handle_ms: Some(185_000),
            fcr_base: 2,
            fcr_pct: Some(50.0),
            avg_resolution_ms: Some(3_725_000),
            follow_ups: 4,
            follow_up_on_time_pct: Some(75.0),
            ..ReportRow::default()
        };
        row.dispositions.insert("billing".into(), 3);
        row.dispositions.insert("general".into(), 1);
        let table = report_table(&[row], ReportGrouping::Agent);
        assert_eq!(table.columns[0], "Agent");
        assert_eq!(table.rows[0][0], "ana");
        assert_eq!(table.rows[0][4], "3:05");
        assert_eq!(table.rows[0][5], "—");
        assert_eq!(table.rows[0][7], "50 % of 2");
        assert_eq!(table.rows[0][9], "billing 3, general 1");
        assert_eq!(table.rows[0][11], "—");
        assert_eq!(table.rows[0][12], "1:02:05");
        assert_eq!(table.rows[0][13], "75 % of 4");
    }

    #[test]
    fn a_range_covers_whole_local_days() {
        let day = |d| CalendarDate {
            year: 2026,
            month: 11,
            day: d,
        };
        let (from, to) = report_range_ms(day(1), day(30)).unwrap();
        // Thirty local days (an hour more or less across a daylight-saving change).
        assert!((to - from - 30 * 86_400_000).abs() <= 3_600_000);
        assert!(report_range_ms(day(2), day(1)).is_err());
        assert_eq!(
            csv_file_name(day(1), day(30), ReportGrouping::Queue),
            "sapa-report-2026-11-01-to-2026-11-30-by-queue.csv"
        );
    }
}

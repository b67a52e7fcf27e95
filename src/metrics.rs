//! Supervisor figures: the live wallboard and the period reports, computed from plain data.
//!
//! Sans-IO like `acd`: no tokio, no SQL and no clock. The caller reads the calls from the store,
//! takes a snapshot of the ACD and passes the time in, so every figure here can be tested with
//! hand-written calls and a made-up `now_ms`. The switchboard runs it once a second:
//!
//! ```ignore
//! let calls = store.calls_between(day_start_ms, now_ms).await?;
//! let live = LiveSnapshot { queues: /* from acd.queue_stats */, agents: /* from acd.agents */ };
//! let board = metrics::wallboard(&calls, &live, &config.queues, day_start_ms, now_ms);
//! push_to_supervisors(&board); // and serve it as JSON
//!
//! let follow_ups = store.callbacks_due_between(from_ms, to_ms).await?;
//! let rows = metrics::report(&calls, &later_calls, &follow_ups, from_ms, to_ms, ReportBy::Queue);
//! let csv = metrics::report_csv(&rows);
//! ```
//!
//! # Definitions
//!
//! Every call is counted by its `arrived_at`: in the day (wallboard) or the period (reports),
//! and in the 15-minute interval it arrived in.
//!
//! - **Answered**: `answered_at` is set. Answered wins over any end reason.
//! - **Abandoned**: not answered, ended, and `end_reason` is `"abandoned"` (the caller hung up
//!   while queued or ringing).
//! - **Offered**: answered, or ended. A caller still waiting is not offered yet; it shows only
//!   in the live `waiting` figure.
//! - **Wait**: the stored `wait_ms`, else arrival to answer (or to end, for an unanswered call),
//!   never below 0.
//! - **Within the threshold**: wait ≤ the queue's `service_level_secs`.
//! - **Service level** = answered within the threshold ÷ (answered + abandoned after the
//!   threshold). Callers who abandoned within the threshold (short abandons) count neither way,
//!   nor do unanswered calls that ended for another reason, nor callers still waiting.
//! - **ASA** (average speed of answer): the average wait of answered calls.
//! - **Handle time** of an answered call that has ended: talk (`talk_ms`, hold included; else
//!   answer to end) + after-call work. **ACW** = the disposition's `submitted_at` − the call's
//!   `ended_at`, at least 0, and 0 when there is no disposition. Calls still connected have no
//!   handle time yet.
//! - **Abandon rate** = abandoned ÷ offered (short abandons included).
//! - **Resolution time** of a call whose disposition is `resolved`: the disposition's
//!   `submitted_at` − the arrival of the first call of the same problem (`problem_started_at`,
//!   set by the store: a call continues the problem of the number's previous call when that one
//!   arrived within 7 days and was not resolved). Counted in the row of the resolving call.
//! - **Follow-up on time**: a callback promised by a disposition, due in the period, whose
//!   customer answered no later than [`FOLLOW_UP_ON_TIME_MS`] after the promised time.
//!
//! Every average and share is `None` when its denominator is 0, never NaN.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::QueueConfig;
use crate::store::{CallRecord, CallReport, Callback, CallbackStatus, Direction, Resolution};

/// Length of one chart interval.
pub const INTERVAL_MS: i64 = 15 * 60 * 1000;
/// Most intervals a wallboard holds: 25 hours, the longest local day (the day clocks go back).
/// A `now_ms` further from `day_start_ms` than that is a caller's mistake; the charts stop there.
pub const MAX_INTERVALS: usize = 100;
/// A resolved call is first-contact resolved when the same number does not call again within
/// this long after it arrived.
pub const FCR_WINDOW_MS: i64 = 7 * 24 * 60 * 60 * 1000;

// ----- input: the live snapshot -----

/// What the ACD knows now and the store does not: who waits, and what each agent is doing.
/// Built by the switchboard from `Acd::queue_stats` and `Acd::agents`, with times converted to
/// epoch milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveSnapshot {
    pub queues: Vec<LiveQueue>,
    pub agents: Vec<LiveAgent>,
}

/// One queue as the ACD sees it now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveQueue {
    /// Queue name, as in the configuration.
    pub queue: String,
    /// Callers waiting now.
    pub waiting: u32,
    /// How long the longest-waiting caller has waited; 0 when none waits.
    pub longest_wait_ms: u64,
}

/// One agent as the ACD sees it now. `Debug` leaves out the caller (personal data).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveAgent {
    pub name: String,
    /// State name as `protocol::AgentStateName` spells it (`available`, `on_call`, ...).
    pub state: String,
    /// Why, for states with a reason (a not-ready reason such as `lunch`).
    pub reason: Option<String>,
    /// When the agent entered the state, epoch milliseconds.
    pub since_ms: i64,
    /// The call the agent is ringing with, talking on or wrapping up.
    pub call_id: Option<String>,
    /// The caller's name or number, as the supervisor should see it.
    pub caller: Option<String>,
    /// When the current call was answered, epoch milliseconds.
    pub call_started_ms: Option<i64>,
    /// The media bridge's measure of the call's two streams, passed through.
    pub voice_quality: Option<VoiceQuality>,
}

impl fmt::Debug for LiveAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveAgent")
            .field("name", &self.name)
            .field("state", &self.state)
            .field("reason", &self.reason)
            .field("since_ms", &self.since_ms)
            .field("call_id", &self.call_id)
            .field("caller", &self.caller.as_ref().map(|_| Redacted))
            .field("call_started_ms", &self.call_started_ms)
            .field("voice_quality", &self.voice_quality)
            .finish()
    }
}

/// Stands in for personal data in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

// ----- output: the wallboard -----

/// Everything the supervisor's wallboard shows, as of `now_ms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Wallboard {
    /// The time the figures are for, epoch milliseconds.
    pub now_ms: i64,
    /// Start of the day the figures cover (local midnight), epoch milliseconds.
    pub day_start_ms: i64,
    /// One row per configured queue, in configuration order.
    pub queues: Vec<QueueBoard>,
    /// One row per agent in the snapshot, sorted by name.
    pub agents: Vec<AgentBoard>,
    /// The day's 15-minute intervals so far, oldest first, all configured queues together; the
    /// last one is usually partial. Sums of `offered`/`answered`/`abandoned` equal the queues'.
    pub intervals: Vec<Interval>,
}

/// One queue's line: live figures from the ACD, today's from the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueBoard {
    pub queue: String,
    /// The queue's threshold, so the board can say what the service level means.
    pub service_level_secs: u64,
    /// Callers waiting now.
    pub waiting: u32,
    /// Longest wait of a caller waiting now.
    pub longest_wait_ms: u64,
    /// Calls answered or ended today.
    pub offered: u32,
    /// Calls answered today ("handled today").
    pub handled_today: u32,
    /// Calls abandoned today, short abandons included.
    pub abandoned: u32,
    /// See the module documentation; `None` until a call counts toward it.
    pub service_level_pct: Option<f64>,
    /// Average speed of answer; `None` until a call is answered.
    pub asa_ms: Option<u64>,
    /// Average handle time; `None` until an answered call has ended.
    pub aht_ms: Option<u64>,
    /// Abandoned ÷ offered; `None` until a call is offered.
    pub abandon_pct: Option<f64>,
}

/// One agent's line. `Debug` leaves out the caller (personal data).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentBoard {
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    pub since_ms: i64,
    /// `now_ms - since_ms`, at least 0.
    pub in_state_ms: i64,
    pub call_id: Option<String>,
    pub caller: Option<String>,
    /// `now_ms - call_started_ms`, at least 0; `None` without a call.
    pub call_duration_ms: Option<i64>,
    /// Loss and jitter of both legs of the call as the switchboard receives them; `None`
    /// without a call (or before the first packets).
    pub voice_quality: Option<VoiceQuality>,
}

impl fmt::Debug for AgentBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentBoard")
            .field("name", &self.name)
            .field("state", &self.state)
            .field("reason", &self.reason)
            .field("since_ms", &self.since_ms)
            .field("in_state_ms", &self.in_state_ms)
            .field("call_id", &self.call_id)
            .field("caller", &self.caller.as_ref().map(|_| Redacted))
            .field("call_duration_ms", &self.call_duration_ms)
            .field("voice_quality", &self.voice_quality)
            .finish()
    }
}

/// Loss and jitter of one stream the switchboard receives, over the last few seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamQuality {
    /// Packets missing from the sequence, percent of those expected: what the network lost.
    pub loss_pct: f64,
    /// Of those, the ones rebuilt from the redundancy in later packets (RFC 2198 RED), percent
    /// of those expected. `loss_pct - repaired_pct` is what listeners miss.
    #[serde(default)]
    pub repaired_pct: f64,
    /// RFC 3550 interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Packets received in the window the figures are over.
    pub packets: u64,
}

/// Voice quality in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityRating {
    Good,
    Fair,
    Poor,
}

impl StreamQuality {
    /// Good: under 1 % loss and 30 ms jitter; Poor: 5 % loss or 60 ms jitter or more; Fair in
    /// between. The same thresholds as the phone's own indicator (`sapa_ui::VoiceStats`).
    /// Loss is what listeners miss: repaired packets do not count.
    pub fn rating(&self) -> QualityRating {
        let missed = self.loss_pct - self.repaired_pct;
        if missed >= 5.0 || self.jitter_ms >= 60.0 {
            QualityRating::Poor
        } else if missed >= 1.0 || self.jitter_ms >= 30.0 {
            QualityRating::Fair
        } else {
            QualityRating::Good
        }
    }
}

/// Both legs of an agent's call as the switchboard receives them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoiceQuality {
    /// The worse of the two legs.
    pub rating: QualityRating,
    /// The caller's stream: what the agent hears.
    pub caller_to_agent: Option<StreamQuality>,
    /// The agent's stream: what the caller hears.
    pub agent_to_caller: Option<StreamQuality>,
}

impl VoiceQuality {
    /// Rates the legs that were measured; `None` when neither was (no packets yet).
    pub fn of(
        caller_to_agent: Option<StreamQuality>,
        agent_to_caller: Option<StreamQuality>,
    ) -> Option<VoiceQuality> {
        let rating = [caller_to_agent, agent_to_caller]
            .iter()
            .flatten()
            .map(StreamQuality::rating)
            .max()?;
        Some(VoiceQuality {
            rating,
            caller_to_agent,
            agent_to_caller,
        })
    }
}

/// One 15-minute interval of the day, for the charts. Calls count in the interval they arrived
/// in, each against its own queue's threshold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Start of the interval, epoch milliseconds.
    pub start_ms: i64,
    /// Start of the interval, minutes since `day_start_ms` (0, 15, 30, ...): the chart's x.
    pub start_minute: u32,
    pub offered: u32,
    pub answered: u32,
    pub abandoned: u32,
    /// Service level of the calls that arrived in this interval.
    pub service_level_pct: Option<f64>,
    /// Service level of the calls from the start of the day to the end of this interval.
    pub cumulative_service_level_pct: Option<f64>,
}

/// Today's wallboard: calls with `arrived_at` in `[day_start_ms, now_ms)`, the live snapshot,
/// and one row per configured queue. Calls in a queue that is not configured (any more) are
/// left out, of the rows and of the charts alike, so the two agree.
#[must_use]
pub fn wallboard(
    calls: &[CallReport],
    live: &LiveSnapshot,
    queues: &[QueueConfig],
    day_start_ms: i64,
    now_ms: i64,
) -> Wallboard {
    let mut tallies: Vec<Tally> = queues.iter().map(|_| Tally::default()).collect();
    let queue_index: HashMap<&str, usize> = queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.as_str(), i))
        .collect();

    let interval_count = interval_count(day_start_ms, now_ms);
    let mut intervals: Vec<(Tally, i64)> = (0..interval_count)
        .map(|i| (Tally::default(), day_start_ms + i as i64 * INTERVAL_MS))
        .collect();

    for report in calls {
        let call = &report.call;
        if call.arrived_at < day_start_ms || call.arrived_at >= now_ms {
            continue;
        }
        let Some(&qi) = queue_index.get(call.queue.as_str()) else {
            continue;
        };
        let facts = Facts::of(report);
        let threshold_ms = secs_to_ms(queues[qi].service_level_secs);
        tallies[qi].add(&facts, threshold_ms);
        // In range: arrived_at >= day_start_ms, so the offset is not negative.
        let slot = usize::try_from((call.arrived_at - day_start_ms) / INTERVAL_MS).ok();
        if let Some((tally, _)) = slot.and_then(|i| intervals.get_mut(i)) {
            tally.add(&facts, threshold_ms);
        }
    }

    let queue_rows = queues
        .iter()
        .zip(&tallies)
        .map(|(config, tally)| {
            let now = live.queues.iter().find(|q| q.queue == config.name);
            QueueBoard {
                queue: config.name.clone(),
                service_level_secs: config.service_level_secs,
                waiting: now.map_or(0, |q| q.waiting),
                longest_wait_ms: now.map_or(0, |q| q.longest_wait_ms),
                offered: tally.offered,
                handled_today: tally.answered,
                abandoned: tally.abandoned,
                service_level_pct: tally.sl.pct(),
                asa_ms: average(tally.wait_sum_ms, tally.answered),
                aht_ms: average(tally.handle_sum_ms, tally.handled_ended),
                abandon_pct: pct(tally.abandoned, tally.offered),
            }
        })
        .collect();

    let mut agents: Vec<AgentBoard> = live
        .agents
        .iter()
        .map(|a| AgentBoard {
            name: a.name.clone(),
            state: a.state.clone(),
            reason: a.reason.clone(),
            since_ms: a.since_ms,
            in_state_ms: now_ms.saturating_sub(a.since_ms).max(0),
            call_id: a.call_id.clone(),
            caller: a.caller.clone(),
            call_duration_ms: a
                .call_started_ms
                .map(|started| now_ms.saturating_sub(started).max(0)),
            voice_quality: a.voice_quality,
        })
        .collect();
    agents.sort_by(|a, b| a.name.cmp(&b.name));

    let mut cumulative = SlCount::default();
    let intervals = intervals
        .into_iter()
        .enumerate()
        .map(|(i, (tally, start_ms))| {
            cumulative.within += tally.sl.within;
            cumulative.counted += tally.sl.counted;
            Interval {
                start_ms,
                // At most MAX_INTERVALS * 15 minutes: fits.
                start_minute: (i * 15) as u32,
                offered: tally.offered,
                answered: tally.answered,
                abandoned: tally.abandoned,
                service_level_pct: tally.sl.pct(),
                cumulative_service_level_pct: cumulative.pct(),
            }
        })
        .collect();

    Wallboard {
        now_ms,
        day_start_ms,
        queues: queue_rows,
        agents,
        intervals,
    }
}

/// Intervals from `day_start_ms` up to `now_ms`, the last one partial: ⌈elapsed / 15 min⌉, at
/// most [`MAX_INTERVALS`], 0 when `now_ms` is not after the day's start.
fn interval_count(day_start_ms: i64, now_ms: i64) -> usize {
    let elapsed_ms = i128::from(now_ms) - i128::from(day_start_ms);
    if elapsed_ms <= 0 {
        return 0;
    }
    let count = (elapsed_ms + i128::from(INTERVAL_MS) - 1) / i128::from(INTERVAL_MS);
    usize::try_from(count).map_or(MAX_INTERVALS, |c| c.min(MAX_INTERVALS))
}

// ----- output: reports -----

/// What a report has one row per.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportBy {
    /// The agent who answered; unanswered calls appear in no agent's row.
    Agent,
    Queue,
}

/// One row of a report: one agent's or one queue's calls that arrived in the period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    /// The agent's or the queue's name.
    pub key: String,
    /// Calls answered or ended. For an agent: the calls the agent answered.
    pub offered: u32,
    pub answered: u32,
    /// Always 0 in agent rows.
    pub abandoned: u32,
    /// Average talk + after-call work of answered calls that have ended.
    pub avg_handle_ms: Option<u64>,
    /// Average after-call work of the same calls (0 for a call without a disposition), so
    /// that `avg_handle_ms` is average talk + this.
    pub avg_after_call_work_ms: Option<u64>,
    /// Average wait of answered calls (ASA).
    pub avg_wait_ms: Option<u64>,
    /// Disposition code → calls with that code.
    pub dispositions: BTreeMap<String, u32>,
    /// Resolution (`resolved`, `escalated`, `follow_up`) → calls with it.
    pub resolutions: BTreeMap<String, u32>,
    /// Answered calls with a disposition: the base of first-contact resolution.
    pub fcr_base: u32,
    /// Of those, calls `resolved` with no inbound call from the same number within
    /// [`FCR_WINDOW_MS`] after they arrived.
    pub first_contact_resolved: u32,
    /// `first_contact_resolved ÷ fcr_base`.
    pub fcr_pct: Option<f64>,
    /// Average satisfaction score (1 to 5) of the calls that have one.
    pub csat_avg: Option<f64>,
    pub csat_count: u32,
    /// Calls whose caller was asked to rate them (the survey's response rate is
    /// `csat_count ÷ surveys`).
    #[serde(default)]
    pub surveys: u32,
    /// Average first response (first offer to answer) of answered calls.
    #[serde(default)]
    pub avg_first_response_ms: Option<u64>,
    /// Average hold time of answered calls, and how many holds there were in all.
    #[serde(default)]
    pub avg_hold_ms: Option<u64>,
    #[serde(default)]
    pub holds: u32,
    /// Average time answered calls had the agent's microphone muted.
    #[serde(default)]
    pub avg_mute_ms: Option<u64>,
    /// Calls whose disposition resolved a problem (`resolved`, with the problem's first call
    /// known), and the average time from that first call's arrival to the disposition.
    #[serde(default)]
    pub resolved_problems: u32,
    #[serde(default)]
    pub avg_resolution_ms: Option<u64>,
    /// Follow-ups (callbacks promised by a disposition) due in the period, by the agent who
    /// promised them or their queue; and of those, the ones whose customer was reached no later
    /// than [`FOLLOW_UP_ON_TIME_MS`] after the promised time.
    #[serde(default)]
    pub follow_ups: u32,
    #[serde(default)]
    pub follow_ups_on_time: u32,
    /// `follow_ups_on_time ÷ follow_ups`.
    #[serde(default)]
    pub follow_up_on_time_pct: Option<f64>,
}

/// How late a follow-up may reach its customer and still count as on time: 15 minutes after
/// the time the agent promised.
pub const FOLLOW_UP_ON_TIME_MS: i64 = 15 * 60 * 1000;

/// A report of the calls that arrived in `[from_ms, to_ms)`, one row per agent or per queue,
/// sorted by key.
///
/// `later_calls` is for first-contact resolution: the calls that arrived after `from_ms`, up to
/// `to_ms` + 7 days (it may overlap `calls`). A call is first-contact resolved when its
/// disposition is `resolved` and no inbound call from the same caller number arrived in the 7
/// days after it (outbound calls to the customer are not repeats). The window is cut at the data
/// given: a repeat that is in neither list, because it is still in the future or was not passed,
/// is not seen, so calls near the end of a recent period may count as resolved until it comes.
///
/// `follow_ups` are the callbacks promised by dispositions; those due in `[from_ms, to_ms)`
/// count in the row of the agent who promised them (or of their queue).
#[must_use]
pub fn report(
    calls: &[CallReport],
    later_calls: &[CallReport],
    follow_ups: &[Callback],
    from_ms: i64,
    to_ms: i64,
    by: ReportBy,
) -> Vec<ReportRow> {
    let repeats = RepeatIndex::new(calls.iter().chain(later_calls));
    let mut rows: BTreeMap<&str, RowTally> = BTreeMap::new();
    for report in calls {
        let call = &report.call;
        if call.arrived_at < from_ms || call.arrived_at >= to_ms {
            continue;
        }
        let key = match by {
            ReportBy::Queue => call.queue.as_str(),
            ReportBy::Agent => match (&call.agent, call.answered_at) {
                (Some(agent), Some(_)) => agent.as_str(),
                _ => continue,
            },
        };
        rows.entry(key).or_default().add(report, &repeats);
    }
    for callback in follow_ups {
        if callback.due_at < from_ms || callback.due_at >= to_ms {
            continue;
        }
        let key = match by {
            ReportBy::Queue => callback.queue.as_str(),
            ReportBy::Agent => match &callback.agent {
                Some(agent) => agent.as_str(),
                None => continue,
            },
        };
        let row = rows.entry(key).or_default();
        row.follow_ups += 1;
        let reached_in_time = callback.status == CallbackStatus::Done
            && callback
                .reached_at
                .is_some_and(|at| at <= callback.due_at.saturating_add(FOLLOW_UP_ON_TIME_MS));
        if reached_in_time {
            row.follow_ups_on_time += 1;
        }
    }
    rows.into_iter()
        .map(|(key, row)| row.finish(key.to_owned()))
        .collect()
}

/// The report as CSV: a header line, then one line per row; lines end in `\n`. Fields with a
/// comma, a quote or a line break are quoted (RFC 4180). Missing figures are empty fields;
/// breakdowns are `code=count;code=count`, sorted by code.
#[must_use]
pub fn report_csv(rows: &[ReportRow]) -> String {
    const HEADER: [&str; 24] = [
        "key",
        "offered",
        "answered",
        "abandoned",
        "avg_handle_ms",
        "avg_after_call_work_ms",
        "avg_wait_ms",
        "dispositions",
        "resolutions",
        "fcr_base",
        "first_contact_resolved",
        "fcr_pct",
        "csat_avg",
        "csat_count",
        "surveys",
        "avg_first_response_ms",
        "avg_hold_ms",
        "holds",
        "avg_mute_ms",
        "resolved_problems",
        "avg_resolution_ms",
        "follow_ups",
        "follow_ups_on_time",
        "follow_up_on_time_pct",
    ];
    let mut out = String::new();
    push_csv_line(&mut out, HEADER.map(str::to_owned));
    for row in rows {
        push_csv_line(
            &mut out,
            [
                row.key.clone(),
                row.offered.to_string(),
                row.answered.to_string(),
                row.abandoned.to_string(),
                optional(row.avg_handle_ms),
                optional(row.avg_after_call_work_ms),
                optional(row.avg_wait_ms),
                breakdown(&row.dispositions),
                breakdown(&row.resolutions),
                row.fcr_base.to_string(),
                row.first_contact_resolved.to_string(),
                optional_f64(row.fcr_pct),
                optional_f64(row.csat_avg),
                row.csat_count.to_string(),
                row.surveys.to_string(),
                optional(row.avg_first_response_ms),
                optional(row.avg_hold_ms),
                row.holds.to_string(),
                optional(row.avg_mute_ms),
                row.resolved_problems.to_string(),
                optional(row.avg_resolution_ms),
                row.follow_ups.to_string(),
                row.follow_ups_on_time.to_string(),
                optional_f64(row.follow_up_on_time_pct),
            ],
        );
    }
    out
}

fn push_csv_line(out: &mut String, fields: impl IntoIterator<Item = String>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&field);
        }
    }
    out.push('\n');
}

fn optional(value: Option<u64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn optional_f64(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.2}")).unwrap_or_default()
}

fn breakdown(counts: &BTreeMap<String, u32>) -> String {
    counts
        .iter()
        .map(|(code, count)| format!("{code}={count}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Arrival times of inbound calls by caller number, sorted, to find repeat calls.
struct RepeatIndex<'a> {
    arrivals: HashMap<&'a str, Vec<i64>>,
}

impl<'a> RepeatIndex<'a> {
    fn new(calls: impl Iterator<Item = &'a CallReport>) -> Self {
        let mut arrivals: HashMap<&str, Vec<i64>> = HashMap::new();
        for report in calls {
            let call = &report.call;
            if call.direction == Direction::Inbound {
                arrivals
                    .entry(call.caller_number.as_str())
                    .or_default()
                    .push(call.arrived_at);
            }
        }
        for times in arrivals.values_mut() {
            // A call passed in both lists appears twice; harmless for "is there one in range".
            times.sort_unstable();
        }
        Self { arrivals }
    }

    /// Did the number call in after `call` arrived, within the window?
    fn called_again(&self, call: &CallRecord) -> bool {
        let Some(times) = self.arrivals.get(call.caller_number.as_str()) else {
            return false;
        };
        let first_after = times.partition_point(|&t| t <= call.arrived_at);
        times
            .get(first_after)
            .is_some_and(|&t| t <= call.arrived_at.saturating_add(FCR_WINDOW_MS))
    }
}

/// A report row being summed.
#[derive(Default)]
struct RowTally {
    base: Tally,
    acw_sum_ms: u128,
    dispositions: BTreeMap<String, u32>,
    resolutions: BTreeMap<String, u32>,
    fcr_base: u32,
    first_contact_resolved: u32,
    csat_sum: i128,
    csat_count: u32,
    surveys: u32,
    first_response_sum_ms: u128,
    first_responses: u32,
    hold_sum_ms: u128,
    holds: u32,
    mute_sum_ms: u128,
    resolution_sum_ms: u128,
    resolved_problems: u32,
    follow_ups: u32,
    follow_ups_on_time: u32,
}

impl RowTally {
    fn add(&mut self, report: &CallReport, repeats: &RepeatIndex) {
        let facts = Facts::of(report);
        // Reports have no service level column; any threshold will do.
        self.base.add(&facts, 0);
        if let Some(handle) = facts.handle {
            self.acw_sum_ms += handle.acw_ms as u128;
        }
        if let Some(d) = &report.disposition {
            *self.dispositions.entry(d.code.clone()).or_default() += 1;
            *self
                .resolutions
                .entry(d.resolution.as_str().to_owned())
                .or_default() += 1;
            if d.resolution == Resolution::Resolved
                && let Some(started) = report.call.problem_started_at
            {
                self.resolution_sum_ms += d.submitted_at.saturating_sub(started).max(0) as u128;
                self.resolved_problems += 1;
            }
            if facts.answered {
                self.fcr_base += 1;
                if d.resolution == Resolution::Resolved && !repeats.called_again(&report.call) {
                    self.first_contact_resolved += 1;
                }
            }
        }
        if let Some(score) = report.call.csat {
            self.csat_sum += i128::from(score);
            self.csat_count += 1;
        }
        let call = &report.call;
        if call.survey.is_some() {
            self.surveys += 1;
        }
        if facts.answered {
            if let Some(ms) = call.first_response_ms {
                self.first_response_sum_ms += ms.max(0) as u128;
                self.first_responses += 1;
            }
            self.hold_sum_ms += call.hold_ms.max(0) as u128;
            self.mute_sum_ms += call.mute_ms.max(0) as u128;
        }
        self.holds += u32::try_from(call.hold_count.max(0)).unwrap_or(u32::MAX);
    }

    fn finish(self, key: String) -> ReportRow {
        let t = &self.base;
        ReportRow {
            key,
            offered: t.offered,
            answered: t.answered,
            abandoned: t.abandoned,
            avg_handle_ms: average(t.handle_sum_ms, t.handled_ended),
            avg_after_call_work_ms: average(self.acw_sum_ms, t.handled_ended),
            avg_wait_ms: average(t.wait_sum_ms, t.answered),
            fcr_pct: pct(self.first_contact_resolved, self.fcr_base),
            dispositions: self.dispositions,
            resolutions: self.resolutions,
            fcr_base: self.fcr_base,
            first_contact_resolved: self.first_contact_resolved,
            csat_avg: (self.csat_count > 0)
                .then(|| self.csat_sum as f64 / f64::from(self.csat_count)),
            csat_count: self.csat_count,
            surveys: self.surveys,
            avg_first_response_ms: average(self.first_response_sum_ms, self.first_responses),
            avg_hold_ms: average(self.hold_sum_ms, t.answered),
            holds: self.holds,
            avg_mute_ms: average(self.mute_sum_ms, t.answered),
            resolved_problems: self.resolved_problems,
            avg_resolution_ms: average(self.resolution_sum_ms, self.resolved_problems),
            follow_ups: self.follow_ups,
            follow_ups_on_time: self.follow_ups_on_time,
            follow_up_on_time_pct: pct(self.follow_ups_on_time, self.follow_ups),
        }
    }
}

// ----- shared arithmetic -----

/// What one call counts as; see the module documentation.
struct Facts {
    answered: bool,
    abandoned: bool,
    offered: bool,
    /// `None` for a caller still waiting.
    wait_ms: Option<i64>,
    /// `Some` for an answered call that has ended.
    handle: Option<Handle>,
}

struct Handle {
    talk_ms: i64,
    acw_ms: i64,
}

impl Facts {
    fn of(report: &CallReport) -> Self {
        let call = &report.call;
        let answered = call.answered_at.is_some();
        // The store sets the end reason and the end time together; a reason without a time is
        // not trusted, so that abandoned calls are always among the offered ones.
        let abandoned =
            !answered && call.ended_at.is_some() && call.end_reason.as_deref() == Some("abandoned");
        let offered = answered || call.ended_at.is_some();
        let wait_ms = call
            .wait_ms
            .or_else(|| {
                call.answered_at
                    .or(call.ended_at)
                    .map(|t| t.saturating_sub(call.arrived_at))
            })
            .map(|w| w.max(0));
        let handle = match (call.answered_at, call.ended_at) {
            (Some(answered_at), Some(ended_at)) => Some(Handle {
                talk_ms: call
                    .talk_ms
                    .unwrap_or_else(|| ended_at.saturating_sub(answered_at))
                    .max(0),
                acw_ms: report
                    .disposition
                    .as_ref()
                    .map_or(0, |d| d.submitted_at.saturating_sub(ended_at).max(0)),
            }),
            _ => None,
        };
        Facts {
            answered,
            abandoned,
            offered,
            wait_ms,
            handle,
        }
    }

    /// How the call counts toward the service level with this threshold.
    fn service_level(&self, threshold_ms: i64) -> Option<bool> {
        match self.wait_ms {
            Some(wait) if self.answered => Some(wait <= threshold_ms),
            Some(wait) if self.abandoned && wait > threshold_ms => Some(false),
            _ => None,
        }
    }
}

/// Service-level counts: answered within the threshold, of the calls that count.
#[derive(Clone, Copy, Default)]
struct SlCount {
    within: u32,
    counted: u32,
}

impl SlCount {
    fn pct(self) -> Option<f64> {
        pct(self.within, self.counted)
    }
}

/// Sums for one queue, interval or report row.
#[derive(Default)]
struct Tally {
    offered: u32,
    answered: u32,
    abandoned: u32,
    sl: SlCount,
    /// Waits of answered calls.
    wait_sum_ms: u128,
    /// Answered calls that have ended, and their handle times.
    handled_ended: u32,
    handle_sum_ms: u128,
}

impl Tally {
    fn add(&mut self, facts: &Facts, threshold_ms: i64) {
        self.offered += u32::from(facts.offered);
        self.answered += u32::from(facts.answered);
        self.abandoned += u32::from(facts.abandoned);
        if let Some(within) = facts.service_level(threshold_ms) {
            self.sl.counted += 1;
            self.sl.within += u32::from(within);
        }
        if facts.answered {
            // Facts clamp waits at 0.
            self.wait_sum_ms += facts.wait_ms.unwrap_or(0) as u128;
        }
        if let Some(h) = &facts.handle {
            self.handled_ended += 1;
            // Both clamped at 0 in Facts.
            self.handle_sum_ms += h.talk_ms as u128 + h.acw_ms as u128;
        }
    }
}

/// `sum ÷ count`, rounded to the nearest millisecond; `None` when `count` is 0.
fn average(sum_ms: u128, count: u32) -> Option<u64> {
    let count = u128::from(count);
    (count > 0).then(|| u64::try_from((sum_ms + count / 2) / count).unwrap_or(u64::MAX))
}

/// `100 × part ÷ whole`; `None` when `whole` is 0.
fn pct(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| 100.0 * f64::from(part) / f64::from(whole))
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Disposition;
    use proptest::prelude::*;

    /// Local midnight of the test day, epoch ms.
    const DAY: i64 = 1_700_000_000_000;
    const S: i64 = 1000;
    const MIN: i64 = 60 * S;
    const DAYS: i64 = 24 * 60 * MIN;

    fn queues() -> Vec<QueueConfig> {
        vec![
            QueueConfig {
                name: "support".into(),
                service_level_secs: 20,
                survey: false,
                agents: vec![],
            },
            QueueConfig {
                name: "billing".into(),
                service_level_secs: 60,
                survey: false,
                agents: vec![],
            },
        ]
    }

    /// A caller who arrived at `at` and is still waiting.
    fn waiting(id: &str, queue: &str, at: i64) -> CallReport {
        CallReport {
            call: CallRecord {
                id: id.into(),
                direction: Direction::Inbound,
                queue: queue.into(),
                caller_number: format!("+1555{id}"),
                caller_name: None,
                agent: None,
                arrived_at: at,
                answered_at: None,
                ended_at: None,
                end_reason: None,
                wait_ms: None,
                talk_ms: None,
                hold_ms: 0,
                csat: None,
                hold_count: 0,
                mute_ms: 0,
                first_response_ms: None,
                menu: None,
                menu_choice: None,
                survey: None,
                problem_call_id: Some(id.into()),
                problem_started_at: Some(at),
            },
            disposition: None,
        }
    }

    /// Answered by `agent` after `wait_s`, still connected.
    fn connected(id: &str, queue: &str, agent: &str, at: i64, wait_s: i64) -> CallReport {
        let mut r = waiting(id, queue, at);
        r.call.agent = Some(agent.into());
        r.call.answered_at = Some(at + wait_s * S);
        r.call.wait_ms = Some(wait_s * S);
        r
    }

    /// Answered after `wait_s`, talked `talk_s`, ended; no disposition.
    fn answered(
        id: &str,
        queue: &str,
        agent: &str,
        at: i64,
        wait_s: i64,
        talk_s: i64,
    ) -> CallReport {
        let mut r = connected(id, queue, agent, at, wait_s);
        r.call.ended_at = Some(at + (wait_s + talk_s) * S);
        r.call.end_reason = Some("agent_hung_up".into());
        r.call.talk_ms = Some(talk_s * S);
        r
    }

    /// Hung up unanswered after `wait_s`.
    fn abandoned(id: &str, queue: &str, at: i64, wait_s: i64) -> CallReport {
        let mut r = waiting(id, queue, at);
        r.call.ended_at = Some(at + wait_s * S);
        r.call.end_reason = Some("abandoned".into());
        r.call.wait_ms = Some(wait_s * S);
        r
    }

    /// Adds a disposition submitted `acw_s` after the call ended (negative: before).
    fn disposed(mut r: CallReport, code: &str, resolution: Resolution, acw_s: i64) -> CallReport {
        let ended_at = r.call.ended_at.expect("dispositions are for ended calls");
        r.disposition = Some(Disposition {
            call_id: r.call.id.clone(),
            agent: r.call.agent.clone().unwrap_or_default(),
            code: code.into(),
            resolution,
            notes: String::new(),
            follow_up_at: None,
            submitted_at: ended_at + acw_s * S,
            request_id: format!("req-{}", r.call.id),
        });
        r
    }

    fn from_number(mut r: CallReport, number: &str) -> CallReport {
        r.call.caller_number = number.into();
        r
    }

    fn live_support(waiting: u32, longest_wait_ms: u64) -> LiveSnapshot {
        LiveSnapshot {
            queues: vec![LiveQueue {
                queue: "support".into(),
                waiting,
                longest_wait_ms,
            }],
            agents: vec![],
        }
    }

    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a value");
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    #[test]
    fn queue_figures_for_a_scripted_day() {
        let t = DAY + 9 * 60 * MIN;
        let calls = vec![
            // c1: wait 5 s, talk 100 s, ACW 20 s -> handle 120 s
            disposed(
                answered("c1", "support", "ana", t, 5, 100),
                "billing",
                Resolution::Resolved,
                20,
            ),
            // c2: wait 15 s, talk 200 s, no disposition -> ACW 0, handle 200 s
            answered("c2", "support", "bo", t + MIN, 15, 200),
            // c3: wait 25 s (over the 20 s threshold), talk 300 s, ACW 40 s -> handle 340 s
            disposed(
                answered("c3", "support", "ana", t + 2 * MIN, 25, 300),
                "sales",
                Resolution::Escalated,
                40,
            ),
            // c4: abandoned at 3 s: a short abandon, left out of the service level
            abandoned("c4", "support", t + 3 * MIN, 3),
            // c5: abandoned at 30 s, after the threshold: counts against the service level
            abandoned("c5", "support", t + 4 * MIN, 30),
            // c6: still waiting: not offered yet
            waiting("c6", "support", t + 5 * MIN),
            // Not today, not configured, not yet arrived: all left out.
            answered("y1", "support", "ana", DAY - MIN, 100, 100),
            answered("x1", "sales", "ana", t, 100, 100),
            answered("f1", "support", "ana", t + 60 * MIN, 100, 100),
        ];
        let now = t + 60 * MIN;
        let board = wallboard(&calls, &live_support(1, 42_000), &queues(), DAY, now);

        let support = &board.queues[0];
        assert_eq!(support.queue, "support");
        assert_eq!(support.service_level_secs, 20);
        assert_eq!((support.waiting, support.longest_wait_ms), (1, 42_000));
        // offered = 3 answered + 2 abandoned = 5 (c6 still waits)
        assert_eq!(support.offered, 5);
        assert_eq!(support.handled_today, 3);
        assert_eq!(support.abandoned, 2);
        // SL = within 20 s (c1, c2) / (3 answered + 1 abandoned after 20 s) = 2/4 = 50 %
        assert_eq!(support.service_level_pct, Some(50.0));
        // ASA = (5 + 15 + 25) / 3 = 15 s
        assert_eq!(support.asa_ms, Some(15_000));
        // AHT = (120 + 200 + 340) / 3 = 660 / 3 = 220 s
        assert_eq!(support.aht_ms, Some(220_000));
        // abandon rate = 2 / 5 = 40 %
        assert_eq!(support.abandon_pct, Some(40.0));

        // billing: configured, no calls, not in the snapshot: zeros and None, never NaN.
        let billing = &board.queues[1];
        assert_eq!(
            billing,
            &QueueBoard {
                queue: "billing".into(),
                service_level_secs: 60,
                ..QueueBoard::default()
            }
        );
    }

    #[test]
    fn service_level_threshold_is_inclusive_and_per_queue() {
        let t = DAY + MIN;
        let calls = vec![
            // support (20 s): 20 s is within, 21 s is not; abandoned at exactly 20 s is short.
            answered("a", "support", "ana", t, 20, 10),
            answered("b", "support", "ana", t, 21, 10),
            abandoned("c", "support", t, 20),
            // billing (60 s): 45 s is within.
            answered("d", "billing", "bo", t, 45, 10),
        ];
        let board = wallboard(
            &calls,
            &LiveSnapshot::default(),
            &queues(),
            DAY,
            DAY + 20 * MIN,
        );
        // support: 1 within / 2 counted = 50 %; billing: 1/1 = 100 %
        assert_eq!(board.queues[0].service_level_pct, Some(50.0));
        assert_eq!(board.queues[1].service_level_pct, Some(100.0));
    }

    #[test]
    fn handle_time_with_and_without_dispositions() {
        let t = DAY + MIN;
        let calls = vec![
            // talk 60 s + ACW 30 s = 90 s
            disposed(
                answered("a", "support", "ana", t, 1, 60),
                "billing",
                Resolution::Resolved,
                30,
            ),
            // talk 90 s, no disposition (ACW 0) = 90 s
            answered("b", "support", "ana", t, 1, 90),
            // talk 120 s, disposition saved 10 s before the end: ACW clamped to 0 = 120 s
            disposed(
                answered("c", "support", "ana", t, 1, 120),
                "billing",
                Resolution::Resolved,
                -10,
            ),
            // still connected: counts as answered (ASA, SL) but has no handle time yet
            connected("d", "support", "ana", t, 9),
        ];
        let board = wallboard(
            &calls,
            &LiveSnapshot::default(),
            &queues(),
            DAY,
            DAY + 30 * MIN,
        );
        let q = &board.queues[0];
        // AHT = (90 + 90 + 120) / 3 = 100 s
        assert_eq!(q.aht_ms, Some(100_000));
        // ASA = (1 + 1 + 1 + 9) / 4 = 3 s
        assert_eq!(q.asa_ms, Some(3_000));
        assert_eq!((q.handled_today, q.offered), (4, 4));

        // talk_ms missing: answer to end is used. Wait missing: arrival to answer.
        let mut e = answered("e", "support", "ana", t, 7, 50);
        e.call.talk_ms = None;
        e.call.wait_ms = None;
        let board = wallboard(
            &[e],
            &LiveSnapshot::default(),
            &queues(),
            DAY,
            DAY + 30 * MIN,
        );
        assert_eq!(board.queues[0].aht_ms, Some(50_000));
        assert_eq!(board.queues[0].asa_ms, Some(7_000));
    }

    #[test]
    fn averages_round_to_the_nearest_millisecond() {
        let t = DAY + MIN;
        // waits 1 s, 1 s, 2 s: 4000 / 3 = 1333.33 ms -> 1333; talks 1, 1, 2 s likewise
        let calls = vec![
            answered("a", "support", "ana", t, 1, 1),
            answered("b", "support", "ana", t, 1, 1),
            answered("c", "support", "ana", t, 2, 2),
        ];
        let board = wallboard(
            &calls,
            &LiveSnapshot::default(),
            &queues(),
            DAY,
            DAY + MIN * 2,
        );
        assert_eq!(board.queues[0].asa_ms, Some(1333));
        // abandon rate 0 / 3 = 0 %, a value, not None
        assert_eq!(board.queues[0].abandon_pct, Some(0.0));
    }

    #[test]
    fn fifteen_minute_intervals_with_cumulative_service_level() {
        let calls = vec![
            // interval 0 (00:00-00:15): within (10 s) and missed (30 s) -> SL 1/2
            answered("a", "support", "ana", DAY + MIN, 10, 60),
            answered("b", "support", "ana", DAY + 2 * MIN, 30, 60),
            // interval 1 (00:15-00:30): a short abandon exactly at 00:15 (left out of SL) and
            // one after 40 s -> SL 0/1
            abandoned("c", "support", DAY + 15 * MIN, 5),
            abandoned("d", "support", DAY + 20 * MIN, 40),
            // interval 2 (00:30-00:45): support at 0 s, billing at 30 s (within its 60 s) -> 2/2
            answered("e", "support", "ana", DAY + 31 * MIN, 0, 60),
            answered("f", "billing", "bo", DAY + 44 * MIN, 30, 60),
            // still waiting in interval 3: not offered
            waiting("g", "support", DAY + 46 * MIN),
            // arrives at `now`: not in [day start, now)
            waiting("h", "support", DAY + 50 * MIN),
        ];
        // now = 00:50: intervals 0, 15, 30 and a partial 45
        let board = wallboard(
            &calls,
            &LiveSnapshot::default(),
            &queues(),
            DAY,
            DAY + 50 * MIN,
        );
        let got: Vec<_> = board
            .intervals
            .iter()
            .map(|i| (i.start_minute, i.offered, i.answered, i.abandoned))
            .collect();
        assert_eq!(
            got,
            [(0, 2, 2, 0), (15, 2, 0, 2), (30, 2, 2, 0), (45, 0, 0, 0)]
        );
        assert_eq!(board.intervals[1].start_ms, DAY + 15 * MIN);

        let sl: Vec<_> = board
            .intervals
            .iter()
            .map(|i| i.service_level_pct)
            .collect();
        assert_eq!(sl, [Some(50.0), Some(0.0), Some(100.0), None]);
        // cumulative: 1/2 = 50 %; 1/3 = 33.3 %; (1+0+2)/(2+1+2) = 3/5 = 60 %; still 60 %
        let cumulative: Vec<_> = board
            .intervals
            .iter()
            .map(|i| i.cumulative_service_level_pct)
            .collect();
        assert_eq!(cumulative[0], Some(50.0));
        assert_close(cumulative[1], 100.0 / 3.0);
        assert_eq!(cumulative[2..], [Some(60.0), Some(60.0)]);

        // The charts add up to the queue rows.
        let offered: u32 = board.intervals.iter().map(|i| i.offered).sum();
        let rows: u32 = board.queues.iter().map(|q| q.offered).sum();
        assert_eq!((offered, rows), (6, 6));
    }

    #[test]
    fn interval_count_edges() {
        assert_eq!(interval_count(DAY, DAY), 0);
        assert_eq!(interval_count(DAY, DAY - 1), 0);
        assert_eq!(interval_count(DAY, DAY + 1), 1);
        assert_eq!(interval_count(DAY, DAY + 15 * MIN), 1);
        assert_eq!(interval_count(DAY, DAY + 15 * MIN + 1), 2);
        // a full day, and a 25-hour day, and nonsense capped
        assert_eq!(interval_count(DAY, DAY + DAYS), 96);
        assert_eq!(interval_count(DAY, DAY + DAYS + 60 * MIN), 100);
        assert_eq!(interval_count(i64::MIN, i64::MAX), MAX_INTERVALS);
    }

    #[test]
    fn stream_ratings_agree_with_the_phones_indicator() {
        for loss_pct in [0.0, 0.9, 1.0, 4.9, 5.0, 20.0] {
            for jitter_ms in [0.0, 29.0, 30.0, 59.0, 60.0, 200.0] {
                let ours = StreamQuality {
                    loss_pct,
                    repaired_pct: 0.0,
                    jitter_ms,
                    packets: 250,
                }
                .rating();
                // Repaired packets are not missed: the same stream with all of its loss
                // repaired rates as if it had none.
                let repaired = StreamQuality {
                    loss_pct,
                    repaired_pct: loss_pct,
                    jitter_ms,
                    packets: 250,
                }
                .rating();
                let clean = StreamQuality {
                    loss_pct: 0.0,
                    repaired_pct: 0.0,
                    jitter_ms,
                    packets: 250,
                }
                .rating();
                assert_eq!(repaired, clean);
                let phone = sapa_ui::VoiceStats {
                    loss_pct: loss_pct as f32,
                    jitter_ms: jitter_ms as f32,
                    concealment_pct: 0.0,
                }
                .quality();
                assert_eq!(
                    format!("{ours:?}"),
                    format!("{phone:?}"),
                    "loss {loss_pct} jitter {jitter_ms}"
                );
            }
        }
        assert_eq!(VoiceQuality::of(None, None), None);
    }

    #[test]
    fn agents_show_time_in_state_and_call_duration() {
        let now = DAY + 10 * 60 * MIN;
        let live = LiveSnapshot {
            queues: vec![],
            agents: vec![
                LiveAgent {
                    name: "zoe".into(),
                    state: "on_call".into(),
                    since_ms: now - 30 * S,
                    call_id: Some("c9".into()),
                    caller: Some("+15550123".into()),
                    call_started_ms: Some(now - 30 * S),
                    voice_quality: VoiceQuality::of(
                        Some(StreamQuality {
                            repaired_pct: 0.0,
                            loss_pct: 0.2,
                            jitter_ms: 3.0,
                            packets: 250,
                        }),
                        Some(StreamQuality {
                            repaired_pct: 0.0,
                            loss_pct: 6.0,
                            jitter_ms: 3.0,
                            packets: 235,
                        }),
                    ),
                    ..LiveAgent::default()
                },
                LiveAgent {
                    name: "ana".into(),
                    state: "not_ready".into(),
                    reason: Some("lunch".into()),
                    // a clock a little ahead: clamped to 0, not negative
                    since_ms: now + 500,
                    ..LiveAgent::default()
                },
            ],
        };
        let board = wallboard(&[], &live, &queues(), DAY, now);
        let names: Vec<_> = board.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["ana", "zoe"]);
        assert_eq!(board.agents[0].in_state_ms, 0);
        assert_eq!(board.agents[0].reason.as_deref(), Some("lunch"));
        assert_eq!(board.agents[0].call_duration_ms, None);
        let zoe = &board.agents[1];
        assert_eq!(
            (zoe.in_state_ms, zoe.call_duration_ms),
            (30_000, Some(30_000))
        );
        assert_eq!(zoe.caller.as_deref(), Some("+15550123"));
        let quality = zoe.voice_quality.expect("measured");
        assert_eq!(
            quality.rating,
            QualityRating::Poor,
            "the worse leg rates the call"
        );
        assert_eq!(
            quality.caller_to_agent.unwrap().rating(),
            QualityRating::Good
        );

        // The caller never reaches logs through Debug.
        let debug = format!("{board:?} {live:?}");
        assert!(!debug.contains("+15550123"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn empty_inputs_give_zeros_and_none() {
        let board = wallboard(&[], &LiveSnapshot::default(), &[], DAY, DAY);
        assert_eq!(board.queues, []);
        assert_eq!(board.intervals, []);
        let board = wallboard(&[], &LiveSnapshot::default(), &queues(), DAY, DAY + MIN);
        assert_eq!(board.intervals.len(), 1);
        assert_eq!(board.intervals[0].service_level_pct, None);
        assert_eq!(board.intervals[0].cumulative_service_level_pct, None);
        assert!(board.queues.iter().all(|q| q.offered == 0
            && q.service_level_pct.is_none()
            && q.asa_ms.is_none()
            && q.aht_ms.is_none()
            && q.abandon_pct.is_none()));
        assert_eq!(report(&[], &[], &[], DAY, DAY + DAYS, ReportBy::Agent), []);
        assert_eq!(report_csv(&[]).lines().count(), 1);
    }

    #[test]
    fn an_abandoned_reason_without_an_end_time_is_not_an_abandon() {
        // Found by the property test: counting it made the abandon rate 2 / 1 = 200 %.
        let mut odd = waiting("x", "support", DAY);
        odd.call.end_reason = Some("abandoned".into());
        let calls = [odd, abandoned("y", "support", DAY, 30)];
        let board = wallboard(&calls, &LiveSnapshot::default(), &queues(), DAY, DAY + MIN);
        let q = &board.queues[0];
        // only y: offered 1, abandoned 1 -> 100 %
        assert_eq!((q.offered, q.abandoned, q.abandon_pct), (1, 1, Some(100.0)));
    }

    #[test]
    fn wallboard_round_trips_through_json() {
        let t = DAY + MIN;
        let calls = vec![
            answered("a", "support", "ana", t, 5, 10),
            abandoned("b", "support", t, 30),
        ];
        let board = wallboard(
            &calls,
            &live_support(2, 9_000),
            &queues(),
            DAY,
            DAY + 40 * MIN,
        );
        let json = serde_json::to_string(&board).unwrap();
        assert!(!json.contains("NaN"));
        let back: Wallboard = serde_json::from_str(&json).unwrap();
        assert_eq!(back, board);
    }

    /// The calls for the report tests, all in [DAY, DAY + 1 day).
    fn report_calls() -> Vec<CallReport> {
        let t = DAY + 9 * 60 * MIN;
        vec![
            // ana, support: wait 10, talk 100, ACW 20, resolved, CSAT 5 (asked by the
            // survey); first response 4 s, held twice for 9 s in all, muted 3 s
            {
                let mut r = disposed(
                    answered("r1", "support", "ana", t, 10, 100),
                    "billing",
                    Resolution::Resolved,
                    20,
                );
                r.call.csat = Some(5);
                r.call.survey = Some("answered".into());
                r.call.first_response_ms = Some(4_000);
                (r.call.hold_ms, r.call.hold_count, r.call.mute_ms) = (9_000, 2, 3_000);
                r
            },
            // ana, support: wait 20, talk 200, no disposition, CSAT 2 (not from a survey);
            // first response 2 s
            {
                let mut r = answered("r2", "support", "ana", t + MIN, 20, 200);
                r.call.csat = Some(2);
                r.call.first_response_ms = Some(2_000);
                r
            },
            // bo, billing: wait 30, talk 300, ACW 60, escalated
            disposed(
                answered("r3", "billing", "bo", t + 2 * MIN, 30, 300),
                "complaint",
                Resolution::Escalated,
                60,
            ),
            // bo, support: wait 0, talk 50, ACW 10, follow-up
            disposed(
                answered("r4", "support", "bo", t + 3 * MIN, 0, 50),
                "billing",
                Resolution::FollowUp,
                10,
            ),
            // support: abandoned after 40 s; billing: still waiting
            abandoned("r5", "support", t + 4 * MIN, 40),
            waiting("r6", "billing", t + 5 * MIN),
            // outside the period: left out
            answered("r7", "support", "ana", DAY - MIN, 1, 1),
            answered("r8", "support", "cy", DAY + DAYS, 1, 1),
        ]
    }

    #[test]
    fn report_by_queue() {
        let rows = report(&report_calls(), &[], &[], DAY, DAY + DAYS, ReportBy::Queue);
        let keys: Vec<_> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["billing", "support"]);

        // billing: r3 answered, r6 still waiting (not offered)
        let billing = &rows[0];
        assert_eq!(
            (billing.offered, billing.answered, billing.abandoned),
            (1, 1, 0)
        );
        assert_eq!(billing.avg_handle_ms, Some(360_000)); // 300 + 60
        assert_eq!(billing.avg_after_call_work_ms, Some(60_000));
        assert_eq!(billing.avg_wait_ms, Some(30_000));
        assert_eq!(billing.csat_avg, None);

        // support: r1, r2, r4 answered, r5 abandoned
        let support = &rows[1];
        assert_eq!(
            (support.offered, support.answered, support.abandoned),
            (4, 3, 1)
        );
        // handle: (120 + 200 + 60) / 3 = 380 / 3 = 126.667 s
        assert_eq!(support.avg_handle_ms, Some(126_667));
        // ACW: (20 + 0 + 10) / 3 = 10 s
        assert_eq!(support.avg_after_call_work_ms, Some(10_000));
        // wait of answered calls: (10 + 20 + 0) / 3 = 10 s (r5's 40 s is not an answer)
        assert_eq!(support.avg_wait_ms, Some(10_000));
        assert_eq!(
            support.dispositions,
            BTreeMap::from([("billing".to_owned(), 2)])
        );
        assert_eq!(
            support.resolutions,
            BTreeMap::from([("follow_up".to_owned(), 1), ("resolved".to_owned(), 1)])
        );
        // CSAT: (5 + 2) / 2 = 3.5 over 2 calls; one survey asked
        assert_eq!((support.csat_avg, support.csat_count), (Some(3.5), 2));
        assert_eq!(support.surveys, 1);
        // first response over the answered calls that have one: (4 + 2) / 2 = 3 s
        assert_eq!(support.avg_first_response_ms, Some(3_000));
        // hold and mute over all 3 answered calls: 9 / 3 = 3 s, 3 / 3 = 1 s; 2 holds
        assert_eq!((support.avg_hold_ms, support.holds), (Some(3_000), 2));
        assert_eq!(support.avg_mute_ms, Some(1_000));
        assert_eq!(
            (billing.avg_hold_ms, billing.holds, billing.avg_mute_ms),
            (Some(0), 0, Some(0))
        );
        assert_eq!(billing.avg_first_response_ms, None);
        // FCR base: r1, r4 (answered with a disposition); r1 resolved, no repeat -> 1/2
        assert_eq!((support.fcr_base, support.first_contact_resolved), (2, 1));
        assert_eq!(support.fcr_pct, Some(50.0));
    }

    #[test]
    fn report_by_agent_leaves_out_unanswered_calls() {
        let rows = report(&report_calls(), &[], &[], DAY, DAY + DAYS, ReportBy::Agent);
        let keys: Vec<_> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["ana", "bo"]);
        let ana = &rows[0];
        // r1, r2: offered = answered = 2, nothing abandoned
        assert_eq!((ana.offered, ana.answered, ana.abandoned), (2, 2, 0));
        // handle (120 + 200) / 2 = 160 s; wait (10 + 20) / 2 = 15 s
        assert_eq!(ana.avg_handle_ms, Some(160_000));
        assert_eq!(ana.avg_wait_ms, Some(15_000));
        let bo = &rows[1];
        // r3 (billing) and r4 (support): handle (360 + 60) / 2 = 210 s
        assert_eq!((bo.offered, bo.answered), (2, 2));
        assert_eq!(bo.avg_handle_ms, Some(210_000));
        assert_eq!(
            bo.dispositions,
            BTreeMap::from([("billing".to_owned(), 1), ("complaint".to_owned(), 1)])
        );
        // bo: no resolved call -> 0 of 2
        assert_eq!(bo.fcr_pct, Some(0.0));
    }

    #[test]
    fn first_contact_resolution_looks_seven_days_ahead() {
        let t = DAY + 10 * 60 * MIN;
        let resolved = |id: &str, number: &str| {
            from_number(
                disposed(
                    answered(id, "support", "ana", t, 5, 60),
                    "general-inquiry",
                    Resolution::Resolved,
                    5,
                ),
                number,
            )
        };
        let calls = vec![
            // A: resolved, but A calls again 3 days later -> not FCR
            resolved("a1", "+1000"),
            // B: resolved, B calls again only after 8 days -> FCR
            resolved("b1", "+2000"),
            // C: escalated -> in the base, not FCR
            from_number(
                disposed(
                    answered("c1", "support", "ana", t, 5, 60),
                    "complaint",
                    Resolution::Escalated,
                    5,
                ),
                "+3000",
            ),
            // D: resolved; the agent calls D back (outbound) 1 day later: not a repeat -> FCR
            resolved("d1", "+4000"),
            // E: answered without a disposition -> not in the base
            from_number(answered("e1", "support", "ana", t, 5, 60), "+5000"),
        ];
        let mut callback = from_number(answered("d2", "support", "ana", t + DAYS, 0, 60), "+4000");
        callback.call.direction = Direction::Outbound;
        let later = vec![
            from_number(waiting("a2", "support", t + 3 * DAYS), "+1000"),
            from_number(answered("b2", "support", "bo", t + 8 * DAYS, 1, 1), "+2000"),
            callback,
        ];
        let rows = report(&calls, &later, &[], DAY, DAY + DAYS, ReportBy::Queue);
        // base: a1, b1, c1, d1 = 4; FCR: b1, d1 = 2 -> 50 %
        assert_eq!((rows[0].fcr_base, rows[0].first_contact_resolved), (4, 2));
        assert_eq!(rows[0].fcr_pct, Some(50.0));

        // The window is inclusive: a repeat exactly 7 days later still counts as a repeat.
        let edge = vec![from_number(waiting("a3", "support", t + 7 * DAYS), "+2000")];
        let rows = report(&calls, &edge, &[], DAY, DAY + DAYS, ReportBy::Queue);
        // a2 is not passed now, so a1 is FCR; b1's repeat is exactly 7 days later, so it is
        // not: FCR = a1, d1 = 2 of 4
        assert_eq!(rows[0].first_contact_resolved, 2);

        // A repeat inside the period (in `calls` itself) is seen without `later_calls`.
        let mut same_day = calls.clone();
        same_day.push(from_number(waiting("b9", "support", t + 60 * MIN), "+2000"));
        let rows = report(&same_day, &[], &[], DAY, DAY + DAYS, ReportBy::Queue);
        // a1, d1 are FCR (a2 not passed); b1 has a repeat: 2 of 4
        assert_eq!(rows[0].first_contact_resolved, 2);
    }

    #[test]
    fn resolution_time_runs_from_the_problems_first_call_and_follow_ups_count_if_on_time() {
        let t = DAY + 9 * 60 * MIN;
        // A follow-up on day 0 (problem starts), resolved on the callback a day later.
        let mut first = disposed(
            answered("r1", "support", "ana", t, 5, 60),
            "billing",
            Resolution::FollowUp,
            10,
        );
        first.call.caller_number = "+1000".into();
        let mut resolving = disposed(
            answered("r2", "support", "ana", t + 2 * 60 * MIN, 0, 120),
            "billing",
            Resolution::Resolved,
            30,
        );
        resolving.call.caller_number = "+1000".into();
        resolving.call.problem_call_id = Some("r1".into());
        resolving.call.problem_started_at = Some(t);
        // Resolved on its first call: resolution time = the call itself plus wrap-up.
        let single = disposed(
            answered("s1", "support", "bo", t, 10, 50),
            "sales",
            Resolution::Resolved,
            0,
        );
        // An old call stored before problems were: no resolution time.
        let mut legacy = disposed(
            answered("l1", "support", "bo", t, 0, 10),
            "sales",
            Resolution::Resolved,
            0,
        );
        legacy.call.problem_started_at = None;
        let calls = vec![first, resolving, single, legacy];

        let promised = |id: &str, agent: &str, due: i64, status, reached| Callback {
            id: id.into(),
            call_id: "r1".into(),
            number: "+1000".into(),
            name: None,
            queue: "support".into(),
            agent: Some(agent.into()),
            notes: String::new(),
            due_at: due,
            status,
            created_at: t,
            dialed_call_id: None,
            completed_at: reached,
            reached_at: reached,
        };
        let due = t + 2 * 60 * MIN;
        let follow_ups = vec![
            // Reached 1 minute late: on time.
            promised("cb1", "ana", due, CallbackStatus::Done, Some(due + MIN)),
            // Reached 20 minutes late: not on time.
            promised(
                "cb2",
                "ana",
                due,
                CallbackStatus::Done,
                Some(due + 20 * MIN),
            ),
            // Never reached.
            promised("cb3", "bo", due, CallbackStatus::Failed, None),
            // Still pending.
            promised("cb4", "bo", due, CallbackStatus::Pending, None),
            // Due outside the period: not counted.
            promised("cb5", "bo", DAY + 2 * DAYS, CallbackStatus::Pending, None),
        ];
        let rows = report(&calls, &[], &follow_ups, DAY, DAY + DAYS, ReportBy::Agent);
        let ana = &rows[0];
        assert_eq!(ana.key, "ana");
        assert_eq!(ana.resolved_problems, 1);
        // r2 was disposed 2 h + 120 s + 30 s after r1 arrived.
        assert_eq!(ana.avg_resolution_ms, Some((2 * 60 * MIN + 150 * S) as u64));
        assert_eq!((ana.follow_ups, ana.follow_ups_on_time), (2, 1));
        assert_eq!(ana.follow_up_on_time_pct, Some(50.0));
        let bo = &rows[1];
        assert_eq!(bo.resolved_problems, 1);
        assert_eq!(bo.avg_resolution_ms, Some((60 * S) as u64));
        assert_eq!((bo.follow_ups, bo.follow_ups_on_time), (2, 0));

        let by_queue = report(&calls, &[], &follow_ups, DAY, DAY + DAYS, ReportBy::Queue);
        assert_eq!(by_queue[0].resolved_problems, 2);
        assert_eq!(
            (by_queue[0].follow_ups, by_queue[0].follow_ups_on_time),
            (4, 1)
        );
    }

    #[test]
    fn csv_quotes_keys_and_writes_breakdowns() {
        let rows = vec![
            ReportRow {
                key: "Doe, \"Jo\"\nJr".into(),
                offered: 3,
                answered: 2,
                abandoned: 1,
                avg_handle_ms: Some(120_000),
                avg_after_call_work_ms: Some(0),
                avg_wait_ms: None,
                dispositions: BTreeMap::from([("billing".to_owned(), 2), ("sales".to_owned(), 1)]),
                resolutions: BTreeMap::from([("resolved".to_owned(), 3)]),
                fcr_base: 3,
                first_contact_resolved: 2,
                fcr_pct: Some(200.0 / 3.0),
                csat_avg: Some(4.5),
                csat_count: 2,
                surveys: 3,
                avg_first_response_ms: Some(4_000),
                avg_hold_ms: Some(1_500),
                holds: 2,
                avg_mute_ms: Some(0),
                resolved_problems: 1,
                avg_resolution_ms: Some(86_400_000),
                follow_ups: 2,
                follow_ups_on_time: 1,
                follow_up_on_time_pct: Some(50.0),
            },
            ReportRow {
                key: "plain".into(),
                ..ReportRow::default()
            },
        ];
        let csv = report_csv(&rows);
        let expected = concat!(
            "key,offered,answered,abandoned,avg_handle_ms,avg_after_call_work_ms,avg_wait_ms,",
            "dispositions,resolutions,fcr_base,first_contact_resolved,fcr_pct,csat_avg,",
            "csat_count,surveys,avg_first_response_ms,avg_hold_ms,holds,avg_mute_ms,",
            "resolved_problems,avg_resolution_ms,follow_ups,follow_ups_on_time,",
            "follow_up_on_time_pct\n",
            "\"Doe, \"\"Jo\"\"\nJr\",3,2,1,120000,0,,billing=2;sales=1,resolved=3,3,2,66.67,",
            "4.50,2,3,4000,1500,2,0,1,86400000,2,1,50.00\n",
            "plain,0,0,0,,,,,,0,0,,,0,0,,,0,,0,,0,0,\n",
        );
        assert_eq!(csv, expected);
    }

    fn arbitrary_call() -> impl Strategy<Value = CallReport> {
        (
            0..6u8,
            prop::sample::select(vec!["support", "billing", "other"]),
            -10 * MIN..60 * MIN,
            prop::option::of(-5 * MIN..5 * MIN),
            prop::option::of(-5 * MIN..5 * MIN),
            prop::option::of(prop::sample::select(vec!["abandoned", "agent_hung_up"])),
            prop::option::of(-5 * MIN..5 * MIN),
            prop::option::of(1..=5i64),
        )
            .prop_map(|(n, queue, at, answer, end, reason, acw, csat)| {
                let mut r = waiting(&format!("p{n}"), queue, DAY + at);
                r.call.agent = answer.map(|_| format!("agent{n}"));
                r.call.answered_at = answer.map(|d| DAY + at + d);
                r.call.ended_at = end.map(|d| DAY + at + d);
                r.call.end_reason = reason.map(str::to_owned);
                r.call.csat = csat;
                if let (Some(acw), Some(_)) = (acw, end) {
                    r = disposed(r, "billing", Resolution::Resolved, acw / S);
                }
                r
            })
    }

    proptest! {
        /// Whatever the data (times out of order, missing fields), no panic, no NaN, and the
        /// charts add up to the queue rows.
        #[test]
        fn never_nan_and_charts_add_up(
            calls in prop::collection::vec(arbitrary_call(), 0..30),
            now_offset in -MIN..70 * MIN,
        ) {
            let now = DAY + now_offset;
            let board = wallboard(&calls, &LiveSnapshot::default(), &queues(), DAY, now);
            for q in &board.queues {
                for p in [q.service_level_pct, q.abandon_pct].into_iter().flatten() {
                    prop_assert!((0.0..=100.0).contains(&p));
                }
            }
            for i in &board.intervals {
                let pcts = [i.service_level_pct, i.cumulative_service_level_pct];
                for p in pcts.into_iter().flatten() {
                    prop_assert!((0.0..=100.0).contains(&p));
                }
            }
            let sum = |f: fn(&Interval) -> u32| board.intervals.iter().map(f).sum::<u32>();
            let rows = |f: fn(&QueueBoard) -> u32| board.queues.iter().map(f).sum::<u32>();
            prop_assert_eq!(sum(|i| i.offered), rows(|q| q.offered));
            prop_assert_eq!(sum(|i| i.answered), rows(|q| q.handled_today));
            prop_assert_eq!(sum(|i| i.abandoned), rows(|q| q.abandoned));

            for by in [ReportBy::Agent, ReportBy::Queue] {
                let rows = report(&calls, &calls, &[], DAY, now, by);
                for row in &rows {
                    for p in [row.fcr_pct, row.csat_avg].into_iter().flatten() {
                        prop_assert!(p.is_finite());
                    }
                }
                prop_assert_eq!(report_csv(&rows).lines().count(), rows.len() + 1);
            }
        }
    }
}

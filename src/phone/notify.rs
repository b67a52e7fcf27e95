//! Desktop notification of an incoming call: a popup from the desktop's notification service
//! (`org.freedesktop.Notifications` on the session D-Bus, what `notify-send` uses), so an agent
//! working in another window sees who is calling while the ringer rings.
//!
//! Two parts: [`CallNotification::incoming`] builds the text from the offer (pure, tested
//! alone), and [`DesktopNotifier`] delivers it from a task of its own. The engine only
//! `try_send`s into a small bounded channel, so neither the window nor the voice loop ever
//! waits on D-Bus. Where there is no session bus or no notification service (a server, CI)
//! the first failure is logged once as a notice and the call goes on exactly as without;
//! every later offer tries again (quietly), so a daemon started mid-shift is picked up.
//!
//! ```text
//! engine: on call_offered  -> notifier.show(call_id, text)     (never blocks)
//!         on answer/withdrawn/ended -> notifier.close(call_id)
//! task:   connect once (timeout) -> Notify(replaces the last popup) / CloseNotification
//! ```

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::protocol::{HistoryEntry, Resolution};

/// The notification service's well-known name, object path and interface.
const SERVICE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";
/// Longest wait for the bus or the service; then the popup is given up (the call goes on).
const DBUS_TIMEOUT: Duration = Duration::from_secs(3);
/// Popups waiting for the task; more are dropped (the newest offer is the one that matters,
/// and a burst of offers cannot happen to one agent anyway).
const QUEUE: usize = 8;
/// At most this many characters of the last call's notes in the popup.
const NOTES_CHARS: usize = 80;

/// The text of one popup. Body text is escaped for the services that read markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallNotification {
    pub summary: String,
    pub body: String,
    /// How long the service should keep it if it is never closed (the ring time).
    pub expire_ms: u32,
}

impl CallNotification {
    /// "Incoming call: Budi Santoso" with the number, the queue, how many earlier calls there
    /// are and how the last one ended. `history` is newest first, as `call_offered` sends it;
    /// `history_total` is the number of earlier calls when the switchboard sent only the newest.
    pub fn incoming(
        number: &str,
        name: Option<&str>,
        queue: &str,
        history: &[HistoryEntry],
        history_total: usize,
        ring_timeout_ms: u64,
    ) -> CallNotification {
        let who = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(number);
        let summary = format!("Incoming call: {who}");
        let mut lines = vec![format!("{number} · queue {queue}")];
        let earlier = history_total.max(history.len());
        match history.first() {
            None => lines.push("First call from this number".to_owned()),
            Some(last) => {
                let calls = if earlier == 1 { "call" } else { "calls" };
                let mut line = format!(
                    "{earlier} earlier {calls}; last {}",
                    super::clock::local_text(last.at_ms)
                );
                if let Some(agent) = &last.agent {
                    line.push_str(&format!(" with {agent}"));
                }
                match &last.disposition {
                    Some(d) => {
                        line.push_str(&format!(": {} ({})", d.code, resolution_text(d.resolution)));
                        let notes = d.notes.trim();
                        if !notes.is_empty() {
                            lines.push(line);
                            line = format!("“{}”", shorten(notes, NOTES_CHARS));
                        }
                    }
                    None if last.agent.is_none() => line.push_str(" (not answered)"),
                    None => {}
                }
                lines.push(line);
            }
        }
        CallNotification {
            summary,
            body: escape_markup(&lines.join("\n")),
            expire_ms: ring_timeout_ms.min(u32::MAX as u64) as u32,
        }
    }
}

fn resolution_text(resolution: Resolution) -> &'static str {
    match resolution {
        Resolution::Resolved => "resolved",
        Resolution::Escalated => "escalated",
        Resolution::FollowUp => "follow-up",
    }
}

/// The first `max` characters of one line, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(max).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The specification lets services read a small HTML subset in the body: `&`, `<` and `>`
/// from a caller's notes must not become markup.
fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Which D-Bus the notifier talks to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NotifyBus {
    /// No popups at all.
    Off,
    /// The desktop session's bus (`DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`).
    #[default]
    Session,
    /// A bus by address, e.g. `unix:path=/tmp/bus` (tests run a private dbus-daemon).
    Address(String),
}

/// How delivery went, for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifierStatus {
    /// Nothing tried yet.
    Idle,
    /// The last popup was shown; the service gave it this id.
    Shown(u32),
    /// No bus or no notification service: why, as logged.
    Unavailable(String),
}

/// What the engine asks of the notifier task.
enum Command {
    Show {
        call_id: String,
        notification: CallNotification,
    },
    Close {
        call_id: String,
    },
}

/// The engine's handle: sends never block; the task does the D-Bus work.
pub struct DesktopNotifier {
    commands: Option<mpsc::Sender<Command>>,
    status: watch::Receiver<NotifierStatus>,
}

impl DesktopNotifier {
    /// Starts the delivery task on the current tokio runtime (nothing for [`NotifyBus::Off`]).
    pub fn spawn(bus: NotifyBus) -> DesktopNotifier {
        let (status_tx, status) = watch::channel(NotifierStatus::Idle);
        if bus == NotifyBus::Off {
            return DesktopNotifier {
                commands: None,
                status,
            };
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(bus, rx, status_tx));
        DesktopNotifier {
            commands: Some(tx),
            status,
        }
    }

    /// Shows (or replaces) the popup for an offered call.
    pub fn show(&self, call_id: &str, notification: CallNotification) {
        self.send(Command::Show {
            call_id: call_id.to_owned(),
            notification,
        });
    }

    /// Closes the popup of this call, if it is the one shown (answered, withdrawn).
    pub fn close(&self, call_id: &str) {
        self.send(Command::Close {
            call_id: call_id.to_owned(),
        });
    }

    /// How the last delivery went.
    pub fn status(&self) -> watch::Receiver<NotifierStatus> {
        self.status.clone()
    }

    fn send(&self, command: Command) {
        if let Some(tx) = &self.commands
            && tx.try_send(command).is_err()
        {
            tracing::debug!("desktop notification dropped: the notifier is behind");
        }
    }
}

/// Why a popup could not be delivered.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("{0}")]
    Dbus(#[from] zbus::Error),
    #[error("no answer from D-Bus within {} s", DBUS_TIMEOUT.as_secs())]
    Timeout,
}

/// The delivery task: one connection, kept while it works, dropped on any failure.
async fn deliver(
    bus: NotifyBus,
    mut commands: mpsc::Receiver<Command>,
    status: watch::Sender<NotifierStatus>,
) {
    let mut connection: Option<zbus::Connection> = None;
    // The call whose popup is up, and the service's id for it (replaced by the next one).
    let mut shown: Option<(String, u32)> = None;
    let mut reported = false;
    while let Some(command) = commands.recv().await {
        let result = async {
            let conn = match &connection {
                Some(conn) => conn.clone(),
                None => {
                    let conn = within(connect(&bus)).await?;
                    connection = Some(conn.clone());
                    conn
                }
            };
            match command {
                Command::Show {
                    call_id,
                    notification,
                } => {
                    let replaces = shown.as_ref().map_or(0, |(_, id)| *id);
                    let id = within(notify(&conn, replaces, &notification)).await?;
                    shown = Some((call_id, id));
                    status.send_replace(NotifierStatus::Shown(id));
                }
                Command::Close { call_id } => {
                    if let Some((_, id)) = shown.take_if(|(shown_call, _)| *shown_call == call_id) {
                        within(close(&conn, id)).await?;
                    }
                }
            }
            Ok::<(), DeliveryError>(())
        }
        .await;
        if let Err(e) = result {
            connection = None;
            shown = None;
            let why = e.to_string();
            if reported {
                tracing::debug!("desktop notification not shown: {why}");
            } else {
                reported = true;
                tracing::info!(
                    "desktop notifications are not available ({why}); calls still ring and pop up in the window"
                );
            }
            status.send_replace(NotifierStatus::Unavailable(why));
        }
    }
}

async fn within<T>(work: impl Future<Output = Result<T, zbus::Error>>) -> Result<T, DeliveryError> {
    match tokio::time::timeout(DBUS_TIMEOUT, work).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(DeliveryError::Timeout),
    }
}

async fn connect(bus: &NotifyBus) -> Result<zbus::Connection, zbus::Error> {
    let builder = match bus {
        NotifyBus::Address(address) => zbus::connection::Builder::address(address.as_str())?,
        NotifyBus::Session | NotifyBus::Off => zbus::connection::Builder::session()?,
    };
    builder.build().await
}

/// `Notify`: returns the service's id for the popup.
async fn notify(
    conn: &zbus::Connection,
    replaces_id: u32,
    n: &CallNotification,
) -> Result<u32, zbus::Error> {
    use zbus::zvariant::Value;
    // Critical urgency: a ringing call stays on screen until it is answered or withdrawn.
    let hints: HashMap<&str, Value<'_>> = HashMap::from([("urgency", Value::U8(2))]);
    let actions: Vec<&str> = Vec::new();
    let expire_ms = i32::try_from(n.expire_ms).unwrap_or(i32::MAX);
    let reply = conn
        .call_method(
            Some(SERVICE),
            PATH,
            Some(SERVICE),
            "Notify",
            &(
                "Sapa",
                replaces_id,
                "call-start",
                n.summary.as_str(),
                n.body.as_str(),
                actions,
                hints,
                expire_ms,
            ),
        )
        .await?;
    reply.body().deserialize::<u32>()
}

async fn close(conn: &zbus::Connection, id: u32) -> Result<(), zbus::Error> {
    conn.call_method(Some(SERVICE), PATH, Some(SERVICE), "CloseNotification", &id)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DispositionInfo;

    fn entry(
        at_ms: i64,
        agent: Option<&str>,
        disposition: Option<DispositionInfo>,
    ) -> HistoryEntry {
        HistoryEntry {
            call_id: format!("c{at_ms}"),
            at_ms,
            queue: "support".into(),
            agent: agent.map(str::to_owned),
            end_reason: Some("caller_hung_up".into()),
            talk_ms: Some(60_000),
            csat: None,
            hold_ms: 0,
            hold_count: 0,
            mute_ms: 0,
            first_response_ms: None,
            menu: None,
            menu_choice: None,
            disposition,
            legs: vec![],
        }
    }

    #[test]
    fn a_known_caller_is_named_with_the_last_outcome() {
        let history = vec![
            entry(
                1_795_000_000_000,
                Some("ana"),
                Some(DispositionInfo {
                    code: "billing".into(),
                    resolution: Resolution::FollowUp,
                    notes: "Refund <promised> & booked\nsecond line".into(),
                    follow_up_at_ms: None,
                    agent: "ana".into(),
                }),
            ),
            entry(1_794_000_000_000, Some("budi"), None),
        ];
        let n = CallNotification::incoming(
            "+15550100",
            Some("Budi Santoso"),
            "support",
            &history,
            2,
            15_000,
        );
        assert_eq!(n.summary, "Incoming call: Budi Santoso");
        let lines: Vec<&str> = n.body.lines().collect();
        assert_eq!(lines[0], "+15550100 · queue support");
        assert!(
            lines[1].starts_with("2 earlier calls; last "),
            "{}",
            lines[1]
        );
        assert!(
            lines[1].ends_with(" with ana: billing (follow-up)"),
            "{}",
            lines[1]
        );
        // Notes are one line, and what looks like markup is escaped.
        assert_eq!(lines[2], "“Refund &lt;promised&gt; &amp; booked…”");
        assert_eq!(lines.len(), 3);
        assert_eq!(n.expire_ms, 15_000);
    }

    #[test]
    fn a_total_larger_than_the_entries_sent_is_what_is_counted() {
        let history = vec![entry(1_795_000_000_000, None, None)];
        let n = CallNotification::incoming("+15550100", None, "billing", &history, 10_000, 15_000);
        assert_eq!(n.summary, "Incoming call: +15550100");
        assert!(n.body.contains("10000 earlier calls; last "), "{}", n.body);
        assert!(n.body.ends_with("(not answered)"), "{}", n.body);
    }

    #[test]
    fn a_first_caller_says_so_and_a_blank_name_is_not_used() {
        let n = CallNotification::incoming("+15550199", Some("  "), "support", &[], 0, 20_000);
        assert_eq!(n.summary, "Incoming call: +15550199");
        assert_eq!(
            n.body,
            "+15550199 · queue support\nFirst call from this number"
        );
    }

    #[tokio::test]
    async fn no_bus_is_reported_once_and_nothing_waits() {
        let notifier = DesktopNotifier::spawn(NotifyBus::Address(
            "unix:path=/nonexistent/sapa-test-bus".into(),
        ));
        let mut status = notifier.status();
        let started = std::time::Instant::now();
        let n = CallNotification::incoming("+15550100", None, "support", &[], 0, 15_000);
        notifier.show("c1", n.clone());
        notifier.close("c1");
        assert!(started.elapsed() < Duration::from_millis(50), "show waited");
        let unavailable = tokio::time::timeout(
            Duration::from_secs(5),
            status.wait_for(|s| matches!(s, NotifierStatus::Unavailable(_))),
        )
        .await
        .expect("the failure is reported")
        .expect("the task runs")
        .clone();
        let NotifierStatus::Unavailable(why) = unavailable else {
            unreachable!()
        };
        assert!(!why.is_empty());
    }

    #[test]
    fn off_sends_nothing() {
        // No runtime needed: Off starts no task.
        let notifier = DesktopNotifier::spawn(NotifyBus::Off);
        notifier.show("c1", CallNotification::incoming("+1", None, "q", &[], 0, 1));
        assert_eq!(*notifier.status().borrow(), NotifierStatus::Idle);
    }
}

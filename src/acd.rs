//! Automatic call distribution (ACD): which waiting caller goes to which agent, and when.
//!
//! A sans-IO state machine in the str0m / quinn-proto shape. It owns the queues of waiting
//! callers and the state of every agent, and nothing else: no sockets, no media, no clock. The
//! switchboard driver tells it what happened (`handle_input`, always with the current time),
//! carries out what it asks (`poll_output`: ring this agent, stop ringing, bridge media, ...)
//! and wakes it when its earliest timer (`poll_timeout`) is due:
//!
//! ```ignore
//! acd.handle_input(now, AcdInput::CallerArrived { call, queue })?; // or any other input
//! while let Some(out) = acd.poll_output() {
//!     driver.carry_out(out); // ring / stop ringing / bridge / hang up / push to the wallboard
//! }
//! if let Some(at) = acd.poll_timeout() {
//!     sleep_until(at).await; // or until the next input, whichever comes first
//!     acd.handle_input(at, AcdInput::Timeout)?;
//! }
//! ```
//!
//! Dispatch rule: whenever an agent becomes available or a caller arrives, agents in order of
//! longest idle (earliest `Available::since`) each take the longest-waiting caller among the
//! queues they serve, until no available agent serves a queue with someone waiting. Each queue
//! is first-in first-out by arrival; a caller whose offer is withdrawn goes back to the head,
//! in front of everyone who arrived after it, and keeps its arrival time for wait statistics.
//!
//! Transfers and escalation (same core, same clock):
//! - Blind transfer to a queue: the agent goes to after-call work for its leg; the caller goes
//!   back into the named queue at the head, behind earlier transfers and callbacks but in front
//!   of every caller who dialed in (tier 0 before tier 1, then by sequence number). It keeps its
//!   arrival time for wait statistics.
//! - Blind transfer to an agent: only to an available agent; the call is reserved for it and
//!   offered at once. A reserved call the agent misses, declines or drops by logging out loses
//!   its reservation and waits at the head of its queue for anyone.
//! - Consult (warm transfer) and conference (escalation): the agent rings a colleague or a
//!   supervisor who is available or not ready (never one who is busy). Until it is answered,
//!   cancelled, declined or rings out, the colleague is `Offered` the same call id. Completing
//!   hands the call over (the agent goes to after-call work); cancelling, declining or not
//!   answering puts the colleague back in the state it came from. In a conference the third
//!   party talked to the caller, so it gets after-call work when it leaves; a consulted
//!   colleague who only talked to the agent does not.
//! - Hanging up while a consulted colleague is connected completes the transfer (a conference:
//!   the supervisor keeps the call); hanging up while it still rings ends the call.
//! - Callbacks: a due callback is queued at the head of its queue, reserved for the agent who
//!   scheduled it if that agent is logged in, otherwise for anyone. A waiting caller may ask to
//!   be called back once it waited `callback_offer_after`; it keeps its place.
//! - Outbound: an available or not-ready agent dials out and is on the call at once; an agent
//!   who dialed from not ready goes back to not ready (same reason) after its wrap-up.
//!
//! Bad input (an unknown id, an action the agent's state does not allow) returns an
//! [`AcdError`], emits nothing and changes nothing. Requests for the state an agent is already
//! in (available while available, log out while logged out, ...) are accepted no-ops.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

/// Longest timer the core arms; longer configured durations are cut to this so that
/// `now + duration` can never overflow an `Instant`.
const MAX_TIMER: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Reason given to the `NotReady` state an agent starts in after logging in.
pub const REASON_LOGIN: &str = "login";
/// Reason given to the `NotReady` state after an offer rang out unanswered.
pub const REASON_MISSED: &str = "missed";
/// Reason given to the `NotReady` state after the agent declined an offer.
pub const REASON_DECLINED: &str = "declined";

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Ord, PartialOrd)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// One caller's call, unique for the lifetime of the [`Acd`] (the driver mints it). An
    /// opaque id, not the caller's number, so it is safe to log.
    CallId
);
id_type!(
    /// An agent's login name.
    AgentId
);
id_type!(
    /// A queue (skill) that callers wait in and agents serve.
    QueueId
);

/// Fixed settings, given once to [`Acd::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcdConfig {
    /// The queues callers may arrive in and agents may serve; duplicates are ignored.
    pub queues: Vec<QueueId>,
    /// How long an offer rings before it is withdrawn and the agent set `NotReady("missed")`.
    pub ring_no_answer: Duration,
    /// How long an agent may stay in after-call work before it ends on its own.
    pub max_after_call_work: Duration,
    /// How long a caller must have waited before it may ask to be called back instead.
    pub callback_offer_after: Duration,
}

/// Why a call reaches the agent it connects to next (stored with each leg of the call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    /// Taken from the queue the caller dialed.
    Queue,
    BlindTransfer,
    WarmTransfer,
    /// A supervisor kept a conference the agent left.
    Escalation,
    /// A callback: scheduled by a disposition, or asked for by a waiting caller.
    Callback,
    /// The agent dialed the customer.
    Outbound,
}

impl Via {
    /// The name stored in `call_legs.why` and shown in history.
    pub fn label(self) -> &'static str {
        match self {
            Via::Queue => "answered",
            Via::BlindTransfer => "blind_transfer",
            Via::WarmTransfer => "warm_transfer",
            Via::Escalation => "escalation",
            Via::Callback => "callback",
            Via::Outbound => "outbound",
        }
    }
}

/// What a consulted colleague is asked to join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsultKind {
    /// Warm transfer: the caller waits on hold while the agent talks to the colleague.
    Transfer,
    /// Escalation: a three-way call of caller, agent and supervisor.
    Conference,
}

/// Why a consult ended without the call being handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsultEnd {
    /// The agent went back to the caller.
    Cancelled,
    Declined,
    RingNoAnswer,
    /// The colleague hung up its side.
    TargetLeft,
    TargetLoggedOut,
    /// The call itself ended (the caller hung up, or the agent before the colleague answered).
    CallEnded,
}

/// What the driver tells the core. Events in the past tense: they have happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcdInput {
    /// The agent logged in to serve `queues`; it starts `NotReady { reason: "login" }`.
    AgentLoggedIn {
        agent: AgentId,
        queues: Vec<QueueId>,
    },
    /// The agent logged out or its connection dropped. An offer goes back to the queue, a
    /// connected call ends (`AgentDisconnected`), after-call work is cut short.
    AgentLoggedOut { agent: AgentId },
    /// The agent asked to take calls. Applied at once from `NotReady`; while offered, on a call
    /// or in after-call work it only cancels a pending not-ready request (after-call work still
    /// lasts until the disposition or its deadline).
    AgentRequestedAvailable { agent: AgentId },
    /// The agent asked not to take calls. Applied at once from `Available` / `NotReady`; while
    /// offered, on a call or in after-call work it is kept as pending and applied at the moment
    /// the agent would otherwise become available.
    AgentRequestedNotReady { agent: AgentId, reason: String },
    /// A caller entered `queue`.
    CallerArrived { call: CallId, queue: QueueId },
    /// The agent answered the call offered to it.
    AgentAnswered { agent: AgentId, call: CallId },
    /// The agent declined the call offered to it.
    AgentDeclined { agent: AgentId, call: CallId },
    /// The caller hung up: while queued or offered the call is abandoned; while connected the
    /// agent goes to after-call work.
    CallerHungUp { call: CallId },
    /// The agent hung up its connected call and goes to after-call work.
    AgentHungUp { agent: AgentId, call: CallId },
    /// The agent finished wrap-up for `call`, ending after-call work.
    DispositionSubmitted { agent: AgentId, call: CallId },
    /// Blind transfer: `agent` hands its connected call to `queue` (at the head) and goes to
    /// after-call work.
    AgentTransferredToQueue {
        agent: AgentId,
        call: CallId,
        queue: QueueId,
    },
    /// Blind transfer to `target`, which must be available: the call is offered to it.
    AgentTransferredToAgent {
        agent: AgentId,
        call: CallId,
        target: AgentId,
    },
    /// The agent rings `target` about its call: a consult (warm transfer) or a conference
    /// (escalation). `target` must be available or not ready.
    ConsultRequested {
        agent: AgentId,
        call: CallId,
        target: AgentId,
        kind: ConsultKind,
    },
    /// The agent hands the call to the colleague it consulted (who must have answered).
    ConsultCompleted { agent: AgentId, call: CallId },
    /// The agent goes back to the caller; the colleague is released.
    ConsultCancelled { agent: AgentId, call: CallId },
    /// The agent dialed a customer (`via`: `Outbound` or `Callback`); it is on the call at
    /// once, the customer's phone rings.
    OutboundDialed {
        agent: AgentId,
        call: CallId,
        queue: QueueId,
        via: Via,
    },
    /// A scheduled callback is due: queue it at the head, reserved for `agent` if logged in.
    CallbackDue {
        call: CallId,
        queue: QueueId,
        agent: Option<AgentId>,
    },
    /// A waiting caller asks to be called back instead of waiting; it keeps its place.
    CallerRequestedCallback { call: CallId },
    /// The customer of an outbound call or callback could not be reached (no endpoint, no
    /// answer): the call ends and its agent wraps up.
    CustomerNotReached { call: CallId },
    /// Time passed: fire every timer whose deadline is at or before `now`. The driver sends it
    /// when [`Acd::poll_timeout`] is reached; sending it early is harmless.
    Timeout,
}

/// An agent's state, as the wallboard shows it. `since` is when the agent entered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    NotReady {
        reason: String,
        since: Instant,
    },
    /// Idle and waiting for a call; the earliest `since` is the longest idle and served first.
    Available {
        since: Instant,
    },
    /// Ringing with `call`.
    Offered {
        call: CallId,
        since: Instant,
    },
    /// Talking on `call`.
    OnCall {
        call: CallId,
        since: Instant,
    },
    /// Wrapping up `call`; ends at the disposition or at `deadline`.
    AfterCallWork {
        call: CallId,
        since: Instant,
        deadline: Instant,
    },
}

/// [`AgentState`] without its data; the same names as `protocol::AgentStateName`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentStateKind {
    LoggedOut,
    NotReady,
    Available,
    Offered,
    OnCall,
    AfterCallWork,
}

impl AgentState {
    pub fn kind(&self) -> AgentStateKind {
        match self {
            Self::LoggedOut => AgentStateKind::LoggedOut,
            Self::NotReady { .. } => AgentStateKind::NotReady,
            Self::Available { .. } => AgentStateKind::Available,
            Self::Offered { .. } => AgentStateKind::Offered,
            Self::OnCall { .. } => AgentStateKind::OnCall,
            Self::AfterCallWork { .. } => AgentStateKind::AfterCallWork,
        }
    }

    /// When the agent entered this state; `None` when logged out.
    pub fn since(&self) -> Option<Instant> {
        match self {
            Self::LoggedOut => None,
            Self::NotReady { since, .. }
            | Self::Available { since }
            | Self::Offered { since, .. }
            | Self::OnCall { since, .. }
            | Self::AfterCallWork { since, .. } => Some(*since),
        }
    }

    /// The call the agent is ringing with, talking on or wrapping up.
    pub fn call(&self) -> Option<&CallId> {
        match self {
            Self::Offered { call, .. }
            | Self::OnCall { call, .. }
            | Self::AfterCallWork { call, .. } => Some(call),
            _ => None,
        }
    }
}

impl fmt::Display for AgentStateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LoggedOut => "logged out",
            Self::NotReady => "not ready",
            Self::Available => "available",
            Self::Offered => "offered a call",
            Self::OnCall => "on a call",
            Self::AfterCallWork => "in after-call work",
        })
    }
}

/// Why an offer stopped ringing without being answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OfferEnd {
    RingNoAnswer,
    Declined,
    CallerHungUp,
    AgentLoggedOut,
}

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallEndReason {
    /// The caller hung up on a connected call.
    CallerHungUp,
    /// The agent hung up a connected call.
    AgentHungUp,
    /// The caller hung up before any agent answered (queued or ringing).
    Abandoned,
    /// The agent logged out or dropped off during a connected call.
    AgentDisconnected,
    /// The customer of an outbound call or callback could not be reached.
    NotReached,
}

/// What the core asks the driver to do or tells it happened. Drain with [`Acd::poll_output`].
/// Call events come before the agent state change they cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcdOutput {
    /// Exactly one per agent state change; `state` is the new state.
    AgentStateChanged { agent: AgentId, state: AgentState },
    /// The call now waits in `queue` at `position` (1 = next to be served): on arrival, and
    /// again when a withdrawn offer puts it back (play hold music again).
    CallQueued {
        call: CallId,
        queue: QueueId,
        position: usize,
    },
    /// Ring `agent` with `call`.
    OfferCall { call: CallId, agent: AgentId },
    /// Stop ringing `agent`.
    OfferWithdrawn {
        call: CallId,
        agent: AgentId,
        why: OfferEnd,
    },
    /// `agent` answered (or dialed): bridge the caller's media to the agent. `via`: why the
    /// call reached this agent.
    CallConnected {
        call: CallId,
        agent: AgentId,
        via: Via,
    },
    /// Blind transfer: `from` left the call (its after-call work follows); `CallQueued` and
    /// perhaps `OfferCall` follow for the caller.
    CallTransferred { call: CallId, from: AgentId },
    /// Ring `to` for a consult or a conference about `from`'s call.
    ConsultOffered {
        call: CallId,
        from: AgentId,
        to: AgentId,
        kind: ConsultKind,
    },
    /// `to` answered: a transfer consult bridges agent and colleague (the caller stays on
    /// hold); a conference joins all three.
    ConsultConnected {
        call: CallId,
        from: AgentId,
        to: AgentId,
        kind: ConsultKind,
    },
    /// The consult is over and the call stays with `from`. `answered`: whether `to` had
    /// answered (stop its leg) or was still ringing (stop ringing).
    ConsultEnded {
        call: CallId,
        from: AgentId,
        to: AgentId,
        kind: ConsultKind,
        answered: bool,
        why: ConsultEnd,
    },
    /// The consulted party now has the call alone: bridge the caller to `to`; `from` left
    /// (its after-call work follows). `via`: `WarmTransfer` or `Escalation`.
    CallHandedOver {
        call: CallId,
        from: AgentId,
        to: AgentId,
        via: Via,
    },
    /// The waiting caller will be called back when its turn comes; it may hang up now.
    CallbackKept { call: CallId },
    /// The call is over; tear down what is left of it. `agent` is the agent it was connected
    /// to, `None` if it never was.
    CallEnded {
        call: CallId,
        agent: Option<AgentId>,
        reason: CallEndReason,
    },
}

/// A timer the core has armed. Timers are data: [`Acd::poll_timeout`] is the earliest
/// deadline, and [`AcdInput::Timeout`] fires the due ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Ord, PartialOrd)]
pub enum Timer {
    /// Withdraw the offer of `call` to `agent` if it is still ringing.
    RingNoAnswer { call: CallId, agent: AgentId },
    /// End `agent`'s after-call work for `call`.
    AfterCallWork { agent: AgentId, call: CallId },
}

/// Bad input. Returning one means nothing changed and nothing was emitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    #[error("call {0} already exists")]
    DuplicateCall(CallId),
    #[error("agent {0} is already logged in")]
    AlreadyLoggedIn(AgentId),
    #[error("agent {agent} cannot {action} while {state}")]
    InvalidAgentState {
        agent: AgentId,
        action: &'static str,
        state: AgentStateKind,
    },
    #[error("cannot pass the call to {target}: {why}")]
    InvalidTarget { target: AgentId, why: &'static str },
    #[error("call {call}: {why}")]
    CallRefused { call: CallId, why: &'static str },
    #[error("agent {agent} is {state} with call {actual}, not {call}")]
    WrongCall {
        agent: AgentId,
        call: CallId,
        actual: CallId,
        state: AgentStateKind,
    },
}

/// Where a live call is, for the driver and the wallboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallStatus {
    pub queue: QueueId,
    /// When the caller arrived; kept when an offer is withdrawn.
    pub arrived: Instant,
    pub phase: CallPhase,
    /// The agent the call waits for, if it is reserved (a transfer to an agent, a callback).
    pub reserved_for: Option<AgentId>,
    /// A colleague rung or talking about this call: (who, kind, answered).
    pub consult: Option<(AgentId, ConsultKind, bool)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallPhase {
    /// Waiting at `position` (1 = next).
    Queued {
        position: usize,
    },
    Offered {
        agent: AgentId,
    },
    Connected {
        agent: AgentId,
    },
}

/// One queue's line on the wallboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStats {
    pub waiting: usize,
    pub oldest_wait: Option<Duration>,
    /// Agents serving this queue that are available now.
    pub agents_available: usize,
    /// Agents serving this queue that are logged in (in any state).
    pub agents_logged_in: usize,
}

/// The ACD core. See the module documentation for the run loop.
#[derive(Clone, Debug)]
#[cfg_attr(test, derive(PartialEq))]
pub struct Acd {
    /// How long an offer rings before it is withdrawn.
    ring_no_answer: Duration,
    /// How long after-call work may last.
    max_after_call_work: Duration,
    /// How long a caller waits before it may ask to be called back.
    callback_offer_after: Duration,
    /// Waiting callers per queue, keyed by (tier, sequence number): key order is service
    /// order (tier 0, transfers and callbacks, before tier 1, callers who dialed in; FIFO in
    /// each), and a caller whose offer is withdrawn slots back in at its original place.
    queues: BTreeMap<QueueId, BTreeMap<QueueKey, CallId>>,
    /// Every live call (queued, offered or connected); an ended call is dropped.
    calls: BTreeMap<CallId, CallRecord>,
    /// Every agent that ever logged in; logged-out agents stay, as `LoggedOut`.
    agents: BTreeMap<AgentId, Agent>,
    /// Available agents by (idle since, id): the first is the longest idle. Mirrors
    /// `agents[..].state` and is kept in step by `set_state` alone.
    idle: BTreeSet<(Instant, AgentId)>,
    /// Armed timers and their deadlines.
    timers: Timers,
    /// Outputs not yet drained by the driver.
    outputs: VecDeque<AcdOutput>,
    /// Sequence number for the next arriving call; orders callers across queues.
    next_seq: u64,
    /// Latest time seen; an earlier `now` is taken as this, so time never runs backwards here.
    now: Option<Instant>,
}

/// A waiting caller's place: (tier, sequence number); tier 0 is served before tier 1.
type QueueKey = (u8, u64);
/// Transfers and callbacks: in front of callers who dialed in.
const TIER_FRONT: u8 = 0;
/// Callers who dialed in.
const TIER_ARRIVAL: u8 = 1;

#[derive(Clone, Debug, PartialEq)]
struct CallRecord {
    /// The queue the caller waits in, and goes back to when an offer is withdrawn.
    queue: QueueId,
    /// Place in the queue; the key in `Acd::queues`.
    key: QueueKey,
    /// Arrival time, for wait statistics.
    arrived: Instant,
    /// Queued, or with which agent.
    phase: Phase,
    /// Only this agent may be offered the call (a transfer to it, its callback).
    reserved_for: Option<AgentId>,
    /// Why the call will reach (or reached) its agent.
    via: Via,
    /// A colleague rung or talking about this call (only while `Connected`).
    consult: Option<Consult>,
}

#[derive(Clone, Debug, PartialEq)]
struct Consult {
    to: AgentId,
    kind: ConsultKind,
    answered: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Queued,
    Offered(AgentId),
    Connected(AgentId),
}

#[derive(Clone, Debug, PartialEq)]
struct Agent {
    /// The single truth for the agent's state.
    state: AgentState,
    /// The queues given at the last login.
    queues: BTreeSet<QueueId>,
    /// A not-ready reason asked for while busy, applied when the agent would become available.
    pending_not_ready: Option<String>,
    /// While offered: when the agent became idle, so that an offer the caller abandons gives
    /// the agent back its place in the idle order.
    idle_since_before_offer: Option<Instant>,
    /// While rung or talking for a consult: the state to go back to when it ends.
    before_consult: Option<AgentState>,
}

/// The deadline table: each timer once, findable by timer (to cancel) and by deadline.
#[derive(Clone, Debug, Default, PartialEq)]
struct Timers {
    deadlines: BTreeMap<Timer, Instant>,
    by_deadline: BTreeSet<(Instant, Timer)>,
}

impl Timers {
    fn arm(&mut self, timer: Timer, at: Instant) {
        self.cancel(&timer);
        self.by_deadline.insert((at, timer.clone()));
        self.deadlines.insert(timer, at);
    }

    /// Returns whether the timer was armed.
    fn cancel(&mut self, timer: &Timer) -> bool {
        match self.deadlines.remove(timer) {
            Some(at) => self.by_deadline.remove(&(at, timer.clone())),
            None => false,
        }
    }

    fn next(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// Timers due at `now`, earliest first.
    fn due(&self, now: Instant) -> Vec<Timer> {
        self.by_deadline
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, timer)| timer.clone())
            .collect()
    }
}

impl Acd {
    pub fn new(config: AcdConfig) -> Self {
        Self {
            ring_no_answer: config.ring_no_answer.min(MAX_TIMER),
            max_after_call_work: config.max_after_call_work.min(MAX_TIMER),
            callback_offer_after: config.callback_offer_after.min(MAX_TIMER),
            queues: config
                .queues
                .into_iter()
                .map(|q| (q, BTreeMap::new()))
                .collect(),
            calls: BTreeMap::new(),
            agents: BTreeMap::new(),
            idle: BTreeSet::new(),
            timers: Timers::default(),
            outputs: VecDeque::new(),
            next_seq: 0,
            now: None,
        }
    }

    /// Feeds one input at time `now`, then drain [`Self::poll_output`]. On `Err` nothing
    /// changed and nothing was emitted.
    pub fn handle_input(&mut self, now: Instant, input: AcdInput) -> Result<(), AcdError> {
        let now = self.now.map_or(now, |seen| seen.max(now));
        match input {
            AcdInput::AgentLoggedIn { agent, queues } => self.log_in(now, agent, queues)?,
            AcdInput::AgentLoggedOut { agent } => self.log_out(now, &agent)?,
            AcdInput::AgentRequestedAvailable { agent } => self.request_available(now, &agent)?,
            AcdInput::AgentRequestedNotReady { agent, reason } => {
                self.request_not_ready(now, &agent, reason)?
            }
            AcdInput::CallerArrived { call, queue } => self.caller_arrived(now, call, queue)?,
            AcdInput::AgentAnswered { agent, call } => self.answer(now, &agent, &call)?,
            AcdInput::AgentDeclined { agent, call } => self.decline(now, &agent, &call)?,
            AcdInput::CallerHungUp { call } => self.caller_hung_up(now, &call)?,
            AcdInput::AgentHungUp { agent, call } => self.agent_hung_up(now, &agent, &call)?,
            AcdInput::DispositionSubmitted { agent, call } => {
                self.disposition(now, &agent, &call)?
            }
            AcdInput::AgentTransferredToQueue { agent, call, queue } => {
                self.transfer_to_queue(now, &agent, &call, queue)?
            }
            AcdInput::AgentTransferredToAgent {
                agent,
                call,
                target,
            } => self.transfer_to_agent(now, &agent, &call, target)?,
            AcdInput::ConsultRequested {
                agent,
                call,
                target,
                kind,
            } => self.start_consult(now, &agent, &call, target, kind)?,
            AcdInput::ConsultCompleted { agent, call } => {
                self.complete_consult(now, &agent, &call)?
            }
            AcdInput::ConsultCancelled { agent, call } => {
                self.cancel_consult(now, &agent, &call)?
            }
            AcdInput::OutboundDialed {
                agent,
                call,
                queue,
                via,
            } => self.dial_out(now, &agent, call, queue, via)?,
            AcdInput::CallbackDue { call, queue, agent } => {
                self.callback_due(now, call, queue, agent)?
            }
            AcdInput::CallerRequestedCallback { call } => self.keep_for_callback(now, &call)?,
            AcdInput::CustomerNotReached { call } => {
                let agent = match self.calls.get(&call).map(|r| &r.phase) {
                    Some(Phase::Connected(agent)) => agent.clone(),
                    Some(_) => {
                        return Err(AcdError::CallRefused {
                            call,
                            why: "the call is not connected to an agent",
                        });
                    }
                    None => return Err(AcdError::UnknownCall(call)),
                };
                self.end_consult(now, &call, ConsultEnd::CallEnded);
                self.end_connected(now, &agent, &call, CallEndReason::NotReached);
            }
            AcdInput::Timeout => self.fire_timers(now),
        }
        self.now = Some(now);
        Ok(())
    }

    /// The next output; call until `None` after every [`Self::handle_input`].
    #[must_use]
    pub fn poll_output(&mut self) -> Option<AcdOutput> {
        self.outputs.pop_front()
    }

    /// The earliest armed deadline: send [`AcdInput::Timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ---- getters ----

    /// `None` for an agent that never logged in.
    pub fn agent_state(&self, agent: &AgentId) -> Option<&AgentState> {
        self.agents.get(agent).map(|a| &a.state)
    }

    /// Every agent that ever logged in, by id.
    pub fn agents(&self) -> impl Iterator<Item = (&AgentId, &AgentState)> {
        self.agents.iter().map(|(id, a)| (id, &a.state))
    }

    /// The queues the agent serves (given at its last login); empty for an unknown agent.
    pub fn agent_queues(&self, agent: &AgentId) -> impl Iterator<Item = &QueueId> {
        self.agents
            .get(agent)
            .into_iter()
            .flat_map(|a| a.queues.iter())
    }

    /// A not-ready reason the agent asked for while busy, to be applied when it frees up.
    pub fn pending_not_ready(&self, agent: &AgentId) -> Option<&str> {
        self.agents.get(agent)?.pending_not_ready.as_deref()
    }

    /// The configured queues, by id.
    pub fn queues(&self) -> impl Iterator<Item = &QueueId> {
        self.queues.keys()
    }

    /// Callers waiting in `queue`; 0 for an unknown queue.
    pub fn queue_len(&self, queue: &QueueId) -> usize {
        self.queues.get(queue).map_or(0, BTreeMap::len)
    }

    /// How long the first caller in `queue` has waited since it arrived; `None` if nobody.
    pub fn oldest_wait(&self, queue: &QueueId, now: Instant) -> Option<Duration> {
        let (_, call) = self.queues.get(queue)?.first_key_value()?;
        let arrived = self
            .calls
            .get(call)
            .expect("every queued call has a record")
            .arrived;
        Some(now.saturating_duration_since(arrived))
    }

    /// Callers waiting in `queue`, next to be served first; empty for an unknown queue.
    pub fn queued_calls(&self, queue: &QueueId) -> impl Iterator<Item = &CallId> {
        self.queues.get(queue).into_iter().flat_map(|q| q.values())
    }

    /// Where a live call is; `None` once it ended (or if it never arrived).
    pub fn call_status(&self, call: &CallId) -> Option<CallStatus> {
        let rec = self.calls.get(call)?;
        let phase = match &rec.phase {
            Phase::Queued => CallPhase::Queued {
                position: self.position(&rec.queue, rec.key),
            },
            Phase::Offered(agent) => CallPhase::Offered {
                agent: agent.clone(),
            },
            Phase::Connected(agent) => CallPhase::Connected {
                agent: agent.clone(),
            },
        };
        Some(CallStatus {
            queue: rec.queue.clone(),
            arrived: rec.arrived,
            phase,
            reserved_for: rec.reserved_for.clone(),
            consult: rec
                .consult
                .as_ref()
                .map(|c| (c.to.clone(), c.kind, c.answered)),
        })
    }

    /// Calls queued, offered or connected (not ended), by id.
    pub fn live_calls(&self) -> impl Iterator<Item = &CallId> {
        self.calls.keys()
    }

    /// One queue's wallboard line; `None` for an unknown queue.
    pub fn queue_stats(&self, queue: &QueueId, now: Instant) -> Option<QueueStats> {
        let waiting = self.queues.get(queue)?.len();
        let serving = self.agents.values().filter(|a| a.queues.contains(queue));
        let (mut agents_available, mut agents_logged_in) = (0, 0);
        for agent in serving {
            match agent.state {
                AgentState::LoggedOut => {}
                AgentState::Available { .. } => {
                    agents_available += 1;
                    agents_logged_in += 1;
                }
                _ => agents_logged_in += 1,
            }
        }
        Some(QueueStats {
            waiting,
            oldest_wait: self.oldest_wait(queue, now),
            agents_available,
            agents_logged_in,
        })
    }

    /// Armed timers with their deadlines, earliest first.
    pub fn timers(&self) -> impl Iterator<Item = (&Timer, Instant)> {
        self.timers.by_deadline.iter().map(|(at, t)| (t, *at))
    }

    // ---- input handlers: validate first (no change on Err), then apply ----

    fn log_in(
        &mut self,
        now: Instant,
        agent: AgentId,
        queues: Vec<QueueId>,
    ) -> Result<(), AcdError> {
        if let Some(q) = queues.iter().find(|q| !self.queues.contains_key(*q)) {
            return Err(AcdError::UnknownQueue(q.clone()));
        }
        if let Some(a) = self.agents.get(&agent)
            && a.state != AgentState::LoggedOut
        {
            return Err(AcdError::AlreadyLoggedIn(agent));
        }
        let entry = self.agents.entry(agent.clone()).or_insert_with(|| Agent {
            state: AgentState::LoggedOut,
            queues: BTreeSet::new(),
            pending_not_ready: None,
            idle_since_before_offer: None,
            before_consult: None,
        });
        entry.queues = queues.into_iter().collect();
        entry.pending_not_ready = None;
        entry.idle_since_before_offer = None;
        self.set_state(
            &agent,
            AgentState::NotReady {
                reason: REASON_LOGIN.to_owned(),
                since: now,
            },
        );
        Ok(())
    }

    fn log_out(&mut self, now: Instant, agent: &AgentId) -> Result<(), AcdError> {
        let state = self.known_agent(agent)?.state.clone();
        match state {
            AgentState::LoggedOut => return Ok(()),
            AgentState::NotReady { .. } | AgentState::Available { .. } => {
                self.set_state(agent, AgentState::LoggedOut);
            }
            AgentState::Offered { call, .. } if self.consult_target(&call) == Some(agent) => {
                self.end_consult(now, &call, ConsultEnd::TargetLoggedOut);
            }
            AgentState::Offered { call, .. } => {
                self.withdraw_offer(
                    agent,
                    &call,
                    OfferEnd::AgentLoggedOut,
                    AgentState::LoggedOut,
                );
            }
            AgentState::OnCall { call, .. } if self.consult_target(&call) == Some(agent) => {
                self.end_consult(now, &call, ConsultEnd::TargetLoggedOut);
            }
            AgentState::OnCall { call, .. } => {
                if self.consult_answered(&call) {
                    self.hand_over(&call);
                } else {
                    self.end_consult(now, &call, ConsultEnd::CallEnded);
                    self.calls.remove(&call);
                    self.outputs.push_back(AcdOutput::CallEnded {
                        call,
                        agent: Some(agent.clone()),
                        reason: CallEndReason::AgentDisconnected,
                    });
                }
                self.set_state(agent, AgentState::LoggedOut);
            }
            AgentState::AfterCallWork { call, .. } => {
                self.timers.cancel(&Timer::AfterCallWork {
                    agent: agent.clone(),
                    call,
                });
                self.set_state(agent, AgentState::LoggedOut);
            }
        }
        let a = self.agent_mut(agent);
        a.pending_not_ready = None;
        a.idle_since_before_offer = None;
        a.before_consult = None;
        // Calls waiting for this agent (a transfer, a callback) now wait for anyone.
        for rec in self.calls.values_mut() {
            if rec.phase == Phase::Queued && rec.reserved_for.as_ref() == Some(agent) {
                rec.reserved_for = None;
            }
        }
        self.dispatch(now);
        Ok(())
    }

    fn request_available(&mut self, now: Instant, agent: &AgentId) -> Result<(), AcdError> {
        match self.known_agent(agent)?.state.kind() {
            AgentStateKind::LoggedOut => Err(self.invalid(agent, "become available")),
            AgentStateKind::NotReady => {
                self.set_state(agent, AgentState::Available { since: now });
                self.dispatch(now);
                Ok(())
            }
            AgentStateKind::Available => Ok(()),
            AgentStateKind::Offered | AgentStateKind::OnCall | AgentStateKind::AfterCallWork => {
                self.agent_mut(agent).pending_not_ready = None;
                Ok(())
            }
        }
    }

    fn request_not_ready(
        &mut self,
        now: Instant,
        agent: &AgentId,
        reason: String,
    ) -> Result<(), AcdError> {
        match &self.known_agent(agent)?.state {
            AgentState::LoggedOut => Err(self.invalid(agent, "become not ready")),
            AgentState::NotReady {
                reason: current, ..
            } if *current == reason => Ok(()),
            AgentState::NotReady { .. } | AgentState::Available { .. } => {
                self.set_state(agent, AgentState::NotReady { reason, since: now });
                Ok(())
            }
            AgentState::Offered { .. }
            | AgentState::OnCall { .. }
            | AgentState::AfterCallWork { .. } => {
                self.agent_mut(agent).pending_not_ready = Some(reason);
                Ok(())
            }
        }
    }

    fn caller_arrived(
        &mut self,
        now: Instant,
        call: CallId,
        queue: QueueId,
    ) -> Result<(), AcdError> {
        if !self.queues.contains_key(&queue) {
            return Err(AcdError::UnknownQueue(queue));
        }
        self.check_new_call(&call)?;
        self.enqueue_new(now, call, queue, TIER_ARRIVAL, None, Via::Queue);
        self.dispatch(now);
        Ok(())
    }

    /// Stores a new call as waiting in `queue` and announces its place.
    fn enqueue_new(
        &mut self,
        now: Instant,
        call: CallId,
        queue: QueueId,
        tier: u8,
        reserved_for: Option<AgentId>,
        via: Via,
    ) {
        let key = (tier, self.next_seq);
        self.next_seq += 1;
        self.calls.insert(
            call.clone(),
            CallRecord {
                queue: queue.clone(),
                key,
                arrived: now,
                phase: Phase::Queued,
                reserved_for,
                via,
                consult: None,
            },
        );
        let waiting = self
            .queues
            .get_mut(&queue)
            .expect("queue checked by the caller");
        waiting.insert(key, call.clone());
        let position = self.position(&queue, key);
        self.outputs.push_back(AcdOutput::CallQueued {
            call,
            queue,
            position,
        });
    }

    /// A call id that may be used for a new call: not live, not being wrapped up.
    fn check_new_call(&self, call: &CallId) -> Result<(), AcdError> {
        let wrapping_up = self
            .agents
            .values()
            .any(|a| matches!(&a.state, AgentState::AfterCallWork { call: c, .. } if c == call));
        if wrapping_up || self.calls.contains_key(call) {
            return Err(AcdError::DuplicateCall(call.clone()));
        }
        Ok(())
    }

    fn answer(&mut self, now: Instant, agent: &AgentId, call: &CallId) -> Result<(), AcdError> {
        self.check_call(agent, call, AgentStateKind::Offered, "answer")?;
        self.timers.cancel(&Timer::RingNoAnswer {
            call: call.clone(),
            agent: agent.clone(),
        });
        let rec = self
            .calls
            .get_mut(call)
            .expect("an offered call has a record");
        if let (Phase::Connected(from), Some(consult)) = (&rec.phase, &mut rec.consult) {
            // A colleague answering a consult: the call stays with `from`.
            consult.answered = true;
            self.outputs.push_back(AcdOutput::ConsultConnected {
                call: call.clone(),
                from: from.clone(),
                to: agent.clone(),
                kind: consult.kind,
            });
            self.set_state(
                agent,
                AgentState::OnCall {
                    call: call.clone(),
                    since: now,
                },
            );
            return Ok(());
        }
        rec.phase = Phase::Connected(agent.clone());
        rec.reserved_for = None;
        let via = rec.via;
        self.agent_mut(agent).idle_since_before_offer = None;
        self.outputs.push_back(AcdOutput::CallConnected {
            call: call.clone(),
            agent: agent.clone(),
            via,
        });
        self.set_state(
            agent,
            AgentState::OnCall {
                call: call.clone(),
                since: now,
            },
        );
        Ok(())
    }

    fn decline(&mut self, now: Instant, agent: &AgentId, call: &CallId) -> Result<(), AcdError> {
        self.check_call(agent, call, AgentStateKind::Offered, "decline")?;
        if self.consult_target(call) == Some(agent) {
            self.end_consult(now, call, ConsultEnd::Declined);
            return Ok(());
        }
        let next = AgentState::NotReady {
            reason: REASON_DECLINED.to_owned(),
            since: now,
        };
        self.withdraw_offer(agent, call, OfferEnd::Declined, next);
        self.dispatch(now);
        Ok(())
    }

    fn caller_hung_up(&mut self, now: Instant, call: &CallId) -> Result<(), AcdError> {
        let rec = self
            .calls
            .get(call)
            .ok_or_else(|| AcdError::UnknownCall(call.clone()))?;
        match rec.phase.clone() {
            Phase::Queued => {
                let rec = self.calls.remove(call).expect("looked up above");
                self.queues
                    .get_mut(&rec.queue)
                    .expect("a call's queue exists")
                    .remove(&rec.key);
                self.outputs.push_back(AcdOutput::CallEnded {
                    call: call.clone(),
                    agent: None,
                    reason: CallEndReason::Abandoned,
                });
            }
            Phase::Offered(agent) => {
                self.timers.cancel(&Timer::RingNoAnswer {
                    call: call.clone(),
                    agent: agent.clone(),
                });
                self.calls.remove(call);
                self.outputs.push_back(AcdOutput::OfferWithdrawn {
                    call: call.clone(),
                    agent: agent.clone(),
                    why: OfferEnd::CallerHungUp,
                });
                self.outputs.push_back(AcdOutput::CallEnded {
                    call: call.clone(),
                    agent: None,
                    reason: CallEndReason::Abandoned,
                });
                let a = self.agent_mut(&agent);
                let idle_since = a.idle_since_before_offer.take().unwrap_or(now);
                let next = match a.pending_not_ready.take() {
                    Some(reason) => AgentState::NotReady { reason, since: now },
                    None => AgentState::Available { since: idle_since },
                };
                self.set_state(&agent, next);
                self.dispatch(now);
            }
            Phase::Connected(agent) => {
                self.end_consult(now, call, ConsultEnd::CallEnded);
                self.end_connected(now, &agent, call, CallEndReason::CallerHungUp);
            }
        }
        Ok(())
    }

    fn agent_hung_up(
        &mut self,
        now: Instant,
        agent: &AgentId,
        call: &CallId,
    ) -> Result<(), AcdError> {
        self.check_call(agent, call, AgentStateKind::OnCall, "hang up")?;
        if self.consult_target(call) == Some(agent) {
            // The consulted colleague (or the conference's third party) leaves.
            self.end_consult(now, call, ConsultEnd::TargetLeft);
        } else if self.consult_answered(call) {
            // Hanging up on a connected colleague completes the transfer.
            self.hand_over(call);
            self.start_after_call_work(now, agent, call);
        } else {
            self.end_consult(now, call, ConsultEnd::CallEnded);
            self.end_connected(now, agent, call, CallEndReason::AgentHungUp);
        }
        Ok(())
    }

    fn disposition(
        &mut self,
        now: Instant,
        agent: &AgentId,
        call: &CallId,
    ) -> Result<(), AcdError> {
        self.check_call(
            agent,
            call,
            AgentStateKind::AfterCallWork,
            "submit a disposition",
        )?;
        self.timers.cancel(&Timer::AfterCallWork {
            agent: agent.clone(),
            call: call.clone(),
        });
        self.end_after_call_work(now, agent);
        Ok(())
    }

    fn fire_timers(&mut self, now: Instant) {
        // Only timers due on entry: ones armed while firing wait for the next Timeout, so a
        // zero duration cannot loop here.
        for timer in self.timers.due(now) {
            if !self.timers.cancel(&timer) {
                continue;
            }
            match timer {
                Timer::RingNoAnswer { call, agent }
                    if self.consult_target(&call) == Some(&agent) =>
                {
                    self.end_consult(now, &call, ConsultEnd::RingNoAnswer);
                }
                Timer::RingNoAnswer { call, agent } => {
                    let next = AgentState::NotReady {
                        reason: REASON_MISSED.to_owned(),
                        since: now,
                    };
                    self.withdraw_offer(&agent, &call, OfferEnd::RingNoAnswer, next);
                    self.dispatch(now);
                }
                Timer::AfterCallWork { agent, .. } => self.end_after_call_work(now, &agent),
            }
        }
    }

    fn transfer_to_queue(
        &mut self,
        now: Instant,
        agent: &AgentId,
        call: &CallId,
        queue: QueueId,
    ) -> Result<(), AcdError> {
        self.check_primary(agent, call, "transfer")?;
        self.check_no_consult(call)?;
        if !self.queues.contains_key(&queue) {
            return Err(AcdError::UnknownQueue(queue));
        }
        let key = self.requeue_at_front(call, Some(queue), None);
        self.outputs.push_back(AcdOutput::CallTransferred {
            call: call.clone(),
            from: agent.clone(),
        });
        self.start_after_call_work(now, agent, call);
        let queue = self.calls[call].queue.clone();
        let position = self.position(&queue, key);
        self.outputs.push_back(AcdOutput::CallQueued {
            call: call.clone(),
            queue,
            position,
        });
        self.dispatch(now);
        Ok(())
    }

    fn transfer_to_agent(
        &mut self,
        now: Instant,
        agent: &AgentId,
        call: &CallId,
        target: AgentId,
    ) -> Result<(), AcdError> {
        self.check_primary(agent, call, "transfer")?;
        self.check_no_consult(call)?;
        self.check_target(agent, &target, true)?;
        let key = self.requeue_at_front(call, None, Some(target.clone()));
        self.outputs.push_back(AcdOutput::CallTransferred {
            call: call.clone(),
            from: agent.clone(),
        });
        self.start_after_call_work(now, agent, call);
        // Straight to the target, not through dispatch: it is available (checked above).
        let queue = self.calls[call].queue.clone();
        self.offer(now, target, &queue, key);
        self.dispatch(now);
        Ok(())
    }

    fn start_consult(
        &mut self,
        now: Instant,
        agent: &AgentId,
        call: &CallId,
        target: AgentId,
        kind: ConsultKind,
    ) -> Result<(), AcdError> {
        self.check_primary(agent, call, "consult")?;
        self.check_no_consult(call)?;
        self.check_target(agent, &target, false)?;
        let before = self.agents[&target].state.clone();
        self.calls
            .get_mut(call)
            .expect("checked by check_primary")
            .consult = Some(Consult {
            to: target.clone(),
            kind,
            answered: false,
        });
        self.agent_mut(&target).before_consult = Some(before);
        self.outputs.push_back(AcdOutput::ConsultOffered {
            call: call.clone(),
            from: agent.clone(),
            to: target.clone(),
            kind,
        });
        self.timers.arm(
            Timer::RingNoAnswer {
                call: call.clone(),
                agent: target.clone(),
            },
            now + self.ring_no_answer,
        );
        self.set_state(
            &target,
            AgentState::Offered {
                call: call.clone(),
                since: now,
            },
        );
        Ok(())
    }

    fn complete_consult(
        &mut self,
        now: Instant,
        agent: &AgentId,
        call: &CallId,
    ) -> Result<(), AcdError> {
        self.check_primary(agent, call, "complete a transfer")?;
        if !self.consult_answered(call) {
            return Err(AcdError::CallRefused {
                call: call.clone(),
                why: "no consulted colleague has answered",
            });
        }
        self.hand_over(call);
        self.start_after_call_work(now, agent, call);
        Ok(())
    }

    fn cancel_consult(
        &mut self,
        now: Instant,
        agent: &AgentId,
        call: &CallId,
    ) -> Result<(), AcdError> {
        self.check_primary(agent, call, "cancel a consult")?;
        if self.consult_target(call).is_none() {
            return Err(AcdError::CallRefused {
                call: call.clone(),
                why: "no consult in progress",
            });
        }
        self.end_consult(now, call, ConsultEnd::Cancelled);
        Ok(())
    }

    fn dial_out(
        &mut self,
        now: Instant,
        agent: &AgentId,
        call: CallId,
        queue: QueueId,
        via: Via,
    ) -> Result<(), AcdError> {
        let state = self.known_agent(agent)?.state.clone();
        if !matches!(
            state,
            AgentState::Available { .. } | AgentState::NotReady { .. }
        ) {
            return Err(self.invalid(agent, "dial out"));
        }
        if !self.queues.contains_key(&queue) {
            return Err(AcdError::UnknownQueue(queue));
        }
        self.check_new_call(&call)?;
        let key = (TIER_FRONT, self.next_seq);
        self.next_seq += 1;
        self.calls.insert(
            call.clone(),
            CallRecord {
                queue,
                key,
                arrived: now,
                phase: Phase::Connected(agent.clone()),
                reserved_for: None,
                via,
                consult: None,
            },
        );
        if let AgentState::NotReady { reason, .. } = state {
            // Back to the same not-ready reason after this call's wrap-up.
            self.agent_mut(agent).pending_not_ready = Some(reason);
        }
        self.outputs.push_back(AcdOutput::CallConnected {
            call: call.clone(),
            agent: agent.clone(),
            via,
        });
        self.set_state(agent, AgentState::OnCall { call, since: now });
        Ok(())
    }

    fn callback_due(
        &mut self,
        now: Instant,
        call: CallId,
        queue: QueueId,
        agent: Option<AgentId>,
    ) -> Result<(), AcdError> {
        if !self.queues.contains_key(&queue) {
            return Err(AcdError::UnknownQueue(queue));
        }
        self.check_new_call(&call)?;
        let reserved = agent.filter(|a| {
            self.agents
                .get(a)
                .is_some_and(|a| a.state != AgentState::LoggedOut)
        });
        self.enqueue_new(now, call, queue, TIER_FRONT, reserved, Via::Callback);
        self.dispatch(now);
        Ok(())
    }

    fn keep_for_callback(&mut self, now: Instant, call: &CallId) -> Result<(), AcdError> {
        let threshold = self.callback_offer_after;
        let rec = self
            .calls
            .get_mut(call)
            .ok_or_else(|| AcdError::UnknownCall(call.clone()))?;
        if rec.phase != Phase::Queued {
            return Err(AcdError::CallRefused {
                call: call.clone(),
                why: "the call is no longer waiting",
            });
        }
        if now.saturating_duration_since(rec.arrived) < threshold {
            return Err(AcdError::CallRefused {
                call: call.clone(),
                why: "a callback can be asked for only after waiting longer",
            });
        }
        rec.via = Via::Callback;
        self.outputs
            .push_back(AcdOutput::CallbackKept { call: call.clone() });
        Ok(())
    }

    // ---- shared transitions (infallible; inputs were validated) ----

    /// Moves a connected call back to a queue (`queue`, or its own) at the front, as a blind
    /// transfer, optionally reserved for one agent. Returns its new key.
    fn requeue_at_front(
        &mut self,
        call: &CallId,
        queue: Option<QueueId>,
        reserved_for: Option<AgentId>,
    ) -> QueueKey {
        let key = (TIER_FRONT, self.next_seq);
        self.next_seq += 1;
        let rec = self
            .calls
            .get_mut(call)
            .expect("a connected call has a record");
        if let Some(queue) = queue {
            rec.queue = queue;
        }
        rec.key = key;
        rec.phase = Phase::Queued;
        rec.via = Via::BlindTransfer;
        rec.reserved_for = reserved_for;
        let queue = rec.queue.clone();
        self.queues
            .get_mut(&queue)
            .expect("a call's queue exists")
            .insert(key, call.clone());
        key
    }

    /// Ends the consult of `call`, if there is one, and moves the colleague on: logged out if
    /// that is why it ended; after-call work if it was in a conference (it talked to the
    /// caller); otherwise back to the state it came from (its idle place kept if it never
    /// answered), or to a not-ready reason it asked for meanwhile.
    fn end_consult(&mut self, now: Instant, call: &CallId, why: ConsultEnd) {
        let Some(rec) = self.calls.get_mut(call) else {
            return;
        };
        let Some(consult) = rec.consult.take() else {
            return;
        };
        let Phase::Connected(from) = rec.phase.clone() else {
            unreachable!("only connected calls have consults");
        };
        let to = consult.to;
        if !consult.answered {
            self.timers.cancel(&Timer::RingNoAnswer {
                call: call.clone(),
                agent: to.clone(),
            });
        }
        self.outputs.push_back(AcdOutput::ConsultEnded {
            call: call.clone(),
            from,
            to: to.clone(),
            kind: consult.kind,
            answered: consult.answered,
            why,
        });
        let a = self.agent_mut(&to);
        let before = a.before_consult.take();
        if why == ConsultEnd::TargetLoggedOut {
            self.set_state(&to, AgentState::LoggedOut);
            return;
        }
        if consult.kind == ConsultKind::Conference && consult.answered {
            self.start_after_call_work(now, &to, call);
            return;
        }
        let next = match (a.pending_not_ready.take(), before) {
            (Some(reason), _) => AgentState::NotReady { reason, since: now },
            (None, Some(AgentState::Available { since })) if !consult.answered => {
                AgentState::Available { since }
            }
            (None, Some(AgentState::NotReady { reason, since })) if !consult.answered => {
                AgentState::NotReady { reason, since }
            }
            (None, Some(AgentState::NotReady { reason, .. })) => {
                AgentState::NotReady { reason, since: now }
            }
            _ => AgentState::Available { since: now },
        };
        self.set_state(&to, next);
        self.dispatch(now);
    }

    /// The consulted colleague, who answered, takes the call over. The caller moves the agent
    /// who had it on (after-call work or logged out).
    fn hand_over(&mut self, call: &CallId) {
        let rec = self.calls.get_mut(call).expect("checked by the caller");
        let consult = rec.consult.take().expect("checked by the caller");
        let Phase::Connected(from) =
            std::mem::replace(&mut rec.phase, Phase::Connected(consult.to.clone()))
        else {
            unreachable!("only connected calls have consults");
        };
        let via = match consult.kind {
            ConsultKind::Transfer => Via::WarmTransfer,
            ConsultKind::Conference => Via::Escalation,
        };
        rec.via = via;
        self.agent_mut(&consult.to).before_consult = None;
        self.outputs.push_back(AcdOutput::CallHandedOver {
            call: call.clone(),
            from,
            to: consult.to,
            via,
        });
    }

    // ---- shared transitions (infallible; inputs were validated) ----

    /// Stops the offer of `call` to `agent`, moves the agent to `next` and puts the caller back
    /// at its place in the queue. The caller dispatches afterwards.
    fn withdraw_offer(&mut self, agent: &AgentId, call: &CallId, why: OfferEnd, next: AgentState) {
        self.timers.cancel(&Timer::RingNoAnswer {
            call: call.clone(),
            agent: agent.clone(),
        });
        self.outputs.push_back(AcdOutput::OfferWithdrawn {
            call: call.clone(),
            agent: agent.clone(),
            why,
        });
        let a = self.agent_mut(agent);
        a.idle_since_before_offer = None;
        a.pending_not_ready = None;
        self.set_state(agent, next);

        let rec = self
            .calls
            .get_mut(call)
            .expect("an offered call has a record");
        rec.phase = Phase::Queued;
        // A call reserved for this agent now waits for anyone.
        rec.reserved_for = None;
        let (queue, key) = (rec.queue.clone(), rec.key);
        self.queues
            .get_mut(&queue)
            .expect("a call's queue exists")
            .insert(key, call.clone());
        let position = self.position(&queue, key);
        self.outputs.push_back(AcdOutput::CallQueued {
            call: call.clone(),
            queue,
            position,
        });
    }

    /// Ends a connected call and starts the agent's after-call work.
    fn end_connected(&mut self, now: Instant, agent: &AgentId, call: &CallId, why: CallEndReason) {
        self.calls.remove(call);
        self.outputs.push_back(AcdOutput::CallEnded {
            call: call.clone(),
            agent: Some(agent.clone()),
            reason: why,
        });
        self.start_after_call_work(now, agent, call);
    }

    /// Starts `agent`'s after-call work for its leg of `call` (the call may go on).
    fn start_after_call_work(&mut self, now: Instant, agent: &AgentId, call: &CallId) {
        let deadline = now + self.max_after_call_work;
        self.timers.arm(
            Timer::AfterCallWork {
                agent: agent.clone(),
                call: call.clone(),
            },
            deadline,
        );
        self.set_state(
            agent,
            AgentState::AfterCallWork {
                call: call.clone(),
                since: now,
                deadline,
            },
        );
    }

    /// After-call work is over (timer already cancelled or fired): the agent becomes available,
    /// or not ready if it asked for that meanwhile.
    fn end_after_call_work(&mut self, now: Instant, agent: &AgentId) {
        let next = match self.agent_mut(agent).pending_not_ready.take() {
            Some(reason) => AgentState::NotReady { reason, since: now },
            None => AgentState::Available { since: now },
        };
        self.set_state(agent, next);
        self.dispatch(now);
    }

    /// Offers waiting callers to available agents until no available agent serves a queue
    /// with someone waiting: longest-idle agent first, each taking the longest-waiting caller
    /// among its queues.
    fn dispatch(&mut self, now: Instant) {
        while let Some((agent, queue, key)) = self.next_match() {
            self.offer(now, agent, &queue, key);
        }
    }

    /// The longest-idle available agent with a call it may take: the first call of a queue
    /// it serves that is not reserved for someone else, or a call reserved for it in any
    /// queue. Reserved calls are rare, so queues are scanned past them rather than indexed.
    fn next_match(&self) -> Option<(AgentId, QueueId, QueueKey)> {
        self.idle.iter().find_map(|(_, agent)| {
            let a = self.agents.get(agent).expect("idle agents are known");
            self.queues
                .iter()
                .filter_map(|(q, waiting)| {
                    let serves = a.queues.contains(q);
                    waiting
                        .iter()
                        .find(|(_, call)| {
                            match &self
                                .calls
                                .get(*call)
                                .expect("queued calls have records")
                                .reserved_for
                            {
                                Some(r) => r == agent,
                                None => serves,
                            }
                        })
                        .map(|(key, _)| (*key, q))
                })
                .min()
                .map(|(key, q)| (agent.clone(), q.clone(), key))
        })
    }

    fn offer(&mut self, now: Instant, agent: AgentId, queue: &QueueId, key: QueueKey) {
        let call = self
            .queues
            .get_mut(queue)
            .and_then(|q| q.remove(&key))
            .expect("next_match returns a waiting call");
        self.calls
            .get_mut(&call)
            .expect("every queued call has a record")
            .phase = Phase::Offered(agent.clone());
        let a = self.agent_mut(&agent);
        a.idle_since_before_offer = a.state.since();
        self.timers.arm(
            Timer::RingNoAnswer {
                call: call.clone(),
                agent: agent.clone(),
            },
            now + self.ring_no_answer,
        );
        self.outputs.push_back(AcdOutput::OfferCall {
            call: call.clone(),
            agent: agent.clone(),
        });
        self.set_state(&agent, AgentState::Offered { call, since: now });
    }

    /// The one place agent states change: keeps `idle` in step and emits the change.
    fn set_state(&mut self, agent: &AgentId, state: AgentState) {
        let a = self
            .agents
            .get_mut(agent)
            .expect("states are only set for known agents");
        debug_assert_ne!(a.state, state, "a state change must change the state");
        if let AgentState::Available { since } = a.state {
            self.idle.remove(&(since, agent.clone()));
        }
        if let AgentState::Available { since } = state {
            self.idle.insert((since, agent.clone()));
        }
        a.state = state.clone();
        self.outputs.push_back(AcdOutput::AgentStateChanged {
            agent: agent.clone(),
            state,
        });
    }

    // ---- small helpers ----

    /// 1-based position of the caller with key `key` in `queue`.
    fn position(&self, queue: &QueueId, key: QueueKey) -> usize {
        self.queues.get(queue).map_or(0, |q| q.range(..key).count()) + 1
    }

    fn known_agent(&self, agent: &AgentId) -> Result<&Agent, AcdError> {
        self.agents
            .get(agent)
            .ok_or_else(|| AcdError::UnknownAgent(agent.clone()))
    }

    fn agent_mut(&mut self, agent: &AgentId) -> &mut Agent {
        self.agents
            .get_mut(agent)
            .expect("only called for agents validated as known")
    }

    fn invalid(&self, agent: &AgentId, action: &'static str) -> AcdError {
        AcdError::InvalidAgentState {
            agent: agent.clone(),
            action,
            state: self.agents[agent].state.kind(),
        }
    }

    /// The colleague rung or talking about `call`, if any.
    fn consult_target(&self, call: &CallId) -> Option<&AgentId> {
        self.calls.get(call)?.consult.as_ref().map(|c| &c.to)
    }

    fn consult_answered(&self, call: &CallId) -> bool {
        self.calls
            .get(call)
            .and_then(|r| r.consult.as_ref())
            .is_some_and(|c| c.answered)
    }

    /// Checks that `agent` has `call` (on the call, and not as the consulted colleague).
    fn check_primary(
        &self,
        agent: &AgentId,
        call: &CallId,
        action: &'static str,
    ) -> Result<(), AcdError> {
        self.check_call(agent, call, AgentStateKind::OnCall, action)?;
        match &self.calls.get(call).map(|r| &r.phase) {
            Some(Phase::Connected(a)) if a == agent => Ok(()),
            _ => Err(AcdError::CallRefused {
                call: call.clone(),
                why: "only the agent who has the call can do that",
            }),
        }
    }

    /// A blind transfer or a second consult waits until the current consult is over.
    fn check_no_consult(&self, call: &CallId) -> Result<(), AcdError> {
        match self.consult_target(call) {
            Some(_) => Err(AcdError::CallRefused {
                call: call.clone(),
                why: "a consult is in progress",
            }),
            None => Ok(()),
        }
    }

    /// Checks that `target` may be rung by `agent`: known, logged in, someone else, and
    /// available (a blind transfer) or available or not ready (a consult).
    fn check_target(
        &self,
        agent: &AgentId,
        target: &AgentId,
        must_be_available: bool,
    ) -> Result<(), AcdError> {
        let refuse = |why| {
            Err(AcdError::InvalidTarget {
                target: target.clone(),
                why,
            })
        };
        if target == agent {
            return refuse("that is the agent itself");
        }
        let Some(t) = self.agents.get(target) else {
            return refuse("not logged in");
        };
        match t.state.kind() {
            AgentStateKind::LoggedOut => refuse("not logged in"),
            AgentStateKind::Available => Ok(()),
            AgentStateKind::NotReady if !must_be_available => Ok(()),
            AgentStateKind::NotReady => refuse("not available"),
            _ => refuse("busy"),
        }
    }

    /// Checks that `agent` is in state `kind` with `call`.
    fn check_call(
        &self,
        agent: &AgentId,
        call: &CallId,
        kind: AgentStateKind,
        action: &'static str,
    ) -> Result<(), AcdError> {
        let state = &self.known_agent(agent)?.state;
        if state.kind() != kind {
            return Err(self.invalid(agent, action));
        }
        match state.call() {
            Some(actual) if actual == call => Ok(()),
            actual => Err(AcdError::WrongCall {
                agent: agent.clone(),
                call: call.clone(),
                actual: actual
                    .expect("offered, on-call and wrap-up states hold a call")
                    .clone(),
                state: kind,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RING: Duration = Duration::from_secs(20);
    const ACW: Duration = Duration::from_secs(60);
    const CALLBACK_AFTER: Duration = Duration::from_secs(30);

    fn q(id: &str) -> QueueId {
        QueueId::from(id)
    }
    fn a(id: &str) -> AgentId {
        AgentId::from(id)
    }
    fn c(id: &str) -> CallId {
        CallId::from(id)
    }
    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// The ACD on a fake clock: a base instant plus whatever the test advances.
    struct Sim {
        acd: Acd,
        t0: Instant,
        now: Instant,
    }

    impl Sim {
        fn new(queues: &[&str]) -> Self {
            let t0 = Instant::now();
            let acd = Acd::new(AcdConfig {
                queues: queues.iter().map(|s| q(s)).collect(),
                ring_no_answer: RING,
                max_after_call_work: ACW,
                callback_offer_after: CALLBACK_AFTER,
            });
            Self { acd, t0, now: t0 }
        }

        fn at(&self, s: u64) -> Instant {
            self.t0 + secs(s)
        }

        fn advance(&mut self, s: u64) {
            self.now += secs(s);
        }

        fn input(&mut self, input: AcdInput) -> Vec<AcdOutput> {
            self.try_input(input).expect("valid input")
        }

        fn try_input(&mut self, input: AcdInput) -> Result<Vec<AcdOutput>, AcdError> {
            self.acd.handle_input(self.now, input)?;
            Ok(self.drain())
        }

        fn drain(&mut self) -> Vec<AcdOutput> {
            std::iter::from_fn(|| self.acd.poll_output()).collect()
        }

        /// Advances to `poll_timeout` and fires it, like the driver does.
        fn fire_next_timer(&mut self) -> Vec<AcdOutput> {
            self.now = self.acd.poll_timeout().expect("a timer is armed");
            self.input(AcdInput::Timeout)
        }

        fn login(&mut self, agent: &str, queues: &[&str]) -> Vec<AcdOutput> {
            self.input(AcdInput::AgentLoggedIn {
                agent: a(agent),
                queues: queues.iter().map(|s| q(s)).collect(),
            })
        }

        fn ready(&mut self, agent: &str) -> Vec<AcdOutput> {
            self.input(AcdInput::AgentRequestedAvailable { agent: a(agent) })
        }

        fn login_ready(&mut self, agent: &str, queues: &[&str]) {
            self.login(agent, queues);
            self.ready(agent);
        }

        fn arrive(&mut self, call: &str, queue: &str) -> Vec<AcdOutput> {
            self.input(AcdInput::CallerArrived {
                call: c(call),
                queue: q(queue),
            })
        }

        fn answer(&mut self, agent: &str, call: &str) -> Vec<AcdOutput> {
            self.input(AcdInput::AgentAnswered {
                agent: a(agent),
                call: c(call),
            })
        }

        fn state(&self, agent: &str) -> AgentState {
            self.acd
                .agent_state(&a(agent))
                .expect("known agent")
                .clone()
        }

        fn queued(&self, queue: &str) -> Vec<CallId> {
            self.acd.queued_calls(&q(queue)).cloned().collect()
        }
    }

    fn offers(outs: &[AcdOutput]) -> Vec<(CallId, AgentId)> {
        outs.iter()
            .filter_map(|o| match o {
                AcdOutput::OfferCall { call, agent } => Some((call.clone(), agent.clone())),
                _ => None,
            })
            .collect()
    }

    fn state_changes(outs: &[AcdOutput]) -> usize {
        outs.iter()
            .filter(|o| matches!(o, AcdOutput::AgentStateChanged { .. }))
            .count()
    }

    // ---- rule 1: FIFO queues, longest-idle agent, longest-waiting caller ----

    #[test]
    fn login_starts_not_ready_and_emits_one_change() {
        let mut sim = Sim::new(&["sales"]);
        let outs = sim.login("ann", &["sales"]);
        let login = AgentState::NotReady {
            reason: "login".into(),
            since: sim.t0,
        };
        assert_eq!(
            outs,
            vec![AcdOutput::AgentStateChanged {
                agent: a("ann"),
                state: login.clone()
            }]
        );
        assert_eq!(sim.state("ann"), login);
    }

    #[test]
    fn callers_are_served_first_in_first_out() {
        let mut sim = Sim::new(&["sales"]);
        sim.arrive("c1", "sales");
        sim.advance(1);
        let outs = sim.arrive("c2", "sales");
        assert_eq!(
            outs,
            vec![AcdOutput::CallQueued {
                call: c("c2"),
                queue: q("sales"),
                position: 2
            }]
        );
        sim.arrive("c3", "sales");
        assert_eq!(sim.queued("sales"), vec![c("c1"), c("c2"), c("c3")]);
        sim.login("ann", &["sales"]);
        let outs = sim.ready("ann");
        assert_eq!(offers(&outs), vec![(c("c1"), a("ann"))]);
        assert_eq!(sim.queued("sales"), vec![c("c2"), c("c3")]);
    }

    #[test]
    fn longest_idle_agent_gets_the_call() {
        let mut sim = Sim::new(&["sales"]);
        sim.login("ann", &["sales"]);
        sim.login("bob", &["sales"]);
        sim.ready("bob");
        sim.advance(5);
        sim.ready("ann");
        sim.advance(5);
        let outs = sim.arrive("c1", "sales");
        assert_eq!(offers(&outs), vec![(c("c1"), a("bob"))]);
        let outs = sim.arrive("c2", "sales");
        assert_eq!(offers(&outs), vec![(c("c2"), a("ann"))]);
    }

    #[test]
    fn only_agents_serving_the_queue_are_offered() {
        let mut sim = Sim::new(&["sales", "support"]);
        sim.login_ready("ann", &["support"]); // longest idle, wrong queue
        sim.advance(1);
        sim.login_ready("bob", &["sales"]);
        let outs = sim.arrive("c1", "sales");
        assert_eq!(offers(&outs), vec![(c("c1"), a("bob"))]);
        let outs = sim.arrive("c2", "sales");
        assert!(offers(&outs).is_empty());
        assert_eq!(sim.acd.queue_len(&q("sales")), 1);
    }

    #[test]
    fn agent_takes_the_longest_waiting_caller_across_its_queues() {
        let mut sim = Sim::new(&["sales", "support"]);
        sim.arrive("s1", "support");
        sim.advance(1);
        sim.arrive("a1", "sales");
        sim.advance(1);
        sim.arrive("s2", "support");
        sim.login("ann", &["sales", "support"]);
        assert_eq!(offers(&sim.ready("ann")), vec![(c("s1"), a("ann"))]);
        sim.answer("ann", "s1");
        sim.input(AcdInput::AgentHungUp {
            agent: a("ann"),
            call: c("s1"),
        });
        let outs = sim.input(AcdInput::DispositionSubmitted {
            agent: a("ann"),
            call: c("s1"),
        });
        assert_eq!(offers(&outs), vec![(c("a1"), a("ann"))]);
    }

    #[test]
    fn one_offer_per_agent_and_one_agent_per_call() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        assert_eq!(offers(&sim.arrive("c1", "sales")).len(), 1);
        assert!(offers(&sim.arrive("c2", "sales")).is_empty());
        assert_eq!(sim.queued("sales"), vec![c("c2")]);
        assert!(matches!(sim.state("ann"), AgentState::Offered { call, .. } if call == c("c1")));
        sim.login("bob", &["sales"]);
        assert_eq!(offers(&sim.ready("bob")), vec![(c("c2"), a("bob"))]);
    }

    #[test]
    fn arrival_with_an_idle_agent_is_queued_then_offered() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        let outs = sim.arrive("c1", "sales");
        assert_eq!(
            outs,
            vec![
                AcdOutput::CallQueued {
                    call: c("c1"),
                    queue: q("sales"),
                    position: 1
                },
                AcdOutput::OfferCall {
                    call: c("c1"),
                    agent: a("ann")
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: AgentState::Offered {
                        call: c("c1"),
                        since: sim.t0
                    }
                },
            ]
        );
        assert_eq!(
            sim.acd.call_status(&c("c1")).map(|s| s.phase),
            Some(CallPhase::Offered { agent: a("ann") })
        );
    }

    // ---- rules 2 and 3: ring-no-answer and decline ----

    #[test]
    fn ring_no_answer_requeues_at_head_and_sets_missed() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.arrive("c1", "sales");
        sim.advance(3);
        sim.arrive("c2", "sales");
        assert_eq!(sim.acd.poll_timeout(), Some(sim.at(20)));
        sim.advance(10);
        assert!(sim.input(AcdInput::Timeout).is_empty(), "not due yet");
        let outs = sim.fire_next_timer();
        assert_eq!(sim.now, sim.at(20));
        assert_eq!(
            outs,
            vec![
                AcdOutput::OfferWithdrawn {
                    call: c("c1"),
                    agent: a("ann"),
                    why: OfferEnd::RingNoAnswer
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: AgentState::NotReady {
                        reason: "missed".into(),
                        since: sim.at(20)
                    }
                },
                AcdOutput::CallQueued {
                    call: c("c1"),
                    queue: q("sales"),
                    position: 1
                },
            ]
        );
        assert_eq!(sim.queued("sales"), vec![c("c1"), c("c2")]);
        assert_eq!(sim.acd.oldest_wait(&q("sales"), sim.now), Some(secs(20)));
        assert_eq!(sim.acd.poll_timeout(), None);
    }

    #[test]
    fn ring_no_answer_redispatches_to_another_agent() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.advance(1);
        sim.login_ready("bob", &["sales"]);
        sim.arrive("c1", "sales");
        sim.arrive("c2", "sales");
        // ann rings with c1, bob with c2; both ring out at once, and nobody is left for them.
        let outs = sim.fire_next_timer();
        assert_eq!(
            outs.iter()
                .filter(|o| matches!(
                    o,
                    AcdOutput::OfferWithdrawn {
                        why: OfferEnd::RingNoAnswer,
                        ..
                    }
                ))
                .count(),
            2
        );
        assert_eq!(sim.queued("sales"), vec![c("c1"), c("c2")]);

        // Now a third agent: c1 (the oldest) goes to carl.
        sim.login("carl", &["sales"]);
        assert_eq!(offers(&sim.ready("carl")), vec![(c("c1"), a("carl"))]);
    }

    #[test]
    fn missed_call_goes_to_the_next_idle_agent() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.arrive("c1", "sales");
        sim.advance(5);
        sim.login_ready("bob", &["sales"]);
        let outs = sim.fire_next_timer();
        assert_eq!(offers(&outs), vec![(c("c1"), a("bob"))]);
        assert_eq!(sim.acd.poll_timeout(), Some(sim.at(40)));
        assert_eq!(
            sim.acd.call_status(&c("c1")).map(|s| s.arrived),
            Some(sim.t0)
        );
    }

    #[test]
    fn decline_requeues_and_sets_declined() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.advance(1);
        sim.login_ready("bob", &["sales"]);
        sim.arrive("c1", "sales");
        sim.advance(2);
        let outs = sim.input(AcdInput::AgentDeclined {
            agent: a("ann"),
            call: c("c1"),
        });
        assert_eq!(
            outs[0],
            AcdOutput::OfferWithdrawn {
                call: c("c1"),
                agent: a("ann"),
                why: OfferEnd::Declined
            }
        );
        assert_eq!(
            sim.state("ann"),
            AgentState::NotReady {
                reason: "declined".into(),
                since: sim.at(3)
            }
        );
        assert_eq!(offers(&outs), vec![(c("c1"), a("bob"))]);
        // Only bob's ring timer is left.
        let timers: Vec<_> = sim.acd.timers().map(|(t, at)| (t.clone(), at)).collect();
        assert_eq!(
            timers,
            vec![(
                Timer::RingNoAnswer {
                    call: c("c1"),
                    agent: a("bob")
                },
                sim.at(23)
            )]
        );
    }

    #[test]
    fn withdrawn_call_does_not_jump_ahead_of_older_callers() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.login_ready("bob", &["sales"]);
        sim.arrive("c1", "sales"); // -> ann
        sim.arrive("c2", "sales"); // -> bob
        sim.arrive("c3", "sales");
        for (agent, call) in [("ann", "c1"), ("bob", "c2")] {
            sim.input(AcdInput::AgentDeclined {
                agent: a(agent),
                call: c(call),
            });
        }
        assert_eq!(sim.queued("sales"), vec![c("c1"), c("c2"), c("c3")]);
        assert_eq!(
            sim.acd.call_status(&c("c2")).map(|s| s.phase),
            Some(CallPhase::Queued { position: 2 })
        );
    }

    // ---- rule 4: abandoned calls ----

    #[test]
    fn caller_hangs_up_while_queued() {
        let mut sim = Sim::new(&["sales"]);
        sim.arrive("c1", "sales");
        sim.arrive("c2", "sales");
        let outs = sim.input(AcdInput::CallerHungUp { call: c("c1") });
        assert_eq!(
            outs,
            vec![AcdOutput::CallEnded {
                call: c("c1"),
                agent: None,
                reason: CallEndReason::Abandoned
            }]
        );
        assert_eq!(sim.queued("sales"), vec![c("c2")]);
        assert_eq!(sim.acd.call_status(&c("c1")), None);
        assert_eq!(
            sim.try_input(AcdInput::CallerHungUp { call: c("c1") }),
            Err(AcdError::UnknownCall(c("c1")))
        );
    }

    #[test]
    fn caller_hangs_up_while_offered_agent_keeps_its_place() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.advance(1);
        sim.login_ready("bob", &["sales"]);
        sim.advance(1);
        sim.arrive("c1", "sales"); // -> ann, the longest idle
        sim.advance(1);
        let outs = sim.input(AcdInput::CallerHungUp { call: c("c1") });
        assert_eq!(
            outs,
            vec![
                AcdOutput::OfferWithdrawn {
                    call: c("c1"),
                    agent: a("ann"),
                    why: OfferEnd::CallerHungUp
                },
                AcdOutput::CallEnded {
                    call: c("c1"),
                    agent: None,
                    reason: CallEndReason::Abandoned
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: AgentState::Available { since: sim.t0 }
                },
            ]
        );
        assert_eq!(sim.acd.poll_timeout(), None);
        assert_eq!(
            offers(&sim.arrive("c2", "sales")),
            vec![(c("c2"), a("ann"))]
        );
    }

    // ---- rule 5: answer, hang-up, after-call work ----

    #[test]
    fn answer_connects_and_caller_hang_up_starts_after_call_work() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.arrive("c1", "sales");
        sim.advance(4);
        let outs = sim.answer("ann", "c1");
        assert_eq!(
            outs,
            vec![
                AcdOutput::CallConnected {
                    call: c("c1"),
                    agent: a("ann"),
                    via: Via::Queue,
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: AgentState::OnCall {
                        call: c("c1"),
                        since: sim.at(4)
                    }
                },
            ]
        );
        assert_eq!(sim.acd.poll_timeout(), None, "ring timer cancelled");
        sim.advance(100);
        let outs = sim.input(AcdInput::CallerHungUp { call: c("c1") });
        assert_eq!(
            outs,
            vec![
                AcdOutput::CallEnded {
                    call: c("c1"),
                    agent: Some(a("ann")),
                    reason: CallEndReason::CallerHungUp
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: AgentState::AfterCallWork {
                        call: c("c1"),
                        since: sim.at(104),
                        deadline: sim.at(164)
                    }
                },
            ]
        );
        assert_eq!(sim.acd.poll_timeout(), Some(sim.at(164)));
        sim.advance(10);
        let outs = sim.input(AcdInput::DispositionSubmitted {
            agent: a("ann"),
            call: c("c1"),
        });
        assert_eq!(
            outs,
            vec![AcdOutput::AgentStateChanged {
                agent: a("ann"),
                state: AgentState::Available { since: sim.at(114) }
            }]
        );
        assert_eq!(sim.acd.poll_timeout(), None);
    }

    #[test]
    fn agent_hang_up_and_after_call_work_deadline() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.arrive("c1", "sales");
        sim.answer("ann", "c1");
        sim.arrive("c2", "sales");
        sim.advance(30);
        let outs = sim.input(AcdInput::AgentHungUp {
            agent: a("ann"),
            call: c("c1"),
        });
        assert_eq!(
            outs[0],
            AcdOutput::CallEnded {
                call: c("c1"),
                agent: Some(a("ann")),
                reason: CallEndReason::AgentHungUp
            }
        );
        let outs = sim.fire_next_timer();
        assert_eq!(sim.now, sim.at(90));
        assert_eq!(
            outs,
            vec![
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: AgentState::Available { since: sim.at(90) }
                },
                AcdOutput::OfferCall {
                    call: c("c2"),
                    agent: a("ann")
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: AgentState::Offered {
                        call: c("c2"),
                        since: sim.at(90)
                    }
                },
            ]
        );
        // A late disposition for the finished wrap-up is bad input.
        assert!(matches!(
            sim.try_input(AcdInput::DispositionSubmitted {
                agent: a("ann"),
                call: c("c1")
            }),
            Err(AcdError::InvalidAgentState {
                state: AgentStateKind::Offered,
                ..
            })
        ));
    }

    #[test]
    fn not_ready_asked_while_busy_is_applied_when_after_call_work_ends() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.arrive("c1", "sales");
        sim.answer("ann", "c1");
        let outs = sim.input(AcdInput::AgentRequestedNotReady {
            agent: a("ann"),
            reason: "lunch".into(),
        });
        assert!(outs.is_empty(), "no state change while on call");
        assert_eq!(sim.acd.pending_not_ready(&a("ann")), Some("lunch"));
        sim.input(AcdInput::CallerHungUp { call: c("c1") });
        sim.arrive("c2", "sales");
        // Asking available during ACW: no-op that keeps ACW (and cancels the pending lunch).
        assert!(sim.ready("ann").is_empty());
        assert_eq!(sim.state("ann").kind(), AgentStateKind::AfterCallWork);
        assert_eq!(sim.acd.pending_not_ready(&a("ann")), None);
        // Changed mind again: lunch it is.
        sim.input(AcdInput::AgentRequestedNotReady {
            agent: a("ann"),
            reason: "lunch".into(),
        });
        sim.advance(7);
        let outs = sim.input(AcdInput::DispositionSubmitted {
            agent: a("ann"),
            call: c("c1"),
        });
        assert_eq!(
            outs,
            vec![AcdOutput::AgentStateChanged {
                agent: a("ann"),
                state: AgentState::NotReady {
                    reason: "lunch".into(),
                    since: sim.at(7)
                }
            }]
        );
        assert_eq!(sim.queued("sales"), vec![c("c2")]);
        assert_eq!(sim.acd.pending_not_ready(&a("ann")), None);
    }

    #[test]
    fn not_ready_asked_while_offered_applies_if_the_caller_abandons() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.arrive("c1", "sales");
        sim.input(AcdInput::AgentRequestedNotReady {
            agent: a("ann"),
            reason: "break".into(),
        });
        sim.advance(2);
        sim.input(AcdInput::CallerHungUp { call: c("c1") });
        assert_eq!(
            sim.state("ann"),
            AgentState::NotReady {
                reason: "break".into(),
                since: sim.at(2)
            }
        );
    }

    #[test]
    fn available_and_not_ready_requests() {
        let mut sim = Sim::new(&["sales"]);
        sim.login("ann", &["sales"]);
        assert_eq!(state_changes(&sim.ready("ann")), 1);
        assert!(sim.ready("ann").is_empty(), "already available: no-op");
        let not_ready = AcdInput::AgentRequestedNotReady {
            agent: a("ann"),
            reason: "meeting".into(),
        };
        assert_eq!(state_changes(&sim.input(not_ready.clone())), 1);
        assert!(sim.input(not_ready).is_empty(), "same reason: no-op");
        sim.advance(1);
        let outs = sim.input(AcdInput::AgentRequestedNotReady {
            agent: a("ann"),
            reason: "training".into(),
        });
        assert_eq!(
            outs,
            vec![AcdOutput::AgentStateChanged {
                agent: a("ann"),
                state: AgentState::NotReady {
                    reason: "training".into(),
                    since: sim.at(1)
                }
            }]
        );
    }

    // ---- rule 6: log out and disconnect ----

    #[test]
    fn logout_while_offered_puts_the_call_back_for_another_agent() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.advance(1);
        sim.login_ready("bob", &["sales"]);
        sim.arrive("c0", "sales");
        sim.arrive("c1", "sales"); // c0 -> ann, c1 -> bob
        sim.input(AcdInput::AgentDeclined {
            agent: a("bob"),
            call: c("c1"),
        });
        let outs = sim.input(AcdInput::AgentLoggedOut { agent: a("ann") });
        assert_eq!(
            outs,
            vec![
                AcdOutput::OfferWithdrawn {
                    call: c("c0"),
                    agent: a("ann"),
                    why: OfferEnd::AgentLoggedOut
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: AgentState::LoggedOut
                },
                AcdOutput::CallQueued {
                    call: c("c0"),
                    queue: q("sales"),
                    position: 1
                },
            ]
        );
        assert_eq!(sim.queued("sales"), vec![c("c0"), c("c1")]);
        assert_eq!(offers(&sim.ready("bob")), vec![(c("c0"), a("bob"))]);
        assert!(sim.acd.timers().all(|(t, _)| !matches!(
            t,
            Timer::RingNoAnswer { agent, .. } if *agent == a("ann")
        )));
    }

    #[test]
    fn disconnect_during_call_ends_it_and_agent_can_log_in_again() {
        let mut sim = Sim::new(&["sales", "support"]);
        sim.login_ready("ann", &["sales"]);
        sim.arrive("c1", "sales");
        sim.answer("ann", "c1");
        sim.input(AcdInput::AgentRequestedNotReady {
            agent: a("ann"),
            reason: "lunch".into(),
        });
        let outs = sim.input(AcdInput::AgentLoggedOut { agent: a("ann") });
        assert_eq!(
            outs,
            vec![
                AcdOutput::CallEnded {
                    call: c("c1"),
                    agent: Some(a("ann")),
                    reason: CallEndReason::AgentDisconnected
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: AgentState::LoggedOut
                },
            ]
        );
        assert!(
            sim.input(AcdInput::AgentLoggedOut { agent: a("ann") })
                .is_empty()
        );
        assert_eq!(sim.acd.call_status(&c("c1")), None);
        assert_eq!(sim.acd.pending_not_ready(&a("ann")), None);

        sim.advance(9);
        sim.arrive("c2", "support");
        sim.login("ann", &["support"]);
        assert_eq!(
            sim.acd.agent_queues(&a("ann")).cloned().collect::<Vec<_>>(),
            vec![q("support")]
        );
        assert_eq!(offers(&sim.ready("ann")), vec![(c("c2"), a("ann"))]);
    }

    #[test]
    fn logout_during_after_call_work_cancels_its_timer() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.arrive("c1", "sales");
        sim.answer("ann", "c1");
        sim.input(AcdInput::CallerHungUp { call: c("c1") });
        assert!(sim.acd.poll_timeout().is_some());
        let outs = sim.input(AcdInput::AgentLoggedOut { agent: a("ann") });
        assert_eq!(state_changes(&outs), 1);
        assert_eq!(sim.acd.poll_timeout(), None);
    }

    // ---- rule 7: timers are data ----

    #[test]
    fn poll_timeout_is_the_earliest_deadline() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.login_ready("bob", &["sales"]);
        sim.arrive("c1", "sales"); // ann, rings until 20
        sim.answer("ann", "c1");
        sim.advance(5);
        sim.arrive("c2", "sales"); // bob, rings until 25
        sim.advance(5);
        sim.input(AcdInput::CallerHungUp { call: c("c1") }); // ann ACW until 70
        assert_eq!(sim.acd.poll_timeout(), Some(sim.at(25)));
        let all: Vec<_> = sim.acd.timers().map(|(_, at)| at).collect();
        assert_eq!(all, vec![sim.at(25), sim.at(70)]);
        sim.fire_next_timer();
        assert_eq!(sim.acd.poll_timeout(), Some(sim.at(70)));
        // A late Timeout fires everything due at once, in deadline order.
        sim.arrive("c3", "sales");
        sim.now = sim.at(500);
        let outs = sim.input(AcdInput::Timeout);
        assert_eq!(offers(&outs), vec![(c("c2"), a("ann"))]);
        assert_eq!(sim.acd.poll_timeout(), Some(sim.at(520)));
    }

    #[test]
    fn zero_durations_do_not_loop() {
        let t0 = Instant::now();
        let mut acd = Acd::new(AcdConfig {
            queues: vec![q("sales")],
            ring_no_answer: Duration::ZERO,
            max_after_call_work: Duration::ZERO,
            callback_offer_after: CALLBACK_AFTER,
        });
        for agent in ["ann", "bob"] {
            let login = AcdInput::AgentLoggedIn {
                agent: a(agent),
                queues: vec![q("sales")],
            };
            acd.handle_input(t0, login).unwrap();
            let ready = AcdInput::AgentRequestedAvailable { agent: a(agent) };
            acd.handle_input(t0, ready).unwrap();
        }
        let arrive = AcdInput::CallerArrived {
            call: c("c1"),
            queue: q("sales"),
        };
        acd.handle_input(t0, arrive).unwrap();
        assert_eq!(acd.poll_timeout(), Some(t0));
        acd.handle_input(t0, AcdInput::Timeout).unwrap(); // ann misses, bob is offered
        assert_eq!(acd.poll_timeout(), Some(t0));
        acd.handle_input(t0, AcdInput::Timeout).unwrap(); // bob misses
        assert_eq!(acd.poll_timeout(), None);
        assert_eq!(acd.queue_len(&q("sales")), 1);
    }

    #[test]
    fn time_never_runs_backwards_inside() {
        let mut sim = Sim::new(&["sales"]);
        sim.advance(10);
        sim.login("ann", &["sales"]);
        sim.now = sim.t0; // a confused driver
        sim.ready("ann");
        assert_eq!(
            sim.state("ann"),
            AgentState::Available { since: sim.at(10) }
        );
    }

    // ---- bad input ----

    #[test]
    fn bad_input_is_an_error_and_changes_nothing() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.login("bob", &["sales"]);
        sim.arrive("c1", "sales"); // offered to ann
        sim.arrive("c2", "sales"); // queued
        let bad = [
            (
                AcdInput::CallerArrived {
                    call: c("c9"),
                    queue: q("nope"),
                },
                AcdError::UnknownQueue(q("nope")),
            ),
            (
                AcdInput::CallerArrived {
                    call: c("c2"),
                    queue: q("sales"),
                },
                AcdError::DuplicateCall(c("c2")),
            ),
            (
                AcdInput::AgentLoggedIn {
                    agent: a("carl"),
                    queues: vec![q("sales"), q("nope")],
                },
                AcdError::UnknownQueue(q("nope")),
            ),
            (
                AcdInput::AgentLoggedIn {
                    agent: a("ann"),
                    queues: vec![],
                },
                AcdError::AlreadyLoggedIn(a("ann")),
            ),
            (
                AcdInput::AgentRequestedAvailable { agent: a("carl") },
                AcdError::UnknownAgent(a("carl")),
            ),
            (
                AcdInput::AgentLoggedOut { agent: a("carl") },
                AcdError::UnknownAgent(a("carl")),
            ),
            (
                AcdInput::CallerHungUp { call: c("c9") },
                AcdError::UnknownCall(c("c9")),
            ),
            (
                AcdInput::AgentAnswered {
                    agent: a("ann"),
                    call: c("c2"),
                },
                AcdError::WrongCall {
                    agent: a("ann"),
                    call: c("c2"),
                    actual: c("c1"),
                    state: AgentStateKind::Offered,
                },
            ),
            (
                AcdInput::AgentAnswered {
                    agent: a("bob"),
                    call: c("c1"),
                },
                AcdError::InvalidAgentState {
                    agent: a("bob"),
                    action: "answer",
                    state: AgentStateKind::NotReady,
                },
            ),
            (
                AcdInput::AgentHungUp {
                    agent: a("ann"),
                    call: c("c1"),
                },
                AcdError::InvalidAgentState {
                    agent: a("ann"),
                    action: "hang up",
                    state: AgentStateKind::Offered,
                },
            ),
            (
                AcdInput::DispositionSubmitted {
                    agent: a("ann"),
                    call: c("c1"),
                },
                AcdError::InvalidAgentState {
                    agent: a("ann"),
                    action: "submit a disposition",
                    state: AgentStateKind::Offered,
                },
            ),
        ];
        for (input, want) in bad {
            let before = sim.acd.clone();
            sim.advance(1);
            assert_eq!(sim.try_input(input.clone()), Err(want), "{input:?}");
            assert!(sim.acd == before, "{input:?} changed the state");
        }
        // Logged-out agents cannot ask for states; they log in first.
        sim.input(AcdInput::AgentLoggedOut { agent: a("bob") });
        let err = sim
            .try_input(AcdInput::AgentRequestedNotReady {
                agent: a("bob"),
                reason: "x".into(),
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "agent bob cannot become not ready while logged out"
        );
    }

    #[test]
    fn call_in_wrap_up_cannot_arrive_again() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.arrive("c1", "sales");
        sim.answer("ann", "c1");
        sim.input(AcdInput::CallerHungUp { call: c("c1") });
        assert_eq!(
            sim.try_input(AcdInput::CallerArrived {
                call: c("c1"),
                queue: q("sales")
            }),
            Err(AcdError::DuplicateCall(c("c1")))
        );
    }

    // ---- rule 6: transfers, consults, conferences ----

    /// ann talks to c1 (answered from "sales"); bob and the supervisor sue are logged in.
    fn on_call_with_colleagues(bob_ready: bool) -> Sim {
        let mut sim = Sim::new(&["sales", "support"]);
        sim.login_ready("ann", &["sales"]);
        sim.login("bob", &["support"]);
        if bob_ready {
            sim.ready("bob");
        }
        sim.login("sue", &[]);
        sim.arrive("c1", "sales");
        sim.answer("ann", "c1");
        sim.advance(10);
        sim
    }

    fn acw(sim: &Sim, call: &str) -> AgentState {
        AgentState::AfterCallWork {
            call: c(call),
            since: sim.now,
            deadline: sim.now + ACW,
        }
    }

    #[test]
    fn blind_transfer_to_a_queue_goes_ahead_of_dialed_callers() {
        let mut sim = on_call_with_colleagues(false);
        sim.arrive("c2", "support"); // a caller already waiting in support
        sim.advance(1);
        let outs = sim.input(AcdInput::AgentTransferredToQueue {
            agent: a("ann"),
            call: c("c1"),
            queue: q("support"),
        });
        assert_eq!(
            outs,
            vec![
                AcdOutput::CallTransferred {
                    call: c("c1"),
                    from: a("ann")
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: acw(&sim, "c1")
                },
                AcdOutput::CallQueued {
                    call: c("c1"),
                    queue: q("support"),
                    position: 1
                },
            ]
        );
        assert_eq!(sim.queued("support"), vec![c("c1"), c("c2")]);
        // It keeps its arrival time, and bob (support) gets it first.
        assert_eq!(sim.acd.call_status(&c("c1")).unwrap().arrived, sim.t0);
        let outs = sim.ready("bob");
        assert_eq!(offers(&outs), vec![(c("c1"), a("bob"))]);
        let outs = sim.answer("bob", "c1");
        assert!(outs.contains(&AcdOutput::CallConnected {
            call: c("c1"),
            agent: a("bob"),
            via: Via::BlindTransfer
        }));
        // ann wraps up her leg of the same call while bob talks.
        sim.input(AcdInput::DispositionSubmitted {
            agent: a("ann"),
            call: c("c1"),
        });
        assert_eq!(sim.state("ann").kind(), AgentStateKind::Available);
    }

    #[test]
    fn blind_transfer_to_an_agent_is_offered_to_it_and_a_miss_frees_the_call() {
        let mut sim = on_call_with_colleagues(true);
        sim.login_ready("cat", &["sales"]); // idle longer than ann will be
        let outs = sim.input(AcdInput::AgentTransferredToAgent {
            agent: a("ann"),
            call: c("c1"),
            target: a("bob"),
        });
        assert_eq!(offers(&outs), vec![(c("c1"), a("bob"))]);
        assert_eq!(
            sim.acd.call_status(&c("c1")).unwrap().reserved_for,
            Some(a("bob")),
            "reserved for bob while it rings him"
        );
        assert_eq!(sim.state("ann"), acw(&sim, "c1"));
        // bob lets it ring out: the call goes to the head of sales, for anyone (cat).
        let outs = sim.fire_next_timer();
        assert_eq!(offers(&outs), vec![(c("c1"), a("cat"))]);
        assert_eq!(sim.state("bob").kind(), AgentStateKind::NotReady);
    }

    #[test]
    fn warm_transfer_complete_hands_the_call_to_the_colleague() {
        let mut sim = on_call_with_colleagues(true);
        let outs = sim.input(AcdInput::ConsultRequested {
            agent: a("ann"),
            call: c("c1"),
            target: a("bob"),
            kind: ConsultKind::Transfer,
        });
        assert_eq!(
            outs[0],
            AcdOutput::ConsultOffered {
                call: c("c1"),
                from: a("ann"),
                to: a("bob"),
                kind: ConsultKind::Transfer
            }
        );
        assert_eq!(sim.state("bob").kind(), AgentStateKind::Offered);
        // Completing before bob answers is refused.
        assert!(matches!(
            sim.try_input(AcdInput::ConsultCompleted {
                agent: a("ann"),
                call: c("c1")
            }),
            Err(AcdError::CallRefused { .. })
        ));
        sim.advance(2);
        let outs = sim.answer("bob", "c1");
        assert_eq!(
            outs[0],
            AcdOutput::ConsultConnected {
                call: c("c1"),
                from: a("ann"),
                to: a("bob"),
                kind: ConsultKind::Transfer
            }
        );
        assert_eq!(sim.acd.poll_timeout(), None, "no ring timer once answered");
        sim.advance(5);
        let outs = sim.input(AcdInput::ConsultCompleted {
            agent: a("ann"),
            call: c("c1"),
        });
        assert_eq!(
            outs,
            vec![
                AcdOutput::CallHandedOver {
                    call: c("c1"),
                    from: a("ann"),
                    to: a("bob"),
                    via: Via::WarmTransfer
                },
                AcdOutput::AgentStateChanged {
                    agent: a("ann"),
                    state: acw(&sim, "c1")
                },
            ]
        );
        let status = sim.acd.call_status(&c("c1")).unwrap();
        assert_eq!(status.phase, CallPhase::Connected { agent: a("bob") });
        // bob now has the call: his hang-up ends it and he wraps up.
        let outs = sim.input(AcdInput::AgentHungUp {
            agent: a("bob"),
            call: c("c1"),
        });
        assert!(outs.contains(&AcdOutput::CallEnded {
            call: c("c1"),
            agent: Some(a("bob")),
            reason: CallEndReason::AgentHungUp
        }));
        assert_eq!(sim.state("bob").kind(), AgentStateKind::AfterCallWork);
    }

    #[test]
    fn warm_transfer_cancel_puts_the_colleague_back() {
        let mut sim = on_call_with_colleagues(true);
        let bob_idle_since = sim.now;
        sim.input(AcdInput::ConsultRequested {
            agent: a("ann"),
            call: c("c1"),
            target: a("bob"),
            kind: ConsultKind::Transfer,
        });
        sim.answer("bob", "c1");
        sim.advance(3);
        let outs = sim.input(AcdInput::ConsultCancelled {
            agent: a("ann"),
            call: c("c1"),
        });
        assert_eq!(
            outs[0],
            AcdOutput::ConsultEnded {
                call: c("c1"),
                from: a("ann"),
                to: a("bob"),
                kind: ConsultKind::Transfer,
                answered: true,
                why: ConsultEnd::Cancelled
            }
        );
        // bob only talked to ann: no wrap-up, available again (idle from now).
        assert_eq!(sim.state("bob"), AgentState::Available { since: sim.now });
        assert!(sim.now > bob_idle_since);
        let status = sim.acd.call_status(&c("c1")).unwrap();
        assert_eq!(status.phase, CallPhase::Connected { agent: a("ann") });
        assert_eq!(status.consult, None);
        assert_eq!(sim.state("ann").kind(), AgentStateKind::OnCall);
    }

    #[test]
    fn an_unanswered_consult_rings_out_and_the_supervisor_stays_not_ready() {
        let mut sim = on_call_with_colleagues(false);
        let before = sim.state("sue");
        sim.input(AcdInput::ConsultRequested {
            agent: a("ann"),
            call: c("c1"),
            target: a("sue"),
            kind: ConsultKind::Conference,
        });
        let outs = sim.fire_next_timer();
        assert!(matches!(
            outs[0],
            AcdOutput::ConsultEnded {
                answered: false,
                why: ConsultEnd::RingNoAnswer,
                ..
            }
        ));
        assert_eq!(sim.state("sue"), before, "back as it was, not 'missed'");
        assert_eq!(sim.state("ann").kind(), AgentStateKind::OnCall);
        assert!(
            sim.queued("sales").is_empty(),
            "the caller never went back to the queue"
        );
    }

    #[test]
    fn escalation_supervisor_keeps_the_call_when_the_agent_leaves() {
        let mut sim = on_call_with_colleagues(false);
        sim.input(AcdInput::ConsultRequested {
            agent: a("ann"),
            call: c("c1"),
            target: a("sue"),
            kind: ConsultKind::Conference,
        });
        let outs = sim.answer("sue", "c1");
        assert_eq!(
            outs[0],
            AcdOutput::ConsultConnected {
                call: c("c1"),
                from: a("ann"),
                to: a("sue"),
                kind: ConsultKind::Conference
            }
        );
        sim.advance(4);
        // The agent hangs up: the supervisor keeps the call.
        let outs = sim.input(AcdInput::AgentHungUp {
            agent: a("ann"),
            call: c("c1"),
        });
        assert_eq!(
            outs[0],
            AcdOutput::CallHandedOver {
                call: c("c1"),
                from: a("ann"),
                to: a("sue"),
                via: Via::Escalation
            }
        );
        assert_eq!(sim.state("ann"), acw(&sim, "c1"));
        assert_eq!(sim.state("sue").kind(), AgentStateKind::OnCall);
        // The caller hangs up later: the supervisor wraps up.
        sim.advance(4);
        let outs = sim.input(AcdInput::CallerHungUp { call: c("c1") });
        assert!(outs.contains(&AcdOutput::CallEnded {
            call: c("c1"),
            agent: Some(a("sue")),
            reason: CallEndReason::CallerHungUp
        }));
        assert_eq!(sim.state("sue"), acw(&sim, "c1"));
    }

    #[test]
    fn caller_hanging_up_in_a_conference_sends_both_to_wrap_up() {
        let mut sim = on_call_with_colleagues(false);
        sim.input(AcdInput::ConsultRequested {
            agent: a("ann"),
            call: c("c1"),
            target: a("sue"),
            kind: ConsultKind::Conference,
        });
        sim.answer("sue", "c1");
        let outs = sim.input(AcdInput::CallerHungUp { call: c("c1") });
        assert!(matches!(
            outs[0],
            AcdOutput::ConsultEnded {
                why: ConsultEnd::CallEnded,
                answered: true,
                ..
            }
        ));
        assert_eq!(sim.state("sue"), acw(&sim, "c1"));
        assert_eq!(sim.state("ann"), acw(&sim, "c1"));
        assert_eq!(sim.acd.live_calls().count(), 0);
    }

    #[test]
    fn transfer_targets_must_be_free_and_refusals_change_nothing() {
        let mut sim = on_call_with_colleagues(false);
        sim.arrive("c2", "support");
        let before = sim.acd.clone();
        let refused = [
            AcdInput::AgentTransferredToAgent {
                agent: a("ann"),
                call: c("c1"),
                target: a("bob"), // not ready
            },
            AcdInput::AgentTransferredToAgent {
                agent: a("ann"),
                call: c("c1"),
                target: a("ann"),
            },
            AcdInput::ConsultRequested {
                agent: a("ann"),
                call: c("c1"),
                target: a("zed"), // never logged in
                kind: ConsultKind::Transfer,
            },
            AcdInput::AgentTransferredToQueue {
                agent: a("ann"),
                call: c("c1"),
                queue: q("nope"),
            },
            AcdInput::AgentTransferredToQueue {
                agent: a("bob"),
                call: c("c1"),
                queue: q("sales"),
            },
            AcdInput::ConsultCancelled {
                agent: a("ann"),
                call: c("c1"),
            },
            AcdInput::CallerRequestedCallback { call: c("c1") },
        ];
        for input in refused {
            assert!(sim.try_input(input.clone()).is_err(), "{input:?}");
            assert_eq!(sim.acd, before, "{input:?} changed something");
        }
        // A colleague who is ringing for a consult cannot be consulted by someone else.
        sim.input(AcdInput::ConsultRequested {
            agent: a("ann"),
            call: c("c1"),
            target: a("sue"),
            kind: ConsultKind::Transfer,
        });
        assert!(
            sim.try_input(AcdInput::AgentTransferredToQueue {
                agent: a("ann"),
                call: c("c1"),
                queue: q("support"),
            })
            .is_err(),
            "no blind transfer during a consult"
        );
    }

    #[test]
    fn agent_logging_out_with_a_connected_colleague_hands_the_call_over() {
        let mut sim = on_call_with_colleagues(true);
        sim.input(AcdInput::ConsultRequested {
            agent: a("ann"),
            call: c("c1"),
            target: a("bob"),
            kind: ConsultKind::Transfer,
        });
        sim.answer("bob", "c1");
        let outs = sim.input(AcdInput::AgentLoggedOut { agent: a("ann") });
        assert!(matches!(outs[0], AcdOutput::CallHandedOver { .. }));
        assert_eq!(sim.state("ann"), AgentState::LoggedOut);
        assert_eq!(
            sim.acd.call_status(&c("c1")).unwrap().phase,
            CallPhase::Connected { agent: a("bob") }
        );
    }

    // ---- rule 7: callbacks and outbound calls ----

    #[test]
    fn a_due_callback_waits_for_its_agent_or_goes_to_anyone() {
        let mut sim = Sim::new(&["sales"]);
        sim.login_ready("ann", &["sales"]);
        sim.login_ready("bob", &["sales"]);
        sim.login("cat", &["sales"]);
        // Reserved for cat (not ready): ann and bob, though idle, are not offered it.
        let outs = sim.input(AcdInput::CallbackDue {
            call: c("cb1"),
            queue: q("sales"),
            agent: Some(a("cat")),
        });
        assert!(offers(&outs).is_empty());
        assert_eq!(
            sim.acd.call_status(&c("cb1")).unwrap().reserved_for,
            Some(a("cat"))
        );
        let outs = sim.ready("cat");
        assert_eq!(offers(&outs), vec![(c("cb1"), a("cat"))]);
        let outs = sim.answer("cat", "cb1");
        assert!(outs.contains(&AcdOutput::CallConnected {
            call: c("cb1"),
            agent: a("cat"),
            via: Via::Callback
        }));
        // An agent who is not logged in: the callback goes to the queue.
        let outs = sim.input(AcdInput::CallbackDue {
            call: c("cb2"),
            queue: q("sales"),
            agent: Some(a("dan")),
        });
        assert_eq!(offers(&outs), vec![(c("cb2"), a("ann"))]);
        // Reserved for an agent who then logs out: anyone may take it.
        sim.login("eve", &["sales"]);
        sim.input(AcdInput::CallbackDue {
            call: c("cb3"),
            queue: q("sales"),
            agent: Some(a("eve")),
        });
        let outs = sim.input(AcdInput::AgentLoggedOut { agent: a("eve") });
        assert_eq!(offers(&outs), vec![(c("cb3"), a("bob"))]);
    }

    #[test]
    fn a_waiting_caller_may_ask_for_a_callback_after_the_threshold_and_keeps_its_place() {
        let mut sim = Sim::new(&["sales"]);
        sim.arrive("c1", "sales");
        sim.advance(1);
        sim.arrive("c2", "sales");
        sim.advance(10);
        assert!(matches!(
            sim.try_input(AcdInput::CallerRequestedCallback { call: c("c1") }),
            Err(AcdError::CallRefused { .. })
        ));
        sim.advance(20);
        let outs = sim.input(AcdInput::CallerRequestedCallback { call: c("c1") });
        assert_eq!(outs, vec![AcdOutput::CallbackKept { call: c("c1") }]);
        assert_eq!(sim.queued("sales"), vec![c("c1"), c("c2")]);
        sim.login_ready("ann", &["sales"]);
        let outs = sim.answer("ann", "c1");
        assert!(outs.contains(&AcdOutput::CallConnected {
            call: c("c1"),
            agent: a("ann"),
            via: Via::Callback
        }));
    }

    #[test]
    fn dialing_out_from_not_ready_returns_to_not_ready() {
        let mut sim = Sim::new(&["sales"]);
        sim.login("ann", &["sales"]);
        let outs = sim.input(AcdInput::OutboundDialed {
            agent: a("ann"),
            call: c("o1"),
            queue: q("sales"),
            via: Via::Outbound,
        });
        assert_eq!(
            outs[0],
            AcdOutput::CallConnected {
                call: c("o1"),
                agent: a("ann"),
                via: Via::Outbound
            }
        );
        assert!(
            sim.try_input(AcdInput::OutboundDialed {
                agent: a("ann"),
                call: c("o2"),
                queue: q("sales"),
                via: Via::Outbound,
            })
            .is_err(),
            "one call at a time"
        );
        sim.input(AcdInput::CallerHungUp { call: c("o1") });
        sim.input(AcdInput::DispositionSubmitted {
            agent: a("ann"),
            call: c("o1"),
        });
        assert!(matches!(
            sim.state("ann"),
            AgentState::NotReady { ref reason, .. } if reason == "login"
        ));
    }

    #[test]
    fn wallboard_queue_stats() {
        let mut sim = Sim::new(&["sales", "support"]);
        sim.login_ready("ann", &["support"]);
        sim.login("bob", &["sales", "support"]);
        sim.login("carl", &["sales"]);
        sim.input(AcdInput::AgentLoggedOut { agent: a("carl") });
        sim.arrive("c1", "sales");
        sim.advance(30);
        sim.arrive("c2", "sales");
        assert_eq!(
            sim.acd.queue_stats(&q("sales"), sim.now),
            Some(QueueStats {
                waiting: 2,
                oldest_wait: Some(secs(30)),
                agents_available: 0,
                agents_logged_in: 1,
            })
        );
        assert_eq!(
            sim.acd.queue_stats(&q("support"), sim.now),
            Some(QueueStats {
                waiting: 0,
                oldest_wait: None,
                agents_available: 1,
                agents_logged_in: 2,
            })
        );
        assert_eq!(sim.acd.queue_stats(&q("nope"), sim.now), None);
        let since: Vec<_> = sim
            .acd
            .agents()
            .map(|(id, s)| (id.to_string(), s.kind(), s.since()))
            .collect();
        assert_eq!(
            since,
            vec![
                ("ann".into(), AgentStateKind::Available, Some(sim.t0)),
                ("bob".into(), AgentStateKind::NotReady, Some(sim.t0)),
                ("carl".into(), AgentStateKind::LoggedOut, None),
            ]
        );
    }

    // ---- rule 8: property tests ----

    const PROP_QUEUES: [&str; 3] = ["q0", "q1", "q2"];
    const PROP_AGENTS: usize = 5;

    /// One random step. Indexes are resolved against the run so far, so that many inputs are
    /// valid; out-of-range choices give unknown ids and wrong states give invalid inputs.
    #[derive(Clone, Debug)]
    enum Op {
        /// `queues` is a bit mask over the three queues and (bit 3) an unknown queue.
        Login {
            agent: usize,
            queues: u8,
        },
        Logout {
            agent: usize,
        },
        Available {
            agent: usize,
        },
        NotReady {
            agent: usize,
            reason: usize,
        },
        /// `dup`: reuse a live call's id (bad input) instead of a fresh one.
        Arrive {
            queue: usize,
            dup: Option<usize>,
        },
        /// `call: None` means an agent in the fitting state with its own call (likely valid).
        Answer {
            agent: usize,
            call: Option<usize>,
        },
        Decline {
            agent: usize,
            call: Option<usize>,
        },
        CallerHangUp {
            call: usize,
        },
        AgentHangUp {
            agent: usize,
            call: Option<usize>,
        },
        Disposition {
            agent: usize,
            call: Option<usize>,
        },
        Timeout,
    }

    fn op() -> impl Strategy<Value = Op> {
        let agent = 0..PROP_AGENTS + 1;
        let call = proptest::option::weighted(0.2, 0..64usize);
        let queues = prop_oneof![4 => 1..8u8, 1 => 0..16u8];
        prop_oneof![
            2 => (agent.clone(), queues)
                .prop_map(|(agent, queues)| Op::Login { agent, queues }),
            1 => agent.clone().prop_map(|agent| Op::Logout { agent }),
            4 => agent.clone().prop_map(|agent| Op::Available { agent }),
            1 => (agent.clone(), 0..3usize)
                .prop_map(|(agent, reason)| Op::NotReady { agent, reason }),
            5 => (0..4usize, proptest::option::weighted(0.1, 0..64usize))
                .prop_map(|(queue, dup)| Op::Arrive { queue, dup }),
            4 => (agent.clone(), call.clone())
                .prop_map(|(agent, call)| Op::Answer { agent, call }),
            1 => (agent.clone(), call.clone())
                .prop_map(|(agent, call)| Op::Decline { agent, call }),
            2 => (0..64usize).prop_map(|call| Op::CallerHangUp { call }),
            2 => (agent.clone(), call.clone())
                .prop_map(|(agent, call)| Op::AgentHangUp { agent, call }),
            2 => (agent, call).prop_map(|(agent, call)| Op::Disposition { agent, call }),
            1 => Just(Op::Timeout),
        ]
    }

    /// Mostly short steps, so offers get answered before they ring out; sometimes long ones.
    fn advance_ms() -> impl Strategy<Value = u64> {
        prop_oneof![8 => 0..3_000u64, 1 => 0..40_000u64]
    }

    /// What the outputs said, checked against what the getters say.
    #[derive(Default)]
    struct Model {
        /// Every call id the core accepted, in arrival order, with its arrival time.
        arrived: Vec<(CallId, Instant)>,
        ended: BTreeSet<CallId>,
        /// Agent states as told by `AgentStateChanged`.
        states: BTreeMap<AgentId, AgentState>,
        next_call: usize,
    }

    impl Model {
        fn live(&self) -> Vec<CallId> {
            self.arrived
                .iter()
                .map(|(id, _)| id.clone())
                .filter(|id| !self.ended.contains(id))
                .collect()
        }

        fn pick_call(&self, i: usize) -> CallId {
            match self.arrived.get(i % (self.arrived.len() + 1)) {
                Some((id, _)) => id.clone(),
                None => c("never-arrived"),
            }
        }

        fn absorb(&mut self, outs: &[AcdOutput]) -> Result<(), TestCaseError> {
            for out in outs {
                let known = |call: &CallId| self.arrived.iter().any(|(id, _)| id == call);
                match out {
                    AcdOutput::AgentStateChanged { agent, state } => {
                        let before = self.states.get(agent).unwrap_or(&AgentState::LoggedOut);
                        prop_assert_ne!(before, state, "a change that changes nothing");
                        self.states.insert(agent.clone(), state.clone());
                    }
                    AcdOutput::CallQueued { call, .. }
                    | AcdOutput::OfferCall { call, .. }
                    | AcdOutput::OfferWithdrawn { call, .. }
                    | AcdOutput::CallConnected { call, .. }
                    | AcdOutput::CallTransferred { call, .. }
                    | AcdOutput::ConsultOffered { call, .. }
                    | AcdOutput::ConsultConnected { call, .. }
                    | AcdOutput::ConsultEnded { call, .. }
                    | AcdOutput::CallHandedOver { call, .. }
                    | AcdOutput::CallbackKept { call } => {
                        prop_assert!(known(call), "{call} never arrived");
                        prop_assert!(
                            !self.ended.contains(call),
                            "{call} reappeared after its end"
                        );
                    }
                    AcdOutput::CallEnded { call, .. } => {
                        prop_assert!(known(call), "{call} never arrived");
                        prop_assert!(self.ended.insert(call.clone()), "{call} ended twice");
                    }
                }
            }
            Ok(())
        }
    }

    struct Run {
        acd: Acd,
        model: Model,
        now: Instant,
    }

    impl Run {
        fn step(&mut self, input: AcdInput) -> Result<(), TestCaseError> {
            let before = self.acd.clone();
            let arriving = match &input {
                AcdInput::CallerArrived { call, .. } => Some(call.clone()),
                _ => None,
            };
            match self.acd.handle_input(self.now, input.clone()) {
                Err(_) => {
                    prop_assert!(self.acd == before, "{input:?} failed but changed the state");
                    prop_assert!(self.acd.poll_output().is_none());
                }
                Ok(()) => {
                    if let Some(call) = arriving {
                        self.model.arrived.push((call, self.now));
                    }
                    let outs: Vec<_> = std::iter::from_fn(|| self.acd.poll_output()).collect();
                    self.model.absorb(&outs)?;
                }
            }
            self.check()
        }

        fn check(&self) -> Result<(), TestCaseError> {
            let acd = &self.acd;
            // (d) states agree with the outputs.
            let actual: BTreeMap<_, _> = acd
                .agents()
                .map(|(id, s)| (id.clone(), s.clone()))
                .collect();
            prop_assert_eq!(&actual, &self.model.states);

            // (a) + (b): every arrived call is in exactly one place, or ended and nowhere.
            let mut places: BTreeMap<CallId, Vec<String>> = BTreeMap::new();
            for queue in acd.queues() {
                for call in acd.queued_calls(queue) {
                    places
                        .entry(call.clone())
                        .or_default()
                        .push(format!("queued in {queue}"));
                }
            }
            for (agent, state) in acd.agents() {
                match state {
                    AgentState::Offered { call, .. } => {
                        places
                            .entry(call.clone())
                            .or_default()
                            .push(format!("offered to {agent}"));
                    }
                    AgentState::OnCall { call, .. } => {
                        places
                            .entry(call.clone())
                            .or_default()
                            .push(format!("with {agent}"));
                    }
                    AgentState::AfterCallWork { call, .. } => {
                        prop_assert!(self.model.ended.contains(call), "wrap-up of a live call");
                    }
                    _ => {}
                }
            }
            for (call, arrived) in &self.model.arrived {
                let found = places.remove(call).unwrap_or_default();
                if self.model.ended.contains(call) {
                    prop_assert!(found.is_empty(), "ended {call} is {found:?}");
                    prop_assert!(acd.call_status(call).is_none());
                } else {
                    prop_assert_eq!(found.len(), 1, "{} is {:?}", call, found);
                    let status = acd.call_status(call).expect("live call has a status");
                    prop_assert_eq!(status.arrived, *arrived);
                }
            }
            prop_assert!(places.is_empty(), "calls that never arrived: {places:?}");
            prop_assert_eq!(acd.live_calls().count(), self.model.live().len());

            for queue in acd.queues() {
                // FIFO: the queue is in arrival order.
                let arrivals: Vec<Instant> = acd
                    .queued_calls(queue)
                    .map(|id| acd.call_status(id).expect("queued call").arrived)
                    .collect();
                prop_assert!(arrivals.is_sorted(), "{queue} out of order");
                // (c) nobody idle while their queue has callers.
                if acd.queue_len(queue) > 0 {
                    for (agent, state) in acd.agents() {
                        let serves = acd.agent_queues(agent).any(|q| q == queue);
                        prop_assert!(
                            !(serves && state.kind() == AgentStateKind::Available),
                            "{agent} idles while {queue} has callers"
                        );
                    }
                }
            }

            // Timers: exactly one per ringing or wrapping-up agent, and nothing else.
            let mut want = BTreeSet::new();
            for (agent, state) in acd.agents() {
                match state {
                    AgentState::Offered { call, .. } => {
                        want.insert(Timer::RingNoAnswer {
                            call: call.clone(),
                            agent: agent.clone(),
                        });
                    }
                    AgentState::AfterCallWork { call, deadline, .. } => {
                        let timer = Timer::AfterCallWork {
                            agent: agent.clone(),
                            call: call.clone(),
                        };
                        prop_assert!(acd.timers().any(|(t, at)| *t == timer && at == *deadline));
                        want.insert(timer);
                    }
                    _ => {}
                }
            }
            let have: BTreeSet<Timer> = acd.timers().map(|(t, _)| t.clone()).collect();
            prop_assert_eq!(have, want);
            prop_assert_eq!(acd.poll_timeout(), acd.timers().map(|(_, at)| at).min());
            Ok(())
        }

        fn input_for(&mut self, op: &Op) -> AcdInput {
            let agent_id = |i: usize| a(&format!("agent{i}"));
            // `call: None`: an agent that is in `kind`, with its own call (likely valid input).
            // `call: Some(i)`: agent number `agent` with any call that ever arrived.
            let pick = |run: &Run, agent: usize, call: Option<usize>, kind: AgentStateKind| {
                if let Some(i) = call {
                    return (agent_id(agent), run.model.pick_call(i));
                }
                let fitting: Vec<(&AgentId, &AgentState)> =
                    run.acd.agents().filter(|(_, s)| s.kind() == kind).collect();
                match fitting.get(agent % fitting.len().max(1)) {
                    Some((id, state)) => ((*id).clone(), state.call().expect("busy state").clone()),
                    None => (agent_id(agent), c("no-call")),
                }
            };
            match *op {
                Op::Login { agent, queues } => AcdInput::AgentLoggedIn {
                    agent: agent_id(agent),
                    queues: (0..4)
                        .filter(|bit| queues & (1 << bit) != 0)
                        .map(|bit| q(PROP_QUEUES.get(bit).unwrap_or(&"unknown-queue")))
                        .collect(),
                },
                Op::Logout { agent } => AcdInput::AgentLoggedOut {
                    agent: agent_id(agent),
                },
                Op::Available { agent } => AcdInput::AgentRequestedAvailable {
                    agent: agent_id(agent),
                },
                Op::NotReady { agent, reason } => AcdInput::AgentRequestedNotReady {
                    agent: agent_id(agent),
                    reason: ["break", "lunch", "missed"][reason].into(),
                },
                Op::Arrive { queue, dup } => {
                    let live = self.model.live();
                    let call = match dup {
                        Some(i) if !live.is_empty() => live[i % live.len()].clone(),
                        _ => {
                            self.model.next_call += 1;
                            c(&format!("call{}", self.model.next_call))
                        }
                    };
                    let queue = q(PROP_QUEUES.get(queue).unwrap_or(&"unknown-queue"));
                    AcdInput::CallerArrived { call, queue }
                }
                Op::Answer { agent, call } => {
                    let (agent, call) = pick(self, agent, call, AgentStateKind::Offered);
                    AcdInput::AgentAnswered { agent, call }
                }
                Op::Decline { agent, call } => {
                    let (agent, call) = pick(self, agent, call, AgentStateKind::Offered);
                    AcdInput::AgentDeclined { agent, call }
                }
                Op::CallerHangUp { call } => AcdInput::CallerHungUp {
                    call: self.model.pick_call(call),
                },
                Op::AgentHangUp { agent, call } => {
                    let (agent, call) = pick(self, agent, call, AgentStateKind::OnCall);
                    AcdInput::AgentHungUp { agent, call }
                }
                Op::Disposition { agent, call } => {
                    let (agent, call) = pick(self, agent, call, AgentStateKind::AfterCallWork);
                    AcdInput::DispositionSubmitted { agent, call }
                }
                Op::Timeout => AcdInput::Timeout,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_runs_keep_the_invariants(
            steps in proptest::collection::vec((advance_ms(), any::<bool>(), op()), 1..200)
        ) {
            let t0 = Instant::now();
            let mut run = Run {
                acd: Acd::new(AcdConfig {
                    queues: PROP_QUEUES.iter().map(|s| q(s)).collect(),
                    ring_no_answer: Duration::from_secs(10),
                    max_after_call_work: Duration::from_secs(15),
                    callback_offer_after: CALLBACK_AFTER,
                }),
                model: Model::default(),
                now: t0,
            };
            for (advance_ms, punctual, op) in steps {
                let target = run.now + Duration::from_millis(advance_ms);
                // A punctual driver fires each timer at its deadline; a late one does not.
                while punctual && let Some(at) = run.acd.poll_timeout().filter(|at| *at <= target) {
                    run.now = at;
                    run.step(AcdInput::Timeout)?;
                }
                run.now = target;
                let input = run.input_for(&op);
                run.step(input)?;
            }
        }
    }
}

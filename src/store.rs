//! The store: everything Sapa keeps after a call is over. Users and their password hashes,
//! customers (caller numbers with a name and notes), calls with their timings, every offer of a
//! call to an agent, after-call dispositions, the agent state log, the supervisor monitoring
//! audit and call legs. The switchboard writes here as the ACD reports what happened; the
//! caller history an agent sees when a call rings, and the reports, are read from here.
//!
//! One code path serves SQLite (a file, the default; or `sqlite::memory:`) and PostgreSQL,
//! through sqlx's `Any` driver. Only booleans, integers, floats, text and blobs cross that
//! driver, so times are Unix epoch milliseconds in `i64` (`INTEGER` in SQLite, `BIGINT` in
//! PostgreSQL), ids are text, and enums are stored as their snake_case names. The two
//! migration sets (`migrations/sqlite`, `migrations/postgres`) differ only where the databases
//! must: integer type names and auto-numbered keys.
//!
//! ```ignore
//! let store = Store::open("sqlite:/var/lib/sapa/sapa.db").await?; // migrates on open
//! store.call_arrived(&NewCall { .. }).await?;  // committed when this returns
//! store.call_answered("c-1", "ana", now_ms).await?;
//! store.call_ended("c-1", later_ms, "caller_hung_up").await?; // computes wait and talk
//! let history = store.caller_history("+15550100", 50).await?;
//! ```
//!
//! Every write is committed before its function returns, so a caller may acknowledge to a
//! client as soon as it has the `Ok`. Bad input (an empty id, an unknown call, a score out of
//! range, text with NUL characters) is a [`StoreError`], never a panic, and behaves the same on
//! both databases.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row, SqlStr};

/// Longest id, name, number, code or other short key the store accepts, in bytes.
const MAX_KEY_BYTES: usize = 256;
/// Longest free text (notes, names of customers) the store accepts, in bytes.
const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest password accepted; Argon2 would take longer inputs, this only bounds the work.
const MAX_PASSWORD_BYTES: usize = 1024;
/// Most rows one `caller_history` call returns, whatever limit is asked for.
pub const MAX_HISTORY_LIMIT: i64 = 10_000;

/// The schema migrations as (version, description, SQL), embedded at build time; both lists
/// keep the same versions. (`sqlx::migrate!` would read the directories itself, but needs
/// sqlx's `macros` feature and its proc-macro crates; a test checks that every file in
/// `migrations/` is listed here.)
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "dtmf survey",
        include_str!("../migrations/sqlite/0002_dtmf_survey.sql"),
    ),
    (
        3,
        "transfers callbacks",
        include_str!("../migrations/sqlite/0003_transfers_callbacks.sql"),
    ),
    (
        4,
        "problems",
        include_str!("../migrations/sqlite/0004_problems.sql"),
    ),
    (
        5,
        "user access",
        include_str!("../migrations/sqlite/0005_user_access.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "dtmf survey",
        include_str!("../migrations/postgres/0002_dtmf_survey.sql"),
    ),
    (
        3,
        "transfers callbacks",
        include_str!("../migrations/postgres/0003_transfers_callbacks.sql"),
    ),
    (
        4,
        "problems",
        include_str!("../migrations/postgres/0004_problems.sql"),
    ),
    (
        5,
        "user access",
        include_str!("../migrations/postgres/0005_user_access.sql"),
    ),
];

/// How long an unresolved problem stays open for the same number's next call: a call that
/// arrives within this time after an earlier call whose newest disposition is not `resolved`
/// belongs to that call's problem (7 days, like first-contact resolution).
pub const PROBLEM_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

/// The outcomes an offer (one agent's phone ringing for one call) can end with.
pub const OFFER_OUTCOMES: &[&str] = &[
    "answered",
    "ring_no_answer",
    "declined",
    "caller_hung_up",
    "agent_logged_out",
];

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is neither `sqlite:PATH`, `sqlite::memory:` nor `postgres://...`.
    #[error("bad database URL: {0}")]
    BadUrl(String),
    /// The directory for a new SQLite file could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No call with this id.
    #[error("no call with id {0:?}")]
    UnknownCall(String),
    /// No row of another kind (a monitoring session, a call leg) with this id.
    #[error("no {what} with id {id:?}")]
    NotFound { what: &'static str, id: String },
    /// No user with this name.
    #[error("no user named {0:?}")]
    UnknownUser(String),
    /// The password was right, but the account is disabled (`sapa user disable`).
    #[error("the account {0:?} is disabled")]
    UserDisabled(String),
    /// `add_user` with a name that is taken.
    #[error("a user named {0:?} already exists")]
    DuplicateUser(String),
    /// `call_arrived` with an id that is taken.
    #[error("a call with id {0:?} already exists")]
    DuplicateCall(String),
    /// `monitor_started` with a session id that is taken.
    #[error("a monitoring session with id {0:?} already exists")]
    DuplicateSession(String),
    /// The input breaks a rule (empty id, score out of range, follow-up without a time, ...).
    #[error("{0}")]
    Invalid(String),
    /// Hashing or checking a password failed (not: the password was wrong).
    #[error("password hashing failed: {0}")]
    Password(String),
    /// A stored value the store does not understand (a role or resolution it never writes).
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Bringing the schema up to date failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Declares an enum stored as text: its snake_case names are both the column values and the
/// serde names.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The value for a stored name, if it is one.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }

            fn from_column(text: String) -> Result<Self> {
                Self::parse(&text).ok_or_else(|| {
                    StoreError::Corrupt(format!("{text:?} is not a {}", stringify!($name)))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// What a user may do: take calls, or also watch queues and monitor agents.
    Role { Agent = "agent", Supervisor = "supervisor" }
}

text_enum! {
    /// Who started the call: a customer calling in, or an agent calling out.
    Direction { Inbound = "inbound", Outbound = "outbound" }
}

text_enum! {
    /// How the agent closed the matter in the after-call form.
    Resolution { Resolved = "resolved", Escalated = "escalated", FollowUp = "follow_up" }
}

text_enum! {
    /// Where a callback stands: waiting for its time, being dialed, carried out, or failed
    /// (the customer could not be reached).
    CallbackStatus { Pending = "pending", Dialing = "dialing", Done = "done", Failed = "failed" }
}

text_enum! {
    /// What a monitoring supervisor does: hear both sides, speak to the agent only, or join.
    MonitorMode { Listen = "listen", Whisper = "whisper", Barge = "barge" }
}

text_enum! {
    /// One line of the monitoring audit.
    MonitorEventKind { Started = "started", ModeChanged = "mode_changed", Ended = "ended" }
}

/// Which database is behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A user who can log in to the switchboard. The password hash never leaves the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name, unique; also the agent id in calls, offers and logs.
    pub name: String,
    pub role: Role,
}

/// A user as an administrator sees it: who, and whether the account is in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub user: User,
    /// When the account was disabled (epoch ms); `None`: it can log in.
    pub disabled_at: Option<i64>,
}

/// What the store knows about a caller number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The caller number as the switchboard received it; the key.
    pub number: String,
    /// Name given by the caller or learned earlier; `None` when never known.
    pub name: Option<String>,
    /// Free notes agents keep about this customer.
    pub notes: Option<String>,
}

/// A call as it is when it arrives; the rest of [`CallRecord`] fills in as it goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCall {
    /// Unique call id, chosen by the switchboard.
    pub id: String,
    pub direction: Direction,
    pub queue: String,
    /// The customer's number (the caller inbound, the called party outbound).
    pub caller_number: String,
    pub caller_name: Option<String>,
    /// Epoch milliseconds.
    pub arrived_at: i64,
}

/// One stored call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: String,
    pub direction: Direction,
    pub queue: String,
    pub caller_number: String,
    pub caller_name: Option<String>,
    /// The agent who answered; `None` while not answered, and for calls never answered.
    pub agent: Option<String>,
    pub arrived_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// Why it ended: `caller_hung_up`, `agent_hung_up`, `abandoned`, `agent_disconnected`,
    /// `transferred`, ...
    pub end_reason: Option<String>,
    /// Time in queue: arrival to answer, or arrival to end for a call never answered. Set at
    /// answer (or at end when unanswered).
    pub wait_ms: Option<i64>,
    /// Connected time, answer to end, hold included (subtract `hold_ms` for pure talk). Set at
    /// end; `None` for a call never answered.
    pub talk_ms: Option<i64>,
    /// Total time the caller spent on hold.
    pub hold_ms: i64,
    /// Customer satisfaction score, 1 to 5, if the caller gave one.
    pub csat: Option<i64>,
    /// How many times the caller was put on hold.
    pub hold_count: i64,
    /// Total time the agent's microphone was muted.
    pub mute_ms: i64,
    /// First offer (a phone starts ringing) to answer; `None` if never answered.
    pub first_response_ms: Option<i64>,
    /// The queue-entry menu the caller went through, if any.
    pub menu: Option<String>,
    /// The key that chose the queue in the menu, or `timeout`.
    pub menu_choice: Option<String>,
    /// How the post-call survey ended (`answered`, `invalid`, `no_answer`); `None`: not asked.
    pub survey: Option<String>,
    /// The first call of the customer problem this call belongs to (this call itself when it
    /// started one; see [`PROBLEM_WINDOW_MS`]). `None` for calls stored before problems were.
    #[serde(default)]
    pub problem_call_id: Option<String>,
    /// When that first call arrived, epoch milliseconds.
    #[serde(default)]
    pub problem_started_at: Option<i64>,
}

/// One time a call rang one agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub call_id: String,
    pub agent: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// One of [`OFFER_OUTCOMES`]; `None` while still ringing.
    pub outcome: Option<String>,
}

/// The after-call form, as submitted and as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    pub call_id: String,
    /// The agent who submitted it.
    pub agent: String,
    /// Disposition code from the switchboard's configured list (`billing`, `sales`, ...).
    pub code: String,
    pub resolution: Resolution,
    pub notes: String,
    /// When to call back, epoch milliseconds. Required for [`Resolution::FollowUp`]; dropped
    /// (stored as `None`) for the other resolutions.
    pub follow_up_at: Option<i64>,
    pub submitted_at: i64,
    /// Chosen by the client; a repeated submit with the same id is the same submit.
    pub request_id: String,
}

/// One past call of a number, as shown to the agent it rings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub call_id: String,
    pub direction: Direction,
    /// When the call arrived, epoch milliseconds.
    pub arrived_at: i64,
    pub queue: String,
    pub agent: Option<String>,
    pub end_reason: Option<String>,
    pub wait_ms: Option<i64>,
    pub talk_ms: Option<i64>,
    pub csat: Option<i64>,
    pub hold_ms: i64,
    pub hold_count: i64,
    pub mute_ms: i64,
    pub first_response_ms: Option<i64>,
    pub menu: Option<String>,
    pub menu_choice: Option<String>,
    /// The newest disposition of the call, if any.
    pub disposition: Option<Disposition>,
    /// Who talked to the caller, from when to when, and why the call moved; oldest first.
    #[serde(default)]
    pub legs: Vec<Leg>,
}

/// A call with its newest disposition, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallReport {
    pub call: CallRecord,
    pub disposition: Option<Disposition>,
}

/// One line of the agent state log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStateEntry {
    pub agent: String,
    /// State name as the switchboard labels it (`available`, `not_ready`, `on_call`, ...).
    pub state: String,
    /// Why, for states that have a reason (a not-ready reason such as `lunch`).
    pub reason: Option<String>,
    pub at: i64,
}

/// One line of the monitoring audit, with the session it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorEvent {
    pub session_id: String,
    pub supervisor: String,
    pub agent: String,
    pub call_id: String,
    pub kind: MonitorEventKind,
    /// The mode the session started with or changed to; `None` for `Ended`.
    pub mode: Option<MonitorMode>,
    pub at: i64,
}

/// One party's part in a call (the caller, an answering agent, a transfer target, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    /// Generated by [`Store::leg_started`].
    pub id: String,
    pub call_id: String,
    /// Who: an agent name or a number.
    pub party: String,
    /// In what capacity: `caller`, `agent`, `consult`, ...
    pub role: String,
    /// Why the leg was added: `answered`, `blind_transfer`, ...
    pub why: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// Notes handed over with the call when this leg began (a transfer's notes).
    #[serde(default)]
    pub notes: Option<String>,
}

/// A promised call back to a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    pub id: String,
    /// The call whose wrap-up promised it.
    pub call_id: String,
    /// Whom to call.
    pub number: String,
    pub name: Option<String>,
    /// Where it goes when its agent is not logged in.
    pub queue: String,
    /// Who promised it; offered to first.
    pub agent: Option<String>,
    pub notes: String,
    pub due_at: i64,
    pub status: CallbackStatus,
    pub created_at: i64,
    /// The outbound call that carried it out.
    pub dialed_call_id: Option<String>,
    pub completed_at: Option<i64>,
    /// When the customer answered the outbound call that carried it out (the follow-up
    /// happened then); `None` until they did.
    #[serde(default)]
    pub reached_at: Option<i64>,
}

/// The database handle. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    /// Connections to the database; sqlx hands one to each query and takes it back.
    pool: AnyPool,
    /// Decides how write transactions begin (SQLite takes the write lock up front).
    backend: Backend,
}

/// Where `Store::open` was asked to go.
enum Target {
    SqliteFile(PathBuf),
    SqliteMemory,
    Postgres(String),
}

/// Threads that hash and check passwords (Argon2id), process-wide.
const PASSWORD_THREADS: usize = 2;

/// Password work runs on [`PASSWORD_THREADS`] long-lived threads, not tokio's blocking pool,
/// and a login check reuses its thread's Argon2 memory ([`verify_password_in_place`]). Each
/// Argon2id run needs 19 MiB; allocated afresh per login on the blocking pool's many threads,
/// glibc kept those blocks: 50 supervisors logging in at once left the switchboard at 790 MB
/// RSS instead of 44 MB (`examples/bench_wallboard.rs`). Two threads with one buffer each bound
/// it to 38 MiB and keep a login storm from taking every core; other logins wait their turn.
static PASSWORD_JOBS: LazyLock<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>> =
    LazyLock::new(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..PASSWORD_THREADS {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sapa-password-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock().map(|q| q.recv()) {
                            Ok(Ok(job)) => job,
                            _ => return,
                        };
                        // A job that panics fails its own request (its reply is dropped),
                        // not the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if let Err(e) = spawned {
                // With no thread at all the queue is dropped and every request fails.
                tracing::error!("cannot start a password thread: {e}");
            }
        }
        jobs
    });

/// Largest Argon2 memory a login check reuses (64 MiB); a stored hash that needs more is
/// checked with memory of its own.
const MAX_REUSED_ARGON2_BLOCKS: usize = 64 * 1024;

thread_local! {
    /// Argon2's working memory, kept by each password thread from one login to the next.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `password` matches the PHC string `phc` (what `verify_password` does), computed in
/// this thread's reused memory. False for a hash that does not parse.
fn verify_password_in_place(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let params = Params::try_from(&parsed);
    let algorithm = Algorithm::try_from(parsed.algorithm);
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(params), Ok(algorithm), Ok(version), Some(salt), Some(expected)) =
        (params, algorithm, version, parsed.salt, parsed.hash)
    else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_REUSED_ARGON2_BLOCKS {
        return Argon2::default().verify_password(password, &parsed).is_ok();
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let computed = ARGON2_MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .is_ok()
    });
    // `Output`'s comparison takes the same time wherever the bytes differ.
    computed && Output::new(out).is_ok_and(|got| got == expected)
}

/// Runs `job` on a password thread and waits (asynchronously) for its result.
async fn password_work<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (reply, result) = tokio::sync::oneshot::channel();
    PASSWORD_JOBS
        .send(Box::new(move || {
            let _ = reply.send(job());
        }))
        .map_err(|_| StoreError::Password("no password thread is running".into()))?;
    result
        .await
        .map_err(|_| StoreError::Password("the password check failed".into()))
}

/// Argon2id hash of a random password, checked against when the user is unknown so that an
/// unknown name costs about as long as a wrong password.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    let mut password = [0u8; 32];
    rand::rng().fill(&mut password);
    hash_password(&password).ok()
});

/// The columns of a call (table alias `c`) that [`call_from_row`] reads.
macro_rules! call_select {
    () => {
        "SELECT c.id, c.direction, c.queue, c.caller_number, c.caller_name, c.agent,
                c.arrived_at, c.answered_at, c.ended_at, c.end_reason, c.wait_ms, c.talk_ms,
                c.hold_ms, c.csat, c.hold_count, c.mute_ms, c.first_response_ms, c.menu,
                c.menu_choice, c.survey, c.problem_call_id, c.problem_started_at"
    };
}

/// Selects calls from `$from` (a table or subquery, given the alias `c`), each with its
/// newest disposition in columns prefixed `d_` for [`joined_disposition`].
macro_rules! calls_with_disposition {
    ($from:literal) => {
        concat!(
            call_select!(),
            ", d.request_id AS d_request_id, d.call_id AS d_call_id, d.agent AS d_agent,
               d.code AS d_code, d.resolution AS d_resolution, d.notes AS d_notes,
               d.follow_up_at AS d_follow_up_at, d.submitted_at AS d_submitted_at
             FROM ",
            $from,
            " c LEFT JOIN dispositions d ON d.request_id = (
                 SELECT d2.request_id FROM dispositions d2 WHERE d2.call_id = c.id
                 ORDER BY d2.submitted_at DESC, d2.request_id DESC LIMIT 1)"
        )
    };
}

/// A number's newest calls (`$1`: number, `$2`: limit). The calls are picked first, in the
/// subquery, so that only they are joined with dispositions: a database that has not yet
/// gathered statistics would otherwise join every call of the number before sorting.
/// The columns of a callback, for `callback_from_row`.
macro_rules! callback_select {
    () => {
        "SELECT id, call_id, number, name, queue, agent, notes, due_at, status, created_at,
                dialed_call_id, completed_at,
                (SELECT answered_at FROM calls WHERE calls.id = callbacks.dialed_call_id)
                    AS reached_at
         FROM callbacks"
    };
}

const HISTORY_SQL: &str = concat!(
    calls_with_disposition!(
        "(SELECT * FROM calls WHERE caller_number = $1
          ORDER BY arrived_at DESC, id DESC LIMIT $2)"
    ),
    " ORDER BY c.arrived_at DESC, c.id DESC"
);

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// Accepted: `sqlite:PATH` or `sqlite://PATH` (the file and its directory are created if
    /// missing; WAL journal), `sqlite::memory:` (gone when the store closes), and
    /// `postgres://...` / `postgresql://...`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        match parse_url(url)? {
            Target::SqliteFile(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                let any_url = format!("sqlite://{}?mode=rwc", encode_path(&path)?);
                let pool = AnyPoolOptions::new()
                    .max_connections(4)
                    .connect(&any_url)
                    .await?;
                // WAL lets readers go on while one writer commits; the mode is kept in the
                // file, so setting it once per open is enough.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .fetch_optional(&pool)
                    .await?;
                migrator(SQLITE_MIGRATIONS).run(&pool).await?;
                Ok(Store {
                    pool,
                    backend: Backend::Sqlite,
                })
            }
            Target::SqliteMemory => {
                // sqlx would give every connection its own memory database; ours has one name
                // and one connection, which never idles out and so keeps it alive until
                // `close`.
                let mut tag = [0u8; 8];
                rand::rng().fill(&mut tag);
                let any_url = format!(
                    "sqlite:file:sapa-memory-{}?mode=memory&cache=shared",
                    hex(&tag)
                );
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect(&any_url)
                    .await?;
                migrator(SQLITE_MIGRATIONS).run(&pool).await?;
                Ok(Store {
                    pool,
                    backend: Backend::Sqlite,
                })
            }
            Target::Postgres(url) => {
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&url)
                    .await?;
                migrator(POSTGRES_MIGRATIONS).run(&pool).await?;
                Ok(Store {
                    pool,
                    backend: Backend::Postgres,
                })
            }
        }
    }

    /// `sqlite:` URL of the default database file, `sapa/sapa.db` in the user's data
    /// directory (`$XDG_DATA_HOME`, else `$HOME/.local/share`). `None` when neither is set.
    pub fn default_sqlite_url() -> Option<String> {
        default_sqlite_url_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Waits for running queries and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction for writes. SQLite takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that read first and wrote later could fail with "database is
    /// locked" instead of waiting for another writer.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    async fn call_exists(&self, call_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM calls WHERE id = $1")
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn require_call(&self, call_id: &str) -> Result<()> {
        if self.call_exists(call_id).await? {
            Ok(())
        } else {
            Err(StoreError::UnknownCall(call_id.to_owned()))
        }
    }

    // ----- users -----

    /// Adds a user with an Argon2id hash (PHC string) of `password`.
    pub async fn add_user(&self, name: &str, role: Role, password: &str) -> Result<User> {
        key("user name", name)?;
        if name.trim() != name {
            return Err(StoreError::Invalid(
                "a user name cannot start or end with spaces".into(),
            ));
        }
        let hash = new_password_hash(password).await?;
        let created_at = now_ms();
        let done = sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(hash)
        .bind(created_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::DuplicateUser(name.to_owned()));
        }
        Ok(User {
            name: name.to_owned(),
            role,
        })
    }

    /// The user, if `name` exists and `password` is theirs; `None` otherwise (unknown name
    /// and wrong password alike, taking about the same time).
    pub async fn verify_login(&self, name: &str, password: &str) -> Result<Option<User>> {
        let row = if !findable(name) {
            None
        } else {
            sqlx::query("SELECT name, role, password_hash, disabled_at FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
        };
        let (user, hash, disabled) = match row {
            Some(row) => (
                Some(user_from_row(&row)?),
                Some(row.try_get::<String, _>("password_hash")?),
                row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
            ),
            None => (None, None, false),
        };
        let password = password.as_bytes().to_vec();
        let matches = password_work(move || {
            // The dummy is hashed here on first use: hashing blocks the thread.
            let hash = hash.or_else(|| DUMMY_HASH.clone()).unwrap_or_default();
            password.len() <= MAX_PASSWORD_BYTES && verify_password_in_place(&password, &hash)
        })
        .await?;
        match user {
            // Only who knows the password learns that the account is disabled.
            Some(user) if matches && disabled => Err(StoreError::UserDisabled(user.name)),
            user => Ok(user.filter(|_| matches)),
        }
    }

    /// Gives `name` a new password; the old one stops working at once. Sessions that are
    /// logged in stay so.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let hash = new_password_hash(password).await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(hash)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownUser(name.to_owned()));
        }
        Ok(())
    }

    /// Disables `name`'s account (it can no longer log in) or enables it again. Nothing
    /// the user did is deleted: calls, dispositions and reports keep the name. Disabling an
    /// account that is already disabled keeps the time it was first disabled.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE users SET disabled_at = CASE WHEN $1 = 1 THEN COALESCE(disabled_at, $2) END
             WHERE name = $3",
        )
        .bind(i64::from(disabled))
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownUser(name.to_owned()));
        }
        Ok(())
    }

    /// The user called `name`, if any.
    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        if !findable(name) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT name, role FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// All accounts, by name, with when each was disabled.
    pub async fn list_users(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query("SELECT name, role, disabled_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Account {
                    user: user_from_row(row)?,
                    disabled_at: row.try_get("disabled_at")?,
                })
            })
            .collect()
    }

    // ----- customers -----

    /// Records that `number` called, with the name it gave. `None` (or an empty name) keeps
    /// the name already known. Returns the customer as stored.
    pub async fn upsert_customer(&self, number: &str, name: Option<&str>) -> Result<Customer> {
        key("caller number", number)?;
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        if let Some(name) = name {
            text("customer name", name, MAX_KEY_BYTES)?;
        }
        let row = sqlx::query(
            "INSERT INTO customers (number, name) VALUES ($1, $2)
             ON CONFLICT (number) DO UPDATE SET name = COALESCE(excluded.name, customers.name)
             RETURNING number, name, notes",
        )
        .bind(number)
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        customer_from_row(&row)
    }

    /// What is known about `number`, if it ever called or has notes.
    pub async fn customer(&self, number: &str) -> Result<Option<Customer>> {
        if !findable(number) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT number, name, notes FROM customers WHERE number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| customer_from_row(&row)).transpose()
    }

    /// Replaces the notes about `number` (creating the customer if needed); empty notes are
    /// stored as none.
    pub async fn set_customer_notes(&self, number: &str, notes: &str) -> Result<Customer> {
        key("caller number", number)?;
        text("notes", notes, MAX_TEXT_BYTES)?;
        let notes = Some(notes).filter(|n| !n.trim().is_empty());
        let row = sqlx::query(
            "INSERT INTO customers (number, notes) VALUES ($1, $2)
             ON CONFLICT (number) DO UPDATE SET notes = excluded.notes
             RETURNING number, name, notes",
        )
        .bind(number)
        .bind(notes)
        .fetch_one(&self.pool)
        .await?;
        customer_from_row(&row)
    }

    // ----- calls -----

    /// Stores a new call. A call id already stored is [`StoreError::DuplicateCall`].
    pub async fn call_arrived(&self, call: &NewCall) -> Result<()> {
        key("call id", &call.id)?;
        key("queue", &call.queue)?;
        key("caller number", &call.caller_number)?;
        let caller_name = call
            .caller_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if let Some(name) = caller_name {
            text("caller name", name, MAX_KEY_BYTES)?;
        }
        let (problem_call_id, problem_started_at) = self
            .open_problem(&call.caller_number, &call.id, call.arrived_at)
            .await?
            .unwrap_or_else(|| (call.id.clone(), call.arrived_at));
        let done = sqlx::query(
            "INSERT INTO calls (id, direction, queue, caller_number, caller_name, arrived_at,
                                problem_call_id, problem_started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&call.id)
        .bind(call.direction.as_str())
        .bind(&call.queue)
        .bind(&call.caller_number)
        .bind(caller_name)
        .bind(call.arrived_at)
        .bind(&problem_call_id)
        .bind(problem_started_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::DuplicateCall(call.id.clone()));
        }
        Ok(())
    }

    /// The problem a new call of `number` arriving at `at` continues, as (first call,
    /// its arrival): the problem of the number's previous call if that call arrived within
    /// [`PROBLEM_WINDOW_MS`] and its newest disposition is not `resolved`. `None`: a new
    /// problem.
    async fn open_problem(
        &self,
        number: &str,
        call_id: &str,
        at: i64,
    ) -> Result<Option<(String, i64)>> {
        let row = sqlx::query(
            "SELECT c.id, c.arrived_at, c.problem_call_id, c.problem_started_at,
                    (SELECT d.resolution FROM dispositions d WHERE d.call_id = c.id
                     ORDER BY d.submitted_at DESC, d.request_id DESC LIMIT 1) AS resolution
             FROM calls c
             WHERE c.caller_number = $1 AND c.arrived_at <= $2 AND c.arrived_at >= $3
                   AND c.id <> $4
             ORDER BY c.arrived_at DESC, c.id DESC LIMIT 1",
        )
        .bind(number)
        .bind(at)
        .bind(at.saturating_sub(PROBLEM_WINDOW_MS))
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let resolution: Option<String> = row.try_get("resolution")?;
        if resolution.as_deref() == Some(Resolution::Resolved.as_str()) {
            return Ok(None);
        }
        let first: Option<String> = row.try_get("problem_call_id")?;
        let started: Option<i64> = row.try_get("problem_started_at")?;
        Ok(Some(match (first, started) {
            (Some(first), Some(started)) => (first, started),
            // A call stored before problems were: its problem starts with it.
            _ => (row.try_get("id")?, row.try_get("arrived_at")?),
        }))
    }

    /// Records that `agent` answered the call at `at`, its wait time, and its first response
    /// time (from the call's first offer; `None` if no offer was stored). Repeating it for the
    /// same agent is a no-op; a call already answered by someone else, or already ended, is
    /// [`StoreError::Invalid`].
    pub async fn call_answered(&self, call_id: &str, agent: &str, at: i64) -> Result<()> {
        key("call id", call_id)?;
        key("agent", agent)?;
        let done = sqlx::query(
            "UPDATE calls SET agent = $2, answered_at = $3,
                 wait_ms = CASE WHEN $3 < arrived_at THEN 0 ELSE $3 - arrived_at END,
                 first_response_ms = (SELECT CASE WHEN MIN(o.started_at) > $3 THEN 0
                                                  ELSE $3 - MIN(o.started_at) END
                                      FROM offers o WHERE o.call_id = $1)
             WHERE id = $1 AND answered_at IS NULL AND ended_at IS NULL",
        )
        .bind(call_id)
        .bind(agent)
        .bind(at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match self.call(call_id).await? {
            None => Err(StoreError::UnknownCall(call_id.to_owned())),
            Some(c) if c.answered_at.is_some() && c.agent.as_deref() == Some(agent) => Ok(()),
            Some(c) if c.answered_at.is_some() => Err(StoreError::Invalid(format!(
                "call {call_id:?} was already answered by {:?}",
                c.agent.unwrap_or_default()
            ))),
            Some(_) => Err(StoreError::Invalid(format!(
                "call {call_id:?} has already ended"
            ))),
        }
    }

    /// Records the end of the call and computes its wait and talk time. Ending a call that
    /// has already ended changes nothing (the first end stands).
    pub async fn call_ended(&self, call_id: &str, at: i64, reason: &str) -> Result<()> {
        key("call id", call_id)?;
        key("end reason", reason)?;
        let done = sqlx::query(
            "UPDATE calls SET ended_at = $2, end_reason = $3,
                 wait_ms = CASE
                     WHEN wait_ms IS NOT NULL THEN wait_ms
                     WHEN $2 < arrived_at THEN 0
                     ELSE $2 - arrived_at END,
                 talk_ms = CASE
                     WHEN answered_at IS NULL THEN NULL
                     WHEN $2 < answered_at THEN 0
                     ELSE $2 - answered_at END
             WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(call_id)
        .bind(at)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            self.require_call(call_id).await?;
        }
        Ok(())
    }

    /// Stores the caller's satisfaction score, 1 to 5 (a later score replaces it).
    pub async fn set_csat(&self, call_id: &str, score: i64) -> Result<()> {
        key("call id", call_id)?;
        if !(1..=5).contains(&score) {
            return Err(StoreError::Invalid(format!(
                "a satisfaction score is 1 to 5, not {score}"
            )));
        }
        let done = sqlx::query("UPDATE calls SET csat = $2 WHERE id = $1")
            .bind(call_id)
            .bind(score)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownCall(call_id.to_owned()));
        }
        Ok(())
    }

    /// The caller was put on hold (counts holds; the time comes with [`Self::add_hold_ms`]).
    pub async fn hold_started(&self, call_id: &str) -> Result<()> {
        key("call id", call_id)?;
        let done = sqlx::query("UPDATE calls SET hold_count = hold_count + 1 WHERE id = $1")
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownCall(call_id.to_owned()));
        }
        Ok(())
    }

    /// Adds `ms` (not negative) to the time the agent's microphone was muted.
    pub async fn add_mute_ms(&self, call_id: &str, ms: i64) -> Result<()> {
        key("call id", call_id)?;
        if ms < 0 {
            return Err(StoreError::Invalid(format!(
                "mute time cannot be negative ({ms} ms)"
            )));
        }
        let done = sqlx::query("UPDATE calls SET mute_ms = mute_ms + $2 WHERE id = $1")
            .bind(call_id)
            .bind(ms)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownCall(call_id.to_owned()));
        }
        Ok(())
    }

    /// The caller entered the queue-entry menu `menu` (before any queue was chosen).
    pub async fn call_in_menu(&self, call_id: &str, menu: &str) -> Result<()> {
        key("call id", call_id)?;
        key("menu", menu)?;
        let done = sqlx::query("UPDATE calls SET menu = $2 WHERE id = $1")
            .bind(call_id)
            .bind(menu)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownCall(call_id.to_owned()));
        }
        Ok(())
    }

    /// The menu chose `queue` for the call: by a key, or `timeout`.
    pub async fn call_routed(&self, call_id: &str, queue: &str, choice: &str) -> Result<()> {
        key("call id", call_id)?;
        key("queue", queue)?;
        key("menu choice", choice)?;
        let done = sqlx::query("UPDATE calls SET queue = $2, menu_choice = $3 WHERE id = $1")
            .bind(call_id)
            .bind(queue)
            .bind(choice)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownCall(call_id.to_owned()));
        }
        Ok(())
    }

    /// How the post-call survey ended: `answered` with a score 1-5, or `invalid` /
    /// `no_answer` without one (no CSAT is stored then).
    pub async fn survey_ended(
        &self,
        call_id: &str,
        outcome: &str,
        score: Option<i64>,
    ) -> Result<()> {
        key("call id", call_id)?;
        match (outcome, score) {
            ("answered", Some(1..=5)) | ("invalid" | "no_answer", None) => {}
            _ => {
                return Err(StoreError::Invalid(format!(
                    "a survey ends answered with a score 1-5, or invalid or no_answer without one \
                     (not {outcome:?} with {score:?})"
                )));
            }
        }
        let done =
            sqlx::query("UPDATE calls SET survey = $2, csat = COALESCE($3, csat) WHERE id = $1")
                .bind(call_id)
                .bind(outcome)
                .bind(score)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownCall(call_id.to_owned()));
        }
        Ok(())
    }

    /// Adds `ms` (not negative) to the call's hold time.
    pub async fn add_hold_ms(&self, call_id: &str, ms: i64) -> Result<()> {
        key("call id", call_id)?;
        if ms < 0 {
            return Err(StoreError::Invalid(format!(
                "hold time cannot be negative ({ms} ms)"
            )));
        }
        let done = sqlx::query("UPDATE calls SET hold_ms = hold_ms + $2 WHERE id = $1")
            .bind(call_id)
            .bind(ms)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownCall(call_id.to_owned()));
        }
        Ok(())
    }

    /// The call, if stored.
    pub async fn call(&self, call_id: &str) -> Result<Option<CallRecord>> {
        if !findable(call_id) {
            return Ok(None);
        }
        let row = sqlx::query(concat!(call_select!(), " FROM calls c WHERE c.id = $1"))
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| call_from_row(&row)).transpose()
    }

    // ----- offers -----

    /// Records that the call started ringing `agent`. While an offer of this call to this
    /// agent is open, another is [`StoreError::Invalid`].
    pub async fn offer_started(&self, call_id: &str, agent: &str, at: i64) -> Result<()> {
        key("call id", call_id)?;
        key("agent", agent)?;
        let done = sqlx::query(
            "INSERT INTO offers (call_id, agent, started_at)
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM calls WHERE id = $1)
             ON CONFLICT DO NOTHING",
        )
        .bind(call_id)
        .bind(agent)
        .bind(at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            self.require_call(call_id).await?;
            return Err(StoreError::Invalid(format!(
                "call {call_id:?} is already ringing {agent:?}"
            )));
        }
        Ok(())
    }

    /// Records how the open offer of the call to `agent` ended: one of [`OFFER_OUTCOMES`].
    pub async fn offer_ended(
        &self,
        call_id: &str,
        agent: &str,
        at: i64,
        outcome: &str,
    ) -> Result<()> {
        key("call id", call_id)?;
        key("agent", agent)?;
        if !OFFER_OUTCOMES.contains(&outcome) {
            return Err(StoreError::Invalid(format!(
                "{outcome:?} is not an offer outcome (one of {OFFER_OUTCOMES:?})"
            )));
        }
        let done = sqlx::query(
            "UPDATE offers SET ended_at = $3, outcome = $4
             WHERE call_id = $1 AND agent = $2 AND ended_at IS NULL",
        )
        .bind(call_id)
        .bind(agent)
        .bind(at)
        .bind(outcome)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            self.require_call(call_id).await?;
            return Err(StoreError::Invalid(format!(
                "call {call_id:?} is not ringing {agent:?}"
            )));
        }
        Ok(())
    }

    /// Every offer of the call, oldest first.
    pub async fn offers(&self, call_id: &str) -> Result<Vec<Offer>> {
        if !findable(call_id) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT call_id, agent, started_at, ended_at, outcome FROM offers
             WHERE call_id = $1 ORDER BY started_at, id",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Offer {
                    call_id: row.try_get("call_id")?,
                    agent: row.try_get("agent")?,
                    started_at: row.try_get("started_at")?,
                    ended_at: row.try_get("ended_at")?,
                    outcome: row.try_get("outcome")?,
                })
            })
            .collect()
    }

    // ----- dispositions -----

    /// Stores an after-call form, idempotently: if one with the same `request_id`, or one for
    /// the same call by the same agent, is already stored, nothing is written and the stored
    /// one is returned (the first submit wins). Otherwise returns what was stored.
    ///
    /// [`Resolution::FollowUp`] needs `follow_up_at`; the other resolutions drop it. A
    /// `request_id` already used for another call or agent is [`StoreError::Invalid`].
    pub async fn save_disposition(&self, d: &Disposition) -> Result<Disposition> {
        key("call id", &d.call_id)?;
        key("agent", &d.agent)?;
        key("disposition code", &d.code)?;
        key("request id", &d.request_id)?;
        text("notes", &d.notes, MAX_TEXT_BYTES)?;
        let follow_up_at = match (d.resolution, d.follow_up_at) {
            (Resolution::FollowUp, None) => {
                return Err(StoreError::Invalid(
                    "a follow-up needs a follow-up time".into(),
                ));
            }
            (Resolution::FollowUp, at) => at,
            _ => None,
        };
        let inserted = sqlx::query(
            "INSERT INTO dispositions
                 (request_id, call_id, agent, code, resolution, notes, follow_up_at, submitted_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE EXISTS (SELECT 1 FROM calls WHERE id = $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(&d.request_id)
        .bind(&d.call_id)
        .bind(&d.agent)
        .bind(&d.code)
        .bind(d.resolution.as_str())
        .bind(&d.notes)
        .bind(follow_up_at)
        .bind(d.submitted_at)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Disposition {
                follow_up_at,
                ..d.clone()
            });
        }
        let row = sqlx::query(
            "SELECT request_id, call_id, agent, code, resolution, notes, follow_up_at, submitted_at
             FROM dispositions
             WHERE request_id = $1 OR (call_id = $2 AND agent = $3)
             ORDER BY CASE WHEN request_id = $1 THEN 0 ELSE 1 END
             LIMIT 1",
        )
        .bind(&d.request_id)
        .bind(&d.call_id)
        .bind(&d.agent)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::UnknownCall(d.call_id.clone()));
        };
        let stored = disposition_from_row(&row, "")?;
        if stored.call_id != d.call_id || stored.agent != d.agent {
            return Err(StoreError::Invalid(format!(
                "request id {:?} was already used for another call or agent",
                d.request_id
            )));
        }
        Ok(stored)
    }

    /// The newest disposition of the call, if any.
    pub async fn disposition(&self, call_id: &str) -> Result<Option<Disposition>> {
        if !findable(call_id) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT request_id, call_id, agent, code, resolution, notes, follow_up_at, submitted_at
             FROM dispositions WHERE call_id = $1
             ORDER BY submitted_at DESC, request_id DESC LIMIT 1",
        )
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| disposition_from_row(&row, "")).transpose()
    }

    // ----- history and reports -----

    /// The newest `limit` calls of `number` (at most [`MAX_HISTORY_LIMIT`]), newest first,
    /// each with its newest disposition.
    pub async fn caller_history(&self, number: &str, limit: i64) -> Result<Vec<HistoryEntry>> {
        if limit < 0 {
            return Err(StoreError::Invalid(format!(
                "a history limit cannot be negative ({limit})"
            )));
        }
        if !findable(number) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(HISTORY_SQL)
            .bind(number)
            .bind(limit.min(MAX_HISTORY_LIMIT))
            .fetch_all(&self.pool)
            .await?;
        let mut legs = self.legs_of_number(number).await?;
        rows.iter()
            .map(|row| {
                let call = call_from_row(row)?;
                Ok(HistoryEntry {
                    legs: legs.remove(&call.id).unwrap_or_default(),
                    call_id: call.id,
                    direction: call.direction,
                    arrived_at: call.arrived_at,
                    queue: call.queue,
                    agent: call.agent,
                    end_reason: call.end_reason,
                    wait_ms: call.wait_ms,
                    talk_ms: call.talk_ms,
                    csat: call.csat,
                    hold_ms: call.hold_ms,
                    hold_count: call.hold_count,
                    mute_ms: call.mute_ms,
                    first_response_ms: call.first_response_ms,
                    menu: call.menu,
                    menu_choice: call.menu_choice,
                    disposition: joined_disposition(row)?,
                })
            })
            .collect()
    }

    /// Calls that arrived in `[from_ms, to_ms)`, oldest first, each with its newest
    /// disposition.
    pub async fn calls_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<CallReport>> {
        let rows = sqlx::query(concat!(
            calls_with_disposition!("calls"),
            " WHERE c.arrived_at >= $1 AND c.arrived_at < $2 ORDER BY c.arrived_at, c.id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CallReport {
                    call: call_from_row(row)?,
                    disposition: joined_disposition(row)?,
                })
            })
            .collect()
    }

    // ----- agent state log -----

    /// Appends a line to the agent state log.
    pub async fn log_agent_state(
        &self,
        agent: &str,
        state: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<()> {
        key("agent", agent)?;
        key("agent state", state)?;
        if let Some(reason) = reason {
            text("reason", reason, MAX_KEY_BYTES)?;
        }
        sqlx::query(
            "INSERT INTO agent_state_log (agent, state, reason, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(agent)
        .bind(state)
        .bind(reason)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The agent's state log lines with `from <= at < to`, oldest first.
    pub async fn agent_state_log(
        &self,
        agent: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<AgentStateEntry>> {
        if !findable(agent) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT agent, state, reason, at FROM agent_state_log
             WHERE agent = $1 AND at >= $2 AND at < $3 ORDER BY at, id",
        )
        .bind(agent)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AgentStateEntry {
                    agent: row.try_get("agent")?,
                    state: row.try_get("state")?,
                    reason: row.try_get("reason")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    // ----- monitoring audit -----

    /// Opens a monitoring session of `agent`'s call by `supervisor`, and audits it.
    pub async fn monitor_started(
        &self,
        session_id: &str,
        supervisor: &str,
        agent: &str,
        call_id: &str,
        mode: MonitorMode,
        at: i64,
    ) -> Result<()> {
        key("session id", session_id)?;
        key("supervisor", supervisor)?;
        key("agent", agent)?;
        key("call id", call_id)?;
        let mut tx = self.begin_write().await?;
        let call = sqlx::query("SELECT 1 FROM calls WHERE id = $1")
            .bind(call_id)
            .fetch_optional(&mut *tx)
            .await?;
        if call.is_none() {
            return Err(StoreError::UnknownCall(call_id.to_owned()));
        }
        let done = sqlx::query(
            "INSERT INTO monitor_sessions (id, supervisor, agent, call_id, mode, started_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(session_id)
        .bind(supervisor)
        .bind(agent)
        .bind(call_id)
        .bind(mode.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::DuplicateSession(session_id.to_owned()));
        }
        insert_monitor_event(
            &mut tx,
            session_id,
            MonitorEventKind::Started,
            Some(mode),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audits a change of mode (listen, whisper, barge) of an open session.
    pub async fn monitor_mode_changed(
        &self,
        session_id: &str,
        mode: MonitorMode,
        at: i64,
    ) -> Result<()> {
        key("session id", session_id)?;
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE monitor_sessions SET mode = $2 WHERE id = $1 AND ended_at IS NULL")
                .bind(session_id)
                .bind(mode.as_str())
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(self.closed_or_unknown_session(&mut tx, session_id).await);
        }
        insert_monitor_event(
            &mut tx,
            session_id,
            MonitorEventKind::ModeChanged,
            Some(mode),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes a monitoring session and audits it. Closing a closed session changes nothing.
    pub async fn monitor_ended(&self, session_id: &str, at: i64) -> Result<()> {
        key("session id", session_id)?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE monitor_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(session_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return match self.closed_or_unknown_session(&mut tx, session_id).await {
                StoreError::Invalid(_) => Ok(()),
                e => Err(e),
            };
        }
        insert_monitor_event(&mut tx, session_id, MonitorEventKind::Ended, None, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The error for a session that could not be updated: unknown, or already ended.
    async fn closed_or_unknown_session(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        session_id: &str,
    ) -> StoreError {
        let found = sqlx::query("SELECT 1 FROM monitor_sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&mut **tx)
            .await;
        match found {
            Ok(Some(_)) => {
                StoreError::Invalid(format!("monitoring session {session_id:?} has ended"))
            }
            Ok(None) => StoreError::NotFound {
                what: "monitoring session",
                id: session_id.to_owned(),
            },
            Err(e) => e.into(),
        }
    }

    /// The audit lines of a monitoring session, oldest first.
    pub async fn monitor_events(&self, session_id: &str) -> Result<Vec<MonitorEvent>> {
        if !findable(session_id) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT e.session_id, s.supervisor, s.agent, s.call_id, e.kind, e.mode, e.at
             FROM monitor_events e JOIN monitor_sessions s ON s.id = e.session_id
             WHERE e.session_id = $1 ORDER BY e.at, e.id",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MonitorEvent {
                    session_id: row.try_get("session_id")?,
                    supervisor: row.try_get("supervisor")?,
                    agent: row.try_get("agent")?,
                    call_id: row.try_get("call_id")?,
                    kind: MonitorEventKind::from_column(row.try_get("kind")?)?,
                    mode: row
                        .try_get::<Option<String>, _>("mode")?
                        .map(MonitorMode::from_column)
                        .transpose()?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    // ----- call legs -----

    /// Records that `party` joined the call as `role`, because `why`; returns the new leg's id.
    pub async fn leg_started(
        &self,
        call_id: &str,
        party: &str,
        role: &str,
        at: i64,
        why: &str,
    ) -> Result<String> {
        self.leg_started_with_notes(call_id, party, role, at, why, None)
            .await
    }

    /// [`Self::leg_started`] with the notes handed over with the call (a transfer's notes).
    pub async fn leg_started_with_notes(
        &self,
        call_id: &str,
        party: &str,
        role: &str,
        at: i64,
        why: &str,
        notes: Option<&str>,
    ) -> Result<String> {
        if let Some(notes) = notes {
            text("handover notes", notes, MAX_TEXT_BYTES)?;
        }
        key("call id", call_id)?;
        key("party", party)?;
        key("leg role", role)?;
        key("reason", why)?;
        let mut raw = [0u8; 12];
        rand::rng().fill(&mut raw);
        let leg_id = format!("leg-{}", hex(&raw));
        let done = sqlx::query(
            "INSERT INTO call_legs (id, call_id, party, role, why, started_at, notes)
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM calls WHERE id = $2)",
        )
        .bind(&leg_id)
        .bind(call_id)
        .bind(party)
        .bind(role)
        .bind(why)
        .bind(at)
        .bind(notes.filter(|n| !n.is_empty()))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::UnknownCall(call_id.to_owned()));
        }
        Ok(leg_id)
    }

    /// Records that the leg ended. Ending an ended leg changes nothing.
    pub async fn leg_ended(&self, leg_id: &str, at: i64) -> Result<()> {
        key("leg id", leg_id)?;
        let done =
            sqlx::query("UPDATE call_legs SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
                .bind(leg_id)
                .bind(at)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            let found = sqlx::query("SELECT 1 FROM call_legs WHERE id = $1")
                .bind(leg_id)
                .fetch_optional(&self.pool)
                .await?;
            if found.is_none() {
                return Err(StoreError::NotFound {
                    what: "call leg",
                    id: leg_id.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The legs of the call, oldest first.
    pub async fn legs(&self, call_id: &str) -> Result<Vec<Leg>> {
        if !findable(call_id) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT id, call_id, party, role, why, started_at, ended_at, notes FROM call_legs
             WHERE call_id = $1 ORDER BY started_at, id",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(leg_from_row).collect()
    }

    /// The legs of every call of `number`, by call id, each call's oldest first (for history).
    async fn legs_of_number(
        &self,
        number: &str,
    ) -> Result<std::collections::HashMap<String, Vec<Leg>>> {
        let rows = sqlx::query(
            "SELECT l.id, l.call_id, l.party, l.role, l.why, l.started_at, l.ended_at, l.notes
             FROM call_legs l JOIN calls c ON c.id = l.call_id
             WHERE c.caller_number = $1 ORDER BY l.call_id, l.started_at, l.id",
        )
        .bind(number)
        .fetch_all(&self.pool)
        .await?;
        let mut by_call: std::collections::HashMap<String, Vec<Leg>> =
            std::collections::HashMap::new();
        for row in &rows {
            let leg = leg_from_row(row)?;
            by_call.entry(leg.call_id.clone()).or_default().push(leg);
        }
        Ok(by_call)
    }

    // ----- callbacks -----

    /// Stores a callback promised by `agent`'s wrap-up of `call_id`; one per (call, agent):
    /// the id is derived from both, so a resubmitted disposition does not promise twice (the
    /// time and notes of the first stand). Returns the callback.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_callback(
        &self,
        call_id: &str,
        agent: &str,
        number: &str,
        name: Option<&str>,
        queue: &str,
        notes: &str,
        due_at: i64,
        created_at: i64,
    ) -> Result<Callback> {
        key("call id", call_id)?;
        key("agent", agent)?;
        key("number", number)?;
        key("queue", queue)?;
        text("callback notes", notes, MAX_TEXT_BYTES)?;
        if let Some(name) = name {
            text("name", name, MAX_KEY_BYTES)?;
        }
        let id = format!("cb-{call_id}-{agent}");
        key("callback id", &id)?;
        let done = sqlx::query(
            "INSERT INTO callbacks (id, call_id, number, name, queue, agent, notes, due_at,
                                    status, created_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9
             WHERE EXISTS (SELECT 1 FROM calls WHERE id = $2)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(call_id)
        .bind(number)
        .bind(name)
        .bind(queue)
        .bind(agent)
        .bind(notes)
        .bind(due_at)
        .bind(created_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            self.require_call(call_id).await?;
        }
        self.callback(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("callback {id} vanished")))
    }

    /// One callback, if stored.
    pub async fn callback(&self, id: &str) -> Result<Option<Callback>> {
        if !findable(id) {
            return Ok(None);
        }
        let row = sqlx::query(concat!(callback_select!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(callback_from_row).transpose()
    }

    /// Pending callbacks due at or before `at`, earliest first.
    pub async fn due_callbacks(&self, at: i64) -> Result<Vec<Callback>> {
        let rows = sqlx::query(concat!(
            callback_select!(),
            " WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at, id"
        ))
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(callback_from_row).collect()
    }

    /// When the earliest pending callback is due.
    pub async fn next_callback_due(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(due_at) AS due FROM callbacks WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("due")?)
    }

    /// Callbacks due in `[from_ms, to_ms)`, whatever became of them, earliest first: the
    /// follow-ups a report counts.
    pub async fn callbacks_due_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Callback>> {
        let rows = sqlx::query(concat!(
            callback_select!(),
            " WHERE due_at >= $1 AND due_at < $2 ORDER BY due_at, id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(callback_from_row).collect()
    }

    /// `agent`'s callbacks that are not carried out yet (pending or being dialed), earliest
    /// first.
    pub async fn open_callbacks(&self, agent: &str) -> Result<Vec<Callback>> {
        if !findable(agent) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(concat!(
            callback_select!(),
            " WHERE agent = $1 AND status IN ('pending', 'dialing') ORDER BY due_at, id"
        ))
        .bind(agent)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(callback_from_row).collect()
    }

    /// Moves a callback on: `dialing` (with the outbound call), `done` or `failed` (at `at`),
    /// or back to `pending`.
    pub async fn set_callback_status(
        &self,
        id: &str,
        status: CallbackStatus,
        dialed_call_id: Option<&str>,
        at: i64,
    ) -> Result<()> {
        key("callback id", id)?;
        let completed = matches!(status, CallbackStatus::Done | CallbackStatus::Failed);
        let done = sqlx::query(
            "UPDATE callbacks SET status = $2,
                 dialed_call_id = COALESCE($3, dialed_call_id),
                 completed_at = CASE WHEN $4 THEN $5 ELSE completed_at END
             WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(dialed_call_id)
        .bind(completed)
        .bind(at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "callback",
                id: id.to_owned(),
            });
        }
        Ok(())
    }
}

async fn insert_monitor_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    session_id: &str,
    kind: MonitorEventKind,
    mode: Option<MonitorMode>,
    at: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO monitor_events (session_id, kind, mode, at) VALUES ($1, $2, $3, $4)")
        .bind(session_id)
        .bind(kind.as_str())
        .bind(mode.map(MonitorMode::as_str))
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn leg_from_row(row: &AnyRow) -> Result<Leg> {
    Ok(Leg {
        id: row.try_get("id")?,
        call_id: row.try_get("call_id")?,
        party: row.try_get("party")?,
        role: row.try_get("role")?,
        why: row.try_get("why")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        notes: row.try_get("notes")?,
    })
}

fn callback_from_row(row: &AnyRow) -> Result<Callback> {
    Ok(Callback {
        id: row.try_get("id")?,
        call_id: row.try_get("call_id")?,
        number: row.try_get("number")?,
        name: row.try_get("name")?,
        queue: row.try_get("queue")?,
        agent: row.try_get("agent")?,
        notes: row.try_get("notes")?,
        due_at: row.try_get("due_at")?,
        status: CallbackStatus::from_column(row.try_get("status")?)?,
        created_at: row.try_get("created_at")?,
        dialed_call_id: row.try_get("dialed_call_id")?,
        completed_at: row.try_get("completed_at")?,
        reached_at: row.try_get("reached_at")?,
    })
}

/// Milliseconds since the Unix epoch, now (0 on a clock before 1970).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Checks a new password's length and hashes it (Argon2id, off the async threads).
async fn new_password_hash(password: &str) -> Result<String> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(StoreError::Invalid(format!(
            "a password must be 1 to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let password = password.as_bytes().to_vec();
    password_work(move || hash_password(&password)).await?
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        name: row.try_get("name")?,
        role: Role::from_column(row.try_get("role")?)?,
    })
}

fn customer_from_row(row: &AnyRow) -> Result<Customer> {
    Ok(Customer {
        number: row.try_get("number")?,
        name: row.try_get("name")?,
        notes: row.try_get("notes")?,
    })
}

fn call_from_row(row: &AnyRow) -> Result<CallRecord> {
    Ok(CallRecord {
        id: row.try_get("id")?,
        direction: Direction::from_column(row.try_get("direction")?)?,
        queue: row.try_get("queue")?,
        caller_number: row.try_get("caller_number")?,
        caller_name: row.try_get("caller_name")?,
        agent: row.try_get("agent")?,
        arrived_at: row.try_get("arrived_at")?,
        answered_at: row.try_get("answered_at")?,
        ended_at: row.try_get("ended_at")?,
        end_reason: row.try_get("end_reason")?,
        wait_ms: row.try_get("wait_ms")?,
        talk_ms: row.try_get("talk_ms")?,
        hold_ms: row.try_get("hold_ms")?,
        csat: row.try_get("csat")?,
        hold_count: row.try_get("hold_count")?,
        mute_ms: row.try_get("mute_ms")?,
        first_response_ms: row.try_get("first_response_ms")?,
        menu: row.try_get("menu")?,
        menu_choice: row.try_get("menu_choice")?,
        survey: row.try_get("survey")?,
        problem_call_id: row.try_get("problem_call_id")?,
        problem_started_at: row.try_get("problem_started_at")?,
    })
}

/// Reads a disposition whose column names carry `prefix` (`""` or `"d_"`).
fn disposition_from_row(row: &AnyRow, prefix: &str) -> Result<Disposition> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(Disposition {
        call_id: row.try_get(col("call_id").as_str())?,
        agent: row.try_get(col("agent").as_str())?,
        code: row.try_get(col("code").as_str())?,
        resolution: Resolution::from_column(row.try_get(col("resolution").as_str())?)?,
        notes: row.try_get(col("notes").as_str())?,
        follow_up_at: row.try_get(col("follow_up_at").as_str())?,
        submitted_at: row.try_get(col("submitted_at").as_str())?,
        request_id: row.try_get(col("request_id").as_str())?,
    })
}

/// The disposition of a row from a query with `calls_with_disposition!`, if the call has one.
fn joined_disposition(row: &AnyRow) -> Result<Option<Disposition>> {
    let request_id: Option<String> = row.try_get("d_request_id")?;
    match request_id {
        Some(_) => disposition_from_row(row, "d_").map(Some),
        None => Ok(None),
    }
}

/// Checks a short required value: 1 to `MAX_KEY_BYTES` bytes, no control characters.
fn key(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(StoreError::Invalid(format!("the {what} is empty")));
    }
    text(what, value, MAX_KEY_BYTES)?;
    if value.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "the {what} contains control characters"
        )));
    }
    Ok(())
}

/// Whether a key could be stored at all; reads of keys that could not find nothing without
/// asking the database (PostgreSQL would fail on a NUL where SQLite finds nothing).
fn findable(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_KEY_BYTES && !value.contains('\0')
}

/// Checks free text: at most `max_bytes`, no NUL (PostgreSQL cannot store it, so SQLite
/// refuses it too).
fn text(what: &str, value: &str, max_bytes: usize) -> Result<()> {
    if value.len() > max_bytes {
        return Err(StoreError::Invalid(format!(
            "the {what} is longer than {max_bytes} bytes"
        )));
    }
    if value.contains('\0') {
        return Err(StoreError::Invalid(format!(
            "the {what} contains a NUL character"
        )));
    }
    Ok(())
}

fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        list.iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

/// Argon2id (the crate's default parameters) with a random salt, as a PHC string.
fn hash_password(password: &[u8]) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Password(e.to_string()))?;
    Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::Password(e.to_string()))
}

fn parse_url(url: &str) -> Result<Target> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url.to_owned()));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(StoreError::BadUrl(format!(
            "{:?} is neither sqlite:PATH nor postgres://...",
            without_password(url)
        )));
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (db, params) = match rest.split_once('?') {
        Some((db, params)) => (db, params),
        None => (rest, ""),
    };
    if !params.is_empty() {
        return Err(StoreError::BadUrl(format!(
            "{url:?}: options after '?' are not supported (write '?' in a path as %3F)"
        )));
    }
    if db == ":memory:" {
        return Ok(Target::SqliteMemory);
    }
    let path = percent_decode(db)
        .ok_or_else(|| StoreError::BadUrl(format!("{url:?}: bad %-escape or not UTF-8")))?;
    if path.is_empty() || path.ends_with('/') || path.contains('\0') {
        return Err(StoreError::BadUrl(format!("{url:?} names no file")));
    }
    let path =
        std::path::absolute(&path).map_err(|e| StoreError::BadUrl(format!("{url:?}: {e}")))?;
    Ok(Target::SqliteFile(path))
}

/// `url` with any `user:password@` cut to `user:***@`, for error messages.
fn without_password(url: &str) -> String {
    let host_at = url.find("://").map_or(0, |i| i + 3);
    match url[host_at..].find('@') {
        Some(at) => {
            let userinfo = &url[host_at..host_at + at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..host_at], &url[host_at + at..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

fn default_sqlite_url_from(
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<String> {
    // The XDG spec says a relative $XDG_DATA_HOME is to be ignored.
    let data = xdg_data_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".local").join("share"))
        })?;
    let path = data.join("sapa").join("sapa.db");
    Some(format!("sqlite:{}", encode_path(&path).ok()?))
}

/// Percent-encodes a path for a `sqlite:` URL: everything but unreserved characters and `/`.
fn encode_path(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| StoreError::BadUrl(format!("{} is not UTF-8", path.display())))?;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hexdigits = bytes.get(i + 1..i + 3)?;
            if !hexdigits.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hexdigits = std::str::from_utf8(hexdigits).ok()?;
            out.push(u8::from_str_radix(hexdigits, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    //! Each test body below runs twice: on a fresh SQLite file (`sqlite::` tests) and on a
    //! fresh PostgreSQL database (`postgres::` tests). The PostgreSQL runs need
    //! `SAPA_TEST_POSTGRES_URL` (an admin URL; `scripts/start-test-postgres.sh` starts a
    //! server and prints one); each test creates its own database there and drops it after.

    use super::*;
    use std::future::Future;
    use std::time::Instant;

    use sqlx::AssertSqlSafe;

    /// A fixed "now" for the tests: 2027-01-15, in epoch milliseconds.
    const T0: i64 = 1_800_000_000_000;
    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn a_login_check_in_reused_memory_agrees_with_argon2() {
        let stored = hash_password(b"pw-ana").unwrap();
        let parsed = PasswordHash::new(&stored).unwrap();
        // Other parameters than the defaults (a hash from an older setting) work too, and
        // the memory is reused from one check to the next on the same thread.
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let small = Argon2::default()
            .hash_password_customized(
                b"pw-sam",
                None,
                None,
                Params::new(4096, 1, 1, None).unwrap(),
                &salt,
            )
            .unwrap()
            .to_string();
        for _ in 0..2 {
            assert!(verify_password_in_place(b"pw-ana", &stored));
            assert!(
                Argon2::default()
                    .verify_password(b"pw-ana", &parsed)
                    .is_ok()
            );
            assert!(!verify_password_in_place(b"pw-sam", &stored));
            assert!(verify_password_in_place(b"pw-sam", &small));
            assert!(!verify_password_in_place(b"pw-ana", &small));
        }
        assert!(!verify_password_in_place(b"pw-ana", "not a hash"));
        assert!(!verify_password_in_place(b"pw-ana", ""));
    }

    /// What a test body gets: a fresh store, and the URL it was opened with.
    struct Ctx {
        store: Store,
        url: String,
    }

    async fn on_sqlite<F, Fut>(body: F)
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = ()>,
    {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("nested").join("sapa.db");
        let url = format!("sqlite:{}", encode_path(&path).expect("UTF-8 temp path"));
        let store = Store::open(&url).await.expect("SQLite store opens");
        body(Ctx {
            store: store.clone(),
            url,
        })
        .await;
        store.close().await;
    }

    /// The admin URL from `SAPA_TEST_POSTGRES_URL`; `None` (test skipped) when unset, except
    /// on CI, where PostgreSQL must be tested.
    fn postgres_admin_url() -> Option<String> {
        match std::env::var("SAPA_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => Some(url),
            _ if std::env::var_os("CI").is_some() => panic!(
                "SAPA_TEST_POSTGRES_URL is not set, and on CI the PostgreSQL store tests must \
                 run: start a server with scripts/start-test-postgres.sh and export the URL it \
                 prints"
            ),
            _ => {
                println!("skipped: SAPA_TEST_POSTGRES_URL not set");
                None
            }
        }
    }

    /// `url` with its database name replaced by `db`.
    fn with_database(url: &str, db: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let host_at = base.find("://").map_or(0, |i| i + 3);
        let base = match base[host_at..].find('/') {
            Some(i) => &base[..host_at + i],
            None => base,
        };
        match query {
            Some(query) => format!("{base}/{db}?{query}"),
            None => format!("{base}/{db}"),
        }
    }

    async fn on_postgres<F, Fut>(body: F)
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(admin_url) = postgres_admin_url() else {
            return;
        };
        sqlx::any::install_default_drivers();
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .expect("connects to SAPA_TEST_POSTGRES_URL");
        let mut tag = [0u8; 8];
        rand::rng().fill(&mut tag);
        let db = format!("sapa_test_{}", hex(&tag));
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&admin)
            .await
            .expect("creates a test database");
        let url = with_database(&admin_url, &db);
        let opened = Store::open(&url).await;
        // Run the body as a task so that a failing assertion still lets us drop the database.
        let outcome = match opened {
            Ok(store) => {
                let outcome = tokio::spawn(body(Ctx {
                    store: store.clone(),
                    url,
                }))
                .await;
                store.close().await;
                outcome.map_err(|e| e.into_panic())
            }
            Err(e) => Err(Box::new(format!("PostgreSQL store does not open: {e}")) as _),
        };
        let dropped = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        dropped.expect("drops the test database");
    }

    /// Declares each named body as a test on both databases: `sqlite::NAME`, `postgres::NAME`.
    macro_rules! on_both {
        ($($name:ident),+ $(,)?) => {
            mod sqlite {
                $(
                    #[tokio::test]
                    async fn $name() {
                        super::on_sqlite(super::$name).await;
                    }
                )+
            }
            mod postgres {
                $(
                    #[tokio::test]
                    async fn $name() {
                        super::on_postgres(super::$name).await;
                    }
                )+
            }
        };
    }

    on_both!(
        users_and_logins,
        passwords_change_and_accounts_are_disabled_without_losing_calls,
        customers_keep_names_and_notes,
        call_lifecycle_computes_wait_and_talk,
        menu_survey_hold_mute_and_first_response_are_stored,
        offers_record_each_ring,
        dispositions_are_idempotent,
        concurrent_submits_store_one_disposition,
        caller_history_is_newest_first_with_dispositions,
        caller_history_with_10000_calls,
        agent_state_log_by_range,
        monitoring_is_audited,
        legs_follow_the_call,
        callbacks_are_promised_once_and_carried_out,
        a_problem_runs_from_its_first_call_to_its_resolution,
        calls_between_joins_dispositions,
        bad_input_is_an_error_not_a_panic,
        reopening_keeps_the_data,
    );

    fn new_call(id: &str, number: &str, at: i64) -> NewCall {
        NewCall {
            id: id.into(),
            direction: Direction::Inbound,
            queue: "support".into(),
            caller_number: number.into(),
            caller_name: None,
            arrived_at: at,
        }
    }

    fn resolved(call_id: &str, agent: &str, request_id: &str, at: i64) -> Disposition {
        Disposition {
            call_id: call_id.into(),
            agent: agent.into(),
            code: "billing".into(),
            resolution: Resolution::Resolved,
            notes: "Refund of the double charge".into(),
            follow_up_at: None,
            submitted_at: at,
            request_id: request_id.into(),
        }
    }

    fn is_invalid<T: fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(StoreError::Invalid(_)))
    }

    fn is_unknown_call<T: fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(StoreError::UnknownCall(_)))
    }

    async fn count(store: &Store, sql: &'static str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&store.pool)
            .await
            .expect("count")
    }

    async fn users_and_logins(cx: Ctx) {
        let s = &cx.store;
        let ana = s.add_user("ana", Role::Agent, "pw-ana").await.unwrap();
        assert_eq!(
            ana,
            User {
                name: "ana".into(),
                role: Role::Agent
            }
        );
        s.add_user("sam", Role::Supervisor, "pw-sam").await.unwrap();
        assert!(matches!(
            s.add_user("ana", Role::Supervisor, "other").await,
            Err(StoreError::DuplicateUser(name)) if name == "ana"
        ));
        assert_eq!(s.verify_login("ana", "pw-ana").await.unwrap(), Some(ana));
        assert_eq!(s.verify_login("ana", "pw-sam").await.unwrap(), None);
        assert_eq!(s.verify_login("ana", "").await.unwrap(), None);
        assert_eq!(s.verify_login("nobody", "pw-ana").await.unwrap(), None);
        assert_eq!(s.verify_login("", "").await.unwrap(), None);
        assert_eq!(
            s.user("sam").await.unwrap().map(|u| u.role),
            Some(Role::Supervisor)
        );
        assert_eq!(s.user("nobody").await.unwrap(), None);
        let names: Vec<String> = s
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.user.name)
            .collect();
        assert_eq!(names, ["ana", "sam"]);

        let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE name = $1")
            .bind("ana")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$"),
            "not an Argon2id PHC string: {hash}"
        );
        assert!(!hash.contains("pw-ana"));

        for (name, password) in [("", "x"), (" ana2", "x"), ("a\0b", "x"), ("bob", "")] {
            assert!(
                is_invalid(s.add_user(name, Role::Agent, password).await),
                "{name:?} / {password:?} accepted"
            );
        }
        assert!(is_invalid(
            s.add_user("bob", Role::Agent, &"x".repeat(MAX_PASSWORD_BYTES + 1))
                .await
        ));
        assert_eq!(s.list_users().await.unwrap().len(), 2);
    }

    async fn passwords_change_and_accounts_are_disabled_without_losing_calls(cx: Ctx) {
        let s = &cx.store;
        let ana = s.add_user("ana", Role::Agent, "old-pw").await.unwrap();
        s.call_arrived(&new_call("c1", "+15550100", 1_000))
            .await
            .unwrap();
        s.call_answered("c1", "ana", 2_000).await.unwrap();

        // A forgotten password is replaced; the old one stops working.
        s.set_password("ana", "new-pw").await.unwrap();
        assert_eq!(s.verify_login("ana", "old-pw").await.unwrap(), None);
        assert_eq!(
            s.verify_login("ana", "new-pw").await.unwrap(),
            Some(ana.clone())
        );
        assert!(is_invalid(s.set_password("ana", "").await));
        assert!(matches!(
            s.set_password("nobody", "x").await,
            Err(StoreError::UnknownUser(name)) if name == "nobody"
        ));

        // Disabled: the right password says so, a wrong one says no more than before.
        s.set_user_disabled("ana", true).await.unwrap();
        assert!(matches!(
            s.verify_login("ana", "new-pw").await,
            Err(StoreError::UserDisabled(name)) if name == "ana"
        ));
        assert_eq!(s.verify_login("ana", "old-pw").await.unwrap(), None);
        let first = s.list_users().await.unwrap()[0]
            .disabled_at
            .expect("disabled");
        s.set_user_disabled("ana", true).await.unwrap();
        assert_eq!(
            s.list_users().await.unwrap()[0].disabled_at,
            Some(first),
            "disabling again keeps when it was first disabled"
        );
        // Nothing the user did is gone.
        assert_eq!(
            s.call("c1").await.unwrap().unwrap().agent.as_deref(),
            Some("ana")
        );
        assert!(matches!(
            s.set_user_disabled("nobody", true).await,
            Err(StoreError::UnknownUser(_))
        ));

        s.set_user_disabled("ana", false).await.unwrap();
        assert_eq!(s.list_users().await.unwrap()[0].disabled_at, None);
        assert_eq!(s.verify_login("ana", "new-pw").await.unwrap(), Some(ana));
    }

    async fn customers_keep_names_and_notes(cx: Ctx) {
        let s = &cx.store;
        assert_eq!(s.customer("+15550100").await.unwrap(), None);
        let c = s.upsert_customer("+15550100", Some("Dewi")).await.unwrap();
        assert_eq!(c.name.as_deref(), Some("Dewi"));
        s.upsert_customer("+15550100", None).await.unwrap();
        s.upsert_customer("+15550100", Some("  ")).await.unwrap();
        assert_eq!(
            s.customer("+15550100")
                .await
                .unwrap()
                .unwrap()
                .name
                .as_deref(),
            Some("Dewi"),
            "a call without a name keeps the known name"
        );
        s.upsert_customer("+15550100", Some("Dewi Lestari"))
            .await
            .unwrap();
        s.set_customer_notes("+15550100", "Prefers email")
            .await
            .unwrap();
        s.upsert_customer("+15550100", None).await.unwrap();
        assert_eq!(
            s.customer("+15550100").await.unwrap(),
            Some(Customer {
                number: "+15550100".into(),
                name: Some("Dewi Lestari".into()),
                notes: Some("Prefers email".into()),
            })
        );
        // Notes on a number that never called create the customer.
        let c = s
            .set_customer_notes("+15550199", "Called about order 7")
            .await
            .unwrap();
        assert_eq!(
            (c.name, c.notes.as_deref()),
            (None, Some("Called about order 7"))
        );
        let c = s.set_customer_notes("+15550199", "").await.unwrap();
        assert_eq!(c.notes, None);

        assert!(is_invalid(s.upsert_customer("", None).await));
        assert!(is_invalid(s.upsert_customer("+1", Some("a\0")).await));
        assert!(is_invalid(s.set_customer_notes("+1", "a\0b").await));
        assert!(is_invalid(
            s.set_customer_notes("+1", &"n".repeat(MAX_TEXT_BYTES + 1))
                .await
        ));
    }

    async fn call_lifecycle_computes_wait_and_talk(cx: Ctx) {
        let s = &cx.store;
        let mut call = new_call("c1", "+15550100", T0);
        call.caller_name = Some("Dewi".into());
        s.call_arrived(&call).await.unwrap();
        assert!(matches!(
            s.call_arrived(&call).await,
            Err(StoreError::DuplicateCall(id)) if id == "c1"
        ));
        let c = s.call("c1").await.unwrap().expect("stored");
        assert_eq!(
            (c.agent, c.answered_at, c.wait_ms, c.talk_ms, c.hold_ms),
            (None, None, None, None, 0)
        );

        s.call_answered("c1", "ana", T0 + 12_000).await.unwrap();
        s.call_answered("c1", "ana", T0 + 12_000).await.unwrap(); // a repeat is a no-op
        assert!(is_invalid(s.call_answered("c1", "bayu", T0 + 13_000).await));
        assert_eq!(s.call("c1").await.unwrap().unwrap().wait_ms, Some(12_000));
        s.add_hold_ms("c1", 3_000).await.unwrap();
        s.add_hold_ms("c1", 2_000).await.unwrap();
        s.call_ended("c1", T0 + 72_000, "caller_hung_up")
            .await
            .unwrap();
        s.call_ended("c1", T0 + 99_000, "agent_hung_up")
            .await
            .unwrap(); // the first end stands
        s.set_csat("c1", 4).await.unwrap();
        assert_eq!(
            s.call("c1").await.unwrap(),
            Some(CallRecord {
                id: "c1".into(),
                direction: Direction::Inbound,
                queue: "support".into(),
                caller_number: "+15550100".into(),
                caller_name: Some("Dewi".into()),
                agent: Some("ana".into()),
                arrived_at: T0,
                answered_at: Some(T0 + 12_000),
                ended_at: Some(T0 + 72_000),
                end_reason: Some("caller_hung_up".into()),
                wait_ms: Some(12_000),
                talk_ms: Some(60_000),
                hold_ms: 5_000,
                csat: Some(4),
                hold_count: 0,
                mute_ms: 0,
                first_response_ms: None,
                menu: None,
                menu_choice: None,
                survey: None,
                problem_call_id: Some("c1".into()),
                problem_started_at: Some(T0),
            })
        );

        // Never answered: the whole time was waiting, and there was no talk.
        s.call_arrived(&new_call("c2", "+15550100", T0 + 100_000))
            .await
            .unwrap();
        s.call_ended("c2", T0 + 130_000, "abandoned").await.unwrap();
        let c2 = s.call("c2").await.unwrap().unwrap();
        assert_eq!(
            (c2.agent, c2.answered_at, c2.wait_ms, c2.talk_ms),
            (None, None, Some(30_000), None)
        );
        assert!(is_invalid(s.call_answered("c2", "ana", T0 + 131_000).await));

        // A clock that steps back gives zero, never a negative duration.
        let mut out = new_call("c3", "+15550100", T0 + 200_000);
        out.direction = Direction::Outbound;
        s.call_arrived(&out).await.unwrap();
        s.call_answered("c3", "ana", T0 + 199_000).await.unwrap();
        s.call_ended("c3", T0 + 198_000, "agent_hung_up")
            .await
            .unwrap();
        let c3 = s.call("c3").await.unwrap().unwrap();
        assert_eq!(
            (c3.direction, c3.wait_ms, c3.talk_ms),
            (Direction::Outbound, Some(0), Some(0))
        );

        for bad in [0, 6, -1, i64::MAX, i64::MIN] {
            assert!(is_invalid(s.set_csat("c1", bad).await), "csat {bad}");
        }
        assert!(is_invalid(s.add_hold_ms("c1", -1).await));
        assert!(is_unknown_call(s.set_csat("nope", 3).await));
        assert!(is_unknown_call(s.add_hold_ms("nope", 1).await));
        assert!(is_unknown_call(s.call_answered("nope", "ana", T0).await));
        assert!(is_unknown_call(s.call_ended("nope", T0, "abandoned").await));
        assert_eq!(s.call("nope").await.unwrap(), None);
    }

    async fn menu_survey_hold_mute_and_first_response_are_stored(cx: Ctx) {
        let s = &cx.store;
        s.call_arrived(&new_call("c1", "+15550100", T0))
            .await
            .unwrap();
        s.call_in_menu("c1", "main").await.unwrap();
        s.call_routed("c1", "billing", "1").await.unwrap();
        // Rang bayu first (no answer), then ana, who answered 2.5 s after the first ring.
        s.offer_started("c1", "bayu", T0 + 6_000).await.unwrap();
        s.offer_ended("c1", "bayu", T0 + 7_000, "ring_no_answer")
            .await
            .unwrap();
        s.offer_started("c1", "ana", T0 + 7_000).await.unwrap();
        s.call_answered("c1", "ana", T0 + 8_500).await.unwrap();
        s.hold_started("c1").await.unwrap();
        s.add_hold_ms("c1", 1_200).await.unwrap();
        s.hold_started("c1").await.unwrap();
        s.add_hold_ms("c1", 800).await.unwrap();
        s.add_mute_ms("c1", 3_000).await.unwrap();
        s.add_mute_ms("c1", 500).await.unwrap();
        s.call_ended("c1", T0 + 60_000, "agent_hung_up")
            .await
            .unwrap();
        s.survey_ended("c1", "answered", Some(5)).await.unwrap();
        let c = s.call("c1").await.unwrap().unwrap();
        assert_eq!(
            (
                c.queue.as_str(),
                c.menu.as_deref(),
                c.menu_choice.as_deref(),
                c.first_response_ms,
                c.hold_ms,
                c.hold_count,
                c.mute_ms,
                c.survey.as_deref(),
                c.csat
            ),
            (
                "billing",
                Some("main"),
                Some("1"),
                Some(2_500),
                2_000,
                2,
                3_500,
                Some("answered"),
                Some(5)
            )
        );
        let h = &s.caller_history("+15550100", 1).await.unwrap()[0];
        assert_eq!(
            (
                h.hold_ms,
                h.hold_count,
                h.mute_ms,
                h.first_response_ms,
                h.csat
            ),
            (2_000, 2, 3_500, Some(2_500), Some(5))
        );
        assert_eq!(
            (h.menu.as_deref(), h.menu_choice.as_deref()),
            (Some("main"), Some("1"))
        );

        // A survey without a score stores no CSAT; answered without a score is refused.
        s.call_arrived(&new_call("c2", "+15550100", T0 + 100_000))
            .await
            .unwrap();
        s.survey_ended("c2", "no_answer", None).await.unwrap();
        let c2 = s.call("c2").await.unwrap().unwrap();
        assert_eq!(
            (c2.survey.as_deref(), c2.csat, c2.first_response_ms),
            (Some("no_answer"), None, None)
        );
        assert!(is_invalid(s.survey_ended("c2", "answered", None).await));
        assert!(is_invalid(s.survey_ended("c2", "invalid", Some(3)).await));
        assert!(is_invalid(s.survey_ended("c2", "answered", Some(6)).await));
        assert!(is_invalid(s.survey_ended("c2", "maybe", None).await));
        assert!(is_invalid(s.add_mute_ms("c2", -5).await));
        assert!(is_unknown_call(s.add_mute_ms("nope", 5).await));
        assert!(is_unknown_call(s.hold_started("nope").await));
        assert!(is_unknown_call(
            s.call_routed("nope", "support", "timeout").await
        ));
        assert!(is_unknown_call(s.call_in_menu("nope", "main").await));
        assert!(is_unknown_call(
            s.survey_ended("nope", "no_answer", None).await
        ));
    }

    async fn offers_record_each_ring(cx: Ctx) {
        let s = &cx.store;
        s.call_arrived(&new_call("c1", "+15550100", T0))
            .await
            .unwrap();
        s.offer_started("c1", "ana", T0 + 1_000).await.unwrap();
        s.offer_ended("c1", "ana", T0 + 16_000, "ring_no_answer")
            .await
            .unwrap();
        s.offer_started("c1", "bayu", T0 + 16_500).await.unwrap();
        assert!(is_invalid(s.offer_started("c1", "bayu", T0 + 16_600).await));
        s.offer_ended("c1", "bayu", T0 + 18_000, "declined")
            .await
            .unwrap();
        s.offer_started("c1", "ana", T0 + 20_000).await.unwrap();
        s.offer_ended("c1", "ana", T0 + 23_000, "answered")
            .await
            .unwrap();
        let offer = |agent: &str, started_at, ended_at, outcome: &str| Offer {
            call_id: "c1".into(),
            agent: agent.into(),
            started_at,
            ended_at: Some(ended_at),
            outcome: Some(outcome.into()),
        };
        assert_eq!(
            s.offers("c1").await.unwrap(),
            vec![
                offer("ana", T0 + 1_000, T0 + 16_000, "ring_no_answer"),
                offer("bayu", T0 + 16_500, T0 + 18_000, "declined"),
                offer("ana", T0 + 20_000, T0 + 23_000, "answered"),
            ]
        );
        s.offer_started("c1", "carla", T0 + 30_000).await.unwrap();
        let open = s.offers("c1").await.unwrap().pop().unwrap();
        assert_eq!((open.ended_at, open.outcome), (None, None));

        assert!(is_invalid(
            s.offer_ended("c1", "carla", T0, "exploded").await
        ));
        assert!(is_invalid(
            s.offer_ended("c1", "dian", T0, "declined").await
        ));
        assert!(is_unknown_call(s.offer_started("nope", "ana", T0).await));
        assert!(is_unknown_call(
            s.offer_ended("nope", "ana", T0, "declined").await
        ));
        assert_eq!(s.offers("nope").await.unwrap(), vec![]);
    }

    async fn dispositions_are_idempotent(cx: Ctx) {
        let s = &cx.store;
        s.call_arrived(&new_call("c1", "+15550100", T0))
            .await
            .unwrap();
        s.call_arrived(&new_call("c2", "+15550100", T0 + 1))
            .await
            .unwrap();
        let d = Disposition {
            resolution: Resolution::FollowUp,
            follow_up_at: Some(T0 + 86_400_000),
            ..resolved("c1", "ana", "ana-c1", T0 + 80_000)
        };
        assert_eq!(s.save_disposition(&d).await.unwrap(), d);
        // The same request again, even with other content: the stored one, nothing new.
        let again = Disposition {
            notes: "changed".into(),
            ..d.clone()
        };
        assert_eq!(s.save_disposition(&again).await.unwrap(), d);
        // Another request id for the same call by the same agent: the stored one.
        let retry = Disposition {
            request_id: "ana-c1-retry".into(),
            code: "sales".into(),
            ..d.clone()
        };
        assert_eq!(s.save_disposition(&retry).await.unwrap(), d);
        assert_eq!(count(s, "SELECT COUNT(*) FROM dispositions").await, 1);
        assert_eq!(s.disposition("c1").await.unwrap(), Some(d.clone()));

        let no_time = Disposition {
            resolution: Resolution::FollowUp,
            ..resolved("c2", "ana", "ana-c2", T0)
        };
        assert!(is_invalid(s.save_disposition(&no_time).await));
        let with_time = Disposition {
            follow_up_at: Some(T0 + 5),
            ..resolved("c2", "ana", "ana-c2", T0)
        };
        assert_eq!(
            s.save_disposition(&with_time).await.unwrap().follow_up_at,
            None,
            "only a follow-up keeps its time"
        );
        // A request id already used for another call is refused.
        assert!(is_invalid(
            s.save_disposition(&resolved("c2", "bayu", "ana-c1", T0))
                .await
        ));
        assert!(is_unknown_call(
            s.save_disposition(&resolved("nope", "ana", "ana-nope", T0))
                .await
        ));
        assert!(is_invalid(
            s.save_disposition(&Disposition {
                code: String::new(),
                ..resolved("c2", "bayu", "bayu-c2", T0)
            })
            .await
        ));
        assert_eq!(count(s, "SELECT COUNT(*) FROM dispositions").await, 2);

        // After a transfer the second agent's form is the call's newest.
        let bayu = Disposition {
            resolution: Resolution::Escalated,
            ..resolved("c1", "bayu", "bayu-c1", T0 + 90_000)
        };
        s.save_disposition(&bayu).await.unwrap();
        assert_eq!(s.disposition("c1").await.unwrap(), Some(bayu));
        assert_eq!(s.disposition("nope").await.unwrap(), None);
    }

    async fn concurrent_submits_store_one_disposition(cx: Ctx) {
        let s = &cx.store;
        s.call_arrived(&new_call("c1", "+15550100", T0))
            .await
            .unwrap();
        let d = resolved("c1", "ana", "ana-c1", T0 + 1_000);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = s.clone();
                let mut d = d.clone();
                if i % 2 == 1 {
                    d.request_id = format!("ana-c1-{i}");
                }
                tokio::spawn(async move { store.save_disposition(&d).await })
            })
            .collect();
        let mut stored = Vec::new();
        for task in tasks {
            stored.push(task.await.unwrap().unwrap());
        }
        assert!(stored.windows(2).all(|w| w[0] == w[1]), "{stored:?}");
        assert_eq!(count(s, "SELECT COUNT(*) FROM dispositions").await, 1);
    }

    async fn caller_history_is_newest_first_with_dispositions(cx: Ctx) {
        let s = &cx.store;
        let hour = 3_600_000;
        for (id, number, at) in [
            ("c1", "+15550100", T0),
            ("x1", "+15550999", T0 + hour / 2),
            ("c2", "+15550100", T0 + hour),
            ("c3", "+15550100", T0 + 2 * hour),
        ] {
            s.call_arrived(&new_call(id, number, at)).await.unwrap();
        }
        s.call_answered("c1", "ana", T0 + 5_000).await.unwrap();
        s.call_ended("c1", T0 + 65_000, "caller_hung_up")
            .await
            .unwrap();
        let d = resolved("c1", "ana", "ana-c1", T0 + 70_000);
        s.save_disposition(&d).await.unwrap();
        s.call_ended("c2", T0 + hour + 40_000, "abandoned")
            .await
            .unwrap();
        s.call_answered("c3", "bayu", T0 + 2 * hour + 1_000)
            .await
            .unwrap();
        s.set_csat("c3", 5).await.unwrap();

        let h = s.caller_history("+15550100", 10).await.unwrap();
        let ids: Vec<&str> = h.iter().map(|e| e.call_id.as_str()).collect();
        assert_eq!(ids, ["c3", "c2", "c1"]);
        assert_eq!(
            h[2],
            HistoryEntry {
                call_id: "c1".into(),
                direction: Direction::Inbound,
                arrived_at: T0,
                queue: "support".into(),
                agent: Some("ana".into()),
                end_reason: Some("caller_hung_up".into()),
                wait_ms: Some(5_000),
                talk_ms: Some(60_000),
                csat: None,
                hold_ms: 0,
                hold_count: 0,
                mute_ms: 0,
                first_response_ms: None,
                menu: None,
                menu_choice: None,
                disposition: Some(d),
                legs: vec![],
            }
        );
        assert_eq!(
            (
                h[1].agent.as_deref(),
                h[1].end_reason.as_deref(),
                h[1].talk_ms
            ),
            (None, Some("abandoned"), None)
        );
        assert_eq!((h[0].csat, h[0].end_reason.as_deref()), (Some(5), None));
        assert!(h[0].disposition.is_none());

        let two = s.caller_history("+15550100", 2).await.unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].call_id, "c3");
        assert!(s.caller_history("+15550100", 0).await.unwrap().is_empty());
        assert!(s.caller_history("+15550404", 10).await.unwrap().is_empty());
        assert!(is_invalid(s.caller_history("+15550100", -1).await));
    }

    /// Adds `n` finished calls from `number` (ids `PREFIX-00000`...), one a minute from T0,
    /// every tenth with a disposition, in one transaction.
    async fn bulk_calls(s: &Store, prefix: &str, number: &str, n: usize) {
        const ROWS: usize = 500;
        let mut tx = s.begin_write().await.unwrap();
        let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:05}")).collect();
        for chunk in ids.chunks(ROWS) {
            let mut sql = String::from(
                "INSERT INTO calls (id, direction, queue, caller_number, agent, arrived_at,
                 answered_at, ended_at, end_reason, wait_ms, talk_ms) VALUES ",
            );
            for row in 0..chunk.len() {
                let p = row * 5;
                if row > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${}, 'inbound', 'support', ${}, 'ana', ${}, ${}, ${}, 'caller_hung_up', \
                     5000, 60000)",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                ));
            }
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                let i: i64 = id[prefix.len() + 1..].parse().unwrap();
                let at = T0 + i * 60_000;
                q = q
                    .bind(id.clone())
                    .bind(number.to_owned())
                    .bind(at)
                    .bind(at + 5_000)
                    .bind(at + 65_000);
            }
            q.execute(&mut *tx).await.unwrap();
        }
        for chunk in ids.iter().step_by(10).collect::<Vec<_>>().chunks(ROWS) {
            let mut sql = String::from(
                "INSERT INTO dispositions (request_id, call_id, agent, code, resolution, notes,
                 submitted_at) VALUES ",
            );
            for row in 0..chunk.len() {
                if row > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${}, ${}, 'ana', 'billing', 'resolved', 'bulk', ${})",
                    row * 3 + 1,
                    row * 3 + 2,
                    row * 3 + 3
                ));
            }
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(format!("req-{id}")).bind((*id).clone()).bind(T0);
            }
            q.execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    async fn caller_history_with_10000_calls(cx: Ctx) {
        let s = &cx.store;
        let started = Instant::now();
        bulk_calls(s, "busy", "+15550100", 10_000).await;
        bulk_calls(s, "other", "+15550200", 2_000).await;
        let inserted = started.elapsed();

        let started = Instant::now();
        let h = s.caller_history("+15550100", 50).await.unwrap();
        let first = started.elapsed();
        let started = Instant::now();
        let again = s.caller_history("+15550100", 50).await.unwrap();
        let second = started.elapsed();
        println!(
            "{:?}: newest 50 of 10000 calls of one number in {first:?} (again: {second:?}; \
             inserting 12000 calls took {inserted:?})",
            s.backend()
        );
        assert_eq!(h, again);
        assert_eq!(h.len(), 50);
        assert_eq!(h[0].call_id, "busy-09999");
        assert_eq!(h[49].call_id, "busy-09950");
        assert!(h.windows(2).all(|w| w[0].arrived_at > w[1].arrived_at));
        for e in &h {
            let i: usize = e.call_id["busy-".len()..].parse().unwrap();
            assert_eq!(
                e.disposition.is_some(),
                i.is_multiple_of(10),
                "{}",
                e.call_id
            );
            assert_eq!(e.talk_ms, Some(60_000));
        }

        if s.backend() == Backend::Sqlite {
            // Rows are (id, parent, notused, detail).
            let plan: Vec<String> =
                sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {HISTORY_SQL}")))
                    .bind("+15550100")
                    .bind(50i64)
                    .fetch_all(&s.pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.try_get::<String, _>("detail").unwrap())
                    .collect();
            let plan = plan.join("\n");
            println!("SQLite plan:\n{plan}");
            assert!(plan.contains("calls_by_caller"), "{plan}");
            assert!(
                !plan.contains("TEMP B-TREE"),
                "history needs no sort: {plan}"
            );
        }
    }

    async fn agent_state_log_by_range(cx: Ctx) {
        let s = &cx.store;
        s.log_agent_state("ana", "not_ready", Some("login"), T0)
            .await
            .unwrap();
        s.log_agent_state("ana", "available", None, T0 + 1_000)
            .await
            .unwrap();
        s.log_agent_state("bayu", "available", None, T0 + 2_000)
            .await
            .unwrap();
        s.log_agent_state("ana", "on_call", None, T0 + 5_000)
            .await
            .unwrap();
        s.log_agent_state("ana", "not_ready", Some("lunch"), T0 + 9_000)
            .await
            .unwrap();
        let states = |v: Vec<AgentStateEntry>| {
            v.into_iter()
                .map(|e| (e.state, e.reason, e.at))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            states(
                s.agent_state_log("ana", T0 + 1_000, T0 + 9_000)
                    .await
                    .unwrap()
            ),
            vec![
                ("available".into(), None, T0 + 1_000),
                ("on_call".into(), None, T0 + 5_000),
            ],
            "from is inclusive, to exclusive"
        );
        let all = s.agent_state_log("ana", i64::MIN, i64::MAX).await.unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].agent, "ana");
        assert_eq!(all[3].reason.as_deref(), Some("lunch"));
        assert!(
            s.agent_state_log("ana", T0 + 1, T0)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(is_invalid(s.log_agent_state("ana", "", None, T0).await));
        assert!(is_invalid(
            s.log_agent_state("", "available", None, T0).await
        ));
    }

    async fn monitoring_is_audited(cx: Ctx) {
        let s = &cx.store;
        s.call_arrived(&new_call("c1", "+15550100", T0))
            .await
            .unwrap();
        s.monitor_started("m1", "sam", "ana", "c1", MonitorMode::Listen, T0 + 1_000)
            .await
            .unwrap();
        assert!(matches!(
            s.monitor_started("m1", "sam", "ana", "c1", MonitorMode::Listen, T0)
                .await,
            Err(StoreError::DuplicateSession(_))
        ));
        s.monitor_mode_changed("m1", MonitorMode::Whisper, T0 + 2_000)
            .await
            .unwrap();
        s.monitor_mode_changed("m1", MonitorMode::Barge, T0 + 3_000)
            .await
            .unwrap();
        s.monitor_ended("m1", T0 + 4_000).await.unwrap();
        s.monitor_ended("m1", T0 + 5_000).await.unwrap(); // no-op
        assert!(is_invalid(
            s.monitor_mode_changed("m1", MonitorMode::Listen, T0 + 6_000)
                .await
        ));
        let event = |kind, mode, at| MonitorEvent {
            session_id: "m1".into(),
            supervisor: "sam".into(),
            agent: "ana".into(),
            call_id: "c1".into(),
            kind,
            mode,
            at,
        };
        assert_eq!(
            s.monitor_events("m1").await.unwrap(),
            vec![
                event(
                    MonitorEventKind::Started,
                    Some(MonitorMode::Listen),
                    T0 + 1_000
                ),
                event(
                    MonitorEventKind::ModeChanged,
                    Some(MonitorMode::Whisper),
                    T0 + 2_000
                ),
                event(
                    MonitorEventKind::ModeChanged,
                    Some(MonitorMode::Barge),
                    T0 + 3_000
                ),
                event(MonitorEventKind::Ended, None, T0 + 4_000),
            ]
        );

        assert!(is_unknown_call(
            s.monitor_started("m2", "sam", "ana", "nope", MonitorMode::Listen, T0)
                .await
        ));
        assert!(s.monitor_events("m2").await.unwrap().is_empty());
        assert!(matches!(
            s.monitor_mode_changed("m2", MonitorMode::Barge, T0).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.monitor_ended("m2", T0).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    async fn legs_follow_the_call(cx: Ctx) {
        let s = &cx.store;
        s.call_arrived(&new_call("c1", "+15550100", T0))
            .await
            .unwrap();
        let caller = s
            .leg_started("c1", "+15550100", "caller", T0, "arrived")
            .await
            .unwrap();
        let ana = s
            .leg_started("c1", "ana", "agent", T0 + 5_000, "answered")
            .await
            .unwrap();
        s.leg_ended(&ana, T0 + 60_000).await.unwrap();
        s.leg_ended(&ana, T0 + 61_000).await.unwrap(); // no-op
        let bayu = s
            .leg_started("c1", "bayu", "agent", T0 + 60_000, "blind_transfer")
            .await
            .unwrap();
        assert!(caller != ana && ana != bayu);
        let legs = s.legs("c1").await.unwrap();
        let summary: Vec<(&str, &str, &str, Option<i64>)> = legs
            .iter()
            .map(|l| (l.id.as_str(), l.party.as_str(), l.why.as_str(), l.ended_at))
            .collect();
        assert_eq!(
            summary,
            vec![
                (caller.as_str(), "+15550100", "arrived", None),
                (ana.as_str(), "ana", "answered", Some(T0 + 60_000)),
                (bayu.as_str(), "bayu", "blind_transfer", None),
            ]
        );
        assert_eq!(legs[1].role, "agent");
        assert_eq!(legs[1].started_at, T0 + 5_000);
        assert!(is_unknown_call(
            s.leg_started("nope", "ana", "agent", T0, "answered").await
        ));
        assert!(matches!(
            s.leg_ended("leg-nope", T0).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(s.legs("nope").await.unwrap().is_empty());
    }

    async fn callbacks_are_promised_once_and_carried_out(cx: Ctx) {
        let s = &cx.store;
        s.call_arrived(&new_call("c1", "+15550100", T0))
            .await
            .unwrap();
        let add = |due: i64, notes: &'static str| {
            s.add_callback(
                "c1",
                "ana",
                "+15550100",
                Some("Budi"),
                "support",
                notes,
                due,
                T0,
            )
        };
        let cb = add(T0 + 60_000, "refund").await.unwrap();
        assert_eq!(cb.status, CallbackStatus::Pending);
        // A resubmitted disposition promises nothing new.
        let again = add(T0 + 99_000, "other").await.unwrap();
        assert_eq!(again, cb);
        assert_eq!(s.next_callback_due().await.unwrap(), Some(T0 + 60_000));
        assert!(s.due_callbacks(T0 + 59_999).await.unwrap().is_empty());
        assert_eq!(
            s.due_callbacks(T0 + 60_000).await.unwrap(),
            vec![cb.clone()]
        );
        assert_eq!(s.open_callbacks("ana").await.unwrap(), vec![cb.clone()]);
        assert!(s.open_callbacks("bayu").await.unwrap().is_empty());

        s.set_callback_status(&cb.id, CallbackStatus::Dialing, Some("o1"), T0 + 61_000)
            .await
            .unwrap();
        assert!(s.due_callbacks(T0 + 70_000).await.unwrap().is_empty());
        assert_eq!(s.open_callbacks("ana").await.unwrap().len(), 1);
        s.set_callback_status(&cb.id, CallbackStatus::Done, None, T0 + 90_000)
            .await
            .unwrap();
        let done = s.callback(&cb.id).await.unwrap().unwrap();
        assert_eq!(done.dialed_call_id.as_deref(), Some("o1"));
        assert_eq!(done.completed_at, Some(T0 + 90_000));
        assert!(s.open_callbacks("ana").await.unwrap().is_empty());
        assert_eq!(s.next_callback_due().await.unwrap(), None);

        assert!(is_unknown_call(
            s.add_callback("nope", "ana", "+1", None, "support", "", T0, T0)
                .await
        ));
        assert!(matches!(
            s.set_callback_status("cb-nope", CallbackStatus::Done, None, T0)
                .await,
            Err(StoreError::NotFound { .. })
        ));
        // Legs with handover notes come back in the caller's history.
        let leg = s
            .leg_started_with_notes("c1", "bayu", "agent", T0 + 5, "blind_transfer", Some("vip"))
            .await
            .unwrap();
        let history = s.caller_history("+15550100", 5).await.unwrap();
        assert_eq!(history[0].legs.len(), 1);
        assert_eq!(history[0].legs[0].id, leg);
        assert_eq!(history[0].legs[0].notes.as_deref(), Some("vip"));
    }

    async fn a_problem_runs_from_its_first_call_to_its_resolution(cx: Ctx) {
        let s = &cx.store;
        let problem = |id: &'static str| async move {
            let c = s.call(id).await.unwrap().unwrap();
            (c.problem_call_id.unwrap(), c.problem_started_at.unwrap())
        };
        // p1 abandoned, p2 promised a follow-up, p3 (the callback, outbound) resolved it.
        s.call_arrived(&new_call("p1", "+15550100", T0))
            .await
            .unwrap();
        s.call_ended("p1", T0 + 30_000, "abandoned").await.unwrap();
        s.call_arrived(&new_call("p2", "+15550100", T0 + 60_000))
            .await
            .unwrap();
        let mut follow_up = resolved("p2", "ana", "ana-p2", T0 + 200_000);
        follow_up.resolution = Resolution::FollowUp;
        follow_up.follow_up_at = Some(T0 + DAY_MS);
        s.save_disposition(&follow_up).await.unwrap();
        let cb = s
            .add_callback(
                "p2",
                "ana",
                "+15550100",
                None,
                "support",
                "",
                T0 + DAY_MS,
                T0,
            )
            .await
            .unwrap();
        let mut callback_call = new_call("p3", "+15550100", T0 + DAY_MS + 1_000);
        callback_call.direction = Direction::Outbound;
        s.call_arrived(&callback_call).await.unwrap();
        s.set_callback_status(&cb.id, CallbackStatus::Dialing, Some("p3"), T0 + DAY_MS)
            .await
            .unwrap();
        s.call_answered("p3", "ana", T0 + DAY_MS + 5_000)
            .await
            .unwrap();
        s.save_disposition(&resolved("p3", "ana", "ana-p3", T0 + DAY_MS + 90_000))
            .await
            .unwrap();
        assert_eq!(problem("p1").await, ("p1".to_owned(), T0));
        assert_eq!(problem("p2").await, ("p1".to_owned(), T0));
        assert_eq!(problem("p3").await, ("p1".to_owned(), T0));
        // After the resolution the number's next call is a new problem; another number's
        // calls never join it.
        s.call_arrived(&new_call("p4", "+15550100", T0 + DAY_MS + 100_000))
            .await
            .unwrap();
        assert_eq!(
            problem("p4").await,
            ("p4".to_owned(), T0 + DAY_MS + 100_000)
        );
        s.call_arrived(&new_call("q1", "+15550199", T0 + 61_000))
            .await
            .unwrap();
        assert_eq!(problem("q1").await, ("q1".to_owned(), T0 + 61_000));
        // An unresolved call more than 7 days back does not hold a problem open.
        let late = T0 + DAY_MS + 100_000 + PROBLEM_WINDOW_MS + 1;
        s.call_arrived(&new_call("p5", "+15550100", late))
            .await
            .unwrap();
        assert_eq!(problem("p5").await, ("p5".to_owned(), late));

        // The follow-up is reported with when its customer answered.
        let due = s
            .callbacks_due_between(T0 + DAY_MS, T0 + DAY_MS + 1)
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].reached_at, Some(T0 + DAY_MS + 5_000));
        assert!(
            s.callbacks_due_between(T0, T0 + DAY_MS)
                .await
                .unwrap()
                .is_empty()
        );
    }

    async fn calls_between_joins_dispositions(cx: Ctx) {
        let s = &cx.store;
        for (i, id) in ["c0", "c1", "c2", "c3"].iter().enumerate() {
            s.call_arrived(&new_call(id, "+15550100", T0 + 10 * i as i64))
                .await
                .unwrap();
        }
        let d = resolved("c1", "ana", "ana-c1", T0 + 100);
        s.save_disposition(&d).await.unwrap();
        let rows = s.calls_between(T0 + 10, T0 + 30).await.unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.call.id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2"]);
        assert_eq!(rows[0].disposition, Some(d));
        assert_eq!(rows[1].disposition, None);
        assert_eq!(rows[0].call, s.call("c1").await.unwrap().unwrap());
        assert!(s.calls_between(T0 + 30, T0).await.unwrap().is_empty());
        assert_eq!(s.calls_between(i64::MIN, i64::MAX).await.unwrap().len(), 4);
    }

    async fn bad_input_is_an_error_not_a_panic(cx: Ctx) {
        let s = &cx.store;
        let nul = "a\0b";
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        assert!(is_invalid(s.call_arrived(&new_call(nul, "+1", T0)).await));
        assert!(is_invalid(s.call_arrived(&new_call("c1", nul, T0)).await));
        assert!(is_invalid(s.call_arrived(&new_call(&long, "+1", T0)).await));
        assert!(is_invalid(
            s.call_arrived(&new_call("c1", "+1\n", T0)).await
        ));
        let mut named = new_call("c1", "+1", T0);
        named.caller_name = Some(nul.into());
        assert!(is_invalid(s.call_arrived(&named).await));
        assert!(is_invalid(s.call_answered("c1", nul, T0).await));
        assert!(is_invalid(s.call_ended("c1", T0, "").await));
        assert!(is_invalid(s.offer_started("c1", "", T0).await));
        assert!(is_invalid(
            s.log_agent_state("ana", "available", Some(nul), T0).await
        ));
        assert!(is_invalid(
            s.leg_started("c1", "ana", "agent", T0, nul).await
        ));
        assert!(is_invalid(
            s.monitor_started(nul, "sam", "ana", "c1", MonitorMode::Listen, T0)
                .await
        ));
        assert!(is_invalid(
            s.save_disposition(&Disposition {
                notes: nul.into(),
                ..resolved("c1", "ana", "r1", T0)
            })
            .await
        ));
        // Reads of impossible keys find nothing, on both databases.
        assert_eq!(s.verify_login(nul, "x").await.unwrap(), None);
        assert_eq!(s.verify_login(&long, "x").await.unwrap(), None);
        assert_eq!(s.user(nul).await.unwrap(), None);
        assert_eq!(s.customer(nul).await.unwrap(), None);
        assert_eq!(s.call(nul).await.unwrap(), None);
        assert_eq!(s.disposition(nul).await.unwrap(), None);
        assert!(s.offers(nul).await.unwrap().is_empty());
        assert!(s.caller_history(nul, 5).await.unwrap().is_empty());
        assert!(
            s.agent_state_log(nul, 0, i64::MAX)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.monitor_events(nul).await.unwrap().is_empty());
        assert!(s.legs(nul).await.unwrap().is_empty());
        assert!(is_invalid(s.set_csat(nul, 3).await));
        assert!(is_invalid(s.add_hold_ms(nul, 3).await));
        assert!(is_invalid(s.offer_ended(nul, "ana", T0, "declined").await));
        assert!(is_invalid(
            s.monitor_mode_changed(nul, MonitorMode::Barge, T0).await
        ));
        assert!(is_invalid(s.monitor_ended(nul, T0).await));
        assert!(is_invalid(s.leg_ended(nul, T0).await));
        assert_eq!(count(s, "SELECT COUNT(*) FROM calls").await, 0);
    }

    async fn reopening_keeps_the_data(cx: Ctx) {
        cx.store
            .add_user("ana", Role::Agent, "pw-ana")
            .await
            .unwrap();
        cx.store
            .call_arrived(&new_call("c1", "+15550100", T0))
            .await
            .unwrap();
        cx.store.close().await;
        let again = Store::open(&cx.url).await.expect("opens again");
        assert!(again.verify_login("ana", "pw-ana").await.unwrap().is_some());
        assert!(again.call("c1").await.unwrap().is_some());
        again.close().await;
    }

    // ----- SQLite only: URLs, files, memory -----

    #[tokio::test]
    async fn sqlite_file_and_directory_are_created_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd dir %41 ?#").join("é").join("sapa.db");
        let url = format!("sqlite:{}", encode_path(&path).unwrap());
        let store = Store::open(&url).await.unwrap();
        assert!(path.is_file(), "{} not created", path.display());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        store.close().await;
        // `sqlite://` with an absolute path names the same file.
        let url = format!("sqlite://{}", encode_path(&path).unwrap());
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        store.close().await;
    }

    #[tokio::test]
    async fn sqlite_memory_store_works_and_is_private() {
        let a = Store::open("sqlite::memory:").await.unwrap();
        let b = Store::open("sqlite::memory:").await.unwrap();
        a.call_arrived(&new_call("c1", "+15550100", T0))
            .await
            .unwrap();
        a.call_answered("c1", "ana", T0 + 1).await.unwrap();
        assert!(a.call("c1").await.unwrap().is_some());
        assert!(b.call("c1").await.unwrap().is_none());
        a.close().await;
        b.close().await;
    }

    #[tokio::test]
    async fn bad_urls_are_errors() {
        for url in [
            "",
            "mysql://root@localhost/sapa",
            "sqlite:",
            "sqlite:/tmp/dir/",
            "sqlite:/tmp/sapa.db?mode=ro",
            "sqlite:/tmp/%zz.db",
            "sqlite:/tmp/%ff.db",
            "/tmp/sapa.db",
        ] {
            assert!(
                matches!(Store::open(url).await, Err(StoreError::BadUrl(_))),
                "{url:?} accepted"
            );
        }
    }

    #[test]
    fn every_migration_file_is_embedded_and_both_sets_match() {
        for (dir, list) in [
            ("sqlite", SQLITE_MIGRATIONS),
            ("postgres", POSTGRES_MIGRATIONS),
        ] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.ends_with(".sql"))
                .collect();
            files.sort();
            let listed: Vec<String> = list
                .iter()
                .map(|(version, description, _)| {
                    format!("{version:04}_{}.sql", description.replace(' ', "_"))
                })
                .collect();
            assert_eq!(
                files,
                listed,
                "{} and the embedded list differ",
                dir.display()
            );
            for ((_, _, sql), file) in list.iter().zip(&files) {
                assert_eq!(*sql, std::fs::read_to_string(dir.join(file)).unwrap());
            }
        }
        let versions = |list: &[(i64, &str, &str)]| list.iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE_MIGRATIONS), versions(POSTGRES_MIGRATIONS));
    }

    #[test]
    fn default_url_is_in_the_data_directory() {
        assert_eq!(
            default_sqlite_url_from(Some("/data".into()), Some("/home/ana".into())),
            Some("sqlite:/data/sapa/sapa.db".into())
        );
        assert_eq!(
            default_sqlite_url_from(None, Some("/home/ana".into())),
            Some("sqlite:/home/ana/.local/share/sapa/sapa.db".into())
        );
        assert_eq!(
            default_sqlite_url_from(Some("relative".into()), Some("/home/a b".into())),
            Some("sqlite:/home/a%20b/.local/share/sapa/sapa.db".into())
        );
        assert_eq!(default_sqlite_url_from(None, None), None);
    }

    #[test]
    fn paths_survive_the_url_round_trip() {
        for path in ["/tmp/a b/c%41?d#e/sapa.db", "/tmp/ünï/sapa.db", "/x"] {
            let url = format!("sqlite:{}", encode_path(Path::new(path)).unwrap());
            match parse_url(&url).unwrap() {
                Target::SqliteFile(p) => assert_eq!(p, Path::new(path)),
                _ => panic!("{url} is not a file"),
            }
        }
        assert!(matches!(
            parse_url("sqlite::memory:"),
            Ok(Target::SqliteMemory)
        ));
        assert!(matches!(
            parse_url("postgresql://h/db"),
            Ok(Target::Postgres(_))
        ));
        match parse_url("postgre://ana:secret@db/sapa") {
            Err(e) => assert!(!e.to_string().contains("secret"), "{e}"),
            Ok(_) => panic!("a misspelt scheme was accepted"),
        }
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "t"),
            "postgres://u@h:5/t?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5", "t"), "postgres://u@h:5/t");
    }
}

//! The `sapa` command: parses arguments and calls into the library. Every subcommand's errors
//! end here as one line on stderr and a non-zero exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use sapa::audio::jitter::FrameDuration;
use sapa::config::{DEFAULT_CONFIG, SwitchboardConfig};
use sapa::peer::{agent, caller, impair::Impairment, signal, supervisor};
use sapa::protocol::{ClientMessage, MonitorMode, PROTOCOL_VERSION, Resolution, ServerMessage};
use sapa::store::{Role, Store};

/// Writes a line to standard output (`println!` that does not panic). A reader that went
/// away (`sapa history ... | head`) ends the command quietly, as with other Unix tools.
macro_rules! say {
    ($($arg:tt)*) => {
        write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

fn write_out(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("sapa: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

#[derive(Parser)]
#[command(name = "sapa", version, about = "Sapa call-center workstation: switchboard, agent phone and headless peers", long_about = None)]
// `sapa` with no command runs the demo and takes the demo's options (`sapa --no-callers`).
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The demo's options, for `sapa` with no command.
    #[command(flatten)]
    demo: DemoArgs,
}

impl Cli {
    /// The command to run: `sapa` alone is the demo, with the demo's options.
    fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Demo(self.demo))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the switchboard: signaling, ACD queues, media bridge and store.
    Switchboard(SwitchboardArgs),
    /// Manage users (agents and supervisors).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// A headless customer: dial a queue, play a WAV after answer, record what is heard.
    Caller(CallerArgs),
    /// A headless agent: log in, answer calls, play or echo audio, submit dispositions.
    Agent(AgentArgs),
    /// A headless supervisor: monitor an agent's call (listen, whisper, barge) and record it.
    Supervisor(SupervisorArgs),
    /// Print a caller's history as JSON.
    History(HistoryArgs),
    /// A report per agent or per queue over a date range (supervisors only).
    Report(ReportArgs),
    /// List audio input and output devices (* marks the defaults).
    Devices(DevicesArgs),
    /// The agent's desktop phone (a window). With --switchboard, --user and --password it
    /// logs in at once and starts not ready; otherwise it shows the login screen, filled in
    /// from the saved config ($XDG_CONFIG_HOME/sapa/phone.toml).
    Phone(PhoneArgs),
    /// Try everything in one process: an embedded switchboard, seeded customers, simulated
    /// callers, and the phone logged in as the demo agent. Also what `sapa` alone runs.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct DevicesArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ReportArgs {
    #[arg(long)]
    switchboard: String,
    #[arg(long)]
    user: String,
    /// The password (or set SAPA_PASSWORD).
    #[arg(long, env = "SAPA_PASSWORD", hide_env_values = true)]
    password: String,
    /// First day, YYYY-MM-DD (UTC).
    #[arg(long)]
    from: String,
    /// Last day, YYYY-MM-DD (UTC), included.
    #[arg(long)]
    to: String,
    #[arg(long, value_parser = ["agent", "queue"], default_value = "agent")]
    by: String,
    /// Print CSV instead of JSON.
    #[arg(long)]
    csv: bool,
}

/// Midnight UTC of a YYYY-MM-DD date, in ms since the epoch.
fn day_start_ms(date: &str) -> anyhow::Result<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date.trim(), &format)
        .with_context(|| format!("{date:?} is not a date like 2026-11-23"))?;
    Ok(day.midnight().assume_utc().unix_timestamp() * 1000)
}

#[derive(clap::Args)]
struct PhoneArgs {
    /// Switchboard address (host:port, http://, ws:// or wss:// URL).
    #[arg(long)]
    switchboard: Option<String>,
    /// User to log in as.
    #[arg(long)]
    user: Option<String>,
    /// The password (or set SAPA_PASSWORD). Never saved.
    #[arg(long, env = "SAPA_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Run without audio devices: silence is sent and nothing is played.
    #[arg(long)]
    no_audio: bool,
    /// Settings file (default: $XDG_CONFIG_HOME/sapa/phone.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// No simulated callers (the switchboard and the phone only).
    #[arg(long)]
    no_callers: bool,
    /// Seconds between simulated callers, on average.
    #[arg(long, default_value_t = 8.0)]
    caller_every_secs: f64,
    /// Run without audio devices.
    #[arg(long)]
    no_audio: bool,
}

#[derive(clap::Args)]
struct SupervisorArgs {
    #[arg(long)]
    switchboard: String,
    #[arg(long)]
    user: String,
    /// The password (or set SAPA_PASSWORD).
    #[arg(long, env = "SAPA_PASSWORD", hide_env_values = true)]
    password: String,
    /// The agent whose call to monitor (waits until the agent is on a call).
    #[arg(long, required_unless_present = "accept_escalation")]
    monitor_agent: Option<String>,
    /// Instead of monitoring: stay not ready, answer the first escalation (or consult) rung
    /// to this supervisor, talk (--play) and record until the call ends; keeps the call when
    /// the agent leaves. Prints the agent-style JSON line of that call.
    #[arg(long, conflicts_with = "monitor_agent")]
    accept_escalation: bool,
    /// listen: hear both sides, unheard; whisper: only the agent hears you; barge: both do.
    #[arg(long, value_parser = ["listen", "whisper", "barge"], default_value = "listen")]
    mode: String,
    /// What the supervisor says (heard by the agent in whisper, by both in barge).
    #[arg(long)]
    play: Option<PathBuf>,
    /// What the supervisor hears (caller and agent mixed), 48 kHz mono 16-bit.
    #[arg(long)]
    record: Option<PathBuf>,
    /// How long to monitor.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// How long to wait for the agent to be on a call.
    #[arg(long, default_value_t = 60.0)]
    wait_secs: f64,
}

#[derive(clap::Args)]
struct SwitchboardArgs {
    /// HTTP + WebSocket signaling address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// The one UDP address all media uses (str0m, ICE-lite). An unspecified IP (0.0.0.0)
    /// is announced to peers as 127.0.0.1; give the machine's address for remote phones.
    #[arg(long, default_value = "127.0.0.1:7071")]
    media_listen: SocketAddr,
    /// Database: sqlite:PATH or postgres://USER@HOST/DB. Default: a SQLite file in the user's
    /// data directory.
    #[arg(long)]
    db: Option<String>,
    /// Configuration file (TOML). Default: the built-in one (see --print-default-config).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the built-in configuration and exit.
    #[arg(long)]
    print_default_config: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user with an Argon2id-hashed password.
    Add {
        #[arg(long)]
        db: Option<String>,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["agent", "supervisor"])]
        role: String,
        /// The password (or set SAPA_PASSWORD).
        #[arg(long, env = "SAPA_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// List users, with the accounts that are disabled.
    List {
        #[arg(long)]
        db: Option<String>,
    },
    /// Give a user a new password (a forgotten one). Who is logged in stays logged in.
    SetPassword {
        #[arg(long)]
        db: Option<String>,
        #[arg(long)]
        name: String,
        /// The new password (or set SAPA_PASSWORD).
        #[arg(long, env = "SAPA_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Stop a user from logging in (someone who left). Their calls, dispositions and
    /// reports keep their name. Takes effect at their next login.
    Disable {
        #[arg(long)]
        db: Option<String>,
        #[arg(long)]
        name: String,
    },
    /// Let a disabled user log in again.
    Enable {
        #[arg(long)]
        db: Option<String>,
        #[arg(long)]
        name: String,
    },
}

#[derive(clap::Args)]
struct CallerArgs {
    /// Switchboard address (host:port or ws://host:port/v1/ws).
    #[arg(long)]
    switchboard: String,
    /// The caller's number (caller id).
    #[arg(long, required_unless_present = "listen_as")]
    from: Option<String>,
    /// Be a reachable customer instead of dialing: register NUMBER, wait (up to
    /// --max-wait-secs) until the switchboard rings it (an agent's outbound call or
    /// callback), answer, then play and record as a caller does.
    #[arg(long, value_name = "NUMBER", conflicts_with_all = ["from", "queue", "callback_after"])]
    listen_as: Option<String>,
    /// After waiting this many seconds in queue, ask to be called back instead (the call
    /// keeps its place; the switchboard rings this number, e.g. a --listen-as endpoint, when
    /// its turn comes) and hang up.
    #[arg(long, value_name = "SECS")]
    callback_after: Option<f64>,
    /// Ask for the callback as a customer on a telephone does: press * (the switchboard
    /// announces it to callers who have waited long enough) instead of sending a message.
    #[arg(long, requires = "callback_after")]
    callback_by_key: bool,
    /// Record what the caller hears while waiting (ringback, prompts) into this WAV.
    #[arg(long, value_name = "PATH")]
    record_waiting: Option<PathBuf>,
    /// Discontinuous transmission: send no voice packets while silent (Opus DTX).
    #[arg(long)]
    dtx: bool,
    /// Milliseconds of voice per packet sent: 20, or 10 for a lower delay (twice the
    /// packets).
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = parse_frame_ms)]
    frame_ms: u32,
    /// The caller's name, if the network gives one.
    #[arg(long)]
    name: Option<String>,
    /// Queue to dial; default: the switchboard's first queue.
    #[arg(long)]
    queue: Option<String>,
    /// What the caller says after the answer (any WAV; resampled to 48 kHz mono).
    #[arg(long)]
    play: PathBuf,
    /// What the caller hears, 48 kHz mono 16-bit, sample-aligned with --play.
    #[arg(long)]
    record: PathBuf,
    /// Hang up after this many seconds in the call (default: the length of --play).
    #[arg(long)]
    talk_secs: Option<f64>,
    /// Abandon after waiting this many seconds in queue.
    #[arg(long, default_value_t = 120.0)]
    max_wait_secs: f64,
    /// The number dialed; a queue-entry menu configured for it answers (see --dial-digits).
    #[arg(long)]
    to: Option<String>,
    /// Keys to press when a queue-entry menu answers, e.g. 2 (sent once media is up).
    #[arg(long, alias = "dtmf")]
    dial_digits: Option<String>,
    /// The key (1-5) to press when the switchboard asks to rate the call after the agent
    /// hangs up.
    #[arg(long)]
    survey: Option<char>,
    /// Send keys as in-band DTMF tones in the voice instead of RFC 4733 telephone events.
    #[arg(long)]
    inband_dtmf: bool,
    /// TEST USE ONLY: impair the send path, e.g. loss=10,jitter=30,seed=1.
    #[arg(long)]
    impair: Option<String>,
}

#[derive(clap::Args)]
struct AgentArgs {
    #[arg(long)]
    switchboard: String,
    /// Milliseconds of voice per packet sent: 20, or 10 for a lower delay (twice the
    /// packets).
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = parse_frame_ms)]
    frame_ms: u32,
    /// Discontinuous transmission: send no voice packets while the agent is silent (Opus
    /// DTX).
    #[arg(long)]
    dtx: bool,
    #[arg(long)]
    user: String,
    /// The password (or set SAPA_PASSWORD).
    #[arg(long, env = "SAPA_PASSWORD", hide_env_values = true)]
    password: String,
    /// What the agent says in each call.
    #[arg(long, conflicts_with_all = ["echo", "devices"])]
    play: Option<PathBuf>,
    /// Send back what is heard (for latency measurement).
    #[arg(long, conflicts_with = "devices")]
    echo: bool,
    /// Talk on real audio devices: the input device is sent to the caller, the caller is
    /// played on the output device (see `sapa devices`).
    #[arg(long)]
    devices: bool,
    /// Input device name with --devices (default: the system default).
    #[arg(long, requires = "devices")]
    input: Option<String>,
    /// Output device name with --devices (default: the system default).
    #[arg(long, requires = "devices")]
    output: Option<String>,
    /// With --devices: suppress background noise on the microphone (RNNoise).
    #[arg(long, requires = "devices")]
    noise_suppression: bool,
    /// With --devices: automatic gain control on the microphone.
    #[arg(long, requires = "devices")]
    agc: bool,
    /// Record what the agent hears; later calls get -2, -3, ... before the extension.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Exit after this many calls.
    #[arg(long, default_value_t = 1)]
    calls: u32,
    /// Disposition code submitted after each call (default: the first configured code).
    #[arg(long)]
    disposition: Option<String>,
    /// Notes submitted with the disposition.
    #[arg(long, default_value = "")]
    notes: String,
    /// Resolution submitted with the disposition.
    #[arg(long, default_value = "resolved", value_parser = ["resolved", "escalated", "follow-up"])]
    resolution: String,
    /// Hang up after this many seconds in a call (a queue with a survey then asks the caller
    /// to rate the call).
    #[arg(long)]
    talk_secs: Option<f64>,
    /// Keys to press one second into each call; they reach the caller as telephone events.
    #[arg(long)]
    send_digits: Option<String>,
    /// Let offered calls ring out (ring-no-answer testing); each missed offer counts as a call.
    #[arg(long)]
    no_answer: bool,
    /// Blind-transfer each answered call to queue Q after --after-secs (the notes travel).
    #[arg(long, value_name = "Q", group = "call_control")]
    transfer_to_queue: Option<String>,
    /// Blind-transfer each answered call to the available agent NAME after --after-secs.
    #[arg(long, value_name = "NAME", group = "call_control")]
    transfer_to_agent: Option<String>,
    /// Warm transfer: after --after-secs consult NAME (the caller hears hold music), then
    /// --complete or --cancel --consult-secs after NAME answered.
    #[arg(long, value_name = "NAME", group = "call_control")]
    consult: Option<String>,
    /// With --consult: hand the call to the colleague.
    #[arg(long, requires = "consult", conflicts_with = "cancel")]
    complete: bool,
    /// With --consult: go back to the caller.
    #[arg(long, requires = "consult")]
    cancel: bool,
    /// With --consult: seconds of talk with the colleague before --complete/--cancel.
    #[arg(long, default_value_t = 3.0)]
    consult_secs: f64,
    /// Escalate: after --after-secs conference SUPERVISOR in (all three hear each other),
    /// then leave the call to the supervisor --leave-after-secs after it joined.
    #[arg(long, value_name = "SUPERVISOR", group = "call_control")]
    escalate: Option<String>,
    /// With --escalate: seconds of conference before the agent leaves.
    #[arg(long, default_value_t = 3.0)]
    leave_after_secs: f64,
    /// Seconds into each answered call when the transfer, consult or escalation starts.
    #[arg(long, default_value_t = 5.0)]
    after_secs: f64,
    /// With --resolution follow-up: the callback is due this many seconds after the call
    /// (default: a day).
    #[arg(long)]
    follow_up_in_secs: Option<f64>,
    /// TEST USE ONLY: impair the send path, e.g. loss=10,jitter=30,seed=1.
    #[arg(long)]
    impair: Option<String>,
}

#[derive(clap::Args)]
struct HistoryArgs {
    #[arg(long)]
    switchboard: String,
    #[arg(long)]
    user: String,
    #[arg(long, env = "SAPA_PASSWORD", hide_env_values = true)]
    password: String,
    #[arg(long)]
    number: String,
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// What is logged unless `SAPA_LOG` says otherwise. WebRTC's DTLS layer warns on every
/// call that it was given no server name, which it never needs here (peers are checked by
/// the certificate fingerprint from the signalling, not by name) and which its callers
/// cannot pass; that warning is left out.
const DEFAULT_LOG: &str = "warn,sapa=info,rtc_dtls::config=error";

fn main() -> ExitCode {
    // Before any thread exists: the local UTC offset can only be read then (see phone::clock).
    sapa::phone::clock::init_local_offset();
    let command = Cli::parse().into_command();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SAPA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        .init();
    // A headless peer is one call's media clock and its WebRTC stack: on one thread its tasks
    // wake each other without waking another thread (a third less CPU in a call, measured in
    // BENCHMARKS.md). The switchboard and the demo spread over the cores.
    let one_thread = matches!(
        command,
        Command::Agent(_) | Command::Caller(_) | Command::Supervisor(_)
    );
    let runtime = if one_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sapa: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The window must run on the main thread, so the phone and the demo run outside
    // `block_on`; the demo's switchboard and callers run on the runtime's workers.
    let windowed = match command {
        Command::Demo(args) => run_demo(&runtime, args),
        Command::Phone(args) => sapa::phone::run_phone(sapa::phone::PhoneOptions {
            switchboard: args.switchboard,
            user: args.user,
            password: args.password,
            no_audio: args.no_audio,
            config: args.config,
        })
        .map_err(anyhow::Error::from),
        command => {
            return match runtime.block_on(run(command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sapa: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match windowed {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sapa: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn db_url(db: Option<String>) -> anyhow::Result<String> {
    match db {
        Some(url) => Ok(url),
        None => Store::default_sqlite_url().context("no data directory for the default database"),
    }
}

fn parse_frame_ms(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(ms) if FrameDuration::from_ms(ms).is_some() => Ok(ms),
        _ => Err(format!("{s:?} is not a frame length here: use 10 or 20")),
    }
}

/// A frame length `parse_frame_ms` accepted.
fn frame_duration(ms: u32) -> FrameDuration {
    FrameDuration::from_ms(ms).unwrap_or_default()
}

fn impairment(spec: Option<String>) -> anyhow::Result<Option<Impairment>> {
    spec.map(|s| Impairment::parse(&s).map_err(|e| anyhow::anyhow!("--impair: {e}")))
        .transpose()
}

/// `sapa user disable` / `enable`.
async fn set_user_disabled(db: Option<String>, name: &str, disabled: bool) -> anyhow::Result<()> {
    let store = Store::open(&db_url(db)?).await?;
    let done = store.set_user_disabled(name, disabled).await;
    store.close().await;
    done?;
    if disabled {
        say!("{name} can no longer log in (their calls and dispositions are kept)");
    } else {
        say!("{name} can log in again");
    }
    Ok(())
}

fn run_demo(runtime: &tokio::runtime::Runtime, args: DemoArgs) -> anyhow::Result<()> {
    sapa::phone::demo::run(runtime, demo_options(&args))?;
    Ok(())
}

fn demo_options(args: &DemoArgs) -> sapa::phone::demo::DemoOptions {
    let every = (!args.no_callers && args.caller_every_secs > 0.0)
        .then(|| std::time::Duration::from_secs_f64(args.caller_every_secs));
    sapa::phone::demo::DemoOptions {
        caller_every: every,
        no_audio: args.no_audio,
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Phone(_) | Command::Demo(_) => bail!("the phone runs on the main thread"),
        Command::Switchboard(args) => {
            if args.print_default_config {
                write_out(format_args!("{DEFAULT_CONFIG}"));
                return Ok(());
            }
            let config = match &args.config {
                Some(path) => SwitchboardConfig::load(path)?,
                None => SwitchboardConfig::default(),
            };
            let running = sapa::switchboard::start(sapa::switchboard::Options {
                listen: args.listen,
                media_listen: args.media_listen,
                db_url: db_url(args.db)?,
                config,
            })
            .await?;
            eprintln!(
                "sapa switchboard: signaling ws://{}/v1/ws, media udp {}",
                running.http_addr, running.media_addr
            );
            shutdown_signal().await;
            eprintln!("sapa switchboard: shutting down");
            running.shutdown().await;
            Ok(())
        }
        Command::User { command } => match command {
            UserCommand::Add {
                db,
                name,
                role,
                password,
            } => {
                let store = Store::open(&db_url(db)?).await?;
                let role = if role == "supervisor" {
                    Role::Supervisor
                } else {
                    Role::Agent
                };
                let user = store.add_user(&name, role, &password).await?;
                say!("added {} ({:?})", user.name, user.role);
                store.close().await;
                Ok(())
            }
            UserCommand::List { db } => {
                let store = Store::open(&db_url(db)?).await?;
                for account in store.list_users().await? {
                    let user = account.user;
                    match account.disabled_at {
                        None => say!("{}\t{:?}", user.name, user.role),
                        Some(at) => say!(
                            "{}\t{:?}\tdisabled since {}",
                            user.name,
                            user.role,
                            sapa::phone::clock::local_text(at)
                        ),
                    }
                }
                store.close().await;
                Ok(())
            }
            UserCommand::SetPassword { db, name, password } => {
                let store = Store::open(&db_url(db)?).await?;
                let done = store.set_password(&name, &password).await;
                store.close().await;
                done?;
                say!("new password set for {name}");
                Ok(())
            }
            UserCommand::Disable { db, name } => set_user_disabled(db, &name, true).await,
            UserCommand::Enable { db, name } => set_user_disabled(db, &name, false).await,
        },
        Command::Caller(args) => {
            let options = caller::CallerOptions {
                switchboard: args.switchboard,
                from: args.from.clone().unwrap_or_default(),
                name: args.name,
                queue: args.queue,
                play: args.play,
                record: args.record,
                talk_secs: args.talk_secs,
                max_wait_secs: args.max_wait_secs,
                impair: impairment(args.impair)?,
                frame: frame_duration(args.frame_ms),
                to: args.to,
                dial_digits: args.dial_digits,
                survey: args.survey,
                inband_dtmf: args.inband_dtmf,
            };
            let report = match args.listen_as {
                Some(number) => caller::listen(options, number).await?,
                None => {
                    let extras = caller::CallerExtras {
                        callback_after_secs: args.callback_after,
                        callback_by_key: args.callback_by_key,
                        record_waiting: args.record_waiting,
                        dtx: args.dtx,
                    };
                    caller::run_with(options, extras).await?
                }
            };
            say!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Agent(args) => {
            let voice = match (args.play, args.echo, args.devices) {
                (Some(path), _, _) => agent::AgentVoice::Wav(path),
                (None, true, _) => agent::AgentVoice::Echo,
                (None, false, true) => agent::AgentVoice::Devices(agent::HeadsetChoice {
                    input: args.input,
                    output: args.output,
                    noise_suppression: args.noise_suppression,
                    agc: args.agc,
                }),
                (None, false, false) => agent::AgentVoice::Silence,
            };
            let resolution = match args.resolution.as_str() {
                "escalated" => Resolution::Escalated,
                "follow-up" => Resolution::FollowUp,
                _ => Resolution::Resolved,
            };
            let action = if let Some(queue) = args.transfer_to_queue {
                Some(agent::CallControlAction::TransferToQueue(queue))
            } else if let Some(name) = args.transfer_to_agent {
                Some(agent::CallControlAction::TransferToAgent(name))
            } else if let Some(name) = args.consult {
                if !args.complete && !args.cancel {
                    bail!("--consult needs --complete or --cancel");
                }
                Some(agent::CallControlAction::Consult {
                    agent: name,
                    complete: args.complete,
                    consult_secs: args.consult_secs,
                })
            } else {
                args.escalate
                    .map(|supervisor| agent::CallControlAction::Escalate {
                        supervisor,
                        leave_after_secs: args.leave_after_secs,
                    })
            };
            let control = agent::CallControl {
                plan: action.map(|action| agent::CallControlPlan {
                    after_secs: args.after_secs,
                    action,
                }),
                stay_not_ready: false,
                follow_up_in_secs: args.follow_up_in_secs,
            };
            agent::run_with(
                agent::AgentOptions {
                    switchboard: args.switchboard,
                    user: args.user,
                    password: args.password,
                    voice,
                    record: args.record,
                    calls: args.calls,
                    disposition: args.disposition,
                    notes: args.notes,
                    resolution,
                    talk_secs: args.talk_secs,
                    no_answer: args.no_answer,
                    hold: None,
                    mute: None,
                    send_digits: args.send_digits,
                    impair: impairment(args.impair)?,
                    frame: frame_duration(args.frame_ms),
                    dtx: args.dtx,
                },
                control,
                |report| {
                    if let Ok(line) = serde_json::to_string(report) {
                        say!("{line}");
                    }
                },
            )
            .await?;
            Ok(())
        }
        Command::Devices(args) => {
            let list = tokio::task::spawn_blocking(sapa::audio::device::list_devices).await??;
            // Written with `writeln!` so `sapa devices | head` ends quietly on a closed pipe.
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if args.json {
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let _ = writeln!(out, "audio host: {}", list.host);
            for (title, devices) in [("inputs", &list.inputs), ("outputs", &list.outputs)] {
                let _ = writeln!(out, "{title}:");
                if devices.is_empty() {
                    let _ = writeln!(out, "  (none)");
                }
                for d in devices {
                    let mark = if d.is_default { "*" } else { " " };
                    let _ = writeln!(out, "  {mark} {}\t{}", d.name, d.description);
                }
            }
            Ok(())
        }
        Command::Supervisor(args) if args.accept_escalation => {
            let voice = match args.play {
                Some(path) => agent::AgentVoice::Wav(path),
                None => agent::AgentVoice::Silence,
            };
            agent::run_with(
                agent::AgentOptions {
                    switchboard: args.switchboard,
                    user: args.user,
                    password: args.password,
                    voice,
                    record: args.record,
                    calls: 1,
                    disposition: None,
                    notes: String::new(),
                    resolution: Resolution::Resolved,
                    talk_secs: None,
                    no_answer: false,
                    hold: None,
                    impair: None,
                    frame: Default::default(),
                    dtx: false,
                    mute: None,
                    send_digits: None,
                },
                agent::CallControl {
                    stay_not_ready: true,
                    ..Default::default()
                },
                |report| {
                    if let Ok(line) = serde_json::to_string(report) {
                        say!("{line}");
                    }
                },
            )
            .await?;
            Ok(())
        }
        Command::Supervisor(args) => {
            let mode = match args.mode.as_str() {
                "whisper" => MonitorMode::Whisper,
                "barge" => MonitorMode::Barge,
                _ => MonitorMode::Listen,
            };
            let voice = match &args.play {
                Some(path) => Some(sapa::wav::read_mono_48k(path)?),
                None => None,
            };
            let report = supervisor::run(supervisor::SupervisorOptions {
                switchboard: args.switchboard,
                user: args.user,
                password: args.password,
                agent: args.monitor_agent.unwrap_or_default(),
                phases: vec![supervisor::MonitorPhase {
                    mode,
                    secs: args.secs,
                    voice,
                }],
                record: args.record,
                wait_secs: args.wait_secs,
            })
            .await?;
            say!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Report(args) => {
            let from_ms = day_start_ms(&args.from)?;
            let to_ms = day_start_ms(&args.to)? + 86_400_000;
            if to_ms <= from_ms {
                bail!("--to is before --from");
            }
            let signal = log_in(&args.switchboard, args.user, args.password).await?;
            let timeout = sapa::peer::REQUEST_TIMEOUT;
            let by = if args.by == "queue" {
                sapa::metrics::ReportBy::Queue
            } else {
                sapa::metrics::ReportBy::Agent
            };
            let answer = signal
                .request(
                    ClientMessage::Report {
                        req: None,
                        from_ms,
                        to_ms,
                        by,
                    },
                    timeout,
                )
                .await?;
            let ServerMessage::Report { rows, csv, .. } = answer else {
                bail!("unexpected answer from the switchboard: {answer:?}");
            };
            if args.csv {
                write_out(format_args!("{csv}"));
            } else {
                say!("{}", serde_json::to_string_pretty(&rows)?);
            }
            Ok(())
        }
        Command::History(args) => {
            let signal = log_in(&args.switchboard, args.user, args.password).await?;
            let timeout = sapa::peer::REQUEST_TIMEOUT;
            let answer = signal
                .request(
                    ClientMessage::History {
                        req: None,
                        number: args.number,
                        limit: Some(args.limit),
                    },
                    timeout,
                )
                .await?;
            let ServerMessage::History {
                number,
                customer,
                entries,
                ..
            } = answer
            else {
                bail!("unexpected answer from the switchboard: {answer:?}");
            };
            let out =
                serde_json::json!({ "number": number, "customer": customer, "calls": entries });
            say!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}

/// Connects to the switchboard and logs in, for the one-request commands (history, report).
async fn log_in(
    switchboard: &str,
    user: String,
    password: String,
) -> anyhow::Result<signal::Signal> {
    let url = signal::ws_url(switchboard);
    let (signal, _events) = signal::Signal::connect(&url).await?;
    signal
        .request(
            ClientMessage::Login {
                req: None,
                protocol: PROTOCOL_VERSION,
                user,
                password,
                // A lookup leaves the user's phone logged in.
                lookup: true,
            },
            sapa::peer::REQUEST_TIMEOUT,
        )
        .await?;
    Ok(signal)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::{Cli, Command, demo_options};

    /// The demo's options as the command line `words` gives them, with or without `demo`.
    fn demo_from(words: &[&str]) -> sapa::phone::demo::DemoOptions {
        match Cli::try_parse_from(words)
            .expect("the words parse")
            .into_command()
        {
            Command::Demo(args) => demo_options(&args),
            _ => panic!("{words:?} is not the demo"),
        }
    }

    #[test]
    fn sapa_alone_runs_the_demo_with_its_callers() {
        // What `cargo run --release` runs: callers arrive every 8 s, as with `sapa demo`.
        let bare = demo_from(&["sapa"]);
        assert_eq!(bare.caller_every, Some(Duration::from_secs(8)));
        assert!(!bare.no_audio);
        assert_eq!(demo_from(&["sapa", "demo"]).caller_every, bare.caller_every);
        // The demo's options work without the word `demo` too.
        assert_eq!(demo_from(&["sapa", "--no-callers"]).caller_every, None);
        assert_eq!(
            demo_from(&["sapa", "--caller-every-secs", "3"]).caller_every,
            Some(Duration::from_secs(3))
        );
        assert!(demo_from(&["sapa", "demo", "--no-audio"]).no_audio);
    }

    #[test]
    fn the_demo_s_options_do_not_mix_with_another_command() {
        assert!(Cli::try_parse_from(["sapa", "--no-callers", "devices"]).is_err());
        assert!(Cli::try_parse_from(["sapa", "devices", "--json"]).is_ok());
    }
}

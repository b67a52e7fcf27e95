//! `sapa phone`: the agent's desktop. A window ([`window`]) draws the `sapa-ui` views; the
//! [`engine`] does everything else on its own thread (signaling, the shift-long peer
//! connection, the 20 ms voice loop, ring, drafts, settings, reconnects).
//!
//! Rooms: [`engine`] (async driver), [`state`] (the window's model, pure), [`supervisor`]
//! (the wallboard and reports turned into view models, pure), [`app`] (the app in the
//! window), [`window`] (winit, egui drawn on the CPU),
//! [`audio`] (pluggable audio endpoint), [`config`] and [`draft`] (saved state on disk),
//! [`clock`] (local time text), [`demo`] (`sapa demo`: switchboard, seeded customers,
//! simulated callers and the phone in one process).

pub mod app;
pub mod audio;
pub mod clock;
pub mod config;
pub mod demo;
pub mod devices;
pub mod draft;
pub mod engine;
pub mod notify;
pub mod state;
pub mod supervisor;
pub mod window;

use std::path::PathBuf;

use config::PhoneConfig;
use engine::{AudioSetup, Credentials, EngineOptions};

/// What `sapa phone` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct PhoneOptions {
    pub switchboard: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub no_audio: bool,
    /// Config file; default `$XDG_CONFIG_HOME/sapa/phone.toml`.
    pub config: Option<PathBuf>,
}

/// Errors of `sapa phone` before or after the window.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    /// The window's error may not be `Send`; its text is kept.
    #[error("the window failed: {0}")]
    Window(String),
    #[error("no home directory for the phone's drafts; set XDG_DATA_HOME")]
    NoDataDir,
}

/// Runs `sapa phone` until the window is closed.
pub fn run_phone(options: PhoneOptions) -> Result<(), PhoneError> {
    let config_path = options.config.clone().or_else(PhoneConfig::default_path);
    let mut config = match &config_path {
        Some(path) => PhoneConfig::load(path).unwrap_or_else(|e| {
            eprintln!("sapa phone: {e}; using defaults");
            PhoneConfig::default()
        }),
        None => PhoneConfig::default(),
    };
    if let Some(url) = &options.switchboard {
        config.switchboard = url.clone();
    }
    if let Some(user) = &options.user {
        config.user = user.clone();
    }
    let auto_login = match (&options.switchboard, &options.user, &options.password) {
        (Some(url), Some(user), Some(password)) => Some(Credentials {
            url: url.clone(),
            user: user.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    let drafts_root = draft::DraftStore::default_root().ok_or(PhoneError::NoDataDir)?;
    app::run_window(EngineOptions {
        config,
        config_path,
        remember_login: true,
        drafts_root,
        auto_login,
        go_available: false,
        audio: if options.no_audio {
            AudioSetup::None
        } else {
            AudioSetup::Devices
        },
        export_dir: None,
        notify_bus: notify::NotifyBus::Session,
    })
    .map_err(|e| PhoneError::Window(e.to_string()))
}

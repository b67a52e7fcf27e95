//! The phone's saved settings, apart from its runtime state: which switchboard and user to
//! offer on the login screen, the chosen microphone, speaker and ringer, voice processing, and
//! the keyboard shortcuts. TOML in `$XDG_CONFIG_HOME/sapa/phone.toml` (`~/.config/sapa/` when
//! unset). Never the password.
//!
//! Writes are atomic (temp file + rename), so a crash mid-write leaves the old file.

use std::path::{Path, PathBuf};

use sapa_ui::Shortcuts;
use serde::{Deserialize, Serialize};

/// Everything the phone remembers between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhoneConfig {
    /// The switchboard last logged in to, prefilled on the login screen.
    pub switchboard: String,
    /// The user last logged in as, prefilled on the login screen.
    pub user: String,
    /// Chosen devices by name; `None` is the system default. A remembered device that is not
    /// plugged in stays remembered (and shown as missing) instead of being forgotten.
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    /// Where the ring plays; often the desk speakers, so a call is heard without the headset.
    pub ringer: Option<String>,
    pub noise_suppression: bool,
    pub auto_gain: bool,
    /// Discontinuous transmission (Opus DTX): no voice packets while the agent is silent.
    /// Off by default: a steady stream keeps the far end's jitter buffer settled.
    pub dtx: bool,
    /// Milliseconds of voice per packet the phone sends: 20, or 10 for a lower delay (twice
    /// the packets). Other values are read as 20.
    pub frame_ms: u32,
    /// A desktop popup on an incoming call (on unless turned off in Settings).
    pub desktop_notifications: bool,
    pub shortcuts: Shortcuts,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            switchboard: String::new(),
            user: String::new(),
            microphone: None,
            speaker: None,
            ringer: None,
            noise_suppression: false,
            auto_gain: false,
            dtx: false,
            frame_ms: 20,
            desktop_notifications: true,
            shortcuts: Shortcuts::default(),
        }
    }
}

/// Why the config could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PhoneConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid phone config: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl PhoneConfig {
    /// `$XDG_CONFIG_HOME/sapa/phone.toml`, or `~/.config/sapa/phone.toml`.
    pub fn default_path() -> Option<PathBuf> {
        directories::BaseDirs::new().map(|dirs| dirs.config_dir().join("sapa").join("phone.toml"))
    }

    /// Reads the file; a missing file is the default config.
    pub fn load(path: &Path) -> Result<PhoneConfig, PhoneConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PhoneConfig::default());
            }
            Err(source) => {
                return Err(PhoneConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|source| PhoneConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the file atomically, creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), PhoneConfigError> {
        let write_error = |source| PhoneConfigError::Write {
            path: path.to_owned(),
            source,
        };
        let text = toml::to_string_pretty(self)
            .map_err(|e| write_error(std::io::Error::other(e.to_string())))?;
        write_atomically(path, text.as_bytes()).map_err(write_error)
    }
}

/// Writes `bytes` to a temp file beside `path`, syncs it, and renames it over `path`: readers
/// see the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("a file path needs a directory"))?;
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::{Key, KeyboardShortcut, Modifiers};

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sapa").join("phone.toml");
        assert_eq!(PhoneConfig::load(&path).unwrap(), PhoneConfig::default());
        let mut config = PhoneConfig {
            switchboard: "ws://10.0.0.5:7070".into(),
            user: "ana".into(),
            microphone: Some("Jabra Evolve2 Mono".into()),
            speaker: None,
            ringer: Some("Desk speakers".into()),
            noise_suppression: true,
            auto_gain: false,
            dtx: true,
            frame_ms: 10,
            desktop_notifications: false,
            shortcuts: Shortcuts::default(),
        };
        config.shortcuts.answer = KeyboardShortcut::new(Modifiers::CTRL, Key::A);
        config.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.to_lowercase().contains("password"));
        assert_eq!(PhoneConfig::load(&path).unwrap(), config);
    }

    #[test]
    fn a_partial_file_fills_in_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phone.toml");
        std::fs::write(&path, "user = \"kofi\"\n").unwrap();
        let config = PhoneConfig::load(&path).unwrap();
        assert_eq!(config.user, "kofi");
        assert_eq!(config.shortcuts, Shortcuts::default());
        // Popups are on unless a file turns them off.
        assert!(config.desktop_notifications);
        std::fs::write(&path, "user = [").unwrap();
        assert!(PhoneConfig::load(&path).is_err());
    }
}

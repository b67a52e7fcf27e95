//! The switchboard's configuration file (TOML): queues, ring-no-answer time, after-call-work
//! limit, disposition codes and not-ready reasons.
//!
//! `sapa switchboard --print-default-config` prints `DEFAULT_CONFIG`, which is also what runs
//! when no `--config` is given, so the default is always a valid, documented example.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The built-in configuration, commented, as `--print-default-config` prints it.
pub const DEFAULT_CONFIG: &str = r#"# Sapa switchboard configuration.

# How long an offered call rings an agent before it goes back to the queue and the agent
# is set to not ready ("missed").
ring_no_answer_secs = 15

# After-call work ends when the agent submits the disposition, or after this many seconds.
max_after_call_work_secs = 120

# Codes an agent picks in the after-call form.
disposition_codes = [
    "general-inquiry",
    "billing",
    "technical-issue",
    "complaint",
    "sales",
    "cancellation",
    "wrong-number",
]

# Reasons an agent can give for not ready. "missed" and "login" are set by the switchboard.
not_ready_reasons = ["break", "lunch", "meeting", "training", "coaching", "technical"]

# Show agents a "monitored" badge while a supervisor listens, whispers or barges in.
announce_monitoring = false

# A caller who has waited this many seconds may ask to be called back instead of waiting
# (it keeps its place; the callback is offered when its turn comes).
callback_offer_after_secs = 60

# Queues callers can dial into. The first one is where a caller lands who names none.
# service_level_secs: a call answered within this many seconds counts toward service level.
[[queues]]
name = "support"
service_level_secs = 20

[[queues]]
name = "billing"
service_level_secs = 20
"#;

/// One ACD queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    #[serde(default = "default_service_level_secs")]
    pub service_level_secs: u64,
}

fn default_service_level_secs() -> u64 {
    20
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchboardConfig {
    pub queues: Vec<QueueConfig>,
    pub ring_no_answer_secs: u64,
    pub max_after_call_work_secs: u64,
    pub disposition_codes: Vec<String>,
    pub not_ready_reasons: Vec<String>,
    /// Tell the agent when a supervisor listens, whispers or barges in.
    #[serde(default)]
    pub announce_monitoring: bool,
    /// How long a caller waits before it may ask to be called back instead.
    #[serde(default = "default_callback_offer_after_secs")]
    pub callback_offer_after_secs: u64,
}

fn default_callback_offer_after_secs() -> u64 {
    60
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("config is not usable: {0}")]
    Invalid(String),
}

impl Default for SwitchboardConfig {
    fn default() -> Self {
        SwitchboardConfig::parse(DEFAULT_CONFIG).expect("the built-in default config is valid")
    }
}

impl SwitchboardConfig {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: SwitchboardConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.queues.is_empty() {
            return Err(ConfigError::Invalid("at least one queue is needed".into()));
        }
        let mut names: Vec<&str> = self.queues.iter().map(|q| q.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid("queue names must be unique".into()));
        }
        if names.iter().any(|n| n.trim().is_empty()) {
            return Err(ConfigError::Invalid("a queue has an empty name".into()));
        }
        if self.ring_no_answer_secs == 0 {
            return Err(ConfigError::Invalid(
                "ring_no_answer_secs must be at least 1".into(),
            ));
        }
        if self.disposition_codes.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one disposition code is needed".into(),
            ));
        }
        Ok(())
    }

    pub fn ring_no_answer(&self) -> Duration {
        Duration::from_secs(self.ring_no_answer_secs)
    }

    pub fn max_after_call_work(&self) -> Duration {
        Duration::from_secs(self.max_after_call_work_secs)
    }

    pub fn default_queue(&self) -> &str {
        &self.queues[0].name
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| q.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses() {
        let c = SwitchboardConfig::default();
        assert_eq!(c.default_queue(), "support");
        assert_eq!(c.ring_no_answer(), Duration::from_secs(15));
    }

    #[test]
    fn rejects_unknown_fields_and_empty_queues() {
        assert!(SwitchboardConfig::parse("queues = []\nring_no_answer_secs=1\nmax_after_call_work_secs=1\ndisposition_codes=[\"a\"]\nnot_ready_reasons=[]").is_err());
        let bad = DEFAULT_CONFIG.replace("ring_no_answer_secs", "ring_no_answr_secs");
        assert!(matches!(
            SwitchboardConfig::parse(&bad),
            Err(ConfigError::Parse(_))
        ));
    }
}

//! The switchboard's configuration file (TOML): queues, ring-no-answer time, after-call-work
//! limit, disposition codes, not-ready reasons, queue-entry menus and the post-call survey.
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

# A caller who has waited this many seconds hears sounds/callback-prompt.wav once ("to be
# called back instead of waiting, press star") and may then press * (or send
# request_callback) to hang up and be called back: it keeps its place, and its number is rung
# for the agent when its turn comes.
callback_offer_after_secs = 60

# Post-call survey: how long the caller has to press 1-5 after the prompt has played.
survey_timeout_secs = 8

# Queues callers can dial into. The first one is where a caller lands who names none.
# service_level_secs: a call answered within this many seconds counts toward service level.
# survey: when the agent hangs up first, the caller stays on the line, hears
# sounds/survey-prompt.wav and rates the call 1-5 on the keypad (stored as the call's CSAT).
# agents: who serves the queue, e.g. agents = ["ana", "bayu"]; leave it out for everyone.
[[queues]]
name = "support"
service_level_secs = 20
survey = false

[[queues]]
name = "billing"
service_level_secs = 20
survey = false

# Queue-entry menus. A caller reaches one by dialing one of its numbers (`dial` field `to`)
# or by naming it as the queue in `dial`. The prompt (a sound from sounds/, named without
# .wav) plays; a key from `options` queues the call there; no valid key within timeout_secs
# after the prompt queues it in default_queue. Keys arrive as RFC 4733 telephone events or,
# from callers that send tones, as in-band DTMF.
[[menus]]
name = "main"
numbers = ["+18005550100"]
prompt = "menu-prompt"
timeout_secs = 5
default_queue = "support"
options = { "1" = "billing", "2" = "support" }
"#;

/// One ACD queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    #[serde(default = "default_service_level_secs")]
    pub service_level_secs: u64,
    /// Ask the caller to rate the call when the agent hangs up first.
    #[serde(default)]
    pub survey: bool,
    /// The agents who serve this queue; empty: every agent.
    #[serde(default)]
    pub agents: Vec<String>,
}

impl QueueConfig {
    /// Whether `agent` takes calls from this queue.
    pub fn served_by(&self, agent: &str) -> bool {
        self.agents.is_empty() || self.agents.iter().any(|a| a == agent)
    }
}

fn default_service_level_secs() -> u64 {
    20
}

fn default_survey_timeout_secs() -> u64 {
    8
}

fn default_menu_timeout_secs() -> u64 {
    5
}

fn default_menu_prompt() -> String {
    "menu-prompt".to_owned()
}

/// A queue-entry menu: a prompt, keys that choose queues, and where silence goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuConfig {
    /// Callers may dial this name as their queue.
    pub name: String,
    /// Dialed numbers (`dial` field `to`) that land in this menu.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// A sound from `sounds/`, without `.wav`.
    #[serde(default = "default_menu_prompt")]
    pub prompt: String,
    /// Seconds after the prompt before the default queue is taken.
    #[serde(default = "default_menu_timeout_secs")]
    pub timeout_secs: u64,
    pub default_queue: String,
    /// Key (`0`-`9`, `*`, `#`) -> queue.
    pub options: std::collections::BTreeMap<String, String>,
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
    /// Seconds a caller has to press 1-5 after the survey prompt.
    #[serde(default = "default_survey_timeout_secs")]
    pub survey_timeout_secs: u64,
    #[serde(default)]
    pub menus: Vec<MenuConfig>,
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
        for (i, menu) in self.menus.iter().enumerate() {
            self.validate_menu(menu)?;
            if self.menus[..i].iter().any(|m| m.name == menu.name) {
                return Err(ConfigError::Invalid(format!(
                    "two menus are named {:?}",
                    menu.name
                )));
            }
            if let Some(n) = menu
                .numbers
                .iter()
                .find(|n| self.menus[..i].iter().any(|m| m.numbers.contains(n)))
            {
                return Err(ConfigError::Invalid(format!(
                    "number {n:?} belongs to two menus"
                )));
            }
        }
        Ok(())
    }

    fn validate_menu(&self, menu: &MenuConfig) -> Result<(), ConfigError> {
        let invalid = |what: String| ConfigError::Invalid(format!("menu {:?}: {what}", menu.name));
        if menu.name.trim().is_empty() {
            return Err(ConfigError::Invalid("a menu has an empty name".into()));
        }
        if self.queue(&menu.name).is_some() {
            return Err(invalid("has the name of a queue".into()));
        }
        if crate::sounds::Sound::from_name(&menu.prompt).is_none() {
            return Err(invalid(format!(
                "no sound named {:?} in sounds/",
                menu.prompt
            )));
        }
        if self.queue(&menu.default_queue).is_none() {
            return Err(invalid(format!(
                "default_queue {:?} is not a queue",
                menu.default_queue
            )));
        }
        for (key, queue) in &menu.options {
            let mut chars = key.chars();
            let ok = matches!((chars.next(), chars.next()), (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#');
            if !ok {
                return Err(invalid(format!(
                    "option {key:?} is not one key (0-9, *, #)"
                )));
            }
            if self.queue(queue).is_none() {
                return Err(invalid(format!(
                    "option {key} leads to {queue:?}, which is not a queue"
                )));
            }
        }
        Ok(())
    }

    /// The menu a caller reaches by dialing `to` or naming `queue`, if any.
    pub fn menu_for(&self, to: Option<&str>, queue: Option<&str>) -> Option<&MenuConfig> {
        self.menus.iter().find(|m| {
            queue == Some(m.name.as_str()) || to.is_some_and(|to| m.numbers.iter().any(|n| n == to))
        })
    }

    pub fn survey_timeout(&self) -> Duration {
        Duration::from_secs(self.survey_timeout_secs)
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
    fn default_menu_routes_keys_to_queues() {
        let c = SwitchboardConfig::default();
        let menu = c.menu_for(Some("+18005550100"), None).unwrap();
        assert_eq!(menu.name, "main");
        assert_eq!(c.menu_for(None, Some("main")), Some(menu));
        assert_eq!(c.menu_for(Some("+1999"), Some("support")), None);
        assert_eq!(menu.options.get("2").map(String::as_str), Some("support"));
        assert!(!c.queues[0].survey);
    }

    #[test]
    fn rejects_menus_that_lead_nowhere() {
        for (from, to, why) in [
            ("\"2\" = \"support\"", "\"2\" = \"sales\"", "not a queue"),
            ("\"2\" = \"support\"", "\"22\" = \"support\"", "not one key"),
            (
                "default_queue = \"support\"",
                "default_queue = \"x\"",
                "default_queue",
            ),
            ("prompt = \"menu-prompt\"", "prompt = \"nope\"", "no sound"),
            ("name = \"main\"", "name = \"billing\"", "name of a queue"),
        ] {
            let text = DEFAULT_CONFIG.replace(from, to);
            assert_ne!(text, DEFAULT_CONFIG, "{from}");
            let err = SwitchboardConfig::parse(&text).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
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

//! What a caller's keys mean while the switchboard, not an agent, is on the line: the
//! queue-entry menu ("for billing press 1 ...") and the post-call survey ("rate your call from
//! one to five"). Both are sans-IO state machines fed keys and a clock; the core task plays
//! the prompt, feeds the keys it decodes (RFC 4733 or in-band), arms the timer at
//! `poll_timeout()` and acts on the one result each gives.
//!
//! Run loop (in the switchboard core):
//! ```text
//! menu = Menu::start(now, spec)                      // prompt starts playing
//! on key:     menu.handle_key(now, key)
//! at timeout: menu.handle_timeout(now)
//! if let Some(choice) = menu.poll_choice() { queue the call in choice.queue }
//! ```
//! The wait for a key runs from the start of the prompt until `timeout` after its end; keys
//! pressed during the prompt count (callers who know the menu need not listen to it).

use std::sync::Arc;
use std::time::{Duration, Instant};

/// A configured menu, resolved against the switchboard's queues and sounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuSpec {
    pub name: String,
    /// Key -> queue.
    pub options: Vec<(char, String)>,
    /// Where a caller goes who presses no valid key in time.
    pub default_queue: String,
    /// How long the prompt plays.
    pub prompt_len: Duration,
    /// How long after the prompt a key is awaited.
    pub timeout: Duration,
}

/// How the menu's queue was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuOutcome {
    Key(char),
    Timeout,
}

impl MenuOutcome {
    /// As stored in the call record (`menu_choice`): the key, or `timeout`.
    pub fn label(self) -> String {
        match self {
            MenuOutcome::Key(k) => k.to_string(),
            MenuOutcome::Timeout => "timeout".to_owned(),
        }
    }
}

/// Where the menu sends the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuChoice {
    pub queue: String,
    pub outcome: MenuOutcome,
}

/// One caller in a menu.
#[derive(Debug, Clone)]
pub struct Menu {
    spec: Arc<MenuSpec>,
    deadline: Instant,
    /// Keys pressed that lead nowhere (ignored; the caller may try again).
    invalid_keys: u32,
    /// Decided but not yet polled.
    choice: Option<MenuChoice>,
    /// A choice was made (and possibly polled): nothing more happens.
    done: bool,
}

impl Menu {
    /// The prompt starts playing at `now`.
    pub fn start(now: Instant, spec: Arc<MenuSpec>) -> Menu {
        let deadline = now + spec.prompt_len + spec.timeout;
        Menu {
            spec,
            deadline,
            invalid_keys: 0,
            choice: None,
            done: false,
        }
    }

    pub fn spec(&self) -> &MenuSpec {
        &self.spec
    }

    /// Keys pressed so far that matched no option.
    pub fn invalid_keys(&self) -> u32 {
        self.invalid_keys
    }

    /// The caller pressed `key`.
    pub fn handle_key(&mut self, now: Instant, key: char) {
        if self.done || now > self.deadline {
            return;
        }
        match self.spec.options.iter().find(|(k, _)| *k == key) {
            Some((_, queue)) => self.decide(queue.clone(), MenuOutcome::Key(key)),
            None => self.invalid_keys += 1,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.done && now >= self.deadline {
            self.decide(self.spec.default_queue.clone(), MenuOutcome::Timeout);
        }
    }

    /// When to call [`Self::handle_timeout`]; `None` once decided.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then_some(self.deadline)
    }

    /// The decision, once.
    #[must_use]
    pub fn poll_choice(&mut self) -> Option<MenuChoice> {
        self.choice.take()
    }

    fn decide(&mut self, queue: String, outcome: MenuOutcome) {
        self.done = true;
        self.choice = Some(MenuChoice { queue, outcome });
    }
}

/// How a survey ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurveyResult {
    /// A key 1 to 5.
    Score(u8),
    /// Only keys other than 1-5 were pressed before the timeout: nothing is stored as a score.
    Invalid,
    /// No key at all before the timeout.
    NoAnswer,
}

impl SurveyResult {
    /// As stored in the call record (`survey`).
    pub fn label(self) -> &'static str {
        match self {
            SurveyResult::Score(_) => "answered",
            SurveyResult::Invalid => "invalid",
            SurveyResult::NoAnswer => "no_answer",
        }
    }
}

/// One caller asked to rate the call.
#[derive(Debug, Clone)]
pub struct Survey {
    deadline: Instant,
    invalid_keys: u32,
    result: Option<SurveyResult>,
    done: bool,
}

impl Survey {
    /// The prompt (`prompt_len` long) starts at `now`; a key is awaited until `timeout` after.
    pub fn start(now: Instant, prompt_len: Duration, timeout: Duration) -> Survey {
        Survey {
            deadline: now + prompt_len + timeout,
            invalid_keys: 0,
            result: None,
            done: false,
        }
    }

    /// The caller pressed `key`: 1-5 ends the survey with that score; anything else is
    /// ignored (the caller may still press a valid key before the timeout).
    pub fn handle_key(&mut self, now: Instant, key: char) {
        if self.done || now > self.deadline {
            return;
        }
        match key.to_digit(10) {
            Some(score @ 1..=5) => {
                self.done = true;
                self.result = Some(SurveyResult::Score(score as u8));
            }
            _ => self.invalid_keys += 1,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.done && now >= self.deadline {
            self.done = true;
            self.result = Some(if self.invalid_keys > 0 {
                SurveyResult::Invalid
            } else {
                SurveyResult::NoAnswer
            });
        }
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then_some(self.deadline)
    }

    #[must_use]
    pub fn poll_result(&mut self) -> Option<SurveyResult> {
        self.result.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Arc<MenuSpec> {
        Arc::new(MenuSpec {
            name: "main".into(),
            options: vec![('1', "billing".into()), ('2', "support".into())],
            default_queue: "support".into(),
            prompt_len: Duration::from_secs(5),
            timeout: Duration::from_secs(4),
        })
    }

    #[test]
    fn a_key_during_the_prompt_chooses_its_queue() {
        let t0 = Instant::now();
        let mut menu = Menu::start(t0, spec());
        assert_eq!(menu.poll_timeout(), Some(t0 + Duration::from_secs(9)));
        menu.handle_key(t0 + Duration::from_secs(1), '7');
        assert_eq!(menu.poll_choice(), None, "an unknown key is ignored");
        assert_eq!(menu.invalid_keys(), 1);
        menu.handle_key(t0 + Duration::from_secs(2), '1');
        assert_eq!(
            menu.poll_choice(),
            Some(MenuChoice {
                queue: "billing".into(),
                outcome: MenuOutcome::Key('1')
            })
        );
        // Decided once: later keys and the timer change nothing.
        menu.handle_key(t0 + Duration::from_secs(3), '2');
        menu.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(menu.poll_choice(), None);
        assert_eq!(menu.poll_timeout(), None);
    }

    #[test]
    fn no_key_goes_to_the_default_queue_at_the_timeout_after_the_prompt() {
        let t0 = Instant::now();
        let mut menu = Menu::start(t0, spec());
        menu.handle_timeout(t0 + Duration::from_millis(8_999));
        assert_eq!(menu.poll_choice(), None);
        menu.handle_timeout(t0 + Duration::from_secs(9));
        let choice = menu.poll_choice().unwrap();
        assert_eq!(choice.queue, "support");
        assert_eq!(choice.outcome, MenuOutcome::Timeout);
        assert_eq!(choice.outcome.label(), "timeout");
        // A key after the deadline (before the driver woke up) does not change the choice.
        let mut late = Menu::start(t0, spec());
        late.handle_key(t0 + Duration::from_secs(10), '1');
        late.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(late.poll_choice().unwrap().outcome, MenuOutcome::Timeout);
    }

    #[test]
    fn survey_takes_one_to_five() {
        let t0 = Instant::now();
        let prompt = Duration::from_secs(4);
        let timeout = Duration::from_secs(5);
        let mut s = Survey::start(t0, prompt, timeout);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(9)));
        s.handle_key(t0 + Duration::from_secs(1), '4');
        assert_eq!(s.poll_result(), Some(SurveyResult::Score(4)));
        s.handle_key(t0 + Duration::from_secs(2), '5');
        assert_eq!(s.poll_result(), None, "the first valid key counts");
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn survey_ignores_invalid_keys_and_times_out() {
        let t0 = Instant::now();
        let d = Duration::from_secs;
        for (keys, want) in [
            (&['0', '9', '#'][..], SurveyResult::Invalid),
            (&[][..], SurveyResult::NoAnswer),
        ] {
            let mut s = Survey::start(t0, d(4), d(5));
            for &k in keys {
                s.handle_key(t0 + d(1), k);
            }
            s.handle_timeout(t0 + d(8));
            assert_eq!(s.poll_result(), None, "not before the deadline");
            s.handle_timeout(t0 + d(9));
            assert_eq!(s.poll_result(), Some(want));
            assert_eq!(
                want.label(),
                if keys.is_empty() {
                    "no_answer"
                } else {
                    "invalid"
                }
            );
        }
        // An invalid key then a valid one: the valid one is the score.
        let mut s = Survey::start(t0, d(4), d(5));
        s.handle_key(t0 + d(1), '8');
        s.handle_key(t0 + d(2), '2');
        assert_eq!(s.poll_result(), Some(SurveyResult::Score(2)));
    }
}

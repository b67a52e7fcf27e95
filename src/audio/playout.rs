//! When a peer plays out what it receives, sans-IO: fed the time of each play and how long
//! the frame it played had waited beyond the jitter buffer's target, it says when to play
//! the next one.
//!
//! Why. A voice clock ticks every frame (20 ms) at its own phase, and the far end's packets
//! arrive at theirs. Played on the tick, each packet waits its target delay and then, on
//! average, half a frame more for the next tick: up to 20 ms of delay that buys nothing (the
//! jitter buffer's current delay sits at target + 0-20 ms; BENCHMARKS.md, issue 3). A peer
//! whose output takes audio at any moment (a headset's speaker ring, a recording) can play
//! on a clock of its own instead, moved to just when each frame is due.
//!
//! How. Plays start on the voice tick. Over each [`ALIGN_WINDOW`] the least excess (current
//! delay − target, at each pop of a playing stream) is what no packet needed; when it is
//! above [`ALIGN_MARGIN_MS`], the clock moves that much less the margin earlier, at the next
//! quiet frame, and from then on runs on its own. The output then holds that much audio
//! more than before: [`PlayoutClock::played`] returns it, and a recording drops it (a
//! headset's speaker ring trims its own surplus). Late packets are the jitter buffer's
//! business as before (it holds or inserts a frame), which the clock then takes back.
//! The clock only ever moves earlier, so it cannot chase another clock: what it moves is
//! the playout, not what the peer sends.

use std::time::{Duration, Instant};

/// Over this long the least excess is measured before the clock moves.
pub const ALIGN_WINDOW: Duration = Duration::from_secs(1);
/// Excess kept beyond the jitter buffer's target, for timer noise of the play wake-up.
pub const ALIGN_MARGIN_MS: f64 = 2.0;
/// Moves smaller than this are not worth a wake-up of their own.
const MIN_MOVE_MS: f64 = 1.0;
/// A move waits for this many quiet frames in a row: a pause, not the quiet edge of a word.
const QUIET_FRAMES_TO_MOVE: u32 = 2;

/// The playout's own clock (see the module text).
#[derive(Debug, Clone)]
pub struct PlayoutClock {
    period: Duration,
    /// When the next frame is to be played; None while plays follow the voice tick.
    next: Option<Instant>,
    /// Since when the least excess of this window is measured, and the least so far (ms).
    window: Option<(Instant, f64)>,
    /// A move (ms) that waits for a pause.
    pending_ms: f64,
    /// Quiet frames played in a row.
    quiet_run: u32,
}

impl PlayoutClock {
    /// A clock for frames of `period` (the voice's frame), following the voice tick.
    pub fn new(period: Duration) -> PlayoutClock {
        PlayoutClock {
            period,
            next: None,
            window: None,
            pending_ms: 0.0,
            quiet_run: 0,
        }
    }

    /// When to play next; None: with the voice tick.
    pub fn next_play(&self) -> Option<Instant> {
        self.next
    }

    /// A frame was played at `now`. `excess_ms` is the main stream's delay beyond its target
    /// at that pop (None while no stream plays); `quiet` says the frame played was silent
    /// (the move waits for [`QUIET_FRAMES_TO_MOVE`] in a row, so that the audio it drops is
    /// a pause). Returns how many milliseconds earlier the next play comes
    /// than its period would have it (0 almost always): audio the output now holds for
    /// nothing, which a recording should drop to stay true to time.
    pub fn played(&mut self, now: Instant, excess_ms: Option<f64>, quiet: bool) -> f64 {
        // The time this play was meant for: its own clock's, or the tick's (now).
        let scheduled = self.next.unwrap_or(now);
        match (excess_ms, self.window) {
            (None, _) => self.window = None,
            (Some(excess), None) => self.window = Some((now, excess)),
            (Some(excess), Some((since, least))) => {
                let least = least.min(excess);
                if now.saturating_duration_since(since) >= ALIGN_WINDOW {
                    let spare = least - ALIGN_MARGIN_MS;
                    if spare >= MIN_MOVE_MS {
                        self.pending_ms = spare;
                    }
                    self.window = Some((now, excess));
                } else {
                    self.window = Some((since, least));
                }
            }
        }
        self.quiet_run = if quiet { self.quiet_run + 1 } else { 0 };
        let mut moved_ms = 0.0;
        if self.pending_ms > 0.0 && self.quiet_run >= QUIET_FRAMES_TO_MOVE {
            // At most a frame at a time: the excess measured never asks for more.
            moved_ms = self
                .pending_ms
                .min(self.period.as_secs_f64() * 1000.0 - 0.5);
            self.pending_ms = 0.0;
            // The next window measures from the new phase.
            self.window = None;
        }
        if self.next.is_some() || moved_ms > 0.0 {
            self.next = Some(
                scheduled + self.period - Duration::from_micros((moved_ms * 1000.0).round() as u64),
            );
        }
        moved_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(20);

    /// Plays on the clock for `frames` frames; a packet due `due_ms` after the clock's start
    /// (mod 20) waits target + the time to the play: the excess. Returns the moves.
    fn run(clock: &mut PlayoutClock, t0: Instant, frames: u32, arrival_phase_ms: f64) -> Vec<f64> {
        let mut moves = Vec::new();
        let mut tick = t0;
        for _ in 0..frames {
            let at = clock.next_play().unwrap_or(tick);
            let since_t0 = at.duration_since(t0).as_secs_f64() * 1000.0;
            // How long after the packet became due (at its arrival phase + target) this play is.
            let excess = (since_t0 - arrival_phase_ms).rem_euclid(20.0);
            let moved = clock.played(at, Some(excess), true);
            if moved > 0.0 {
                moves.push(moved);
            }
            tick += PERIOD;
        }
        moves
    }

    #[test]
    fn the_clock_moves_once_to_just_after_the_packets_are_due_and_stays() {
        let t0 = Instant::now();
        let mut clock = PlayoutClock::new(PERIOD);
        // Packets due 7 ms after each tick: played on the tick they wait 13 ms for nothing.
        let moves = run(&mut clock, t0, 300, 7.0);
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert!(
            (moves[0] - (13.0 - ALIGN_MARGIN_MS)).abs() < 0.01,
            "{moves:?}"
        );
        // From then on each play comes the margin after its packet is due.
        let at = clock.next_play().expect("own clock");
        let phase = (at.duration_since(t0).as_secs_f64() * 1000.0).rem_euclid(20.0);
        assert!((phase - (7.0 + ALIGN_MARGIN_MS)).abs() < 0.01, "{phase}");
    }

    #[test]
    fn a_clock_already_in_phase_stays_on_the_tick() {
        let t0 = Instant::now();
        let mut clock = PlayoutClock::new(PERIOD);
        // Due 1.5 ms before each tick: the excess is within the margin.
        let moves = run(&mut clock, t0, 300, 18.5);
        assert!(moves.is_empty(), "{moves:?}");
        assert_eq!(clock.next_play(), None, "no wake-ups of its own");
    }

    #[test]
    fn it_moves_only_at_a_quiet_frame_and_not_without_a_stream() {
        let t0 = Instant::now();
        let mut clock = PlayoutClock::new(PERIOD);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // No stream: nothing to measure.
        for n in 0..100 {
            assert_eq!(clock.played(ms(20 * n), None, true), 0.0);
        }
        // Speech with 10 ms to spare: the move waits for a pause, two quiet frames in a row.
        for n in 100..200 {
            let quiet = n % 2 == 0;
            assert_eq!(clock.played(ms(20 * n), Some(10.0), quiet), 0.0);
        }
        assert_eq!(clock.next_play(), None);
        assert_eq!(clock.played(ms(4000), Some(10.0), true), 0.0);
        let moved = clock.played(ms(4020), Some(10.0), true);
        assert!((moved - 8.0).abs() < 0.01, "{moved}");
        assert_eq!(clock.next_play(), Some(ms(4032)));
    }

    #[test]
    fn a_late_packet_held_by_the_jitter_buffer_is_taken_back_later() {
        let t0 = Instant::now();
        let mut clock = PlayoutClock::new(PERIOD);
        run(&mut clock, t0, 100, 7.0);
        let aligned = clock.next_play().expect("own clock");
        // The jitter buffer held a frame for a late packet: 20 ms more excess from then on.
        let mut at = aligned;
        let mut moved = 0.0;
        for _ in 0..150 {
            // Each move takes back what it moved.
            moved += clock.played(at, Some(20.0 + ALIGN_MARGIN_MS - moved), true);
            at = clock.next_play().expect("own clock");
        }
        // A frame at most per move (less 0.5 ms), so 19.5 ms; the 0.5 ms left is below a move.
        assert!((moved - 19.5).abs() < 0.01, "{moved}");
    }
}

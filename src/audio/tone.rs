//! Call-progress tones, DTMF and level measurement, all plain sample math with no I/O.
//!
//! Generators are phase-continuous: filling ten 10 ms buffers gives exactly the samples one
//! 100 ms buffer would, so a tone can be played frame by frame without clicks. Cadenced tones
//! (ring, ringback, busy) fade each burst in and out over a few milliseconds.
//!
//! Run loop of the detector (the codec thread, after decoding a frame):
//! ```text
//! dtmf.push(&frame);
//! while let Some(digit) = dtmf.poll_digit() { emit(DigitPressed(digit)) }
//! ```
//! `goertzel_power` and `dominant_of` measure single frequencies; tests use them to check what
//! a peer actually heard ("ringback, then the agent's 440 Hz tone").

use std::f64::consts::TAU;

/// The level reported for digital silence (and the floor of every dBFS value here).
pub const MIN_DBFS: f32 = -120.0;

/// RMS level in dBFS of `samples` (full scale = 1.0; a full-scale sine reads -3.01 dBFS).
/// Empty input and digital silence read [`MIN_DBFS`].
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return MIN_DBFS;
    }
    let sum: f64 = samples
        .iter()
        .map(|&s| finite_or_zero(s) as f64 * finite_or_zero(s) as f64)
        .sum();
    power_to_dbfs(sum / samples.len() as f64)
}

/// Peak level in dBFS of `samples` (a full-scale sine reads 0 dBFS).
pub fn peak_dbfs(samples: &[f32]) -> f32 {
    let peak = samples
        .iter()
        .fold(0f32, |m, &s| m.max(finite_or_zero(s).abs()));
    amplitude_to_dbfs(peak)
}

/// 20·log10(amplitude), floored at [`MIN_DBFS`].
pub fn amplitude_to_dbfs(amplitude: f32) -> f32 {
    if amplitude > 0.0 && amplitude.is_finite() {
        (20.0 * amplitude.log10()).max(MIN_DBFS)
    } else {
        MIN_DBFS
    }
}

/// Linear amplitude of a level in dBFS.
pub fn dbfs_to_amplitude(dbfs: f32) -> f32 {
    10f32.powf(dbfs / 20.0)
}

fn power_to_dbfs(mean_square: f64) -> f32 {
    if mean_square > 0.0 && mean_square.is_finite() {
        ((10.0 * mean_square.log10()) as f32).max(MIN_DBFS)
    } else {
        MIN_DBFS
    }
}

fn finite_or_zero(s: f32) -> f32 {
    if s.is_finite() { s } else { 0.0 }
}

/// A level meter for the UI: the RMS of the last frame, and a peak that holds and then falls
/// at `fall_db_per_s`, the usual meter ballistics.
#[derive(Debug, Clone)]
pub struct LevelMeter {
    /// RMS of the most recent frame, dBFS.
    rms_dbfs: f32,
    /// Held peak, dBFS; falls linearly once the hold time is over.
    peak_dbfs: f32,
    /// Seconds left before the held peak starts to fall.
    hold_left_s: f32,
    /// How fast the peak indicator falls, dB per second.
    fall_db_per_s: f32,
}

impl Default for LevelMeter {
    fn default() -> Self {
        LevelMeter {
            rms_dbfs: MIN_DBFS,
            peak_dbfs: MIN_DBFS,
            hold_left_s: 0.0,
            fall_db_per_s: 20.0,
        }
    }
}

impl LevelMeter {
    /// Peak hold time before the indicator falls.
    const HOLD_S: f32 = 0.5;

    /// Feeds one frame that lasted `duration_s` seconds.
    pub fn update(&mut self, frame: &[f32], duration_s: f32) {
        self.rms_dbfs = rms_dbfs(frame);
        let peak = peak_dbfs(frame);
        if peak >= self.peak_dbfs {
            self.peak_dbfs = peak;
            self.hold_left_s = Self::HOLD_S;
        } else if self.hold_left_s > 0.0 {
            self.hold_left_s -= duration_s;
        } else {
            self.peak_dbfs = (self.peak_dbfs - self.fall_db_per_s * duration_s).max(peak);
        }
    }

    pub fn rms_dbfs(&self) -> f32 {
        self.rms_dbfs
    }

    pub fn peak_dbfs(&self) -> f32 {
        self.peak_dbfs
    }
}

/// Power of one frequency in `samples`, as the mean-square value of that component: a sine of
/// amplitude A exactly at `freq_hz` gives about A²/2, whatever the block length. `freq_hz`
/// need not fall on a DFT bin. Empty input gives 0.
pub fn goertzel_power(samples: &[f32], sample_rate_hz: f64, freq_hz: f64) -> f64 {
    if samples.is_empty() || sample_rate_hz <= 0.0 {
        return 0.0;
    }
    let w = TAU * freq_hz / sample_rate_hz;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = finite_or_zero(x) as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    // |X(f)|² from the last two states of the recursion.
    let mag2 = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    (2.0 * mag2 / (n * n)).max(0.0)
}

/// Which of `candidates_hz` dominates `samples`: the one whose power is at least 6 dB above
/// every other candidate and holds at least a quarter of the block's total power. `None` for
/// silence, noise, speech, or two candidates of similar strength (a dual tone).
pub fn dominant_of(samples: &[f32], sample_rate_hz: f64, candidates_hz: &[f64]) -> Option<f64> {
    if samples.is_empty() || candidates_hz.is_empty() {
        return None;
    }
    let total: f64 = samples
        .iter()
        .map(|&s| finite_or_zero(s) as f64 * finite_or_zero(s) as f64)
        .sum::<f64>()
        / samples.len() as f64;
    if total <= 1e-12 {
        return None;
    }
    let mut best = (f64::NAN, -1.0f64);
    let mut second = 0.0f64;
    for &f in candidates_hz {
        let p = goertzel_power(samples, sample_rate_hz, f);
        if p > best.1 {
            second = second.max(best.1);
            best = (f, p);
        } else {
            second = second.max(p);
        }
    }
    (best.1 >= 0.25 * total && best.1 >= 4.0 * second).then_some(best.0)
}

/// A phase-continuous sine oscillator.
#[derive(Debug, Clone)]
pub struct Oscillator {
    /// Phase in cycles, kept in [0, 1) so precision does not drift over hours.
    phase: f64,
    /// Phase increment per sample, in cycles.
    step: f64,
}

impl Oscillator {
    pub fn new(freq_hz: f64, sample_rate_hz: u32) -> Self {
        let step = if sample_rate_hz == 0 {
            0.0
        } else {
            freq_hz / sample_rate_hz as f64
        };
        Oscillator { phase: 0.0, step }
    }

    /// The next sample, amplitude 1.
    pub fn next_sample(&mut self) -> f64 {
        let v = (TAU * self.phase).sin();
        self.phase += self.step;
        self.phase -= self.phase.floor();
        v
    }
}

/// What a tone sounds like: up to two frequencies, a level per frequency, and a cadence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// One or two frequencies; a second frequency of 0 means a single tone.
    pub freqs_hz: [f64; 2],
    /// Level of each frequency component, dBFS peak (two components at -20 peak at -14).
    pub level_dbfs: [f32; 2],
    /// Alternating on and off durations in ms, repeated; empty means continuous.
    pub cadence_ms: &'static [u32],
}

/// The eight DTMF frequencies: rows (low group) then columns (high group).
pub const DTMF_ROWS_HZ: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
pub const DTMF_COLS_HZ: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const DTMF_KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The (row, column) frequencies of a DTMF key: `0-9`, `*`, `#`, `A-D` (or `a-d`).
pub fn dtmf_freqs(digit: char) -> Option<(f64, f64)> {
    let digit = digit.to_ascii_uppercase();
    for (r, row) in DTMF_KEYS.iter().enumerate() {
        for (c, &key) in row.iter().enumerate() {
            if key == digit {
                return Some((DTMF_ROWS_HZ[r], DTMF_COLS_HZ[c]));
            }
        }
    }
    None
}

impl ToneSpec {
    /// North-American ringback ("audible ringing"): 440 + 480 Hz, 2 s on, 4 s off.
    pub const fn ringback() -> Self {
        ToneSpec {
            freqs_hz: [440.0, 480.0],
            level_dbfs: [-20.0, -20.0],
            cadence_ms: &[2000, 4000],
        }
    }

    /// Local ring for the agent's ringer when the WAV is unavailable: 660 + 880 Hz (brighter
    /// than ringback so the two are never confused), 2 s on, 4 s off.
    pub const fn ring() -> Self {
        ToneSpec {
            freqs_hz: [660.0, 880.0],
            level_dbfs: [-12.0, -12.0],
            cadence_ms: &[2000, 4000],
        }
    }

    /// Busy: 480 + 620 Hz, 0.5 s on, 0.5 s off.
    pub const fn busy() -> Self {
        ToneSpec {
            freqs_hz: [480.0, 620.0],
            level_dbfs: [-20.0, -20.0],
            cadence_ms: &[500, 500],
        }
    }

    /// Reorder / congestion: 480 + 620 Hz, 0.25 s on, 0.25 s off.
    pub const fn congestion() -> Self {
        ToneSpec {
            freqs_hz: [480.0, 620.0],
            level_dbfs: [-20.0, -20.0],
            cadence_ms: &[250, 250],
        }
    }

    /// "This call is monitored" beep: 1400 Hz, 0.2 s every 15 s.
    pub const fn monitor_beep() -> Self {
        ToneSpec {
            freqs_hz: [1400.0, 0.0],
            level_dbfs: [-14.0, -120.0],
            cadence_ms: &[200, 14_800],
        }
    }

    /// A continuous single tone.
    pub const fn single(freq_hz: f64, level_dbfs: f32) -> Self {
        ToneSpec {
            freqs_hz: [freq_hz, 0.0],
            level_dbfs: [level_dbfs, -120.0],
            cadence_ms: &[],
        }
    }

    /// A continuous DTMF key tone (play it for ~100 ms). The high group is 2 dB louder, as
    /// telephones send it. `None` for a character that is not a DTMF key.
    pub fn dtmf(digit: char) -> Option<Self> {
        let (row, col) = dtmf_freqs(digit)?;
        Some(ToneSpec {
            freqs_hz: [row, col],
            level_dbfs: [-12.0, -10.0],
            cadence_ms: &[],
        })
    }
}

/// Plays a [`ToneSpec`] frame by frame.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    /// What is played (kept for `spec()`).
    spec: ToneSpec,
    /// One oscillator per frequency; they run on through pauses so phase never jumps.
    osc: [Oscillator; 2],
    /// Linear amplitude of each component.
    amp: [f64; 2],
    /// Cadence segment lengths in samples (copied from the spec, at most 8 segments).
    segments: [u64; 8],
    segment_count: usize,
    /// Position within the whole cadence cycle, in samples.
    pos: u64,
    /// Length of the whole cadence cycle, in samples (0 = continuous).
    cycle: u64,
    /// Fade in / fade out length at the edges of each burst, in samples.
    ramp: u64,
}

impl ToneGenerator {
    /// Fade length at burst edges: long enough to avoid a click, short against the cadence.
    const RAMP_MS: u64 = 5;

    pub fn new(spec: ToneSpec, sample_rate_hz: u32) -> Self {
        let mut segments = [0u64; 8];
        // Even positions are bursts, odd ones pauses; segments beyond eight are ignored (no
        // standard cadence has more than four).
        let segment_count = spec.cadence_ms.len().min(8);
        for (dst, &ms) in segments.iter_mut().zip(spec.cadence_ms) {
            *dst = ms as u64 * sample_rate_hz as u64 / 1000;
        }
        let cycle = segments[..segment_count].iter().sum();
        let amp = [
            if spec.freqs_hz[0] > 0.0 {
                dbfs_to_amplitude(spec.level_dbfs[0]) as f64
            } else {
                0.0
            },
            if spec.freqs_hz[1] > 0.0 {
                dbfs_to_amplitude(spec.level_dbfs[1]) as f64
            } else {
                0.0
            },
        ];
        ToneGenerator {
            spec,
            osc: [
                Oscillator::new(spec.freqs_hz[0], sample_rate_hz),
                Oscillator::new(spec.freqs_hz[1], sample_rate_hz),
            ],
            amp,
            segments,
            segment_count,
            pos: 0,
            cycle,
            ramp: Self::RAMP_MS * sample_rate_hz as u64 / 1000,
        }
    }

    pub fn spec(&self) -> &ToneSpec {
        &self.spec
    }

    /// Restarts the cadence at the beginning of its first burst.
    pub fn restart(&mut self) {
        self.pos = 0;
    }

    /// Envelope (0..1) at cadence position `pos`.
    fn envelope(&self, pos: u64) -> f64 {
        if self.cycle == 0 {
            return 1.0;
        }
        let mut start = 0u64;
        for (i, &len) in self.segments[..self.segment_count].iter().enumerate() {
            if pos < start + len {
                if i % 2 == 1 {
                    return 0.0;
                }
                let into = pos - start;
                let left = len - into;
                let edge = into.min(left);
                if edge >= self.ramp || self.ramp == 0 {
                    return 1.0;
                }
                // Raised-cosine fade.
                let x = edge as f64 / self.ramp as f64;
                return 0.5 - 0.5 * (std::f64::consts::PI * x).cos();
            }
            start += len;
        }
        0.0
    }

    /// Writes the next `out.len()` samples (replacing what was there).
    pub fn fill(&mut self, out: &mut [f32]) {
        for s in out.iter_mut() {
            *s = self.next_sample();
        }
    }

    /// Adds the next `out.len()` samples to what is there.
    pub fn add_to(&mut self, out: &mut [f32]) {
        for s in out.iter_mut() {
            *s += self.next_sample();
        }
    }

    fn next_sample(&mut self) -> f32 {
        let env = self.envelope(self.pos);
        // Oscillators run through the off periods too, so phase never jumps.
        let v = self.amp[0] * self.osc[0].next_sample() + self.amp[1] * self.osc[1].next_sample();
        if self.cycle > 0 {
            self.pos = (self.pos + 1) % self.cycle;
        }
        (v * env) as f32
    }
}

/// Limits of the DTMF detector, after ITU-T Q.24 and common practice (Asterisk, spandsp).
#[derive(Debug, Clone, Copy)]
pub struct DtmfLimits {
    /// Minimum level of each of the two tones, dBFS RMS.
    pub min_tone_dbfs: f32,
    /// How much louder the row (low group) tone may be than the column tone.
    pub max_row_over_col_db: f32,
    /// How much louder the column (high group) tone may be than the row tone.
    pub max_col_over_row_db: f32,
    /// The strongest row (column) must exceed every other row (column) by this much.
    pub min_relative_peak_db: f32,
    /// The two tones must hold at least this share of the block's power (rejects speech).
    pub min_tone_share: f64,
}

impl Default for DtmfLimits {
    fn default() -> Self {
        DtmfLimits {
            min_tone_dbfs: -40.0,
            max_row_over_col_db: 8.0,
            max_col_over_row_db: 4.0,
            min_relative_peak_db: 8.0,
            min_tone_share: 0.6,
        }
    }
}

/// Goertzel DTMF detector fed PCM frames of any length; emits each key press once.
///
/// It analyses 25.6 ms windows every 12.8 ms and reports a digit after two windows in a row
/// agree; a key counts as released after two windows without it. Key presses of 50 ms or more
/// separated by pauses of 50 ms or more are reliably told apart.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    /// Rate of the PCM fed in (at least 8 kHz).
    sample_rate_hz: f64,
    /// Twist, level and share limits a window must meet.
    limits: DtmfLimits,
    /// The last `window.len()` samples, a ring written at `write`.
    window: Vec<f32>,
    write: usize,
    /// Samples received since the window was last analysed.
    since_analysis: usize,
    /// Samples between analyses (half a window).
    hop: usize,
    /// Samples received in total, up to the window length (the first window must be full).
    filled: usize,
    /// Linearised copy of the window for analysis (allocated once).
    scratch: Vec<f32>,
    /// The digit the last windows agreed on, and in how many windows in a row.
    candidate: Option<char>,
    candidate_windows: u32,
    /// Whether the current key press was already reported.
    reported: bool,
    /// Windows in a row without any digit.
    quiet_windows: u32,
    /// Detected digits not yet polled (bounded; the oldest is dropped when full).
    queue: [char; 16],
    queue_start: usize,
    queue_len: usize,
}

impl DtmfDetector {
    pub fn new(sample_rate_hz: u32) -> Self {
        Self::with_limits(sample_rate_hz, DtmfLimits::default())
    }

    pub fn with_limits(sample_rate_hz: u32, limits: DtmfLimits) -> Self {
        let rate = sample_rate_hz.max(8000);
        let n = (rate as usize * 256).div_ceil(10_000); // 25.6 ms
        DtmfDetector {
            sample_rate_hz: rate as f64,
            limits,
            window: vec![0.0; n],
            write: 0,
            since_analysis: 0,
            hop: n / 2,
            filled: 0,
            scratch: vec![0.0; n],
            candidate: None,
            candidate_windows: 0,
            reported: false,
            quiet_windows: 0,
            queue: ['\0'; 16],
            queue_start: 0,
            queue_len: 0,
        }
    }

    /// Feeds PCM samples (any count).
    pub fn push(&mut self, samples: &[f32]) {
        let n = self.window.len();
        for &s in samples {
            self.window[self.write] = finite_or_zero(s);
            self.write = (self.write + 1) % n;
            self.filled = (self.filled + 1).min(n);
            self.since_analysis += 1;
            if self.filled == n && self.since_analysis >= self.hop {
                self.since_analysis = 0;
                let digit = self.analyse();
                self.track(digit);
            }
        }
    }

    /// The next detected digit, oldest first.
    #[must_use]
    pub fn poll_digit(&mut self) -> Option<char> {
        if self.queue_len == 0 {
            return None;
        }
        let d = self.queue[self.queue_start];
        self.queue_start = (self.queue_start + 1) % self.queue.len();
        self.queue_len -= 1;
        Some(d)
    }

    fn enqueue(&mut self, d: char) {
        let cap = self.queue.len();
        if self.queue_len == cap {
            self.queue_start = (self.queue_start + 1) % cap;
            self.queue_len -= 1;
        }
        self.queue[(self.queue_start + self.queue_len) % cap] = d;
        self.queue_len += 1;
    }

    fn track(&mut self, digit: Option<char>) {
        match digit {
            Some(d) => {
                self.quiet_windows = 0;
                if self.candidate == Some(d) {
                    self.candidate_windows += 1;
                } else {
                    self.candidate = Some(d);
                    self.candidate_windows = 1;
                    self.reported = false;
                }
                if self.candidate_windows >= 2 && !self.reported {
                    self.reported = true;
                    self.enqueue(d);
                }
            }
            None => {
                self.quiet_windows += 1;
                if self.quiet_windows >= 2 {
                    self.candidate = None;
                    self.candidate_windows = 0;
                    self.reported = false;
                }
            }
        }
    }

    /// The digit present in the current window, if all checks pass.
    fn analyse(&mut self) -> Option<char> {
        let n = self.window.len();
        let (head, tail) = self.window.split_at(self.write);
        self.scratch[..tail.len()].copy_from_slice(tail);
        self.scratch[tail.len()..n].copy_from_slice(head);
        let block = &self.scratch[..];
        let total: f64 = block.iter().map(|&s| s as f64 * s as f64).sum::<f64>() / n as f64;
        let rate = self.sample_rate_hz;
        let rows = DTMF_ROWS_HZ.map(|f| goertzel_power(block, rate, f));
        let cols = DTMF_COLS_HZ.map(|f| goertzel_power(block, rate, f));
        let (r, row) = strongest(&rows);
        let (c, col) = strongest(&cols);
        let lim = &self.limits;
        let min_power = 10f64.powf(lim.min_tone_dbfs as f64 / 10.0);
        let db = |a: f64, b: f64| 10.0 * (a / b).log10();
        let peak_ratio = 10f64.powf(lim.min_relative_peak_db as f64 / 10.0);
        let ok = row >= min_power
            && col >= min_power
            && db(row, col) <= lim.max_row_over_col_db as f64
            && db(col, row) <= lim.max_col_over_row_db as f64
            && rows
                .iter()
                .enumerate()
                .all(|(i, &p)| i == r || p * peak_ratio <= row)
            && cols
                .iter()
                .enumerate()
                .all(|(i, &p)| i == c || p * peak_ratio <= col)
            && row + col >= lim.min_tone_share * total;
        ok.then(|| DTMF_KEYS[r][c])
    }
}

fn strongest(powers: &[f64; 4]) -> (usize, f64) {
    let mut best = (0, powers[0]);
    for (i, &p) in powers.iter().enumerate().skip(1) {
        if p > best.1 {
            best = (i, p);
        }
    }
    best
}

#[cfg(test)]
pub(crate) mod test_signals {
    //! Deterministic test signals shared by the audio tests.

    /// A tiny xorshift generator, so tests need no `rand`.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// Uniform in [0, 1).
        pub fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Uniform in [-1, 1).
        pub fn signed(&mut self) -> f64 {
            self.unit() * 2.0 - 1.0
        }
    }

    /// Samples of a 16-bit PCM mono WAV file (test fixtures only: no validation beyond
    /// what the tests need).
    pub fn wav_mono16(bytes: &[u8]) -> (u32, Vec<f32>) {
        let mut pos = 12;
        let mut rate = 0;
        while pos + 8 <= bytes.len() {
            let id = &bytes[pos..pos + 4];
            let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
            let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
            if id == b"fmt " {
                assert_eq!(u16::from_le_bytes([body[2], body[3]]), 1, "mono");
                assert_eq!(u16::from_le_bytes([body[14], body[15]]), 16, "16-bit");
                rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            } else if id == b"data" {
                let samples = body
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                    .collect();
                return (rate, samples);
            }
            pos += 8 + len + (len & 1);
        }
        panic!("no data chunk");
    }

    pub fn sine(freq_hz: f64, amp: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (std::f64::consts::TAU * freq_hz * i as f64 / rate as f64).sin() as f32)
            .collect()
    }

    /// A speech-like signal: a glottal pulse train with drifting pitch (100-220 Hz) through
    /// three resonators whose formants move, under a syllable envelope (~4 Hz), with a pause
    /// of 0.3 s every 1.7 s if `pauses`. Peak 0.5.
    pub fn speech_like(rate: u32, n: usize, seed: u64, pauses: bool) -> Vec<f32> {
        let mut rng = Rng(seed | 1);
        let fs = rate as f64;
        let mut out = Vec::with_capacity(n);
        let mut phase = 0.0f64;
        // Two-pole resonator states per formant.
        let mut st = [[0.0f64; 2]; 3];
        for i in 0..n {
            let t = i as f64 / fs;
            let pitch = 150.0 + 50.0 * (t * 1.3).sin() + 20.0 * (t * 3.7).sin();
            phase += pitch / fs;
            let pulse = if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            };
            let excitation = pulse + 0.02 * rng.signed();
            let formants = [
                600.0 + 250.0 * (t * 2.1).sin(),
                1400.0 + 500.0 * (t * 1.7 + 1.0).sin(),
                2600.0 + 300.0 * (t * 0.9).sin(),
            ];
            let mut y = 0.0;
            for (k, &f) in formants.iter().enumerate() {
                let bw = 80.0 + 40.0 * k as f64;
                let r = (-std::f64::consts::PI * bw / fs).exp();
                let a1 = 2.0 * r * (std::f64::consts::TAU * f / fs).cos();
                let a2 = -r * r;
                let v = excitation * (1.0 - r) * 8.0 + a1 * st[k][0] + a2 * st[k][1];
                st[k][1] = st[k][0];
                st[k][0] = v;
                y += v / (k as f64 + 1.0);
            }
            // Syllables at ~4 Hz (voicing dips between them, as in running speech), and a
            // pause of ~0.3 s every ~1.7 s.
            let syl = 0.65 - 0.35 * (std::f64::consts::TAU * 4.0 * t).cos();
            let pause = if pauses && (t % 1.7) > 1.4 { 0.0 } else { 1.0 };
            out.push((0.25 * y * syl * pause) as f32);
        }
        let peak = out.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-9);
        out.iter().map(|v| v * 0.5 / peak).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_signals::*;
    use super::*;

    const RATE: u32 = 48_000;

    #[test]
    fn levels_of_known_signals() {
        let s = sine(1000.0, 1.0, RATE, 4800);
        assert!((rms_dbfs(&s) + 3.01).abs() < 0.05, "{}", rms_dbfs(&s));
        assert!(peak_dbfs(&s).abs() < 0.01);
        let s = sine(1000.0, 0.1, RATE, 4800);
        assert!((rms_dbfs(&s) + 23.01).abs() < 0.05);
        assert!((peak_dbfs(&s) + 20.0).abs() < 0.01);
        assert_eq!(rms_dbfs(&[0.0; 480]), MIN_DBFS);
        assert_eq!(rms_dbfs(&[]), MIN_DBFS);
        assert_eq!(peak_dbfs(&[f32::NAN, f32::INFINITY]), MIN_DBFS);
        assert!((dbfs_to_amplitude(-6.0206) - 0.5).abs() < 1e-4);
    }

    #[test]
    fn level_meter_holds_then_falls() {
        let mut m = LevelMeter::default();
        let loud = sine(1000.0, 1.0, RATE, 960);
        let quiet = [0.0f32; 960];
        m.update(&loud, 0.02);
        assert!(m.peak_dbfs() > -0.1);
        for _ in 0..20 {
            m.update(&quiet, 0.02); // 0.4 s: still held
        }
        assert!(m.peak_dbfs() > -0.1);
        for _ in 0..50 {
            m.update(&quiet, 0.02); // 1 s of falling at 20 dB/s
        }
        assert!(
            m.peak_dbfs() < -15.0 && m.peak_dbfs() > -25.0,
            "{}",
            m.peak_dbfs()
        );
        assert_eq!(m.rms_dbfs(), MIN_DBFS);
    }

    #[test]
    fn goertzel_measures_one_frequency() {
        let s = sine(440.0, 0.5, RATE, 4800);
        let p = goertzel_power(&s, RATE as f64, 440.0);
        assert!((p - 0.125).abs() < 0.002, "{p}");
        assert!(goertzel_power(&s, RATE as f64, 1000.0) < 1e-5);
        assert_eq!(goertzel_power(&[], RATE as f64, 440.0), 0.0);
        // Off-bin frequency still measured fully.
        let s = sine(697.3, 0.5, RATE, 1229);
        let p = goertzel_power(&s, RATE as f64, 697.3);
        assert!((p - 0.125).abs() < 0.005, "{p}");
    }

    #[test]
    fn dominant_of_picks_the_tone_per_window() {
        let cands = [440.0, 480.0, 1000.0];
        let s = sine(1000.0, 0.3, RATE, 4800);
        assert_eq!(dominant_of(&s, RATE as f64, &cands), Some(1000.0));
        // A dual tone has no single dominant frequency.
        let mut g = ToneGenerator::new(ToneSpec::ringback(), RATE);
        let mut buf = vec![0.0; 4800];
        g.fill(&mut buf);
        assert_eq!(dominant_of(&buf, RATE as f64, &cands), None);
        assert_eq!(dominant_of(&[0.0; 4800], RATE as f64, &cands), None);
        let mut rng = Rng(7);
        let noise: Vec<f32> = (0..4800).map(|_| rng.signed() as f32 * 0.3).collect();
        assert_eq!(dominant_of(&noise, RATE as f64, &cands), None);
    }

    #[test]
    fn generators_are_phase_continuous() {
        let spec = ToneSpec::busy();
        let mut whole = ToneGenerator::new(spec, RATE);
        let mut a = vec![0.0; 48_000];
        whole.fill(&mut a);
        let mut pieces = ToneGenerator::new(spec, RATE);
        let mut b = vec![0.0; 48_000];
        for chunk in b.chunks_mut(137) {
            pieces.fill(chunk);
        }
        assert_eq!(a, b);
        // And no sample-to-sample jump bigger than the tone itself can make.
        let max_step = a
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0f32, f32::max);
        let amp = 2.0 * dbfs_to_amplitude(-20.0);
        assert!(max_step < amp * std::f32::consts::TAU * 620.0 / RATE as f32 * 1.1);
    }

    #[test]
    fn ring_cadence_is_two_on_four_off() {
        let mut g = ToneGenerator::new(ToneSpec::ring(), RATE);
        let mut buf = vec![0.0; RATE as usize * 12];
        g.fill(&mut buf);
        let on: Vec<bool> = buf.chunks(4800).map(|w| rms_dbfs(w) > -30.0).collect();
        // 100 ms windows: 20 on, 40 off, twice.
        let expected: Vec<bool> = (0..120).map(|i| i % 60 < 20).collect();
        assert_eq!(on, expected);
        let first = &buf[4800..9600];
        assert_eq!(
            dominant_of(first, RATE as f64, &[440.0, 660.0]),
            Some(660.0)
        );
    }

    #[test]
    fn ringback_and_busy_have_their_frequencies() {
        let mut g = ToneGenerator::new(ToneSpec::ringback(), RATE);
        let mut buf = vec![0.0; 4800];
        g.fill(&mut buf);
        for f in [440.0, 480.0] {
            let p = goertzel_power(&buf, RATE as f64, f);
            assert!((p - 0.005).abs() < 0.0005, "{f}: {p}");
        }
        let mut g = ToneGenerator::new(ToneSpec::busy(), RATE);
        let mut buf = vec![0.0; RATE as usize * 2];
        g.fill(&mut buf);
        let on: Vec<bool> = buf.chunks(4800).map(|w| rms_dbfs(w) > -40.0).collect();
        let expected: Vec<bool> = (0..20).map(|i| i % 10 < 5).collect();
        assert_eq!(on, expected);
    }

    #[test]
    fn dtmf_frequencies_are_standard() {
        assert_eq!(dtmf_freqs('1'), Some((697.0, 1209.0)));
        assert_eq!(dtmf_freqs('0'), Some((941.0, 1336.0)));
        assert_eq!(dtmf_freqs('#'), Some((941.0, 1477.0)));
        assert_eq!(dtmf_freqs('*'), Some((941.0, 1209.0)));
        assert_eq!(dtmf_freqs('d'), Some((941.0, 1633.0)));
        assert_eq!(dtmf_freqs('x'), None);
        assert!(ToneSpec::dtmf('E').is_none());
    }

    /// Keys pressed `on_ms`, released `off_ms`, with optional white noise.
    fn dial(keys: &str, on_ms: usize, off_ms: usize, noise: f32, rate: u32) -> Vec<f32> {
        let mut out = Vec::new();
        let mut rng = Rng(99);
        for k in keys.chars() {
            let mut g = ToneGenerator::new(ToneSpec::dtmf(k).unwrap(), rate);
            let mut on = vec![0.0; on_ms * rate as usize / 1000];
            g.fill(&mut on);
            out.extend(on);
            out.extend(std::iter::repeat_n(0.0, off_ms * rate as usize / 1000));
        }
        for s in &mut out {
            *s += noise * rng.signed() as f32;
        }
        out
    }

    fn detect(det: &mut DtmfDetector, pcm: &[f32], frame: usize) -> String {
        let mut got = String::new();
        for f in pcm.chunks(frame) {
            det.push(f);
            while let Some(d) = det.poll_digit() {
                got.push(d);
            }
        }
        got
    }

    #[test]
    fn dtmf_detects_every_key_once() {
        let keys = "1234567890*#ABCD";
        let pcm = dial(keys, 100, 100, 0.0, RATE);
        assert_eq!(detect(&mut DtmfDetector::new(RATE), &pcm, 960), keys);
        // Short presses and pauses, some noise (SNR ~20 dB), odd frame sizes, 8 kHz too.
        let pcm = dial("5551212#", 60, 60, 0.02, RATE);
        assert_eq!(detect(&mut DtmfDetector::new(RATE), &pcm, 441), "5551212#");
        let pcm = dial("90210", 70, 60, 0.01, 8000);
        assert_eq!(detect(&mut DtmfDetector::new(8000), &pcm, 160), "90210");
    }

    #[test]
    fn dtmf_long_press_reports_once() {
        let pcm = dial("7", 2000, 100, 0.01, RATE);
        assert_eq!(detect(&mut DtmfDetector::new(RATE), &pcm, 960), "7");
    }

    #[test]
    fn dtmf_rejects_speech_single_tones_and_twist() {
        let speech = speech_like(RATE, RATE as usize * 10, 3, true);
        assert_eq!(detect(&mut DtmfDetector::new(RATE), &speech, 960), "");
        let tone = sine(697.0, 0.3, RATE, 48_000);
        assert_eq!(detect(&mut DtmfDetector::new(RATE), &tone, 960), "");
        // Row 12 dB above column: beyond the 8 dB the detector allows.
        let (r, c) = dtmf_freqs('5').unwrap();
        let a = sine(r, 0.4, RATE, 9600);
        let b = sine(c, 0.1, RATE, 9600);
        let twisted: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(detect(&mut DtmfDetector::new(RATE), &twisted, 960), "");
        // Row 3 dB above column is fine.
        let b = sine(c, 0.4 / 1.41, RATE, 9600);
        let fine: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(detect(&mut DtmfDetector::new(RATE), &fine, 960), "5");
        // Too quiet (-50 dBFS per tone).
        let q = dial("5", 200, 50, 0.0, RATE);
        let q: Vec<f32> = q.iter().map(|s| s * 0.01).collect();
        assert_eq!(detect(&mut DtmfDetector::new(RATE), &q, 960), "");
        // Garbage does not panic.
        let mut det = DtmfDetector::new(0);
        det.push(&[f32::NAN; 5000]);
        assert_eq!(det.poll_digit(), None);
    }

    #[test]
    fn dtmf_queue_is_bounded() {
        let keys: String = std::iter::repeat_n("12", 20).collect();
        let pcm = dial(&keys, 80, 80, 0.0, RATE);
        let mut det = DtmfDetector::new(RATE);
        det.push(&pcm);
        let mut got = String::new();
        while let Some(d) = det.poll_digit() {
            got.push(d);
        }
        assert_eq!(got.len(), 16);
        assert!(keys.ends_with(&got));
    }
}

/// Checks on the shipped files in `sounds/` (made by `scripts/gen-sounds.py`): each one is
/// what its name says.
#[cfg(test)]
mod sound_files {
    use super::test_signals::wav_mono16;
    use super::*;

    const RATE: f64 = 48_000.0;

    macro_rules! sound {
        ($name:literal) => {{
            let (rate, samples) = wav_mono16(include_bytes!(concat!("../../sounds/", $name)));
            assert_eq!(rate, 48_000, $name);
            samples
        }};
    }

    /// Whether each 100 ms window is above -40 dBFS.
    fn on_off(x: &[f32]) -> Vec<bool> {
        x.chunks(4800).map(|w| rms_dbfs(w) > -40.0).collect()
    }

    #[test]
    fn ringback_is_440_480_two_on_four_off() {
        let s = sound!("ringback.wav");
        assert_eq!(s.len(), 6 * 48_000);
        let expected: Vec<bool> = (0..60).map(|i| i < 20).collect();
        assert_eq!(on_off(&s), expected);
        let burst = &s[4800..4800 * 19];
        for f in [440.0, 480.0] {
            assert!(goertzel_power(burst, RATE, f) > 0.004, "{f} Hz missing");
        }
        assert_eq!(
            dominant_of(burst, RATE, &[350.0, 440.0, 620.0]),
            Some(440.0)
        );
    }

    #[test]
    fn busy_is_480_620_half_on_half_off() {
        let s = sound!("busy.wav");
        assert_eq!(on_off(&s), (0..10).map(|i| i < 5).collect::<Vec<_>>());
        let burst = &s[2400..21_600];
        for f in [480.0, 620.0] {
            assert!(goertzel_power(burst, RATE, f) > 0.004, "{f} Hz missing");
        }
    }

    #[test]
    fn monitor_beep_is_a_short_1400_hz_beep() {
        let s = sound!("monitor-beep.wav");
        assert!(s.len() >= 4800 && s.len() <= 24_000);
        assert_eq!(
            dominant_of(&s, RATE, &[440.0, 1000.0, 1400.0]),
            Some(1400.0)
        );
    }

    #[test]
    fn dtmf_files_decode_to_their_keys() {
        let files: [(&[f32], char); 12] = [
            (&sound!("dtmf-0.wav"), '0'),
            (&sound!("dtmf-1.wav"), '1'),
            (&sound!("dtmf-2.wav"), '2'),
            (&sound!("dtmf-3.wav"), '3'),
            (&sound!("dtmf-4.wav"), '4'),
            (&sound!("dtmf-5.wav"), '5'),
            (&sound!("dtmf-6.wav"), '6'),
            (&sound!("dtmf-7.wav"), '7'),
            (&sound!("dtmf-8.wav"), '8'),
            (&sound!("dtmf-9.wav"), '9'),
            (&sound!("dtmf-star.wav"), '*'),
            (&sound!("dtmf-hash.wav"), '#'),
        ];
        for (samples, key) in files {
            assert_eq!(samples.len(), 4800, "{key}: 100 ms");
            let mut det = DtmfDetector::new(48_000);
            det.push(samples);
            det.push(&[0.0; 4800]);
            assert_eq!(det.poll_digit(), Some(key));
            assert_eq!(det.poll_digit(), None);
        }
    }

    #[test]
    fn ringtone_is_loud_and_loops_cleanly() {
        let s = sound!("ringtone.wav");
        assert!(s.len() >= 2 * 48_000 && s.len() <= 8 * 48_000);
        assert!(peak_dbfs(&s) > -6.0, "clearly audible");
        // Bursts then a pause, and it starts and ends quietly, so looping cannot click.
        let pattern = on_off(&s);
        assert!(pattern[0] && !pattern[pattern.len() - 1]);
        assert!(s[0].abs() < 0.01 && s[s.len() - 1].abs() < 0.01);
    }

    #[test]
    fn hold_music_is_music_and_loops_seamlessly() {
        let s = sound!("hold-music.wav");
        let secs = s.len() as f64 / RATE;
        assert!((20.0..=30.0).contains(&secs), "{secs} s");
        // Never silent, never loud.
        for w in s.chunks(24_000) {
            let db = rms_dbfs(w);
            assert!(db > -40.0 && db < -10.0, "{db}");
        }
        assert!(peak_dbfs(&s) < -1.0);
        // Seamless loop: the jump from the last sample to the first is an ordinary step.
        let max_step = s
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0f32, f32::max);
        assert!((s[0] - s[s.len() - 1]).abs() <= max_step);
        // Music, not a beep: the chord changes. Which of the four chord roots (bass note and
        // its octave) is strongest in the first half second of each two-bar chord: C, A, F, G.
        let roots = [65.41, 110.0, 87.31, 98.0];
        let lows: Vec<f64> = (0..4)
            .map(|c| {
                let w = &s[c * 5 * 48_000..][..24_000];
                let p = |f: f64| goertzel_power(w, RATE, f) + goertzel_power(w, RATE, 2.0 * f);
                roots
                    .iter()
                    .copied()
                    .max_by(|a, b| p(*a).total_cmp(&p(*b)))
                    .unwrap()
            })
            .collect();
        assert_eq!(lows, roots.to_vec());
    }

    #[test]
    fn prompts_sound_like_speech() {
        for s in [
            sound!("queue-prompt.wav"),
            sound!("survey-prompt.wav"),
            sound!("menu-prompt.wav"),
            sound!("callback-prompt.wav"),
        ] {
            let secs = s.len() as f64 / RATE;
            assert!((2.0..=8.0).contains(&secs), "{secs} s");
            // Speech: syllables and gaps, i.e. a level that moves a lot from 50 ms to 50 ms.
            let levels: Vec<f32> = s.chunks(2400).map(rms_dbfs).collect();
            let loud = levels.iter().filter(|&&l| l > -30.0).count();
            let quiet = levels.iter().filter(|&&l| l < -45.0).count();
            assert!(
                loud > levels.len() / 3 && quiet >= 4,
                "{loud} loud, {quiet} quiet"
            );
        }
    }
}

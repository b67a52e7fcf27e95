//! DTMF as RTP telephone events (RFC 4733), both directions, as plain state machines with no
//! I/O: the headless peers and the phone send with [`DtmfSender`], the switchboard and the peers
//! decode with [`Rfc4733Receiver`].
//!
//! An event is a run of packets that all carry the RTP timestamp of the event's start, on the
//! audio stream's SSRC and clock: a first packet with the marker bit, one update per 20 ms
//! frame with the duration so far, and an end packet (E bit) sent three times (RFC 4733 2.5.1.4)
//! so that one lost packet does not lose the end. The receiver reports each digit once, when
//! its end arrives (or, if every end packet was lost, when the next event starts or no update
//! came for [`END_SILENCE`]), with its duration.
//!
//! Run loops:
//! ```text
//! sender:   every 20 ms audio frame at RTP time ts: dtmf.on_frame(ts, &mut packets); send them
//! receiver: rx.handle_packet(now, rtp_ts, payload)?; rx.handle_timeout(now) at rx.poll_timeout();
//!           while let Some(d) = rx.poll_digit() { emit(DigitPressed(d)) }
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The telephone-event clock we negotiate: the same 48 kHz clock as Opus, so an event's
/// timestamp is a time on the audio stream.
pub const CLOCK_HZ: u32 = 48_000;
/// RTP time of one 20 ms frame at [`CLOCK_HZ`].
pub const FRAME_TICKS: u32 = 960;
/// How often an end packet is sent (RFC 4733 2.5.1.4 recommends three).
pub const END_REPEATS: u8 = 3;
/// An event whose end never arrives is reported after this long without an update.
pub const END_SILENCE: Duration = Duration::from_millis(400);
/// Default length of a sent key press and of the pause after it.
pub const DEFAULT_TONE_MS: u32 = 100;
pub const DEFAULT_GAP_MS: u32 = 60;
/// Volume field of sent events, in -dBm0 (10 is a typical telephone keypad level).
const VOLUME: u8 = 10;
/// Longest event we send (the 16-bit duration field holds 1.36 s at 48 kHz).
const MAX_TONE_MS: u32 = 1_000;

/// Why telephone-event input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rfc4733Error {
    #[error("a telephone-event payload is 4 bytes per report; got {0} bytes")]
    ShortPayload(usize),
    #[error("{0:?} is not a DTMF key (0-9, *, #, A-D)")]
    NotAKey(char),
}

/// RFC 4733 event code of a keypad key: `0`-`9` are 0-9, `*` 10, `#` 11, `A`-`D` 12-15.
pub fn event_code(key: char) -> Option<u8> {
    match key.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        l @ 'A'..='D' => Some(l as u8 - b'A' + 12),
        _ => None,
    }
}

/// The keypad key of an RFC 4733 event code; `None` for the non-DTMF events (16 and up).
pub fn event_key(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// One telephone-event RTP packet to send: the header fields that differ from audio, and the
/// 4-byte payload (event, E bit + volume, duration in RTP ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephonePacket {
    /// Set on the first packet of an event only.
    pub marker: bool,
    /// RTP time of the event's start (every packet of one event carries the same).
    pub timestamp: u32,
    pub payload: [u8; 4],
}

impl TelephonePacket {
    fn new(code: u8, marker: bool, end: bool, timestamp: u32, duration_ticks: u32) -> Self {
        let d = duration_ticks.min(u16::MAX as u32) as u16;
        let flags = if end { 0x80 } else { 0 } | VOLUME;
        let [d0, d1] = d.to_be_bytes();
        TelephonePacket {
            marker,
            timestamp,
            payload: [code, flags, d0, d1],
        }
    }
}

/// The event being sent.
#[derive(Debug, Clone, Copy)]
struct Sending {
    code: u8,
    start_ts: u32,
    /// Frames of tone sent so far (the duration field is this many frames).
    frames: u32,
    /// Frames the tone lasts.
    total_frames: u32,
    /// End packets sent so far.
    ends_sent: u8,
}

/// Turns queued keys into telephone-event packets, one step per 20 ms audio frame.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    /// Keys waiting to be sent, oldest first.
    queue: VecDeque<u8>,
    sending: Option<Sending>,
    tone_frames: u32,
    gap_frames: u32,
    /// Frames of pause left before the next key may start.
    pause_left: u32,
}

impl Default for DtmfSender {
    fn default() -> Self {
        Self::new(DEFAULT_TONE_MS, DEFAULT_GAP_MS)
    }
}

impl DtmfSender {
    /// Each key lasts `tone_ms` (at least one frame, at most 1 s) with `gap_ms` between keys.
    pub fn new(tone_ms: u32, gap_ms: u32) -> Self {
        DtmfSender {
            queue: VecDeque::new(),
            sending: None,
            tone_frames: tone_ms.clamp(20, MAX_TONE_MS).div_ceil(20),
            gap_frames: gap_ms.div_ceil(20),
            pause_left: 0,
        }
    }

    /// Queues keys to send in order. All or nothing: a string with a non-key is refused whole.
    pub fn push_keys(&mut self, keys: &str) -> Result<(), Rfc4733Error> {
        let codes = keys
            .chars()
            .map(|k| event_code(k).ok_or(Rfc4733Error::NotAKey(k)))
            .collect::<Result<Vec<u8>, _>>()?;
        self.queue.extend(codes);
        Ok(())
    }

    /// Nothing queued and nothing on the wire.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.sending.is_none()
    }

    /// One audio frame whose RTP time is `frame_ts` is being sent: appends the telephone-event
    /// packets that go with it (none, one, or an end packet) to `out`.
    pub fn on_frame(&mut self, frame_ts: u32, out: &mut Vec<TelephonePacket>) {
        if self.sending.is_none() {
            if self.pause_left > 0 {
                self.pause_left -= 1;
                return;
            }
            let Some(code) = self.queue.pop_front() else {
                return;
            };
            self.sending = Some(Sending {
                code,
                start_ts: frame_ts,
                frames: 0,
                total_frames: self.tone_frames,
                ends_sent: 0,
            });
        }
        let Some(s) = &mut self.sending else {
            return;
        };
        if s.frames < s.total_frames {
            s.frames += 1;
            let end = s.frames == s.total_frames;
            out.push(TelephonePacket::new(
                s.code,
                s.frames == 1,
                end,
                s.start_ts,
                s.frames * FRAME_TICKS,
            ));
            if end {
                s.ends_sent = 1;
            }
        } else {
            // The retransmissions of the end packet, one per frame.
            s.ends_sent += 1;
            out.push(TelephonePacket::new(
                s.code,
                false,
                true,
                s.start_ts,
                s.frames * FRAME_TICKS,
            ));
        }
        if s.ends_sent >= END_REPEATS {
            self.sending = None;
            self.pause_left = self.gap_frames;
        }
    }
}

/// A key press received as telephone events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedDigit {
    pub key: char,
    /// How long the key was held, from the event's duration field.
    pub duration_ms: u32,
}

/// The event being received.
#[derive(Debug, Clone, Copy)]
struct Receiving {
    timestamp: u32,
    code: u8,
    /// Longest duration seen, in RTP ticks.
    ticks: u32,
    last_update: Instant,
}

/// Decodes telephone-event packets of one stream: reports each key once, however many of its
/// packets (updates, repeated ends) arrive, in any order.
#[derive(Debug, Clone)]
pub struct Rfc4733Receiver {
    clock_hz: u32,
    current: Option<Receiving>,
    /// Timestamps of the last few events already reported: their late or repeated packets
    /// are ignored.
    reported: [Option<u32>; 4],
    reported_next: usize,
    /// Digits not yet polled.
    digits: VecDeque<ReceivedDigit>,
}

impl Default for Rfc4733Receiver {
    fn default() -> Self {
        Self::new(CLOCK_HZ)
    }
}

impl Rfc4733Receiver {
    /// A receiver for events on an RTP clock of `clock_hz` (the negotiated telephone-event rate).
    pub fn new(clock_hz: u32) -> Self {
        Rfc4733Receiver {
            clock_hz: clock_hz.max(1),
            current: None,
            reported: [None; 4],
            reported_next: 0,
            digits: VecDeque::new(),
        }
    }

    /// The RTP clock this receiver reads durations on.
    pub fn clock_hz(&self) -> u32 {
        self.clock_hz
    }

    /// One telephone-event packet: its RTP timestamp and payload. Payloads that pack several
    /// reports (RFC 4733 2.5.1.5) are read by their first report, the one this packet is about.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), Rfc4733Error> {
        let [code, flags, d0, d1, ..] = *payload else {
            return Err(Rfc4733Error::ShortPayload(payload.len()));
        };
        if event_key(code).is_none() || self.reported.contains(&Some(timestamp)) {
            // Not a key (flash, tones of other kinds) or a late copy of a reported event.
            return Ok(());
        }
        let end = flags & 0x80 != 0;
        let ticks = u32::from(u16::from_be_bytes([d0, d1]));
        if let Some(current) = self.current
            && current.timestamp != timestamp
        {
            // A new event while the old one never ended: its end packets were all lost.
            self.report(current);
        }
        let current = self.current.get_or_insert(Receiving {
            timestamp,
            code,
            ticks: 0,
            last_update: now,
        });
        current.ticks = current.ticks.max(ticks);
        current.last_update = now;
        if end {
            let done = *current;
            self.report(done);
        }
        Ok(())
    }

    /// Reports an event whose updates stopped without an end packet.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(current) = self.current
            && now >= current.last_update + END_SILENCE
        {
            self.report(current);
        }
    }

    /// When [`Self::handle_timeout`] next has something to do.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|c| c.last_update + END_SILENCE)
    }

    /// The next received key, oldest first.
    #[must_use]
    pub fn poll_digit(&mut self) -> Option<ReceivedDigit> {
        self.digits.pop_front()
    }

    fn report(&mut self, event: Receiving) {
        self.current = None;
        self.reported[self.reported_next] = Some(event.timestamp);
        self.reported_next = (self.reported_next + 1) % self.reported.len();
        if let Some(key) = event_key(event.code) {
            let duration_ms = (u64::from(event.ticks) * 1000 / u64::from(self.clock_hz)) as u32;
            self.digits.push_back(ReceivedDigit { key, duration_ms });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a sender for `frames` frames starting at RTP time `ts0`; returns (frame, packet).
    fn send(sender: &mut DtmfSender, ts0: u32, frames: u32) -> Vec<(u32, TelephonePacket)> {
        let mut all = Vec::new();
        let mut out = Vec::new();
        for f in 0..frames {
            out.clear();
            sender.on_frame(ts0.wrapping_add(f * FRAME_TICKS), &mut out);
            all.extend(out.iter().map(|p| (f, *p)));
        }
        all
    }

    #[test]
    fn keys_map_to_event_codes_and_back() {
        let keys = "0123456789*#ABCD";
        for (i, k) in keys.chars().enumerate() {
            assert_eq!(event_code(k), Some(i as u8));
            assert_eq!(event_key(i as u8), Some(k));
        }
        assert_eq!(event_code('b'), Some(13));
        assert_eq!(event_code('x'), None);
        assert_eq!(event_key(16), None);
    }

    #[test]
    fn sender_builds_start_updates_and_three_ends() {
        let mut s = DtmfSender::new(100, 60);
        s.push_keys("5").unwrap();
        let packets = send(&mut s, 1_000, 20);
        // 100 ms = five frames of tone, then two more end packets.
        assert_eq!(packets.len(), 7);
        assert!(packets.iter().all(|(_, p)| p.timestamp == 1_000));
        assert!(packets[0].1.marker && packets[1..].iter().all(|(_, p)| !p.marker));
        assert_eq!(packets[0].1.payload, [5, VOLUME, 0x03, 0xc0]); // 960 ticks
        let ends: Vec<_> = packets
            .iter()
            .filter(|(_, p)| p.payload[1] & 0x80 != 0)
            .collect();
        assert_eq!(ends.len(), 3);
        assert!(
            ends.iter()
                .all(|(_, p)| p.payload[2..] == 4800u16.to_be_bytes())
        );
        assert_eq!(
            packets.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
        assert!(s.is_idle());
    }

    #[test]
    fn sender_pauses_between_keys_and_refuses_non_keys() {
        let mut s = DtmfSender::new(40, 60);
        assert_eq!(s.push_keys("12x"), Err(Rfc4733Error::NotAKey('x')));
        assert!(s.is_idle(), "a refused string queues nothing");
        s.push_keys("12").unwrap();
        let packets = send(&mut s, 0, 30);
        let starts: Vec<u32> = packets
            .iter()
            .filter(|(_, p)| p.marker)
            .map(|(f, _)| *f)
            .collect();
        // Key 1: frames 0-1 tone, 2-3 repeated ends; 3 frames of pause; key 2 at frame 7.
        assert_eq!(starts, [0, 7]);
        assert_eq!(packets.last().unwrap().1.timestamp, 7 * FRAME_TICKS);
    }

    #[test]
    fn receiver_reports_each_key_once_with_its_duration() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(100, 60);
        s.push_keys("2#").unwrap();
        let mut rx = Rfc4733Receiver::default();
        for (f, p) in send(&mut s, u32::MAX - 2_000, 40) {
            let now = t0 + Duration::from_millis(20 * u64::from(f));
            rx.handle_packet(now, p.timestamp, &p.payload).unwrap();
        }
        let got: Vec<_> = std::iter::from_fn(|| rx.poll_digit()).collect();
        assert_eq!(
            got,
            [
                ReceivedDigit {
                    key: '2',
                    duration_ms: 100
                },
                ReceivedDigit {
                    key: '#',
                    duration_ms: 100
                }
            ]
        );
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn receiver_survives_loss_reordering_and_duplicates() {
        let t0 = Instant::now();
        let mut s = DtmfSender::new(200, 60);
        s.push_keys("7").unwrap();
        let mut packets: Vec<_> = send(&mut s, 5_000, 20)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        // Lose the first packet and the first end, swap two updates, repeat one.
        packets.remove(0);
        let first_end = packets
            .iter()
            .position(|p| p.payload[1] & 0x80 != 0)
            .unwrap();
        packets.remove(first_end);
        packets.swap(1, 2);
        packets.insert(3, packets[3]);
        let mut rx = Rfc4733Receiver::default();
        for p in &packets {
            rx.handle_packet(t0, p.timestamp, &p.payload).unwrap();
        }
        assert_eq!(
            rx.poll_digit(),
            Some(ReceivedDigit {
                key: '7',
                duration_ms: 200
            })
        );
        assert_eq!(rx.poll_digit(), None);
    }

    #[test]
    fn receiver_ends_an_event_whose_ends_were_all_lost() {
        let t0 = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        let update = |code: u8, ticks: u16| {
            let [a, b] = ticks.to_be_bytes();
            [code, VOLUME, a, b]
        };
        rx.handle_packet(t0, 100, &update(3, 960)).unwrap();
        rx.handle_packet(t0 + Duration::from_millis(20), 100, &update(3, 1920))
            .unwrap();
        // Nothing more: reported after END_SILENCE, not before.
        let due = rx.poll_timeout().unwrap();
        assert_eq!(due, t0 + Duration::from_millis(20) + END_SILENCE);
        rx.handle_timeout(due - Duration::from_millis(1));
        assert_eq!(rx.poll_digit(), None);
        rx.handle_timeout(due);
        assert_eq!(
            rx.poll_digit(),
            Some(ReceivedDigit {
                key: '3',
                duration_ms: 40
            })
        );
        // A late end of the same event is not a second key.
        let [a, b] = 1920u16.to_be_bytes();
        rx.handle_packet(due, 100, &[3, 0x80 | VOLUME, a, b])
            .unwrap();
        assert_eq!(rx.poll_digit(), None);
        // A new event while one is open reports the open one first.
        rx.handle_packet(due, 9_000, &update(4, 960)).unwrap();
        rx.handle_packet(due, 19_000, &update(5, 960)).unwrap();
        assert_eq!(rx.poll_digit().map(|d| d.key), Some('4'));
    }

    #[test]
    fn receiver_refuses_short_payloads_and_ignores_non_keys() {
        let now = Instant::now();
        let mut rx = Rfc4733Receiver::default();
        assert_eq!(
            rx.handle_packet(now, 1, &[1, 2, 3]),
            Err(Rfc4733Error::ShortPayload(3))
        );
        rx.handle_packet(now, 1, &[16, 0x80, 0, 10]).unwrap(); // flash: not a key
        assert_eq!(rx.poll_digit(), None);
        // A payload with two reports is read by its first.
        rx.handle_packet(now, 2, &[9, 0x80, 0x12, 0xc0, 1, 0x80, 0, 1])
            .unwrap();
        assert_eq!(
            rx.poll_digit(),
            Some(ReceivedDigit {
                key: '9',
                duration_ms: 100
            })
        );
    }
}

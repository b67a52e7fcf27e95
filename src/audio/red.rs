//! RFC 2198 redundant audio ("RED", `audio/red` with `fmtp 111/111`, as browsers send Opus
//! with redundancy): every packet carries the current Opus frame and copies of the frames
//! before it, so a lost packet's frame still arrives in the next one or two. In-band Opus FEC
//! alone cannot reach good quality at 10-20 % random loss (BENCHMARKS.md: about 3.2 and 2.0
//! PESQ); two levels of RED leave 0.1 % and 0.8 % of frames lost.
//!
//! Sans-IO: [`RedEncoder`] wraps frames into payloads, [`parse`] splits a payload into its
//! blocks with their own timestamps. The RTP layer sends and receives the payloads.
//!
//! Payload layout: one 4-byte header per redundant block (F=1, 7-bit PT, 14-bit timestamp
//! offset back from the packet's timestamp, 10-bit length), oldest first; then the 1-byte
//! primary header (F=0, 7-bit PT); then the blocks' data in the same order.

use std::collections::VecDeque;

/// Payload type we offer for RED (the one browsers use).
pub const RED_PT: u8 = 63;
/// Frames of redundancy each packet carries (the one and two before it).
pub const RED_DEPTH: usize = 2;

const F_BIT: u8 = 0x80;
const MAX_OFFSET: u32 = 0x3fff;
const MAX_BLOCK_LEN: usize = 0x3ff;
/// More blocks than any sender of ours or a browser uses; bounds the work a bad packet causes.
const MAX_BLOCKS: usize = 16;

/// Why a RED payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedError {
    #[error("RED payload is cut short")]
    Truncated,
    #[error("RED payload has more than {MAX_BLOCKS} blocks")]
    TooManyBlocks,
}

/// One block of a RED payload: a frame with its own payload type and RTP timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedBlock<'a> {
    pub payload_type: u8,
    pub timestamp: u32,
    pub data: &'a [u8],
    /// False for the packet's own (newest) frame.
    pub redundant: bool,
}

/// The blocks of one RED payload, oldest first, the primary last; held inline (no allocation
/// per packet) and read as a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedBlocks<'a> {
    blocks: [RedBlock<'a>; MAX_BLOCKS + 1],
    len: usize,
}

impl<'a> std::ops::Deref for RedBlocks<'a> {
    type Target = [RedBlock<'a>];

    fn deref(&self) -> &[RedBlock<'a>] {
        &self.blocks[..self.len]
    }
}

/// Splits a RED payload that arrived with RTP timestamp `timestamp` into its blocks, oldest
/// first, the primary last.
pub fn parse(timestamp: u32, payload: &[u8]) -> Result<RedBlocks<'_>, RedError> {
    const EMPTY: RedBlock<'static> = RedBlock {
        payload_type: 0,
        timestamp: 0,
        data: &[],
        redundant: true,
    };
    let mut out = RedBlocks {
        blocks: [EMPTY; MAX_BLOCKS + 1],
        len: 0,
    };
    // First the headers: each block's payload type, timestamp and (for a redundant one)
    // length, kept in `out.blocks` with `data` still empty; then the data, the primary's
    // being what is left after the others.
    let mut lengths = [0usize; MAX_BLOCKS + 1];
    let mut pos = 0;
    loop {
        let first = *payload.get(pos).ok_or(RedError::Truncated)?;
        if first & F_BIT == 0 {
            out.blocks[out.len] = RedBlock {
                payload_type: first & 0x7f,
                timestamp,
                data: &[],
                redundant: false,
            };
            out.len += 1;
            pos += 1;
            break;
        }
        if out.len == MAX_BLOCKS {
            return Err(RedError::TooManyBlocks);
        }
        let h = payload.get(pos..pos + 4).ok_or(RedError::Truncated)?;
        let offset = (u32::from(h[1]) << 6) | (u32::from(h[2]) >> 2);
        lengths[out.len] = (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]);
        out.blocks[out.len] = RedBlock {
            payload_type: first & 0x7f,
            timestamp: timestamp.wrapping_sub(offset),
            data: &[],
            redundant: true,
        };
        out.len += 1;
        pos += 4;
    }
    for (block, len) in out.blocks[..out.len].iter_mut().zip(lengths) {
        let len = if block.redundant {
            len
        } else {
            payload.len().saturating_sub(pos)
        };
        block.data = payload.get(pos..pos + len).ok_or(RedError::Truncated)?;
        pos += len;
    }
    Ok(out)
}

/// Wraps each frame with copies of the [`RED_DEPTH`] frames sent before it.
#[derive(Debug, Default)]
pub struct RedEncoder {
    /// Earlier frames, newest last: (RTP timestamp, payload type, data).
    history: VecDeque<(u32, u8, Vec<u8>)>,
}

impl RedEncoder {
    /// The RED payload for `frame` (payload type `payload_type`, RTP time `timestamp`).
    /// Earlier frames go in only while they are recent: after a pause (mute, no call) the old
    /// ones are dropped, and one that does not fit a RED header is left out.
    pub fn wrap(&mut self, timestamp: u32, payload_type: u8, frame: &[u8]) -> Vec<u8> {
        let frame_ticks = crate::peer::voice::FRAME as u32;
        self.history.retain(|(ts, _, data)| {
            let back = timestamp.wrapping_sub(*ts);
            back > 0
                && back <= frame_ticks * RED_DEPTH as u32
                && back <= MAX_OFFSET
                && data.len() <= MAX_BLOCK_LEN
        });
        let earlier: usize = self.history.iter().map(|(_, _, data)| data.len()).sum();
        // The payload itself is allocated (the RTP layer keeps it); the copy of `frame` kept
        // for the next packets reuses the buffer of the frame that drops out of the history.
        let mut out = Vec::with_capacity(self.history.len() * 4 + 1 + earlier + frame.len());
        for (ts, pt, data) in &self.history {
            let offset = timestamp.wrapping_sub(*ts);
            out.push(F_BIT | (pt & 0x7f));
            out.push((offset >> 6) as u8);
            out.push((((offset & 0x3f) << 2) as u8) | ((data.len() >> 8) as u8 & 0x03));
            out.push((data.len() & 0xff) as u8);
        }
        out.push(payload_type & 0x7f);
        for (_, _, data) in &self.history {
            out.extend_from_slice(data);
        }
        out.extend_from_slice(frame);
        let mut copy = if self.history.len() == RED_DEPTH {
            self.history
                .pop_front()
                .map(|(_, _, data)| data)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        copy.clear();
        copy.extend_from_slice(frame);
        self.history.push_back((timestamp, payload_type, copy));
        out
    }

    /// Forgets the frames sent so far (a new call: nothing of the last one is repeated).
    pub fn reset(&mut self) {
        self.history.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u32 = 960;

    #[test]
    fn each_packet_carries_the_two_frames_before_it() {
        let mut enc = RedEncoder::default();
        let frames: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let payloads: Vec<Vec<u8>> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| enc.wrap(1000 + i as u32 * F, 111, f))
            .collect();
        // The first has nothing before it: a 1-byte header and the frame.
        let first = parse(1000, &payloads[0]).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].data, &frames[0][..]);
        assert!(!first[0].redundant);
        let last = parse(1000 + 3 * F, &payloads[3]).unwrap();
        let got: Vec<(u32, &[u8], bool)> = last
            .iter()
            .map(|b| (b.timestamp, b.data, b.redundant))
            .collect();
        assert_eq!(
            got,
            vec![
                (1000 + F, &frames[1][..], true),
                (1000 + 2 * F, &frames[2][..], true),
                (1000 + 3 * F, &frames[3][..], false),
            ]
        );
        assert!(last.iter().all(|b| b.payload_type == 111));
    }

    #[test]
    fn a_pause_drops_the_old_frames_and_timestamps_wrap() {
        let mut enc = RedEncoder::default();
        enc.wrap(u32::MAX - 100, 111, &[1; 20]);
        // Next frame across the 32-bit wrap: the earlier one is still one frame back.
        let p = enc.wrap((u32::MAX - 100).wrapping_add(F), 111, &[2; 20]);
        let blocks = parse((u32::MAX - 100).wrapping_add(F), &p).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].timestamp, u32::MAX - 100);
        // A second of silence later (a mute): nothing old is repeated.
        let later = (u32::MAX - 100).wrapping_add(51 * F);
        let p = enc.wrap(later, 111, &[3; 20]);
        assert_eq!(parse(later, &p).unwrap().len(), 1);
        enc.reset();
        let p = enc.wrap(later + F, 111, &[4; 20]);
        assert_eq!(parse(later + F, &p).unwrap().len(), 1);
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        assert_eq!(parse(0, &[]), Err(RedError::Truncated));
        // A redundant header cut short, and one whose block runs past the end.
        assert_eq!(parse(0, &[0x80 | 111, 0]), Err(RedError::Truncated));
        assert_eq!(
            parse(0, &[0x80 | 111, 0, 0x3c << 2, 50, 111, 1, 2]),
            Err(RedError::Truncated)
        );
        let endless = vec![0x80 | 111; 4 * (MAX_BLOCKS + 2)];
        assert_eq!(parse(0, &endless), Err(RedError::TooManyBlocks));
        // A primary with no data is a valid (empty) block.
        assert_eq!(parse(7, &[111]).unwrap()[0].data, &[] as &[u8]);
    }
}

//! Benchmark: the CPU that each step of the phone's voice path costs per frame, in this
//! process alone (no devices, no network, no other thread), so that the figures hold still on
//! a busy machine where a whole call's CPU does not. For each step it runs 30 s of speech
//! through exactly what the voice clock does and prints the time per frame and the share of
//! one core at real time:
//!
//! - noise suppression + AGC (`MicProcessor`, RNNoise) on the microphone,
//! - Opus encoding (the peers' settings: VOIP, 64 kbit/s, in-band FEC at 10 %) at the
//!   complexity the peers use (10) and at 5 and 3 for comparison,
//! - RED wrapping, and receiving: RED parsing, jitter buffer and Opus decoding.
//!
//! Run: `cargo run --release --example bench_voice_cpu -- SPEECH.wav [FRAME_MS]`
//! (any WAV; resampled to 48 kHz mono; FRAME_MS 20 or 10).

use std::time::{Duration, Instant};

use sapa::audio::jitter::FrameDuration;
use sapa::audio::process::MicProcessor;
use sapa::audio::receive::AudioReceiver;
use sapa::audio::red::{self, RedEncoder};
use sapa::peer::voice::{VOICE_COMPLEXITY, voice_encoder};

const SECONDS: usize = 30;

/// Prints one step's cost: `spent` over `frames` frames of `frame_ms`.
fn report(step: &str, spent: Duration, frames: usize, frame_ms: u32) {
    let per_frame_us = spent.as_secs_f64() * 1e6 / frames as f64;
    let share = per_frame_us / (frame_ms as f64 * 1000.0) * 100.0;
    println!("{step:<44} {per_frame_us:>7.1} µs/frame  {share:>5.2} % of one core");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: bench_voice_cpu SPEECH.wav [FRAME_MS]");
        std::process::exit(2);
    };
    let frame_ms: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let Some(frame) = FrameDuration::from_ms(frame_ms) else {
        eprintln!("FRAME_MS must be 10 or 20");
        std::process::exit(2);
    };
    let n = frame.samples();
    let clip = sapa::wav::read_mono_48k(std::path::Path::new(path)).unwrap();
    // Loop the clip to SECONDS of speech.
    let speech: Vec<f32> = clip
        .iter()
        .copied()
        .cycle()
        .take(48_000 * SECONDS)
        .collect();
    let frames = speech.len() / n;
    println!("{SECONDS} s of speech in {frame_ms} ms frames ({frames} frames)");

    let mut processor = MicProcessor::new(true, true);
    let mut cleaned = speech.clone();
    let t = Instant::now();
    for f in cleaned.chunks_exact_mut(n) {
        processor.process(f);
    }
    report("noise suppression + AGC", t.elapsed(), frames, frame_ms);

    let mut packets = Vec::with_capacity(frames);
    let mut buf = [0u8; 1500];
    for complexity in [VOICE_COMPLEXITY, 5, 3] {
        let mut enc = voice_encoder(complexity).unwrap();
        let mut out = Vec::with_capacity(frames);
        let t = Instant::now();
        for f in cleaned.chunks_exact(n) {
            let len = enc.encode_float(f, &mut buf).unwrap();
            out.push(buf[..len].to_vec());
        }
        report(
            &format!("Opus encode, complexity {complexity}"),
            t.elapsed(),
            frames,
            frame_ms,
        );
        if complexity == VOICE_COMPLEXITY {
            packets = out;
        }
    }

    let mut red_encoder = RedEncoder::default();
    let t = Instant::now();
    let wrapped: Vec<Vec<u8>> = packets
        .iter()
        .enumerate()
        .map(|(i, p)| red_encoder.wrap((i * n) as u32, 111, p))
        .collect();
    report("RED wrap", t.elapsed(), frames, frame_ms);

    let mut rx = AudioReceiver::new_20ms().unwrap();
    let mut pcm = vec![0f32; n];
    let t0 = Instant::now();
    let t = Instant::now();
    for (i, p) in wrapped.iter().enumerate() {
        let at = t0 + Duration::from_micros((i as u64 + 1) * frame_ms as u64 * 1000);
        let ts = (i * n) as u32;
        if let Ok(blocks) = red::parse(ts, p) {
            let mut blocks = blocks.iter().rev();
            if let Some(primary) = blocks.next() {
                rx.push_opus(at, primary.timestamp, primary.data);
            }
            for b in blocks {
                rx.push_opus_redundant(at, b.timestamp, b.data);
            }
        }
        rx.pull(at + Duration::from_millis(15), &mut pcm);
    }
    report(
        "receive: RED parse + jitter buffer + decode",
        t.elapsed(),
        frames,
        frame_ms,
    );
}

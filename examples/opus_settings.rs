//! Benchmark helper: what the Opus encoder's settings cost and give, codec alone. For each
//! variant (complexity, widest audio band, expected loss) it encodes a speech WAV in 20 ms
//! frames at the peers' bit rate with in-band FEC, times the encoder, notes the band and the
//! mean packet size, and decodes the packets (optionally losing every Nth and rebuilding it
//! from the next packet's FEC) into `OUT_DIR/<variant>.wav`, for PESQ to score.
//!
//! The "adaptive" variant is what the peers do: complexity 10 for speech and 0 for quiet after
//! a hangover (`audio::effort`). The speech WAV's pauses are digital silence; a faint noise
//! floor (-71 dBFS RMS) is added to every variant's input, as a headset microphone has one.
//!
//! Run: `cargo run --release --example opus_settings -- SPEECH.wav OUT_DIR [LOSS_EVERY_N]`

use std::time::Instant;

use sapa::audio::effort::EncoderEffort;
use sapa::peer::voice::{EXPECTED_LOSS_PCT, QUIET_COMPLEXITY, VOICE_COMPLEXITY, voice_encoder};

struct Variant {
    name: &'static str,
    complexity: i32,
    max_band: opus::Bandwidth,
    loss_pct: i32,
    /// Complexity per frame as the peers choose it (`complexity` is then ignored).
    adaptive: bool,
}

fn variant(
    name: &'static str,
    complexity: i32,
    max_band: opus::Bandwidth,
    loss_pct: i32,
) -> Variant {
    Variant {
        name,
        complexity,
        max_band,
        loss_pct,
        adaptive: false,
    }
}

/// Encodes one frame, first setting the complexity `effort` chooses, if any.
fn encode(
    enc: &mut opus::Encoder,
    effort: &mut Option<EncoderEffort>,
    frame: &[f32],
    buf: &mut [u8],
) -> usize {
    if let Some(effort) = effort {
        let (complexity, changed) = effort.for_frame(frame);
        if changed {
            enc.set_complexity(complexity).unwrap();
        }
    }
    enc.encode_float(frame, buf).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: opus_settings SPEECH.wav OUT_DIR [LOSS_EVERY_N]");
        std::process::exit(2);
    }
    let mut clip = sapa::wav::read_mono_48k(std::path::Path::new(&args[1])).unwrap();
    let mut seed = 0x2545_f491_u32;
    for s in &mut clip {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        *s += (seed as f32 / u32::MAX as f32 - 0.5) * 0.001;
    }
    let out_dir = std::path::Path::new(&args[2]);
    std::fs::create_dir_all(out_dir).unwrap();
    let loss_every: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
    use opus::Bandwidth::{Fullband, Superwideband, Wideband};
    let variants = [
        variant("c10-fb", 10, Fullband, EXPECTED_LOSS_PCT),
        variant("c10-swb", 10, Superwideband, EXPECTED_LOSS_PCT),
        variant("c10-wb", 10, Wideband, EXPECTED_LOSS_PCT),
        variant("c9-fb", 9, Fullband, EXPECTED_LOSS_PCT),
        variant("c8-fb", 8, Fullband, EXPECTED_LOSS_PCT),
        variant("c8-wb", 8, Wideband, EXPECTED_LOSS_PCT),
        variant("c10-fb-noloss", 10, Fullband, 0),
        variant("c7-fb", 7, Fullband, EXPECTED_LOSS_PCT),
        variant("c6-fb", 6, Fullband, EXPECTED_LOSS_PCT),
        variant("c0-fb", 0, Fullband, EXPECTED_LOSS_PCT),
        Variant {
            adaptive: true,
            ..variant("adaptive", VOICE_COMPLEXITY, Fullband, EXPECTED_LOSS_PCT)
        },
    ];
    // Time 30 s of speech (the clip looped); decode the clip once for PESQ.
    let looped: Vec<f32> = clip.iter().copied().cycle().take(48_000 * 30).collect();
    for v in &variants {
        let make = || {
            let mut enc = voice_encoder(v.complexity).unwrap();
            enc.set_packet_loss_perc(v.loss_pct).unwrap();
            enc.set_max_bandwidth(v.max_band).unwrap();
            let effort = v
                .adaptive
                .then(|| EncoderEffort::new(VOICE_COMPLEXITY, QUIET_COMPLEXITY));
            (enc, effort)
        };
        let (mut enc, mut effort) = make();
        let mut buf = [0u8; 1500];
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for f in looped.chunks_exact(960) {
                encode(&mut enc, &mut effort, f, &mut buf);
            }
            best = best.min(t.elapsed().as_secs_f64() * 1e6 / (looped.len() / 960) as f64);
        }
        let (mut enc, mut effort) = make();
        let mut packets = Vec::new();
        let mut bands = std::collections::BTreeMap::new();
        for f in clip.chunks(960) {
            let mut frame = [0f32; 960];
            frame[..f.len()].copy_from_slice(f);
            let n = encode(&mut enc, &mut effort, &frame, &mut buf);
            *bands
                .entry(format!("{:?}", enc.get_bandwidth().unwrap()))
                .or_insert(0) += 1;
            packets.push(buf[..n].to_vec());
        }
        let mean_bytes =
            packets.iter().map(|p| p.len()).sum::<usize>() as f64 / packets.len() as f64;
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut out = Vec::with_capacity(clip.len());
        let mut pcm = [0f32; 960];
        for i in 0..packets.len() {
            let lost = loss_every > 0 && i % loss_every == loss_every - 1;
            let n = if !lost {
                dec.decode_float(&packets[i], &mut pcm, false).unwrap()
            } else if let Some(next) = packets.get(i + 1) {
                dec.decode_float(next, &mut pcm, true).unwrap()
            } else {
                dec.decode_float(&[], &mut pcm, false).unwrap()
            };
            out.extend_from_slice(&pcm[..n]);
        }
        sapa::wav::write_mono_48k(&out_dir.join(format!("{}.wav", v.name)), &out).unwrap();
        println!(
            "{:<14} {:>6.1} µs/frame {:>5.2} % of a core  {:>5.1} bytes/packet  {:?}",
            v.name,
            best,
            best / 200.0,
            mean_bytes,
            bands
        );
    }
}

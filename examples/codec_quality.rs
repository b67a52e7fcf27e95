//! Benchmark helper: runs a WAV file through exactly the codec settings of the headless
//! peers and the phone (48 kHz resampling, Opus VOIP 32 kbit/s with in-band FEC, 20 ms
//! frames) without any network or jitter buffer, so that PESQ of the result shows what the
//! codec alone costs. Optionally drops every Nth packet and recovers it with FEC.
//!
//! Run: `cargo run --release --example codec_quality -- IN.wav OUT.wav [LOSS_EVERY_N] [BITRATE] [EXPECTED_LOSS_PCT]`

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let input = sapa::wav::read_mono_48k(std::path::Path::new(&args[1])).unwrap();
    let loss_every: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
    let bitrate: i32 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(32_000);
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_inband_fec(true).unwrap();
    let expected_loss: i32 = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(10);
    enc.set_packet_loss_perc(expected_loss).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(bitrate)).unwrap();
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut packets = Vec::new();
    let mut buf = vec![0u8; 1500];
    for frame in input.chunks(960) {
        let mut f = [0f32; 960];
        f[..frame.len()].copy_from_slice(frame);
        let n = enc.encode_float(&f, &mut buf).unwrap();
        packets.push(buf[..n].to_vec());
    }
    // SAPA_RANDOM_LOSS=PCT: random loss instead, drawn by the peers' own `--impair loss=PCT`
    // (seed 1). Decided once, so both runs below lose the same packets.
    let random_loss: Option<u32> = std::env::var("SAPA_RANDOM_LOSS")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut impairment = random_loss
        .map(|pct| sapa::peer::impair::Impairment::parse(&format!("loss={pct},seed=1")).unwrap());
    let lost: Vec<bool> = (0..packets.len())
        .map(|i| match &mut impairment {
            Some(imp) => imp.decide().is_none(),
            None => loss_every > 0 && i % loss_every == loss_every - 1,
        })
        .collect();
    let mut out = Vec::new();
    let mut pcm = [0f32; 960];
    for i in 0..packets.len() {
        if lost[i] {
            // FEC only from a next packet that itself arrived.
            match packets
                .get(i + 1)
                .filter(|_| !lost.get(i + 1).copied().unwrap_or(true))
            {
                Some(next) => dec.decode_float(next, &mut pcm, true).unwrap(),
                None => dec.decode_float(&[], &mut pcm, false).unwrap(),
            };
        } else {
            dec.decode_float(&packets[i], &mut pcm, false).unwrap();
        }
        out.extend_from_slice(&pcm);
    }
    sapa::wav::write_mono_48k(std::path::Path::new(&args[2]), &out).unwrap();

    // The same packets and losses through the receiver (jitter buffer + decoder) with ideal
    // timing: packets arrive 1 ms after sending, frames are pulled every 20 ms.
    let mut cfg = sapa::audio::receive::ReceiverConfig::default();
    if let Some(ms) = std::env::var("SAPA_INITIAL_DELAY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.jitter.initial_delay_ms = ms;
    }
    let mut rx = sapa::audio::receive::AudioReceiver::new(cfg).unwrap();
    let t0 = std::time::Instant::now();
    let mut through = Vec::new();
    for i in 0..packets.len() + 10 {
        let at = t0 + std::time::Duration::from_millis(20 * i as u64);
        let arrived = packets.get(i).zip(lost.get(i)).filter(|(_, lost)| !**lost);
        if let Some((p, _)) = arrived {
            rx.push_packet(
                at + std::time::Duration::from_millis(1),
                i as u16,
                (i * 960) as u32,
                p,
            );
        }
        let mut pcm = [0f32; 960];
        rx.pull_frame(at + std::time::Duration::from_millis(10), &mut pcm);
        through.extend_from_slice(&pcm);
    }
    let path = format!("{}.rx.wav", args[2]);
    sapa::wav::write_mono_48k(std::path::Path::new(&path), &through).unwrap();
    eprintln!("{:?}", rx.stats());
}

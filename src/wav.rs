//! WAV files in and out for the headless peers and the sound bank: read any PCM or float WAV,
//! mix it down to mono and resample it to 48 kHz (rubato); write 48 kHz mono 16-bit.

use std::path::Path;

use rubato::{FftFixedInOut, Resampler};

/// The one sample rate inside Sapa: Opus, the bridge, the mixer and recordings run at 48 kHz.
pub const RATE_HZ: u32 = 48_000;

/// Why a WAV file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read WAV {path}: {source}")]
    Read { path: String, source: hound::Error },
    #[error("cannot write WAV {path}: {source}")]
    Write { path: String, source: hound::Error },
    #[error("WAV {path} is not usable: {why}")]
    Unsupported { path: String, why: String },
}

/// Reads a WAV file as 48 kHz mono samples in [-1, 1].
pub fn read_mono_48k(path: &Path) -> Result<Vec<f32>, WavError> {
    let reader = hound::WavReader::open(path).map_err(|source| WavError::Read {
        path: path.display().to_string(),
        source,
    })?;
    decode(reader, &path.display().to_string())
}

/// Reads WAV bytes (an embedded sound) as 48 kHz mono samples.
pub fn decode_mono_48k(bytes: &[u8], name: &str) -> Result<Vec<f32>, WavError> {
    let reader =
        hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|source| WavError::Read {
            path: name.to_owned(),
            source,
        })?;
    decode(reader, name)
}

fn decode<R: std::io::Read>(reader: hound::WavReader<R>, name: &str) -> Result<Vec<f32>, WavError> {
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    let read_err = |source| WavError::Read {
        path: name.to_owned(),
        source,
    };
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(read_err)?,
        hound::SampleFormat::Int => {
            if spec.bits_per_sample == 0 || spec.bits_per_sample > 32 {
                return Err(WavError::Unsupported {
                    path: name.to_owned(),
                    why: format!("{} bits per sample", spec.bits_per_sample),
                });
            }
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(read_err)?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    resample(&mono, spec.sample_rate, RATE_HZ).map_err(|why| WavError::Unsupported {
        path: name.to_owned(),
        why,
    })
}

/// Resamples mono audio; the output has `len * to / from` samples (rounded).
pub fn resample(input: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, String> {
    if from_hz == to_hz {
        return Ok(input.to_vec());
    }
    if from_hz == 0 {
        return Err("sample rate 0".into());
    }
    let mut resampler = FftFixedInOut::<f32>::new(from_hz as usize, to_hz as usize, 1024, 1)
        .map_err(|e| e.to_string())?;
    let want = (input.len() as u64 * to_hz as u64 / from_hz as u64) as usize;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(want + delay + 4096);
    let mut pos = 0;
    loop {
        let need = resampler.input_frames_next();
        let mut chunk = vec![0.0f32; need];
        let take = need.min(input.len().saturating_sub(pos));
        chunk[..take].copy_from_slice(&input[pos..pos + take]);
        pos += take;
        let produced = resampler
            .process(&[chunk], None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&produced[0]);
        if pos >= input.len() && out.len() >= want + delay {
            break;
        }
    }
    Ok(out[delay..delay + want].to_vec())
}

/// Writes 48 kHz mono 16-bit PCM.
pub fn write_mono_48k(path: &Path, samples: &[f32]) -> Result<(), WavError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE_HZ,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let write_err = |source| WavError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(write_err)?;
    for &s in samples {
        writer.write_sample(to_i16(s)).map_err(write_err)?;
    }
    writer.finalize().map_err(write_err)
}

/// Float sample to 16-bit, clamped.
pub fn to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_length_and_frequency() {
        let from = 22_050u32;
        let tone: Vec<f32> = (0..from as usize)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / from as f32).sin() * 0.5)
            .collect();
        let out = resample(&tone, from, RATE_HZ).unwrap();
        assert_eq!(out.len(), RATE_HZ as usize);
        // Count zero crossings over the middle: 440 Hz -> ~880 per second.
        let crossings = out[4800..43200]
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((690..=718).contains(&crossings), "{crossings}");
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        let s: Vec<f32> = (0..4800)
            .map(|i| ((i % 100) as f32 / 100.0) - 0.5)
            .collect();
        write_mono_48k(&path, &s).unwrap();
        let back = read_mono_48k(&path).unwrap();
        assert_eq!(back.len(), s.len());
        assert!(back.iter().zip(&s).all(|(a, b)| (a - b).abs() < 1e-3));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_mono_48k(b"RIFF....nonsense", "x").is_err());
    }
}

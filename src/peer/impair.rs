//! Network impairment on a headless peer's send path, for tests and benchmarks only:
//! `--impair loss=PCT,jitter=MS,seed=N` drops packets at random and delays the rest by a
//! random 0..MS, reproducibly for a given seed. Never use it on a real call.

use std::time::Duration;

/// Parsed `--impair` settings plus the random state.
#[derive(Debug, Clone)]
pub struct Impairment {
    pub loss_pct: f64,
    pub jitter_ms: u64,
    rng: u64,
}

impl Impairment {
    /// Parses `loss=10,jitter=30,seed=7` (any subset, any order).
    pub fn parse(spec: &str) -> Result<Impairment, String> {
        let mut imp = Impairment {
            loss_pct: 0.0,
            jitter_ms: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("expected KEY=VALUE, got {part:?}"))?;
            match key {
                "loss" => {
                    let v: f64 = value.parse().map_err(|_| format!("bad loss {value:?}"))?;
                    if !(0.0..=100.0).contains(&v) {
                        return Err("loss must be 0..=100 percent".into());
                    }
                    imp.loss_pct = v;
                }
                "jitter" => {
                    imp.jitter_ms = value.parse().map_err(|_| format!("bad jitter {value:?}"))?
                }
                "seed" => {
                    let seed: u64 = value.parse().map_err(|_| format!("bad seed {value:?}"))?;
                    imp.rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                }
                other => return Err(format!("unknown impairment {other:?} (loss, jitter, seed)")),
            }
        }
        Ok(imp)
    }

    fn next_f64(&mut self) -> f64 {
        // xorshift64*: small, fast, reproducible.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// None: drop this packet. Some(delay): send it after `delay`.
    pub fn decide(&mut self) -> Option<Duration> {
        if self.next_f64() * 100.0 < self.loss_pct {
            return None;
        }
        if self.jitter_ms == 0 {
            return Some(Duration::ZERO);
        }
        let ms = self.next_f64() * self.jitter_ms as f64;
        Some(Duration::from_micros((ms * 1000.0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_rate_matches_and_is_reproducible() {
        let mut a = Impairment::parse("loss=10,seed=3").unwrap();
        let mut b = Impairment::parse("seed=3,loss=10").unwrap();
        let lost = (0..10_000).filter(|_| a.decide().is_none()).count();
        assert!((900..1100).contains(&lost), "{lost}");
        let mut a = Impairment::parse("loss=10,seed=3").unwrap();
        for _ in 0..100 {
            assert_eq!(a.decide(), b.decide());
        }
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(Impairment::parse("loss=200").is_err());
        assert!(Impairment::parse("wobble=1").is_err());
        assert!(Impairment::parse("loss").is_err());
    }
}

//! The simulator's only source of randomness: a small, fast, seeded
//! generator, split into independent streams so that one node's draws never
//! shift another's.

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014): 64 bits of state, passes BigCrush, and any
/// 64-bit seed is a valid state.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A stream for `(seed, stream, index)`: the same triple always gives the
    /// same sequence, and different triples give unrelated sequences.
    pub(crate) fn stream(seed: u64, stream: u64, index: u64) -> Rng {
        let mut r = Rng(seed ^ 0x6a09_e667_f3bc_c908);
        let a = r.next_u64() ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut r = Rng(a);
        let b = r.next_u64() ^ index.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        Rng(b)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn f64(&mut self) -> f64 {
        // 53 random bits: every value is exactly representable.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)`; `n` must be positive.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift; the bias is below 2^-64 × n, irrelevant here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.f64() < p
    }

    /// Exponential with the given mean.
    pub(crate) fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    /// Pareto with scale `xm` and shape `alpha`: a heavy tail.
    pub(crate) fn pareto(&mut self, xm: f64, alpha: f64) -> f64 {
        xm / (1.0 - self.f64()).powf(1.0 / alpha)
    }

    /// A draw from a distribution given by quantiles `(probability, value)`
    /// in increasing order, linear in between (inverse-CDF sampling).
    pub(crate) fn quantiles(&mut self, points: &[(f64, f64)]) -> f64 {
        let u = self.f64();
        let mut prev = points[0];
        if u <= prev.0 {
            return prev.1;
        }
        for &p in &points[1..] {
            if u <= p.0 {
                let f = (u - prev.0) / (p.0 - prev.0);
                return prev.1 + f * (p.1 - prev.1);
            }
            prev = p;
        }
        prev.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(1, 2, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::stream(1, 2, 3).next_u64(),
            Rng::stream(1, 2, 4).next_u64()
        );
        assert_ne!(
            Rng::stream(1, 2, 3).next_u64(),
            Rng::stream(2, 2, 3).next_u64()
        );
    }

    #[test]
    fn quantile_sampling_follows_the_points() {
        let points = [(0.0, 0.0), (0.5, 1.0), (1.0, 3.0)];
        let mut r = Rng::stream(7, 0, 0);
        let mut draws: Vec<f64> = (0..20_000).map(|_| r.quantiles(&points)).collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[draws.len() / 2];
        assert!((median - 1.0).abs() < 0.05, "median {median}");
        assert!(draws.iter().all(|d| (0.0..=3.0).contains(d)));
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::stream(3, 0, 0);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            seen[r.below(5) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}

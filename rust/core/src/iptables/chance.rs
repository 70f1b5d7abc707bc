//! Randomness of `statistic --mode random`: exact branch probabilities and a seeded sampler.
//!
//! The kernel draws `get_random_u32() & 0x7fffffff` and matches when it is below the stored
//! 31-bit fraction, so a branch has probability exactly `p / 2³¹`. A path through several
//! branches multiplies such fractions; [`Probability`] keeps the product exactly as a dyadic
//! rational `numerator / 2^exponent` (a small arbitrary-precision numerator), and converts to
//! `f64` only for display.

/// Denominator exponent of one kernel fraction: probabilities are `p / 2^31`.
pub const FRACTION_BITS: u32 = 31;

/// `2^31`: a stored fraction of this value always matches.
pub const ALWAYS: u32 = 1 << FRACTION_BITS;

/// An exact probability `numerator / 2^exponent`, with `0 <= value <= 1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probability {
    /// Little-endian 32-bit limbs of the numerator (never empty).
    limbs: Vec<u32>,
    /// Power of two of the denominator.
    exponent: u32,
}

impl Default for Probability {
    fn default() -> Self {
        Probability::one()
    }
}

impl Probability {
    /// Certainty.
    pub fn one() -> Probability {
        Probability { limbs: vec![1], exponent: 0 }
    }

    /// Multiplies by `num / 2^31` (`num <= 2^31`), keeping the value exact and reduced.
    pub fn times_fraction(&mut self, num: u32) {
        let mut carry: u64 = 0;
        for limb in &mut self.limbs {
            let v = u64::from(*limb) * u64::from(num) + carry;
            // Truncation keeps the low 32 bits; the rest carries on.
            #[allow(clippy::cast_possible_truncation)]
            {
                *limb = v as u32;
            }
            carry = v >> 32;
        }
        if carry != 0 {
            #[allow(clippy::cast_possible_truncation)]
            self.limbs.push(carry as u32);
        }
        self.exponent += FRACTION_BITS;
        self.reduce();
    }

    fn is_zero(&self) -> bool {
        self.limbs.iter().all(|&l| l == 0)
    }

    /// Divides numerator and denominator by their common powers of two.
    fn reduce(&mut self) {
        while self.limbs.len() > 1 && self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
        if self.is_zero() {
            self.limbs = vec![0];
            self.exponent = 0;
            return;
        }
        let mut tz = 0u32;
        for &l in &self.limbs {
            if l == 0 {
                tz += 32;
            } else {
                tz += l.trailing_zeros();
                break;
            }
        }
        let shift = tz.min(self.exponent);
        if shift == 0 {
            return;
        }
        let words = (shift / 32) as usize;
        let bits = shift % 32;
        self.limbs.drain(..words);
        if bits > 0 {
            let n = self.limbs.len();
            for i in 0..n {
                let hi = if i + 1 < n { self.limbs[i + 1] << (32 - bits) } else { 0 };
                self.limbs[i] = (self.limbs[i] >> bits) | hi;
            }
        }
        self.exponent -= shift;
        while self.limbs.len() > 1 && self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    /// The numerator as big-endian bytes (no leading zero bytes; `[0]` for zero).
    pub fn numerator_be_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
        while out.len() > 1 && out[0] == 0 {
            out.remove(0);
        }
        out
    }

    /// The denominator is `2^exponent`.
    pub fn exponent(&self) -> u32 {
        self.exponent
    }

    /// The nearest `f64` (one rounding of the top 96 bits, then exact scaling).
    pub fn to_f64(&self) -> f64 {
        let n = self.limbs.len();
        let take = n.min(3);
        let mut acc: u128 = 0;
        for &l in self.limbs[n - take..].iter().rev() {
            acc = (acc << 32) | u128::from(l);
        }
        // numerator ≈ acc * 2^(32 * (n - take)); the dropped low limbs only affect rounding.
        #[allow(clippy::cast_precision_loss)]
        let mantissa = acc as f64;
        let shift = 32 * (n - take) as i64;
        pow2_scale(mantissa, shift - i64::from(self.exponent))
    }
}

/// `x * 2^e` without overflowing intermediate powers.
fn pow2_scale(mut x: f64, mut e: i64) -> f64 {
    while e > 0 {
        let step = e.min(1000);
        x *= 2f64.powi(i32::try_from(step).unwrap_or(1000));
        e -= step;
    }
    while e < 0 {
        let step = (-e).min(1000);
        x *= 2f64.powi(-i32::try_from(step).unwrap_or(1000));
        e += step;
        if x == 0.0 {
            break;
        }
    }
    x
}

/// A small deterministic PRNG (SplitMix64): reproducible statistic draws without a dependency.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// A generator seeded from the process's hash randomness (for unseeded sampling).
    pub fn from_entropy() -> Rng {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x006b_7562_656e_6174);
        Rng::new(h.finish())
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        // The high half of SplitMix64 output is the better-mixed one.
        #[allow(clippy::cast_possible_truncation)]
        {
            (self.next_u64() >> 32) as u32
        }
    }
}

/// Who decides `statistic --mode random` draws during one walk.
#[derive(Debug)]
pub enum Chooser {
    /// Sample like the kernel: `(next_u32() & 0x7fffffff) < p`.
    Sample(Rng),
    /// Follow a fixed prefix of decisions, then take the "match" side of every further branch and
    /// record where the other side was left unexplored (exact-outcomes enumeration).
    Explore {
        /// Decisions to replay.
        prefix: Vec<bool>,
        /// Every genuine branch met so far: (fraction, decision taken).
        taken: Vec<(u32, bool)>,
    },
}

impl Chooser {
    /// Decides one draw against the stored fraction `p` (out of 2³¹).
    pub fn draw(&mut self, p: u32) -> bool {
        match self {
            Chooser::Sample(rng) => (rng.next_u32() & 0x7fff_ffff) < p,
            Chooser::Explore { prefix, taken } => {
                if p == 0 {
                    return false;
                }
                if p >= ALWAYS {
                    return true;
                }
                let decision = prefix.get(taken.len()).copied().unwrap_or(true);
                taken.push((p, decision));
                decision
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_multiply_exactly() {
        let mut p = Probability::one();
        p.times_fraction(1 << 30);
        assert_eq!(p.to_f64(), 0.5);
        assert_eq!(p.exponent(), 1);
        p.times_fraction(1 << 30);
        assert_eq!(p.to_f64(), 0.25);
        assert_eq!(p.numerator_be_bytes(), vec![1]);
    }

    #[test]
    fn third_is_the_stored_fraction() {
        let mut p = Probability::one();
        p.times_fraction(715_827_882); // 0.3333333333 * 2^31, truncated
        assert_eq!(p.to_f64(), 715_827_882.0 / 2147483648.0);
    }

    #[test]
    fn long_products_stay_finite_and_exact_enough() {
        let mut p = Probability::one();
        for _ in 0..100 {
            p.times_fraction(ALWAYS - 1);
        }
        let expect = (1.0 - 1.0 / 2147483648.0f64).powi(100);
        assert!((p.to_f64() - expect).abs() < 1e-15);
        let mut q = Probability::one();
        for _ in 0..60 {
            q.times_fraction(3);
        }
        assert!(q.to_f64() > 0.0 || q.exponent() > 1074);
    }

    #[test]
    fn zero_stays_zero() {
        let mut p = Probability::one();
        p.times_fraction(0);
        assert_eq!(p.to_f64(), 0.0);
        assert_eq!(p.numerator_be_bytes(), vec![0]);
    }

    #[test]
    fn rng_is_reproducible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn explore_records_branches() {
        let mut c = Chooser::Explore { prefix: vec![false], taken: vec![] };
        assert!(!c.draw(1 << 30));
        assert!(c.draw(1 << 30));
        assert!(!c.draw(0));
        assert!(c.draw(ALWAYS));
        let Chooser::Explore { taken, .. } = c else { unreachable!() };
        assert_eq!(taken, vec![(1 << 30, false), (1 << 30, true)]);
    }
}

//! What several aggregator test files share.

/// A small deterministic generator (xorshift64*), so a failure names its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    #[allow(dead_code)] // not every test file draws bounded numbers
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

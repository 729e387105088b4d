//! Bit-level writer and reader used by the snapshot codec.
//!
//! Fields are packed LSB-first into a `Vec<u8>`. The reader never panics on short or hostile
//! input: every read is bounds-checked and returns [`BitsError`].

use thiserror::Error;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("bit stream ended early")]
pub struct BitsError;

/// Appends bit fields to a byte buffer. Reuse one writer (`clear`) to avoid allocating per message.
#[derive(Default, Debug, Clone)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits not yet flushed to `bytes`, LSB first.
    acc: u64,
    /// Number of valid bits in `acc` (always < 32 between calls: flushed four bytes at a time).
    acc_bits: u32,
}

impl BitWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.acc = 0;
        self.acc_bits = 0;
    }

    /// Writes the low `bits` bits of `value` (`bits` ≤ 32).
    pub fn write(&mut self, value: u32, bits: u32) {
        debug_assert!(bits <= 32);
        if bits == 0 {
            return;
        }
        let masked = u64::from(value) & ((1u64 << bits) - 1);
        self.acc |= masked << self.acc_bits;
        self.acc_bits += bits;
        if self.acc_bits >= 32 {
            self.bytes.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.acc_bits -= 32;
        }
    }

    pub fn write_bool(&mut self, value: bool) {
        self.write(u32::from(value), 1);
    }

    /// Writes a signed value in `bits` bits (two's complement); the caller checks the range.
    pub fn write_signed(&mut self, value: i32, bits: u32) {
        self.write(value as u32, bits);
    }

    /// Elias-gamma code for `n ≥ 1`: small numbers cost few bits (1 → 1 bit, 2..3 → 3 bits).
    pub fn write_gamma(&mut self, n: u32) {
        debug_assert!(n >= 1);
        let width = 32 - n.leading_zeros(); // bits needed for n
        // width-1 zeros, then n's bits from the top; written LSB-first as a prefix length.
        self.write(0, width - 1);
        self.write(1, 1);
        if width > 1 {
            self.write(n & ((1 << (width - 1)) - 1), width - 1);
        }
    }

    /// Overwrites `bits` bits at `bit_offset` (already written) with `value`; used to fill in a
    /// count once it is known, so the encoder needs a single pass.
    pub fn patch(&mut self, bit_offset: usize, value: u32, bits: u32) {
        debug_assert!(bit_offset + bits as usize <= self.bit_len());
        for i in 0..bits as usize {
            let bit = (value >> i) & 1 == 1;
            let position = bit_offset + i;
            let byte_index = position / 8;
            let mask = 1u8 << (position % 8);
            if byte_index < self.bytes.len() {
                if bit {
                    self.bytes[byte_index] |= mask;
                } else {
                    self.bytes[byte_index] &= !mask;
                }
            } else {
                let acc_mask = 1u64 << (position - self.bytes.len() * 8);
                if bit {
                    self.acc |= acc_mask;
                } else {
                    self.acc &= !acc_mask;
                }
            }
        }
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> usize {
        self.bytes.len() * 8 + self.acc_bits as usize
    }

    /// Pads to a whole byte and returns the bytes written so far.
    pub fn finish(&mut self) -> &[u8] {
        while self.acc_bits > 0 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.acc_bits = self.acc_bits.saturating_sub(8);
        }
        self.acc = 0;
        &self.bytes
    }
}

/// Reads bit fields written by [`BitWriter`].
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits from the start of `bytes`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub fn read(&mut self, bits: u32) -> Result<u32, BitsError> {
        debug_assert!(bits <= 32);
        if bits == 0 {
            return Ok(0);
        }
        if self.pos + bits as usize > self.bytes.len() * 8 {
            return Err(BitsError);
        }
        let mut value: u64 = 0;
        let mut got = 0u32;
        while got < bits {
            let byte = self.bytes[self.pos / 8];
            let offset = (self.pos % 8) as u32;
            let take = (8 - offset).min(bits - got);
            let chunk = (u64::from(byte) >> offset) & ((1u64 << take) - 1);
            value |= chunk << got;
            got += take;
            self.pos += take as usize;
        }
        Ok(value as u32)
    }

    pub fn read_bool(&mut self) -> Result<bool, BitsError> {
        Ok(self.read(1)? == 1)
    }

    pub fn read_signed(&mut self, bits: u32) -> Result<i32, BitsError> {
        let raw = self.read(bits)?;
        let shift = 32 - bits;
        Ok(((raw << shift) as i32) >> shift)
    }

    pub fn read_gamma(&mut self) -> Result<u32, BitsError> {
        let mut zeros = 0;
        while !self.read_bool()? {
            zeros += 1;
            if zeros > 31 {
                return Err(BitsError);
            }
        }
        let rest = self.read(zeros)?;
        Ok((1u32 << zeros) | rest)
    }

    /// True when fewer than 8 bits remain (only byte padding can be left).
    pub fn at_end(&self) -> bool {
        self.bytes.len() * 8 - self.pos < 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_mixed_fields() {
        let mut w = BitWriter::new();
        w.write(5, 3);
        w.write_signed(-7, 5);
        w.write_gamma(1);
        w.write_gamma(2);
        w.write_gamma(1000);
        w.write(0xdead_beef, 32);
        w.write_bool(true);
        let bytes = w.finish().to_vec();
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read(3).unwrap(), 5);
        assert_eq!(r.read_signed(5).unwrap(), -7);
        assert_eq!(r.read_gamma().unwrap(), 1);
        assert_eq!(r.read_gamma().unwrap(), 2);
        assert_eq!(r.read_gamma().unwrap(), 1000);
        assert_eq!(r.read(32).unwrap(), 0xdead_beef);
        assert!(r.read_bool().unwrap());
        assert!(r.at_end());
    }

    #[test]
    fn patch_overwrites_earlier_bits() {
        let mut w = BitWriter::new();
        w.write(0, 18);
        w.write(0b101, 3);
        w.patch(0, 0x2_abcd, 18);
        w.patch(18, 0b010, 3);
        let bytes = w.finish().to_vec();
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read(18).unwrap(), 0x2_abcd);
        assert_eq!(r.read(3).unwrap(), 0b010);
    }

    #[test]
    fn gamma_costs() {
        for (n, bits) in [(1, 1), (2, 3), (3, 3), (4, 5), (255, 15)] {
            let mut w = BitWriter::new();
            w.write_gamma(n);
            assert_eq!(w.bit_len(), bits, "gamma({n})");
        }
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let mut r = BitReader::new(&[0xff]);
        assert!(r.read(9).is_err());
        let mut r = BitReader::new(&[0, 0, 0, 0, 0]);
        assert!(r.read_gamma().is_err());
    }
}

//! Certificate serial numbers: random, positive, at most 20 octets (RFC 5280 4.1.2.2).

use std::fmt::Write as _;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// A positive certificate serial number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialNumber(Vec<u8>);

impl SerialNumber {
    /// A new serial: 16 octets, the top bit clear (so the DER INTEGER stays positive), then the
    /// issuance time in milliseconds (47 bits), then 80 bits of CSPRNG output, well above the
    /// CA/Browser Forum's 64. Serials are unpredictable and never sequential, yet a store's
    /// index of them grows at its end instead of being written at a random page for every
    /// certificate (docs/adr/0007-serial-numbers.md).
    pub fn random() -> Result<Self> {
        const RANDOM_BITS: u32 = 80;
        const TIME_BITS: u32 = 47;
        let mut random = [0u8; 16];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| Error::Crypto("random serial number"))?;
        let random = u128::from_be_bytes(random) & ((1u128 << RANDOM_BITS) - 1);
        // A clock before 1970 only loses the ordering, never the randomness.
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis())
            & ((1u128 << TIME_BITS) - 1);
        let value = (millis << RANDOM_BITS) | random;
        Ok(Self::from_be_bytes(&value.to_be_bytes()))
    }

    /// From big-endian magnitude bytes; leading zeros are dropped.
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        let start = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len().saturating_sub(1));
        Self(bytes[start..].to_vec())
    }

    pub fn as_be_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses the decimal form the HTTP API uses.
    pub fn from_decimal(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() || text.len() > 49 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::CertificateMalformed(format!(
                "serial number {text:?} is not a decimal number of at most 49 digits"
            )));
        }
        // Nine digits at a time into 32-bit limbs, least significant first: a CRL of a million
        // entries parses a million stored serials. 49 digits are below 2^163, within six limbs.
        let digits = text.as_bytes();
        let mut limbs = [0u32; 6];
        let first = match digits.len() % 9 {
            0 => 9,
            partial => partial,
        };
        let mut start = 0;
        let mut end = first.min(digits.len());
        while start < digits.len() {
            let chunk = &digits[start..end];
            let value = chunk
                .iter()
                .fold(0u64, |acc, &digit| acc * 10 + u64::from(digit - b'0'));
            let scale = 10u64.pow(chunk.len() as u32);
            let mut carry = value;
            for limb in limbs.iter_mut() {
                let product = u64::from(*limb) * scale + carry;
                *limb = product as u32;
                carry = product >> 32;
            }
            start = end;
            end = (end + 9).min(digits.len());
        }
        let mut magnitude = [0u8; 24];
        for (bytes, limb) in magnitude.chunks_exact_mut(4).zip(limbs.iter().rev()) {
            bytes.copy_from_slice(&limb.to_be_bytes());
        }
        Ok(Self::from_be_bytes(&magnitude))
    }

    /// The decimal form, as step prints it and the HTTP API carries it.
    pub fn to_decimal(&self) -> String {
        // Long division by 10^9 rather than by 10: nine digits per pass over the bytes, which
        // matters because every issuance and every OCSP answer prints a serial.
        const CHUNK: u64 = 1_000_000_000;
        let mut magnitude = self.0.clone();
        let mut chunks = Vec::new();
        while magnitude.iter().any(|&b| b != 0) {
            let mut remainder = 0u64;
            for byte in magnitude.iter_mut() {
                let value = (remainder << 8) | u64::from(*byte);
                // value < CHUNK * 256, so the quotient fits in a byte.
                *byte = (value / CHUNK) as u8;
                remainder = value % CHUNK;
            }
            chunks.push(remainder);
        }
        let Some((most_significant, rest)) = chunks.split_last() else {
            return "0".into();
        };
        let mut text = most_significant.to_string();
        for chunk in rest.iter().rev() {
            // Writing to a String cannot fail.
            let _ = write!(text, "{chunk:09}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trips() {
        for text in [
            "0",
            "1",
            "255",
            "256",
            "30671613121311574910895916201205874495",
            "999999999",
            "1000000000",
            "1000000001",
            "1000000000000000000",
            "10000000000000000000000000000000000000000000000",
            "1461501637330902918203684832716283019655932542975",
        ] {
            assert_eq!(SerialNumber::from_decimal(text).unwrap().to_decimal(), text);
        }
        let random = SerialNumber::random().unwrap();
        assert_eq!(
            SerialNumber::from_decimal(&random.to_decimal()).unwrap(),
            random
        );
        for _ in 0..1000 {
            let random = SerialNumber::random().unwrap();
            assert_eq!(random.to_decimal(), as_u128(&random).to_string());
        }
        assert!(SerialNumber::from_decimal("12a").is_err());
        assert!(SerialNumber::from_decimal("").is_err());
    }

    fn as_u128(serial: &SerialNumber) -> u128 {
        let mut bytes = [0u8; 16];
        bytes[16 - serial.as_be_bytes().len()..].copy_from_slice(serial.as_be_bytes());
        u128::from_be_bytes(bytes)
    }

    #[test]
    fn random_serials_are_positive_and_differ() {
        let a = SerialNumber::random().unwrap();
        let b = SerialNumber::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_be_bytes().len(), 16);
        assert!(a.as_be_bytes()[0] < 0x80);
    }

    #[test]
    fn serials_carry_the_time_above_eighty_random_bits() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let serials: Vec<u128> = (0..256)
            .map(|_| as_u128(&SerialNumber::random().unwrap()))
            .collect();
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        for serial in &serials {
            let millis = serial >> 80;
            assert!(
                (before..=after).contains(&millis),
                "{millis} not in {before}..={after}"
            );
        }
        // The low 80 bits are random: every bit takes both values across 256 serials (a fixed
        // bit would survive this with probability 2^-255).
        let low = (1u128 << 80) - 1;
        let ones = serials.iter().fold(0u128, |acc, s| acc | (s & low));
        let zeros = serials.iter().fold(0u128, |acc, s| acc | (!s & low));
        assert_eq!(ones, low);
        assert_eq!(zeros, low);
    }

    #[test]
    fn later_serials_sort_after_earlier_ones_as_decimal_text() {
        let first = SerialNumber::random().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = SerialNumber::random().unwrap();
        assert!(as_u128(&second) > as_u128(&first));
        // Stores index the decimal text; equal lengths make text order the numeric order.
        assert_eq!(first.to_decimal().len(), second.to_decimal().len());
        assert!(second.to_decimal() > first.to_decimal());
    }
}

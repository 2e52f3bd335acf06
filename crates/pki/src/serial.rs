//! Certificate serial numbers: random, positive, at most 20 octets (RFC 5280 4.1.2.2).

use std::fmt::Write as _;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// A positive certificate serial number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialNumber(Vec<u8>);

impl SerialNumber {
    /// 128 random bits with the top bit cleared (so the DER INTEGER stays positive and 16 bytes
    /// long): 127 bits of CSPRNG output, well above the CA/Browser Forum's 64.
    pub fn random() -> Result<Self> {
        let mut bytes = vec![0u8; 16];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Crypto("random serial number"))?;
        bytes[0] &= 0x7f;
        Ok(Self::from_be_bytes(&bytes))
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
        let mut magnitude: Vec<u8> = vec![0];
        for digit in text.bytes().map(|b| u32::from(b - b'0')) {
            let mut carry = digit;
            for byte in magnitude.iter_mut().rev() {
                let value = u32::from(*byte) * 10 + carry;
                *byte = (value & 0xff) as u8;
                carry = value >> 8;
            }
            while carry > 0 {
                magnitude.insert(0, (carry & 0xff) as u8);
                carry >>= 8;
            }
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
            let mut bytes = [0u8; 16];
            bytes[16 - random.as_be_bytes().len()..].copy_from_slice(random.as_be_bytes());
            assert_eq!(random.to_decimal(), u128::from_be_bytes(bytes).to_string());
        }
        assert!(SerialNumber::from_decimal("12a").is_err());
        assert!(SerialNumber::from_decimal("").is_err());
    }

    #[test]
    fn random_serials_are_positive_and_differ() {
        let a = SerialNumber::random().unwrap();
        let b = SerialNumber::random().unwrap();
        assert_ne!(a, b);
        assert!(a.as_be_bytes()[0] < 0x80);
    }
}

//! Certificate serial numbers: random, positive, at most 20 octets (RFC 5280 4.1.2.2).

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
        let mut magnitude = self.0.clone();
        let mut digits = Vec::new();
        while magnitude.iter().any(|&b| b != 0) {
            let mut remainder = 0u32;
            for byte in magnitude.iter_mut() {
                let value = (remainder << 8) | u32::from(*byte);
                *byte = (value / 10) as u8;
                remainder = value % 10;
            }
            digits.push(b'0' + remainder as u8);
        }
        if digits.is_empty() {
            return "0".into();
        }
        digits.reverse();
        String::from_utf8(digits).unwrap_or_default()
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
        ] {
            assert_eq!(SerialNumber::from_decimal(text).unwrap().to_decimal(), text);
        }
        let random = SerialNumber::random().unwrap();
        assert_eq!(
            SerialNumber::from_decimal(&random.to_decimal()).unwrap(),
            random
        );
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

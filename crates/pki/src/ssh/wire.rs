//! The SSH wire encoding (RFC 4251 section 5): big-endian integers and length-prefixed strings.

use crate::error::{Error, Result};

/// Appends SSH wire values to a buffer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Writer {
    out: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.out.push(value);
        self
    }

    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.out.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn string(&mut self, value: &[u8]) -> &mut Self {
        // Every string we write is far below 4 GiB: keys, names, signatures.
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.out.extend_from_slice(value);
        self
    }

    /// An unsigned big-endian number as an mpint: no leading zeros, and one zero octet in front
    /// when the top bit is set, so it does not read as negative.
    pub(crate) fn mpint(&mut self, unsigned: &[u8]) -> &mut Self {
        let significant = match unsigned.iter().position(|&b| b != 0) {
            Some(first) => &unsigned[first..],
            None => &[],
        };
        if significant.first().is_some_and(|b| b & 0x80 != 0) {
            let mut padded = Vec::with_capacity(significant.len() + 1);
            padded.push(0);
            padded.extend_from_slice(significant);
            self.string(&padded)
        } else {
            self.string(significant)
        }
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// Reads SSH wire values; every read checks the remaining length, so truncated input is an
/// error, never a panic.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, what }
    }

    fn truncated(&self, field: &str) -> Error {
        Error::SshMalformed(format!("{}: truncated at {field}", self.what))
    }

    fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8]> {
        if self.data.len() < len {
            return Err(self.truncated(field));
        }
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &str) -> Result<u32> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(crate) fn u64(&mut self, field: &str) -> Result<u64> {
        let bytes = self.take(8, field)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(array))
    }

    pub(crate) fn string(&mut self, field: &str) -> Result<&'a [u8]> {
        let len = self.u32(field)? as usize;
        self.take(len, field)
    }

    pub(crate) fn text(&mut self, field: &str) -> Result<String> {
        let bytes = self.string(field)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::SshMalformed(format!("{}: {field} is not UTF-8", self.what)))
    }

    /// An mpint that must be non-negative; returns its magnitude without leading zeros.
    pub(crate) fn positive_mpint(&mut self, field: &str) -> Result<&'a [u8]> {
        let bytes = self.string(field)?;
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(Error::SshMalformed(format!(
                "{}: {field} is negative",
                self.what
            )));
        }
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        Ok(&bytes[first..])
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn finish(&self) -> Result<()> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(Error::SshMalformed(format!(
                "{}: {} unexpected bytes at the end",
                self.what,
                self.data.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpints_are_minimal_and_never_negative() {
        let mut w = Writer::new();
        w.mpint(&[0, 0, 0x7f]).mpint(&[0x80]).mpint(&[0, 0]);
        assert_eq!(
            w.into_bytes(),
            [0, 0, 0, 1, 0x7f, 0, 0, 0, 2, 0, 0x80, 0, 0, 0, 0]
        );
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut r = Reader::new(&[0, 0, 0, 9, 1], "test");
        assert!(
            r.string("name")
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        assert!(Reader::new(&[1, 2], "test").u32("n").is_err());
    }
}

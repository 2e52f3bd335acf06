//! The revoked set as the store keeps it between starts (ADR 18): fixed-size records in parts
//! of at most [`MAX_STORED_PART`] bytes, after a first part that names the format.
//!
//! Nothing here is trusted more than the rows it stands for: a snapshot that does not decode
//! (another format, a truncated part, an impossible reason or serial) is not used, and the set
//! is read from the certificates instead.

use mayfly_pki::crl::CrlListed;
use time::OffsetDateTime;

use super::revoked_set::{Listed, SERIAL_MAX};
use crate::store::MAX_STORED_PART;

/// The first part: the format of the records after it.
pub(super) const FORMAT: &[u8] = b"mayfly revoked set 1";

/// revocation time (seconds, then nanoseconds), notAfter (seconds), reason, serial length,
/// serial (zero-padded).
const RECORD: usize = 8 + 4 + 8 + 1 + 1 + SERIAL_MAX;
const RECORDS_PER_PART: usize = MAX_STORED_PART / RECORD;

/// Why a snapshot is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Unusable {
    #[error("its format is not this version's")]
    Format,
    #[error("part {0} is not a whole number of records")]
    Truncated(usize),
    #[error("part {0} holds a record no revocation could have made")]
    Record(usize),
}

/// The parts of a snapshot of `entries`, each made when it is asked for: the store writes them
/// one by one, so the snapshot never exists whole in memory beside the set.
pub(super) fn parts(entries: &[Listed]) -> impl Iterator<Item = Vec<u8>> + Send + '_ {
    std::iter::once(FORMAT.to_vec()).chain(entries.chunks(RECORDS_PER_PART).map(|chunk| {
        let mut part = Vec::with_capacity(chunk.len() * RECORD);
        for entry in chunk {
            encode(entry, &mut part);
        }
        part
    }))
}

fn encode(entry: &Listed, out: &mut Vec<u8>) {
    let revoked_at = entry.revoked_at();
    out.extend_from_slice(&revoked_at.unix_timestamp().to_be_bytes());
    out.extend_from_slice(&revoked_at.nanosecond().to_be_bytes());
    out.extend_from_slice(&entry.not_after().to_be_bytes());
    out.push(entry.reason_code());
    let serial = entry.serial();
    // A serial is at most SERIAL_MAX bytes (`Listed` holds no more); zero-padded to it.
    out.push(u8::try_from(serial.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(serial);
    out.resize(out.len() + SERIAL_MAX.saturating_sub(serial.len()), 0);
}

/// The entries of a snapshot's parts, in the order they were kept; each part is dropped once
/// read.
pub(super) fn decode(parts: Vec<Vec<u8>>) -> Result<Vec<Listed>, Unusable> {
    let mut parts = parts.into_iter().enumerate();
    match parts.next() {
        Some((_, first)) if first == FORMAT => {}
        _ => return Err(Unusable::Format),
    }
    let mut entries = Vec::new();
    for (index, part) in parts {
        if part.len() % RECORD != 0 {
            return Err(Unusable::Truncated(index));
        }
        entries.reserve(part.len() / RECORD);
        for record in part.chunks_exact(RECORD) {
            entries.push(decode_record(record).ok_or(Unusable::Record(index))?);
        }
    }
    Ok(entries)
}

fn decode_record(record: &[u8]) -> Option<Listed> {
    let (seconds, rest) = record.split_first_chunk::<8>()?;
    let (nanos, rest) = rest.split_first_chunk::<4>()?;
    let (not_after, rest) = rest.split_first_chunk::<8>()?;
    let (&reason_code, rest) = rest.split_first()?;
    let (&serial_len, serial) = rest.split_first()?;
    let nanos = u32::from_be_bytes(*nanos);
    // 7 is unassigned in RFC 5280 5.3.1; 10 (aACompromise) is the last code.
    if nanos >= 1_000_000_000 || reason_code > 10 || reason_code == 7 {
        return None;
    }
    let revoked_at = OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(*seconds))
        .ok()?
        .replace_nanosecond(nanos)
        .ok()?;
    let serial = serial.get(..usize::from(serial_len))?;
    Listed::new(
        revoked_at,
        i64::from_be_bytes(*not_after),
        serial,
        reason_code,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(i: u32) -> Listed {
        let serial: Vec<u8> = (0..=(i % 21) as u8).map(|b| b.wrapping_add(1)).collect();
        Listed::new(
            OffsetDateTime::from_unix_timestamp(1_700_000_000 + i64::from(i))
                .and_then(|t| t.replace_nanosecond(i * 7))
                .expect("a valid time"),
            1_800_000_000 + i64::from(i),
            &serial,
            [0, 1, 3, 4, 5, 9][i as usize % 6],
        )
        .expect("a valid entry")
    }

    #[test]
    fn entries_read_back_as_they_were_across_parts() {
        let entries: Vec<Listed> = (0..(RECORDS_PER_PART as u32 * 2 + 5)).map(listed).collect();
        let parts: Vec<Vec<u8>> = parts(&entries).collect();
        assert_eq!(parts.len(), 4, "the format part and three of records");
        assert!(parts.iter().all(|part| part.len() <= MAX_STORED_PART));
        assert_eq!(decode(parts), Ok(entries));
    }

    #[test]
    fn an_empty_set_is_the_format_part_alone() {
        let parts: Vec<Vec<u8>> = parts(&[]).collect();
        assert_eq!(parts, vec![FORMAT.to_vec()]);
        assert_eq!(decode(parts), Ok(Vec::new()));
    }

    #[test]
    fn what_no_revocation_could_have_made_is_not_used() {
        let good: Vec<Vec<u8>> = parts(&[listed(3)]).collect();
        assert_eq!(decode(Vec::new()), Err(Unusable::Format));
        let mut other_format = good.clone();
        other_format[0] = b"mayfly revoked set 2".to_vec();
        assert_eq!(decode(other_format), Err(Unusable::Format));
        let mut truncated = good.clone();
        truncated[1].pop();
        assert_eq!(decode(truncated), Err(Unusable::Truncated(1)));
        // The serial length byte, the reason byte, the nanoseconds.
        for (at, value) in [
            (21, 0u8),
            (21, SERIAL_MAX as u8 + 1),
            (20, 7),
            (20, 11),
            (8, 0xff),
        ] {
            let mut bad = good.clone();
            bad[1][at] = value;
            assert_eq!(decode(bad), Err(Unusable::Record(1)), "byte {at} = {value}");
        }
    }
}

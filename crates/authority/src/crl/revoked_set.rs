//! The revoked certificates a complete CRL lists, held in memory and brought up to date from
//! the revocations the store numbered since the last read.
//!
//! A complete CRL of a million entries used to read all of them from the store each time it was
//! made: seconds of a database turning rows into text and of mayfly parsing them, for a list
//! that changed by a handful of revocations. The set is read whole once, then only what was
//! revoked since ([`CertStore::revocations_after`]). The store numbers revocations in the order
//! they commit on every instance, so the news of another instance sharing the database come in
//! too, and a revocation dated months back (an import) is news like any other.
//!
//! Each entry is a fixed 48 bytes, no allocation of its own, listed by the CRL encoder as it is.

use std::collections::HashSet;

use mayfly_pki::crl::CrlListed;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::store::{CertStore, RevocationSeq, RevokedEntry};

/// The longest serial magnitude a stored serial can have: 49 decimal digits (what
/// `SerialNumber::from_decimal` accepts) fit in 21 bytes.
const SERIAL_MAX: usize = 21;

/// One revoked certificate as the set holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listed {
    revoked_at: OffsetDateTime,
    /// Unix seconds: compared with the time of each CRL, never encoded.
    not_after: i64,
    serial: [u8; SERIAL_MAX],
    serial_len: u8,
    reason_code: u8,
}

impl Listed {
    pub(super) fn from_entry(entry: &RevokedEntry) -> Result<Listed> {
        let malformed = || Error::SerialMalformed(entry.serial.clone());
        let parsed =
            mayfly_pki::SerialNumber::from_decimal(&entry.serial).map_err(|_| malformed())?;
        let bytes = parsed.as_be_bytes();
        let mut serial = [0u8; SERIAL_MAX];
        serial
            .get_mut(..bytes.len())
            .ok_or_else(malformed)?
            .copy_from_slice(bytes);
        Ok(Listed {
            revoked_at: entry.revoked_at,
            not_after: entry.not_after.unix_timestamp(),
            serial,
            serial_len: u8::try_from(bytes.len()).map_err(|_| malformed())?,
            reason_code: entry.reason_code,
        })
    }

    fn serial_bytes(&self) -> &[u8] {
        self.serial
            .get(..usize::from(self.serial_len))
            .unwrap_or(&self.serial)
    }
}

impl CrlListed for Listed {
    fn serial(&self) -> &[u8] {
        self.serial_bytes()
    }
    fn revoked_at(&self) -> OffsetDateTime {
        self.revoked_at
    }
    fn reason_code(&self) -> u8 {
        self.reason_code
    }
}

/// Every revoked certificate a complete CRL lists, as of the last [`RevokedSet::update`].
#[derive(Debug, Default)]
pub(crate) struct RevokedSet {
    entries: Vec<Listed>,
    /// The last revocation read; `None` until the set was read whole.
    seen: Option<RevocationSeq>,
}

impl RevokedSet {
    /// Reads what changed since the last call (everything, the first time), and drops what
    /// expired before `now` unless `keep_expired`. On an error the set is as it was, and the
    /// next call reads the same news again.
    pub(crate) async fn update(
        &mut self,
        store: &dyn CertStore,
        now: OffsetDateTime,
        keep_expired: bool,
    ) -> Result<()> {
        let unexpired_at = (!keep_expired).then_some(now);
        let unexpired =
            |entry: &&RevokedEntry| unexpired_at.is_none_or(|now| entry.not_after >= now);
        // Read whole the first time; kept aside until the news are read too, so that an error
        // leaves the set as it was.
        let mut whole = None;
        let seen = match self.seen {
            Some(seen) => seen,
            None => {
                // The number first: every revocation up to it is in the listing read after it.
                // The listing may hold some numbered later too; the news bring those again.
                let seen = store.revocation_seq().await.map_err(Error::Store)?;
                // Page by page, each converted before the next is read: a million rows as the
                // store returns them (text serials) take three times the set's memory.
                let mut entries = Vec::new();
                let mut after = None;
                loop {
                    let page = store
                        .revoked_page(unexpired_at, after)
                        .await
                        .map_err(Error::Store)?;
                    entries.reserve(page.entries.len());
                    for entry in &page.entries {
                        entries.push(Listed::from_entry(entry)?);
                    }
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                whole = Some(entries);
                seen
            }
        };
        let news = store.revocations_after(seen).await.map_err(Error::Store)?;
        let mut fresh = news
            .entries
            .iter()
            .filter(unexpired)
            .map(Listed::from_entry)
            .collect::<Result<Vec<_>>>()?;
        if let Some(mut entries) = whole {
            if !fresh.is_empty() {
                // A certificate is revoked once, so a serial in both is one the listing had.
                let fresh_serials: HashSet<&[u8]> =
                    fresh.iter().map(Listed::serial_bytes).collect();
                entries.retain(|entry| !fresh_serials.contains(entry.serial_bytes()));
            }
            self.entries = entries;
        }
        self.entries.append(&mut fresh);
        self.seen = Some(news.last);
        if let Some(now) = unexpired_at {
            let now = now.unix_timestamp();
            self.entries.retain(|entry| entry.not_after >= now);
        }
        Ok(())
    }

    /// The entries of the next complete CRL.
    pub(crate) fn listed(&self) -> &[Listed] {
        &self.entries
    }
}

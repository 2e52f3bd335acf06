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
//!
//! The first read after a start takes the set from the snapshot the store keeps of it (saved
//! at most every ten minutes, as of a revocation number) and then the news since; without a
//! usable snapshot, from every revoked row (ADR 18).

use std::collections::HashSet;

use mayfly_pki::crl::CrlListed;
use time::{Duration, OffsetDateTime};

use super::snapshot;
use crate::error::{Error, Result};
use crate::store::{CertStore, RevocationSeq, RevokedEntry, RevokedSetKind, RevokedSnapshotMeta};

/// The longest serial magnitude a stored serial can have: 49 decimal digits (what
/// `SerialNumber::from_decimal` accepts) fit in 21 bytes.
pub(super) const SERIAL_MAX: usize = 21;

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
        Listed::new(
            entry.revoked_at,
            entry.not_after.unix_timestamp(),
            parsed.as_be_bytes(),
            entry.reason_code,
        )
        .ok_or_else(malformed)
    }

    /// An entry of `serial_bytes` (a serial's magnitude, big-endian); `None` when it is empty
    /// or longer than [`SERIAL_MAX`].
    pub(super) fn new(
        revoked_at: OffsetDateTime,
        not_after: i64,
        serial_bytes: &[u8],
        reason_code: u8,
    ) -> Option<Listed> {
        if serial_bytes.is_empty() {
            return None;
        }
        let mut serial = [0u8; SERIAL_MAX];
        serial
            .get_mut(..serial_bytes.len())?
            .copy_from_slice(serial_bytes);
        Some(Listed {
            revoked_at,
            not_after,
            serial,
            serial_len: u8::try_from(serial_bytes.len()).ok()?,
            reason_code,
        })
    }

    /// notAfter, in Unix seconds.
    pub(super) fn not_after(&self) -> i64 {
        self.not_after
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

/// How often the set is saved to the store at most, when revocations changed it: a start then
/// reads the snapshot and at most this long's revocations, not every revoked row.
const SNAPSHOT_INTERVAL: Duration = Duration::minutes(10);

/// Every revoked certificate a complete CRL lists, as of the last [`RevokedSet::update`].
#[derive(Debug, Default)]
pub(crate) struct RevokedSet {
    entries: Vec<Listed>,
    /// The last revocation read; `None` until the set was read whole.
    seen: Option<RevocationSeq>,
    /// The snapshot the store holds, as far as this set knows: the one it was read from or
    /// last saved.
    saved: Option<RevokedSnapshotMeta>,
    /// When a save last failed: the next try waits [`SNAPSHOT_INTERVAL`], so a store that
    /// refuses it is not sent the whole set every second.
    failed_at: Option<OffsetDateTime>,
}

impl RevokedSet {
    /// Reads what changed since the last call (everything, the first time: from the store's
    /// snapshot when it has a usable one, else from every revoked row), and drops what expired
    /// before `now` unless `keep_expired`. On an error the set is as it was, and the next call
    /// reads the same news again.
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
                let kind = RevokedSetKind::new(keep_expired);
                let (entries, seen, saved) = match load_snapshot(store, kind, seen).await {
                    Some((entries, meta)) => (entries, meta.seq, Some(meta)),
                    None => (read_whole(store, unexpired_at).await?, seen, None),
                };
                whole = Some((entries, saved));
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
        if let Some((mut entries, saved)) = whole {
            if !fresh.is_empty() {
                // A certificate is revoked once, so a serial in both is one the listing had.
                let fresh_serials: HashSet<&[u8]> =
                    fresh.iter().map(Listed::serial_bytes).collect();
                entries.retain(|entry| !fresh_serials.contains(entry.serial_bytes()));
            }
            self.entries = entries;
            self.saved = saved;
        }
        self.entries.append(&mut fresh);
        self.seen = Some(news.last);
        if let Some(now) = unexpired_at {
            let now = now.unix_timestamp();
            self.entries.retain(|entry| entry.not_after >= now);
        }
        Ok(())
    }

    /// Saves the set to the store when it was never saved, or when revocations changed it and
    /// the last snapshot is [`SNAPSHOT_INTERVAL`] old (and no save failed within that time);
    /// whether it wrote one.
    pub(crate) async fn save_if_due(
        &mut self,
        store: &dyn CertStore,
        now: OffsetDateTime,
        keep_expired: bool,
    ) -> Result<bool> {
        let Some(seen) = self.seen else {
            return Ok(false);
        };
        let due = self
            .saved
            .is_none_or(|saved| saved.seq != seen && now - saved.taken_at >= SNAPSHOT_INTERVAL);
        let failed_lately = self
            .failed_at
            .is_some_and(|failed| now - failed < SNAPSHOT_INTERVAL);
        if !due || failed_lately {
            return Ok(false);
        }
        let meta = RevokedSnapshotMeta {
            kind: RevokedSetKind::new(keep_expired),
            seq: seen,
            taken_at: now,
        };
        let mut parts = snapshot::parts(&self.entries);
        // `false`: another instance kept one as of a later revocation, which serves as well.
        if let Err(error) = store.keep_revoked_snapshot(&meta, &mut parts).await {
            self.failed_at = Some(now);
            return Err(Error::Store(error));
        }
        self.failed_at = None;
        self.saved = Some(meta);
        Ok(true)
    }

    /// The entries of the next complete CRL.
    pub(crate) fn listed(&self) -> &[Listed] {
        &self.entries
    }
}

/// The store's snapshot of `kind`, decoded, unless there is none or it cannot be trusted: a
/// snapshot as of a revocation the store has not numbered yet (a database restored behind its
/// snapshot table cannot be), or one that does not decode. Those are named in the log and the
/// set is read from the rows instead.
async fn load_snapshot(
    store: &dyn CertStore,
    kind: RevokedSetKind,
    store_seq: RevocationSeq,
) -> Option<(Vec<Listed>, RevokedSnapshotMeta)> {
    let snapshot = match store.revoked_snapshot(kind).await {
        Ok(snapshot) => snapshot?,
        Err(error) => {
            tracing::warn!(%error, "reading the revoked-set snapshot failed; reading every revoked certificate instead");
            return None;
        }
    };
    if snapshot.meta.seq > store_seq {
        tracing::warn!(
            snapshot = snapshot.meta.seq.0,
            store = store_seq.0,
            "the revoked-set snapshot is ahead of the store's revocations; reading every revoked certificate instead"
        );
        return None;
    }
    let meta = snapshot.meta;
    match snapshot::decode(snapshot.parts) {
        Ok(entries) => Some((entries, meta)),
        Err(error) => {
            tracing::warn!(%error, "the revoked-set snapshot is unusable; reading every revoked certificate instead");
            None
        }
    }
}

/// Every revoked certificate (unexpired at `unexpired_at`, when given), page by page, each
/// converted before the next is read: a million rows as the store returns them (text serials)
/// take three times the set's memory.
async fn read_whole(
    store: &dyn CertStore,
    unexpired_at: Option<OffsetDateTime>,
) -> Result<Vec<Listed>> {
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
            None => return Ok(entries),
        }
    }
}

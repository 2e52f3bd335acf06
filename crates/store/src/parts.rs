//! Values too large for one statement, kept in parts: the published CRLs and the revoked-set
//! snapshot (schema 12).
//!
//! A complete CRL of a million entries is 46 MB. MariaDB refuses a statement above its
//! `max_allowed_packet` (16 MiB by default), and sqlx holds two copies of every value it sends,
//! so one such value cost 92 MB of a CA's memory for as long as it was written. Each value is a
//! row of what it is (its number, its times, how many parts) and its bytes in parts of at most
//! [`MAX_STORED_PART`]: the row is written first (its lock orders concurrent writers), then the
//! parts, in one transaction; they are read back by one statement joining both, so a reader
//! never mixes the parts of two values.
//!
//! [`MAX_STORED_PART`]: mayfly_authority::store::MAX_STORED_PART

use mayfly_authority::store::StoreError;

/// Keeps a CRL as its scope's latest: scope, number, thisUpdate, nextUpdate, parts.
const CRL_INSERT: &str =
    "published_crls (scope, crl_number, this_update, next_update, parts) VALUES (?, ?, ?, ?, ?)";
/// Replaces the kept CRL when the new one's number is higher: number, thisUpdate, nextUpdate,
/// parts, scope, number.
const CRL_REPLACE: &str = "UPDATE published_crls SET crl_number = ?, this_update = ?, \
     next_update = ?, parts = ? WHERE scope = ? AND crl_number < ?";
const CRL_PARTS_DELETE: &str = "DELETE FROM published_crl_parts WHERE scope = ?";
const CRL_PART_INSERT: &str =
    "INSERT INTO published_crl_parts (scope, part, bytes) VALUES (?, ?, ?)";
/// The kept CRL of a scope, a row per part, when its number is above the second `?`.
const CRL_LATEST: &str = "SELECT c.crl_number, c.this_update, c.next_update, c.parts, p.part, \
     p.bytes FROM published_crls c JOIN published_crl_parts p ON p.scope = c.scope \
     WHERE c.scope = ? AND c.crl_number > ? ORDER BY p.part";

/// Keeps a snapshot: kind, revocation number, taken at, parts.
const SNAPSHOT_INSERT: &str =
    "revoked_snapshots (kind, revocation_seq, taken_at, parts) VALUES (?, ?, ?, ?)";
/// Replaces the kept snapshot unless it is as of a later revocation: revocation number, taken
/// at, parts, kind, revocation number.
const SNAPSHOT_REPLACE: &str = "UPDATE revoked_snapshots SET revocation_seq = ?, taken_at = ?, \
     parts = ? WHERE kind = ? AND revocation_seq <= ?";
const SNAPSHOT_PARTS_DELETE: &str = "DELETE FROM revoked_snapshot_parts WHERE kind = ?";
const SNAPSHOT_PART_INSERT: &str =
    "INSERT INTO revoked_snapshot_parts (kind, part, bytes) VALUES (?, ?, ?)";
/// The number of parts of a snapshot written: parts, kind.
const SNAPSHOT_PARTS_COUNT: &str = "UPDATE revoked_snapshots SET parts = ? WHERE kind = ?";
/// The kept snapshot of a kind, a row per part.
const SNAPSHOT_READ: &str = "SELECT s.revocation_seq, s.taken_at, s.parts, p.part, p.bytes \
     FROM revoked_snapshots s JOIN revoked_snapshot_parts p ON p.kind = s.kind \
     WHERE s.kind = ? ORDER BY p.part";

/// The parts of one value as they are read back, checked whole: `expected` of them, numbered
/// from 0 without a gap.
struct Assembly {
    expected: i64,
    next: i64,
    what: String,
}

impl Assembly {
    fn new(expected: i64, what: String) -> Self {
        Self {
            expected,
            next: 0,
            what,
        }
    }

    fn take(&mut self, part: i64) -> Result<(), StoreError> {
        if part != self.next {
            return Err(StoreError::Backend(format!(
                "{}: part {part} where part {} was expected",
                self.what, self.next
            )));
        }
        self.next += 1;
        Ok(())
    }

    fn finish(self) -> Result<(), StoreError> {
        if self.next != self.expected {
            return Err(StoreError::Backend(format!(
                "{}: {} parts of {}",
                self.what, self.next, self.expected
            )));
        }
        Ok(())
    }
}

/// The statements of [`crate::parts`], generated per store like [`crate::shared`].
macro_rules! parts_calls {
    ($store:ty) => {
        use futures_util::TryStreamExt;
        use mayfly_authority::store::{
            CrlScopeName, MAX_STORED_PART, RevocationSeq, RevokedSetKind, RevokedSnapshot,
            RevokedSnapshotMeta, StoreError, StoredCrl,
        };
        use sqlx::Transaction;

        use crate::Dialect;
        use crate::codec::{self, backend};
        use crate::engine::{Engine, Outcome, in_transaction};
        use crate::parts::*;

        type Db = <$store as Engine>::Db;
        /// A statement of this engine, its values still to bind.
        type Statement<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>;

        /// The row of a value: replaced when `replace` changes it, else inserted when there is
        /// none; `false` when a row that wins over this value is kept (nothing is written).
        async fn claim_row(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            replace: &str,
            insert: &str,
            replace_binds: impl Fn(Statement<'_>) -> Statement<'_>,
            insert_binds: impl Fn(Statement<'_>) -> Statement<'_>,
        ) -> Result<bool, sqlx::Error> {
            if replace_binds(sqlx::query(dialect.sql(replace)))
                .execute(&mut **tx)
                .await?
                .rows_affected()
                > 0
            {
                return Ok(true);
            }
            if insert_binds(sqlx::query(dialect.insert_sql(insert)))
                .execute(&mut **tx)
                .await?
                .rows_affected()
                > 0
            {
                return Ok(true);
            }
            // Another writer inserted the row between the two: this value may still win.
            Ok(replace_binds(sqlx::query(dialect.sql(replace)))
                .execute(&mut **tx)
                .await?
                .rows_affected()
                > 0)
        }

        /// Replaces the parts of `key` by `parts`; how many were written.
        async fn write_parts<P: AsRef<[u8]> + Send>(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            delete: &str,
            insert: &str,
            key: &str,
            parts: impl Iterator<Item = P> + Send,
        ) -> Result<Result<i64, StoreError>, sqlx::Error> {
            sqlx::query(dialect.sql(delete))
                .bind(key.to_owned())
                .execute(&mut **tx)
                .await?;
            let mut written = 0i64;
            for part in parts {
                let bytes = part.as_ref();
                if bytes.len() > MAX_STORED_PART {
                    return Ok(Err(StoreError::Backend(format!(
                        "a part of {} bytes is above the {MAX_STORED_PART}-byte limit",
                        bytes.len()
                    ))));
                }
                sqlx::query(dialect.sql(insert))
                    .bind(key.to_owned())
                    .bind(written)
                    .bind(bytes)
                    .execute(&mut **tx)
                    .await?;
                written += 1;
            }
            Ok(Ok(written))
        }

        impl $store {
            /// [`CertStore::publish_crl`](mayfly_authority::store::CertStore::publish_crl).
            pub(crate) async fn keep_crl(&self, crl: &StoredCrl) -> Result<(), StoreError> {
                let number = codec::crl_number_column(crl.number)?;
                let key = crl.scope.key().into_owned();
                let parts = i64::try_from(crl.der.len().div_ceil(MAX_STORED_PART))
                    .map_err(|_| StoreError::Backend("a CRL of too many parts".into()))?;
                let dialect = self.dialect();
                let (this_update, next_update) = (
                    codec::to_unix(crl.this_update),
                    codec::to_unix(crl.next_update),
                );
                in_transaction(self, "keeping the latest CRL", |mut tx| {
                    let key = key.clone();
                    async move {
                        let outcome: Outcome<()> = async {
                            let claimed = claim_row(
                                &mut tx,
                                dialect,
                                CRL_REPLACE,
                                CRL_INSERT,
                                |q| {
                                    q.bind(number)
                                        .bind(this_update)
                                        .bind(next_update)
                                        .bind(parts)
                                        .bind(key.clone())
                                        .bind(number)
                                },
                                |q| {
                                    q.bind(key.clone())
                                        .bind(number)
                                        .bind(this_update)
                                        .bind(next_update)
                                        .bind(parts)
                                },
                            )
                            .await?;
                            if !claimed {
                                // A higher-numbered CRL of the scope is kept: it stays.
                                return Ok(Ok(()));
                            }
                            let written = write_parts(
                                &mut tx,
                                dialect,
                                CRL_PARTS_DELETE,
                                CRL_PART_INSERT,
                                &key,
                                crl.der.chunks(MAX_STORED_PART),
                            )
                            .await?;
                            Ok(written.map(|_| ()))
                        }
                        .await;
                        (tx, outcome)
                    }
                })
                .await
            }

            /// [`CertStore::latest_crl`](mayfly_authority::store::CertStore::latest_crl).
            pub(crate) async fn read_crl(
                &self,
                scope: CrlScopeName,
                newer_than: u64,
            ) -> Result<Option<StoredCrl>, StoreError> {
                let context = |e| backend("reading the latest CRL", e);
                let mut rows = sqlx::query_as::<_, (i64, i64, i64, i64, i64, Vec<u8>)>(
                    self.dialect().sql(CRL_LATEST),
                )
                .bind(scope.key().into_owned())
                .bind(i64::try_from(newer_than).unwrap_or(i64::MAX))
                .fetch(self.reads());
                let mut kept: Option<(StoredCrl, Assembly)> = None;
                // Part by part, each appended and dropped: one copy of the CRL in memory.
                while let Some((number, this_update, next_update, parts, part, bytes)) =
                    rows.try_next().await.map_err(context)?
                {
                    let (crl, assembly) = match kept.as_mut() {
                        Some(kept) => kept,
                        None => kept.insert((
                            codec::stored_crl(
                                scope,
                                (number, this_update, next_update, Vec::new()),
                            )?,
                            Assembly::new(parts, format!("the kept {} CRL", scope.key())),
                        )),
                    };
                    assembly.take(part)?;
                    crl.der.extend_from_slice(&bytes);
                }
                kept.map(|(crl, assembly)| assembly.finish().map(|()| crl))
                    .transpose()
            }

            /// [`CertStore::keep_revoked_snapshot`](mayfly_authority::store::CertStore::keep_revoked_snapshot).
            /// One attempt: `parts` is consumed as it is written, and a snapshot that could not
            /// be kept is taken again later.
            pub(crate) async fn keep_snapshot(
                &self,
                meta: &RevokedSnapshotMeta,
                parts: &mut (dyn Iterator<Item = Vec<u8>> + Send),
            ) -> Result<bool, StoreError> {
                let context = |e| backend("keeping the revoked-set snapshot", e);
                let dialect = self.dialect();
                let key = meta.kind.key().to_owned();
                let seq = i64::try_from(meta.seq.0).map_err(|_| {
                    StoreError::Backend(format!("revocation number {} is too large", meta.seq.0))
                })?;
                let taken_at = codec::to_unix(meta.taken_at);
                let mut tx = self.begin_write().await.map_err(context)?;
                // The parts count is known only once they are written: the row says 0 until
                // then, in the same transaction.
                let claimed = claim_row(
                    &mut tx,
                    dialect,
                    SNAPSHOT_REPLACE,
                    SNAPSHOT_INSERT,
                    |q| {
                        q.bind(seq)
                            .bind(taken_at)
                            .bind(0i64)
                            .bind(key.clone())
                            .bind(seq)
                    },
                    |q| q.bind(key.clone()).bind(seq).bind(taken_at).bind(0i64),
                )
                .await
                .map_err(context)?;
                if !claimed {
                    tx.rollback().await.map_err(context)?;
                    return Ok(false);
                }
                let written = write_parts(
                    &mut tx,
                    dialect,
                    SNAPSHOT_PARTS_DELETE,
                    SNAPSHOT_PART_INSERT,
                    &key,
                    parts,
                )
                .await
                .map_err(context)?;
                let written = match written {
                    Ok(written) => written,
                    Err(refused) => {
                        tx.rollback().await.map_err(context)?;
                        return Err(refused);
                    }
                };
                sqlx::query(dialect.sql(SNAPSHOT_PARTS_COUNT))
                    .bind(written)
                    .bind(key.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(context)?;
                tx.commit().await.map_err(context)?;
                Ok(true)
            }

            /// [`CertStore::revoked_snapshot`](mayfly_authority::store::CertStore::revoked_snapshot).
            pub(crate) async fn read_snapshot(
                &self,
                kind: RevokedSetKind,
            ) -> Result<Option<RevokedSnapshot>, StoreError> {
                let context = |e| backend("reading the revoked-set snapshot", e);
                let mut rows = sqlx::query_as::<_, (i64, i64, i64, i64, Vec<u8>)>(
                    self.dialect().sql(SNAPSHOT_READ),
                )
                .bind(kind.key().to_owned())
                .fetch(self.reads());
                let mut kept: Option<(RevokedSnapshot, Assembly)> = None;
                while let Some((seq, taken_at, parts, part, bytes)) =
                    rows.try_next().await.map_err(context)?
                {
                    let (snapshot, assembly) = match kept.as_mut() {
                        Some(kept) => kept,
                        None => {
                            let what = format!("the {} revoked-set snapshot", kind.key());
                            let meta = RevokedSnapshotMeta {
                                kind,
                                seq: RevocationSeq(u64::try_from(seq).map_err(|_| {
                                    StoreError::Backend(format!("{what}: revocation number {seq}"))
                                })?),
                                taken_at: codec::from_unix("taken_at", &what, taken_at)?,
                            };
                            let parts_hint = usize::try_from(parts).unwrap_or(0).min(1 << 16);
                            kept.insert((
                                RevokedSnapshot {
                                    meta,
                                    parts: Vec::with_capacity(parts_hint),
                                },
                                Assembly::new(parts, what),
                            ))
                        }
                    };
                    assembly.take(part)?;
                    snapshot.parts.push(bytes);
                }
                kept.map(|(snapshot, assembly)| assembly.finish().map(|()| snapshot))
                    .transpose()
            }
        }
    };
}

/// For the SQLite store.
pub(crate) mod sqlite {
    parts_calls!(crate::SqliteStore);
}

/// For the PostgreSQL and MySQL store, through the `Any` pool.
pub(crate) mod any {
    parts_calls!(crate::NetworkedStore);
}

//! [`CertStore`] and [`AdminStore`] on both stores, written once.
//!
//! sqlx types each pool by its driver, so the implementations are generated per store by one
//! macro (one source, checked by the compiler for each driver) rather than written as one generic
//! implementation whose trait bounds would hide what it does. What the two stores do differently
//! is asked of their [`Engine`]: which pool a call uses, how a write transaction begins and
//! retries, and how an issuance is recorded. Statements come from [`crate::codec`] with `?`
//! placeholders and go through [`Dialect::sql`] for PostgreSQL.
//!
//! A new store trait's calls that are alike on every engine go here (or in a module of their own
//! built the same way, as [`crate::ssh`] and [`crate::acme`]), once.
//!
//! [`CertStore`]: mayfly_authority::store::CertStore
//! [`AdminStore`]: mayfly_authority::store::AdminStore
//! [`Engine`]: crate::engine::Engine
//! [`Dialect::sql`]: crate::Dialect::sql

macro_rules! shared_calls {
    ($store:ty) => {
        use mayfly_authority::audit::{AuditContext, AuditEntry, AuditQuery};
        use mayfly_authority::store::{
            AdminStore, BoxFuture, CertStore, CertificatePage, CertificateStatus, CrlScopeName,
            CrlShard, IssuedCertificate, Revocation, RevocationNews, RevocationSeq, RevokedEntry,
            RevokedKey, RevokedPage, RevokedQuery, RevokedSetKind, RevokedSnapshot,
            RevokedSnapshotMeta, StoreCounts, StoreError, StoredCertificate, StoredCrl, UsedToken,
        };
        use sqlx::Transaction;
        use time::OffsetDateTime;

        use crate::Dialect;
        use crate::codec::{self, RevocationStatements, backend};
        use crate::engine::{Engine, Outcome, in_transaction};

        type Db = <$store as Engine>::Db;

        /// [`codec::REVOKED_CHUNK`]s until one comes back short.
        async fn revoked_in_chunks(
            store: &$store,
            query: &RevokedQuery,
            since: i64,
            unexpired: i64,
        ) -> Result<Vec<RevokedEntry>, StoreError> {
            let mut entries = Vec::new();
            let mut after = (i64::MIN, String::new());
            loop {
                let before = entries.len();
                let last =
                    revoked_chunk(store, query, since, unexpired, &after, &mut entries).await?;
                match last {
                    Some(key) if entries.len() - before == codec::REVOKED_CHUNK_ROWS => after = key,
                    _ => return Ok(entries),
                }
            }
        }

        /// One [`codec::REVOKED_CHUNK`] after `after`, appended to `entries`; its last key.
        async fn revoked_chunk(
            store: &$store,
            query: &RevokedQuery,
            since: i64,
            unexpired: i64,
            after: &(i64, String),
            entries: &mut Vec<RevokedEntry>,
        ) -> Result<Option<(i64, String)>, StoreError> {
            let select = match query.shard {
                None => sqlx::query_as(codec::REVOKED_CHUNK),
                Some(_) => sqlx::query_as(codec::REVOKED_CHUNK_IN_SHARD),
            }
            .bind(after.0)
            .bind(after.1.clone())
            .bind(since)
            .bind(unexpired);
            let select = match query.shard {
                None => select,
                Some(shard) => select.bind(i64::from(shard.index())),
            };
            let (text,): (Option<String>,) = select
                .fetch_one(store.reads())
                .await
                .map_err(|e| backend("listing revoked certificates", e))?;
            codec::revoked_chunk(text.as_deref().unwrap_or_default(), entries)
        }

        /// Records `token` as used, in `tx`; false when it already was (by this or any other
        /// instance). One statement: the check and the record cannot be separated.
        async fn burn(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            token: &UsedToken,
        ) -> Result<bool, sqlx::Error> {
            let burnt = sqlx::query(dialect.insert_sql(&codec::USED_TOKEN.rows(1)))
                .bind(token.provisioner.as_str())
                .bind(token.jti.as_str())
                .bind(codec::to_unix(token.expires_at))
                .execute(&mut **tx)
                .await?;
            Ok(burnt.rows_affected() == 1)
        }

        /// Burns the token a write was authorised by, if any, in the write's transaction: a
        /// refusal when it was used already.
        pub(crate) async fn spend(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            token: Option<&UsedToken>,
        ) -> Outcome<()> {
            if let Some(token) = token
                && !burn(tx, dialect, token).await?
            {
                return Ok(Err(StoreError::TokenAlreadyUsed {
                    jti: token.jti.clone(),
                }));
            }
            Ok(Ok(()))
        }

        /// The statements of a revocation inside its transaction, X.509 or SSH by `statements`.
        async fn revoke_in(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            statements: &RevocationStatements,
            revocation: &Revocation,
            token: Option<&UsedToken>,
            audit: &AuditContext,
        ) -> Outcome<()> {
            let serial = revocation.serial.as_str();
            if let Err(refusal) = spend(tx, dialect, token).await? {
                return Ok(Err(refusal));
            }
            if let Some(number) = statements.number {
                sqlx::query(number).execute(&mut **tx).await?;
            }
            let updated = sqlx::query(dialect.sql(statements.update))
                .bind(CertificateStatus::Revoked.as_str())
                .bind(codec::to_unix(revocation.revoked_at))
                .bind(i64::from(revocation.reason_code))
                .bind(revocation.reason.as_str())
                .bind(revocation.revoked_by.as_str())
                .bind(serial)
                .bind(CertificateStatus::Valid.as_str())
                .execute(&mut **tx)
                .await?;
            if updated.rows_affected() == 1 {
                // The certificate's own columns are copied from its row.
                sqlx::query(dialect.sql(statements.audit))
                    .bind(codec::to_unix(audit.at))
                    .bind(audit.action.as_str())
                    .bind(audit.credential.as_str())
                    .bind(codec::audit_address(audit))
                    .bind(audit.detail.as_str())
                    .bind(serial)
                    .execute(&mut **tx)
                    .await?;
                return Ok(Ok(()));
            }
            let exists: Option<String> = sqlx::query_scalar(dialect.sql(statements.status))
                .bind(serial)
                .fetch_optional(&mut **tx)
                .await?;
            Ok(Err(codec::revocation_refused(serial, exists.is_some())))
        }

        /// Appends the audit entry of a certificate recorded in `tx`.
        #[allow(clippy::too_many_arguments)]
        pub(crate) async fn audit_issued_in(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            audit: &AuditContext,
            serial: &str,
            subject: &str,
            sans_json: &str,
            provisioner: &str,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(dialect.sql(codec::AUDIT_INSERT))
                .bind(codec::to_unix(audit.at))
                .bind(audit.action.as_str())
                .bind(serial)
                .bind(subject)
                .bind(sans_json)
                .bind(provisioner)
                .bind(audit.credential.as_str())
                .bind(codec::audit_address(audit))
                .bind(audit.detail.as_str())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// The bump and the read of [`codec::CRL_NUMBER_BUMP`] in one transaction: the
        /// UPDATE's row lock makes callers (on any instance) taking a number at once queue, and
        /// each reads the number its own UPDATE wrote.
        async fn take_crl_number(tx: &mut Transaction<'static, Db>) -> Result<i64, sqlx::Error> {
            sqlx::query(codec::CRL_NUMBER_BUMP)
                .execute(&mut **tx)
                .await?;
            sqlx::query_scalar(codec::CRL_NUMBER)
                .fetch_one(&mut **tx)
                .await
        }

        impl $store {
            /// Whether the database answers, for `/health`. Goes through the read connections,
            /// so on SQLite a long group commit does not make the CA look down.
            pub async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query_scalar::<_, i64>(crate::PING)
                    .fetch_one(self.reads())
                    .await
                    .map(|_| ())
                    .map_err(|e| backend("checking the database", e))
            }

            /// Records `tokens`, used at another CA (an import), as used here: in one
            /// transaction, each unless it is recorded already. Returns how many were new.
            pub(crate) async fn burn_imported(
                &self,
                tokens: &[UsedToken],
            ) -> Result<u64, StoreError> {
                let context = |e| backend("recording imported used tokens", e);
                let mut tx = self.writes().begin().await.map_err(context)?;
                let mut new = 0;
                for token in tokens {
                    if burn(&mut tx, self.dialect(), token)
                        .await
                        .map_err(context)?
                    {
                        new += 1;
                    }
                }
                tx.commit().await.map_err(context)?;
                Ok(new)
            }

            /// A revocation in a transaction of its own, X.509 or SSH by `statements`.
            pub(crate) async fn revoke_with(
                &self,
                statements: &RevocationStatements,
                revocation: &Revocation,
                token: Option<&UsedToken>,
                audit: &AuditContext,
            ) -> Result<(), StoreError> {
                let context = format!("revoking {} {}", statements.what, revocation.serial);
                let dialect = self.dialect();
                in_transaction(self, &context, |mut tx| async move {
                    let outcome =
                        revoke_in(&mut tx, dialect, statements, revocation, token, audit).await;
                    (tx, outcome)
                })
                .await
            }

            /// Runs `statement`, a `DELETE` of the rows older than its one `?`, with `before`;
            /// how many rows went.
            async fn delete_before(
                &self,
                statement: &str,
                before: OffsetDateTime,
                context: &str,
            ) -> Result<u64, StoreError> {
                let result = sqlx::query(self.dialect().sql(statement))
                    .bind(codec::to_unix(before))
                    .execute(self.writes())
                    .await
                    .map_err(|e| backend(context, e))?;
                Ok(result.rows_affected())
            }
        }

        impl CertStore for $store {
            fn record_issuance<'a>(
                &'a self,
                certificate: &'a IssuedCertificate,
                token: Option<&'a UsedToken>,
                audit: &'a AuditContext,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(self.record(certificate, token, audit))
            }

            fn certificate<'a>(
                &'a self,
                serial: &'a str,
            ) -> BoxFuture<'a, Result<Option<StoredCertificate>, StoreError>> {
                Box::pin(async move {
                    let row = sqlx::query(self.dialect().sql(codec::SELECT_CERTIFICATE))
                        .bind(serial)
                        .fetch_optional(self.reads())
                        .await
                        .map_err(|e| backend(&format!("looking up certificate {serial}"), e))?;
                    row.map(|row| codec::stored_from_row(&row, serial))
                        .transpose()
                })
            }

            fn revoke<'a>(
                &'a self,
                revocation: &'a Revocation,
                token: Option<&'a UsedToken>,
                audit: &'a AuditContext,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(self.revoke_with(&codec::X509_REVOCATION, revocation, token, audit))
            }

            fn prune_used_tokens(
                &self,
                now: OffsetDateTime,
            ) -> BoxFuture<'_, Result<u64, StoreError>> {
                Box::pin(self.delete_before(codec::PRUNE_USED_TOKENS, now, "pruning used tokens"))
            }

            // The statement and its binds: codec::REVOKED.
            fn revoked_certificates(
                &self,
                query: RevokedQuery,
            ) -> BoxFuture<'_, Result<Vec<RevokedEntry>, StoreError>> {
                Box::pin(async move {
                    let (since, unexpired) = codec::revoked_bounds(&query);
                    if self.dialect() == Dialect::Sqlite {
                        return revoked_in_chunks(self, &query, since, unexpired).await;
                    }
                    let select = match query.shard {
                        None => sqlx::query_as(self.dialect().sql(codec::REVOKED)),
                        Some(shard) => sqlx::query_as(self.dialect().sql(codec::REVOKED_IN_SHARD))
                            .bind(i64::from(shard.index())),
                    };
                    let rows: Vec<(String, i64, Option<i64>, i64, Option<i64>)> = select
                        .bind(since)
                        .bind(unexpired)
                        .fetch_all(self.reads())
                        .await
                        .map_err(|e| backend("listing revoked certificates", e))?;
                    rows.into_iter().map(codec::revoked_entry).collect()
                })
            }

            fn revoked_page(
                &self,
                unexpired_at: Option<OffsetDateTime>,
                after: Option<RevokedKey>,
            ) -> BoxFuture<'_, Result<RevokedPage, StoreError>> {
                Box::pin(async move {
                    let query = RevokedQuery {
                        unexpired_at,
                        ..RevokedQuery::default()
                    };
                    let (since, unexpired) = codec::revoked_bounds(&query);
                    let key = codec::page_after(after.as_ref());
                    let mut entries = Vec::new();
                    if self.dialect() == Dialect::Sqlite {
                        revoked_chunk(self, &query, since, unexpired, &key, &mut entries).await?;
                    } else {
                        let select = if self.dialect() == Dialect::MySql {
                            sqlx::query_as(codec::REVOKED_PAGE_MYSQL)
                                .bind(key.0)
                                .bind(key.0)
                                .bind(key.1)
                        } else {
                            sqlx::query_as(self.dialect().sql(codec::REVOKED_PAGE))
                                .bind(key.0)
                                .bind(key.1)
                        };
                        let rows: Vec<(String, i64, Option<i64>, i64, Option<i64>)> = select
                            .bind(unexpired)
                            .fetch_all(self.reads())
                            .await
                            .map_err(|e| backend("listing revoked certificates", e))?;
                        entries = rows
                            .into_iter()
                            .map(codec::revoked_entry)
                            .collect::<Result<_, _>>()?;
                    }
                    let next = codec::next_page(&entries);
                    Ok(RevokedPage { entries, next })
                })
            }

            fn revocation_seq(&self) -> BoxFuture<'_, Result<RevocationSeq, StoreError>> {
                Box::pin(async move {
                    let seq: i64 = sqlx::query_scalar(codec::REVOCATION_SEQ)
                        .fetch_one(self.reads())
                        .await
                        .map_err(|e| backend("reading the last revocation number", e))?;
                    codec::revocation_seq(seq)
                })
            }

            fn revocations_after(
                &self,
                after: RevocationSeq,
            ) -> BoxFuture<'_, Result<RevocationNews, StoreError>> {
                Box::pin(async move {
                    let from = i64::try_from(after.0).unwrap_or(i64::MAX);
                    let rows: Vec<codec::RevocationRow> =
                        sqlx::query_as(self.dialect().sql(codec::REVOCATIONS_AFTER))
                            .bind(from)
                            .fetch_all(self.reads())
                            .await
                            .map_err(|e| backend("listing new revocations", e))?;
                    codec::revocation_news(after, rows)
                })
            }

            fn next_crl_number(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
                Box::pin(async move {
                    let context = "taking the next CRL number";
                    let number = in_transaction(self, context, |mut tx| async move {
                        let outcome = take_crl_number(&mut tx).await.map(Ok);
                        (tx, outcome)
                    })
                    .await?;
                    codec::crl_number(number)
                })
            }

            // Keeps `crl` unless a higher-numbered one of its scope is kept, in parts
            // (`crate::parts`).
            fn publish_crl<'a>(
                &'a self,
                crl: &'a StoredCrl,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(self.keep_crl(crl))
            }

            fn latest_crl(
                &self,
                scope: CrlScopeName,
                newer_than: u64,
            ) -> BoxFuture<'_, Result<Option<StoredCrl>, StoreError>> {
                Box::pin(self.read_crl(scope, newer_than))
            }

            fn keep_revoked_snapshot<'a>(
                &'a self,
                meta: &'a RevokedSnapshotMeta,
                parts: &'a mut (dyn Iterator<Item = Vec<u8>> + Send),
            ) -> BoxFuture<'a, Result<bool, StoreError>> {
                Box::pin(self.keep_snapshot(meta, parts))
            }

            fn revoked_snapshot(
                &self,
                kind: RevokedSetKind,
            ) -> BoxFuture<'_, Result<Option<RevokedSnapshot>, StoreError>> {
                Box::pin(self.read_snapshot(kind))
            }

            fn remember_crl_url<'a>(
                &'a self,
                shard: CrlShard,
                url: &'a str,
                now: OffsetDateTime,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    if url.len() > crate::MAX_CRL_URL_LEN {
                        return Err(StoreError::Backend(format!(
                            "CRL URL {url:?} is longer than {} bytes",
                            crate::MAX_CRL_URL_LEN
                        )));
                    }
                    sqlx::query(self.dialect().insert_sql(codec::CRL_URL_INSERT))
                        .bind(url)
                        .bind(i64::from(shard.index()))
                        .bind(codec::to_unix(now))
                        .execute(self.writes())
                        .await
                        .map_err(|e| backend(&format!("remembering CRL URL {url}"), e))?;
                    Ok(())
                })
            }

            fn crl_urls(&self) -> BoxFuture<'_, Result<Vec<(CrlShard, String)>, StoreError>> {
                Box::pin(async move {
                    let rows: Vec<(i64, String)> = sqlx::query_as(codec::CRL_URLS)
                        .fetch_all(self.reads())
                        .await
                        .map_err(|e| backend("reading the CRL URLs", e))?;
                    rows.into_iter().map(codec::crl_url).collect()
                })
            }
        }

        impl AdminStore for $store {
            // The statement and its binds: codec::list_query.
            fn list_certificates<'a>(
                &'a self,
                page: &'a CertificatePage,
            ) -> BoxFuture<'a, Result<Vec<StoredCertificate>, StoreError>> {
                Box::pin(async move {
                    let mut query = sqlx::query(self.dialect().sql(codec::list_query(page.status)))
                        .bind(page.after.clone().unwrap_or_default());
                    if codec::list_binds_now(page.status) {
                        query = query.bind(codec::to_unix(page.now));
                    }
                    let rows = query
                        .bind(codec::page_limit(page))
                        .fetch_all(self.reads())
                        .await
                        .map_err(|e| backend("listing certificates", e))?;
                    rows.iter()
                        .map(|row| codec::stored_from_row(row, "(listed)"))
                        .collect()
                })
            }

            fn prune_certificates(
                &self,
                expired_before: OffsetDateTime,
            ) -> BoxFuture<'_, Result<u64, StoreError>> {
                Box::pin(self.delete_before(
                    codec::PRUNE_CERTIFICATES,
                    expired_before,
                    "pruning expired certificates",
                ))
            }

            fn counts(&self) -> BoxFuture<'_, Result<StoreCounts, StoreError>> {
                Box::pin(async move {
                    let (certificates, used_tokens): (i64, i64) = sqlx::query_as(codec::COUNTS)
                        .fetch_one(self.reads())
                        .await
                        .map_err(|e| backend("counting rows", e))?;
                    Ok(codec::counts(certificates, used_tokens))
                })
            }

            // Takes a free lease, else an expired one or one's own: two statements, each
            // atomic, so of several instances asking at once exactly one gets it.
            fn acquire_lease<'a>(
                &'a self,
                name: &'a str,
                holder: &'a str,
                now: OffsetDateTime,
                until: OffsetDateTime,
            ) -> BoxFuture<'a, Result<bool, StoreError>> {
                Box::pin(async move {
                    let context = |e| backend(&format!("taking lease {name}"), e);
                    let taken = sqlx::query(self.dialect().insert_sql(codec::LEASE_INSERT))
                        .bind(name)
                        .bind(holder)
                        .bind(codec::to_unix(until))
                        .execute(self.writes())
                        .await
                        .map_err(context)?;
                    if taken.rows_affected() == 1 {
                        return Ok(true);
                    }
                    let updated = sqlx::query(self.dialect().sql(codec::LEASE_UPDATE))
                        .bind(holder)
                        .bind(codec::to_unix(until))
                        .bind(name)
                        .bind(holder)
                        .bind(codec::to_unix(now))
                        .execute(self.writes())
                        .await
                        .map_err(context)?;
                    Ok(updated.rows_affected() == 1)
                })
            }

            // The statement and its binds: codec::audit_query.
            fn audit_entries<'a>(
                &'a self,
                query: &'a AuditQuery,
            ) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>> {
                Box::pin(async move {
                    let (after, since, limit) = codec::audit_bounds(query)?;
                    let statement = codec::audit_query(query.serial.is_some());
                    let mut select = sqlx::query(self.dialect().sql(statement))
                        .bind(after)
                        .bind(since);
                    if let Some(serial) = &query.serial {
                        select = select.bind(serial.clone());
                    }
                    let rows = select
                        .bind(limit)
                        .fetch_all(self.reads())
                        .await
                        .map_err(|e| backend("reading the audit log", e))?;
                    rows.iter().map(codec::audit_entry).collect()
                })
            }
        }
    };
}

/// For the SQLite store.
pub(crate) mod sqlite {
    shared_calls!(crate::SqliteStore);
}

/// For the PostgreSQL and MySQL store, through the `Any` pool.
pub(crate) mod any {
    shared_calls!(crate::NetworkedStore);
}

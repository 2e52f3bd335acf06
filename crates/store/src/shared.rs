//! The calls that are the same on every engine, written once.
//!
//! sqlx types each pool by its driver, so the functions are generated per pool type by one macro
//! (one source, checked by the compiler for each driver) rather than written as one generic
//! function whose trait bounds would hide what it does. SQLite uses them with its own pool;
//! PostgreSQL and MySQL with the `Any` pool. Statements come from [`crate::codec`] with `?`
//! placeholders and go through [`Dialect::placeholders`] for PostgreSQL.
//!
//! A new store trait's calls that are alike on every engine go here, once, and each backend's
//! trait implementation calls them.

macro_rules! shared_calls {
    ($database:ty) => {
        use mayfly_authority::audit::{AuditContext, AuditEntry, AuditQuery};
        use mayfly_authority::store::{
            CertificatePage, CertificateStatus, CrlScopeName, Revocation, RevokedEntry,
            RevokedQuery, StoreCounts, StoreError, StoredCertificate, StoredCrl, UsedToken,
        };
        use sqlx::{AssertSqlSafe, Pool, Transaction};
        use time::OffsetDateTime;

        use crate::Dialect;
        use crate::codec::{self, backend};

        type Db = $database;

        fn sql(dialect: Dialect, query: &str) -> AssertSqlSafe<String> {
            AssertSqlSafe(dialect.placeholders(query))
        }

        /// A stored certificate by serial.
        pub(crate) async fn load(
            pool: &Pool<Db>,
            dialect: Dialect,
            serial: &str,
        ) -> Result<Option<StoredCertificate>, StoreError> {
            let row = sqlx::query(sql(dialect, codec::SELECT_CERTIFICATE))
                .bind(serial)
                .fetch_optional(pool)
                .await
                .map_err(|e| backend(&format!("looking up certificate {serial}"), e))?;
            row.map(|row| codec::stored_from_row(&row, serial))
                .transpose()
        }

        /// Records `token` as used, in `tx`; false when it already was (by this or any other
        /// instance). One statement: the check and the record cannot be separated.
        pub(crate) async fn burn(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            token: &UsedToken,
        ) -> Result<bool, sqlx::Error> {
            let insert = dialect.insert_unless_present(
                "used_tokens (provisioner, jti, expires_at) VALUES (?, ?, ?)",
            );
            let burnt = sqlx::query(AssertSqlSafe(insert))
                .bind(token.provisioner.as_str())
                .bind(token.jti.as_str())
                .bind(codec::to_unix(token.expires_at))
                .execute(&mut **tx)
                .await?;
            Ok(burnt.rows_affected() == 1)
        }

        /// Records `tokens`, used at another CA (an import), as used here: in one transaction,
        /// each unless it is recorded already. Returns how many were new.
        pub(crate) async fn burn_imported(
            pool: &Pool<Db>,
            dialect: Dialect,
            tokens: &[UsedToken],
        ) -> Result<u64, StoreError> {
            let context = |e| backend("recording imported used tokens", e);
            let mut tx = pool.begin().await.map_err(context)?;
            let mut new = 0;
            for token in tokens {
                if burn(&mut tx, dialect, token).await.map_err(context)? {
                    new += 1;
                }
            }
            tx.commit().await.map_err(context)?;
            Ok(new)
        }

        /// The statements of a revocation inside its transaction. `Ok(Err(_))` is a refusal
        /// (nothing must be committed); `Err(_)` a backend failure.
        pub(crate) async fn revoke_in(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            revocation: &Revocation,
            token: Option<&UsedToken>,
            audit: &AuditContext,
        ) -> Result<Result<(), StoreError>, sqlx::Error> {
            let serial = revocation.serial.as_str();
            if let Some(token) = token
                && !burn(tx, dialect, token).await?
            {
                return Ok(Err(StoreError::TokenAlreadyUsed {
                    jti: token.jti.clone(),
                }));
            }
            let updated = sqlx::query(sql(dialect, codec::REVOKE))
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
                audit_revocation_in(tx, dialect, codec::AUDIT_REVOCATION, audit, serial).await?;
                return Ok(Ok(()));
            }
            let exists: Option<String> = sqlx::query_scalar(sql(
                dialect,
                "SELECT status FROM certificates WHERE serial = ?",
            ))
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
            sqlx::query(sql(dialect, codec::AUDIT_INSERT))
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

        /// Appends the audit entry of a revocation made in `tx`, copying the certificate's
        /// columns from its row (`statement` is [`codec::AUDIT_REVOCATION`] or its SSH twin).
        pub(crate) async fn audit_revocation_in(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            statement: &str,
            audit: &AuditContext,
            serial: &str,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(sql(dialect, statement))
                .bind(codec::to_unix(audit.at))
                .bind(audit.action.as_str())
                .bind(audit.credential.as_str())
                .bind(codec::audit_address(audit))
                .bind(audit.detail.as_str())
                .bind(serial)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// A page of the audit log ([`codec::audit_query`]).
        pub(crate) async fn audit_entries(
            pool: &Pool<Db>,
            dialect: Dialect,
            query: &AuditQuery,
        ) -> Result<Vec<AuditEntry>, StoreError> {
            let (after, since, limit) = codec::audit_bounds(query)?;
            let mut select = sqlx::query(sql(dialect, codec::audit_query(query.serial.is_some())))
                .bind(after)
                .bind(since);
            if let Some(serial) = &query.serial {
                select = select.bind(serial.clone());
            }
            let rows = select
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(|e| backend("reading the audit log", e))?;
            rows.iter().map(codec::audit_entry).collect()
        }

        /// A page of certificates ([`codec::list_query`]).
        pub(crate) async fn list(
            pool: &Pool<Db>,
            dialect: Dialect,
            page: &CertificatePage,
        ) -> Result<Vec<StoredCertificate>, StoreError> {
            let mut query = sqlx::query(sql(dialect, codec::list_query(page.status)))
                .bind(page.after.clone().unwrap_or_default());
            if codec::list_binds_now(page.status) {
                query = query.bind(codec::to_unix(page.now));
            }
            let rows = query
                .bind(codec::page_limit(page))
                .fetch_all(pool)
                .await
                .map_err(|e| backend("listing certificates", e))?;
            rows.iter()
                .map(|row| codec::stored_from_row(row, "(listed)"))
                .collect()
        }

        /// Deletes certificates expired before `before`.
        pub(crate) async fn prune_certificates(
            pool: &Pool<Db>,
            dialect: Dialect,
            before: OffsetDateTime,
        ) -> Result<u64, StoreError> {
            let result = sqlx::query(sql(dialect, codec::PRUNE_CERTIFICATES))
                .bind(codec::to_unix(before))
                .execute(pool)
                .await
                .map_err(|e| backend("pruning expired certificates", e))?;
            Ok(result.rows_affected())
        }

        /// Deletes used-token records that expired before `now`.
        pub(crate) async fn prune_used_tokens(
            pool: &Pool<Db>,
            dialect: Dialect,
            now: OffsetDateTime,
        ) -> Result<u64, StoreError> {
            let result = sqlx::query(sql(dialect, codec::PRUNE_USED_TOKENS))
                .bind(codec::to_unix(now))
                .execute(pool)
                .await
                .map_err(|e| backend("pruning used tokens", e))?;
            Ok(result.rows_affected())
        }

        pub(crate) async fn counts(pool: &Pool<Db>) -> Result<StoreCounts, StoreError> {
            let (certificates, used_tokens): (i64, i64) = sqlx::query_as(codec::COUNTS)
                .fetch_one(pool)
                .await
                .map_err(|e| backend("counting rows", e))?;
            Ok(codec::counts(certificates, used_tokens))
        }

        /// Takes a free lease, else an expired one or one's own: two statements, each atomic,
        /// so of several instances asking at once exactly one gets it.
        pub(crate) async fn acquire_lease(
            pool: &Pool<Db>,
            dialect: Dialect,
            name: &str,
            holder: &str,
            now: OffsetDateTime,
            until: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            let context = |e| backend(&format!("taking lease {name}"), e);
            let insert = dialect.insert_unless_present(codec::LEASE_INSERT);
            let taken = sqlx::query(AssertSqlSafe(insert))
                .bind(name)
                .bind(holder)
                .bind(codec::to_unix(until))
                .execute(pool)
                .await
                .map_err(context)?;
            if taken.rows_affected() == 1 {
                return Ok(true);
            }
            let updated = sqlx::query(sql(dialect, codec::LEASE_UPDATE))
                .bind(holder)
                .bind(codec::to_unix(until))
                .bind(name)
                .bind(holder)
                .bind(codec::to_unix(now))
                .execute(pool)
                .await
                .map_err(context)?;
            Ok(updated.rows_affected() == 1)
        }

        /// Keeps `crl` unless a higher-numbered one of its scope is kept: two statements, each
        /// atomic, so concurrent publishers leave the highest.
        pub(crate) async fn publish_crl(
            pool: &Pool<Db>,
            dialect: Dialect,
            crl: &StoredCrl,
        ) -> Result<(), StoreError> {
            let context = |e| backend("keeping the latest CRL", e);
            let number = codec::crl_number_column(crl.number)?;
            let inserted = sqlx::query(AssertSqlSafe(
                dialect.insert_unless_present(codec::CRL_INSERT),
            ))
            .bind(crl.scope.as_str())
            .bind(number)
            .bind(codec::to_unix(crl.this_update))
            .bind(codec::to_unix(crl.next_update))
            .bind(crl.der.as_slice())
            .execute(pool)
            .await
            .map_err(context)?;
            if inserted.rows_affected() == 0 {
                sqlx::query(sql(dialect, codec::CRL_REPLACE))
                    .bind(number)
                    .bind(codec::to_unix(crl.this_update))
                    .bind(codec::to_unix(crl.next_update))
                    .bind(crl.der.as_slice())
                    .bind(crl.scope.as_str())
                    .bind(number)
                    .execute(pool)
                    .await
                    .map_err(context)?;
            }
            Ok(())
        }

        pub(crate) async fn latest_crl(
            pool: &Pool<Db>,
            dialect: Dialect,
            scope: CrlScopeName,
        ) -> Result<Option<StoredCrl>, StoreError> {
            let row: Option<(i64, i64, i64, Vec<u8>)> =
                sqlx::query_as(sql(dialect, codec::CRL_LATEST))
                    .bind(scope.as_str())
                    .fetch_optional(pool)
                    .await
                    .map_err(|e| backend("reading the latest CRL", e))?;
            row.map(|row| codec::stored_crl(scope, row)).transpose()
        }

        /// Revoked certificates for a CRL ([`codec::REVOKED`]).
        pub(crate) async fn revoked(
            pool: &Pool<Db>,
            dialect: Dialect,
            query: RevokedQuery,
        ) -> Result<Vec<RevokedEntry>, StoreError> {
            let (since, unexpired) = codec::revoked_bounds(&query);
            let rows: Vec<(String, i64, Option<i64>, i64)> =
                sqlx::query_as(sql(dialect, codec::REVOKED))
                    .bind(since)
                    .bind(unexpired)
                    .fetch_all(pool)
                    .await
                    .map_err(|e| backend("listing revoked certificates", e))?;
            rows.into_iter().map(codec::revoked_entry).collect()
        }
    };
}

/// For the SQLite backend's pools.
pub(crate) mod sqlite {
    shared_calls!(sqlx::Sqlite);
}

/// For PostgreSQL and MySQL, through the `Any` pool.
pub(crate) mod any {
    shared_calls!(sqlx::Any);
}

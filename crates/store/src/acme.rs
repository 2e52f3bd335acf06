//! [`AcmeStore`] on every backend (schema version 5): written once, generated for the SQLite
//! store and for the PostgreSQL/MySQL store by one macro, as [`crate::shared`], on each store's
//! [`Engine`] (a transaction begins as its other writes do: `BEGIN IMMEDIATE` on SQLite).
//!
//! Every state transition is `UPDATE ... WHERE id = ? AND version = ?`: one statement, atomic in
//! any engine, and the affected-row count says whether this writer won. Nonces are deleted on
//! use, so a nonce is accepted once across every instance sharing the database.

use mayfly_acme::store::{
    AccountRow, AcmeStore, AcmeStoreError, AuthorizationRow, BoxFuture, OrderRow, Versioned,
};
use mayfly_pki::SerialNumber;

use crate::engine::Engine;
use crate::{NetworkedStore, SqliteStore};

fn backend(context: &str, error: impl std::fmt::Display) -> AcmeStoreError {
    AcmeStoreError::Backend(format!("{context}: {error}"))
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn versioned<R>(row: &R, context: &str) -> Result<Versioned, AcmeStoreError>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Versioned {
        id: row.try_get("id").map_err(|e| backend(context, e))?,
        version: row.try_get("version").map_err(|e| backend(context, e))?,
        body: row.try_get("body").map_err(|e| backend(context, e))?,
    })
}

macro_rules! acme_store {
    ($store:ty) => {
impl $store {
    async fn fetch_versioned(
        &self,
        sql: &'static str,
        key: &str,
        context: &str,
    ) -> Result<Option<Versioned>, AcmeStoreError> {
        let row = sqlx::query(self.dialect().sql(sql))
            .bind(key)
            .fetch_optional(self.reads())
            .await
            .map_err(|e| backend(context, e))?;
        row.map(|r| versioned(&r, context)).transpose()
    }

    async fn key_owner(&self, thumbprint: &str) -> Result<Option<String>, AcmeStoreError> {
        sqlx::query_scalar(self.dialect().sql("SELECT id FROM acme_accounts WHERE key_thumbprint = ?"))
            .bind(thumbprint)
            .fetch_optional(self.writes())
            .await
            .map_err(|e| backend("looking up an account key", e))
    }

    async fn key_taken(&self, thumbprint: &str) -> AcmeStoreError {
        match self.key_owner(thumbprint).await {
            Ok(Some(account)) => AcmeStoreError::KeyTaken {
                thumbprint: thumbprint.to_string(),
                account,
            },
            Ok(None) => AcmeStoreError::Backend("account key conflict without an owner".into()),
            Err(e) => e,
        }
    }

    async fn insert_order_rows(
        &self,
        order: &OrderRow<'_>,
        authorizations: &[AuthorizationRow<'_>],
    ) -> Result<(), AcmeStoreError> {
        let context = format!("recording order {}", order.id);
        let mut tx = self.begin_write()
            .await
            .map_err(|e| backend(&context, e))?;
        let result: Result<(), sqlx::Error> = async {
            sqlx::query(
                self.dialect().sql("INSERT INTO acme_orders (id, account_id, version, body, created_at) \
                 VALUES (?, ?, 1, ?, ?)"),
            )
            .bind(order.id)
            .bind(order.account)
            .bind(order.body)
            .bind(order.created_at)
            .execute(&mut *tx)
            .await?;
            for identifier in order.identifiers {
                sqlx::query(
                    self.dialect().sql("INSERT INTO acme_order_identifiers (order_id, identifier, created_at) \
                     VALUES (?, ?, ?)"),
                )
                .bind(order.id)
                .bind(identifier)
                .bind(order.created_at)
                .execute(&mut *tx)
                .await?;
            }
            for authorization in authorizations {
                sqlx::query(
                    self.dialect().sql("INSERT INTO acme_authorizations \
                     (id, account_id, identifier, status, expires_at, version, body) \
                     VALUES (?, ?, ?, ?, ?, 1, ?)"),
                )
                .bind(authorization.id)
                .bind(authorization.account)
                .bind(authorization.identifier)
                .bind(authorization.status.as_str())
                .bind(authorization.expires_at)
                .bind(authorization.body)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => tx.commit().await.map_err(|e| backend(&context, e)),
            Err(e) => {
                let _ = tx.rollback().await;
                if is_unique_violation(&e) {
                    Err(AcmeStoreError::Duplicate {
                        what: "order",
                        id: order.id.to_string(),
                    })
                } else {
                    Err(backend(&context, e))
                }
            }
        }
    }

    async fn acme_count(&self, sql: &'static str, key: &str, since: i64) -> Result<u64, AcmeStoreError> {
        let n: i64 = sqlx::query_scalar(self.dialect().sql(sql))
            .bind(key)
            .bind(since)
            .fetch_one(self.reads())
            .await
            .map_err(|e| backend("counting orders", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl AcmeStore for $store {
    fn insert_nonce<'a>(
        &'a self,
        nonce: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>> {
        Box::pin(async move {
            sqlx::query(self.dialect().sql("INSERT INTO acme_nonces (nonce, expires_at) VALUES (?, ?)"))
                .bind(nonce)
                .bind(expires_at)
                .execute(self.writes())
                .await
                .map_err(|e| backend("recording a nonce", e))?;
            Ok(())
        })
    }

    fn consume_nonce<'a>(
        &'a self,
        nonce: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, AcmeStoreError>> {
        Box::pin(async move {
            let result = sqlx::query(self.dialect().sql("DELETE FROM acme_nonces WHERE nonce = ? AND expires_at >= ?"))
                .bind(nonce)
                .bind(now)
                .execute(self.writes())
                .await
                .map_err(|e| backend("using a nonce", e))?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn prune_nonces(&self, now: i64) -> BoxFuture<'_, Result<u64, AcmeStoreError>> {
        Box::pin(async move {
            let done = sqlx::query(self.dialect().sql("DELETE FROM acme_nonces WHERE expires_at < ?"))
                .bind(now)
                .execute(self.writes())
                .await
                .map_err(|e| backend("pruning nonces", e))?;
            Ok(done.rows_affected())
        })
    }

    fn insert_account<'a>(
        &'a self,
        account: &'a AccountRow<'a>,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>> {
        Box::pin(async move {
            let result = sqlx::query(
                self.dialect().sql("INSERT INTO acme_accounts (id, key_thumbprint, version, body, created_at) \
                 VALUES (?, ?, 1, ?, ?)"),
            )
            .bind(account.id)
            .bind(account.key_thumbprint)
            .bind(account.body)
            .bind(account.created_at)
            .execute(self.writes())
            .await;
            match result {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => {
                    Err(self.key_taken(account.key_thumbprint).await)
                }
                Err(e) => Err(backend("recording an account", e)),
            }
        })
    }

    fn account<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned>, AcmeStoreError>> {
        Box::pin(self.fetch_versioned(
            "SELECT id, version, body FROM acme_accounts WHERE id = ?",
            id,
            "reading an account",
        ))
    }

    fn account_by_key<'a>(
        &'a self,
        thumbprint: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned>, AcmeStoreError>> {
        Box::pin(self.fetch_versioned(
            "SELECT id, version, body FROM acme_accounts WHERE key_thumbprint = ?",
            thumbprint,
            "reading an account by key",
        ))
    }

    fn update_account<'a>(
        &'a self,
        account: &'a AccountRow<'a>,
        expected_version: i64,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>> {
        Box::pin(async move {
            let result = sqlx::query(
                self.dialect().sql("UPDATE acme_accounts SET key_thumbprint = ?, body = ?, version = version + 1 \
                 WHERE id = ? AND version = ?"),
            )
            .bind(account.key_thumbprint)
            .bind(account.body)
            .bind(account.id)
            .bind(expected_version)
            .execute(self.writes())
            .await;
            match result {
                Ok(done) if done.rows_affected() == 1 => Ok(()),
                Ok(_) => Err(AcmeStoreError::VersionMismatch {
                    what: "account",
                    id: account.id.to_string(),
                }),
                Err(e) if is_unique_violation(&e) => {
                    Err(self.key_taken(account.key_thumbprint).await)
                }
                Err(e) => Err(backend("updating an account", e)),
            }
        })
    }

    fn insert_order<'a>(
        &'a self,
        order: &'a OrderRow<'a>,
        authorizations: &'a [AuthorizationRow<'a>],
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>> {
        Box::pin(self.insert_order_rows(order, authorizations))
    }

    fn order<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned>, AcmeStoreError>> {
        Box::pin(self.fetch_versioned(
            "SELECT id, version, body FROM acme_orders WHERE id = ?",
            id,
            "reading an order",
        ))
    }

    fn account_orders<'a>(
        &'a self,
        account: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<String>, AcmeStoreError>> {
        Box::pin(async move {
            sqlx::query_scalar(
                self.dialect().sql("SELECT id FROM acme_orders WHERE account_id = ? \
                 ORDER BY created_at DESC, id LIMIT ?"),
            )
            .bind(account)
            .bind(i64::from(limit))
            .fetch_all(self.reads())
            .await
            .map_err(|e| backend("listing an account's orders", e))
        })
    }

    fn update_order<'a>(
        &'a self,
        id: &'a str,
        expected_version: i64,
        body: &'a str,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                self.dialect().sql("UPDATE acme_orders SET body = ?, version = version + 1 \
                 WHERE id = ? AND version = ?"),
            )
            .bind(body)
            .bind(id)
            .bind(expected_version)
            .execute(self.writes())
            .await
            .map_err(|e| backend("updating an order", e))?;
            if done.rows_affected() == 1 {
                Ok(())
            } else {
                Err(AcmeStoreError::VersionMismatch {
                    what: "order",
                    id: id.to_string(),
                })
            }
        })
    }

    fn authorization<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned>, AcmeStoreError>> {
        Box::pin(self.fetch_versioned(
            "SELECT id, version, body FROM acme_authorizations WHERE id = ?",
            id,
            "reading an authorization",
        ))
    }

    fn update_authorization<'a>(
        &'a self,
        row: &'a AuthorizationRow<'a>,
        expected_version: i64,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                self.dialect().sql("UPDATE acme_authorizations SET status = ?, expires_at = ?, body = ?, \
                 version = version + 1 WHERE id = ? AND version = ?"),
            )
            .bind(row.status.as_str())
            .bind(row.expires_at)
            .bind(row.body)
            .bind(row.id)
            .bind(expected_version)
            .execute(self.writes())
            .await
            .map_err(|e| backend("updating an authorization", e))?;
            if done.rows_affected() == 1 {
                Ok(())
            } else {
                Err(AcmeStoreError::VersionMismatch {
                    what: "authorization",
                    id: row.id.to_string(),
                })
            }
        })
    }

    fn valid_authorizations<'a>(
        &'a self,
        account: &'a str,
        identifier: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<Versioned>, AcmeStoreError>> {
        Box::pin(async move {
            let context = "looking up valid authorizations";
            let rows = sqlx::query(
                self.dialect().sql("SELECT id, version, body FROM acme_authorizations \
                 WHERE account_id = ? AND identifier = ? AND status = 'valid' AND expires_at > ? \
                 ORDER BY expires_at DESC"),
            )
            .bind(account)
            .bind(identifier)
            .bind(now)
            .fetch_all(self.reads())
            .await
            .map_err(|e| backend(context, e))?;
            rows.iter().map(|r| versioned(r, context)).collect()
        })
    }

    fn count_orders_by_account<'a>(
        &'a self,
        account: &'a str,
        since: i64,
    ) -> BoxFuture<'a, Result<u64, AcmeStoreError>> {
        Box::pin(self.acme_count(
            "SELECT COUNT(*) FROM acme_orders WHERE account_id = ? AND created_at >= ?",
            account,
            since,
        ))
    }

    fn count_orders_by_identifier<'a>(
        &'a self,
        identifier: &'a str,
        since: i64,
    ) -> BoxFuture<'a, Result<u64, AcmeStoreError>> {
        Box::pin(self.acme_count(
            "SELECT COUNT(*) FROM acme_order_identifiers WHERE identifier = ? AND created_at >= ?",
            identifier,
            since,
        ))
    }

    fn record_certificate<'a>(
        &'a self,
        serial: &'a SerialNumber,
        account: &'a str,
        order: &'a str,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>> {
        Box::pin(async move {
            let serial = serial.to_decimal();
            sqlx::query(
                self.dialect().sql("INSERT INTO acme_certificates (serial, account_id, order_id) VALUES (?, ?, ?)"),
            )
            .bind(&serial)
            .bind(account)
            .bind(order)
            .execute(self.writes())
            .await
            .map_err(|e| backend("recording an ACME certificate", e))?;
            Ok(())
        })
    }

    fn certificate_account<'a>(
        &'a self,
        serial: &'a SerialNumber,
    ) -> BoxFuture<'a, Result<Option<String>, AcmeStoreError>> {
        Box::pin(async move {
            sqlx::query_scalar(self.dialect().sql("SELECT account_id FROM acme_certificates WHERE serial = ?"))
                .bind(serial.to_decimal())
                .fetch_optional(self.reads())
                .await
                .map_err(|e| backend("looking up an ACME certificate", e))
        })
    }

    fn block_key<'a>(
        &'a self,
        spki_sha256: &'a str,
        at: i64,
    ) -> BoxFuture<'a, Result<(), AcmeStoreError>> {
        Box::pin(async move {
            let result = sqlx::query(
                self.dialect().sql("INSERT INTO acme_blocked_keys (spki_sha256, blocked_at) VALUES (?, ?)"),
            )
            .bind(spki_sha256)
            .bind(at)
            .execute(self.writes())
            .await;
            match result {
                Ok(_) => Ok(()),
                // Blocked already: the state asked for holds.
                Err(e) if is_unique_violation(&e) => Ok(()),
                Err(e) => Err(backend("blocking a key", e)),
            }
        })
    }

    fn key_blocked<'a>(
        &'a self,
        spki_sha256: &'a str,
    ) -> BoxFuture<'a, Result<bool, AcmeStoreError>> {
        Box::pin(async move {
            let found: Option<String> = sqlx::query_scalar(
                self.dialect().sql("SELECT spki_sha256 FROM acme_blocked_keys WHERE spki_sha256 = ?"),
            )
            .bind(spki_sha256)
            .fetch_optional(self.reads())
            .await
            .map_err(|e| backend("looking up a blocked key", e))?;
            Ok(found.is_some())
        })
    }
}

    };
}

acme_store!(SqliteStore);
acme_store!(NetworkedStore);

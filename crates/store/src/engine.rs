//! What each store does its own way, and the write transaction they share.
//!
//! The two stores answer every store trait with the same statements; [`crate::shared`],
//! [`crate::ssh`] and [`crate::acme`] hold those once and generate them for both. What is left
//! differs for a reason, and is all an [`Engine`] says: which connections reads and writes use
//! (SQLite: one writer and a few readers; a server: one pool), how a write transaction begins
//! (SQLite takes its write lock up front), which failures are worth running a transaction
//! again for (a server's deadlock victim), and how an issuance is recorded (SQLite and
//! PostgreSQL: group commit, [`crate::group`]; MySQL: one transaction per issuance, ADR 0019).
//! Either way instances race in the database.

use std::future::Future;

use mayfly_authority::audit::AuditContext;
use mayfly_authority::store::{IssuedCertificate, StoreError, UsedToken};
use sqlx::{Pool, Transaction};

use crate::Dialect;
use crate::codec::backend;

/// A deadlock or serialisation failure is retried this many times; the engine chose a victim,
/// and the statements are safe to run again.
pub(crate) const RETRIES: usize = 3;

/// One store's connections and its own ways; see the module documentation.
pub(crate) trait Engine: Sync {
    type Db: sqlx::Database;

    /// How this engine spells SQL.
    fn dialect(&self) -> Dialect;

    /// Where lookups go.
    fn reads(&self) -> &Pool<Self::Db>;

    /// Where writes go, single statements and transactions.
    fn writes(&self) -> &Pool<Self::Db>;

    /// Begins a write transaction on [`Engine::writes`].
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;

    /// Whether a transaction that failed with `error` is run again from the start.
    fn retryable(error: &sqlx::Error) -> bool;

    /// Records an issuance, its token and its audit entry, durably before it answers.
    fn record(
        &self,
        certificate: &IssuedCertificate,
        token: Option<&UsedToken>,
        audit: &AuditContext,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The statements of a write inside its transaction: `Ok(Err(_))` is a refusal (nothing must be
/// committed), `Err(_)` a backend failure. They get the transaction and give it back, so that the
/// future they return borrows nothing of [`in_transaction`]'s.
pub(crate) type Outcome<T> = Result<Result<T, StoreError>, sqlx::Error>;

/// Runs `statements` in a write transaction: commits when they succeed, rolls back a refusal or a
/// failure, and runs them again from the start when the engine says the failure is worth it.
pub(crate) async fn in_transaction<E, T, F, Fut>(
    engine: &E,
    context: &str,
    mut statements: F,
) -> Result<T, StoreError>
where
    E: Engine,
    F: FnMut(Transaction<'static, E::Db>) -> Fut,
    Fut: Future<Output = (Transaction<'static, E::Db>, Outcome<T>)>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome: Outcome<T> = async {
            let tx = engine.begin_write().await?;
            match statements(tx).await {
                (tx, Ok(Ok(value))) => tx.commit().await.map(|()| Ok(value)),
                (tx, Ok(Err(refusal))) => {
                    // Nothing is committed either way: the refusal is the answer.
                    if let Err(rollback) = tx.rollback().await {
                        tracing::warn!(%rollback, "{context}: rolling back a refused write failed");
                    }
                    Ok(Err(refusal))
                }
                (tx, Err(error)) => {
                    let _ = tx.rollback().await;
                    Err(error)
                }
            }
        }
        .await;
        match outcome {
            Ok(result) => return result,
            Err(error) if attempt <= RETRIES && E::retryable(&error) => {
                tracing::debug!(%error, attempt, "{context}: retrying after a deadlock");
            }
            Err(error) => return Err(backend(context, error)),
        }
    }
}

//! The behaviour every backend's [`AcmeStore`] must show, as runnable checks (test support:
//! each panics naming the broken rule). Two handles on one database (`other`) stand for two
//! CA instances; pass the same store twice when a backend has no second handle.
//!
//! Ids are made unique per run, so a database left over from an earlier run does no harm.

use std::sync::atomic::{AtomicU64, Ordering};

use mayfly_acme::model::AuthorizationStatus;
use mayfly_acme::store::{AccountRow, AcmeStore, AcmeStoreError, AuthorizationRow, OrderRow};
use mayfly_pki::SerialNumber;

const NOW: i64 = 1_800_000_000;

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{nanos:x}-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs every check.
pub async fn run_all(store: &dyn AcmeStore, other: &dyn AcmeStore) {
    nonces_are_single_use_across_instances(store, other).await;
    one_account_per_key(store).await;
    updates_are_compare_and_set(store, other).await;
    orders_and_authorizations(store).await;
    certificates_and_blocked_keys(store, other).await;
    concurrent_transitions_have_one_winner(store, other).await;
}

pub async fn nonces_are_single_use_across_instances(store: &dyn AcmeStore, other: &dyn AcmeStore) {
    let nonce = unique("nonce");
    store.insert_nonce(&nonce, NOW + 60).await.unwrap();
    assert!(
        other.consume_nonce(&nonce, NOW).await.unwrap(),
        "a nonce works on another instance"
    );
    assert!(
        !store.consume_nonce(&nonce, NOW).await.unwrap(),
        "a nonce works once"
    );
    let expired = unique("nonce");
    store.insert_nonce(&expired, NOW - 1).await.unwrap();
    assert!(
        !store.consume_nonce(&expired, NOW).await.unwrap(),
        "an expired nonce is refused"
    );
    assert!(!store.consume_nonce("never-issued", NOW).await.unwrap());
}

fn account<'a>(id: &'a str, key: &'a str) -> AccountRow<'a> {
    AccountRow {
        id,
        key_thumbprint: key,
        body: "{}",
        created_at: NOW,
    }
}

pub async fn one_account_per_key(store: &dyn AcmeStore) {
    let (a, b, key) = (unique("acct"), unique("acct"), unique("key"));
    store.insert_account(&account(&a, &key)).await.unwrap();
    match store.insert_account(&account(&b, &key)).await {
        Err(AcmeStoreError::KeyTaken { account, .. }) => assert_eq!(account, a),
        other => panic!("a second account with one key must be refused, got {other:?}"),
    }
    assert!(
        store.account(&b).await.unwrap().is_none(),
        "nothing stored for the refused one"
    );
    assert_eq!(store.account_by_key(&key).await.unwrap().unwrap().id, a);
    // keyChange onto a key another account holds is refused the same way.
    let (c, other_key) = (unique("acct"), unique("key"));
    store
        .insert_account(&account(&c, &other_key))
        .await
        .unwrap();
    let version = store.account(&c).await.unwrap().unwrap().version;
    assert!(matches!(
        store.update_account(&account(&c, &key), version).await,
        Err(AcmeStoreError::KeyTaken { .. })
    ));
    assert_eq!(
        store.account_by_key(&other_key).await.unwrap().unwrap().id,
        c
    );
}

pub async fn updates_are_compare_and_set(store: &dyn AcmeStore, other: &dyn AcmeStore) {
    let (id, key) = (unique("acct"), unique("key"));
    store.insert_account(&account(&id, &key)).await.unwrap();
    let read = store.account(&id).await.unwrap().unwrap();
    let changed = AccountRow {
        body: r#"{"status":"deactivated"}"#,
        ..account(&id, &key)
    };
    other.update_account(&changed, read.version).await.unwrap();
    assert!(
        matches!(
            store
                .update_account(&account(&id, &key), read.version)
                .await,
            Err(AcmeStoreError::VersionMismatch { .. })
        ),
        "a write based on a stale read must lose"
    );
    let now = store.account(&id).await.unwrap().unwrap();
    assert_eq!(now.body, r#"{"status":"deactivated"}"#);
    assert_eq!(now.version, read.version + 1);
}

pub async fn orders_and_authorizations(store: &dyn AcmeStore) {
    let account_id = unique("acct");
    let identifier = format!("dns:{}.example.test", unique("host"));
    let (order_id, authz_id) = (unique("order"), unique("authz"));
    let identifiers = vec![identifier.clone()];
    let authz = AuthorizationRow {
        id: &authz_id,
        account: &account_id,
        identifier: &identifier,
        status: AuthorizationStatus::Pending,
        expires_at: NOW + 3600,
        body: "{}",
    };
    let order = OrderRow {
        id: &order_id,
        account: &account_id,
        identifiers: &identifiers,
        body: "{}",
        created_at: NOW,
    };
    store
        .insert_order(&order, std::slice::from_ref(&authz))
        .await
        .unwrap();
    assert!(
        store.insert_order(&order, &[]).await.is_err(),
        "an order id is stored once"
    );
    assert_eq!(
        store
            .count_orders_by_account(&account_id, NOW)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_orders_by_account(&account_id, NOW + 1)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count_orders_by_identifier(&identifier, NOW)
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .valid_authorizations(&account_id, &identifier, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    let version = store
        .authorization(&authz_id)
        .await
        .unwrap()
        .unwrap()
        .version;
    let valid = AuthorizationRow {
        status: AuthorizationStatus::Valid,
        body: r#"{"status":"valid"}"#,
        ..authz.clone()
    };
    store.update_authorization(&valid, version).await.unwrap();
    let found = store
        .valid_authorizations(&account_id, &identifier, NOW)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        store
            .valid_authorizations(&account_id, &identifier, NOW + 7200)
            .await
            .unwrap()
            .is_empty(),
        "an expired authorization proves nothing"
    );
    assert!(
        store
            .valid_authorizations("someone-else", &identifier, NOW)
            .await
            .unwrap()
            .is_empty(),
        "authorizations belong to their account"
    );
    let order_version = store.order(&order_id).await.unwrap().unwrap().version;
    store
        .update_order(&order_id, order_version, r#"{"status":"valid"}"#)
        .await
        .unwrap();
    assert!(matches!(
        store.update_order(&order_id, order_version, "{}").await,
        Err(AcmeStoreError::VersionMismatch { .. })
    ));
}

pub async fn certificates_and_blocked_keys(store: &dyn AcmeStore, other: &dyn AcmeStore) {
    let serial = SerialNumber::random().unwrap();
    store
        .record_certificate(&serial, "acct-1", "order-1")
        .await
        .unwrap();
    assert_eq!(
        other.certificate_account(&serial).await.unwrap().as_deref(),
        Some("acct-1")
    );
    assert!(
        store
            .certificate_account(&SerialNumber::random().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let key = unique("spki");
    assert!(!store.key_blocked(&key).await.unwrap());
    store.block_key(&key, NOW).await.unwrap();
    store.block_key(&key, NOW + 1).await.unwrap();
    assert!(
        other.key_blocked(&key).await.unwrap(),
        "a blocked key is blocked everywhere"
    );
}

/// Many writers start from one read; exactly one wins.
pub async fn concurrent_transitions_have_one_winner(store: &dyn AcmeStore, other: &dyn AcmeStore) {
    let account_id = unique("acct");
    let identifier = "dns:race.example.test".to_string();
    let authz_id = unique("authz");
    let order_id = unique("order");
    let authz = AuthorizationRow {
        id: &authz_id,
        account: &account_id,
        identifier: &identifier,
        status: AuthorizationStatus::Pending,
        expires_at: NOW + 3600,
        body: "{}",
    };
    let identifiers = vec![identifier.clone()];
    let order = OrderRow {
        id: &order_id,
        account: &account_id,
        identifiers: &identifiers,
        body: "{}",
        created_at: NOW,
    };
    store
        .insert_order(&order, std::slice::from_ref(&authz))
        .await
        .unwrap();
    let version = store
        .authorization(&authz_id)
        .await
        .unwrap()
        .unwrap()
        .version;
    let bodies: Vec<String> = (0..16).map(|i| format!("{{\"writer\":{i}}}")).collect();
    let rows: Vec<AuthorizationRow> = bodies
        .iter()
        .map(|body| AuthorizationRow {
            body,
            ..authz.clone()
        })
        .collect();
    let attempts = rows.iter().enumerate().map(|(i, row)| {
        let target = if i % 2 == 0 { store } else { other };
        target.update_authorization(row, version)
    });
    let results = join_all(attempts.collect()).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one compare-and-set wins: {results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(AcmeStoreError::VersionMismatch { .. })))
    );
}

/// Polls every future to completion concurrently (no runtime-specific join needed).
async fn join_all<T>(futures: Vec<mayfly_acme::store::BoxFuture<'_, T>>) -> Vec<T> {
    let mut slots: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut futures: Vec<Option<_>> = futures.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, future) in slots.iter_mut().zip(futures.iter_mut()) {
            if let Some(f) = future {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *slot = Some(value);
                        *future = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    slots.into_iter().flatten().collect()
}

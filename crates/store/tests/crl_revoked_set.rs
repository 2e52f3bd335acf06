//! The complete CRL made from revocations kept in memory: after the first CRL only the store's
//! numbered news are read, so what must hold is that nothing the store has is left off and
//! nothing expired stays on: a revocation dated years back (as `mayfly-ca import-step` writes
//! them), one made through another handle on the same database (another instance), and a
//! certificate expiring between two CRLs.

use std::sync::Arc;

use mayfly_authority::clock::FixedClock;
use mayfly_authority::crl::{CrlKind, CrlPublisher, CrlSettings};
use mayfly_authority::store::{CertStore, IssuedCertificate, Revocation};
use mayfly_pki::issuer::IssuerIdentity;
use mayfly_pki::{KeyAlgorithm, PrivateKey, SerialNumber};
use mayfly_store::{SqliteStore, conformance};
use time::{Duration, OffsetDateTime};

fn settings() -> CrlSettings {
    CrlSettings {
        url: "http://ca.internal/1.0/crl".into(),
        lifetime: Duration::hours(24),
        renew_after: Duration::hours(16),
        generate_on_revoke: true,
        keep_expired: false,
        delta: None,
        shards: 1,
        shard_base: "http://ca.internal/1.0/crls".into(),
    }
}

/// The moment the tests start at.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap()
}

/// A CA (its key and identity), a clock at [`now`], and a directory of its own for the stores.
struct Ca {
    dir: std::path::PathBuf,
    clock: Arc<FixedClock>,
    key: Arc<PrivateKey>,
    identity: IssuerIdentity,
}

impl Ca {
    fn new(test: &str) -> Ca {
        let dir = std::env::temp_dir().join(format!("mayfly-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = Arc::new(PrivateKey::generate(KeyAlgorithm::EcP256).unwrap());
        let ca =
            mayfly_pki::cert::create_root("Set CA", &key, now() + Duration::days(365)).unwrap();
        Ca {
            dir,
            clock: Arc::new(FixedClock::new(now())),
            key,
            identity: IssuerIdentity::from_certificate(&ca).unwrap(),
        }
    }

    /// A store on the file `name` in the CA's directory (another handle each time).
    async fn store(&self, name: &str) -> Arc<dyn CertStore> {
        Arc::new(SqliteStore::open(&self.dir.join(name)).await.unwrap())
    }

    /// A publisher of the CA's CRLs on `store`, as a starting instance has.
    fn publisher(&self, store: &Arc<dyn CertStore>) -> CrlPublisher {
        CrlPublisher::new(
            settings(),
            self.identity.clone(),
            Arc::clone(&self.key) as Arc<dyn mayfly_pki::Signer>,
            Arc::clone(store),
            self.clock.clone(),
            Duration::minutes(1),
        )
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The serials a CRL lists, as decimal strings, sorted.
fn listed(der: &[u8]) -> Vec<String> {
    let (_, crl) = x509_parser::parse_x509_crl(der).expect("the CRL parses");
    let mut serials: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|entry| entry.user_certificate.to_str_radix(10))
        .collect();
    serials.sort();
    serials
}

fn sorted(serials: &[&IssuedCertificate]) -> Vec<String> {
    let mut v: Vec<String> = serials.iter().map(|c| c.serial.clone()).collect();
    v.sort();
    v
}

async fn revoke(store: &dyn CertStore, certificate: &IssuedCertificate, at: OffsetDateTime) {
    let revocation = Revocation {
        serial: certificate.serial.clone(),
        reason_code: 1,
        reason: String::new(),
        revoked_at: at,
        revoked_by: "offline".into(),
    };
    store
        .revoke(&revocation, None, &conformance::REVOKED_AUDIT)
        .await
        .unwrap_or_else(|e| panic!("revoking {}: {e:?}", certificate.serial));
}

#[tokio::test]
async fn the_complete_crl_follows_every_revocation_from_memory() {
    let fixture = Ca::new("crl-set");
    // Two handles on one file: the publisher's instance, and another one revoking.
    let mine = fixture.store("mayfly.db").await;
    let other = fixture.store("mayfly.db").await;
    let (now, clock) = (now(), fixture.clock.clone());
    let publisher = fixture.publisher(&mine);
    let certificate = |hours: i64| IssuedCertificate {
        not_before: now - Duration::hours(1),
        not_after: now + Duration::hours(hours),
        ..conformance::sample_certificate("set")
    };
    // a: revoked before the first CRL; b: expires in 2 h; c: revoked later with a time years
    // back; d: revoked later by the other instance; e: never revoked.
    let [a, b, c, d, e] = [
        certificate(48),
        certificate(2),
        certificate(48),
        certificate(48),
        certificate(48),
    ];
    for cert in [&a, &b, &c, &d, &e] {
        mine.record_issuance(cert, None, &conformance::ISSUED_AUDIT)
            .await
            .unwrap();
    }
    revoke(mine.as_ref(), &a, now).await;
    revoke(mine.as_ref(), &b, now).await;
    let first = publisher.current(CrlKind::Full).await.unwrap();
    assert_eq!(listed(&first.der), sorted(&[&a, &b]), "read whole");

    // An old revocation time and another instance's revocation: both are news.
    revoke(mine.as_ref(), &c, now - Duration::days(700)).await;
    revoke(other.as_ref(), &d, now).await;
    clock.set(now + Duration::minutes(5));
    publisher.revoked(None);
    let second = publisher.current(CrlKind::Full).await.unwrap();
    assert!(second.number > first.number);
    assert_eq!(
        listed(&second.der),
        sorted(&[&a, &b, &c, &d]),
        "the news read"
    );

    // b expires; the next CRL leaves it off without reading everything again.
    clock.set(now + Duration::hours(3));
    publisher.revoked(None);
    let third = publisher.current(CrlKind::Full).await.unwrap();
    assert_eq!(listed(&third.der), sorted(&[&a, &c, &d]), "b expired");

    // The serials are the certificates' own, byte for byte.
    let serial = SerialNumber::from_decimal(&a.serial).unwrap();
    assert!(
        third
            .der
            .windows(serial.as_be_bytes().len())
            .any(|w| w == serial.as_be_bytes())
    );
}

/// After a restart the first complete CRL comes from the set the last instance saved and the
/// revocations numbered since (ADR 18): the same list as from every revoked row. A snapshot
/// that cannot be trusted (not decodable, or ahead of the store's revocations) is not used.
#[tokio::test]
async fn a_restart_reads_the_saved_set_and_the_news() {
    use mayfly_authority::store::RevokedSetKind;

    let fixture = Ca::new("crl-snapshot");
    let store = fixture.store("mayfly.db").await;
    let empty = fixture.store("empty.db").await;
    let (now, clock) = (now(), fixture.clock.clone());
    let publisher = |store: &Arc<dyn CertStore>| fixture.publisher(store);
    let certificate = |hours: i64| IssuedCertificate {
        not_before: now - Duration::hours(1),
        not_after: now + Duration::hours(hours),
        ..conformance::sample_certificate("snapshot")
    };
    // a: revoked before the snapshot; b: too, and expires in 2 h; c: revoked after it, dated
    // years back; d: never revoked.
    let [a, b, c, d] = [
        certificate(48),
        certificate(2),
        certificate(48),
        certificate(48),
    ];
    for cert in [&a, &b, &c, &d] {
        store
            .record_issuance(cert, None, &conformance::ISSUED_AUDIT)
            .await
            .unwrap();
    }
    revoke(store.as_ref(), &a, now).await;
    revoke(store.as_ref(), &b, now).await;
    let first = publisher(&store);
    assert_eq!(
        listed(&first.current(CrlKind::Full).await.unwrap().der),
        sorted(&[&a, &b])
    );
    assert!(first.save_revoked_set().await.unwrap(), "never saved");
    assert!(
        !first.save_revoked_set().await.unwrap(),
        "saved again with nothing new"
    );
    drop(first);

    revoke(store.as_ref(), &c, now - Duration::days(700)).await;
    clock.set(now + Duration::hours(3));
    let restarted = publisher(&store);
    assert_eq!(
        listed(&restarted.current(CrlKind::Full).await.unwrap().der),
        sorted(&[&a, &c]),
        "the saved set (b expired since) and the news"
    );
    drop(restarted);

    // The snapshot is what a start reads: an empty set's, kept as of the last revocation,
    // lists nothing.
    let current_seq = store.revocation_seq().await.unwrap();
    let empty_publisher = publisher(&empty);
    empty_publisher.current(CrlKind::Full).await.unwrap();
    assert!(empty_publisher.save_revoked_set().await.unwrap());
    let genuine_empty = empty
        .revoked_snapshot(RevokedSetKind::Unexpired)
        .await
        .unwrap()
        .expect("the empty set's snapshot");
    let keep = |seq: u64, parts: Vec<Vec<u8>>| {
        let store = Arc::clone(&store);
        let mut meta = genuine_empty.meta;
        meta.seq = mayfly_authority::store::RevocationSeq(seq);
        async move {
            assert!(
                store
                    .keep_revoked_snapshot(&meta, &mut parts.into_iter())
                    .await
                    .unwrap()
            );
        }
    };
    keep(current_seq.0, genuine_empty.parts.clone()).await;
    assert_eq!(
        listed(&publisher(&store).current(CrlKind::Full).await.unwrap().der),
        Vec::<String>::new(),
        "the snapshot was not read"
    );
    // Not decodable: read from the rows.
    keep(current_seq.0, vec![b"not a snapshot".to_vec()]).await;
    assert_eq!(
        listed(&publisher(&store).current(CrlKind::Full).await.unwrap().der),
        sorted(&[&a, &c]),
        "an undecodable snapshot was used"
    );
    // Ahead of the store's revocations: read from the rows.
    keep(current_seq.0 + 100, genuine_empty.parts.clone()).await;
    assert_eq!(
        listed(&publisher(&store).current(CrlKind::Full).await.unwrap().der),
        sorted(&[&a, &c]),
        "a snapshot ahead of the store was used"
    );
}

/// A save the store refuses is tried again only ten minutes later, not on every refresh: each
/// try sends the whole set.
#[tokio::test]
async fn a_refused_save_waits_before_the_next_try() {
    use sqlx::Connection;

    let fixture = Ca::new("crl-save");
    let store = fixture.store("mayfly.db").await;
    let (now, clock) = (now(), fixture.clock.clone());
    let publisher = fixture.publisher(&store);
    publisher.current(CrlKind::Full).await.unwrap();
    // The store loses the table the parts go to: every save fails.
    let path = fixture.dir.join("mayfly.db");
    let mut raw = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("ALTER TABLE revoked_snapshot_parts RENAME TO parts_elsewhere")
        .execute(&mut raw)
        .await
        .unwrap();
    assert!(
        publisher.save_revoked_set().await.is_err(),
        "the save failed"
    );
    clock.set(now + Duration::minutes(9));
    assert!(
        !publisher.save_revoked_set().await.unwrap(),
        "tried again within ten minutes"
    );
    sqlx::query("ALTER TABLE parts_elsewhere RENAME TO revoked_snapshot_parts")
        .execute(&mut raw)
        .await
        .unwrap();
    clock.set(now + Duration::minutes(10));
    assert!(
        publisher.save_revoked_set().await.unwrap(),
        "not tried again after ten minutes"
    );
    raw.close().await.unwrap();
}

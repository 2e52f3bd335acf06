//! `mayfly-bench crl`: how long a complete CRL with N entries takes to make (store query,
//! encoding, signature), and how much memory it needs. The store is seeded directly with SQL,
//! which is far faster than issuing N certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use mayfly_authority::clock::SystemClock;
use mayfly_authority::crl::{CrlKind, CrlPublisher, CrlSettings};
use mayfly_pki::issuer::IssuerIdentity;
use mayfly_pki::{KeyAlgorithm, PrivateKey, SerialNumber};

#[derive(Debug, clap::Args)]
pub struct CrlArgs {
    /// Revoked certificates to put on the CRL.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub entries: u32,
    /// Directory for the seeded SQLite database [default: a new one under the OS temp dir,
    /// removed afterwards].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CrlArgs) -> anyhow::Result<()> {
    let entries = usize::try_from(args.entries).context("--entries is too large")?;
    let (dir, remove) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("mayfly-bench-crl-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = measure(&dir.join("bench.db"), entries, args.json).await;
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn measure(db: &Path, entries: usize, json: bool) -> anyhow::Result<()> {
    let store = mayfly_store::SqliteStore::open(db).await?;
    let seeding = Instant::now();
    seed(db, entries).await?;
    let seed_seconds = seeding.elapsed().as_secs_f64();

    let key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let ca = mayfly_pki::cert::create_root("Bench CA", &key, later)?;
    let settings = CrlSettings {
        url: "http://ca.internal:8080/1.0/crl".into(),
        lifetime: time::Duration::hours(24),
        renew_after: time::Duration::hours(16),
        generate_on_revoke: true,
        keep_expired: false,
        delta: None,
        shards: 1,
        shard_base: "http://ca.internal:8080/1.0/crls".into(),
    };
    let publisher = CrlPublisher::new(
        settings,
        IssuerIdentity::from_certificate(&ca)?,
        Arc::new(key),
        Arc::new(store),
        Arc::new(SystemClock),
        time::Duration::minutes(1),
    );
    let rss_before = memory_kib("VmRSS:");
    let start = Instant::now();
    let crl = publisher.current(CrlKind::Full).await?;
    let seconds = start.elapsed().as_secs_f64();
    let peak = memory_kib("VmHWM:");
    let report = serde_json::json!({
        "entries": entries,
        "seed_seconds": (seed_seconds * 1000.0).round() / 1000.0,
        "generate_seconds": (seconds * 1000.0).round() / 1000.0,
        "crl_bytes": crl.der.len(),
        "rss_before_kib": rss_before,
        "peak_rss_kib": peak,
    });
    if json {
        say!("{report}");
    } else {
        say!("entries:          {entries}");
        say!("seeding:          {seed_seconds:.2} s");
        say!("generation:       {seconds:.3} s");
        say!("CRL size:         {} bytes", crl.der.len());
        if let (Some(before), Some(peak)) = (rss_before, peak) {
            say!("RSS before:       {before} KiB");
            say!("peak RSS:         {peak} KiB");
        }
    }
    Ok(())
}

/// Inserts `entries` revoked, unexpired certificates in one transaction of multi-row INSERTs.
async fn seed(db: &Path, entries: usize) -> anyhow::Result<()> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
    let mut tx = connection.begin().await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut done = 0;
    while done < entries {
        // 11 bound values a row; SQLite allows 32,766 in one statement.
        let chunk = (entries - done).min(2_000);
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO certificates (serial, der, subject, sans, not_before, not_after, \
             provisioner, status, created_at, revoked_at, revocation_reason) ",
        );
        let serials = (0..chunk)
            .map(|_| SerialNumber::random().map(|s| s.to_decimal()))
            .collect::<Result<Vec<_>, _>>()?;
        insert.push_values(serials.iter().enumerate(), |mut row, (i, serial)| {
            row.push_bind(serial.as_str())
                .push_bind(&[0x30u8, 0x00][..])
                .push_bind("bench")
                .push_bind("[]")
                .push_bind(now - 3600)
                .push_bind(now + 86_400)
                .push_bind("bench")
                .push_bind("revoked")
                .push_bind(now)
                .push_bind(now - 60)
                .push_bind(i64::from([1u8, 4, 5][i % 3]));
        });
        insert.build().execute(&mut *tx).await?;
        done += chunk;
    }
    tx.commit().await?;
    Ok(())
}

/// A memory figure of this process from /proc/self/status, in KiB.
fn memory_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

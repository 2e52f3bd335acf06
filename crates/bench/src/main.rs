//! `mayfly-bench`: a load generator for mayfly-ca (and step-ca).
//!
//! `mayfly-bench sign` prepares N certificate requests (key, CSR, one-time token) ahead, then
//! sends them to `POST /1.0/sign` from C concurrent tasks sharing one keep-alive HTTPS client,
//! and reports throughput, latency and, given the server's PID, its CPU time per certificate.
//! `compare` runs that load against two CAs in paired runs (mayfly and step-ca, or two builds),
//! `fill` bulk-loads a store with synthetic certificates, and `acme`, `ocsp` and `crl` measure
//! the other paths. The pure stages have criterion benches (`benches/stages.rs`).
#![forbid(unsafe_code)]
// `println!` panics when the reader of a pipe has gone (`mayfly-bench ... | head`).
#![deny(clippy::print_stdout, clippy::print_stderr)]

/// Like `println!`, ignoring a closed standard output.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::write_ignoring_errors(&mut std::io::stdout(), &format!("{}\n", format_args!($($arg)*)))
    };
}

/// Like `eprintln!`, ignoring a closed standard error.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::write_ignoring_errors(&mut std::io::stderr(), &format!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes `text`, ignoring failures: a reader that has gone is no reason to fail a benchmark.
fn write_ignoring_errors(writer: &mut impl std::io::Write, text: &str) {
    let _ = writer
        .write_all(text.as_bytes())
        .and_then(|()| writer.flush());
}

/// The allocator mayfly-ca runs with, so that what `mayfly-bench crl` measures in-process (CRL
/// generation) costs what it costs in the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use mayfly_client::Client;
use mayfly_pki::{KeyAlgorithm, PrivateKey, San};
use mayfly_proto::SignRequest;

mod acme;
mod compare;
mod crl;
mod fill;
mod ocsp;
mod provisioner;
mod report;
mod stat;
mod token;

use provisioner::Provisioner;
use report::{Latency, Report};
use token::TokenSigner;

/// How many error messages a run keeps.
const MAX_ERRORS: usize = 5;

/// Load generator for mayfly-ca.
#[derive(Debug, Parser)]
#[command(name = "mayfly-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Issue N certificates through POST /1.0/sign and measure throughput, latency and CPU.
    #[command(
        long_about = "Issue N certificates through POST /1.0/sign and measure throughput, latency \
and CPU.\n\nBefore the clock starts, the provisioner key is obtained (from --provisioner-key, or \
from the CA's /provisioners, decrypted with the password) and all N requests are built: for each \
a new P-256 key, a CSR for bench-<i>.internal and a one-time token. Then C concurrent tasks \
sharing one keep-alive HTTPS client send them. With --pid, the CA process's CPU time \
(/proc/PID/stat, user + system) over the timed section is reported per certificate.\n\nThe exit \
status is non-zero when any request fails (the report is printed first).",
        after_long_help = "Example:\n  mayfly-bench sign --ca-url https://127.0.0.1:9000 \\\n    \
--root ca/certs/root_ca.crt \\\n    --password-file ca/secrets/provisioner_password \\\n    \
-n 10000 -c 32 --pid \"$(pidof mayfly-ca)\" --json"
    )]
    Sign(SignArgs),
    /// Run N full ACME flows (new order, http-01, finalize, download) and measure them.
    #[command(
        long_about = "Run N full ACME flows (new order, http-01, finalize, download) against an \
ACME provisioner and measure throughput, latency and CPU.\n\nBefore the clock starts, C accounts \
are created (one per concurrent task) and N keys and CSRs for bench-acme-<i>.internal are made. \
mayfly-bench answers http-01 on 127.0.0.1:--http-port, so the provisioner must validate there: \
set its insecureHttp01Port to that port and insecureValidationAddress to 127.0.0.1 (test \
settings, never for production). Each flow's latency is from newOrder to the downloaded \
chain.\n\nThe exit status is non-zero when any flow fails (the report is printed first).",
        after_long_help = "Example:\n  mayfly-bench acme --ca-url https://127.0.0.1:9000 \\\n    \
--root ca/certs/root_ca.crt --provisioner acme --http-port 5002 \\\n    \
-n 500 -c 16 --pid \"$(pidof mayfly-ca)\""
    )]
    Acme(AcmeArgs),
    /// Ask an OCSP responder about one certificate N times and measure responses per second,
    /// latency and the server's CPU per response.
    #[command(
        after_long_help = "Example:\n  mayfly-bench ocsp --url http://127.0.0.1:8080/ocsp \\\n    \
--issuer ca/certs/intermediate_ca.crt --cert svc.crt -n 200000 -c 32 --pid \"$(pidof mayfly-ca)\""
    )]
    Ocsp(ocsp::OcspArgs),
    /// Make a complete CRL with N revoked entries from a freshly seeded store and report the
    /// time and the memory it took.
    #[command(after_long_help = "Example:\n  mayfly-bench crl --entries 1000000")]
    Crl(crl::CrlArgs),
    /// Run the sign load against two CAs in paired runs and compare their medians.
    #[command(
        long_about = "Run the sign load of `mayfly-bench sign` against two CAs (A and B) in \
paired runs and compare them.\n\nEach pair runs N certificates against both CAs, one after the \
other: odd pairs A first, even pairs B first, so that the machine's drift favours neither. \
Before the first pair each CA gets --warmup requests that are not measured. Every run's requests \
(key, CSR, one-time token) are made before its clock starts. Printed: each run, each CA's median \
certificates per second and, with its --a-pid/--b-pid, its median server CPU per certificate, \
and the ratios B/A, of the medians and within each pair.\n\nB may be step-ca: its JWK \
provisioner's tokens are made the same way (`step ca init` output works as is).\n\nThe exit status \
is non-zero when a required flag is missing (one line on stderr) or any request failed.",
        after_long_help = "Example (mayfly against step-ca):\n  mayfly-bench compare \\\n    \
--a-name mayfly --a-url https://127.0.0.1:9000 --a-root mayfly/certs/root_ca.crt \\\n    \
--a-password-file pw.txt --a-pid \"$MAYFLY_PID\" \\\n    \
--b-name step-ca --b-url https://127.0.0.1:9100 --b-root step/certs/root_ca.crt \\\n    \
--b-password-file pw.txt --b-pid \"$STEP_CA_PID\" \\\n    \
--pairs 4 -n 10000 -c 32"
    )]
    Compare(compare::CompareArgs),
    /// Write N synthetic certificate records (M of them revoked) straight into a store, to
    /// measure against a large database.
    #[command(
        long_about = "Write N synthetic certificate records, M of them revoked, straight into a \
store (SQLite file, PostgreSQL or MySQL) through its bulk loader, a thousand rows a statement \
and ten thousand a transaction, then print the rate and the database's size.\n\nEach record \
is what an issuance writes: a real P-256 leaf (one is signed per CRL shard; records copy it with \
their own serial written in, so its signature no longer verifies), the subject and SAN \
host-<i>.fill.internal, provisioner \"fill\", and an audit entry; a revoked one also has its \
revocation and that one's audit entry. Serials carry their issuance time like the authority's; \
issuance is spread over the 12 hours before the run and every certificate is valid for 24 hours \
from it, so all are unexpired when the load ends. CRL shards are assigned by the authority's own \
rule (the low 64 bits of the serial modulo --shards).",
        after_long_help = "Examples:\n  mayfly-bench fill --db /var/tmp/10m.db --count 10000000 \
--revoked 100000 --shards 16\n  mayfly-bench fill --db postgres://postgres@127.0.0.1:5432/fill \
--count 10000000 --revoked 100000"
    )]
    Fill(fill::FillArgs),
}

#[derive(Debug, clap::Args)]
struct AcmeArgs {
    /// URL of the CA, https://host[:port].
    #[arg(long, value_name = "URL")]
    ca_url: String,
    /// The CA's root certificate (PEM or DER): the only certificate the connection trusts.
    #[arg(long, value_name = "FILE")]
    root: PathBuf,
    /// Name of the ACME provisioner; its directory is /acme/NAME/directory.
    #[arg(long, value_name = "NAME", default_value = "acme")]
    provisioner: String,
    /// Loopback port on which http-01 challenges are answered (the provisioner's
    /// insecureHttp01Port).
    #[arg(long, value_name = "PORT")]
    http_port: u16,
    /// Number of flows (certificates).
    #[arg(short = 'n', long = "requests", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Flows in flight at once, each task with its own account.
    #[arg(short = 'c', long, value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,
    /// PID of the mayfly-ca process, to report its CPU time per certificate (Linux /proc).
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// Order every certificate for this one DNS name or IP address instead of
    /// bench-acme-<i>.internal: a CA that validates where the name points (step-ca, which has
    /// no test settings) reaches the responder at 127.0.0.1 with --http-port 80.
    #[arg(long, value_name = "NAME|IP")]
    identifier: Option<String>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// URL of the CA, https://host[:port].
    #[arg(long, value_name = "URL")]
    ca_url: String,
    /// The CA's root certificate (PEM or DER): the only certificate the connection trusts, and
    /// whose fingerprint the tokens carry.
    #[arg(long, value_name = "FILE")]
    root: PathBuf,
    /// Name of the JWK provisioner [default: the only JWK provisioner of the CA, or with
    /// --provisioner-key the one whose key it is].
    #[arg(long, value_name = "NAME")]
    provisioner: Option<String>,
    /// The provisioner's private key: a private JWK (JSON), or a PBES2 JWE of one (compact or
    /// flattened JSON) decrypted with --password-file [default: the encrypted key the CA
    /// publishes in /provisioners].
    #[arg(long, value_name = "FILE")]
    provisioner_key: Option<PathBuf>,
    /// File holding the provisioner password (trailing white space is ignored); needed unless
    /// --provisioner-key is a JWK in clear.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Number of certificates to request.
    #[arg(short = 'n', long = "requests", value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    requests: u32,
    /// Number of requests in flight at once (concurrent tasks sharing one connection pool).
    #[arg(short = 'c', long, value_name = "C", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// PID of the mayfly-ca process, to report its CPU time per certificate (Linux /proc).
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sign(args) => sign(args),
        Command::Acme(args) => acme_flows(args),
        Command::Ocsp(args) => ocsp_load(args),
        Command::Crl(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|runtime| runtime.block_on(crl::run(args)))
            .map(|()| ExitCode::SUCCESS),
        Command::Compare(args) => compare::run(args),
        Command::Fill(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|runtime| runtime.block_on(fill::run(args)))
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            note!(
                "mayfly-bench: {}",
                one_line(&mayfly_authority::error::one_line(error.as_ref()))
            );
            ExitCode::FAILURE
        }
    }
}

/// Collapses line breaks so that every error is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let n = usize::try_from(args.requests).context("--requests is too large")?;
    let concurrency = usize::try_from(args.concurrency)
        .context("--concurrency is too large")?
        .min(n);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let target = SignTarget {
        ca_url: args.ca_url.clone(),
        root: args.root.clone(),
        provisioner: args.provisioner.clone(),
        provisioner_key: args.provisioner_key.clone(),
        password_file: args.password_file.clone(),
        pid: args.pid,
    };
    let ca = runtime.block_on(SignCa::connect(&target, ""))?;
    if !args.json {
        note!(
            "Provisioner {} [kid: {}]; preparing {n} requests...",
            ca.provisioner.name,
            ca.provisioner.kid
        );
    }
    let requests = Arc::new(ca.prepare(n)?);
    let report = measure(args.pid, n, concurrency, "certs", || {
        runtime.block_on(load(ca.client.clone(), Arc::clone(&requests), concurrency))
    })?;
    Ok(print_report(&report, args.json, "requests"))
}

/// Where `POST /1.0/sign` load goes: a CA, its root and the JWK provisioner whose key signs the
/// tokens.
#[derive(Debug, Clone)]
pub(crate) struct SignTarget {
    pub(crate) ca_url: String,
    pub(crate) root: PathBuf,
    pub(crate) provisioner: Option<String>,
    pub(crate) provisioner_key: Option<PathBuf>,
    pub(crate) password_file: Option<PathBuf>,
    /// The CA's process, whose CPU time is read around each timed section.
    pub(crate) pid: Option<u32>,
}

/// A CA ready for sign load: its client, its root's fingerprint and the provisioner key.
pub(crate) struct SignCa {
    pub(crate) client: Client,
    /// The URL as the client normalised it: the tokens' audience is built from it.
    pub(crate) ca_url: String,
    pub(crate) fingerprint: String,
    pub(crate) provisioner: Provisioner,
}

impl SignCa {
    /// Checks the PID, reads the root and obtains the provisioner key. `flag_prefix` names the
    /// flags in messages (`"a-"` for `--a-pid`), so an error says which one to fix.
    pub(crate) async fn connect(target: &SignTarget, flag_prefix: &str) -> anyhow::Result<SignCa> {
        if let Some(pid) = target.pid {
            stat::read(Some(pid)).with_context(|| format!("--{flag_prefix}pid {pid}"))?;
        }
        let root_der = read_root(&target.root)?;
        let fingerprint = mayfly_pki::cert::fingerprint_sha256(&root_der);
        let client = Client::new(&target.ca_url, std::slice::from_ref(&root_der))?;
        let ca_url = client.url().to_string();
        let provisioner = provisioner(target, &client)
            .await
            .with_context(|| format!("CA {ca_url}"))?;
        Ok(SignCa {
            client,
            ca_url,
            fingerprint,
            provisioner,
        })
    }

    /// `n` requests (key, CSR, token) for this CA, built before any clock starts.
    pub(crate) fn prepare(&self, n: usize) -> anyhow::Result<Vec<SignRequest>> {
        let signer = TokenSigner {
            key: &self.provisioner.key,
            kid: &self.provisioner.kid,
            issuer: &self.provisioner.name,
            ca_url: &self.ca_url,
            root_fingerprint: &self.fingerprint,
        };
        prepare(n, &signer)
    }
}

fn ocsp_load(args: ocsp::OcspArgs) -> anyhow::Result<ExitCode> {
    let n = usize::try_from(args.requests).context("--requests is too large")?;
    let concurrency = usize::try_from(args.concurrency)
        .context("--concurrency is too large")?
        .min(n);
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let request = ocsp::request_der(&read(&args.issuer)?, &read(&args.cert)?)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = measure(args.pid, n, concurrency, "responses", || {
        runtime.block_on(ocsp::load(args.url.clone(), request, n, concurrency))
    })?;
    Ok(print_report(&report, args.json, "requests"))
}

/// Runs the timed section `load`, reading the server's and this process's CPU around it.
pub(crate) fn measure(
    pid: Option<u32>,
    n: usize,
    concurrency: usize,
    unit: &'static str,
    load: impl FnOnce() -> Outcome,
) -> anyhow::Result<Report> {
    let ticks_per_second = stat::ticks_per_second();
    let server_before = pid.map(|pid| stat::read(Some(pid))).transpose()?;
    let client_before = stat::read(None).ok();
    let start = Instant::now();
    let outcome = load();
    let wall = start.elapsed();
    let client_after = stat::read(None).ok();
    let server_after = match pid {
        Some(pid) => Some(
            stat::read(Some(pid)).with_context(|| format!("the CA process (PID {pid}) is gone"))?,
        ),
        None => None,
    };
    let Outcome {
        mut latencies,
        failures,
        errors,
    } = outcome;
    Ok(Report {
        n,
        concurrency,
        unit,
        successes: latencies.len(),
        failures,
        wall,
        latency: Latency::from_samples(&mut latencies),
        server_cpu: server_before
            .zip(server_after)
            .map(|(before, after)| before.elapsed_until(after, ticks_per_second)),
        client_cpu: client_before
            .zip(client_after)
            .map(|(before, after)| before.elapsed_until(after, ticks_per_second)),
        errors,
    })
}

/// Prints `report`; the exit status fails when a request (`what`: "requests", "flows") failed.
fn print_report(report: &Report, json: bool, what: &str) -> ExitCode {
    if json {
        say!("{}", report.to_json());
    } else {
        write_ignoring_errors(&mut std::io::stdout(), &report.to_text());
    }
    if report.failures > 0 {
        let first = report.errors.first().map_or("", String::as_str);
        note!(
            "mayfly-bench: {} of {} {what} failed; first error: {}",
            report.failures,
            report.n,
            one_line(first)
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn acme_flows(args: AcmeArgs) -> anyhow::Result<ExitCode> {
    let n = usize::try_from(args.requests).context("--requests is too large")?;
    let concurrency = usize::try_from(args.concurrency)
        .context("--concurrency is too large")?
        .min(n);
    if let Some(pid) = args.pid {
        stat::read(Some(pid)).with_context(|| format!("--pid {pid}"))?;
    }
    let root_der = read_root(&args.root)?;
    let client = Client::new(&args.ca_url, std::slice::from_ref(&root_der))?;
    let directory = format!("{}/acme/{}/directory", client.url(), args.provisioner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answers: acme::Answers = Arc::default();
    runtime.block_on(acme::serve_http01(args.http_port, Arc::clone(&answers)))?;
    if !args.json {
        note!("Creating {concurrency} accounts and {n} CSRs...");
    }
    let accounts = runtime.block_on(async {
        let mut accounts = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            accounts.push(Arc::new(
                acme::Account::create(client.clone(), &directory).await?,
            ));
        }
        anyhow::Ok(accounts)
    })?;
    let csrs: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        (0..n)
            .map(|i| {
                let name = args
                    .identifier
                    .clone()
                    .unwrap_or_else(|| format!("bench-acme-{i}.internal"));
                acme::prepare_csr(&name).map(|csr| (name, csr))
            })
            .collect::<anyhow::Result<_>>()?,
    );

    let ticks_per_second = stat::ticks_per_second();
    let server_before = args.pid.map(|pid| stat::read(Some(pid))).transpose()?;
    let client_before = stat::read(None).ok();
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let outcome = runtime.block_on(async {
        let mut tasks = Vec::new();
        for account in accounts {
            let (csrs, next, answers) =
                (Arc::clone(&csrs), Arc::clone(&next), Arc::clone(&answers));
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((name, csr)) = csrs.get(i) else {
                        break;
                    };
                    let began = Instant::now();
                    match account.flow(name, csr, &answers).await {
                        Ok(_) => latencies.push(began.elapsed()),
                        Err(e) => errors.push(format!("{e:#}")),
                    }
                }
                (latencies, errors)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = Vec::new();
        for task in tasks {
            let (l, e) = task
                .await
                .unwrap_or_else(|e| (Vec::new(), vec![e.to_string()]));
            latencies.extend(l);
            errors.extend(e);
        }
        (latencies, errors)
    });
    let wall = start.elapsed();
    let client_after = stat::read(None).ok();
    let server_after = match args.pid {
        Some(pid) => Some(stat::read(Some(pid)).context("the CA process (--pid) is gone")?),
        None => None,
    };
    let (mut latencies, errors) = outcome;
    let failures = errors.len();
    let report = Report {
        unit: "certs",
        n,
        concurrency,
        successes: latencies.len(),
        failures,
        wall,
        latency: Latency::from_samples(&mut latencies),
        server_cpu: server_before
            .zip(server_after)
            .map(|(before, after)| before.elapsed_until(after, ticks_per_second)),
        client_cpu: client_before
            .zip(client_after)
            .map(|(before, after)| before.elapsed_until(after, ticks_per_second)),
        errors: errors.into_iter().take(MAX_ERRORS).collect(),
    };
    if args.json {
        say!("{}", report.to_json());
    } else {
        write_ignoring_errors(&mut std::io::stdout(), &report.to_text());
    }
    if report.failures > 0 {
        let first = report.errors.first().map_or("", String::as_str);
        note!(
            "mayfly-bench: {} of {n} flows failed; first error: {}",
            report.failures,
            one_line(first)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The root certificate, DER, from a PEM or DER file.
fn read_root(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read the root {}", path.display()))?;
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        mayfly_pki::cert::certificates_from_pem(&bytes)
            .with_context(|| format!("root {}", path.display()))?
            .into_iter()
            .next()
            .with_context(|| format!("root {}: no certificate", path.display()))
    } else if bytes.first() == Some(&0x30) {
        Ok(bytes)
    } else {
        bail!("root {}: not a PEM or DER certificate", path.display())
    }
}

/// The provisioner, its private key and key id.
async fn provisioner(target: &SignTarget, client: &Client) -> anyhow::Result<Provisioner> {
    if let Some(path) = &target.provisioner_key {
        let path = path.clone();
        let password_file = target.password_file.clone();
        // PBKDF2 with step's 600,000 iterations takes a moment: off the async threads.
        let key = tokio::task::spawn_blocking(move || {
            provisioner::load_key_file(&path, password_file.as_deref())
        })
        .await??;
        let kid = provisioner::kid_of(&key)?;
        let name = match &target.provisioner {
            Some(name) => name.clone(),
            None => {
                let provisioners = client.provisioners().await?;
                provisioner::find_by_kid(&provisioners, &kid)?.name.clone()
            }
        };
        return Ok(Provisioner { name, key, kid });
    }
    let provisioners = client.provisioners().await?;
    let chosen =
        mayfly_client::choose_jwk_provisioner(&provisioners, target.provisioner.as_deref())?;
    let Some(encrypted) = chosen.encrypted_key.clone() else {
        bail!(
            "provisioner {:?} publishes no encrypted key: pass --provisioner-key",
            chosen.name
        );
    };
    let password = provisioner::read_password(
        target.password_file.as_deref(),
        "the provisioner key the CA publishes",
    )?;
    let key = tokio::task::spawn_blocking(move || provisioner::decrypt_key(&encrypted, &password))
        .await??;
    let kid = provisioner::kid_of(&key)?;
    Ok(Provisioner {
        name: chosen.name.clone(),
        key,
        kid,
    })
}

/// Builds the `n` requests, spreading the work over the available cores.
fn prepare(n: usize, signer: &TokenSigner<'_>) -> anyhow::Result<Vec<SignRequest>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, n.max(1));
    let chunk = n.div_ceil(threads);
    let parts: Vec<anyhow::Result<Vec<SignRequest>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * chunk)..((t + 1) * chunk).min(n);
                scope.spawn(move || range.map(|i| request(i, signer)).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a preparing thread panicked")))
            })
            .collect()
    });
    let mut requests = Vec::with_capacity(n);
    for part in parts {
        requests.extend(part?);
    }
    Ok(requests)
}

/// Request `i`: a new P-256 key, a CSR for `bench-{i}.internal` and its token.
fn request(i: usize, signer: &TokenSigner<'_>) -> anyhow::Result<SignRequest> {
    let name = format!("bench-{i}.internal");
    let key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
    let csr = mayfly_pki::csr::create_pem(&key, &name, &[San::parse(&name)?])?;
    let ott = signer.sign(&name)?;
    Ok(SignRequest {
        csr,
        ott,
        not_before: None,
        not_after: None,
        template_data: None,
    })
}

/// What the timed section saw.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Latency of each successful request.
    pub(crate) latencies: Vec<Duration>,
    pub(crate) failures: usize,
    /// The first few error messages.
    pub(crate) errors: Vec<String>,
}

impl Outcome {
    pub(crate) fn fail(&mut self, message: String) {
        self.failures += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(message);
        }
    }

    pub(crate) fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
        let room = MAX_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
    }
}

/// The timed section: `concurrency` tasks pull requests from a shared index and send them.
async fn load(client: Client, requests: Arc<Vec<SignRequest>>, concurrency: usize) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let requests = Arc::clone(&requests);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                while let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let start = Instant::now();
                    match client.sign(request).await {
                        Ok(response) if response.crt.contains("BEGIN CERTIFICATE") => {
                            outcome.latencies.push(start.elapsed());
                        }
                        Ok(_) => outcome.fail("the CA answered without a certificate".into()),
                        Err(error) => outcome.fail(error.to_string()),
                    }
                }
                outcome
            })
        })
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(outcome) => total.merge(outcome),
            Err(error) => total.fail(format!("a load task failed: {error}")),
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_flags() {
        let cli = Cli::try_parse_from([
            "mayfly-bench",
            "sign",
            "--ca-url",
            "https://127.0.0.1:9000",
            "--root",
            "root.crt",
            "--password-file",
            "pw",
            "-n",
            "20",
            "-c",
            "4",
            "--pid",
            "42",
            "--json",
        ])
        .unwrap();
        let Command::Sign(args) = cli.command else {
            panic!("parsed as another command")
        };
        assert_eq!(args.requests, 20);
        assert_eq!(args.concurrency, 4);
        assert_eq!(args.pid, Some(42));
        assert!(args.json);
        assert!(args.provisioner.is_none());
        let zero = Cli::try_parse_from([
            "mayfly-bench",
            "sign",
            "--ca-url",
            "https://x",
            "--root",
            "r",
            "-n",
            "0",
        ]);
        assert!(zero.is_err());
    }

    #[test]
    fn every_flag_has_help() {
        let command = Cli::command();
        for name in ["sign", "acme", "ocsp", "crl", "compare", "fill"] {
            let sub = command.find_subcommand(name).unwrap();
            for arg in sub.get_arguments() {
                assert!(
                    arg.get_help().is_some(),
                    "{name} --{} has no help",
                    arg.get_id()
                );
            }
            assert!(sub.get_after_long_help().is_some(), "{name} has no example");
        }
    }

    #[test]
    fn outcome_keeps_first_errors() {
        let mut a = Outcome::default();
        for i in 0..7 {
            a.fail(format!("e{i}"));
        }
        let mut b = Outcome {
            latencies: vec![Duration::from_millis(1)],
            ..Outcome::default()
        };
        b.fail("late".into());
        a.merge(b);
        assert_eq!(a.failures, 8);
        assert_eq!(a.errors.len(), MAX_ERRORS);
        assert_eq!(a.errors.first().map(String::as_str), Some("e0"));
        assert_eq!(a.latencies.len(), 1);
    }

    #[test]
    fn prepares_requests() {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let kid = provisioner::kid_of(&key).unwrap();
        let signer = TokenSigner {
            key: &key,
            kid: &kid,
            issuer: "dev",
            ca_url: "https://127.0.0.1:9000",
            root_fingerprint: "00",
        };
        let requests = prepare(5, &signer).unwrap();
        assert_eq!(requests.len(), 5);
        for (i, request) in requests.iter().enumerate() {
            let csr = mayfly_pki::Csr::from_pem(&request.csr).unwrap();
            assert_eq!(
                csr.common_name(),
                Some(format!("bench-{i}.internal").as_str())
            );
        }
    }

    #[test]
    fn one_line_errors() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }

    #[test]
    fn root_files() {
        let dir = std::env::temp_dir().join(format!("mayfly-bench-root-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x01];
        let der_path = dir.join("root.der");
        std::fs::write(&der_path, &der).unwrap();
        assert_eq!(read_root(&der_path).unwrap(), der);
        let pem_path = dir.join("root.pem");
        std::fs::write(&pem_path, mayfly_pki::cert::certificate_pem(&der)).unwrap();
        assert_eq!(read_root(&pem_path).unwrap(), der);
        let bad_path = dir.join("root.txt");
        std::fs::write(&bad_path, "hello").unwrap();
        assert!(read_root(&bad_path).is_err());
        assert!(read_root(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}

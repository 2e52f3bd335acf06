//! `mayfly-ca`: the mayfly certificate authority server.

// `println!` panics when the reader of a pipe has gone (`mayfly-ca dev | head`); a CA must keep
// serving, so everything printed goes through `say`, which ignores that.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Like `println!`, but a closed standard output is ignored (see `write_ignoring_errors`).
macro_rules! say {
    ($($arg:tt)*) => {
        write_ignoring_errors(&mut std::io::stdout(), &format!("{}\n", format_args!($($arg)*)))
    };
}
use clap::{CommandFactory, Parser, Subcommand};
use mayfly_server::permissions::FilePermissions;
use zeroize::Zeroizing;

// glibc's allocator spent a tenth of the server's CPU under load (memory freed on another thread
// than the one that allocated it, chunk consolidation); mimalloc's per-thread heaps do not.
// Measured in docs/PERFORMANCE.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `--version`: the package's version and the commit built.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MAYFLY_GIT_COMMIT"),
    ")"
);

/// The mayfly certificate authority server.
///
/// Serves the step-ca compatible HTTP API over TLS. Start it with a ca.json made by
/// `mayfly ca init`, or run `mayfly-ca dev` for a throwaway CA with no set-up.
#[derive(Debug, Parser)]
#[command(
    name = "mayfly-ca",
    version = VERSION,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Path to ca.json [default: $MAYFLY_PATH/config/ca.json].
    config: Option<PathBuf>,

    /// File holding the password of the intermediate CA key (trailing whitespace is ignored).
    /// It must not be readable by other users. Without it, an encrypted key's password is asked
    /// at the terminal.
    #[arg(long, value_name = "FILE", env = "MAYFLY_PASSWORD_FILE")]
    password_file: Option<PathBuf>,

    /// Start even when ca.json, a CA key or the password file can be read by every user of the
    /// host. Insecure: fix the modes instead (chmod o-rwx).
    #[arg(long)]
    insecure_allow_world_readable: bool,

    /// Log lines as human-readable text, or as one JSON object per line. Every line written
    /// while a request is served carries its request id. The level comes from MAYFLY_LOG
    /// (error, warn, info, debug; default info).
    #[arg(
        long,
        value_enum,
        global = true,
        default_value = "text",
        env = "MAYFLY_LOG_FORMAT"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a throwaway CA with no set-up: keys in clear in a new directory, the embedded
    /// SQLite store, listening on 127.0.0.1. Prints the commands to get a certificate.
    ///
    /// Example: mayfly-ca dev --address 127.0.0.1:9000
    Dev {
        /// Directory for the CA's files [default: a new directory under the OS temp dir].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9000")]
        address: String,
    },
    /// Manage the database ca.json's `db` names: bring its schema up to date, or check it.
    ///
    /// The server migrates on start too; run `db migrate` first when several instances share
    /// one database, so an upgrade happens once, before the new version serves.
    #[command(subcommand)]
    Db(DbCommand),
    /// Copy step-ca's records into this CA's database: issued and revoked certificates (X.509
    /// and SSH) and used token ids, so that what step-ca revoked stays refused here.
    ///
    /// Reads step-ca's MySQL or PostgreSQL database, named by step-ca's ca.json (--from) or
    /// by its `db` fields (--db-type, --data-source, --database), and changes nothing in it. A
    /// badger database (step-ca's default) must first be copied to MySQL or PostgreSQL with
    /// step-ca's badger-migration tool. Writes into the database that this CA's ca.json names,
    /// which must not be step-ca's own. Safe to run again: records already copied are counted,
    /// not duplicated; run it once more after stopping step-ca to catch the last ones.
    ///
    /// Example: mayfly-ca import-step --from /etc/step-ca/config/ca.json /etc/mayfly/config/ca.json
    ImportStep {
        /// step-ca's ca.json, whose `db` names the database to read.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["db_type", "database"])]
        from: Option<PathBuf>,
        /// step-ca's `db.type`: mysql or postgresql (instead of --from).
        #[arg(long, value_name = "TYPE")]
        db_type: Option<String>,
        /// step-ca's `db.dataSource`, with --db-type: a URL, the MySQL form
        /// user@tcp(host:port)/, or PostgreSQL's key=value form. Without a password: one on the
        /// command line can be read by every user of the host; use --data-source-file for it.
        #[arg(long, value_name = "DATA_SOURCE", conflicts_with = "data_source_file")]
        data_source: Option<String>,
        /// File holding step-ca's `db.dataSource` (trailing whitespace is ignored), for one with
        /// a password. It must not be readable by other users.
        #[arg(long, value_name = "FILE")]
        data_source_file: Option<PathBuf>,
        /// step-ca's `db.database`, with --db-type, when the data source does not name the
        /// database.
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
        /// Path to this CA's ca.json, whose `db` receives the records
        /// [default: $MAYFLY_PATH/config/ca.json].
        config: Option<PathBuf>,
    },
    /// Write a man page for mayfly-ca and each of its commands into DIR (mayfly-ca.8,
    /// mayfly-ca-dev.8, ...), in section 8 with the other servers, as the release archives carry
    /// them. (`mayfly man` writes the client's, in section 1.)
    ///
    /// Example: mayfly-ca man /usr/local/share/man/man8
    Man {
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply the schema migrations this database has not seen yet.
    ///
    /// Safe to run while other instances serve and from several hosts at once: migrations take
    /// a database lock and each is applied once. Refuses a database newer than this mayfly-ca.
    ///
    /// Example: mayfly-ca db migrate /etc/mayfly/config/ca.json
    Migrate {
        /// Path to ca.json [default: $MAYFLY_PATH/config/ca.json].
        config: Option<PathBuf>,
    },
    /// Report the database's schema version against this mayfly-ca's, changing nothing.
    ///
    /// Exits 0 when they match, 1 when migrations are pending or the database is newer (or
    /// unreachable), so it can gate a deployment.
    ///
    /// Example: mayfly-ca db check /etc/mayfly/config/ca.json
    Check {
        /// Path to ca.json [default: $MAYFLY_PATH/config/ca.json].
        config: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    raise_open_files_limit();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let line = mayfly_authority::error::one_line(e.as_ref());
            write_ignoring_errors(
                &mut std::io::stderr(),
                &format!("mayfly-ca: error: {line}\n"),
            );
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Registered before anything else, so a SIGHUP during start-up cannot end the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP")?;
    match cli.command {
        Some(Command::Dev { dir, address }) => {
            let dev = mayfly_server::dev::create(dir.as_deref(), &address).await?;
            let config_path = dev.config_path.clone();
            let banner = dev.banner();
            let prepared = mayfly_server::startup::prepare(
                &config_path,
                None,
                Some(dev.listener),
                FilePermissions::Enforce,
            )
            .await?;
            let ports = mayfly_server::startup::public_ports(&prepared);
            reload_on_hangup(
                hangup,
                std::sync::Arc::clone(&prepared.state),
                config_path,
                None,
                ports,
                FilePermissions::Enforce,
            );
            say!("{banner}");
            mayfly_server::startup::run(prepared, shutdown_signal()).await;
            Ok(())
        }
        Some(Command::Db(command)) => database_command(command).await,
        Some(Command::ImportStep {
            from,
            db_type,
            data_source,
            data_source_file,
            database,
            config,
        }) => {
            let in_file = data_source_file.is_some();
            let data_source = match data_source_file {
                Some(path) => Some(read_data_source_file(&path)?),
                None => data_source,
            };
            let source = step_database(from, db_type, data_source, in_file, database)?;
            import_step(&source, config).await
        }
        Some(Command::Man { dir }) => write_man_pages(&dir),
        None => {
            let permissions = if cli.insecure_allow_world_readable {
                tracing::warn!(
                    "--insecure-allow-world-readable: secret files readable by every user are accepted"
                );
                FilePermissions::AllowWorldReadable
            } else {
                FilePermissions::Enforce
            };
            let config = config_path(cli.config)?;
            let password = match &cli.password_file {
                Some(path) => {
                    mayfly_server::permissions::check_file(
                        path,
                        "--password-file",
                        mayfly_server::permissions::Secrecy::Clear,
                        permissions,
                    )?;
                    let raw = std::fs::read(path).with_context(|| {
                        format!("--password-file: cannot read {}", path.display())
                    })?;
                    Some(Zeroizing::new(
                        mayfly_pki::keyfile::read_password_file_bytes(&raw),
                    ))
                }
                None => ask_key_password(&config)?,
            };
            let prepared = mayfly_server::startup::prepare(
                &config,
                password.as_ref().map(|p| p.as_slice()),
                None,
                permissions,
            )
            .await?;
            let ports = mayfly_server::startup::public_ports(&prepared);
            reload_on_hangup(
                hangup,
                std::sync::Arc::clone(&prepared.state),
                config.clone(),
                password,
                ports,
                permissions,
            );
            tracing::info!(address = %prepared.local_addr, "mayfly-ca is serving");
            say!("mayfly-ca: serving on https://{}", prepared.local_addr);
            if let Some(plain) = prepared.insecure_addr {
                say!("mayfly-ca: serving CRLs and OCSP on http://{plain}");
            }
            if let Some(metrics) = prepared.metrics_addr {
                say!("mayfly-ca: serving metrics on http://{metrics}/metrics");
            }
            mayfly_server::startup::run(prepared, shutdown_signal()).await;
            Ok(())
        }
    }
}

/// Writes the man pages of mayfly-ca and its subcommands, generated from the clap definitions.
fn write_man_pages(dir: &Path) -> anyhow::Result<()> {
    fn write_tree(command: &clap::Command, dir: &Path) -> anyhow::Result<usize> {
        let mut written = 0;
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            written += write_tree(sub, dir)?;
        }
        let man = clap_mangen::Man::new(command.clone())
            .section("8")
            .source(format!("mayfly-ca {VERSION}"));
        let mut page = Vec::new();
        man.render(&mut page)
            .with_context(|| format!("rendering the man page of {}", command.get_name()))?;
        let path = dir.join(man.get_filename());
        mayfly_config::files::write_atomic(&path, &page, mayfly_config::files::PUBLIC_MODE)?;
        Ok(written + 1)
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut command = Cli::command().disable_help_subcommand(true);
    // Gives every subcommand its full name (mayfly-ca-dev) for its page's title and file.
    command.build();
    let written = write_tree(&command, dir)?;
    say!("{written} man pages written to {}", dir.display());
    Ok(())
}

/// Without --password-file, the intermediate key's password typed at the terminal, as step-ca
/// asks for it, when the key is encrypted and ca.json holds no `password`. Anything else
/// (ca.json or the key unreadable) is left for start-up to report in full.
fn ask_key_password(config_path: &Path) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    use std::io::IsTerminal;
    let Ok(loaded) = mayfly_config::config::CaConfig::load(config_path) else {
        return Ok(None);
    };
    if loaded.config.password.is_some() {
        return Ok(None);
    }
    let base_dir = std::env::current_dir().context("reading the working directory")?;
    let key = mayfly_config::config::resolve_path(&base_dir, &loaded.config.key);
    let encrypted = std::fs::read(&key)
        .map(|pem| mayfly_pki::keyfile::is_encrypted_pem(&Zeroizing::new(pem)))
        .unwrap_or(false);
    if !encrypted {
        return Ok(None);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the intermediate CA key {} is encrypted and there is no terminal to ask for its \
             password: pass --password-file FILE",
            key.display()
        );
    }
    let name = key.file_name().map_or_else(
        || key.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let typed =
        rpassword::prompt_password(format!("Please enter the password to decrypt {name}: "))
            .context("reading the password")?;
    Ok(Some(Zeroizing::new(typed.into_bytes())))
}

/// Writes `text`, ignoring failures: output nobody reads is no reason to stop the CA.
fn write_ignoring_errors(writer: &mut impl std::io::Write, text: &str) {
    let _ = writer
        .write_all(text.as_bytes())
        .and_then(|()| writer.flush());
}

fn config_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => Ok(path),
        None => Ok(mayfly_config::init::mayfly_path()?.join("config/ca.json")),
    }
}

async fn database_command(command: DbCommand) -> anyhow::Result<()> {
    let (config, migrate) = match command {
        DbCommand::Migrate { config } => (config, true),
        DbCommand::Check { config } => (config, false),
    };
    let config = config_path(config)?;
    let loaded = mayfly_config::config::CaConfig::load(&config)?;
    let in_file = || format!("{}: db", loaded.path.display());
    let location =
        mayfly_store::Location::of(&loaded.config, &loaded.path).with_context(in_file)?;
    let database = location.display_name();
    if migrate {
        let before = mayfly_store::schema_status(&location).await.ok();
        let after = mayfly_store::migrate(&location)
            .await
            .with_context(in_file)?;
        match before {
            Some(before) if before.found == after.found => say!(
                "database {database}: schema version {} is up to date; nothing to do",
                after.found
            ),
            _ => say!(
                "database {database}: migrated to schema version {}",
                after.found
            ),
        }
        return Ok(());
    }
    let status = mayfly_store::schema_status(&location)
        .await
        .with_context(in_file)?;
    if status.found > status.known {
        anyhow::bail!(
            "database {database} has schema version {}, newer than this mayfly-ca's {}; \
             upgrade mayfly-ca",
            status.found,
            status.known
        );
    }
    if status.found < status.known {
        anyhow::bail!(
            "database {database} has schema version {}, this mayfly-ca needs {}: run \
             `mayfly-ca db migrate`",
            status.found,
            status.known
        );
    }
    say!(
        "database {database}: schema version {} is up to date",
        status.found
    );
    Ok(())
}

/// `import-step --data-source-file`: a secret, refused when other users can read it.
fn read_data_source_file(path: &std::path::Path) -> anyhow::Result<String> {
    mayfly_server::permissions::check_file(
        path,
        "--data-source-file",
        mayfly_server::permissions::Secrecy::Clear,
        FilePermissions::Enforce,
    )?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--data-source-file: cannot read {}", path.display()))?;
    Ok(text.trim_end().to_owned())
}

/// step-ca's database, as `import-step`'s options name it; `in_file` says whether the data
/// source came from --data-source-file rather than the command line.
fn step_database(
    from: Option<PathBuf>,
    db_type: Option<String>,
    data_source: Option<String>,
    in_file: bool,
    database: Option<String>,
) -> anyhow::Result<mayfly_store::step::StepDatabase> {
    use mayfly_config::config::DataSource;
    use mayfly_store::step::StepDatabase;
    match (from, db_type) {
        (Some(from), _) => {
            let loaded = mayfly_config::config::CaConfig::load(&from).context("--from")?;
            let db = loaded.config.db.as_ref().ok_or_else(|| {
                anyhow::anyhow!(
                    "--from {}: step-ca's ca.json has no db: it kept no records",
                    from.display()
                )
            })?;
            StepDatabase::new(&db.kind, &db.data_source, db.database.as_deref())
                .with_context(|| format!("--from {}: db", from.display()))
        }
        (None, Some(db_type)) => {
            let data_source = DataSource::new(data_source.ok_or_else(|| {
                anyhow::anyhow!("--db-type needs --data-source or --data-source-file")
            })?);
            if data_source.has_password() && !in_file {
                anyhow::bail!(
                    "--data-source holds a password, which every user can read in the process \
                     list: put the data source in a file for --data-source-file, or use --from \
                     with step-ca's ca.json"
                );
            }
            StepDatabase::new(&db_type, &data_source, database.as_deref()).context("--data-source")
        }
        (None, None) => anyhow::bail!(
            "name step-ca's database: --from with step-ca's ca.json, or --db-type with \
             --data-source or --data-source-file"
        ),
    }
}

async fn import_step(
    source: &mayfly_store::step::StepDatabase,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    // Everything is read and checked before mayfly's store is opened: a bad row changes nothing.
    let records = source.read().await?;
    let config = config_path(config)?;
    let loaded = mayfly_config::config::CaConfig::load(&config)?;
    let in_file = || format!("{}: db", loaded.path.display());
    let location =
        mayfly_store::Location::of(&loaded.config, &loaded.path).with_context(in_file)?;
    let store = mayfly_store::AnyStore::open(&location)
        .await
        .with_context(in_file)?;
    let report = records.import_into(&store, source.name()).await?;
    say!(
        "imported step-ca database {} into {}:",
        source.name(),
        location.display_name()
    );
    for (what, counted) in [
        ("certificates", report.certificates),
        ("revocations", report.revocations),
        ("SSH certificates", report.ssh_certificates),
        ("SSH revocations", report.ssh_revocations),
        ("used tokens", report.used_tokens),
    ] {
        say!(
            "  {what}: {} copied, {} already there",
            counted.imported,
            counted.present
        );
    }
    if !report.orphan_revocations.is_empty() {
        say!(
            "  not copied: revocations of certificates step-ca has no record of (serials {}); \
             mayfly-ca does not renew a certificate it has no record of",
            report.orphan_revocations.join(", ")
        );
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit, as Go programs (step-ca among them)
/// do at start: every connection is a file, and the soft limit many systems set (1,024) is
/// reached before `maxConnections` is, while the hard limit is there to be used. When it
/// cannot be raised, the limit stays as it was and nothing is said.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is unlimited: an unlimited soft limit needs no raising.
    let Some(current) = limit.current else {
        return;
    };
    if limit.maximum.is_some_and(|maximum| maximum <= current) {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if setrlimit(Resource::Nofile, raised).is_ok() {
        let to = limit
            .maximum
            .map_or_else(|| "unlimited".to_owned(), |maximum| maximum.to_string());
        tracing::debug!(from = current, to = %to, "raised the soft limit on open files");
    }
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAYFLY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Each line names the request's span (its id, method, path, client) with the event.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Reloads ca.json on every SIGHUP (the systemd unit's `ExecReload`). A configuration that
/// does not load is logged and ignored: the CA keeps serving with the one in force.
fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    state: std::sync::Arc<mayfly_server::api::AppState>,
    config: PathBuf,
    password: Option<Zeroizing<Vec<u8>>>,
    ports: mayfly_authority::publication::PublicPorts,
    permissions: FilePermissions,
) {
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match mayfly_server::startup::reload(
                &state,
                &config,
                password.as_ref().map(|p| p.as_slice()),
                ports,
                permissions,
            ) {
                Ok(()) => {
                    tracing::info!(file = %config.display(), "SIGHUP: configuration reloaded")
                }
                Err(e) => tracing::error!(
                    error = %mayfly_authority::error::one_line(e.as_ref()),
                    "SIGHUP: the new configuration does not load; the running one stays in force"
                ),
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

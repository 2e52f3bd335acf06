//! `mayfly`: the command-line client of the mayfly CA.
//!
//! A thin layer: parse flags, read and write files, prompt, print. Everything that decides
//! anything lives in the library crates.

// Argument enums are built once per run; boxing their variants would only add noise.
#![allow(clippy::large_enum_variant)]
// `println!` and friends panic when the reader of a pipe has gone (`mayfly ca roots | head`):
// all output goes through the macros below instead.
#![deny(clippy::print_stdout, clippy::print_stderr)]

/// Like `println!`, as an `anyhow::Result`: a closed standard output ends the command quietly
/// (see [`output::ClosedPipe`]).
macro_rules! outln {
    () => {
        $crate::output::write_stdout("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// Like `print!`, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(&format!($($arg)*))
    };
}

/// Like `eprintln!`, for progress and notes: never fails, since a message nobody reads is no
/// reason to fail a command that did its work.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod ca;
mod certificate;
mod context;
mod crypto;
mod docs;
mod identity;
mod inspect;
mod jwt;
mod oauth;
mod output;
mod password;
mod prompt;
mod ssh;
mod verify;

/// The version `--version` and `mayfly version` print: the package's, and the commit built.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MAYFLY_GIT_COMMIT"),
    ")"
);

/// The mayfly client: bootstrap trust in a CA, get and inspect certificates.
#[derive(Debug, Parser)]
#[command(name = "mayfly", version = VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Talk to a mayfly (or step) CA: init, bootstrap, tokens, certificates.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Create, inspect and fingerprint certificates locally.
    #[command(subcommand)]
    Certificate(certificate::CertificateCommand),
    /// Cryptographic utilities.
    #[command(subcommand)]
    Crypto(CryptoCommand),
    /// SSH user and host certificates: get, inspect, renew, rekey, revoke; CA keys, snippets
    /// and the KRL for ssh and sshd.
    #[command(subcommand)]
    Ssh(ssh::SshCommand),
    /// Log in at an OpenID provider (authorization code with PKCE, loopback redirect) and
    /// print the tokens it issues.
    ///
    /// The provider's login page opens in $BROWSER or the system's browser; when none can be
    /// opened the URL is printed. The ID token (--oidc --bare) is what an OIDC provisioner
    /// takes as --token. Example:
    ///
    ///   mayfly oauth --provider https://accounts.example.com --client-id mayfly --oidc --bare
    Oauth(oauth::OauthArgs),
    /// Print the configuration directory ($MAYFLY_PATH, default ~/.mayfly).
    Path,
    /// Print the version of mayfly, the commit it was built from, and the platform.
    Version,
    /// Print a shell completion script.
    ///
    /// Examples:
    ///
    ///   mayfly completion bash > /etc/bash_completion.d/mayfly
    ///   mayfly completion zsh > "${fpath[1]}/_mayfly"
    ///   mayfly completion fish > ~/.config/fish/completions/mayfly.fish
    ///   mayfly completion powershell >> $PROFILE
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write a man page for mayfly and each of its commands into DIR (mayfly.1,
    /// mayfly-ca-certificate.1, ...), as the release archives carry them.
    ///
    /// Example: mayfly man /usr/local/share/man/man1
    Man {
        /// The directory to write into (created if missing).
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CryptoCommand {
    /// Inspect and verify JSON Web Tokens read from standard input.
    #[command(subcommand)]
    Jwt(jwt::JwtCommand),
    /// Re-encrypt a private key with a new password, atomically and with mode 0600.
    ///
    /// The key is replaced in place unless --out is given. Passwords come from files or are
    /// asked at the terminal. Example:
    ///
    ///   mayfly crypto change-pass secrets/root_ca_key --password-file old.txt --new-password-file new.txt
    ChangePass(crypto::change_pass::ChangePassArgs),
    /// Split a secret into shares (any K of N recover it) and combine them again.
    ///
    /// Shamir secret sharing, for secrets such as the root key's password. Example:
    ///
    ///   mayfly crypto shamir split --threshold 3 --shares 5 --secret-file root-password.txt
    #[command(subcommand)]
    Shamir(crypto::shamir::ShamirCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            note!("mayfly: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of standard output has gone (`| head`): it has all it wanted.
        Err(e) if e.is::<output::ClosedPipe>() => ExitCode::SUCCESS,
        Err(e) => {
            note!(
                "mayfly: error: {}",
                mayfly_authority::error::one_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Ca(command) => ca::run(command).await,
        Command::Certificate(command) => certificate::run(command).await,
        Command::Crypto(CryptoCommand::Jwt(command)) => jwt::run(command),
        Command::Crypto(CryptoCommand::ChangePass(args)) => crypto::change_pass::run(args),
        Command::Crypto(CryptoCommand::Shamir(command)) => crypto::shamir::run(command),
        Command::Ssh(command) => ssh::run(command).await,
        Command::Oauth(args) => oauth::run(args).await,
        Command::Path => outln!("{}", context::mayfly_path()?.display()),
        Command::Version => outln!(
            "mayfly {VERSION} {}/{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
        Command::Completion { shell } => {
            // Into a buffer first: clap_complete panics when a write fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mayfly", &mut script);
            out!("{}", String::from_utf8_lossy(&script))
        }
        Command::Man { dir } => {
            docs::write_man_pages(Cli::command(), &dir, "1", &format!("mayfly {VERSION}"))
        }
    }
}

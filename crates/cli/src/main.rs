//! `mayfly`: the command-line client of the mayfly CA.
//!
//! A thin layer: parse flags, read and write files, prompt, print. Everything that decides
//! anything lives in the library crates.

// Argument enums are built once per run; boxing their variants would only add noise.
#![allow(clippy::large_enum_variant)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ca;
mod certificate;
mod context;
mod inspect;
mod jwt;
mod output;
mod password;

/// The mayfly client: bootstrap trust in a CA, get and inspect certificates.
#[derive(Debug, Parser)]
#[command(name = "mayfly", version)]
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
    /// Print the configuration directory ($MAYFLY_PATH, default ~/.mayfly).
    Path,
}

#[derive(Debug, Subcommand)]
enum CryptoCommand {
    /// Inspect and verify JSON Web Tokens read from standard input.
    #[command(subcommand)]
    Jwt(jwt::JwtCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mayfly: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mayfly: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Ca(command) => ca::run(command).await,
        Command::Certificate(command) => certificate::run(command).await,
        Command::Crypto(CryptoCommand::Jwt(command)) => jwt::run(command),
        Command::Path => {
            println!("{}", context::mayfly_path()?.display());
            Ok(())
        }
    }
}

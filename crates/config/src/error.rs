//! The one error type of `mayfly-config`.

/// Everything that can go wrong reading a configuration or writing a PKI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration that cannot be used; the message names the file, field or value.
    #[error("{0}")]
    Config(String),
    /// An error in the configuration file `path`. Not a `#[source]`: the message already holds
    /// the inner one, and a chain printer (`{:#}`) would repeat it.
    #[error("{path}: {error}")]
    ConfigFile { path: String, error: Box<Error> },
    /// A file or directory that cannot be read or written; the message names it.
    #[error("{0}")]
    Io(String),
    /// Keys and certificates made by `init`.
    #[error("{0}")]
    Pki(#[from] mayfly_pki::Error),
}

impl Error {
    /// This error, as one in the configuration file `path`.
    pub fn in_file(self, path: &std::path::Path) -> Error {
        Error::ConfigFile {
            path: path.display().to_string(),
            error: Box::new(self),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The library's error type. Every fallible function returns [`Result`]; the binary turns an
//! [`Error`] into a one-line `error: …` message and an exit code.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in cellvae, with enough context to act on it.
#[derive(Debug)]
pub enum Error {
    /// The file system refused: the file is missing, unreadable or unwritable.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file's content is malformed. `line` is 1-based where it is known.
    Parse {
        path: PathBuf,
        line: Option<usize>,
        msg: String,
    },
    /// A parameter or flag value is out of its domain (latent size 0, k above the cell count, ...).
    Invalid(String),
    /// The data are well-formed but unusable (QC left no cells, no label matches a cell, ...).
    Data(String),
    /// Training diverged.
    NonFinite {
        epoch: usize,
        batch: usize,
        what: String,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A file-system error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A malformed file: `path`, 1-based `line` if known, and what was expected.
    pub fn parse(path: &Path, line: Option<usize>, msg: impl Into<String>) -> Self {
        Error::Parse {
            path: path.to_path_buf(),
            line,
            msg: msg.into(),
        }
    }

    /// An out-of-domain parameter.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// Unusable data.
    pub fn data(msg: impl Into<String>) -> Self {
        Error::Data(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            Error::Parse {
                path,
                line: Some(line),
                msg,
            } => write!(f, "{}:{}: {}", path.display(), line, msg),
            Error::Parse {
                path,
                line: None,
                msg,
            } => write!(f, "{}: {}", path.display(), msg),
            Error::Invalid(msg) | Error::Data(msg) => write!(f, "{msg}"),
            Error::NonFinite { epoch, batch, what } => write!(
                f,
                "training diverged: {what} is not finite at epoch {epoch}, batch {batch} \
                 (try a lower --lr)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

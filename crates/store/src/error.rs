//! The crate's error type.

use std::fmt;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The backend library reported an error.
    #[error("{backend} backend error")]
    Backend {
        /// Which backend (`"redb"`, `"sqlite"`, ...).
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// Data read back from the backend is not what was written (a torn file,
    /// a corrupt index, a stored CID that does not parse).
    #[error("{backend} store is corrupt: {what}")]
    Corrupt {
        /// Which backend.
        backend: &'static str,
        /// What was found to be wrong.
        what: String,
    },

    /// A configured resource limit would be crossed.
    #[error("{what} limit exceeded: limit {limit}, needed {actual}")]
    LimitExceeded {
        /// Which limit (`"spilled bytes"`, `"memory"`, ...).
        what: &'static str,
        /// The configured limit.
        limit: u64,
        /// What the operation would have needed.
        actual: u64,
    },

    /// The store cannot be written (a CAR file opened as a store).
    #[error("{backend} store is read-only")]
    ReadOnly {
        /// Which backend.
        backend: &'static str,
    },

    /// A store specification string could not be understood.
    #[error("invalid store spec {spec:?}: expected {expected}")]
    InvalidSpec {
        /// The spec as given.
        spec: String,
        /// What was expected instead.
        expected: &'static str,
    },

    /// A store specification names a backend this build does not include.
    #[error("store backend {backend:?} is not compiled in: rebuild with the {backend:?} feature")]
    NotCompiled {
        /// The backend's name, which is also its cargo feature.
        backend: &'static str,
    },

    /// A CAR file opened as a store ([`CarFileStore`](crate::CarFileStore))
    /// could not be read: it is malformed, a block does not hash to its CID,
    /// or it crosses a configured limit. The source says which and where.
    #[cfg(feature = "car")]
    #[error("car file cannot be used as a store")]
    Car(#[source] Box<atrepo_car::Error>),

    /// An error returned by a caller's callback (for example from
    /// [`BlockRead::scan`](crate::BlockRead::scan)), passed through.
    #[error("callback failed")]
    Callback(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// The class of an [`Error`], for callers that react by class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// I/O, backend or corruption trouble: the environment failed, the input
    /// may be fine. Often worth retrying elsewhere.
    Environment,
    /// A resource limit was reached: the input is too big or hostile.
    Limit,
    /// The store was used wrongly (bad spec, missing feature, read-only).
    Usage,
    /// The data itself is bad: a CAR file opened as a store is malformed or
    /// holds a block that does not hash to its CID. Retrying will not help.
    Input,
    /// A caller's callback failed.
    Callback,
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io(_) | Error::Backend { .. } | Error::Corrupt { .. } => ErrorKind::Environment,
            Error::LimitExceeded { .. } => ErrorKind::Limit,
            Error::ReadOnly { .. } | Error::InvalidSpec { .. } | Error::NotCompiled { .. } => {
                ErrorKind::Usage
            }
            #[cfg(feature = "car")]
            Error::Car(e) => match e.kind() {
                atrepo_car::ErrorKind::Limit => ErrorKind::Limit,
                atrepo_car::ErrorKind::Io => ErrorKind::Environment,
                _ => ErrorKind::Input,
            },
            Error::Callback(_) => ErrorKind::Callback,
        }
    }

    /// Wraps a backend library error.
    pub fn backend(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Backend { backend, source: source.into() }
    }
}

#[cfg(feature = "car")]
impl From<atrepo_car::Error> for Error {
    fn from(e: atrepo_car::Error) -> Self {
        Error::Car(Box::new(e))
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Environment => "environment",
            ErrorKind::Limit => "limit",
            ErrorKind::Usage => "usage",
            ErrorKind::Input => "input",
            ErrorKind::Callback => "callback",
        })
    }
}

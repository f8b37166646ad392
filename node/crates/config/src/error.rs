//! [`ConfigError`]: every way loading a configuration can fail.
//!
//! Invariants: every error names the configuration file (as given by the caller) and, when
//! the fault is in a value, the key path of that value (`chains[1].vault`), then the reason;
//! its `Display` reads `FILE: KEY.PATH: REASON`, with `(line L, column C)` appended when the
//! TOML parser located it. No error ever contains a secret: key and token contents are never
//! formatted (see [`crate::keys::KeyError`]).

use crate::keys::KeyError;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The configuration file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is larger than [`crate::MAX_CONFIG_BYTES`].
    #[error("{file}: {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// The configuration file.
        file: String,
        /// Its size (or a lower bound of it).
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The file is not valid TOML, or a value has the wrong type or spelling, or a key is
    /// unknown or missing.
    #[error("{file}: {}{reason}{}", prefix(path), location_suffix(*location))]
    Parse {
        /// The configuration file.
        file: String,
        /// Key path of the value (empty for a syntax error).
        path: String,
        /// What is wrong.
        reason: String,
        /// 1-based line and column, when known.
        location: Option<(usize, usize)>,
    },
    /// The file parsed but a value breaks a rule (a range, a uniqueness, a cross-reference).
    #[error("{file}: {}{reason}", prefix(path))]
    Invalid {
        /// The configuration file.
        file: String,
        /// Key path of the value at fault (empty when it is the file as a whole).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An environment variable named by the file is missing or unusable.
    #[error("{file}: {path}: environment variable {var} {reason}")]
    Env {
        /// The configuration file.
        file: String,
        /// Key path of the `*_env` key naming the variable.
        path: String,
        /// The variable's name.
        var: String,
        /// What is wrong ("is not set", "is not valid UTF-8").
        reason: String,
    },
    /// A key or token named by the file (by path or environment variable) is unusable.
    #[error("{file}: {path}: {source}")]
    Secret {
        /// The configuration file.
        file: String,
        /// Key path of the `*_file` or `*_env` key naming the secret.
        path: String,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// The guardian key (a keystore or a PKCS#11 token) could not be opened.
    #[error("{file}: {path}: {source}")]
    Guardian {
        /// The configuration file.
        file: String,
        /// Key path of the setting naming the key.
        path: String,
        /// What is wrong with it (boxed: it is large and rare).
        #[source]
        source: Box<backstop_signer::SignerError>,
    },
}

fn prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn location_suffix(location: Option<(usize, usize)>) -> String {
    match location {
        Some((line, column)) => format!(" (line {line}, column {column})"),
        None => String::new(),
    }
}

impl ConfigError {
    /// The configuration file the error is about.
    pub fn file(&self) -> &str {
        match self {
            Self::Read { file, .. }
            | Self::TooLarge { file, .. }
            | Self::Parse { file, .. }
            | Self::Invalid { file, .. }
            | Self::Env { file, .. }
            | Self::Secret { file, .. }
            | Self::Guardian { file, .. } => file,
        }
    }

    /// Key path of the value at fault (`chains[1].vault`); empty when the fault is not in
    /// one value.
    pub fn path(&self) -> &str {
        match self {
            Self::Parse { path, .. }
            | Self::Invalid { path, .. }
            | Self::Env { path, .. }
            | Self::Secret { path, .. }
            | Self::Guardian { path, .. } => path,
            Self::Read { .. } | Self::TooLarge { .. } => "",
        }
    }

    /// Line and column (1-based) of the fault, when the parser gave them.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            Self::Parse { location, .. } => *location,
            _ => None,
        }
    }
}

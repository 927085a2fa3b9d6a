//! The configuration file of `hoist serve`: the CNCF distribution registry's
//! `config.yml`, key for key, so that the file an existing `docker-registry`
//! runs with runs `hoist serve` unchanged. Keys hoist has no use for (redis,
//! notifications, …) are reported back, never silently dropped; hoist's own
//! settings live under one `hoist:` section that distribution ignores.

use crate::server::ServerConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest configuration file read (a config is a few KiB; this bounds a mistake).
const MAX_CONFIG: u64 = 1 << 20;

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than any configuration.
    #[error("the configuration file {path} is {size} bytes; a configuration is at most {MAX_CONFIG} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The YAML is malformed or a key has the wrong type.
    #[error("the configuration file {path} is not valid: {message} (keys follow distribution's config.yml)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("the configuration file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to mend it.
        message: String,
    },
}

type Other = BTreeMap<String, yaml_serde::Value>;

/// A distribution-style `config.yml`, as far as hoist reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    /// `version: 0.1`; any value is accepted.
    pub version: Option<yaml_serde::Value>,
    /// `log:`.
    pub log: LogSection,
    /// `storage:`.
    pub storage: StorageSection,
    /// `http:`.
    pub http: HttpSection,
    /// hoist's own settings.
    pub hoist: HoistSection,
    /// Every other top-level key.
    #[serde(flatten)]
    pub other: Other,
}

/// `log:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogSection {
    /// `log.level`: error, warn, info, debug.
    pub level: Option<String>,
    /// `log.accesslog.disabled`.
    pub accesslog: AccessLog,
    /// Other keys (formatter, fields, hooks).
    #[serde(flatten)]
    pub other: Other,
}

/// `log.accesslog`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccessLog {
    /// Turns off the per-request log lines.
    pub disabled: bool,
}

/// `storage:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StorageSection {
    /// `storage.filesystem`.
    pub filesystem: Option<Filesystem>,
    /// `storage.delete.enabled`.
    pub delete: Option<Enabled>,
    /// `storage.maintenance.readonly.enabled` (uploadpurging is not needed:
    /// hoist's gc removes stale uploads).
    pub maintenance: Maintenance,
    /// Other keys (cache, redirect, other drivers).
    #[serde(flatten)]
    pub other: Other,
}

/// `storage.filesystem`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filesystem {
    /// The directory holding `docker/registry/v2`.
    pub rootdirectory: Option<PathBuf>,
    /// Other keys (maxthreads).
    #[serde(flatten)]
    pub other: Other,
}

/// A `{enabled: bool}` switch.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Enabled {
    /// On or off.
    pub enabled: bool,
}

/// `storage.maintenance`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Maintenance {
    /// `readonly.enabled`.
    pub readonly: Option<Enabled>,
    /// Other keys (uploadpurging).
    #[serde(flatten)]
    pub other: Other,
}

/// `http:`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HttpSection {
    /// `http.addr`: `HOST:PORT` or Go's `:PORT` for every interface.
    pub addr: Option<String>,
    /// Other keys.
    #[serde(flatten)]
    pub other: Other,
}

/// `hoist:`, settings distribution has no key for.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HoistSection {
    /// Mount blobs across repositories when a client asks without `from`.
    pub automount: Option<bool>,
}

/// What a configuration file sets: the server's settings and its address.
#[derive(Debug)]
pub struct Loaded {
    /// The settings, on top of [`ServerConfig::new`]'s defaults.
    pub server: ServerConfig,
    /// `http.addr`, normalised to `HOST:PORT`.
    pub addr: Option<String>,
    /// `log.level`.
    pub log_level: Option<String>,
    /// Keys that hoist does not act on, dotted (`notifications`, `storage.cache`).
    pub ignored: Vec<String>,
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        if size > MAX_CONFIG {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                size,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        FileConfig::parse(path, &text)
    }

    /// Parses `text`, the contents of `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        yaml_serde::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Turns the file into server settings; `path` is named in errors.
    pub fn load(self, path: &Path) -> Result<Loaded, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut ignored = Vec::new();
        let mut note = |prefix: &str, other: &Other| {
            ignored.extend(other.keys().map(|k| format!("{prefix}{k}")));
        };
        note("", &self.other);
        note("log.", &self.log.other);
        note("storage.", &self.storage.other);
        note("storage.maintenance.", &self.storage.maintenance.other);
        note("http.", &self.http.other);

        let root = match self.storage.filesystem {
            Some(fs) => {
                note("storage.filesystem.", &fs.other);
                fs.rootdirectory
            }
            None => None,
        };
        let root = root.ok_or_else(|| {
            invalid(
                "storage.filesystem.rootdirectory is not set: name the directory that holds \
                 docker/registry/v2"
                    .into(),
            )
        })?;
        let mut server = ServerConfig::new(root);
        // distribution turns deletes off unless storage.delete.enabled is true.
        server.delete_enabled = self.storage.delete.is_some_and(|d| d.enabled);
        server.read_only = self.storage.maintenance.readonly.is_some_and(|r| r.enabled);
        if let Some(m) = self.hoist.automount {
            server.auto_mount = m;
        }
        let addr = self.http.addr.map(|a| normalise_addr(&a)).transpose();
        let addr = addr.map_err(invalid)?;
        if let Some(level) = &self.log.level {
            if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
                return Err(invalid(format!(
                    "log.level {level:?} is not one of error, warn, info, debug"
                )));
            }
        }
        Ok(Loaded {
            server,
            addr,
            log_level: self.log.level,
            ignored,
        })
    }
}

/// Go's `:5000` listens on every interface; Rust wants a host.
fn normalise_addr(a: &str) -> Result<String, String> {
    let a = a.trim();
    let full = if a.starts_with(':') {
        format!("0.0.0.0{a}")
    } else {
        a.to_owned()
    };
    let port_ok = full
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if port_ok {
        Ok(full)
    } else {
        Err(format!(
            "http.addr {a:?} is not HOST:PORT (or :PORT for every interface)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, ConfigError> {
        FileConfig::parse(Path::new("config.yml"), text)?.load(Path::new("config.yml"))
    }

    #[test]
    fn distribution_default_config_is_read_and_extras_reported() {
        // The shape of the config.yml that Debian's docker-registry ships.
        let l = load(
            "version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  cache:\n    \
             blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\n\
             http:\n  addr: :5000\n  headers:\n    X-Content-Type-Options: [nosniff]\n\
             health:\n  storagedriver:\n    enabled: true\n",
        )
        .unwrap();
        assert_eq!(l.server.root, Path::new("/var/lib/docker-registry"));
        assert_eq!(l.addr.as_deref(), Some("0.0.0.0:5000"));
        assert!(
            !l.server.delete_enabled,
            "distribution's default: no deletes"
        );
        assert!(!l.server.read_only);
        assert_eq!(
            l.ignored,
            ["health", "log.fields", "storage.cache", "http.headers"]
        );
    }

    #[test]
    fn delete_readonly_and_hoist_section() {
        let l = load(
            "storage:\n  filesystem: {rootdirectory: /r}\n  delete: {enabled: true}\n  \
             maintenance:\n    readonly: {enabled: true}\nhttp: {addr: 127.0.0.1:5001}\n\
             hoist: {automount: false}\nlog: {level: debug}\n",
        )
        .unwrap();
        assert!(l.server.delete_enabled && l.server.read_only && !l.server.auto_mount);
        assert_eq!(l.addr.as_deref(), Some("127.0.0.1:5001"));
        assert_eq!(l.log_level.as_deref(), Some("debug"));
        assert!(l.ignored.is_empty());
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = load("storage: [1, 2\n").unwrap_err().to_string();
        assert!(e.contains("config.yml is not valid"), "{e}");
        let e = load("http:\n  addr: :5000\n").unwrap_err().to_string();
        assert!(e.contains("rootdirectory is not set"), "{e}");
        let e = load("storage: {filesystem: {rootdirectory: /r}}\nhttp: {addr: nowhere}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.addr \"nowhere\""), "{e}");
        let e = load("storage: {filesystem: {rootdirectory: /r}}\nhoist: {automunt: true}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("automunt"), "{e}");
        let e = load("storage: {filesystem: {rootdirectory: /r}}\nlog: {level: loud}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("log.level"), "{e}");
    }

    #[test]
    fn oversized_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.yml");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(MAX_CONFIG + 1).unwrap();
        let e = FileConfig::read(&p).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
    }
}

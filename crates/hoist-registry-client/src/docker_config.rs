//! Docker's `config.json`: the credentials `docker login` writes and every
//! Docker tool reads (`auths`, `credsStore`, `credHelpers` running
//! `docker-credential-<name>`). Unknown keys are kept as they are.

use crate::auth::Credentials;
use crate::error::{Error, Result};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key Docker uses for Docker Hub in `auths` and with helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Docker's client configuration file.
#[derive(Debug)]
pub struct DockerConfig {
    path: PathBuf,
    value: Map<String, Value>,
}

/// The registry host as hoist writes it (`docker.io` for Docker Hub's aliases).
pub fn normalize_registry(registry: &str) -> String {
    let r = registry
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let r = r.split('/').next().unwrap_or(r).to_ascii_lowercase();
    match r.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => r,
    }
}

/// The key under which Docker stores `registry`'s credentials.
pub fn config_key(registry: &str) -> String {
    let r = normalize_registry(registry);
    if r == "docker.io" {
        DOCKER_HUB_KEY.to_owned()
    } else {
        r
    }
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(d).join("config.json"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
    }

    /// The configuration at the default path (empty when there is no file).
    pub fn load() -> Result<Self> {
        let path = Self::default_path().ok_or_else(|| {
            Error::Usage("neither DOCKER_CONFIG nor HOME is set: cannot find config.json".into())
        })?;
        Self::load_from(&path)
    }

    /// The configuration in `path` (empty when there is no file).
    pub fn load_from(path: &Path) -> Result<Self> {
        let value = match std::fs::read(path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(bad_file(path, "not a JSON object")),
                Err(e) => return Err(bad_file(path, &e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Ok(DockerConfig {
            path: path.to_owned(),
            value,
        })
    }

    /// Where this configuration lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper for `registry`: its `credHelpers` entry, else `credsStore`.
    fn helper(&self, registry: &str) -> Option<String> {
        let host = normalize_registry(registry);
        let key = config_key(registry);
        let helpers = self.value.get("credHelpers").and_then(Value::as_object);
        helpers
            .and_then(|h| h.get(&host).or_else(|| h.get(&key)))
            .or_else(|| self.value.get("credsStore"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// The `auths` entry for `registry`, matching keys written with or
    /// without a scheme or path as Docker does.
    fn auth_entry(&self, registry: &str) -> Option<(&String, &Map<String, Value>)> {
        let want = normalize_registry(registry);
        self.value
            .get("auths")?
            .as_object()?
            .iter()
            .filter_map(|(k, v)| Some((k, v.as_object()?)))
            .find(|(k, _)| normalize_registry(k) == want)
    }

    /// The credentials stored for `registry`, if any.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(helper) = self.helper(registry) {
            return helper_get(&helper, &config_key(registry), registry);
        }
        let Some((_, entry)) = self.auth_entry(registry) else {
            return Ok(None);
        };
        let bad = |why: &str| Error::Credentials {
            registry: normalize_registry(registry),
            reason: format!("{}: {why}", self.path.display()),
        };
        if let Some(tok) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(Credentials::new("<token>", tok)));
        }
        let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        else {
            return Ok(None);
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(&format!("its auth is not base64: {e}")))?;
        let text = String::from_utf8(raw).map_err(|_| bad("its auth is not UTF-8"))?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| bad("its auth is not USER:PASSWORD"))?;
        Ok(Some(Credentials::new(u, p)))
    }

    /// Stores `creds` for `registry` (through the helper when one is
    /// configured, else base64 in `auths`) and saves the file.
    pub fn store_credentials(&mut self, registry: &str, creds: &Credentials) -> Result<()> {
        let key = config_key(registry);
        if let Some(helper) = self.helper(registry) {
            let body = serde_json::json!({
                "ServerURL": key, "Username": creds.username, "Secret": creds.password,
            });
            helper_run(&helper, "store", &body.to_string(), registry)?;
            // Docker leaves an empty `auths` entry so the registry is listed.
            self.remove_auths(registry);
            self.auths_mut().insert(key, Value::Object(Map::new()));
        } else {
            self.remove_auths(registry);
            let auth = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", creds.username, creds.password));
            self.auths_mut()
                .insert(key, serde_json::json!({ "auth": auth }));
        }
        self.save()
    }

    /// Removes `registry`'s credentials (helper and `auths`) and saves.
    /// Returns whether there were any.
    pub fn erase_credentials(&mut self, registry: &str) -> Result<bool> {
        let mut had = false;
        if let Some(helper) = self.helper(registry) {
            had = helper_run(&helper, "erase", &config_key(registry), registry).is_ok();
        }
        had |= self.remove_auths(registry);
        self.save()?;
        Ok(had)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let auths = self
            .value
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        match auths {
            Value::Object(m) => m,
            _ => unreachable!("just made an object"),
        }
    }

    fn remove_auths(&mut self, registry: &str) -> bool {
        let want = normalize_registry(registry);
        let auths = self.auths_mut();
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| normalize_registry(k) == want)
            .cloned()
            .collect();
        for k in &keys {
            auths.remove(k);
        }
        !keys.is_empty()
    }

    /// Writes the file atomically, readable by its owner only (it holds secrets).
    pub fn save(&self) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = self
            .path
            .with_extension(format!("json.tmp{}", std::process::id()));
        let text = serde_json::to_string_pretty(&self.value).map_err(|e| io(e.into()))?;
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

fn bad_file(path: &Path, why: &str) -> Error {
    Error::Io {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a valid Docker config.json: {why}"),
        ),
    }
}

/// Runs `docker-credential-<helper> <verb>` with `input` on stdin.
fn helper_run(helper: &str, verb: &str, input: &str, registry: &str) -> Result<String> {
    let bin = format!("docker-credential-{helper}");
    let fail = |reason: String| Error::Credentials {
        registry: normalize_registry(registry),
        reason,
    };
    let mut child = Command::new(&bin)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot run {bin} (credsStore/credHelpers in config.json): {e}"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("{bin} {verb}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let msg = if stdout.is_empty() { stderr } else { stdout };
        return Err(fail(format!("{bin} {verb} failed: {msg}")));
    }
    Ok(stdout)
}

/// `docker-credential-<helper> get`; "not found" is no credentials.
fn helper_get(helper: &str, key: &str, registry: &str) -> Result<Option<Credentials>> {
    let out = match helper_run(helper, "get", key, registry) {
        Ok(o) => o,
        Err(Error::Credentials { reason, .. })
            if reason.contains("credentials not found in native keychain") =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Got {
        #[serde(default)]
        username: String,
        #[serde(default)]
        secret: String,
    }
    let got: Got = serde_json::from_str(&out).map_err(|e| Error::Credentials {
        registry: normalize_registry(registry),
        reason: format!("docker-credential-{helper} get answered non-JSON: {e}"),
    })?;
    if got.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::new(got.username, got.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_round_trip_and_keep_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let mut c = DockerConfig::load_from(&path).unwrap();
        assert_eq!(
            c.credentials("docker.io").unwrap(),
            Some(Credentials::new("u", "p"))
        );
        c.store_credentials("localhost:5000", &Credentials::new("a", "b:c"))
            .unwrap();
        let c = DockerConfig::load_from(&path).unwrap();
        assert_eq!(
            c.credentials("http://localhost:5000/v2/").unwrap(),
            Some(Credentials::new("a", "b:c"))
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("psFormat"), "{text}");
        let mut c = DockerConfig::load_from(&path).unwrap();
        assert!(c.erase_credentials("localhost:5000").unwrap());
        assert_eq!(c.credentials("localhost:5000").unwrap(), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_missing_helper_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"r.example":"hoist-absent"}}"#).unwrap();
        let c = DockerConfig::load_from(&path).unwrap();
        let e = c.credentials("r.example").unwrap_err().to_string();
        assert!(e.contains("docker-credential-hoist-absent"), "{e}");
        assert_eq!(c.credentials("other.example").unwrap(), None);
    }

    #[test]
    fn credential_helpers_are_run() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.path().join("log");
        let helper = bin.join("docker-credential-hoisttest");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\nin=$(cat)\necho \"$1 $in\" >> {}\n\
                 case $1 in get) echo '{{\"ServerURL\":\"r.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}}';; esac\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin.clone()];
        paths.extend(std::env::split_paths(&path));
        // Prepending keeps every other test's tools where they were.
        std::env::set_var("PATH", std::env::join_paths(paths).unwrap());
        let cfg_path = dir.path().join("config.json");
        std::fs::write(&cfg_path, r#"{"credHelpers":{"r.example":"hoisttest"}}"#).unwrap();
        let mut c = DockerConfig::load_from(&cfg_path).unwrap();
        assert_eq!(
            c.credentials("r.example").unwrap(),
            Some(Credentials::new("hu", "hs"))
        );
        c.store_credentials("r.example", &Credentials::new("a", "b"))
            .unwrap();
        assert!(c.erase_credentials("r.example").unwrap());
        let calls = std::fs::read_to_string(&log).unwrap();
        let verbs: Vec<&str> = calls
            .lines()
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(verbs, ["get", "store", "erase"], "{calls}");
        assert!(calls.contains(r#""Secret":"b""#), "{calls}");
        let text = std::fs::read_to_string(&cfg_path).unwrap();
        assert!(
            !text.contains("\"auth\""),
            "a helper's secret landed in config.json: {text}"
        );
    }

    #[test]
    fn hub_aliases_share_one_key() {
        assert_eq!(config_key("index.docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("https://index.docker.io/v1/"), DOCKER_HUB_KEY);
        assert_eq!(config_key("Quay.io"), "quay.io");
    }
}

//! Apache htpasswd files with bcrypt entries (what `htpasswd -B` writes and
//! the distribution registry accepts), and a short-lived cache of checks.

use super::AuthError;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a successful password check is remembered.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most remembered checks at once; beyond it the cache is emptied.
const CACHE_MAX: usize = 4096;

/// The users of an htpasswd file and their bcrypt hashes.
pub struct Htpasswd {
    path: PathBuf,
    users: HashMap<String, String>,
    /// Successful checks by sha256(user, password, hash), with their time.
    /// bcrypt costs milliseconds by design, and Docker sends the password
    /// with every request: without this cache a pull of many layers, or a
    /// benchmark, would be bound by bcrypt. Only the digest is kept, never
    /// the password, and a changed hash misses the cache. Failures are not
    /// cached so that guessing keeps paying bcrypt's price.
    ok: Mutex<HashMap<[u8; 32], Instant>>,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Htpasswd")
            .field("path", &self.path)
            .field("users", &self.users.len())
            .finish()
    }
}

impl Htpasswd {
    /// Reads and checks an htpasswd file.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            what: "htpasswd file",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses htpasswd text: `user:$2y$...` lines; blank lines and `#`
    /// comments are skipped. Any other hash kind is refused with its line.
    pub fn parse(path: &Path, text: &str) -> Result<Self, AuthError> {
        let err = |line: usize, msg: String| AuthError::Htpasswd {
            path: path.to_owned(),
            line,
            msg,
        };
        let mut users = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(err(i + 1, "expected USER:HASH".into()));
            };
            if user.is_empty() {
                return Err(err(i + 1, "empty user name".into()));
            }
            let bcrypt_kind = ["$2y$", "$2a$", "$2b$"].iter().any(|p| hash.starts_with(p));
            if !bcrypt_kind {
                let kind = if hash.starts_with("$apr1$") {
                    "MD5 ($apr1$)"
                } else if hash.starts_with("{SHA}") {
                    "SHA-1 ({SHA})"
                } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
                    "SHA-crypt"
                } else {
                    "crypt or plain text"
                };
                return Err(err(
                    i + 1,
                    format!(
                        "user {user:?} has a {kind} hash; only bcrypt is accepted: \
                         recreate it with `htpasswd -B {} {user}`",
                        path.display()
                    ),
                ));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(err(
                    i + 1,
                    format!("user {user:?} has a malformed bcrypt hash"),
                ));
            }
            if users.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(err(i + 1, format!("user {user:?} appears twice")));
            }
        }
        Ok(Htpasswd {
            path: path.to_owned(),
            users,
            ok: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `password` is the password of `user`. Blocking: bcrypt runs
    /// on a cache miss.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            // An unknown user costs one bcrypt too (against any user's hash),
            // so that timing does not tell which users exist.
            if let Some(h) = self.users.values().next() {
                let _ = bcrypt::verify(password, h);
            }
            return false;
        };
        let mut h = Sha256::new();
        for part in [user, password, hash] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let key: [u8; 32] = h.finalize().into();
        let now = Instant::now();
        {
            let cache = self.ok.lock().unwrap_or_else(|e| e.into_inner());
            if cache
                .get(&key)
                .is_some_and(|t| now.duration_since(*t) < CACHE_TTL)
            {
                return true;
            }
        }
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            return false;
        }
        let mut cache = self.ok.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, t| now.duration_since(*t) < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Htpasswd, AuthError> {
        Htpasswd::parse(Path::new("/etc/htpasswd"), text)
    }

    #[test]
    fn bcrypt_entries_are_read_and_checked() {
        let h2y = bcrypt::hash_with_result("s3cret", 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let h2b = bcrypt::hash("other", 4).unwrap();
        let f = parse(&format!("# users\n\nalice:{h2y}\nbob:{h2b}\n")).unwrap();
        assert!(f.check("alice", "s3cret"));
        assert!(f.check("alice", "s3cret"), "cached check still answers");
        assert!(!f.check("alice", "wrong"));
        assert!(f.check("bob", "other"));
        assert!(!f.check("carol", "s3cret"));
    }

    #[test]
    fn successful_checks_are_cached_failures_are_not() {
        let h = bcrypt::hash("pw", 8).unwrap();
        let f = parse(&format!("alice:{h}\n")).unwrap();
        let t = Instant::now();
        assert!(f.check("alice", "pw"));
        let first = t.elapsed();
        let t = Instant::now();
        for _ in 0..20 {
            assert!(f.check("alice", "pw"));
        }
        let cached = t.elapsed();
        assert!(
            cached < first,
            "20 cached checks took {cached:?}, one bcrypt {first:?}"
        );
        let t = Instant::now();
        for _ in 0..3 {
            assert!(!f.check("alice", "wrong"));
        }
        assert!(t.elapsed() > first, "failures pay bcrypt every time");
    }

    #[test]
    fn other_hash_kinds_are_refused_naming_the_line() {
        for (text, want) in [
            ("alice:$apr1$abc$def\n", "MD5"),
            ("\nbob:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n", "SHA-1"),
            ("alice:plain\n", "plain"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(e.contains("htpasswd -B"), "{e}");
            assert!(e.contains("/etc/htpasswd:"), "{e}");
            if want == "SHA-1" {
                assert!(e.contains("/etc/htpasswd:2"), "the line is named: {e}");
            }
        }
        let e = parse("x\n").unwrap_err().to_string();
        assert!(
            e.contains("/etc/htpasswd:1") && e.contains("USER:HASH"),
            "{e}"
        );
        let e = parse("a:$2y$04$short\n").unwrap_err().to_string();
        assert!(e.contains("malformed bcrypt"), "{e}");
    }

    #[test]
    fn a_user_twice_is_refused() {
        let h = bcrypt::hash("x", 4).unwrap();
        let e = parse(&format!("a:{h}\na:{h}\n")).unwrap_err().to_string();
        assert!(e.contains(":2") && e.contains("twice"), "{e}");
    }
}

//! Per-repository rights: an ACL file of `USER  RESOURCE  ACTIONS` lines.
//!
//! * `USER` is a user name, or `*` for every client, anonymous ones too.
//! * `RESOURCE` is a repository glob (`*` matches any run of characters,
//!   slashes included: `alice/*`, `library/*`, `*`), or `registry:catalog`
//!   for `/v2/_catalog`.
//! * `ACTIONS` is a comma list of `pull`, `push`, `delete`, or `*` for all
//!   (`registry:catalog` takes `*`).
//!
//! A user's rights are the union of every matching line. `#` starts a comment.

use super::AuthError;
use std::path::Path;

/// One right on a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs and manifests.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl Action {
    /// The action's name in scopes and ACL files.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    /// Parses `pull`, `push` or `delete`.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Resource {
    Repos(String),
    Catalog,
}

#[derive(Debug)]
struct Rule {
    user: String,
    resource: Resource,
    actions: Vec<Action>,
}

/// A parsed ACL file.
#[derive(Debug)]
pub struct Acl {
    rules: Vec<Rule>,
}

impl Acl {
    /// Reads an ACL file.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            what: "ACL file",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses ACL text; `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, AuthError> {
        let err = |line: usize, msg: String| AuthError::Acl {
            path: path.to_owned(),
            line,
            msg,
        };
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let [user, res, acts] = f[..] else {
                return Err(err(
                    i + 1,
                    format!(
                        "expected `USER RESOURCE ACTIONS` (3 fields), found {}",
                        f.len()
                    ),
                ));
            };
            let resource = if res == "registry:catalog" {
                if acts != "*" {
                    return Err(err(i + 1, "registry:catalog takes the action `*`".into()));
                }
                Resource::Catalog
            } else if res.contains(':') || res.is_empty() {
                return Err(err(
                    i + 1,
                    format!("{res:?} is neither a repository glob nor registry:catalog"),
                ));
            } else {
                Resource::Repos(res.to_owned())
            };
            let actions = if acts == "*" {
                vec![Action::Pull, Action::Push, Action::Delete]
            } else {
                acts.split(',')
                    .map(|a| {
                        Action::parse(a.trim()).ok_or_else(|| {
                            err(
                                i + 1,
                                format!("unknown action {a:?}: use pull, push, delete or *"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            rules.push(Rule {
                user: user.to_owned(),
                resource,
                actions,
            });
        }
        Ok(Acl { rules })
    }

    fn rules_for<'a>(&'a self, user: Option<&'a str>) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.user == "*" || Some(r.user.as_str()) == user)
    }

    /// Whether `user` (None: anonymous) may do `action` on repository `repo`.
    pub fn allows(&self, user: Option<&str>, repo: &str, action: Action) -> bool {
        self.rules_for(user).any(|r| match &r.resource {
            Resource::Repos(g) => r.actions.contains(&action) && glob_match(g, repo),
            Resource::Catalog => false,
        })
    }

    /// Whether `user` may list the catalog.
    pub fn allows_catalog(&self, user: Option<&str>) -> bool {
        self.rules_for(user)
            .any(|r| matches!(r.resource, Resource::Catalog))
    }

    /// Whether anonymous clients have any right at all.
    pub fn grants_anonymous(&self) -> bool {
        self.rules.iter().any(|r| r.user == "*")
    }
}

/// `*` matches any run of characters (slashes too); everything else is
/// literal. Written here because it is this small and a glob crate's path
/// semantics (`*` stopping at `/`) are not what repository rules want.
fn glob_match(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(text: &str) -> Result<Acl, AuthError> {
        Acl::parse(Path::new("acl"), text)
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "a/b/c"));
        assert!(glob_match("alice/*", "alice/x/y"));
        assert!(!glob_match("alice/*", "alice"));
        assert!(!glob_match("alice/*", "bob/alice/x"));
        assert!(glob_match("*/base", "library/base"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
    }

    #[test]
    fn rights_are_the_union_of_matching_lines() {
        let a = acl("# rights\n\
                     alice  alice/*  *\n\
                     bob    alice/*  pull   # read only\n\
                     *      public/* pull\n\
                     admin  *        pull,push,delete\n\
                     admin  registry:catalog *\n")
        .unwrap();
        assert!(a.allows(Some("alice"), "alice/app", Action::Delete));
        assert!(a.allows(Some("bob"), "alice/app", Action::Pull));
        assert!(!a.allows(Some("bob"), "alice/app", Action::Push));
        assert!(!a.allows(Some("alice"), "bob/app", Action::Pull));
        assert!(a.allows(None, "public/x", Action::Pull));
        assert!(a.allows(Some("bob"), "public/x", Action::Pull));
        assert!(!a.allows(None, "public/x", Action::Push));
        assert!(!a.allows(None, "alice/app", Action::Pull));
        assert!(a.allows(Some("admin"), "anything/at/all", Action::Delete));
        assert!(a.allows_catalog(Some("admin")));
        assert!(!a.allows_catalog(Some("alice")));
        assert!(a.grants_anonymous());
        assert!(!acl("alice * pull\n").unwrap().grants_anonymous());
    }

    #[test]
    fn bad_lines_are_refused_naming_the_line() {
        for (text, want) in [
            ("alice *\n", "3 fields"),
            ("\nalice * pull,write\n", "unknown action \"write\""),
            ("alice registry:catalog pull\n", "takes the action `*`"),
            ("alice repository:x pull\n", "neither a repository glob"),
        ] {
            let e = acl(text).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let e = acl("\n\nalice * pull,write\n").unwrap_err().to_string();
        assert!(e.starts_with("ACL file acl:3"), "{e}");
    }
}

//! The catalog: repositories found by walking the layout's directories in
//! distribution's order, a page at a time.

use super::Store;
use crate::error::Result;
use crate::names::RepoName;
use std::path::Path;

impl Store {
    /// Every repository (a directory holding `_manifests`), sorted with '/'
    /// before any other character, as distribution orders its catalog.
    pub fn catalog(&self) -> Result<Vec<String>> {
        self.catalog_page(None, usize::MAX).map(|(all, _)| all)
    }

    /// At most `n` repositories after `last` in catalog order, and whether
    /// more follow. The walk visits directories in order, skips every subtree
    /// that sorts wholly before `last` and stops once the page is full, so a
    /// page costs about its own size, not the registry's.
    pub fn catalog_page(&self, last: Option<&str>, n: usize) -> Result<(Vec<String>, bool)> {
        let last: Option<Vec<&str>> = last.map(|l| l.split('/').collect());
        let mut out = Vec::new();
        let want = n.saturating_add(1);
        self.walk_catalog(
            &self.layout.repos_root(),
            &mut Vec::new(),
            last.as_deref(),
            want,
            &mut out,
        )?;
        let more = out.len() > n;
        out.truncate(n);
        Ok((out, more))
    }

    fn walk_catalog(
        &self,
        dir: &Path,
        prefix: &mut Vec<String>,
        last: Option<&[&str]>,
        want: usize,
        out: &mut Vec<String>,
    ) -> Result<()> {
        let entries = self.driver.list(dir)?;
        let after_last =
            last.is_none_or(|l| prefix.iter().map(String::as_str).gt(l.iter().copied()));
        if !prefix.is_empty()
            && after_last
            && entries
                .iter()
                .any(|(e, is_dir)| *is_dir && e == "_manifests")
        {
            out.push(prefix.join("/"));
        }
        let mut children: Vec<String> = entries
            .into_iter()
            .filter(|(e, is_dir)| *is_dir && !e.starts_with('_'))
            .map(|(e, _)| e)
            .collect();
        children.sort_unstable();
        for child in children {
            if out.len() >= want {
                break;
            }
            let path = dir.join(&child);
            prefix.push(child);
            // A subtree sorting wholly before `last`: neither it nor any
            // repository under it belongs on this page.
            let before = last.is_some_and(|l| {
                let p = prefix.iter().map(String::as_str);
                let is_prefix =
                    l.len() >= prefix.len() && p.clone().eq(l[..prefix.len()].iter().copied());
                !is_prefix && p.lt(l.iter().copied())
            });
            if !before && RepoName::new(&prefix.join("/")).is_ok() {
                self.walk_catalog(&path, prefix, last, want, out)?;
            }
            prefix.pop();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paged walk gives distribution's order ('/' before any other
    /// character) and, page after page from any `last`, exactly the rest of
    /// the catalog: nested repositories, repositories inside repositories,
    /// directories that are not repositories, and `last` values that name no
    /// repository.
    #[test]
    fn catalog_pages_walk_in_order_from_any_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let repos = [
            "a", "a/b", "a/b/c", "a-b", "a.b", "a0", "b/x", "b/x/y", "b/z", "c", "d/e/f",
        ];
        for r in repos {
            let m = store.layout.manifests_dir(&RepoName::new(r).unwrap());
            std::fs::create_dir_all(m).unwrap();
        }
        // Not repositories: no `_manifests`; and a hidden `_uploads`.
        std::fs::create_dir_all(store.layout.repos_root().join("d/e/g")).unwrap();
        std::fs::create_dir_all(store.layout.repos_root().join("c/_uploads/x")).unwrap();
        let all = store.catalog().unwrap();
        assert_eq!(all, repos);
        for n in 1..=4 {
            let mut got = Vec::new();
            let mut last: Option<String> = None;
            loop {
                let (page, more) = store.catalog_page(last.as_deref(), n).unwrap();
                assert!(page.len() <= n);
                got.extend(page.iter().cloned());
                if !more {
                    break;
                }
                last = page.last().cloned();
            }
            assert_eq!(got, all, "pages of {n}");
        }
        for last in ["a/a", "a/c", "a/b/c/d", "b/y", "bb", "d/e/g", "0", "z"] {
            let (page, more) = store.catalog_page(Some(last), 100).unwrap();
            let want: Vec<&str> = repos
                .into_iter()
                .filter(|r| r.split('/').gt(last.split('/')))
                .collect();
            assert_eq!(page, want, "after {last}");
            assert!(!more);
        }
    }
}

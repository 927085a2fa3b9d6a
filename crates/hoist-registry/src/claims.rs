//! Garbage collection's claims, on any storage driver (see [`crate::gc`]
//! for the protocol): whoever makes a file newly referenced first marks it
//! "used now" and only then checks that it exists; the collector reads
//! "last used" times, moves a file aside, reads them again, and puts the
//! file back if they changed.
//!
//! Where the driver [can touch](Driver::can_touch) (the filesystem, memory)
//! "used now" is the file's own modified time, and a file moved aside keeps
//! it. Elsewhere (S3) a claim writes an empty marker
//! `_hoist/claims/<layout path>`, "last used" is the later of the file's and
//! its marker's times, and a file moved aside counts its marker's only.
//! distribution never looks under `_hoist/`.

use crate::driver::Driver;
use crate::error::Result;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// `_hoist/claims/<path>`: when `path` was last claimed.
fn marker(driver: &dyn Driver, path: &Path) -> PathBuf {
    let base = driver.layout().base();
    let rel = path.strip_prefix(base).unwrap_or(path);
    base.join("_hoist").join("claims").join(rel)
}

fn modified(driver: &dyn Driver, path: &Path) -> Result<Option<SystemTime>> {
    Ok(driver.stat(path)?.and_then(|i| i.modified))
}

/// Marks a file as just used and reports whether it exists.
pub(crate) fn claim(driver: &dyn Driver, path: &Path) -> Result<bool> {
    if driver.can_touch() {
        return driver.touch(path);
    }
    // The marker first, then the check.
    driver.put(&marker(driver, path), b"")?;
    Ok(driver.stat(path)?.is_some())
}

/// Refreshes a file's "last used" time, best effort.
pub(crate) fn refresh(driver: &dyn Driver, path: &Path) {
    if let Err(e) = claim(driver, path) {
        tracing::warn!(path = %path.display(), error = %e, "claim not recorded");
    }
}

/// When a file was last written or claimed; `None` when absent.
pub(crate) fn last_used(driver: &dyn Driver, path: &Path) -> Result<Option<SystemTime>> {
    let Some(written) = modified(driver, path)? else {
        return Ok(None);
    };
    if driver.can_touch() {
        return Ok(Some(written));
    }
    Ok(Some(match modified(driver, &marker(driver, path))? {
        Some(claimed) => claimed.max(written),
        None => written,
    }))
}

/// Moves a file aside, for a deletion that may still be undone; `None`
/// when there is no such file.
pub(crate) fn set_aside(driver: &dyn Driver, path: &Path) -> Result<Option<PathBuf>> {
    let aside = driver
        .layout()
        .tmp_dir()
        .join(format!("tmp-{}", hex::encode(rand::random::<[u8; 12]>())));
    Ok(driver.rename(path, &aside)?.then_some(aside))
}

/// When the file moved from `path` to `aside` was last used, counting
/// claims made on `path` before and while it moved.
pub(crate) fn aside_last_used(
    driver: &dyn Driver,
    path: &Path,
    aside: &Path,
) -> Result<Option<SystemTime>> {
    if driver.can_touch() {
        // A claim before the move touched this very file.
        return modified(driver, aside);
    }
    // The moved copy has a time of its own; what counts is whether anyone
    // claimed `path` since the check before the move.
    modified(driver, &marker(driver, path))
}

/// Puts a file set aside back at `path`, unless `path` was written anew.
pub(crate) fn restore(driver: &dyn Driver, aside: &Path, path: &Path) -> Result<()> {
    if driver.stat(path)?.is_none() {
        driver.rename(aside, path)?;
    } else {
        driver.delete(aside)?;
    }
    Ok(())
}

/// Deletes a file set aside from `path` for good, with its claims.
pub(crate) fn drop_aside(driver: &dyn Driver, aside: &Path, path: &Path) -> Result<()> {
    driver.delete(aside)?;
    forget(driver, path)
}

/// Deletes a file with its claims; `false` when it was absent.
pub(crate) fn delete(driver: &dyn Driver, path: &Path) -> Result<bool> {
    let existed = driver.delete(path)?;
    forget(driver, path)?;
    Ok(existed)
}

/// Deletes a directory tree with the claims of its files.
pub(crate) fn delete_tree(driver: &dyn Driver, dir: &Path) -> Result<()> {
    driver.delete_tree(dir)?;
    if !driver.can_touch() {
        driver.delete_tree(&marker(driver, dir))?;
    }
    Ok(())
}

fn forget(driver: &dyn Driver, path: &Path) -> Result<()> {
    if !driver.can_touch() {
        driver.delete(&marker(driver, path))?;
    }
    Ok(())
}

/// The newest time of the files under `dir` (an upload session), or the
/// directory's own when it holds none; `None` when nothing tells.
pub(crate) fn newest_under(driver: &dyn Driver, dir: &Path) -> Result<Option<SystemTime>> {
    let mut newest = None;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for (name, is_dir) in driver.list(&d)? {
            let p = d.join(name);
            if is_dir {
                todo.push(p);
            } else {
                newest = newest.max(modified(driver, &p)?);
            }
        }
    }
    if newest.is_none() && driver.is_local() {
        // A session directory without files is either being created right
        // now or abandoned, which only its own time tells apart.
        newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    }
    Ok(newest)
}

//! Routing of `/v2/…` paths. By hand rather than by axum's router:
//! repository names contain slashes and may even contain `blobs` or
//! `manifests` as components, so the path is matched from its end, as
//! distribution's regular expressions do.

/// Percent-decodes a query value or path segment. `+` stays `+`: media
/// types such as `application/vnd.x+json` arrive unescaped from some clients.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded value of `key` in the URI's query.
pub(crate) fn query_param(uri: &axum::http::Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

/// A parsed `/v2/...` path.
#[derive(Debug, PartialEq)]
pub(crate) enum Route {
    Tags(String),
    UploadStart(String),
    Upload(String, String),
    Blob(String, String),
    Manifest(String, String),
    Referrers(String, String),
}

/// The route of a `/v2/…` path, matched from its end; `None`: not one.
pub(crate) fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |k: usize| segs[..n - k].join("/");
    let last = || percent_decode(segs[n - 1]);
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Some(Route::Tags(name(2)));
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Some(Route::UploadStart(name(2)));
    }
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        if segs[n - 1].is_empty() {
            return Some(Route::UploadStart(name(3)));
        }
        return Some(Route::Upload(name(3), last()));
    }
    if n >= 3 {
        match segs[n - 2] {
            "blobs" => return Some(Route::Blob(name(2), last())),
            "manifests" => return Some(Route::Manifest(name(2), last())),
            "referrers" => return Some(Route::Referrers(name(2), last())),
            _ => {}
        }
    }
    // A reference with slashes in it (`sha256:../../x`): route it anyway so
    // the client hears "invalid digest/tag" rather than "no such endpoint".
    let i = (1..n.saturating_sub(1))
        .find(|&i| matches!(segs[i], "blobs" | "manifests" | "referrers"))?;
    let (name, reference) = (
        segs[..i].join("/"),
        percent_decode(&segs[i + 1..].join("/")),
    );
    Some(match segs[i] {
        "blobs" => Route::Blob(name, reference),
        "manifests" => Route::Manifest(name, reference),
        _ => Route::Referrers(name, reference),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn routes_from_the_end() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(route("/v2/a/b/tags/list"), Some(Route::Tags("a/b".into())));
        assert_eq!(
            route("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            route("/v2/a/blobs/uploads"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/xyz"),
            Some(Route::Upload("a".into(), "xyz".into()))
        );
        assert_eq!(
            route(&format!("/v2/x/blobs/y/blobs/{d}")),
            Some(Route::Blob("x/blobs/y".into(), d.clone()))
        );
        assert_eq!(
            route("/v2/m/manifests/manifests/latest"),
            Some(Route::Manifest("m/manifests".into(), "latest".into()))
        );
        assert_eq!(
            route(&format!("/v2/r/referrers/{d}")),
            Some(Route::Referrers("r".into(), d.clone()))
        );
        assert_eq!(route("/v2/"), None);
        assert_eq!(route("/v2/blobs/x"), None);
        assert_eq!(
            route("/v2/a/blobs/sha256:../../x"),
            Some(Route::Blob("a".into(), "sha256:../../x".into()))
        );
        assert_eq!(route("/other"), None);
    }

    #[test]
    fn percent_decoding_keeps_plus() {
        assert_eq!(percent_decode("a%2Bb+c%3a"), "a+b+c:");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}

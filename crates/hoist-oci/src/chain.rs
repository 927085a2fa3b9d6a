//! ChainIDs name a prefix of the layer stack: `chain(0) = diffID(0)`,
//! `chain(n) = sha256(chain(n-1) + " " + diffID(n))`.

use crate::Digest;

/// The chainID of a parent chain plus one more diffID.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::sha256(format!("{p} {diff_id}").as_bytes()),
    }
}

/// The chainID of every prefix of `diff_ids`, in order.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id(out.last(), d);
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_of_one_is_the_diff_id_and_grows_by_hashing() {
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::sha256(format!("{a} {b}").as_bytes()));
    }
}

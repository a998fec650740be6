//! RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes, proof generation over
//! stored perfect subtrees, and inclusion and consistency proof verification.
//!
//! Leaves are 32-byte envelope ids. `leaf = SHA-256(0x00 ‖ id)`,
//! `node = SHA-256(0x01 ‖ left ‖ right)`, the empty tree's root is `SHA-256("")`.
//!
//! Proofs are built from the hashes of *perfect aligned subtrees* (level `l`, index `i`:
//! the leaves `[i·2^l, (i+1)·2^l)`), which a log keeps in its store; nothing here holds a
//! whole tree. [`CompactRange`] is the O(log n) right border a log keeps in memory to
//! append leaves and compute its root.

use sha2::{Digest, Sha256};

/// A tree hash.
pub type Hash = [u8; 32];

/// Most hashes in an inclusion proof (trees of up to 2^63 leaves).
pub const MAX_INCLUSION_HASHES: usize = 63;
/// Most hashes in a consistency proof.
pub const MAX_CONSISTENCY_HASHES: usize = 2 * 63;

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Why a proof does not verify, or cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index or sizes are out of range.
    #[error("index or size out of range")]
    OutOfRange,
    /// The proof has more hashes than any valid proof for these sizes.
    #[error("proof has {0} hashes, more than any valid proof")]
    TooLong(usize),
    /// The proof's hashes do not lead to the claimed root(s).
    #[error("proof does not verify")]
    Mismatch,
    /// A stored subtree hash the proof needs is missing.
    #[error("subtree hash (level {level}, index {index}) missing")]
    Missing {
        /// Level of the subtree.
        level: u8,
        /// Index of the subtree at its level.
        index: u64,
    },
}

/// Hashes of perfect aligned subtrees, as a log stores them.
pub trait SubtreeSource {
    /// The hash of leaves `[index·2^level, (index+1)·2^level)`, if stored.
    fn perfect(&self, level: u8, index: u64) -> Option<Hash>;
}

fn ceil_log2(n: u64) -> usize {
    if n <= 1 {
        0
    } else {
        (64 - (n - 1).leading_zeros()) as usize
    }
}

/// The largest power of two strictly below `n` (`n ≥ 2`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[a:b]) from stored perfect subtrees (`a < b`, `a` aligned as in RFC 6962's
/// recursion).
pub fn subtree_hash(src: &impl SubtreeSource, a: u64, b: u64) -> Result<Hash, ProofError> {
    let n = b - a;
    if n.is_power_of_two() && a % n == 0 {
        let level = n.trailing_zeros() as u8;
        let index = a >> level;
        return src
            .perfect(level, index)
            .ok_or(ProofError::Missing { level, index });
    }
    let k = split(n);
    Ok(node_hash(
        &subtree_hash(src, a, a + k)?,
        &subtree_hash(src, a + k, b)?,
    ))
}

/// The root of the first `size` leaves.
pub fn root(src: &impl SubtreeSource, size: u64) -> Result<Hash, ProofError> {
    if size == 0 {
        return Ok(empty_root());
    }
    subtree_hash(src, 0, size)
}

/// RFC 6962 PATH(m, D[0:n]): the inclusion proof of leaf `index` in a tree of `size`.
pub fn inclusion_proof(
    src: &impl SubtreeSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn path(
    src: &impl SubtreeSource,
    m: u64,
    a: u64,
    b: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = b - a;
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(src, m, a, a + k, out)?;
        out.push(subtree_hash(src, a + k, b)?);
    } else {
        path(src, m - k, a + k, b, out)?;
        out.push(subtree_hash(src, a, a + k)?);
    }
    Ok(())
}

/// RFC 6962 PROOF(m, D[0:n]): the consistency proof from `old` leaves to `new` leaves
/// (empty if `old` is 0 or equals `new`).
pub fn consistency_proof(
    src: &impl SubtreeSource,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old > new {
        return Err(ProofError::OutOfRange);
    }
    let mut out = Vec::new();
    if old > 0 && old < new {
        subproof(src, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

fn subproof(
    src: &impl SubtreeSource,
    m: u64,
    a: u64,
    b: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = b - a;
    if m == n {
        if !complete {
            out.push(subtree_hash(src, a, b)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, a, a + k, complete, out)?;
        out.push(subtree_hash(src, a + k, b)?);
    } else {
        subproof(src, m - k, a + k, b, false, out)?;
        out.push(subtree_hash(src, a, a + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: checks that `leaf` (a leaf hash) is at `index` in the tree of
/// `size` leaves with root `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    if proof.len() > ceil_log2(size) {
        return Err(ProofError::TooLong(proof.len()));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::Mismatch);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s == 0 && r == *root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// RFC 9162 §2.1.4.2: checks that the tree of `old` leaves with root `old_root` is a
/// prefix of the tree of `new` leaves with root `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OutOfRange);
    }
    if proof.len() > 2 * ceil_log2(new) {
        return Err(ProofError::TooLong(proof.len()));
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if old == 0 {
        // Every tree extends the empty tree.
        return if proof.is_empty() && *old_root == empty_root() {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let mut hashes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        hashes.push(*old_root);
    }
    hashes.extend_from_slice(proof);
    let Some((first, rest)) = hashes.split_first() else {
        return Err(ProofError::Mismatch);
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(ProofError::Mismatch);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if fr == *old_root && sr == *new_root && s == 0 {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// The right border of a tree: the roots of its perfect subtrees, largest first, one per
/// set bit of its size. O(log n) memory; appending a leaf returns the perfect subtrees it
/// completes, for the log to store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// `(level, hash)`, largest subtree first.
    border: Vec<(u8, Hash)>,
}

impl CompactRange {
    /// The border of the first `size` leaves, read from stored perfect subtrees.
    pub fn load(src: &impl SubtreeSource, size: u64) -> Result<Self, ProofError> {
        let mut border = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                let index = start >> level;
                let hash = src
                    .perfect(level, index)
                    .ok_or(ProofError::Missing { level, index })?;
                border.push((level, hash));
                start += 1 << level;
            }
        }
        Ok(Self { size, border })
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf (its data, hashed here); returns every perfect subtree completed,
    /// as `(level, index, hash)`, the leaf itself first.
    pub fn append(&mut self, data: &[u8]) -> Vec<(u8, u64, Hash)> {
        let index = self.size;
        let mut hash = leaf_hash(data);
        let mut level = 0u8;
        let mut made = vec![(0, index, hash)];
        while let Some(&(l, left)) = self.border.last() {
            if l != level {
                break;
            }
            self.border.pop();
            hash = node_hash(&left, &hash);
            level += 1;
            made.push((level, index >> level, hash));
        }
        self.border.push((level, hash));
        self.size += 1;
        made
    }

    /// The tree's root.
    pub fn root(&self) -> Hash {
        let mut it = self.border.iter().rev();
        let Some(&(_, mut acc)) = it.next() else {
            return empty_root();
        };
        for (_, h) in it {
            acc = node_hash(h, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An in-memory store of perfect subtrees, for tests.
    #[derive(Default)]
    struct Mem {
        range: CompactRange,
        nodes: HashMap<(u8, u64), Hash>,
    }

    impl Mem {
        fn push(&mut self, data: &[u8]) {
            for (l, i, h) in self.range.append(data) {
                self.nodes.insert((l, i), h);
            }
        }
    }

    impl SubtreeSource for Mem {
        fn perfect(&self, level: u8, index: u64) -> Option<Hash> {
            self.nodes.get(&(level, index)).copied()
        }
    }

    fn h(s: &str) -> Hash {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    /// The RFC 6962 test leaves of certificate-transparency's reference tests.
    fn rfc_tree() -> Mem {
        let leaves: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let mut m = Mem::default();
        for l in leaves {
            m.push(l);
        }
        m
    }

    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn rfc6962_roots() {
        let m = rfc_tree();
        assert_eq!(
            hex::encode(root(&m, 0).unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for (i, want) in ROOTS.iter().enumerate() {
            assert_eq!(
                hex::encode(root(&m, i as u64 + 1).unwrap()),
                *want,
                "size {}",
                i + 1
            );
        }
        assert_eq!(hex::encode(m.range.root()), ROOTS[7]);
    }

    #[test]
    fn rfc6962_inclusion_vectors() {
        let m = rfc_tree();
        let proof = inclusion_proof(&m, 0, 8).unwrap();
        assert_eq!(
            proof,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        let proof = inclusion_proof(&m, 5, 8).unwrap();
        assert_eq!(
            proof,
            vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
    }

    #[test]
    fn rfc6962_consistency_vectors() {
        let m = rfc_tree();
        assert_eq!(
            consistency_proof(&m, 1, 8).unwrap(),
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        assert_eq!(
            consistency_proof(&m, 6, 8).unwrap(),
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        assert_eq!(
            consistency_proof(&m, 2, 5).unwrap(),
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")
            ]
        );
    }

    #[test]
    fn every_proof_verifies_and_tampering_fails() {
        let mut m = Mem::default();
        for i in 0u32..70 {
            m.push(&i.to_le_bytes());
        }
        for n in 1..=70u64 {
            let r = root(&m, n).unwrap();
            for i in 0..n {
                let leaf = leaf_hash(&(i as u32).to_le_bytes());
                let p = inclusion_proof(&m, i, n).unwrap();
                verify_inclusion(&leaf, i, n, &p, &r).unwrap();
                assert!(verify_inclusion(&leaf_hash(b"x"), i, n, &p, &r).is_err());
                if n > 1 {
                    assert!(verify_inclusion(&leaf, (i + 1) % n, n, &p, &r).is_err());
                }
            }
            for o in 0..=n {
                let p = consistency_proof(&m, o, n).unwrap();
                let ro = root(&m, o).unwrap();
                verify_consistency(o, n, &p, &ro, &r).unwrap();
                if o > 0 && o < n {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(verify_consistency(o, n, &bad, &ro, &r).is_err());
                    assert!(verify_consistency(o, n, &p, &r, &r).is_err());
                }
            }
        }
    }

    #[test]
    fn compact_range_reloads_from_store() {
        let mut m = Mem::default();
        for i in 0u32..37 {
            m.push(&i.to_le_bytes());
            let loaded = CompactRange::load(&m, m.range.size()).unwrap();
            assert_eq!(loaded, m.range);
        }
    }

    #[test]
    fn oversized_proofs_are_refused() {
        let r = empty_root();
        let long = vec![[0u8; 32]; 200];
        assert_eq!(
            verify_consistency(3, 9, &long, &r, &r),
            Err(ProofError::TooLong(200))
        );
        assert_eq!(
            verify_inclusion(&r, 1, 9, &long, &r),
            Err(ProofError::TooLong(200))
        );
    }
}

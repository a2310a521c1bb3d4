//! RFC 6962 Merkle tree hashing, audit paths and their verification (RFC 9162 §2.1).
//!
//! Proofs are computed from a [`NodeSource`]: any store that can return the hash of a *perfect*
//! subtree (level `l`, index `i` covers leaves `[i·2^l, (i+1)·2^l)`). Every subtree the RFC's
//! recursion needs is aligned, so a proof costs O(log n) node reads and never a rebuild of the
//! tree. [`TreeBuilder`] is the in-memory counterpart for verifiers that stream the leaves.

use super::Hash;
use sha2::{Digest, Sha256};

/// SHA-256(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A store of perfect-subtree hashes. `level` 0 holds the leaf hashes.
pub trait NodeSource {
    type Error;
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Errors of proof computation: the store's own, or a request outside the tree.
#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    #[error("{0}")]
    Source(E),
    #[error("{0}")]
    Range(String),
}

/// Largest power of two strictly less than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[lo:hi]) from stored perfect subtrees.
pub fn range_hash<S: NodeSource>(src: &S, lo: u64, hi: u64) -> Result<Hash, ProofError<S::Error>> {
    let n = hi - lo;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && lo % n == 0 {
        return src
            .node(n.trailing_zeros(), lo / n)
            .map_err(ProofError::Source);
    }
    let k = split_point(n);
    let left = range_hash(src, lo, lo + k)?;
    let right = range_hash(src, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree of the first `size` leaves.
pub fn root<S: NodeSource>(src: &S, size: u64) -> Result<Hash, ProofError<S::Error>> {
    range_hash(src, 0, size)
}

/// RFC 6962 PATH(index, D[0:size]), leaf-to-root order.
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "leaf {index} is not in a tree of size {size}"
        )));
    }
    let mut path = Vec::new();
    path_rec(src, index, 0, size, &mut path)?;
    Ok(path)
}

fn path_rec<S: NodeSource>(
    src: &S,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError<S::Error>> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path_rec(src, m, lo, lo + k, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        path_rec(src, m - k, lo + k, hi, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// RFC 6962 PROOF(old_size, D[0:new_size]), leaf-to-root order. Empty when the sizes are equal
/// or the old tree is empty.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if old_size > new_size {
        return Err(ProofError::Range(format!(
            "no consistency proof from size {old_size} to the smaller size {new_size}"
        )));
    }
    let mut path = Vec::new();
    if old_size > 0 && old_size < new_size {
        subproof_rec(src, old_size, 0, new_size, true, &mut path)?;
    }
    Ok(path)
}

fn subproof_rec<S: NodeSource>(
    src: &S,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError<S::Error>> {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push(range_hash(src, lo, hi)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof_rec(src, m, lo, lo + k, whole, out)?;
        out.push(range_hash(src, lo + k, hi)?);
    } else {
        subproof_rec(src, m - k, lo + k, hi, false, out)?;
        out.push(range_hash(src, lo, lo + k)?);
    }
    Ok(())
}

/// Check an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && &r == root
}

/// Check a consistency proof (RFC 9162 §2.1.4.2). A proof from the empty tree must be empty.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (path[0], path[0]);
    for c in &path[1..] {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    &f_r == old_root && &s_r == new_root && s_n == 0
}

/// Builds a tree from leaf hashes in order, keeping only the right edge (O(log n) memory), and
/// answers the root at the current size. Used by verifiers that stream every leaf.
#[derive(Debug, Default, Clone)]
pub struct TreeBuilder {
    /// Roots of the perfect subtrees along the right edge, largest first.
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl TreeBuilder {
    pub fn new() -> TreeBuilder {
        TreeBuilder::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf_hash: Hash) {
        let mut node = (0u32, leaf_hash);
        while let Some(&(level, left)) = self.stack.last() {
            if level != node.0 {
                break;
            }
            self.stack.pop();
            node = (level + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Perfect-subtree hashes of an in-memory list of leaf hashes; for tests and small verifiers.
pub struct MemoryNodes {
    levels: Vec<Vec<Hash>>,
}

impl MemoryNodes {
    pub fn new(leaves: Vec<Hash>) -> MemoryNodes {
        let mut levels = vec![leaves];
        while let Some(last) = levels.last() {
            if last.len() < 2 {
                break;
            }
            let next = last
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        MemoryNodes { levels }
    }
}

impl NodeSource for MemoryNodes {
    type Error = String;
    fn node(&self, level: u32, index: u64) -> Result<Hash, String> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or_else(|| format!("no node at level {level} index {index}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry-{i}").as_bytes()))
            .collect()
    }

    #[test]
    fn every_proof_verifies_and_builder_agrees_for_small_trees() {
        for n in 1..=40u64 {
            let nodes = MemoryNodes::new(leaves(n));
            let r = root(&nodes, n).unwrap();
            let mut b = TreeBuilder::new();
            for l in leaves(n) {
                b.push(l);
            }
            assert_eq!(b.root(), r, "builder root at {n}");
            for i in 0..n {
                let p = inclusion_proof(&nodes, i, n).unwrap();
                assert!(verify_inclusion(&leaves(n)[i as usize], i, n, &p, &r));
                let mut wrong_leaf = leaves(n)[i as usize];
                wrong_leaf[31] ^= 1;
                assert!(!verify_inclusion(&wrong_leaf, i, n, &p, &r));
                if n > 1 {
                    assert!(!verify_inclusion(
                        &leaves(n)[i as usize],
                        (i + 1) % n,
                        n,
                        &p,
                        &r
                    ));
                }
            }
            for m in 0..=n {
                let old = root(&nodes, m).unwrap();
                let p = consistency_proof(&nodes, m, n).unwrap();
                assert!(verify_consistency(m, n, &old, &r, &p), "{m}->{n}");
                if m > 0 && m < n {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_consistency(m, n, &old, &r, &bad));
                }
            }
        }
    }

    #[test]
    fn empty_tree_root_is_sha256_of_nothing() {
        let nodes = MemoryNodes::new(vec![]);
        assert_eq!(root(&nodes, 0).unwrap(), empty_root());
        assert_eq!(TreeBuilder::new().root(), empty_root());
    }
}

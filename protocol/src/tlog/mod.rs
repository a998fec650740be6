//! Transparency logs (PROTOCOL.md §19): every node's append-only RFC 6962 tree of the
//! envelope ids it authors, signed checkpoints in the C2SP formats, the witness exchange,
//! and portable proof of a split view.

pub mod note;
pub mod tree;

use crate::codec::{self, DecodeError};
use crate::ids::{EnvelopeId, NetworkId, NodePublicKey};
use bincode::{Decode, Encode};
pub use note::{Checkpoint, Note, NoteError, NoteSignature};
pub use tree::{CompactRange, Hash, ProofError, SubtreeSource};

/// Most inclusion proofs in one add-checkpoint request.
pub const MAX_INCLUSIONS: usize = 512;

/// One envelope id's place in the tree, with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Inclusion {
    /// The leaf index.
    pub index: u64,
    /// The envelope id (the leaf's data).
    pub id: EnvelopeId,
    /// RFC 6962 audit path to the checkpoint's root.
    pub path: Vec<Hash>,
}

impl Inclusion {
    /// Checks the proof against a checkpoint of `size` leaves with `root` (the path's
    /// length is bounded before hashing).
    pub fn verify(&self, size: u64, root: &Hash) -> Result<(), ProofError> {
        tree::verify_inclusion(
            &tree::leaf_hash(&self.id.0),
            self.index,
            size,
            &self.path,
            root,
        )
    }
}

/// Most envelope ids in one [`crate::wire::Request::Inclusions`] (PROTOCOL.md §19.6).
pub const MAX_INCLUSION_ASK: usize = 256;

/// An envelope's place in a checkpoint of its author's log, as an audit export carries
/// it (record type 11): the checkpoint of `(author, size)` is in the same export.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ProvenInclusion {
    /// The log's author.
    pub author: NodePublicKey,
    /// The size of the checkpoint the proof leads to.
    pub size: u64,
    /// The leaf and its audit path.
    pub inclusion: Inclusion,
}

impl ProvenInclusion {
    /// Largest encoding.
    pub const MAX_BYTES: usize = 32 + 8 + 8 + 32 + 8 + 32 * tree::MAX_INCLUSION_HASHES;
}

/// tlog-witness add-checkpoint, from a log to a witness: "I believe you last saw
/// `old_size`; here is the consistency proof to my new checkpoint", plus inclusion
/// proofs of the new leaves the witness may hold.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AddCheckpoint {
    /// The size the log believes the witness last cosigned (0: none).
    pub old_size: u64,
    /// RFC 6962 consistency proof from `old_size` to the new size.
    pub consistency: Vec<Hash>,
    /// The new checkpoint: a note signed by the log.
    pub checkpoint: Vec<u8>,
    /// Inclusion proofs of new leaves (at most [`MAX_INCLUSIONS`]).
    pub inclusions: Vec<Inclusion>,
}

impl AddCheckpoint {
    /// Whether every list is within its bound (checked before any hashing).
    pub fn within_bounds(&self) -> bool {
        self.consistency.len() <= tree::MAX_CONSISTENCY_HASHES
            && self.checkpoint.len() <= note::MAX_NOTE_BYTES
            && self.inclusions.len() <= MAX_INCLUSIONS
            && self
                .inclusions
                .iter()
                .all(|i| i.path.len() <= tree::MAX_INCLUSION_HASHES)
    }
}

/// Two checkpoints signed by one author for the same tree size with different roots:
/// the author showed two histories. Wire form `encode(SplitView)`, the note with the
/// smaller root first.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SplitView {
    /// The first signed checkpoint's note bytes.
    pub first: Vec<u8>,
    /// The second signed checkpoint's note bytes.
    pub second: Vec<u8>,
}

/// What a verified [`SplitView`] proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitProven {
    /// The author who signed both.
    pub author: NodePublicKey,
    /// The tree size both claim.
    pub size: u64,
    /// The two roots, smaller first.
    pub roots: (Hash, Hash),
}

/// Why split-view evidence proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitViewError {
    /// It does not decode.
    #[error("does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// A checkpoint does not parse or its author signature does not verify.
    #[error("checkpoint refused: {0}")]
    Checkpoint(#[from] NoteError),
    /// The checkpoints are of different authors or sizes, or agree.
    #[error("checkpoints do not conflict")]
    NoConflict,
    /// Not in canonical order.
    #[error("checkpoints are not in canonical order")]
    NotCanonical,
}

impl SplitView {
    /// Largest encoding.
    pub const MAX_BYTES: usize = 2 * (note::MAX_NOTE_BYTES + 8);

    /// Builds canonical evidence from two signed notes (checked by [`SplitView::verify`]).
    pub fn new(a: Vec<u8>, b: Vec<u8>, network: &NetworkId) -> Result<Self, SplitViewError> {
        let ca = Checkpoint::verify(&Note::parse(&a)?, network)?;
        let cb = Checkpoint::verify(&Note::parse(&b)?, network)?;
        let (first, second) = if ca.root < cb.root { (a, b) } else { (b, a) };
        let ev = Self { first, second };
        ev.verify(network)?;
        Ok(ev)
    }

    /// Encodes the evidence.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Strictly decodes evidence.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_exact(bytes, Self::MAX_BYTES)
    }

    /// Checks both author signatures (`verify_strict`) and that they conflict.
    pub fn verify(&self, network: &NetworkId) -> Result<SplitProven, SplitViewError> {
        let a = Checkpoint::verify(&Note::parse(&self.first)?, network)?;
        let b = Checkpoint::verify(&Note::parse(&self.second)?, network)?;
        if a.author != b.author || a.size != b.size || a.root == b.root {
            return Err(SplitViewError::NoConflict);
        }
        if a.root > b.root {
            return Err(SplitViewError::NotCanonical);
        }
        Ok(SplitProven {
            author: a.author,
            size: a.size,
            roots: (a.root, b.root),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NodeKey;

    #[test]
    fn split_view_is_proven_only_by_conflicting_signed_checkpoints() {
        let net = NetworkId([5; 32]);
        let a = NodeKey::from_secret_bytes(&[1; 32]);
        let cp = |size, root| Checkpoint {
            network: net,
            author: a.public(),
            size,
            root,
            heads: vec![],
        };
        let n1 = cp(4, [1; 32]).sign(&a).to_bytes();
        let n2 = cp(4, [2; 32]).sign(&a).to_bytes();
        let ev = SplitView::new(n2.clone(), n1.clone(), &net).unwrap();
        assert_eq!(ev.first, n1);
        let proven = SplitView::decode(&ev.encode())
            .unwrap()
            .verify(&net)
            .unwrap();
        assert_eq!(proven.size, 4);
        assert_eq!(proven.author, a.public());
        let swapped = SplitView {
            first: n2,
            second: n1.clone(),
        };
        assert_eq!(swapped.verify(&net), Err(SplitViewError::NotCanonical));
        let other_size = cp(5, [0; 32]).sign(&a).to_bytes();
        assert!(SplitView::new(n1.clone(), other_size, &net).is_err());
        assert!(SplitView::new(n1.clone(), n1, &net).is_err());
    }
}

/// The vectors of PROTOCOL.md §19.7, rebuilt from their inputs.
#[cfg(test)]
mod vectors {
    use super::*;
    use crate::ids::TopicId;
    use crate::keys::NodeKey;

    struct Mem(std::collections::HashMap<(u8, u64), Hash>);
    impl SubtreeSource for Mem {
        fn perfect(&self, level: u8, index: u64) -> Option<Hash> {
            self.0.get(&(level, index)).copied()
        }
    }

    /// Prints the vectors (`cargo test -p alertmesh-protocol tlog::vectors -- --nocapture`).
    pub(super) fn build() -> Vec<(&'static str, String)> {
        let network = NetworkId([7; 32]);
        let author = NodeKey::from_secret_bytes(&[1; 32]);
        let witness = NodeKey::from_secret_bytes(&[2; 32]);
        let mut range = CompactRange::default();
        let mut mem = Mem(Default::default());
        let ids: Vec<[u8; 32]> = (0u8..3)
            .map(|i| {
                crate::ids::sha256(&[b"alertmesh tlog vector ".as_slice(), &[b'0' + i]].concat())
            })
            .collect();
        for id in &ids {
            for (l, i, h) in range.append(id) {
                mem.0.insert((l, i), h);
            }
        }
        let cp = Checkpoint {
            network,
            author: author.public(),
            size: 3,
            root: range.root(),
            heads: vec![(TopicId([0x11; 32]), 3)],
        };
        let note = cp.sign(&author);
        let cosig = note::cosign(&note.text, &network, &witness, 1_700_000_000);
        let mut cosigned = note.clone();
        cosigned.sigs.push(cosig.clone());
        let hex_list = |v: Vec<Hash>| v.iter().map(hex::encode).collect::<Vec<_>>().join(" ");
        let origin = note::origin(&network, &author.public());
        let cname = note::cosigner_name(&network, &witness.public());
        vec![
            ("author_public", author.public().to_hex()),
            ("witness_public", witness.public().to_hex()),
            ("leaf_0", hex::encode(ids[0])),
            ("leaf_1", hex::encode(ids[1])),
            ("leaf_2", hex::encode(ids[2])),
            ("root_3", hex::encode(cp.root)),
            (
                "inclusion_2_in_3",
                hex_list(tree::inclusion_proof(&mem, 2, 3).unwrap_or_default()),
            ),
            (
                "consistency_1_to_3",
                hex_list(tree::consistency_proof(&mem, 1, 3).unwrap_or_default()),
            ),
            (
                "author_key_id",
                hex::encode(note::key_id(
                    &origin,
                    note::ALG_ED25519,
                    author.public().as_bytes(),
                )),
            ),
            (
                "witness_key_id",
                hex::encode(note::key_id(
                    &cname,
                    note::ALG_COSIGNATURE_V1,
                    witness.public().as_bytes(),
                )),
            ),
            (
                "cosigned_note",
                String::from_utf8(cosigned.to_bytes()).unwrap_or_default(),
            ),
        ]
    }

    /// The values PROTOCOL.md §19.7 publishes.
    const PUBLISHED: &[(&str, &str)] = &[
        (
            "author_public",
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
        ),
        (
            "witness_public",
            "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
        ),
        (
            "leaf_0",
            "a9e0d65a9acaded4c3633ccb7ca8cc064d08d8d6093f5de4e34804ffea148fbe",
        ),
        (
            "leaf_1",
            "eb4e8df0d06f9c5d2a0c7fb6b81e65b9c910e900629a4151691d58a1216d1ee0",
        ),
        (
            "leaf_2",
            "a5ea5367597b7cf26c7fb6e8b502ac2a80b946c5c2ffc7baf21516a18c1b4e96",
        ),
        (
            "root_3",
            "9a452d85bfdb5f92e35187067cdf3c0fa7e038bd502b7f1498a64d156064b46e",
        ),
        (
            "inclusion_2_in_3",
            "4c01002fd234beab5e000be923801f41ca2f8ff9487cdab235f2603cb6f75828",
        ),
        (
            "consistency_1_to_3",
            "fb02cbab66a49716a863ea1a4f302ee6ebb0f55446de24f9c0cf4fcdf71f5bf5 91cd53f781da35e71a1a395c17dcff2741af988e053d351c4605d2b56f59b256",
        ),
        ("author_key_id", "1244f60b"),
        ("witness_key_id", "0becf8a8"),
    ];

    #[test]
    fn vectors_verify() {
        let v = build();
        for (k, val) in &v {
            println!("{k}: {val}");
        }
        for (k, want) in PUBLISHED {
            let got = v
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, g)| g.as_str());
            assert_eq!(got, Some(*want), "{k}");
        }
        let published_note = include_str!("vector-note.txt");
        assert_eq!(v.last().map(|(_, n)| n.as_str()), Some(published_note));
        let note_bytes = v.last().map(|(_, n)| n.clone()).unwrap_or_default();
        let note = Note::parse(note_bytes.as_bytes()).unwrap();
        let network = NetworkId([7; 32]);
        let cp = Checkpoint::verify(&note, &network).unwrap();
        let w = NodeKey::from_secret_bytes(&[2; 32]).public();
        assert_eq!(
            note::verify_cosignature(&note.sigs[1], &note.text, &network, &w),
            Ok(1_700_000_000)
        );
        assert_eq!(hex::encode(cp.root), v[5].1);
    }
}

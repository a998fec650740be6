//! Sender keys, key packages and alert encryption (DESIGN.md §5): HPKE sealing to
//! readers, XChaCha20-Poly1305 with the header as associated data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alertmesh_protocol::bootstrap::{NetworkPlan, simple_plan};
use alertmesh_protocol::envelope::decode_content;
use alertmesh_protocol::sender_key::CryptoError;
use alertmesh_protocol::{
    AgreementKey, AgreementPublicKey, Content, EnvelopeId, Header, KeyPackage, Kind, NodeKey,
    SenderKey, SignedEnvelope, TopicId, codec,
};
use common::{NOW, TestNet, resign, rng, sample_alert, seal_alert};

const MAX: usize = alertmesh_protocol::charter::MAX_ENVELOPE_BYTES as usize;

/// Three orgs with two nodes each; topic `all` read by org-0 and org-1 only.
fn plan() -> NetworkPlan {
    let mut plan = simple_plan(3, NOW);
    for o in &mut plan.orgs {
        o.nodes = 2;
    }
    plan.topics[0].readers.retain(|o| o.as_str() != "org-2");
    plan
}

fn reader_keys(t: &TestNet) -> Vec<AgreementPublicKey> {
    let topic = t.current().topic_by_name("all").unwrap();
    t.network
        .nodes()
        .filter(|(org, _)| topic.readers.contains(org))
        .map(|(_, n)| n.agreement.public())
        .collect()
}

#[test]
fn key_package_opens_for_every_reader_with_the_same_key() {
    let t = TestNet::new(&plan(), 200);
    let mut r = rng(201);
    let topic = t.topic("all");
    let author = t.node(0).key.public();
    let key = SenderKey::generate(7, &mut r);
    let readers = reader_keys(&t);
    assert_eq!(readers.len(), 4);
    let (pkg, refused) = KeyPackage::seal(&t.network_id(), &topic, &author, &key, &readers, &mut r);
    assert!(refused.is_empty());
    assert_eq!(pkg.entries.len(), readers.len());
    assert_eq!(pkg.epoch, 7);
    assert_eq!(pkg.topic_id, topic);
    assert!(pkg.recipients().eq(readers.iter()));

    // Through the wire form.
    let pkg = KeyPackage::decode(&pkg.encode()).unwrap();
    let mut opened = 0;
    for (org, node) in t.network.nodes() {
        let result = pkg.open(&t.network_id(), &author, &node.agreement);
        if org.as_str() == "org-2" {
            assert_eq!(result.unwrap_err(), CryptoError::NotARecipient);
        } else {
            let got = result.unwrap();
            assert_eq!(got.epoch(), 7);
            assert_eq!(*got.secret_bytes(), *key.secret_bytes());
            opened += 1;
        }
    }
    assert_eq!(opened, 4);

    // The opened key decrypts the author's alert.
    let draft = t.draft(topic, 1, EnvelopeId::default(), Kind::Alert);
    let mut draft = draft;
    draft.key_epoch = 7;
    let env = seal_alert(&t.node(0).key, &draft, &key, &sample_alert(), &mut r);
    let mine = pkg
        .open(&t.network_id(), &author, &t.org(1).nodes[1].agreement)
        .unwrap();
    assert_eq!(env.open(&mine).unwrap(), Content::Alert(sample_alert()));
}

#[test]
fn non_reader_is_not_a_recipient() {
    let t = TestNet::new(&plan(), 202);
    let mut r = rng(203);
    let author = t.node(0).key.public();
    let key = SenderKey::generate(1, &mut r);
    let (pkg, _) = KeyPackage::seal(
        &t.network_id(),
        &t.topic("all"),
        &author,
        &key,
        &reader_keys(&t),
        &mut r,
    );
    let outsider = AgreementKey::generate(&mut r);
    assert_eq!(
        pkg.open(&t.network_id(), &author, &outsider).unwrap_err(),
        CryptoError::NotARecipient
    );
    assert_eq!(
        pkg.open(&t.network_id(), &author, &t.node(2).agreement)
            .unwrap_err(),
        CryptoError::NotARecipient
    );
}

#[test]
fn key_package_bound_to_network_author_epoch_and_recipient() {
    let t = TestNet::new(&plan(), 204);
    let mut r = rng(205);
    let network = t.network_id();
    let author = t.node(0).key.public();
    let key = SenderKey::generate(3, &mut r);
    let readers = reader_keys(&t);
    let (pkg, _) = KeyPackage::seal(&network, &t.topic("all"), &author, &key, &readers, &mut r);
    let me = &t.node(1).agreement;
    assert!(pkg.open(&network, &author, me).is_ok());

    // Claimed by another author.
    let other = t.node(1).key.public();
    assert_eq!(
        pkg.open(&network, &other, me).unwrap_err(),
        CryptoError::Hpke
    );
    // Replayed into another network.
    let elsewhere = alertmesh_protocol::NetworkId([0x55; 32]);
    assert_eq!(
        pkg.open(&elsewhere, &author, me).unwrap_err(),
        CryptoError::Hpke
    );
    // Moved to another epoch or topic.
    let mut moved = pkg.clone();
    moved.epoch = 4;
    assert_eq!(
        moved.open(&network, &author, me).unwrap_err(),
        CryptoError::Hpke
    );
    let mut moved = pkg.clone();
    moved.topic_id = TopicId([1; 32]);
    assert_eq!(
        moved.open(&network, &author, me).unwrap_err(),
        CryptoError::Hpke
    );
    // Another reader's sealed copy relabelled as mine.
    let mine = me.public();
    let mut swapped = pkg.clone();
    let my_index = swapped
        .entries
        .iter()
        .position(|e| e.recipient == mine)
        .unwrap();
    let other_index = (my_index + 1) % swapped.entries.len();
    let theirs = swapped.entries[other_index].clone();
    swapped.entries[my_index].enc = theirs.enc;
    swapped.entries[my_index].ciphertext = theirs.ciphertext;
    assert_eq!(
        swapped.open(&network, &author, me).unwrap_err(),
        CryptoError::Hpke
    );
}

#[test]
fn wrong_epoch_or_wrong_key_does_not_decrypt() {
    let t = TestNet::new(&plan(), 206);
    let mut r = rng(207);
    let key = SenderKey::generate(1, &mut r);
    let draft = t.draft(t.topic("all"), 1, EnvelopeId::default(), Kind::Alert);
    let env = seal_alert(&t.node(0).key, &draft, &key, &sample_alert(), &mut r);
    assert!(env.decrypt(&key).is_ok());

    // The right bytes under another epoch number.
    let relabelled = SenderKey::from_bytes(2, &key.secret_bytes());
    assert_eq!(
        env.decrypt(&relabelled).unwrap_err(),
        CryptoError::WrongEpoch
    );
    // The author's next epoch key.
    let next = SenderKey::generate(2, &mut r);
    assert_eq!(env.decrypt(&next).unwrap_err(), CryptoError::WrongEpoch);
    // Another key of the same epoch.
    let wrong = SenderKey::generate(1, &mut r);
    assert_eq!(env.decrypt(&wrong).unwrap_err(), CryptoError::Aead);
    assert!(env.open(&wrong).is_err());
    // A key with one bit changed.
    let mut bytes = *key.secret_bytes();
    bytes[31] ^= 0x80;
    assert_eq!(
        env.decrypt(&SenderKey::from_bytes(1, &bytes)).unwrap_err(),
        CryptoError::Aead
    );
}

#[test]
fn any_flipped_byte_of_header_or_ciphertext_fails_decryption_and_signature() {
    let t = TestNet::new(&plan(), 208);
    let mut r = rng(209);
    let key = SenderKey::generate(1, &mut r);
    let mut draft = t.draft(t.topic("all"), 5, EnvelopeId([4; 32]), Kind::Alert);
    draft.timestamp_ms = NOW + 12_345;
    let env = seal_alert(&t.node(0).key, &draft, &key, &sample_alert(), &mut r);
    let signed_len = env.signed_bytes().len();
    let header_len = env.header_bytes().len();
    assert!(env.payload().len() > 16);

    let mut still_decoded = 0;
    for i in 0..signed_len {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bytes = env.as_bytes().to_vec();
            bytes[i] ^= mask;
            let Ok(tampered) = SignedEnvelope::decode(&bytes, MAX) else {
                assert!(i < header_len, "a ciphertext flip at {i} broke decoding");
                continue;
            };
            still_decoded += 1;
            assert!(
                tampered.verify_signature().is_err(),
                "signature survived flip at {i}"
            );
            assert!(
                tampered.decrypt(&key).is_err(),
                "decryption survived flip at {i}"
            );
            // The AEAD itself (not only the epoch or kind checks) refuses it.
            let h = tampered.header();
            assert_eq!(
                key.decrypt(&h.nonce, tampered.header_bytes(), tampered.payload()),
                Err(CryptoError::Aead),
                "AEAD accepted flip at {i} (mask {mask:#x})"
            );
        }
    }
    // Every ciphertext flip and most header flips reach the AEAD.
    assert!(
        still_decoded >= 3 * (signed_len - header_len) + 3 * 150,
        "{still_decoded}"
    );
}

#[test]
fn ciphertext_cannot_be_reattributed() {
    let t = TestNet::new(&plan(), 210);
    let mut r = rng(211);
    let key = SenderKey::generate(1, &mut r);
    let draft = t.draft(t.topic("all"), 1, EnvelopeId::default(), Kind::Alert);
    let env = seal_alert(&t.node(0).key, &draft, &key, &sample_alert(), &mut r);

    let rewrap = |edit: &dyn Fn(&mut Header), signer: &NodeKey| -> SignedEnvelope {
        let mut header = env.header().clone();
        edit(&mut header);
        let mut signed = codec::encode(&header);
        signed.extend_from_slice(env.payload());
        SignedEnvelope::decode(&resign(signer, &signed), MAX).unwrap()
    };

    // Another author re-signs the same ciphertext as their own: a valid signature, but
    // the header is the AEAD's associated data.
    let other = &t.node(1).key;
    let stolen = rewrap(&|h| h.author = other.public(), other);
    assert_eq!(stolen.verify_signature(), Ok(()));
    assert_eq!(stolen.decrypt(&key).unwrap_err(), CryptoError::Aead);

    // Nor can the author move it to another topic or sequence number.
    let author = &t.node(0).key;
    let moved = rewrap(&|h| h.topic_id = TopicId([9; 32]), author);
    assert_eq!(moved.verify_signature(), Ok(()));
    assert_eq!(moved.decrypt(&key).unwrap_err(), CryptoError::Aead);
    let reseq = rewrap(&|h| h.seq = 2, author);
    assert_eq!(reseq.decrypt(&key).unwrap_err(), CryptoError::Aead);

    // Re-signing the unchanged header still decrypts (the control case).
    let same = rewrap(&|_| {}, author);
    assert_eq!(same.as_bytes(), env.as_bytes());
    assert_eq!(same.open(&key).unwrap(), Content::Alert(sample_alert()));
}

#[test]
fn clear_kinds_are_not_decrypted() {
    let t = TestNet::new(&plan(), 212);
    let mut r = rng(213);
    let key = SenderKey::generate(0, &mut r);
    let draft = t.draft(t.topic("all"), 1, EnvelopeId::default(), Kind::KeyPackage);
    let env = SignedEnvelope::seal_clear(&t.node(0).key, &draft, b"payload").unwrap();
    assert_eq!(env.decrypt(&key).unwrap_err(), CryptoError::NotEncrypted);
    assert!(decode_content(Kind::KeyPackage, b"").is_err());
    assert!(SignedEnvelope::seal_encrypted(&t.node(0).key, &draft, &key, b"x", &mut r).is_err());
}

#[test]
fn key_package_for_200_readers() {
    let mut r = rng(214);
    let network = alertmesh_protocol::NetworkId([0x20; 32]);
    let topic = TopicId::derive(&network, "nation-state/apt");
    let author = NodeKey::generate(&mut r).public();
    let readers: Vec<AgreementKey> = (0..200).map(|_| AgreementKey::generate(&mut r)).collect();
    let publics: Vec<AgreementPublicKey> = readers.iter().map(AgreementKey::public).collect();
    let key = SenderKey::generate(42, &mut r);
    let (pkg, refused) = KeyPackage::seal(&network, &topic, &author, &key, &publics, &mut r);
    assert!(refused.is_empty());
    assert_eq!(pkg.entries.len(), 200);
    let encoded = pkg.encode();
    assert_eq!(encoded.len(), 32 + 8 + 8 + 200 * (32 + 32 + 48));
    let pkg = KeyPackage::decode(&encoded).unwrap();
    // Every encapsulation is fresh.
    let mut encs: Vec<[u8; 32]> = pkg.entries.iter().map(|e| e.enc).collect();
    encs.sort();
    encs.dedup();
    assert_eq!(encs.len(), 200);
    for reader in &readers {
        let opened = pkg.open(&network, &author, reader).unwrap();
        assert_eq!(opened.epoch(), 42);
        assert_eq!(*opened.secret_bytes(), *key.secret_bytes());
    }
}

#[test]
fn key_package_never_exceeds_the_entry_limit() {
    use alertmesh_protocol::sender_key::MAX_KEY_PACKAGE_ENTRIES;
    let mut r = rng(215);
    let network = alertmesh_protocol::NetworkId([0x21; 32]);
    let topic = TopicId::derive(&network, "all");
    let author = NodeKey::generate(&mut r).public();
    let reader = AgreementKey::generate(&mut r);
    let last = AgreementKey::generate(&mut r);
    // A key HPKE refuses (all zero: a low-order point) does not take an entry; then one
    // more valid recipient than fits, and one after that.
    let zero = AgreementPublicKey([0; 32]);
    let mut recipients = vec![zero];
    recipients.extend(std::iter::repeat_n(
        reader.public(),
        MAX_KEY_PACKAGE_ENTRIES,
    ));
    recipients.push(last.public());
    recipients.push(reader.public());
    let key = SenderKey::generate(7, &mut r);
    let (pkg, refused) = KeyPackage::seal(&network, &topic, &author, &key, &recipients, &mut r);
    assert_eq!(pkg.entries.len(), MAX_KEY_PACKAGE_ENTRIES);
    assert_eq!(refused, vec![zero, last.public(), reader.public()]);
    // What it seals always decodes, at exactly the size limit.
    let encoded = pkg.encode();
    assert_eq!(encoded.len(), KeyPackage::MAX_ENCODED_LEN);
    let decoded = KeyPackage::decode(&encoded).unwrap();
    assert_eq!(decoded, pkg);
    assert_eq!(
        *decoded
            .open(&network, &author, &reader)
            .unwrap()
            .secret_bytes(),
        *key.secret_bytes()
    );
    assert_eq!(
        decoded.open(&network, &author, &last).unwrap_err(),
        CryptoError::NotARecipient
    );
    // One entry more would not decode.
    let mut over = pkg;
    over.entries.push(over.entries[0].clone());
    assert!(KeyPackage::decode(&over.encode()).is_err());
}

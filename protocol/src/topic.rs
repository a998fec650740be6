//! Topic identifiers and their gossipsub names.

use crate::ids::{NetworkId, TopicId, tagged_hash, tags};

/// The name of the reserved control topic (charters, certificates, evidence).
pub const CONTROL_TOPIC_NAME: &str = "_control";

impl TopicId {
    /// `SHA-256("alertmesh/v1/topic" ‖ 0x00 ‖ network_id ‖ name)`.
    pub fn derive(network: &NetworkId, name: &str) -> Self {
        TopicId(tagged_hash(
            tags::TOPIC,
            &[network.as_bytes(), name.as_bytes()],
        ))
    }

    /// The control topic of a network.
    pub fn control(network: &NetworkId) -> Self {
        Self::derive(network, CONTROL_TOPIC_NAME)
    }

    /// The gossipsub topic string: `alertmesh/<first 8 bytes of network id>/<topic id>`.
    /// It reveals neither the topic's name nor its readers.
    pub fn gossip_name(&self, network: &NetworkId) -> String {
        format!(
            "alertmesh/{}/{}",
            hex::encode(&network.as_bytes()[..8]),
            self.to_hex()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_depends_on_network_and_name() {
        let a = TopicId::derive(&NetworkId([1; 32]), "voting-infra");
        assert_ne!(a, TopicId::derive(&NetworkId([2; 32]), "voting-infra"));
        assert_ne!(a, TopicId::derive(&NetworkId([1; 32]), "voting-infrb"));
        assert!(!a.gossip_name(&NetworkId([1; 32])).contains("voting"));
    }
}

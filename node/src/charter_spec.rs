//! The TOML description `alertmesh charter new` turns into an unsigned genesis charter.
//!
//! ```toml
//! network_name = "election-security"
//! threshold = 2                      # governor signatures needed
//!
//! [[members]]
//! org_id = "fbi"
//! name = "Federal Bureau of Investigation"
//! root_pub = "<64 hex digits from `alertmesh org init`>"
//! roles = ["law-enforcement"]
//! governor = true
//!
//! [[topics]]
//! name = "election-2020/disinfo"
//! readers = ["fbi", "chirper"]
//! publishers = ["fbi", "chirper"]
//! max_tlp = "AMBER"
//! ```

use alertmesh_protocol::{
    Charter, CharterHash, Limits, Member, NetworkId, OrgId, OrgPublicKey, Tlp, TopicRule,
};
use anyhow::Context;
use rand::RngCore;
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    network_name: String,
    threshold: u32,
    members: Vec<MemberSpec>,
    #[serde(default)]
    topics: Vec<TopicSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberSpec {
    org_id: String,
    name: String,
    root_pub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    governor: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicSpec {
    name: String,
    readers: Vec<String>,
    publishers: Vec<String>,
    max_tlp: Tlp,
}

/// Reads a spec file and builds the (unsigned, checked) genesis charter.
pub fn load(path: &Path) -> anyhow::Result<Charter> {
    let file = path.display();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read charter spec {file}"))?;
    let spec: Spec =
        toml::from_str(&text).with_context(|| format!("charter spec {file} is not valid"))?;
    let org = |s: &String| OrgId::new(s.clone()).with_context(|| format!("charter spec {file}"));
    let mut members = Vec::new();
    let mut governors = Vec::new();
    for m in &spec.members {
        let root_pub = OrgPublicKey::from_hex(&m.root_pub).map_err(|_| {
            anyhow::anyhow!(
                "charter spec {file}: root_pub of {} must be 64 hex digits",
                m.org_id
            )
        })?;
        members.push(Member {
            org_id: org(&m.org_id)?,
            name: m.name.clone(),
            root_pub,
            roles: m.roles.clone(),
        });
        if m.governor {
            governors.push(org(&m.org_id)?);
        }
    }
    let topics = spec
        .topics
        .iter()
        .map(|t| {
            Ok(TopicRule {
                name: t.name.clone(),
                readers: t.readers.iter().map(org).collect::<anyhow::Result<_>>()?,
                publishers: t
                    .publishers
                    .iter()
                    .map(org)
                    .collect::<anyhow::Result<_>>()?,
                max_tlp: t.max_tlp,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut id = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let charter = Charter {
        network_id: NetworkId(id),
        network_name: spec.network_name,
        version: 1,
        prev_hash: CharterHash::default(),
        created_ms: crate::clock::now_ms(),
        members,
        governors,
        threshold: spec.threshold,
        topics,
        revoked_certs: vec![],
        cutoffs: vec![],
        limits: Limits::default(),
    };
    charter
        .check_well_formed()
        .with_context(|| format!("charter spec {file}"))?;
    Ok(charter)
}

//! The `alertmesh` command.

mod cli;

use alertmesh_node::client::Client;
use alertmesh_node::config::{Config, LogFormat};
use alertmesh_node::{example, node};
use alertmesh_protocol::alert::{Alert, AlertKind, Observable, Severity};
use alertmesh_protocol::keyfile::SecretKeyFile;
use alertmesh_protocol::{
    AgreementKey, CharterChain, Content, NodeCert, NodeKey, OrgId, OrgRootKey, SignedCharter, Tlp,
};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use cli::demo;
use rand::rngs::OsRng;
use std::path::{Path, PathBuf};

/// alertmesh: a peer-to-peer, end-to-end encrypted threat-alert mesh between organizations.
#[derive(Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a node's keys (node.key and agreement.key, mode 0600).
    ///
    /// Example: alertmesh keygen --out /etc/alertmesh/keys
    Keygen {
        /// Directory to write node.key and agreement.key into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Organization commands.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Node certificate commands.
    #[command(subcommand)]
    Cert(CertCmd),
    /// Charter commands.
    #[command(subcommand)]
    Charter(CharterCmd),
    /// Run a node.
    ///
    /// Example: alertmesh run --config /etc/alertmesh/node.toml
    Run {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Publish an alert through a running node.
    ///
    /// Example: alertmesh publish --config node.toml --topic phishing/domains --tlp GREEN
    ///          --title "Phishing domain" --kind indicator --domain vote-example.com
    Publish(PublishArgs),
    /// Follow the alerts a running node receives (server-sent events).
    ///
    /// Example: alertmesh tail --config node.toml --topic election-2020/disinfo
    Tail {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
        /// Skip the current state of earlier alerts; show only what arrives from now on.
        #[arg(long)]
        live_only: bool,
    },
    /// Has anyone reported this value? Every alert carrying an observable (a domain, URL,
    /// address, email, hashtag, phone number, `platform:handle`, SHA-256), and the orgs.
    ///
    /// Example: alertmesh lookup --config node.toml bad.example
    Lookup {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The value.
        value: String,
        /// Its type (domain, url, ipv4, ipv6, email, social-account, hashtag, file-sha256,
        /// phone, ad-id); without it, every type the value reads as.
        #[arg(long = "type")]
        ty: Option<String>,
        /// Most alerts shown.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Full-text search over alert titles, descriptions and labels (every word must
    /// appear; `word*` matches a prefix).
    ///
    /// Example: alertmesh search --config node.toml "phishing poll" --topic phishing/domains
    Search {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The words.
        query: String,
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
        /// Only this TLP (CLEAR, GREEN, AMBER, AMBER+STRICT, RED).
        #[arg(long)]
        tlp: Option<String>,
        /// Only this alert kind (indicator, campaign, account-network, advisory, sighting).
        #[arg(long)]
        kind: Option<String>,
        /// Only this author org.
        #[arg(long)]
        org: Option<String>,
        /// Most alerts shown.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Values reported by several orgs, or (with --alert) the values an alert shares with
    /// other alerts.
    ///
    /// Example: alertmesh correlations --config node.toml --min-orgs 2
    Correlations {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// An alert id: its shared values instead.
        #[arg(long)]
        alert: Option<String>,
        /// Least distinct orgs.
        #[arg(long, default_value_t = 2)]
        min_orgs: usize,
        /// Most values shown.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// List a running node's peers.
    ///
    /// Example: alertmesh peers --config node.toml
    Peers {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Show a running node's status.
    ///
    /// Example: alertmesh status --config node.toml
    Status {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Audit a node's signed log: export it, or verify an export or a data directory.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Export alerts in other formats.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Import from other tools.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Run the example network of seven organizations locally and exchange alerts.
    ///
    /// Example: cargo run --release -- demo
    Demo {
        /// Keep the network running (fixed ports 4101-4107, API 8101-8107) until Ctrl-C.
        #[arg(long)]
        keep: bool,
        /// Directory for the network's files (default: temporary).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The example network (default: ./keys-example).
        #[arg(long)]
        example_dir: Option<PathBuf>,
    },
    /// The example network.
    #[command(subcommand)]
    Example(ExampleCmd),
}

#[derive(Subcommand)]
enum OrgCmd {
    /// Create an organization's root key (keep it offline) and print its public key.
    ///
    /// Example: alertmesh org init --out /secure/org-root.key
    Init {
        /// Where to write the org root key (mode 0600, never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertCmd {
    /// On the node: request a certificate (signed by the node key: proof of possession).
    ///
    /// Example: alertmesh cert request --keys /etc/alertmesh/keys --org fbi --charter charter-v1.bin --days 365 --serial 7 --out node.req
    Request {
        /// Directory holding node.key and agreement.key.
        #[arg(long)]
        keys: PathBuf,
        /// The org the node belongs to.
        #[arg(long)]
        org: String,
        /// The network's genesis charter (for the network id).
        #[arg(long)]
        charter: PathBuf,
        /// Validity in days from now.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Serial number (unique per org).
        #[arg(long)]
        serial: u64,
        /// Where to write the request.
        #[arg(long)]
        out: PathBuf,
    },
    /// At the org (offline): sign a node's certificate request with the org root key.
    ///
    /// Example: alertmesh cert issue --org-key /secure/org-root.key --request node.req --out node.cert
    Issue {
        /// The org root key file.
        #[arg(long)]
        org_key: PathBuf,
        /// The node's request.
        #[arg(long)]
        request: PathBuf,
        /// Where to write the certificate.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
enum CharterCmd {
    /// Create an unsigned genesis charter from a TOML description.
    ///
    /// Example: alertmesh charter new --spec network.toml --out charter-v1.bin
    New {
        /// The network description (see README: "Creating a network").
        #[arg(long)]
        spec: PathBuf,
        /// Where to write the unsigned charter.
        #[arg(long)]
        out: PathBuf,
    },
    /// Add a governor's signature to a charter file (in place).
    ///
    /// Example: alertmesh charter sign --charter charter-v1.bin --org fbi --org-key /secure/org-root.key
    Sign {
        /// The charter file.
        #[arg(long)]
        charter: PathBuf,
        /// The signing governor's org id.
        #[arg(long)]
        org: String,
        /// The governor's org root key.
        #[arg(long)]
        org_key: PathBuf,
    },
    /// Write the next charter version with changes (unsigned); cut-offs are computed from
    /// the node's database.
    ///
    /// Example: alertmesh charter propose --config node.toml --remove-org searchly --out charter-v2.bin
    /// Example: alertmesh charter propose --config node.toml --topic agency/leads --readers fbi,dhs --out charter-v2.bin
    Propose(ProposeArgs),
    /// Hand a signed charter to a running node, which adopts it and gossips it.
    ///
    /// Example: alertmesh charter submit --config node.toml --charter charter-v2.bin
    Submit {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The signed charter file.
        #[arg(long)]
        charter: PathBuf,
    },
    /// Show a charter: members, topics, hash and signature check.
    ///
    /// Example: alertmesh charter show keys-example/charter-v1.bin
    Show {
        /// The charter file.
        charter: PathBuf,
    },
}

#[derive(clap::Args)]
struct ProposeArgs {
    /// The proposing node's config (its latest charter and database are the base).
    #[arg(long)]
    config: PathBuf,
    /// Where to write the proposed (unsigned) charter.
    #[arg(long)]
    out: PathBuf,
    /// Add an org (with --name and --root-pub).
    #[arg(long, requires_all = ["name", "root_pub"])]
    add_org: Option<String>,
    /// Name of the added org.
    #[arg(long)]
    name: Option<String>,
    /// Root public key (hex) of the added org.
    #[arg(long)]
    root_pub: Option<String>,
    /// Roles of the added org.
    #[arg(long)]
    role: Vec<String>,
    /// Make the added org a governor.
    #[arg(long)]
    governor: bool,
    /// Remove an org (from members, governors and every topic).
    #[arg(long)]
    remove_org: Vec<String>,
    /// The topic to change (with --readers, --publishers, --max-tlp).
    #[arg(long)]
    topic: Option<String>,
    /// Create the topic named by --topic.
    #[arg(long, requires = "topic")]
    new_topic: bool,
    /// New readers of --topic (comma-separated org ids).
    #[arg(long, requires = "topic")]
    readers: Option<String>,
    /// New publishers of --topic (comma-separated org ids).
    #[arg(long, requires = "topic")]
    publishers: Option<String>,
    /// New maximum TLP of --topic.
    #[arg(long, requires = "topic")]
    max_tlp: Option<String>,
    /// Revoke a node certificate (the node's public key, hex).
    #[arg(long)]
    revoke_node: Vec<String>,
    /// New governor set (comma-separated org ids).
    #[arg(long)]
    governors: Option<String>,
    /// New threshold.
    #[arg(long)]
    threshold: Option<u32>,
}

#[derive(Subcommand)]
enum ExampleCmd {
    /// Regenerate the example network (deterministic).
    ///
    /// Example: cargo run --release -- example generate --out keys-example
    Generate {
        /// Output directory (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Write a node's complete signed log (charters, certificates, key packages, envelopes
    /// as their raw signed bytes, evidence) to one self-contained file (PROTOCOL.md §18).
    ///
    /// Example: alertmesh audit export --config node.toml --out fbi-2020-11-04.audit
    /// Example: alertmesh audit export --data-dir /var/lib/alertmesh --out log.audit --topic voting-infra --since 1604448000000
    Export {
        /// The node's config (the export is signed by the node and may include plaintext).
        #[arg(long, required_unless_present = "data_dir")]
        config: Option<PathBuf>,
        /// A node's data directory (unsigned export, no plaintext).
        #[arg(long, conflicts_with = "config")]
        data_dir: Option<PathBuf>,
        /// The genesis charter, for a data directory written before it was stored there.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// The file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Only these data topics (repeatable; the control topic is always included).
        #[arg(long)]
        topic: Vec<String>,
        /// Only envelopes claimed at or after this time (ms since the Unix epoch).
        #[arg(long)]
        since: Option<u64>,
        /// Only envelopes claimed at or before this time (ms since the Unix epoch).
        #[arg(long)]
        until: Option<u64>,
        /// Include sender keys and plaintexts of the topics this node can read.
        #[arg(long, requires = "config")]
        with_plaintext: bool,
    },
    /// Check a log: every signature (verify_strict), certificate, charter transition,
    /// publishing right and chain; exits non-zero on any problem.
    ///
    /// Example: alertmesh audit verify fbi-2020-11-04.audit --genesis-hash 1a2b...
    /// Example: alertmesh audit verify --config node.toml --with-plaintext --json
    Verify {
        /// An export file or a data directory (default: the data directory of --config).
        path: Option<PathBuf>,
        /// The node's config (its pinned genesis hash; its keys for --with-plaintext).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The genesis charter, for a data directory that does not hold it.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// The genesis hash to pin (64 hex digits); default: the config's, or the log's own.
        #[arg(long)]
        genesis_hash: Option<String>,
        /// Also check that decrypted contents match the ciphertexts.
        #[arg(long)]
        with_plaintext: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ExportCmd {
    /// The alerts a node holds as a STIX 2.1 bundle (indicators, campaigns, reports,
    /// sightings, relationships, identities, TLP 2.0 markings, versions, revocations).
    ///
    /// Example: alertmesh export stix --config node.toml --out bundle.json
    Stix {
        /// The node's config.
        #[arg(long, required_unless_present = "data_dir")]
        config: Option<PathBuf>,
        /// A node's data directory instead.
        #[arg(long, conflicts_with = "config")]
        data_dir: Option<PathBuf>,
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
        /// Write to this file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The alerts as MISP events (one per alert, current state: attributes, microblog
    /// objects, tlp tags, Orgc; updates and retractions reflected).
    ///
    /// Example: alertmesh export misp --config node.toml --out feed/
    Misp {
        /// The node's config.
        #[arg(long, required_unless_present = "data_dir")]
        config: Option<PathBuf>,
        /// A node's data directory instead.
        #[arg(long, conflicts_with = "config")]
        data_dir: Option<PathBuf>,
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
        /// Write a MISP feed directory here (manifest.json, hashes.csv, `<uuid>.json`);
        /// default: a JSON list of events on standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportCmd {
    /// A MISP event (JSON) as one alert, through the node's API. Attribute types without
    /// an alertmesh observable are listed, not dropped silently.
    ///
    /// Example: alertmesh import misp event.json --topic election-2020/disinfo --config node.toml
    Misp {
        /// The MISP event file (`{"Event": {...}}`).
        event: PathBuf,
        /// Topic to publish on.
        #[arg(long)]
        topic: String,
        /// The node's config.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct PublishArgs {
    /// The node's config file.
    #[arg(long)]
    config: PathBuf,
    /// Topic name.
    #[arg(long, required_unless_present = "json")]
    topic: Option<String>,
    /// TLP: CLEAR, GREEN, AMBER, AMBER+STRICT or RED.
    #[arg(long, default_value = "AMBER")]
    tlp: String,
    /// One-line title.
    #[arg(long, required_unless_present = "json")]
    title: Option<String>,
    /// Description.
    #[arg(long, default_value = "")]
    description: String,
    /// indicator, campaign, account-network, advisory or sighting.
    #[arg(long, default_value = "advisory")]
    kind: String,
    /// low, medium, high or critical.
    #[arg(long, default_value = "medium")]
    severity: String,
    /// Confidence 0-100.
    #[arg(long, default_value_t = 50)]
    confidence: u8,
    /// Domain observables.
    #[arg(long)]
    domain: Vec<String>,
    /// URL observables.
    #[arg(long)]
    url: Vec<String>,
    /// Hashtag observables (without #).
    #[arg(long)]
    hashtag: Vec<String>,
    /// Labels.
    #[arg(long)]
    label: Vec<String>,
    /// Publish a JSON file with the full request body of `POST /v1/alerts` instead
    /// (`{"topic", "tlp", "alert": {...}}`, or `"update"` / `"retraction"`).
    #[arg(long, conflicts_with_all = ["title", "topic"])]
    json: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,libp2p=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Keygen { out } => {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let key = NodeKey::generate(&mut OsRng);
            let agreement = AgreementKey::generate(&mut OsRng);
            let public = key.public();
            alertmesh_node::files::write_key(
                &SecretKeyFile::NodeSign(key),
                &out.join("node.key"),
                "alertmesh node signing key",
            )?;
            alertmesh_node::files::write_key(
                &SecretKeyFile::NodeAgreement(agreement),
                &out.join("agreement.key"),
                "alertmesh node agreement key",
            )?;
            println!("node key {} written to {}", public, out.display());
            Ok(())
        }
        Cmd::Org(OrgCmd::Init { out }) => {
            let key = OrgRootKey::generate(&mut OsRng);
            let public = key.public();
            alertmesh_node::files::write_key(
                &SecretKeyFile::OrgRoot(key),
                &out,
                "alertmesh org root key: keep offline",
            )?;
            println!("org root public key: {public}\n(put it in the charter spec as root_pub)");
            Ok(())
        }
        Cmd::Cert(CertCmd::Request {
            keys,
            org,
            charter,
            days,
            serial,
            out,
        }) => {
            let key = alertmesh_node::files::load_node_key(&keys.join("node.key"))?;
            let agreement = alertmesh_node::files::load_agreement_key(&keys.join("agreement.key"))?;
            let charter = alertmesh_node::files::load_charter(&charter)?;
            let org = OrgId::new(org)?;
            let now = alertmesh_node::clock::now_ms();
            let cert = NodeCert {
                network_id: charter.charter().network_id,
                org_id: org,
                node_sign_pub: key.public(),
                node_agree_pub: agreement.public(),
                not_before_ms: now,
                not_after_ms: now.saturating_add(days.saturating_mul(86_400_000)),
                serial,
            };
            let request = cert.request(&key);
            std::fs::write(&out, request.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "certificate request written to {}; have your org sign it with `alertmesh cert issue`",
                out.display()
            );
            Ok(())
        }
        Cmd::Cert(CertCmd::Issue {
            org_key,
            request,
            out,
        }) => {
            let root = alertmesh_node::files::load_org_root(&org_key)?;
            let bytes = std::fs::read(&request)
                .with_context(|| format!("cannot read {}", request.display()))?;
            let request = alertmesh_protocol::cert::CertRequest::decode(&bytes)
                .map_err(|e| anyhow::anyhow!("request {}: {e}", request.display()))?;
            let cert = alertmesh_protocol::SignedNodeCert::issue(&root, request)?;
            std::fs::write(&out, cert.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "certificate for node {} of {} written to {}",
                cert.cert().node_sign_pub,
                cert.cert().org_id,
                out.display()
            );
            Ok(())
        }
        Cmd::Charter(CharterCmd::New { spec, out }) => {
            let charter = alertmesh_node::charter_spec::load(&spec)?;
            if out.exists() {
                bail!("{} exists; choose another path", out.display());
            }
            let signed = SignedCharter::unsigned(charter);
            std::fs::write(&out, signed.as_bytes())?;
            println!(
                "unsigned charter written to {} (hash {}); governors now sign it with `alertmesh charter sign`",
                out.display(),
                signed.hash()
            );
            Ok(())
        }
        Cmd::Charter(CharterCmd::Sign {
            charter,
            org,
            org_key,
        }) => {
            let mut signed = alertmesh_node::files::load_charter(&charter)?;
            let org = OrgId::new(org)?;
            let root = alertmesh_node::files::load_org_root(&org_key)?;
            let member = signed
                .charter()
                .member(&org)
                .with_context(|| format!("{org} is not a member of this charter"))?;
            if member.root_pub != root.public() {
                bail!(
                    "{} is not the root key of {org} in this charter",
                    org_key.display()
                );
            }
            signed.sign(&org, &root);
            std::fs::write(&charter, signed.as_bytes())?;
            println!(
                "signed by {org}; {} signatures now",
                signed.signatures().len()
            );
            Ok(())
        }
        Cmd::Charter(CharterCmd::Show { charter }) => show_charter(&charter),
        Cmd::Charter(CharterCmd::Propose(args)) => propose(args),
        Cmd::Charter(CharterCmd::Submit { config, charter }) => {
            let client = Client::from_config(&Config::load(&config)?)?;
            let bytes = std::fs::read(&charter)
                .with_context(|| format!("cannot read {}", charter.display()))?;
            let answer: serde_json::Value = client.post(
                "/v1/charters",
                &serde_json::json!({ "charter": hex::encode(bytes) }),
            )?;
            println!(
                "adopted charter version {}; the node gossips it to the network",
                answer["version"]
            );
            Ok(())
        }
        Cmd::Run { config } => {
            let config = Config::load(&config)?;
            init_logs(config.log_format);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let node = node::Node::start(&config).await?;
                println!(
                    "alertmesh node {} running; API on http://{}",
                    node.peer_id, node.api_addr
                );
                let failed = tokio::select! {
                    _ = wait_for_signal() => None,
                    e = node.failed() => Some(e),
                };
                tracing::info!("shutting down");
                node.shutdown().await;
                failed.map_or(Ok(()), Err)
            })
        }
        Cmd::Publish(args) => publish(args),
        Cmd::Tail {
            config,
            topic,
            live_only,
        } => {
            let client = Client::from_config(&Config::load(&config)?)?;
            cli::tail::tail(&client, topic.as_deref(), live_only)
        }
        Cmd::Audit(cmd) => audit_command(cmd),
        Cmd::Export(ExportCmd::Stix {
            config,
            data_dir,
            topic,
            out,
        }) => {
            let dir = match (&config, &data_dir) {
                (Some(c), _) => Config::load(c)?.data_dir,
                (None, Some(d)) => d.clone(),
                (None, None) => bail!("pass --config or --data-dir"),
            };
            let bundle =
                alertmesh_node::views::bundle::bundle_for_data_dir(&dir, topic.as_deref())?;
            let text = serde_json::to_string_pretty(&bundle)?;
            match out {
                Some(path) => {
                    if path.exists() {
                        bail!("{} exists; choose another path", path.display());
                    }
                    std::fs::write(&path, text + "\n")
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    let count = bundle["objects"].as_array().map_or(0, Vec::len);
                    eprintln!(
                        "STIX 2.1 bundle with {count} objects written to {}",
                        path.display()
                    );
                }
                None => println!("{text}"),
            }
            Ok(())
        }
        Cmd::Export(ExportCmd::Misp {
            config,
            data_dir,
            topic,
            out,
        }) => {
            let dir = match (&config, &data_dir) {
                (Some(c), _) => Config::load(c)?.data_dir,
                (None, Some(d)) => d.clone(),
                (None, None) => bail!("pass --config or --data-dir"),
            };
            let events = alertmesh_node::misp::events_for_data_dir(&dir, topic.as_deref())?;
            match out {
                Some(path) => {
                    std::fs::create_dir_all(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    for (name, body) in alertmesh_node::misp::feed_files(&events) {
                        let file = path.join(&name);
                        std::fs::write(&file, body)
                            .with_context(|| format!("cannot write {}", file.display()))?;
                    }
                    eprintln!(
                        "MISP feed with {} events written to {}",
                        events.len(),
                        path.display()
                    );
                }
                None => println!("{}", serde_json::to_string_pretty(&events)?),
            }
            Ok(())
        }
        Cmd::Import(ImportCmd::Misp {
            event,
            topic,
            config,
        }) => {
            let text = std::fs::read(&event)
                .with_context(|| format!("cannot read {}", event.display()))?;
            let body: serde_json::Value = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not JSON", event.display()))?;
            let client = Client::from_config(&Config::load(&config)?)?;
            let answer: serde_json::Value = client.post(
                &format!(
                    "/v1/misp/events?topic={}",
                    alertmesh_node::client::query_escape(&topic)
                ),
                &body,
            )?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            if let Some(u) = answer["unmapped"].as_array().filter(|u| !u.is_empty()) {
                eprintln!(
                    "{} attribute(s) did not map to an observable (listed above as unmapped)",
                    u.len()
                );
            }
            Ok(())
        }
        Cmd::Lookup {
            config,
            value,
            ty,
            limit,
            json,
        } => {
            let client = Client::from_config(&Config::load(&config)?)?;
            cli::lookup::lookup(&client, &value, ty.as_deref(), limit, json)
        }
        Cmd::Search {
            config,
            query,
            topic,
            tlp,
            kind,
            org,
            limit,
            json,
        } => {
            let client = Client::from_config(&Config::load(&config)?)?;
            cli::lookup::search(
                &client,
                &cli::lookup::SearchArgs {
                    query: &query,
                    topic: topic.as_deref(),
                    tlp: tlp.as_deref(),
                    kind: kind.as_deref(),
                    org: org.as_deref(),
                    limit,
                    json,
                },
            )
        }
        Cmd::Correlations {
            config,
            alert,
            min_orgs,
            limit,
            json,
        } => {
            let client = Client::from_config(&Config::load(&config)?)?;
            cli::lookup::correlations(&client, alert.as_deref(), min_orgs, limit, json)
        }
        Cmd::Peers { config } => {
            let client = Client::from_config(&Config::load(&config)?)?;
            let peers: serde_json::Value = client.get("/v1/peers")?;
            println!("{}", serde_json::to_string_pretty(&peers)?);
            Ok(())
        }
        Cmd::Status { config } => {
            let client = Client::from_config(&Config::load(&config)?)?;
            let status: serde_json::Value = client.get("/v1/status")?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }
        Cmd::Demo {
            keep,
            dir,
            example_dir,
        } => demo::run(demo::DemoOptions {
            keep,
            dir,
            example_dir,
        }),
        Cmd::Example(ExampleCmd::Generate { out }) => {
            example::generate(&out)?;
            println!("example network written to {}", out.display());
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn parse_json_enum<T: serde::de::DeserializeOwned>(value: &str, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .with_context(|| format!("unknown {what} {value:?}"))
}

fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let client = Client::from_config(&Config::load(&args.config)?)?;
    let body = if let Some(path) = &args.json {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?
    } else {
        let tlp: Tlp = parse_json_enum(
            &args.tlp.to_uppercase(),
            "TLP (use CLEAR, GREEN, AMBER, AMBER+STRICT or RED)",
        )?;
        let mut observables: Vec<Observable> = args
            .domain
            .iter()
            .map(|d| Observable::Domain(d.clone()))
            .collect();
        observables.extend(args.url.iter().map(|u| Observable::Url(u.clone())));
        observables.extend(
            args.hashtag
                .iter()
                .map(|h| Observable::Hashtag(h.trim_start_matches('#').to_string())),
        );
        let alert = Alert {
            kind: parse_json_enum::<AlertKind>(&args.kind, "kind")?,
            title: args.title.clone().unwrap_or_default(),
            description: args.description.clone(),
            severity: parse_json_enum::<Severity>(&args.severity, "severity")?,
            confidence: args.confidence,
            observables,
            labels: args.label.clone(),
            references: vec![],
            valid_from_ms: alertmesh_node::clock::now_ms(),
            valid_until_ms: None,
            related: vec![],
            stix: None,
        };
        let mut body = serde_json::to_value(Content::Alert(alert))?;
        body["topic"] = serde_json::json!(args.topic.clone().unwrap_or_default());
        body["tlp"] = serde_json::to_value(tlp)?;
        body
    };
    let receipt: serde_json::Value = client.post("/v1/alerts", &body)?;
    println!(
        "published {} on {} (seq {})",
        receipt["id"].as_str().unwrap_or(""),
        receipt["topic"].as_str().unwrap_or(""),
        receipt["seq"]
    );
    Ok(())
}

fn propose(args: ProposeArgs) -> anyhow::Result<()> {
    use alertmesh_node::proposal::{self, History, Proposal, TopicEdit};
    let config = Config::load(&args.config)?;
    let current = proposal::current_charter(&config.data_dir, &config.genesis)?;
    let history = if alertmesh_node::store::db_path(&config.data_dir).exists() {
        History::from_data_dir(&config.data_dir)?
    } else {
        History::default()
    };
    let mut p = Proposal::default();
    if let Some(org) = &args.add_org {
        let m = proposal::member(
            org,
            args.name.as_deref().unwrap_or(""),
            args.root_pub.as_deref().unwrap_or(""),
            &args.role,
        )?;
        p.add_members.push((m, args.governor));
    }
    p.remove_orgs = args
        .remove_org
        .iter()
        .map(|o| Ok(OrgId::new(o.as_str())?))
        .collect::<anyhow::Result<_>>()?;
    if let Some(name) = &args.topic {
        p.topics.push(TopicEdit {
            name: name.clone(),
            create: args.new_topic,
            readers: args
                .readers
                .as_deref()
                .map(proposal::org_list)
                .transpose()?,
            publishers: args
                .publishers
                .as_deref()
                .map(proposal::org_list)
                .transpose()?,
            max_tlp: args
                .max_tlp
                .as_deref()
                .map(|t| parse_json_enum::<Tlp>(&t.to_uppercase(), "TLP"))
                .transpose()?,
        });
    }
    p.revoke = args
        .revoke_node
        .iter()
        .map(|h| {
            alertmesh_protocol::NodePublicKey::from_hex(h)
                .map_err(|_| anyhow::anyhow!("--revoke-node must be 64 hex digits"))
        })
        .collect::<anyhow::Result<_>>()?;
    p.governors = args
        .governors
        .as_deref()
        .map(proposal::org_list)
        .transpose()?;
    p.threshold = args.threshold;
    let next = proposal::propose(&current, &history, &p, alertmesh_node::clock::now_ms())?;
    if args.out.exists() {
        bail!("{} exists; choose another path", args.out.display());
    }
    let signed = SignedCharter::unsigned(next);
    std::fs::write(&args.out, signed.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let c = signed.charter();
    println!(
        "proposed charter version {} (hash {}) written to {}; {} cut-offs recorded.\n\
         It needs {} signatures of the governors of version {} ({}): alertmesh charter sign --charter {} --org <id> --org-key <file>",
        c.version,
        signed.hash(),
        args.out.display(),
        c.cutoffs.len(),
        current.charter().threshold,
        current.charter().version,
        current
            .charter()
            .governors
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        args.out.display()
    );
    Ok(())
}

fn audit_command(cmd: AuditCmd) -> anyhow::Result<()> {
    use alertmesh_node::audit;
    match cmd {
        AuditCmd::Export {
            config,
            data_dir,
            genesis,
            out,
            topic,
            since,
            until,
            with_plaintext,
        } => {
            let source = match (&config, &data_dir) {
                (Some(c), _) => audit::Source::from_config(&Config::load(c)?)?,
                (None, Some(d)) => audit::Source::from_data_dir(d, genesis.as_deref(), None)?,
                (None, None) => bail!("pass --config or --data-dir"),
            };
            let opts = audit::ExportOptions {
                topics: topic,
                since_ms: since,
                until_ms: until,
                with_plaintext,
            };
            let s = audit::export(&source, &opts, &out)?;
            println!(
                "exported {} envelopes ({} with a proof of their place in their author's log), {} charters, {} certificates, {} evidence objects{} to {} ({} records, {} bytes, {})",
                s.envelopes,
                s.inclusions,
                s.charters,
                s.certs,
                s.evidence,
                if with_plaintext {
                    format!(", {} plaintexts", s.plaintexts)
                } else {
                    String::new()
                },
                out.display(),
                s.records,
                s.bytes,
                if s.signed {
                    "signed by this node"
                } else {
                    "unsigned"
                }
            );
            Ok(())
        }
        AuditCmd::Verify {
            path,
            config,
            genesis,
            genesis_hash,
            with_plaintext,
            json,
        } => {
            let config = config.as_deref().map(Config::load).transpose()?;
            let pinned = genesis_hash
                .as_deref()
                .map(alertmesh_protocol::CharterHash::from_hex)
                .transpose()
                .map_err(|_| anyhow::anyhow!("--genesis-hash must be 64 hex digits"))?;
            let (what, report) = audit::verify_path(
                path.as_deref(),
                config.as_ref(),
                genesis.as_deref(),
                pinned,
                with_plaintext,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", audit::render(&what, &report));
            }
            if !report.ok {
                bail!("the audit found {} problem(s)", report.problems);
            }
            Ok(())
        }
    }
}

fn show_charter(path: &Path) -> anyhow::Result<()> {
    let signed = alertmesh_node::files::load_charter(path)?;
    let c = signed.charter();
    println!("network   {} ({})", c.network_name, c.network_id);
    println!("version   {}   hash {}", c.version, signed.hash());
    println!("members:");
    for m in &c.members {
        let gov = if c.governors.contains(&m.org_id) {
            " [governor]"
        } else {
            ""
        };
        println!(
            "  {:<12} {} ({}){gov}  root {}",
            m.org_id,
            m.name,
            m.roles.join(","),
            m.root_pub.short()
        );
    }
    println!(
        "threshold {} of {} governors",
        c.threshold,
        c.governors.len()
    );
    println!("topics:");
    for t in &c.topics {
        let names = |v: &[OrgId]| v.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(",");
        println!(
            "  {:<24} max {}  readers [{}]  publishers [{}]",
            t.name,
            t.max_tlp,
            names(&t.readers),
            names(&t.publishers)
        );
    }
    let signers: Vec<&str> = signed
        .signatures()
        .iter()
        .map(|s| s.org_id.as_str())
        .collect();
    println!("signed by [{}]", signers.join(", "));
    if c.version == 1 {
        match CharterChain::verify_genesis(&signed) {
            Ok(()) => println!(
                "genesis check: valid ({} signatures meet the threshold)",
                signers.len()
            ),
            Err(e) => println!("genesis check: NOT valid: {e}"),
        }
    }
    Ok(())
}

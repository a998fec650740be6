//! [`CoreHandle`]: how the API, the CLI's daemon side and tests talk to a running core.

use super::answers::SubmitError;
use super::answers::{PublishError, Receipt};
use super::status::{Status, TopicInfo};
use crate::store::{StoredAlert, Writer};
use alertmesh_protocol::{Content, Tlp};
use tokio::sync::{broadcast, mpsc, oneshot};

/// A local request to the core.
pub enum Request {
    /// Publish content on a topic.
    Publish {
        /// Topic name.
        topic: String,
        /// TLP marking.
        tlp: Tlp,
        /// What to publish (boxed: an alert is large beside the other requests).
        content: Box<Content>,
        /// Answer once stored.
        reply: oneshot::Sender<Result<Receipt, PublishError>>,
    },
    /// Node status.
    Status(oneshot::Sender<Status>),
    /// Topics and our rights on them.
    Topics(oneshot::Sender<Vec<TopicInfo>>),
    /// Adopt a signed charter handed in by the operator and gossip it.
    SubmitCharter {
        /// The signed charter's bytes.
        bytes: Vec<u8>,
        /// The adopted version, or why it was not adopted.
        reply: oneshot::Sender<Result<u64, SubmitError>>,
    },
}

/// Cloneable handle to the core.
#[derive(Clone)]
pub struct CoreHandle {
    pub(super) tx: mpsc::Sender<Request>,
    pub(super) writer: Writer,
}

impl CoreHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> anyhow::Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| anyhow::anyhow!("node is shutting down"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("node is shutting down"))
    }

    /// Publishes content; resolves once it is durably stored.
    pub async fn publish(
        &self,
        topic: String,
        tlp: Tlp,
        content: Content,
    ) -> anyhow::Result<Result<Receipt, PublishError>> {
        self.ask(|reply| Request::Publish {
            topic,
            tlp,
            content: Box::new(content),
            reply,
        })
        .await
    }

    /// Node status.
    pub async fn status(&self) -> anyhow::Result<Status> {
        self.ask(Request::Status).await
    }

    /// Topics.
    pub async fn topics(&self) -> anyhow::Result<Vec<TopicInfo>> {
        self.ask(Request::Topics).await
    }

    /// Hands a signed charter to the node: adopted and gossiped if it is the valid next
    /// version.
    pub async fn submit_charter(&self, bytes: Vec<u8>) -> anyhow::Result<Result<u64, SubmitError>> {
        self.ask(|reply| Request::SubmitCharter { bytes, reply })
            .await
    }

    /// Alerts decrypted (or published) by this node, each once its row is committed, with
    /// its cursor.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredAlert> {
        self.writer.subscribe()
    }
}

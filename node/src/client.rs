//! A small blocking client of a node's local API, for the CLI and the demo.

use crate::config::Config;
use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use std::io::BufRead;
use std::net::SocketAddr;
use std::time::Duration;
use zeroize::Zeroizing;

/// A client bound to one node's API.
pub struct Client {
    base: String,
    token: Zeroizing<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for the node a config file describes.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let token = crate::api::load_token(&config.api.token_file)?;
        Ok(Self::new(config.api.bind, token))
    }

    /// A client for an API address and token.
    pub fn new(addr: SocketAddr, token: Zeroizing<String>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self {
            base: format!("http://{addr}"),
            token,
            agent,
        }
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token.as_str())
    }

    fn check<T: DeserializeOwned>(
        &self,
        what: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        let resp = resp.with_context(|| {
            format!(
                "cannot reach the node's API at {} (is `alertmesh run` running?)",
                self.base
            )
        })?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .into_body()
            .read_json()
            .with_context(|| format!("{what}: unreadable answer"))?;
        if !status.is_success() {
            let msg = body
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("no reason given");
            bail!("{what} refused ({status}): {msg}");
        }
        serde_json::from_value(body).with_context(|| format!("{what}: unexpected answer"))
    }

    /// `GET` a JSON resource.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", self.auth())
            .call();
        self.check(path, resp)
    }

    /// `POST` JSON.
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        let resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", self.auth())
            .send_json(body);
        self.check(path, resp)
    }

    /// Follows the live stream, calling `on_alert` with each alert's JSON until it
    /// returns false or the stream ends.
    pub fn follow(
        &self,
        mut on_alert: impl FnMut(serde_json::Value) -> bool,
    ) -> anyhow::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let resp = agent
            .get(format!("{}/v1/alerts/stream", self.base))
            .header("Authorization", self.auth())
            .call()
            .with_context(|| format!("cannot reach the node's API at {}", self.base))?;
        if !resp.status().is_success() {
            bail!("stream refused ({})", resp.status());
        }
        let reader = std::io::BufReader::new(resp.into_body().into_reader());
        for line in reader.lines() {
            let line = line.context("stream interrupted")?;
            if let Some(data) = line.strip_prefix("data:") {
                if let Ok(value) = serde_json::from_str(data.trim()) {
                    if !on_alert(value) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

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
        let token = crate::files::load_token(&config.api.token_file)?;
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

    /// Follows the live stream from after cursor `after` (or from now, if `None`),
    /// calling `on_alert` with each alert's JSON until it returns false. A dropped
    /// connection is resumed with `Last-Event-ID`, so every alert is seen exactly once;
    /// after [`FOLLOW_RETRIES`] failed reconnects in a row it gives up.
    pub fn follow(
        &self,
        mut after: Option<i64>,
        mut on_alert: impl FnMut(serde_json::Value) -> bool,
    ) -> anyhow::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut failures = 0;
        loop {
            let mut req = agent
                .get(format!("{}/v1/alerts/stream", self.base))
                .header("Authorization", self.auth());
            if let Some(cursor) = after {
                req = req.header("Last-Event-ID", cursor.to_string());
            }
            let error = match req.call() {
                Ok(resp) if resp.status().is_success() => {
                    failures = 0;
                    let reader = std::io::BufReader::new(resp.into_body().into_reader());
                    match read_events(reader, &mut after, &mut on_alert) {
                        Ok(Stop::Asked) => return Ok(()),
                        Ok(Stop::Ended) => anyhow::anyhow!("the node ended the stream"),
                        Err(e) => e,
                    }
                }
                Ok(resp) => bail!("stream refused ({})", resp.status()),
                Err(e) => anyhow::Error::new(e)
                    .context(format!("cannot reach the node's API at {}", self.base)),
            };
            failures += 1;
            if failures > FOLLOW_RETRIES {
                return Err(error.context("giving up on the live stream"));
            }
            eprintln!("live stream interrupted ({error:#}); resuming");
            std::thread::sleep(Duration::from_millis(250 * failures));
        }
    }
}

/// Reconnects in a row [`Client::follow`] tries before it gives up.
pub const FOLLOW_RETRIES: u64 = 10;

enum Stop {
    Asked,
    Ended,
}

/// Reads server-sent events, tracking the last event id in `after`.
fn read_events(
    reader: impl BufRead,
    after: &mut Option<i64>,
    on_alert: &mut impl FnMut(serde_json::Value) -> bool,
) -> anyhow::Result<Stop> {
    let mut id = None;
    for line in reader.lines() {
        let line = line.context("stream interrupted")?;
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse::<i64>().ok();
        } else if let Some(data) = line.strip_prefix("data:") {
            if let Ok(value) = serde_json::from_str(data.trim()) {
                if id.is_some() {
                    *after = id;
                }
                if !on_alert(value) {
                    return Ok(Stop::Asked);
                }
            }
        } else if line.is_empty() {
            id = None;
        }
    }
    Ok(Stop::Ended)
}

/// Percent-encodes a query parameter value.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_query_values() {
        assert_eq!(
            query_escape("election-2020/disinfo"),
            "election-2020%2Fdisinfo"
        );
        assert_eq!(query_escape("a b&c"), "a%20b%26c");
    }
}

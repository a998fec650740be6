//! `node-bench run --config FILE [--without-index]`: the node as `alertmesh run` starts
//! it, from this binary, so that `index-cost` can start the same node with and without
//! the observable index (an option the daemon does not offer).

use alertmesh_node::config::Config;
use alertmesh_node::node::{Node, StartOptions};
use anyhow::{Context, bail};
use std::path::PathBuf;

/// Runs the node until SIGTERM or SIGINT.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut config: Option<PathBuf> = None;
    let mut without_index = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--config" => config = Some(it.next().context("--config needs a value")?.into()),
            "--without-index" => without_index = true,
            other => bail!("unknown flag {other}"),
        }
    }
    let config = Config::load(&config.context("--config is required")?)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let options = StartOptions {
            without_observable_index: without_index,
            ..Default::default()
        };
        let node = Node::start_with(&config, options).await?;
        println!(
            "node-bench node {} running (observable index {}); API on http://{}",
            node.peer_id,
            if without_index { "off" } else { "on" },
            node.api_addr
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        node.shutdown().await;
        anyhow::Ok(())
    })
}

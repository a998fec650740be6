//! `alertmesh lookup`, `alertmesh search` and `alertmesh correlations`: the observable
//! index through a running node's API, one line per alert (`--json`: the API's answer).

use alertmesh_node::client::{Client, query_escape};
use alertmesh_node::clock::rfc3339;
use alertmesh_node::store::observables::{
    CorrelatedPage, Correlations, Hit, LookupPage, SearchPage,
};

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn print_hit(h: &Hit) {
    let state = if h.state == "retracted" {
        "RETRACTED"
    } else {
        h.state.as_str()
    };
    println!(
        "  {} {} [{}] {} {} by {}: {} ({state})",
        rfc3339(h.created_ms.max(0) as u64),
        short(&h.id),
        h.topic,
        h.tlp,
        h.kind,
        h.org,
        h.title,
    );
}

/// `alertmesh lookup VALUE [--type T]`: who reported it, when, on which topics.
pub fn lookup(
    client: &Client,
    value: &str,
    ty: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let mut path = format!("/v1/lookup?value={}&limit={limit}", query_escape(value));
    if let Some(t) = ty {
        path.push_str(&format!("&type={}", query_escape(t)));
    }
    if json {
        let page: serde_json::Value = client.get(&path)?;
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    let p: LookupPage = client.get(&path)?;
    let keys: Vec<String> = p
        .keys
        .iter()
        .map(|k| format!("{} {}", k.ty.name(), k.value))
        .collect();
    let orgs: Vec<String> = p
        .orgs
        .iter()
        .map(|o| format!("{} ({})", o.org, o.alerts))
        .collect();
    println!(
        "{}: {} alert(s), {} retracted; reported by {} org(s){}{}",
        keys.join(" / "),
        p.alerts,
        p.retracted,
        p.distinct_orgs,
        if orgs.is_empty() { "" } else { ": " },
        orgs.join(", ")
    );
    p.hits.iter().for_each(print_hit);
    if p.next.is_some() {
        println!("  … more: raise --limit, or page with the API's cursor (--json)");
    }
    Ok(())
}

/// Filters of `alertmesh search`.
pub struct SearchArgs<'a> {
    /// The words.
    pub query: &'a str,
    /// Topic.
    pub topic: Option<&'a str>,
    /// TLP.
    pub tlp: Option<&'a str>,
    /// Alert kind.
    pub kind: Option<&'a str>,
    /// Org.
    pub org: Option<&'a str>,
    /// Page size.
    pub limit: usize,
    /// Print the API's JSON.
    pub json: bool,
}

/// `alertmesh search QUERY`: alerts whose title, description or labels hold every word.
pub fn search(client: &Client, a: &SearchArgs<'_>) -> anyhow::Result<()> {
    let mut path = format!("/v1/search?q={}&limit={}", query_escape(a.query), a.limit);
    for (name, v) in [
        ("topic", a.topic),
        ("tlp", a.tlp),
        ("kind", a.kind),
        ("org", a.org),
    ] {
        if let Some(v) = v {
            path.push_str(&format!("&{name}={}", query_escape(v)));
        }
    }
    if a.json {
        let page: serde_json::Value = client.get(&path)?;
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    let p: SearchPage = client.get(&path)?;
    p.hits.iter().for_each(print_hit);
    let more = if p.next.is_some() {
        " (more: raise --limit)"
    } else {
        ""
    };
    println!("{} alert(s){more}", p.hits.len());
    Ok(())
}

/// `alertmesh correlations [--alert ID] [--min-orgs N]`: an alert's shared values, or
/// the values several orgs reported.
pub fn correlations(
    client: &Client,
    alert: Option<&str>,
    min_orgs: usize,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let path = match alert {
        Some(id) => format!("/v1/alerts/{}/correlations", query_escape(id)),
        None => format!("/v1/correlations?min_orgs={min_orgs}&limit={limit}"),
    };
    let answer: serde_json::Value = client.get(&path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    if alert.is_some() {
        let c: Correlations = serde_json::from_value(answer)?;
        print_hit(&c.alert);
        if c.shared.is_empty() {
            println!("shares no observable with another alert");
        }
        for s in &c.shared {
            println!(
                "{} {} — orgs: {}",
                s.key.ty.name(),
                s.key.value,
                s.orgs.join(", ")
            );
            s.alerts.iter().for_each(print_hit);
            if s.more {
                println!("  …");
            }
        }
    } else {
        let page: CorrelatedPage = serde_json::from_value(answer)?;
        if page.truncated {
            println!(
                "(only the newest {} alerts were read: narrow the time range)",
                page.scanned
            );
        }
        let values = page.values;
        if values.is_empty() {
            println!("no value reported by {min_orgs} or more orgs");
        }
        for v in values {
            println!(
                "{} {} — {} orgs ({}), {} alert(s), last {}",
                v.key.ty.name(),
                v.key.value,
                v.distinct_orgs,
                v.orgs.join(", "),
                v.alerts,
                rfc3339(v.last_ms.max(0) as u64)
            );
        }
    }
    Ok(())
}

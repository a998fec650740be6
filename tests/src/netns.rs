//! Network namespaces for tests through a real kernel NAT: a [`Lab`] creates namespaces
//! (unique names per run), veth links between them, an nftables `masquerade` router, and
//! runs code or processes inside a namespace. Every namespace is deleted when the lab is
//! dropped, also on panic.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). [`unavailable`] says why a lab cannot
//! be built here, so that a test can skip with a reason; under `CI=true` a test must not
//! skip (CI runs as root and `.ci/run` installs nftables).

use anyhow::{Context, bail};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Labs made by this process (part of each namespace name).
static LABS: AtomicU32 = AtomicU32::new(0);

/// Why namespaces with a NAT cannot be built on this machine, or `None` if they can.
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    for (tool, arg) in [("ip", "-V"), ("nft", "--version")] {
        let found = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    match Lab::new().and_then(|mut lab| lab.namespace("probe").map(|_| ())) {
        Ok(()) => None,
        Err(e) => Some(format!("network namespaces are not permitted here: {e:#}")),
    }
}

/// Runs `program args` and fails with its stderr unless it succeeds.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A set of network namespaces, deleted on drop.
pub struct Lab {
    prefix: String,
    names: Vec<String>,
}

impl Lab {
    /// An empty lab whose namespaces are named `am<pid>x<n>-…`.
    pub fn new() -> anyhow::Result<Self> {
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            prefix: format!("am{}x{n}", std::process::id()),
            names: Vec::new(),
        })
    }

    /// Creates namespace `<prefix>-<name>` with its loopback up; returns its full name.
    pub fn namespace(&mut self, name: &str) -> anyhow::Result<String> {
        let full = format!("{}-{name}", self.prefix);
        run("ip", &["netns", "add", &full])?;
        self.names.push(full.clone());
        self.exec(&full, &["ip", "link", "set", "lo", "up"])?;
        Ok(full)
    }

    /// Runs a command inside namespace `ns`.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// A veth link: `a_if` in `a` with address `a_cidr` (if any), `b_if` in `b` with
    /// `b_cidr` (if any), both up.
    pub fn link(
        &self,
        (a, a_if, a_cidr): (&str, &str, Option<&str>),
        (b, b_if, b_cidr): (&str, &str, Option<&str>),
    ) -> anyhow::Result<()> {
        run(
            "ip",
            &[
                "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
            ],
        )?;
        for (ns, iface, cidr) in [(a, a_if, a_cidr), (b, b_if, b_cidr)] {
            if let Some(cidr) = cidr {
                run("ip", &["-n", ns, "addr", "add", cidr, "dev", iface])?;
            }
            run("ip", &["-n", ns, "link", "set", iface, "up"])?;
        }
        Ok(())
    }

    /// A bridge `name` in `ns`, up.
    pub fn bridge(&self, ns: &str, name: &str) -> anyhow::Result<()> {
        run("ip", &["-n", ns, "link", "add", name, "type", "bridge"])?;
        run("ip", &["-n", ns, "link", "set", name, "up"])
    }

    /// Puts interface `iface` of `ns` on bridge `bridge` of the same namespace.
    pub fn enslave(&self, ns: &str, iface: &str, bridge: &str) -> anyhow::Result<()> {
        run("ip", &["-n", ns, "link", "set", iface, "master", bridge])
    }

    /// Makes `ns` a NAT router as routers at the edge of an organization are: it forwards,
    /// masquerades everything leaving through `wan` behind the address of `wan` (nftables,
    /// source NAT), and drops what arrives on `wan` unsolicited. Dropped packets leave no
    /// connection-tracking entry behind, so a hole punch's first packet that arrives before
    /// the inside host's own does not steal the port its mapping needs.
    pub fn masquerade(&self, ns: &str, wan: &str) -> anyhow::Result<()> {
        self.exec(ns, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        self.exec(ns, &["nft", "add", "table", "ip", "nat"])?;
        self.exec(
            ns,
            &[
                "nft",
                "add chain ip nat postrouting { type nat hook postrouting priority srcnat; policy accept; }",
            ],
        )?;
        self.exec(
            ns,
            &[
                "nft",
                "add",
                "rule",
                "ip",
                "nat",
                "postrouting",
                "oifname",
                wan,
                "masquerade",
            ],
        )?;
        self.exec(ns, &["nft", "add", "table", "ip", "filter"])?;
        self.exec(
            ns,
            &[
                "nft",
                "add chain ip filter input { type filter hook input priority filter; policy accept; }",
            ],
        )?;
        self.exec(
            ns,
            &[
                "nft", "add", "rule", "ip", "filter", "input", "iifname", wan, "ct", "state",
                "new", "drop",
            ],
        )
    }

    /// Runs `f` on a thread inside namespace `ns` (sockets it opens live there).
    pub fn within<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| -> anyhow::Result<T> {
                enter(ns)?;
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread inside namespace {ns} panicked"))?
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.names.iter().rev() {
            if let Err(e) = run("ip", &["netns", "del", ns]) {
                eprintln!("warning: {e:#}");
            }
        }
    }
}

/// Moves the calling thread into network namespace `ns` (`/run/netns/<ns>`). The one
/// unsafe call of the tests: std has no `setns`.
#[allow(unsafe_code)]
fn enter(ns: &str) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(format!("/run/netns/{ns}"))
        .with_context(|| format!("no network namespace {ns}"))?;
    // SAFETY: setns on a valid namespace file descriptor affects this thread only.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!(
            "setns into {ns} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

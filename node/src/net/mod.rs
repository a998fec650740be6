//! The libp2p swarm: one task owns it; the rest of the node talks to it through a
//! [`NetHandle`] (bounded command channel) and hears from it through two channels: gossip
//! messages ([`Gossip`]) and everything else ([`NetEvent`]).
//!
//! - **Admission.** Gossipsub, Kademlia, the relay server and client, DCUtR and AutoNAT
//!   sit behind a [`gate::Gate`]: nothing of them is sent to or read from a peer until the
//!   core has checked its certificate and sent [`NetCommand::Admit`]. A connection through
//!   a relay is gated like a direct one.
//! - **NAT.** A node AutoNAT finds unreachable listens through the configured relays
//!   ([`reach`]); peers then reach it through a relay, and DCUtR tries to punch a direct
//!   path.
//! - **Nothing but gossip is shed.** A gossip message that cannot be queued is reported
//!   `Ignore` and counted. Any other event waits in one slot while the swarm stops being
//!   polled, so connection and request events always reach the core; commands are still
//!   served meanwhile, so the core never waits on a swarm that waits on it.
//! - **Bans** live here alone ([`NetCommand::Refuse`], [`NetCommand::Ban`]): a refused peer
//!   is told why, then disconnected and blocked for [`BAN_TIME`].
//! - **Limits**: libp2p connection limits ([`ConnectionLimits`]) come first in the behaviour.

mod behaviour;
mod codec;
pub mod gate;
mod handle;
pub mod reach;
mod swarm;
mod transport;

pub use behaviour::*;
pub use codec::*;
pub use handle::*;
pub use swarm::*;
pub use transport::*;

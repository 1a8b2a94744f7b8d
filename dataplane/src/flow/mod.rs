//! Per-worker connection tracking.
//!
//! Each worker owns one [`ConnTable`]: a preallocated slab of connections with stable ids, a
//! tuple index ([`FlowIndex`]) that finds a connection from the client's tuple and, for NAT and
//! FullNAT, from the real server's reply tuple, and a timing wheel ([`timer`]) that expires
//! connections without scanning. Nothing allocates after construction; when the table is full,
//! a new connection is refused (the caller drops and counts it) while existing ones are
//! untouched. [`tcp`] holds IPVS's TCP state machine and timeouts.

mod conn;
mod index;
pub mod tcp;
pub mod timer;

pub use conn::{Conn, ConnHot, ConnTable, CreateError, Mode, NO_TEMPLATE};
pub use index::{
    BUCKET_SLOTS, Dir, FlowHash, FlowIndex, FlowKey, LOAD_PERCENT, MAX_KICKS, TableFull,
};

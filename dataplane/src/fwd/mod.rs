//! Forwarding modes: how a packet for a real server is rewritten, one file per mode named as
//! IPVS names them. Each takes the frame in place and returns nothing to allocate.

pub mod dr;

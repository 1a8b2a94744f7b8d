//! Hardware flow rules (`rte_flow`): steering packets to an rx queue by their destination
//! address and masked destination port, as FullNAT uses to send each worker the replies to
//! its own slice of local ports. Only some NICs support it; [`Port::steer_dst_port`] validates
//! first and reports the driver's refusal as an error the caller can fall back from.

use std::ffi::CStr;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::ethdev::Port;
use crate::sys;

/// The L4 protocol a steering rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowProto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// An installed flow rule; destroyed when dropped (before its port is closed).
#[derive(Debug)]
pub struct FlowRule {
    port: u16,
    raw: NonNull<sys::rte_flow>,
}

// SAFETY: a flow handle is an opaque pointer owned by this value; rte_flow calls on it are
// made by whichever single thread owns the FlowRule.
unsafe impl Send for FlowRule {}

impl Drop for FlowRule {
    fn drop(&mut self) {
        let mut err = sys::rte_flow_error::default();
        // SAFETY: raw was returned by rte_flow_create on this port and is destroyed once.
        unsafe {
            sys::rte_flow_destroy(self.port, self.raw.as_ptr(), &mut err);
        }
    }
}

fn flow_error(call: String, code: i32, err: &sys::rte_flow_error) -> Error {
    let mut e = Error::from_code(call, if code < 0 { code } else { -22 });
    if !err.message.is_null() {
        // SAFETY: the PMD sets message to a static NUL-terminated string (or leaves NULL).
        let m = unsafe { CStr::from_ptr(err.message) }.to_string_lossy();
        e.message = format!("{} ({m})", e.message);
    }
    e
}

impl Port {
    /// Installs a rule sending `proto` packets to IPv4 `dst` (host order) whose destination
    /// port satisfies `port & mask == value` to rx queue `queue`.
    pub fn steer_dst_port(
        &self,
        proto: FlowProto,
        dst: u32,
        value: u16,
        mask: u16,
        queue: u16,
    ) -> Result<FlowRule> {
        let port = self.id().0;
        let mut attr = sys::rte_flow_attr::default();
        attr.set_ingress(1);
        let mut ip_spec = sys::rte_flow_item_ipv4::default();
        let mut ip_mask = sys::rte_flow_item_ipv4::default();
        ip_spec.hdr.dst_addr = dst.to_be();
        ip_mask.hdr.dst_addr = u32::MAX;
        let mut tcp_spec = sys::rte_flow_item_tcp::default();
        let mut tcp_mask = sys::rte_flow_item_tcp::default();
        let mut udp_spec = sys::rte_flow_item_udp::default();
        let mut udp_mask = sys::rte_flow_item_udp::default();
        tcp_spec.hdr.dst_port = (value & mask).to_be();
        tcp_mask.hdr.dst_port = mask.to_be();
        udp_spec.hdr.dst_port = (value & mask).to_be();
        udp_mask.hdr.dst_port = mask.to_be();
        let (l4_type, l4_spec, l4_mask) = match proto {
            FlowProto::Tcp => (
                sys::RTE_FLOW_ITEM_TYPE_TCP,
                (&tcp_spec as *const sys::rte_flow_item_tcp).cast(),
                (&tcp_mask as *const sys::rte_flow_item_tcp).cast(),
            ),
            FlowProto::Udp => (
                sys::RTE_FLOW_ITEM_TYPE_UDP,
                (&udp_spec as *const sys::rte_flow_item_udp).cast(),
                (&udp_mask as *const sys::rte_flow_item_udp).cast(),
            ),
        };
        let item = |type_, spec, mask| sys::rte_flow_item {
            type_,
            spec,
            last: std::ptr::null(),
            mask,
        };
        let pattern = [
            item(
                sys::RTE_FLOW_ITEM_TYPE_ETH,
                std::ptr::null(),
                std::ptr::null(),
            ),
            item(
                sys::RTE_FLOW_ITEM_TYPE_IPV4,
                (&ip_spec as *const sys::rte_flow_item_ipv4).cast(),
                (&ip_mask as *const sys::rte_flow_item_ipv4).cast(),
            ),
            item(l4_type, l4_spec, l4_mask),
            item(
                sys::RTE_FLOW_ITEM_TYPE_END,
                std::ptr::null(),
                std::ptr::null(),
            ),
        ];
        let q = sys::rte_flow_action_queue { index: queue };
        let actions = [
            sys::rte_flow_action {
                type_: sys::RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: (&q as *const sys::rte_flow_action_queue).cast(),
            },
            sys::rte_flow_action {
                type_: sys::RTE_FLOW_ACTION_TYPE_END,
                conf: std::ptr::null(),
            },
        ];
        let mut err = sys::rte_flow_error::default();
        // SAFETY: every pointer refers to a local that outlives the call; DPDK copies the rule.
        let rc = unsafe {
            sys::rte_flow_validate(port, &attr, pattern.as_ptr(), actions.as_ptr(), &mut err)
        };
        if rc != 0 {
            return Err(flow_error(
                format!("rte_flow_validate({})", self.name()),
                rc,
                &err,
            ));
        }
        // SAFETY: as for validate.
        let raw = unsafe {
            sys::rte_flow_create(port, &attr, pattern.as_ptr(), actions.as_ptr(), &mut err)
        };
        NonNull::new(raw)
            .map(|raw| FlowRule { port, raw })
            .ok_or_else(|| flow_error(format!("rte_flow_create({})", self.name()), -22, &err))
    }
}

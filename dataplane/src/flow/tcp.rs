//! Connection states and their timeouts, as the director sees them.
//!
//! For DR and TUN the director sees only the client's packets, so it tracks TCP the way IPVS
//! does for input-only connections: SYN opens (SYN_RECV), the client's ACK establishes, FIN moves
//! to FIN_WAIT, RST closes. Each state has its own timeout (SPEC section 5); a packet refreshes
//! the deadline of the state it leaves the flow in. UDP flows have one state and the UDP timeout.

use rvs_config::Timeouts;

/// Flow states (IPVS numbering where IPVS has the state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// UDP (and other datagram) flows.
    Udp = 0,
    /// TCP ESTABLISHED.
    Established = 1,
    /// TCP SYN_RECV: the client's SYN was forwarded.
    SynRecv = 3,
    /// TCP FIN_WAIT: the client sent FIN.
    FinWait = 4,
    /// TCP CLOSE: reset.
    Close = 7,
}

impl State {
    /// Decodes a stored state byte.
    pub fn from_u8(v: u8) -> State {
        match v {
            1 => State::Established,
            3 => State::SynRecv,
            4 => State::FinWait,
            7 => State::Close,
            _ => State::Udp,
        }
    }

    /// IPVS's name, as `ipvsadm -Lnc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            State::Udp => "UDP",
            State::Established => "ESTABLISHED",
            State::SynRecv => "SYN_RECV",
            State::FinWait => "FIN_WAIT",
            State::Close => "CLOSE",
        }
    }

    /// Timeout in seconds for this state.
    pub fn timeout(self, t: &Timeouts) -> u32 {
        match self {
            State::Udp => t.udp,
            State::Established => t.tcp,
            State::SynRecv => 60,
            State::FinWait => t.tcp_fin,
            State::Close => 10,
        }
    }
}

/// TCP flag bits as they appear in the header's 13th byte.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The state after a client packet with `tcp_flags` arrives in `state`.
pub fn next_input_state(state: State, tcp_flags: u8) -> State {
    if tcp_flags & flags::RST != 0 {
        State::Close
    } else if tcp_flags & flags::FIN != 0 {
        State::FinWait
    } else if tcp_flags & flags::SYN != 0 {
        // A SYN on a closing flow reopens it (the client reused the port).
        State::SynRecv
    } else if tcp_flags & flags::ACK != 0 && state == State::SynRecv {
        State::Established
    } else {
        state
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;

    #[test]
    fn handshake_data_and_close() {
        let t = Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        };
        let mut s = next_input_state(State::Close, SYN);
        assert_eq!(s, State::SynRecv);
        assert_eq!(s.timeout(&t), 60);
        s = next_input_state(s, ACK);
        assert_eq!(s, State::Established);
        assert_eq!(s.timeout(&t), 900);
        s = next_input_state(s, ACK | 0x08);
        assert_eq!(s, State::Established);
        s = next_input_state(s, FIN | ACK);
        assert_eq!((s, s.timeout(&t)), (State::FinWait, 120));
        s = next_input_state(s, ACK);
        assert_eq!(s, State::FinWait, "the last ACK does not reopen");
        assert_eq!(
            next_input_state(State::Established, RST | ACK),
            State::Close
        );
        for v in [
            State::Udp,
            State::Established,
            State::SynRecv,
            State::FinWait,
            State::Close,
        ] {
            assert_eq!(State::from_u8(v as u8), v);
        }
    }
}

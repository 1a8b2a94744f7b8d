//! Connection states, their transitions and their timeouts, exactly as IPVS keeps them.
//!
//! IPVS does not follow TCP; it guesses a connection's state from the flags of the packets it
//! forwards, with one table per direction (`tcp_states` in the kernel's
//! `net/netfilter/ipvs/ip_vs_proto_tcp.c`). [`transition`] is that table lookup:
//!
//! * [`Direction::Input`]: a client packet on a connection whose replies also cross the
//!   director (NAT, FNAT).
//! * [`Direction::Output`]: a real server's reply through the director (NAT, FNAT).
//! * [`Direction::InputOnly`]: a client packet on a connection whose replies bypass the
//!   director (DR, TUN). The kernel marks such connections `IP_VS_CONN_F_NOOUTPUT` and
//!   `set_tcp_state` switches them to this table; the first output packet clears the mark. A
//!   caller that may see replies on a DR/TUN flow (it should not) does the same.
//!
//! The packet's row is chosen by `tcp_state_idx` priority: RST, then SYN, then FIN, then ACK. A
//! packet with none of the four flags moves the connection to CLOSE, as the kernel does (its
//! `set_tcp_state` starts from `IP_VS_TCP_S_CLOSE` and skips the lookup). The new state's
//! timeout then becomes the connection's timeout ([`State::timeout`]); every packet refreshes
//! it, whether or not the state changed.
//!
//! The kernel also has a `tcp_states_dos` table, used instead when the `secure_tcp` defense
//! sysctl is raised under a SYN flood: it parks half-open connections in SYNACK (and keeps input
//! ACKs from establishing a SYN_RECV connection) so they age out on short timers. RVS implements
//! only the normal table; `secure_tcp` has no counterpart in the profile.
//!
//! What the kernel does around the table, and the caller must repeat:
//! * A new connection starts in NONE and the first packet is run through the table
//!   (`ip_vs_conn_new` then `ip_vs_set_state`), so a client SYN creates it in SYN_RECV.
//! * Active/inactive accounting follows [`State::is_active`] on every state change
//!   (`set_tcp_state`); a new connection is bound to its destination as inactive
//!   (`__ip_vs_update_dest` puts `IP_VS_CONN_F_INACTIVE` in every destination's connection
//!   flags), so a UDP flow, which never changes state, stays inactive for its whole life.
//! * UDP (and other datagram) flows have the one state [`State::Udp`] whose timeout every
//!   packet refreshes (`udp_state_transition`).

use rvs_config::Timeouts;

/// Connection states, numbered as IPVS numbers its TCP states (`IP_VS_TCP_S_*`), so a stored
/// byte reads the same as the kernel's `cp->state`. [`State::Udp`] is RVS's own: the kernel
/// keeps UDP in a separate per-protocol state space whose only state is also named "UDP".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// NONE: created, no packet classified yet.
    None = 0,
    /// ESTABLISHED.
    Established = 1,
    /// SYN_SENT: the real server opened (an output SYN), e.g. active FTP data.
    SynSent = 2,
    /// SYN_RECV: the client's SYN was forwarded.
    SynRecv = 3,
    /// FIN_WAIT.
    FinWait = 4,
    /// TIME_WAIT.
    TimeWait = 5,
    /// CLOSE: reset, or a packet without SYN/FIN/ACK/RST.
    Close = 6,
    /// CLOSE_WAIT.
    CloseWait = 7,
    /// LAST_ACK.
    LastAck = 8,
    /// LISTEN: set by the kernel only on connections its FTP helper creates in advance.
    Listen = 9,
    /// SYNACK: used by the kernel's `secure_tcp` table only.
    SynAck = 10,
    /// A UDP (or other datagram) flow.
    Udp = 11,
}

impl State {
    /// Every state, in numbering order.
    pub const ALL: [State; 12] = [
        State::None,
        State::Established,
        State::SynSent,
        State::SynRecv,
        State::FinWait,
        State::TimeWait,
        State::Close,
        State::CloseWait,
        State::LastAck,
        State::Listen,
        State::SynAck,
        State::Udp,
    ];

    /// Decodes a stored state byte; an unknown byte reads as [`State::None`].
    pub fn from_u8(v: u8) -> State {
        match State::ALL.get(usize::from(v)) {
            Some(&s) => s,
            None => State::None,
        }
    }

    /// The name `ipvsadm -Lnc` prints (`tcp_state_name_table`, `udp_state_name_table`).
    pub fn name(self) -> &'static str {
        match self {
            State::None => "NONE",
            State::Established => "ESTABLISHED",
            State::SynSent => "SYN_SENT",
            State::SynRecv => "SYN_RECV",
            State::FinWait => "FIN_WAIT",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::Listen => "LISTEN",
            State::SynAck => "SYNACK",
            State::Udp => "UDP",
        }
    }

    /// Timeout in seconds of a flow left in this state: the kernel's `tcp_timeouts` and
    /// `udp_timeouts` defaults, with the three that `ipvsadm --set tcp tcpfin udp` changes
    /// (ESTABLISHED, FIN_WAIT, UDP) taken from `t`.
    pub fn timeout(self, t: &Timeouts) -> u32 {
        match self {
            State::None => 2,
            State::Established => t.tcp,
            State::SynSent => 120,
            State::SynRecv => 60,
            State::FinWait => t.tcp_fin,
            State::TimeWait => 120,
            State::Close => 10,
            State::CloseWait => 60,
            State::LastAck => 30,
            State::Listen => 120,
            State::SynAck => 120,
            State::Udp => t.udp,
        }
    }

    /// Whether a flow in this state counts in its real server's active connections
    /// (`activeconns`) rather than its inactive ones. SPEC section 4 fixes the rule: a TCP
    /// connection is active only while ESTABLISHED, as IPVS counted before Linux 4.7. (Since
    /// 4.7, "ipvs: count pre-established TCP states as active", the kernel's
    /// `tcp_state_active_table` also counts SYN_SENT, SYN_RECV and SYNACK; RVS keeps the
    /// specified rule, under which a SYN flood does not weigh like established load.) UDP
    /// flows are never active (see the module documentation).
    pub fn is_active(self) -> bool {
        self == State::Established
    }

    /// Every state's timeout ([`State::timeout`]), indexed by `State as usize`: a table the
    /// packet path indexes instead of matching.
    pub fn timeouts(t: &Timeouts) -> [u32; 12] {
        Self::ALL.map(|s| s.timeout(t))
    }
}

/// Which way a packet crosses the director, and so which of the kernel's three tables applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server on a flow whose replies also cross the director (NAT, FNAT).
    Input = 0,
    /// Server to client through the director (NAT, FNAT replies).
    Output = 1,
    /// Client to server on a flow whose replies bypass the director (DR, TUN).
    InputOnly = 2,
}

/// TCP flag bits (header byte 13): the wire module's constants.
pub use crate::wire::tcp_flag as flags;

/// The state after a TCP packet with header flags `flags` (byte 13) crosses the director in
/// `dir` while the flow is in `state`: the kernel's `set_tcp_state` over the normal
/// `tcp_states` table. [`State::Udp`] is not a TCP state and is returned unchanged.
#[inline]
pub fn transition(state: State, dir: Direction, flags: u8) -> State {
    if state == State::Udp {
        return State::Udp;
    }
    match event(flags) {
        Some(ev) => TCP_STATES[dir as usize][ev as usize][state as usize],
        None => State::Close,
    }
}

/// A table row: which flag decided the packet's fate.
#[derive(Debug, Clone, Copy)]
enum Event {
    Syn = 0,
    Fin = 1,
    Ack = 2,
    Rst = 3,
}

/// The row for `f`, by the kernel's priority (`tcp_state_idx`): RST, SYN, FIN, ACK; `None`
/// when the packet carries none of them.
fn event(f: u8) -> Option<Event> {
    if f & flags::RST != 0 {
        Some(Event::Rst)
    } else if f & flags::SYN != 0 {
        Some(Event::Syn)
    } else if f & flags::FIN != 0 {
        Some(Event::Fin)
    } else if f & flags::ACK != 0 {
        Some(Event::Ack)
    } else {
        None
    }
}

/// Short names for the table's entries (NONE and SYNACK are never a next state in it).
mod s {
    use super::State;
    pub const ES: State = State::Established;
    pub const SS: State = State::SynSent;
    pub const SR: State = State::SynRecv;
    pub const FW: State = State::FinWait;
    pub const TW: State = State::TimeWait;
    pub const CL: State = State::Close;
    pub const CW: State = State::CloseWait;
    pub const LA: State = State::LastAck;
    pub const LI: State = State::Listen;
}

/// Number of TCP states (the table's columns).
const TCP_STATES_N: usize = 11;

/// `[direction][event][state] -> next state`: the kernel's `tcp_states` (Linux 6.x).
#[rustfmt::skip]
const TCP_STATES: [[[State; TCP_STATES_N]; 4]; 3] = {
    use s::*;
    [
        // Input.   NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        [
            /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
            /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
            /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
            /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
        ],
        // Output.  NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        [
            /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
            /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
            /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
            /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
        ],
        // Input-only. NO ES SS  SR  FW  TW  CL  CW  LA  LI  SA
        [
            /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
            /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
            /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
            /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
        ],
    ]
};

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;

    const ECE: u8 = 0x40;
    const CWR: u8 = 0x80;

    /// The kernel's `tcp_states` as it is printed in `ip_vs_proto_tcp.c`, one line per
    /// (direction, event) with columns sNO..sSA, checked through the public API (names,
    /// numbering and flag decoding included).
    const KERNEL_TABLE: &str = "
        INPUT syn  sSR sES sES sSR sSR sSR sSR sSR sSR sSR sSR
        INPUT fin  sCL sCW sSS sTW sTW sTW sCL sCW sLA sLI sTW
        INPUT ack  sES sES sSS sES sFW sTW sCL sCW sCL sLI sES
        INPUT rst  sCL sCL sCL sSR sCL sCL sCL sCL sLA sLI sSR
        OUTPUT syn sSS sES sSS sSR sSS sSS sSS sSS sSS sLI sSR
        OUTPUT fin sTW sFW sSS sTW sFW sTW sCL sTW sLA sLI sTW
        OUTPUT ack sES sES sSS sES sFW sTW sCL sCW sLA sES sES
        OUTPUT rst sCL sCL sSS sCL sCL sTW sCL sCL sCL sCL sCL
        INPUT_ONLY syn sSR sES sES sSR sSR sSR sSR sSR sSR sSR sSR
        INPUT_ONLY fin sCL sFW sSS sTW sFW sTW sCL sCW sLA sLI sTW
        INPUT_ONLY ack sES sES sSS sES sFW sTW sCL sCW sCL sLI sES
        INPUT_ONLY rst sCL sCL sCL sSR sCL sCL sCL sCL sLA sLI sCL
    ";

    fn short(s: &str) -> State {
        let full = match s {
            "sNO" => "NONE",
            "sES" => "ESTABLISHED",
            "sSS" => "SYN_SENT",
            "sSR" => "SYN_RECV",
            "sFW" => "FIN_WAIT",
            "sTW" => "TIME_WAIT",
            "sCL" => "CLOSE",
            "sCW" => "CLOSE_WAIT",
            "sLA" => "LAST_ACK",
            "sLI" => "LISTEN",
            "sSA" => "SYNACK",
            _ => panic!("bad short name {s}"),
        };
        *State::ALL.iter().find(|st| st.name() == full).unwrap()
    }

    /// Flag combinations that select each row; the extra bits must not matter.
    fn row_flags(event: &str) -> &'static [u8] {
        match event {
            "syn" => &[
                SYN,
                SYN | ACK,
                SYN | FIN,
                SYN | FIN | ACK,
                SYN | PSH | ECE | CWR,
            ],
            "fin" => &[FIN, FIN | ACK, FIN | PSH | ACK, FIN | URG],
            "ack" => &[ACK, ACK | PSH, ACK | URG | ECE | CWR],
            "rst" => &[RST, RST | ACK, RST | SYN, RST | FIN, RST | SYN | FIN | ACK],
            _ => panic!("bad event {event}"),
        }
    }

    #[test]
    fn every_state_and_event_matches_the_kernel_table() {
        let mut rows = 0;
        for line in KERNEL_TABLE
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let words: Vec<&str> = line.split_whitespace().collect();
            let dir = match words[0] {
                "INPUT" => Direction::Input,
                "OUTPUT" => Direction::Output,
                "INPUT_ONLY" => Direction::InputOnly,
                d => panic!("bad direction {d}"),
            };
            assert_eq!(words.len(), 2 + 11, "{line}");
            for (col, want) in words[2..].iter().enumerate() {
                let from = State::from_u8(col as u8);
                for &f in row_flags(words[1]) {
                    assert_eq!(
                        transition(from, dir, f),
                        short(want),
                        "{dir:?} {} flags {f:#04x} from {}",
                        words[1],
                        from.name()
                    );
                }
            }
            rows += 1;
        }
        assert_eq!(rows, 12);
    }

    #[test]
    fn a_packet_without_syn_fin_ack_rst_closes() {
        for dir in [Direction::Input, Direction::Output, Direction::InputOnly] {
            for from in &State::ALL[..11] {
                for f in [0, PSH, URG, ECE | CWR, PSH | URG | ECE | CWR] {
                    assert_eq!(transition(*from, dir, f), State::Close);
                }
            }
        }
    }

    #[test]
    fn udp_is_not_a_tcp_state() {
        for dir in [Direction::Input, Direction::Output, Direction::InputOnly] {
            for f in [0, SYN, FIN, ACK, RST] {
                assert_eq!(transition(State::Udp, dir, f), State::Udp);
            }
        }
    }

    /// Runs (direction, flags, expected state) steps from NONE.
    fn walk(steps: &[(Direction, u8, State)]) {
        let mut s = State::None;
        for (i, &(dir, f, want)) in steps.iter().enumerate() {
            s = transition(s, dir, f);
            assert_eq!(s, want, "step {i}: {dir:?} {f:#04x}");
        }
    }

    use Direction::{Input as I, InputOnly as IO, Output as O};

    #[test]
    fn nat_handshake_and_client_close() {
        walk(&[
            (I, SYN, State::SynRecv),
            (O, SYN | ACK, State::SynRecv),
            (I, ACK, State::Established),
            (I, ACK | PSH, State::Established),
            (O, ACK | PSH, State::Established),
            // The client closes first: IPVS names it from the server's side.
            (I, FIN | ACK, State::CloseWait),
            (O, ACK, State::CloseWait),
            (O, FIN | ACK, State::TimeWait),
            (I, ACK, State::TimeWait),
        ]);
    }

    #[test]
    fn nat_server_close() {
        walk(&[
            (I, SYN, State::SynRecv),
            (O, SYN | ACK, State::SynRecv),
            (I, ACK, State::Established),
            (O, FIN | ACK, State::FinWait),
            (I, ACK, State::FinWait),
            (I, FIN | ACK, State::TimeWait),
            (O, ACK, State::TimeWait),
            // The client reuses the port: a SYN reopens.
            (I, SYN, State::SynRecv),
        ]);
    }

    #[test]
    fn nat_simultaneous_fins_and_resets() {
        walk(&[
            (I, SYN, State::SynRecv),
            (O, SYN | ACK, State::SynRecv),
            (I, ACK, State::Established),
            (I, FIN | ACK, State::CloseWait),
            (I, FIN | ACK, State::CloseWait),
            (O, RST, State::Close),
            (I, ACK, State::Close),
            (O, ACK, State::Close),
        ]);
        // A client RST during the handshake leaves SYN_RECV (the server answers it); the
        // server's RST closes.
        walk(&[
            (I, SYN, State::SynRecv),
            (I, RST, State::SynRecv),
            (O, RST | ACK, State::Close),
        ]);
        // Established, then a client RST.
        walk(&[
            (I, SYN, State::SynRecv),
            (O, SYN | ACK, State::SynRecv),
            (I, ACK, State::Established),
            (I, RST | ACK, State::Close),
        ]);
    }

    #[test]
    fn server_opened_connection_goes_through_syn_sent() {
        // Active FTP data: the real server's SYN crosses first.
        walk(&[
            (O, SYN, State::SynSent),
            (I, SYN | ACK, State::Established),
            (O, ACK, State::Established),
        ]);
    }

    #[test]
    fn input_only_lifecycle() {
        walk(&[
            (IO, SYN, State::SynRecv),
            (IO, SYN, State::SynRecv),
            (IO, ACK, State::Established),
            (IO, ACK | PSH, State::Established),
            (IO, FIN | ACK, State::FinWait),
            (IO, ACK, State::FinWait),
            (IO, FIN | ACK, State::FinWait),
            (IO, RST, State::Close),
            (IO, ACK, State::Close),
            (IO, SYN, State::SynRecv),
            (IO, RST, State::SynRecv),
        ]);
    }

    #[test]
    fn timeouts_per_state() {
        let d = Timeouts::default();
        let want = [
            (State::None, 2),
            (State::Established, 900),
            (State::SynSent, 120),
            (State::SynRecv, 60),
            (State::FinWait, 120),
            (State::TimeWait, 120),
            (State::Close, 10),
            (State::CloseWait, 60),
            (State::LastAck, 30),
            (State::Listen, 120),
            (State::SynAck, 120),
            (State::Udp, 300),
        ];
        for (s, secs) in want {
            assert_eq!(s.timeout(&d), secs, "{}", s.name());
        }
        let set = Timeouts {
            tcp: 7,
            tcp_fin: 8,
            udp: 9,
        };
        for (s, secs) in want {
            let expect = match s {
                State::Established => 7,
                State::FinWait => 8,
                State::Udp => 9,
                _ => secs,
            };
            assert_eq!(s.timeout(&set), expect, "{}", s.name());
        }
    }

    #[test]
    fn active_states() {
        let active: Vec<&str> = State::ALL
            .iter()
            .filter(|s| s.is_active())
            .map(|s| s.name())
            .collect();
        assert_eq!(
            active,
            ["ESTABLISHED"],
            "SPEC section 4: active only while ESTABLISHED"
        );
    }

    #[test]
    fn numbering_and_names() {
        let names = [
            "NONE",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "SYNACK",
            "UDP",
        ];
        for (i, s) in State::ALL.iter().enumerate() {
            assert_eq!(*s as u8, i as u8);
            assert_eq!(State::from_u8(i as u8), *s);
            assert_eq!(s.name(), names[i]);
        }
        assert_eq!(State::from_u8(12), State::None);
        assert_eq!(State::from_u8(255), State::None);
    }
}

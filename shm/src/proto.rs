//! The messages carried by the rings, as JSON payloads.
//!
//! Both enums are internally tagged by `"type"` in snake case: `{"type":"ping"}`,
//! `{"type":"apply","generation":3,"config":{…}}`. An unknown `type` (or a missing or
//! mistyped field) is a decode error, so the dataplane answers [`Reply::Error`] and applies
//! nothing. A reply carries the `seq` of the command it answers in its frame header.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use rvs_config::{Profile, Protocol, ServiceKey};
use serde::{Deserialize, Serialize};

pub use crate::ring::{KIND_COMMAND, KIND_REPLY};

/// rvs-control → rvs-dataplane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Liveness; answered by [`Reply::Pong`].
    Ping,
    /// The running configuration; answered by [`Reply::Config`].
    GetConfig,
    /// Replace the whole configuration (validated completely before anything changes);
    /// answered by [`Reply::Applied`] or [`Reply::Error`].
    Apply {
        /// Generation the new configuration gets.
        generation: u64,
        /// The configuration to run (the control process's effective one: health checks
        /// applied).
        config: Box<Profile>,
        /// The operator's configuration it derives from, kept by the dataplane and handed back
        /// by [`Command::GetConfig`], so a restarted control process recovers what was asked
        /// for rather than what health checks made of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        desired: Option<Box<Profile>>,
    },
    /// A page of the connection table; answered by [`Reply::Conns`].
    ListConns {
        /// First entry of the page.
        offset: u64,
        /// Page size.
        limit: u32,
        /// Whether to include persistence templates.
        templates: bool,
    },
    /// Zero the counters of one service or (`None`) all; answered by [`Reply::Done`].
    Zero {
        /// The service.
        service: Option<SvcKey>,
    },
}

/// rvs-dataplane → rvs-control, with the same frame `seq` as the command it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// Answer to [`Command::Ping`].
    Pong {
        /// Generation running.
        generation: u64,
        /// Workers running.
        workers: u32,
    },
    /// Answer to [`Command::GetConfig`].
    Config {
        /// Generation running.
        generation: u64,
        /// The running configuration.
        config: Box<Profile>,
        /// The desired configuration last given with [`Command::Apply`], if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        desired: Option<Box<Profile>>,
    },
    /// [`Command::Apply`] took effect.
    Applied {
        /// The generation now running.
        generation: u64,
    },
    /// A page of connections.
    Conns {
        /// The entries.
        items: Vec<ConnEntry>,
        /// Offset of the next page, `None` at the end.
        next_offset: Option<u64>,
    },
    /// Success without data.
    Done,
    /// The command failed (nothing was changed).
    Error {
        /// What went wrong.
        message: String,
        /// The configuration key or field at fault, if any.
        field: Option<String>,
    },
}

macro_rules! codec {
    ($t:ty) => {
        impl $t {
            /// The JSON payload.
            pub fn encode(&self) -> Vec<u8> {
                // Plain data with string map keys only: serialisation cannot fail.
                serde_json::to_vec(self).expect("message serialises to JSON")
            }

            /// Parses a JSON payload; an unknown `type` is an error.
            pub fn decode(payload: &[u8]) -> Result<Self, serde_json::Error> {
                serde_json::from_slice(payload)
            }
        }
    };
}

codec!(Command);
codec!(Reply);

/// A service identity on the wire, in the profile's terms: `protocol`+`vip`+`port` for an
/// address service, `fwmark` alone for a mark service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvcKey {
    /// Protocol of an address service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Virtual IP of an address service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<Ipv4Addr>,
    /// Virtual port of an address service (0 = all ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Mark of a firewall-mark service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
}

/// A [`SvcKey`] that names no service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SvcKeyError {
    /// The field at fault (`protocol`, `vip`, `port`, `fwmark`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl SvcKey {
    /// The service key, or what is missing or contradictory.
    pub fn to_key(&self) -> Result<ServiceKey, SvcKeyError> {
        let err = |field, message: &str| SvcKeyError {
            field,
            message: message.to_string(),
        };
        match self.fwmark {
            Some(0) => Err(err("fwmark", "mark 0 is not a firewall mark")),
            Some(mark) => {
                if self.protocol.is_some() {
                    Err(err("protocol", "a firewall-mark service has no protocol"))
                } else if self.vip.is_some() {
                    Err(err("vip", "a firewall-mark service has no vip"))
                } else if self.port.is_some() {
                    Err(err("port", "a firewall-mark service has no port"))
                } else {
                    Ok(ServiceKey::Fwmark(mark))
                }
            }
            None => Ok(ServiceKey::Addr {
                protocol: self
                    .protocol
                    .ok_or_else(|| err("protocol", "missing (or give fwmark)"))?,
                vip: self
                    .vip
                    .ok_or_else(|| err("vip", "missing (or give fwmark)"))?,
                port: self
                    .port
                    .ok_or_else(|| err("port", "missing (or give fwmark)"))?,
            }),
        }
    }
}

impl From<ServiceKey> for SvcKey {
    fn from(key: ServiceKey) -> Self {
        match key {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => SvcKey {
                protocol: Some(protocol),
                vip: Some(vip),
                port: Some(port),
                fwmark: None,
            },
            ServiceKey::Fwmark(mark) => SvcKey {
                fwmark: Some(mark),
                ..SvcKey::default()
            },
        }
    }
}

impl TryFrom<SvcKey> for ServiceKey {
    type Error = SvcKeyError;

    fn try_from(key: SvcKey) -> Result<Self, Self::Error> {
        key.to_key()
    }
}

impl fmt::Display for SvcKey {
    /// As [`ServiceKey`] when valid (`TCP 10.0.0.100:80`, `FWM 8`), else the raw fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_key() {
            Ok(k) => write!(f, "{k}"),
            Err(_) => write!(f, "{self:?}"),
        }
    }
}

/// One connection (or persistence template) of the table, as `ipvsadm -Lc` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnEntry {
    /// IP protocol: 6, 17, or 0 for a firewall-mark template.
    pub protocol: u8,
    /// IPVS state name (`ESTABLISHED`, `SYN_RECV`, `UDP`, `NONE`, …).
    pub state: String,
    /// Seconds until it expires.
    pub expires: u32,
    /// Client address.
    pub client: SocketAddrV4,
    /// Virtual address.
    pub virt: SocketAddrV4,
    /// Real server.
    pub dest: SocketAddrV4,
    /// FullNAT local address, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddrV4>,
    /// A persistence template rather than a connection.
    pub template: bool,
    /// The worker that owns it.
    pub worker: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        let text = "\
dataplane: { main_lcore: 0, workers: [1, 2] }
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
services:
  - vip: 10.0.0.100
    port: 80
    protocol: tcp
    scheduler: wrr
    persistence: { timeout: 300 }
    servers:
      - { address: 10.0.0.11, weight: 3 }
      - { address: 10.0.0.12, port: 8080, forward: nat }
";
        Profile::parse(text, "test.yaml").expect("test profile parses")
    }

    fn round_trip_command(c: Command) {
        let bytes = c.encode();
        assert_eq!(
            Command::decode(&bytes).unwrap(),
            c,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }

    fn round_trip_reply(r: Reply) {
        let bytes = r.encode();
        assert_eq!(
            Reply::decode(&bytes).unwrap(),
            r,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }

    #[test]
    fn commands_round_trip() {
        round_trip_command(Command::Ping);
        round_trip_command(Command::GetConfig);
        round_trip_command(Command::Apply {
            generation: 7,
            config: Box::new(profile()),
            desired: None,
        });
        round_trip_command(Command::Apply {
            generation: 8,
            config: Box::new(profile()),
            desired: Some(Box::new(profile())),
        });
        round_trip_command(Command::ListConns {
            offset: 100,
            limit: 50,
            templates: true,
        });
        round_trip_command(Command::Zero { service: None });
        round_trip_command(Command::Zero {
            service: Some(SvcKey::from(ServiceKey::Fwmark(8))),
        });
        round_trip_command(Command::Zero {
            service: Some(SvcKey::from(ServiceKey::Addr {
                protocol: Protocol::Udp,
                vip: Ipv4Addr::new(10, 0, 0, 100),
                port: 53,
            })),
        });
    }

    #[test]
    fn replies_round_trip() {
        round_trip_reply(Reply::Pong {
            generation: 1,
            workers: 2,
        });
        round_trip_reply(Reply::Config {
            generation: 3,
            config: Box::new(profile()),
            desired: Some(Box::new(profile())),
        });
        round_trip_reply(Reply::Applied { generation: 4 });
        round_trip_reply(Reply::Done);
        round_trip_reply(Reply::Error {
            message: "weight 70000 is not in 0..=65535".into(),
            field: Some("services[0].servers[0].weight".into()),
        });
        round_trip_reply(Reply::Conns {
            items: vec![
                ConnEntry {
                    protocol: 6,
                    state: "ESTABLISHED".into(),
                    expires: 899,
                    client: "192.0.2.1:40000".parse().unwrap(),
                    virt: "10.0.0.100:80".parse().unwrap(),
                    dest: "10.0.0.11:80".parse().unwrap(),
                    local: Some("10.0.0.200:1025".parse().unwrap()),
                    template: false,
                    worker: 1,
                },
                ConnEntry {
                    protocol: 0,
                    state: "NONE".into(),
                    expires: 300,
                    client: "192.0.2.1:0".parse().unwrap(),
                    virt: "0.0.0.8:0".parse().unwrap(),
                    dest: "10.0.0.11:0".parse().unwrap(),
                    local: None,
                    template: true,
                    worker: 0,
                },
            ],
            next_offset: Some(2),
        });
    }

    #[test]
    fn wire_form_is_tagged_by_type() {
        assert_eq!(Command::Ping.encode(), br#"{"type":"ping"}"#);
        assert_eq!(
            Command::decode(br#"{"type":"list_conns","offset":0,"limit":10,"templates":false}"#)
                .unwrap(),
            Command::ListConns {
                offset: 0,
                limit: 10,
                templates: false
            }
        );
        assert_eq!(
            Reply::Applied { generation: 2 }.encode(),
            br#"{"type":"applied","generation":2}"#
        );
    }

    #[test]
    fn unknown_or_malformed_messages_are_rejected() {
        for bad in [
            &br#"{"type":"reboot"}"#[..],
            br#"{"type":"Ping"}"#,
            br#"{"kind":"ping"}"#,
            br#"{"type":"apply","generation":1}"#,
            br#"{"type":"apply","generation":"x","config":{}}"#,
            b"",
            b"{\"type\":\"ping\"",
        ] {
            assert!(
                Command::decode(bad).is_err(),
                "{} decoded",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Reply::decode(br#"{"type":"pong"}"#).is_err());
        assert!(Reply::decode(br#"{"type":"ping"}"#).is_err());
        // A command is not a reply and vice versa.
        assert!(Reply::decode(&Command::GetConfig.encode()).is_err());
        assert!(Command::decode(&Reply::Done.encode()).is_err());
    }

    #[test]
    fn svc_key_conversions() {
        let addr = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: Ipv4Addr::new(10, 0, 0, 100),
            port: 80,
        };
        assert_eq!(SvcKey::from(addr).to_key(), Ok(addr));
        assert_eq!(
            ServiceKey::try_from(SvcKey::from(ServiceKey::Fwmark(8))),
            Ok(ServiceKey::Fwmark(8))
        );
        assert_eq!(SvcKey::from(addr).to_string(), "TCP 10.0.0.100:80");
        let missing = SvcKey {
            protocol: Some(Protocol::Tcp),
            vip: Some(Ipv4Addr::new(10, 0, 0, 100)),
            ..SvcKey::default()
        };
        assert_eq!(missing.to_key().unwrap_err().field, "port");
        let both = SvcKey {
            vip: Some(Ipv4Addr::new(10, 0, 0, 100)),
            fwmark: Some(3),
            ..SvcKey::default()
        };
        assert_eq!(both.to_key().unwrap_err().field, "vip");
        let zero = SvcKey {
            fwmark: Some(0),
            ..SvcKey::default()
        };
        assert_eq!(zero.to_key().unwrap_err().field, "fwmark");
        assert_eq!(
            serde_json::to_string(&SvcKey::from(addr)).unwrap(),
            r#"{"protocol":"tcp","vip":"10.0.0.100","port":80}"#
        );
    }
}

//! Address value types of the profile: [`Ipv4Prefix`] ("10.0.0.10/24") and [`PortRange`]
//! (`80` or `"8000-8100"`), plus the serde helpers that read IPv4 addresses.
//!
//! The profile is IPv4-only for now. Every place that reads an address goes through
//! [`parse_ipv4`] so an IPv6 address gets one clear message ("IPv6 is not supported yet")
//! instead of a generic syntax error, wherever it appears.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The message every IPv6 address in the profile gets.
pub(crate) const IPV6_UNSUPPORTED: &str = "IPv6 is not supported yet";

/// Parses an IPv4 address, naming IPv6 explicitly as unsupported.
pub(crate) fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    match s.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(a),
        Ok(IpAddr::V6(_)) => Err(format!("`{s}`: {IPV6_UNSUPPORTED}")),
        Err(_) => Err(format!("`{s}` is not an IPv4 address")),
    }
}

/// Parses `a.b.c.d:port`, naming IPv6 explicitly as unsupported.
pub(crate) fn parse_socket_v4(s: &str) -> Result<SocketAddrV4, String> {
    match s.trim().parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) => Ok(a),
        Ok(SocketAddr::V6(_)) => Err(format!("`{s}`: {IPV6_UNSUPPORTED}")),
        Err(_) => {
            // "10.0.0.1" without a port, or "[::1]" without one, deserve a precise hint.
            if s.trim().parse::<Ipv4Addr>().is_ok() {
                Err(format!("`{s}` has no port (expected address:port)"))
            } else if s.trim().trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
                Err(format!("`{s}`: {IPV6_UNSUPPORTED}"))
            } else {
                Err(format!("`{s}` is not an IPv4 address:port"))
            }
        }
    }
}

/// Deserializes a string-valued `T` through its `FromStr`.
///
/// The parse runs inside the visitor on purpose: serde_yaml attaches the key path and line
/// only to errors raised while it is deserializing the scalar, so an error raised after
/// `String::deserialize` returns would be reported against the parent mapping.
pub(crate) fn deserialize_parsed<'de, D, T>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    d.deserialize_str(ParseVisitor(PhantomData, expecting))
}

struct ParseVisitor<T>(PhantomData<T>, &'static str);

impl<T: FromStr<Err = String>> Visitor<'_> for ParseVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

/// Deserializes an optional string-valued `T` (see [`deserialize_parsed`]).
pub(crate) fn deserialize_parsed_option<'de, D, T>(
    d: D,
    expecting: &'static str,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    struct V<T>(PhantomData<T>, &'static str);
    impl<'de, T: FromStr<Err = String>> Visitor<'de> for V<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            deserialize_parsed(d, self.1).map(Some)
        }
    }
    d.deserialize_option(V(PhantomData, expecting))
}

/// An IPv4 address that parses with [`parse_ipv4`] (so IPv6 gets its own message).
struct V4(Ipv4Addr);

impl FromStr for V4 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_ipv4(s).map(V4)
    }
}

/// A socket address that parses with [`parse_socket_v4`].
struct SockV4(SocketAddrV4);

impl FromStr for SockV4 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_socket_v4(s).map(SockV4)
    }
}

/// A socket address of either family (the API listen address).
struct Sock(SocketAddr);

impl FromStr for Sock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse()
            .map(Sock)
            .map_err(|_| format!("`{s}` is not an address:port (e.g. 127.0.0.1:9180)"))
    }
}

/// An IPv4 address with a prefix length, written `10.0.0.10/24`.
///
/// The address keeps its host bits: on a port it is the director's own address (DIP) and the
/// prefix is the connected network; on a route or a mark rule the validator requires the host
/// bits to be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    /// The address as written (host bits included).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Ipv4Prefix {
    /// Builds a prefix; `len` is not checked here (the validator and [`FromStr`] do that).
    pub const fn new(addr: Ipv4Addr, len: u8) -> Self {
        Ipv4Prefix { addr, len }
    }

    /// The netmask as a host-order integer (`/24` → `0xffff_ff00`; `/0` → 0).
    pub const fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else if self.len >= 32 {
            u32::MAX
        } else {
            u32::MAX << (32 - self.len)
        }
    }

    /// The network address (host bits cleared).
    pub const fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() & self.mask())
    }

    /// The broadcast address (host bits set).
    pub const fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask())
    }

    /// Whether `ip` lies inside this prefix.
    pub const fn contains(&self, ip: Ipv4Addr) -> bool {
        ip.to_bits() & self.mask() == self.addr.to_bits() & self.mask()
    }

    /// Whether the two prefixes share at least one address.
    pub const fn overlaps(&self, other: &Ipv4Prefix) -> bool {
        // Two prefixes overlap exactly when the shorter one contains the other's network.
        let shorter = if self.len <= other.len { self } else { other };
        let longer = if self.len <= other.len { other } else { self };
        shorter.contains(longer.network())
    }

    /// Whether the host bits are all zero (the form a route or a match rule should use).
    pub const fn is_network(&self) -> bool {
        self.addr.to_bits() & !self.mask() == 0
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some((addr, len)) = s.trim().split_once('/') else {
            if s.trim().parse::<std::net::Ipv6Addr>().is_ok() {
                return Err(format!("`{s}`: {IPV6_UNSUPPORTED}"));
            }
            return Err(format!(
                "`{s}` has no prefix length (expected address/length, e.g. 10.0.0.10/24)"
            ));
        };
        let addr = parse_ipv4(addr).map_err(|e| {
            if e.contains(IPV6_UNSUPPORTED) {
                format!("`{s}`: {IPV6_UNSUPPORTED}")
            } else {
                format!("prefix `{s}`: {e}")
            }
        })?;
        let len: u8 = match len.parse() {
            Ok(l) if l <= 32 => l,
            _ => return Err(format!("prefix `{s}`: length `{len}` is not in 0..=32")),
        };
        Ok(Ipv4Prefix { addr, len })
    }
}

impl Serialize for Ipv4Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_parsed(d, "an IPv4 prefix such as 10.0.0.10/24")
    }
}

/// An inclusive destination-port range of a mark rule. YAML: `80` or `"8000-8100"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port, inclusive.
    pub first: u16,
    /// Last port, inclusive.
    pub last: u16,
}

impl PortRange {
    /// A range of one port.
    pub const fn single(port: u16) -> Self {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// Whether `port` lies in the range.
    pub const fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }

    /// Whether the two ranges share a port.
    pub const fn overlaps(&self, other: &PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

fn parse_port(s: &str, whole: &str) -> Result<u16, String> {
    match s.trim().parse::<u64>() {
        Ok(p) => u16::try_from(p).map_err(|_| format!("port {p} in `{whole}` is not in 1..=65535")),
        Err(_) => Err(format!(
            "`{whole}` is not a port or a port range (expected e.g. 80 or \"8000-8100\")"
        )),
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('-') {
            Some((a, b)) => Ok(PortRange {
                first: parse_port(a, s)?,
                last: parse_port(b, s)?,
            }),
            None => parse_port(s, s).map(PortRange::single),
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.first == self.last {
            s.serialize_u16(self.first)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port (80) or a port range (\"8000-8100\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRange, E> {
                u16::try_from(v)
                    .map(PortRange::single)
                    .map_err(|_| E::custom(format!("port {v} is not in 1..=65535")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRange, E> {
                Err(E::custom(format!("port {v} is not in 1..=65535")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// OpenAPI schemas of the address types (feature `openapi`): both are strings on the wire,
/// except a single-port [`PortRange`], which is a number.
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

    use super::{Ipv4Prefix, PortRange};

    impl utoipa::PartialSchema for Ipv4Prefix {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("IPv4 address and prefix length"))
                .pattern(Some(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$"))
                .examples(["10.0.0.10/24"])
                .into()
        }
    }

    impl utoipa::ToSchema for Ipv4Prefix {}

    impl utoipa::PartialSchema for PortRange {
        fn schema() -> RefOr<Schema> {
            OneOfBuilder::new()
                .description(Some(
                    "a port (80) or an inclusive port range (\"8000-8100\")",
                ))
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0))
                        .maximum(Some(65535)),
                )
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(r"^[0-9]{1,5}(-[0-9]{1,5})?$")),
                )
                .examples(["8000-8100"])
                .into()
        }
    }

    impl utoipa::ToSchema for PortRange {}
}

/// serde helpers for IPv4 address fields, so IPv6 is rejected with a clear message.
pub(crate) mod ipv4 {
    use super::*;

    const EXPECTING: &str = "an IPv4 address";

    pub(crate) fn serialize<S: Serializer>(a: &Ipv4Addr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(a)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Addr, D::Error> {
        deserialize_parsed(d, EXPECTING).map(|V4(a)| a)
    }

    /// `Option<Ipv4Addr>` fields (use with `default` and `skip_serializing_if`).
    pub(crate) mod option {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            a: &Option<Ipv4Addr>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match a {
                Some(a) => s.collect_str(a),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Ipv4Addr>, D::Error> {
            Ok(deserialize_parsed_option(d, EXPECTING)?.map(|V4(a)| a))
        }
    }

    /// `Vec<Ipv4Addr>` fields.
    pub(crate) mod vec {
        use super::*;

        #[derive(Deserialize)]
        struct One(#[serde(with = "super")] Ipv4Addr);

        pub(crate) fn serialize<S: Serializer>(a: &[Ipv4Addr], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(a.iter().map(|a| a.to_string()))
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Vec<Ipv4Addr>, D::Error> {
            // Null (every entry commented out) reads as an empty list.
            let v = Option::<Vec<One>>::deserialize(d)?.unwrap_or_default();
            Ok(v.into_iter().map(|One(a)| a).collect())
        }
    }
}

/// serde helpers for `Option<SocketAddrV4>` fields.
pub(crate) mod socket_v4_option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        a: &Option<SocketAddrV4>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.collect_str(a),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddrV4>, D::Error> {
        Ok(deserialize_parsed_option(d, "an IPv4 address:port")?.map(|SockV4(a)| a))
    }
}

/// serde helpers for `SocketAddr` fields (the API listen address may be IPv6).
pub(crate) mod socket {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(a)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        deserialize_parsed(d, "an address:port").map(|Sock(a)| a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn prefix_arithmetic() {
        let x = p("10.0.0.10/24");
        assert_eq!(x.mask(), 0xffff_ff00);
        assert_eq!(x.network(), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(x.broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        assert!(x.contains(Ipv4Addr::new(10, 0, 0, 200)));
        assert!(!x.contains(Ipv4Addr::new(10, 0, 1, 1)));
        assert!(!x.is_network());
        assert_eq!(p("0.0.0.0/0").mask(), 0);
        assert!(p("0.0.0.0/0").contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(p("1.2.3.4/32").mask(), u32::MAX);
        assert!(p("1.2.3.4/32").contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(p("10.0.0.0/8").overlaps(&p("10.1.0.1/16")));
        assert!(p("10.1.0.1/16").overlaps(&p("10.0.0.0/8")));
        assert!(!p("10.0.0.1/24").overlaps(&p("10.0.1.1/24")));
        assert_eq!(x.to_string(), "10.0.0.10/24");
    }

    #[test]
    fn prefix_errors() {
        assert!(
            "10.0.0.1"
                .parse::<Ipv4Prefix>()
                .unwrap_err()
                .contains("no prefix length")
        );
        assert!(
            "10.0.0.1/33"
                .parse::<Ipv4Prefix>()
                .unwrap_err()
                .contains("0..=32")
        );
        assert!(
            "fd00::1/64"
                .parse::<Ipv4Prefix>()
                .unwrap_err()
                .contains(IPV6_UNSUPPORTED)
        );
        assert!(
            "fd00::1"
                .parse::<Ipv4Prefix>()
                .unwrap_err()
                .contains(IPV6_UNSUPPORTED)
        );
    }

    #[test]
    fn port_ranges() {
        assert_eq!("80".parse::<PortRange>().unwrap(), PortRange::single(80));
        assert_eq!(
            "8000-8100".parse::<PortRange>().unwrap(),
            PortRange {
                first: 8000,
                last: 8100
            }
        );
        assert!("8000-70000".parse::<PortRange>().is_err());
        assert!("http".parse::<PortRange>().is_err());
        assert_eq!(PortRange { first: 1, last: 2 }.to_string(), "1-2");
        assert!(PortRange { first: 1, last: 5 }.overlaps(&PortRange::single(5)));
        assert!(!PortRange { first: 1, last: 5 }.overlaps(&PortRange::single(6)));
    }

    #[test]
    fn socket_v4() {
        assert!(parse_socket_v4("10.0.0.1:80").is_ok());
        assert!(parse_socket_v4("10.0.0.1").unwrap_err().contains("no port"));
        assert!(
            parse_socket_v4("[fd00::1]:80")
                .unwrap_err()
                .contains(IPV6_UNSUPPORTED)
        );
    }
}

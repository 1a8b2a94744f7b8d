//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are carried as `u32` "partial sums" so that several pieces (a pseudo-header, a header,
//! a payload) can be added with plain `+` and folded once: [`sum`] always returns a value
//! `<= 0xffff` and [`pseudo_header_v4`] one below `2^19`, so thousands of them can be added
//! without overflow. Each piece must start at an even offset of the checksummed message (an
//! odd-length piece is padded with a zero byte, which is only right for the last one).
//!
//! The incremental helpers are what NAT rewrites use: changing a 16- or 32-bit field by
//! `HC' = ~(~HC + ~m + m')` gives exactly the checksum a full recomputation would, for any
//! message whose bytes are not all zero (true of everything with a pseudo-header or an IPv4
//! version byte).

use std::net::Ipv4Addr;

/// Ones'-complement sum of `data` taken as big-endian 16-bit words (a trailing odd byte is
/// the high byte of a last word), folded to 16 bits and returned as a `u32` partial sum.
///
/// Four bytes are added at a time into a 64-bit accumulator (no carry can be lost below 2³²
/// words); that is equivalent to adding 16-bit words because `2^16 ≡ 1 (mod 0xffff)`. A
/// 20-byte IPv4 header is five additions and two folds.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    if let Ok(h) = <&[u8; 20]>::try_from(data) {
        // An IPv4 header without options: five words, no loop.
        let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
        return fold64(w(0) + w(4) + w(8) + w(12) + w(16)) as u32;
    }
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
    }
    if rest.len() & 1 == 1 {
        acc += u64::from(rest[rest.len() - 1]) << 8;
    }
    fold64(acc) as u32
}

/// Folds a 64-bit ones'-complement accumulator to 16 bits (as `u64`, `<= 0xffff`).
#[inline]
fn fold64(acc: u64) -> u64 {
    // < 2^33, < 2^18, < 2^16 + 4, <= 0xffff: four fixed steps, no loop.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    (acc & 0xffff) + (acc >> 16)
}

/// Folds a partial sum to 16 bits with end-around carries. Not complemented.
#[inline]
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data`: the complement of its folded ones'-complement sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793, RFC 768): source and
/// destination address, zero, protocol, and the L4 length (header plus payload).
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = src.to_bits();
    let d = dst.to_bits();
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(proto) + u32::from(len)
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit word of the message changes from `old` to
/// `new`, given the correct checksum `csum` before the change.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!csum) + u32::from(!old) + u32::from(new))
}

/// RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address, a TCP sequence number) that starts
/// at an even offset of the message.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    !fold(
        u32::from(!csum)
            + u32::from(!(old >> 16) as u16)
            + u32::from(!old as u16)
            + (new >> 16)
            + (new & 0xffff),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook one-word-at-a-time sum, as the reference for the fast one.
    fn reference_sum(data: &[u8]) -> u32 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            acc += hi | lo;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Same data with an odd tail byte.
        assert_eq!(sum(&data[..7]), reference_sum(&data[..7]));
    }

    #[test]
    fn empty_and_zero() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(sum(&[0; 64]), 0);
        // All ones is negative zero; the folded sum keeps it as 0xffff, never 0.
        assert_eq!(sum(&[0xff; 8]), 0xffff);
        assert_eq!(sum(&[0xff; 18]), 0xffff);
        assert_eq!(sum(&[0xff; 9]), 0xff00);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x0001_fffe), 0xffff);
    }

    #[test]
    fn ipv4_header_checksum_known() {
        // The IPv4 header of testdata::SYN_FRAME, checksum field 0x0a11.
        let mut h = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x11, 0x0a, 0x00,
            0x00, 0x02, 0x0a, 0x00, 0x00, 0x64,
        ];
        assert_eq!(checksum(&h), 0, "a correct header sums to zero");
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0x0a11);
    }

    #[test]
    fn pseudo_header_known() {
        let a = Ipv4Addr::new(10, 0, 0, 2);
        let b = Ipv4Addr::new(10, 0, 0, 100);
        // 0a00 + 0002 + 0a00 + 0064 + 0006 + 0028
        assert_eq!(
            pseudo_header_v4(a, b, 6, 40),
            0x0a00 + 2 + 0x0a00 + 0x64 + 6 + 40
        );
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&a.octets());
        bytes[4..8].copy_from_slice(&b.octets());
        bytes[9] = 6;
        bytes[10..].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(fold(pseudo_header_v4(a, b, 6, 40)), fold(sum(&bytes)));
    }

    proptest! {
        #[test]
        fn fast_sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(sum(&data), reference_sum(&data));
        }

        #[test]
        fn sum_of_an_ipv4_header_matches_reference(data in any::<[u8; 20]>()) {
            prop_assert_eq!(sum(&data), reference_sum(&data));
        }

        #[test]
        fn sum_splits_at_even_offsets(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            cut in 0usize..100,
        ) {
            let cut = (cut * 2).min(data.len() & !1);
            let whole = fold(sum(&data));
            let parts = fold(sum(&data[..cut]) + sum(&data[cut..]));
            // Equal as ones'-complement numbers (0 and 0xffff are both zero).
            prop_assert_eq!(whole % 0xffff, parts % 0xffff);
        }

        #[test]
        fn update16_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 2..100),
            word in 0usize..50,
            new in any::<u16>(),
        ) {
            let i = (word * 2) % (data.len() & !1);
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            // An all-zero message is the one case where +0 and -0 differ; no real one is.
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update16(before, old, new), checksum(&data));
        }

        #[test]
        fn update32_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 4..100),
            word in 0usize..50,
            new in any::<u32>(),
        ) {
            let i = (word * 2) % ((data.len() - 2) & !1);
            let before = checksum(&data);
            let old = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            data[i..i + 4].copy_from_slice(&new.to_be_bytes());
            prop_assume!(data.iter().any(|&b| b != 0));
            prop_assert_eq!(update32(before, old, new), checksum(&data));
        }
    }
}

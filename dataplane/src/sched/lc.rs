//! Least connection (`ip_vs_lc.c`).
//!
//! The kernel walks the list and keeps the server with the smallest overhead
//! 256·active + inactive (`ip_vs_dest_conn_overhead`), skipping servers that are overloaded or
//! have weight 0; weight otherwise plays no part. Only a strictly smaller overhead replaces the
//! current choice, so ties keep the earlier server in list order. No state.

use super::DestLoad;

/// Least-connection scheduler (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastConnection;

impl LeastConnection {
    /// Picks the eligible server with the least overhead (`ip_vs_lc_schedule`).
    #[inline]
    pub fn pick(&self, dests: &[DestLoad]) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if d.overloaded || d.weight == 0 {
                continue;
            }
            let doh = d.overhead();
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::d;

    /// Conformance table: (weight, active, inactive) per server → IPVS's pick.
    #[test]
    fn ipvs_picks() {
        let table: &[(&str, &[DestLoad], Option<usize>)] = &[
            ("all idle: the first", &[d(1, 0, 0), d(1, 0, 0)], Some(0)),
            (
                "one active weighs 256 inactive",
                &[d(1, 1, 0), d(1, 0, 255)],
                Some(1),
            ),
            (
                "256 inactive tie one active: the earlier stays",
                &[d(1, 1, 0), d(1, 0, 256)],
                Some(0),
            ),
            (
                "257 inactive lose to one active",
                &[d(1, 0, 257), d(1, 1, 0)],
                Some(1),
            ),
            (
                "weight is ignored except 0",
                &[d(100, 2, 0), d(1, 1, 0)],
                Some(1),
            ),
            ("weight 0 is skipped", &[d(0, 0, 0), d(1, 5, 5)], Some(1)),
            ("only weight 0", &[d(0, 0, 0), d(0, 0, 0)], None),
            (
                "equal overheads: the earliest",
                &[d(1, 3, 1), d(1, 2, 257), d(1, 3, 1)],
                Some(0),
            ),
            ("empty", &[], None),
        ];
        for (what, dests, want) in table {
            assert_eq!(LeastConnection.pick(dests), *want, "{what}");
        }
    }

    #[test]
    fn overloaded_servers_are_skipped() {
        let mut dests = [d(1, 5, 0), d(1, 0, 0), d(1, 1, 0)];
        dests[1].overloaded = true;
        assert_eq!(LeastConnection.pick(&dests), Some(2));
        dests[0].overloaded = true;
        dests[2].overloaded = true;
        assert_eq!(LeastConnection.pick(&dests), None);
    }
}

//! Round robin (`ip_vs_rr.c`).
//!
//! The kernel keeps a pointer to the last chosen server and walks the list circularly from the
//! one after it, taking the first server that is not overloaded and has weight > 0; the walk
//! ends after coming back to the last pick. The first pick starts from the list head, so it is
//! the first eligible server.

use super::DestLoad;

/// Round-robin state: the index of the last pick (`None` = the list head, before any pick).
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    last: Option<usize>,
}

impl RoundRobin {
    /// Fresh state at the list head.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server list changed: IPVS resets the position to the head when a server is removed
    /// (`ip_vs_rr_del_dest`); keeping a valid position otherwise is harmless.
    pub fn update(&mut self, dests: &[DestLoad]) {
        if self.last.is_some_and(|l| l >= dests.len()) {
            self.last = None;
        }
    }

    /// Picks the next eligible server after the last pick.
    #[inline]
    pub fn pick(&mut self, dests: &[DestLoad]) -> Option<usize> {
        let n = dests.len();
        if n == 0 {
            return None;
        }
        let start = self.last.map_or(0, |l| l + 1);
        for step in 0..n {
            let i = (start + step) % n;
            if dests[i].available() {
                self.last = Some(i);
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(dests: &[DestLoad], n: usize) -> Vec<Option<usize>> {
        let mut rr = RoundRobin::new();
        (0..n).map(|_| rr.pick(dests)).collect()
    }

    #[test]
    fn walks_in_list_order_from_the_head() {
        let d = [DestLoad::with_weight(1); 3];
        assert_eq!(
            seq(&d, 7),
            [0, 1, 2, 0, 1, 2, 0].map(Some).to_vec(),
            "A B C A B C A"
        );
    }

    #[test]
    fn weight_is_ignored_except_zero() {
        let d = [
            DestLoad::with_weight(5),
            DestLoad::with_weight(0),
            DestLoad::with_weight(1),
        ];
        assert_eq!(seq(&d, 4), [0, 2, 0, 2].map(Some).to_vec());
    }

    #[test]
    fn overloaded_servers_are_skipped() {
        let mut d = [DestLoad::with_weight(1); 3];
        d[0].overloaded = true;
        assert_eq!(seq(&d, 3), [1, 2, 1].map(Some).to_vec());
    }

    #[test]
    fn no_eligible_server_gives_none() {
        assert_eq!(seq(&[], 1), vec![None]);
        let d = [DestLoad::with_weight(0), DestLoad::with_weight(0)];
        assert_eq!(seq(&d, 2), vec![None, None]);
    }

    #[test]
    fn continues_after_the_last_pick_when_it_becomes_unavailable() {
        let mut d = [DestLoad::with_weight(1); 3];
        let mut rr = RoundRobin::new();
        assert_eq!(rr.pick(&d), Some(0));
        assert_eq!(rr.pick(&d), Some(1));
        d[1].weight = 0; // last pick quiesced: the walk goes on from it
        assert_eq!(rr.pick(&d), Some(2));
        assert_eq!(rr.pick(&d), Some(0));
        d = [
            DestLoad::with_weight(0),
            DestLoad::with_weight(0),
            DestLoad::with_weight(1),
        ];
        assert_eq!(
            rr.pick(&d),
            Some(2),
            "wraps through every server, the last pick included"
        );
        assert_eq!(rr.pick(&d), Some(2));
    }

    #[test]
    fn a_shrunk_list_resets_to_the_head() {
        let d3 = [DestLoad::with_weight(1); 3];
        let mut rr = RoundRobin::new();
        rr.pick(&d3);
        rr.pick(&d3);
        rr.pick(&d3);
        let d2 = [DestLoad::with_weight(1); 2];
        rr.update(&d2);
        assert_eq!(rr.pick(&d2), Some(0));
    }
}

//! Power of two choices: pick two candidates at random, keep the cheaper.
//!
//! Place in the pipeline: `routing`'s `least_latency` strategy asks [`pick`]
//! for the first target among the usable ones, with each one's cost (its
//! peak-EWMA latency times its calls in flight plus one). Comparing two
//! random candidates rather than taking the cheapest of all is tower's
//! `balance::p2c` (Mitzenmacher's "power of two choices"): almost as good a
//! spread, and a stale low cost does not pull every call at once onto one
//! target. Must not know what the cost means.

/// The index (below `n`) of the cheaper of two distinct random candidates
/// (the one candidate when `n` is 1; `None` when 0). Ties keep the first
/// drawn.
pub fn pick(n: usize, cost: impl Fn(usize) -> f64) -> Option<usize> {
    match n {
        0 => None,
        1 => Some(0),
        _ => {
            let a = fastrand::usize(..n);
            let mut b = fastrand::usize(..n - 1);
            if b >= a {
                b += 1;
            }
            Some(if cost(b) < cost(a) { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_candidates_always_give_the_cheaper() {
        for _ in 0..200 {
            assert_eq!(pick(2, |i| [5.0, 1.0][i]), Some(1));
        }
        assert_eq!(pick(1, |_| 9.0), Some(0));
        assert_eq!(pick(0, |_| 0.0), None);
    }

    #[test]
    fn the_dearest_never_wins_and_the_cheapest_wins_most() {
        let costs = [1.0, 2.0, 3.0, 4.0];
        let mut won = [0u32; 4];
        for _ in 0..4000 {
            won[pick(4, |i| costs[i]).unwrap()] += 1;
        }
        assert_eq!(won[3], 0, "{won:?}");
        // The cheapest is in 3 of the 6 pairs: about half of the picks.
        assert!(won[0] > 1600 && won[0] < 2400, "{won:?}");
        assert!(won[0] > won[1] && won[1] > won[2], "{won:?}");
    }
}

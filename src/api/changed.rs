//! Tests' bodies changed at random: one byte replaced, the body cut short
//! or a piece let in, from a fixed seed.
//!
//! Place in the pipeline: none; the scans' tests (`chat_body_tests`,
//! `embeddings_body_tests`) hold what a scan takes to what the full parse
//! reads over these. Must give the same bodies for the same seed.

/// `count` bodies, each one of `bodies` (in turn) with one byte replaced
/// by the first byte of one of `pieces`, cut short, or with one of
/// `pieces` let in, at a random place.
pub(crate) fn changed(
    bodies: &[&str],
    pieces: &[&[u8]],
    seed: u64,
    count: usize,
) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bodies: Vec<Vec<u8>> = bodies.iter().map(|b| b.as_bytes().to_vec()).collect();
    let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
    (0..count).map(move |i| {
        let mut doc = bodies[i % bodies.len()].clone();
        let at = rng.usize(..doc.len());
        match rng.usize(..3) {
            0 => doc[at] = pieces[rng.usize(..pieces.len())][0],
            1 => doc.truncate(at),
            _ => drop(doc.splice(at..at, pieces[rng.usize(..pieces.len())].iter().copied())),
        }
        doc
    })
}

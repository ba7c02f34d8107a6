//! Seeded, portable randomness.
//!
//! One user seed drives every random stream of a run. Each consumer gets its own ChaCha8
//! stream (same key, a different stream number), so adding a draw in one place never shifts
//! the numbers of another, and the same seed gives the same numbers on any machine (ChaCha is
//! specified bit-for-bit, unlike `StdRng`).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The independent random streams of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Weight initialisation.
    Init = 1,
    /// Epoch permutations.
    Shuffle = 2,
    /// Sampling noise (ε, η) during training.
    Noise = 3,
    /// Noise for codes that are samples (`seed-code` VAE codes).
    Codes = 4,
    /// t-SNE initialisation.
    Tsne = 5,
    /// k-means++ seeding.
    Kmeans = 6,
    /// PCA's randomized range finder.
    Pca = 7,
}

/// The generator for `which` under the user's `seed`.
pub fn stream(seed: u64, which: Stream) -> ChaCha8Rng {
    substream(seed, which, 0)
}

/// The `k`-th independent generator of `which` (one per k-means restart, say), so that
/// parallel consumers get the same numbers whatever the thread count.
pub fn substream(seed: u64, which: Stream, k: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((which as u64) << 32) | k as u64);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_portable_and_distinct() {
        // Pinned values: if these change, seeded results on every machine change.
        let a: u64 = stream(42, Stream::Init).random();
        let b: u64 = stream(42, Stream::Shuffle).random();
        assert_ne!(a, b);
        assert_eq!(a, stream(42, Stream::Init).random::<u64>());
    }
}

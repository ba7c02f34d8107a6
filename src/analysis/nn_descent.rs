//! Approximate k-nearest neighbours by NN-descent (Dong, Moses & Li, *Efficient k-nearest
//! neighbor graph construction for generic similarity measures*, WWW 2011), for points in
//! many dimensions (PCA-50), where a k-d tree is no better than comparing every pair.
//!
//! The idea: **a neighbour of a neighbour is likely a neighbour.** Each point starts with `k`
//! random others. In each round every point `p` looks at the neighbours of its neighbours,
//! forward (`u` in `p`'s list) and reverse (`p` in `u`'s list), and keeps the `k` nearest it
//! has seen. Only pairs joined through an edge that is *new* since the last round are looked
//! at again, so the rounds get cheaper as the graph settles. The descent stops when a round
//! changes fewer than `δ · n · k` entries ([`DELTA`]) or after [`rounds_for`] rounds.
//!
//! A round, for point `p`, with `new(u)` and `old(u)` the new and old neighbours of `u`
//! (forward and reverse together, the `2k` nearest of them: [`candidates_cap`]):
//!
//! ```text
//! candidates(p) = new(p) ∪ ⋃_{u ∈ new(p)} (new(u) ∪ old(u)) ∪ ⋃_{u ∈ old(p)} new(u)
//! list'(p)      = the k nearest of list(p) ∪ candidates(p)     (order: distance, then index)
//! ```
//!
//! **Determinism.** A round reads only the lists as they stood at its start, and each point
//! writes only its own list (a "pull" join), so the result does not depend on which thread
//! did what: the same graph at any thread count. Point `i`'s random start comes from its own
//! ChaCha stream ([`Stream::Neighbors`], substream `i`). Distances are
//! [`super::neighbors::sq_dist_of`], so a neighbour found here has the same distance, bit for
//! bit, as in the exact graph.
//!
//! The cost of a round is about `n · (2k)² · d` multiply-adds at first and falls as the
//! lists settle; the recall against the exact graph is measured by
//! `examples/knn_recall.rs` and checked by the tests below.

use ndarray::Array2;
use rand::seq::index;
use rayon::prelude::*;

use super::neighbors::{sq_dist_of, Neighbors};
use crate::engine::rng::{substream, Stream};
use crate::stage::Stage;

/// A round that changes fewer than `DELTA · n · k` list entries is the last.
pub const DELTA: f64 = 0.001;

/// The most rounds for `n` points: `max(5, round(log₂ n))`, pynndescent's rule.
pub fn rounds_for(n: usize) -> usize {
    ((n.max(2) as f64).log2().round() as usize).max(5)
}

/// One entry of a point's list.
#[derive(Clone, Copy, Debug)]
struct Entry {
    sq_dist: f64,
    index: u32,
    /// Added since the last round's candidates were taken.
    new: bool,
}

/// The order of a list: distance, then index.
fn before(a: (f64, u32), b: (f64, u32)) -> bool {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).is_lt()
}

/// Per point, a list of point indices, stored flat.
struct Lists {
    start: Vec<usize>,
    items: Vec<u32>,
}

impl Lists {
    fn of(&self, p: usize) -> &[u32] {
        &self.items[self.start[p]..self.start[p + 1]]
    }
}

/// Points per parallel task when their candidate lists are ordered (one point's few pairs
/// are too small a task).
const OWNERS_PER_BLOCK: usize = 4096;

/// The approximate `k` nearest other points of each row of `x` (`k` capped at `n − 1`),
/// nearest first, ties by the lower index, as [`Neighbors::exact`] orders them.
pub fn nn_descent(x: &Array2<f64>, k: usize, seed: u64) -> Neighbors {
    nn_descent_with(x, k, seed, &mut Stage::silent())
}

/// [`nn_descent`], its rounds shown on `stage`.
pub fn nn_descent_with(x: &Array2<f64>, k: usize, seed: u64, stage: &mut Stage) -> Neighbors {
    let n = x.nrows();
    let k = k.min(n.saturating_sub(1));
    let dims = x.ncols();
    let data = x.as_standard_layout();
    let data = data.as_slice().expect("standard layout");
    let row = |i: usize| &data[i * dims..(i + 1) * dims];
    if k == 0 {
        return Neighbors::from_lists(0, Vec::new(), Vec::new());
    }

    // The random start: k distinct others per point, from the point's own stream.
    let mut lists: Vec<Entry> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut rng = substream(seed, Stream::Neighbors, i as u32);
            let mut start: Vec<Entry> = index::sample(&mut rng, n - 1, k)
                .into_iter()
                .map(|j| {
                    let j = if j >= i { j + 1 } else { j };
                    Entry {
                        sq_dist: sq_dist_of(row(i), row(j)),
                        index: j as u32,
                        new: true,
                    }
                })
                .collect();
            start.sort_by(|a, b| a.sq_dist.total_cmp(&b.sq_dist).then(a.index.cmp(&b.index)));
            start
        })
        .collect();

    stage.begin(rounds_for(n), "round");
    for round in 0..rounds_for(n) {
        stage.step(round);
        let (new, old) = candidates(&lists, n, k);
        let joined: Vec<(Vec<Entry>, usize)> = (0..n)
            .into_par_iter()
            .map(|p| join(p, &lists[p * k..(p + 1) * k], &new, &old, &row))
            .collect();
        let mut changed = 0;
        for (p, (list, c)) in joined.into_iter().enumerate() {
            lists[p * k..(p + 1) * k].copy_from_slice(&list);
            changed += c;
        }
        if (changed as f64) < DELTA * (n * k) as f64 {
            break;
        }
    }
    Neighbors::from_lists(
        k,
        lists.iter().map(|e| e.index).collect(),
        lists.iter().map(|e| e.sq_dist).collect(),
    )
}

/// The most neighbours, forward and reverse together, a point's new (or old) candidates keep
/// per round: `2k` (UMAP asks pynndescent for 60 at `k` = 15, after a random-projection
/// forest's start, which this descent does not have).
///
/// Half as many, `k`, halves the time but loses neighbours on real cells: recall 0.975
/// against 0.991 on every PBMC3k cell (PCA-50 of `scrna`, `k` = 14); on generated cells,
/// near-copies of each other, 0.9999 against 1.0000 at 100k (PCA-50 graph 8.1 s against
/// 12.5 s) and 0.9977 at 1M in 208 s against 417 s (one-off, Intel Xeon,
/// `examples/knn_recall.rs`). The graph feeds UMAP, Leiden and the kNN scores, so recall on
/// real data decides.
pub fn candidates_cap(k: usize) -> usize {
    2 * k
}

/// Each point's new and old neighbours, forward and reverse, capped together at
/// [`candidates_cap`] (the nearest kept).
fn candidates(lists: &[Entry], n: usize, k: usize) -> (Lists, Lists) {
    (gather(lists, n, k, true), gather(lists, n, k, false))
}

/// The neighbours of each point through the entries whose `new` flag is `fresh`: forward
/// (the entries of its own list) and reverse (the entries naming it), without repeats,
/// nearest first (ties by index), at most [`candidates_cap`].
///
/// Forward and reverse share one cap of `2k` ([`candidates_cap`]), the nearest kept (hubs,
/// in many reverse lists, would otherwise cost quadratically). The pairs are
/// placed by a counting sort on the owner (in point order, serially), then each owner's
/// few are ordered in parallel: the same lists as one global sort, without it.
fn gather(lists: &[Entry], n: usize, k: usize, fresh: bool) -> Lists {
    let cap = candidates_cap(k);
    let edges = || {
        (0..n).flat_map(move |p| {
            lists[p * k..(p + 1) * k]
                .iter()
                .filter(move |e| e.new == fresh)
                .map(move |e| (p, e.index as usize, e.sq_dist))
        })
    };
    // Each pair once per end: `start[o]..start[o + 1]` will hold owner o's.
    let mut start = vec![0usize; n + 1];
    for (p, q, _) in edges() {
        start[p + 1] += 1;
        start[q + 1] += 1;
    }
    for o in 0..n {
        start[o + 1] += start[o];
    }
    let mut pairs = vec![(0.0f64, 0u32); start[n]];
    let mut next = start.clone();
    for (p, q, d) in edges() {
        pairs[next[p]] = (d, q as u32);
        next[p] += 1;
        pairs[next[q]] = (d, p as u32);
        next[q] += 1;
    }
    // Order each owner's pairs, in blocks of owners split off the one vector.
    let mut blocks = Vec::with_capacity(n.div_ceil(OWNERS_PER_BLOCK));
    let mut rest = pairs.as_mut_slice();
    for first in (0..n).step_by(OWNERS_PER_BLOCK) {
        let last = (first + OWNERS_PER_BLOCK).min(n);
        let (block, tail) = rest.split_at_mut(start[last] - start[first]);
        blocks.push((first, last, block));
        rest = tail;
    }
    let kept: Vec<Vec<usize>> = blocks
        .into_par_iter()
        .map(|(first, last, block)| {
            let base = start[first];
            (first..last)
                .map(|o| nearest_unique(&mut block[start[o] - base..start[o + 1] - base], cap))
                .collect()
        })
        .collect();
    let mut out = Lists {
        start: Vec::with_capacity(n + 1),
        items: Vec::with_capacity(pairs.len().min(n * cap)),
    };
    for (o, kept) in kept.into_iter().flatten().enumerate() {
        out.start.push(out.items.len());
        out.items
            .extend(pairs[start[o]..start[o] + kept].iter().map(|&(_, q)| q));
    }
    out.start.push(out.items.len());
    out
}

/// Orders `pairs` (distance, point) by distance then point with each point once, and
/// returns how many of the first are kept: at most `cap`.
fn nearest_unique(pairs: &mut [(f64, u32)], cap: usize) -> usize {
    // A point met twice (each in the other's list) has the same distance both times.
    pairs.sort_unstable_by_key(|&(_, q)| q);
    let mut unique = 0;
    for i in 0..pairs.len() {
        if unique == 0 || pairs[unique - 1].1 != pairs[i].1 {
            pairs[unique] = pairs[i];
            unique += 1;
        }
    }
    let pairs = &mut pairs[..unique];
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    unique.min(cap)
}

/// Point `p`'s list after one round, and how many of its entries are new.
fn join<'a>(
    p: usize,
    list: &[Entry],
    new: &Lists,
    old: &Lists,
    row: &impl Fn(usize) -> &'a [f64],
) -> (Vec<Entry>, usize) {
    let mut seen: Vec<u32> = new.of(p).to_vec();
    for &u in new.of(p) {
        seen.extend_from_slice(new.of(u as usize));
        seen.extend_from_slice(old.of(u as usize));
    }
    for &u in old.of(p) {
        seen.extend_from_slice(new.of(u as usize));
    }
    seen.sort_unstable();
    seen.dedup();
    let k = list.len();
    let mut out: Vec<Entry> = list.iter().map(|e| Entry { new: false, ..*e }).collect();
    let mut changed = 0;
    for q in seen {
        if q as usize == p || out.iter().any(|e| e.index == q) {
            continue;
        }
        let d = sq_dist_of(row(p), row(q as usize));
        let worst = out[k - 1];
        if !before((d, q), (worst.sq_dist, worst.index)) {
            continue;
        }
        // Insert in order, dropping the worst.
        let at = out.partition_point(|e| before((e.sq_dist, e.index), (d, q)));
        out.pop();
        out.insert(
            at,
            Entry {
                sq_dist: d,
                index: q,
                new: true,
            },
        );
        changed += 1;
    }
    (out, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::fixtures::random;
    use rand::Rng;
    use rand_distr::StandardNormal;

    /// Points in `dims` dimensions around 20 random centres, as cells lie around cell types.
    fn clustered(n: usize, dims: usize, seed: u64) -> Array2<f64> {
        let centres = random(20, dims, 4.0, seed);
        let mut rng = substream(seed, Stream::Neighbors, 999);
        Array2::from_shape_fn((n, dims), |(i, d)| {
            centres[[i % 20, d]] + rng.sample::<f64, _>(StandardNormal)
        })
    }

    /// The candidate lists by one global sort of every (owner, distance, point) triple, as
    /// they were first built: [`gather`] must give the same.
    fn candidates_by_sort(lists: &[Entry], n: usize, k: usize, fresh: bool) -> Lists {
        let mut triples = Vec::new();
        for p in 0..n {
            for e in lists[p * k..(p + 1) * k].iter().filter(|e| e.new == fresh) {
                triples.push((p as u32, e.sq_dist, e.index));
                triples.push((e.index, e.sq_dist, p as u32));
            }
        }
        triples.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
        triples.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
        triples.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut out = Lists {
            start: vec![],
            items: vec![],
        };
        let mut t = 0;
        for p in 0..n as u32 {
            out.start.push(out.items.len());
            let from = t;
            while t < triples.len() && triples[t].0 == p {
                if t - from < candidates_cap(k) {
                    out.items.push(triples[t].2);
                }
                t += 1;
            }
        }
        out.start.push(out.items.len());
        out
    }

    #[test]
    fn candidates_are_those_of_one_global_sort() {
        // Lists with ties (duplicated points), mutual entries and hubs, new and old mixed.
        let (n, k) = (9000, 6);
        let mut x = clustered(n, 5, 11);
        for r in 0..300 {
            let src = x.row(r).to_owned();
            x.row_mut(n - 1 - r).assign(&src);
        }
        let exact = Neighbors::exact(&x, k);
        let lists: Vec<Entry> = (0..n * k)
            .map(|at| {
                let (idx, d2) = exact.nearest(at / k, k);
                Entry {
                    sq_dist: d2[at % k],
                    index: idx[at % k],
                    new: (at * 7919) % 3 != 0,
                }
            })
            .collect();
        for fresh in [true, false] {
            let (fast, reference) = (
                gather(&lists, n, k, fresh),
                candidates_by_sort(&lists, n, k, fresh),
            );
            assert_eq!(fast.start, reference.start, "fresh {fresh}");
            assert_eq!(fast.items, reference.items, "fresh {fresh}");
        }
    }

    /// The share of the exact graph's neighbours that the approximate graph found.
    fn recall(exact: &Neighbors, approx: &Neighbors) -> f64 {
        let k = exact.k();
        let mut hit = 0;
        for i in 0..exact.n() {
            let truth = exact.nearest(i, k).0;
            hit += approx
                .nearest(i, k)
                .0
                .iter()
                .filter(|j| truth.contains(j))
                .count();
        }
        hit as f64 / (exact.n() * k) as f64
    }

    #[test]
    fn finds_nearly_every_exact_neighbour_in_fifty_dimensions() {
        let x = clustered(4000, 50, 3);
        let exact = Neighbors::exact(&x, 14);
        let approx = nn_descent(&x, 14, 1);
        let r = recall(&exact, &approx);
        assert!(r > 0.95, "recall {r}");
        // Every list is in order, holds no duplicate and not the point itself, and its
        // distances are the exact ones.
        for i in 0..x.nrows() {
            let (idx, d2) = approx.nearest(i, 14);
            for w in 0..13 {
                assert!(
                    before((d2[w], idx[w]), (d2[w + 1], idx[w + 1])),
                    "point {i}"
                );
            }
            for (&j, &d) in idx.iter().zip(d2) {
                assert_ne!(j as usize, i);
                assert_eq!(d, crate::analysis::neighbors::sq_dist(&x, i, j as usize));
            }
        }
    }

    #[test]
    fn the_same_graph_at_any_thread_count_and_run() {
        let x = clustered(3000, 30, 5);
        let at = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| nn_descent(&x, 15, 7))
        };
        let one = at(1);
        assert_eq!(one, at(3));
        assert_eq!(one, at(2));
    }

    #[test]
    fn small_inputs_and_duplicates() {
        // k is capped at n − 1, and with n − 1 neighbours every other point is found.
        let x = random(6, 8, 1.0, 2);
        let nb = nn_descent(&x, 10, 1);
        assert_eq!((nb.n(), nb.k()), (6, 5));
        assert_eq!(nb, Neighbors::exact(&x, 5));
        // Exact duplicates (distance 0, ties by index) are found like the exact graph does.
        let mut x = clustered(500, 20, 8);
        for r in 0..50 {
            let src = x.row(r).to_owned();
            x.row_mut(499 - r).assign(&src);
        }
        let exact = Neighbors::exact(&x, 10);
        let approx = nn_descent(&x, 10, 3);
        assert!(recall(&exact, &approx) > 0.98);
        for r in 0..50 {
            assert_eq!(approx.nearest(r, 1).0, [499 - r as u32], "duplicate of {r}");
        }
        let one = nn_descent(&random(1, 3, 1.0, 1), 5, 1);
        assert_eq!((one.n(), one.k()), (0, 0));
    }
}

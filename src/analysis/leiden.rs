//! Leiden community detection (Traag, Waltman & van Eck 2019) on a weighted undirected graph,
//! maximizing modularity with a resolution γ (`docs/math.md#15-leiden-with-k-clusters`):
//!
//! `Q = (1/2m) Σ_c [ W_c − γ·K_c²/(2m) ]`, with `W_c` the weight inside community `c` (each
//! edge counted from both ends), `K_c` the sum of its nodes' strengths `k_v = Σ_u A_vu` and
//! `2m = Σ_v k_v`. Moving node `v` (strength `k_v`) from its community into community `D`
//! changes `Q·2m` by `gain(D) − gain(C∖v)`, `gain(D) = w(v, D) − γ·k_v·K_D/(2m)`: the one
//! expression the three phases below use.
//!
//! 1. **Fast local moving**: nodes are visited from a queue (random initial order); each moves
//!    to the neighbouring (or an empty) community of largest gain, strictly better than
//!    staying; when a node moves, its neighbours outside its new community are queued again.
//! 2. **Refinement**: within each community, starting from singletons, a node still alone and
//!    well connected to the rest of its community (`w(v, C∖v) ≥ γ·k_v·(K_C − k_v)/2m`) joins
//!    a well-connected sub-community `T` of non-negative gain, drawn with probability
//!    ∝ `exp(gain/θ)` (θ = 0.01, igraph's default randomness).
//! 3. **Aggregation**: each refined sub-community becomes a node; the partition of phase 1
//!    is its starting partition, so communities can still split apart on the next level.
//!
//! Levels repeat until every community is one node; the whole is run `iterations` times, each
//! from the previous result (scanpy's `n_iterations=2`). Every random choice comes from a
//! ChaCha stream under the seed, and the pass is serial: same seed, same communities.

use crate::analysis::umap::Graph;
use crate::engine::rng::{stream, Stream};
use crate::stage::Stage;
use rand::seq::SliceRandom;
use rand::Rng;

/// Randomness of the refinement (igraph's `beta`).
const THETA: f64 = 0.01;

/// Lower end of the resolution bracket [`leiden_k`] bisects
/// (`docs/math.md#15-leiden-with-k-clusters`). A small γ barely penalises merging, so the
/// partition falls into few, large communities; the bracket `[0.01, 5]` reaches two orders of
/// magnitude below scanpy's default resolution 1 and a factor 5 above it. It is the bracket
/// `benches/baselines_pbmc3k.py` bisects for scanpy too, so both visit the same resolutions.
const RESOLUTION_LO: f64 = 0.01;

/// Upper end of the resolution bracket (see [`RESOLUTION_LO`]): a large γ splits the graph into
/// many small communities.
const RESOLUTION_HI: f64 = 5.0;

/// Most bisection steps of [`leiden_k`] (as in `benches/baselines_pbmc3k.py`). After 40
/// halvings the bracket is `4.99/2⁴⁰ ≈ 4.5·10⁻¹²` wide; moving γ that little moves every gain
/// `w(v, D) − γ·k_v·K_D/(2m)` by about as little, so further steps would keep meeting the
/// same partitions.
const BISECTION_STEPS: usize = 40;

/// Most runs under [`Iterations::UntilStable`]. leidenalg's `n_iterations=-1` repeats until a
/// run changes nothing, with no cap; the cap keeps a partition that never settles (a cycle
/// between equally good moves) from looping forever.
const MAX_STABLE_RUNS: usize = 100;

/// A weighted undirected graph as adjacency lists (every edge stored from both ends; no
/// self-loops in the input, but aggregated graphs carry a node's inner weight in `inner`).
#[derive(Clone, Debug)]
pub struct AdjGraph {
    offsets: Vec<usize>,
    nbr: Vec<u32>,
    w: Vec<f64>,
    /// Strength `k_v` of each node (aggregates: the sum of their members' strengths).
    strength: Vec<f64>,
    /// `2m`, the sum of the strengths.
    two_m: f64,
}

impl AdjGraph {
    /// From a symmetric edge list sorted by head (as [`crate::analysis::umap::fuzzy_graph`]
    /// gives); self-loops are dropped.
    pub fn from_edges(n: usize, g: &Graph) -> Self {
        let mut offsets = vec![0usize; n + 1];
        let (mut nbr, mut w) = (Vec::new(), Vec::new());
        let mut strength = vec![0.0f64; n];
        for ((&h, &t), &wt) in g.head.iter().zip(&g.tail).zip(&g.weight) {
            if h != t {
                offsets[h as usize + 1] += 1;
                nbr.push(t);
                w.push(wt);
                strength[h as usize] += wt;
            }
        }
        for v in 0..n {
            offsets[v + 1] += offsets[v];
        }
        let two_m = strength.iter().sum();
        AdjGraph {
            offsets,
            nbr,
            w,
            strength,
            two_m,
        }
    }

    pub fn n(&self) -> usize {
        self.strength.len()
    }

    /// The number of connected components (edges of positive weight). Leiden's communities
    /// are connected, so it never finds fewer communities than this.
    pub fn components(&self) -> usize {
        let mut seen = vec![false; self.n()];
        let mut stack = Vec::new();
        let mut count = 0;
        for start in 0..self.n() {
            if seen[start] {
                continue;
            }
            count += 1;
            seen[start] = true;
            stack.push(start);
            while let Some(v) = stack.pop() {
                for (u, w) in self.edges(v) {
                    if w > 0.0 && !seen[u] {
                        seen[u] = true;
                        stack.push(u);
                    }
                }
            }
        }
        count
    }

    fn edges(&self, v: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let r = self.offsets[v]..self.offsets[v + 1];
        self.nbr[r.clone()]
            .iter()
            .zip(&self.w[r])
            .map(|(&u, &w)| (u as usize, w))
    }
}

/// Modularity with resolution γ of `membership` on `g` (an input graph, no self-loops).
pub fn modularity(g: &AdjGraph, membership: &[usize], gamma: f64) -> f64 {
    let c = membership.iter().max().map_or(0, |m| m + 1);
    let (mut inner, mut total) = (vec![0.0f64; c], vec![0.0f64; c]);
    for v in 0..g.n() {
        total[membership[v]] += g.strength[v];
        for (u, w) in g.edges(v) {
            if membership[u] == membership[v] {
                inner[membership[v]] += w;
            }
        }
    }
    (0..c)
        .map(|k| inner[k] - gamma * total[k] * total[k] / g.two_m)
        .sum::<f64>()
        / g.two_m
}

/// Neighbours per cell of the clustering graph, the cell itself included (scanpy's default).
pub const NEIGHBOURS: usize = 15;

/// The clustering graph of the rows of `x`: the `k`-nearest neighbours (the point itself
/// counted among the `k`; exact, or NN-descent under `seed` for many points in many
/// dimensions, [`crate::analysis::neighbors::Neighbors::build`]), weighted and symmetrized
/// as UMAP and scanpy do (fuzzy union, [`crate::analysis::umap::fuzzy_graph`]).
pub fn knn_graph(x: &ndarray::Array2<f64>, k: usize, seed: u64) -> AdjGraph {
    let nb = crate::analysis::neighbors::Neighbors::build(x, k - 1, seed);
    AdjGraph::from_edges(x.nrows(), &crate::analysis::umap::fuzzy_graph(&nb, k))
}

/// Leiden with the resolution chosen to give `k` communities.
#[derive(Clone, Debug, PartialEq)]
pub struct LeidenK {
    pub labels: Vec<usize>,
    pub resolution: f64,
    /// Whether exactly `k` communities were found (otherwise the nearest count seen).
    pub exact: bool,
}

/// Bisects the resolution on `[0.01, 5]` (at most 40 steps) until Leiden finds exactly `k`
/// communities: more communities, lower γ; fewer, higher. No labels are involved. Several
/// resolutions can give `k`; the first one the bisection meets is returned. If none does,
/// the result of the resolution whose count came nearest (the lower γ on ties). When the
/// graph has more connected components than `k`, no resolution can give `k` (communities are
/// connected): then one run at the lowest resolution, 0.01, where the count is lowest, instead
/// of 40 runs that cannot succeed (a graph of near-duplicate cells, at scale, is like that).
pub fn leiden_k(g: &AdjGraph, k: usize, iterations: Iterations, seed: u64) -> LeidenK {
    leiden_k_with(g, k, iterations, seed, &mut Stage::silent())
}

/// [`leiden_k`], its resolutions shown on `stage`.
pub fn leiden_k_with(
    g: &AdjGraph,
    k: usize,
    iterations: Iterations,
    seed: u64,
    stage: &mut Stage,
) -> LeidenK {
    if g.components() > k {
        return LeidenK {
            labels: leiden(g, RESOLUTION_LO, iterations, seed),
            resolution: RESOLUTION_LO,
            exact: false,
        };
    }
    let (mut lo, mut hi) = (RESOLUTION_LO, RESOLUTION_HI);
    let mut nearest: Option<(usize, f64, Vec<usize>)> = None;
    stage.begin(BISECTION_STEPS, "resolution");
    for step in 0..BISECTION_STEPS {
        stage.step(step);
        let r = 0.5 * (lo + hi);
        let labels = leiden(g, r, iterations, seed);
        let found = labels.iter().max().map_or(0, |m| m + 1);
        if found == k {
            return LeidenK {
                labels,
                resolution: r,
                exact: true,
            };
        }
        let miss = found.abs_diff(k);
        let better = nearest
            .as_ref()
            .is_none_or(|(m, nr, _)| miss < *m || (miss == *m && r < *nr));
        if better {
            nearest = Some((miss, r, labels));
        }
        if found < k {
            lo = r;
        } else {
            hi = r;
        }
    }
    let (_, resolution, labels) = nearest.expect("40 steps were taken");
    LeidenK {
        labels,
        resolution,
        exact: false,
    }
}

/// How many times the algorithm runs, each from the previous partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Iterations {
    /// A fixed number (scanpy's `flavor="igraph"` default is 2).
    Fixed(usize),
    /// Until an iteration changes nothing (leidenalg's `n_iterations=-1`), at most 100.
    UntilStable,
}

/// Communities of `g` at resolution `gamma`, numbered by decreasing size (ties: by lowest
/// node).
pub fn leiden(g: &AdjGraph, gamma: f64, iterations: Iterations, seed: u64) -> Vec<usize> {
    let mut rng = stream(seed, Stream::Leiden);
    let mut membership: Vec<usize> = (0..g.n()).collect();
    if g.two_m <= 0.0 {
        return membership;
    }
    let runs = match iterations {
        Iterations::Fixed(k) => k.max(1),
        Iterations::UntilStable => MAX_STABLE_RUNS,
    };
    for _ in 0..runs {
        let next = renumber(&one_iteration(g, membership.clone(), gamma, &mut rng));
        let stable = next == renumber(&membership);
        membership = next;
        if stable && iterations == Iterations::UntilStable {
            break;
        }
    }
    by_size(&membership)
}

/// One run of the three phases over all levels, from `start`.
fn one_iteration(g: &AdjGraph, start: Vec<usize>, gamma: f64, rng: &mut impl Rng) -> Vec<usize> {
    let mut graph = g.clone();
    let mut node_of: Vec<usize> = (0..g.n()).collect();
    let mut part = renumber(&start);
    loop {
        move_nodes_fast(&graph, &mut part, gamma, rng);
        let communities = renumber(&part);
        let n_comm = communities.iter().max().map_or(0, |m| m + 1);
        if n_comm == graph.n() {
            part = communities;
            break;
        }
        let refined = renumber(&refine(&graph, &part, gamma, rng));
        let n_refined = refined.iter().max().map_or(0, |m| m + 1);
        if n_refined == graph.n() {
            // Refinement merged nothing: aggregating would not shrink the graph.
            part = communities;
            break;
        }
        let mut next = vec![0usize; n_refined];
        for v in 0..graph.n() {
            next[refined[v]] = communities[v];
        }
        graph = aggregate(&graph, &refined, n_refined);
        node_of.iter_mut().for_each(|x| *x = refined[*x]);
        part = next;
    }
    node_of.iter().map(|&x| part[x]).collect()
}

/// Phase 1. Community ids are node ids `0..n`; strengths per community are kept up to date.
fn move_nodes_fast(g: &AdjGraph, part: &mut [usize], gamma: f64, rng: &mut impl Rng) {
    let n = g.n();
    let mut total = vec![0.0f64; n];
    let mut count = vec![0usize; n];
    for v in 0..n {
        total[part[v]] += g.strength[v];
        count[part[v]] += 1;
    }
    let mut empty: Vec<usize> = (0..n).filter(|&c| count[c] == 0).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut queue: std::collections::VecDeque<usize> = order.into();
    let mut queued = vec![true; n];
    let mut w_to = vec![0.0f64; n];
    let mut seen: Vec<usize> = Vec::new();
    while let Some(v) = queue.pop_front() {
        queued[v] = false;
        let (c, kv) = (part[v], g.strength[v]);
        for (u, w) in g.edges(v) {
            let d = part[u];
            if w_to[d] == 0.0 {
                seen.push(d);
            }
            w_to[d] += w;
        }
        total[c] -= kv;
        count[c] -= 1;
        let gain = |d: usize| w_to[d] - gamma * kv * total[d] / g.two_m;
        let (mut best, mut best_gain) = (c, gain(c));
        for &d in &seen {
            if d != c && gain(d) > best_gain {
                (best, best_gain) = (d, gain(d));
            }
        }
        if best_gain < 0.0 && count[c] > 0 {
            best = empty
                .pop()
                .expect("a community id is free while v's is shared");
        }
        part[v] = best;
        total[best] += kv;
        count[best] += 1;
        if count[c] == 0 && best != c {
            empty.push(c);
        }
        for &d in &seen {
            w_to[d] = 0.0;
        }
        seen.clear();
        if best != c {
            for (u, _) in g.edges(v) {
                if !queued[u] && part[u] != best {
                    queued[u] = true;
                    queue.push_back(u);
                }
            }
        }
    }
}

/// Phase 2: the refined partition (ids are node ids), each refined community inside one
/// community of `part`.
fn refine(g: &AdjGraph, part: &[usize], gamma: f64, rng: &mut impl Rng) -> Vec<usize> {
    let n = g.n();
    let mut comm_total = vec![0.0f64; n];
    for v in 0..n {
        comm_total[part[v]] += g.strength[v];
    }
    let mut refined: Vec<usize> = (0..n).collect();
    let mut size = vec![1usize; n];
    let mut total = g.strength.clone();
    // Weight from each refined community to the rest of its community.
    let mut outside: Vec<f64> = (0..n)
        .map(|v| {
            g.edges(v)
                .filter(|&(u, _)| part[u] == part[v])
                .map(|e| e.1)
                .sum()
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut w_to = vec![0.0f64; n];
    let mut seen: Vec<usize> = Vec::new();
    let mut options: Vec<(usize, f64)> = Vec::new();
    for v in order {
        let (c, kv) = (part[v], g.strength[v]);
        let well_connected = |out: f64, t: f64| out >= gamma * t * (comm_total[c] - t) / g.two_m;
        if size[refined[v]] != 1 || !well_connected(outside[v], kv) {
            continue;
        }
        let v_out = outside[v];
        for (u, w) in g.edges(v) {
            if part[u] == c {
                let t = refined[u];
                if w_to[t] == 0.0 {
                    seen.push(t);
                }
                w_to[t] += w;
            }
        }
        options.clear();
        options.push((refined[v], 0.0));
        for &t in &seen {
            if t == refined[v] || !well_connected(outside[t], total[t]) {
                continue;
            }
            let gain = w_to[t] - gamma * kv * total[t] / g.two_m;
            if gain >= 0.0 {
                options.push((t, gain));
            }
        }
        let top = options.iter().map(|o| o.1).fold(0.0f64, f64::max);
        let weights: Vec<f64> = options
            .iter()
            .map(|o| ((o.1 - top) / THETA).exp())
            .collect();
        let mut pick = rng.random::<f64>() * weights.iter().sum::<f64>();
        let mut chosen = options[options.len() - 1].0;
        for (o, w) in options.iter().zip(&weights) {
            if pick < *w {
                chosen = o.0;
                break;
            }
            pick -= w;
        }
        if chosen != refined[v] {
            let own = refined[v];
            size[own] = 0;
            total[own] = 0.0;
            refined[v] = chosen;
            size[chosen] += 1;
            total[chosen] += kv;
            outside[chosen] += v_out - 2.0 * w_to[chosen];
        }
        for &t in &seen {
            w_to[t] = 0.0;
        }
        seen.clear();
    }
    refined
}

/// Phase 3: one node per community of `groups` (ids `0..n_groups`); the weights between
/// groups summed, the weight inside a group kept in its strength only.
fn aggregate(g: &AdjGraph, groups: &[usize], n_groups: usize) -> AdjGraph {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_groups];
    for (v, &a) in groups.iter().enumerate() {
        members[a].push(v);
    }
    let mut offsets = vec![0usize];
    let (mut nbr, mut w) = (Vec::new(), Vec::new());
    let mut strength = vec![0.0f64; n_groups];
    let mut acc = vec![0.0f64; n_groups];
    let mut seen: Vec<usize> = Vec::new();
    for (a, vs) in members.iter().enumerate() {
        for &v in vs {
            strength[a] += g.strength[v];
            for (u, wt) in g.edges(v) {
                let b = groups[u];
                if b != a {
                    if acc[b] == 0.0 {
                        seen.push(b);
                    }
                    acc[b] += wt;
                }
            }
        }
        seen.sort_unstable();
        for &b in &seen {
            nbr.push(b as u32);
            w.push(acc[b]);
            acc[b] = 0.0;
        }
        seen.clear();
        offsets.push(nbr.len());
    }
    AdjGraph {
        offsets,
        nbr,
        w,
        strength,
        two_m: g.two_m,
    }
}

/// Ids `0..` in order of first appearance.
fn renumber(ids: &[usize]) -> Vec<usize> {
    let mut map = vec![usize::MAX; ids.iter().max().map_or(0, |m| m + 1)];
    let mut next = 0;
    ids.iter()
        .map(|&c| {
            if map[c] == usize::MAX {
                map[c] = next;
                next += 1;
            }
            map[c]
        })
        .collect()
}

/// Ids `0..` by decreasing community size, ties by first appearance.
fn by_size(ids: &[usize]) -> Vec<usize> {
    let ids = renumber(ids);
    let n_comm = ids.iter().max().map_or(0, |m| m + 1);
    let mut size = vec![0usize; n_comm];
    ids.iter().for_each(|&c| size[c] += 1);
    let mut order: Vec<usize> = (0..n_comm).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(size[c]), c));
    let mut rank = vec![0usize; n_comm];
    for (r, &c) in order.iter().enumerate() {
        rank[c] = r;
    }
    ids.iter().map(|&c| rank[c]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `blocks` cliques of `size` nodes (weight 1 inside), each joined to the next by one
    /// edge of weight `bridge`.
    fn ring_of_cliques(blocks: usize, size: usize, bridge: f64) -> (AdjGraph, Vec<usize>) {
        let n = blocks * size;
        let mut e: Vec<(u32, u32, f64)> = Vec::new();
        for b in 0..blocks {
            for i in 0..size {
                for j in 0..size {
                    if i != j {
                        e.push(((b * size + i) as u32, (b * size + j) as u32, 1.0));
                    }
                }
            }
            let (u, v) = ((b * size) as u32, (((b + 1) % blocks) * size + 1) as u32);
            e.push((u, v, bridge));
            e.push((v, u, bridge));
        }
        e.sort_by_key(|p| (p.0, p.1));
        let g = Graph {
            head: e.iter().map(|p| p.0).collect(),
            tail: e.iter().map(|p| p.1).collect(),
            weight: e.iter().map(|p| p.2).collect(),
        };
        let truth = (0..n).map(|v| v / size).collect();
        (AdjGraph::from_edges(n, &g), truth)
    }

    #[test]
    fn finds_the_cliques_of_a_ring() {
        let (g, truth) = ring_of_cliques(12, 6, 0.5);
        let found = leiden(&g, 1.0, Iterations::Fixed(2), 7);
        let s = crate::analysis::metrics::scores(&truth, &found);
        assert!((s.ari - 1.0).abs() < 1e-12, "ARI {}", s.ari);
        assert_eq!(
            found,
            leiden(&g, 1.0, Iterations::Fixed(2), 7),
            "same seed, same communities"
        );
        assert!(modularity(&g, &found, 1.0) > modularity(&g, &vec![0; g.n()], 1.0));
    }

    #[test]
    fn modularity_of_known_partitions() {
        // Two disjoint triangles: Q = 2 · (6/12 − (6/12)²) = 0.5 with the right split.
        let (g, truth) = ring_of_cliques(2, 3, 0.0);
        assert!((modularity(&g, &truth, 1.0) - 0.5).abs() < 1e-12);
        assert!(modularity(&g, &[0; 6], 1.0).abs() < 1e-12);
    }

    #[test]
    fn resolution_bisection_hits_k() {
        let (g, truth) = ring_of_cliques(12, 6, 0.5);
        // On this ring the count goes 1, 3, 4, 5, 7, 12 as γ rises (measured 0.01–0.6):
        // whole numbers of cliques per community, never 6.
        for k in [3, 4, 12] {
            let r = leiden_k(&g, k, Iterations::UntilStable, 1);
            let found = r.labels.iter().max().unwrap() + 1;
            assert!(
                r.exact && found == k,
                "k {k}: found {found} at γ {}",
                r.resolution
            );
        }
        assert_eq!(
            leiden_k(&g, 12, Iterations::UntilStable, 1).labels,
            by_size(&truth)
        );
    }

    /// More components than k: one run at the lowest resolution, each component a
    /// community at least, and no claim to have found k.
    #[test]
    fn more_components_than_k_stop_the_bisection() {
        let (g, truth) = ring_of_cliques(5, 4, 0.0);
        assert_eq!(g.components(), 5);
        assert_eq!(ring_of_cliques(5, 4, 0.5).0.components(), 1);
        let r = leiden_k(&g, 2, Iterations::UntilStable, 1);
        assert!(!r.exact);
        assert_eq!(r.resolution, RESOLUTION_LO);
        assert_eq!(r.labels, by_size(&truth));
    }

    #[test]
    fn labels_are_numbered_by_size() {
        assert_eq!(by_size(&[5, 5, 2, 9, 9, 9]), vec![1, 1, 2, 0, 0, 0]);
    }
}

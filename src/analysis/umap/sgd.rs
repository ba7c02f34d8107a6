//! Step 5 of [UMAP](super): stochastic gradient descent on the cross-entropy between the
//! fuzzy graph and the embedding's similarities `q(d) = 1/(1 + a·d^{2b})`, in parallel and
//! deterministic.

use super::{Graph, UmapOptions};
use crate::engine::rng::{substream, Stream};
use crate::stage::Stage;
use ndarray::Array2;
use rand::Rng;
use rayon::prelude::*;

/// Points per block of the parallel descent ([`optimise`]): a fixed size, not one block per
/// thread, so the result does not depend on the thread count.
pub(super) const BLOCK_POINTS: usize = 1024;

/// Step 5 of the module doc, in parallel and deterministic. The points are cut into blocks of
/// [`BLOCK_POINTS`]; in each epoch every block runs through the edges whose head it holds, in
/// edge order, with its own ChaCha stream (one per epoch and block). A step moves only the
/// head, which its block owns; the tail and the negative samples are read from the embedding
/// as it stood when the epoch began. umap-learn moves the tail too, so each edge's two
/// directions pull `y_i` twice per epoch; here each direction moves its own head, by twice
/// the step, which is the same pull.
pub(super) fn optimise(
    y: &mut Array2<f64>,
    g: &Graph,
    a: f64,
    b: f64,
    epochs: usize,
    opts: &UmapOptions,
    stage: &mut Stage,
) {
    let (n, dims) = y.dim();
    let w_max = g.weight.iter().copied().fold(0.0f64, f64::max);
    // Edges too weak to be sampled once in the whole run are dropped.
    let keep: Vec<usize> = (0..g.weight.len())
        .filter(|&e| g.weight[e] >= w_max / epochs as f64)
        .collect();
    let per_sample: Vec<f64> = keep
        .iter()
        .map(|&e| epochs as f64 / (epochs as f64 * g.weight[e] / w_max))
        .collect();
    let rate = opts.negative_sample_rate as f64;
    let per_negative: Vec<f64> = per_sample.iter().map(|p| p / rate).collect();
    let mut schedule: Vec<(f64, f64)> = per_sample
        .iter()
        .zip(&per_negative)
        .map(|(&s, &m)| (s, m))
        .collect();
    // The kept edges of each block: heads ascend, so each block's edges are one range.
    let blocks = n.div_ceil(BLOCK_POINTS);
    let bounds: Vec<usize> = (0..=blocks)
        .map(|bk| keep.partition_point(|&e| (g.head[e] as usize) < bk * BLOCK_POINTS))
        .collect();
    let y = y.as_slice_mut().expect("standard layout");
    let mut before = y.to_vec();
    stage.begin(epochs, "epoch");
    for epoch in 0..epochs {
        stage.step(epoch);
        before.copy_from_slice(y);
        let step = Step {
            a,
            b,
            alpha: opts.learning_rate * (1.0 - epoch as f64 / epochs as f64),
            now: epoch as f64,
            dims,
            n,
            before: &before,
            graph: g,
            keep: &keep,
            per_sample: &per_sample,
            per_negative: &per_negative,
        };
        let mut rest = schedule.as_mut_slice();
        let mut work = Vec::with_capacity(blocks);
        for (bk, rows) in y.chunks_mut(BLOCK_POINTS * dims).enumerate() {
            let (mine, later) = rest.split_at_mut(bounds[bk + 1] - bounds[bk]);
            rest = later;
            work.push((bk, rows, mine));
        }
        work.into_par_iter().for_each(|(bk, rows, timing)| {
            let stream_index = 1 + (epoch * blocks + bk) as u32;
            let mut rng = substream(opts.seed, Stream::Umap, stream_index);
            step.block(rows, bk * BLOCK_POINTS, bounds[bk], timing, &mut rng);
        });
    }
}

/// What every block of one epoch shares: the curve `a, b`, the learning rate `alpha`, the
/// epoch `now`, the embedding as it stood when the epoch began, and the kept edges of the
/// graph with their sampling intervals.
struct Step<'a> {
    a: f64,
    b: f64,
    alpha: f64,
    now: f64,
    dims: usize,
    n: usize,
    before: &'a [f64],
    graph: &'a Graph,
    keep: &'a [usize],
    per_sample: &'a [f64],
    per_negative: &'a [f64],
}

impl Step<'_> {
    /// One epoch of the block whose points start at `first` (`rows`, owned): its kept edges
    /// start at `offset` of [`Step::keep`], `timing` holds their next positive and negative
    /// sampling epochs.
    fn block(
        &self,
        rows: &mut [f64],
        first: usize,
        offset: usize,
        timing: &mut [(f64, f64)],
        rng: &mut impl Rng,
    ) {
        let (a, b, dims) = (self.a, self.b, self.dims);
        let clip = |v: f64| v.clamp(-4.0, 4.0);
        let (g, edges) = (self.graph, &self.keep[offset..offset + timing.len()]);
        for (k, &e) in edges.iter().enumerate() {
            let (next_sample, next_negative) = &mut timing[k];
            if *next_sample > self.now {
                continue;
            }
            let (i, j) = (g.head[e] as usize, g.tail[e] as usize);
            let yi = &mut rows[(i - first) * dims..(i - first + 1) * dims];
            let yj = &self.before[j * dims..(j + 1) * dims];
            let d2: f64 = yi.iter().zip(yj).map(|(p, q)| (p - q) * (p - q)).sum();
            if d2 > 0.0 {
                let pb = d2.powf(b); // d^{2b}; d^{2(b−1)} = d^{2b}/d²
                let coeff = -2.0 * a * b * (pb / d2) / (a * pb + 1.0);
                for d in 0..dims {
                    yi[d] += 2.0 * clip(coeff * (yi[d] - yj[d])) * self.alpha;
                }
            }
            *next_sample += self.per_sample[offset + k];
            let negatives = ((self.now - *next_negative) / self.per_negative[offset + k])
                .floor()
                .max(0.0) as usize;
            for _ in 0..negatives {
                let m = rng.random_range(0..self.n);
                if m == i {
                    continue; // the point itself: no force (umap-learn skips it too)
                }
                let ym = &self.before[m * dims..(m + 1) * dims];
                let d2: f64 = yi.iter().zip(ym).map(|(p, q)| (p - q) * (p - q)).sum();
                if d2 > 0.0 {
                    let coeff = 2.0 * b / ((0.001 + d2) * (a * d2.powf(b) + 1.0));
                    for d in 0..dims {
                        yi[d] += clip(coeff * (yi[d] - ym[d])) * self.alpha;
                    }
                }
            }
            *next_negative += negatives as f64 * self.per_negative[offset + k];
        }
    }
}

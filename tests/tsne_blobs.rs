//! t-SNE on well-separated synthetic blobs: k-means on the embedding recovers the blobs, and
//! no blob collapses to a point, for both gradients and both dimensions.

use cellvae::analysis::kmeans::{kmeans, KMeansOptions};
use cellvae::analysis::metrics::scores;
use cellvae::analysis::tsne::{tsne, Method, TsneOptions};
use cellvae::engine::rng::{stream, Stream};
use ndarray::{Array2, Axis};
use rand::Rng;
use rand_distr::StandardNormal;

const BLOBS: usize = 4;
const PER_BLOB: usize = 80;

fn blobs() -> (Array2<f64>, Vec<usize>) {
    let mut rng = stream(11, Stream::Init);
    let n = BLOBS * PER_BLOB;
    let labels: Vec<usize> = (0..n).map(|i| i % BLOBS).collect();
    let x = Array2::from_shape_fn((n, 6), |(i, j)| {
        let centre = if j == labels[i] { 12.0 } else { 0.0 };
        centre + rng.sample::<f64, _>(StandardNormal)
    });
    (x, labels)
}

fn check(method: Method, dims: usize) {
    let (x, truth) = blobs();
    let mut o = TsneOptions::new(dims, 3);
    o.method = method;
    o.perplexity = 30.0;
    let e = tsne(&x, &o).unwrap();
    assert_eq!(e.coords.dim(), (x.nrows(), dims));
    let km = kmeans(
        &e.coords,
        &KMeansOptions {
            n_init: 10,
            ..KMeansOptions::new(BLOBS, 1)
        },
    )
    .unwrap();
    let ari = scores(&truth, &km.labels).ari;
    assert!(ari > 0.95, "{method:?} {dims}-D: ARI {ari}");
    // Spread of each blob versus the spread of the whole embedding.
    let overall = e.coords.std_axis(Axis(0), 0.0).sum();
    for b in 0..BLOBS {
        let rows: Vec<usize> = (0..x.nrows()).filter(|&i| truth[i] == b).collect();
        let blob = e.coords.select(Axis(0), &rows);
        let spread = blob.std_axis(Axis(0), 0.0).sum();
        assert!(
            spread > 0.02 * overall,
            "{method:?} {dims}-D: blob {b} collapsed ({spread} vs {overall})"
        );
    }
    assert!(e.kl_divergence.is_finite() && e.kl_divergence > 0.0);
}

#[test]
fn exact_2d_recovers_blobs() {
    check(Method::Exact, 2);
}

#[test]
fn exact_3d_recovers_blobs() {
    check(Method::Exact, 3);
}

#[test]
fn barnes_hut_2d_recovers_blobs() {
    check(Method::BarnesHut, 2);
}

#[test]
fn barnes_hut_3d_recovers_blobs() {
    check(Method::BarnesHut, 3);
}

#[test]
fn perplexity_must_be_below_the_number_of_points() {
    let (x, _) = blobs();
    let mut o = TsneOptions::new(2, 1);
    o.perplexity = x.nrows() as f64;
    assert!(tsne(&x, &o).is_err());
}

//! Evaluation: the PCA baseline, t-SNE, UMAP, k-means and Leiden, and the clustering scores.

pub mod harmony;
pub mod integration;
pub mod kmeans;
pub mod label_scores;
pub mod leiden;
pub mod markers;
pub mod matching;
pub mod metrics;
pub mod neighbors;
pub mod nn_descent;
pub mod pca;
pub mod tsne;
pub mod umap;

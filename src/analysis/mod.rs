//! Evaluation: the PCA baseline, t-SNE, k-means and the clustering scores.

pub mod kmeans;
pub mod label_scores;
pub mod markers;
pub mod matching;
pub mod metrics;
pub mod pca;
pub mod tsne;
pub mod umap;

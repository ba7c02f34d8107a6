//! cellvae: a deep autoencoder, a β-VAE and a β-VSC for single-cell RNA-seq, on a numeric
//! engine written by hand: every layer and loss has an explicit forward and backward pass,
//! checked against finite differences.
//!
//! Data flows one way through the modules: [`io`] → [`preprocess`] → [`engine`] → [`models`]
//! → [`train`] → [`analysis`] → [`report`].

pub mod analysis;
pub mod cli;
pub mod csr;
pub mod engine;
pub mod error;
pub mod io;
pub mod models;
pub mod preprocess;
pub mod report;
pub mod train;

pub use error::{Error, Result};

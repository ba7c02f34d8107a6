//! cellvae: a deep autoencoder, a β-VAE and a β-VSC for single-cell RNA-seq, on a numeric
//! engine written by hand: every layer and loss has an explicit forward and backward pass,
//! checked against finite differences.
//!
//! Data flows one way through the modules: [`io`] → [`preprocess`] → [`engine`] → [`models`]
//! → [`train`] → [`analysis`] → [`study`] → `report` → `cli`.
//!
//! The equations, layer by layer, with the file and function of each: [`engine`].
//!
//! Features: `cli` (on by default) builds the command line (`cli`, with clap) and the report
//! it writes (`report`: plots with plotters, summary tables). Without it
//! (`default-features = false`) the crate is the engine, the models, training, the readers and
//! the analysis, and pulls in neither clap nor plotters.

pub mod analysis;
#[cfg(feature = "cli")]
pub mod cli;
pub mod csr;
pub mod engine;
pub mod error;
pub mod io;
pub mod models;
pub mod preprocess;
#[cfg(feature = "cli")]
pub mod report;
pub mod stage;
pub mod study;
pub mod train;

pub use error::{Error, Result};

//! The AE, β-VAE and β-VSC networks, their presets, and latent-code extraction.

pub mod codes;
pub mod config;
pub mod latent;
pub mod network;
mod network_dec;
mod network_nb;
mod network_norm;
pub mod params;
pub mod preset;
pub mod workspace;

pub use config::{DispersionKind, Likelihood, ModelConfig, ModelKind};
pub use latent::Noise;
pub use network::{Losses, Network, Schedule};
pub use preset::Preset;
pub use workspace::Workspace;
